//! A NomadJob's decisions besides its job: the workload's look (nothing is healed: the job's
//! own `check_restart` does what its authors asked), Nomad's refusal or rollback on record,
//! `Ready` said once, and when to look again; and a job that cannot be this object's at all.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::{NomadJob, ObjectRef};
use serde_json::Value;

use super::{look_and_record, settled, JobOutcome};
use crate::effects::{Effects, PlannedEvent, Requeue};
use crate::fingerprint::fingerprint;
use crate::render::nomadjob::{deploys, desired_instances};
use crate::status::{record_rejection, rejection, Rejection};
use crate::workload::{WorkloadSnapshot, WorkloadSpec};

/// While a job is converging, look again this often even without a trigger.
pub const CONVERGING_RECHECK: Duration = Duration::from_secs(5);

/// What the look judges a NomadJob against: the instances its job asks for (the sum of its
/// groups' counts), and whether Nomad makes deployments for it.
pub fn workload_spec<'a>(
    object: &'a NomadJob,
    key: &'a ObjectRef,
    desired_job: &Value,
) -> WorkloadSpec<'a> {
    let stopped = object.spec.stopped;
    WorkloadSpec {
        object: key,
        generation: object.metadata.generation,
        desired: if stopped {
            0
        } else {
            desired_instances(desired_job)
        },
        stopped,
        // Checks live in the job as people wrote them; nomarch heals none of them.
        health: None,
        max_unavailable: 0,
        deploys: deploys(desired_job) && !stopped,
    }
}

/// Everything a NomadJob's decisions read; `workload.previous` is its stored status.
pub struct NomadJobSnapshot<'a> {
    pub object: &'a NomadJob,
    pub job: &'a JobOutcome,
    pub workload: WorkloadSnapshot<'a>,
}

pub fn compute(snapshot: &NomadJobSnapshot<'_>) -> Effects {
    let look = look_and_record(
        &snapshot.workload,
        snapshot.object.status.as_ref(),
        snapshot.job,
    );
    let settled = settled(&look.status);
    let requeue = match snapshot.job.rejected {
        // Refused by Nomad: nothing changes until the object does.
        Some(_) => Requeue::OnChange,
        None if settled => Requeue::OnChange,
        None => Requeue::After(CONVERGING_RECHECK),
    };
    look.into_effects(requeue)
}

/// A job that cannot be this object's (Nomad cannot parse it, or it names another job):
/// `Invalid` in status with the reason, one Warning per distinct text, nothing written, and
/// nothing retried until the object changes.
pub fn unreadable(object: &NomadJob, message: String, now: DateTime<Utc>) -> Effects {
    let stored = object.status.as_ref();
    let mut status = stored.cloned().unwrap_or_default();
    status.observed_generation = Some(object.metadata.generation);
    let refusal = Rejection {
        fingerprint: fingerprint(&Value::String(message.clone())),
        message: message.clone(),
    };
    let said_before = rejection(stored).is_some_and(|r| r.fingerprint == refusal.fingerprint);
    record_rejection(&mut status, Some(&refusal), now);
    let events = (!said_before)
        .then(|| PlannedEvent::warning("InvalidJob", message))
        .into_iter()
        .collect();
    Effects::without_healing(status, events, Requeue::OnChange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::{ConditionType, Status};

    fn object(status: Option<Status>) -> NomadJob {
        let mut object: NomadJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "nomarch.io/v1", "kind": "NomadJob",
            "metadata": {"name": "batch", "namespace": "default", "generation": 2},
            "spec": {"job": {"ID": "batch", "Type": "batch", "TaskGroups": []}},
        }))
        .expect("a NomadJob");
        object.status = status;
        object
    }

    #[test]
    fn an_unreadable_job_is_invalid_and_said_once_per_text() {
        let first = unreadable(&object(None), "line 3: unexpected }".into(), Utc::now());
        assert!(first.status.is_true(ConditionType::Invalid));
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.requeue, Requeue::OnChange);
        let again = unreadable(
            &object(Some(first.status.clone())),
            "line 3: unexpected }".into(),
            Utc::now(),
        );
        assert!(again.events.is_empty(), "the same text is not said again");
        let other = unreadable(
            &object(Some(first.status)),
            "line 4: unexpected {".into(),
            Utc::now(),
        );
        assert_eq!(other.events[0].reason, "InvalidJob");
    }
}
