//! A CronJob's decisions besides its job (which `plan` decides as for every kind): status,
//! events and when to look again, from one snapshot of what was observed with one `now`. Pure;
//! `controller/src/reconcile/cronjob.rs` observes and carries the result out.
//!
//! A CronJob as a Nomad periodic batch job: Nomad launches `<id>/periodic-<time>` children on
//! the schedule; `suspend` disables the periodic block without touching past runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::kinds::ConcurrencyPolicy;
use crds::status::CronRun;
use crds::{ConditionType, CronJob, CronJobSpec, Resource, Status};
use serde_json::{json, Map};

use crate::effects::{Effects, PlannedEvent, Requeue};
use crate::meta::job_meta;
use crate::nomad_job::Job;
use crate::render::{job, nanos, placement, task, JobParts, Shared};
use crate::schedule::next_run;
use crate::status::{record_rejection, record_written, set_condition, Rejection, Written};

pub fn render_cronjob(cron: &CronJob) -> Job {
    let spec = &cron.spec;
    let object = cron.object_ref();
    let (datacenters, node_pool, constraints) = placement(&spec.placement);
    let mut fields = Map::new();
    fields.insert("Datacenters".into(), datacenters);
    fields.insert("Constraints".into(), constraints);
    fields.insert(
        "Periodic".into(),
        json!({
            "Enabled": !spec.suspend,
            "SpecType": "cron",
            "Specs": [spec.schedule.trim()],
            "TimeZone": spec.time_zone,
            "ProhibitOverlap": spec.concurrency_policy == ConcurrencyPolicy::Forbid,
        }),
    );
    if let Some(pool) = node_pool {
        fields.insert("NodePool".into(), json!(pool));
    }
    let parts = JobParts {
        object: &object,
        job_type: "batch",
        meta: job_meta(&Resource::CronJob(cron.clone())),
        fields,
        group: json!({
            "Name": CronJobSpec::GROUP,
            "Count": 1,
            // A failed run is retried in place once, then reported; the next run is the retry.
            "RestartPolicy": {"Attempts": 1, "Interval": nanos(std::time::Duration::from_secs(600)), "Delay": nanos(std::time::Duration::from_secs(15)), "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [task(CronJobSpec::GROUP, spec.task.container(), &[])],
        }),
    };
    // A cron job's runs are not stopped by `nomarch stop`: `spec.suspend` stops its launches.
    job(
        parts,
        Shared {
            volumes: &spec.volumes,
            env: &spec.task.env,
            overrides: &spec.nomad,
            stopped: false,
        },
    )
}

/// Runs kept in status.
pub const RECENT_RUNS: usize = 5;
/// Look again at least this often while runs are active.
pub const ACTIVE_RECHECK: Duration = Duration::from_secs(5);
/// And at least this often otherwise (the next run may be far off).
pub const IDLE_RECHECK: Duration = Duration::from_secs(300);

/// One launched run, from its child job (`<id>/periodic-<time>`) and the job's summary of the
/// task group's allocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRun {
    pub job: String,
    pub submitted: DateTime<Utc>,
    /// Nomad's job status: pending, running or dead.
    pub status: String,
    pub complete: u64,
    pub failed: u64,
    pub lost: u64,
}

impl ChildRun {
    /// Running while the child job is; otherwise failed if any allocation failed or was lost,
    /// succeeded if one completed.
    pub fn outcome(&self) -> &'static str {
        match self.status.as_str() {
            "pending" | "running" => "Running",
            _ if self.failed > 0 || self.lost > 0 => "Failed",
            _ if self.complete > 0 => "Succeeded",
            _ => "Unknown",
        }
    }
}

/// Everything the decisions read.
pub struct CronSnapshot<'a> {
    pub cron: &'a CronJob,
    pub previous: Option<&'a Status>,
    /// The periodic job is registered and not stopped.
    pub registered: bool,
    pub written: Option<Written>,
    pub rejected: Option<&'a Rejection>,
    pub runs: Vec<ChildRun>,
    pub now: DateTime<Utc>,
}

