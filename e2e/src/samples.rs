//! The Nomad and Consul API samples in `e2e/nomad-api/` (copied from the upstream docs; the
//! folder's `SOURCES.md` says from where and at which commit). Tests read them through here, so
//! there is one place that knows where they live and nothing reads outside the repository.

use std::path::PathBuf;

use serde_json::Value;

/// The folder holding the samples, `SOURCES.md` and `SEMANTICS.md`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nomad-api")
}

/// One sample by name (the file name without `.json`), parsed.
pub fn load(name: &str) -> Value {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names of every sample in the folder.
pub fn names() -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir())
        .expect("e2e/nomad-api is in the repository")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(String::from)
        })
        .collect()
}
