//! The HTTP API on the controller's listener (`/api/v1`): the objects a token may see, and the
//! acts an operator may take on them. Every route here needs a bearer token (`nomarch token
//! create`); [`access`] decides, and is denied by default. Writes compare the object's
//! revision as read (and the caller's `resourceVersion`, when given).
//!
//! # Layout
//! - [`access`]: who may do what (an ordered rule table, pure).
//! - this file: the routes, the token lookup, the handlers.
//!
//! So far: listing and reading objects; `suspend`, `resume`, `reconcile` and running a cron
//! job now (operators); applying manifests and deleting objects (admins). Logs, diffs, the
//! rollout acts and stop/start come next.

pub mod access;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use chrono::Utc;
use crds::{Kind, ObjectRef, Resource};
use reconcilers::operator::{is_suspended, RECONCILE_REQUESTED, SUSPENDED};
use serde::Deserialize;
use serde_json::json;

use crate::runtime::context::Context;
use crate::store::{Role, StoreError, TokenRecord};
use access::{decide, sees, Action, Decision, Request};

/// The largest manifest body `apply` reads: a manifest file's own limit.
const APPLY_LIMIT: usize = crds::manifest::MAX_FILE_BYTES;

/// One operation of the API: what serves it and what the OpenAPI description says of it. The
/// router and the description are both made from [`operations`], so neither can name a route
/// the other lacks.
struct Operation {
    method: &'static str,
    path: &'static str,
    /// The role it needs (the namespace rule applies as well).
    needs: Role,
    summary: &'static str,
    serve: MethodRouter<Arc<Context>>,
}

fn operations() -> Vec<Operation> {
    vec![
        Operation {
            method: "get",
            path: "/api/v1/objects",
            needs: Role::Viewer,
            summary: "Objects with their status (`?kind=`, `?namespace=`), of the namespaces the token sees",
            serve: get(list),
        },
        Operation {
            method: "get",
            path: "/api/v1/objects/{kind}/{namespace}/{name}",
            needs: Role::Viewer,
            summary: "One object with its status",
            serve: get(one),
        },
        Operation {
            method: "post",
            path: "/api/v1/objects/{kind}/{namespace}/{name}/{act}",
            needs: Role::Operator,
            summary: "suspend, resume, reconcile (`?resourceVersion=` compared), or run (a cron job, now)",
            serve: post(act),
        },
        Operation {
            method: "get",
            path: "/api/v1/events/stream",
            needs: Role::Viewer,
            summary: "Events as Server-Sent Events (`?kind=&namespace=&name=&type=`, `Last-Event-ID`), of the namespaces the token sees",
            serve: get(events),
        },
        Operation {
            method: "post",
            path: "/api/v1/apply",
            needs: Role::Admin,
            summary: "Manifests (YAML or JSON) validated and written all or nothing; 422 says where each error is",
            serve: post(apply).layer(axum::extract::DefaultBodyLimit::max(APPLY_LIMIT)),
        },
        Operation {
            method: "delete",
            path: "/api/v1/objects/{kind}/{namespace}/{name}",
            needs: Role::Admin,
            summary: "Deletes an object (`?resourceVersion=` compared); its job is stopped unless protected",
            serve: axum::routing::delete(delete),
        },
    ]
}

pub fn routes() -> Router<Arc<Context>> {
    let router = Router::new().route("/api/v1/openapi.json", get(|| async { Json(openapi()) }));
    operations()
        .into_iter()
        .fold(router, |router, op| router.route(op.path, op.serve))
}

/// The OpenAPI 3.1 description of [`operations`]: served at `/api/v1/openapi.json` (without a
/// token: it describes, it reveals nothing).
pub fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for op in operations() {
        let parameters: Vec<serde_json::Value> = op
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method] = json!({
            "summary": op.summary,
            "description": format!("Needs a token whose role is at least {}.", op.needs.as_str()),
            "parameters": parameters,
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "Done; the body is JSON."},
                "401": {"description": "No token, or an unknown, revoked or expired one."},
                "403": {"description": "The token's role may not do this."},
                "404": {"description": "No such object, or one in a namespace the token does not see."},
                "409": {"description": "The object changed (a stale resourceVersion), or the act does not apply to it."},
            },
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "nomarch API", "version": "v1"},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}

/// An answer other than success: its status and a JSON body saying why (never a secret).
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        let status = match &e {
            StoreError::Conflict { .. } => StatusCode::CONFLICT,
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Fenced => StatusCode::SERVICE_UNAVAILABLE,
            e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal(status, e.to_string())
    }
}

/// The token the request's `Authorization: Bearer` secret belongs to, if any.
async fn bearer(ctx: &Context, headers: &HeaderMap) -> Result<Option<TokenRecord>, Refusal> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some(secret) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return Ok(None);
    };
    Ok(ctx.store.token_by_secret(secret.trim()).await?)
}

