//! What people ask of nomarch about one object by hand, whatever its kind: set it aside
//! (`nomarch suspend`, `resume`) and look again now (`nomarch reconcile`). Both are annotations,
//! not spec: neither changes what should run (so no new generation, no rollout), a CronJob's
//! `spec.suspend` already means something else (no launches), and a GitSource's sync keeps
//! them on the objects it owns ([`OPERATOR_ANNOTATIONS`]), as Flux keeps its `requestedAt`.

use chrono::{DateTime, Utc};
use crds::{ConditionType, ObjectMeta, Resource, Status};

use crate::meta::Owner;
use crate::status::set_condition;

/// `"true"`: nomarch changes nothing for the object (no drift revert, no healing, no re-pin,
/// no fetch) while what runs keeps running.
pub const SUSPENDED: &str = "nomarch.io/suspended";
/// A token (the time it was asked): reconcile now. Handled once the status's
/// `lastHandledReconcileAt` carries the same token.
pub const RECONCILE_REQUESTED: &str = "nomarch.io/reconcile-requested-at";
/// A hub's name: `nomarch rebalance pubs` asks the controller to move the pub there (if the
/// hub is ready, matches, has room and the pub's volumes); removed once it has moved.
pub const MOVE_TO: &str = "nomarch.io/move-to";
/// Annotations that belong to whoever operates nomarch, not to the manifest: a GitSource's
/// sync keeps them as they are on the stored object.
pub const OPERATOR_ANNOTATIONS: &[&str] = &[SUSPENDED, RECONCILE_REQUESTED, MOVE_TO];

pub fn is_suspended(meta: &ObjectMeta) -> bool {
    meta.annotations.get(SUSPENDED).is_some_and(|v| v == "true")
}

/// What nomarch does with the object: `Suspended` (set aside by `nomarch suspend`), `Stopped`
/// or `Stopping` (an app or pub with `spec.stopped`), otherwise `Active`.
pub fn state(resource: &Resource) -> &'static str {
    state_with(resource, resource.status())
}

/// [`state`] with the status given apart from the object (as a cache keeps them).
pub fn state_with(resource: &Resource, status: Option<&Status>) -> &'static str {
    let stopped = resource.stopped().unwrap_or(false);
    match () {
        _ if is_suspended(resource.metadata()) => "Suspended",
        _ if stopped && status.is_some_and(|s| s.is_true(ConditionType::Stopped)) => "Stopped",
        _ if stopped => "Stopping",
        _ => "Active",
    }
}

/// The reconcile asked for and not handled yet, if any.
pub fn pending_request<'a>(meta: &'a ObjectMeta, status: Option<&Status>) -> Option<&'a str> {
    let asked = meta.annotations.get(RECONCILE_REQUESTED)?;
    let handled = status.and_then(|s| s.last_handled_reconcile_at.as_deref());
    (handled != Some(asked.as_str())).then_some(asked.as_str())
}

/// Where an object stands between what was asked (the annotation) and what status records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspension {
    /// Asked, not recorded yet: record it and say so, then do nothing else.
    Enter,
    /// Asked and recorded: do nothing.
    Hold,
    /// Recorded, no longer asked: drop the record, say so, then reconcile as usual.
    Leave,
    /// Neither: reconcile as usual.
    Run,
}

impl Suspension {
    pub fn of(meta: &ObjectMeta, status: Option<&Status>) -> Suspension {
        let asked = is_suspended(meta);
        let recorded = status.is_some_and(|s| s.condition(ConditionType::Suspended).is_some());
        match (asked, recorded) {
            (true, false) => Suspension::Enter,
            (true, true) => Suspension::Hold,
            (false, true) => Suspension::Leave,
            (false, false) => Suspension::Run,
        }
    }

    /// Whether the kind's reconcile runs.
    pub fn reconciles(self) -> bool {
        matches!(self, Suspension::Leave | Suspension::Run)
    }

