//! Leader election on an etcd lease, and the fence that ties every write to it.
//!
//! The leader key holds the leader's identity, attached to its lease; it disappears when the
//! lease expires. A store with a fence adds one compare to every write transaction: the leader
//! key's create revision is still the one this controller created. A deposed leader (its lease
//! expired while it was paused or partitioned, and someone else now holds the key) therefore
//! cannot write anything, however late its writes arrive.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, WatchOptions};

use super::{Result, Store, StoreError};

/// What a fenced store compares on every write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub create_revision: i64,
}

impl Store {
    /// The leader key for one shard of `shards`.
    pub fn leader_key(&self, shard: u32, shards: u32) -> String {
        format!("{}leader/{shard}-of-{shards}", self.keys.prefix())
    }

    /// From now on every write of this store (and its clones) is fenced, or no longer.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.write().unwrap_or_else(|p| p.into_inner()) = fence;
    }

    pub fn fence(&self) -> Option<Fence> {
        self.fence.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `compares` plus the fence's, when there is one.
    pub(super) fn fenced(&self, mut compares: Vec<Compare>) -> Vec<Compare> {
        if let Some(fence) = self.fence() {
            compares.push(Compare::create_revision(
                fence.key,
                CompareOp::Equal,
                fence.create_revision,
            ));
        }
        compares
    }

    /// Why a fenced transaction failed: the fence, when it no longer holds, else `otherwise`.
    pub(super) async fn failure(&self, otherwise: StoreError) -> StoreError {
        let Some(fence) = self.fence() else {
            return otherwise;
        };
        match self.holder(&fence.key).await {
            Ok(Some((_, revision))) if revision == fence.create_revision => otherwise,
            Ok(_) => StoreError::Fenced,
            Err(e) => e,
        }
    }

    /// Whether this store has a fence that no longer holds (a failed write's first suspect).
    pub(super) async fn lost_fence(&self) -> bool {
        matches!(
            self.failure(StoreError::Etcd(String::new())).await,
            StoreError::Fenced
        )
    }

    /// Who holds a leader key (identity, create revision), if anyone.
    pub async fn holder(&self, key: &str) -> Result<Option<(String, i64)>> {
        let response = self.kv_get(key, None).await?;
        Ok(response.kvs().first().map(|kv| {
            (
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.create_revision(),
            )
        }))
    }

    /// A new lease of `ttl`.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64> {
        let granted = self.grant_ttl(ttl.as_secs().max(1) as i64).await?;
        Ok(granted.id())
    }

    /// Takes `key` under `lease` if nobody holds it: `Ok(create_revision)`, or `Err(holder)`.
    pub async fn try_lead(
        &self,
        key: &str,
        identity: &str,
        lease: i64,
    ) -> Result<std::result::Result<i64, String>> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                identity,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv_txn(txn).await?;
        if response.succeeded() {
            let revision = response.header().map_or(0, |h| h.revision());
            return Ok(Ok(revision));
        }
        let holder = self.holder(key).await?.map(|(h, _)| h).unwrap_or_default();
        Ok(Err(holder))
    }

    /// Renews a lease once; the seconds it has left (0: it is gone).
    pub async fn renew_lease(&self, lease: i64) -> Result<i64> {
        // Renewing twice is harmless, so this is asked like a read.
        let reply = self
            .read(|client| async move {
                let (mut keeper, mut stream) = client.lease_client().keep_alive(lease).await?;
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await?;
        Ok(reply.map_or(0, |r| r.ttl()))
    }

    /// Gives a lease up (its keys go with it).
    pub async fn revoke_lease(&self, lease: i64) -> Result<()> {
        self.write(|client| async move { client.lease_client().revoke(lease).await })
            .await?;
        Ok(())
    }

    /// Returns when `key` is deleted, or after `at_most` (whichever first).
    pub async fn wait_for_release(&self, key: &str, at_most: Duration) {
        let watch = async {
            let key = key.to_string();
            let opened = self.read(|client| {
                let key = key.clone();
                async move { client.watch_client().watch(key, None::<WatchOptions>).await }
            });
            let Ok(mut stream) = opened.await else {
                return;
            };
            while let Ok(Some(response)) = stream.message().await {
                let deleted = response
                    .events()
                    .iter()
                    .any(|e| e.event_type() == etcd_client::EventType::Delete);
                if deleted {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(at_most, watch).await;
    }
}