/// The request's token if `access` allows `action` on `namespace`; the refusal otherwise.
async fn allowed(
    ctx: &Context,
    headers: &HeaderMap,
    action: Action,
    namespace: Option<&str>,
) -> Result<TokenRecord, Refusal> {
    let token = bearer(ctx, headers).await?;
    permit(token.as_ref(), action, namespace)?;
    // The rules allow nothing without a token.
    token.ok_or_else(|| Refusal(StatusCode::UNAUTHORIZED, "no token".into()))
}

/// What `access` says of `token` doing `action` in `namespace`, as an answer.
fn permit(
    token: Option<&TokenRecord>,
    action: Action,
    namespace: Option<&str>,
) -> Result<(), Refusal> {
    let decision = decide(&Request {
        token,
        action,
        namespace,
        now: Utc::now(),
    });
    match decision {
        Decision::Allow => Ok(()),
        Decision::Unauthenticated(why) => Err(Refusal(StatusCode::UNAUTHORIZED, why.into())),
        Decision::Hidden => Err(Refusal(StatusCode::NOT_FOUND, "not found".into())),
        Decision::Forbidden(why) => Err(Refusal(StatusCode::FORBIDDEN, why)),
    }
}

fn kind_of(name: &str) -> Result<Kind, Refusal> {
    Kind::from_cli_name(name)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("no kind {name:?}")))
}

#[derive(Deserialize)]
struct ListQuery {
    kind: Option<String>,
    namespace: Option<String>,
}

/// `GET /api/v1/objects[?kind=app][&namespace=ns]`: the objects with their status, of the
/// namespaces the token sees.
async fn list(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = allowed(&ctx, &headers, Action::Read, query.namespace.as_deref()).await?;
    let kind = query.kind.as_deref().map(kind_of).transpose()?;
    let (objects, revision) = ctx.store.list(kind).await?;
    let items: Vec<serde_json::Value> = objects
        .iter()
        .filter(|o| sees(&token, &o.metadata().namespace))
        .filter(|o| {
            query
                .namespace
                .as_deref()
                .is_none_or(|ns| o.metadata().namespace == ns)
        })
        .map(Resource::to_json)
        .collect();
    Ok(Json(json!({"items": items, "revision": revision})))
}

