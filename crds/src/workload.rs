//! Building blocks shared by the kinds that run containers (App, Pub, CronJob): resources,
//! ports, environment, health checks, routes and placement.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// CPU and memory reserved on the Nomad client for each instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU in MHz.
    #[serde(default = "default_cpu")]
    pub cpu: u32,
    /// Memory in MB.
    #[serde(default = "default_memory")]
    pub memory: u32,
}

fn default_cpu() -> u32 {
    100
}
fn default_memory() -> u32 {
    128
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: default_cpu(),
            memory: default_memory(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Tcp,
}

/// A port the task listens on. `port: 0` (the default) lets Nomad pick a dynamic port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// DNS label, used as the Nomad port label and to refer to the port elsewhere.
    pub name: String,
    /// Static host port, or 0 for a dynamic one.
    #[serde(default)]
    pub port: u16,
    /// The port inside the container; defaults to the host port (or Nomad's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// `http` (can carry a route and an http check) or `tcp`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Storage a workload mounts: a host volume a Nomad client offers (`host_volume` in the client's
/// config), or a CSI volume registered in Nomad, rendered as a group `volume` and a task
/// `volume_mount`. Instances are placed only on nodes that have it (for CSI: that run its
/// plugin, while the volume has a free claim).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// DNS label, unique within the workload.
    pub name: String,
    /// `host`: a volume configured on the Nomad client; `csi`: a volume registered in Nomad
    /// (`nomad volume register`), reachable from every node running its plugin.
    #[serde(default, rename = "type")]
    pub type_: VolumeType,
    /// The client's host volume name, or the CSI volume's ID.
    pub source: String,
    /// Mount it read-only (required when the client offers it read-only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Where the task sees it: an absolute path.
    pub mount_path: String,
    /// How a CSI volume is claimed (csi only; default `single-node-writer`: one instance at a
    /// time, so at most one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<CsiAccessMode>,
}

/// Nomad's CSI access modes (structs/csi.go `CSIVolumeAccessMode*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CsiAccessMode {
    SingleNodeReaderOnly,
    #[default]
    SingleNodeWriter,
    MultiNodeReaderOnly,
    MultiNodeSingleWriter,
    MultiNodeMultiWriter,
}

impl CsiAccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CsiAccessMode::SingleNodeReaderOnly => "single-node-reader-only",
            CsiAccessMode::SingleNodeWriter => "single-node-writer",
            CsiAccessMode::MultiNodeReaderOnly => "multi-node-reader-only",
            CsiAccessMode::MultiNodeSingleWriter => "multi-node-single-writer",
            CsiAccessMode::MultiNodeMultiWriter => "multi-node-multi-writer",
        }
    }

    /// Whether every mount of it must be read-only.
    pub fn reads_only(self) -> bool {
        matches!(
            self,
            CsiAccessMode::SingleNodeReaderOnly | CsiAccessMode::MultiNodeReaderOnly
        )
    }

    /// Whether it may be mounted by one instance only.
    pub fn single_instance(self) -> bool {
        matches!(
            self,
            CsiAccessMode::SingleNodeReaderOnly | CsiAccessMode::SingleNodeWriter
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    #[default]
    Host,
    Csi,
}

/// What the kinds do not model, given to Nomad as it is: JSON merge patches (RFC 7396) applied
/// to the rendered job, its one task group and its one task, in Nomad's API field names
/// (`KillTimeout`, `ShutdownDelay`, `Meta`, ...). Fields nomarch decides itself are refused by
/// validation, naming the field of the manifest that sets them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NomadOverrides {
    /// Merged into the job.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub job: serde_json::Map<String, serde_json::Value>,
    /// Merged into the task group.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub group: serde_json::Map<String, serde_json::Value>,
    /// Merged into the task.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub task: serde_json::Map<String, serde_json::Value>,
}

impl NomadOverrides {
    pub fn is_empty(&self) -> bool {
        self.job.is_empty() && self.group.is_empty() && self.task.is_empty()
    }
}

/// An environment variable: a literal value, or a key of a Nomad variable (for secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name: letters, digits and `_`.
    pub name: String,
    /// A literal value. Set exactly one of `value`, `secretRef` and `serviceRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A secret read by the task at run time; its value never passes through nomarch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The address (`host:port`) of another App's instances, resolved by the task through
    /// Consul and kept current as they move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<ServiceRef>,
}

/// Another App in the same namespace, as its instances register in Consul.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    /// The App's name.
    pub name: String,
    /// Every passing instance, comma-separated (`host:port,host:port`); otherwise one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// When the instances change: `restart` the task with the new value (default), or `noop`
    /// (the task keeps the value it started with until it restarts for another reason).
    #[serde(default)]
    pub change_mode: ServiceChangeMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceChangeMode {
    #[default]
    Restart,
    Noop,
}

