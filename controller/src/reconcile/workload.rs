//! What Apps, Pubs and NomadJobs observe once their job is settled, into one
//! [`WorkloadSnapshot`] with one `now`: the job's allocations (from the cache the triggers
//! keep, or Nomad when it is cold), their checks (when there is a health check and something
//! is live), and the deployments the rollout needs. The decisions are
//! `reconcilers::workload::look`'s.
//!
//! And the whole reconcile of a kind of the App's shape ([`WorkloadKind`]), as one
//! [`WorkloadDriver`]: render, keep the job (`job.rs`), observe, the kind's `compute`,
//! `execute.rs`. The App runs through it; so does any kind that implements `WorkloadKind`.

use std::marker::PhantomData;

use chrono::Utc;
use crds::{ConditionType, ObjectRef, Status};
use futures::future::BoxFuture;
use reconcilers::kind::WorkloadKind;
use reconcilers::rollout::needs_refresh;
use reconcilers::status::{AllocView, JobView, Written};
use reconcilers::workload::{Checks, Deployments, WorkloadAlloc, WorkloadSnapshot, WorkloadSpec};

use super::driver::{Desired, DiffError, DiffLook, Driver};
use super::execute::execute;
use super::heal::HealState;
use super::job::{deregister_if_ours, ensure_job};
use super::{AllKinds, ReconcileError};
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;

/// The driver of a kind of the App's shape: one job rendered from the spec, judged by its
/// workload.
pub struct WorkloadDriver<K>(PhantomData<fn() -> K>);

impl<K> WorkloadDriver<K> {
    pub const NEW: WorkloadDriver<K> = WorkloadDriver(PhantomData);
}

impl<K: WorkloadKind + Send + Sync> Driver for WorkloadDriver<K> {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>> {
        Box::pin(reconcile::<K>(ctx, &kinds.heal, key))
    }

    /// The rendered job, waiting for the dependencies the store holds as not Ready.
    fn desired<'a>(&'a self, look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>> {
        Box::pin(async move {
            let object = look.object::<K>();
            let mut waiting_for = Vec::new();
            for dependency in K::depends_on(object) {
                let stored = look.store.get(&dependency).await?;
                if !stored.is_some_and(|r| is_ready(r.status())) {
                    waiting_for.push(dependency.name);
                }
            }
            Ok(Desired::job(K::render(object), waiting_for))
        })
    }
}

fn is_ready(status: Option<&Status>) -> bool {
    status.is_some_and(|s| s.is_true(ConditionType::Ready))
}

/// Keep the object's job as rendered (once its dependencies are Ready), observe its workload,
/// decide with the kind's `compute`, carry it out.
async fn reconcile<K: WorkloadKind>(
    ctx: &Context,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    let Some(object) = ctx.cache.get(key).and_then(K::from_resource) else {
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let desired = K::render(&object);
    let stored = object.status.as_ref();
    let waiting_for = K::depends_on(&object)
        .into_iter()
        .filter(|dependency| !is_ready(ctx.cache.status(dependency).as_ref()))
        .map(|dependency| dependency.name)
        .collect();
    let ensured = ensure_job(ctx, key, &desired, &object.metadata, stored, waiting_for).await?;
    let spec = K::workload_spec(&object, key);
    let workload = observe(ctx, spec, ensured.job.as_ref(), ensured.written, stored).await?;
    let effects = K::compute(&object, &ensured.outcome, workload);
    execute(ctx, heal, key, stored, effects).await
}

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
