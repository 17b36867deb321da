//! A GitSource's decisions, pure: whether a fetch is due, and from how one sync attempt went
//! (fetched or not, the commit's manifests valid or not, owned elsewhere or not, applied or
//! not) to its status, events and next look. `controller/src/reconcile/gitsource.rs` fetches,
//! parses, plans with [`crate::source_sync`] and applies; this says what that means.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::{ConditionStatus, ConditionType, GitSource, ManifestError};

use crate::effects::{Effects, PlannedEvent, Requeue};
use crate::source_sync::SyncPlan;
use crate::status::set_condition;

/// Errors quoted in status and events; the rest are counted.
pub const ERRORS_SHOWN: usize = 5;

/// How one sync attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A step failed: fetching (`Fetched` turns False), or after the fetch of `commit` reading
    /// or applying it (`Synced` turns False). The error itself is the reconcile's: retried
    /// with backoff, or, when someone must fix something, at the next poll.
    Failed {
        fetched: Option<String>,
        reason: &'static str,
        message: String,
    },
    /// Nothing of the commit applied: its manifests are invalid, or objects in it are owned
    /// elsewhere (`reason` says which, the message names each).
    Refused {
        commit: String,
        reason: &'static str,
        message: String,
    },
    /// The commit is in force: `summary` of what changed, `noop` when nothing did, and how
    /// many objects the source owns now.
    Applied {
        commit: String,
        summary: String,
        noop: bool,
        owned: usize,
    },
}

