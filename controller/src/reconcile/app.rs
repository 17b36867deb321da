//! The App reconciler: keep one Nomad service job equal to the App, say what it did, and
//! report replicas and conditions in status.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use crds::{App, Kind, ObjectRef, Resource, Status};
use reconcilers::meta::{job_id, owner_of, PROTECT, SPEC_HASH};
use reconcilers::plan::{plan, JobAction, LiveJob, Observation, RegisterReason};
use reconcilers::render::app::render_app;
use reconcilers::status::{last_written_index, replicas, workload_status, AllocView, JobView};

use super::ReconcileError;
use crate::clients::consul::alloc_id_of_service;
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use crate::store::{EventType, StoreError};

/// While an App is converging, look again this often even without a trigger.
const CONVERGING_RECHECK: Duration = Duration::from_secs(5);

fn live_view(namespace: &str, job: &Job) -> LiveJob {
    LiveJob {
        owner: owner_of(namespace, job.meta.as_ref()),
        spec_hash: job.meta(SPEC_HASH).map(String::from),
        job_modify_index: job.job_modify_index.unwrap_or(0),
        stopped: job.stop.unwrap_or(false),
    }
}

/// Dependencies (same namespace) that are not Ready.
fn waiting_for(ctx: &Context, app: &App) -> Vec<String> {
    app.spec
        .depends_on
        .iter()
        .filter(|dep| {
            let dep_ref = ObjectRef::new(Kind::App, &app.metadata.namespace, dep.as_str());
            let ready = ctx
                .cache
                .status(&dep_ref)
                .and_then(|s| s.condition("Ready").map(|c| c.status == "True"))
                .unwrap_or(false);
            !ready
        })
        .cloned()
        .collect()
}