/// What the reconcile does besides keeping the job: the status, a Warning per failed run not
/// reported before, and when to look again (there is nothing to heal).
pub fn compute(snapshot: CronSnapshot<'_>) -> Effects {
    let mut runs = snapshot.runs.clone();
    runs.sort_by_key(|r| std::cmp::Reverse(r.submitted));
    let events = failures_not_reported(snapshot.previous, &runs);
    let mut status = status(&snapshot, &runs);
    record_rejection(&mut status, snapshot.rejected, snapshot.now);
    let spec = &snapshot.cron.spec;
    let active = runs.iter().any(|r| r.outcome() == "Running");
    let until_next = next_run(&spec.schedule, &spec.time_zone, snapshot.now)
        .filter(|_| !spec.suspend)
        .and_then(|next| (next - snapshot.now).to_std().ok())
        .map(|d| d + Duration::from_secs(1));
    // Look again when the next run is due (to report it), sooner while runs are active.
    let requeue = match (active, until_next) {
        (true, _) => ACTIVE_RECHECK,
        (false, Some(wait)) => wait.min(IDLE_RECHECK),
        (false, None) => IDLE_RECHECK,
    };
    Effects::without_healing(status, events, Requeue::After(requeue))
}

/// A Warning for each failed run newer than the newest one status says was reported.
fn failures_not_reported(
    previous: Option<&Status>,
    newest_first: &[ChildRun],
) -> Vec<PlannedEvent> {
    let seen = previous.and_then(|s| s.cron.last_reported_failure.as_deref());
    newest_first
        .iter()
        .filter(|r| r.outcome() == "Failed")
        .take_while(|r| seen.is_none_or(|s| s < r.job.as_str()))
        .map(|r| PlannedEvent::warning("RunFailed", format!("run {} failed", r.job)))
        .collect()
}

