//! The App reconciler: keep one Nomad service job equal to the App, say what it did, and
//! report replicas and conditions in status.

use std::time::Duration;

use crds::{App, ConditionType, Kind, ObjectRef, Resource, Status};
use reconcilers::render::app::render_app;
use reconcilers::status::Written;

use super::heal::HealState;
use super::job::{deregister_if_ours, ensure_job};
use super::workload::{keep_if_unchanged, observe, save_and_announce, Observed, Workload};
use super::ReconcileError;
use crate::clients::nomad_types::Job;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;

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
                .is_some_and(|s| s.is_true(ConditionType::Ready));
            !ready
        })
        .cloned()
        .collect()
}

pub async fn reconcile(
    ctx: &Context,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
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
        &app.metadata,
        previous.as_ref(),
        waiting_for(ctx, &app),
    )
    .await?;
    let Observed {
        status,
        heal_due,
        rollout_steps,
    } = observe_status(
        ctx,
        heal,
        &app,
        ensured.job.as_ref(),
        ensured.written.clone(),
        previous.as_ref(),
    )
    .await?;
    let status =
        save_and_announce(ctx, key, previous.as_ref(), status, &ensured, rollout_steps).await?;
    let ready = status.is_true(ConditionType::Ready);
    // Refused by Nomad: nothing changes until the App does, and that queues it again.
    if ensured.rejected.is_some() {
        return Ok(Outcome::Done);
    }
    // A check failing within its grace: look again when the grace runs out, not later.
    let recheck = heal_due.map_or(CONVERGING_RECHECK, |due| {
        due.min(CONVERGING_RECHECK) + Duration::from_millis(50)
    });
    // A stopped App is done once nothing runs; until then, look again as while converging.
    let settled = ready || status.is_true(ConditionType::Stopped);
    if ensured.waiting.is_some() || !settled || heal_due.is_some() {
        return Ok(Outcome::RequeueAfter(recheck));
    }
    Ok(Outcome::Done)
}

/// Replicas, conditions and healing from the job's allocations and their checks.
async fn observe_status(
    ctx: &Context,
    heal: &HealState,
    app: &App,
    job: Option<&Job>,
    written: Option<Written>,
    previous: Option<&Status>,
) -> Result<Observed, ReconcileError> {
    let key = app.object_ref();
    let service = reconcilers::render::service_name(&key);
    let workload = Workload {
        object: &key,
        heal,
        service: &service,
        desired: if app.spec.stopped {
            0
        } else {
            app.spec.replicas
        },
        generation: app.metadata.generation,
        health: app.spec.health.as_ref(),
        max_unavailable: app.spec.update.max_unavailable,
        // An App's job always has an update block (render/app.rs); a stopped job gets no
        // deployment (Nomad cancels the running one).
        deploys: app.spec.replicas > 0 && !app.spec.stopped,
        stopped: app.spec.stopped,
    };
    let observed = observe(ctx, workload, job, written, previous).await?;
    Ok(Observed {
        status: keep_if_unchanged(observed.status, previous, app.metadata.generation),
        ..observed
    })
}
