//! Nomad Variables (`/v1/var/<path>`), the secret store nomarch reads git credentials and
//! webhook secrets from. No sample of these answers is in `e2e/nomad-api/`; the shapes
//! follow the OpenAPI spec's `Variable` (Namespace, Path, Items, Create/Modify Index and Time)
//! and check-and-set follows Nomad's docs: `?cas=0` creates only, a stale `cas` is a 409 whose
//! body is the variable as it is. DELETE and the `/v1/vars` listing are not simulated.

use axum::http::Method;
use serde_json::{json, Map, Value};

use super::{Reply, Req};
use crate::error::{ApiError, ApiResult};
use crate::model::VariableEntry;
use crate::Sim;

fn variable_json(namespace: &str, path: &str, entry: &VariableEntry) -> Value {
    json!({
        "Namespace": namespace,
        "Path": path,
        "Items": entry.items,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
        "CreateTime": entry.create_time,
        "ModifyTime": entry.modify_time,
    })
}

pub async fn handle(sim: &Sim, req: &Req, path: &str) -> ApiResult<Reply> {
    let namespace = req.namespace();
    let key = (namespace.clone(), path.to_string());
    match req.method {
        Method::GET => {
            let found = sim.read(|c| {
                c.variables
                    .get(&key)
                    .map(|e| (variable_json(&namespace, path, e), e.modify_index))
            });
            match found {
                Some((body, index)) => Ok(Reply::indexed(body, index)),
                None => Err(ApiError::not_found("variable not found")),
            }
        }
        Method::PUT | Method::POST => {
            validate_path(path)?;
            let body = req.json()?;
            let items: Map<String, Value> = match body.get("Items") {
                Some(Value::Object(items)) if items.values().all(Value::is_string) => items.clone(),
                _ => {
                    return Err(ApiError::bad_request(
                        "variable missing required Items object",
                    ))
                }
            };
            let cas: Option<u64> = req.param("cas").and_then(|c| c.parse().ok());
            sim.write(|c| {
                let current = c.variables.get(&key).cloned();
                let allowed = match (cas, &current) {
                    (None, _) | (Some(0), None) => true,
                    (Some(n), Some(e)) => n == e.modify_index,
                    (Some(_), _) => false,
                };
                if !allowed {
                    // nomad/state/state_store_variables.go `varSetCASImpl`: a check-and-set on a
                    // path that does not exist conflicts with "a plausible zero value" (the
                    // namespace and path, nothing else), not with nothing.
                    let body = current.map_or_else(
                        || json!({"Namespace": namespace, "Path": path, "CreateIndex": 0, "CreateTime": 0, "ModifyIndex": 0, "ModifyTime": 0, "Items": null}),
                        |e| variable_json(&namespace, path, &e),
                    );
                    return Ok(Reply::Json {
                        status: 409,
                        body,
                        index: None,
                    });
                }
                let index = c.bump();
                let now = c.clock.now_nanos();
                let entry = VariableEntry {
                    items,
                    create_index: current.as_ref().map_or(index, |e| e.create_index),
                    create_time: current.as_ref().map_or(now, |e| e.create_time),
                    modify_index: index,
                    modify_time: now,
                };
                let body = variable_json(&namespace, path, &entry);
                c.variables.insert(key.clone(), entry);
                Ok(Reply::indexed(body, index))
            })
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// nomad/structs/variables.go `ValidatePath`: 1 to 128 of `[a-zA-Z0-9-_~/]`, and under
/// `nomad/` only `nomad/jobs...` and `nomad/job-templates/<name>`.
fn validate_path(path: &str) -> ApiResult<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_~/".contains(c);
    if path.is_empty() {
        return Err(ApiError::internal("variable requires path"));
    }
    if path.len() > 128 || !path.chars().all(allowed) {
        return Err(ApiError::internal(format!("invalid path {path:?}")));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts[0] != "nomad" {
        return Ok(());
    }
    match parts.as_slice() {
        ["nomad"] => Err(ApiError::internal(
            "\"nomad\" is a reserved top-level directory path, but you may write variables to \"nomad/jobs\", \"nomad/job-templates\", or below",
        )),
        ["nomad", "jobs", ..] | ["nomad", "job-templates", _] => Ok(()),
        ["nomad", "job-templates", ..] => Err(ApiError::internal(
            "\"nomad/job-templates\" is a reserved directory path, but you may write variables at the level below it, for example, \"nomad/job-templates/template-name\"",
        )),
        _ => Err(ApiError::internal(
            "only paths at \"nomad/jobs\" or \"nomad/job-templates\" and below are valid paths under the top-level \"nomad\" directory",
        )),
    }
}
