//! Job writes as Nomad's job endpoint does them: canonicalize, check-and-set, version, evaluate.

use serde_json::{json, Map, Value};

use super::cluster::Cluster;
use super::error::{ApiError, ApiResult};
use super::model::{JobRecord, MAX_VERSIONS};
use super::render;

const SECOND: i64 = 1_000_000_000;

/// Fills what Nomad's canonicalization fills, keeping every field it does not know. Every
/// struct gets its full field set (Go serializes zero values), with Nomad's defaults where it
/// has them.
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
    for (key, value) in [
        ("Name", json!(id)),
        ("Type", json!("service")),
        ("Priority", json!(50)),
        ("NodePool", json!("default")),
    ] {
        set_if_empty(object, key, value);
    }
    if object
        .get("Datacenters")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        object.insert("Datacenters".into(), json!(["*"]));
    }
    fill(
        object,
        &[
            ("ParentID", json!("")),
            ("AllAtOnce", json!(false)),
            ("Dispatched", json!(false)),
            ("DispatchIdempotencyToken", json!("")),
            ("ConsulToken", json!("")),
            ("VaultToken", json!("")),
            ("VaultNamespace", json!("")),
            ("NomadTokenID", json!("")),
        ],
    );
    fill_null(
        object,
        &[
            "Constraints",
            "Affinities",
            "Spreads",
            "Meta",
            "Periodic",
            "ParameterizedJob",
            "Payload",
            "Multiregion",
            "UI",
        ],
    );
    let batch = matches!(
        object.get("Type").and_then(Value::as_str),
        Some("batch" | "sysbatch")
    );
    let job_update = fill_object(object, "Update", &update_defaults(batch));
    if let Some(periodic) = object.get_mut("Periodic").and_then(Value::as_object_mut) {
        fill(
            periodic,
            &[
                ("Enabled", json!(true)),
                ("SpecType", json!("cron")),
                ("ProhibitOverlap", json!(false)),
                ("TimeZone", json!("UTC")),
            ],
        );
    }
    for group in objects_in(object, "TaskGroups") {
        canonicalize_group(group, batch, &job_update);
    }
    job
}

const SECOND_I: i64 = SECOND;

fn update_defaults(batch: bool) -> Vec<(&'static str, Value)> {
    // Batch jobs have no rolling updates; Nomad leaves their update block zeroed.
    let (parallel, health, min_healthy, deadline, progress) = if batch {
        (0, "", 0, 0, 0)
    } else {
        (1, "checks", 10 * SECOND_I, 300 * SECOND_I, 600 * SECOND_I)
    };
    vec![
        ("Stagger", json!(30 * SECOND_I)),
        ("MaxParallel", json!(parallel)),
        ("HealthCheck", json!(health)),
        ("MinHealthyTime", json!(min_healthy)),
        ("HealthyDeadline", json!(deadline)),
        ("ProgressDeadline", json!(progress)),
        ("AutoRevert", json!(false)),
        ("AutoPromote", json!(false)),
        ("Canary", json!(0)),
    ]
}

fn set_if_empty(object: &mut Map<String, Value>, key: &str, value: Value) {
    if object
        .get(key)
        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        object.insert(key.to_string(), value);
    }
}

/// Adds the fields that are absent (a present `null` stays: it is what was submitted).
fn fill(object: &mut Map<String, Value>, defaults: &[(&str, Value)]) {
    for (key, value) in defaults {
        object.entry(*key).or_insert_with(|| value.clone());
    }
}

fn fill_null(object: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        object.entry(*key).or_insert(Value::Null);
    }
}

/// Makes `key` an object (replacing null) with every default field present; returns it.
fn fill_object(object: &mut Map<String, Value>, key: &str, defaults: &[(&str, Value)]) -> Value {
    let entry = object.entry(key).or_insert(Value::Null);
    if !entry.is_object() {
        *entry = json!({});
    }
    fill(
        entry.as_object_mut().expect("just made an object"),
        defaults,
    );
    entry.clone()
}

