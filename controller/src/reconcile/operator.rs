//! What people ask by hand of any object, before and after its kind's reconcile: a suspended
//! object is left alone (its suspension recorded and said once), and a reconcile request is
//! marked handled once the kind has run. Decided in `reconcilers::operator`.

use chrono::Utc;
use crds::ObjectRef;
use reconcilers::operator::{pending_request, Suspension};

use super::execute::save_status;
use super::ReconcileError;
use crate::runtime::context::Context;
use crate::store::EventType;

/// Whether the kind's reconcile runs.
pub enum Gate {
    /// Suspended: nothing is done for the object.
    SetAside,
    /// Reconcile; `request` is a reconcile asked for by hand, to mark handled after.
    Reconcile { request: Option<String> },
}

pub async fn gate(ctx: &Context, key: &ObjectRef) -> Result<Gate, ReconcileError> {
    // A deleted object is no longer suspended: deleting it is its own request.
    let Some(object) = ctx.cache.get(key) else {
        return Ok(Gate::Reconcile { request: None });
    };
    let status = ctx.cache.status(key);
    let suspension = Suspension::of(object.metadata(), status.as_ref());
    if let Some((next, reason, message)) = suspension.record(status.as_ref(), Utc::now()) {
        save_status(ctx, key, status.as_ref(), &next).await?;
        ctx.event(key, EventType::Normal, reason, message.to_string())
            .await;
    }
    if !suspension.reconciles() {
        return Ok(Gate::SetAside);
    }
    let request = pending_request(object.metadata(), status.as_ref()).map(String::from);
    Ok(Gate::Reconcile { request })
}

/// Records that the reconcile asked for with `token` ran.
pub async fn handled(ctx: &Context, key: &ObjectRef, token: &str) -> Result<(), ReconcileError> {
    let Some(previous) = ctx.cache.status(key) else {
        // Deleted meanwhile, or nothing stored: the status the kind writes next is the answer.
        return Ok(());
    };
    let next = crds::Status {
        last_handled_reconcile_at: Some(token.to_string()),
        ..previous.clone()
    };
    save_status(ctx, key, Some(&previous), &next).await
}
