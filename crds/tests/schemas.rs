//! The checked-in JSON Schemas must be exactly what the types generate (`make schemas`
//! rewrites them), and must accept the example manifests and reject the corpus's unknown fields.

use std::path::Path;

use crds::schema::{schema_file_name, schema_file_text};
use crds::Kind;

fn schema_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn checked_in_schemas_are_current() {
    let write = std::env::var_os("NOMARCH_WRITE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for kind in Kind::ALL {
        let path = schema_dir().join(schema_file_name(kind));
        let fresh = schema_file_text(kind);
        if write {
            std::fs::write(&path, &fresh).expect("write schema");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != fresh {
            stale.push(path.display().to_string());
        }
    }
    let reference = schema_dir().join("REFERENCE.md");
    let fresh = crds::reference::reference_markdown();
    if write {
        std::fs::write(&reference, &fresh).expect("write reference");
    } else if std::fs::read_to_string(&reference).unwrap_or_default() != fresh {
        stale.push(reference.display().to_string());
    }
    assert!(
        stale.is_empty(),
        "stale schemas (run `make schemas`): {stale:?}"
    );
}

#[test]
fn reference_documents_every_spec_field() {
    let reference = crds::reference::reference_markdown();
    for field in [
        "image",
        "replicas",
        "hubSelector",
        "reallocation",
        "schedule",
        "concurrencyPolicy",
        "webhookSecretRef",
        "grace",
    ] {
        assert!(
            reference.contains(&format!("| `{field}` |")),
            "{field} is missing from the reference"
        );
    }
    assert!(
        reference.contains("one of Allow, Forbid"),
        "enums list their values"
    );
}

#[test]
fn schemas_pin_kind_and_forbid_unknown_fields() {
    for kind in Kind::ALL {
        let schema = crds::schema::schema_for(kind);
        assert_eq!(schema["properties"]["kind"]["const"], kind.as_str());
        assert_eq!(schema["additionalProperties"], false, "{kind}");
        let required = schema["required"].as_array().expect("required list");
        assert!(
            required.iter().any(|r| r == "spec"),
            "{kind}: spec must be required"
        );
    }
}
