//! The JSON Nomad answers with, built from the simulator's records. Field names, types and
//! nesting follow the samples in `e2e/nomad-api/` (the contract tests hold us to them).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::cluster::Cluster;
use super::model::{Alloc, ClientStatus, Deployment, Eval, JobRecord, Node, TaskEvent, TaskState};

/// Go's zero time, which Nomad prints for unset timestamps.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub fn rfc3339(time: Option<DateTime<Utc>>) -> String {
    time.map_or(ZERO_TIME.to_string(), |t| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    })
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// The job's status, computed as Nomad's state store does.
pub fn job_status(cluster: &Cluster, job: &JobRecord) -> &'static str {
    let allocs: Vec<&Alloc> = cluster.allocs_of_job(&job.namespace, &job.id).collect();
    let live_alloc = allocs.iter().any(|a| !a.client_status.is_terminal());
    if job.stop {
        return if live_alloc { "running" } else { "dead" };
    }
    if job.is_periodic() || job.is_parameterized() {
        return "running";
    }
    if live_alloc {
        return "running";
    }
    let open_eval = cluster
        .evals_of_job(&job.namespace, &job.id)
        .any(|e| matches!(e.status, "pending" | "blocked"));
    if open_eval || allocs.is_empty() {
        "pending"
    } else {
        "dead"
    }
}

/// The full job, as `GET /v1/job/:id` returns it.
pub fn job(cluster: &Cluster, job: &JobRecord) -> Value {
    let mut value = job.spec.clone();
    let status = job_status(cluster, job);
    let object = value.as_object_mut().expect("job specs are objects");
    object.insert("Status".into(), json!(status));
    object.insert("StatusDescription".into(), json!(""));
    object.insert("Stop".into(), json!(job.stop));
    object.insert("Stable".into(), json!(job.stable));
    object.insert("Version".into(), json!(job.version));
    object.insert("SubmitTime".into(), json!(job.submit_time));
    object.insert("CreateIndex".into(), json!(job.create_index));
    object.insert("ModifyIndex".into(), json!(job.modify_index));
    object.insert("JobModifyIndex".into(), json!(job.job_modify_index));
    value
}

/// `JobListStub`, as `GET /v1/jobs` returns it.
pub fn job_stub(cluster: &Cluster, job: &JobRecord, with_meta: bool) -> Value {
    let spec = &job.spec;
    let mut stub = json!({
        "ID": job.id,
        "ParentID": job.parent_id(),
        "Name": spec.get("Name").cloned().unwrap_or(json!(job.id)),
        "Namespace": job.namespace,
        "Datacenters": spec.get("Datacenters").cloned().unwrap_or(json!(["*"])),
        "NodePool": spec.get("NodePool").cloned().unwrap_or(json!("default")),
        "Multiregion": spec.get("Multiregion").cloned().unwrap_or(Value::Null),
        "Type": job.job_type(),
        "Priority": spec.get("Priority").cloned().unwrap_or(json!(50)),
        "Periodic": job.is_periodic(),
        "ParameterizedJob": job.is_parameterized(),
        "Stop": job.stop,
        "Status": job_status(cluster, job),
        "StatusDescription": "",
        "JobSummary": job_summary(cluster, job),
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.job_modify_index,
        "SubmitTime": job.submit_time,
        "Version": job.version,
    });
    if with_meta {
        stub["Meta"] = spec.get("Meta").cloned().unwrap_or(Value::Null);
    }
    stub
}

/// `JobSummary`: allocation counts per group, and children for periodic parents.
pub fn job_summary(cluster: &Cluster, job: &JobRecord) -> Value {
    let mut summary = Map::new();
    for group in job.groups() {
        let name = group
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut counts = json!({"Queued": 0, "Complete": 0, "Failed": 0, "Running": 0, "Starting": 0, "Lost": 0, "Unknown": 0});
        for alloc in cluster
            .allocs_of_job(&job.namespace, &job.id)
            .filter(|a| a.group == name)
        {
            let key = match alloc.client_status {
                ClientStatus::Pending => "Starting",
                ClientStatus::Running => "Running",
                ClientStatus::Complete => "Complete",
                ClientStatus::Failed => "Failed",
                ClientStatus::Lost => "Lost",
                ClientStatus::Unknown => "Unknown",
            };
            counts[key] = json!(counts[key].as_u64().unwrap_or(0) + 1);
        }
        let queued: u64 = cluster
            .evals_of_job(&job.namespace, &job.id)
            .filter(|e| e.status == "blocked")
            .filter_map(|e| e.queued_allocations.get(name))
            .sum();
        counts["Queued"] = json!(queued);
        summary.insert(name.to_string(), counts);
    }
    let children: Vec<&JobRecord> = cluster.children_of(&job.namespace, &job.id).collect();
    let mut pending = 0;
    let mut running = 0;
    let mut dead = 0;
    for child in children {
        match job_status(cluster, child) {
            "pending" => pending += 1,
            "running" => running += 1,
            _ => dead += 1,
        }
    }
    json!({
        "JobID": job.id,
        "Namespace": job.namespace,
        "Summary": summary,
        "Children": {"Pending": pending, "Running": running, "Dead": dead},
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
    })
}

