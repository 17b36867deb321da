//! Status from observations: replica counts and the Ready / Progressing / Degraded conditions.
//! Pure; a condition's `lastTransitionTime` only moves when its status does.

use chrono::{DateTime, Utc};
use crds::status::{JobRecord, ReplicaCounts, RollbackRecord};
use crds::{Condition, ConditionStatus, ConditionType, Status};

/// One allocation, as status needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocView {
    pub id: String,
    pub node_id: String,
    pub client_status: String,
    pub desired_status: String,
    /// From health checks: `Some(true)` passing, `Some(false)` failing, `None` no checks or
    /// no result yet.
    pub checks_passing: Option<bool>,
}

impl AllocView {
    pub fn is_running(&self) -> bool {
        self.desired_status == "run" && self.client_status == "running"
    }

    pub fn is_healthy(&self, has_checks: bool) -> bool {
        self.is_running()
            && if has_checks {
                self.checks_passing == Some(true)
            } else {
                self.checks_passing != Some(false)
            }
    }
}

/// What Nomad holds for the object's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    pub id: String,
    pub version: u64,
    pub job_modify_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicas {
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
}

pub fn replicas(desired: u32, allocs: &[AllocView], has_checks: bool) -> Replicas {
    let running = allocs.iter().filter(|a| a.is_running()).count() as u32;
    let healthy = allocs.iter().filter(|a| a.is_healthy(has_checks)).count() as u32;
    Replicas {
        desired,
        running,
        healthy,
    }
}

/// Sets a condition, keeping its transition time when its status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: bool,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    set_condition_to(conditions, type_, status.into(), reason, message, now);
}

/// As [`set_condition`], for any status, `Unknown` included.
fn set_condition_to(
    conditions: &mut Vec<Condition>,
    type_: ConditionType,
    status: ConditionStatus,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now;
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message;
        }
        None => conditions.push(Condition {
            type_,
            status,
            reason: reason.to_string(),
            message,
            last_transition_time: now,
        }),
    }
}

/// The status of a workload object (App or Pub) from its job and allocations.
#[allow(clippy::too_many_arguments)]
pub fn workload_status(
    previous: Option<&Status>,
    generation: i64,
    job: Option<&JobView>,
    last_written: Option<&Written>,
    replicas: &Replicas,
    failing: Option<(&str, String)>,
    now: DateTime<Utc>,
) -> Status {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = Some(generation);
    let ready = job.is_some() && replicas.healthy >= replicas.desired;
    let (ready_reason, ready_message) = match (job, ready) {
        (None, _) => (
            "JobMissing",
            "the Nomad job is not registered yet".to_string(),
        ),
        (Some(_), true) => (
            "ReplicasHealthy",
            format!("{}/{} replicas healthy", replicas.healthy, replicas.desired),
        ),
        (Some(_), false) => (
            "ReplicasNotReady",
            format!("{}/{} replicas healthy", replicas.healthy, replicas.desired),
        ),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        ready,
        ready_reason,
        ready_message,
        now,
    );
    let progressing = replicas.running != replicas.desired;
    let progress_message = format!("{}/{} replicas running", replicas.running, replicas.desired);
    set_condition(
        &mut status.conditions,
        ConditionType::Progressing,
        progressing,
        if progressing { "Rollout" } else { "Stable" },
        progress_message,
        now,
    );
    let (degraded, reason, message) = match failing {
        Some((reason, message)) => (true, reason, message),
        None => (false, "Healthy", "no failing checks".to_string()),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Degraded,
        degraded,
        reason,
        message,
        now,
    );
    status.workload.replicas = Some(ReplicaCounts {
        desired: replicas.desired,
        running: replicas.running,
        healthy: replicas.healthy,
    });
    status.workload.job = job.map(|job| JobRecord {
        id: job.id.clone(),
        version: job.version,
        job_modify_index: job.job_modify_index,
    });
    if let Some(written) = last_written {
        record_written(&mut status, written);
    }
    status
}

