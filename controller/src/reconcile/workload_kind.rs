//! The whole reconcile of a kind of the App's shape (`reconcilers::kind::WorkloadKind`: one
//! job rendered from its spec, judged by its workload), as one [`WorkloadDriver`]: render,
//! keep the job (`job.rs`), observe the workload (`workload.rs`), the kind's `compute`, carry
//! it out (`execute.rs`). The App runs through it; so does any kind that implements
//! `WorkloadKind`, with one line in `reconcile/mod.rs` `driver_of`.

use std::marker::PhantomData;

use crds::{ConditionType, ObjectRef, Status};
use futures::future::BoxFuture;
use reconcilers::kind::WorkloadKind;

use super::driver::{Desired, DiffError, DiffLook, Driver};
use super::execute::execute;
use super::heal::HealState;
use super::job::{deregister_if_ours, ensure_job};
use super::workload::observe;
use super::{AllKinds, ReconcileError};
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;

/// The driver of a kind of the App's shape: one job rendered from the spec, judged by its
/// workload.
pub struct WorkloadDriver<K>(PhantomData<fn() -> K>);

impl<K> WorkloadDriver<K> {
    pub const NEW: WorkloadDriver<K> = WorkloadDriver(PhantomData);
}

impl<K: WorkloadKind + Send + Sync> Driver for WorkloadDriver<K> {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>> {
        Box::pin(reconcile::<K>(ctx, &kinds.heal, key))
    }

    /// The rendered job, waiting for the dependencies the store holds as not Ready.
    fn desired<'a>(&'a self, look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>> {
        Box::pin(async move {
            let object = look.object::<K>();
            let mut waiting_for = Vec::new();
            for dependency in K::depends_on(object) {
                let stored = look.store.get(&dependency).await?;
                if !stored.is_some_and(|r| is_ready(r.status())) {
                    waiting_for.push(dependency.name);
                }
            }
            Ok(Desired::job(K::render(object), waiting_for))
        })
    }
}

fn is_ready(status: Option<&Status>) -> bool {
    status.is_some_and(|s| s.is_true(ConditionType::Ready))
}

/// Keep the object's job as rendered (once its dependencies are Ready), observe its workload,
/// decide with the kind's `compute`, carry it out.
async fn reconcile<K: WorkloadKind>(
    ctx: &Context,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    let Some(object) = ctx.cache.get(key).and_then(K::from_resource) else {
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let desired = K::render(&object);
    let stored = object.status.as_ref();
    let waiting_for = K::depends_on(&object)
        .into_iter()
        .filter(|dependency| !is_ready(ctx.cache.status(dependency).as_ref()))
        .map(|dependency| dependency.name)
        .collect();
    let ensured = ensure_job(ctx, key, &desired, &object.metadata, stored, waiting_for).await?;
    let spec = K::workload_spec(&object, key);
    let workload = observe(ctx, spec, ensured.job.as_ref(), ensured.written, stored).await?;
    let effects = K::compute(&object, &ensured.outcome, workload);
    execute(ctx, heal, key, stored, effects).await
}
