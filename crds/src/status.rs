//! What the controller last observed of an object, as typed values.
//!
//! Status is stored and cached by the kind-agnostic runtime, so it is one type: the fields every
//! kind shares (`observedGeneration`, `conditions`) and one section per concern, flattened into
//! the same map users see in `nomarch get -o yaml`. A section's fields are all optional and only
//! the kinds that own it fill them, so an App's status shows no cron fields and a CronJob's no
//! hub. Sections:
//! - [`WorkloadStatus`]: App and Pub (and the job record a CronJob shares): replicas, the job,
//!   what nomarch last wrote, a refusal or rollback on hold, allocations being watched for healing,
//!   and the rollout (Nomad's latest deployment).
//! - [`PubStatus`]: the hub a Pub is pinned to, its phase and its last move.
//! - [`CronStatus`]: runs of a CronJob.
//! - [`GitSourceStatus`]: fetches and syncs of a GitSource.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the controller last observed. Kinds fill the sections that are theirs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last `nomarch reconcile` request handled (the token of its annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(flatten)]
    pub workload: WorkloadStatus,
    #[serde(flatten)]
    pub hub: PubStatus,
    #[serde(flatten)]
    pub cron: CronStatus,
    #[serde(flatten)]
    pub git: GitSourceStatus,
}

impl Status {
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether a condition is present and `True`.
    pub fn is_true(&self, type_: ConditionType) -> bool {
        self.condition(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

/// The conditions nomarch sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionType {
    /// App, Pub: every desired instance is healthy. CronJob: the periodic job is registered.
    Ready,
    /// App, Pub: instances are being started or replaced.
    Progressing,
    /// App, Pub: checks fail, or a rollout was rolled back.
    Degraded,
    /// App, Pub, CronJob: Nomad refused the job (only present once it has).
    Invalid,
    /// GitSource: the branch was fetched.
    Fetched,
    /// GitSource: the fetched commit's manifests were applied.
    Synced,
    /// App, Pub: `spec.stopped` is set (only present then); `True` once no instance runs.
    Stopped,
    /// Every kind: `nomarch suspend` set the object aside (only present while it is); nomarch
    /// changes nothing for it, and what runs keeps running.
    Suspended,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
            ConditionType::Invalid => "Invalid",
            ConditionType::Fetched => "Fetched",
            ConditionType::Synced => "Synced",
            ConditionType::Stopped => "Stopped",
            ConditionType::Suspended => "Suspended",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's status, spelled as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> ConditionStatus {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    /// One word, CamelCase, for machines (`ReplicasHealthy`, `RolledBack`).
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

/// App and Pub: the instances, the Nomad job, and what nomarch holds back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaCounts>,
    /// The Nomad job as last observed; absent while it is not registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRecord>,
    /// The `JobModifyIndex` Nomad gave nomarch's last write (App, Pub, CronJob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written_job_modify_index: Option<u64>,
    /// The fingerprint of the job nomarch last wrote, so job meta can stay constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written_job_fingerprint: Option<String>,
    /// The fingerprint of a job Nomad refused: not sent again until the desired job differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_job_fingerprint: Option<String>,
    /// A rollout Nomad rolled back, held until the spec or the retry annotation changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRecord>,
    /// Allocations whose checks are critical, and since when (healing waits out the grace).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub critical_since: BTreeMap<String, DateTime<Utc>>,
    /// The job's latest Nomad deployment: the rollout in progress, or how the last one ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// How the rollouts before it ended, newest first (10 are kept): `nomarch rollout history`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_rollouts: Vec<PastRollout>,
}

/// A rollout that is over, as history needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PastRollout {
    pub deployment_id: String,
    pub job_version: u64,
    /// The object's generation, when nomarch wrote that job version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// As it was last seen: a rollout replaced before it was seen to end shows its last phase.
    pub phase: RolloutPhase,
}

/// One Nomad deployment as nomarch reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub deployment_id: String,
    pub phase: RolloutPhase,
    /// The Nomad job version being rolled out.
    pub job_version: u64,
    /// The object's generation that job came from; absent when nomarch did not write it (a
    /// version Nomad registered itself when rolling back, or an edit made outside nomarch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Per task group: instances wanted, placed, healthy, and the canaries.
    pub groups: BTreeMap<String, GroupRollout>,
    /// When the rollout fails unless an instance turns healthy first (the earliest group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Nomad's words (the deployment's status description).
    #[serde(default)]
    pub description: String,
}

