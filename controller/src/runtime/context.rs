//! What every reconcile and trigger shares.

use std::sync::Arc;

use crds::ObjectRef;
use tracing::warn;

use super::cache::Cache;
use super::metrics::Metrics;
use super::queue::WorkQueue;
use crate::clients::{ConsulClient, NomadClient};
use crate::store::{EventType, NewEvent, Store};

pub struct Context {
    pub store: Store,
    pub nomad: NomadClient,
    pub consul: ConsulClient,
    pub cache: Cache,
    /// Allocations by job, from Nomad's event stream.
    pub allocs: super::allocs::AllocCache,
    /// Jobs as last seen, from reads and the event stream.
    pub jobs: super::jobs::JobCache,
    /// Nomad's nodes, from a blocking query.
    pub nodes: super::nodes::NodeCache,
    pub queue: Arc<WorkQueue<ObjectRef>>,
    pub metrics: Arc<Metrics>,
    /// Who this controller is, on every event it records.
    pub identity: String,
    /// The leader lease this controller campaigns for; only its holder reconciles.
    pub leadership: Arc<super::leader::Leadership>,
    /// This controller's shard: (index, count). Objects hash to shards; see [`shard_of`].
    pub shard: (u32, u32),
    /// How long the node list and Consul health blocking queries wait for a change; a query
    /// that outlives it by its slack is given up (a server that never answers).
    pub blocking_wait: std::time::Duration,
    /// Kinds whose objects are all reconciled in shard 0 ([`shard_of`]); the kinds say which.
    pub unsharded: Vec<crds::Kind>,
}

/// Nomad's and Consul's own default maximum is 10 minutes; 5 keeps a hung query short.
pub const BLOCKING_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Which of `shards` shards an object belongs to. Objects of the `unsharded` kinds are all in
/// shard 0: the kinds name those whose reconciles share state inside one controller (see
/// [`super::kinds::Kinds::unsharded`]). Everything else hashes by kind, namespace and name
/// (SHA-256, so the answer never changes between builds).
pub fn shard_of(object: &ObjectRef, shards: u32, unsharded: &[crds::Kind]) -> u32 {
    if shards <= 1 || unsharded.contains(&object.kind) {
        return 0;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "{}/{}/{}",
        object.kind, object.namespace, object.name
    ));
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % u64::from(shards)) as u32
}

impl Context {
    /// Whether this controller's shard owns `object`.
    pub fn owns(&self, object: &ObjectRef) -> bool {
        shard_of(object, self.shard.1, &self.unsharded) == self.shard.0
    }

    pub fn new(
        store: Store,
        nomad: NomadClient,
        consul: ConsulClient,
        metrics: Arc<Metrics>,
        identity: String,
    ) -> Context {
        Context {
            store,
            nomad,
            consul,
            cache: Cache::default(),
            allocs: super::allocs::AllocCache::default(),
            jobs: super::jobs::JobCache::default(),
            nodes: super::nodes::NodeCache::default(),
            queue: WorkQueue::new(),
            metrics,
            identity,
            leadership: Arc::new(super::leader::Leadership::new(
                String::new(),
                String::new(),
                std::time::Duration::from_secs(10),
            )),
            shard: (0, 1),
            blocking_wait: BLOCKING_WAIT,
            unsharded: Vec::new(),
        }
    }

    /// Records an event without holding up the reconcile: events are for people, and a
    /// failure to record one is logged, never fatal.
    pub async fn event(
        &self,
        object: &ObjectRef,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let event = NewEvent {
            type_,
            reason: reason.to_string(),
            object: object.clone(),
            message: message.into(),
            source: self.identity.clone(),
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            let (object, reason) = (event.object.clone(), event.reason.clone());
            if let Err(e) = store.record_event(event).await {
                warn!(object = %object, reason, error = %e, "could not record event");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Kind;

    #[test]
    fn shards_split_objects_and_keep_unsharded_kinds_together() {
        let unsharded = [Kind::Pub];
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let app = ObjectRef::new(Kind::App, "default", format!("app-{i}"));
            counts[shard_of(&app, 3, &unsharded) as usize] += 1;
            let pub_ = ObjectRef::new(Kind::Pub, "default", format!("pub-{i}"));
            assert_eq!(shard_of(&pub_, 3, &unsharded), 0);
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        let web = ObjectRef::new(Kind::App, "default", "web");
        assert_eq!(shard_of(&web, 1, &unsharded), 0);
        assert_eq!(
            shard_of(&web, 3, &unsharded),
            shard_of(&web.clone(), 3, &[]),
            "stable, and only the unsharded kinds are pinned"
        );
    }
}
