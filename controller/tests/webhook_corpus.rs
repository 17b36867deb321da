//! Replays the webhook fuzz target's corpus (`fuzz/corpus/webhook`) through the same checks the
//! fuzzer runs: only a body's real signature is accepted, and no input panics.

use std::path::Path;

#[test]
fn every_corpus_input_keeps_the_webhook_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/webhook");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome =
            std::panic::catch_unwind(|| controller::reconcile::webhook::fuzz_check(&data));
        assert!(outcome.is_ok(), "{} breaks an invariant", path.display());
        replayed += 1;
    }
    assert!(replayed >= 9, "only {replayed} corpus inputs");
}
