//! Replays the `api` fuzz target's corpus (`fuzz/corpus/api`) through the same checks the
//! fuzzer runs: request pieces parse or are refused without a panic, places and query values
//! read back as written, and nothing a client writes reaches a page unescaped.

use std::path::Path;

#[test]
fn every_corpus_input_keeps_the_api_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/api");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| controller::dashboard::fuzz::fuzz_check(&data));
        assert!(outcome.is_ok(), "{} breaks an invariant", path.display());
        replayed += 1;
    }
    assert!(replayed >= 10, "only {replayed} corpus inputs");
}
