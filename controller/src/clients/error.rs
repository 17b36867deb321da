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

    /// Whether Nomad refused the job itself (invalid, or impossible to accept as it is), as
    /// opposed to failing to handle the request: asking again with the same job gets the same
    /// answer, so a register refused like this waits for a different job.
    pub fn refuses_the_job(&self) -> bool {
        let (status, message) = match self {
            ApiError::BadRequest { message, .. } => (400, message.as_str()),
            ApiError::Server {
                status, message, ..
            } => (*status, message.as_str()),
            _ => return false,
        };
        REFUSALS.iter().any(|(_, refuses)| refuses(status, message))
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

/// Nomad's answers that refuse the job, each with why it is one; anything else from a 5xx is
/// taken as Nomad failing for now (no leader, a lost RPC) and retried.
type Refusal = (&'static str, fn(u16, &str) -> bool);

const REFUSALS: &[Refusal] = &[
    // The request itself is malformed for this Nomad (an unknown field, a bad value).
    ("bad request", |status, _| status == 400),
    // Validation: nomad/job_endpoint_hooks.go jobValidate answers go-multierror's list
    // ("1 error occurred:\n\t* Task group web validation failed: ...").
    ("validation errors", |status, text| {
        status == 500 && (text.contains(" error occurred:") || text.contains(" errors occurred:"))
    }),
    // nomad/job_endpoint.go validateJobUpdate: what an update may not change.
    ("update not allowed", |status, text| {
        status == 500 && text.contains("cannot update ")
    }),
    // A namespace or node pool the job names does not exist (job_endpoint.go Register,
    // job_endpoint_hook_node_pool.go).
    ("nonexistent namespace or pool", |status, text| {
        status == 500 && text.contains("nonexistent")
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn server(message: &str) -> ApiError {
        ApiError::Server {
            api: "nomad",
            status: 500,
            message: message.into(),
        }
    }

    #[test]
    fn refusals_of_the_job_are_told_from_failures_to_handle_it() {
        let refused = [
            server("1 error occurred:\n\t* Task group web validation failed: ..."),
            server("2 errors occurred:\n\t* a\n\t* b"),
            server("cannot update job from type \"service\" to \"batch\""),
            server("job \"web\" is in nonexistent namespace \"nope\""),
            ApiError::BadRequest {
                api: "nomad",
                message: "invalid job".into(),
            },
        ];
        for error in refused {
            assert!(error.refuses_the_job(), "{error}");
        }
        let not_refused = [
            server("No cluster leader"),
            server("rpc error: EOF"),
            ApiError::Conflict("Enforcing job modify index 3".into()),
            ApiError::Timeout { api: "nomad" },
        ];
        for error in not_refused {
            assert!(!error.refuses_the_job(), "{error}");
        }
    }
}
