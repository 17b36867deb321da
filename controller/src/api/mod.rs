//! The HTTP API on the controller's listener (`/api/v1`): the objects a token may see, and the
//! acts an operator may take on them. Every route here needs a bearer token (`nomarch token
//! create`); [`access`] decides, and is denied by default. Writes compare the object's
//! revision as read (and the caller's `resourceVersion`, when given).
//!
//! # Layout
//! - [`access`]: who may do what (an ordered rule table, pure).
//! - this file: the routes, the token lookup, the handlers.
//!
//! First slice of the API: listing and reading objects, and `suspend`, `resume` and
//! `reconcile`. Applying, deleting, logs, diffs and the other acts come next.

pub mod access;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use crds::{Kind, ObjectRef, Resource};
use reconcilers::operator::{is_suspended, RECONCILE_REQUESTED, SUSPENDED};
use serde::Deserialize;
use serde_json::json;

use crate::runtime::context::Context;
use crate::store::{StoreError, TokenRecord};
use access::{decide, sees, Action, Decision, Request};

pub fn routes() -> Router<Arc<Context>> {
    Router::new()
        .route("/api/v1/objects", get(list))
        .route("/api/v1/objects/{kind}/{namespace}/{name}", get(one))
        .route("/api/v1/objects/{kind}/{namespace}/{name}/{act}", post(act))
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
    let decision = decide(&Request {
        token: token.as_ref(),
        action,
        namespace,
        now: Utc::now(),
    });
    match (decision, token) {
        (Decision::Allow, Some(token)) => Ok(token),
        (Decision::Unauthenticated(why), _) => {
            Err(Refusal(StatusCode::UNAUTHORIZED, why.to_string()))
        }
        // The rules allow nothing without a token; this arm only keeps the match whole.
        (Decision::Allow, None) => Err(Refusal(StatusCode::UNAUTHORIZED, "no token".into())),
        (Decision::Hidden, _) => Err(Refusal(StatusCode::NOT_FOUND, "not found".into())),
        (Decision::Forbidden(why), _) => Err(Refusal(StatusCode::FORBIDDEN, why)),
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
        other => {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} (suspend, resume, reconcile)"),
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