fn canonicalize_group(group: &mut Map<String, Value>, batch: bool, job_update: &Value) {
    if group.get("Count").is_none_or(Value::is_null) {
        group.insert("Count".into(), json!(1));
    }
    let restart = if batch {
        vec![
            ("Attempts", json!(3)),
            ("Interval", json!(86400 * SECOND_I)),
            ("Delay", json!(15 * SECOND_I)),
            ("Mode", json!("fail")),
            ("RenderTemplates", json!(false)),
        ]
    } else {
        vec![
            ("Attempts", json!(2)),
            ("Interval", json!(1800 * SECOND_I)),
            ("Delay", json!(15 * SECOND_I)),
            ("Mode", json!("fail")),
            ("RenderTemplates", json!(false)),
        ]
    };
    let group_restart = fill_object(group, "RestartPolicy", &restart);
    let reschedule = if batch {
        vec![
            ("Attempts", json!(1)),
            ("Interval", json!(86400 * SECOND_I)),
            ("Delay", json!(5 * SECOND_I)),
            ("DelayFunction", json!("constant")),
            ("MaxDelay", json!(0)),
            ("Unlimited", json!(false)),
        ]
    } else {
        vec![
            ("Attempts", json!(0)),
            ("Interval", json!(0)),
            ("Delay", json!(30 * SECOND_I)),
            ("DelayFunction", json!("exponential")),
            ("MaxDelay", json!(3600 * SECOND_I)),
            ("Unlimited", json!(true)),
        ]
    };
    fill_object(group, "ReschedulePolicy", &reschedule);
    fill_object(
        group,
        "EphemeralDisk",
        &[
            ("Sticky", json!(false)),
            ("SizeMB", json!(300)),
            ("Migrate", json!(false)),
        ],
    );
    if !batch {
        fill_object(
            group,
            "Migrate",
            &[
                ("MaxParallel", json!(1)),
                ("HealthCheck", json!("checks")),
                ("MinHealthyTime", json!(10 * SECOND_I)),
                ("HealthyDeadline", json!(300 * SECOND_I)),
            ],
        );
    }
    // Batch groups have no migrate block; Nomad still sends the field.
    group.entry("Migrate").or_insert(Value::Null);
    // A group inherits the job's update block field by field.
    let inherited: Vec<(&str, Value)> = job_update
        .as_object()
        .map(|u| u.iter().map(|(k, v)| (k.as_str(), v.clone())).collect())
        .unwrap_or_default();
    fill_object(group, "Update", &inherited);
    fill(
        group,
        &[
            ("MaxClientDisconnect", Value::Null),
            ("StopAfterClientDisconnect", Value::Null),
            ("ShutdownDelay", Value::Null),
        ],
    );
    fill_null(
        group,
        &[
            "Constraints",
            "Affinities",
            "Spreads",
            "Networks",
            "Services",
            "Meta",
            "Volumes",
            "Scaling",
            "Disconnect",
            "Consul",
        ],
    );
    // api/scaling.go `ScalingPolicy.Canonicalize`: enabled unless said, the group's count as
    // its minimum, horizontal.
    let count = group.get("Count").cloned().unwrap_or(json!(1));
    if let Some(Value::Object(scaling)) = group.get_mut("Scaling") {
        set_if_empty(scaling, "Enabled", json!(true));
        set_if_empty(scaling, "Min", count);
        set_if_empty(scaling, "Type", json!("horizontal"));
    }
    for network in objects_in(group, "Networks") {
        canonicalize_network(network);
    }
    for service in objects_in(group, "Services") {
        canonicalize_service(service);
    }
    for task in objects_in(group, "Tasks") {
        canonicalize_task(task, &group_restart);
    }
}

/// The objects in the array under `key`; a missing, `null` or non-array field has none.
fn objects_in<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    parent
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn canonicalize_network(network: &mut Map<String, Value>) {
    fill(
        network,
        &[
            ("Mode", json!("host")),
            ("Device", json!("")),
            ("CIDR", json!("")),
            ("IP", json!("")),
            ("MBits", json!(0)),
        ],
    );
    fill_null(network, &["DNS", "ReservedPorts", "DynamicPorts"]);
}

