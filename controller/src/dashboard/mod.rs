//! The web dashboard at `/`, served by the controller itself: server-rendered HTML (`maud`)
//! with one small script that follows the event stream and refreshes the page's content in
//! place. Signing in with a token opens a session ([`crate::api::session`]); every read and act
//! goes through the API's access rules ([`crate::api::access`]) with the session's token, so the
//! dashboard can do nothing the token could not do through the API.
//!
//! # Layout
//! - [`summary`]: health per object (a rule table), the overview's counts, list filters, hubs'
//!   free room. Pure.
//! - [`pages`]: the pages as HTML. Pure.
//! - `fuzz`: what must hold for any bytes a client sends (the `api` fuzz target, its corpus).
//! - this file: the routes, sign-in and sign-out, the session and CSRF checks, the security
//!   headers, and the embedded assets (`assets/`).
//!
//! Safety: the session cookie is `HttpOnly` and `SameSite=Strict`; every form carries the
//! session's CSRF secret and every POST's `Origin`, when sent, must be this host; the
//! Content-Security-Policy allows scripts and styles from this origin only (nothing inline);
//! pages are not cached and cannot be framed; tokens never appear in a URL or a log.

#[doc(hidden)]
pub mod fuzz;
pub mod pages;
pub mod summary;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use crds::{Kind, ObjectRef, Resource};
use maud::Markup;
use serde::Deserialize;

use crate::api::access::{sees, Action};
use crate::api::session::{self, Session};
use crate::api::{act_on, delete_object, kind_of, permit, Api, Refusal};
use crate::runtime::context::Context;
use crate::store::{Role, TokenRecord};
use pages::{Offer, Row, Viewer};
use summary::{Filter, Overview, PlacedPub};

/// Rows on one list page.
pub const PAGE_SIZE: usize = 100;
/// Events shown on an object's page before live ones arrive.
const EVENTS_SHOWN: usize = 20;

const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// Scripts and styles from this origin only, nothing inline, no frames, forms back here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes and the API's, with their state.
pub fn routes(ctx: Arc<Context>) -> Router<Arc<Context>> {
    let api = Api::new(ctx);
    let dashboard = Router::new()
        .route("/", get(overview))
        .route("/login", get(sign_in_page).post(sign_in))
        .route("/logout", post(sign_out))
        .route("/ui/hubs", get(hubs))
        .route("/ui/{kind}", get(list))
        .route("/ui/{kind}/{namespace}/{name}", get(object))
        .route("/ui/{kind}/{namespace}/{name}/logs", get(logs))
        .route("/ui/{kind}/{namespace}/{name}/diff", get(diff))
        .route("/ui/{kind}/{namespace}/{name}/confirm/{act}", get(confirm))
        .route("/ui/{kind}/{namespace}/{name}/act", post(act))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style))
        .layer(middleware::from_fn(security_headers))
        .with_state(api.clone());
    crate::api::routes(api).merge(dashboard)
}

async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        // Not `no-referrer`: with it a browser sends `Origin: null` on its own forms.
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// What a dashboard handler answers when it does not render its page.
enum Refused {
    /// Not signed in (or the session's token is gone): to the sign-in page.
    SignIn,
    Page(StatusCode, Markup),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn => Redirect::to("/login").into_response(),
            Refused::Page(status, page) => (status, page).into_response(),
        }
    }
}

/// The signed-in caller: the session and the token it was opened with, still valid.
struct SignedIn {
    session: Session,
    token: TokenRecord,
}

impl SignedIn {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            token: &self.token,
            csrf: &self.session.csrf,
        }
    }

    fn refused(&self, refusal: Refusal) -> Refused {
        let title = refusal.0.canonical_reason().unwrap_or("Refused");
        Refused::Page(
            refusal.0,
            pages::problem(Some(&self.viewer()), title, &refusal.1),
        )
    }

    /// What the API's rules say of this token doing `action` in `namespace`.
    fn may(&self, action: Action, namespace: Option<&str>) -> Result<(), Refused> {
        permit(Some(&self.token), action, namespace).map_err(|r| self.refused(r))
    }
}

async fn signed_in(api: &Api, headers: &HeaderMap) -> Result<SignedIn, Refused> {
    let session = session::cookie(headers)
        .and_then(|id| api.sessions.get(&id, Utc::now()))
        .ok_or(Refused::SignIn)?;
    let token = api
        .ctx
        .store
        .token_by_hash(&session.token_sha256)
        .await
        .map_err(|e| {
            Refused::Page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::problem(None, "Unavailable", &e.to_string()),
            )
        })?
        .filter(|t| !t.is_expired(Utc::now()))
        .ok_or(Refused::SignIn)?;
    Ok(SignedIn { session, token })
}

