//! Where an allocation may go, as Nomad's generic stack decides it: the ready nodes of the
//! job's datacenters and pool in a per-evaluation shuffled order, feasibility (constraints, see
//! [`super::constraints`]) and capacity, binpack scoring over the first few fitting nodes (the
//! limit), the best of those. Reads the cluster only: the scheduler decides, this answers.

use std::collections::HashMap;
use std::hash::BuildHasher;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rustc_hash::{FxBuildHasher, FxHashMap};
use serde_json::{json, Value};

use super::cluster::Cluster;
use super::constraints::{
    all_constraints, constraint_holds, datacenter_matches, describe_constraint,
};
use super::model::Node;

/// What one allocation of a task group needs.
#[derive(Clone, Debug)]
pub struct Ask<'a> {
    pub namespace: &'a str,
    pub job_id: &'a str,
    pub job: &'a Value,
    pub group: &'a Value,
    pub cpu: u64,
    pub memory: u64,
}

/// Why nodes were passed over, in Nomad's `AllocationMetric` shape.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub evaluated: u64,
    pub filtered: u64,
    pub exhausted: u64,
    pub available: HashMap<String, u64>,
    pub constraint_filtered: HashMap<String, u64>,
    pub dimension_exhausted: HashMap<String, u64>,
    pub in_pool: u64,
    pub scores: HashMap<String, f64>,
}

impl Metrics {
    pub fn to_json(&self) -> Value {
        let or_null = |m: &HashMap<String, u64>| if m.is_empty() { Value::Null } else { json!(m) };
        json!({
            "NodesEvaluated": self.evaluated,
            "NodesFiltered": self.filtered,
            "NodesInPool": self.in_pool,
            "NodesAvailable": self.available,
            "ClassFiltered": null,
            "ConstraintFiltered": or_null(&self.constraint_filtered),
            "NodesExhausted": self.exhausted,
            "ClassExhausted": null,
            "DimensionExhausted": or_null(&self.dimension_exhausted),
            "QuotaExhausted": null,
            "ResourcesExhausted": null,
            "Scores": if self.scores.is_empty() { Value::Null } else { json!(self.scores) },
            "ScoreMetaData": null,
            "AllocationTime": 1000,
            "CoalescedFailures": 0,
        })
    }
}

/// CPU and memory a group asks for: the sum of its tasks' resources (Nomad's defaults when
/// unset: 100 MHz, 300 MB).
pub fn group_resources(group: &Value) -> (u64, u64) {
    let tasks = group
        .get("Tasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tasks.iter().fold((0, 0), |(cpu, mem), task| {
        let resources = task.get("Resources");
        let task_cpu = resources
            .and_then(|r| r.get("CPU"))
            .and_then(Value::as_u64)
            .unwrap_or(100);
        let task_mem = resources
            .and_then(|r| r.get("MemoryMB"))
            .and_then(Value::as_u64)
            .unwrap_or(300);
        (cpu + task_cpu, mem + task_mem)
    })
}

/// One evaluation's placement state, as Nomad's `GenericStack` keeps it: the ready nodes of
/// the job's datacenters and pool, shuffled once per evaluation; how many fitting nodes each
/// placement scores before it picks the best (Nomad's `LimitIterator`); and what every node
/// it has looked at holds, plus what this evaluation placed there.
///
/// Valid while the node table is unchanged: one evaluation, under the state lock.
pub struct Placer {
    /// Positions in `cluster.nodes` (key order) of the ready, eligible, undrained nodes.
    order: Vec<u32>,
    /// Where the next placement's walk starts: each continues where the last stopped, as
    /// Nomad's `StaticIterator` does, so one evaluation's allocations look at different nodes.
    next: usize,
    node_count: usize,
    in_pool: u64,
    available: HashMap<String, u64>,
    limit: usize,
    /// What each node visited holds, read from its allocations on the first visit.
    loads: FxHashMap<String, NodeLoad>,
}

