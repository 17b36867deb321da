//! What the runtime asks of the kinds it runs, and no more: the runtime knows no kind. As
//! kube-runtime's `Controller::run` is handed its reconcile function, the runner is handed a
//! [`Kinds`]; the kinds also map a change the runtime sees (a node's) to the objects it
//! concerns, so the triggers need not know which kind cares, say which kinds must stay in one
//! shard, and bring their own HTTP routes (a git push webhook) for the server to mount.

use std::sync::Arc;

use crds::{Kind, ObjectRef};
use futures::future::BoxFuture;

use super::context::Context;
use super::queue::Outcome;

pub trait Kinds: Send + Sync + 'static {
    /// Reconciles one object: what the queue does with its key next, and the result's metric
    /// label (`success` or the error's).
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, (Outcome, &'static str)>;

    /// The objects a change of this node (status, eligibility, drain, or it came or went)
    /// concerns.
    fn concerned_by_node(&self, ctx: &Context, node_id: &str) -> Vec<ObjectRef>;

    /// Kinds whose objects must all be reconciled by one controller (shard 0), because their
    /// reconciles share state that lives in that controller.
    fn unsharded(&self) -> Vec<Kind>;

    /// HTTP routes the kinds serve on the controller's listener, beside the runtime's own.
    fn routes(&self) -> axum::Router<Arc<Context>>;
}