fn canonicalize_service(service: &mut Map<String, Value>) {
    fill(
        service,
        &[
            ("PortLabel", json!("")),
            ("AddressMode", json!("auto")),
            ("Address", json!("")),
            ("Provider", json!("consul")),
            ("TaskName", json!("")),
            ("EnableTagOverride", json!(false)),
            ("OnUpdate", json!("require_healthy")),
        ],
    );
    fill_null(
        service,
        &[
            "Tags",
            "CanaryTags",
            "Meta",
            "CanaryMeta",
            "TaggedAddresses",
            "Connect",
            "Checks",
            "Identity",
        ],
    );
    for check in objects_in(service, "Checks") {
        fill(
            check,
            &[
                ("Name", json!("")),
                ("Type", json!("http")),
                ("Command", json!("")),
                ("Path", json!("")),
                ("Method", json!("")),
                ("Protocol", json!("")),
                ("PortLabel", json!("")),
                ("AddressMode", json!("")),
                ("Interval", json!(10 * SECOND_I)),
                ("Timeout", json!(2 * SECOND_I)),
                ("InitialStatus", json!("")),
                ("TLSSkipVerify", json!(false)),
                ("TaskName", json!("")),
                ("OnUpdate", json!("require_healthy")),
                ("SuccessBeforePassing", json!(0)),
                ("FailuresBeforeCritical", json!(0)),
                ("FailuresBeforeWarning", json!(0)),
                ("Expose", json!(false)),
            ],
        );
        fill_null(check, &["Args", "Header", "Body", "CheckRestart"]);
    }
}

