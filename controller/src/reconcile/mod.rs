//! Reconcilers, one [`Driver`](driver::Driver) per kind, chosen in [`driver_of`], the one table
//! from kind to code. Each observes into a snapshot, decides with its pure `compute` in
//! `reconcilers::kind` (the job action with `reconcilers::plan`), and hands the effects to the
//! one executor, `execute`, which returns when to look again.
//!
//! # Layout
//! - `driver`: what a kind is to the controller (reconcile, and the job `nomarch diff` shows).
//! - `workload_kind`: the whole reconcile of a kind of the App's shape (`WorkloadKind`: the
//!   App); `pubs`, `cronjob`, `gitsource`, `nomadjob`: the kinds with their own steps;
//!   `workload`: observing any kind's workload; `job`: keeping the Nomad job, shared by every kind with one; `execute`:
//!   carries any kind's effects out; `heal`: healing's memory of troubles per node.
//! - `operator`: suspend and reconcile-now requests, before and after any kind's reconcile.
//! - `webhook` and `deliveries`: the git push webhook a GitSource serves (verified, replays
//!   refused), mounted on the controller's listener through [`Kinds::routes`].

pub mod cronjob;
pub mod deliveries;
pub mod driver;
pub mod execute;
pub mod gitsource;
pub mod heal;
pub mod job;
pub mod nomadjob;
pub mod operator;
pub mod pubs;
pub mod webhook;
pub mod workload;
pub mod workload_kind;

use crds::{AppSpec, Kind, ObjectRef};
use driver::Driver;
use tracing::warn;

use crate::clients::ApiError;
use futures::future::BoxFuture;
use operator::Gate;

use crate::runtime::context::Context;
use crate::runtime::kinds::Kinds;
use crate::runtime::queue::Outcome;
use crate::store::{EventType, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] gitsource::SourceError),
    /// nomarch will not act (a job it does not own is in the way); terminal until the object
    /// or the job changes.
    #[error("{0}")]
    Refused(String),
}

impl ReconcileError {
    pub fn is_transient(&self) -> bool {
        match self {
            ReconcileError::Api(e) => e.is_transient(),
            ReconcileError::Store(e) => e.is_transient(),
            ReconcileError::Source(e) => e.is_transient(),
            ReconcileError::Refused(_) => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::Api(e) => e.metric_label(),
            ReconcileError::Store(e) => e.metric_label(),
            ReconcileError::Source(e) => e.metric_label(),
            ReconcileError::Refused(_) => "refused",
        }
    }
}

/// Each kind's driver: the one place the controller is told how a kind runs. A kind of the
/// App's shape is `WorkloadDriver::<ItsSpec>::NEW`.
pub fn driver_of(kind: Kind) -> &'static dyn Driver {
    match kind {
        Kind::App => &workload_kind::WorkloadDriver::<AppSpec>::NEW,
        Kind::Pub => &pubs::Pubs,
        Kind::CronJob => &cronjob::CronJobs,
        Kind::GitSource => &gitsource::GitSources,
        Kind::NomadJob => &nomadjob::NomadJobs,
    }
}

/// The kinds, as the runtime runs them, with what each keeps across reconciles.
pub struct AllKinds {
    pub pubs: pubs::PubState,
    pub nomad_jobs: nomadjob::NomadJobState,
    pub heal: heal::HealState,
    /// Shared with the webhook's handler, which asks for fetches.
    pub git: std::sync::Arc<gitsource::GitState>,
}

impl AllKinds {
    pub fn new(
        cordon_suspect_nodes: bool,
        git_cache: std::path::PathBuf,
        rebalance_cooldown: std::time::Duration,
    ) -> AllKinds {
        AllKinds {
            pubs: pubs::PubState::new(rebalance_cooldown),
            nomad_jobs: nomadjob::NomadJobState::default(),
            heal: heal::HealState::new(cordon_suspect_nodes),
            git: std::sync::Arc::new(gitsource::GitState::new(git_cache)),
        }
    }
}

impl Kinds for AllKinds {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, (Outcome, &'static str)> {
        Box::pin(reconcile(self, ctx, key))
    }

    /// Only pubs follow nodes: the one pinned there, and every pub still waiting for a hub.
    fn concerned_by_node(&self, ctx: &Context, node_id: &str) -> Vec<ObjectRef> {
        pubs::concerned_by_node(ctx, node_id)
    }

    /// Every Pub in one controller: hub placement is serialized inside it (`PubState`), and
    /// pubs spread over shards would let two controllers take the last room on a hub at once.
    fn unsharded(&self) -> Vec<Kind> {
        vec![Kind::Pub]
    }

    fn routes(&self) -> axum::Router<std::sync::Arc<Context>> {
        webhook::routes(self.git.clone())
    }
}

/// Reconciles one object; returns what the queue should do next and a result label.
async fn reconcile(kinds: &AllKinds, ctx: &Context, key: &ObjectRef) -> (Outcome, &'static str) {
    let result = match operator::gate(ctx, key).await {
        Ok(Gate::SetAside) => Ok(Outcome::Done),
        Ok(Gate::Reconcile { request }) => {
            let result = driver_of(key.kind).reconcile(ctx, kinds, key).await;
            // Handled either way: whoever asked reads the outcome from status and events.
            // A transient failure is retried, and the retry answers the request.
            let settled = !result.as_ref().is_err_and(ReconcileError::is_transient);
            match request.filter(|_| settled) {
                Some(token) => operator::handled(ctx, key, &token).await.and(result),
                None => result,
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => (outcome, "success"),
        Err(e) => {
            let transient = e.is_transient();
            warn!(object = %key, error = %e, transient, "reconcile failed");
            // Deduplicated by message: a failure that repeats counts up instead of flooding.
            if !matches!(e, ReconcileError::Refused(_)) {
                ctx.event(key, EventType::Warning, "ReconcileFailed", e.to_string())
                    .await;
            }
            (
                if transient {
                    Outcome::Retry
                } else {
                    Outcome::GiveUp
                },
                e.metric_label(),
            )
        }
    }
}
