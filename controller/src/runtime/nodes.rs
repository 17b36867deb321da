//! Nomad's node list, kept by one blocking query instead of one listing per pub reconcile
//! (at 1,000 nodes that listing was a third of nomad-sim's work during a cold start). Nomad
//! bumps the nodes index on status, drain and eligibility changes, not on heartbeats, so the
//! query wakes exactly when placement could change.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use reconcilers::hubs::Hub;
use serde_json::Value;

use crate::clients::nomad_types::NodeStub;

/// One answer of the node list, with the hubs derived from it: building 1,000 hubs for each of
/// 1,000 pub reconciles was a fifth of the controller's CPU in a full resync.
#[derive(Clone)]
pub struct Nodes {
    pub nodes: Arc<Vec<NodeStub>>,
    /// Every node as a hub, without meta (the list carries none).
    pub hubs: Arc<Vec<Hub>>,
}

#[derive(Default)]
pub struct NodeCache {
    /// `None` until the first answer, and again while the query fails.
    nodes: RwLock<Option<Nodes>>,
}

impl NodeCache {
    pub fn get(&self) -> Option<Nodes> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The latest answer, or `None` when the query failed (readers then ask Nomad).
    pub fn set(&self, nodes: Option<Vec<NodeStub>>) {
        let nodes = nodes.map(|nodes| Nodes {
            hubs: Arc::new(nodes.iter().map(|n| hub_from(n, None)).collect()),
            nodes: Arc::new(nodes),
        });
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes;
    }
}

/// A Nomad node as the hub placement sees it.
pub fn hub_from(node: &NodeStub, meta: Option<BTreeMap<String, String>>) -> Hub {
    let resources = node.extra.get("NodeResources");
    let number = |path: [&str; 2]| {
        resources
            .and_then(|r| r.get(path[0]))
            .and_then(|r| r.get(path[1]))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Hub {
        id: node.id.clone(),
        name: node.name.clone(),
        class: node.node_class.clone(),
        datacenter: node.datacenter.clone(),
        pool: node.node_pool.clone(),
        meta: meta.unwrap_or_default(),
        cpu: number(["Cpu", "CpuShares"]),
        memory: number(["Memory", "MemoryMB"]),
        ready: node.status == "ready",
        schedulable: node.eligibility == "eligible" && !node.drain,
        // The node list's `HostVolumes` (structs `NodeListStub`): name → read-only.
        volumes: node
            .extra
            .get("HostVolumes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(name, volume)| {
                let read_only = volume.get("ReadOnly").and_then(Value::as_bool);
                (name.clone(), read_only.unwrap_or(false))
            })
            .collect(),
    }
}

/// Nodes whose placement-relevant state differs between two listings (or that came or went).
pub fn changed_nodes(before: Option<&Vec<NodeStub>>, after: &[NodeStub]) -> Vec<String> {
    let state = |n: &NodeStub| (n.status.clone(), n.eligibility.clone(), n.drain);
    let Some(before) = before else {
        return Vec::new();
    };
    let old: std::collections::HashMap<&str, _> =
        before.iter().map(|n| (n.id.as_str(), state(n))).collect();
    let new: std::collections::HashMap<&str, _> =
        after.iter().map(|n| (n.id.as_str(), state(n))).collect();
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(id, s)| old.get(*id) != Some(*s))
        .map(|(id, _)| id.to_string())
        .collect();
    changed.extend(
        old.keys()
            .filter(|id| !new.contains_key(*id))
            .map(|id| id.to_string()),
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, status: &str) -> NodeStub {
        serde_json::from_value(serde_json::json!({"ID": id, "Name": id, "Status": status})).unwrap()
    }

    #[test]
    fn only_placement_changes_count() {
        let before = vec![node("a", "ready"), node("b", "ready"), node("c", "ready")];
        let after = vec![node("a", "ready"), node("b", "down"), node("d", "ready")];
        let mut changed = changed_nodes(Some(&before), &after);
        changed.sort();
        assert_eq!(changed, ["b", "c", "d"]);
        assert!(
            changed_nodes(None, &after).is_empty(),
            "the first listing is no change"
        );
    }
}
