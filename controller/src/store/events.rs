//! Events: what happened to an object, for people. The same (object, type, reason, message)
//! recorded again bumps `count` and `lastTimestamp` instead of adding a row. Events expire
//! [`EVENT_TTL`] after they were last written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crds::ObjectRef;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{Result, Store, StoreError, EVENT_TTL};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    pub object: ObjectRef,
    pub message: String,
    pub count: u32,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
    /// Who reported it: `cli` or a controller's identity.
    pub source: String,
}

/// Which events a reader wants; an unset field matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kind: Option<crds::Kind>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub type_: Option<EventType>,
    /// Only events seen at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// From what people type (`--kind app --type warning`, `?kind=app&type=Warning`).
    pub fn parse(
        kind: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
        type_: Option<&str>,
    ) -> std::result::Result<EventFilter, String> {
        let kind = kind
            .map(|k| {
                crds::Kind::from_cli_name(k).ok_or_else(|| {
                    format!("unknown kind `{k}`; use app, pub, cronjob or gitsource")
                })
            })
            .transpose()?;
        let type_ = type_
            .map(|t| match t.to_ascii_lowercase().as_str() {
                "normal" => Ok(EventType::Normal),
                "warning" => Ok(EventType::Warning),
                _ => Err(format!("unknown event type `{t}`; use Normal or Warning")),
            })
            .transpose()?;
        Ok(EventFilter {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            type_,
            since: None,
        })
    }

    pub fn matches(&self, event: &Event) -> bool {
        self.kind.is_none_or(|k| k == event.object.kind)
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == event.object.namespace)
            && self.name.as_ref().is_none_or(|n| *n == event.object.name)
            && self.type_.is_none_or(|t| t == event.type_)
            && self.since.is_none_or(|t| event.last_timestamp >= t)
    }
}

/// What a caller reports; the store adds count and times.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub type_: EventType,
    pub reason: String,
    pub object: ObjectRef,
    pub message: String,
    pub source: String,
}

impl NewEvent {
    /// Same object, type, reason and message: the same event, counted.
    fn dedup_id(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            format!("{:?}", self.type_),
            self.reason.clone(),
            self.message.clone(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One lease shared by the events written within a minute of each other, so a busy controller
/// does not grant a lease per event.
#[derive(Clone, Default)]
pub(super) struct LeaseCache(Arc<Mutex<Option<(i64, Instant)>>>);

const LEASE_REUSE: Duration = Duration::from_secs(60);
const EVENT_ATTEMPTS: usize = 5;

impl Store {
    /// Records an event, folding it into an identical earlier one.
    pub async fn record_event(&self, new: NewEvent) -> Result<Event> {
        let key = self.keys.event(&new.object, &new.dedup_id());
        for _ in 0..EVENT_ATTEMPTS {
            let existing = self.kv_get(key.clone(), None).await?;
            let now = Utc::now();
            let (event, compare) = match existing.kvs().first() {
                Some(found) => {
                    let mut event: Event =
                        serde_json::from_slice(found.value()).map_err(|e| StoreError::Corrupt {
                            key: key.clone(),
                            detail: e.to_string(),
                        })?;
                    event.count = event.count.saturating_add(1);
                    event.last_timestamp = now;
                    event.source = new.source.clone();
                    (
                        event,
                        Compare::mod_revision(key.clone(), CompareOp::Equal, found.mod_revision()),
                    )
                }
                None => {
                    let event = Event {
                        type_: new.type_,
                        reason: new.reason.clone(),
                        object: new.object.clone(),
                        message: new.message.clone(),
                        count: 1,
                        first_timestamp: now,
                        last_timestamp: now,
                        source: new.source.clone(),
                    };
                    (
                        event,
                        Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                    )
                }
            };
            let lease = self.event_lease().await?;
            let put = TxnOp::put(
                key.clone(),
                serde_json::to_vec(&event).expect("events serialize"),
                Some(PutOptions::new().with_lease(lease)),
            );
            if self
                .kv_txn(Txn::new().when(self.fenced(vec![compare])).and_then([put]))
                .await?
                .succeeded()
            {
                return Ok(event);
            }
            if self.lost_fence().await {
                return Err(StoreError::Fenced);
            }
        }
        Err(StoreError::Conflict {
            object: new.object.to_string(),
            expected: "(event kept changing)".into(),
        })
    }

    /// Every live event, oldest first.
    pub async fn list_events(&self) -> Result<(Vec<Event>, i64)> {
        self.events_under(&self.keys.events()).await
    }

    /// One object's events (a range over its own keys, not every event).
    pub async fn list_events_of(&self, object: &ObjectRef) -> Result<Vec<Event>> {
        Ok(self.events_under(&self.keys.events_of(object)).await?.0)
    }

    /// The events under a key prefix, oldest first.
    async fn events_under(&self, prefix: &str) -> Result<(Vec<Event>, i64)> {
        let (items, revision) = self.list_raw(prefix).await?;
        let mut events: Vec<Event> = items
            .iter()
            .filter_map(|item| serde_json::from_slice(&item.value).ok())
            .collect();
        events.sort_by(|a, b| {
            a.last_timestamp
                .cmp(&b.last_timestamp)
                .then_with(|| a.object.cmp(&b.object))
        });
        Ok((events, revision))
    }

    async fn event_lease(&self) -> Result<i64> {
        let mut cached = self.leases.0.lock().await;
        if let Some((id, granted)) = *cached {
            if granted.elapsed() < LEASE_REUSE {
                return Ok(id);
            }
        }
        let ttl = (EVENT_TTL + LEASE_REUSE).as_secs() as i64;
        let granted = self.grant_ttl(ttl).await?;
        *cached = Some((granted.id(), Instant::now()));
        Ok(granted.id())
    }
}

/// Decodes an event from a watch item; other keys under the prefix are skipped.
pub fn decode_event(value: &[u8]) -> Option<Event> {
    serde_json::from_slice(value).ok()
}
