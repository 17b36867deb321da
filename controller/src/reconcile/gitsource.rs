//! The GitSource reconciler: fetch the branch; parse and validate every manifest of the commit;
//! plan the sync against the store (pure, in `reconcilers::source_sync`); write it. One bad
//! document, or one object that someone else owns, and nothing of the commit is applied: the
//! source says why (file:line:col) and the previous good state stays in force.
//!
//! Runs on every poll (`spec.interval`), on a webhook and on changes to the source itself. A
//! poll that finds the commit already applied still plans, so hand edits to objects this source
//! owns are put back, and writes nothing when nothing differs.

use chrono::Utc;
use crds::{GitSource, ManifestError, ObjectRef, Resource};
use reconcilers::kind::gitsource::{
    compute, describe_conflicts, describe_errors, not_due_for, short, Attempt,
};
use reconcilers::source_sync::{self, Owner, SyncPlan};
use std::sync::Arc;

use super::driver::{Desired, DiffError, DiffLook, Driver};
use super::execute::{execute as execute_effects, save_status};
use super::heal::HealState;
use super::{AllKinds, ReconcileError};
use crate::git::{Credentials, GitError, Mirror};
use crate::runtime::context::Context;
use crate::runtime::metrics::SourceLabel;
use crate::runtime::queue::Outcome;
use crate::store::{Change, EventType};
use futures::future::BoxFuture;

/// What git sources keep across reconciles: where their bare mirrors live, each source's last
/// parsed commit (so a poll that finds no new commit parses nothing), and what the webhook
/// asked for.
pub struct GitState {
    /// `--git-cache`.
    pub cache_dir: std::path::PathBuf,
    parsed_commits: std::sync::Mutex<std::collections::HashMap<ObjectRef, ParsedCommit>>,
    /// Sources a verified webhook asked to fetch now, before their interval is up.
    pub fetch_requests: std::sync::Mutex<std::collections::HashSet<ObjectRef>>,
    /// Webhook deliveries already received (replays are refused).
    pub deliveries: super::deliveries::RecentDeliveries,
}

/// One commit's manifests as parsed for one source (folder and namespace included in the key:
/// a source whose `path` or `targetNamespace` changed parses again).
struct ParsedCommit {
    key: String,
    manifests: Parsed,
}

impl GitState {
    pub fn new(cache_dir: std::path::PathBuf) -> GitState {
        GitState {
            cache_dir,
            parsed_commits: Default::default(),
            fetch_requests: Default::default(),
            deliveries: Default::default(),
        }
    }
}

pub async fn reconcile(
    ctx: &Context,
    git: &GitState,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    match sync(ctx, git, heal, key).await {
        // A source waits for someone to fix the repository, the branch or the secret; it still
        // looks again at every poll, not only when the source object changes.
        Err(ReconcileError::Source(e)) if !e.is_transient() => {
            ctx.event(key, EventType::Warning, "SyncFailed", e.to_string())
                .await;
            Ok(Outcome::RequeueAfter(poll_interval(ctx, key)))
        }
        result => result,
    }
}

fn poll_interval(ctx: &Context, key: &ObjectRef) -> std::time::Duration {
    match ctx.cache.get(key) {
        Some(Resource::GitSource(source)) => source.spec.interval.get(),
        _ => std::time::Duration::from_secs(60),
    }
}

/// Observe and carry out: fetch, parse, plan, apply (each step's failure ends the attempt);
/// `reconcilers::kind::gitsource::compute` says what the attempt means for status and events.
async fn sync(
    ctx: &Context,
    git: &GitState,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    let Some(Resource::GitSource(source)) = ctx.cache.get(key) else {
        // Objects it synced stay: deleting a source is not a request to delete what runs.
        forget(ctx, git, key);
        return Ok(Outcome::Done);
    };
    let now = Utc::now();
    let requested = lock(&git.fetch_requests).remove(key)
        || reconcilers::operator::pending_request(&source.metadata, source.status.as_ref())
            .is_some();
    if let Some(wait) = not_due_for(&source, requested, now) {
        return Ok(Outcome::RequeueAfter(wait));
    }
    let (attempt, failure) = attempt(ctx, git, key, &source).await;
    let applied = matches!(attempt, Attempt::Applied { .. });
    let effects = compute(&source, &attempt, now);
    let stored = source.status.as_ref();
    if let Some(error) = failure {
        // A status that cannot be written (etcd down) does not hide the original error.
        if let Err(e) = save_status(ctx, key, stored, &effects.status).await {
            tracing::warn!(source = %key, error = %e, "could not record the failure in status");
        }
        return Err(error);
    }
    if applied {
        ctx.metrics
            .git_last_sync
            .get_or_create(&SourceLabel {
                source: key.to_string(),
            })
            .set(now.timestamp());
    }
    execute_effects(ctx, heal, key, stored, effects).await
}

