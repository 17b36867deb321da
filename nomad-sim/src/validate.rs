//! Job validation in Nomad's words: what `Job.Register` and `Job.Plan` refuse, answered as HTTP
//! 500 with go-multierror's text, as Nomad answers it.
//!
//! Modelled: task resources below Nomad's minimum (nomad/structs/structs.go
//! `Resources.MeetsMinResources`, reached through `Job.Validate` → `TaskGroup.Validate` →
//! `Task.Validate` → `Resources.Validate`); constraint operands (`Constraint.Validate`, at job,
//! group and task level); service check intervals and timeouts (structs/services.go
//! `ServiceCheck.validateCommon`, through `TaskGroup.validateServices`); cron specs that
//! hashicorp/cronexpr cannot read as fields (`PeriodicConfig.Validate`); a node pool that
//! does not exist (job_endpoint_hook_node_pool.go `jobNodePoolValidatingHook`); and the updates
//! `validateJobUpdate` (nomad/job_endpoint.go) refuses: a type change, periodic or
//! parameterized added or removed; volume requests (structs/volumes.go
//! `VolumeRequest.Validate`: type, source) and mounts of volumes the group does not request
//! (`Task.Validate`).

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

/// A flat go-multierror list of plain errors, as `multierror.Append` builds it.
pub fn multierror(errors: &[String]) -> String {
    let items: Vec<Item> = errors.iter().cloned().map(Item::Text).collect();
    list_format(&items)
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

/// `Constraint.Validate` for each constraint of a list, wrapped as `Job.Validate`,
/// `TaskGroup.Validate` and `Task.Validate` all wrap it.
fn constraint_errors(holder: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    for (idx, constraint) in list(holder, "Constraints").iter().enumerate() {
        let field = |key: &str| constraint.get(key).and_then(Value::as_str).unwrap_or("");
        let errors: Vec<Item> = crds::nomad_rules::constraint_operand_errors(
            field("Operand"),
            field("LTarget"),
            field("RTarget"),
        )
        .into_iter()
        .map(Item::Text)
        .collect();
        if !errors.is_empty() {
            items.push(Item::Text(format!(
                "Constraint {} validation failed: {}",
                idx + 1,
                list_format(&errors)
            )));
        }
    }
    items
}

/// nomad/structs/services.go `ServiceCheck.validateCommon`: an interval and a timeout of at
/// least a second (`minCheckInterval`, `minCheckTimeout`; the timeout message names the
/// interval's minimum, as Nomad's does).
fn check_error(check: &Value) -> Option<String> {
    const MIN: i64 = 1_000_000_000;
    let nanos = |key: &str| check.get(key).and_then(Value::as_i64).unwrap_or(0);
    let (interval, timeout) = (nanos("Interval"), nanos("Timeout"));
    let problem = if interval == 0 {
        "missing required value interval. Interval cannot be less than 1s".to_string()
    } else if interval < MIN {
        format!(
            "interval ({}) cannot be lower than 1s",
            go_duration(interval)
        )
    } else if timeout == 0 {
        "missing required value timeout. Timeout cannot be less than 1s".to_string()
    } else if timeout < MIN {
        format!(
            "timeout ({}) is lower than required minimum timeout 1s",
            go_duration(timeout)
        )
    } else {
        return None;
    };
    Some(format!("Check {} invalid: {problem}", name(check)))
}

/// `TaskGroup.validateServices` → `Service.Validate` → `validateConsulService`, for the
/// checks: one "Service[i] ... validation failed" item per service with bad checks.
fn service_errors(group: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    for (i, service) in list(group, "Services").iter().enumerate() {
        let checks: Vec<Item> = list(service, "Checks")
            .iter()
            .filter_map(check_error)
            .map(Item::Text)
            .collect();
        if !checks.is_empty() {
            items.push(Item::Text(format!(
                "Service[{i}] {} validation failed: {}",
                name(service),
                list_format(&checks)
            )));
        }
    }
    items
}

/// `PeriodicConfig.Validate` for cron specs: hashicorp/cronexpr `Parse` expands only its own
/// macros (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly`; not
/// `@midnight`) and wants at least five fields ("missing field(s)").
fn periodic_errors(job: &Value) -> Vec<Item> {
    let Some(periodic) = job.get("Periodic").filter(|p| p.is_object()) else {
        return Vec::new();
    };
    let mut specs: Vec<&str> = periodic
        .get("Spec")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .into_iter()
        .collect();
    specs.extend(list(periodic, "Specs").iter().filter_map(Value::as_str));
    let errors: Vec<Item> = specs
        .into_iter()
        .filter(|spec| {
            let expanded = if crds::validate::CRON_MACROS.contains(&spec.trim()) {
                7
            } else {
                spec.split_whitespace().count()
            };
            expanded < 5
        })
        .map(|spec| Item::Text(format!("Invalid cron spec {spec:?}: missing field(s)")))
        .collect();
    if errors.is_empty() {
        Vec::new()
    } else {
        vec![Item::List(errors)]
    }
}

/// Go's `time.Duration.String` for the durations checks carry.
pub fn go_duration(nanos: i64) -> String {
    let trim = |value: f64, unit: &str| {
        let text = format!("{value:.9}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text}{unit}")
    };
    match nanos {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => trim(n as f64 / 1e3, "µs"),
        n if n < 1_000_000_000 => trim(n as f64 / 1e6, "ms"),
        n => {
            let (hours, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
            let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
            let seconds = trim(rest as f64 / 1e9, "s");
            match (hours, minutes) {
                (0, 0) => seconds,
                (0, m) => format!("{m}m{seconds}"),
                (h, m) => format!("{h}h{m}m{seconds}"),
            }
        }
    }
}

/// `Job.Validate` for what the sim models, as the list the register answer prints
/// (`jobValidate.Validate` and `admissionValidators` flatten it into their own lists).
fn job_errors(job: &Value) -> Vec<Item> {
    let mut job_items = constraint_errors(job);
    job_items.extend(periodic_errors(job));
    for group in list(job, "TaskGroups") {
        let mut group_items = constraint_errors(group);
        group_items.extend(volume_errors(group));
        let services = service_errors(group);
        if !services.is_empty() {
            group_items.push(Item::Text(format!(
                "Task group service validation failed: {}",
                list_format(&services)
            )));
        }
        for task in list(group, "Tasks") {
            let mut task_items = constraint_errors(task);
            task_items.extend(volume_mount_errors(group, task));
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

/// `TaskGroup.Validate` on its volume requests, by name (Go's map order is random; names are
/// sorted here): structs/volumes.go `VolumeRequest.Validate` refuses an unknown type outright and
/// lists the rest (an empty source; for CSI, a missing attachment or access mode, a
/// single-node volume shared by more than one instance, a reader-only one written).
fn volume_errors(group: &Value) -> Vec<Item> {
    let Some(volumes) = group.get("Volumes").and_then(Value::as_object) else {
        return Vec::new();
    };
    let count = group.get("Count").and_then(Value::as_u64).unwrap_or(1);
    let mut items = Vec::new();
    for (name, request) in volumes {
        let kind = request.get("Type").and_then(Value::as_str).unwrap_or("");
        let text = |key: &str| request.get(key).and_then(Value::as_str).unwrap_or("");
        let flag = |key: &str| request.get(key).and_then(Value::as_bool).unwrap_or(false);
        let failed = if kind != "host" && kind != "csi" {
            format!("volume has unrecognized type {kind}")
        } else {
            let mut problems = Vec::new();
            if text("Source").is_empty() {
                problems.push(Item::Text("volume has an empty source".into()));
            }
            if kind == "csi" {
                if text("AttachmentMode").is_empty() {
                    problems.push(Item::Text(
                        "CSI volumes must have an attachment mode".into(),
                    ));
                }
                let mode = text("AccessMode");
                let shared = count > 1 && !flag("PerAlloc");
                match mode {
                    "" => problems.push(Item::Text("CSI volumes must have an access mode".into())),
                    "single-node-reader-only" => {
                        if !flag("ReadOnly") {
                            problems.push(Item::Text(format!("{mode} volumes must be read-only")));
                        }
                        if shared {
                            problems.push(Item::Text(format!(
                                "volume with {mode} access mode allows only one reader"
                            )));
                        }
                    }
                    "single-node-writer" if shared => problems.push(Item::Text(format!(
                        "volume with {mode} access mode allows only one reader or writer"
                    ))),
                    "multi-node-reader-only" if !flag("ReadOnly") => {
                        problems.push(Item::Text(format!("{mode} volumes must be read-only")))
                    }
                    "multi-node-single-writer" if shared && !flag("ReadOnly") => {
                        problems.push(Item::Text(format!(
                            "volume with {mode} access mode allows only one writer"
                        )))
                    }
                    _ => {}
                }
            }
            if problems.is_empty() {
                continue;
            }
            list_format(&problems)
        };
        items.push(Item::Text(format!(
            "Task group volume validation for {name} failed: {failed}"
        )));
    }
    items
}

/// `Task.Validate`: a mount of a volume the group does not request.
fn volume_mount_errors(group: &Value, task: &Value) -> Vec<Item> {
    let volumes = group.get("Volumes").and_then(Value::as_object);
    list(task, "VolumeMounts")
        .iter()
        .enumerate()
        .filter_map(|(index, mount)| {
            let volume = mount.get("Volume").and_then(Value::as_str).unwrap_or("");
            let known = volumes.is_some_and(|v| v.contains_key(volume));
            (!known).then(|| {
                Item::Text(format!(
                    "Volume Mount ({index}) references undefined volume {volume}"
                ))
            })
        })
        .collect()
}

/// What `Job.Register` (and `Job.Plan`) answer for an invalid job, or `Ok`. `pools` are the
/// node pools that exist: `default`, `all`, and those clients registered into.
pub fn validate(job: &Value, pools: &std::collections::BTreeSet<String>) -> Result<(), String> {
    let errors = admission_errors(job, pools);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(list_format(&errors))
    }
}

/// `PUT /v1/validate/job` (nomad/job_endpoint.go `Job.Validate`): each of the admission
/// validators' errors as its own text, and the whole list as go-multierror prints it.
pub fn validation_response(job: &Value, pools: &std::collections::BTreeSet<String>) -> Value {
    let errors = admission_errors(job, pools);
    let texts: Vec<String> = errors.iter().map(Item::render).collect();
    let error = if errors.is_empty() {
        String::new()
    } else {
        list_format(&errors)
    };
    serde_json::json!({
        "DriverConfigValidated": false,
        "ValidationErrors": texts,
        "Error": error,
        "Warnings": "",
    })
}

fn admission_errors(job: &Value, pools: &std::collections::BTreeSet<String>) -> Vec<Item> {
    // job_endpoint.go `admissionValidators`: each validator's errors appended to one list,
    // the node pool hook's before `jobValidate`'s.
    let mut errors = Vec::new();
    let pool = job
        .get("NodePool")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if !pool.is_empty() && !pools.contains(pool) {
        errors.push(Item::Text(format!(
            "job {:?} is in nonexistent node pool {pool:?}",
            job.get("ID").and_then(Value::as_str).unwrap_or("")
        )));
    }
    errors.extend(job_errors(job));
    errors
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

    fn pools() -> std::collections::BTreeSet<String> {
        ["default", "all"].iter().map(|p| p.to_string()).collect()
    }

    fn valid() -> Value {
        job(128, 100)
    }

    /// Each refusal as the register answer prints it: Nomad's nesting of go-multierror lists
    /// (job, task group, service, check), texts from nomad/structs and the hooks.
    #[test]
    fn constraints_checks_cron_and_pools_are_refused_in_nomads_words() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut j = valid();
            edit(&mut j);
            validate(&j, &pools()).unwrap_err()
        };
        let is_set = with(&|j| {
            j["Constraints"] =
                json!([{"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "is_set"}]);
        });
        assert_eq!(
            is_set,
            "1 error occurred:\n\t* Constraint 1 validation failed: 1 error occurred:\n\t* Operator \"is_set\" does not support an RTarget\n\n\n\n"
        );
        let group = with(&|j| {
            j["TaskGroups"][0]["Constraints"] = json!([
                {"LTarget": "${attr.os.version}", "RTarget": ">= 1.0, banana", "Operand": "version"},
                {"LTarget": "${meta.rack}", "RTarget": "two", "Operand": "distinct_property"},
                {"LTarget": "${attr.kernel.version}", "RTarget": "1.2.x", "Operand": "semver"},
                {"LTarget": "${node.class}", "RTarget": "(", "Operand": "regexp"},
            ]);
        });
        for expected in [
            "Constraint 1 validation failed: 1 error occurred:\n\t* Version constraint is invalid: Malformed constraint:  banana",
            "Constraint 2 validation failed: 1 error occurred:\n\t* Failed to convert RTarget \"two\" to uint64: strconv.ParseUint: parsing \"two\": invalid syntax",
            "Constraint 3 validation failed: 1 error occurred:\n\t* Semver constraint is invalid: Malformed constraint: 1.2.x",
            "Constraint 4 validation failed: 1 error occurred:\n\t* Regular expression failed to compile: ",
        ] {
            assert!(group.contains(expected), "{expected:?} in {group}");
        }
        assert!(
            group.starts_with(
                "1 error occurred:\n\t* Task group web validation failed: 4 errors occurred:"
            ),
            "{group}"
        );
        let check = with(&|j| {
            j["TaskGroups"][0]["Services"] = json!([{"Name": "web", "Checks": [{"Name": "alive", "Interval": 10_000_000_000u64, "Timeout": 500_000_000u64}]}]);
        });
        assert!(
            check.contains("Task group service validation failed: 1 error occurred:\n\t* Service[0] web validation failed: 1 error occurred:\n\t* Check alive invalid: timeout (500ms) is lower than required minimum timeout 1s"),
            "{check}"
        );
        let cron = with(&|j| {
            j["Type"] = json!("batch");
            j["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "@midnight"});
        });
        assert_eq!(
            cron,
            "1 error occurred:\n\t* 1 error occurred:\n\t* Invalid cron spec \"@midnight\": missing field(s)\n\n\n\n"
        );
        let daily = {
            let mut j = valid();
            j["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "@daily"});
            validate(&j, &pools())
        };
        assert_eq!(daily, Ok(()), "cronexpr's own macros are fine");
        let pool = with(&|j| j["NodePool"] = json!("gpu"));
        assert_eq!(
            pool,
            "1 error occurred:\n\t* job \"web\" is in nonexistent node pool \"gpu\"\n\n"
        );
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        for (nanos, text) in [
            (0, "0s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (250_000, "250µs"),
        ] {
            assert_eq!(go_duration(nanos), text);
        }
    }

    fn job(memory: u64, cpu: u64) -> Value {
        json!({"ID": "web", "Type": "service", "TaskGroups": [{"Name": "web", "Tasks": [
            {"Name": "app", "Resources": {"CPU": cpu, "MemoryMB": memory}}]}]})
    }

    /// The text Nomad answers, nesting and blank lines included: each level is one
    /// go-multierror list (Job.Validate, TaskGroup.Validate, Task.Validate,
    /// Resources.Validate, MeetsMinResources).
    #[test]
    fn memory_below_the_minimum_is_refused_in_nomads_words() {
        assert_eq!(validate(&job(128, 100), &pools()), Ok(()));
        let refused = validate(&job(5, 100), &pools()).unwrap_err();
        assert_eq!(
            refused,
            "1 error occurred:\n\t* Task group web validation failed: 1 error occurred:\n\t* \
             Task app validation failed: 1 error occurred:\n\t* 1 error occurred:\n\t* \
             1 error occurred:\n\t* minimum MemoryMB value is 10; got 5\n\n\n\n\n\n\n\n\n\n"
        );
        let both = validate(&job(5, 0), &pools()).unwrap_err();
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