/// A POST from another site must not act for a signed-in browser: `Origin`, which browsers
/// send on every POST, must name this host. (`SameSite=Strict` keeps the cookie off such
/// requests too; this covers sign-in, which has no cookie yet.)
fn same_origin(headers: &HeaderMap) -> Result<(), Refused> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok());
    if origin_allowed(text(header::ORIGIN), text(header::HOST), forwarded) {
        return Ok(());
    }
    Err(Refused::Page(
        StatusCode::FORBIDDEN,
        pages::problem(None, "Forbidden", "this request came from another site"),
    ))
}

/// Whether a POST's `Origin` is this dashboard's: absent (not a browser's cross-site form), or
/// naming the `Host` asked for, or the `X-Forwarded-Host` a reverse proxy says the browser
/// asked for (a page elsewhere cannot set that header on a form; a script's request with it
/// needs a CORS answer the dashboard never gives). `null` (a sandboxed or privacy-stripped
/// origin) is not this dashboard's.
fn origin_allowed(origin: Option<&str>, host: Option<&str>, forwarded: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    [host, forwarded]
        .into_iter()
        .flatten()
        .any(|asked| asked.eq_ignore_ascii_case(origin_host))
}

async fn sign_in_page() -> Markup {
    pages::sign_in(None)
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(
    State(api): State<Api>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, Refused> {
    same_origin(&headers)?;
    let unknown = || {
        Refused::Page(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some("That token is unknown, revoked or expired.")),
        )
    };
    let token = api
        .ctx
        .store
        .token_by_secret(form.token.trim())
        .await
        .map_err(|e| {
            Refused::Page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::sign_in(Some(&format!("Cannot check tokens now: {e}"))),
            )
        })?
        .filter(|t| !t.is_expired(Utc::now()))
        .ok_or_else(unknown)?;
    let id = api.sessions.open(&token.secret_sha256, Utc::now());
    tracing::info!(token = %token.name, "dashboard sign-in");
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes() == b"https");
    let cookie = session::set_cookie(&id, secure);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(api): State<Api>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refused> {
    same_origin(&headers)?;
    if let Some(id) = session::cookie(&headers) {
        // Only the page's own form may end the session (no logout by a link elsewhere).
        if api
            .sessions
            .get(&id, Utc::now())
            .is_some_and(|s| s.csrf_matches(&form.csrf))
        {
            api.sessions.close(&id);
        }
    }
    Ok((
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/login"),
    )
        .into_response())
}

async fn overview(State(api): State<Api>, headers: HeaderMap) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    caller.may(Action::Read, None)?;
    let mut overview = Overview::default();
    for kind in Kind::ALL {
        api.ctx.cache.for_each_of_kind(kind, |resource, status| {
            if sees(&caller.token, &resource.metadata().namespace) {
                overview.add(resource, status);
            }
        });
    }
    Ok(pages::overview(&caller.viewer(), &overview.finish()))
}

fn kind_page(caller: &SignedIn, name: &str) -> Result<Kind, Refused> {
    kind_of(name).map_err(|r| caller.refused(r))
}

async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    caller.may(Action::Read, None)?;
    let kind = kind_page(&caller, &kind)?;
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let (search, labels, health) = (param("q"), param("l"), param("health"));
    let (filter, error) = match Filter::parse(search, labels, health) {
        Ok(filter) => (filter, None),
        Err(e) => (Filter::default(), Some(e)),
    };
    let mut rows = Vec::new();
    api.ctx.cache.for_each_of_kind(kind, |resource, status| {
        if !sees(&caller.token, &resource.metadata().namespace) {
            return;
        }
        let verdict = summary::health(resource, status);
        if filter.keeps(resource, &verdict) {
            rows.push((resource.object_ref(), verdict));
        }
    });
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let matched = rows.len();
    let pages_count = matched.div_ceil(PAGE_SIZE).max(1);
    let page: usize = param("page").parse().unwrap_or(1).clamp(1, pages_count);
    // Only the shown page's objects are copied out of the cache.
    let shown: Vec<Row> = rows
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .filter_map(|(object, verdict)| {
            let resource = api.ctx.cache.get(&object)?;
            let status = resource.status().cloned();
            Some(Row {
                resource,
                status,
                verdict,
            })
        })
        .collect();
    Ok(pages::list(
        &caller.viewer(),
        &pages::ListPage {
            kind,
            rows: &shown,
            matched,
            page,
            pages: pages_count,
            search,
            labels,
            health,
            error: error.as_deref(),
            now: Utc::now(),
        },
    ))
}

