//! What can go wrong talking to the store, and whether trying again can help.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd at {endpoints} is unreachable: {detail}")]
    Unreachable { endpoints: String, detail: String },
    /// etcd's members answered, but none carried the request out within the budget (no
    /// leader, an election that did not end).
    #[error("etcd is unavailable (still refusing after {budget:?}): {detail}")]
    Unavailable { budget: Duration, detail: String },
    /// A write was sent and its answer lost: it may or may not have been applied. Not sent
    /// again, since a second try could apply it twice; read and decide.
    #[error("etcd at {endpoint} lost the answer to a write, which may or may not have been applied: {detail}")]
    Unknown { endpoint: String, detail: String },
    #[error("{object} was changed by someone else (resourceVersion {expected} is stale); read it again and retry")]
    Conflict { object: String, expected: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored value at {key} cannot be read: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("etcd: {0}")]
    Etcd(String),
    /// This controller no longer leads; it must not write anything.
    #[error("this controller no longer holds the leader lease; the write was refused")]
    Fenced,
}

impl StoreError {
    /// Whether the same request may succeed later without anything else changing.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Unknown { .. }
            | StoreError::Etcd(_) => true,
            // A conflict heals by re-reading, which the caller's next attempt does.
            StoreError::Conflict { .. } => true,
            StoreError::NotFound(_) | StoreError::Corrupt { .. } | StoreError::Fenced => false,
        }
    }

    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Unreachable { .. } => "unreachable",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Unknown { .. } => "unknown_outcome",
            StoreError::Conflict { .. } => "conflict",
            StoreError::NotFound(_) => "not_found",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Etcd(_) => "etcd",
            StoreError::Fenced => "fenced",
        }
    }
}

impl From<etcd_client::Error> for StoreError {
    fn from(e: etcd_client::Error) -> Self {
        StoreError::Etcd(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