fn status(snapshot: &CronSnapshot<'_>, newest_first: &[ChildRun]) -> Status {
    let (cron, previous, now) = (snapshot.cron, snapshot.previous, snapshot.now);
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = Some(cron.metadata.generation);
    let (reason, message) = match (snapshot.registered, cron.spec.suspend) {
        (false, _) => (
            "JobMissing",
            "the periodic job is not registered yet".to_string(),
        ),
        (true, true) => ("Suspended", "no new runs are launched".to_string()),
        (true, false) => (
            "Scheduled",
            format!("runs on `{}` ({})", cron.spec.schedule, cron.spec.time_zone),
        ),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Ready,
        snapshot.registered,
        reason,
        message,
        now,
    );
    let cron_status = &mut status.cron;
    cron_status.last_schedule_time = newest_first.first().map(|last| last.submitted);
    if let Some(success) = newest_first.iter().find(|r| r.outcome() == "Succeeded") {
        cron_status.last_successful_time = Some(success.submitted);
    }
    if let Some(failed) = newest_first.iter().find(|r| r.outcome() == "Failed") {
        cron_status.last_reported_failure = Some(failed.job.clone());
    }
    cron_status.active = Some(
        newest_first
            .iter()
            .filter(|r| r.outcome() == "Running")
            .map(|r| r.job.clone())
            .collect(),
    );
    cron_status.recent_runs = Some(
        newest_first
            .iter()
            .take(RECENT_RUNS)
            .map(|r| CronRun {
                job: r.job.clone(),
                scheduled: r.submitted,
                outcome: r.outcome().to_string(),
            })
            .collect(),
    );
    cron_status.next_run =
        next_run(&cron.spec.schedule, &cron.spec.time_zone, now).filter(|_| !cron.spec.suspend);
    if let Some(written) = &snapshot.written {
        record_written(&mut status, written);
    }
    // `nextRun` moves with the clock; keep it from making every reconcile a status write when
    // nothing else changed and the stored next run is still ahead.
    if let Some(previous) = previous {
        let stored_next = previous.cron.next_run;
        let mut unchanged = previous.clone();
        unchanged.cron.next_run = status.cron.next_run;
        if stored_next.is_some_and(|t| t > now) && unchanged == status {
            return previous.clone();
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(schedule: &str, suspend: bool) -> CronJob {
        let text = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"{schedule}\"\n  suspend: {suspend}\n  task:\n    image: busybox:1\n"
        );
        match crds::parse_str("tick.yaml", &text)
            .unwrap()
            .remove(0)
            .resource
        {
            crds::Resource::CronJob(cron) => cron,
            _ => unreachable!(),
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-06T10:{minute:02}:30Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn run(n: u32, status: &str, complete: u64, failed: u64) -> ChildRun {
        ChildRun {
            job: format!("tick/periodic-{n:04}"),
            submitted: at(n),
            status: status.into(),
            complete,
            failed,
            lost: 0,
        }
    }

    fn snapshot<'a>(
        cron: &'a CronJob,
        previous: Option<&'a Status>,
        runs: Vec<ChildRun>,
        now: DateTime<Utc>,
    ) -> CronSnapshot<'a> {
        CronSnapshot {
            cron,
            previous,
            registered: true,
            written: None,
            rejected: None,
            runs,
            now,
        }
    }

    #[test]
    fn outcomes_come_from_the_child_jobs() {
        let cases = [
            (run(1, "running", 0, 0), "Running"),
            (run(1, "pending", 0, 0), "Running"),
            (run(1, "dead", 1, 0), "Succeeded"),
            (run(1, "dead", 1, 1), "Failed"),
            (
                ChildRun {
                    lost: 1,
                    ..run(1, "dead", 0, 0)
                },
                "Failed",
            ),
            (run(1, "dead", 0, 0), "Unknown"),
        ];
        for (child, outcome) in cases {
            assert_eq!(child.outcome(), outcome, "{child:?}");
        }
    }

    /// Status keeps the newest runs first; each failure is said once, across reconciles.
    #[test]
    fn each_failure_is_said_once_and_runs_are_newest_first() {
        let tick = cron("* * * * *", false);
        let runs = vec![
            run(1, "dead", 1, 0),
            run(3, "dead", 0, 1),
            run(2, "dead", 0, 1),
            run(4, "running", 0, 0),
        ];
        let first = compute(snapshot(&tick, None, runs.clone(), at(4)));
        let said: Vec<&str> = first.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            said,
            [
                "run tick/periodic-0003 failed",
                "run tick/periodic-0002 failed"
            ]
        );
        let cron_status = &first.status.cron;
        assert_eq!(
            cron_status.active,
            Some(vec!["tick/periodic-0004".to_string()])
        );
        let recent: Vec<&str> = cron_status
            .recent_runs
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.outcome.as_str())
            .collect();
        assert_eq!(recent, ["Running", "Failed", "Failed", "Succeeded"]);
        assert_eq!(cron_status.last_successful_time, Some(at(1)));
        assert_eq!(
            first.requeue,
            Requeue::After(ACTIVE_RECHECK),
            "a run is active"
        );

        let mut later = runs;
        later.push(run(5, "dead", 0, 1));
        let second = compute(snapshot(&tick, Some(&first.status), later, at(5)));
        let said: Vec<&str> = second.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(said, ["run tick/periodic-0005 failed"], "only the new one");
    }

    /// Suspended: Ready says so, no next run, and it looks again only at the idle pace; a
    /// schedule's next run brings the next look forward; an unchanged status is not rewritten
    /// because the clock moved.
    #[test]
    fn the_next_look_follows_the_schedule_and_suspend() {
        let suspended = cron("* * * * *", true);
        let plan = compute(snapshot(&suspended, None, vec![], at(0)));
        assert_eq!(
            plan.status.condition(ConditionType::Ready).unwrap().reason,
            "Suspended"
        );
        assert_eq!(plan.status.cron.next_run, None);
        assert_eq!(plan.requeue, Requeue::After(IDLE_RECHECK));

        let every_minute = cron("* * * * *", false);
        let plan = compute(snapshot(&every_minute, None, vec![], at(0)));
        assert_eq!(
            plan.requeue,
            Requeue::After(Duration::from_secs(31)),
            "30 s to the minute, and one more"
        );
        let again = compute(snapshot(
            &every_minute,
            Some(&plan.status),
            vec![],
            at(0) + chrono::Duration::seconds(10),
        ));
        assert_eq!(again.status, plan.status, "nothing but the clock moved");

        let missing = CronSnapshot {
            registered: false,
            ..snapshot(&every_minute, None, vec![], at(0))
        };
        let plan = compute(missing);
        assert!(!plan.status.is_true(ConditionType::Ready));
    }
}
