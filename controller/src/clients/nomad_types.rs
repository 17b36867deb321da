//! Nomad's JSON, typed where nomarch reads it, with every other field kept in a flattened
//! catch-all so a read-modify-write never drops what nomarch does not model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Extra = Map<String, Value>;

/// A job as Nomad's API reads and writes it; nomarch renders these (`reconcilers::nomad_job`).
pub use reconcilers::nomad_job::Job;

/// `JobListStub` (`GET /v1/jobs`, with `meta=true` for `Meta`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Namespace", default)]
    pub namespace: String,
    #[serde(rename = "Type", default)]
    pub job_type: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Stop", default)]
    pub stop: bool,
    #[serde(rename = "ParentID", default)]
    pub parent_id: String,
    #[serde(rename = "JobModifyIndex", default)]
    pub job_modify_index: u64,
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
    #[serde(rename = "Meta", default)]
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `AllocListStub`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AllocStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(rename = "Namespace", default)]
    pub namespace: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(rename = "NodeName", default)]
    pub node_name: String,
    #[serde(rename = "TaskGroup", default)]
    pub task_group: String,
    #[serde(rename = "ClientStatus")]
    pub client_status: String,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "JobVersion", default)]
    pub job_version: u64,
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl AllocStub {
    /// Running or about to: what counts towards "replicas running".
    pub fn is_live(&self) -> bool {
        self.desired_status == "run" && matches!(self.client_status.as_str(), "pending" | "running")
    }
}

/// A list stub without its catch-all (and the memory it holds): what long-lived caches and
/// listings of every object keep. Assigning a new map, not clearing, so the old capacity goes.
pub trait Slim {
    fn slim(self) -> Self;
}

/// A listing read with each element slimmed as soon as it is read, so a listing of 20,000
/// allocations or 12,000 jobs never holds every element's details at once (those listings set
/// the controller's peak memory).
pub struct SlimList<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de> + Slim> Deserialize<'de> for SlimList<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Slim> serde::de::Visitor<'de> for Elements<T> {
            type Value = SlimList<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(element) = seq.next_element::<T>()? {
                    elements.push(element.slim());
                }
                Ok(SlimList(elements))
            }
        }
        deserializer.deserialize_seq(Elements(std::marker::PhantomData))
    }
}

impl Slim for AllocStub {
    /// A full allocation from the event stream also carries its whole job, which must not sit
    /// in the allocation cache once per allocation.
    fn slim(mut self) -> AllocStub {
        self.extra = Extra::new();
        self
    }
}

impl Slim for JobStub {
    fn slim(mut self) -> JobStub {
        self.extra = Extra::new();
        self
    }
}

/// `NodeListStub`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "SchedulingEligibility", default)]
    pub eligibility: String,
    #[serde(rename = "NodeClass", default)]
    pub node_class: String,
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    #[serde(rename = "NodePool", default)]
    pub node_pool: String,
    #[serde(rename = "Drain", default)]
    pub drain: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to a register or update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(rename = "EvalCreateIndex", default)]
    pub eval_create_index: u64,
    #[serde(rename = "JobModifyIndex", default)]
    pub job_modify_index: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to a plan: the job's current `JobModifyIndex`, the diff and what would change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    #[serde(rename = "JobModifyIndex", default)]
    pub job_modify_index: u64,
    #[serde(rename = "Diff", default)]
    pub diff: Option<Value>,
    #[serde(rename = "Annotations", default)]
    pub annotations: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One event of the event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Topic")]
    pub topic: String,
    #[serde(rename = "Type")]
    pub event_type: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Namespace", default)]
    pub namespace: String,
    #[serde(rename = "FilterKeys", default)]
    pub filter_keys: Option<Vec<String>>,
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "Payload", default)]
    pub payload: Value,
}

/// One frame of the event stream; a heartbeat is a frame with no events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    #[serde(rename = "Index", default)]
    pub index: u64,
    #[serde(rename = "Events", default)]
    pub events: Vec<Event>,
}

/// A deployment (`GET /v1/job/:id/deployments`), reduced to what nomarch reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "JobVersion", default)]
    pub job_version: u64,
    /// The `JobModifyIndex` of the job version it rolls out: what a register answered.
    #[serde(rename = "JobSpecModifyIndex", default)]
    pub job_spec_modify_index: u64,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "StatusDescription", default)]
    pub status_description: String,
    #[serde(rename = "TaskGroups", default)]
    pub task_groups: BTreeMap<String, DeploymentGroup>,
}

/// A task group's progress in a deployment (structs.go `DeploymentState`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentGroup {
    #[serde(rename = "AutoPromote", default)]
    pub auto_promote: bool,
    #[serde(rename = "Promoted", default)]
    pub promoted: bool,
    #[serde(rename = "DesiredCanaries", default)]
    pub desired_canaries: u32,
    /// Allocation IDs; `null` without canaries.
    #[serde(rename = "PlacedCanaries", default)]
    pub placed_canaries: Option<Vec<String>>,
    #[serde(rename = "DesiredTotal", default)]
    pub desired_total: u32,
    #[serde(rename = "PlacedAllocs", default)]
    pub placed_allocs: u32,
    #[serde(rename = "HealthyAllocs", default)]
    pub healthy_allocs: u32,
    #[serde(rename = "UnhealthyAllocs", default)]
    pub unhealthy_allocs: u32,
    /// Go's zero time (`0001-01-01T00:00:00Z`) while no deadline runs.
    #[serde(rename = "RequireProgressBy", default)]
    pub require_progress_by: Option<chrono::DateTime<chrono::Utc>>,
}

impl Deployment {
    /// As the pure rollout code reads it; Go's zero time is no deadline.
    pub fn view(&self) -> reconcilers::rollout::DeploymentView {
        let groups = self
            .task_groups
            .iter()
            .map(|(name, g)| {
                let group = reconcilers::rollout::GroupView {
                    auto_promote: g.auto_promote,
                    promoted: g.promoted,
                    desired_canaries: g.desired_canaries,
                    placed_canaries: g.placed_canaries.as_ref().map_or(0, |c| c.len() as u32),
                    desired_total: g.desired_total,
                    placed_allocs: g.placed_allocs,
                    healthy_allocs: g.healthy_allocs,
                    unhealthy_allocs: g.unhealthy_allocs,
                    require_progress_by: g.require_progress_by.filter(|t| t.timestamp() > 0),
                };
                (name.clone(), group)
            })
            .collect();
        reconcilers::rollout::DeploymentView {
            id: self.id.clone(),
            job_version: self.job_version,
            job_spec_modify_index: self.job_spec_modify_index,
            status: self.status.clone(),
            status_description: self.status_description.clone(),
            groups,
        }
    }

    /// Nomad failed it and registered an earlier stable version again
    /// (nomad/structs/structs.go `DeploymentStatusDescriptionRollback`).
    pub fn rolled_back(&self) -> bool {
        self.status == "failed"
            && self
                .status_description
                .contains(" - rolling back to job version ")
    }
}

/// A namespace (`GET /v1/namespaces`), reduced to its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceStub {
    #[serde(rename = "Name")]
    pub name: String,
}