    /// The status to store for this step (`None`: unchanged), and the event to record after.
    pub fn record(
        self,
        status: Option<&Status>,
        now: DateTime<Utc>,
    ) -> Option<(Status, &'static str, &'static str)> {
        let mut next = status.cloned().unwrap_or_default();
        match self {
            Suspension::Enter => {
                set_condition(
                    &mut next.conditions,
                    ConditionType::Suspended,
                    true,
                    "Suspended",
                    "nomarch changes nothing for it until `nomarch resume`; what runs keeps running"
                        .into(),
                    now,
                );
                Some((
                    next,
                    "Suspended",
                    "reconciling suspended: what runs keeps running",
                ))
            }
            Suspension::Leave => {
                next.conditions
                    .retain(|c| c.type_ != ConditionType::Suspended);
                Some((next, "Resumed", "reconciling resumed"))
            }
            Suspension::Hold | Suspension::Run => None,
        }
    }
}

/// Why desired state may not be changed by hand (`rollout undo`, `retry`, `stop`): the object
/// is synced from a GitSource, whose next sync would put the repository's value back. `None`
/// for an object applied by hand. `instead` says what to do in the repository.
pub fn synced_refusal(resource: &Resource, instead: &str) -> Option<String> {
    let Owner::Source(source) = Owner::of(resource) else {
        return None;
    };
    let commit = resource
        .metadata()
        .annotations
        .get(crate::meta::COMMIT)
        .map_or("its last commit".to_string(), |c| format!("commit {c}"));
    Some(format!(
        "{} is synced from {source} ({commit}); {instead} in the repository, or the next sync puts it back",
        resource.object_ref()
    ))
}

/// `stop`/`start` (the CLI's and the API's): sets `spec.stopped`. `Ok(false)` when it was so
/// already. Refused for kinds that do not run until stopped, and for an object a GitSource owns
/// unless that source is suspended (`source_suspended`; the next sync after `resume` puts the
/// repository's value back).
pub fn set_stopped(
    resource: &mut Resource,
    stopped: bool,
    source_suspended: bool,
) -> Result<bool, String> {
    let verb = if stopped { "stop" } else { "start" };
    let kind = resource.kind();
    let refusal = if source_suspended {
        None
    } else {
        synced_refusal(resource, &format!("set spec.stopped: {stopped}"))
    };
    let spec_stopped = resource.stopped_mut().map_err(|hint| {
        format!("a {kind} cannot be {verb}ped: it does not run until stopped{hint}")
    })?;
    if let Some(refusal) = refusal {
        let Owner::Source(source) = Owner::of(resource) else {
            unreachable!("only a synced object is refused");
        };
        return Err(format!(
            "{refusal} (or `nomarch suspend gitsource/{} -n {}` first)",
            source.name, source.namespace
        ));
    }
    if *spec_stopped == stopped {
        return Ok(false);
    }
    *spec_stopped = stopped;
    Ok(true)
}

