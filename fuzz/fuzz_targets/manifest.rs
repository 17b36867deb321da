//! Any bytes as a manifest file: an error list or manifests, never a panic, never unbounded
//! memory (the parser's own limits on size, documents, nesting and objects apply).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    crds::fuzz_checks::manifest(data);
});
