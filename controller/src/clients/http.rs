//! The one HTTP stack both clients share: base address, token header, per-request deadlines
//! (longer for blocking queries), and the mapping from status codes to [`ApiError`].

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::secret::Secret;
use super::stats::ApiStats;

/// Deadline of a request that does not block.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time a blocking query gets beyond its `wait` (servers add jitter of wait/16).
const BLOCKING_SLACK: Duration = Duration::from_secs(30);

/// Options of a read: namespace, blocking-query index and wait, and other parameters.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    pub namespace: Option<String>,
    /// Answer only when the data's index passes this (0: at once).
    pub index: u64,
    pub wait: Option<Duration>,
    pub params: Vec<(String, String)>,
}

impl QueryOptions {
    pub fn namespace(namespace: &str) -> QueryOptions {
        QueryOptions {
            namespace: Some(namespace.to_string()),
            ..QueryOptions::default()
        }
    }

    /// Turns this read into a blocking query.
    pub fn blocking(mut self, index: u64, wait: Duration) -> QueryOptions {
        self.index = index;
        self.wait = Some(wait);
        self
    }

    pub fn param(mut self, key: &str, value: &str) -> QueryOptions {
        self.params.push((key.to_string(), value.to_string()));
        self
    }

    fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = self.params.clone();
        if let Some(ns) = &self.namespace {
            pairs.push(("namespace".into(), ns.clone()));
        }
        if self.index > 0 {
            pairs.push(("index".into(), self.index.to_string()));
            if let Some(wait) = self.wait {
                pairs.push(("wait".into(), format!("{}ms", wait.as_millis())));
            }
        }
        pairs
    }

    fn deadline(&self) -> Duration {
        match (self.index, self.wait) {
            (0, _) | (_, None) => REQUEST_TIMEOUT,
            // The server adds up to wait/16 of jitter; the slack covers a slow answer, and is
            // never longer than the wait itself, so a short wait also gives up soon.
            (_, Some(wait)) => wait + wait / 16 + BLOCKING_SLACK.min(wait),
        }
    }
}

/// A value and the index it was read at (`X-Nomad-Index` / `X-Consul-Index`).
#[derive(Clone, Debug, PartialEq)]
pub struct Indexed<T> {
    pub value: T,
    pub index: u64,
}

#[derive(Clone)]
pub struct HttpApi {
    pub api: &'static str,
    pub address: String,
    client: reqwest::Client,
    token: Option<Secret>,
    token_header: &'static str,
    index_header: &'static str,
    pub stats: ApiStats,
    /// Sent as `User-Agent`: `nomarch/<identity>`, so a server's logs say which controller wrote.
    pub user_agent: String,
    /// Asked before every write; a write it refuses never leaves this process (a controller
    /// that no longer leads must not write to Nomad).
    pub write_guard: Option<WriteGuard>,
}

/// Whether writes may go out now.
pub type WriteGuard = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// Installs rustls' ring provider once, before the first client is built.
fn tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
}

impl HttpApi {
    /// Speaks TLS with these files from now on (for `https://` addresses); no files, no change.
    pub fn use_tls(&mut self, files: &super::TlsFiles) -> Result<(), super::TlsError> {
        if files.is_empty() {
            return Ok(());
        }
        self.client =
            files
                .apply(client_builder())?
                .build()
                .map_err(|e| super::TlsError::File {
                    what: "TLS setup for",
                    path: self.address.clone(),
                    detail: e.to_string(),
                })?;
        Ok(())
    }

    pub fn new(
        api: &'static str,
        address: &str,
        token: Option<Secret>,
        token_header: &'static str,
        index_header: &'static str,
    ) -> HttpApi {
        tls_provider();
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let client = client_builder()
            .build()
            .expect("an HTTP client with default settings builds");
        HttpApi {
            api,
            address: address.trim_end_matches('/').to_string(),
            client,
            token,
            token_header,
            index_header,
            stats: ApiStats::default(),
            user_agent: "nomarch".to_string(),
            write_guard: None,
        }
    }

