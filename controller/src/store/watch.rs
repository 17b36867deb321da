//! Watches that survive etcd restarts and compaction.
//!
//! A watch resumes from the revision after the last one it delivered, so a reconnect neither
//! repeats nor skips an event. When that revision has been compacted away, the watch lists the
//! prefix again and delivers the listing as one `Relisted` item, then carries on from there.

use std::time::Duration;

use etcd_client::{EventType as EtcdEventType, WatchOptions};
use tokio::sync::mpsc;

use super::{Result, Store, StoreError};

/// A key and its value as etcd holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawItem {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    Put(RawItem),
    Delete {
        key: String,
        mod_revision: i64,
    },
    /// The watch lost its place (compaction); this is the whole prefix as of `revision`, and
    /// replaces whatever the receiver held.
    Relisted {
        items: Vec<RawItem>,
        revision: i64,
    },
}

const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

impl Store {
    /// Lists every key under `prefix`, with the revision the listing was read at.
    pub async fn list_raw(&self, prefix: &str) -> Result<(Vec<RawItem>, i64)> {
        let (kvs, revision) = self.list_paged(prefix, None).await?;
        let items = kvs
            .iter()
            .map(|kv| RawItem {
                key: kv.key_str().unwrap_or_default().to_string(),
                value: kv.value().to_vec(),
                mod_revision: kv.mod_revision(),
            })
            .collect();
        Ok((items, revision))
    }

    /// Streams every change under `prefix` from `start_revision` on (inclusive). The stream
    /// ends only when the receiver is dropped; connection trouble is retried with backoff and
    /// reported as `Err` items so the caller can log it.
    pub fn watch_prefix(
        &self,
        prefix: String,
        start_revision: i64,
    ) -> mpsc::Receiver<Result<WatchEvent>> {
        let (sender, receiver) = mpsc::channel(256);
        let store = self.clone();
        tokio::spawn(async move { store.run_watch(prefix, start_revision, sender).await });
        receiver
    }

    async fn run_watch(
        self,
        prefix: String,
        start_revision: i64,
        sender: mpsc::Sender<Result<WatchEvent>>,
    ) {
        let mut next_revision = start_revision;
        let mut delay = RECONNECT_MIN;
        while !sender.is_closed() {
            match self
                .watch_until_broken(&prefix, &mut next_revision, &sender)
                .await
            {
                // A clean hand-back (after a relist): reopen at once.
                Ok(()) => delay = RECONNECT_MIN,
                Err(e) => {
                    if sender.send(Err(e)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    /// One watch connection. Returns `Ok` when it must be reopened at `next_revision` (after a
    /// relist), `Err` when the connection broke.
    async fn watch_until_broken(
        &self,
        prefix: &str,
        next_revision: &mut i64,
        sender: &mpsc::Sender<Result<WatchEvent>>,
    ) -> Result<()> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(*next_revision);
        let mut stream = self
            .read(|client| {
                let (prefix, options) = (prefix.to_string(), options.clone());
                async move { client.watch_client().watch(prefix, Some(options)).await }
            })
            .await?;
        loop {
            let message = stream
                .message()
                .await
                .map_err(|e| self.unreachable(e.to_string()))?;
            let Some(response) = message else {
                return Err(self.unreachable("watch stream closed".into()));
            };
            if response.compact_revision() > 0 {
                let (items, revision) = self.list_raw(prefix).await?;
                *next_revision = revision + 1;
                if sender
                    .send(Ok(WatchEvent::Relisted { items, revision }))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                return Ok(());
            }
            if response.canceled() {
                return Err(StoreError::Etcd(format!(
                    "watch canceled: {}",
                    response.cancel_reason()
                )));
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let key = kv.key_str().unwrap_or_default().to_string();
                let item = match event.event_type() {
                    EtcdEventType::Put => WatchEvent::Put(RawItem {
                        key,
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                    }),
                    EtcdEventType::Delete => WatchEvent::Delete {
                        key,
                        mod_revision: kv.mod_revision(),
                    },
                };
                *next_revision = kv.mod_revision() + 1;
                if sender.send(Ok(item)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    fn unreachable(&self, detail: String) -> StoreError {
        StoreError::Unreachable {
            endpoints: self.endpoints.clone(),
            detail,
        }
    }
}
