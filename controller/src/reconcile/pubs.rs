//! The Pub reconciler: pick a hub with room, write it to status *before* registering the job
//! pinned to it (so a crash in between never yields two hubs or none), and move the pub when its
//! hub is down past the grace, drained or gone. A hub that comes back keeps nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::nodes::hub_from;
use chrono::{DateTime, Utc};
use crds::kinds::Pub;
use crds::{Kind, ObjectRef, Resource, Status};
use reconcilers::hubs::{Assigned, Hub};
use reconcilers::kind::pubs::render_pub;
use reconcilers::kind::pubs::{
    compute, hub_step, need, placed, workload_spec, HubAction, HubSnapshot, Moving, PubSnapshot,
};
use reconcilers::rebalance::{plan, HubArrivals, Limits, PlacedPub};

use super::driver::{Desired, DiffError, DiffLook, Driver};
use super::execute::{execute, say};
use super::heal::HealState;
use super::job::{deregister_if_ours, ensure_job};
use super::workload::observe;
use super::{AllKinds, ReconcileError};
use crate::clients::{NomadClient, QueryOptions};
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use futures::future::BoxFuture;

/// The ID of the hub a status records, borrowed.
fn hub_id_of_status(status: Option<&Status>) -> Option<&str> {
    Some(status?.hub.hub.as_ref()?.id.as_str())
}

/// Pub moves per second at most, so a hub dying with many pubs does not stampede Nomad.
pub const REPINS_PER_SECOND: u32 = 50;

/// What pub placement keeps across reconciles.
pub struct PubState {
    /// Serializes placement, so two pubs never take the last room on a hub.
    placement: tokio::sync::Mutex<()>,
    /// When the next move may start: moves off a dead hub go at a bounded rate.
    next_repin: tokio::sync::Mutex<tokio::time::Instant>,
    /// Hubs that came back or joined, for pubs that rebalance by themselves.
    arrivals: std::sync::Mutex<HubArrivals>,
    /// How long a hub must stay usable before it counts as arrived (`--rebalance-cooldown`).
    rebalance_cooldown: Duration,
    /// Moves a rebalance decided, by pub: the hub's ID; done when the pub is there.
    requested_moves: std::sync::Mutex<HashMap<ObjectRef, String>>,
}

/// At most this many pubs move in one automatic rebalance.
const AUTO_REBALANCE_MOVES: usize = 5;

impl PubState {
    pub fn new(rebalance_cooldown: Duration) -> PubState {
        PubState {
            placement: tokio::sync::Mutex::new(()),
            next_repin: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            arrivals: Default::default(),
            rebalance_cooldown,
            requested_moves: Default::default(),
        }
    }
}

impl PubState {
    /// Waits for this move's slot in the pace of [`REPINS_PER_SECOND`].
    async fn pace_repin(&self) {
        let mut next = self.next_repin.lock().await;
        let now = tokio::time::Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + std::time::Duration::from_secs(1) / REPINS_PER_SECOND;
    }
}

/// Every node as a hub. Without a meta selector this is the node cache's own list, built once
/// per change of the node list; with one, each node's meta is read.
async fn hubs(ctx: &Context, pub_: &Pub) -> Result<Arc<Vec<Hub>>, ReconcileError> {
    let needs_meta = !pub_.spec.hub_selector.meta.is_empty();
    let nodes = match ctx.nodes.get() {
        Some(cached) if !needs_meta => return Ok(cached.hubs),
        Some(cached) => cached.nodes,
        None => Arc::new(
            ctx.nomad
                .nodes(QueryOptions::default().param("resources", "true"))
                .await?
                .value,
        ),
    };
    let mut hubs = Vec::with_capacity(nodes.len());
    for node in nodes.iter() {
        let meta = if needs_meta {
            Some(ctx.nomad.node_meta(&node.id).await?)
        } else {
            None
        };
        hubs.push(hub_from(node, meta));
    }
    Ok(Arc::new(hubs))
}

