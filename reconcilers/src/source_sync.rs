//! What syncing one git commit does to the store: a pure function from (the commit's objects,
//! every stored object) to typed buckets, like the job plan. The executor writes the buckets in
//! transactions that compare each object's revision as seen here, so an object that changed
//! owner in between makes the sync fail and plan again rather than take it.
//!
//! Ownership lives in two labels, because a label value holds at most 63 characters and a
//! namespace and a name may each use all of them. The commit annotation says which commit last
//! changed the object's spec: a push that leaves an object's spec alone leaves its commit alone,
//! so its Nomad job (whose meta carries the commit) is not registered again for nothing.

use std::collections::HashMap;

use crds::{ObjectRef, Resource};

use crate::meta::COMMIT;
pub use crate::meta::{Owner, SOURCE_NAME, SOURCE_NAMESPACE};

/// An object in the commit that another owner already holds: the commit is not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub object: ObjectRef,
    pub owner: Owner,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.owner {
            Owner::Hand => write!(
                f,
                "{} exists and was applied by hand; delete it or add the source labels to hand it over",
                self.object
            ),
            Owner::Source(other) => write!(f, "{} belongs to {other}", self.object),
        }
    }
}

/// What one sync does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// New objects, labelled and stamped with the commit.
    pub create: Vec<Resource>,
    /// Changed objects, carrying the `resourceVersion` they were planned against.
    pub update: Vec<Resource>,
    pub unchanged: Vec<ObjectRef>,
    /// Objects this source owns that left the repository (prune on), with the
    /// `resourceVersion` they were planned against.
    pub prune: Vec<(ObjectRef, String)>,
    /// Objects this source owns that left the repository, kept because prune is off.
    pub kept: Vec<ObjectRef>,
    /// Objects someone else owns; any of these means nothing is applied.
    pub conflicts: Vec<Conflict>,
}

impl SyncPlan {
    /// Whether the sync writes nothing.
    pub fn is_noop(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.prune.is_empty()
    }

    /// `2 created, 1 configured, 5 unchanged, 1 pruned`, for status and events.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("{} created", self.create.len()),
            format!("{} configured", self.update.len()),
            format!("{} unchanged", self.unchanged.len()),
        ];
        if !self.prune.is_empty() {
            parts.push(format!("{} pruned", self.prune.len()));
        }
        if !self.kept.is_empty() {
            parts.push(format!("{} left in place (prune is off)", self.kept.len()));
        }
        parts.join(", ")
    }
}

/// What happens to one object of the commit.
#[derive(Debug)]
enum Fate {
    Create(Resource),
    Update(Resource),
    Unchanged,
    Conflict(Owner),
}

/// Plans the sync of `desired` (one commit's objects) from `source` against `live` (every
/// stored object).
pub fn plan(
    source: &ObjectRef,
    commit: &str,
    prune: bool,
    desired: Vec<Resource>,
    live: &[Resource],
) -> SyncPlan {
    let live_by_ref: HashMap<ObjectRef, &Resource> =
        live.iter().map(|r| (r.object_ref(), r)).collect();
    let mut plan = SyncPlan::default();
    let mut in_commit = std::collections::HashSet::new();
    for want in desired {
        let object = want.object_ref();
        in_commit.insert(object.clone());
        match fate(source, commit, want, live_by_ref.get(&object).copied()) {
            Fate::Create(r) => plan.create.push(r),
            Fate::Update(r) => plan.update.push(r),
            Fate::Unchanged => plan.unchanged.push(object),
            Fate::Conflict(owner) => plan.conflicts.push(Conflict { object, owner }),
        }
    }
    let owner = Owner::Source(source.clone());
    for have in live {
        let object = have.object_ref();
        if in_commit.contains(&object) || Owner::of(have) != owner {
            continue;
        }
        if prune {
            let version = have.metadata().resource_version.clone();
            plan.prune.push((object, version));
        } else {
            plan.kept.push(object);
        }
    }
    plan
}