/// The first characters of a commit, as people read it.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// How long until the next fetch is due, or `None` when it is due now. Resyncs and other
/// wake-ups between polls must not turn the interval into "as often as anything happens": a
/// fetch is due when the interval has passed since the last one, the source changed, the last
/// attempt failed, or someone asked (a verified webhook, `nomarch reconcile`).
pub fn not_due_for(source: &GitSource, requested: bool, now: DateTime<Utc>) -> Option<Duration> {
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

/// Status, events and the next look after one attempt at `now` (when the fetch began).
pub fn compute(source: &GitSource, attempt: &Attempt, now: DateTime<Utc>) -> Effects {
    let mut status = source.status.clone().unwrap_or_default();
    status.observed_generation = Some(source.metadata.generation);
    status.git.last_fetch_time = Some(now);
    let fetched = match attempt {
        Attempt::Failed { fetched, .. } => fetched.as_deref(),
        Attempt::Refused { commit, .. } | Attempt::Applied { commit, .. } => Some(commit.as_str()),
    };
    if let Some(commit) = fetched {
        set_condition(
            &mut status.conditions,
            ConditionType::Fetched,
            true,
            "Fetched",
            format!("branch {} is at {}", source.spec.branch, short(commit)),
            now,
        );
        status.git.last_fetched_commit = Some(commit.to_string());
    }
    let mut events = Vec::new();
    match attempt {
        Attempt::Failed {
            fetched,
            reason,
            message,
        } => {
            let condition = match fetched {
                None => ConditionType::Fetched,
                Some(_) => ConditionType::Synced,
            };
            set_condition(
                &mut status.conditions,
                condition,
                false,
                reason,
                message.clone(),
                now,
            );
        }
        Attempt::Refused {
            commit,
            reason,
            message,
        } => {
            // Said once per distinct refusal: a source stays refused until someone pushes.
            let already_said = status
                .condition(ConditionType::Synced)
                .is_some_and(|c| c.status == ConditionStatus::False && &c.message == message);
            if !already_said {
                events.push(PlannedEvent::warning("SyncFailed", message.clone()));
            }
            set_condition(
                &mut status.conditions,
                ConditionType::Synced,
                false,
                reason,
                message.clone(),
                now,
            );
            status.git.last_attempted_commit = Some(commit.clone());
        }
        Attempt::Applied {
            commit,
            summary,
            noop,
            owned,
        } => {
            let message = format!("commit {}: {summary}", short(commit));
            if !noop {
                events.push(PlannedEvent::normal("Synced", message.clone()));
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
            status.git.objects = Some(*owned);
            status.git.last_attempted_commit = Some(commit.clone());
        }
    }
    Effects::without_healing(status, events, Requeue::After(source.spec.interval.get()))
}

/// A commit with invalid manifests, every error at its place (the first few quoted).
pub fn describe_errors(commit: &str, errors: &[ManifestError]) -> String {
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

/// A commit with objects owned elsewhere (the first few named).
pub fn describe_conflicts(commit: &str, plan: &SyncPlan) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Status;

    fn source(status: Option<Status>) -> GitSource {
        let mut source: GitSource = serde_json::from_value(serde_json::json!({
            "apiVersion": "nomarch.io/v1", "kind": "GitSource",
            "metadata": {"name": "infra", "namespace": "default", "generation": 3},
            "spec": {"url": "https://git.example/infra.git", "branch": "main", "interval": "60s"},
        }))
        .expect("a GitSource");
        source.status = status;
        source
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn applied(noop: bool) -> Attempt {
        Attempt::Applied {
            commit: "0123456789abcdef".into(),
            summary: "1 created".into(),
            noop,
            owned: 4,
        }
    }

    /// (why, attempt) → (Fetched, Synced, events)
    type Row = (
        &'static str,
        Attempt,
        Option<bool>,
        Option<bool>,
        Vec<&'static str>,
    );

    #[test]
    fn each_attempt_sets_its_conditions_and_says_what_changed() {
        let refused = Attempt::Refused {
            commit: "0123456789abcdef".into(),
            reason: "InvalidManifests",
            message: "commit 0123456789ab: nothing applied".into(),
        };
        let fetch_failed = Attempt::Failed {
            fetched: None,
            reason: "BranchNotFound",
            message: "no branch main".into(),
        };
        let apply_failed = Attempt::Failed {
            fetched: Some("0123456789abcdef".into()),
            reason: "ApplyFailed",
            message: "etcd: timeout".into(),
        };
        let table: [Row; 5] = [
            (
                "applied",
                applied(false),
                Some(true),
                Some(true),
                vec!["Synced"],
            ),
            (
                "nothing to change",
                applied(true),
                Some(true),
                Some(true),
                vec![],
            ),
            (
                "refused",
                refused,
                Some(true),
                Some(false),
                vec!["SyncFailed"],
            ),
            ("fetch failed", fetch_failed, Some(false), None, vec![]),
            (
                "apply failed",
                apply_failed,
                Some(true),
                Some(false),
                vec![],
            ),
        ];
        for (why, attempt, fetched, synced, events) in table {
            let effects = compute(&source(None), &attempt, at(0));
            let condition = |c| {
                effects
                    .status
                    .condition(c)
                    .map(|c| c.status == ConditionStatus::True)
            };
            assert_eq!(condition(ConditionType::Fetched), fetched, "{why}");
            assert_eq!(condition(ConditionType::Synced), synced, "{why}");
            assert_eq!(
                effects.events.iter().map(|e| e.reason).collect::<Vec<_>>(),
                events,
                "{why}"
            );
            assert_eq!(
                effects.requeue,
                Requeue::After(Duration::from_secs(60)),
                "{why}"
            );
        }
    }

    #[test]
    fn a_refusal_is_said_once_and_a_fetch_is_due_by_the_interval() {
        let refused = Attempt::Refused {
            commit: "c1".into(),
            reason: "OwnershipConflict",
            message: "commit c1: nothing applied, 1 object owned elsewhere".into(),
        };
        let first = compute(&source(None), &refused, at(0));
        let again = compute(&source(Some(first.status)), &refused, at(60));
        assert!(
            again.events.is_empty(),
            "the same refusal is not said again"
        );

        let synced = compute(&source(None), &applied(true), at(0)).status;
        let settled = source(Some(synced));
        assert_eq!(
            not_due_for(&settled, false, at(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(not_due_for(&settled, true, at(20)), None, "asked for");
        assert_eq!(not_due_for(&settled, false, at(61)), None, "interval over");
        assert_eq!(
            not_due_for(&source(None), false, at(0)),
            None,
            "never fetched"
        );
    }
}
