//! The CronJob reconciler: keep the periodic job as rendered (suspend flips `Periodic.Enabled`,
//! history stays), and report the runs Nomad launched: last schedule, last success, active runs,
//! recent outcomes and the next run. A failed run is a Warning event. Observe (the job through
//! `ensure_job`, the child jobs) → `reconcilers::kind::cronjob::compute` → `execute.rs`.

use chrono::{DateTime, Utc};
use crds::CronJobSpec;
use crds::{ObjectRef, Resource};
use futures::future::BoxFuture;
use reconcilers::kind::cronjob::render_cronjob;
use reconcilers::kind::cronjob::{compute, ChildRun, CronSnapshot};
use reconcilers::meta::job_id;
use serde_json::Value;

use super::driver::{Desired, DiffError, DiffLook, Driver};
use super::execute::execute;
use super::heal::HealState;
use super::job::{deregister_if_ours, ensure_job};
use super::{AllKinds, ReconcileError};
use crate::clients::nomad_types::JobStub;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;

/// A child job as the decisions read it: its status and its group's allocation counts.
fn child_run(child: &JobStub) -> ChildRun {
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
        .unwrap_or(Value::Null)["Summary"][CronJobSpec::GROUP];
    let count = |field: &str| counts.get(field).and_then(Value::as_u64).unwrap_or(0);
    ChildRun {
        job: child.id.clone(),
        submitted,
        status: child.status.clone(),
        complete: count("Complete"),
        failed: count("Failed"),
        lost: count("Lost"),
    }
}

pub async fn reconcile(
    ctx: &Context,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    let Some(Resource::CronJob(cron)) = ctx.cache.get(key) else {
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let desired = render_cronjob(&cron);
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
    let effects = compute(CronSnapshot {
        cron: &cron,
        previous: previous.as_ref(),
        registered: ensured
            .job
            .as_ref()
            .is_some_and(|j| !j.stop.unwrap_or(false)),
        written: ensured.written,
        rejected: ensured.outcome.rejected.as_ref(),
        runs: children.iter().map(child_run).collect(),
        now: Utc::now(),
    });
    execute(ctx, heal, key, previous.as_ref(), effects).await
}

/// The CronJob's driver: its periodic job, as rendered.
pub struct CronJobs;

impl Driver for CronJobs {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>> {
        Box::pin(reconcile(ctx, &kinds.heal, key))
    }

    fn desired<'a>(&'a self, look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>> {
        Box::pin(async move {
            let cron = look.object::<crds::CronJobSpec>();
            Ok(Desired::job(render_cronjob(cron), Vec::new()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(id: &str, status: &str, complete: u64, failed: u64, submitted: i64) -> JobStub {
        serde_json::from_value(serde_json::json!({
            "ID": id, "Status": status, "SubmitTime": submitted,
            "JobSummary": {"Summary": {CronJobSpec::GROUP: {"Complete": complete, "Failed": failed, "Lost": 0}}},
        }))
        .unwrap()
    }

    #[test]
    fn runs_are_read_from_child_jobs() {
        assert_eq!(
            child_run(&child("b/periodic-1", "running", 0, 0, 1)).outcome(),
            "Running"
        );
        assert_eq!(
            child_run(&child("b/periodic-2", "dead", 1, 0, 2)).outcome(),
            "Succeeded"
        );
        let failed = child_run(&child("b/periodic-3", "dead", 0, 1, 3));
        assert_eq!(
            (failed.outcome(), failed.submitted.timestamp_nanos_opt()),
            ("Failed", Some(3))
        );
    }
}
