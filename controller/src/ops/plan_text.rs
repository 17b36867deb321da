//! Nomad's plan for a job, as people read it: the shape of `nomad job plan`'s output
//! (command/job_plan.go), from the plan's annotated diff. A new job shows its groups with what
//! the scheduler would do and its tasks with image and resources, not every field of the API
//! form; a changed job shows what changes, each group's counts (create, destroy, in-place
//! update, create/destroy update, canary, ignore) and for each task whether the change is made
//! in place or replaces instances (Nomad's `forces ...` annotations). Pure.

use serde_json::Value;

use crate::clients::nomad_types::{Job, PlanResponse};

fn marker(diff_type: &str) -> &'static str {
    match diff_type {
        "Added" => "+ ",
        "Deleted" => "- ",
        "Edited" => "~ ",
        _ => "",
    }
}

fn list(node: &Value, key: &str) -> Vec<Value> {
    node.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn text(node: &Value, key: &str) -> String {
    node.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// ` (a, b)` for a diff's annotations, nothing without any.
fn annotations(node: &Value) -> String {
    let said: Vec<String> = list(node, "Annotations")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(" ({})", said.join(", "))
    }
}

fn field_line(field: &Value, indent: usize) -> Option<String> {
    let kind = text(field, "Type");
    let (old, new) = (text(field, "Old"), text(field, "New"));
    let change = match kind.as_str() {
        "Added" => format!("{new:?}"),
        "Deleted" => format!("{old:?}"),
        "Edited" => format!("{old:?} => {new:?}"),
        _ => return None,
    };
    Some(format!(
        "{}{}{}: {change}{}",
        " ".repeat(indent),
        marker(&kind),
        text(field, "Name"),
        annotations(field)
    ))
}

/// Fields, then nested objects as `Name { ... }`.
fn fields_and_objects(node: &Value, indent: usize, out: &mut Vec<String>) {
    out.extend(
        list(node, "Fields")
            .iter()
            .filter_map(|f| field_line(f, indent)),
    );
    for object in list(node, "Objects") {
        let kind = text(&object, "Type");
        if kind == "None" {
            continue;
        }
        out.push(format!(
            "{}{}{} {{",
            " ".repeat(indent),
            marker(&kind),
            text(&object, "Name")
        ));
        fields_and_objects(&object, indent + 2, out);
        out.push(format!("{}}}", " ".repeat(indent)));
    }
}

/// What a task runs, from the desired job: `image nginx:1, 100 MHz, 256 MB`.
fn task_summary(job: &Job, group: &str, task: &str) -> Option<String> {
    let value = serde_json::to_value(job).ok()?;
    let task = list(&value, "TaskGroups")
        .into_iter()
        .find(|g| text(g, "Name") == group)
        .map(|g| list(&g, "Tasks"))?
        .into_iter()
        .find(|t| text(t, "Name") == task)?;
    let image = task.pointer("/Config/image").and_then(Value::as_str);
    let cpu = task.pointer("/Resources/CPU").and_then(Value::as_u64);
    let memory = task.pointer("/Resources/MemoryMB").and_then(Value::as_u64);
    let mut parts = Vec::new();
    if let Some(image) = image {
        parts.push(format!("image {image}"));
    }
    if let Some(cpu) = cpu {
        parts.push(format!("{cpu} MHz"));
    }
    if let Some(memory) = memory {
        parts.push(format!("{memory} MB"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// ` (1 create, 2 ignore)`, sorted by kind as Nomad sorts them.
fn updates(group: &Value) -> String {
    let Some(counts) = group.get("Updates").and_then(Value::as_object) else {
        return String::new();
    };
    let mut said: Vec<(String, u64)> = counts
        .iter()
        .filter_map(|(kind, n)| n.as_u64().filter(|n| *n > 0).map(|n| (kind.clone(), n)))
        .collect();
    said.sort();
    if said.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = said.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
    format!(" ({})", parts.join(", "))
}

/// The plan's diff as lines, `nomad job plan` style.
pub fn diff_lines(diff: &Value, desired: &Job) -> Vec<String> {
    let mut out = Vec::new();
    let job_type = text(diff, "Type");
    out.push(format!("{}Job: {:?}", marker(&job_type), text(diff, "ID")));
    if job_type == "Edited" {
        fields_and_objects(diff, 2, &mut out);
    }
    for group in list(diff, "TaskGroups") {
        let group_type = text(&group, "Type");
        let name = text(&group, "Name");
        out.push(format!(
            "{}Task Group: {name:?}{}",
            marker(&group_type),
            updates(&group)
        ));
        if group_type == "Edited" {
            fields_and_objects(&group, 2, &mut out);
        }
        for task in list(&group, "Tasks") {
            let task_type = text(&task, "Type");
            let task_name = text(&task, "Name");
            out.push(format!(
                "  {}Task: {task_name:?}{}",
                marker(&task_type),
                annotations(&task)
            ));
            match task_type.as_str() {
                "Added" => out
                    .extend(task_summary(desired, &name, &task_name).map(|s| format!("      {s}"))),
                "Edited" => fields_and_objects(&task, 4, &mut out),
                _ => {}
            }
        }
    }
    out
}

/// What the scheduler's dry run found: `- All tasks successfully allocated.`, or which groups
/// could not be placed and why.
pub fn dry_run_lines(plan: &PlanResponse) -> Vec<String> {
    let failed = plan
        .extra
        .get("FailedTGAllocs")
        .and_then(Value::as_object)
        .filter(|f| !f.is_empty());
    let Some(failed) = failed else {
        return vec!["- All tasks successfully allocated.".into()];
    };
    let mut out = vec!["- WARNING: Failed to place all allocations.".to_string()];
    for (group, metrics) in failed {
        let count = metrics
            .get("CoalescedFailures")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        let noun = if count > 1 {
            "allocations"
        } else {
            "allocation"
        };
        out.push(format!(
            "  Task Group {group:?} (failed to place {count} {noun}):"
        ));
        for (what, n) in metrics
            .get("DimensionExhausted")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.push(format!("    * Dimension {what:?} exhausted on {n} nodes"));
        }
        for (what, n) in metrics
            .get("ConstraintFiltered")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.push(format!(
                "    * Constraint {what:?}: {n} nodes excluded by filter"
            ));
        }
    }
    out
}

/// Whether the plan changes anything Nomad runs or holds.
pub fn changes(plan: &PlanResponse) -> bool {
    plan.diff
        .as_ref()
        .and_then(|d| d.get("Type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "None")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Job {
        serde_json::from_value(json!({"ID": "web", "TaskGroups": [{"Name": "app", "Count": 2,
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx:1"}, "Resources": {"CPU": 100, "MemoryMB": 256}}]}]}))
        .unwrap()
    }

    /// A new job reads as its groups and tasks, not as every empty field of the API form.
    #[test]
    fn a_new_job_shows_groups_counts_and_what_each_task_runs() {
        let diff = json!({"Type": "Added", "ID": "web",
            "Fields": [{"Type": "Added", "Name": "ConsulToken", "Old": "", "New": ""}, {"Type": "Added", "Name": "Dispatched", "Old": "", "New": "false"}],
            "TaskGroups": [{"Type": "Added", "Name": "app", "Updates": {"create": 2},
                "Fields": [{"Type": "Added", "Name": "Count", "Old": "", "New": "2"}],
                "Tasks": [{"Type": "Added", "Name": "app", "Annotations": ["forces create"], "Fields": [{"Type": "Added", "Name": "Driver", "Old": "", "New": "docker"}]}]}]});
        assert_eq!(
            diff_lines(&diff, &job()),
            [
                "+ Job: \"web\"",
                "+ Task Group: \"app\" (2 create)",
                "  + Task: \"app\" (forces create)",
                "      image nginx:1, 100 MHz, 256 MB",
            ]
        );
    }

    #[test]
    fn a_changed_job_shows_what_changes_and_how_it_is_rolled_out() {
        let diff = json!({"Type": "Edited", "ID": "web", "Fields": null,
            "TaskGroups": [{"Type": "Edited", "Name": "app", "Updates": {"create/destroy update": 1, "ignore": 0, "create": 1},
                "Fields": [{"Type": "Edited", "Name": "Count", "Old": "1", "New": "2", "Annotations": ["forces create"]}],
                "Tasks": [{"Type": "Edited", "Name": "app", "Annotations": ["forces create/destroy update"], "Fields": null,
                    "Objects": [{"Type": "Edited", "Name": "Config", "Fields": [{"Type": "Edited", "Name": "image", "Old": "nginx:1", "New": "nginx:2"}]}]}]}]});
        assert_eq!(
            diff_lines(&diff, &job()),
            [
                "~ Job: \"web\"",
                "~ Task Group: \"app\" (1 create, 1 create/destroy update)",
                "  ~ Count: \"1\" => \"2\" (forces create)",
                "  ~ Task: \"app\" (forces create/destroy update)",
                "    ~ Config {",
                "      ~ image: \"nginx:1\" => \"nginx:2\"",
                "    }",
            ]
        );
    }

    #[test]
    fn the_dry_run_says_what_could_not_be_placed() {
        let fine: PlanResponse = serde_json::from_value(json!({"FailedTGAllocs": null})).unwrap();
        assert_eq!(
            dry_run_lines(&fine),
            ["- All tasks successfully allocated."]
        );
        let full: PlanResponse = serde_json::from_value(json!({"FailedTGAllocs": {"app": {
            "CoalescedFailures": 2, "DimensionExhausted": {"memory": 3}}}}))
        .unwrap();
        assert_eq!(
            dry_run_lines(&full),
            [
                "- WARNING: Failed to place all allocations.",
                "  Task Group \"app\" (failed to place 3 allocations):",
                "    * Dimension \"memory\" exhausted on 3 nodes",
            ]
        );
    }
}
