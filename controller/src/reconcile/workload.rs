//! What Apps, Pubs and NomadJobs observe once their job is settled, into one
//! [`WorkloadSnapshot`] with one `now`: the job's allocations (from the cache the triggers
//! keep, or Nomad when it is cold), their checks (when there is a health check and something
//! is live), and the deployments the rollout needs. The decisions are
//! `reconcilers::workload::look`'s.

use chrono::Utc;
use crds::Status;
use reconcilers::rollout::needs_refresh;
use reconcilers::status::{AllocView, JobView, Written};
use reconcilers::workload::{Checks, Deployments, WorkloadAlloc, WorkloadSnapshot, WorkloadSpec};

use super::ReconcileError;
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;

/// Reads what the look at `spec`'s workload needs. `previous` is the status the look starts
/// from; `job` and `written` come from keeping the job.
pub async fn observe<'a>(
    ctx: &Context,
    spec: WorkloadSpec<'a>,
    job: Option<&Job>,
    written: Option<Written>,
    previous: Option<&'a Status>,
) -> Result<WorkloadSnapshot<'a>, ReconcileError> {
    let namespace = &spec.object.namespace;
    let allocs = match job {
        Some(job) => match ctx.allocs.of_job(namespace, &job.id) {
            Some(cached) => cached,
            None => {
                ctx.nomad
                    .job_allocations(namespace, &job.id, QueryOptions::default())
                    .await?
                    .value
            }
        },
        None => Vec::new(),
    };
    // Consul failing does not stop the rest: the job is registered already, the allocations
    // come from Nomad, and only health is unknown (nothing is healed on unknown health).
    let checks = if spec.reads_checks() && allocs.iter().any(|a| a.is_live()) {
        let service = reconcilers::render::service_name(spec.object);
        match ctx.consul.checks_by_alloc(&service).await {
            Ok(checks) => Checks::Read(checks.into_iter().collect()),
            Err(e) if e.is_transient() => Checks::Unknown(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    } else {
        Checks::NotRead
    };
    let job_stopped = job.is_some_and(|j| j.stop.unwrap_or(false));
    let job_view = job.map(|j| JobView {
        id: j.id.clone(),
        version: j.version.unwrap_or(0),
        job_modify_index: j.job_modify_index.unwrap_or(0),
    });
    let running = job_view.as_ref().filter(|_| !job_stopped);
    let deployments = deployments(ctx, &spec, running, previous).await?;
    Ok(WorkloadSnapshot {
        spec,
        job: job_view,
        job_stopped,
        written,
        previous,
        allocs: allocs
            .into_iter()
            .map(|a| WorkloadAlloc {
                view: AllocView {
                    id: a.id,
                    node_id: a.node_id,
                    client_status: a.client_status,
                    desired_status: a.desired_status,
                    checks_passing: None,
                },
                node_name: a.node_name,
                job_version: a.job_version,
            })
            .collect(),
        checks,
        deployments,
        now: Utc::now(),
    })
}

/// The deployments the rollout reads: the job's latest while it runs and makes deployments
/// and the record needs a refresh (a rollout over for the running version costs nothing),
/// and the unfinished one on record by ID when the latest replaced it (a failure Nomad
/// reverted at once) or the object was stopped (Nomad cancels it, reconcile.go
/// `cancelUnneededDeployments`), so status says how it ended.
async fn deployments(
    ctx: &Context,
    spec: &WorkloadSpec<'_>,
    running: Option<&JobView>,
    previous: Option<&Status>,
) -> Result<Deployments, ReconcileError> {
    let namespace = &spec.object.namespace;
    let recorded = previous.and_then(|p| p.workload.rollout.as_ref());
    let unfinished = recorded.filter(|r| !r.phase.is_terminal());
    let mut read = Deployments::default();
    match running.filter(|_| spec.deploys) {
        Some(job) => {
            if !needs_refresh(recorded, job.version) {
                return Ok(read);
            }
            read.latest = ctx
                .nomad
                .latest_deployment(namespace, &job.id)
                .await?
                .map(|d| d.view());
            let Some(latest) = &read.latest else {
                return Ok(read);
            };
            if let Some(r) = unfinished.filter(|r| r.deployment_id != latest.id) {
                read.recorded = ctx
                    .nomad
                    .deployment(namespace, &r.deployment_id)
                    .await?
                    .map(|d| d.view());
            }
        }
        None if spec.stopped => {
            if let Some(r) = unfinished {
                read.recorded = ctx
                    .nomad
                    .deployment(namespace, &r.deployment_id)
                    .await?
                    .map(|d| d.view());
            }
        }
        None => {}
    }
    Ok(read)
}
