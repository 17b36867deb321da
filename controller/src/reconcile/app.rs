//! The App reconciler: keep one Nomad service job equal to the App (`job.rs`), observe its
//! workload (`workload.rs`), decide with `reconcilers::kind::app::compute`, carry it out
//! (`execute.rs`).

use crds::{App, ConditionType, Kind, ObjectRef, Resource};
use reconcilers::kind::app::{compute, workload_spec, AppSnapshot};
use reconcilers::render::app::render_app;

use super::execute::execute;
use super::heal::HealState;
use super::job::{deregister_if_ours, ensure_job};
use super::workload::observe;
use super::ReconcileError;
use crate::clients::nomad_types::Job;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;

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
    let stored = app.status.as_ref();
    let ensured = ensure_job(
        ctx,
        key,
        &desired,
        &app.metadata,
        stored,
        waiting_for(ctx, &app),
    )
    .await?;
    let spec = workload_spec(&app, key);
    let workload = observe(ctx, spec, ensured.job.as_ref(), ensured.written, stored).await?;
    let effects = compute(&AppSnapshot {
        app: &app,
        job: &ensured.outcome,
        workload,
    });
    execute(ctx, heal, key, stored, effects).await
}
