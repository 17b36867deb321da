//! The five kinds' specs, and `Resource`, the one type that holds any of them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::meta::{Kind, Object, ObjectMeta, ObjectRef};
use crate::status::Status;
use crate::workload::{
    with_container, Container, HealthCheck, NomadOverrides, Placement, Port, Resources, Route,
    UpdateStrategy, Volume,
};

with_container! {
    /// A long-running service: `replicas` instances of one container behind a Consul service.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct AppSpec {
        ..container(
            resources_default = "Resources::default",
            resources_doc = "CPU and memory per instance."
        ),
        /// Instances to run (at most 1000).
        #[serde(default = "one")]
        pub replicas: u32,
        /// Ports the container listens on; names are referred to by `health` and `route`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<Port>,
        /// Health check registered with the service; drives readiness and healing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub health: Option<HealthCheck>,
        /// Public route through Traefik.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub route: Option<Route>,
        /// Where instances may run.
        #[serde(default)]
        pub placement: Placement,
        /// Rolling update and healing limits.
        #[serde(default)]
        pub update: UpdateStrategy,
        /// Apps (same namespace) that must be Ready before this one is registered.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub depends_on: Vec<String>,
        /// Host volumes to mount; instances go only to nodes that offer them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub volumes: Vec<Volume>,
        /// Nomad fields the kind does not model, merged into what nomarch renders.
        #[serde(default, skip_serializing_if = "NomadOverrides::is_empty")]
        pub nomad: NomadOverrides,
        /// Run nothing, keep everything else: the Nomad job is stopped (not purged) and nothing
        /// is healed until this is false again (`nomarch stop` / `nomarch start`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub stopped: bool,
    }
}

fn one() -> u32 {
    1
}

with_container! {
    /// A single per-tenant instance pinned by nomarch to one hub node.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct PubSpec {
        /// Who owns this pub (DNS label).
        pub tenant: String,
        ..container(
            resources_default = "pub_resources",
            resources_doc = "CPU and memory; a pub reserves 200 MHz and 1024 MB unless told otherwise."
        ),
        /// Ports the container listens on; names are referred to by `health` and `route`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<Port>,
        /// Health check; a pub healed by replacement stays on its hub while the hub is healthy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub health: Option<HealthCheck>,
        /// Public route through Traefik.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub route: Option<Route>,
        /// Which nodes may be this pub's hub. At least one criterion is required.
        pub hub_selector: HubSelector,
        /// How a hub is chosen among those with room.
        #[serde(default)]
        pub placement_policy: PlacementPolicy,
        /// When the pub moves off a hub that is down.
        #[serde(default)]
        pub reallocation: Reallocation,
        /// Move this pub (policy `spread`, no host volumes) by itself when a hub comes back or
        /// joins and has stayed up for the controller's `--rebalance-cooldown`, as `nomarch
        /// rebalance pubs` would (a few moves per arrival).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub rebalance: bool,
        /// Host volumes to mount (a tenant's data on its hub's disk); only hubs that offer them
        /// are chosen.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub volumes: Vec<Volume>,
        /// Nomad fields the kind does not model, merged into what nomarch renders.
        #[serde(default, skip_serializing_if = "NomadOverrides::is_empty")]
        pub nomad: NomadOverrides,
        /// Run nothing, keep everything else (the hub too): the Nomad job is stopped (not purged),
        /// nothing is healed or moved until this is false again (`nomarch stop` / `nomarch start`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub stopped: bool,
    }
}

