//! The records the simulated cluster keeps. Jobs are kept as the JSON that was submitted
//! (canonicalized), so fields the simulator does not model round-trip untouched, as in Nomad.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct JobRecord {
    /// The canonical job spec, without server-set fields (those are added when rendered).
    pub spec: Value,
    pub namespace: String,
    pub id: String,
    pub version: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    pub submit_time: i64,
    pub stop: bool,
    pub stable: bool,
    /// Older versions, newest first, each a full rendered job (at most `MAX_VERSIONS`).
    pub versions: Vec<Value>,
    /// For periodic parents: the last launch time (simulated clock).
    pub last_launch: Option<DateTime<Utc>>,
}

pub const MAX_VERSIONS: usize = 6;

/// A new UUID, as Nomad gives every object.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A stored job version (rendered, with the server's fields) as a submittable job; its `Stop`
/// stays (nomad/job_endpoint.go `Revert` registers a copy of the version, `Stop` included).
pub fn strip_server_fields(mut job: Value) -> Value {
    if let Some(object) = job.as_object_mut() {
        for key in SERVER_SET_FIELDS {
            object.remove(*key);
        }
    }
    job
}

/// Job fields the server sets: never part of a submitted spec or of a diff (structs/diff.go
/// `Job.Diff`'s filter), written once with nomarch's validation, which refuses them in
/// `spec.nomad.job`. `Stop` is not one of them: the user sets it.
pub use crds::nomad_rules::SERVER_SET_JOB_FIELDS as SERVER_SET_FIELDS;

impl JobRecord {
    /// The job as one would submit it again: its spec and its `Stop`.
    pub fn submittable(&self) -> Value {
        let mut job = self.spec.clone();
        job["Stop"] = Value::Bool(self.stop);
        job
    }

    pub fn job_type(&self) -> &str {
        self.spec
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("service")
    }

    /// A periodic parent, whether or not it is enabled (Nomad's `IsPeriodic`): `Enabled`
    /// only decides whether children are launched.
    pub fn is_periodic(&self) -> bool {
        self.spec.get("Periodic").is_some_and(Value::is_object)
    }

    pub fn is_parameterized(&self) -> bool {
        self.spec
            .get("ParameterizedJob")
            .is_some_and(Value::is_object)
    }

    pub fn parent_id(&self) -> &str {
        self.spec
            .get("ParentID")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<&Value> {
        self.spec
            .get("TaskGroups")
            .and_then(Value::as_array)
            .map(|g| g.iter().collect())
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
    Unknown,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
            ClientStatus::Lost => "lost",
            ClientStatus::Unknown => "unknown",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
        )
    }
}

/// What the simulator has been told to do to an allocation's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Tasks keep exiting; restarts climb until the restart policy gives up.
    CrashLoop,
    /// Tasks keep running but stop answering: checks go critical.
    Hang,
}

#[derive(Clone, Debug)]
pub struct TaskState {
    pub state: &'static str,
    pub failed: bool,
    pub restarts: u64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_restart: Option<DateTime<Utc>>,
    pub events: Vec<TaskEvent>,
    /// Every run of the task, oldest first: what its logs are written from ([`super::logs`]).
    /// Kept apart from `events`, of which Nomad keeps only the last ten.
    pub runs: Vec<TaskRun>,
}

/// One run of a task: from a `Started` event to the `Terminated` or `Killed` that ended it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    pub started: DateTime<Utc>,
    /// When it ended and its exit code; `None` while it runs.
    pub ended: Option<(DateTime<Utc>, i64)>,
}

#[derive(Clone, Debug)]
pub struct TaskEvent {
    pub type_: &'static str,
    pub time: i64,
    pub message: String,
    pub exit_code: i64,
}

impl TaskEvent {
    pub fn new(type_: &'static str, now: DateTime<Utc>, message: &str, exit_code: i64) -> Self {
        TaskEvent {
            type_,
            time: now.timestamp_nanos_opt().unwrap_or_default(),
            message: message.into(),
            exit_code,
        }
    }
}

impl TaskState {
    /// A task the client has received and not started yet.
    pub fn pending(now: DateTime<Utc>) -> Self {
        TaskState {
            state: "pending",
            failed: false,
            restarts: 0,
            started_at: None,
            finished_at: None,
            last_restart: None,
            runs: Vec::new(),
            events: vec![TaskEvent::new(
                "Received",
                now,
                "Task received by client",
                0,
            )],
        }
    }
}

