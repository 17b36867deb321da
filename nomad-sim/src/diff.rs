//! Job diffs in Nomad's shape (`nomad job plan -diff`, `/versions?diffs=true`): primitive
//! `Fields`, nested `Objects`, and one entry per task group and task, each typed `Added`,
//! `Deleted`, `Edited` or `None`.

use serde_json::{json, Map, Value};

use super::model::SERVER_SET_FIELDS;

fn diff_type(old: Option<&Value>, new: Option<&Value>) -> &'static str {
    match (old, new) {
        (None, Some(_)) => "Added",
        (Some(_), None) => "Deleted",
        (Some(a), Some(b)) if a != b => "Edited",
        _ => "None",
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn show(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn field(name: &str, old: Option<&Value>, new: Option<&Value>) -> Option<Value> {
    let kind = diff_type(old, new);
    (kind != "None").then(|| json!({"Type": kind, "Name": name, "Old": show(old), "New": show(new), "Annotations": null}))
}

fn or_null(items: Vec<Value>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items)
    }
}

fn is_primitive(value: &Value) -> bool {
    !value.is_object() && !value.is_array()
}

/// Primitive fields and nested objects that differ between two objects.
fn fields_and_objects(old: Option<&Value>, new: Option<&Value>) -> (Vec<Value>, Vec<Value>) {
    let empty = Map::new();
    let old_map = old.and_then(Value::as_object).unwrap_or(&empty);
    let new_map = new.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = old_map
        .keys()
        .chain(new_map.keys())
        .filter(|k| {
            !SERVER_SET_FIELDS.contains(&k.as_str())
                && !matches!(k.as_str(), "TaskGroups" | "Tasks")
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut fields = Vec::new();
    let mut objects = Vec::new();
    for key in keys {
        let (a, b) = (present(old_map.get(key)), present(new_map.get(key)));
        if a == b {
            continue;
        }
        let sample = b.or(a).expect("one side is present");
        match sample {
            v if is_primitive(v) => fields.extend(field(key, a, b)),
            // Maps of strings (Meta, Env) diff as `Meta[key]` fields, as Nomad does.
            Value::Object(map) if map.values().all(is_primitive) => {
                let (old_inner, new_inner) =
                    (a.and_then(Value::as_object), b.and_then(Value::as_object));
                let mut inner: Vec<&String> = old_inner
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .chain(new_inner.into_iter().flat_map(|m| m.keys()))
                    .collect();
                inner.sort();
                inner.dedup();
                for name in inner {
                    let label = format!("{key}[{name}]");
                    fields.extend(field(
                        &label,
                        old_inner.and_then(|m| m.get(name)),
                        new_inner.and_then(|m| m.get(name)),
                    ));
                }
            }
            Value::Object(_) => objects.extend(object_diff(key, a, b)),
            Value::Array(items) if items.iter().all(is_primitive) => {
                let old_items: Vec<&Value> = a
                    .and_then(Value::as_array)
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                let new_items: Vec<&Value> = b
                    .and_then(Value::as_array)
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                let mut item_fields = Vec::new();
                for item in &new_items {
                    if !old_items.contains(item) {
                        item_fields.extend(field(key, None, Some(item)));
                    }
                }
                for item in &old_items {
                    if !new_items.contains(item) {
                        item_fields.extend(field(key, Some(item), None));
                    }
                }
                objects.push(json!({"Type": diff_type(a, b), "Name": key, "Fields": or_null(item_fields), "Objects": null}));
            }
            Value::Array(_) => {
                let old_items = a.and_then(Value::as_array).cloned().unwrap_or_default();
                let new_items = b.and_then(Value::as_array).cloned().unwrap_or_default();
                for item in &new_items {
                    if !old_items.contains(item) {
                        objects.extend(object_diff(key, None, Some(item)));
                    }
                }
                for item in &old_items {
                    if !new_items.contains(item) {
                        objects.extend(object_diff(key, Some(item), None));
                    }
                }
            }
            _ => {}
        }
    }
    (fields, objects)
}

fn object_diff(name: &str, old: Option<&Value>, new: Option<&Value>) -> Option<Value> {
    let kind = diff_type(old, new);
    if kind == "None" {
        return None;
    }
    let (fields, objects) = fields_and_objects(old, new);
    Some(
        json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects)}),
    )
}

fn named<'v>(list: Option<&'v Value>, name: &str) -> Option<&'v Value> {
    list.and_then(Value::as_array).and_then(|items| {
        items
            .iter()
            .find(|i| i.get("Name").and_then(Value::as_str) == Some(name))
    })
}

fn names(old: Option<&Value>, new: Option<&Value>) -> Vec<String> {
    let mut all: Vec<String> = [new, old]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|i| i.get("Name").and_then(Value::as_str).map(String::from))
        .collect();
    let mut seen = Vec::new();
    all.retain(|n| {
        let fresh = !seen.contains(n);
        seen.push(n.clone());
        fresh
    });
    all
}

