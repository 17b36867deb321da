//! Git sources: a bare mirror per source that fetches one branch, and the manifests of a
//! commit read straight from its tree (no work tree, so nothing is ever half checked out).
//!
//! # Layout
//! - [`mirror`]: fetching a branch into the mirror, with credentials that are never logged.
//! - [`tree`]: a commit's manifest files under a folder, within limits.
//! - [`error`]: what can fail, and whether waiting can help.

mod error;
mod mirror;
mod tree;

pub use error::GitError;
pub use mirror::{Credentials, Mirror};
pub use tree::{read_manifests, MAX_FILES};
