//! Any bytes as the parts of an API or dashboard request: a cookie, a listing's place, a label
//! selector, a search, a health word, a path segment (one per line).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controller::dashboard::fuzz::fuzz_check(data);
});