pub async fn reconcile(ctx: &Context, key: &ObjectRef) -> Result<Outcome, ReconcileError> {
    let Some(Resource::App(app)) = ctx.cache.get(key) else {
        return deregister_if_ours(ctx, key).await;
    };
    let id = job_id(key);
    let desired: Job =
        serde_json::from_value(render_app(&app)).expect("rendered jobs decode as jobs");
    let desired_hash = desired.meta(SPEC_HASH).unwrap_or_default().to_string();
    let live = ctx
        .nomad
        .job(&key.namespace, &id, QueryOptions::default())
        .await?
        .value;
    let previous = app.status.clone();
    let observation = Observation {
        object: key.clone(),
        desired_hash,
        live: live.as_ref().map(|j| live_view(&key.namespace, j)),
        last_written_index: last_written_index(previous.as_ref()),
        waiting_for: waiting_for(ctx, &app),
    };
    let mut written = observation.last_written_index;
    let mut job_changed = false;
    let mut outcome = None;
    match plan(&observation) {
        JobAction::Register {
            enforce_index,
            reason,
        } => {
            let response = ctx.nomad.register(&desired, Some(enforce_index)).await?;
            written = Some(response.job_modify_index);
            job_changed = true;
            announce(ctx, key, reason, &id, app.metadata.generation).await;
        }
        JobAction::VerifyDrift { enforce_index } => {
            let planned = ctx.nomad.plan(&desired).await?;
            let differs = planned
                .diff
                .as_ref()
                .and_then(|d| d.get("Type"))
                .and_then(|t| t.as_str())
                != Some("None");
            if differs {
                let response = ctx.nomad.register(&desired, Some(enforce_index)).await?;
                written = Some(response.job_modify_index);
                job_changed = true;
                announce(
                    ctx,
                    key,
                    RegisterReason::Drifted,
                    &id,
                    app.metadata.generation,
                )
                .await;
            } else {
                // Same content: our own write whose record was lost. Adopt it; write nothing.
                written = Some(enforce_index);
            }
        }
        JobAction::Refuse { reason } => {
            ctx.event(key, EventType::Warning, "JobConflict", reason.clone())
                .await;
            return Err(ReconcileError::Refused(reason));
        }
        JobAction::Wait { reason } => {
            ctx.event(key, EventType::Normal, "Waiting", reason).await;
            outcome = Some(Outcome::RequeueAfter(CONVERGING_RECHECK));
        }
        JobAction::Nothing => {}
    }
    // After a register Nomad holds the desired job at the next version; no need to read it back.
    let job = if job_changed {
        let mut registered = desired.clone();
        registered.version = Some(live.as_ref().and_then(|j| j.version).map_or(0, |v| v + 1));
        registered.job_modify_index = written;
        registered.stop = Some(false);
        Some(registered)
    } else {
        live
    };
    let status = observe_status(ctx, &app, job.as_ref(), written, previous.as_ref()).await?;
    let ready = status
        .condition("Ready")
        .is_some_and(|c| c.status == "True");
    let was_ready = previous
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .is_some_and(|c| c.status == "True");
    if previous.as_ref() != Some(&status) {
        match ctx.store.put_status(key, &status).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if ready && !was_ready {
        let message = status
            .condition("Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ctx.event(key, EventType::Normal, "Ready", message).await;
    }
    Ok(outcome.unwrap_or(if ready {
        Outcome::Done
    } else {
        Outcome::RequeueAfter(CONVERGING_RECHECK)
    }))
}

async fn announce(
    ctx: &Context,
    key: &ObjectRef,
    reason: RegisterReason,
    job: &str,
    generation: i64,
) {
    let (type_, label) = match reason {
        RegisterReason::Create => (EventType::Normal, "Registered"),
        RegisterReason::SpecChanged => (EventType::Normal, "Updated"),
        RegisterReason::Stopped | RegisterReason::Drifted => (EventType::Warning, "DriftCorrected"),
    };
    if reason.is_drift() {
        ctx.metrics
            .drift_corrections
            .get_or_create(&crate::runtime::metrics::KindLabel {
                kind: key.kind.as_str().into(),
            })
            .inc();
    }
    ctx.event(
        key,
        type_,
        label,
        format!(
            "job {job} registered (generation {generation}): {}",
            reason.describe()
        ),
    )
    .await;
}

/// Replicas from the job's allocations, health from Consul's checks of the App's service.
async fn observe_status(
    ctx: &Context,
    app: &App,
    job: Option<&Job>,
    written: Option<u64>,
    previous: Option<&Status>,
) -> Result<Status, ReconcileError> {
    let key = app.object_ref();
    let id = job_id(&key);
    let allocs = match job {
        Some(_) => {
            ctx.nomad
                .job_allocations(&key.namespace, &id, QueryOptions::default())
                .await?
                .value
        }
        None => Vec::new(),
    };
    let has_checks = app.spec.health.is_some();
    let mut checks_by_alloc: HashMap<String, bool> = HashMap::new();
    if has_checks && allocs.iter().any(|a| a.is_live()) {
        let entries = ctx
            .consul
            .health_service(&app.metadata.name, false, QueryOptions::default())
            .await?
            .value;
        for entry in entries {
            let Some(alloc) = alloc_id_of_service(entry.service_id()) else {
                continue;
            };
            let passing = entry
                .checks
                .iter()
                .filter(|c| !c.service_id.is_empty())
                .all(|c| c.status == "passing");
            checks_by_alloc.insert(alloc.to_string(), passing);
        }
    }
    let current_version = job.and_then(|j| j.version);
    let views: Vec<AllocView> = allocs
        .iter()
        .filter(|a| current_version.is_none_or(|v| a.job_version == v) || a.is_live())
        .map(|a| AllocView {
            id: a.id.clone(),
            node_id: a.node_id.clone(),
            client_status: a.client_status.clone(),
            desired_status: a.desired_status.clone(),
            checks_passing: checks_by_alloc.get(&a.id).copied(),
        })
        .collect();
    let counts = replicas(app.spec.replicas, &views, has_checks);
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
        app.metadata.generation,
        job_view.as_ref(),
        written,
        &counts,
        failing,
        Utc::now(),
    );
    // Conditions only move their times when they change; the rest must not make every
    // reconcile a status write.
    if let Some(previous) = previous {
        if status.conditions == previous.conditions && status.details == previous.details {
            status = previous.clone();
            status.observed_generation = Some(app.metadata.generation);
        }
    }
    Ok(status)
}

/// The App is gone: stop its job if nomarch manages it for this App (and it is not protected).
async fn deregister_if_ours(ctx: &Context, key: &ObjectRef) -> Result<Outcome, ReconcileError> {
    let id = job_id(key);
    let Some(job) = ctx
        .nomad
        .job(&key.namespace, &id, QueryOptions::default())
        .await?
        .value
    else {
        return Ok(Outcome::Done);
    };
    let ours = owner_of(&key.namespace, job.meta.as_ref()).as_ref() == Some(key);
    let protected = job.meta(PROTECT) == Some("true");
    if !ours || job.stop.unwrap_or(false) || protected {
        return Ok(Outcome::Done);
    }
    ctx.nomad.deregister(&key.namespace, &id, false).await?;
    ctx.event(
        key,
        EventType::Normal,
        "Deregistered",
        format!("job {id} stopped: the App was deleted"),
    )
    .await;
    Ok(Outcome::Done)
}