/// The object the path names, if the caller may read it (a namespace it does not see is a
/// 404, as in the API).
async fn readable(
    api: &Api,
    caller: &SignedIn,
    (kind, namespace, name): &(String, String, String),
) -> Result<Resource, Refused> {
    caller.may(Action::Read, Some(namespace))?;
    let object = ObjectRef::new(kind_page(caller, kind)?, namespace, name);
    api.ctx.cache.get(&object).ok_or_else(|| {
        caller.refused(Refusal(
            StatusCode::NOT_FOUND,
            format!("{object} in {namespace}: not found"),
        ))
    })
}

async fn object(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    let resource = readable(&api, &caller, &path).await?;
    let object = resource.object_ref();
    let verdict = summary::health(&resource, resource.status());
    let allocations = match resource.kind() {
        Kind::GitSource => None,
        _ => Some(
            api.ctx
                .allocs
                .of_job(&object.namespace, &reconcilers::meta::job_id(&object))
                .unwrap_or_default(),
        ),
    };
    let events = match api.ctx.store.list_events_of(&object).await {
        Ok(events) => {
            let skip = events.len().saturating_sub(EVENTS_SHOWN);
            events.into_iter().skip(skip).collect()
        }
        Err(_) => Vec::new(),
    };
    // The cached object, as the rest of the page (no second read of it).
    let history = crate::api::history_rows(&api, resource.clone())
        .await
        .unwrap_or_default();
    let mut spec = resource.clone();
    spec.set_status(None);
    let spec_yaml = serde_saphyr::to_string(&spec).unwrap_or_default();
    let status_yaml = resource
        .status()
        .map(|s| serde_saphyr::to_string(s).unwrap_or_default())
        .unwrap_or_default();
    let done = query.get("done").and_then(|act| done_text(act));
    Ok(pages::object(
        &caller.viewer(),
        &pages::ObjectPage {
            resource: &resource,
            verdict: &verdict,
            allocations: allocations.as_deref(),
            events: &events,
            history: &history,
            spec_yaml: &spec_yaml,
            status_yaml: &status_yaml,
            done,
            now: Utc::now(),
        },
    ))
}

async fn diff(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    let resource = readable(&api, &caller, &path).await?;
    let object = resource.object_ref();
    let planned = crate::api::diff_of(&api, &object)
        .await
        .map_err(|r| caller.refused(r))?;
    Ok(pages::diff(&caller.viewer(), &object, &planned))
}

/// Lines per instance an object's logs page starts with.
const LOG_LINES: usize = 200;

async fn logs(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    let resource = readable(&api, &caller, &path).await?;
    let object = resource.object_ref();
    let task = query
        .get("task")
        .filter(|t| !t.is_empty())
        .cloned()
        .or_else(|| {
            crate::ops::logs::default_task(object.kind)
                .ok()
                .map(String::from)
        })
        .unwrap_or_default();
    let stderr = query.get("stderr").is_some_and(|v| v == "true");
    // The API's reading of the same query: the running instances, the last lines of each.
    let args = crate::api::LogsQuery {
        task: Some(task.clone()),
        stderr,
        tail: Some(LOG_LINES),
        ..Default::default()
    }
    .args()
    .map_err(|r| caller.refused(r))?;
    let read = crate::ops::logs::read(&api.ctx.nomad, &resource, &args).await;
    let (lines, several, error) = match &read {
        Ok(read) => (read.lines.as_slice(), read.several, None),
        Err(e) => (&[][..], false, Some(e.to_string())),
    };
    Ok(pages::logs(
        &caller.viewer(),
        &pages::LogsPage {
            object: &object,
            task: &task,
            stderr,
            lines,
            several,
            error: error.as_deref(),
        },
    ))
}

/// What the object page says once after an act (the act's name arrives in the redirect).
fn done_text(act: &str) -> Option<&'static str> {
    Some(match act {
        "reconcile" => "Asked the controller to reconcile it now.",
        "suspend" => "Suspended.",
        "resume" => "Resumed.",
        "run" => "Launched once now.",
        "stop" => "Stopping.",
        "start" => "Starting.",
        "retry" => "Retry asked for.",
        "promote" => "Promoted.",
        "restart" => "Restart started: each step arrives as an event below.",
        "undo" => "Rolled back: the kept spec is applied as a new generation.",
        _ => return None,
    })
}

