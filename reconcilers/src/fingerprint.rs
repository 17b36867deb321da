//! A stable fingerprint of a rendered Nomad job: what nomarch would register.
//!
//! nomarch remembers the fingerprint of the job it last registered (in the object's status), so
//! it can tell "the desired job changed" from "someone changed the job" without putting
//! anything that changes per generation into the job's meta: Nomad compares job, group and task
//! meta when it decides between an in-place and a destructive update (`scheduler/util.go
//! tasksUpdated`), so a per-generation meta key would restart every instance on every edit,
//! even a change of `replicas`. A spec field that only nomarch reads (`dependsOn`,
//! `update.maxUnavailable`, `reallocation.grace`) does not change the rendered job, so it does
//! not change the fingerprint and writes nothing to Nomad.
//!
//! JSON object keys are sorted before hashing, so the fingerprint does not depend on field
//! order in serde's output.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// 16 hex digits of SHA-256 over the canonical JSON: short enough to keep in status, long
/// enough that two different jobs never collide in practice.
pub fn fingerprint(job: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(job, &mut canonical);
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
    use crate::kind::app::render_app;
    use crds::Resource;
    use proptest::prelude::*;

    fn app(body: &str) -> Value {
        let text = format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n  labels: {{team: a}}\nspec:\n{body}");
        let Resource::App(app) = crds::parse_str("t.yaml", &text).unwrap().remove(0).resource
        else {
            unreachable!("an App manifest")
        };
        serde_json::to_value(render_app(&app)).expect("jobs serialize")
    }

    #[test]
    fn defaults_written_or_implied_fingerprint_the_same() {
        let implicit = app("  image: nginx\n");
        let explicit = app("  replicas: 1\n  image: nginx\n  resources: {memory: 128, cpu: 100}\n");
        assert_eq!(fingerprint(&implicit), fingerprint(&explicit));
        assert_eq!(fingerprint(&implicit).len(), 16);
    }

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": {"c": [1, 2], "d": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b": {"d": null, "c": [1, 2]}, "a": 1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c: Value = serde_json::from_str(r#"{"b": {"d": null, "c": [2, 1]}, "a": 1}"#).unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&c), "list order does matter");
    }

    /// Fields only nomarch reads leave the job, and so its fingerprint, as it was; fields
    /// Nomad runs change it. (`health.grace` is not among them: it is also the checks'
    /// `check_restart` grace.)
    #[test]
    fn only_what_nomad_runs_changes_the_fingerprint() {
        let base = app("  image: nginx\n");
        for nomarch_only in [
            "  image: nginx\n  dependsOn: [redis]\n",
            "  image: nginx\n  update: {maxUnavailable: 2}\n",
        ] {
            assert_eq!(
                fingerprint(&app(nomarch_only)),
                fingerprint(&base),
                "{nomarch_only}"
            );
        }
        assert_ne!(fingerprint(&base), fingerprint(&app("  image: nginx:2\n")));
        assert_ne!(
            fingerprint(&base),
            fingerprint(&app("  image: nginx\n  replicas: 2\n"))
        );
    }

    proptest! {
        /// Any two replica counts or images that differ give different fingerprints; equal
        /// ones, equal.
        #[test]
        fn fingerprint_follows_the_job(a in 0u32..1000, b in 0u32..1000, tag_a in "[a-z0-9]{1,8}", tag_b in "[a-z0-9]{1,8}") {
            let left = app(&format!("  image: img:{tag_a}\n  replicas: {a}\n"));
            let right = app(&format!("  image: img:{tag_b}\n  replicas: {b}\n"));
            prop_assert_eq!(fingerprint(&left) == fingerprint(&right), a == b && tag_a == tag_b);
        }
    }
}
