//! Errors at the command line's edge, and the exit status each one means.

use crds::ManifestError;

use crate::store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Invalid,
    /// `nomarch diff`: applying would change Nomad (as `nomad job plan` and diff(1) say it).
    Differs,
    Usage,
    Store,
    Conflict,
    NotFound,
    Runtime,
    /// `--wait`: a rollout failed, was rolled back, or Nomad refused the job.
    RolloutFailed,
    /// `--wait`: the timeout passed first.
    Timeout,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Invalid | ExitStatus::Differs => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Store => 3,
            ExitStatus::Conflict => 4,
            ExitStatus::NotFound => 5,
            ExitStatus::Runtime => 6,
            ExitStatus::RolloutFailed => 7,
            ExitStatus::Timeout => 8,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{}", render_manifest_errors(.0))]
    Invalid(Vec<ManifestError>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Some objects were handled and some were missing; each was already reported.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    RolloutFailed(String),
    #[error("{0}")]
    Timeout(String),
    /// Not a failure: `nomarch diff` found changes.
    #[error("{0}")]
    Differs(String),
}

fn render_manifest_errors(errors: &[ManifestError]) -> String {
    let mut text: String = errors.iter().map(|e| format!("{e}\n")).collect();
    text.push_str(&format!("{} error(s); nothing was written", errors.len()));
    text
}

impl CliError {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            CliError::Invalid(_) => ExitStatus::Invalid,
            CliError::Usage(_) => ExitStatus::Usage,
            CliError::NotFound(_) => ExitStatus::NotFound,
            CliError::Runtime(_) => ExitStatus::Runtime,
            CliError::RolloutFailed(_) => ExitStatus::RolloutFailed,
            CliError::Timeout(_) => ExitStatus::Timeout,
            CliError::Differs(_) => ExitStatus::Differs,
            CliError::Store(StoreError::Conflict { .. }) => ExitStatus::Conflict,
            CliError::Store(StoreError::NotFound(_)) => ExitStatus::NotFound,
            CliError::Store(_) => ExitStatus::Store,
        }
    }
}
