//! The meta keys nomarch puts on every job it manages, and how to read them back. A job without
//! `nomarch.io/managed-by` is never touched.
//!
//! Only the job's identity goes into meta, never anything that changes with a generation (a
//! spec hash, the generation, the source commit): Nomad merges job meta into every task's meta
//! and replaces every allocation when it changes (`scheduler/util.go tasksUpdated`, "task
//! meta"). What nomarch last wrote is in the object's status instead ([`crate::fingerprint`]).
//!
//! Also who owns a stored object ([`Owner`]): by hand, or a GitSource, named by two labels.

use std::collections::BTreeMap;

use crds::{Kind, ObjectRef, Resource};

pub const MANAGED_BY: &str = "nomarch.io/managed-by";
pub const MANAGER: &str = "nomarch";
pub const KIND: &str = "nomarch.io/kind";
pub const NAME: &str = "nomarch.io/name";
pub const COMMIT: &str = crds::validate::COMMIT_ANNOTATION;
/// An annotation on an object (copied to its job's meta) that keeps the job when the object
/// is deleted.
pub const PROTECT: &str = "nomarch.io/protect";

/// The Nomad job ID of an object: its name, in the object's namespace.
pub fn job_id(object: &ObjectRef) -> String {
    object.name.clone()
}

/// The meta a rendered job carries: who owns it, and whether it outlives its object.
pub fn job_meta(resource: &Resource) -> BTreeMap<String, String> {
    let meta = resource.metadata();
    let mut out = BTreeMap::new();
    out.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    out.insert(KIND.to_string(), resource.kind().as_str().to_string());
    out.insert(NAME.to_string(), meta.name.clone());
    if meta.annotations.get(PROTECT).is_some_and(|v| v == "true") {
        out.insert(PROTECT.to_string(), "true".to_string());
    }
    out
}

/// Who owns a job, according to its meta: `None` when nomarch does not manage it.
pub fn owner_of(namespace: &str, meta: Option<&BTreeMap<String, String>>) -> Option<ObjectRef> {
    let meta = meta?;
    if meta.get(MANAGED_BY).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    let kind = Kind::from_kind_name(meta.get(KIND)?)?;
    Some(ObjectRef::new(kind, namespace, meta.get(NAME)?.clone()))
}

/// The label naming the GitSource an object came from.
pub const SOURCE_NAME: &str = "nomarch.io/source-name";
/// The label naming that GitSource's namespace.
pub const SOURCE_NAMESPACE: &str = "nomarch.io/source-namespace";

/// Who owns a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Applied by hand (`nomarch apply`): no source labels.
    Hand,
    /// Synced from this GitSource.
    Source(ObjectRef),
}

impl Owner {
    pub fn of(resource: &Resource) -> Owner {
        let labels = &resource.metadata().labels;
        match (labels.get(SOURCE_NAMESPACE), labels.get(SOURCE_NAME)) {
            (Some(namespace), Some(name)) => Owner::Source(ObjectRef::new(
                crds::Kind::GitSource,
                namespace.clone(),
                name.clone(),
            )),
            _ => Owner::Hand,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_come_from_meta_only_when_managed() {
        let mut meta = BTreeMap::from([
            (KIND.to_string(), "App".to_string()),
            (NAME.to_string(), "web".to_string()),
        ]);
        assert_eq!(
            owner_of("default", Some(&meta)),
            None,
            "no managed-by: not ours"
        );
        meta.insert(MANAGED_BY.to_string(), MANAGER.to_string());
        assert_eq!(
            owner_of("ops", Some(&meta)),
            Some(ObjectRef::new(Kind::App, "ops", "web"))
        );
        meta.insert(KIND.to_string(), "Deployment".to_string());
        assert_eq!(owner_of("ops", Some(&meta)), None);
    }
}
