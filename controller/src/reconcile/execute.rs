//! The one executor every kind's plan goes through: carries out [`Effects`] in a fixed order
//! and decides nothing. Healing's stops first (so the status stored next records them), then
//! the status when it changed, then the events, then the next look for the queue.

use crds::{ObjectRef, Status};
use reconcilers::effects::{Effects, PlannedEvent, Requeue};

use super::heal::HealState;
use super::ReconcileError;
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use crate::store::EventType;

/// Carries `effects` out for `key`, whose stored status is `stored`.
pub async fn execute(
    ctx: &Context,
    heal: &HealState,
    key: &ObjectRef,
    stored: Option<&Status>,
    effects: Effects,
) -> Result<Outcome, ReconcileError> {
    for trouble in effects.troubles.iter().filter(|t| !is_healed(t, &effects)) {
        note(ctx, heal, key, trouble).await;
    }
    for stop in &effects.heals {
        ctx.nomad.stop_allocation(&stop.alloc).await?;
        // Read-your-writes: the next observation must count this allocation as stopping even
        // if its event has not arrived yet, or a second heal would exceed maxUnavailable.
        ctx.allocs.mark_stopping(&stop.alloc);
        ctx.metrics.heals.inc();
        ctx.event(key, EventType::Normal, "Healed", stop.message.clone())
            .await;
        let healed = effects.troubles.iter().filter(|t| t.alloc == stop.alloc);
        for trouble in healed {
            note(ctx, heal, key, trouble).await;
        }
    }
    save_status(ctx, key, stored, &effects.status).await?;
    for event in effects.events {
        say(ctx, key, event).await;
    }
    Ok(match effects.requeue {
        Requeue::OnChange => Outcome::Done,
        Requeue::After(wait) => Outcome::RequeueAfter(wait),
    })
}

/// A heal's own trouble is noted once its stop went through.
fn is_healed(trouble: &reconcilers::effects::NodeTrouble, effects: &Effects) -> bool {
    effects.heals.iter().any(|h| h.alloc == trouble.alloc)
}

pub async fn say(ctx: &Context, key: &ObjectRef, event: PlannedEvent) {
    let type_ = if event.warning {
        EventType::Warning
    } else {
        EventType::Normal
    };
    ctx.event(key, type_, event.reason, event.message).await;
}

/// Notes a trouble in healing's memory and, when the node just became suspect, says so (and
/// cordons it with `--cordon-suspect-nodes`).
async fn note(
    ctx: &Context,
    heal: &HealState,
    key: &ObjectRef,
    trouble: &reconcilers::effects::NodeTrouble,
) {
    let Some(evidence) = heal.note(key, trouble) else {
        return;
    };
    let name = &trouble.node_name;
    let message = format!(
        "node {name} had {evidence} signs of trouble within 10 minutes: lost allocations, or failed and healed allocations of different objects"
    );
    ctx.event(key, EventType::Warning, "NodeSuspect", message)
        .await;
    if heal.cordon_suspect_nodes {
        if let Err(e) = ctx.nomad.set_eligibility(&trouble.node_id, false).await {
            tracing::warn!(node = %name, error = %e, "could not mark the suspect node ineligible");
        }
    }
}

/// Writes a status only when it changed (the store never sees a no-op write).
pub async fn save_status(
    ctx: &Context,
    key: &ObjectRef,
    previous: Option<&Status>,
    status: &Status,
) -> Result<(), ReconcileError> {
    if previous == Some(status) {
        return Ok(());
    }
    match ctx.store.put_status(key, status).await {
        // The next run of this key (never concurrent with this one) must see this status,
        // even before the watch delivers it.
        Ok(revision) => {
            ctx.cache.put_status(key.clone(), status.clone(), revision);
            Ok(())
        }
        Err(crate::store::StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