/// An object asked to run nothing (`spec.stopped`): not Ready and not Degraded (nothing is
/// wrong), `Progressing` while instances are still being stopped, and `Stopped` once none runs.
/// Without `spec.stopped` the `Stopped` condition is dropped: it is only present while asked.
pub fn mark_stopped(status: &mut Status, stopped: bool, running: u32, now: DateTime<Utc>) {
    if !stopped {
        status
            .conditions
            .retain(|c| c.type_ != ConditionType::Stopped);
        return;
    }
    let (reason, message) = if running == 0 {
        (
            "Stopped",
            "stopped: no instance runs; `nomarch start` runs it again".to_string(),
        )
    } else {
        (
            "Stopping",
            format!("stopping: {running} instance(s) still running"),
        )
    };
    let conditions = &mut status.conditions;
    set_condition(
        conditions,
        ConditionType::Stopped,
        running == 0,
        reason,
        message.clone(),
        now,
    );
    set_condition(
        conditions,
        ConditionType::Ready,
        false,
        reason,
        message.clone(),
        now,
    );
    set_condition(
        conditions,
        ConditionType::Progressing,
        running > 0,
        reason,
        message,
        now,
    );
    set_condition(
        conditions,
        ConditionType::Degraded,
        false,
        reason,
        "nothing is expected to run".into(),
        now,
    );
}

/// Health could not be read (Consul unreachable): `Ready` is `Unknown` with reason
/// `ConsulUnavailable`, since nothing says the instances are unhealthy either. The next
/// reconcile that reads health sets it again, so it clears by itself.
pub fn mark_health_unknown(
    status: &mut Status,
    replicas: &Replicas,
    detail: &str,
    now: DateTime<Utc>,
) {
    set_condition_to(
        &mut status.conditions,
        ConditionType::Ready,
        ConditionStatus::Unknown,
        "ConsulUnavailable",
        format!(
            "{}/{} replicas running; health unknown: {detail}",
            replicas.running, replicas.desired
        ),
        now,
    );
}

/// What nomarch last registered for an object: the `JobModifyIndex` Nomad gave that write and
/// the fingerprint of the job it sent ([`crate::fingerprint`]). Kept in status, so the job's
/// meta can stay the same across generations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub job_modify_index: u64,
    pub fingerprint: String,
}

/// The last write recorded in a status. A status from before fingerprints were kept has none:
/// then nothing is known, and the plan asks Nomad whether the job differs.
pub fn last_written(status: Option<&Status>) -> Option<Written> {
    let workload = &status?.workload;
    Some(Written {
        job_modify_index: workload.last_written_job_modify_index?,
        fingerprint: workload.last_written_job_fingerprint.clone()?,
    })
}

/// A job Nomad refused (invalid, or not acceptable as it is): its fingerprint and Nomad's
/// words. Kept in status, so the same job is not sent again; a different desired job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub fingerprint: String,
    pub message: String,
}

/// The refusal on record in a status, if any.
pub fn rejection(status: Option<&Status>) -> Option<Rejection> {
    let status = status?;
    let fingerprint = status.workload.rejected_job_fingerprint.clone()?;
    let message = status
        .condition(ConditionType::Invalid)
        .filter(|c| c.status == ConditionStatus::True)
        .map_or_else(String::new, |c| c.message.clone());
    Some(Rejection {
        fingerprint,
        message,
    })
}

/// Shows a refusal in status (`Invalid` True, reason `RefusedByNomad`, Nomad's message), or
/// clears one that no longer applies. Objects that never had one get no `Invalid` condition.
pub fn record_rejection(status: &mut Status, rejection: Option<&Rejection>, now: DateTime<Utc>) {
    match rejection {
        Some(rejection) => {
            status.workload.rejected_job_fingerprint = Some(rejection.fingerprint.clone());
            set_condition(
                &mut status.conditions,
                ConditionType::Invalid,
                true,
                "RefusedByNomad",
                rejection.message.clone(),
                now,
            );
        }
        None => {
            status.workload.rejected_job_fingerprint = None;
            if status.condition(ConditionType::Invalid).is_some() {
                set_condition(
                    &mut status.conditions,
                    ConditionType::Invalid,
                    false,
                    "Accepted",
                    "Nomad accepted the job".into(),
                    now,
                );
            }
        }
    }
}

