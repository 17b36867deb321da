//! What Apps and Pubs share after their job is settled: read the job's allocations and their
//! checks, count replicas, derive conditions, and run one round of healing.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use crds::status::{PastRollout, RolloutStatus};
use crds::workload::HealthCheck;
use crds::{ObjectRef, Status};
use reconcilers::rollout::{self, RolloutEvent};

use reconcilers::status::{
    mark_health_unknown, mark_stopped, replicas, workload_status, AllocView, JobView, Written,
};

use super::heal::{heal, HealState, Healing};
use super::ReconcileError;
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::store::EventType;

/// The workload being observed.
#[derive(Clone, Copy)]
pub struct Workload<'a> {
    pub object: &'a ObjectRef,
    /// Healing's memory across objects.
    pub heal: &'a HealState,
    /// Its Consul service name.
    pub service: &'a str,
    pub desired: u32,
    pub generation: i64,
    pub health: Option<&'a HealthCheck>,
    pub max_unavailable: u32,
    /// Whether Nomad makes deployments for its job (an update block, instances wanted): only
    /// then is the rollout read, so a job without any costs no request per reconcile.
    pub deploys: bool,
    /// `spec.stopped`: nothing should run, so nothing is healed.
    pub stopped: bool,
}

/// What one look at a workload found.
pub struct Observed {
    pub status: Status,
    /// When a failing check's grace runs out (to look again then).
    pub heal_due: Option<Duration>,
    /// The rollout's steps since the previous status, to announce once the status is stored.
    pub rollout_steps: Vec<RolloutEvent>,
}

