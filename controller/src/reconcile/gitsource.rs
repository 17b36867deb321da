//! The GitSource reconciler: fetch the branch; parse and validate every manifest of the commit;
//! plan the sync against the store (pure, in `reconcilers::source_sync`); write it. One bad
//! document, or one object that someone else owns, and nothing of the commit is applied: the
//! source says why (file:line:col) and the previous good state stays in force.
//!
//! Runs on every poll (`spec.interval`), on a webhook and on changes to the source itself. A
//! poll that finds the commit already applied still plans, so hand edits to objects this source
//! owns are put back, and writes nothing when nothing differs.

use chrono::Utc;
use crds::{ConditionStatus, ConditionType, GitSource, ManifestError, ObjectRef, Resource};
use reconcilers::source_sync::{self, Owner, SyncPlan};
use reconcilers::status::set_condition;
use std::sync::Arc;

use super::execute::save_status;
use super::ReconcileError;
use crate::git::{Credentials, GitError, Mirror};
use crate::runtime::context::Context;
use crate::runtime::metrics::SourceLabel;
use crate::runtime::queue::Outcome;
use crate::store::{Change, EventType};

/// Errors quoted in status and events; the rest are counted.
const ERRORS_SHOWN: usize = 5;

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
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    match sync(ctx, git, key).await {
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

async fn sync(ctx: &Context, git: &GitState, key: &ObjectRef) -> Result<Outcome, ReconcileError> {
    let Some(Resource::GitSource(source)) = ctx.cache.get(key) else {
        // Objects it synced stay: deleting a source is not a request to delete what runs.
        forget(ctx, git, key);
        return Ok(Outcome::Done);
    };
    let interval = source.spec.interval.get();
    let previous = source.status.clone();
    let now = Utc::now();
    if let Some(wait) = not_due_for(git, key, &source, now) {
        return Ok(Outcome::RequeueAfter(wait));
    }
    let mut status = previous.clone().unwrap_or_default();
    status.observed_generation = Some(source.metadata.generation);
    status.git.last_fetch_time = Some(now);

    let commit = match fetch(ctx, git, key, &source).await {
        Ok(commit) => {
            set_condition(
                &mut status.conditions,
                ConditionType::Fetched,
                true,
                "Fetched",
                format!("branch {} is at {}", source.spec.branch, short(&commit)),
                Utc::now(),
            );
            status.git.last_fetched_commit = Some(commit.clone());
            commit
        }
        Err(e) => {
            let failed = Failed::new(ConditionType::Fetched, e.reason(), e.to_string());
            return Err(failed
                .report(ctx, key, previous.as_ref(), status, e.into())
                .await);
        }
    };

    let manifests = match parse(&ctx.nomad, git, key, &source, &commit).await {
        Ok(manifests) => manifests,
        Err(e) => {
            let failed = Failed::new(
                ConditionType::Synced,
                e.reason(),
                format!("commit {}: {e}", short(&commit)),
            );
            return Err(failed
                .report(ctx, key, previous.as_ref(), status, e.into())
                .await);
        }
    };
    let outcome = match manifests.as_ref() {
        Err(errors) => Err(("InvalidManifests", describe_errors(&commit, errors))),
        Ok(desired) => {
            let plan = plan(ctx, key, &source, &commit, desired);
            if plan.conflicts.is_empty() {
                if let Err(e) = apply(ctx, key, &commit, &plan).await {
                    // Said in status too, so the retry is due at once rather than at the next
                    // poll (a settled source waits for its interval).
                    let message = format!("commit {}: not applied yet: {e}", short(&commit));
                    let failed = Failed::new(ConditionType::Synced, "ApplyFailed", message);
                    return Err(failed.report(ctx, key, previous.as_ref(), status, e).await);
                }
                Ok(plan)
            } else {
                Err(("OwnershipConflict", describe_conflicts(&commit, &plan)))
            }
        }
    };
    let now = Utc::now();
    match outcome {
        Ok(plan) => {
            let message = format!("commit {}: {}", short(&commit), plan.summary());
            if !plan.is_noop() {
                ctx.event(key, EventType::Normal, "Synced", message.clone())
                    .await;
            }
            set_condition(
                &mut status.conditions,
                ConditionType::Synced,
                true,
                "Applied",
                message,
                now,
            );
            status.git.last_applied_commit = Some(commit.clone());
            status.git.last_sync_time = Some(now);
            let owned = plan.create.len() + plan.update.len() + plan.unchanged.len();
            status.git.objects = Some(owned);
            ctx.metrics
                .git_last_sync
                .get_or_create(&SourceLabel {
                    source: key.to_string(),
                })
                .set(now.timestamp());
        }
        Err((reason, message)) => {
            let already_reported = status
                .condition(ConditionType::Synced)
                .is_some_and(|c| c.status == ConditionStatus::False && c.message == message);
            if !already_reported {
                ctx.event(key, EventType::Warning, "SyncFailed", message.clone())
                    .await;
            }
            set_condition(
                &mut status.conditions,
                ConditionType::Synced,
                false,
                reason,
                message,
                now,
            );
        }
    }
    status.git.last_attempted_commit = Some(commit);
    save_status(ctx, key, previous.as_ref(), &status).await?;
    Ok(Outcome::RequeueAfter(interval))
}

/// How long until the next fetch is due, or `None` when it is due now. Resyncs and other
/// wake-ups between polls must not turn the interval into "as often as anything happens": a
/// fetch is due when the interval has passed since the last one, the source changed, the last
/// attempt failed, or a verified webhook asked.
fn not_due_for(
    git: &GitState,
    key: &ObjectRef,
    source: &GitSource,
    now: chrono::DateTime<Utc>,
) -> Option<std::time::Duration> {
    let requested = lock(&git.fetch_requests).remove(key)
        || reconcilers::operator::pending_request(&source.metadata, source.status.as_ref())
            .is_some();
    let status = source.status.as_ref()?;
    let settled = status.observed_generation == Some(source.metadata.generation)
        && [ConditionType::Fetched, ConditionType::Synced]
            .into_iter()
            .all(|c| status.is_true(c));
    let last_fetch = status.git.last_fetch_time?;
    let next = last_fetch + chrono::Duration::from_std(source.spec.interval.get()).ok()?;
    match () {
        _ if requested || !settled => None,
        _ if next <= now => None,
        _ => (next - now).to_std().ok(),
    }
}

/// A step that failed: which condition turns False, why, and what to say.
struct Failed {
    condition: ConditionType,
    reason: &'static str,
    message: String,
}

impl Failed {
    fn new(condition: ConditionType, reason: &'static str, message: String) -> Failed {
        Failed {
            condition,
            reason,
            message,
        }
    }

    /// Puts the condition in status and hands the error back. A status that cannot be written
    /// (etcd down) does not hide the original error.
    async fn report(
        self,
        ctx: &Context,
        key: &ObjectRef,
        previous: Option<&crds::Status>,
        mut status: crds::Status,
        error: ReconcileError,
    ) -> ReconcileError {
        let now = Utc::now();
        set_condition(
            &mut status.conditions,
            self.condition,
            false,
            self.reason,
            self.message,
            now,
        );
        if let Err(e) = save_status(ctx, key, previous, &status).await {
            tracing::warn!(source = %key, error = %e, "could not record the failure in status");
        }
        error
    }
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

/// The first 12 hex digits, as people quote commits.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
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

fn describe_errors(commit: &str, errors: &[ManifestError]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(ERRORS_SHOWN)
        .map(|e| e.to_string())
        .collect();
    let more = errors.len().saturating_sub(ERRORS_SHOWN);
    let tail = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    format!(
        "commit {}: nothing applied, {} invalid: {}{tail}",
        short(commit),
        plural(errors.len(), "error"),
        shown.join("; ")
    )
}

fn describe_conflicts(commit: &str, plan: &SyncPlan) -> String {
    let shown: Vec<String> = plan
        .conflicts
        .iter()
        .take(ERRORS_SHOWN)
        .map(|c| c.to_string())
        .collect();
    format!(
        "commit {}: nothing applied, {} owned elsewhere: {}",
        short(commit),
        plural(plan.conflicts.len(), "object"),
        shown.join("; ")
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
