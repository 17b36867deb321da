//! The CronJob reconciler: keep the periodic job as rendered (suspend flips `Periodic.Enabled`,
//! history stays), and report the runs Nomad launched: last schedule, last success, active runs,
//! recent outcomes and the next run. A failed run is a Warning event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::status::CronRun;
use crds::{ConditionType, CronJob, ObjectRef, Resource, Status};
use reconcilers::meta::job_id;
use reconcilers::render::cronjob::{render_cronjob, GROUP};
use reconcilers::schedule::next_run;
use reconcilers::status::set_condition;
use reconcilers::status::{record_rejection, record_written, Written};
use serde_json::Value;

use super::job::{deregister_if_ours, ensure_job, save_status};
use super::ReconcileError;
use crate::clients::nomad_types::{Job, JobStub};
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use crate::store::EventType;

/// Runs kept in status.
const RECENT_RUNS: usize = 5;
/// Look again at least this often while runs are active.
const ACTIVE_RECHECK: Duration = Duration::from_secs(5);

/// One launched run, from its child job.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    job: String,
    submitted: DateTime<Utc>,
    outcome: &'static str,
}

fn run_of(child: &JobStub) -> Run {
    let submitted = child
        .extra
        .get("SubmitTime")
        .and_then(Value::as_i64)
        .map(DateTime::from_timestamp_nanos)
        .unwrap_or_default();
    let counts = &child
        .extra
        .get("JobSummary")
        .cloned()
        .unwrap_or(Value::Null)["Summary"][GROUP];
    let count = |field: &str| counts.get(field).and_then(Value::as_u64).unwrap_or(0);
    let outcome = match child.status.as_str() {
        "pending" | "running" => "Running",
        _ if count("Failed") > 0 || count("Lost") > 0 => "Failed",
        _ if count("Complete") > 0 => "Succeeded",
        _ => "Unknown",
    };
    Run {
        job: child.id.clone(),
        submitted,
        outcome,
    }
}

pub async fn reconcile(ctx: &Context, key: &ObjectRef) -> Result<Outcome, ReconcileError> {
    let Some(Resource::CronJob(cron)) = ctx.cache.get(key) else {
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let desired: Job =
        serde_json::from_value(render_cronjob(&cron)).expect("rendered jobs decode as jobs");
    let previous = cron.status.clone();
    let ensured = ensure_job(
        ctx,
        key,
        &desired,
        &cron.metadata,
        previous.as_ref(),
        Vec::new(),
    )
    .await?;
    let prefix = format!("{}/periodic-", job_id(key));
    let children = ctx
        .nomad
        .jobs(QueryOptions::namespace(&key.namespace).param("prefix", &prefix))
        .await?
        .value;
    let mut runs: Vec<Run> = children.iter().map(run_of).collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.submitted));
    report_failures(ctx, key, previous.as_ref(), &runs).await;
    let now = Utc::now();
    let mut status = cron_status(
        &cron,
        previous.as_ref(),
        ensured.job.as_ref(),
        ensured.written,
        &runs,
        now,
    );
    record_rejection(&mut status, ensured.rejected.as_ref(), now);
    save_status(ctx, key, previous.as_ref(), &status).await?;
    let active = runs.iter().any(|r| r.outcome == "Running");
    let until_next = next_run(&cron.spec.schedule, &cron.spec.time_zone, now)
        .filter(|_| !cron.spec.suspend)
        .and_then(|next| (next - now).to_std().ok())
        .map(|d| d + Duration::from_secs(1));
    // Look again when the next run is due (to report it), sooner while runs are active.
    let recheck = match (active, until_next) {
        (true, _) => ACTIVE_RECHECK,
        (false, Some(wait)) => wait.min(Duration::from_secs(300)),
        (false, None) => Duration::from_secs(300),
    };
    Ok(Outcome::RequeueAfter(recheck))
}

/// A Warning for each failed run not reported before (status remembers the newest one seen).
async fn report_failures(ctx: &Context, key: &ObjectRef, previous: Option<&Status>, runs: &[Run]) {
    let seen = previous.and_then(|s| s.cron.last_reported_failure.clone());
    for run in runs.iter().filter(|r| r.outcome == "Failed") {
        if seen.as_deref().is_some_and(|s| s >= run.job.as_str()) {
            break;
        }
        ctx.event(
            key,
            EventType::Warning,
            "RunFailed",
            format!("run {} failed", run.job),
        )
        .await;
    }
}

fn cron_status(
    cron: &CronJob,
    previous: Option<&Status>,
    job: Option<&Job>,
    written: Option<Written>,
    runs: &[Run],
    now: DateTime<Utc>,
) -> Status {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = Some(cron.metadata.generation);
    let registered = job.is_some_and(|j| !j.stop.unwrap_or(false));
    let (reason, message) = match (registered, cron.spec.suspend) {
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
        registered,
        reason,
        message,
        now,
    );
    let cron_status = &mut status.cron;
    cron_status.last_schedule_time = runs.first().map(|last| last.submitted);
    if let Some(success) = runs.iter().find(|r| r.outcome == "Succeeded") {
        cron_status.last_successful_time = Some(success.submitted);
    }
    if let Some(failed) = runs.iter().find(|r| r.outcome == "Failed") {
        cron_status.last_reported_failure = Some(failed.job.clone());
    }
    let active = runs
        .iter()
        .filter(|r| r.outcome == "Running")
        .map(|r| r.job.clone())
        .collect();
    cron_status.active = Some(active);
    let recent = runs
        .iter()
        .take(RECENT_RUNS)
        .map(|r| CronRun {
            job: r.job.clone(),
            scheduled: r.submitted,
            outcome: r.outcome.to_string(),
        })
        .collect();
    cron_status.recent_runs = Some(recent);
    cron_status.next_run =
        next_run(&cron.spec.schedule, &cron.spec.time_zone, now).filter(|_| !cron.spec.suspend);
    if let Some(written) = &written {
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

    fn child(id: &str, status: &str, complete: u64, failed: u64, submitted: i64) -> JobStub {
        serde_json::from_value(serde_json::json!({
            "ID": id, "Status": status, "SubmitTime": submitted,
            "JobSummary": {"Summary": {GROUP: {"Complete": complete, "Failed": failed, "Lost": 0}}},
        }))
        .unwrap()
    }

    #[test]
    fn runs_are_read_from_child_jobs() {
        assert_eq!(
            run_of(&child("b/periodic-1", "running", 0, 0, 1)).outcome,
            "Running"
        );
        assert_eq!(
            run_of(&child("b/periodic-2", "dead", 1, 0, 2)).outcome,
            "Succeeded"
        );
        assert_eq!(
            run_of(&child("b/periodic-3", "dead", 0, 1, 3)).outcome,
            "Failed"
        );
    }
}
