//! The HTTP API on the controller's listener (`/api/v1`): the objects a token may see, and the
//! acts an operator may take on them. Every route here needs a bearer token (`nomarch token
//! create`); [`access`] decides, and is denied by default. Writes compare the object's
//! revision as read (and the caller's `resourceVersion`, when given).
//!
//! # Layout
//! - [`access`]: who may do what (an ordered rule table, pure).
//! - [`session`]: the dashboard's sign-in sessions (a cookie naming a token's hash) and their
//!   CSRF secrets; reads accept a session as well as a bearer token, writes only a token (the
//!   dashboard's own forms check the CSRF secret and call [`act_on`] and [`delete_object`]).
//! - this file: the routes, the token lookup, the handlers.
//!
//! So far: listing and reading objects; `suspend`, `resume`, `reconcile`, `stop`, `start`,
//! `retry`, `promote`, `undo` and running a cron job now (operators); an object's history;
//! applying manifests and deleting objects (admins); logs, followed or not; the diff against
//! Nomad; what Nomad holds (job, allocations, deployment); `rollout restart`.

pub mod access;
pub mod session;

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
use session::Sessions;

/// What the API's handlers (and the dashboard's) are given: the runtime's shared plumbing and
/// this controller's sign-in sessions.
#[derive(Clone)]
pub struct Api {
    pub ctx: Arc<Context>,
    pub sessions: Arc<Sessions>,
}

impl Api {
    pub fn new(ctx: Arc<Context>) -> Api {
        Api {
            ctx,
            sessions: Arc::default(),
        }
    }
}

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
    serve: MethodRouter<Api>,
}

fn operations() -> Vec<Operation> {
    vec![
        Operation {
            method: "get",
            path: "/api/v1/objects",
            needs: Role::Viewer,
            summary: "Objects with their status (`?kind=`, `?namespace=`, `?labelSelector=`), of the namespaces the token sees, by kind, namespace and name or `?sortBy=` a field path, `?limit=` (at most 500) a page, the next from `?continue=`",
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
            method: "get",
            path: "/api/v1/objects/{kind}/{namespace}/{name}/history",
            needs: Role::Viewer,
            summary: "The stored generations, oldest first: time, commit, the Nomad job version each became, how its rollout ended, what changed",
            serve: get(history),
        },
        Operation {
            method: "get",
            path: "/api/v1/objects/{kind}/{namespace}/{name}/logs",
            needs: Role::Viewer,
            summary: "What its instances print, as text, merged by time (`?task=`, `?stderr=true`, `?tail=` lines per instance, 1000 unless given, `?since=10m`, `?instance=ID` or `?all=true`); `?follow=true` streams new lines as they come",
            serve: get(logs),
        },
        Operation {
            method: "get",
            path: "/api/v1/objects/{kind}/{namespace}/{name}/nomad",
            needs: Role::Viewer,
            summary: "Its Nomad job as Nomad holds it, the job's allocations, and its latest deployment (null where there is none)",
            serve: get(nomad_view),
        },
        Operation {
            method: "get",
            path: "/api/v1/objects/{kind}/{namespace}/{name}/diff",
            needs: Role::Viewer,
            summary: "What the controller would change in Nomad now, from its own plan and Nomad's plan diff (`nomarch diff`): the deciding rule, whether the job would change, the plan's lines, Nomad's plan",
            serve: get(diff),
        },
        Operation {
            method: "post",
            path: "/api/v1/objects/{kind}/{namespace}/{name}/{act}",
            needs: Role::Operator,
            summary: "suspend, resume, reconcile, stop, start, retry (a rolled-back rollout), promote (a running rollout), restart (the instances in place, in batches, going on after the answer, each step an event), undo (`?generation=`, by default the one before), or run (a cron job, now); `?resourceVersion=` compared",
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

/// The API's routes, given their state (so they merge into the runtime's server).
pub fn routes(api: Api) -> Router<Arc<Context>> {
    let router = Router::new().route("/api/v1/openapi.json", get(|| async { Json(openapi()) }));
    operations()
        .into_iter()
        .fold(router, |router, op| router.route(op.path, op.serve))
        .with_state(api)
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
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

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

/// The token the request speaks for: its `Authorization: Bearer` secret's, or, when
/// `sessions` is allowed, its dashboard session's (looked up again, so a revoked token's
/// session ends at once).
pub async fn caller(
    api: &Api,
    headers: &HeaderMap,
    sessions: bool,
) -> Result<Option<TokenRecord>, Refusal> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let Some(secret) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Ok(None);
        };
        return Ok(api.ctx.store.token_by_secret(secret.trim()).await?);
    }
    if !sessions {
        return Ok(None);
    }
    let Some(session) = session::cookie(headers).and_then(|id| api.sessions.get(&id, Utc::now()))
    else {
        return Ok(None);
    };
    Ok(api.ctx.store.token_by_hash(&session.token_sha256).await?)
}

/// The request's token if `access` allows `action` on `namespace`; the refusal otherwise.
/// A dashboard session counts for reads only: a write through the API needs the bearer token,
/// so a page elsewhere cannot make a signed-in browser act (the dashboard's own forms carry a
/// CSRF secret instead).
async fn allowed(
    api: &Api,
    headers: &HeaderMap,
    action: Action,
    namespace: Option<&str>,
) -> Result<TokenRecord, Refusal> {
    let token = caller(api, headers, action == Action::Read).await?;
    permit(token.as_ref(), action, namespace)?;
    // The rules allow nothing without a token.
    token.ok_or_else(|| Refusal(StatusCode::UNAUTHORIZED, "no token".into()))
}

/// The object a path names, and the token, if `access` allows `action` on it.
async fn named(
    api: &Api,
    headers: &HeaderMap,
    action: Action,
    (kind, namespace, name): &(String, String, String),
) -> Result<(TokenRecord, ObjectRef), Refusal> {
    let token = allowed(api, headers, action, Some(namespace)).await?;
    Ok((token, ObjectRef::new(kind_of(kind)?, namespace, name)))
}

/// The object as etcd holds it, or 404.
async fn stored(api: &Api, object: &ObjectRef) -> Result<Resource, Refusal> {
    api.ctx
        .store
        .get(object)
        .await?
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, "not found".into()))
}