// ---------------------------------------------------------------------------------------------
// Allocations

fn task_event(event: &TaskEvent) -> Value {
    json!({
        "Type": event.type_,
        "Time": event.time,
        "DisplayMessage": event.message,
        "Details": {},
        "Message": "",
        "FailsTask": false,
        "RestartReason": "",
        "SetupError": "",
        "DriverError": "",
        "DriverMessage": "",
        "ExitCode": event.exit_code,
        "Signal": 0,
        "KillTimeout": 0,
        "KillError": "",
        "KillReason": "",
        "StartDelay": 0,
        "DownloadError": "",
        "ValidationError": "",
        "DiskLimit": 0,
        "FailedSibling": "",
        "VaultError": "",
        "TaskSignalReason": "",
        "TaskSignal": "",
        "GenericSource": "",
    })
}

fn task_state(state: &TaskState) -> Value {
    json!({
        "State": state.state,
        "Failed": state.failed,
        "Restarts": state.restarts,
        "LastRestart": rfc3339(state.last_restart),
        "StartedAt": rfc3339(state.started_at),
        "FinishedAt": rfc3339(state.finished_at),
        "Events": state.events.iter().map(task_event).collect::<Vec<_>>(),
        "TaskHandle": null,
    })
}

fn task_states(alloc: &Alloc) -> Value {
    Value::Object(
        alloc
            .tasks
            .iter()
            .map(|(name, state)| (name.clone(), task_state(state)))
            .collect(),
    )
}

/// `AllocDeploymentStatus`: set once the client judged health, or the allocation joined a
/// deployment; `null` before (a nil pointer in Nomad).
fn deployment_status(alloc: &Alloc) -> Value {
    if alloc.healthy.is_none() && alloc.deployment_id.is_empty() {
        return Value::Null;
    }
    let timestamp = (alloc.health_timestamp != 0)
        .then(|| chrono::DateTime::from_timestamp_nanos(alloc.health_timestamp));
    json!({"Healthy": alloc.healthy, "Canary": alloc.canary, "Timestamp": rfc3339(timestamp), "ModifyIndex": alloc.health_modify_index})
}

/// `Deployment`, as `GET /v1/deployment/:id` returns it.
pub fn deployment(d: &Deployment) -> Value {
    let groups: Map<String, Value> = d
        .groups
        .iter()
        .map(|(name, s)| {
            let by = s
                .require_progress_by
                .map(chrono::DateTime::from_timestamp_nanos);
            (
                name.clone(),
                json!({
                    "AutoRevert": s.auto_revert,
                    "AutoPromote": s.auto_promote,
                    "ProgressDeadline": s.progress_deadline,
                    "RequireProgressBy": rfc3339(by),
                    "Promoted": s.promoted,
                    "PlacedCanaries": if s.placed_canaries.is_empty() { Value::Null } else { json!(s.placed_canaries) },
                    "DesiredCanaries": s.desired_canaries,
                    "DesiredTotal": s.desired_total,
                    "PlacedAllocs": s.placed_allocs,
                    "HealthyAllocs": s.healthy_allocs,
                    "UnhealthyAllocs": s.unhealthy_allocs,
                }),
            )
        })
        .collect();
    json!({
        "ID": d.id,
        "Namespace": d.namespace,
        "JobID": d.job_id,
        "JobVersion": d.job_version,
        "JobModifyIndex": d.job_modify_index,
        "JobSpecModifyIndex": d.job_spec_modify_index,
        "JobCreateIndex": d.job_create_index,
        "IsMultiregion": false,
        "TaskGroups": groups,
        "Status": d.status,
        "StatusDescription": d.status_description,
        "EvalPriority": 50,
        "CreateIndex": d.create_index,
        "ModifyIndex": d.modify_index,
        "CreateTime": d.create_time,
        "ModifyTime": d.modify_time,
    })
}

fn desired_transition(alloc: &Alloc) -> Value {
    json!({"Migrate": if alloc.migrate { json!(true) } else { Value::Null }, "Reschedule": null, "ForceReschedule": null})
}

fn reschedule_tracker(alloc: &Alloc) -> Value {
    if alloc.reschedule_events.is_empty() {
        Value::Null
    } else {
        json!({"Events": alloc.reschedule_events})
    }
}