#[derive(Clone, Debug)]
pub struct Alloc {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub job_type: String,
    pub group: String,
    pub index: usize,
    pub node_id: String,
    pub node_name: String,
    pub eval_id: String,
    pub desired_status: &'static str,
    pub desired_description: String,
    pub migrate: bool,
    pub client_status: ClientStatus,
    pub client_description: String,
    pub tasks: BTreeMap<String, TaskState>,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub reschedule_events: Vec<Value>,
    pub create_index: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
    /// When the tasks start (simulated clock).
    pub start_at: DateTime<Utc>,
    /// For batch work: when the run ends.
    pub finish_at: Option<DateTime<Utc>>,
    pub fault: Fault,
    /// Resources claimed on the node.
    pub cpu: u64,
    pub memory: u64,
    /// Static and dynamic ports by label.
    pub ports: Vec<(String, u16, u16)>,
    /// The job as it was when the alloc was placed, shared by every allocation of that version.
    pub job: std::sync::Arc<Value>,
    /// When each service check last became critical (for check_restart and `Timestamp`).
    pub critical_since: Option<DateTime<Utc>>,
    /// `DeploymentStatus.Healthy`: unset until the client's health tracker decides.
    pub healthy: Option<bool>,
    /// `DeploymentStatus.Timestamp` (nanoseconds) of that decision.
    pub health_timestamp: i64,
    /// `DeploymentStatus.ModifyIndex`: the commit that set the health.
    pub health_modify_index: u64,
    /// When the health tracker started watching (the tasks started, or the allocation joined a
    /// new deployment in place): `healthy_deadline` counts from here.
    pub health_watch_start: Option<DateTime<Utc>>,
    /// Since when every task has run and every check passed without a break.
    pub healthy_since: Option<DateTime<Utc>>,
    /// The deployment that placed (or in-place updated) it; empty when none.
    pub deployment_id: String,
    /// `DeploymentStatus.Canary`: placed as a canary and not promoted yet.
    pub canary: bool,
    /// The tasks' restart tracker, from their first start.
    pub restarts: Option<super::restarts::Tracker>,
    /// Waiting out a restart delay: the next start is a restart, not a first start.
    pub restarting: bool,
    /// Since when its templates have kept the tasks from starting ([`super::templates`]).
    pub template_blocked_since: Option<DateTime<Utc>>,
    /// What each task's env templates rendered from Consul services when it last started, by
    /// task and variable ([`super::templates::service_envs`]).
    pub service_env: BTreeMap<String, BTreeMap<String, String>>,
    /// The evaluation that will replace this failed allocation once its reschedule delay
    /// has passed (`FollowupEvalID`).
    pub followup_eval_id: String,
    /// How the scheduler chose the node (`AllocationMetric`).
    pub metrics: Value,
}

impl Alloc {
    /// Its `RescheduleTracker.Events`, as [`super::reschedule`] reads them.
    pub fn reschedule_attempts(&self) -> Vec<super::reschedule::Attempt> {
        self.reschedule_events
            .iter()
            .map(super::reschedule::Attempt::from_json)
            .collect()
    }

    /// structs.go `Allocation.LastEventTime`: when its last task finished, else its last
    /// change (nanoseconds).
    pub fn failed_at(&self) -> i64 {
        self.tasks
            .values()
            .filter_map(|t| t.finished_at)
            .max()
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(self.modify_time)
    }

    /// The allocation's task group in the job version it runs.
    pub fn group_spec(&self) -> Option<&Value> {
        self.job
            .get("TaskGroups")
            .and_then(Value::as_array)?
            .iter()
            .find(|g| g.get("Name").and_then(Value::as_str) == Some(self.group.as_str()))
    }