/// A rollout Nomad rolled back (its deployment failed and `auto_revert` registered the last
/// stable version): which job, which generation, Nomad's words, and the value of the retry
/// annotation when it happened. Kept in status, so the failed job is not registered again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    pub fingerprint: String,
    pub generation: i64,
    pub message: String,
    /// [`RETRY_ANNOTATION`]'s value when the rollback was seen; another value asks for a retry.
    pub retry_token: String,
}

/// Setting this annotation to a new value (a time, a counter) asks nomarch to register a job
/// that Nomad rolled back once more, without changing the spec.
pub const RETRY_ANNOTATION: &str = "nomarch.io/retry";

/// The rollback on record in a status, if any.
pub fn rollback(status: Option<&Status>) -> Option<Rollback> {
    let record = status?.workload.rollback.as_ref()?;
    Some(Rollback {
        fingerprint: record.job_fingerprint.clone(),
        generation: record.generation,
        message: record.message.clone(),
        retry_token: record.retry_token.clone(),
    })
}

/// Shows a rollback in status (`Degraded` True, reason `RolledBack`, naming the generation and
/// Nomad's reason), or forgets one that no longer applies. Call after the status is computed:
/// it overrides `Degraded`, keeping the transition time `previous` had for the same rollback
/// (so an unchanged hold writes no new status).
pub fn record_rollback(
    status: &mut Status,
    previous: Option<&Status>,
    rollback: Option<&Rollback>,
    now: DateTime<Utc>,
) {
    let Some(rollback) = rollback else {
        status.workload.rollback = None;
        return;
    };
    let since = previous
        .and_then(|p| p.condition(ConditionType::Degraded))
        .filter(|c| c.status == ConditionStatus::True && c.reason == "RolledBack")
        .map_or(now, |c| c.last_transition_time);
    status.workload.rollback = Some(RollbackRecord {
        job_fingerprint: rollback.fingerprint.clone(),
        generation: rollback.generation,
        message: rollback.message.clone(),
        retry_token: rollback.retry_token.clone(),
    });
    set_condition(
        &mut status.conditions,
        ConditionType::Degraded,
        true,
        "RolledBack",
        rollback.describe(),
        since,
    );
}

impl Rollback {
    pub fn describe(&self) -> String {
        format!(
            "generation {} failed to roll out and Nomad rolled back: {}; held until the spec changes or the {RETRY_ANNOTATION} annotation does",
            self.generation, self.message
        )
    }
}

