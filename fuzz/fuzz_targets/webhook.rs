//! Any bytes as a webhook request: the first line is the signature header, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controller::reconcile::webhook::fuzz_check(data);
});
