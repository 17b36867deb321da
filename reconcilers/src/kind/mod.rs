//! Per kind, the pure `compute`: a snapshot of what was observed (with one `now`) in, the
//! [`Effects`](crate::effects::Effects) the generic executor carries out. The job action
//! itself is [`crate::plan`]'s, shared by every kind with a job; what keeping the job came to
//! is a [`JobOutcome`] here.
//!
//! # Layout
//! - [`app`], [`pubs`], [`nomadjob`]: the workload kinds, each over [`crate::workload::look`].
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

use crds::{ConditionType, Status};

use crate::effects::PlannedEvent;
use crate::status::{Rejection, Rollback};

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
