//! Constraint checks for placement: Nomad's operands over a node, with its `${...}`
//! interpolation of node fields, meta and attributes.

use serde_json::Value;

use super::cluster::Cluster;
use super::model::Node;

pub fn datacenter_matches(patterns: &[&str], datacenter: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => datacenter.starts_with(prefix),
            None => *p == datacenter,
        })
}

pub fn all_constraints(job: &Value, group: &Value) -> Vec<Value> {
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

pub fn describe_constraint(c: &Value) -> String {
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

/// Whether a node satisfies one constraint of the job `(namespace, job_id)` being placed.
pub fn constraint_holds(cluster: &Cluster, c: &Value, node: &Node, job: (&str, &str)) -> bool {
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
                .allocs_of_job(job.0, job.1)
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