pub async fn observe(
    ctx: &Context,
    workload: Workload<'_>,
    job: Option<&Job>,
    written: Option<Written>,
    previous: Option<&Status>,
) -> Result<Observed, ReconcileError> {
    let namespace = &workload.object.namespace;
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
    // A stopped workload's checks are not read: nothing of it is judged or healed.
    let has_checks = workload.health.is_some() && !workload.stopped;
    // Consul failing does not stop the rest: the job is registered already, the allocations
    // come from Nomad, and only health is unknown (nothing is healed on unknown health).
    let mut health_unknown = None;
    let checks = if has_checks && allocs.iter().any(|a| a.is_live()) {
        match ctx.consul.checks_by_alloc(workload.service).await {
            Ok(checks) => checks,
            Err(e) if e.is_transient() => {
                health_unknown = Some(e.to_string());
                Default::default()
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        Default::default()
    };
    let current_version = job.and_then(|j| j.version);
    let views: Vec<AllocView> = allocs
        .iter()
        .filter(|a| a.is_live() || current_version.is_none_or(|v| a.job_version == v))
        .map(|a| AllocView {
            id: a.id.clone(),
            node_id: a.node_id.clone(),
            client_status: a.client_status.clone(),
            desired_status: a.desired_status.clone(),
            checks_passing: checks.get(&a.id).copied(),
        })
        .collect();
    let counts = replicas(workload.desired, &views, has_checks);
    let failing_count = views
        .iter()
        .filter(|a| a.is_running() && a.checks_passing == Some(false))
        .count();
    let failing = (failing_count > 0).then(|| {
        (
            "ChecksFailing",
            format!("{failing_count} allocation(s) failing health checks"),
        )
    });
    let job_view = job.filter(|j| !j.stop.unwrap_or(false)).map(|j| JobView {
        id: j.id.clone(),
        version: j.version.unwrap_or(0),
        job_modify_index: j.job_modify_index.unwrap_or(0),
    });
    let mut status = workload_status(
        previous,
        workload.generation,
        job_view.as_ref(),
        written.as_ref(),
        &counts,
        failing,
        Utc::now(),
    );
    // Stopped means no allocation is live on a client any more (Nomad's job is then `dead`),
    // not that none is wanted: one Nomad was told to stop runs until its client stopped it.
    // (Every allocation: the stop made a new job version, and the old ones are what still run.)
    let still_running = allocs
        .iter()
        .filter(|a| matches!(a.client_status.as_str(), "pending" | "running"))
        .count() as u32;
    mark_stopped(&mut status, workload.stopped, still_running, Utc::now());
    let mut rollout_steps = Vec::new();
    if let Some(job) = job_view.as_ref().filter(|_| workload.deploys) {
        let (rollout, past, steps) =
            observe_rollout(ctx, workload, job, written.as_ref(), previous).await?;
        status.workload.rollout = rollout;
        status.workload.past_rollouts = past;
        rollout_steps = steps;
    } else if workload.stopped {
        if let Some((ended, steps)) =
            observe_stopped_rollout(ctx, workload, written.as_ref(), previous).await?
        {
            status.workload.rollout = Some(ended);
            rollout_steps = steps;
        }
    }
    let mut heal_due = None;
    if let Some(detail) = &health_unknown {
        mark_health_unknown(&mut status, &counts, detail, Utc::now());
        return Ok(Observed {
            status,
            heal_due,
            rollout_steps,
        });
    }
    if let Some(health) = workload.health.filter(|_| !workload.stopped) {
        let node_names: BTreeMap<String, String> = allocs
            .iter()
            .map(|a| (a.node_id.clone(), a.node_name.clone()))
            .collect();
        let healing = Healing {
            state: workload.heal,
            object: workload.object,
            allocs: &views,
            node_names: &node_names,
            grace: health.grace.get(),
            max_unavailable: workload.max_unavailable,
        };
        heal_due = heal(ctx, healing, &mut status).await?;
    }
    Ok(Observed {
        status,
        heal_due,
        rollout_steps,
    })
}

/// The rollout now, the ones before it, and the steps since `previous`.
type ObservedRollout = (Option<RolloutStatus>, Vec<PastRollout>, Vec<RolloutEvent>);

/// The rollout to show, and its steps since the record in `previous`: the job's latest
/// deployment, read while one is going or the job moved to another version since the last one
/// ended; otherwise the record as it was. When a newer deployment replaced the one on record
/// before it was seen to end (a failure Nomad reverted at once), that one is read too, so its
/// end is said.
async fn observe_rollout(
    ctx: &Context,
    workload: Workload<'_>,
    job: &JobView,
    written: Option<&Written>,
    previous: Option<&Status>,
) -> Result<ObservedRollout, ReconcileError> {
    let recorded = previous.and_then(|p| p.workload.rollout.as_ref());
    let past = previous.map_or_else(Vec::new, |p| p.workload.past_rollouts.clone());
    if !rollout::needs_refresh(recorded, job.version) {
        return Ok((recorded.cloned(), past, Vec::new()));
    }
    let namespace = &workload.object.namespace;
    let Some(latest) = ctx.nomad.latest_deployment(namespace, &job.id).await? else {
        return Ok((recorded.cloned(), past, Vec::new()));
    };
    let generation = workload.generation;
    let current = rollout::rollout_status(recorded, &latest.view(), written, generation);
    let unfinished = recorded.filter(|r| !r.phase.is_terminal() && r.deployment_id != latest.id);
    let ended = match unfinished {
        Some(r) => ctx
            .nomad
            .deployment(namespace, &r.deployment_id)
            .await?
            .map(|d| rollout::rollout_status(recorded, &d.view(), written, generation)),
        None => None,
    };
    let steps = match &ended {
        Some(ended) => {
            let mut steps = rollout::rollout_events(recorded, ended);
            steps.extend(rollout::rollout_events(Some(ended), &current));
            steps
        }
        None => rollout::rollout_events(recorded, &current),
    };
    let past = previous.map_or(&[][..], |p| &p.workload.past_rollouts[..]);
    let past = rollout::past_rollouts(past, ended.as_ref().or(recorded), &current);
    Ok((Some(current), past, steps))
}

/// A rollout still going when its object was stopped: Nomad cancels the deployment ("Cancelled
/// because job is stopped", reconcile.go `cancelUnneededDeployments`); it is read once by ID so
/// status says how it ended instead of showing it going forever.
async fn observe_stopped_rollout(
    ctx: &Context,
    workload: Workload<'_>,
    written: Option<&Written>,
    previous: Option<&Status>,
) -> Result<Option<(RolloutStatus, Vec<RolloutEvent>)>, ReconcileError> {
    let Some(recorded) = previous
        .and_then(|p| p.workload.rollout.as_ref())
        .filter(|r| !r.phase.is_terminal())
    else {
        return Ok(None);
    };
    let namespace = &workload.object.namespace;
    let Some(deployment) = ctx
        .nomad
        .deployment(namespace, &recorded.deployment_id)
        .await?
    else {
        return Ok(None);
    };
    let ended = rollout::rollout_status(
        Some(recorded),
        &deployment.view(),
        written,
        workload.generation,
    );
    let steps = rollout::rollout_events(Some(recorded), &ended);
    Ok(Some((ended, steps)))
}

/// What Apps and NomadJobs do once they have observed: Nomad's refusal and rollback (from
/// `ensured`) put on record, the status saved, the rollout's steps said, and `Ready` said
/// when it just became so. Returns the saved status.
pub async fn save_and_announce(
    ctx: &Context,
    key: &ObjectRef,
    previous: Option<&Status>,
    mut status: Status,
    ensured: &super::job::Ensured,
    rollout_steps: Vec<RolloutEvent>,
) -> Result<Status, ReconcileError> {
    reconcilers::status::record_rejection(&mut status, ensured.rejected.as_ref(), Utc::now());
    reconcilers::status::record_rollback(
        &mut status,
        previous,
        ensured.rolled_back.as_ref(),
        Utc::now(),
    );
    super::job::save_status(ctx, key, previous, &status).await?;
    announce_rollout(ctx, key, rollout_steps).await;
    let ready = status.is_true(crds::ConditionType::Ready);
    let was_ready = previous.is_some_and(|s| s.is_true(crds::ConditionType::Ready));
    if ready && !was_ready {
        let message = status
            .condition(crds::ConditionType::Ready)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ctx.event(key, EventType::Normal, "Ready", message).await;
    }
    Ok(status)
}

/// Says the rollout's steps, once the status that records them is stored.
pub async fn announce_rollout(ctx: &Context, object: &ObjectRef, steps: Vec<RolloutEvent>) {
    for step in steps {
        let type_ = if step.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(object, type_, step.reason, step.message).await;
    }
}

/// Conditions only move their times when they change; anything else unchanged must not make
/// every reconcile a status write.
pub fn keep_if_unchanged(status: Status, previous: Option<&Status>, generation: i64) -> Status {
    let same_but_generation = |previous: &Status| {
        Status {
            observed_generation: previous.observed_generation,
            ..status.clone()
        } == *previous
    };
    match previous {
        Some(previous) if same_but_generation(previous) => Status {
            observed_generation: Some(generation),
            ..previous.clone()
        },
        _ => status,
    }
}
