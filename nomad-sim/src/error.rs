//! Errors as Nomad and Consul answer them: a status code and a plain-text body.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 403,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            status: 405,
            message: "Invalid method".into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            message: message.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