/// What `access` says of `token` doing `action` in `namespace`, as an answer.
pub fn permit(
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

pub fn kind_of(name: &str) -> Result<Kind, Refusal> {
    Kind::from_cli_name(name)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("no kind {name:?}")))
}

#[derive(Deserialize)]
struct ListQuery {
    kind: Option<String>,
    namespace: Option<String>,
    /// `tier=web,!legacy`, as `nomarch get -l`.
    #[serde(rename = "labelSelector")]
    label_selector: Option<String>,
    /// At most this many items (default and most: [`LIST_LIMIT`]).
    limit: Option<usize>,
    /// The `continue` of the previous page: items after it.
    #[serde(rename = "continue")]
    after: Option<String>,
    /// A field path to order by (`metadata.creationTimestamp`, `{.spec.replicas}`), as
    /// `nomarch get --sort-by`.
    #[serde(rename = "sortBy")]
    sort_by: Option<String>,
}

/// The most items one listing answers.
pub const LIST_LIMIT: usize = 500;

/// `GET /api/v1/objects[?kind=app][&namespace=ns][&labelSelector=][&limit=][&continue=]`: the
/// objects with their status, of the namespaces the token sees, ordered by kind, namespace
/// and name, a page at a time. `continue` is given while more remain (the last item's
/// `kind/namespace/name`); pages are read from etcd each time, so an object created meanwhile
/// shows up on a later page if it sorts after the last one seen.
async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = allowed(&api, &headers, Action::Read, query.namespace.as_deref()).await?;
    let kind = query.kind.as_deref().map(kind_of).transpose()?;
    let selector = query
        .label_selector
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(crds::select::Selector::parse)
        .transpose()
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("labelSelector: {e}")))?;
    let sort = query
        .sort_by
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(crds::select::SortBy::parse)
        .transpose()
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("sortBy: {e}")))?;
    let place = query
        .after
        .as_deref()
        .map(|text| {
            Place::parse(text, sort.is_some()).ok_or_else(|| {
                Refusal(
                    StatusCode::BAD_REQUEST,
                    "continue: not a listing's place".into(),
                )
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(LIST_LIMIT).clamp(1, LIST_LIMIT);
    let (objects, revision) = api.ctx.store.list(kind).await?;
    let mut kept: Vec<(ObjectRef, serde_json::Value)> = objects
        .iter()
        .filter(|o| sees(&token, &o.metadata().namespace))
        .filter(|o| {
            query
                .namespace
                .as_deref()
                .is_none_or(|ns| o.metadata().namespace == ns)
        })
        .filter(|o| {
            selector
                .as_ref()
                .is_none_or(|s| s.matches(&o.metadata().labels))
        })
        .map(|o| (o.object_ref(), o.to_json()))
        .collect();
    // By the field asked for (ties, and objects without it, by kind, namespace and name), or
    // by kind, namespace and name.
    kept.sort_by(|(ra, a), (rb, b)| {
        sort.as_ref()
            .map_or(std::cmp::Ordering::Equal, |sort| sort.compare(a, b))
            .then_with(|| ra.cmp(rb))
    });
    let skip = match &place {
        None => 0,
        Some(Place::After(after)) => kept.partition_point(|(r, _)| r <= after),
        Some(Place::Offset(offset)) => (*offset).min(kept.len()),
    };
    let more = kept.len() > skip + limit;
    let page: Vec<(ObjectRef, serde_json::Value)> =
        kept.into_iter().skip(skip).take(limit).collect();
    let next = match (&sort, page.last()) {
        (_, None) => None,
        (Some(_), Some(_)) => Some(Place::Offset(skip + page.len()).to_string()),
        (None, Some((last, _))) => Some(continue_key(last)),
    };
    let mut answer = json!({
        "items": page.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
        "revision": revision,
    });
    if let Some(next) = next.filter(|_| more) {
        answer["continue"] = json!(next);
    }
    Ok(Json(answer))
}

/// Where a listing's next page starts: after an object (by kind, namespace and name), or, for
/// a listing sorted by a field, after so many items (such pages can shift when objects come or
/// go in between; the order by name cannot).
enum Place {
    After(ObjectRef),
    Offset(usize),
}

impl Place {
    fn parse(text: &str, sorted: bool) -> Option<Place> {
        if sorted {
            text.strip_prefix("offset:")?
                .parse()
                .ok()
                .map(Place::Offset)
        } else {
            from_continue_key(text).map(Place::After)
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::After(object) => f.write_str(&continue_key(object)),
            Place::Offset(offset) => write!(f, "offset:{offset}"),
        }
    }
}

/// A listing's place, the last item's `kind/namespace/name` (neither name holds a `/`).
pub fn continue_key(object: &ObjectRef) -> String {
    format!(
        "{}/{}/{}",
        object.kind.singular(),
        object.namespace,
        object.name
    )
}

pub fn from_continue_key(text: &str) -> Option<ObjectRef> {
    let mut parts = text.splitn(3, '/');
    let kind = Kind::from_cli_name(parts.next()?)?;
    Some(ObjectRef::new(kind, parts.next()?, parts.next()?))
}

/// `GET /api/v1/events/stream`: the runtime's event stream for a viewer; a one-namespace
/// token's stream is held to its namespace (asking for another is a 404, as for objects).
async fn events(
    State(api): State<Api>,
    Query(mut query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let asked = query.get("namespace").cloned().filter(|n| !n.is_empty());
    let token = match allowed(&api, &headers, Action::Read, asked.as_deref()).await {
        Ok(token) => token,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(scope) = token.namespace {
        query.insert("namespace".into(), scope);
    }
    crate::runtime::event_stream::events(State(api.ctx.clone()), Query(query), headers).await
}

/// `GET /api/v1/objects/{kind}/{namespace}/{name}`: one object with its status.
async fn one(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let (_, object) = named(&api, &headers, Action::Read, &path).await?;
    Ok(Json(stored(&api, &object).await?.to_json()))
}

/// `POST /api/v1/apply` (admin): a YAML or JSON stream of manifests, validated as `nomarch
/// apply` validates them (NomadJobs asked of Nomad too), every object in the token's reach, and
/// written in one all-or-nothing batch. Invalid input is 422 with each error's place
/// (`request:line:col: field: message`).
async fn apply(
    State(api): State<Api>,
    headers: HeaderMap,
    body: String,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = allowed(&api, &headers, Action::Write, None).await?;
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
    match crate::reconcile::nomadjob::check_manifests(&api.ctx.nomad, &manifests).await {
        Ok(()) => {}
        Err(crate::reconcile::nomadjob::CheckError::Invalid(errors)) => {
            return Err(invalid(errors))
        }
        Err(e @ crate::reconcile::nomadjob::CheckError::Nomad(_)) => {
            return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
    let resources: Vec<Resource> = manifests.into_iter().map(|m| m.resource).collect();
    let outcomes = api.ctx.store.apply(&resources).await?;
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
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<ActQuery>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let (token, object) = named(&api, &headers, Action::Write, &path).await?;
    delete_object(&api, &token, &object, query.resource_version.as_deref()).await
}

/// Deletes `object` for `token` (whose right to has been checked), comparing the caller's
/// `resource_version` when given.
pub async fn delete_object(
    api: &Api,
    token: &TokenRecord,
    object: &ObjectRef,
    resource_version: Option<&str>,
) -> Result<Json<serde_json::Value>, Refusal> {
    api.ctx.store.delete(object, resource_version).await?;
    tracing::info!(object = %object, token = %token.name, "API delete");
    Ok(Json(
        json!({"object": object.to_string(), "outcome": "deleted"}),
    ))
}

#[derive(Deserialize)]
struct ActQuery {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    /// `undo`: the generation whose spec to put back.
    generation: Option<i64>,
}

/// `POST /api/v1/objects/{kind}/{namespace}/{name}/{suspend|resume|reconcile}`: the same
/// annotations `nomarch suspend`, `resume` and `reconcile` write, check-and-set on the
/// object's revision (and the caller's `?resourceVersion=`, when given).
async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((kind, namespace, name, act)): Path<(String, String, String, String)>,
    Query(query): Query<ActQuery>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let (token, object) = named(&api, &headers, Action::Act, &(kind, namespace, name)).await?;
    let asked = Asked {
        resource_version: query.resource_version.as_deref(),
        generation: query.generation,
    };
    act_on(&api, &token, &object, &act, asked).await
}

#[derive(Deserialize, Default)]
pub struct LogsQuery {
    pub task: Option<String>,
    #[serde(default)]
    pub stderr: bool,
    pub tail: Option<usize>,
    /// A duration (`10m`, `1h`).
    pub since: Option<String>,
    /// An allocation ID or a prefix of one.
    pub instance: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub follow: bool,
}

/// Lines per instance the API answers when no `tail` is given.
pub const LOGS_TAIL: usize = 1000;

impl LogsQuery {
    pub fn args(&self) -> Result<crate::ops::logs::LogsArgs, Refusal> {
        use crate::ops::logs::{LogsArgs, Selection};
        let since = self
            .since
            .as_deref()
            .map(humantime::parse_duration)
            .transpose()
            .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("since: {e}")))?;
        Ok(LogsArgs {
            selection: match (&self.instance, self.all) {
                (Some(prefix), _) => Selection::One(prefix.clone()),
                (None, true) => Selection::All,
                (None, false) => Selection::Running,
            },
            follow: self.follow,
            since,
            tail: Some(self.tail.unwrap_or(LOGS_TAIL)),
            stderr: self.stderr,
            task: self.task.clone().filter(|t| !t.is_empty()),
        })
    }
}

fn logs_refusal(e: crate::ops::logs::LogsError) -> Refusal {
    use crate::ops::logs::LogsError;
    match e {
        LogsError::Usage(why) => Refusal(StatusCode::BAD_REQUEST, why),
        LogsError::NotFound(why) => Refusal(StatusCode::NOT_FOUND, why),
        LogsError::Nomad(e) => Refusal(StatusCode::BAD_GATEWAY, format!("Nomad: {e}")),
    }
}

/// One line as text: with its instance in front when several are read.
fn log_line(several: bool, instance: &str, line: &str) -> String {
    if several {
        format!("{} {line}\n", crate::ops::logs::short(instance))
    } else {
        format!("{line}\n")
    }
}

/// `GET …/logs`: the object's logs as `nomarch logs` prints them (without colour), followed
/// while the client keeps the answer open when `follow=true`.
async fn logs(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, Refusal> {
    let (_, object) = named(&api, &headers, Action::Read, &path).await?;
    let resource = stored(&api, &object).await?;
    let args = query.args()?;
    let read = crate::ops::logs::read(&api.ctx.nomad, &resource, &args)
        .await
        .map_err(logs_refusal)?;
    let several = read.several;
    let mut first = String::new();
    for (instance, line) in &read.lines {
        first.push_str(&log_line(several, instance, line));
    }
    let content_type = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; charset=utf-8",
    )];
    if !args.follow {
        return Ok((content_type, first).into_response());
    }
    // Followed until the client goes away: dropping the answer's body drops the receiver,
    // which ends the follow.
    let (sink, lines) = tokio::sync::mpsc::channel(256);
    let nomad = api.ctx.nomad.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::ops::logs::follow(&nomad, &resource, &args, read.offsets, sink).await
        {
            tracing::warn!(object = %resource.object_ref(), error = %e, "following logs ended");
        }
    });
    let rest = futures::stream::unfold(lines, move |mut lines| async move {
        let (instance, line) = lines.recv().await?;
        let chunk = bytes::Bytes::from(log_line(several, &instance, &line));
        Some((Ok::<_, std::convert::Infallible>(chunk), lines))
    });
    let first =
        futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(first))]);
    let stream = futures::StreamExt::chain(first, rest);
    Ok((content_type, axum::body::Body::from_stream(stream)).into_response())
}

