//! Replays the manifest fuzz target's corpus (`fuzz/corpus/manifest`: seeds, and every input
//! that once broke an invariant) through the same checks the fuzzer runs, on every `make test`.

use std::path::Path;

#[test]
fn every_corpus_input_keeps_the_parser_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/manifest");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| crds::fuzz_checks::manifest(&data));
        assert!(outcome.is_ok(), "{} breaks an invariant", path.display());
        replayed += 1;
    }
    assert!(replayed >= 50, "only {replayed} corpus inputs");
}