/// `rollout retry` (the CLI's and the API's): a new value (`token`, the time asked) for the
/// retry annotation, which lifts the hold on a rolled-back rollout. Refused when nothing was
/// rolled back, and for a synced object (the annotation is desired state there).
pub fn ask_retry(resource: &mut Resource, token: &str) -> Result<(), String> {
    let annotation = crate::status::RETRY_ANNOTATION;
    if let Some(refusal) = synced_refusal(resource, &format!("change the {annotation} annotation"))
    {
        return Err(refusal);
    }
    if resource
        .status()
        .and_then(|s| s.workload.rollback.as_ref())
        .is_none()
    {
        return Err(format!(
            "{} has no rolled-back rollout to retry",
            resource.object_ref()
        ));
    }
    resource
        .metadata_mut()
        .annotations
        .insert(annotation.to_string(), token.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
        let mut meta = ObjectMeta::new("web");
        meta.annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        meta
    }

    fn parsed(yaml_kind: &str, spec: &str) -> Resource {
        let yaml = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: {yaml_kind}\nmetadata:\n  name: web\nspec:\n{spec}"
        );
        crds::parse_str("web.yaml", &yaml)
            .unwrap()
            .remove(0)
            .resource
    }

    fn synced(resource: &mut Resource) {
        let meta = resource.metadata_mut();
        meta.labels.insert(
            crate::source_sync::SOURCE_NAMESPACE.into(),
            "default".into(),
        );
        meta.labels
            .insert(crate::source_sync::SOURCE_NAME.into(), "site".into());
        meta.annotations
            .insert(crate::meta::COMMIT.into(), "abc123".into());
    }

    /// Stop and start: a new value is a change, the same one is not, a cron job is refused
    /// with its own way to stop, a synced object only while its source is suspended.
    #[test]
    fn stop_and_start_rules() {
        let mut app = parsed("App", "  image: nginx:1\n");
        assert_eq!(set_stopped(&mut app, true, false), Ok(true));
        assert_eq!(set_stopped(&mut app, true, false), Ok(false));
        assert_eq!(set_stopped(&mut app, false, false), Ok(true));
        let mut cron = parsed(
            "CronJob",
            "  schedule: \"@daily\"\n  task:\n    image: busybox:1\n",
        );
        let refused = set_stopped(&mut cron, true, false).unwrap_err();
        assert!(refused.contains("spec.suspend"), "{refused}");
        synced(&mut app);
        let refused = set_stopped(&mut app, true, false).unwrap_err();
        assert!(
            refused.contains("synced from gitsource/site")
                && refused.contains("commit abc123")
                && refused.contains("nomarch suspend gitsource/site -n default"),
            "{refused}"
        );
        assert_eq!(set_stopped(&mut app, true, true), Ok(true));
    }

    /// Undo, retry and stop change desired state, which a GitSource owns for its objects:
    /// refused, naming the source and the commit to act on.
    #[test]
    fn changes_to_synced_objects_are_refused_naming_the_commit() {
        let mut app = parsed("App", "  image: nginx:1\n");
        assert_eq!(synced_refusal(&app, "revert that commit"), None);
        synced(&mut app);
        assert_eq!(
            synced_refusal(&app, "revert that commit").unwrap(),
            "app/web is synced from gitsource/site (commit abc123); revert that commit in the repository, or the next sync puts it back"
        );
    }

    #[test]
    fn a_retry_needs_a_rollback_and_a_hand_applied_object() {
        let mut app = parsed("App", "  image: nginx:1\n");
        let refused = ask_retry(&mut app, "t1").unwrap_err();
        assert!(refused.contains("no rolled-back rollout"), "{refused}");
        let mut status = Status::default();
        status.workload.rollback = Some(crds::status::RollbackRecord {
            job_fingerprint: "f".into(),
            generation: 2,
            message: "failed".into(),
            retry_token: String::new(),
        });
        app.set_status(Some(status));
        assert_eq!(ask_retry(&mut app, "t1"), Ok(()));
        assert_eq!(
            app.metadata().annotations[crate::status::RETRY_ANNOTATION],
            "t1"
        );
        synced(&mut app);
        assert!(ask_retry(&mut app, "t2")
            .unwrap_err()
            .contains("synced from"));
    }

    /// Suspend and resume each record once and say so once; only then is the step a no-op.
    #[test]
    fn suspension_is_recorded_once_each_way() {
        let now = Utc::now();
        let suspended = meta(&[(SUSPENDED, "true")]);
        assert_eq!(Suspension::of(&suspended, None), Suspension::Enter);
        let (status, reason, _) = Suspension::Enter.record(None, now).unwrap();
        assert_eq!(reason, "Suspended");
        assert!(status.is_true(ConditionType::Suspended));
        assert_eq!(Suspension::of(&suspended, Some(&status)), Suspension::Hold);
        assert!(!Suspension::Hold.reconciles());
        assert_eq!(Suspension::Hold.record(Some(&status), now), None);

        let resumed = meta(&[(SUSPENDED, "false")]);
        assert_eq!(Suspension::of(&resumed, Some(&status)), Suspension::Leave);
        let (after, reason, _) = Suspension::Leave.record(Some(&status), now).unwrap();
        assert_eq!(reason, "Resumed");
        assert_eq!(after.condition(ConditionType::Suspended), None);
        assert_eq!(Suspension::of(&resumed, Some(&after)), Suspension::Run);
        assert!(Suspension::Run.reconciles());
    }

    #[test]
    fn a_reconcile_request_is_pending_until_its_token_is_handled() {
        let asked = meta(&[(RECONCILE_REQUESTED, "t1")]);
        assert_eq!(pending_request(&asked, None), Some("t1"));
        let mut status = Status {
            last_handled_reconcile_at: Some("t0".into()),
            ..Status::default()
        };
        assert_eq!(pending_request(&asked, Some(&status)), Some("t1"));
        status.last_handled_reconcile_at = Some("t1".into());
        assert_eq!(pending_request(&asked, Some(&status)), None);
        assert_eq!(pending_request(&meta(&[]), Some(&status)), None);
    }
}
