//! Where an allocation may go: feasibility (status, eligibility, datacenter, pool, constraints
//! with Nomad's `${...}` interpolation) and capacity, then binpack scoring as Nomad's default.
//! Pure functions over the cluster: the scheduler decides, this only answers.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use serde_json::{json, Value};

use super::cluster::Cluster;
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

/// Nomad's computed node class: a hash of what makes nodes interchangeable for placement.
pub fn computed_class(node: &Node) -> String {
    let text = format!(
        "{}/{}/{}/{:?}",
        node.datacenter, node.class, node.pool, node.meta
    );
    let hash = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("v1:{hash}")
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

/// Chooses a node for one allocation, or explains why none fits.
pub fn choose_node(
    cluster: &Cluster,
    ask: &Ask,
    usage: &NodeUsage,
) -> Result<(String, Metrics), Box<Metrics>> {
    let mut metrics = Metrics::default();
    let mut best: Option<(f64, &Node)> = None;
    let datacenters: Vec<String> = ask
        .job
        .get("Datacenters")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let pool = ask
        .job
        .get("NodePool")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let constraints = all_constraints(ask.job, ask.group);
    for node in cluster.nodes.values() {
        let in_pool = pool == "all" || node.pool == pool;
        if !in_pool || !datacenter_matches(&datacenters, &node.datacenter) {
            continue;
        }
        metrics.in_pool += 1;
        if node.status != "ready" || node.eligibility != "eligible" || node.drain.is_some() {
            continue;
        }
        metrics.evaluated += 1;
        // Counted without cloning the name for every node of every placement.
        match metrics.available.get_mut(&node.datacenter) {
            Some(count) => *count += 1,
            None => {
                metrics.available.insert(node.datacenter.clone(), 1);
            }
        }
        if let Some(failed) = constraints
            .iter()
            .find(|c| !constraint_holds(cluster, c, node, ask))
        {
            metrics.filtered += 1;
            *metrics
                .constraint_filtered
                .entry(describe_constraint(failed))
                .or_default() += 1;
            continue;
        }
        let (used_cpu, used_mem) = usage.get(&node.id).copied().unwrap_or_default();
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
        let score = ((used_cpu + ask.cpu) as f64 / node.cpu as f64
            + (used_mem + ask.memory) as f64 / node.memory as f64)
            / 2.0;
        let better = match best {
            None => true,
            Some((best_score, best_node)) => {
                score > best_score + 1e-9
                    || ((score - best_score).abs() <= 1e-9 && node.name < best_node.name)
            }
        };
        if better {
            best = Some((score, node));
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

/// CPU and memory in use per node ID.
pub type NodeUsage = FxHashMap<String, (u64, u64)>;

/// CPU and memory held on each node by live allocations: computed once per scheduling pass,
/// then updated as the pass places more.
pub fn usage_by_node(cluster: &Cluster) -> NodeUsage {
    // Summed under borrowed node IDs with a fast hash: this walks every allocation once per
    // evaluation, and a String plus a SipHash per allocation were most of its cost in a
    // 12,000-job cold start.
    let mut usage: FxHashMap<&str, (u64, u64)> =
        FxHashMap::with_capacity_and_hasher(cluster.nodes.len(), Default::default());
    for alloc in cluster.allocs.values().filter(|a| !a.is_terminal()) {
        let entry = usage.entry(alloc.node_id.as_str()).or_default();
        entry.0 += alloc.cpu;
        entry.1 += alloc.memory;
    }
    usage
        .into_iter()
        .map(|(node, used)| (node.to_string(), used))
        .collect()
}

fn datacenter_matches(patterns: &[String], datacenter: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => datacenter.starts_with(prefix),
            None => p == datacenter,
        })
}

fn all_constraints(job: &Value, group: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    let mut take = |v: Option<&Value>| {
        if let Some(list) = v.and_then(Value::as_array) {
            all.extend(list.iter().cloned());
        }
    };
    take(job.get("Constraints"));
    take(group.get("Constraints"));
    for task in group
        .get("Tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        take(task.get("Constraints"));
    }
    all
}

fn describe_constraint(c: &Value) -> String {
    let field = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!(
        "{} {} {}",
        field("LTarget"),
        field("Operand"),
        field("RTarget")
    )
    .trim()
    .to_string()
}

/// Resolves `${node.unique.id}`, `${node.class}`, `${meta.x}`, `${attr.x}` and friends.
fn interpolate(target: &str, node: &Node) -> Option<String> {
    let Some(inner) = target.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        return Some(target.to_string());
    };
    let value = match inner {
        "node.unique.id" => Some(node.id.clone()),
        "node.unique.name" => Some(node.name.clone()),
        "node.datacenter" => Some(node.datacenter.clone()),
        "node.class" => Some(node.class.clone()),
        "node.pool" => Some(node.pool.clone()),
        "node.region" => Some("global".to_string()),
        other => {
            if let Some(key) = other.strip_prefix("meta.") {
                node.meta.get(key).cloned()
            } else if let Some(key) = other.strip_prefix("attr.") {
                node.attributes.get(key).cloned()
            } else {
                None
            }
        }
    };
    value
}

fn constraint_holds(cluster: &Cluster, c: &Value, node: &Node, ask: &Ask) -> bool {
    let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
    let operand = field("Operand");
    let left = interpolate(field("LTarget"), node);
    let right = interpolate(field("RTarget"), node).unwrap_or_default();
    match operand {
        "distinct_hosts" => {
            if right == "false" {
                return true;
            }
            !cluster
                .allocs_of_job(ask.namespace, ask.job_id)
                .any(|a| a.node_id == node.id && !a.is_terminal())
        }
        "is_set" => left.is_some(),
        "is_not_set" => left.is_none(),
        _ => {
            let Some(left) = left else { return false };
            match operand {
                "" | "=" | "==" | "is" => left == right,
                "!=" | "not" => left != right,
                "<" | "<=" | ">" | ">=" => compare(&left, &right, operand),
                "regexp" => regex::Regex::new(&right).is_ok_and(|re| re.is_match(&left)),
                "set_contains" | "set_contains_all" => {
                    let have: Vec<&str> = left.split(',').map(str::trim).collect();
                    right
                        .split(',')
                        .map(str::trim)
                        .all(|want| have.contains(&want))
                }
                "set_contains_any" => {
                    let have: Vec<&str> = left.split(',').map(str::trim).collect();
                    right
                        .split(',')
                        .map(str::trim)
                        .any(|want| have.contains(&want))
                }
                // version/semver and distinct_property are not simulated: never feasible,
                // so a job relying on them stays visibly blocked instead of silently placed.
                _ => false,
            }
        }
    }
}

/// Numeric when both sides are numbers, lexical otherwise, as Nomad does.
fn compare(left: &str, right: &str, operand: &str) -> bool {
    let ordering = match (left.parse::<f64>(), right.parse::<f64>()) {
        (Ok(l), Ok(r)) => l.partial_cmp(&r),
        _ => Some(left.cmp(right)),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match operand {
        "<" => ordering.is_lt(),
        "<=" => ordering.is_le(),
        ">" => ordering.is_gt(),
        _ => ordering.is_ge(),
    }
}