impl RolloutStatus {
    /// Totals over the groups: (desired, healthy).
    pub fn healthy_of_desired(&self) -> (u32, u32) {
        self.groups.values().fold((0, 0), |(desired, healthy), g| {
            (desired + g.desired, healthy + g.healthy)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RolloutPhase {
    /// Instances are being replaced or started.
    Progressing,
    /// Every canary is healthy and the rollout waits for `nomarch rollout promote`.
    AwaitingPromotion,
    Paused,
    Succeeded,
    /// Failed, and Nomad did not roll back (no `autoRevert`, or no stable version to go to).
    Failed,
    /// Failed, and Nomad registered the last stable version again.
    RolledBack,
    /// A newer job version replaced it before it ended.
    Superseded,
}

impl RolloutPhase {
    /// Whether Nomad is done with this deployment.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RolloutPhase::Succeeded
                | RolloutPhase::Failed
                | RolloutPhase::RolledBack
                | RolloutPhase::Superseded
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRollout {
    pub desired: u32,
    pub placed: u32,
    pub healthy: u32,
    pub unhealthy: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub desired_canaries: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub placed_canaries: u32,
    /// Whether the canaries were promoted (always false without canaries).
    #[serde(default)]
    pub promoted: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub id: String,
    pub version: u64,
    pub job_modify_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    /// The fingerprint of the job that failed to roll out.
    pub job_fingerprint: String,
    /// The object's generation that job came from.
    pub generation: i64,
    /// Nomad's words (the deployment's status description).
    pub message: String,
    /// The `nomarch.io/retry` annotation's value when the rollback was seen.
    pub retry_token: String,
}

/// Pub: where it runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PubStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PubPhase>,
    /// The hub the pub is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubRecord>,
    /// Since when the hub has been seen not ready; the pub moves when its grace runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_unhealthy_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reallocation: Option<Reallocation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PubPhase {
    /// No ready hub matching the selector has room.
    Unschedulable,
    /// Pinned, not started yet.
    Pending,
    /// Running, not healthy yet.
    Starting,
    Running,
    /// The hub it is pinned to is not ready.
    HubDown,
    /// `spec.stopped`: nothing runs; the hub is kept for when it starts again.
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubRecord {
    /// The Nomad node ID.
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reallocation {
    /// Hub names.
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// CronJob: its runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,
    /// The newest failed run already reported with a `RunFailed` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reported_failure: Option<String>,
    /// The runs in progress (Nomad job IDs); present, perhaps empty, once a CronJob is observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_runs: Option<Vec<CronRun>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronRun {
    /// The run's Nomad job ID.
    pub job: String,
    pub scheduled: DateTime<Utc>,
    /// `Running`, `Succeeded`, `Failed` or `Stopped`.
    pub outcome: String,
}

/// GitSource: fetches and syncs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetch_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetched_commit: Option<String>,
    /// The last commit whose manifests were tried, applied or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<DateTime<Utc>>,
    /// How many objects the last applied commit owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sections flatten into one map, as the untyped status did, and read back whole.
    #[test]
    fn sections_flatten_and_round_trip() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let status = Status {
            observed_generation: Some(3),
            conditions: vec![Condition {
                type_: ConditionType::Ready,
                status: ConditionStatus::True,
                reason: "ReplicasHealthy".into(),
                message: "2/2 replicas healthy".into(),
                last_transition_time: t,
            }],
            workload: WorkloadStatus {
                replicas: Some(ReplicaCounts {
                    desired: 2,
                    running: 2,
                    healthy: 2,
                }),
                critical_since: [("a1".to_string(), t)].into(),
                ..Default::default()
            },
            hub: PubStatus {
                phase: Some(PubPhase::Running),
                ..Default::default()
            },
            ..Default::default()
        };
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(value["replicas"]["healthy"], 2);
        assert_eq!(value["phase"], "Running");
        assert_eq!(value["conditions"][0]["type"], "Ready");
        assert_eq!(value["conditions"][0]["status"], "True");
        assert_eq!(value["criticalSince"]["a1"], "2023-11-14T22:13:20Z");
        assert!(value.get("hub").is_none() && value.get("active").is_none());
        let back: Status = serde_json::from_value(value).unwrap();
        assert_eq!(back, status);
    }

    /// Times written as `+00:00` by earlier versions still read.
    #[test]
    fn earlier_time_spellings_read() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "hubUnhealthySince": "2026-12-01T10:00:00+00:00",
            "hub": {"id": "n1", "name": "hub-1"},
        }))
        .unwrap();
        assert_eq!(
            status.hub.hub_unhealthy_since.unwrap().to_rfc3339(),
            "2026-12-01T10:00:00+00:00"
        );
    }
}
