//! The GitSource: a git repository of manifests that nomarch keeps applied.

use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Column, KindSpec};
use crate::duration::Duration;
use crate::meta::Object;
use crate::status::ConditionType;
use crate::validate::{
    check_branch, check_git_url, dns_label_problem, validate_secret_ref, Problems,
};

/// A git repository of manifests that nomarch keeps applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceSpec {
    /// `file://`, `ssh://`, `https://` or scp-style `git@host:path` URL.
    pub url: String,
    /// Branch to follow.
    #[serde(default = "main_branch")]
    pub branch: String,
    /// Folder inside the repository that holds the manifests.
    #[serde(default = "repo_root")]
    pub path: String,
    /// How often to poll for new commits.
    #[serde(default = "default_git_interval")]
    pub interval: Duration,
    /// Namespace for manifests that do not name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Delete objects this source created once they leave the repository.
    #[serde(default)]
    pub prune: bool,
    /// Credentials for the remote (ssh key or https token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<crate::workload::SecretKeyRef>,
    /// The HMAC secret that push webhooks must be signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<crate::workload::SecretKeyRef>,
}

fn main_branch() -> String {
    "main".to_string()
}
fn repo_root() -> String {
    ".".to_string()
}
fn default_git_interval() -> Duration {
    Duration::from_static("1m")
}

impl KindSpec for GitSourceSpec {
    fn validate(object: &Object<Self>, p: &mut Problems) {
        validate_gitsource(&object.spec, p)
    }

    fn columns(&self) -> Vec<Column> {
        vec![("URL", self.url.clone())]
    }

    fn wide_column(&self) -> Column {
        ("REF", format!("{}:{}", self.branch, self.path))
    }

    fn summary(&self) -> Vec<String> {
        vec![
            format!("url: {}", self.url),
            format!("branch: {}, path: {}", self.branch, self.path),
            format!("interval: {}", self.interval.as_str()),
        ]
    }

    fn default_task() -> Result<&'static str, &'static str> {
        Err("a git source runs nothing in Nomad: its fetches and syncs are in `nomarch events --kind gitsource`")
    }

    /// A source is in sync or not; it has no instances to be ready.
    fn shown_condition() -> (&'static str, ConditionType) {
        ("SYNCED", ConditionType::Synced)
    }
}

fn validate_gitsource(spec: &GitSourceSpec, p: &mut Problems) {
    if let Err(problem) = check_git_url(&spec.url) {
        p.add("spec.url", problem);
    }
    if let Err(problem) = check_branch(&spec.branch) {
        p.add("spec.branch", problem);
    }
    let path_ok = !spec.path.starts_with('/')
        && !spec.path.split('/').any(|part| part == "..")
        && !spec.path.contains('\0');
    p.check(path_ok, "spec.path", || {
        "must be a relative path inside the repository (no leading `/`, no `..`)".into()
    });
    p.check(
        spec.interval.get() >= StdDuration::from_secs(1),
        "spec.interval",
        || "must be at least 1s".into(),
    );
    if let Some(ns) = &spec.target_namespace {
        if let Some(problem) = dns_label_problem(ns) {
            p.add("spec.targetNamespace", problem);
        }
    }
    if let Some(secret) = &spec.secret_ref {
        validate_secret_ref(secret, "spec.secretRef", p);
    }
    if let Some(secret) = &spec.webhook_secret_ref {
        validate_secret_ref(secret, "spec.webhookSecretRef", p);
    }
}