/// `GET …/nomad`: what Nomad holds for the object: its job, the job's allocations and its
/// latest deployment, read from Nomad now.
async fn nomad_view(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let (_, object) = named(&api, &headers, Action::Read, &path).await?;
    stored(&api, &object).await?;
    let nomad = &api.ctx.nomad;
    let id = reconcilers::meta::job_id(&object);
    let namespace = &object.namespace;
    let refused = |e| nomad_refusal(&object, e);
    let job = nomad
        .job(namespace, &id, crate::clients::QueryOptions::default())
        .await
        .map_err(refused)?
        .value;
    let (allocations, deployment) = match &job {
        None => (Vec::new(), None),
        Some(_) => {
            let allocations = nomad
                .job_allocations(namespace, &id, crate::clients::QueryOptions::default())
                .await
                .map_err(refused)?
                .value;
            let deployment = nomad
                .job_deployments(namespace, &id)
                .await
                .map_err(refused)?
                .into_iter()
                .max_by_key(|d| d.job_version);
            (allocations, deployment)
        }
    };
    Ok(Json(json!({
        "object": object.to_string(),
        "job": job,
        "allocations": allocations,
        "deployment": deployment,
    })))
}

/// The object's diff against Nomad, as stored now.
pub async fn diff_of(api: &Api, object: &ObjectRef) -> Result<crate::ops::diff::Planned, Refusal> {
    let resource = stored(api, object).await?;
    crate::ops::diff::diff(
        &api.ctx.store,
        &api.ctx.nomad,
        resource.clone(),
        Some(&resource),
    )
    .await
    .map_err(|e| match e {
        crate::ops::diff::DiffError::Store(e) => e.into(),
        crate::ops::diff::DiffError::Nomad(e) => nomad_refusal(object, e),
        other => Refusal(StatusCode::BAD_GATEWAY, other.to_string()),
    })
}