/// A key inside a named secret. For workloads the name is a Nomad variable path, read by the
/// task at run time, so the secret never passes through nomarch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Secret name: a Nomad variable path such as `nomad/jobs/api`. In a workload the task
    /// reads it when it starts, and waits while it does not exist; with ACLs on, its identity
    /// may read `nomad/jobs/<object name>` (and that path's `/<group>` and `/<group>/<task>`)
    /// in the object's namespace without a policy; any other path needs an ACL policy attached
    /// to the job, or the read is denied and the task fails after about five minutes of retries.
    pub name: String,
    /// Key inside the secret.
    pub key: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    #[default]
    Http,
    Tcp,
}

/// A health check on one of the ports, registered with the service in Consul.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// `http` or `tcp`.
    #[serde(default, rename = "type")]
    pub type_: CheckType,
    /// Name of the port to check.
    pub port: String,
    /// HTTP path; required for `http` checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between checks.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// How long one check may take; at most `interval`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// How long checks may stay critical before nomarch replaces the allocation. At least
    /// `interval`.
    #[serde(default = "default_grace")]
    pub grace: Duration,
}

fn default_interval() -> Duration {
    Duration::from_static("10s")
}
fn default_timeout() -> Duration {
    Duration::from_static("2s")
}
fn default_grace() -> Duration {
    Duration::from_static("30s")
}

/// Public routing through Traefik: `Host(host) && PathPrefix(path)` to the named port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Host name the route answers, e.g. `www.example.com` (`*.` wildcards allowed).
    pub host: String,
    /// Path prefix.
    #[serde(default = "default_route_path")]
    pub path: String,
    /// Name of an http port; defaults to the first http port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Ask Traefik for TLS on this route.
    #[serde(default)]
    pub tls: bool,
}

fn default_route_path() -> String {
    "/".to_string()
}

/// Where instances may run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Nomad datacenters; empty means all (`*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<String>,
    /// Only nodes of this Nomad node class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_class: Option<String>,
    /// Only nodes in this Nomad node pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Further Nomad constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
}

