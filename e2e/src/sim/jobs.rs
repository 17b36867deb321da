//! Job writes as Nomad's job endpoint does them: canonicalize, check-and-set, version, evaluate.

use serde_json::{json, Map, Value};

use super::cluster::Cluster;
use super::error::{ApiError, ApiResult};
use super::model::{JobRecord, MAX_VERSIONS};
use super::render;

const SECOND: i64 = 1_000_000_000;

/// Fills what Nomad's canonicalization fills, keeping every field it does not know.
pub fn canonicalize(mut job: Value, namespace: &str, region: &str) -> Value {
    let object = job.as_object_mut().expect("checked by the caller");
    let id = object
        .get("ID")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    object.insert("ID".into(), json!(id));
    object.insert("Namespace".into(), json!(namespace));
    object.insert("Region".into(), json!(region));
    let default = |object: &mut Map<String, Value>, key: &str, value: Value| {
        let missing = object
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        if missing {
            object.insert(key.to_string(), value);
        }
    };
    default(object, "Name", json!(id));
    default(object, "Type", json!("service"));
    default(object, "Priority", json!(50));
    default(object, "NodePool", json!("default"));
    let no_datacenters = object
        .get("Datacenters")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_datacenters {
        object.insert("Datacenters".into(), json!(["*"]));
    }
    for (key, value) in [
        ("ParentID", json!("")),
        ("AllAtOnce", json!(false)),
        ("Dispatched", json!(false)),
        ("DispatchIdempotencyToken", json!("")),
        ("ConsulToken", json!("")),
        ("VaultToken", json!("")),
        ("NomadTokenID", json!("")),
    ] {
        object.entry(key).or_insert(value);
    }
    for key in [
        "Constraints",
        "Affinities",
        "Spreads",
        "Meta",
        "Periodic",
        "ParameterizedJob",
        "Payload",
        "Multiregion",
        "UI",
    ] {
        object.entry(key).or_insert(Value::Null);
    }
    object
        .entry("Update")
        .or_insert(json!({"Stagger": 30 * SECOND, "MaxParallel": 1}));
    if let Some(periodic) = object.get_mut("Periodic").and_then(Value::as_object_mut) {
        periodic.entry("Enabled").or_insert(json!(true));
        periodic.entry("SpecType").or_insert(json!("cron"));
        periodic.entry("ProhibitOverlap").or_insert(json!(false));
        periodic.entry("TimeZone").or_insert(json!("UTC"));
    }
    let batch = matches!(
        object.get("Type").and_then(Value::as_str),
        Some("batch" | "sysbatch")
    );
    if let Some(groups) = object.get_mut("TaskGroups").and_then(Value::as_array_mut) {
        for group in groups.iter_mut().filter_map(Value::as_object_mut) {
            canonicalize_group(group, batch);
        }
    }
    job
}

