//! What people ask of nomarch about one object by hand, whatever its kind: set it aside
//! (`nomarch suspend`, `resume`) and look again now (`nomarch reconcile`). Both are annotations,
//! not spec: neither changes what should run (so no new generation, no rollout), a CronJob's
//! `spec.suspend` already means something else (no launches), and a GitSource's sync keeps
//! them on the objects it owns ([`OPERATOR_ANNOTATIONS`]), as Flux keeps its `requestedAt`.

use chrono::{DateTime, Utc};
use crds::{ConditionType, ObjectMeta, Status};

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