/// A Nomad constraint, e.g. `{attribute: "${meta.tier}", operator: "=", value: "edge"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraint {
    /// A Nomad attribute such as `${node.class}` or `${meta.tier}`.
    pub attribute: String,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`, `regexp`, `set_contains`, `version`, `is_set`, ...
    #[serde(default = "default_operator")]
    pub operator: String,
    /// The value to compare with; not needed for `is_set`, `is_not_set` and `distinct_hosts`.
    #[serde(default)]
    pub value: String,
}

fn default_operator() -> String {
    "=".to_string()
}

/// The Nomad operators a constraint may use.
pub const CONSTRAINT_OPERATORS: &[&str] = &[
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "regexp",
    "set_contains",
    "set_contains_any",
    "version",
    "semver",
    "is_set",
    "is_not_set",
    "distinct_hosts",
    "distinct_property",
];

/// How a new version rolls out, and how many instances healing may take down at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    /// Instances replaced at once during a rollout.
    #[serde(default = "one")]
    pub max_parallel: u32,
    /// At most this many instances are stopped by healing at a time.
    #[serde(default = "one")]
    pub max_unavailable: u32,
    /// How long a new instance must stay healthy to count.
    #[serde(default = "default_min_healthy")]
    pub min_healthy_time: Duration,
    /// How long a new instance may take to become healthy before the rollout fails.
    #[serde(default = "default_healthy_deadline")]
    pub healthy_deadline: Duration,
    /// Roll back to the last stable version when a rollout fails.
    #[serde(default = "yes")]
    pub auto_revert: bool,
    /// How a new version replaces the old one.
    #[serde(default, skip_serializing_if = "RolloutStrategy::is_rolling")]
    pub strategy: RolloutStrategy,
    /// With `strategy: canary`: new instances started beside the old ones first; nothing is
    /// replaced until they are healthy and promoted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub canary: u32,
    /// Promote the canaries (or the new set of a blue/green rollout) by themselves once all
    /// are healthy; otherwise `nomarch rollout promote` does.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_promote: bool,
    /// A rollout that makes no progress (no new instance turning healthy) for this long fails
    /// (`0s`: never). Twice `healthyDeadline` unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<Duration>,
}

/// How a rollout replaces instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RolloutStrategy {
    /// `maxParallel` instances at a time, each new one waited for until healthy.
    #[default]
    Rolling,
    /// `canary` new instances beside the old ones; once promoted, the rest roll.
    Canary,
    /// A full new set beside the old one, taking no traffic until promoted; the old set stops
    /// then.
    BlueGreen,
}

impl RolloutStrategy {
    fn is_rolling(&self) -> bool {
        *self == RolloutStrategy::Rolling
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn is_false(b: &bool) -> bool {
    !*b
}

impl UpdateStrategy {
    /// The progress deadline in force: as set, or twice the healthy deadline.
    pub fn progress_deadline(&self) -> std::time::Duration {
        self.progress_deadline
            .as_ref()
            .map_or(self.healthy_deadline.get() * 2, Duration::get)
    }

    /// Nomad's `canary` count for `replicas` instances: none for a rolling update, the
    /// canaries asked for, or a whole new set for blue/green.
    pub fn nomad_canaries(&self, replicas: u32) -> u32 {
        match self.strategy {
            RolloutStrategy::Rolling => 0,
            RolloutStrategy::Canary => self.canary,
            RolloutStrategy::BlueGreen => replicas,
        }
    }
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_min_healthy() -> Duration {
    Duration::from_static("10s")
}
fn default_healthy_deadline() -> Duration {
    Duration::from_static("5m")
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_parallel: 1,
            max_unavailable: 1,
            min_healthy_time: default_min_healthy(),
            healthy_deadline: default_healthy_deadline(),
            auto_revert: true,
            strategy: RolloutStrategy::Rolling,
            canary: 0,
            auto_promote: false,
            progress_deadline: None,
        }
    }
}

/// Declares a spec struct that runs one container, with the container's fields (`image`,
/// `command`, `args`, `resources`, `env`) written here once for every kind. They are plain
/// fields of the struct as serde sees it, so `deny_unknown_fields` and located errors work for
/// them as for any field (a `#[serde(flatten)]` [`Container`] would lose both: serde does not
/// support the two together, and errors inside a flattened field lose their path). The struct
/// also gets `container()`, the borrowed [`ContainerRef`] that validation and rendering read.
///
/// Fields before `..container(...)` come first in the YAML, the others after; the arguments
/// are the default of `resources` (a path, as serde's `default = "..."`) and its description.
macro_rules! with_container {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$lead_attr:meta])* pub $lead:ident : $lead_ty:ty, )*
            ..container(resources_default = $default:literal, resources_doc = $resources_doc:literal),
            $( $(#[$rest_attr:meta])* pub $rest:ident : $rest_ty:ty, )*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $( $(#[$lead_attr])* pub $lead: $lead_ty, )*
            /// Docker image reference, e.g. `ghcr.io/acme/web:1.4.2`.
            pub image: String,
            /// Overrides the image's entrypoint.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub command: Option<String>,
            /// Arguments passed to the command.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub args: Vec<String>,
            #[doc = $resources_doc]
            #[serde(default = $default)]
            pub resources: $crate::workload::Resources,
            /// Environment variables, literal or from a Nomad variable.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub env: Vec<$crate::workload::EnvVar>,
            $( $(#[$rest_attr])* pub $rest: $rest_ty, )*
        }

        impl $name {
            /// The container's fields, as validation and rendering read them.
            pub fn container(&self) -> $crate::workload::ContainerRef<'_> {
                $crate::workload::ContainerRef {
                    image: &self.image,
                    command: self.command.as_deref(),
                    args: &self.args,
                    resources: &self.resources,
                    env: &self.env,
                }
            }
        }
    };
}
pub(crate) use with_container;

with_container! {
    /// The container a workload runs (a CronJob's `task`).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct Container {
        ..container(
            resources_default = "Resources::default",
            resources_doc = "CPU and memory per run."
        ),
    }
}

/// A container's fields, borrowed from whichever spec holds them ([`with_container`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerRef<'a> {
    pub image: &'a str,
    pub command: Option<&'a str>,
    pub args: &'a [String],
    pub resources: &'a Resources,
    pub env: &'a [EnvVar],
}

pub type Labels = BTreeMap<String, String>;

/// `nomarch describe`'s lines for what the container kinds share beyond their basics: volumes,
/// service references, Nomad overrides.
pub fn summary_lines(volumes: &[Volume], env: &[EnvVar], nomad: &NomadOverrides) -> Vec<String> {
    let mut items: Vec<String> = volumes
        .iter()
        .map(|v| {
            let mode = if v.read_only { ", read-only" } else { "" };
            format!(
                "volume {}: host volume {} at {}{mode}",
                v.name, v.source, v.mount_path
            )
        })
        .collect();
    items.extend(env.iter().filter_map(|var| {
        let reference = var.service_ref.as_ref()?;
        let which = if reference.all {
            "every instance"
        } else {
            "one instance"
        };
        Some(format!(
            "env {}: {which} of app {}",
            var.name, reference.name
        ))
    }));
    for (level, patch) in [
        ("job", &nomad.job),
        ("group", &nomad.group),
        ("task", &nomad.task),
    ] {
        if !patch.is_empty() {
            let keys: Vec<&str> = patch.keys().map(String::as_str).collect();
            items.push(format!("nomad {level} overrides: {}", keys.join(", ")));
        }
    }
    items
}