/// What one node holds, as this evaluation sees it.
#[derive(Clone, Debug, Default)]
struct NodeLoad {
    cpu: u64,
    memory: u64,
    /// Live allocations of the evaluated job per task group: Nomad's job anti-affinity.
    of_job_group: HashMap<String, u64>,
}

/// Nomad widens the limit to this many nodes for groups with affinities or spreads, since
/// their scores only mean something across many nodes.
const WIDE_LIMIT: usize = 100;

impl Placer {
    /// The candidates for `job`, shuffled by `seed` (Nomad seeds with the evaluation).
    pub fn new(cluster: &Cluster, job: &Value, seed: &str) -> Placer {
        let datacenters: Vec<&str> = job
            .get("Datacenters")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let pool = job
            .get("NodePool")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let mut order = Vec::new();
        let mut in_pool = 0;
        let mut available: HashMap<String, u64> = HashMap::new();
        for (position, node) in cluster.nodes.values().enumerate() {
            let pool_matches = pool == "all" || node.pool == pool;
            if !pool_matches || !datacenter_matches(&datacenters, &node.datacenter) {
                continue;
            }
            in_pool += 1;
            if node.status != "ready" || node.eligibility != "eligible" || node.drain.is_some() {
                continue;
            }
            // Counted without cloning the name for every node.
            match available.get_mut(&node.datacenter) {
                Some(count) => *count += 1,
                None => {
                    available.insert(node.datacenter.clone(), 1);
                }
            }
            order.push(position as u32);
        }
        let mut rng = StdRng::seed_from_u64(FxBuildHasher.hash_one(seed));
        order.shuffle(&mut rng);
        // Batch work relies on the power of two choices; services look at log2 of the
        // candidates, at least 2 (Nomad's `GenericStack.SetNodes`).
        let batch = job.get("Type").and_then(Value::as_str) == Some("batch");
        let limit = if batch || order.is_empty() {
            2
        } else {
            (order.len() as f64).log2().ceil().max(2.0) as usize
        };
        Placer {
            order,
            next: 0,
            node_count: cluster.nodes.len(),
            in_pool,
            available,
            limit,
            loads: FxHashMap::default(),
        }
    }

