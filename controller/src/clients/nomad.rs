//! Nomad's HTTP API: jobs (check-and-set registers, plans, stops), allocations, nodes and the
//! event stream. Every read takes [`QueryOptions`] and returns the index it was read at.

use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use super::error::ApiError;
use super::http::{HttpApi, Indexed, QueryOptions};
use super::nomad_types::{
    AllocStub, Deployment, EventFrame, Job, JobStub, NamespaceStub, NodeStub, PlanResponse,
    RegisterResponse, Slim, SlimList,
};
use super::secret::Secret;

pub const DEFAULT_ADDR: &str = "http://127.0.0.1:4646";

#[derive(Clone)]
pub struct NomadClient {
    pub http: HttpApi,
    /// An event stream that carries nothing, not even a heartbeat (Nomad sends one every
    /// 30 s), for this long is dead: a half-open connection would otherwise hang it forever.
    pub stream_idle_limit: Duration,
}

/// Two and a half of Nomad's 30 s heartbeat periods.
pub const STREAM_IDLE_LIMIT: Duration = Duration::from_secs(75);

/// One path segment, percent-escaped (job IDs and variable paths may hold any character).
fn escape_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Job IDs may contain `/` (periodic children); the path segment must be escaped.
fn job_path(id: &str, suffix: &str) -> String {
    format!("/v1/job/{}{suffix}", escape_segment(id))
}

impl NomadClient {
    pub fn new(address: &str, token: Option<Secret>) -> NomadClient {
        NomadClient {
            http: HttpApi::new("nomad", address, token, "X-Nomad-Token", "X-Nomad-Index"),
            stream_idle_limit: STREAM_IDLE_LIMIT,
        }
    }

