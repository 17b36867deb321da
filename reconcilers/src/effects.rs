//! What a kind's `compute` returns besides the job action, for one generic executor
//! (`controller/src/reconcile/execute.rs`) to carry out in a fixed order: stop the allocations
//! healing chose (each said as `Healed`), note each node's troubles, store the status when it
//! changed, say the events, and tell the queue when to look again. Nothing here is decided by
//! the executor.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::Status;

use crate::healing::TroubleKind;

/// An event to record once the status is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl PlannedEvent {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> PlannedEvent {
        PlannedEvent {
            warning: false,
            reason,
            message: message.into(),
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> PlannedEvent {
        PlannedEvent {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

impl From<crate::rollout::RolloutEvent> for PlannedEvent {
    fn from(step: crate::rollout::RolloutEvent) -> PlannedEvent {
        PlannedEvent {
            warning: step.warning,
            reason: step.reason,
            message: step.message,
        }
    }
}

/// An allocation healing stops so Nomad places a replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heal {
    pub alloc: String,
    /// The `Healed` event's message.
    pub message: String,
}

/// Trouble on a node (an allocation failed, lost or healed there), for healing's memory across
/// objects, which tells a suspect node from one application's bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTrouble {
    pub node_id: String,
    pub node_name: String,
    pub alloc: String,
    pub kind: TroubleKind,
    /// When it was seen (the snapshot's `now`).
    pub at: DateTime<Utc>,
}

/// When the queue looks at the object again without a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Only when something changes (the object, its job, its allocations, its nodes).
    OnChange,
    After(Duration),
}

/// Everything a reconcile does besides keeping the job, decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Effects {
    /// Stored when it differs from the status the object had.
    pub status: Status,
    pub heals: Vec<Heal>,
    pub troubles: Vec<NodeTrouble>,
    /// Said after the status is stored, in order.
    pub events: Vec<PlannedEvent>,
    pub requeue: Requeue,
}

impl Effects {
    /// The effects of a kind that heals nothing: its status, its events, its next look.
    pub fn without_healing(status: Status, events: Vec<PlannedEvent>, requeue: Requeue) -> Effects {
        Effects {
            status,
            heals: Vec::new(),
            troubles: Vec::new(),
            events,
            requeue,
        }
    }
}