/// One sync attempt: what happened, and the error that ended it early, if one did.
async fn attempt(
    ctx: &Context,
    git: &GitState,
    key: &ObjectRef,
    source: &GitSource,
) -> (Attempt, Option<ReconcileError>) {
    let failed = |fetched: Option<&str>, reason: &'static str, message: String| Attempt::Failed {
        fetched: fetched.map(str::to_string),
        reason,
        message,
    };
    let commit = match fetch(ctx, git, key, source).await {
        Ok(commit) => commit,
        Err(e) => return (failed(None, e.reason(), e.to_string()), Some(e.into())),
    };
    let manifests = match parse(&ctx.nomad, git, key, source, &commit).await {
        Ok(manifests) => manifests,
        Err(e) => {
            let message = format!("commit {}: {e}", short(&commit));
            return (failed(Some(&commit), e.reason(), message), Some(e.into()));
        }
    };
    let desired = match manifests.as_ref() {
        Ok(desired) => desired,
        Err(errors) => {
            let refused = Attempt::Refused {
                message: describe_errors(&commit, errors),
                commit,
                reason: "InvalidManifests",
            };
            return (refused, None);
        }
    };
    let plan = plan(ctx, key, source, &commit, desired);
    if !plan.conflicts.is_empty() {
        let refused = Attempt::Refused {
            message: describe_conflicts(&commit, &plan),
            commit,
            reason: "OwnershipConflict",
        };
        return (refused, None);
    }
    if let Err(e) = apply(ctx, key, &commit, &plan).await {
        // Said in status too, so the retry is due at once rather than at the next poll (a
        // settled source waits for its interval).
        let message = format!("commit {}: not applied yet: {e}", short(&commit));
        return (failed(Some(&commit), "ApplyFailed", message), Some(e));
    }
    let applied = Attempt::Applied {
        summary: plan.summary(),
        noop: plan.is_noop(),
        owned: plan.create.len() + plan.update.len() + plan.unchanged.len(),
        commit,
    };
    (applied, None)
}

/// Drops what the controller keeps in memory for a deleted source. The mirror on disk stays
/// (it is a cache; a source created again under the same name fetches less).
fn forget(ctx: &Context, git: &GitState, key: &ObjectRef) {
    lock(&git.parsed_commits).remove(key);
    let _ = ctx.metrics.git_last_sync.remove(&SourceLabel {
        source: key.to_string(),
    });
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What can keep a sync from starting.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("secret {name} (item {key}) does not exist")]
    SecretMissing { name: String, key: String },
    #[error(transparent)]
    Api(#[from] crate::clients::ApiError),
    /// Nomad could not be asked about the commit's NomadJobs (nothing is applied unchecked).
    #[error("{0}")]
    JobCheck(crate::clients::ApiError),
}

impl SourceError {
    /// The `Fetched` condition's reason.
    fn reason(&self) -> &'static str {
        match self {
            SourceError::Git(GitError::Fetch { auth: true, .. }) => "AuthenticationFailed",
            SourceError::Git(GitError::BranchMissing { .. }) => "BranchNotFound",
            SourceError::Git(GitError::Local { .. }) => "CacheUnavailable",
            SourceError::Git(GitError::PathMissing { .. }) => "PathNotFound",
            SourceError::Git(GitError::TooManyFiles { .. }) => "TooManyFiles",
            SourceError::Git(_) => "FetchFailed",
            SourceError::SecretMissing { .. } => "SecretNotFound",
            SourceError::Api(_) => "SecretUnreadable",
            SourceError::JobCheck(_) => "NomadUnreachable",
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Git(e) => e.is_transient(),
            // Until someone writes the secret; the next poll looks again.
            SourceError::SecretMissing { .. } => true,
            SourceError::Api(e) | SourceError::JobCheck(e) => e.is_transient(),
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Git(e) => e.metric_label(),
            SourceError::SecretMissing { .. } => "secret_missing",
            SourceError::Api(e) | SourceError::JobCheck(e) => e.metric_label(),
        }
    }
}

/// Reads one item of a secret (a Nomad variable in the source's namespace).
pub async fn read_secret(
    ctx: &Context,
    namespace: &str,
    secret: &crds::workload::SecretKeyRef,
) -> Result<crate::clients::Secret, SourceError> {
    ctx.nomad
        .variable_item(namespace, &secret.name, &secret.key)
        .await?
        .ok_or_else(|| SourceError::SecretMissing {
            name: secret.name.clone(),
            key: secret.key.clone(),
        })
}

