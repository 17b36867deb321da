//! What must hold for any input to the manifest parser, whatever the bytes: shared by the fuzz
//! target (`fuzz/`, `make fuzz`) and the test that replays its corpus on every `make test`.

use crate::manifest::{parse_bytes, MAX_FILE_BYTES};

/// Parses `data` as a file and checks the answer: manifests, or errors that each name the file
/// and a position inside it. Panics (as a fuzzer wants) when that does not hold.
pub fn manifest(data: &[u8]) {
    const FILE: &str = "fuzz.yaml";
    match parse_bytes(FILE, data) {
        Ok(manifests) => {
            assert!(
                data.len() <= MAX_FILE_BYTES,
                "an oversized file was accepted"
            );
            for manifest in manifests {
                assert_eq!(manifest.source.file, FILE);
                assert!(manifest.source.line >= 1);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a failure without an error");
            let lines = crate::yaml::line_count(&String::from_utf8_lossy(data));
            for error in errors {
                assert_eq!(error.file, FILE);
                assert!(error.line >= 1 && error.col >= 1, "{error}");
                assert!(
                    error.line <= lines,
                    "{error} is past the last line ({lines})"
                );
                assert!(!error.message.is_empty());
            }
        }
    }
}
