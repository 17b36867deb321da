//! The simulated cluster's shape and timings: from flags, or a JSON config file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// One client node to create at start (or through `POST /_sim/nodes`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default = "default_class")]
    pub class: String,
    #[serde(default = "default_dc")]
    pub datacenter: String,
    #[serde(default = "default_pool")]
    pub pool: String,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    #[serde(default = "default_cpu")]
    pub cpu: u64,
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// The client's `host_volume` blocks, by name.
    #[serde(default)]
    pub host_volumes: BTreeMap<String, HostVolume>,
    /// CSI node plugins running (healthy) on the client, by plugin ID.
    #[serde(default)]
    pub csi_plugins: Vec<String>,
}

/// A CSI volume registered at start (`nomad volume register`): its plugin and the access and
/// attachment modes it was registered with (`capability` blocks; one each here).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsiVolumeSpec {
    pub id: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub plugin_id: String,
    #[serde(default = "default_access_mode")]
    pub access_mode: String,
    #[serde(default = "default_attachment_mode")]
    pub attachment_mode: String,
}

fn default_namespace() -> String {
    "default".into()
}
fn default_access_mode() -> String {
    "single-node-writer".into()
}
fn default_attachment_mode() -> String {
    "file-system".into()
}

/// A client's `host_volume "name" { path = ..., read_only = ... }` (structs
/// `ClientHostVolumeConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HostVolume {
    pub path: String,
    #[serde(default)]
    pub read_only: bool,
}

fn default_class() -> String {
    String::new()
}
fn default_dc() -> String {
    "dc1".into()
}
fn default_pool() -> String {
    "default".into()
}
fn default_cpu() -> u64 {
    4000
}
fn default_memory() -> u64 {
    8192
}

impl NodeSpec {
    pub fn new(name: &str, class: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            class: class.into(),
            datacenter: default_dc(),
            pool: default_pool(),
            meta: BTreeMap::new(),
            cpu: default_cpu(),
            memory: default_memory(),
            host_volumes: BTreeMap::new(),
            csi_plugins: Vec::new(),
        }
    }
}

/// What a batch run does when its time is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchOutcome {
    Complete,
    Fail,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: Vec<NodeSpec>,
    /// Time from placement to running (simulated clock).
    pub start_delay: Duration,
    /// How long a batch task runs before it finishes.
    pub batch_duration: Duration,
    pub batch_outcome: BatchOutcome,
    pub heartbeat_ttl: Duration,
    pub heartbeat_grace: Duration,
    /// A management token: when set, requests without it get 403.
    pub acl_token: Option<String>,
    pub region: String,
    /// Terminal allocations and evaluations older than this are garbage-collected, as Nomad's
    /// core GC does (`eval_gc_threshold`, 1h by default).
    pub gc_threshold: Duration,
    /// CSI volumes registered at start.
    pub csi_volumes: Vec<CsiVolumeSpec>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: default_nodes(),
            start_delay: Duration::from_millis(500),
            batch_duration: Duration::from_secs(1),
            batch_outcome: BatchOutcome::Complete,
            heartbeat_ttl: Duration::from_secs(10),
            heartbeat_grace: Duration::from_secs(10),
            acl_token: None,
            region: "global".into(),
            gc_threshold: Duration::from_secs(3600),
            csi_volumes: Vec::new(),
        }
    }
}

/// `node-1`..`node-3` of class `worker` and `hub-1`, `hub-2` of class `hub` (offering the host
/// volume `tenant-data`), all in `dc1`.
pub fn default_nodes() -> Vec<NodeSpec> {
    let mut nodes: Vec<NodeSpec> = (1..=3)
        .map(|i| NodeSpec::new(&format!("node-{i}"), "worker"))
        .collect();
    nodes.extend((1..=2).map(|i| {
        let mut hub = NodeSpec::new(&format!("hub-{i}"), "hub");
        // Where pubs keep their tenants' data (the examples' stateful pub mounts it).
        hub.host_volumes.insert(
            "tenant-data".into(),
            HostVolume {
                path: "/srv/tenants".into(),
                read_only: false,
            },
        );
        hub
    }));
    nodes
}

/// The `--config FILE` format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub csi_volumes: Vec<CsiVolumeSpec>,
}