    /// `NOMAD_ADDR` and `NOMAD_TOKEN`, as the Nomad CLI reads them.
    pub fn from_env() -> NomadClient {
        let address = std::env::var("NOMAD_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_string());
        NomadClient::new(&address, Secret::from_env("NOMAD_TOKEN"))
    }

    /// The job, or `None` when Nomad has no such job (with the index to block on its creation).
    pub async fn job(
        &self,
        namespace: &str,
        id: &str,
        options: QueryOptions,
    ) -> Result<Indexed<Option<Job>>, ApiError> {
        let options = QueryOptions {
            namespace: Some(namespace.to_string()),
            ..options
        };
        let response = self
            .http
            .send(
                self.http.request(Method::GET, &job_path(id, ""), &options),
                false,
            )
            .await;
        match response {
            Ok(response) => {
                let index = self.http.index_of(&response);
                Ok(Indexed {
                    value: Some(self.http.decode(response).await?),
                    index,
                })
            }
            Err(ApiError::NotFound(_)) => Ok(Indexed {
                value: None,
                index: options.index,
            }),
            Err(e) => Err(e),
        }
    }

    pub async fn jobs(&self, options: QueryOptions) -> Result<Indexed<Vec<JobStub>>, ApiError> {
        self.http.get("/v1/jobs", &options).await
    }

    /// Registers a job. With `enforce_index`, only if the job's `JobModifyIndex` is still that
    /// (0: only if it does not exist); otherwise [`ApiError::Conflict`].
    pub async fn register(
        &self,
        job: &Job,
        enforce_index: Option<u64>,
    ) -> Result<RegisterResponse, ApiError> {
        let namespace = job.namespace.clone().unwrap_or_else(|| "default".into());
        let mut body = json!({"Job": job});
        if let Some(index) = enforce_index {
            body["EnforceIndex"] = json!(true);
            body["JobModifyIndex"] = json!(index);
        }
        let request = self
            .http
            .request(
                Method::PUT,
                &job_path(&job.id, ""),
                &QueryOptions::namespace(&namespace),
            )
            .json(&body);
        let response = self.http.send(request, true).await?;
        self.http.decode(response).await
    }

    /// Stops a job (or purges it). Stopping a missing job succeeds, as in Nomad.
    pub async fn deregister(
        &self,
        namespace: &str,
        id: &str,
        purge: bool,
    ) -> Result<Value, ApiError> {
        let mut options = QueryOptions::namespace(namespace);
        if purge {
            options = options.param("purge", "true");
        }
        let response = self
            .http
            .send(
                self.http
                    .request(Method::DELETE, &job_path(id, ""), &options),
                true,
            )
            .await?;
        self.http.decode(response).await
    }

    /// A dry run with Nomad's own diff.
    pub async fn plan(&self, job: &Job) -> Result<PlanResponse, ApiError> {
        let namespace = job.namespace.clone().unwrap_or_else(|| "default".into());
        let request = self
            .http
            .request(
                Method::PUT,
                &job_path(&job.id, "/plan"),
                &QueryOptions::namespace(&namespace),
            )
            .json(&json!({"Job": job, "Diff": true}));
        let response = self.http.send(request, false).await?;
        self.http.decode(response).await
    }

    /// HCL read by Nomad itself (`PUT /v1/jobs/parse`): the API job, with unset fields as Nomad
    /// leaves them (not canonicalized: registering fills them). A jobspec Nomad cannot read is
    /// [`ApiError::BadRequest`] with its diagnostics.
    pub async fn parse_hcl(&self, namespace: &str, hcl: &str) -> Result<Value, ApiError> {
        let request = self
            .http
            .request(
                Method::PUT,
                "/v1/jobs/parse",
                &QueryOptions::namespace(namespace),
            )
            .json(&json!({"JobHCL": hcl, "Canonicalize": false}));
        // Parsing writes nothing: it is not a write for the write guard.
        let response = self.http.send(request, false).await?;
        self.http.decode(response).await
    }

    /// What Nomad's admission validators say of a job (`PUT /v1/validate/job`): each error's
    /// text, none when Nomad would accept it.
    pub async fn validate_job(&self, job: &Value) -> Result<Vec<String>, ApiError> {
        let namespace = job
            .get("Namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let request = self
            .http
            .request(
                Method::PUT,
                "/v1/validate/job",
                &QueryOptions::namespace(&namespace),
            )
            .json(&json!({"Job": job}));
        let response = self.http.send(request, false).await?;
        let answer: Value = self.http.decode(response).await?;
        Ok(answer
            .get("ValidationErrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(String::from))
            .collect())
    }

    /// A job's deployments, newest first.
    pub async fn job_deployments(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Vec<Deployment>, ApiError> {
        let options = QueryOptions::namespace(namespace);
        Ok(self
            .http
            .get(&job_path(id, "/deployments"), &options)
            .await?
            .value)
    }

    /// A job's latest deployment (`GET /v1/job/:id/deployment`), `None` when it has none.
    pub async fn latest_deployment(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Deployment>, ApiError> {
        let options = QueryOptions::namespace(namespace);
        Ok(self
            .http
            .get(&job_path(id, "/deployment"), &options)
            .await?
            .value)
    }

    /// One deployment (`GET /v1/deployment/:id`), `None` once Nomad garbage-collected it.
    pub async fn deployment(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Deployment>, ApiError> {
        let options = QueryOptions::namespace(namespace);
        match self
            .http
            .get(&format!("/v1/deployment/{id}"), &options)
            .await
        {
            Ok(found) => Ok(Some(found.value)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn job_allocations(
        &self,
        namespace: &str,
        id: &str,
        options: QueryOptions,
    ) -> Result<Indexed<Vec<AllocStub>>, ApiError> {
        let options = QueryOptions {
            namespace: Some(namespace.to_string()),
            ..options
        };
        self.http.get(&job_path(id, "/allocations"), &options).await
    }

    /// Every allocation, slimmed as it is read (see [`SlimList`]).
    pub async fn allocations(
        &self,
        options: QueryOptions,
    ) -> Result<Indexed<Vec<AllocStub>>, ApiError> {
        self.list_slim("/v1/allocations", &options).await
    }

    /// Every job stub, slimmed as it is read (ID, namespace, status, meta; no summary).
    pub async fn jobs_slim(
        &self,
        options: QueryOptions,
    ) -> Result<Indexed<Vec<JobStub>>, ApiError> {
        self.list_slim("/v1/jobs", &options).await
    }

    async fn list_slim<T: serde::de::DeserializeOwned + Slim>(
        &self,
        path: &str,
        options: &QueryOptions,
    ) -> Result<Indexed<Vec<T>>, ApiError> {
        let listed: Indexed<SlimList<T>> = self.http.get(path, options).await?;
        Ok(Indexed {
            value: listed.value.0,
            index: listed.index,
        })
    }

    /// One item of a Nomad variable, as a [`Secret`]; `None` when the variable or the item
    /// does not exist. nomarch reads its own credentials (git, webhooks) this way.
    pub async fn variable_item(
        &self,
        namespace: &str,
        path: &str,
        item: &str,
    ) -> Result<Option<Secret>, ApiError> {
        let escaped: Vec<String> = path.split('/').map(escape_segment).collect();
        let response: Result<Indexed<Value>, ApiError> = self
            .http
            .get(
                &format!("/v1/var/{}", escaped.join("/")),
                &QueryOptions::namespace(namespace),
            )
            .await;
        match response {
            Ok(found) => Ok(found
                .value
                .get("Items")
                .and_then(|items| items.get(item))
                .and_then(Value::as_str)
                .map(Secret::new)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops one allocation; Nomad places a replacement.
    pub async fn stop_allocation(&self, id: &str) -> Result<Value, ApiError> {
        let path = format!("/v1/allocation/{id}/stop");
        let response = self
            .http
            .send(
                self.http
                    .request(Method::PUT, &path, &QueryOptions::default()),
                true,
            )
            .await?;
        self.http.decode(response).await
    }

    /// Restarts an allocation's running tasks in place (`nomarch rollout restart`), as
    /// `nomad alloc restart` does: `PUT /v1/client/allocation/:id/restart`.
    pub async fn restart_allocation(&self, namespace: &str, id: &str) -> Result<(), ApiError> {
        let path = format!("/v1/client/allocation/{id}/restart");
        let response = self
            .http
            .send(
                self.http
                    .request(Method::PUT, &path, &QueryOptions::namespace(namespace))
                    .json(&serde_json::json!({})),
                true,
            )
            .await?;
        let _: Value = self.http.decode(response).await?;
        Ok(())
    }

    /// The namespaces the token may see (a blocking query when asked).
    pub async fn namespaces(
        &self,
        options: QueryOptions,
    ) -> Result<Indexed<Vec<NamespaceStub>>, ApiError> {
        self.http.get("/v1/namespaces", &options).await
    }

    pub async fn nodes(&self, options: QueryOptions) -> Result<Indexed<Vec<NodeStub>>, ApiError> {
        self.http.get("/v1/nodes", &options).await
    }

    /// A node's meta (the node list has none).
    pub async fn node_meta(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        let node: Value = self
            .http
            .get(&format!("/v1/node/{id}"), &QueryOptions::default())
            .await?
            .value;
        Ok(node
            .get("Meta")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default())
    }

    /// Marks a node eligible or not for new work.
    pub async fn set_eligibility(&self, id: &str, eligible: bool) -> Result<Value, ApiError> {
        let body =
            json!({"NodeID": id, "Eligibility": if eligible { "eligible" } else { "ineligible" }});
        let request = self
            .http
            .request(
                Method::PUT,
                &format!("/v1/node/{id}/eligibility"),
                &QueryOptions::default(),
            )
            .json(&body);
        let response = self.http.send(request, true).await?;
        self.http.decode(response).await
    }

    /// Promotes every group of a deployment waiting on canaries (`nomarch rollout promote`).
    /// Nomad refuses while a canary is not healthy, and says which group.
    /// Promotes the job's running deployment of the newest version (`nomarch rollout promote`
    /// and the API's): its ID and Nomad's answer, or `None` when no rollout is running.
    pub async fn promote_running(
        &self,
        namespace: &str,
        job: &str,
    ) -> Result<Option<(String, Value)>, ApiError> {
        let deployments = self.job_deployments(namespace, job).await?;
        let Some(running) = deployments
            .iter()
            .filter(|d| d.status == "running")
            .max_by_key(|d| d.job_version)
        else {
            return Ok(None);
        };
        let reply = self.promote_deployment(namespace, &running.id).await?;
        Ok(Some((running.id.clone(), reply)))
    }

    pub async fn promote_deployment(&self, namespace: &str, id: &str) -> Result<Value, ApiError> {
        let body = json!({"DeploymentID": id, "All": true});
        let request = self
            .http
            .request(
                Method::PUT,
                &format!("/v1/deployment/promote/{id}"),
                &QueryOptions::namespace(namespace),
            )
            .json(&body);
        let response = self.http.send(request, true).await?;
        self.http.decode(response).await
    }

    pub async fn periodic_force(&self, namespace: &str, id: &str) -> Result<Value, ApiError> {
        let request = self.http.request(
            Method::PUT,
            &job_path(id, "/periodic/force"),
            &QueryOptions::namespace(namespace),
        );
        let response = self.http.send(request, true).await?;
        self.http.decode(response).await
    }

    /// Subscribes to the event stream from `index` (inclusive, as Nomad replays the frame at
    /// that index). Heartbeats are skipped; the stream ends when the server closes it, with an
    /// error item if it said why.
    pub async fn event_stream(
        &self,
        topics: &[&str],
        namespace: &str,
        index: u64,
    ) -> Result<futures::stream::BoxStream<'static, Result<EventFrame, ApiError>>, ApiError> {
        let mut options = QueryOptions::namespace(namespace).param("index", &index.to_string());
        for topic in topics {
            options = options.param("topic", topic);
        }
        // The stream lives until it is dropped; only the connection has a deadline.
        let request = self
            .http
            .request(Method::GET, "/v1/event/stream", &options)
            .timeout(std::time::Duration::from_secs(365 * 86400));
        let response = self.http.send(request, false).await?;
        let api = self.http.api;
        let bytes = response.bytes_stream();
        Ok(ndjson_frames(bytes, api, self.stream_idle_limit).boxed())
    }
}

/// Splits an NDJSON byte stream into frames. A trailing line that is not JSON is Nomad telling
/// why it ended the stream.
fn ndjson_frames(
    bytes: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
    api: &'static str,
    idle_limit: Duration,
) -> impl Stream<Item = Result<EventFrame, ApiError>> + Send + 'static {
    let state = (Box::pin(bytes), Vec::<u8>::new(), false);
    futures::stream::unfold(state, move |(mut bytes, mut buffer, mut done)| async move {
        loop {
            if done {
                return None;
            }
            if let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=newline).collect();
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_str::<EventFrame>(&text) {
                    Ok(frame) if frame.events.is_empty() => continue,
                    Ok(frame) => return Some((Ok(frame), (bytes, buffer, done))),
                    Err(_) => {
                        done = true;
                        let error = ApiError::Server {
                            api,
                            status: 200,
                            message: text,
                        };
                        return Some((Err(error), (bytes, buffer, done)));
                    }
                }
            }
            let Ok(next) = tokio::time::timeout(idle_limit, bytes.next()).await else {
                done = true;
                let error = ApiError::Unreachable {
                    api,
                    address: String::new(),
                    detail: format!(
                        "event stream silent for {}s (no frame, no heartbeat)",
                        idle_limit.as_secs()
                    ),
                };
                return Some((Err(error), (bytes, buffer, done)));
            };
            match next {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    done = true;
                    let error = ApiError::Unreachable {
                        api,
                        address: String::new(),
                        detail: e.to_string(),
                    };
                    return Some((Err(error), (bytes, buffer, done)));
                }
                None => {
                    // A final line without a newline: Nomad's reason for closing.
                    let rest = String::from_utf8_lossy(&buffer).trim().to_string();
                    buffer.clear();
                    done = true;
                    if rest.is_empty() || rest == "{}" {
                        return None;
                    }
                    let error = ApiError::Server {
                        api,
                        status: 200,
                        message: rest,
                    };
                    return Some((Err(error), (bytes, buffer, done)));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_with_slashes_are_escaped() {
        assert_eq!(
            job_path("backup/periodic-1700000000", "/summary"),
            "/v1/job/backup%2Fperiodic-1700000000/summary"
        );
        assert_eq!(job_path("web", ""), "/v1/job/web");
    }

    #[tokio::test]
    async fn ndjson_skips_heartbeats_and_reports_the_closing_reason() {
        let chunks: Vec<reqwest::Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(b"{}\n{\"Index\":5,\"Events\":[{\"Topic\":\"Job\",\"Type\":\"JobRegistered\",\"Key\":\"web\",")),
            Ok(bytes::Bytes::from_static(b"\"Namespace\":\"default\",\"FilterKeys\":null,\"Index\":5,\"Payload\":{}}]}\n")),
            Ok(bytes::Bytes::from_static(b"subscription closed by server, client should resubscribe")),
        ];
        let frames: Vec<_> =
            ndjson_frames(futures::stream::iter(chunks), "nomad", STREAM_IDLE_LIMIT)
                .collect()
                .await;
        assert_eq!(frames.len(), 2);
        let first = frames[0].as_ref().unwrap();
        assert_eq!((first.index, first.events[0].key.as_str()), (5, "web"));
        let closing = frames[1].as_ref().unwrap_err();
        assert!(
            closing.to_string().contains("client should resubscribe"),
            "{closing}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_ends_after_the_idle_limit() {
        let heartbeat = futures::stream::iter([Ok(bytes::Bytes::from_static(b"{}\n"))]);
        let silence = futures::stream::pending::<reqwest::Result<bytes::Bytes>>();
        let limit = Duration::from_secs(75);
        let started = tokio::time::Instant::now();
        let frames: Vec<_> = ndjson_frames(heartbeat.chain(silence), "nomad", limit)
            .collect()
            .await;
        assert_eq!(started.elapsed(), limit);
        assert_eq!(frames.len(), 1);
        let error = frames[0].as_ref().unwrap_err();
        assert!(
            error.is_transient() && error.to_string().contains("silent for 75s"),
            "{error}"
        );
    }
}