/// `GET …/diff`: what the controller would change in Nomad now.
async fn diff(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let (_, object) = named(&api, &headers, Action::Read, &path).await?;
    let planned = diff_of(&api, &object).await?;
    let mut answer = serde_json::to_value(&planned).expect("plans serialize");
    answer["text"] = json!(planned.text());
    Ok(Json(answer))
}

/// What the caller said along with an act.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked<'a> {
    /// Compared with the object's before anything is done.
    pub resource_version: Option<&'a str>,
    /// `undo`: the generation to go back to (by default the one before the current).
    pub generation: Option<i64>,
}

/// `GET …/history`: the rows of `nomarch rollout history`.
async fn history(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let (_, object) = named(&api, &headers, Action::Read, &path).await?;
    let current = stored(&api, &object).await?;
    let rows = history_rows(&api, current).await?;
    Ok(Json(
        json!({"object": object.to_string(), "generations": rows}),
    ))
}

/// The history rows of an object (`current`, as read), oldest first.
pub async fn history_rows(
    api: &Api,
    current: Resource,
) -> Result<Vec<reconcilers::history::Row>, Refusal> {
    let mut generations = api.ctx.store.history(&current.object_ref()).await?;
    let status = current.status().cloned();
    generations.push(current);
    Ok(reconcilers::history::rows(&generations, status.as_ref()))
}