fn canonicalize_task(task: &mut Map<String, Value>, group_restart: &Value) {
    fill_object(
        task,
        "Resources",
        &[
            ("CPU", json!(100)),
            ("MemoryMB", json!(300)),
            ("DiskMB", json!(0)),
            ("IOPS", json!(0)),
        ],
    );
    if let Some(resources) = task.get_mut("Resources").and_then(Value::as_object_mut) {
        fill_null(resources, &["Networks", "Devices", "Cores", "MemoryMaxMB"]);
        for network in objects_in(resources, "Networks") {
            canonicalize_network(network);
        }
    }
    // Tasks inherit the group's restart policy.
    let inherited: Vec<(&str, Value)> = group_restart
        .as_object()
        .map(|r| r.iter().map(|(k, v)| (k.as_str(), v.clone())).collect())
        .unwrap_or_default();
    fill_object(task, "RestartPolicy", &inherited);
    fill(
        task,
        &[
            ("User", json!("")),
            ("Leader", json!(false)),
            ("KillTimeout", json!(5 * SECOND_I)),
            ("KillSignal", json!("")),
            ("ShutdownDelay", json!(0)),
            ("Kind", json!("")),
            ("Config", json!({})),
        ],
    );
    fill_object(
        task,
        "LogConfig",
        &[
            ("MaxFiles", json!(10)),
            ("MaxFileSizeMB", json!(10)),
            ("Disabled", json!(false)),
        ],
    );
    fill_null(
        task,
        &[
            "Env",
            "Services",
            "Constraints",
            "Affinities",
            "Spreads",
            "Artifacts",
            "Templates",
            "Vault",
            "Meta",
            "Lifecycle",
            "DispatchPayload",
            "CSIPluginConfig",
            "ScalingPolicies",
            "VolumeMounts",
            "Identity",
        ],
    );
    for service in objects_in(task, "Services") {
        canonicalize_service(service);
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
/// The submitted job without its `Stop`, and that `Stop`. `Stop` is the user's to set
/// (command/agent/job_endpoint.go `ApiJobToStructJob` copies it, and structs.go `SpecChanged`
/// compares it), so registering a job with `Stop: true` stops it as `nomad job stop` does and
/// registering it with `Stop: false` (or none) starts it again. The simulator keeps it beside
/// the spec, as `JobRecord::stop`.
fn take_stop(mut submitted: Value) -> (Value, bool) {
    let stop = submitted
        .as_object_mut()
        .and_then(|job| job.remove("Stop"))
        .and_then(|stop| stop.as_bool())
        .unwrap_or(false);
    (submitted, stop)
}

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
        let (submitted, stop) = take_stop(submitted);
        let spec = canonicalize(submitted, &namespace, &self.config.region.clone());
        let key = (namespace.clone(), id.clone());
        let existing = self.jobs.get(&key).cloned();
        // nomad/job_endpoint.go Register: admission validators, then validateJobUpdate, both
        // before the check-and-set.
        super::validate::validate(&spec, &self.node_pools()).map_err(ApiError::internal)?;
        if let Some(existing) = &existing {
            super::validate::validate_update(&existing.spec, &spec).map_err(ApiError::internal)?;
        }
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
            .is_some_and(|job| job.spec == spec && job.stop == stop);
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
                job.stop = stop;
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
                stop,
                stable: false,
                versions: Vec::new(),
                last_launch: None,
            },
        };
        let job_modify_index = record.job_modify_index;
        let periodic_or_parameterized = record.is_periodic() || record.is_parameterized();
        self.put_job(record.clone());
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

    /// `POST /v1/job/:id/scale` (nomad/job_endpoint.go `Scale`): one group's count set, within
    /// its scaling policy's bounds, refused while the job's deployment is active, registered
    /// as a new version (a check-and-set on the job as read, and `JobModifyIndex` when the
    /// caller gives one), then evaluated. The scaling event history is not kept.
    pub fn scale_job(&mut self, namespace: &str, id: &str, body: &Value) -> ApiResult<Value> {
        let job = self
            .job(namespace, id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("job {id:?} not found")))?;
        let group_name = body
            .pointer("/Target/Group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut spec = job.spec.clone();
        let groups = spec.get_mut("TaskGroups").and_then(Value::as_array_mut);
        let Some(group) = groups
            .into_iter()
            .flatten()
            .find(|g| g.get("Name").and_then(Value::as_str) == Some(group_name.as_str()))
        else {
            return Err(ApiError::bad_request(format!(
                "task group {group_name:?} specified for scaling does not exist in job"
            )));
        };
        let Some(count) = body.get("Count").and_then(Value::as_i64) else {
            // No count: a scaling event only, nothing registered.
            return Ok(
                json!({"JobModifyIndex": job.modify_index, "EvalID": "", "EvalCreateIndex": 0, "Index": self.index}),
            );
        };
        if job.spec.get("Type").and_then(Value::as_str) == Some("system") && count > 1 {
            return Err(ApiError::bad_request(
                "jobs of type \"system\" can only be scaled between 0 and 1",
            ));
        }
        if let Some(scaling) = group.get("Scaling").filter(|s| s.is_object()) {
            let bound = |key: &str| scaling.get(key).and_then(Value::as_i64);
            if let Some(min) = bound("Min").filter(|min| count < *min) {
                return Err(ApiError::bad_request(format!(
                    "group count was less than scaling policy minimum: {count} < {min}"
                )));
            }
            if let Some(max) = bound("Max").filter(|max| *max < count) {
                return Err(ApiError::bad_request(format!(
                    "group count was greater than scaling policy maximum: {count} > {max}"
                )));
            }
        }
        group["Count"] = json!(count);
        let blocked = self
            .latest_deployment(namespace, id)
            .is_some_and(|d| d.active() && d.job_create_index == job.create_index);
        if blocked {
            return Err(ApiError::bad_request(
                "job scaling blocked due to active deployment",
            ));
        }
        if let Some(wanted) = body
            .get("JobModifyIndex")
            .and_then(Value::as_u64)
            .filter(|w| *w > 0 && *w != job.job_modify_index)
        {
            return Err(ApiError::internal(format!(
                "Enforcing job modify index {wanted}: job exists with conflicting job modify index: {}",
                job.job_modify_index
            )));
        }
        spec["Stop"] = json!(job.stop);
        let register =
            json!({"Job": spec, "EnforceIndex": true, "JobModifyIndex": job.job_modify_index});
        self.register_job(Some(namespace), &register, Some(id))
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
            self.remove_job(&key);
            self.emit(super::cluster::StreamEvent {
                topic: "Job",
                type_: "JobDeregistered",
                key: id.to_string(),
                namespace: namespace.to_string(),
                filter_keys: None,
                index,
                payload: json!({"Job": last, "Deleted": true}),
            });
        } else {
            // nomad/fsm.go `handleJobDeregister`: the current job is copied with `Stop` set and
            // upserted, and `upsertJobImpl` gives every upsert a new version, so stopping an
            // already stopped job writes one more.
            let previous = render::job(self, &job);
            job.versions.insert(0, previous);
            job.versions.truncate(MAX_VERSIONS - 1);
            job.stop = true;
            job.version += 1;
            job.job_modify_index = index;
            job.modify_index = index;
            job.submit_time = self.clock.now_nanos();
            self.put_job(job.clone());
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
        let spec = super::model::strip_server_fields(old);
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
        // nomad/periodic_endpoint.go `Force`: only periodic jobs; then nomad/periodic.go
        // `ForceEval` launches only what the dispatcher tracks, which `Add` limits to
        // `IsPeriodicActive` jobs (enabled, not stopped).
        if !parent.is_periodic() {
            return Err(ApiError::internal("can't force launch non-periodic job"));
        }
        let enabled = parent.spec["Periodic"]
            .get("Enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if !enabled || parent.stop {
            return Err(ApiError::internal(format!(
                "force launch for job {id:?} failed: can't force run non-tracked job {id:?} ({namespace})"
            )));
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
        let (submitted, submitted_stop) = take_stop(submitted);
        let spec = canonicalize(submitted, &namespace, &self.config.region);
        let existing = self.job(&namespace, url_id);
        // nomad/job_endpoint.go Plan runs the same admission validators as Register.
        super::validate::validate(&spec, &self.node_pools()).map_err(ApiError::internal)?;
        let mut desired = Map::new();
        let mut updates = Map::new();
        let mut failed = Map::new();
        // Seeded by what a real run would be: this job at this index.
        let mut placer = super::placement::Placer::new(
            self,
            &spec,
            &format!("{namespace}/{url_id}@{}", self.index),
        );
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
            // scheduler/reconcile.go `Compute`: a stopped job only stops what runs
            // (`handleStop`), whatever its counts say.
            let count = if submitted_stop {
                0
            } else {
                group.get("Count").and_then(Value::as_u64).unwrap_or(1)
            };
            let live = existing.map_or(0, |job| {
                self.allocs_of_job(&job.namespace, &job.id)
                    .filter(|a| a.group == name && !a.is_terminal())
                    .count() as u64
            });
            // scheduler/util.go tasksUpdated, as the scheduler itself decides (see `updates`).
            let destructive = existing.is_some_and(|job| {
                job.groups()
                    .iter()
                    .any(|g| g.get("Name").and_then(Value::as_str) == Some(name))
                    && super::updates::tasks_updated(&job.spec, &spec, name).is_destructive()
            });
            let kept = live.min(count);
            let (place, stop) = (count.saturating_sub(live), live.saturating_sub(count));
            // A new version has no deployment yet: reconcile.go `computeCanaries` places the
            // canaries and holds every replacement back; otherwise `computeUnderProvisionedBy`
            // allows `max_parallel` replacements and ignores the rest for now.
            let strategy = super::deployments::Strategy::of(
                spec.get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or("service"),
                group,
            );
            // util.go `genericAllocUpdateFn`: an allocation of the job as it is is ignored; a
            // changed job (job_endpoint.go Plan upserts it at a new JobModifyIndex when
            // `SpecChanged`) updates the rest in place unless `tasksUpdated` says otherwise.
            let spec_changed = existing.is_none_or(|j| j.spec != spec || j.stop != submitted_stop);
            let (canaries, destructive_updates, in_place, ignore) = match (&strategy, destructive) {
                (_, false) if spec_changed => (0, 0, kept, 0),
                (_, false) => (0, 0, 0, kept),
                (Some(s), true) if s.canary > 0 => (s.canary as u64, 0, 0, kept),
                (Some(s), true) => {
                    let now = kept.min(s.max_parallel as u64);
                    (0, now, 0, kept - now)
                }
                (None, true) => (0, kept, 0, 0),
            };
            desired.insert(
                name.to_string(),
                json!({"Place": place, "Stop": stop, "Migrate": 0, "InPlaceUpdate": in_place, "DestructiveUpdate": destructive_updates, "Ignore": ignore, "Canary": canaries, "Preemptions": 0}),
            );
            let mut counts = Map::new();
            // scheduler/annotate.go `annotateTaskGroup`: the update types by their names.
            for (label, n) in [
                ("create", place),
                ("destroy", stop),
                ("create/destroy update", destructive_updates),
                ("in-place update", in_place),
                ("canary", canaries),
                ("ignore", ignore),
            ] {
                if n > 0 {
                    counts.insert(label.into(), json!(n));
                }
            }
            updates.insert(name.to_string(), Value::Object(counts));
            let (cpu, memory) = super::placement::group_resources(group);
            for _ in 0..place + destructive_updates + canaries {
                let ask = super::placement::Ask {
                    namespace: &namespace,
                    job_id: url_id,
                    job: &spec,
                    group,
                    cpu,
                    memory,
                };
                match placer.choose(self, &ask) {
                    Ok((node, _)) => placer.record(&node, &ask),
                    Err(metrics) => {
                        failed.insert(name.to_string(), metrics.to_json());
                        break;
                    }
                }
            }
        }
        // Nomad's plan reports the blocked evaluation a real run would leave behind.
        let created_evals = if failed.is_empty() {
            Value::Null
        } else {
            json!([{
                "ID": super::model::new_id(), "Namespace": namespace, "Priority": spec.get("Priority").cloned().unwrap_or(json!(50)),
                "Type": spec.get("Type").cloned().unwrap_or(json!("service")), "TriggeredBy": "queued-allocs", "JobID": url_id,
                "JobModifyIndex": existing.map_or(0, |j| j.job_modify_index), "NodeID": "", "NodeModifyIndex": 0, "Status": "blocked",
                "StatusDescription": "created to place remaining allocations", "Wait": 0, "NextEval": "", "PreviousEval": "", "BlockedEval": "",
                "FailedTGAllocs": null, "ClassEligibility": self.class_eligibility(), "EscapedComputedClass": false, "AnnotatePlan": false,
                "QueuedAllocations": null, "SnapshotIndex": self.index, "CreateIndex": 0, "ModifyIndex": 0,
            }])
        };
        let diff = body
            .get("Diff")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| {
                // structs/diff.go `Job.Diff` compares `Stop` like any other field.
                let with_stop = |spec: &Value, stop: bool| {
                    let mut job = spec.clone();
                    job["Stop"] = json!(stop);
                    job
                };
                let old = existing.map(|j| with_stop(&j.spec, j.stop));
                super::diff::job_diff(old.as_ref(), &with_stop(&spec, submitted_stop), &updates)
            });
        let next_launch = existing
            .filter(|j| j.is_periodic())
            .and_then(|j| super::lifecycle::next_launch(&j.spec["Periodic"], self.clock.now()))
            .map(|t| render::rfc3339(Some(t)))
            .unwrap_or_else(|| render::ZERO_TIME.to_string());
        Ok(json!({
            "Annotations": {"DesiredTGUpdates": desired, "PreemptedAllocs": null},
            "FailedTGAllocs": if failed.is_empty() { Value::Null } else { Value::Object(failed) },
            "JobModifyIndex": existing.map_or(0, |j| j.job_modify_index),
            "CreatedEvals": created_evals,
            "Diff": diff,
            "NextPeriodicLaunch": next_launch,
            "Warnings": "",
            "Index": self.index,
        }))
    }
}
