//! A stable fingerprint of an object's spec.
//!
//! The hash covers the spec with defaults filled in (so writing a default out or leaving it
//! implicit is the same desired state) and nothing else: labels, annotations and status do not
//! change what runs. JSON object keys are sorted before hashing, so the fingerprint does not
//! depend on field order in the file or in serde's output.

use crds::Resource;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// 16 hex digits of SHA-256 over the canonical spec: short enough for job meta, long enough
/// that two different specs never collide in practice.
pub fn spec_hash(resource: &Resource) -> String {
    let mut canonical = String::new();
    write_canonical(&resource.spec_json(), &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn app(body: &str) -> Resource {
        let text = format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n  labels: {{team: a}}\nspec:\n{body}");
        crds::parse_str("t.yaml", &text).unwrap().remove(0).resource
    }

    #[test]
    fn defaults_written_or_implied_hash_the_same() {
        let implicit = app("  image: nginx\n");
        let explicit = app("  replicas: 1\n  image: nginx\n  resources: {memory: 128, cpu: 100}\n");
        assert_eq!(spec_hash(&implicit), spec_hash(&explicit));
    }

    #[test]
    fn metadata_does_not_change_the_hash_but_the_spec_does() {
        let base = app("  image: nginx\n");
        let mut relabelled = base.clone();
        relabelled
            .metadata_mut()
            .labels
            .insert("team".into(), "b".into());
        assert_eq!(spec_hash(&base), spec_hash(&relabelled));
        assert_ne!(spec_hash(&base), spec_hash(&app("  image: nginx:2\n")));
        assert_eq!(spec_hash(&base).len(), 16);
    }

    proptest! {
        /// Any two replica counts or images that differ give different hashes; equal ones, equal.
        #[test]
        fn hash_follows_the_spec(a in 0u32..1000, b in 0u32..1000, tag_a in "[a-z0-9]{1,8}", tag_b in "[a-z0-9]{1,8}") {
            let left = app(&format!("  image: img:{tag_a}\n  replicas: {a}\n"));
            let right = app(&format!("  image: img:{tag_b}\n  replicas: {b}\n"));
            prop_assert_eq!(spec_hash(&left) == spec_hash(&right), a == b && tag_a == tag_b);
        }
    }
}
