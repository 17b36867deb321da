//! An object's past: `nomarch rollout history` (and the API's and the dashboard's) shows one
//! row per stored generation, from the store's history (the specs, 10 kept) and the object's
//! status (which Nomad job version each became, and how its rollout ended); `rollout undo`
//! puts a stored generation's spec back. Pure, so both are tested without a cluster.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use crds::status::{PastRollout, RolloutPhase};
use crds::{Resource, Status};
use serde_json::Value;

/// One generation as the table shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub generation: i64,
    pub time: String,
    pub commit: String,
    pub job_version: String,
    pub outcome: String,
    pub change: String,
}

/// The rows, oldest first. `generations` are the stored ones (history and the current object)
/// in any order; `status` is the current object's.
pub fn rows(generations: &[Resource], status: Option<&Status>) -> Vec<Row> {
    let mut by_generation: BTreeMap<i64, &Resource> = BTreeMap::new();
    for resource in generations {
        by_generation.insert(resource.metadata().generation, resource);
    }
    let current = by_generation.keys().next_back().copied().unwrap_or(0);
    let rollouts = rollouts_by_generation(status);
    by_generation
        .iter()
        .map(|(&generation, resource)| {
            let meta = resource.metadata();
            let rollout = rollouts.get(&generation);
            let outcome = match rollout {
                Some(r) => outcome_word(r.phase).to_string(),
                // No deployment of its own: the job did not change, or a newer generation
                // came before Nomad started one.
                None if generation < current => "superseded".to_string(),
                None => "-".to_string(),
            };
            let change = match by_generation.get(&(generation - 1)) {
                Some(before) => {
                    summarize(&spec_changes(&before.spec_json(), &resource.spec_json()))
                }
                None if generation == 1 => "created".to_string(),
                None => "-".to_string(),
            };
            Row {
                generation,
                time: meta
                    .generation_timestamp
                    .or(meta.creation_timestamp)
                    .map_or("-".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                commit: meta
                    .annotations
                    .get(crate::meta::COMMIT)
                    .map_or("-".into(), |c| c.chars().take(12).collect()),
                job_version: rollout.map_or("-".into(), |r| r.job_version.to_string()),
                outcome,
                change,
            }
        })
        .collect()
}

/// The newest rollout of each generation (a retried generation has several).
fn rollouts_by_generation(status: Option<&Status>) -> BTreeMap<i64, PastRollout> {
    let Some(status) = status else {
        return BTreeMap::new();
    };
    let current = status.workload.rollout.iter().map(|r| PastRollout {
        deployment_id: r.deployment_id.clone(),
        job_version: r.job_version,
        generation: r.generation,
        phase: r.phase,
    });
    let mut found = BTreeMap::new();
    // Newest first: the first seen for a generation wins.
    for rollout in current.chain(status.workload.past_rollouts.iter().cloned()) {
        if let Some(generation) = rollout.generation {
            found.entry(generation).or_insert(rollout);
        }
    }
    found
}

fn outcome_word(phase: RolloutPhase) -> &'static str {
    match phase {
        RolloutPhase::Succeeded => "succeeded",
        RolloutPhase::Failed => "failed",
        RolloutPhase::RolledBack => "rolled back",
        RolloutPhase::Superseded => "superseded",
        RolloutPhase::Progressing => "rolling out",
        RolloutPhase::AwaitingPromotion => "awaiting promotion",
        RolloutPhase::Paused => "paused",
    }
}

/// Each field that differs between two specs, as `path: before → after` (`+path: value` when
/// added, `-path` when removed), in path order.
pub fn spec_changes(before: &Value, after: &Value) -> Vec<String> {
    let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
    leaves("", before, &mut old);
    leaves("", after, &mut new);
    let mut changes = Vec::new();
    for (path, value) in &new {
        match old.get(path) {
            Some(was) if was == value => {}
            Some(was) => changes.push(format!("{path}: {was} → {value}")),
            None => changes.push(format!("+{path}: {value}")),
        }
    }
    for path in old.keys().filter(|p| !new.contains_key(*p)) {
        changes.push(format!("-{path}"));
    }
    changes.sort_by(|a, b| bare(a).cmp(bare(b)));
    changes
}

fn bare(change: &str) -> &str {
    change.trim_start_matches(['+', '-'])
}