/// The hub a move was asked for, when it is known and not the one the pub is on: by
/// `nomarch rebalance` (its name in the `move-to` annotation), or by an automatic rebalance.
fn asked_hub<'h>(
    state: &PubState,
    pub_: &Pub,
    hubs: &'h [Hub],
    current: Option<&str>,
) -> Option<(&'h Hub, &'static str)> {
    let key = pub_.object_ref();
    let mut requested = lock(&state.requested_moves);
    let by_annotation = pub_
        .metadata
        .annotations
        .get(reconcilers::operator::MOVE_TO)
        .and_then(|name| hubs.iter().find(|h| &h.name == name));
    let by_rebalance = requested
        .get(&key)
        .and_then(|id| hubs.iter().find(|h| &h.id == id));
    let (target, why) = match (by_annotation, by_rebalance) {
        (Some(hub), _) => (hub, "asked by nomarch rebalance"),
        (None, Some(hub)) => (hub, "rebalanced onto a hub that came back or joined"),
        (None, None) => return None,
    };
    let there = current == Some(target.id.as_str());
    if there {
        requested.remove(&key);
    }
    (!there).then_some((target, why))
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `rebalance: true` pubs: when a hub has arrived (usable for the cool-down), plan a bounded
/// rebalance over every pub (only those asking for it move) and ask for its moves. Returns how
/// long until a hub still cooling down arrives, to look again then.
fn auto_rebalance(
    ctx: &Context,
    state: &PubState,
    hubs: &[Hub],
    now: DateTime<Utc>,
) -> Option<Duration> {
    let (due, next) = lock(&state.arrivals).observe(hubs, now, state.rebalance_cooldown);
    if due.is_empty() {
        return next;
    }
    let mut placed = Vec::new();
    ctx.cache.for_each_of_kind(Kind::Pub, |resource, status| {
        let (Resource::Pub(p), Some(hub)) = (resource, status.and_then(|s| s.hub.hub.as_ref()))
        else {
            return;
        };
        placed.push(PlacedPub::of(p, &hub.id, !p.spec.rebalance));
    });
    let limits = Limits {
        max_moves: AUTO_REBALANCE_MOVES,
        include_stateful: false,
    };
    let moves = plan(hubs, &placed, limits);
    let mut requested = lock(&state.requested_moves);
    for m in moves {
        requested.insert(m.object.clone(), m.to);
        ctx.queue.add(m.object);
    }
    next
}

/// CPU and memory promised on each hub to the other pubs, from their statuses. Runs over
/// every pub for each pub reconciled, so it allocates only per hub, not per pub.
fn assigned_except(ctx: &Context, me: &ObjectRef) -> Assigned {
    let mut assigned = Assigned::new();
    ctx.cache.for_each_of_kind(Kind::Pub, |resource, status| {
        let Resource::Pub(other) = resource else {
            return;
        };
        if resource.is(me) {
            return;
        }
        let Some(hub) = hub_id_of_status(status) else {
            return;
        };
        let need = need(other);
        match assigned.get_mut(hub) {
            Some(entry) => {
                entry.0 += need.0;
                entry.1 += need.1;
            }
            None => {
                assigned.insert(hub.to_string(), need);
            }
        }
    });
    assigned
}

pub async fn reconcile(
    ctx: &Context,
    state: &PubState,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    let Some(Resource::Pub(pub_)) = ctx.cache.get(key) else {
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let previous = pub_.status.clone();
    let hubs = hubs(ctx, &pub_).await?;
    let current = hub_id_of_status(previous.as_ref()).map(str::to_string);
    let now = Utc::now();
    // Pubs that rebalance by themselves ask for moves when a hub has arrived.
    let rebalance_due = if pub_.spec.rebalance {
        auto_rebalance(ctx, state, &hubs, now)
    } else {
        None
    };
    let asked = asked_hub(state, &pub_, &hubs, current.as_deref());
    // What the others are promised, read only when a move was asked for: the placement
    // itself reads it again under the lock.
    let assigned = match asked {
        Some(_) => assigned_except(ctx, key),
        None => Assigned::new(),
    };
    let step = hub_step(&HubSnapshot {
        pub_: &pub_,
        status: previous.as_ref(),
        hubs: &hubs,
        asked,
        assigned: &assigned,
        rebalance_due,
        now,
    });
    for event in step.events {
        say(ctx, key, event).await;
    }
    let requeue = step.requeue;
    let mut status = step.status;
    let hub_id = match step.action {
        HubAction::Keep => current,
        HubAction::Choose { only, moving } => {
            let candidates: &[Hub] = match &only {
                Some(id) => hubs
                    .iter()
                    .find(|h| &h.id == id)
                    .map_or(&[], std::slice::from_ref),
                None => &hubs,
            };
            place(ctx, state, &pub_, candidates, &mut status, moving).await?
        }
    };
    let Some(hub_id) = hub_id else {
        let effects = reconcilers::kind::pubs::without_hub(&pub_, status, now);
        return execute(ctx, heal, key, previous.as_ref(), effects).await;
    };
    let hub_pool = hubs
        .iter()
        .find(|h| h.id == hub_id)
        .map_or("", |h| h.pool.as_str());
    let desired = render_pub(&pub_, &hub_id, hub_pool);
    let ensured = ensure_job(
        ctx,
        key,
        &desired,
        &pub_.metadata,
        Some(&status),
        Vec::new(),
    )
    .await?;
    let spec = workload_spec(&pub_, key);
    let job = ensured.job.as_ref();
    let workload = observe(ctx, spec, job, ensured.written, Some(&status)).await?;
    let effects = compute(&PubSnapshot {
        pub_: &pub_,
        stored: previous.as_ref(),
        job: &ensured.outcome,
        workload,
        hub_requeue: requeue,
    });
    execute(ctx, heal, key, previous.as_ref(), effects).await
}

/// Chooses a hub and records it in status before anything is registered
/// (`reconcilers::kind::pubs::placed` decides). Placements are serialized, and each one is
/// visible to the next at once, so two pubs never take the last room on a hub. Moves are
/// paced. Returns the hub, or `None` (Unschedulable, in `status`, stored by the caller).
async fn place(
    ctx: &Context,
    state: &PubState,
    pub_: &Pub,
    hubs: &[Hub],
    status: &mut Status,
    moving: Option<Moving>,
) -> Result<Option<String>, ReconcileError> {
    let key = pub_.object_ref();
    let _serialized = state.placement.lock().await;
    if moving.is_some() {
        state.pace_repin().await;
    }
    let assigned = assigned_except(ctx, &key);
    let placement = placed(
        pub_,
        status.clone(),
        hubs,
        &assigned,
        moving.as_ref(),
        Utc::now(),
    );
    *status = placement.status;
    if placement.hub.is_some() {
        // The hub is decided before the job exists: a crash after this line registers the
        // pub on this hub when the reconcile runs again; a crash before it decides again.
        let revision = ctx.store.put_status(&key, status).await?;
        ctx.cache.put_status(key.clone(), status.clone(), revision);
        if moving.is_some() {
            ctx.metrics.repins.inc();
        }
    }
    for event in placement.events {
        say(ctx, &key, event).await;
    }
    Ok(placement.hub)
}

/// A node changed: the pubs pinned to it, and every pub still waiting for a hub.
pub fn concerned_by_node(ctx: &Context, node_id: &str) -> Vec<ObjectRef> {
    ctx.cache
        .refs()
        .into_iter()
        .filter(|r| r.kind == crds::Kind::Pub)
        .filter(|r| {
            let status = ctx.cache.status(r);
            hub_id_of_status(status.as_ref()).is_none_or(|id| id == node_id)
        })
        .collect()
}

/// A pub's job is pinned to its hub: the one its status records, unless the hub rules
/// (`reconcilers::hubs::verdict`, as the reconciler applies them) would place or move it,
/// which only the controller does (it weighs every other pub's claim on each hub).
async fn desired_job(
    nomad: &NomadClient,
    pub_: &Pub,
    previous: Option<&Status>,
) -> Result<Desired, DiffError> {
    let nodes = nomad
        .nodes(QueryOptions::default().param("resources", "true"))
        .await?
        .value;
    let hubs: Vec<_> = nodes.iter().map(|n| hub_from(n, None)).collect();
    // The controller's own hub step, without a move someone asked for (those are the
    // controller's to weigh against every other pub's claim).
    let step = hub_step(&HubSnapshot {
        pub_,
        status: previous,
        hubs: &hubs,
        asked: None,
        assigned: &Default::default(),
        rebalance_due: None,
        now: chrono::Utc::now(),
    });
    let recorded = step.status.hub.hub.as_ref();
    let hub = recorded.and_then(|r| hubs.iter().find(|h| h.id == r.id));
    match (step.action, hub) {
        (HubAction::Keep, Some(hub)) => Ok(Desired::job(
            render_pub(pub_, &hub.id, &hub.pool),
            Vec::new(),
        )),
        (
            HubAction::Choose {
                moving: Some(m), ..
            },
            _,
        ) => Ok(Desired::Note(format!(
            "would move off hub {} ({}); the controller chooses the new hub",
            m.from_name, m.reason
        ))),
        _ => Ok(Desired::Note(
            "has no hub yet; the controller chooses one, then registers its job".into(),
        )),
    }
}

/// The Pub's driver: its hub step, then its pinned job.
pub struct Pubs;

impl Driver for Pubs {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>> {
        Box::pin(reconcile(ctx, &kinds.pubs, &kinds.heal, key))
    }

    fn desired<'a>(&'a self, look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>> {
        Box::pin(async move {
            let pub_ = look.object::<crds::PubSpec>();
            desired_job(look.nomad, pub_, look.previous).await
        })
    }
}