/// A pub reserves a whole gigabyte by default: pubs are small servers with caches.
fn pub_resources() -> Resources {
    Resources {
        cpu: 200,
        memory: 1024,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubSelector {
    /// Nomad node class of hubs, e.g. `hub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_class: Option<String>,
    /// Nomad datacenter of hubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Nomad node pool of hubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Node meta that must match exactly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl HubSelector {
    pub fn is_empty(&self) -> bool {
        self.node_class.is_none()
            && self.datacenter.is_none()
            && self.node_pool.is_none()
            && self.meta.is_empty()
    }
}

/// How a hub is chosen among those with room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementPolicy {
    /// Fill the fullest hub that still fits, keeping whole hubs free.
    #[default]
    Binpack,
    /// Prefer the emptiest hub.
    Spread,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reallocation {
    /// How long the hub may be down or disconnected before the pub moves.
    #[serde(default = "default_realloc_grace")]
    pub grace: Duration,
    /// When the hub is lost (down past the grace, or gone from Nomad): `move` starts the pub
    /// on another hub, fresh (data on the lost hub's disk stays there); `wait` keeps it pinned
    /// until the hub returns. Default: `wait` for a pub with host volumes, `move` otherwise (a
    /// CSI volume is reachable from the new hub: the pub moves with its data).
    /// A draining hub is always left: someone chose to empty it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hub_loss: Option<OnHubLoss>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnHubLoss {
    Move,
    Wait,
}

impl PubSpec {
    /// Whether a lost hub keeps the pub waiting for it (`reallocation.onHubLoss`, or its
    /// default: a pub with host volumes keeps its data by waiting; one with CSI volumes only
    /// takes them along).
    pub fn waits_on_hub_loss(&self) -> bool {
        let on_the_hubs_disk = self
            .volumes
            .iter()
            .any(|v| v.type_ == crate::workload::VolumeType::Host);
        let default = if on_the_hubs_disk {
            OnHubLoss::Wait
        } else {
            OnHubLoss::Move
        };
        self.reallocation.on_hub_loss.unwrap_or(default) == OnHubLoss::Wait
    }
}

fn default_realloc_grace() -> Duration {
    Duration::from_static("30s")
}

impl Default for Reallocation {
    fn default() -> Self {
        Reallocation {
            grace: default_realloc_grace(),
            on_hub_loss: None,
        }
    }
}

/// A task run on a cron schedule, as a Nomad periodic batch job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobSpec {
    /// Five-field cron expression (`minute hour day-of-month month day-of-week`) or a macro
    /// such as `@daily`.
    pub schedule: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Whether runs may overlap.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Stop launching new runs; history is kept.
    #[serde(default)]
    pub suspend: bool,
    /// The container each run starts.
    pub task: Container,
    /// Host volumes each run mounts; runs go only to nodes that offer them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Nomad fields the kind does not model, merged into what nomarch renders.
    #[serde(default, skip_serializing_if = "NomadOverrides::is_empty")]
    pub nomad: NomadOverrides,
    /// Where runs may be placed.
    #[serde(default)]
    pub placement: Placement,
}

fn utc() -> String {
    "UTC".to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// Skip a run while the previous one is still going (Nomad's `prohibit_overlap`).
    Forbid,
}

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

/// A Nomad job as people already write it: the API's JSON (`job`) or HCL (`hcl`, parsed by
/// the cluster's own `/v1/jobs/parse`), kept registered, reverted when edited out of band,
/// pruned and protected like the other kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NomadJobSpec {
    /// The job in Nomad's API form (what `nomad job run -output` prints under `Job`). Its
    /// `ID`, when given, is the object's name. Set exactly one of `job` and `hcl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub job: Option<serde_json::Map<String, serde_json::Value>>,
    /// The jobspec as HCL; its `job` block's label is the object's name. Input variables are
    /// not supported: write the values in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hcl: Option<String>,
    /// JSON pointers (RFC 6901) into the job as Nomad holds it, such as
    /// `/TaskGroups/0/Tasks/0/Config/image`, whose live values are kept instead of reverted.
    /// A group's `Count` is kept by itself while its `scaling` policy is enabled: the
    /// autoscaler owns it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<String>,
    /// Run nothing, keep everything else: the job is registered stopped (`nomarch stop`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

pub type App = Object<AppSpec>;
pub type Pub = Object<PubSpec>;
pub type CronJob = Object<CronJobSpec>;
pub type GitSource = Object<GitSourceSpec>;
pub type NomadJob = Object<NomadJobSpec>;

/// An object of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    App(App),
    Pub(Pub),
    CronJob(CronJob),
    GitSource(GitSource),
    NomadJob(NomadJob),
}

macro_rules! each_kind {
    ($value:expr, $object:ident => $body:expr) => {
        match $value {
            Resource::App($object) => $body,
            Resource::Pub($object) => $body,
            Resource::CronJob($object) => $body,
            Resource::GitSource($object) => $body,
            Resource::NomadJob($object) => $body,
        }
    };
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::App(_) => Kind::App,
            Resource::Pub(_) => Kind::Pub,
            Resource::CronJob(_) => Kind::CronJob,
            Resource::GitSource(_) => Kind::GitSource,
            Resource::NomadJob(_) => Kind::NomadJob,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each_kind!(self, o => &o.metadata)
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each_kind!(self, o => &mut o.metadata)
    }

    pub fn status(&self) -> Option<&Status> {
        each_kind!(self, o => o.status.as_ref())
    }

    pub fn set_status(&mut self, status: Option<Status>) {
        each_kind!(self, o => o.status = status)
    }

    /// Whether this is the object `target` names, without building its reference.
    pub fn is(&self, target: &ObjectRef) -> bool {
        let meta = self.metadata();
        self.kind() == target.kind && meta.name == target.name && meta.namespace == target.namespace
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new(
            self.kind(),
            &self.metadata().namespace,
            &self.metadata().name,
        )
    }

    /// The spec as JSON, with defaults filled in: two specs are the same desired state exactly
    /// when these are equal.
    pub fn spec_json(&self) -> serde_json::Value {
        each_kind!(self, o => serde_json::to_value(&o.spec).expect("specs always serialize"))
    }

    pub fn to_json(&self) -> serde_json::Value {
        each_kind!(self, o => serde_json::to_value(o).expect("objects always serialize"))
    }

    /// Reads an object written by `to_json` (the store's format). Manifests from people go
    /// through `manifest::parse_*`, which reports positions.
    pub fn from_json(value: serde_json::Value) -> Result<Resource, String> {
        let kind_name = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = Kind::from_kind_name(&kind_name)
            .ok_or_else(|| format!("unknown kind `{kind_name}`"))?;
        let resource = match kind {
            Kind::App => serde_json::from_value(value).map(Resource::App),
            Kind::Pub => serde_json::from_value(value).map(Resource::Pub),
            Kind::CronJob => serde_json::from_value(value).map(Resource::CronJob),
            Kind::GitSource => serde_json::from_value(value).map(Resource::GitSource),
            Kind::NomadJob => serde_json::from_value(value).map(Resource::NomadJob),
        };
        resource.map_err(|e| e.to_string())
    }
}

impl serde::Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        each_kind!(self, o => o.serialize(serializer))
    }
}
