//! `GET /api/v1/events/stream`: events as Server-Sent Events. Each SSE `id` is the etcd
//! revision the event was written at, so a client that reconnects with `Last-Event-ID` gets
//! exactly what it missed (events still alive), and nothing twice. Without `Last-Event-ID` the
//! stream starts with every live event, oldest first. `?kind=&namespace=&name=&type=` filter.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream;
use tokio::sync::mpsc;

use super::context::Context;
use crate::store::{decode_event, EventFilter, RawItem, Store, WatchEvent};

pub async fn events(
    State(ctx): State<Arc<Context>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let filter = match EventFilter::parse(
        param("kind"),
        param("namespace"),
        param("name"),
        param("type"),
    ) {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let last_seen = match headers.get("last-event-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(id)) => match id.trim().parse::<i64>() {
            Ok(id) if id >= 0 => Some(id),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID must be an event id\n",
                )
                    .into_response()
            }
        },
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                "Last-Event-ID must be an event id\n",
            )
                .into_response()
        }
    };
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(feed(ctx.store.clone(), filter, last_seen, sender));
    let events = stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Sends the events after `last_seen` (or all live ones), then follows the watch, until the
/// client goes away.
async fn feed(
    store: Store,
    filter: EventFilter,
    last_seen: Option<i64>,
    sender: mpsc::Sender<SseEvent>,
) {
    let prefix = store.keys().events();
    let mut sent_up_to = last_seen.unwrap_or(0);
    let start = match last_seen {
        Some(id) => id + 1,
        None => match store.list_raw(&prefix).await {
            Ok((items, revision)) => {
                if !send_items(&sender, &filter, items, &mut sent_up_to).await {
                    return;
                }
                revision + 1
            }
            Err(e) => {
                let _ = sender
                    .send(SseEvent::default().event("error").data(e.to_string()))
                    .await;
                return;
            }
        },
    };
    let mut watch = store.watch_prefix(prefix, start);
    while let Some(item) = watch.recv().await {
        let delivered = match item {
            Ok(WatchEvent::Put(item)) => {
                send_items(&sender, &filter, vec![item], &mut sent_up_to).await
            }
            // Compacted past the client's id: what is still alive and newer than it.
            Ok(WatchEvent::Relisted { items, .. }) => {
                send_items(&sender, &filter, items, &mut sent_up_to).await
            }
            // Expiry, and connection trouble the watch retries by itself.
            Ok(WatchEvent::Delete { .. }) | Err(_) => !sender.is_closed(),
        };
        if !delivered {
            return;
        }
    }
}

/// Sends the matching items newer than `sent_up_to`, oldest first; false once the client is
/// gone.
async fn send_items(
    sender: &mpsc::Sender<SseEvent>,
    filter: &EventFilter,
    mut items: Vec<RawItem>,
    sent_up_to: &mut i64,
) -> bool {
    let after = *sent_up_to;
    items.retain(|i| i.mod_revision > after);
    items.sort_by_key(|i| i.mod_revision);
    for item in items {
        *sent_up_to = item.mod_revision;
        let Some(event) = decode_event(&item.value).filter(|e| filter.matches(e)) else {
            continue;
        };
        let data = serde_json::to_string(&event).expect("events serialize");
        let sse = SseEvent::default()
            .id(item.mod_revision.to_string())
            .event("event")
            .data(data);
        if sender.send(sse).await.is_err() {
            return false;
        }
    }
    !sender.is_closed()
}
