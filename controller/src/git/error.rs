//! What fetching and reading a git source can fail with.

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The remote could not be reached or refused us; the message is libgit2's, which never
    /// carries credentials (URLs with passwords are refused by validation).
    #[error("cannot fetch {url}: {message}")]
    Fetch {
        url: String,
        message: String,
        auth: bool,
    },
    #[error("branch `{branch}` does not exist in {url}")]
    BranchMissing { url: String, branch: String },
    /// The local mirror cannot be written: disk full, permissions.
    #[error("the git cache at {path} cannot be used: {message}")]
    Local { path: String, message: String },
    #[error("`{path}` is not a folder in commit {commit}")]
    PathMissing { path: String, commit: String },
    #[error("commit {commit} cannot be read: {message}")]
    Read { commit: String, message: String },
    #[error("commit {commit} holds {count} manifest files under `{path}`; the limit is {limit}")]
    TooManyFiles {
        commit: String,
        path: String,
        count: usize,
        limit: usize,
    },
}

impl GitError {
    /// Whether trying again later, with nothing else changed, may succeed. Network trouble and
    /// a full disk may pass; a missing branch or folder and refused credentials wait for
    /// someone to change the source, the repository or the secret (or for the next poll).
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::Fetch { auth, .. } => !auth,
            GitError::Local { .. } => true,
            GitError::BranchMissing { .. }
            | GitError::PathMissing { .. }
            | GitError::Read { .. }
            | GitError::TooManyFiles { .. } => false,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            GitError::Fetch { auth: true, .. } => "git_auth",
            GitError::Fetch { .. } => "git_fetch",
            GitError::BranchMissing { .. } => "git_branch_missing",
            GitError::Local { .. } => "git_local",
            GitError::PathMissing { .. } => "git_path_missing",
            GitError::Read { .. } => "git_read",
            GitError::TooManyFiles { .. } => "git_too_many_files",
        }
    }
}
