//! `/_sim/...`: fault injection and inspection. This contract is fixed; tests and tools rely on it.

use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{json, Value};

use super::{Reply, Req};
use crate::config::NodeSpec;
use crate::error::{ApiError, ApiResult};
use crate::model::Fault;
use crate::render;
use crate::Sim;

pub async fn handle(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    let path = req.path.trim_start_matches("/_sim");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method.clone(), segments.as_slice()) {
        (Method::GET, ["state"]) => Ok(Reply::ok(sim.read(state))),
        // What each task's environment holds: its `Env`, and what its env templates rendered
        // from Consul services when it last started.
        (Method::GET, ["allocations", id, "env"]) => sim.read(|c| {
            let alloc = c
                .allocs
                .get(*id)
                .ok_or_else(|| ApiError::not_found("allocation not found"))?;
            let mut tasks = serde_json::Map::new();
            let specs = alloc
                .group_spec()
                .and_then(|g| g.get("Tasks"))
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            for task in &specs {
                let name = task
                    .get("Name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                let mut env = task
                    .get("Env")
                    .and_then(serde_json::Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (var, value) in alloc.service_env.get(name).into_iter().flatten() {
                    env.insert(var.clone(), json!(value));
                }
                tasks.insert(name.to_string(), serde_json::Value::Object(env));
            }
            Ok(Reply::ok(serde_json::Value::Object(tasks)))
        }),
        (Method::POST, ["nodes"]) => {
            let spec: NodeSpec = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("bad node: {e}")))?;
            let id = sim.write(|c| c.add_node(&spec));
            Ok(Reply::ok(json!({"ID": id, "Name": spec.name})))
        }
        (Method::POST, ["nodes", who, action]) => {
            let action = action.to_string();
            let id = sim
                .read(|c| c.node_by_id_or_name(who).map(|n| n.id.clone()))
                .ok_or_else(|| ApiError::not_found("node not found"))?;
            sim.write(|c| {
                match action.as_str() {
                    "kill" => c.kill_node(&id),
                    "revive" => c.revive_node(&id),
                    "partition" => c.partition_node(&id),
                    _ => {
                        return Err(ApiError::not_found(format!(
                            "unknown node action `{action}`"
                        )))
                    }
                }
                Ok(())
            })?;
            Ok(Reply::ok(json!({"ID": id, "Action": action})))
        }
        (Method::POST, ["allocations", id, action]) => {
            let action = action.to_string();
            sim.write(|c| {
                if !c.allocs.contains_key(*id) {
                    return Err(ApiError::not_found("alloc not found"));
                }
                match action.as_str() {
                    "fail" => c.fail_alloc(id),
                    "crashloop" => c.set_fault(id, Fault::CrashLoop),
                    "hang" => c.set_fault(id, Fault::Hang),
                    _ => {
                        return Err(ApiError::not_found(format!(
                            "unknown allocation action `{action}`"
                        )))
                    }
                }
                Ok(())
            })?;
            Ok(Reply::ok(json!({"ID": id, "Action": action})))
        }
        (Method::PUT, ["images"]) => {
            let body: Value = req.json()?;
            let image = body
                .get("image")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("image is required"))?
                .to_string();
            let fault = match body.get("fault").and_then(Value::as_str) {
                Some("crashloop") => Fault::CrashLoop,
                Some("hang") => Fault::Hang,
                Some("none") => Fault::None,
                _ => {
                    return Err(ApiError::bad_request(
                        "fault must be crashloop, hang or none",
                    ))
                }
            };
            sim.write(|c| c.image_faults.push((image.clone(), fault)));
            Ok(Reply::ok(json!({"Image": image})))
        }
        (Method::PUT, ["checks"]) => {
            let body: Value = req.json()?;
            let status: &'static str = match body.get("status").and_then(Value::as_str) {
                Some("passing") => "passing",
                Some("warning") => "warning",
                Some("critical") => "critical",
                _ => {
                    return Err(ApiError::bad_request(
                        "status must be passing, warning or critical",
                    ))
                }
            };
            let service = body
                .get("service")
                .and_then(Value::as_str)
                .map(String::from);
            let allocation = body
                .get("allocation")
                .and_then(Value::as_str)
                .map(String::from);
            let node = body.get("node").and_then(Value::as_str).map(String::from);
            let changed = sim.write(|c| {
                c.set_check_status(
                    service.as_deref(),
                    allocation.as_deref(),
                    node.as_deref(),
                    status,
                )
            });
            Ok(Reply::ok(json!({"Changed": changed})))
        }
        (Method::PUT, ["chaos"]) => {
            let body: Value = req.json()?;
            let consul = match body.get("api").and_then(Value::as_str) {
                None | Some("nomad") => false,
                Some("consul") => true,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "unknown api {other:?}: nomad or consul"
                    )))
                }
            };
            sim.write(|cluster| {
                let c = if consul {
                    &mut cluster.consul_chaos
                } else {
                    &mut cluster.chaos
                };
                if let Some(latency) = body.get("latency_ms").and_then(Value::as_u64) {
                    c.latency_ms = latency;
                }
                if let Some(rate) = body.get("error_rate").and_then(Value::as_f64) {
                    c.error_rate = rate.clamp(0.0, 1.0);
                }
                if let Some(stall) = body.get("stall_streams").and_then(Value::as_bool) {
                    c.stall_streams = stall;
                }
                if let Some(hang) = body.get("hang_blocking").and_then(Value::as_bool) {
                    c.hang_blocking = hang;
                }
                if body.get("cut_streams").and_then(Value::as_bool) == Some(true) {
                    c.stream_cuts += 1;
                }
                if let Some(ms) = body.get("unavailable_ms").and_then(Value::as_u64) {
                    c.unavailable_until =
                        (ms > 0).then(|| Instant::now() + Duration::from_millis(ms));
                }
            });
            Ok(Reply::ok(json!({})))
        }
        _ => Err(ApiError::not_found(format!(
            "unknown admin route {} {}",
            req.method, req.path
        ))),
    }
}

/// Everything, for tests to assert on: nodes, jobs, allocations, checks and the write log.
fn state(c: &crate::cluster::Cluster) -> Value {
    let now = c.clock.now();
    let checks: Vec<Value> = crate::consul::instances(c)
        .iter()
        .map(|i| json!({"allocation": i.alloc.id, "node": i.node.name, "service": i.name, "status": i.status}))
        .collect();
    json!({
        "Index": c.index,
        "Time": render::rfc3339(Some(now)),
        "Nodes": c.nodes.values().map(|n| render::node(n, now, false)).collect::<Vec<_>>(),
        "Jobs": c.jobs.values().map(|j| render::job(c, j)).collect::<Vec<_>>(),
        "Allocations": c.allocs.values().map(render::alloc_stub).collect::<Vec<_>>(),
        "Checks": checks,
        "Writes": c.writes,
    })
}