/// Scalars by dotted path (`env.0.value`), strings without quotes.
fn leaves(path: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| leaves(&join(k), v, out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(&join(&i.to_string()), v, out)),
        Value::String(s) => {
            out.insert(path.to_string(), s.clone());
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

/// The first three changes, and how many more.
fn summarize(changes: &[String]) -> String {
    const SHOWN: usize = 3;
    match changes.len() {
        0 => "no spec change".to_string(),
        n if n <= SHOWN => changes.join(", "),
        n => format!("{} (+{} more)", changes[..SHOWN].join(", "), n - SHOWN),
    }
}

/// Why an undo cannot be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UndoRefusal {
    /// Asked of an object that cannot go there (synced from git, or at that generation).
    Refused(String),
    /// The generation is not kept.
    NotKept(String),
}

/// `rollout undo`: the spec of generation `to` (by default the one before the current), as a
/// change of `current` (its metadata, so labels and annotations stay as they are now, and a
/// write compares its revision). `history` is the store's kept generations.
pub fn undo(
    current: &Resource,
    history: &[Resource],
    to: Option<i64>,
) -> Result<Resource, UndoRefusal> {
    let object = current.object_ref();
    if let Some(refusal) = crate::operator::synced_refusal(current, "revert that commit") {
        return Err(UndoRefusal::Refused(refusal));
    }
    let generation = current.metadata().generation;
    let wanted = to.unwrap_or(generation - 1);
    if wanted == generation {
        return Err(UndoRefusal::Refused(format!(
            "{object} is at generation {generation} already"
        )));
    }
    let Some(target) = history.iter().find(|r| r.metadata().generation == wanted) else {
        let kept: Vec<String> = history
            .iter()
            .map(|r| r.metadata().generation.to_string())
            .collect();
        return Err(UndoRefusal::NotKept(format!(
            "{object} has no stored generation {wanted} (kept: {})",
            if kept.is_empty() {
                "none".to_string()
            } else {
                kept.join(", ")
            }
        )));
    };
    let mut undone = target.clone();
    *undone.metadata_mut() = current.metadata().clone();
    undone.set_status(None);
    Ok(undone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(image: &str, generation: i64) -> Resource {
        let yaml = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n  labels:\n    v: \"{generation}\"\nspec:\n  image: {image}\n"
        );
        let mut resource = crds::parse_str("web.yaml", &yaml)
            .unwrap()
            .remove(0)
            .resource;
        resource.metadata_mut().generation = generation;
        resource
    }

    /// Undo takes a kept generation's spec and keeps the current metadata; it says which
    /// generations are kept when asked for another, and refuses the current one.
    #[test]
    fn undo_puts_a_kept_spec_back_under_the_current_metadata() {
        let history = [generation("nginx:1", 1), generation("nginx:2", 2)];
        let current = generation("nginx:3", 3);
        let undone = undo(&current, &history, None).unwrap();
        assert_eq!(undone.spec_json()["image"], "nginx:2");
        assert_eq!(undone.metadata(), current.metadata());
        let undone = undo(&current, &history, Some(1)).unwrap();
        assert_eq!(undone.spec_json()["image"], "nginx:1");
        assert_eq!(
            undo(&current, &history, Some(7)),
            Err(UndoRefusal::NotKept(
                "app/web has no stored generation 7 (kept: 1, 2)".into()
            ))
        );
        assert!(matches!(
            undo(&current, &history, Some(3)),
            Err(UndoRefusal::Refused(_))
        ));
    }
    use crds::status::RolloutStatus;
    use serde_json::json;

    #[test]
    fn changes_name_each_field_that_moved() {
        let before =
            json!({"image": "nginx:1", "replicas": 2, "env": [{"name": "A", "value": "1"}]});
        let after = json!({"image": "nginx:2", "replicas": 2, "env": [], "update": {"canary": 1}});
        assert_eq!(
            spec_changes(&before, &after),
            [
                "-env.0.name",
                "-env.0.value",
                "image: nginx:1 → nginx:2",
                "+update.canary: 1"
            ]
        );
        assert_eq!(
            summarize(&spec_changes(&before, &after)),
            "-env.0.name, -env.0.value, image: nginx:1 → nginx:2 (+1 more)"
        );
        assert!(spec_changes(&after, &after).is_empty());
    }

    fn app(generation: i64, image: &str) -> Resource {
        let yaml = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n  generation: {generation}\nspec:\n  image: {image}\n  replicas: 2\n"
        );
        crds::parse_str("web.yaml", &yaml)
            .unwrap()
            .remove(0)
            .resource
    }

    fn rollout(generation: Option<i64>, job_version: u64, phase: RolloutPhase) -> PastRollout {
        PastRollout {
            deployment_id: format!("d{job_version}"),
            job_version,
            generation,
            phase,
        }
    }

    #[test]
    fn rows_join_generations_with_their_rollouts() {
        let generations = [
            app(3, "nginx:3"),
            app(1, "nginx:1"),
            app(2, "nginx:broken"),
            app(4, "nginx:3"),
        ];
        let mut status = Status::default();
        let current = rollout(Some(3), 3, RolloutPhase::Succeeded);
        status.workload.rollout = Some(RolloutStatus {
            deployment_id: current.deployment_id,
            phase: current.phase,
            job_version: current.job_version,
            generation: current.generation,
            groups: Default::default(),
            deadline: None,
            description: String::new(),
        });
        status.workload.past_rollouts = vec![
            rollout(None, 2, RolloutPhase::Succeeded),
            rollout(Some(2), 1, RolloutPhase::RolledBack),
            rollout(Some(1), 0, RolloutPhase::Succeeded),
        ];
        let rows = rows(&generations, Some(&status));
        let table: Vec<(i64, &str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.generation,
                    r.job_version.as_str(),
                    r.outcome.as_str(),
                    r.change.as_str(),
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                (1, "0", "succeeded", "created"),
                (2, "1", "rolled back", "image: nginx:1 → nginx:broken"),
                (3, "3", "succeeded", "image: nginx:broken → nginx:3"),
                (4, "-", "-", "no spec change"),
            ]
        );
    }
}
