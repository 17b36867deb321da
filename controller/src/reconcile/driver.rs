//! What a kind is to the controller, behind one face: a [`Driver`] reconciles the kind's
//! objects, and tells `nomarch diff` the job it would register now, with the same rendering
//! (so the two cannot disagree). `reconcile/mod.rs` `driver_of` is the one table from kind to
//! driver; a kind of the App's shape needs no driver of its own
//! (`workload_kind::WorkloadDriver`).

use crds::{KindSpec, Object, Resource, Status};
use futures::future::BoxFuture;

use super::{AllKinds, ReconcileError};
use crate::clients::nomad_types::Job;
use crate::clients::{ApiError, NomadClient};
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use crate::store::{Store, StoreError};

/// Why an object could not be diffed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("Nomad: {0}")]
    Nomad(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What Nomad answered is not a job.
    #[error("the job is not a Nomad job: {0}")]
    NotAJob(String),
}

/// What an object would make its kind register now, or why there is nothing to diff.
pub enum Desired {
    Job {
        job: Box<Job>,
        /// The job without what other actors own (a NomadJob's autoscaled counts and ignored
        /// paths), which the plan fingerprints; the same job for the other kinds.
        decided: Box<Job>,
        /// Objects it depends on that are not Ready.
        waiting_for: Vec<String>,
    },
    Note(String),
}

impl Desired {
    /// A job nomarch decides whole.
    pub fn job(job: Job, waiting_for: Vec<String>) -> Desired {
        let job = Box::new(job);
        Desired::Job {
            decided: job.clone(),
            job,
            waiting_for,
        }
    }
}

/// What `nomarch diff` gives a driver: the object (as a manifest says it, or as stored), its
/// stored status, and where to read what else the kind reads (dependencies as stored, Nomad).
pub struct DiffLook<'a> {
    pub store: &'a Store,
    pub nomad: &'a NomadClient,
    pub resource: &'a Resource,
    pub previous: Option<&'a Status>,
}

impl<'a> DiffLook<'a> {
    /// The object as its kind's type: the driver table hands each kind's objects to that
    /// kind's driver only.
    pub fn object<S: KindSpec>(&self) -> &'a Object<S> {
        S::in_resource(self.resource)
            .expect("the driver table gives a kind's objects to its own driver")
    }
}

/// One kind, as the controller runs it.
pub trait Driver: Sync {
    /// Observe, compute and execute for one object of the kind (or clean up after it).
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a crds::ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>>;

    /// The job the kind would register for `look.resource` now, rendered as its reconcile
    /// renders it.
    fn desired<'a>(&'a self, look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>>;
}