/// `GET /api/v1/events/stream`: the runtime's event stream for a viewer; a one-namespace
/// token's stream is held to its namespace (asking for another is a 404, as for objects).
async fn events(
    State(ctx): State<Arc<Context>>,
    Query(mut query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let asked = query.get("namespace").cloned().filter(|n| !n.is_empty());
    let token = match allowed(&ctx, &headers, Action::Read, asked.as_deref()).await {
        Ok(token) => token,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(scope) = token.namespace {
        query.insert("namespace".into(), scope);
    }
    crate::runtime::event_stream::events(State(ctx), Query(query), headers).await
}

/// `GET /api/v1/objects/{kind}/{namespace}/{name}`: one object with its status.
async fn one(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Refusal> {
    allowed(&ctx, &headers, Action::Read, Some(&namespace)).await?;
    let object = ObjectRef::new(kind_of(&kind)?, &namespace, &name);
    match ctx.store.get(&object).await? {
        Some(resource) => Ok(Json(resource.to_json())),
        None => Err(Refusal(StatusCode::NOT_FOUND, "not found".into())),
    }
}

/// `POST /api/v1/apply` (admin): a YAML or JSON stream of manifests, validated as `nomarch
/// apply` validates them (NomadJobs asked of Nomad too), every object in the token's reach, and
/// written in one all-or-nothing batch. Invalid input is 422 with each error's place
/// (`request:line:col: field: message`).
async fn apply(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = allowed(&ctx, &headers, Action::Write, None).await?;
    let invalid = |errors: Vec<crds::ManifestError>| {
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Refusal(StatusCode::UNPROCESSABLE_ENTITY, texts.join("\n"))
    };
    let manifests = crds::parse_str("request", &body).map_err(invalid)?;
    // Every object in reach, or nothing: a tenant's token cannot write next door.
    for manifest in &manifests {
        let namespace = &manifest.resource.metadata().namespace;
        permit(Some(&token), Action::Write, Some(namespace))?;
    }
    match crate::reconcile::nomadjob::check_manifests(&ctx.nomad, &manifests).await {
        Ok(()) => {}
        Err(crate::reconcile::nomadjob::CheckError::Invalid(errors)) => {
            return Err(invalid(errors))
        }
        Err(e @ crate::reconcile::nomadjob::CheckError::Nomad(_)) => {
            return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
    let resources: Vec<Resource> = manifests.into_iter().map(|m| m.resource).collect();
    let outcomes = ctx.store.apply(&resources).await?;
    tracing::info!(objects = outcomes.len(), token = %token.name, "API apply");
    let said: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(object, outcome)| json!({"object": object.to_string(), "outcome": outcome.as_str()}))
        .collect();
    Ok(Json(json!({"applied": said})))
}

/// `DELETE /api/v1/objects/{kind}/{namespace}/{name}[?resourceVersion=]` (admin): as `nomarch
/// delete` (the controller stops its job unless protected).
async fn delete(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    Query(query): Query<ActQuery>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = allowed(&ctx, &headers, Action::Write, Some(&namespace)).await?;
    let object = ObjectRef::new(kind_of(&kind)?, &namespace, &name);
    ctx.store
        .delete(&object, query.resource_version.as_deref())
        .await?;
    tracing::info!(object = %object, token = %token.name, "API delete");
    Ok(Json(
        json!({"object": object.to_string(), "outcome": "deleted"}),
    ))
}

#[derive(Deserialize)]
struct ActQuery {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// `POST /api/v1/objects/{kind}/{namespace}/{name}/{suspend|resume|reconcile}`: the same
/// annotations `nomarch suspend`, `resume` and `reconcile` write, check-and-set on the
/// object's revision (and the caller's `?resourceVersion=`, when given).
async fn act(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Path((kind, namespace, name, act)): Path<(String, String, String, String)>,
    Query(query): Query<ActQuery>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = allowed(&ctx, &headers, Action::Act, Some(&namespace)).await?;
    let object = ObjectRef::new(kind_of(&kind)?, &namespace, &name);
    let Some(mut resource) = ctx.store.get(&object).await? else {
        return Err(Refusal(StatusCode::NOT_FOUND, "not found".into()));
    };
    if let Some(expected) = &query.resource_version {
        if resource.metadata().resource_version != *expected {
            return Err(StoreError::Conflict {
                object: object.to_string(),
                expected: expected.clone(),
            }
            .into());
        }
    }
    let suspended = is_suspended(resource.metadata());
    let annotations = &mut resource.metadata_mut().annotations;
    match act.as_str() {
        "suspend" => {
            annotations.insert(SUSPENDED.to_string(), "true".to_string());
        }
        "resume" => {
            annotations.remove(SUSPENDED);
        }
        "reconcile" if suspended => {
            return Err(Refusal(
                StatusCode::CONFLICT,
                format!("{object} is suspended: resume it first"),
            ))
        }
        "reconcile" => {
            let request = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            annotations.insert(RECONCILE_REQUESTED.to_string(), request);
        }
        "run" => return run_now(&ctx, &resource, &token).await,
        other => {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} (suspend, resume, reconcile, run)"),
            ))
        }
    }
    resource.set_status(None);
    let outcome = ctx.store.apply(&[resource]).await?;
    tracing::info!(object = %object, act = %act, token = %token.name, "API act");
    Ok(Json(json!({
        "object": object.to_string(),
        "action": act,
        "outcome": outcome.first().map(|(_, o)| o.as_str()),
    })))
}

/// `run` on a cron job: one launch now, as `nomarch run cronjob` (Nomad's periodic force); a
/// suspended one is refused in nomarch's words (Nomad does not launch a disabled periodic job).
async fn run_now(
    ctx: &Context,
    resource: &Resource,
    token: &TokenRecord,
) -> Result<Json<serde_json::Value>, Refusal> {
    let object = resource.object_ref();
    let Resource::CronJob(cron) = resource else {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!("{object}: only cron jobs can be run now"),
        ));
    };
    if cron.spec.suspend {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!("{object} is suspended (spec.suspend: true): set suspend to false to run it"),
        ));
    }
    let job = reconcilers::meta::job_id(&object);
    let reply = ctx
        .nomad
        .periodic_force(&object.namespace, &job)
        .await
        .map_err(|e| Refusal(StatusCode::BAD_GATEWAY, format!("Nomad: {e}")))?;
    tracing::info!(object = %object, token = %token.name, "API run");
    Ok(Json(json!({
        "object": object.to_string(),
        "action": "run",
        "evaluation": reply.get("EvalID"),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation is described once, with its path parameters and the role it needs.
    #[test]
    fn the_description_names_every_operation_and_its_parameters() {
        let described = openapi();
        let paths = described["paths"].as_object().unwrap();
        let count: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(count, operations().len());
        let act = &paths["/api/v1/objects/{kind}/{namespace}/{name}/{act}"]["post"];
        let names: Vec<&str> = act["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["kind", "namespace", "name", "act"]);
        assert!(act["description"].as_str().unwrap().contains("operator"));
        let one = &paths["/api/v1/objects/{kind}/{namespace}/{name}"];
        assert!(one.get("get").is_some() && one.get("delete").is_some());
    }
}
