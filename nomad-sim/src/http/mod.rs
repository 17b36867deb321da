//! The simulator's HTTP APIs. Nomad's routing (job IDs may contain `/`, so sub-paths are
//! recognised by suffix, as Nomad's own router does), blocking queries, ACLs and injected
//! faults live here; the handlers call into the cluster.

mod admin;
mod consul;
mod logs;
mod nomad;
mod stream;
mod variables;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use super::cluster::{Cluster, TableIndex};
use super::error::{ApiError, ApiResult};
use super::Sim;

/// The longest a blocking query waits, as Nomad's code clamps it.
pub const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);
pub const DEFAULT_BLOCKING_WAIT: Duration = Duration::from_secs(300);

pub fn nomad_router(sim: Sim) -> Router {
    Router::new().fallback(nomad_entry).with_state(sim)
}

pub fn consul_router(sim: Sim) -> Router {
    Router::new().fallback(consul_entry).with_state(sim)
}

/// A request, decoded once.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    /// Repeated parameters (`topic=...&topic=...`), in order.
    pub query_pairs: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    fn new(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Req {
        let path = percent_decode(uri.path());
        let query_pairs: Vec<(String, String)> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (
                    percent_decode(&k.replace('+', " ")),
                    percent_decode(&v.replace('+', " ")),
                )
            })
            .collect();
        let query = query_pairs.iter().cloned().collect();
        Req {
            method,
            path,
            query,
            query_pairs,
            headers,
            body,
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query flag: present with no value, `true` or `1`.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("" | "true" | "1"))
    }

    pub fn namespace(&self) -> String {
        self.namespace_str().to_string()
    }

    /// The namespace asked for, borrowed: list filters compare it once per object.
    pub fn namespace_str(&self) -> &str {
        self.param("namespace")
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
    }

    pub fn is_write(&self) -> bool {
        self.method == Method::PUT || self.method == Method::POST
    }

    /// The JSON body; Nomad's "Request body is empty" when there is none.
    pub fn json(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("Request body is empty"));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    pub fn token(&self, header: &str) -> Option<String> {
        let direct = self
            .headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        let bearer = self
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("Bearer "))
            .map(|v| v.trim().to_string());
        direct.filter(|t| !t.is_empty()).or(bearer)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a handler answers.
pub enum Reply {
    Json {
        status: u16,
        body: Value,
        index: Option<u64>,
    },
    /// An error that still carries index headers (a blocking read of a missing object).
    Text {
        status: u16,
        message: String,
        index: u64,
    },
    Stream(Response),
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply::Json {
            status: 200,
            body,
            index: None,
        }
    }

    pub fn indexed(body: Value, index: u64) -> Reply {
        Reply::Json {
            status: 200,
            body,
            index: Some(index),
        }
    }
}

/// Which header family a reply carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Nomad,
    Consul,
}

fn text(status: u16, message: &str, index: Option<u64>, api: Api) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        message.to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(index) = index {
        add_index_headers(response.headers_mut(), index, api);
    }
    response
}

fn add_index_headers(headers: &mut HeaderMap, index: u64, api: Api) {
    let value = HeaderValue::from_str(&index.max(1).to_string()).expect("digits");
    match api {
        Api::Nomad => {
            headers.insert("x-nomad-index", value);
            headers.insert("x-nomad-knownleader", HeaderValue::from_static("true"));
            headers.insert("x-nomad-lastcontact", HeaderValue::from_static("0"));
        }
        Api::Consul => {
            headers.insert("x-consul-index", value);
            headers.insert("x-consul-knownleader", HeaderValue::from_static("true"));
            headers.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
            headers.insert(
                "x-consul-effective-consistency",
                HeaderValue::from_static("leader"),
            );
        }
    }
}

fn render(result: ApiResult<Reply>, pretty: bool, api: Api) -> Response {
    match result {
        Ok(Reply::Json {
            status,
            body,
            index,
        }) => {
            let text = if pretty {
                serde_json::to_string_pretty(&body)
            } else {
                serde_json::to_string(&body)
            }
            .expect("JSON renders");
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            if let Some(index) = index {
                add_index_headers(response.headers_mut(), index, api);
            }
            response
        }
        Ok(Reply::Text {
            status,
            message,
            index,
        }) => text(status, &message, Some(index), api),
        Ok(Reply::Stream(response)) => response,
        Err(error) => text(error.status, &error.message, None, api),
    }
}

/// Injected latency, errors and outages of one API, applied before any real work. Both APIs
/// answer an outage as their servers without a leader do: 500 "No cluster leader" (Nomad's
/// `structs.ErrNoLeader`, and Consul's).
async fn chaos(sim: &Sim, api: Api) -> Option<ApiError> {
    let chaos = sim.read(|c| match api {
        Api::Nomad => c.chaos,
        Api::Consul => c.consul_chaos,
    });
    if chaos.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(chaos.latency_ms)).await;
    }
    if chaos
        .unavailable_until
        .is_some_and(|until| Instant::now() < until)
    {
        return Some(ApiError::internal("No cluster leader"));
    }
    if chaos.error_rate > 0.0 && rand::random::<f64>() < chaos.error_rate {
        return Some(ApiError::internal(
            "rpc error: simulated failure (nomad-sim chaos)",
        ));
    }
    None
}