/// The acts an operator may take, by name (what [`act_on`] knows).
pub const ACTS: &[&str] = &[
    "suspend",
    "resume",
    "reconcile",
    "stop",
    "start",
    "retry",
    "promote",
    "restart",
    "undo",
    "run",
];

/// Carries out `act` on `object` for `token` (whose right to has been checked), after comparing
/// the caller's `resource_version` when given: a write of the object check-and-set on the
/// revision read (`suspend`, `resume`, `reconcile`: the CLI's annotations; `stop`, `start`:
/// `spec.stopped`; `retry`: the retry annotation), or a request to Nomad (`promote` the running
/// rollout, `run` a cron job now), or `undo` (a kept generation's spec, as a new generation).
/// Refusals are the CLI's, in its words.
pub async fn act_on(
    api: &Api,
    token: &TokenRecord,
    object: &ObjectRef,
    act: &str,
    asked: Asked<'_>,
) -> Result<Json<serde_json::Value>, Refusal> {
    let mut resource = stored(api, object).await?;
    if let Some(expected) = asked.resource_version {
        if resource.metadata().resource_version != expected {
            return Err(StoreError::Conflict {
                object: object.to_string(),
                expected: expected.to_string(),
            }
            .into());
        }
    }
    let refused = |why: String| Refusal(StatusCode::CONFLICT, why);
    let now = || Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match act {
        "suspend" => {
            let annotations = &mut resource.metadata_mut().annotations;
            annotations.insert(SUSPENDED.to_string(), "true".to_string());
        }
        "resume" => {
            resource.metadata_mut().annotations.remove(SUSPENDED);
        }
        "reconcile" if is_suspended(resource.metadata()) => {
            return Err(refused(format!("{object} is suspended: resume it first")))
        }
        "reconcile" => {
            let annotations = &mut resource.metadata_mut().annotations;
            annotations.insert(RECONCILE_REQUESTED.to_string(), now());
        }
        "stop" | "start" => {
            let source_suspended = source_suspended(api, &resource).await?;
            let changed =
                reconcilers::operator::set_stopped(&mut resource, act == "stop", source_suspended)
                    .map_err(refused)?;
            if !changed {
                return Ok(Json(json!({
                    "object": object.to_string(),
                    "action": act,
                    "outcome": "unchanged",
                })));
            }
        }
        "retry" => reconcilers::operator::ask_retry(&mut resource, &now()).map_err(refused)?,
        "undo" => {
            let kept = api.ctx.store.history(object).await?;
            resource = reconcilers::history::undo(&resource, &kept, asked.generation).map_err(
                |e| match e {
                    reconcilers::history::UndoRefusal::Refused(why) => refused(why),
                    reconcilers::history::UndoRefusal::NotKept(why) => {
                        Refusal(StatusCode::NOT_FOUND, why)
                    }
                },
            )?;
        }
        "promote" => return promote(api, &resource, token).await,
        "restart" => return restart(api, &resource, token).await,
        "run" => return run_now(&api.ctx, &resource, token).await,
        other => {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("no action {other:?} ({})", ACTS.join(", ")),
            ))
        }
    }
    resource.set_status(None);
    let outcome = api.ctx.store.apply(&[resource]).await?;
    tracing::info!(object = %object, act = %act, token = %token.name, "API act");
    Ok(Json(json!({
        "object": object.to_string(),
        "action": act,
        "outcome": outcome.first().map(|(_, o)| o.as_str()),
    })))
}

