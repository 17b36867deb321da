//! Job validation in Nomad's words: what `Job.Register` and `Job.Plan` refuse, answered as HTTP
//! 500 with go-multierror's text, as Nomad answers it.
//!
//! Modelled: task resources below Nomad's minimum (nomad/structs/structs.go
//! `Resources.MeetsMinResources`, reached through `Job.Validate` → `TaskGroup.Validate` →
//! `Task.Validate` → `Resources.Validate`), and the updates `validateJobUpdate`
//! (nomad/job_endpoint.go) refuses: a type change, periodic or parameterized added or removed.
//! Not modelled yet: service check timeouts, constraint operands, cron specs, node pools.

use serde_json::Value;

/// nomad/structs/structs.go `MinResources`.
const MIN_CPU: u64 = 1;
const MIN_MEMORY_MB: u64 = 10;

/// One error of a go-multierror list: plain text, or a nested list (which go-multierror prints
/// inside its parent's item, blank lines and all).
enum Item {
    Text(String),
    List(Vec<Item>),
}

impl Item {
    fn render(&self) -> String {
        match self {
            Item::Text(text) => text.clone(),
            Item::List(items) => list_format(items),
        }
    }
}

/// hashicorp/go-multierror `ListFormatFunc`.
fn list_format(items: &[Item]) -> String {
    if items.len() == 1 {
        return format!("1 error occurred:\n\t* {}\n\n", items[0].render());
    }
    let points: Vec<String> = items.iter().map(|i| format!("* {}", i.render())).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        items.len(),
        points.join("\n\t")
    )
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn name(v: &Value) -> &str {
    v.get("Name").and_then(Value::as_str).unwrap_or("")
}

/// `Resources.Validate`: `MeetsMinResources` adds its own list as one item.
fn resources_errors(resources: &Value) -> Vec<Item> {
    let number = |key: &str| resources.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut minimums = Vec::new();
    if number("CPU") < MIN_CPU && number("Cores") == 0 {
        minimums.push(Item::Text(format!(
            "minimum CPU value is {MIN_CPU}; got {}",
            number("CPU")
        )));
    }
    if number("MemoryMB") < MIN_MEMORY_MB {
        minimums.push(Item::Text(format!(
            "minimum MemoryMB value is {MIN_MEMORY_MB}; got {}",
            number("MemoryMB")
        )));
    }
    if minimums.is_empty() {
        Vec::new()
    } else {
        vec![Item::List(minimums)]
    }
}

/// `Job.Validate` for what the sim models, as the list the register answer prints
/// (`jobValidate.Validate` and `admissionValidators` flatten it into their own lists).
fn job_errors(job: &Value) -> Vec<Item> {
    let mut job_items = Vec::new();
    for group in list(job, "TaskGroups") {
        let mut group_items = Vec::new();
        for task in list(group, "Tasks") {
            let mut task_items = Vec::new();
            if let Some(resources) = task.get("Resources").filter(|r| r.is_object()) {
                let errors = resources_errors(resources);
                if !errors.is_empty() {
                    task_items.push(Item::List(errors));
                }
            }
            if !task_items.is_empty() {
                group_items.push(Item::Text(format!(
                    "Task {} validation failed: {}",
                    name(task),
                    list_format(&task_items)
                )));
            }
        }
        if !group_items.is_empty() {
            job_items.push(Item::Text(format!(
                "Task group {} validation failed: {}",
                name(group),
                list_format(&group_items)
            )));
        }
    }
    job_items
}

/// What `Job.Register` (and `Job.Plan`) answer for an invalid job, or `Ok`.
pub fn validate(job: &Value) -> Result<(), String> {
    let errors = job_errors(job);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(list_format(&errors))
    }
}

/// nomad/job_endpoint.go `validateJobUpdate`: what an update of an existing job may not change.
pub fn validate_update(old: &Value, new: &Value) -> Result<(), String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let (old_type, new_type) = (text(old, "Type"), text(new, "Type"));
    if old_type != new_type {
        return Err(format!(
            "cannot update job from type {old_type:?} to {new_type:?}"
        ));
    }
    // structs.Job.IsPeriodic: a periodic block, enabled or not (a suspended cron job keeps it).
    let periodic = |v: &Value| v.get("Periodic").is_some_and(Value::is_object);
    match (periodic(old), periodic(new)) {
        (true, false) => return Err("cannot update periodic job to being non-periodic".into()),
        (false, true) => return Err("cannot update non-periodic job to being periodic".into()),
        _ => {}
    }
    let parameterized = |v: &Value| v.get("ParameterizedJob").is_some_and(Value::is_object);
    match (parameterized(old), parameterized(new)) {
        (true, false) => Err("cannot update parameterized job to being non-parameterized".into()),
        (false, true) => Err("cannot update non-parameterized job to being parameterized".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(memory: u64, cpu: u64) -> Value {
        json!({"ID": "web", "Type": "service", "TaskGroups": [{"Name": "web", "Tasks": [
            {"Name": "app", "Resources": {"CPU": cpu, "MemoryMB": memory}}]}]})
    }

    /// The text Nomad answers, nesting and blank lines included: each level is one
    /// go-multierror list (Job.Validate, TaskGroup.Validate, Task.Validate,
    /// Resources.Validate, MeetsMinResources).
    #[test]
    fn memory_below_the_minimum_is_refused_in_nomads_words() {
        assert_eq!(validate(&job(128, 100)), Ok(()));
        let refused = validate(&job(5, 100)).unwrap_err();
        assert_eq!(
            refused,
            "1 error occurred:\n\t* Task group web validation failed: 1 error occurred:\n\t* \
             Task app validation failed: 1 error occurred:\n\t* 1 error occurred:\n\t* \
             1 error occurred:\n\t* minimum MemoryMB value is 10; got 5\n\n\n\n\n\n\n\n\n\n"
        );
        let both = validate(&job(5, 0)).unwrap_err();
        assert!(
            both.contains("2 errors occurred:\n\t* minimum CPU value is 1; got 0\n\t* minimum MemoryMB value is 10; got 5"),
            "{both:?}"
        );
    }

    #[test]
    fn updates_may_not_change_the_job_type_or_periodicity() {
        let service = json!({"Type": "service"});
        assert_eq!(validate_update(&service, &service), Ok(()));
        assert_eq!(
            validate_update(&service, &json!({"Type": "batch"})),
            Err("cannot update job from type \"service\" to \"batch\"".into())
        );
        let periodic = json!({"Type": "batch", "Periodic": {"Enabled": true, "Spec": "@daily"}});
        assert_eq!(
            validate_update(&json!({"Type": "batch"}), &periodic),
            Err("cannot update non-periodic job to being periodic".into())
        );
        let disabled = json!({"Type": "batch", "Periodic": {"Enabled": false, "Spec": "@daily"}});
        assert_eq!(
            validate_update(&periodic, &disabled),
            Ok(()),
            "disabling stays periodic"
        );
    }
}