    /// Chooses a node for one allocation, or explains why none fits. The choice is not
    /// counted until [`Placer::record`].
    pub fn choose(
        &mut self,
        cluster: &Cluster,
        ask: &Ask,
    ) -> Result<(String, Metrics), Box<Metrics>> {
        assert_eq!(
            cluster.nodes.len(),
            self.node_count,
            "the node table changed during one evaluation"
        );
        let nodes: Vec<&Node> = cluster.nodes.values().collect();
        let mut metrics = Metrics {
            in_pool: self.in_pool,
            available: self.available.clone(),
            ..Metrics::default()
        };
        let limit = if has_affinities_or_spreads(ask.job, ask.group) {
            let count = ask.group.get("Count").and_then(Value::as_u64).unwrap_or(1);
            WIDE_LIMIT.max(count as usize)
        } else {
            self.limit
        };
        let constraints = all_constraints(ask.job, ask.group);
        let group_name = ask
            .group
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let desired = ask
            .group
            .get("Count")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1);
        let mut best: Option<(f64, &Node)> = None;
        let mut fitting = 0;
        let (candidates, start) = (self.order.len(), self.next);
        for step in 0..candidates {
            let slot = (start + step) % candidates;
            let node = nodes[self.order[slot] as usize];
            self.next = (slot + 1) % candidates;
            metrics.evaluated += 1;
            if let Some(failed) = constraints
                .iter()
                .find(|c| !constraint_holds(cluster, c, node, (ask.namespace, ask.job_id)))
            {
                metrics.filtered += 1;
                *metrics
                    .constraint_filtered
                    .entry(describe_constraint(failed))
                    .or_default() += 1;
                continue;
            }
            if !host_volumes_fit(ask.group, node) {
                metrics.filtered += 1;
                *metrics
                    .constraint_filtered
                    .entry(MISSING_HOST_VOLUMES.into())
                    .or_default() += 1;
                continue;
            }
            if let Err(reason) = cluster.csi_volumes_fit(ask.namespace, ask.job_id, ask.group, node)
            {
                metrics.filtered += 1;
                *metrics.constraint_filtered.entry(reason).or_default() += 1;
                continue;
            }
            let load = load_of(&mut self.loads, cluster, ask, &node.id);
            let (used_cpu, used_mem) = (load.cpu, load.memory);
            let fits_cpu = used_cpu + ask.cpu <= node.cpu;
            let fits_mem = used_mem + ask.memory <= node.memory;
            if !fits_cpu || !fits_mem {
                metrics.exhausted += 1;
                let dimension = if !fits_cpu { "cpu" } else { "memory" };
                *metrics
                    .dimension_exhausted
                    .entry(dimension.into())
                    .or_default() += 1;
                continue;
            }
            // Binpack: the fuller the node ends up, the better, as Nomad's default algorithm.
            let binpack = ((used_cpu + ask.cpu) as f64 / node.cpu as f64
                + (used_mem + ask.memory) as f64 / node.memory as f64)
                / 2.0;
            // Job anti-affinity: a node already running this group is penalized by how many
            // it runs against the count; the final score is the mean of the scores that
            // applied (Nomad's `ScoreNormalizationIterator`).
            let collisions = load.of_job_group.get(group_name).copied().unwrap_or(0);
            let score = if collisions > 0 {
                let penalty = -((collisions + 1) as f64) / desired as f64;
                (binpack + penalty) / 2.0
            } else {
                binpack
            };
            // On a tie the first seen wins (Nomad's `MaxScoreIterator`).
            if best.is_none_or(|(best_score, _)| score > best_score + 1e-9) {
                best = Some((score, node));
            }
            fitting += 1;
            if fitting == limit {
                break;
            }
        }
        match best {
            Some((score, node)) => {
                metrics.scores.insert(format!("{}.binpack", node.id), score);
                Ok((node.id.clone(), metrics))
            }
            None => Err(Box::new(metrics)),
        }
    }

    /// Counts an allocation this evaluation placed on `node_id` for `ask`.
    pub fn record(&mut self, node_id: &str, ask: &Ask) {
        let load = self.loads.entry(node_id.to_string()).or_default();
        load.cpu += ask.cpu;
        load.memory += ask.memory;
        let group = ask
            .group
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        *load.of_job_group.entry(group.to_string()).or_default() += 1;
    }
}

/// scheduler/feasible.go `FilterConstraintHostVolumes`.
pub const MISSING_HOST_VOLUMES: &str = "missing compatible host volumes";

/// scheduler/feasible.go `HostVolumeChecker.hasVolumes`, for static host volumes (the node's
/// `host_volume` config): the node offers every host volume the group asks for, and none that
/// the group would write is read-only on the node. (Dynamic host volumes are not simulated;
/// CSI volumes are [`crate::csi`]'s.)
pub fn host_volumes_fit(group: &Value, node: &Node) -> bool {
    group
        .get("Volumes")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|volumes| volumes.values())
        .filter(|request| request.get("Type").and_then(Value::as_str) == Some("host"))
        .all(|request| {
            let source = request
                .get("Source")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let read_only = request
                .get("ReadOnly")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            node.host_volumes
                .get(source)
                .is_some_and(|offered| read_only || !offered.read_only)
        })
}

/// What `node_id` holds: its live allocations when first asked, then kept up to date by
/// [`Placer::record`] (a scheduling pass plans against one snapshot, as Nomad's does).
fn load_of<'a>(
    known: &'a mut FxHashMap<String, NodeLoad>,
    cluster: &Cluster,
    ask: &Ask,
    node_id: &str,
) -> &'a NodeLoad {
    if !known.contains_key(node_id) {
        let mut load = NodeLoad::default();
        for alloc in cluster.allocs_on_node(node_id).filter(|a| !a.is_terminal()) {
            load.cpu += alloc.cpu;
            load.memory += alloc.memory;
            if alloc.job_id == ask.job_id && alloc.namespace == ask.namespace {
                *load.of_job_group.entry(alloc.group.clone()).or_default() += 1;
            }
        }
        known.insert(node_id.to_string(), load);
    }
    &known[node_id]
}