    /// The tasks of the allocation's group, copied (callers go on to change the cluster).
    pub fn group_tasks(&self) -> Vec<Value> {
        self.group_spec()
            .and_then(|g| g.get("Tasks"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Services of the allocation's group and tasks: (task or `group-<name>`, service JSON).
    pub fn services(&self) -> Vec<(String, &Value)> {
        let mut services = Vec::new();
        let Some(group) = self.group_spec() else {
            return services;
        };
        fn list(v: &Value) -> Vec<&Value> {
            v.get("Services")
                .and_then(Value::as_array)
                .map(|s| s.iter().collect())
                .unwrap_or_default()
        }
        for service in list(group) {
            services.push((format!("group-{}", self.group), service));
        }
        for task in group
            .get("Tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let task_name = task.get("Name").and_then(Value::as_str).unwrap_or_default();
            for service in list(task) {
                services.push((task_name.to_string(), service));
            }
        }
        services
    }

    pub fn name(&self) -> String {
        format!("{}.{}[{}]", self.job_id, self.group, self.index)
    }

    /// Terminal for the scheduler: the server wants it gone, or the client finished it.
    pub fn is_terminal(&self) -> bool {
        self.desired_status != "run" || self.client_status.is_terminal()
    }
}

/// nomad/structs/structs.go `Deployment`: one job version being rolled out.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub job_modify_index: u64,
    pub job_spec_modify_index: u64,
    pub job_create_index: u64,
    pub groups: BTreeMap<String, DeploymentState>,
    pub status: &'static str,
    pub status_description: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Deployment {
    /// structs.go `Deployment.Active`.
    pub fn active(&self) -> bool {
        matches!(
            self.status,
            "running" | "paused" | "blocked" | "unblocking" | "initializing" | "pending"
        )
    }
}

/// structs.go `DeploymentState`: one task group's progress in a deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentState {
    pub auto_revert: bool,
    pub auto_promote: bool,
    /// Nanoseconds; 0 means none.
    pub progress_deadline: i64,
    /// Nanoseconds since the epoch; `None` until the first placement.
    pub require_progress_by: Option<i64>,
    pub promoted: bool,
    pub placed_canaries: Vec<String>,
    pub desired_canaries: u64,
    pub desired_total: u64,
    pub placed_allocs: u64,
    pub healthy_allocs: u64,
    pub unhealthy_allocs: u64,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub secret_id: String,
    pub name: String,
    pub datacenter: String,
    pub class: String,
    pub pool: String,
    pub meta: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub cpu: u64,
    pub memory: u64,
    /// The client's `host_volume` blocks, by name.
    pub host_volumes: BTreeMap<String, super::config::HostVolume>,
    /// CSI node plugins running healthy on the client.
    pub csi_plugins: Vec<String>,
    pub address: String,
    pub status: &'static str,
    pub eligibility: &'static str,
    pub drain: Option<Value>,
    pub last_drain: Option<Value>,
    pub create_index: u64,
    pub modify_index: u64,
    pub status_updated_at: i64,
    pub events: Vec<Value>,
    /// Heartbeats stopped (killed) or cut (partitioned).
    pub heartbeat_stopped: bool,
    pub partitioned: bool,
    pub last_heartbeat: DateTime<Utc>,
}

impl Node {
    /// Nomad's computed node class: a hash of what makes nodes interchangeable for placement.
    pub fn computed_class(&self) -> String {
        let text = format!(
            "{}/{}/{}/{:?}",
            self.datacenter, self.class, self.pool, self.meta
        );
        let hash = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        format!("v1:{hash}")
    }
}

#[derive(Clone, Debug)]
pub struct Eval {
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    pub type_: String,
    pub triggered_by: String,
    pub job_id: String,
    pub job_modify_index: u64,
    pub node_id: String,
    pub status: &'static str,
    pub status_description: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub failed_tg_allocs: Option<Value>,
    pub queued_allocations: BTreeMap<String, u64>,
    /// A follow-up evaluation waits until then (nanoseconds) before the scheduler runs it.
    pub wait_until: Option<i64>,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

#[derive(Clone, Debug)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Clone, Debug)]
pub struct KvEntry {
    pub value: Vec<u8>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A Nomad variable: string items, readable only through the API.
#[derive(Clone, Debug)]
pub struct VariableEntry {
    pub items: serde_json::Map<String, serde_json::Value>,
    pub create_index: u64,
    pub create_time: i64,
    pub modify_index: u64,
    pub modify_time: i64,
}

/// One accepted write, for tests to assert on (`GET /_sim/state`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct WriteRecord {
    pub index: u64,
    pub time: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub job_id: Option<String>,
    /// The client's `User-Agent` (nomarch sends its identity), so tests can tell who wrote.
    pub agent: String,
}

/// A CSI volume registered in the cluster; its claims are derived from allocations
/// ([`crate::csi`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CsiVolume {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub plugin_id: String,
    /// The registered capability's access mode (`single-node-writer`, ...).
    pub access_mode: String,
    pub attachment_mode: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl CsiVolume {
    pub fn from_spec(spec: &super::config::CsiVolumeSpec, index: u64) -> CsiVolume {
        CsiVolume {
            id: spec.id.clone(),
            namespace: spec.namespace.clone(),
            name: spec.id.clone(),
            plugin_id: spec.plugin_id.clone(),
            access_mode: spec.access_mode.clone(),
            attachment_mode: spec.attachment_mode.clone(),
            create_index: index,
            modify_index: index,
        }
    }
}