/// Puts a write on record in a status.
pub fn record_written(status: &mut Status, written: &Written) {
    status.workload.last_written_job_modify_index = Some(written.job_modify_index);
    status.workload.last_written_job_fingerprint = Some(written.fingerprint.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(client: &str, checks: Option<bool>) -> AllocView {
        AllocView {
            id: "a".into(),
            node_id: "n".into(),
            client_status: client.into(),
            desired_status: "run".into(),
            checks_passing: checks,
        }
    }

    /// Stopping is not a failure: not Ready, not Degraded, `Stopped` only once nothing runs,
    /// and the condition goes away when the object is started again.
    #[test]
    fn a_stopped_object_is_stopped_once_nothing_runs() {
        let now = Utc::now();
        let mut status = Status::default();
        mark_stopped(&mut status, true, 2, now);
        let state = |s: &Status, t| s.condition(t).map(|c| (c.status, c.reason.clone()));
        assert_eq!(
            state(&status, ConditionType::Stopped),
            Some((ConditionStatus::False, "Stopping".into()))
        );
        assert!(status.is_true(ConditionType::Progressing));
        mark_stopped(&mut status, true, 0, now);
        assert!(status.is_true(ConditionType::Stopped));
        assert!(!status.is_true(ConditionType::Ready));
        assert!(!status.is_true(ConditionType::Degraded));
        assert!(!status.is_true(ConditionType::Progressing));
        mark_stopped(&mut status, false, 0, now);
        assert_eq!(status.condition(ConditionType::Stopped), None);
    }

    #[test]
    fn ready_needs_every_replica_healthy() {
        let allocs = [
            alloc("running", Some(true)),
            alloc("running", Some(false)),
            alloc("pending", None),
        ];
        let counts = replicas(3, &allocs, true);
        assert_eq!(
            counts,
            Replicas {
                desired: 3,
                running: 2,
                healthy: 1
            }
        );
        let now = Utc::now();
        let job = JobView {
            id: "web".into(),
            version: 1,
            job_modify_index: 9,
        };
        let written = Written {
            job_modify_index: 9,
            fingerprint: "0123456789abcdef".into(),
        };
        let status = workload_status(None, 2, Some(&job), Some(&written), &counts, None, now);
        let ready = status.condition(ConditionType::Ready).unwrap();
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.message, "1/3 replicas healthy");
        assert!(status.is_true(ConditionType::Progressing));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(last_written(Some(&status)), Some(written));
        let mut older = status.clone();
        older.workload.last_written_job_fingerprint = None;
        assert_eq!(
            last_written(Some(&older)),
            None,
            "no fingerprint: nothing known"
        );
    }

    #[test]
    fn transition_times_move_only_on_change() {
        let earlier = Utc::now() - chrono::Duration::minutes(5);
        let now = Utc::now();
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            true,
            "ReplicasHealthy",
            "1/1".into(),
            earlier,
        );
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            true,
            "ReplicasHealthy",
            "1/1".into(),
            now,
        );
        assert_eq!(conditions[0].last_transition_time, earlier);
        set_condition(
            &mut conditions,
            ConditionType::Ready,
            false,
            "ReplicasNotReady",
            "0/1".into(),
            now,
        );
        assert_eq!(conditions[0].last_transition_time, now);
    }

    /// A rollback shows as `Degraded`/`RolledBack` over whatever the status computed, and an
    /// unchanged one keeps its transition time, so holding it writes nothing new.
    #[test]
    fn a_rollback_overrides_degraded_and_keeps_its_time() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let t1 = DateTime::from_timestamp(2_000, 0).unwrap();
        let rollback = Rollback {
            fingerprint: "f1".into(),
            generation: 2,
            message: "Failed due to progress deadline - rolling back to job version 0".into(),
            retry_token: String::new(),
        };
        let healthy = |now| {
            let mut s = Status::default();
            set_condition(
                &mut s.conditions,
                ConditionType::Degraded,
                false,
                "Healthy",
                "ok".into(),
                now,
            );
            s
        };
        let mut first = healthy(t0);
        record_rollback(&mut first, None, Some(&rollback), t0);
        let degraded = first.condition(ConditionType::Degraded).unwrap().clone();
        assert_eq!(
            (degraded.status, degraded.reason.as_str()),
            (ConditionStatus::True, "RolledBack")
        );
        assert!(
            degraded.message.contains("generation 2"),
            "{}",
            degraded.message
        );
        assert_eq!(super::rollback(Some(&first)), Some(rollback.clone()));

        let mut again = healthy(t1);
        record_rollback(&mut again, Some(&first), Some(&rollback), t1);
        assert_eq!(again, first, "the same hold, the same status");

        let mut cleared = healthy(t1);
        cleared.workload = first.workload.clone();
        record_rollback(&mut cleared, Some(&first), None, t1);
        assert_eq!(super::rollback(Some(&cleared)), None);
    }

    #[test]
    fn without_checks_running_is_healthy() {
        assert_eq!(replicas(1, &[alloc("running", None)], false).healthy, 1);
        assert_eq!(
            replicas(1, &[alloc("running", None)], true).healthy,
            0,
            "with checks, no result yet is not healthy"
        );
    }
}
