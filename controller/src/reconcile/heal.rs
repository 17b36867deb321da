//! Healing, with I/O: stop allocations whose checks stayed critical past the grace (as the pure
//! plan says), say so, and watch for nodes where trouble keeps happening.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::{ObjectRef, Status};
use reconcilers::healing::{
    evidence_against_node, plan_heals, Trouble, TroubleKind, SUSPECT_AFTER,
};
use reconcilers::status::AllocView;

use super::ReconcileError;
use crate::runtime::context::Context;
use crate::store::EventType;

/// Per node ID: when each recent heal or failure happened, and which allocation it was.
pub type Troubles = std::collections::HashMap<String, Vec<reconcilers::healing::Trouble>>;

/// What healing remembers across objects and reconciles: the troubles seen per node, to tell
/// a suspect node from one application's bug; and whether to cordon a suspect node.
#[derive(Default)]
pub struct HealState {
    troubles: std::sync::Mutex<Troubles>,
    /// Mark nodes that keep failing ineligible (`--cordon-suspect-nodes`).
    pub cordon_suspect_nodes: bool,
}

impl HealState {
    pub fn new(cordon_suspect_nodes: bool) -> HealState {
        HealState {
            troubles: Default::default(),
            cordon_suspect_nodes,
        }
    }
}

/// What healing needs to know about one object.
pub struct Healing<'a> {
    pub state: &'a HealState,
    pub object: &'a ObjectRef,
    pub allocs: &'a [AllocView],
    /// Node names by node ID, for messages.
    pub node_names: &'a BTreeMap<String, String>,
    pub grace: Duration,
    pub max_unavailable: u32,
}

/// Runs one round of healing, recording what it tracks in `status`. Returns when the next
/// grace runs out, so the object can be looked at exactly then.
pub async fn heal(
    ctx: &Context,
    healing: Healing<'_>,
    status: &mut Status,
) -> Result<Option<Duration>, ReconcileError> {
    let now = Utc::now();
    for alloc in healing.allocs {
        let kind = match alloc.client_status.as_str() {
            "failed" => TroubleKind::Failed,
            "lost" => TroubleKind::Lost,
            _ => continue,
        };
        note_trouble(ctx, &healing, &alloc.node_id, &alloc.id, kind, now).await;
    }
    let plan = plan_heals(
        healing.allocs,
        &status.workload.critical_since,
        now,
        healing.grace,
        healing.max_unavailable,
    );
    status.workload.critical_since = plan.critical_since.clone();
    for id in &plan.stop {
        let since = plan.critical_since[id];
        ctx.nomad.stop_allocation(id).await?;
        // Read-your-writes: the next observation must count this allocation as stopping even
        // if its event has not arrived yet, or a second heal would exceed maxUnavailable.
        ctx.allocs.mark_stopping(id);
        ctx.metrics.heals.inc();
        let node = healing
            .allocs
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.node_id.clone())
            .unwrap_or_default();
        let node_name = healing
            .node_names
            .get(&node)
            .cloned()
            .unwrap_or_else(|| node.clone());
        let critical_for = (now - since).num_seconds();
        let short = id.get(..8).unwrap_or(id);
        ctx.event(healing.object, EventType::Normal, "Healed", format!("stopped allocation {short} on node {node_name}: checks critical for {critical_for}s; Nomad places a replacement")).await;
        note_trouble(ctx, &healing, &node, id, TroubleKind::Healed, now).await;
    }
    let grace = chrono::Duration::from_std(healing.grace).unwrap_or_default();
    let next = plan
        .critical_since
        .iter()
        .filter(|(id, _)| !plan.stop.contains(*id))
        .filter_map(|(_, since)| (*since + grace - now).to_std().ok())
        .min();
    Ok(next)
}

/// Records a heal, failure or loss on a node (once per allocation) and raises `NodeSuspect`
/// when the evidence points at the node (see [`evidence_against_node`]); with
/// `--cordon-suspect-nodes` the node is also made ineligible.
async fn note_trouble(
    ctx: &Context,
    healing: &Healing<'_>,
    node: &str,
    alloc: &str,
    kind: TroubleKind,
    now: DateTime<Utc>,
) {
    if node.is_empty() {
        return;
    }
    let evidence = {
        let mut troubles = healing
            .state
            .troubles
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let list = troubles.entry(node.to_string()).or_default();
        if list.iter().any(|t| t.alloc == alloc) {
            return;
        }
        list.push(Trouble {
            at: now,
            alloc: alloc.to_string(),
            object: healing.object.to_string(),
            kind,
        });
        let window =
            chrono::Duration::from_std(reconcilers::healing::SUSPECT_WINDOW).unwrap_or_default();
        list.retain(|t| now - t.at <= window);
        evidence_against_node(list, now)
    };
    if evidence < SUSPECT_AFTER {
        return;
    }
    let names = healing.node_names;
    let name = names.get(node).cloned().unwrap_or_else(|| node.to_string());
    let message = format!(
        "node {name} had {evidence} signs of trouble within 10 minutes: lost allocations, or failed and healed allocations of different objects"
    );
    ctx.event(healing.object, EventType::Warning, "NodeSuspect", message)
        .await;
    if healing.state.cordon_suspect_nodes {
        if let Err(e) = ctx.nomad.set_eligibility(node, false).await {
            tracing::warn!(node = %name, error = %e, "could not mark the suspect node ineligible");
        }
    }
}