fn canonicalize_group(group: &mut Map<String, Value>, batch: bool) {
    let set_if_null = |group: &mut Map<String, Value>, key: &str, value: Value| {
        if group.get(key).is_none_or(Value::is_null) {
            group.insert(key.to_string(), value);
        }
    };
    set_if_null(group, "Count", json!(1));
    let restart = if batch {
        json!({"Attempts": 3, "Interval": 86400 * SECOND, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": false})
    } else {
        json!({"Attempts": 2, "Interval": 1800 * SECOND, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": false})
    };
    set_if_null(group, "RestartPolicy", restart);
    let reschedule = if batch {
        json!({"Attempts": 1, "Interval": 86400 * SECOND, "Delay": 5 * SECOND, "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": false})
    } else {
        json!({"Attempts": 0, "Interval": 0, "Delay": 30 * SECOND, "DelayFunction": "exponential", "MaxDelay": 3600 * SECOND, "Unlimited": true})
    };
    set_if_null(group, "ReschedulePolicy", reschedule);
    set_if_null(
        group,
        "EphemeralDisk",
        json!({"Sticky": false, "SizeMB": 300, "Migrate": false}),
    );
    if !batch {
        set_if_null(
            group,
            "Migrate",
            json!({"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SECOND, "HealthyDeadline": 300 * SECOND}),
        );
    }
    for key in [
        "Constraints",
        "Affinities",
        "Spreads",
        "Networks",
        "Services",
        "Meta",
        "Volumes",
        "Update",
        "Scaling",
    ] {
        group.entry(key).or_insert(Value::Null);
    }
    if let Some(tasks) = group.get_mut("Tasks").and_then(Value::as_array_mut) {
        for task in tasks.iter_mut().filter_map(Value::as_object_mut) {
            let resources = task.entry("Resources").or_insert(json!({}));
            if resources.is_null() {
                *resources = json!({});
            }
            if let Some(resources) = resources.as_object_mut() {
                resources.entry("CPU").or_insert(json!(100));
                resources.entry("MemoryMB").or_insert(json!(300));
                resources.entry("DiskMB").or_insert(json!(0));
            }
            for (key, value) in [
                ("User", json!("")),
                ("Leader", json!(false)),
                ("KillTimeout", json!(5 * SECOND)),
            ] {
                task.entry(key).or_insert(value);
            }
            task.entry("LogConfig")
                .or_insert(json!({"MaxFiles": 10, "MaxFileSizeMB": 10}));
            for key in [
                "Env",
                "Services",
                "Constraints",
                "Affinities",
                "Artifacts",
                "Templates",
                "Vault",
                "Meta",
                "Lifecycle",
                "DispatchPayload",
            ] {
                task.entry(key).or_insert(Value::Null);
            }
        }
    }
}

/// The register reply: `{EvalID, EvalCreateIndex, JobModifyIndex, Warnings, Index, ...}`.
fn register_reply(eval_id: &str, eval_index: u64, job_modify_index: u64, index: u64) -> Value {
    json!({
        "EvalID": eval_id,
        "EvalCreateIndex": eval_index,
        "JobModifyIndex": job_modify_index,
        "Warnings": "",
        "Index": index,
        "LastContact": 0,
        "KnownLeader": true,
    })
}

/// Resolves the namespace of a register or plan: query, then body, then job, then `default`.
pub fn namespace_for(query_namespace: Option<&str>, body: &Value, job: &Value) -> String {
    query_namespace
        .filter(|n| !n.is_empty())
        .map(String::from)
        .or_else(|| {
            body.get("Namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(String::from)
        })
        .or_else(|| {
            job.get("Namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(String::from)
        })
        .unwrap_or_else(|| "default".into())
}

/// Checks the body of a register or plan and returns the job in it.
pub fn job_from_body(body: &Value, url_id: Option<&str>, mismatch: &str) -> ApiResult<Value> {
    let job = body
        .get("Job")
        .filter(|j| j.is_object())
        .ok_or_else(|| ApiError::bad_request("Job must be specified"))?;
    let id = job.get("ID").and_then(Value::as_str).unwrap_or_default();
    if id.is_empty() {
        return Err(ApiError::bad_request("Job ID hasn't been provided"));
    }
    if let Some(url_id) = url_id {
        if url_id != id {
            return Err(ApiError::bad_request(mismatch.to_string()));
        }
    }
    Ok(job.clone())
}

impl Cluster {
    pub fn register_job(
        &mut self,
        query_namespace: Option<&str>,
        body: &Value,
        url_id: Option<&str>,
    ) -> ApiResult<Value> {
        let submitted = job_from_body(body, url_id, "Job ID does not match name")?;
        let namespace = namespace_for(query_namespace, body, &submitted);
        let id = submitted["ID"].as_str().unwrap_or_default().to_string();
        if !self.namespace_exists(&namespace) {
            return Err(ApiError::internal(format!(
                "job \"{id}\" is in nonexistent namespace \"{namespace}\""
            )));
        }
        let spec = canonicalize(submitted, &namespace, &self.config.region.clone());
        let key = (namespace.clone(), id.clone());
        let existing = self.jobs.get(&key).cloned();
        if body
            .get("EnforceIndex")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            let wanted = body
                .get("JobModifyIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let prefix = format!("Enforcing job modify index {wanted}");
            match (&existing, wanted) {
                (Some(_), 0) => {
                    return Err(ApiError::internal(format!("{prefix}: job already exists")))
                }
                (None, w) if w > 0 => {
                    return Err(ApiError::internal(format!("{prefix}: job does not exist")))
                }
                (Some(job), w) if job.job_modify_index != w => {
                    return Err(ApiError::internal(format!(
                        "{prefix}: job exists with conflicting job modify index: {}",
                        job.job_modify_index
                    )))
                }
                _ => {}
            }
        }
        let index = self.bump();
        let unchanged = existing
            .as_ref()
            .is_some_and(|job| job.spec == spec && !job.stop);
        let record = match existing {
            Some(job) if unchanged => job,
            Some(mut job) => {
                let previous = render::job(self, &job);
                job.versions.insert(0, previous);
                job.versions.truncate(MAX_VERSIONS - 1);
                job.spec = spec;
                job.version += 1;
                job.job_modify_index = index;
                job.modify_index = index;
                job.submit_time = self.clock.now_nanos();
                job.stop = false;
                job.stable = false;
                job
            }
            None => JobRecord {
                spec,
                namespace: namespace.clone(),
                id: id.clone(),
                version: 0,
                create_index: index,
                modify_index: index,
                job_modify_index: index,
                submit_time: self.clock.now_nanos(),
                stop: false,
                stable: false,
                versions: Vec::new(),
                last_launch: None,
            },
        };
        let job_modify_index = record.job_modify_index;
        let periodic_or_parameterized = record.is_periodic() || record.is_parameterized();
        self.jobs.insert(key, record.clone());
        if !unchanged {
            self.tables.jobs = index;
            self.emit_job(&namespace, &id, "JobRegistered", index);
        }
        // Periodic and parameterized parents get no evaluation; everything else does, even an
        // unchanged resubmission (that is how `nomad job run` re-triggers scheduling).
        if periodic_or_parameterized {
            return Ok(register_reply("", 0, job_modify_index, index));
        }
        let eval_id = self.create_eval(index, &record, "job-register", "JobRegistered");
        self.process_eval(&eval_id);
        Ok(register_reply(&eval_id, index, job_modify_index, index))
    }

    /// `DELETE /v1/job/:id`: stop (a new version with `Stop=true`), or purge.
    pub fn deregister_job(&mut self, namespace: &str, id: &str, purge: bool) -> Value {
        let key = (namespace.to_string(), id.to_string());
        let Some(mut job) = self.jobs.get(&key).cloned() else {
            return json!({"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "Index": self.index});
        };
        let index = self.bump();
        if purge {
            let last = render::job(self, &job);
            self.jobs.remove(&key);
            self.emit(super::cluster::StreamEvent {
                topic: "Job",
                type_: "JobDeregistered",
                key: id.to_string(),
                namespace: namespace.to_string(),
                filter_keys: None,
                index,
                payload: json!({"Job": last, "Deleted": true}),
            });
        } else if !job.stop {
            let previous = render::job(self, &job);
            job.versions.insert(0, previous);
            job.versions.truncate(MAX_VERSIONS - 1);
            job.stop = true;
            job.version += 1;
            job.job_modify_index = index;
            job.modify_index = index;
            job.submit_time = self.clock.now_nanos();
            self.jobs.insert(key, job.clone());
            self.emit_job(namespace, id, "JobDeregistered", index);
        }
        self.tables.jobs = index;
        let job_modify_index = if purge {
            index
        } else {
            self.job(namespace, id)
                .map_or(index, |j| j.job_modify_index)
        };
        if job.is_periodic() || job.is_parameterized() {
            return json!({"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": job_modify_index, "Index": index});
        }
        // The eval of a purged job still stops its allocations.
        let eval_id = self.create_eval(index, &job, "job-deregister", "JobDeregistered");
        self.process_eval(&eval_id);
        json!({"EvalID": eval_id, "EvalCreateIndex": index, "JobModifyIndex": job_modify_index, "Index": index})
    }

    pub fn revert_job(&mut self, namespace: &str, id: &str, body: &Value) -> ApiResult<Value> {
        let job = self
            .job(namespace, id)
            .cloned()
            .ok_or_else(|| ApiError::internal("job not found"))?;
        if body
            .get("JobID")
            .and_then(Value::as_str)
            .is_some_and(|j| j != id)
        {
            return Err(ApiError::bad_request("Job ID does not match"));
        }
        let target = body.get("JobVersion").and_then(Value::as_u64).unwrap_or(0);
        if let Some(prior) = body.get("EnforcePriorVersion").and_then(Value::as_u64) {
            if prior != job.version {
                return Err(ApiError::internal(format!(
                    "Current job has version {}; enforcing version {prior}",
                    job.version
                )));
            }
        }
        if target == job.version {
            return Err(ApiError::internal("can't revert to current version"));
        }
        let old = job
            .versions
            .iter()
            .find(|v| v.get("Version").and_then(Value::as_u64) == Some(target))
            .cloned()
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "job \"{id}\" in namespace \"{namespace}\" at version {target} not found"
                ))
            })?;
        let spec = strip_server_fields(old);
        let body = json!({"Job": spec});
        self.register_job(Some(namespace), &body, None)
    }

    pub fn set_stability(&mut self, namespace: &str, id: &str, body: &Value) -> ApiResult<Value> {
        let key = (namespace.to_string(), id.to_string());
        let job = self
            .jobs
            .get_mut(&key)
            .ok_or_else(|| ApiError::internal("job not found"))?;
        let version = body.get("JobVersion").and_then(Value::as_u64).unwrap_or(0);
        let stable = body.get("Stable").and_then(Value::as_bool).unwrap_or(false);
        if version == job.version {
            job.stable = stable;
        } else if let Some(old) = job
            .versions
            .iter_mut()
            .find(|v| v.get("Version").and_then(Value::as_u64) == Some(version))
        {
            old["Stable"] = json!(stable);
        }
        let job_modify_index = job.job_modify_index;
        Ok(json!({"JobModifyIndex": job_modify_index, "Index": self.index}))
    }

    /// Launches a periodic job's child now (`periodic/force`, and the cron tick).
    pub fn launch_periodic(&mut self, namespace: &str, id: &str) -> ApiResult<Value> {
        let parent = self
            .job(namespace, id)
            .cloned()
            .ok_or_else(|| ApiError::internal("job not found"))?;
        if !parent.is_periodic() {
            return Err(ApiError::internal("can't force launch non-periodic job"));
        }
        let now = self.clock.now();
        let mut child_id = format!("{id}/periodic-{}", now.timestamp());
        while self.job(namespace, &child_id).is_some() {
            child_id.push('x');
        }
        let mut spec = parent.spec.clone();
        spec["ID"] = json!(child_id);
        spec["Name"] = json!(child_id);
        spec["ParentID"] = json!(id);
        spec["Periodic"] = Value::Null;
        if let Some(parent) = self.jobs.get_mut(&(namespace.to_string(), id.to_string())) {
            parent.last_launch = Some(now);
        }
        let reply = self.register_job(Some(namespace), &json!({"Job": spec}), None)?;
        Ok(
            json!({"EvalID": reply["EvalID"], "EvalCreateIndex": reply["EvalCreateIndex"], "Index": reply["Index"]}),
        )
    }

    /// A dry run: what registering `body.Job` would do, changing nothing.
    pub fn plan_job(
        &self,
        query_namespace: Option<&str>,
        body: &Value,
        url_id: &str,
    ) -> ApiResult<Value> {
        let submitted = job_from_body(body, Some(url_id), "Job ID does not match")?;
        let namespace = namespace_for(query_namespace, body, &submitted);
        let spec = canonicalize(submitted, &namespace, &self.config.region);
        let existing = self.job(&namespace, url_id);
        let mut updates = Map::new();
        let groups = spec
            .get("TaskGroups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for group in &groups {
            let name = group
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let count = group.get("Count").and_then(Value::as_u64).unwrap_or(1);
            let live: Vec<_> = existing
                .map(|job| {
                    self.allocs_of_job(&job.namespace, &job.id)
                        .filter(|a| a.group == name && !a.is_terminal())
                        .collect()
                })
                .unwrap_or_default();
            let old_group = existing.and_then(|job| {
                job.groups()
                    .into_iter()
                    .find(|g| g.get("Name").and_then(Value::as_str) == Some(name))
                    .cloned()
            });
            let changed = old_group.as_ref().is_some_and(|old| {
                let mut a = old.clone();
                let mut b = group.clone();
                a.as_object_mut().map(|o| o.remove("Count"));
                b.as_object_mut().map(|o| o.remove("Count"));
                a != b
            });
            let live_count = live.len() as u64;
            let (place, stop, destructive, ignore) = match () {
                _ if changed => (
                    count.saturating_sub(live_count),
                    live_count.saturating_sub(count),
                    live_count.min(count),
                    0,
                ),
                _ => (
                    count.saturating_sub(live_count),
                    live_count.saturating_sub(count),
                    0,
                    live_count.min(count),
                ),
            };
            updates.insert(
                name.to_string(),
                json!({"Place": place, "Stop": stop, "Migrate": 0, "InPlaceUpdate": 0, "DestructiveUpdate": destructive, "Ignore": ignore, "Canary": 0, "Preemptions": 0, "Reconnect": 0, "Disconnect": 0, "RescheduleNow": 0, "RescheduleLater": 0}),
            );
        }
        let diff_type = match existing {
            None => "Added",
            Some(job) if job.spec == spec && !job.stop => "None",
            Some(_) => "Edited",
        };
        let diff = body
            .get("Diff")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| job_diff(existing.map(|j| &j.spec), &spec, diff_type));
        Ok(json!({
            "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": null},
            "FailedTGAllocs": null,
            "JobModifyIndex": existing.map_or(0, |j| j.job_modify_index),
            "CreatedEvals": null,
            "Diff": diff,
            "NextPeriodicLaunch": render::ZERO_TIME,
            "Warnings": "",
            "Index": self.index,
        }))
    }
}

/// A job diff in Nomad's shape: top-level primitive fields that changed, and one entry per
/// task group.
fn job_diff(old: Option<&Value>, new: &Value, diff_type: &str) -> Value {
    let empty = Value::Object(Map::new());
    let old = old.unwrap_or(&empty);
    let mut fields = Vec::new();
    if let Some(new_fields) = new.as_object() {
        for (name, value) in new_fields {
            if value.is_object() || value.is_array() {
                continue;
            }
            let before = old.get(name).cloned().unwrap_or(Value::Null);
            if &before != value {
                let show = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let kind = if before.is_null() { "Added" } else { "Edited" };
                fields.push(json!({"Type": kind, "Name": name, "Old": show(&before), "New": show(value), "Annotations": null}));
            }
        }
    }
    let groups: Vec<Value> = new
        .get("TaskGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|group| {
            let name = group.get("Name").and_then(Value::as_str).unwrap_or_default();
            let old_group = old.get("TaskGroups").and_then(Value::as_array).and_then(|gs| gs.iter().find(|g| g.get("Name").and_then(Value::as_str) == Some(name)));
            let kind = match old_group {
                None => "Added",
                Some(g) if g == group => "None",
                Some(_) => "Edited",
            };
            json!({"Type": kind, "Name": name, "Fields": null, "Objects": null, "Tasks": null, "Updates": null})
        })
        .collect();
    json!({"Type": diff_type, "ID": new.get("ID").cloned().unwrap_or(Value::Null), "Fields": fields, "Objects": null, "TaskGroups": groups})
}

/// A stored version without the fields the server sets, ready to register again.
fn strip_server_fields(mut job: Value) -> Value {
    if let Some(object) = job.as_object_mut() {
        for key in [
            "Status",
            "StatusDescription",
            "Stop",
            "Stable",
            "Version",
            "SubmitTime",
            "CreateIndex",
            "ModifyIndex",
            "JobModifyIndex",
        ] {
            object.remove(key);
        }
    }
    job
}