/// Whether the job or group asks for affinities or spreads (Nomad's `hasAffinities` /
/// `hasSpreads`), which widen the limit.
fn has_affinities_or_spreads(job: &Value, group: &Value) -> bool {
    let non_empty = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    let task_affinities = group
        .get("Tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|task| non_empty(task, "Affinities"));
    ["Affinities", "Spreads"]
        .iter()
        .any(|key| non_empty(job, key) || non_empty(group, key))
        || task_affinities
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{json, Value};

    use super::{Ask, Placer};
    use crate::clock::Clock;
    use crate::cluster::Cluster;
    use crate::config::{NodeSpec, SimConfig};

    fn cluster_of(nodes: usize) -> Cluster {
        let mut cluster = Cluster::new(SimConfig::default(), Clock::new(1.0));
        for n in 0..nodes {
            cluster.add_node(&NodeSpec::new(&format!("node-{n}"), "worker"));
        }
        cluster
    }

    fn job(kind: &str) -> Value {
        json!({"ID": "web", "Type": kind, "Datacenters": ["dc1"]})
    }

    fn group() -> Value {
        named_group("web", 1)
    }

    fn ask<'a>(job: &'a Value, group: &'a Value, cpu: u64) -> Ask<'a> {
        Ask {
            namespace: "default",
            job_id: "web",
            job,
            group,
            cpu,
            memory: 64,
        }
    }

    /// How many nodes one placement looks at when every node fits, per job shape and cluster
    /// size (Nomad's limit: log2 of the candidates for services, 2 for batch, wide for
    /// affinities and spreads).
    #[test]
    fn a_placement_scores_only_as_many_fitting_nodes_as_the_limit() {
        let wide_group = json!({"Name": "web", "Count": 1, "Tasks": [{"Name": "t"}],
            "Affinities": [{"LTarget": "${node.class}", "RTarget": "worker", "Operand": "=", "Weight": 50}]});
        let spread_job = json!({"ID": "web", "Type": "service", "Datacenters": ["dc1"],
            "Spreads": [{"Attribute": "${node.datacenter}", "Weight": 50}]});
        let plain = group();
        let cases: [(usize, Value, &Value, u64); 7] = [
            (1, job("service"), &plain, 1),
            (3, job("service"), &plain, 2),
            (64, job("service"), &plain, 6),
            (1000, job("service"), &plain, 10),
            (1000, job("batch"), &plain, 2),
            (64, job("service"), &wide_group, 64),
            (300, spread_job, &plain, 100),
        ];
        for (nodes, job, group, evaluated) in cases {
            let cluster = cluster_of(nodes);
            let mut placer = Placer::new(&cluster, &job, "eval-1");
            let (_, metrics) = placer
                .choose(&cluster, &ask(&job, group, 100))
                .expect("fits");
            assert_eq!(
                metrics.evaluated, evaluated,
                "{nodes} nodes, {job}, {group}"
            );
            assert_eq!(metrics.in_pool, nodes as u64);
        }
    }

    #[test]
    fn when_nothing_fits_every_candidate_is_evaluated_and_counted_exhausted() {
        let mut cluster = cluster_of(40);
        let down = cluster.nodes.keys().next().cloned().unwrap();
        cluster.nodes.get_mut(&down).unwrap().status = "down";
        let (job, group) = (job("service"), group());
        let mut placer = Placer::new(&cluster, &job, "eval-1");
        let failure = placer
            .choose(&cluster, &ask(&job, &group, 50_000))
            .expect_err("bigger than any node");
        assert_eq!(failure.in_pool, 40);
        assert_eq!(failure.evaluated, 39, "the down node is not a candidate");
        assert_eq!(failure.exhausted, 39);
        assert_eq!(failure.dimension_exhausted["cpu"], 39);
        assert_eq!(failure.available["dc1"], 39);
    }

    #[test]
    fn recorded_placements_count_against_the_node() {
        let cluster = cluster_of(2);
        let (job, group) = (job("service"), group());
        let mut placer = Placer::new(&cluster, &job, "eval-1");
        let mut chosen = BTreeSet::new();
        for _ in 0..2 {
            let (node, _) = placer
                .choose(&cluster, &ask(&job, &group, 3000))
                .expect("a node is free");
            placer.record(&node, &ask(&job, &group, 3000));
            chosen.insert(node);
        }
        assert_eq!(
            chosen.len(),
            2,
            "the second 3000 MHz ask cannot share a 4000 MHz node"
        );
        let full = placer
            .choose(&cluster, &ask(&job, &group, 3000))
            .expect_err("both nodes are full");
        assert_eq!(full.exhausted, 2);
    }

    fn named_group(name: &str, count: u64) -> Value {
        json!({"Name": name, "Count": count, "Tasks": [{"Name": "t"}]})
    }

    #[test]
    fn binpack_prefers_the_fuller_node_and_anti_affinity_spreads_one_group() {
        let cluster = cluster_of(2);
        let job = job("service");
        let (db, web) = (named_group("db", 1), named_group("web", 3));
        let mut placer = Placer::new(&cluster, &job, "eval-1");
        let (db_node, _) = placer.choose(&cluster, &ask(&job, &db, 100)).unwrap();
        placer.record(&db_node, &ask(&job, &db, 100));
        // Both nodes are scored (limit 2); another group's work makes its node the fuller.
        let (first_web, _) = placer.choose(&cluster, &ask(&job, &web, 100)).unwrap();
        assert_eq!(first_web, db_node, "binpack");
        placer.record(&first_web, &ask(&job, &web, 100));
        // The same group again: the node that runs it is penalized below the empty one.
        let (second_web, metrics) = placer.choose(&cluster, &ask(&job, &web, 100)).unwrap();
        assert_ne!(second_web, first_web, "job anti-affinity");
        assert!(metrics
            .scores
            .keys()
            .any(|k| k.starts_with(second_web.as_str())));
    }

    #[test]
    fn each_placement_walks_on_from_where_the_last_stopped() {
        // 64 nodes: a placement scores 6. Were every walk to start over, the second one
        // would see the first one's node again and binpack would choose it (it is fuller,
        // and a different group has no anti-affinity with it).
        let cluster = cluster_of(64);
        let job = job("service");
        let (a, b) = (named_group("a", 1), named_group("b", 1));
        let mut placer = Placer::new(&cluster, &job, "eval-1");
        let (first, metrics) = placer.choose(&cluster, &ask(&job, &a, 100)).unwrap();
        assert_eq!(metrics.evaluated, 6);
        placer.record(&first, &ask(&job, &a, 100));
        let (second, _) = placer.choose(&cluster, &ask(&job, &b, 100)).unwrap();
        assert_ne!(second, first);
    }

    #[test]
    fn the_order_is_shuffled_per_evaluation_and_repeatable_for_one() {
        let cluster = cluster_of(50);
        let (job, group) = (job("service"), group());
        let first_choice = |seed: &str| {
            let mut placer = Placer::new(&cluster, &job, seed);
            placer.choose(&cluster, &ask(&job, &group, 100)).unwrap().0
        };
        assert_eq!(first_choice("eval-a"), first_choice("eval-a"));
        let spread: BTreeSet<String> = (0..40)
            .map(|e| first_choice(&format!("eval-{e}")))
            .collect();
        assert!(
            spread.len() > 10,
            "40 evaluations used only {} nodes",
            spread.len()
        );
    }
}
