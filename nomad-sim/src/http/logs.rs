//! `GET /v1/client/fs/logs/:alloc_id`: a task's log, as Nomad streams it. The parameters and
//! their errors follow command/agent/fs_endpoint.go `Logs`; the checks on the allocation and
//! task, client/fs_endpoint.go `logs`; the reading, `logsImpl` and `streamFile`. Frames are
//! `StreamFrame`s (client/lib/streamframer): `{"Offset", "Data" (base64), "File"}` with empty
//! fields left out, encoded back to back with no separator (the JSON codec adds none), at most
//! 64 KiB of data each (`streamFrameSize`); new data is batched for 200 ms
//! (`streamBatchWindow`); a follow that has nothing to send sends `{}` every second
//! (`streamHeartbeatRate`). With `plain=true` the data alone. Following a task that stopped
//! keeps the connection open on heartbeats: the file may still grow (a restart), and Nomad does
//! not end the stream when the task dies.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{Reply, Req};
use crate::error::{ApiError, ApiResult};
use crate::logs::{content, file_name, start_at, LogType};
use crate::Sim;

const FRAME_SIZE: usize = 64 * 1024;
const BATCH_WINDOW: Duration = Duration::from_millis(200);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

struct LogsRequest {
    alloc_id: String,
    task: String,
    log_type: LogType,
    follow: bool,
    plain: bool,
    offset: i64,
    origin_end: bool,
}

/// command/agent/fs_endpoint.go `Logs`, in its order of checks.
fn parse(req: &Req, alloc_id: &str) -> ApiResult<LogsRequest> {
    if alloc_id.is_empty() {
        return Err(ApiError::bad_request("must provide a valid alloc id"));
    }
    let task = req.param("task").unwrap_or_default();
    if task.is_empty() {
        return Err(ApiError::bad_request("must provide task name"));
    }
    let flag = |name: &str| -> ApiResult<bool> {
        match req.param(name).filter(|v| !v.is_empty()) {
            None => Ok(false),
            Some(text) => parse_bool(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "failed to parse {name} field to boolean: strconv.ParseBool: parsing {text:?}: invalid syntax"
                ))
            }),
        }
    };
    let follow = flag("follow")?;
    let plain = flag("plain")?;
    let log_type = req
        .param("type")
        .and_then(LogType::parse)
        .ok_or_else(|| ApiError::bad_request("must provide log type (stdout/stderr)"))?;
    let offset = match req.param("offset").filter(|v| !v.is_empty()) {
        None => 0,
        Some(text) => text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "error parsing offset: strconv.ParseInt: parsing {text:?}: invalid syntax"
            ))
        })?,
    };
    let origin_end = match req.param("origin").unwrap_or_default() {
        "" | "start" => false,
        "end" => true,
        _ => return Err(ApiError::bad_request("origin must be start or end")),
    };
    Ok(LogsRequest {
        alloc_id: alloc_id.to_string(),
        task: task.to_string(),
        log_type,
        follow,
        plain,
        offset,
        origin_end,
    })
}

/// The task's log file now, or why it cannot be read (client/fs_endpoint.go `logs`).
fn read(sim: &Sim, request: &LogsRequest) -> ApiResult<String> {
    sim.read(|c| {
        let alloc = c.allocs.get(&request.alloc_id).ok_or_else(|| {
            ApiError::not_found(format!("Unknown allocation {:?}", request.alloc_id))
        })?;
        let state = alloc.tasks.get(&request.task).ok_or_else(|| {
            ApiError::bad_request(format!("unknown task name {:?}", request.task))
        })?;
        if state.runs.is_empty() {
            return Err(ApiError::not_found(format!(
                "task {:?} not started yet. No logs available",
                request.task
            )));
        }
        let image = alloc
            .group_spec()
            .and_then(|g| g.get("Tasks"))
            .and_then(Value::as_array)
            .and_then(|tasks| {
                tasks
                    .iter()
                    .find(|t| t.get("Name").and_then(Value::as_str) == Some(&request.task))
            })
            .and_then(|t| t.pointer("/Config/image"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(content(
            &request.task,
            image,
            &state.runs,
            request.log_type,
            c.clock.now(),
        ))
    })
}

/// One `StreamFrame` of `data`, which ends at `end` in the file (`streamFile` counts the
/// offset past what it read before it sends).
fn frame(request: &LogsRequest, data: &[u8], end: usize) -> Bytes {
    if request.plain {
        return Bytes::copy_from_slice(data);
    }
    let mut frame = Map::new();
    if end > 0 {
        frame.insert("Offset".into(), json!(end));
    }
    frame.insert(
        "Data".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(data)),
    );
    frame.insert(
        "File".into(),
        json!(file_name(&request.task, request.log_type)),
    );
    Bytes::from(Value::Object(frame).to_string())
}

/// The frames for the bytes of `text` from `from` on.
fn frames_from(request: &LogsRequest, text: &str, from: usize) -> Vec<Bytes> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = from;
    while at < bytes.len() {
        let end = (at + FRAME_SIZE).min(bytes.len());
        out.push(frame(request, &bytes[at..end], end));
        at = end;
    }
    out
}

pub fn handle(sim: &Sim, req: &Req, alloc_id: &str) -> ApiResult<Reply> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let request = parse(req, alloc_id)?;
    let text = read(sim, &request)?;
    let plain = request.plain;
    let from = start_at(text.len(), request.origin_end, request.offset);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    let sim = sim.clone();
    tokio::spawn(async move {
        for frame in frames_from(&request, &text, from) {
            if sender.send(Ok(frame)).await.is_err() {
                return;
            }
        }
        if !request.follow {
            return;
        }
        let mut sent = text.len().max(from);
        let mut batch = tokio::time::interval(BATCH_WINDOW);
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            batch.tick().await;
            // The allocation was garbage-collected: nothing more will come.
            let Ok(now) = read(&sim, &request) else {
                return;
            };
            if now.len() > sent {
                for frame in frames_from(&request, &now, sent) {
                    if sender.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                sent = now.len();
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= HEARTBEAT_EVERY {
                let heartbeat = if request.plain {
                    Bytes::new()
                } else {
                    Bytes::from_static(b"{}")
                };
                if sender.send(Ok(heartbeat)).await.is_err() {
                    return;
                }
                quiet_since = tokio::time::Instant::now();
            }
        }
    });
    let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = StatusCode::OK;
    let content_type = if plain {
        "text/plain"
    } else {
        "application/json"
    };
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    Ok(Reply::Stream(response))
}
