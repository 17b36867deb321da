//! The Pub: a single per-tenant instance that nomarch pins to one hub node.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Column, KindSpec};
use crate::duration::Duration;
use crate::meta::Object;
use crate::validate::{
    dns_label_problem, validate_container, validate_health, validate_nomad, validate_nomad_name,
    validate_ports, validate_route, validate_volumes, Problems,
};
use crate::workload::{
    summary_lines, with_container, HealthCheck, NomadOverrides, Port, Resources, Route, Volume,
};
use crate::yaml::join_key;

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

impl PubSpec {
    /// The group, and its one task, inside every Pub job.
    pub const GROUP: &'static str = "pub";
}

impl KindSpec for PubSpec {
    fn validate(object: &Object<Self>, p: &mut Problems) {
        validate_pub(&object.spec, p)
    }

    fn columns(&self) -> Vec<Column> {
        vec![("TENANT", self.tenant.clone())]
    }

    fn wide_column(&self) -> Column {
        ("IMAGE", self.image.clone())
    }

    fn summary(&self) -> Vec<String> {
        let mut items = vec![
            format!("tenant: {}", self.tenant),
            format!("image: {}", self.image),
            format!(
                "resources: {} MHz, {} MB",
                self.resources.cpu, self.resources.memory
            ),
            format!(
                "on hub loss: {}",
                if self.waits_on_hub_loss() {
                    "wait"
                } else {
                    "move"
                }
            ),
        ];
        items.extend(summary_lines(&self.volumes, &self.env, &self.nomad));
        items
    }

    fn default_task() -> Result<&'static str, &'static str> {
        Ok(Self::GROUP)
    }

    fn stopped(&self) -> Option<bool> {
        Some(self.stopped)
    }

    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        Ok(&mut self.stopped)
    }

    fn has_health(&self) -> bool {
        self.health.is_some()
    }
}

fn validate_pub(spec: &PubSpec, p: &mut Problems) {
    if let Some(problem) = dns_label_problem(&spec.tenant) {
        p.add("spec.tenant", problem);
    }
    validate_container(spec.container(), "spec", p);
    validate_ports(&spec.ports, p);
    if let Some(health) = &spec.health {
        validate_health(health, &spec.ports, p);
    }
    if let Some(route) = &spec.route {
        validate_route(route, &spec.ports, p);
    }
    let selector = &spec.hub_selector;
    p.check(!selector.is_empty(), "spec.hubSelector", || {
        "must name at least one of nodeClass, datacenter, nodePool or meta".into()
    });
    for (path, value) in [
        ("spec.hubSelector.nodeClass", &selector.node_class),
        ("spec.hubSelector.datacenter", &selector.datacenter),
        ("spec.hubSelector.nodePool", &selector.node_pool),
    ] {
        if let Some(value) = value {
            validate_nomad_name(value, path, p);
        }
    }
    for key in selector.meta.keys() {
        validate_nomad_name(key, &join_key("spec.hubSelector.meta", key), p);
    }
    p.check(
        spec.reallocation.grace.get() >= StdDuration::from_secs(1),
        "spec.reallocation.grace",
        || "must be at least 1s".into(),
    );
    validate_volumes(&spec.volumes, 1, p);
    validate_nomad(&spec.nomad, "spec", p);
}
