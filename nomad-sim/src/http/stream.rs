//! `GET /v1/event/stream`: NDJSON frames from the buffer (resuming at `index`, inclusive) and
//! then live, filtered by topic, key and namespace, with `{}` heartbeats.

use std::collections::HashSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::json;

use super::{Reply, Req};
use crate::cluster::{Frame, StreamEvent};
use crate::error::{ApiError, ApiResult};
use crate::Sim;

pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How often an open stream looks for injected faults (stalls, cuts).
const FAULT_CHECK: Duration = Duration::from_millis(200);

/// Topic filters: topic → keys (`*` for all).
struct Filter {
    topics: Vec<(String, String)>,
    namespaces: Option<HashSet<String>>,
}

impl Filter {
    /// Every (event, matching key) pair: an event matching two requested keys appears twice,
    /// as in Nomad.
    fn matches<'e>(&self, event: &'e StreamEvent) -> Vec<&'e StreamEvent> {
        if !event.namespace.is_empty() {
            if let Some(namespaces) = &self.namespaces {
                if !namespaces.contains(&event.namespace) {
                    return Vec::new();
                }
            }
        }
        let mut hits = Vec::new();
        for (topic, key) in &self.topics {
            let topic_ok = topic == "*" || topic == event.topic;
            if !topic_ok {
                continue;
            }
            // `Topic:*` is a wildcard only when it is that topic's sole key.
            let sole_key = self.topics.iter().filter(|(t, _)| t == topic).count() == 1;
            let key_ok = (key == "*" && sole_key)
                || key == &event.key
                || event
                    .filter_keys
                    .as_ref()
                    .is_some_and(|keys| keys.contains(key));
            if key_ok {
                hits.push(event);
            }
        }
        hits
    }

    fn frame_line(&self, frame: &Frame) -> Option<String> {
        let events: Vec<serde_json::Value> = frame
            .events
            .iter()
            .flat_map(|e| self.matches(e))
            .map(StreamEvent::to_json)
            .collect();
        if events.is_empty() {
            return None;
        }
        Some(format!(
            "{}\n",
            json!({"Index": frame.index, "Events": events})
        ))
    }
}

fn parse(sim: &Sim, req: &Req) -> ApiResult<(Filter, u64)> {
    let mut topics = Vec::new();
    for (name, value) in req.query_pairs.iter().filter(|(k, _)| k == "topic") {
        let _ = name;
        let parts: Vec<&str> = value.split(':').collect();
        match parts.as_slice() {
            [topic] => topics.push((topic.to_string(), "*".to_string())),
            [topic, key] => topics.push((topic.to_string(), key.to_string())),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid topic query: error parsing topics: Invalid key value pair for topic, topic: {value}"
                )))
            }
        }
    }
    if topics.is_empty() {
        topics.push(("*".into(), "*".into()));
    }
    let index = match req.param("index") {
        None | Some("") => 0,
        Some(text) => text
            .parse::<u64>()
            .map_err(|e| ApiError::bad_request(format!("Unable to parse index: {e}")))?,
    };
    let namespace = req.namespace();
    let namespaces = if namespace == "*" {
        Some(sim.read(|c| c.namespaces.keys().cloned().collect()))
    } else {
        Some(HashSet::from([namespace]))
    };
    Ok((Filter { topics, namespaces }, index))
}

pub fn handle(sim: &Sim, req: &Req) -> ApiResult<Reply> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let (filter, start) = parse(sim, req)?;
    // Subscribe before reading the buffer, so no commit falls between the two.
    let mut live = sim.frames();
    let backlog: Vec<Frame> = sim.read(|c| {
        let newest = c.buffer.back().map_or(0, |f| f.index);
        // Past the newest commit, the newest frame is still sent; before the oldest, the stream
        // silently starts at the oldest (a gap), as Nomad's buffer does.
        let from = if start > newest { newest } else { start };
        c.buffer
            .iter()
            .filter(|f| f.index >= from)
            .cloned()
            .collect()
    });
    let last_backlog = backlog.last().map_or(0, |f| f.index);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let sim = sim.clone();
    tokio::spawn(async move {
        let cuts_at_start = sim.read(|c| c.chaos.stream_cuts);
        if sim.read(|c| c.chaos.stall_streams) {
            return stall(&sender).await;
        }
        if sender.send(Ok("{}\n".into())).await.is_err() {
            return;
        }
        for frame in &backlog {
            if let Some(line) = filter.frame_line(frame) {
                if sender.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let mut faults = tokio::time::interval(FAULT_CHECK);
        loop {
            tokio::select! {
                _ = faults.tick() => {
                    let (stalled, cuts) = sim.read(|c| (c.chaos.stall_streams, c.chaos.stream_cuts));
                    if stalled {
                        return stall(&sender).await;
                    }
                    if cuts != cuts_at_start {
                        // Half a frame, then the connection ends.
                        let _ = sender.send(Ok("{\"Index\":".into())).await;
                        return;
                    }
                }
                frame = live.recv() => match frame {
                    Ok(frame) if frame.index <= last_backlog => {}
                    Ok(frame) => {
                        if let Some(line) = filter.frame_line(&frame) {
                            if sender.send(Ok(line)).await.is_err() { return; }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let _ = sender.send(Ok("event dropped from buffer".into())).await;
                        return;
                    }
                    Err(_) => {
                        let _ = sender.send(Ok("subscription closed by server, client should resubscribe".into())).await;
                        return;
                    }
                },
                _ = heartbeat.tick() => {
                    if sender.send(Ok("{}\n".into())).await.is_err() { return; }
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(receiver));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(Reply::Stream(response))
}

/// A stalled stream (`PUT /_sim/chaos {"stall_streams": true}`): the connection stays open and
/// never carries another byte, not even a heartbeat, until the client hangs up. What a
/// half-dead connection through a proxy looks like to a client.
async fn stall(sender: &tokio::sync::mpsc::Sender<Result<String, std::io::Error>>) {
    sender.closed().await;
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}
