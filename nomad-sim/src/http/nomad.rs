//! Nomad's `/v1/...` routes.

use std::collections::BTreeMap;
use std::ops::Bound;

use axum::http::Method;
use serde_json::{json, Value};

use super::{blocking, blocking_table, stream, table, variables, Reply, Req};
use crate::cluster::Cluster;
use crate::consul;
use crate::error::{ApiError, ApiResult};
use crate::render;
use crate::Sim;

/// Sub-paths of `/v1/job/<id>`, longest first so `periodic/force` wins over a job named `force`.
const JOB_SUFFIXES: &[&str] = &[
    "/periodic/force",
    "/deployments",
    "/deployment",
    "/allocations",
    "/evaluations",
    "/versions",
    "/summary",
    "/evaluate",
    "/plan",
    "/revert",
    "/stable",
    "/dispatch",
    "/scale",
    "/services",
    "/submission",
];

/// The job a write touched, for the write log.
pub fn job_id_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/job/")?;
    let id = JOB_SUFFIXES
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .unwrap_or(rest);
    Some(id.to_string())
}

fn namespace_matches(req: &Req, namespace: &str) -> bool {
    let wanted = req.namespace_str();
    wanted == "*" || wanted == namespace
}

/// The values whose key starts with `prefix`: a range walk, not a scan of the table (Nomad's
/// prefix indexes; a CronJob's children listing must not cost a pass over 12,000 jobs).
fn with_prefix<'a, V>(
    table: &'a BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = &'a V> + 'a {
    table
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(key, _)| key.starts_with(prefix))
        .map(|(_, value)| value)
}

fn get_only(req: &Req) -> ApiResult<()> {
    if req.method == Method::GET {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed())
    }
}

fn write_only(req: &Req) -> ApiResult<()> {
    if req.is_write() {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed())
    }
}

