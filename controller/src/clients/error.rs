//! Errors from Nomad and Consul, classified so a caller can decide: retry with backoff
//! (transient) or stop until something changes (terminal).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{api} at {address} is unreachable: {detail}")]
    Unreachable {
        api: &'static str,
        address: String,
        detail: String,
    },
    #[error("{api} did not answer in time")]
    Timeout { api: &'static str },
    /// A check-and-set register lost: someone else changed the job. Re-read and retry.
    #[error("check-and-set conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{api} refused the request: {message}")]
    Forbidden { api: &'static str, message: String },
    #[error("{api} rejected the request: {message}")]
    BadRequest { api: &'static str, message: String },
    #[error("{api} failed ({status}): {message}")]
    Server {
        api: &'static str,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from {api}: {detail}")]
    Decode { api: &'static str, detail: String },
    /// Refused before sending: this controller does not (or no longer) hold the leader lease.
    #[error("not sent: this controller does not hold the leader lease")]
    NotLeader,
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. }
            | ApiError::Timeout { .. }
            | ApiError::Conflict(_)
            | ApiError::Server { .. } => true,
            ApiError::NotFound(_)
            | ApiError::Forbidden { .. }
            | ApiError::BadRequest { .. }
            | ApiError::Decode { .. }
            | ApiError::NotLeader => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            ApiError::Unreachable { .. } => "unreachable",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Conflict(_) => "conflict",
            ApiError::NotFound(_) => "not_found",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Server { .. } => "server_error",
            ApiError::Decode { .. } => "decode",
            ApiError::NotLeader => "not_leader",
        }
    }
}