/// The offer named `act` for this object, if this caller may take it.
fn offer_for(
    caller: &SignedIn,
    resource: &Resource,
    act: &str,
    generation: Option<i64>,
) -> Result<Offer, Refused> {
    let offer = pages::offers(resource)
        .into_iter()
        .chain((act == "undo").then(|| pages::undo_offer(resource, generation)))
        .find(|o| o.act == act)
        .ok_or_else(|| {
            caller.refused(Refusal(
                StatusCode::CONFLICT,
                format!("{act} does not apply to {} now", resource.object_ref()),
            ))
        })?;
    let action = match offer.needs {
        Role::Admin => Action::Write,
        _ => Action::Act,
    };
    caller.may(action, Some(&resource.metadata().namespace))?;
    Ok(offer)
}

async fn confirm(
    State(api): State<Api>,
    headers: HeaderMap,
    Path((kind, namespace, name, act)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    let resource = readable(&api, &caller, &(kind, namespace, name)).await?;
    let generation = query.get("generation").and_then(|g| g.parse().ok());
    let offer = offer_for(&caller, &resource, &act, generation)?;
    Ok(pages::confirm(
        &caller.viewer(),
        &resource,
        &offer,
        generation,
    ))
}

#[derive(Deserialize)]
struct ActForm {
    #[serde(default)]
    csrf: String,
    act: String,
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
    /// `undo`: the generation to go back to.
    #[serde(default)]
    generation: Option<i64>,
}

async fn act(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Form(form): Form<ActForm>,
) -> Result<Response, Refused> {
    same_origin(&headers)?;
    let caller = signed_in(&api, &headers).await?;
    if !caller.session.csrf_matches(&form.csrf) {
        return Err(caller.refused(Refusal(
            StatusCode::FORBIDDEN,
            "the form's CSRF secret does not match this session: reload the page".into(),
        )));
    }
    let resource = readable(&api, &caller, &path).await?;
    let offer = offer_for(&caller, &resource, &form.act, form.generation)?;
    let object = resource.object_ref();
    let version = Some(form.resource_version.as_str()).filter(|v| !v.is_empty());
    let done = match offer.act {
        "delete" => delete_object(&api, &caller.token, &object, version).await,
        act => {
            let asked = crate::api::Asked {
                resource_version: version,
                generation: form.generation,
            };
            act_on(&api, &caller.token, &object, act, asked).await
        }
    };
    let _answer = done.map_err(|refusal| caller.refused(refusal))?;
    let to = match offer.act {
        "delete" => format!("/ui/{}", object.kind.singular()),
        act => format!("{}?done={act}", pages::object_path(&object)),
    };
    Ok(Redirect::to(&to).into_response())
}

async fn hubs(State(api): State<Api>, headers: HeaderMap) -> Result<Markup, Refused> {
    let caller = signed_in(&api, &headers).await?;
    // Hubs are the cluster's: a one-namespace token does not see them (it sees its pubs).
    if !caller.viewer().sees_all() {
        return Err(caller.refused(Refusal(StatusCode::NOT_FOUND, "not found".into())));
    }
    caller.may(Action::Read, None)?;
    let nodes = api.ctx.nodes.get();
    let hubs = nodes.as_ref().map(|n| n.hubs.clone()).unwrap_or_default();
    let mut placed = Vec::new();
    api.ctx
        .cache
        .for_each_of_kind(Kind::Pub, |resource, status| {
            let (Resource::Pub(pub_), Some(hub)) =
                (resource, status.and_then(|s| s.hub.hub.as_ref()))
            else {
                return;
            };
            placed.push(PlacedPub {
                object: resource.object_ref(),
                hub_id: hub.id.clone(),
                need: (
                    u64::from(pub_.spec.resources.cpu),
                    u64::from(pub_.spec.resources.memory),
                ),
            });
        });
    let rows = summary::hub_rows(&hubs, &placed);
    Ok(pages::hubs(&caller.viewer(), &rows, hubs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_must_come_from_this_dashboard() {
        let here = Some("127.0.0.1:9430");
        assert!(
            origin_allowed(None, here, None),
            "no Origin: not a browser's cross-site form"
        );
        assert!(origin_allowed(Some("http://127.0.0.1:9430"), here, None));
        assert!(!origin_allowed(Some("http://evil.example"), here, None));
        assert!(!origin_allowed(Some("null"), here, None));
        assert!(!origin_allowed(Some("http://127.0.0.1:9430"), None, None));
        // Behind a proxy: the browser asked the proxy's name.
        let proxied = Some("nomarch.example.org");
        assert!(origin_allowed(
            Some("https://nomarch.example.org"),
            here,
            proxied
        ));
        assert!(!origin_allowed(Some("https://evil.example"), here, proxied));
    }
}
