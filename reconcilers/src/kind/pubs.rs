//! A Pub's decisions once its hub is settled (the hub itself: [`crate::hubs`]): the workload's
//! look (one instance, healed in place on its hub), its phase, Nomad's refusal or rollback on
//! record, and when to look again, the hub's own pace included.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::status::PubPhase;
use crds::{ConditionType, ObjectRef, Pub, Status};

use super::JobOutcome;
use crate::effects::{Effects, Requeue};
use crate::status::{mark_stopped, record_rejection, record_rollback};
use crate::workload::{keep_if_unchanged, look, WorkloadSnapshot, WorkloadSpec};

/// While a pub is converging, look again this often even without a trigger.
pub const CONVERGING_RECHECK: Duration = Duration::from_secs(5);
/// A pub no hub can take looks again this often.
pub const UNSCHEDULABLE_RECHECK: Duration = Duration::from_secs(10);
/// A look due at a grace's end comes this much after it, so the grace has surely run out.
pub const AFTER_GRACE: Duration = Duration::from_millis(50);

/// What the look judges a Pub against: one instance, at most one replaced at a time.
pub fn workload_spec<'a>(pub_: &'a Pub, object: &'a ObjectRef) -> WorkloadSpec<'a> {
    WorkloadSpec {
        object,
        generation: pub_.metadata.generation,
        desired: u32::from(!pub_.spec.stopped),
        stopped: pub_.spec.stopped,
        health: pub_.spec.health.as_ref(),
        max_unavailable: 1,
        // A pub's job has no update block (render/pubs.rs): one instance, replaced in place.
        deploys: false,
    }
}

/// The phase people read, as an ordered rule table over what the look counted.
pub fn phase(status: &Status, stopped: bool) -> PubPhase {
    let replicas = status.workload.replicas.unwrap_or_default();
    let hub_down = status.hub.hub_unhealthy_since.is_some();
    match () {
        // Asked to run nothing: whatever still runs is on its way out.
        _ if stopped => PubPhase::Stopped,
        // Its hub is unhealthy: what runs there may be gone any moment.
        _ if hub_down => PubPhase::HubDown,
        _ if replicas.healthy >= 1 => PubPhase::Running,
        _ if replicas.running >= 1 => PubPhase::Starting,
        _ => PubPhase::Pending,
    }
}

/// Everything a Pub's decisions read once it has a hub. `workload.previous` is the status the
/// hub step left (hub chosen, kept or moved), not yet stored; `stored` is what etcd holds.
pub struct PubSnapshot<'a> {
    pub pub_: &'a Pub,
    pub stored: Option<&'a Status>,
    pub job: &'a JobOutcome,
    pub workload: WorkloadSnapshot<'a>,
    /// When the hub step wants another look (a grace running, a lost hub held, a rebalance).
    pub hub_requeue: Option<Duration>,
}

pub fn compute(snapshot: &PubSnapshot<'_>) -> Effects {
    let now = snapshot.workload.now;
    let look = look(&snapshot.workload);
    let mut status = look.status;
    status.hub.phase = Some(phase(&status, snapshot.pub_.spec.stopped));
    let mut status = keep_if_unchanged(
        status,
        snapshot.workload.previous,
        snapshot.pub_.metadata.generation,
    );
    record_rejection(&mut status, snapshot.job.rejected.as_ref(), now);
    record_rollback(
        &mut status,
        snapshot.stored,
        snapshot.job.rolled_back.as_ref(),
        now,
    );
    let settled = status.is_true(ConditionType::Ready) || status.is_true(ConditionType::Stopped);
    let heal_due = look.heal_due.map(|due| due + AFTER_GRACE);
    let requeue = match (snapshot.hub_requeue, heal_due) {
        // The sooner of the hub's look and the grace's end.
        (Some(hub), Some(heal)) => Requeue::After(hub.min(heal)),
        (Some(wait), None) | (None, Some(wait)) => Requeue::After(wait),
        (None, None) if settled => Requeue::OnChange,
        (None, None) => Requeue::After(CONVERGING_RECHECK),
    };
    Effects {
        status,
        heals: look.heals,
        troubles: look.troubles,
        events: look.rollout_steps,
        requeue,
    }
}

/// A Pub no hub holds: stopped before it ever had one (nothing to place, no job to stop), or
/// none can take it (`Unschedulable`, set by the hub step; looked at again soon).
pub fn without_hub(pub_: &Pub, after_hub_step: Status, now: DateTime<Utc>) -> Effects {
    let mut status = after_hub_step;
    let requeue = if pub_.spec.stopped {
        mark_stopped(&mut status, true, 0, now);
        status.hub.phase = Some(PubPhase::Stopped);
        status.observed_generation = Some(pub_.metadata.generation);
        Requeue::OnChange
    } else {
        Requeue::After(UNSCHEDULABLE_RECHECK)
    };
    Effects {
        status,
        heals: Vec::new(),
        troubles: Vec::new(),
        events: Vec::new(),
        requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::status::ReplicaCounts;

    #[test]
    fn the_phase_follows_its_rules_in_order() {
        let counts = |running, healthy| ReplicaCounts {
            desired: 1,
            running,
            healthy,
        };
        // (stopped, hub down, running, healthy) → phase
        let table = [
            (true, true, 1, 1, PubPhase::Stopped),
            (false, true, 1, 1, PubPhase::HubDown),
            (false, false, 1, 1, PubPhase::Running),
            (false, false, 1, 0, PubPhase::Starting),
            (false, false, 0, 0, PubPhase::Pending),
        ];
        for (stopped, hub_down, running, healthy, expected) in table {
            let mut status = Status::default();
            status.workload.replicas = Some(counts(running, healthy));
            status.hub.hub_unhealthy_since = hub_down.then(Utc::now);
            assert_eq!(
                phase(&status, stopped),
                expected,
                "stopped {stopped}, hub down {hub_down}, {running} running, {healthy} healthy"
            );
        }
    }
}
