//! The App reconciler: keep one Nomad service job equal to the App, say what it did, and
//! report replicas and conditions in status.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use crds::{App, Kind, ObjectRef, Resource, Status};
use reconcilers::meta::job_id;
use reconcilers::render::app::render_app;
use reconcilers::status::{replicas, workload_status, AllocView, JobView};

use super::job::{deregister_if_ours, ensure_job, save_status};
use super::ReconcileError;
use crate::clients::consul::alloc_id_of_service;
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use crate::store::EventType;

/// While an App is converging, look again this often even without a trigger.
const CONVERGING_RECHECK: Duration = Duration::from_secs(5);

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
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let desired: Job =
        serde_json::from_value(render_app(&app)).expect("rendered jobs decode as jobs");
    let previous = app.status.clone();
    let ensured = ensure_job(
        ctx,
        key,
        &desired,
        app.metadata.generation,
        previous.as_ref(),
        waiting_for(ctx, &app),
    )
    .await?;
    let (status, heal_due) = observe_status(
        ctx,
        &app,
        ensured.job.as_ref(),
        ensured.written,
        previous.as_ref(),
    )
    .await?;
    let ready = status
        .condition("Ready")
        .is_some_and(|c| c.status == "True");
    let was_ready = previous
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .is_some_and(|c| c.status == "True");
    save_status(ctx, key, previous.as_ref(), &status).await?;
    if ready && !was_ready {
        let message = status
            .condition("Ready")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ctx.event(key, EventType::Normal, "Ready", message).await;
    }
    // A check failing within its grace: look again when the grace runs out, not later.
    let recheck = heal_due.map_or(CONVERGING_RECHECK, |due| {
        due.min(CONVERGING_RECHECK) + Duration::from_millis(50)
    });
    if ensured.waiting.is_some() || !ready || heal_due.is_some() {
        return Ok(Outcome::RequeueAfter(recheck));
    }
    Ok(Outcome::Done)
}

/// Whether each allocation's service checks pass, from Consul (the node's own check aside).
pub async fn checks_by_alloc(
    ctx: &Context,
    service: &str,
) -> Result<HashMap<String, bool>, ReconcileError> {
    let entries = ctx
        .consul
        .health_service(service, false, QueryOptions::default())
        .await?
        .value;
    let mut checks = HashMap::new();
    for entry in entries {
        let Some(alloc) = alloc_id_of_service(entry.service_id()) else {
            continue;
        };
        let passing = entry
            .checks
            .iter()
            .filter(|c| !c.service_id.is_empty())
            .all(|c| c.status == "passing");
        checks.insert(alloc.to_string(), passing);
    }
    Ok(checks)
}

/// Replicas from the job's allocations, health from Consul's checks of the App's service.
async fn observe_status(
    ctx: &Context,
    app: &App,
    job: Option<&Job>,
    written: Option<u64>,
    previous: Option<&Status>,
) -> Result<(Status, Option<Duration>), ReconcileError> {
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
    let checks_by_alloc = if has_checks && allocs.iter().any(|a| a.is_live()) {
        checks_by_alloc(ctx, &app.metadata.name).await?
    } else {
        HashMap::new()
    };
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
    let mut heal_due = None;
    if let Some(health) = &app.spec.health {
        let node_names: std::collections::BTreeMap<String, String> = allocs
            .iter()
            .map(|a| (a.node_id.clone(), a.node_name.clone()))
            .collect();
        let healing = super::heal::Healing {
            object: &key,
            allocs: &views,
            node_names: &node_names,
            grace: health.grace.get(),
            max_unavailable: app.spec.update.max_unavailable,
        };
        heal_due = super::heal::heal(ctx, healing, &mut status).await?;
    }
    // Conditions only move their times when they change; the rest must not make every
    // reconcile a status write.
    if let Some(previous) = previous {
        if status.conditions == previous.conditions && status.details == previous.details {
            status = previous.clone();
            status.observed_generation = Some(app.metadata.generation);
        }
    }
    Ok((status, heal_due))
}
