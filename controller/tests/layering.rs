//! The controller's layers import downward only: `clients` and `store` know nothing above
//! them, and `runtime` knows no kind (it runs whatever [`Kinds`] it is handed). An import
//! upward is what let the runtime and the reconcilers grow into one loop; this test fails on
//! the first one, naming the file and line.
//!
//! [`Kinds`]: controller::runtime::kinds::Kinds

use std::path::{Path, PathBuf};

/// (layer, the modules above it that it must not name).
const RULES: &[(&str, &[&str])] = &[
    (
        "clients",
        &[
            "store",
            "git",
            "runtime",
            "reconcile",
            "api",
            "dashboard",
            "cli",
        ],
    ),
    (
        "store",
        &["runtime", "reconcile", "api", "dashboard", "cli"],
    ),
    ("git", &["runtime", "reconcile", "api", "dashboard", "cli"]),
    ("runtime", &["reconcile", "api", "dashboard", "cli"]),
    ("reconcile", &["api", "dashboard", "cli"]),
    ("api", &["dashboard", "cli"]),
    ("dashboard", &["cli"]),
];

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every `crate::<module>` a file names outside comments, with its line number.
fn upward_names(text: &str, forbidden: &[&str]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for module in forbidden {
            if code.contains(&format!("crate::{module}::"))
                || code.contains(&format!("crate::{module};"))
            {
                found.push((number + 1, format!("crate::{module}")));
            }
        }
    }
    found
}

#[test]
fn layers_import_downward_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, forbidden) in RULES {
        let files = sources(&root.join(layer));
        assert!(!files.is_empty(), "no sources under src/{layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, name) in upward_names(&text, forbidden) {
                violations.push(format!(
                    "{}:{line}: {layer} names {name}",
                    file.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports upward:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let text = "use crate::clients::Secret;\nuse crate::reconcile::pubs; // why\n// crate::cli:: in a comment\n";
    assert_eq!(
        upward_names(text, &["reconcile", "cli"]),
        vec![(2, "crate::reconcile".to_string())]
    );
}

/// Where the runtime names a kind (`Kind::Pub`, `Resource::GitSource`, ...) outside its tests.
fn kind_names(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let kinds = ["App", "Pub", "CronJob", "GitSource"];
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for kind in kinds {
            for prefix in ["Kind::", "Resource::"] {
                let name = format!("{prefix}{kind}");
                let named = code.match_indices(&name).any(|(at, _)| {
                    !code[at + name.len()..].starts_with(|c: char| c.is_alphanumeric())
                });
                if named {
                    found.push((number + 1, name));
                }
            }
        }
    }
    found
}

/// The runtime runs whatever kinds it is handed: which kind stays in one shard, which serves a
/// webhook, which follows nodes is the kinds' to say (`Kinds`), never a `Kind::Pub` in here.
#[test]
fn the_runtime_names_no_kind() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut named = Vec::new();
    for file in sources(&root.join("runtime")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name) in kind_names(&text) {
            named.push(format!(
                "{}:{line}: {name}",
                file.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(
        named.is_empty(),
        "the runtime names kinds:\n{}",
        named.join("\n")
    );
    assert_eq!(
        kind_names(
            "if object.kind == crds::Kind::Pub {\n// Kind::App\nlet k = Kind::Application;\n"
        ),
        vec![(1, "Kind::Pub".to_string())]
    );
}
