//! Per kind, the pure `compute`: a snapshot of what was observed (with one `now`) in, the
//! [`Effects`](crate::effects::Effects) the generic executor carries out. The job action
//! itself is [`crate::plan`]'s, shared by every kind with a job; what keeping the job came to
//! is a [`JobOutcome`] here.
//!
//! Each kind's file also renders its job (from the shared pieces in [`crate::render`]). A kind
//! of the App's shape (one job rendered from its spec, judged by its workload) implements
//! [`WorkloadKind`] and needs nothing else here.
//!
//! # Layout
//! - [`app`], [`pubs`], [`nomadjob`]: the workload kinds, each over [`crate::workload::look`];
//!   the App through [`WorkloadKind`].
//! - [`job`]: keeping the Nomad job, shared by every kind with one (the plan, verifying
//!   drift, Nomad's refusals and rollbacks).
//! - [`cronjob`]: a CronJob's status, failure events and next look from its child jobs.
//! - [`gitsource`]: a GitSource's status, events and next fetch from how a sync went.

pub mod app;
pub mod cronjob;
pub mod gitsource;
pub mod job;
pub mod nomadjob;
pub mod pubs;

use chrono::{DateTime, Utc};
use crds::{ConditionType, KindSpec, Object, ObjectRef, Status};

use crate::effects::{Effects, PlannedEvent};
use crate::nomad_job::Job;
use crate::status::{record_rejection, record_rollback, Rejection, Rollback};
use crate::workload::{look, WorkloadLook, WorkloadSnapshot, WorkloadSpec};

/// A kind whose every object keeps one Nomad job rendered from its spec and is judged by that
/// job's workload (allocations, checks, rollout, healing): the App's shape. The controller
/// runs every such kind with one reconcile (`controller/src/reconcile/workload_kind.rs`), and
/// `nomarch diff` with the same rendering and plan; a new kind of this shape is its spec and
/// [`KindSpec`] in `crds`, this impl in its own file here, and one line in the controller's
/// table of drivers.
pub trait WorkloadKind: KindSpec {
    /// The job the object renders. Pure: golden files pin it.
    fn render(object: &Object<Self>) -> Job;
    /// What the workload's look judges the object against.
    fn workload_spec<'a>(object: &'a Object<Self>, key: &'a ObjectRef) -> WorkloadSpec<'a>;
    /// Objects that must be Ready before the job is registered (an App's `dependsOn`).
    fn depends_on(_object: &Object<Self>) -> Vec<ObjectRef> {
        Vec::new()
    }
    /// The decisions once the job is kept and the workload observed (`workload.previous` is
    /// the stored status).
    fn compute(object: &Object<Self>, job: &JobOutcome, workload: WorkloadSnapshot<'_>) -> Effects;
}

/// What keeping the job came to, as status records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobOutcome {
    /// Not registered: waiting (dependencies not Ready), and why.
    pub waiting: Option<String>,
    /// Nomad refused the desired job (now, or before): status shows it as `Invalid`.
    pub rejected: Option<Rejection>,
    /// Nomad rolled the desired job back after its rollout failed (now, or before): status
    /// shows it as `Degraded`, reason `RolledBack`.
    pub rolled_back: Option<Rollback>,
}

/// `Ready`, said once when the object just became so.
pub fn became_ready(stored: Option<&Status>, status: &Status) -> Option<PlannedEvent> {
    let ready = status.is_true(ConditionType::Ready);
    let was_ready = stored.is_some_and(|s| s.is_true(ConditionType::Ready));
    (ready && !was_ready).then(|| {
        let message = status
            .condition(ConditionType::Ready)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        PlannedEvent::normal("Ready", message)
    })
}

/// Nomad's refusal and rollback (from keeping the job) put on record over a status the kind
/// computed; `stored` is what etcd holds (a rollback keeps the time it was first shown).
pub fn record_job_outcome(
    status: &mut Status,
    stored: Option<&Status>,
    job: &JobOutcome,
    now: DateTime<Utc>,
) {
    record_rejection(status, job.rejected.as_ref(), now);
    record_rollback(status, stored, job.rolled_back.as_ref(), now);
}

/// Nothing more is on its way: Ready, or stopped with nothing running any more.
pub fn settled(status: &Status) -> bool {
    status.is_true(ConditionType::Ready) || status.is_true(ConditionType::Stopped)
}

/// What the App and the NomadJob do alike after keeping the job: the workload's look, the job's
/// outcome on record over it, and `Ready` said once after the rollout's steps.
pub fn look_and_record(
    workload: &WorkloadSnapshot<'_>,
    stored: Option<&Status>,
    job: &JobOutcome,
) -> WorkloadLook {
    let mut look = look(workload);
    record_job_outcome(&mut look.status, stored, job, workload.now);
    look.events.extend(became_ready(stored, &look.status));
    look
}