fn networks(alloc: &Alloc) -> Value {
    let dynamic: Vec<Value> = alloc
        .ports
        .iter()
        .map(|(label, value, to)| json!({"Label": label, "Value": value, "To": to}))
        .collect();
    json!([{"Device": "eth0", "CIDR": "", "IP": "127.0.0.1", "MBits": 0, "ReservedPorts": null, "DynamicPorts": dynamic}])
}

/// `AllocListStub`.
pub fn alloc_stub(alloc: &Alloc) -> Value {
    json!({
        "ID": alloc.id,
        "EvalID": alloc.eval_id,
        "Name": alloc.name(),
        "Namespace": alloc.namespace,
        "NodeID": alloc.node_id,
        "NodeName": alloc.node_name,
        "JobID": alloc.job_id,
        "JobType": alloc.job_type,
        "JobVersion": alloc.job_version,
        "TaskGroup": alloc.group,
        "DesiredStatus": alloc.desired_status,
        "DesiredDescription": alloc.desired_description,
        "DesiredTransition": desired_transition(alloc),
        "ClientStatus": alloc.client_status.as_str(),
        "ClientDescription": alloc.client_description,
        "TaskStates": task_states(alloc),
        "DeploymentStatus": deployment_status(alloc),
        "FollowupEvalID": alloc.followup_eval_id,
        "NextAllocation": alloc.next_allocation,
        "PreviousAllocation": alloc.previous_allocation,
        "RescheduleTracker": reschedule_tracker(alloc),
        "PreemptedAllocations": null,
        "PreemptedByAllocation": "",
        "CreateIndex": alloc.create_index,
        "ModifyIndex": alloc.modify_index,
        "CreateTime": alloc.create_time,
        "ModifyTime": alloc.modify_time,
    })
}

/// The full `Allocation`, including its copy of the job.
pub fn alloc(alloc: &Alloc, with_job: bool) -> Value {
    let mut value = alloc_stub(alloc);
    let object = value.as_object_mut().expect("stub is an object");
    let task_resources: Map<String, Value> = alloc
        .tasks
        .keys()
        .map(|task| (task.clone(), json!({"CPU": alloc.cpu, "MemoryMB": alloc.memory, "DiskMB": 0, "IOPS": 0, "Networks": networks(alloc), "Devices": null})))
        .collect();
    object.insert(
        "Job".into(),
        if with_job {
            (*alloc.job).clone()
        } else {
            Value::Null
        },
    );
    object.insert("Resources".into(), json!({"CPU": alloc.cpu, "MemoryMB": alloc.memory, "DiskMB": 300, "IOPS": 0, "Networks": networks(alloc), "Devices": null}));
    object.insert(
        "SharedResources".into(),
        json!({"CPU": 0, "MemoryMB": 0, "DiskMB": 300, "IOPS": 0, "Networks": null, "Devices": null}),
    );
    object.insert("TaskResources".into(), Value::Object(task_resources));
    object.insert(
        "AllocatedResources".into(),
        json!({
            "Shared": {"DiskMB": 300, "Networks": networks(alloc), "Ports": null},
            "Tasks": alloc.tasks.keys().map(|task| (task.clone(), json!({"Cpu": {"CpuShares": alloc.cpu}, "Memory": {"MemoryMB": alloc.memory}, "Networks": null, "Devices": null}))).collect::<Map<String, Value>>(),
            "TaskLifecycles": alloc.tasks.keys().map(|task| (task.clone(), Value::Null)).collect::<Map<String, Value>>(),
        }),
    );
    object.insert("Metrics".into(), alloc.metrics.clone());
    object.insert("AllocModifyIndex".into(), json!(alloc.alloc_modify_index));
    object.insert("DeploymentID".into(), json!(alloc.deployment_id));
    object.insert(
        "NetworkStatus".into(),
        json!({"InterfaceName": "", "Address": "", "DNS": null}),
    );
    value
}

// ---------------------------------------------------------------------------------------------
// Nodes

fn drivers(now: DateTime<Utc>) -> Value {
    let driver = |name: &str| {
        json!({
            "Attributes": {format!("driver.{name}"): "true"},
            "Detected": true,
            "HealthDescription": "Healthy",
            "Healthy": true,
            "UpdateTime": rfc3339(Some(now)),
        })
    };
    json!({"docker": driver("docker"), "exec": driver("exec"), "raw_exec": driver("raw_exec")})
}

