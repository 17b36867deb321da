//! Every manifest under `tests/invalid/` must fail with exactly the errors written next to it in
//! `<name>.expected`. Run with `BLESS=1` to rewrite the expectations after a deliberate change,
//! then read the diff: each line is what a user will see.

use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_none_or(|e| e != "expected"))
        .collect();
    entries.sort();
    entries
}

/// Loads one case the way `nomarch validate -f` would, with paths shown relative to the corpus.
fn errors_of(case: &Path) -> String {
    let corpus_dir = case.parent().expect("case has a parent");
    let errors = match crds::load_paths(&[case.to_path_buf()]) {
        Ok(manifests) => panic!(
            "{} should be invalid but loaded {} manifests",
            case.display(),
            manifests.len()
        ),
        Err(errors) => errors,
    };
    let prefix = format!("{}/", corpus_dir.display());
    errors
        .iter()
        .map(|e| format!("{}\n", e.to_string().replace(&prefix, "")))
        .collect()
}

#[test]
fn every_invalid_manifest_fails_with_its_exact_errors() {
    let cases = corpus();
    assert!(
        cases.len() >= 30,
        "the corpus must keep at least 30 cases, has {}",
        cases.len()
    );
    let bless = std::env::var_os("BLESS").is_some();
    let mut mismatches = Vec::new();
    for case in &cases {
        let actual = errors_of(case);
        let expected_path = PathBuf::from(format!("{}.expected", case.display()));
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} has no .expected file (run with BLESS=1)",
                case.display()
            )
        });
        if actual != expected {
            mismatches.push(format!(
                "{}:\n  expected: {expected:?}\n  actual:   {actual:?}",
                case.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} case(s) changed:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