async fn nomad_entry(
    State(sim): State<Sim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req::new(method, &uri, headers, body);
    let pretty = req.query.contains_key("pretty");
    if req.path.starts_with("/_sim/") {
        return render(admin::handle(&sim, &req).await, true, Api::Nomad);
    }
    if let Some(error) = chaos(&sim, Api::Nomad).await {
        return text(error.status, &error.message, None, Api::Nomad);
    }
    // The status endpoints (leader, peers) answer without a token, as Nomad's do.
    let open_to_anyone = req.path.starts_with("/v1/status/");
    if let Some(expected) = sim
        .read(|c| c.config.acl_token.clone())
        .filter(|_| !open_to_anyone)
    {
        match req.token("x-nomad-token") {
            None => return text(403, "Permission denied", None, Api::Nomad),
            Some(token) if token != expected => {
                return text(403, "ACL token not found", None, Api::Nomad)
            }
            Some(_) => {}
        }
    }
    let result = nomad::handle(&sim, &req).await;
    // A plan, a parse and a validation are PUTs that change nothing: not writes.
    let dry_run = req.path.ends_with("/plan")
        || req.path == "/v1/jobs/parse"
        || req.path == "/v1/validate/job";
    if (req.is_write() || req.method == Method::DELETE) && !dry_run {
        if let Ok(Reply::Json { status: 200, .. }) = &result {
            let job_id = nomad::job_id_of(&req.path).or_else(|| {
                let body: Value = serde_json::from_slice(&req.body).ok()?;
                body.get("Job")?.get("ID")?.as_str().map(String::from)
            });
            let agent = req
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            sim.write(|c| c.record_write(req.method.as_str(), &req.path, job_id, agent));
        }
    }
    render(result, pretty, Api::Nomad)
}

async fn consul_entry(
    State(sim): State<Sim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req::new(method, &uri, headers, body);
    let pretty = req.query.contains_key("pretty");
    if let Some(error) = chaos(&sim, Api::Consul).await {
        return text(error.status, &error.message, None, Api::Consul);
    }
    if let Some(expected) = sim.read(|c| c.config.acl_token.clone()) {
        if req.token("x-consul-token").as_deref() != Some(expected.as_str()) {
            return text(403, "Permission denied", None, Api::Consul);
        }
    }
    render(consul::handle(&sim, &req).await, pretty, Api::Consul)
}

/// Runs a read as a blocking query: answers at once without `index`, otherwise when the result's
/// index passes it or `wait` runs out (then with the unchanged data, status 200).
///
/// For answers about one object, whose index comes out of the same lookup; lists use
/// [`blocking_table`], which does not render anything until the answer is due.
pub async fn blocking<F>(sim: &Sim, req: &Req, compute: F) -> ApiResult<Reply>
where
    F: Fn(&Cluster) -> (ApiResult<Value>, u64),
{
    block_until_due(sim, req, |c| compute(c).1, &compute).await
}

/// A blocking query over a whole table, whose index is the table's last change. Every commit
/// wakes every waiting query, and rendering 1,000 nodes or 20,000 allocations on each wake only
/// to find the table unchanged made the simulator's own CPU the bottleneck of a cold start.
pub async fn blocking_table<F>(
    sim: &Sim,
    req: &Req,
    pick: fn(&TableIndex) -> u64,
    render: F,
) -> ApiResult<Reply>
where
    F: Fn(&Cluster) -> ApiResult<Value>,
{
    block_until_due(
        sim,
        req,
        |c| table(c, pick),
        |c| (render(c), table(c, pick)),
    )
    .await
}

/// The loop behind both: `probe` is the cheap index read on every wake, `compute` the answer,
/// built only once the query is due (and under the same read lock as its index).
async fn block_until_due<P, F>(sim: &Sim, req: &Req, probe: P, compute: F) -> ApiResult<Reply>
where
    P: Fn(&Cluster) -> u64,
    F: Fn(&Cluster) -> (ApiResult<Value>, u64),
{
    let min_index: u64 = match req.param("index") {
        None | Some("") => 0,
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request("Invalid index"))?,
    };
    let wait = match req.param("wait") {
        None | Some("") => DEFAULT_BLOCKING_WAIT,
        Some(text) => crate::clock::parse_go_duration(text)
            .ok_or_else(|| ApiError::bad_request("Invalid wait time"))?,
    };
    let wait = wait.min(MAX_BLOCKING_WAIT);
    let jitter = wait.div_f64(16.0).mul_f64(rand::random::<f64>());
    let deadline = tokio::time::Instant::now() + wait + jitter;
    if min_index > 0 && sim.read(|c| c.chaos.hang_blocking) {
        // Injected: a blocking query that never answers; it ends when the client hangs up.
        std::future::pending::<()>().await;
    }
    let mut changes = sim.changes();
    loop {
        changes.borrow_and_update();
        let due = min_index == 0
            || tokio::time::Instant::now() >= deadline
            || sim.read(|c| probe(c)) > min_index;
        if due {
            let (result, index) = sim.read(|c| compute(c));
            return match result {
                Ok(body) => Ok(Reply::indexed(body, index)),
                Err(error) => Ok(Reply::Text {
                    status: error.status,
                    message: error.message,
                    index,
                }),
            };
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The index a list answer carries: the table's last change.
pub fn table(cluster: &Cluster, pick: fn(&TableIndex) -> u64) -> u64 {
    pick(&cluster.tables).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(
            percent_decode("/v1/job/batch%2Fperiodic-1"),
            "/v1/job/batch/periodic-1"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