/// `NodeListStub`.
pub fn node_stub(node: &Node, now: DateTime<Utc>) -> Value {
    json!({
        "ID": node.id,
        "Name": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "NodePool": node.pool,
        "NodeClass": node.class,
        "Version": "1.9.0",
        "Drain": node.drain.is_some(),
        "SchedulingEligibility": node.eligibility,
        "Status": node.status,
        "StatusDescription": "",
        "Drivers": drivers(now),
        "HostVolumes": host_volumes(node, Value::Null),
        "LastDrain": node.last_drain,
        "Attributes": {"os.name": node.attributes.get("os.name").cloned().unwrap_or_default()},
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

/// structs `ClientHostVolumeConfig` by name; `none` without any (the shapes the samples show:
/// null in a stub, `{}` in a node).
fn host_volumes(node: &Node, none: Value) -> Value {
    if node.host_volumes.is_empty() {
        return none;
    }
    node.host_volumes
        .iter()
        .map(|(name, volume)| {
            (
                name.clone(),
                json!({"Name": name, "Path": volume.path, "ReadOnly": volume.read_only, "ID": ""}),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

pub fn node(node: &Node, now: DateTime<Utc>, with_secret: bool) -> Value {
    json!({
        "ID": node.id,
        "SecretID": if with_secret { node.secret_id.clone() } else { String::new() },
        "Name": node.name,
        "Datacenter": node.datacenter,
        "NodePool": node.pool,
        "NodeClass": node.class,
        "ComputedClass": node.computed_class(),
        "HTTPAddr": format!("{}:4646", node.address),
        "TLSEnabled": false,
        "Attributes": node.attributes,
        "Meta": node.meta,
        "Links": {"consul": format!("dc1.{}", node.name)},
        "Drivers": drivers(now),
        "HostVolumes": host_volumes(node, json!({})),
        "HostNetworks": {},
        "NodeResources": {
            "Cpu": {"CpuShares": node.cpu, "TotalCpuCores": 4, "ReservableCpuCores": [0, 1, 2, 3]},
            "Memory": {"MemoryMB": node.memory},
            "Disk": {"DiskMB": 100_000},
            "Networks": [{"Mode": "host", "DNS": null, "Device": "eth0", "CIDR": format!("{}/32", node.address), "IP": node.address, "MBits": 1000, "DynamicPorts": null, "ReservedPorts": null}],
            "NodeNetworks": [{"Mode": "host", "Device": "eth0", "MacAddress": "", "Speed": 1000, "Addresses": [{"Family": "ipv4", "Alias": "default", "Address": node.address, "ReservedPorts": "", "Gateway": ""}]}],
            "Devices": [],
            "MinDynamicPort": 20000,
            "MaxDynamicPort": 32000,
        },
        "ReservedResources": {
            "Cpu": {"CpuShares": 0},
            "Memory": {"MemoryMB": 0},
            "Disk": {"DiskMB": 0},
            "Networks": {"ReservedHostPorts": ""},
        },
        "CSIControllerPlugins": null,
        "CSINodePlugins": csi_node_plugins(node),
        "Drain": node.drain.is_some(),
        "DrainStrategy": node.drain,
        "LastDrain": node.last_drain,
        "SchedulingEligibility": node.eligibility,
        "Status": node.status,
        "StatusDescription": "",
        "StatusUpdatedAt": node.status_updated_at,
        "Events": node.events,
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluations

pub fn eval(eval: &Eval) -> Value {
    json!({
        "ID": eval.id,
        "Namespace": eval.namespace,
        "Priority": eval.priority,
        "Type": eval.type_,
        "TriggeredBy": eval.triggered_by,
        "JobID": eval.job_id,
        "JobModifyIndex": eval.job_modify_index,
        "NodeID": eval.node_id,
        "NodeModifyIndex": 0,
        "DeploymentID": "",
        "Status": eval.status,
        "StatusDescription": eval.status_description,
        "Wait": 0,
        "WaitUntil": rfc3339(eval.wait_until.map(chrono::DateTime::from_timestamp_nanos)),
        "NextEval": "",
        "PreviousEval": eval.previous_eval,
        "BlockedEval": eval.blocked_eval,
        "RelatedEvals": null,
        "FailedTGAllocs": eval.failed_tg_allocs,
        "ClassEligibility": null,
        "EscapedComputedClass": false,
        "QuotaLimitReached": "",
        "AnnotatePlan": false,
        "QueuedAllocations": eval.queued_allocations,
        "LeaderACL": "",
        "SnapshotIndex": eval.modify_index,
        "CreateIndex": eval.create_index,
        "ModifyIndex": eval.modify_index,
        "CreateTime": eval.create_time,
        "ModifyTime": eval.modify_time,
    })
}

/// A node's `CSINodePlugins`: each plugin healthy, unlimited volumes.
fn csi_node_plugins(node: &Node) -> Value {
    if node.csi_plugins.is_empty() {
        return Value::Null;
    }
    let plugins: Map<String, Value> = node
        .csi_plugins
        .iter()
        .map(|id| {
            (
                id.clone(),
                json!({"PluginID": id, "Healthy": true, "HealthDescription": "healthy",
                       "NodeInfo": {"ID": node.id, "MaxVolumes": i64::MAX}}),
            )
        })
        .collect();
    Value::Object(plugins)
}