async fn fetch(
    ctx: &Context,
    git: &GitState,
    key: &ObjectRef,
    source: &GitSource,
) -> Result<String, SourceError> {
    let credentials = match &source.spec.secret_ref {
        Some(secret) => Some(Credentials::for_url(
            &source.spec.url,
            read_secret(ctx, &key.namespace, secret).await?,
        )),
        None => None,
    };
    let mirror = Mirror::for_source(&git.cache_dir, &key.namespace, &key.name, &source.spec.url);
    let (url, branch) = (source.spec.url.clone(), source.spec.branch.clone());
    let fetched =
        tokio::task::spawn_blocking(move || mirror.fetch(&url, &branch, credentials.as_ref()))
            .await
            .unwrap_or_else(|e| {
                Err(GitError::Local {
                    path: git.cache_dir.display().to_string(),
                    message: format!("the fetch task failed: {e}"),
                })
            })?;
    Ok(fetched)
}

type Parsed = Arc<Result<Vec<Resource>, Vec<ManifestError>>>;

/// The commit's objects (or every error), parsed once per commit, folder and namespace.
async fn parse(
    nomad: &crate::clients::NomadClient,
    git: &GitState,
    key: &ObjectRef,
    source: &GitSource,
    commit: &str,
) -> Result<Parsed, SourceError> {
    let target = source.spec.target_namespace.clone();
    let cache_key = format!(
        "{commit}:{}:{}",
        source.spec.path,
        target.as_deref().unwrap_or("")
    );
    if let Some(parsed) = lock(&git.parsed_commits).get(key) {
        if parsed.key == cache_key {
            return Ok(parsed.manifests.clone());
        }
    }
    let mirror = Mirror::for_source(&git.cache_dir, &key.namespace, &key.name, &source.spec.url);
    let (commit_id, folder) = (commit.to_string(), source.spec.path.clone());
    let loaded = tokio::task::spawn_blocking(move || {
        let repo = mirror.repository()?;
        let files = crate::git::read_manifests(&repo, &commit_id, &folder)?;
        Ok::<_, GitError>(crds::load_blobs(
            files.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
            target.as_deref(),
        ))
    })
    .await
    .unwrap_or_else(|e| {
        Err(GitError::Read {
            commit: commit.to_string(),
            message: format!("the parse task failed: {e}"),
        })
    })?;
    // The commit's NomadJobs asked of Nomad, as `nomarch apply` asks: what Nomad refuses makes
    // the commit invalid; Nomad not answering is retried (and nothing is cached).
    let parsed: Parsed = match loaded {
        Ok(manifests) => match super::nomadjob::check_manifests(nomad, &manifests).await {
            Ok(()) => Arc::new(Ok(manifests.into_iter().map(|m| m.resource).collect())),
            Err(super::nomadjob::CheckError::Invalid(problems)) => Arc::new(Err(problems)),
            Err(super::nomadjob::CheckError::Nomad(e)) => return Err(SourceError::JobCheck(e)),
        },
        Err(errors) => Arc::new(Err(errors)),
    };
    lock(&git.parsed_commits).insert(
        key.clone(),
        ParsedCommit {
            key: cache_key,
            manifests: parsed.clone(),
        },
    );
    Ok(parsed)
}

fn plan(
    ctx: &Context,
    key: &ObjectRef,
    source: &GitSource,
    commit: &str,
    desired: &[Resource],
) -> SyncPlan {
    let wanted: std::collections::HashSet<ObjectRef> =
        desired.iter().map(Resource::object_ref).collect();
    let owner = Owner::Source(key.clone());
    let live = ctx
        .cache
        .select(|r| wanted.contains(&r.object_ref()) || Owner::of(r) == owner);
    source_sync::plan(key, commit, source.spec.prune, desired.to_vec(), &live)
}

async fn apply(
    ctx: &Context,
    key: &ObjectRef,
    commit: &str,
    plan: &SyncPlan,
) -> Result<(), ReconcileError> {
    if plan.is_noop() {
        return Ok(());
    }
    let changes: Vec<Change> = plan
        .create
        .iter()
        .cloned()
        .map(Change::Create)
        .chain(plan.update.iter().cloned().map(Change::Update))
        .chain(plan.prune.iter().map(|(object, version)| Change::Delete {
            object: object.clone(),
            resource_version: version.clone(),
        }))
        .collect();
    tracing::info!(source = %key, commit = short(commit), summary = %plan.summary(), "applying commit");
    ctx.store.commit_changes(&changes).await?;
    Ok(())
}

/// The GitSource's driver: it registers no job (`nomarch diff` says so).
pub struct GitSources;

impl Driver for GitSources {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>> {
        Box::pin(reconcile(ctx, &kinds.git, &kinds.heal, key))
    }

    fn desired<'a>(&'a self, _look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>> {
        Box::pin(async {
            Ok(Desired::Note(
                "registers no Nomad job (`nomarch get gitsource -o wide` shows its last sync)"
                    .into(),
            ))
        })
    }
}