/// The rules, first match wins.
fn fate(source: &ObjectRef, commit: &str, want: Resource, have: Option<&Resource>) -> Fate {
    let Some(have) = have else {
        // 1. Not stored yet: ours to create.
        return Fate::Create(stamp(source, commit, want, None));
    };
    match Owner::of(have) {
        // 2. Another source's or applied by hand: never taken over silently.
        Owner::Source(other) if other != *source => return Fate::Conflict(Owner::Source(other)),
        Owner::Hand => return Fate::Conflict(Owner::Hand),
        Owner::Source(_) => {}
    }
    let stamped = stamp(source, commit, want, Some(have));
    let (a, b) = (stamped.metadata(), have.metadata());
    if stamped.spec_json() == have.spec_json()
        && a.labels == b.labels
        && a.annotations == b.annotations
    {
        // 3. Ours and as the commit says.
        Fate::Unchanged
    } else {
        // 4. Ours and different: write it, against the revision planned from.
        Fate::Update(stamped)
    }
}

/// Adds the ownership labels and the commit annotation. The commit stays what it was when the
/// spec did not change, so only real changes reach Nomad with a new commit.
fn stamp(
    source: &ObjectRef,
    commit: &str,
    mut want: Resource,
    have: Option<&Resource>,
) -> Resource {
    let same_spec = have.is_some_and(|h| h.spec_json() == want.spec_json());
    let commit = match have.and_then(|h| h.metadata().annotations.get(COMMIT)) {
        Some(previous) if same_spec => previous.clone(),
        _ => commit.to_string(),
    };
    let meta = want.metadata_mut();
    meta.labels
        .insert(SOURCE_NAMESPACE.to_string(), source.namespace.clone());
    meta.labels
        .insert(SOURCE_NAME.to_string(), source.name.clone());
    meta.annotations.insert(COMMIT.to_string(), commit);
    // Suspend and reconcile requests are the operator's: what the stored object says wins over
    // the commit (which may still say it first).
    for key in crate::operator::OPERATOR_ANNOTATIONS {
        if let Some(value) = have.and_then(|h| h.metadata().annotations.get(*key)) {
            meta.annotations.insert(key.to_string(), value.clone());
        }
    }
    meta.resource_version = have
        .map(|h| h.metadata().resource_version.clone())
        .unwrap_or_default();
    want
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Kind;

    const C1: &str = "1111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222";

    fn source() -> ObjectRef {
        ObjectRef::new(Kind::GitSource, "default", "state")
    }

    fn app(name: &str, image: &str) -> Resource {
        let text = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n"
        );
        crds::parse_str("t.yaml", &text).unwrap().remove(0).resource
    }

    /// What the store holds after a plan's object is written: its resourceVersion set.
    fn stored(mut r: Resource, version: &str) -> Resource {
        r.metadata_mut().resource_version = version.to_string();
        r
    }

    fn names(objects: &[Resource]) -> Vec<&str> {
        objects.iter().map(|r| r.metadata().name.as_str()).collect()
    }

    #[test]
    fn a_first_sync_creates_everything_labelled_with_its_commit() {
        let plan = plan(
            &source(),
            C1,
            true,
            vec![app("web", "nginx:1"), app("db", "redis:7")],
            &[],
        );
        assert_eq!(names(&plan.create), ["web", "db"]);
        for created in &plan.create {
            assert_eq!(Owner::of(created), Owner::Source(source()));
            assert_eq!(created.metadata().annotations[COMMIT], C1);
            assert_eq!(created.metadata().resource_version, "");
        }
        assert!(!plan.is_noop());
    }

    #[test]
    fn the_same_commit_again_changes_nothing() {
        let first = plan(&source(), C1, true, vec![app("web", "nginx:1")], &[]);
        let live = vec![stored(first.create[0].clone(), "7")];
        let again = plan(&source(), C1, true, vec![app("web", "nginx:1")], &live);
        assert!(again.is_noop(), "{again:?}");
        assert_eq!(again.unchanged.len(), 1);
    }

    #[test]
    fn a_new_commit_that_leaves_a_spec_alone_keeps_its_commit() {
        let first = plan(
            &source(),
            C1,
            true,
            vec![app("web", "nginx:1"), app("db", "redis:7")],
            &[],
        );
        let live: Vec<Resource> = first
            .create
            .iter()
            .map(|r| stored(r.clone(), "7"))
            .collect();
        let second = plan(
            &source(),
            C2,
            true,
            vec![app("web", "nginx:2"), app("db", "redis:7")],
            &live,
        );
        assert_eq!(names(&second.update), ["web"]);
        assert_eq!(second.update[0].metadata().annotations[COMMIT], C2);
        assert_eq!(
            second.update[0].metadata().resource_version,
            "7",
            "planned against rev 7"
        );
        assert_eq!(
            second.unchanged,
            [ObjectRef::new(Kind::App, "default", "db")]
        );
    }

    #[test]
    fn objects_that_leave_the_repository_are_pruned_only_with_prune_on() {
        let first = plan(
            &source(),
            C1,
            true,
            vec![app("web", "nginx:1"), app("db", "redis:7")],
            &[],
        );
        let live: Vec<Resource> = first
            .create
            .iter()
            .map(|r| stored(r.clone(), "9"))
            .collect();
        let db = ObjectRef::new(Kind::App, "default", "db");
        let pruning = plan(&source(), C2, true, vec![app("web", "nginx:1")], &live);
        assert_eq!(pruning.prune, [(db.clone(), "9".to_string())]);
        let keeping = plan(&source(), C2, false, vec![app("web", "nginx:1")], &live);
        assert!(keeping.prune.is_empty());
        assert_eq!(keeping.kept, [db]);
        assert!(keeping.is_noop());
    }

    #[test]
    fn objects_of_others_are_conflicts_and_never_pruned() {
        let other = ObjectRef::new(Kind::GitSource, "default", "other");
        let theirs = plan(&other, C1, true, vec![app("shared", "nginx:1")], &[]).create;
        let by_hand = stored(app("manual", "nginx:1"), "3");
        let live = vec![stored(theirs[0].clone(), "4"), by_hand];
        let plan = plan(
            &source(),
            C2,
            true,
            vec![app("shared", "nginx:2"), app("manual", "nginx:1")],
            &live,
        );
        let owners: Vec<&Owner> = plan.conflicts.iter().map(|c| &c.owner).collect();
        assert_eq!(owners, [&Owner::Source(other), &Owner::Hand]);
        assert!(plan.prune.is_empty() && plan.create.is_empty() && plan.update.is_empty());
        assert!(plan.conflicts[0]
            .to_string()
            .contains("belongs to gitsource/other"));
    }

    #[test]
    fn hand_edits_to_owned_objects_are_reverted() {
        let first = plan(&source(), C1, true, vec![app("web", "nginx:1")], &[]);
        let mut edited = stored(first.create[0].clone(), "5");
        edited
            .metadata_mut()
            .labels
            .insert("tier".into(), "edited".into());
        let plan = plan(&source(), C1, true, vec![app("web", "nginx:1")], &[edited]);
        assert_eq!(names(&plan.update), ["web"]);
        assert!(!plan.update[0].metadata().labels.contains_key("tier"));
        assert_eq!(plan.update[0].metadata().annotations[COMMIT], C1);
    }

    /// `nomarch suspend` and `nomarch reconcile` annotate objects a source owns; its syncs keep
    /// those annotations while reverting every other hand edit.
    #[test]
    fn operator_annotations_survive_a_sync() {
        use crate::operator::{RECONCILE_REQUESTED, SUSPENDED};
        let first = plan(&source(), C1, true, vec![app("web", "nginx:1")], &[]);
        let mut suspended = stored(first.create[0].clone(), "5");
        let annotations = &mut suspended.metadata_mut().annotations;
        annotations.insert(SUSPENDED.into(), "true".into());
        annotations.insert(RECONCILE_REQUESTED.into(), "t1".into());
        let same = plan(
            &source(),
            C1,
            true,
            vec![app("web", "nginx:1")],
            &[suspended.clone()],
        );
        assert_eq!(same.unchanged.len(), 1, "nothing to write");
        let next = plan(
            &source(),
            C2,
            true,
            vec![app("web", "nginx:2")],
            &[suspended],
        );
        let kept = &next.update[0].metadata().annotations;
        assert_eq!(
            (kept[SUSPENDED].as_str(), kept[RECONCILE_REQUESTED].as_str()),
            ("true", "t1")
        );
    }
}