    pub fn request(&self, method: Method, path: &str, options: &QueryOptions) -> RequestBuilder {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address))
            .query(&options.to_pairs())
            .header(reqwest::header::USER_AGENT, &self.user_agent)
            .timeout(options.deadline());
        if let Some(token) = &self.token {
            request = request.header(self.token_header, token.expose());
        }
        request
    }

    /// Sends a request; any status other than 2xx becomes a classified error.
    pub async fn send(
        &self,
        request: RequestBuilder,
        is_write: bool,
    ) -> Result<Response, ApiError> {
        if is_write && self.write_guard.as_ref().is_some_and(|allowed| !allowed()) {
            return Err(ApiError::NotLeader);
        }
        let started = Instant::now();
        self.stats.requests.inc();
        if is_write {
            self.stats.writes.inc();
        }
        let result = self.send_inner(request).await;
        self.stats.latency.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.stats.errors.inc();
        }
        result
    }

    async fn send_inner(&self, request: RequestBuilder) -> Result<Response, ApiError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(answer_error(self.api, status, body.trim().to_string()))
    }

    fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::Timeout { api: self.api };
        }
        // The innermost cause says what happened ("Connection refused"); reqwest's own text
        // would repeat the URL, which is fine, but the cause is what a person acts on.
        let mut cause: &dyn std::error::Error = error;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ApiError::Unreachable {
            api: self.api,
            address: self.address.clone(),
            detail: cause.to_string(),
        }
    }

    /// The index header of a response (1 when absent, as clients must treat < 1).
    pub fn index_of(&self, response: &Response) -> u64 {
        response
            .headers()
            .get(self.index_header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(1)
    }

    pub async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T, ApiError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            api: self.api,
            detail: e.to_string(),
        })
    }

    /// GET with index: the decoded value and the index it was read at.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        options: &QueryOptions,
    ) -> Result<Indexed<T>, ApiError> {
        let response = self
            .send(self.request(Method::GET, path, options), false)
            .await?;
        let index = self.index_of(&response);
        Ok(Indexed {
            value: self.decode(response).await?,
            index,
        })
    }
}

/// The error a non-success answer stands for.
fn answer_error(api: &'static str, status: StatusCode, message: String) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::NotFound(message),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ApiError::Forbidden { api, message },
        StatusCode::BAD_REQUEST => ApiError::BadRequest { api, message },
        // Nomad answers a lost check-and-set with a 500 whose text says so; through a
        // follower or a client agent the text arrives wrapped ("rpc error: Enforcing ...").
        _ if message.contains("Enforcing job modify index") => ApiError::Conflict(message),
        _ => ApiError::Server {
            api,
            status: status.as_u16(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_check_and_set_is_a_conflict_however_it_was_forwarded() {
        for text in [
            "Enforcing job modify index 7: job exists with conflicting job modify index: 9",
            "rpc error: Enforcing job modify index 7: job exists with conflicting job modify index: 9",
        ] {
            let error = answer_error("nomad", StatusCode::INTERNAL_SERVER_ERROR, text.into());
            assert!(matches!(error, ApiError::Conflict(_)), "{text}: {error:?}");
        }
        let other = answer_error(
            "nomad",
            StatusCode::INTERNAL_SERVER_ERROR,
            "No cluster leader".into(),
        );
        assert!(
            matches!(other, ApiError::Server { status: 500, .. }),
            "{other:?}"
        );
    }

    #[test]
    fn a_blocking_query_is_given_up_after_its_wait_jitter_and_slack() {
        let plain = QueryOptions::default();
        assert_eq!(plain.deadline(), REQUEST_TIMEOUT);
        let first = QueryOptions::default().blocking(0, Duration::from_secs(300));
        assert_eq!(first.deadline(), REQUEST_TIMEOUT, "index 0 answers at once");
        let long = QueryOptions::default().blocking(7, Duration::from_secs(320));
        assert_eq!(long.deadline(), Duration::from_secs(320 + 20 + 30));
        let short = QueryOptions::default().blocking(7, Duration::from_secs(2));
        assert_eq!(short.deadline(), Duration::from_millis(2000 + 125 + 2000));
    }
}