/// scheduler/annotate.go `annotateTask`: a change to any of a task's own fields but
/// `KillTimeout`, or to any of its objects but services, constraints, affinities, spreads and
/// log settings (short of turning logging on or off), replaces its allocations; the rest is
/// done in place.
fn forces_destructive_update(fields: &[Value], objects: &[Value]) -> bool {
    let name = |v: &Value| {
        v.get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    fields.iter().any(|f| name(f) != "KillTimeout")
        || objects.iter().any(|o| match name(o).as_str() {
            "Service" | "Services" | "Constraint" | "Constraints" | "Affinity" | "Affinities"
            | "Spread" | "Spreads" => false,
            "LogConfig" => o
                .get("Fields")
                .and_then(Value::as_array)
                .is_some_and(|fields| fields.iter().any(|f| name(f) == "Disabled")),
            _ => true,
        })
}

fn task_diff(old: Option<&Value>, new: Option<&Value>, name: &str) -> Value {
    let kind = diff_type(old, new);
    let (fields, objects) = fields_and_objects(old, new);
    let annotation = match kind {
        "Added" => json!(["forces create"]),
        "Deleted" => json!(["forces destroy"]),
        "Edited" if forces_destructive_update(&fields, &objects) => {
            json!(["forces create/destroy update"])
        }
        "Edited" => json!(["forces in-place update"]),
        _ => Value::Null,
    };
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects), "Annotations": annotation})
}

/// The diff of one task group; `updates` is the scheduler's count of what it would do.
fn group_diff(
    old: Option<&Value>,
    new: Option<&Value>,
    name: &str,
    updates: Option<&Value>,
) -> Value {
    let kind = diff_type(old, new);
    let (mut fields, objects) = fields_and_objects(old, new);
    // scheduler/annotate.go `annotateCountChange`.
    for field in fields.iter_mut().filter(|f| f["Name"] == "Count") {
        let count = |side: &str| {
            field[side]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (before, after) = (count("Old"), count("New"));
        if before != after {
            let said = if before < after {
                "forces create"
            } else {
                "forces destroy"
            };
            field["Annotations"] = json!([said]);
        }
    }
    let tasks: Vec<Value> = names(
        old.and_then(|g| g.get("Tasks")),
        new.and_then(|g| g.get("Tasks")),
    )
    .iter()
    .map(|task| {
        task_diff(
            named(old.and_then(|g| g.get("Tasks")), task),
            named(new.and_then(|g| g.get("Tasks")), task),
            task,
        )
    })
    .collect();
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects), "Tasks": or_null(tasks), "Updates": updates.cloned().unwrap_or(Value::Null)})
}

/// The whole job diff. `updates` maps a group name to Nomad's `Updates` counts
/// (`{"create": 1}`), when the caller has a plan.
pub fn job_diff(old: Option<&Value>, new: &Value, updates: &Map<String, Value>) -> Value {
    let kind = diff_type(old, Some(new));
    let (fields, objects) = fields_and_objects(old, Some(new));
    let groups: Vec<Value> = names(old.and_then(|j| j.get("TaskGroups")), new.get("TaskGroups"))
        .iter()
        .map(|group| {
            group_diff(
                named(old.and_then(|j| j.get("TaskGroups")), group),
                named(new.get("TaskGroups"), group),
                group,
                updates.get(group),
            )
        })
        .collect();
    json!({"Type": kind, "ID": new.get("ID").cloned().unwrap_or(Value::Null), "Fields": or_null(fields), "Objects": or_null(objects), "TaskGroups": or_null(groups)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_change_shows_as_a_task_field() {
        let old = json!({"ID": "web", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Env": {"A": "1"}}]}]});
        let new = json!({"ID": "web", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Env": {"A": "1", "foo": "bar"}}]}]});
        let diff = job_diff(Some(&old), &new, &Map::new());
        assert_eq!(diff["Type"], "Edited");
        let field = &diff["TaskGroups"][0]["Tasks"][0]["Fields"][0];
        assert_eq!(
            (
                field["Name"].as_str(),
                field["Type"].as_str(),
                field["New"].as_str()
            ),
            (Some("Env[foo]"), Some("Added"), Some("bar"))
        );
    }

    #[test]
    fn a_new_job_is_added_everywhere() {
        let new = json!({"ID": "web", "Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker"}]}]});
        let diff = job_diff(None, &new, &Map::new());
        assert_eq!(diff["Type"], "Added");
        assert_eq!(diff["Objects"][0]["Name"], "Datacenters");
        assert_eq!(
            diff["TaskGroups"][0]["Tasks"][0]["Annotations"],
            json!(["forces create"])
        );
    }

    #[test]
    fn identical_jobs_have_no_changes() {
        let job = json!({"ID": "web", "Priority": 50, "TaskGroups": [{"Name": "g", "Tasks": []}]});
        let diff = job_diff(Some(&job), &job, &Map::new());
        assert_eq!(
            (diff["Type"].as_str(), &diff["Fields"]),
            (Some("None"), &Value::Null)
        );
    }
}