/// Whether the GitSource that owns `resource` (if any) is suspended (then its objects may be
/// stopped and started by hand until it resumes).
async fn source_suspended(api: &Api, resource: &Resource) -> Result<bool, Refusal> {
    let reconcilers::source_sync::Owner::Source(source) =
        reconcilers::source_sync::Owner::of(resource)
    else {
        return Ok(false);
    };
    Ok(api
        .ctx
        .store
        .get(&source)
        .await?
        .is_some_and(|s| is_suspended(s.metadata())))
}

/// Nomad's refusal of a request the API passed on: Nomad said no (409, in its words), or could
/// not be asked (502).
fn nomad_refusal(object: &ObjectRef, e: crate::clients::ApiError) -> Refusal {
    use crate::clients::ApiError;
    let status = match &e {
        ApiError::BadRequest { .. } | ApiError::Conflict(_) | ApiError::NotFound(_) => {
            StatusCode::CONFLICT
        }
        ApiError::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    Refusal(status, format!("{object}: Nomad: {e}"))
}

/// `promote` on an App or NomadJob: its running rollout's canaries or green set promoted, as
/// `nomarch rollout promote`.
async fn promote(
    api: &Api,
    resource: &Resource,
    token: &TokenRecord,
) -> Result<Json<serde_json::Value>, Refusal> {
    let object = resource.object_ref();
    if !matches!(object.kind, Kind::App | Kind::NomadJob) {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!("{object}: only apps and Nomad jobs roll out with canaries or blue/green"),
        ));
    }
    let job = reconcilers::meta::job_id(&object);
    let (deployment, reply) = api
        .ctx
        .nomad
        .promote_running(&object.namespace, &job)
        .await
        .map_err(|e| nomad_refusal(&object, e))?
        .ok_or_else(|| {
            Refusal(
                StatusCode::CONFLICT,
                format!("{object} has no rollout in progress"),
            )
        })?;
    tracing::info!(object = %object, token = %token.name, "API promote");
    Ok(Json(json!({
        "object": object.to_string(),
        "action": "promote",
        "deployment": deployment,
        "evaluation": reply.get("EvalID"),
    })))
}