pub async fn handle(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    let path = req.path.as_str();
    match path {
        "/v1/jobs" => return jobs(sim, req).await,
        // command/agent/job_endpoint.go `JobsParseRequest`: HCL in, the API job out.
        "/v1/jobs/parse" => {
            write_only(req)?;
            let body = req.json()?;
            let hcl = body.get("JobHCL").and_then(Value::as_str).unwrap_or("");
            if hcl.is_empty() {
                return Err(ApiError::bad_request("Job spec is empty"));
            }
            let job = crate::jobspec::parse(hcl)
                .map_err(|e| ApiError::bad_request(format!("Failed to parse job: {e}")))?;
            let canonicalize = body.get("Canonicalize").and_then(Value::as_bool) == Some(true);
            let job = if canonicalize {
                let region = sim.read(|c| c.config.region.clone());
                let namespace = job
                    .get("Namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string();
                crate::jobs::canonicalize(job, &namespace, &region)
            } else {
                job
            };
            return Ok(Reply::ok(job));
        }
        // command/agent/job_endpoint.go `ValidateJobRequest` → nomad/job_endpoint.go
        // `Job.Validate`: the job canonicalized, the register's admission validators run.
        "/v1/validate/job" => {
            write_only(req)?;
            let body = req.json()?;
            let Some(job) = body.get("Job").filter(|j| j.is_object()) else {
                return Err(ApiError::bad_request("Job must be specified"));
            };
            let namespace = crate::jobs::namespace_for(req.param("namespace"), &body, job);
            let reply = sim.read(|c| {
                let spec = crate::jobs::canonicalize(job.clone(), &namespace, &c.config.region);
                crate::validate::validation_response(&spec, &c.node_pools())
            });
            return Ok(Reply::ok(reply));
        }
        "/v1/allocations" => return allocations(sim, req).await,
        "/v1/nodes" => return nodes(sim, req).await,
        "/v1/evaluations" => return evaluations(sim, req).await,
        "/v1/evaluations/count" => {
            get_only(req)?;
            let count = sim.read(|c| {
                c.evals
                    .values()
                    .filter(|e| namespace_matches(req, &e.namespace))
                    .count()
            });
            let index = sim.read(|c| table(c, |t| t.evals));
            return Ok(Reply::indexed(
                json!({"Count": count, "Index": index, "KnownLeader": true, "LastContact": 0, "NextToken": ""}),
                index,
            ));
        }
        "/v1/deployments" => {
            get_only(req)?;
            let prefix = id_prefix(req)?;
            return blocking_table(
                sim,
                req,
                |t| t.deployments,
                |c| {
                    let list: Vec<Value> = with_prefix(&c.deployments, &prefix)
                        .filter(|d| namespace_matches(req, &d.namespace))
                        .map(render::deployment)
                        .collect();
                    Ok(json!(list))
                },
            )
            .await;
        }
        // nomad/csi_endpoint.go `List` (type=csi): every volume of the namespace.
        "/v1/volumes" => {
            get_only(req)?;
            if req.param("type") != Some("csi") {
                return Err(ApiError::bad_request(
                    "nomad-sim simulates only `type=csi` volume listings",
                ));
            }
            let list = sim.read(|c| {
                c.csi_volumes
                    .values()
                    .filter(|v| namespace_matches(req, &v.namespace))
                    .map(|v| c.render_csi_stub(v))
                    .collect::<Vec<_>>()
            });
            return Ok(Reply::ok(json!(list)));
        }
        "/v1/namespaces" => {
            get_only(req)?;
            return blocking_table(
                sim,
                req,
                |t| t.namespaces,
                |c| {
                    let list: Vec<Value> = c.namespaces.values().map(namespace_json).collect();
                    Ok(json!(list))
                },
            )
            .await;
        }
        "/v1/services" => {
            get_only(req)?;
            return blocking_table(
                sim,
                req,
                |t| t.services,
                |c| {
                    Ok(json!(consul::nomad_services(c, |ns| namespace_matches(
                        req, ns
                    ))))
                },
            )
            .await;
        }
        "/v1/event/stream" => return stream::handle(sim, req),
        // nomad/system_endpoint.go GarbageCollect; command/agent/system_endpoint.go answers
        // with an empty body.
        "/v1/system/gc" => {
            write_only(req)?;
            let index = sim.write(|c| {
                c.force_gc();
                c.index
            });
            return Ok(Reply::Text {
                status: 200,
                message: String::new(),
                index,
            });
        }
        "/v1/status/leader" => return Ok(Reply::ok(json!("127.0.0.1:4647"))),
        "/v1/status/peers" => return Ok(Reply::ok(json!(["127.0.0.1:4647"]))),
        _ => {}
    }
    if let Some(alloc_id) = path.strip_prefix("/v1/client/fs/logs/") {
        return super::logs::handle(sim, req, alloc_id);
    }
    if let Some(rest) = path.strip_prefix("/v1/job/") {
        return job(sim, req, rest).await;
    }
    if let Some(rest) = path
        .strip_prefix("/v1/allocation/")
        .or_else(|| path.strip_prefix("/v1/client/allocation/"))
    {
        return allocation(sim, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/deployment/") {
        return deployment(sim, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/node/") {
        return node(sim, req, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/evaluation/") {
        return evaluation(sim, req, rest).await;
    }
    if let Some(var_path) = path.strip_prefix("/v1/var/") {
        return variables::handle(sim, req, var_path).await;
    }
    if let Some(id) = path.strip_prefix("/v1/volume/csi/") {
        let namespace = req.namespace_str().to_string();
        return match req.method {
            Method::GET => sim.read(|c| {
                c.csi_volumes
                    .get(&(namespace, id.to_string()))
                    .map(|v| Reply::ok(c.render_csi_volume(v)))
                    .ok_or_else(|| ApiError::not_found("volume not found"))
            }),
            _ if req.is_write() => {
                let body = req.json()?;
                Ok(Reply::ok(sim.write(|c| c.register_csi_request(id, &body))?))
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    }
    if let Some(name) = path.strip_prefix("/v1/namespace/") {
        return namespace(sim, req, name).await;
    }
    if let Some(name) = path.strip_prefix("/v1/service/") {
        get_only(req)?;
        let namespace = req.namespace();
        return blocking_table(
            sim,
            req,
            |t| t.services,
            |c| Ok(json!(consul::nomad_service(c, name, &namespace))),
        )
        .await;
    }
    Err(ApiError::not_found(format!("Invalid URL path: {path}")))
}

/// Nomad's `NodeUpdateResponse`, as node evaluate and purge answer.
fn node_update_reply(sim: &Sim, index: u64, evals: &[String], node_modify_index: u64) -> Value {
    let nodes = sim.read(|c| c.nodes.len());
    json!({
        "EvalCreateIndex": index,
        "EvalIDs": if evals.is_empty() { Value::Null } else { json!(evals) },
        "HeartbeatTTL": 0,
        "Index": index,
        "KnownLeader": true,
        "LastContact": 0,
        "LeaderRPCAddr": "127.0.0.1:4647",
        "NodeModifyIndex": node_modify_index,
        "NumNodes": nodes,
        "Servers": [{"Datacenter": "dc1", "RPCAdvertiseAddr": "127.0.0.1:4647", "RPCMajorVersion": 1, "RPCMinorVersion": 1}],
    })
}

fn namespace_json(ns: &crate::model::Namespace) -> Value {
    json!({
        "Name": ns.name,
        "Description": ns.description,
        "Quota": "",
        "Capabilities": null,
        "NodePoolConfiguration": null,
        "Meta": ns.meta,
        "CreateIndex": ns.create_index,
        "ModifyIndex": ns.modify_index,
    })
}

async fn namespace(sim: &Sim, req: &Req, name: &str) -> ApiResult<Reply> {
    match req.method {
        Method::GET => {
            blocking(sim, req, |c| match c.namespaces.get(name) {
                Some(ns) => (Ok(namespace_json(ns)), ns.modify_index),
                None => (
                    Err(ApiError::not_found("namespace not found")),
                    table(c, |t| t.namespaces),
                ),
            })
            .await
        }
        Method::PUT | Method::POST => {
            let body = if req.body.is_empty() {
                json!({})
            } else {
                req.json()?
            };
            let description = body
                .get("Description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let meta: Option<std::collections::BTreeMap<String, String>> = body
                .get("Meta")
                .and_then(|m| serde_json::from_value(m.clone()).ok());
            let index = sim.write(|c| {
                let index = c.bump();
                let entry =
                    c.namespaces
                        .entry(name.to_string())
                        .or_insert(crate::model::Namespace {
                            name: name.to_string(),
                            description: String::new(),
                            meta: None,
                            create_index: index,
                            modify_index: index,
                        });
                entry.description = description;
                entry.meta = meta;
                entry.modify_index = index;
                c.tables.namespaces = index;
                index
            });
            Ok(Reply::indexed(json!({}), index))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

async fn jobs(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    match req.method {
        Method::GET => {
            let prefix = req.param("prefix").unwrap_or_default().to_string();
            let with_meta = req.flag("meta");
            blocking_table(
                sim,
                req,
                |t| t.jobs,
                |c| {
                    let list: Vec<Value> = c
                        .jobs_with_prefix(req.namespace_str(), &prefix)
                        .map(|j| render::job_stub(c, j, with_meta))
                        .collect();
                    Ok(json!(list))
                },
            )
            .await
        }
        Method::PUT | Method::POST => {
            let body = req.json()?;
            let reply = sim.write(|c| c.register_job(req.param("namespace"), &body, None))?;
            let index = reply["Index"].as_u64().unwrap_or(0);
            Ok(Reply::indexed(reply, index))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn job(sim: &Sim, req: &Req, rest: &str) -> ApiResult<Reply> {
    let (id, suffix) = JOB_SUFFIXES
        .iter()
        .find_map(|s| rest.strip_suffix(s).map(|id| (id, *s)))
        .unwrap_or((rest, ""));
    let namespace = req.namespace();
    let job_missing = |c: &Cluster| {
        (
            Err(ApiError::not_found("job not found")),
            table(c, |t| t.jobs),
        )
    };
    match suffix {
        "" => match req.method {
            Method::GET => {
                blocking(sim, req, |c| match c.job(&namespace, id) {
                    Some(job) => (Ok(render::job(c, job)), job.modify_index),
                    None => job_missing(c),
                })
                .await
            }
            Method::PUT | Method::POST => {
                let body = req.json()?;
                let reply =
                    sim.write(|c| c.register_job(req.param("namespace"), &body, Some(id)))?;
                let index = reply["Index"].as_u64().unwrap_or(0);
                Ok(Reply::indexed(reply, index))
            }
            Method::DELETE => {
                let purge = req.flag("purge");
                let reply = sim.write(|c| c.deregister_job(&namespace, id, purge));
                let index = reply["Index"].as_u64().unwrap_or(0);
                Ok(Reply::indexed(reply, index))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        "/versions" => {
            get_only(req)?;
            blocking(sim, req, |c| match c.job(&namespace, id) {
                Some(job) => {
                    let mut versions = vec![render::job(c, job)];
                    versions.extend(job.versions.iter().cloned());
                    // Each version against the one before it, newest first, as Nomad lists them.
                    let diffs = if req.flag("diffs") {
                        let pairs = versions.windows(2).map(|pair| crate::diff::job_diff(Some(&pair[1]), &pair[0], &serde_json::Map::new()));
                        json!(pairs.collect::<Vec<_>>())
                    } else {
                        Value::Null
                    };
                    (Ok(json!({"Versions": versions, "Diffs": diffs, "Index": job.modify_index, "KnownLeader": true, "LastContact": 0})), job.modify_index)
                }
                None => (Err(ApiError::not_found("job versions not found")), table(c, |t| t.jobs)),
            })
            .await
        }
        "/allocations" => {
            get_only(req)?;
            let all = req.flag("all");
            blocking_table(
                sim,
                req,
                |t| t.allocs,
                |c| {
                    let Some(job) = c.job(&namespace, id) else {
                        return Ok(json!([]));
                    };
                    let list: Vec<Value> = c
                        .allocs_of_job(&namespace, id)
                        .filter(|a| all || a.create_index >= job.create_index)
                        .map(render::alloc_stub)
                        .collect();
                    Ok(json!(list))
                },
            )
            .await
        }
        "/evaluations" => {
            get_only(req)?;
            blocking_table(
                sim,
                req,
                |t| t.evals,
                |c| {
                    let list: Vec<Value> =
                        c.evals_of_job(&namespace, id).map(render::eval).collect();
                    Ok(json!(list))
                },
            )
            .await
        }
        // nomad/job_endpoint.go `Deployments` (newest first) and `LatestDeployment`.
        "/deployments" => {
            get_only(req)?;
            blocking_table(
                sim,
                req,
                |t| t.deployments,
                |c| {
                    let mut list: Vec<&crate::model::Deployment> =
                        c.deployments_of_job(&namespace, id).collect();
                    list.sort_by_key(|d| std::cmp::Reverse(d.create_index));
                    Ok(json!(list
                        .into_iter()
                        .map(render::deployment)
                        .collect::<Vec<_>>()))
                },
            )
            .await
        }
        "/deployment" => {
            get_only(req)?;
            blocking_table(
                sim,
                req,
                |t| t.deployments,
                |c| {
                    Ok(c.latest_deployment(&namespace, id)
                        .map_or(Value::Null, render::deployment))
                },
            )
            .await
        }
        "/summary" => {
            get_only(req)?;
            blocking(sim, req, |c| match c.job(&namespace, id) {
                Some(job) => (Ok(render::job_summary(c, job)), job.modify_index),
                None => job_missing(c),
            })
            .await
        }
        "/services" => {
            get_only(req)?;
            blocking(sim, req, |c| match c.job(&namespace, id) {
                Some(_) => (
                    Ok(json!(consul::nomad_services_of(c, |a| a.namespace
                        == namespace
                        && a.job_id == id))),
                    table(c, |t| t.services),
                ),
                None => job_missing(c),
            })
            .await
        }
        "/plan" => {
            write_only(req)?;
            let body = req.json()?;
            Ok(Reply::ok(
                sim.read(|c| c.plan_job(req.param("namespace"), &body, id))?,
            ))
        }
        "/evaluate" => {
            write_only(req)?;
            let reply = sim.write(|c| {
                let job = c.job(&namespace, id).cloned().ok_or_else(|| ApiError::not_found("job not found"))?;
                let index = c.bump();
                let eval_id = c.create_eval(index, &job, "job-register", "EvaluationUpdated");
                c.process_eval(&eval_id);
                Ok::<_, ApiError>(json!({"EvalID": eval_id, "EvalCreateIndex": index, "JobModifyIndex": job.job_modify_index, "Index": index}))
            })?;
            Ok(Reply::ok(reply))
        }
        "/revert" => {
            write_only(req)?;
            let body = req.json()?;
            let reply = sim.write(|c| c.revert_job(&namespace, id, &body))?;
            Ok(Reply::ok(
                json!({"EvalID": reply["EvalID"], "EvalCreateIndex": reply["EvalCreateIndex"], "JobModifyIndex": reply["JobModifyIndex"], "Index": reply["Index"]}),
            ))
        }
        "/stable" => {
            write_only(req)?;
            let body = req.json()?;
            Ok(Reply::ok(
                sim.write(|c| c.set_stability(&namespace, id, &body))?,
            ))
        }
        "/periodic/force" => {
            write_only(req)?;
            Ok(Reply::ok(sim.write(|c| c.launch_periodic(&namespace, id))?))
        }
        "/scale" => {
            write_only(req)?;
            let body = req.json()?;
            Ok(Reply::ok(
                sim.write(|c| c.scale_job(&namespace, id, &body))?,
            ))
        }
        "/dispatch" | "/submission" => Err(ApiError::not_found(format!(
            "nomad-sim does not simulate {suffix}"
        ))),
        _ => Err(ApiError::not_found("Invalid URL path")),
    }
}

// ---------------------------------------------------------------------------------------------
// Allocations

/// Even-length hex prefixes, as Nomad accepts for allocations, nodes and evaluations.
fn id_prefix(req: &Req) -> ApiResult<String> {
    let prefix = req.param("prefix").unwrap_or_default();
    if prefix.len() % 2 == 1 {
        return Err(ApiError::bad_request(
            "Prefix must have an even number of characters",
        ));
    }
    Ok(prefix.to_string())
}

async fn allocations(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    get_only(req)?;
    let prefix = id_prefix(req)?;
    blocking_table(
        sim,
        req,
        |t| t.allocs,
        |c| {
            let list: Vec<Value> = with_prefix(&c.allocs, &prefix)
                .filter(|a| namespace_matches(req, &a.namespace))
                .map(render::alloc_stub)
                .collect();
            Ok(json!(list))
        },
    )
    .await
}

async fn allocation(sim: &Sim, req: &Req, rest: &str) -> ApiResult<Reply> {
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    match action {
        "" => {
            get_only(req)?;
            blocking(sim, req, |c| match c.allocs.get(id) {
                Some(alloc) => (Ok(render::alloc(alloc, true)), alloc.modify_index),
                None => (
                    Err(ApiError::not_found("alloc not found")),
                    table(c, |t| t.allocs),
                ),
            })
            .await
        }
        "stop" => {
            write_only(req)?;
            let reply = sim.write(|c| {
                let alloc = c
                    .allocs
                    .get(id)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found("allocation not found"))?;
                let index = c.bump();
                if let Some(a) = c.allocs.get_mut(id) {
                    a.migrate = true;
                }
                c.stop_alloc(id, "alloc was stopped by the user", index);
                let job = c.job(&alloc.namespace, &alloc.job_id).cloned();
                let eval_id = match job {
                    Some(job) => {
                        let eval_id = c.create_eval(
                            index,
                            &job,
                            "alloc-stop",
                            "AllocationUpdateDesiredStatus",
                        );
                        c.process_eval(&eval_id);
                        eval_id
                    }
                    None => String::new(),
                };
                Ok::<_, ApiError>(json!({"EvalID": eval_id, "Index": index}))
            })?;
            let index = reply["Index"].as_u64().unwrap_or(0);
            Ok(Reply::indexed(reply, index))
        }
        "restart" => {
            write_only(req)?;
            // command/agent/alloc_endpoint.go `allocRestart`: `TaskName` and `AllTasks` from
            // the body, which may be empty.
            let body: Value = if req.body.is_empty() {
                json!({})
            } else {
                req.json()?
            };
            let task = body
                .get("TaskName")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            let all_tasks = body.get("AllTasks").and_then(Value::as_bool) == Some(true);
            sim.write(|c| c.restart_alloc(id, task, all_tasks))?;
            Ok(Reply::ok(json!({})))
        }
        "signal" => {
            write_only(req)?;
            let known = sim.read(|c| c.allocs.contains_key(id));
            if !known {
                return Err(ApiError::not_found(format!("Unknown allocation \"{id}\"")));
            }
            Ok(Reply::ok(json!({})))
        }
        "checks" => {
            get_only(req)?;
            sim.read(|c| match c.allocs.get(id) {
                Some(alloc) => Ok(Reply::ok(consul::allocation_checks(c, alloc))),
                None => Err(ApiError::not_found(format!("Unknown allocation \"{id}\""))),
            })
        }
        "services" => {
            get_only(req)?;
            blocking_table(
                sim,
                req,
                |t| t.services,
                |c| Ok(json!(consul::nomad_services_of(c, |a| a.id == id))),
            )
            .await
        }
        _ => Err(ApiError::not_found("resource not found")),
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes and evaluations

async fn nodes(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    get_only(req)?;
    let prefix = id_prefix(req)?;
    blocking_table(
        sim,
        req,
        |t| t.nodes,
        |c| {
            let now = c.clock.now();
            let with_resources = req.flag("resources");
            let list: Vec<Value> = c
                .nodes
                .values()
                .filter(|n| n.id.starts_with(&prefix))
                .map(|n| {
                    let mut stub = render::node_stub(n, now);
                    // `resources=true` adds what the node has and what it keeps for itself.
                    if with_resources {
                        let full = render::node(n, now, false);
                        stub["NodeResources"] = full["NodeResources"].clone();
                        stub["ReservedResources"] = full["ReservedResources"].clone();
                    }
                    stub
                })
                .collect();
            Ok(json!(list))
        },
    )
    .await
}

async fn node(sim: &Sim, req: &Req, rest: &str) -> ApiResult<Reply> {
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    let missing = || ApiError::not_found("node not found");
    match action {
        "" => {
            get_only(req)?;
            blocking(sim, req, |c| match c.nodes.get(id) {
                Some(node) => (
                    Ok(render::node(node, c.clock.now(), false)),
                    node.modify_index,
                ),
                None => (Err(missing()), table(c, |t| t.nodes)),
            })
            .await
        }
        "allocations" => {
            get_only(req)?;
            blocking_table(
                sim,
                req,
                |t| t.allocs,
                |c| {
                    let list: Vec<Value> = c
                        .allocs_on_node(id)
                        .map(|a| render::alloc(a, true))
                        .collect();
                    Ok(json!(list))
                },
            )
            .await
        }
        "drain" => {
            write_only(req)?;
            let body = req.json()?;
            let spec = body.get("DrainSpec").filter(|s| s.is_object()).cloned();
            let mark_eligible = body
                .get("MarkEligible")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let (index, evals) = sim.write(|c| {
                if !c.nodes.contains_key(id) {
                    return Err(missing());
                }
                Ok(c.drain_node(id, spec.as_ref(), mark_eligible))
            })?;
            let evals = if evals.is_empty() {
                Value::Null
            } else {
                json!(evals)
            };
            Ok(Reply::indexed(
                json!({"EvalCreateIndex": index, "EvalIDs": evals, "Index": index, "NodeModifyIndex": index}),
                index,
            ))
        }
        "eligibility" => {
            write_only(req)?;
            let body = req.json()?;
            let wanted = body
                .get("Eligibility")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let index = sim.write(|c| {
                let node = c.nodes.get(id).ok_or_else(missing)?;
                match wanted.as_str() {
                    "eligible" if node.drain.is_some() => {
                        Err(ApiError::internal("can not set node's scheduling eligibility to eligible while it is draining"))
                    }
                    "eligible" => Ok(c.set_eligibility(id, true)),
                    "ineligible" => Ok(c.set_eligibility(id, false)),
                    other => Err(ApiError::bad_request(format!("invalid scheduling eligibility \"{other}\""))),
                }
            })?;
            Ok(Reply::indexed(
                json!({"EvalCreateIndex": 0, "EvalIDs": null, "Index": index, "NodeModifyIndex": index}),
                index,
            ))
        }
        "evaluate" => {
            write_only(req)?;
            let (index, evals) = sim.write(|c| {
                if !c.nodes.contains_key(id) {
                    return Err(missing());
                }
                Ok(c.evaluate_node(id))
            })?;
            Ok(Reply::indexed(
                node_update_reply(sim, index, &evals, 0),
                index,
            ))
        }
        "purge" => {
            write_only(req)?;
            let (index, evals) = sim.write(|c| {
                if !c.nodes.contains_key(id) {
                    return Err(missing());
                }
                Ok(c.purge_node(id))
            })?;
            Ok(Reply::indexed(
                node_update_reply(sim, index, &evals, index),
                index,
            ))
        }
        _ => Err(ApiError::not_found("Invalid URL path")),
    }
}

async fn evaluations(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    get_only(req)?;
    let prefix = id_prefix(req)?;
    let job = req.param("job").map(String::from);
    let status = req.param("status").map(String::from);
    blocking_table(
        sim,
        req,
        |t| t.evals,
        |c| {
            let list: Vec<Value> = with_prefix(&c.evals, &prefix)
                .filter(|e| namespace_matches(req, &e.namespace))
                .filter(|e| {
                    job.as_deref().is_none_or(|j| e.job_id == j)
                        && status.as_deref().is_none_or(|s| e.status == s)
                })
                .map(render::eval)
                .collect();
            Ok(json!(list))
        },
    )
    .await
}

async fn evaluation(sim: &Sim, req: &Req, rest: &str) -> ApiResult<Reply> {
    get_only(req)?;
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    match action {
        "" => {
            let related = req.flag("related");
            blocking(sim, req, |c| match c.evals.get(id) {
                Some(eval) => {
                    let mut value = render::eval(eval);
                    if related {
                        let stubs: Vec<Value> = c
                            .evals
                            .values()
                            .filter(|e| {
                                e.job_id == eval.job_id
                                    && e.namespace == eval.namespace
                                    && e.id != eval.id
                            })
                            .map(render::eval)
                            .collect();
                        value["RelatedEvals"] = json!(stubs);
                    }
                    (Ok(value), eval.modify_index)
                }
                None => (
                    Err(ApiError::not_found("eval not found")),
                    table(c, |t| t.evals),
                ),
            })
            .await
        }
        "allocations" => alloc_stubs(sim, req, |a| a.eval_id == id).await,
        _ => Err(ApiError::not_found("Invalid URL path")),
    }
}

/// A blocking listing of the allocations `keep` selects, as `AllocListStub`s.
async fn alloc_stubs(
    sim: &Sim,
    req: &Req,
    keep: impl Fn(&crate::model::Alloc) -> bool,
) -> ApiResult<Reply> {
    blocking_table(
        sim,
        req,
        |t| t.allocs,
        |c| {
            let list: Vec<Value> = c
                .allocs
                .values()
                .filter(|a| keep(a))
                .map(render::alloc_stub)
                .collect();
            Ok(json!(list))
        },
    )
    .await
}

/// `/v1/deployment/...` (nomad/command/agent/deployment_endpoint.go).
async fn deployment(sim: &Sim, req: &Req, rest: &str) -> ApiResult<Reply> {
    let (action, id) = match rest.split_once('/') {
        Some((action, id)) => (action, id),
        None => ("", rest),
    };
    let id = id.to_string();
    match action {
        "" => {
            get_only(req)?;
            blocking(sim, req, |c| match c.deployments.get(&id) {
                Some(d) => (Ok(render::deployment(d)), d.modify_index),
                None => (
                    Err(ApiError::not_found("deployment not found")),
                    table(c, |t| t.deployments),
                ),
            })
            .await
        }
        "allocations" => {
            get_only(req)?;
            alloc_stubs(sim, req, |a| a.deployment_id == id).await
        }
        "fail" | "pause" | "promote" | "allocation-health" => {
            write_only(req)?;
            let body: Value = if req.body.is_empty() {
                json!({})
            } else {
                req.json()?
            };
            let ids = |key: &str| -> Vec<String> {
                body.get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            };
            let (healthy, unhealthy) = (ids("HealthyAllocationIDs"), ids("UnhealthyAllocationIDs"));
            let pause = body.get("Pause").and_then(Value::as_bool).unwrap_or(false);
            let all = body.get("All").and_then(Value::as_bool).unwrap_or(false);
            let groups = ids("Groups");
            let reply = sim.write(|c| match action {
                "fail" => c.fail_deployment_by_user(&id),
                "pause" => c.pause_deployment(&id, pause),
                "promote" => c.promote_deployment(&id, all, &groups),
                _ => c.deployment_alloc_health(&id, &healthy, &unhealthy),
            });
            reply.map(Reply::ok).map_err(ApiError::internal)
        }
        _ => Err(ApiError::not_found(format!(
            "unknown deployment route {rest}"
        ))),
    }
}