/// How long a restart asked through the API may take (the CLI's default).
pub const RESTART_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// `restart`: every running instance restarted in place, in batches, as `nomarch rollout
/// restart` does; the batches are known (or the restart refused) before the answer, and the
/// restart goes on in the controller after it, each step recorded as the object's event
/// (`Restarting`, `InstanceRestarted`, `Restarted`, or a `RestartFailed` warning).
async fn restart(
    api: &Api,
    resource: &Resource,
    token: &TokenRecord,
) -> Result<Json<serde_json::Value>, Refusal> {
    use crate::ops::restart::{restart, RestartError, Step, Target};
    let object = resource.object_ref();
    // It writes to Nomad after the answer: only the leader may (a standby's writes would all
    // be refused, one event each).
    if !api.ctx.leadership.is_held() {
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "this controller is a standby: ask the leader".into(),
        ));
    }
    let refusal = |e: RestartError| match e {
        RestartError::Refused(why) | RestartError::Failed(why) | RestartError::Timeout(why) => {
            Refusal(StatusCode::CONFLICT, why)
        }
    };
    let target = Target::of(resource).map_err(refusal)?;
    let batches = target.plan(&api.ctx.nomad).await.map_err(refusal)?;
    let instances: usize = batches.iter().map(Vec::len).sum();
    tracing::info!(object = %object, token = %token.name, instances, "API restart");
    let ctx = api.ctx.clone();
    let answer = json!({
        "object": object.to_string(),
        "action": "restart",
        "instances": instances,
        "batches": batches.len(),
    });
    tokio::spawn(async move {
        let (sender, mut steps) = tokio::sync::mpsc::unbounded_channel::<Step>();
        let run = async {
            let done = restart(
                &ctx.nomad,
                &ctx.consul,
                &target,
                &batches,
                RESTART_TIMEOUT,
                |step| {
                    let _ = sender.send(step);
                },
            )
            .await;
            drop(sender);
            done
        };
        let record = async {
            while let Some(step) = steps.recv().await {
                let reason = match step {
                    Step::Started { .. } => "Restarting",
                    Step::Restarting { .. } => continue,
                    Step::Healthy { .. } => "InstanceRestarted",
                    Step::Done { .. } => "Restarted",
                };
                let text = step.text(&object).trim().to_string();
                ctx.event(&object, crate::store::EventType::Normal, reason, text)
                    .await;
            }
        };
        let (done, ()) = tokio::join!(run, record);
        if let Err(e) = done {
            ctx.event(
                &object,
                crate::store::EventType::Warning,
                "RestartFailed",
                e.to_string(),
            )
            .await;
        }
    });
    Ok(Json(answer))
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
        .map_err(|e| nomad_refusal(&object, e))?;
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

    /// A listing's place reads back as the object it names, and sorts as objects do (a
    /// namespace that is a prefix of another sorts first, as in `ObjectRef`'s order).
    #[test]
    fn continue_keys_round_trip_and_keep_the_order() {
        let a = ObjectRef::new(Kind::App, "a", "z");
        let b = ObjectRef::new(Kind::App, "a-x", "a");
        let c = ObjectRef::new(Kind::Pub, "a", "a");
        for object in [&a, &b, &c] {
            assert_eq!(
                from_continue_key(&continue_key(object)).as_ref(),
                Some(object)
            );
        }
        assert!(a < b && b < c);
        assert_eq!(from_continue_key("app/only-two"), None);
        assert_eq!(from_continue_key("sideways/a/b"), None);
    }

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
