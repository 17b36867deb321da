//! Leader election: only the holder of the shard's leader lease reconciles and writes.
//!
//! A controller grants itself a lease and takes the leader key if nobody holds it; otherwise
//! it stands by (reflector and caches warm, no reconciles) and watches the key, which vanishes
//! when the leader's lease expires. While leading it renews the lease every third of the TTL.
//! Every etcd write is fenced on the key (see `store::lease`), and Nomad writes are refused
//! locally once the last renewal is older than two thirds of the TTL, which covers a process
//! that was paused: it cannot act on a lease that may have expired meanwhile. Losing the lease
//! ends `run`, and the controller exits so its supervisor restarts it as a standby, as
//! controller-runtime does.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::store::{Fence, Store};

pub struct Leadership {
    pub key: String,
    pub identity: String,
    pub ttl: Duration,
    /// Until when writes may go out: the last renewal plus two thirds of the TTL.
    valid_until: Mutex<Option<Instant>>,
}

impl Leadership {
    pub fn new(key: String, identity: String, ttl: Duration) -> Leadership {
        Leadership {
            key,
            identity,
            ttl,
            valid_until: Mutex::new(None),
        }
    }

    /// Whether this controller leads right now (checked before every Nomad write).
    pub fn is_held(&self) -> bool {
        let until = *self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    fn renewed_at(&self, at: Option<Instant>) {
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) =
            at.map(|at| at + self.ttl * 2 / 3);
    }

    /// Campaigns until this controller leads; sets the store's fence and returns the lease.
    pub async fn acquire(&self, store: &Store) -> i64 {
        loop {
            match self.try_acquire(store).await {
                Ok(Some(lease)) => return lease,
                Ok(None) => store.wait_for_release(&self.key, self.ttl).await,
                Err(e) => {
                    warn!(error = %e, "leader election: etcd unavailable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn try_acquire(&self, store: &Store) -> crate::store::Result<Option<i64>> {
        let started = Instant::now();
        let lease = store.grant_lease(self.ttl).await?;
        match store.try_lead(&self.key, &self.identity, lease).await? {
            Ok(create_revision) => {
                store.set_fence(Some(Fence {
                    key: self.key.clone(),
                    create_revision,
                }));
                self.renewed_at(Some(started));
                info!(key = %self.key, identity = %self.identity, "leading");
                Ok(Some(lease))
            }
            Err(holder) => {
                let _ = store.revoke_lease(lease).await;
                info!(key = %self.key, leader = %holder, "standing by");
                Ok(None)
            }
        }
    }

    /// Renews the lease until it is lost, and returns why. The store keeps the old fence: it can
    /// never hold again (a new term has a new key revision), so a reconcile of the lost term
    /// that is still finishing fails its etcd writes instead of writing unfenced.
    pub async fn hold(&self, store: &Store, lease: i64) -> String {
        let reason = loop {
            tokio::time::sleep(self.ttl / 3).await;
            let sent = Instant::now();
            match store.renew_lease(lease).await {
                Ok(ttl) if ttl > 0 => {}
                Ok(_) => break "the lease expired".to_string(),
                // A renewal that fails may succeed next time, while the lease lasts.
                Err(e) if self.is_held() => {
                    warn!(error = %e, "lease renewal failed; retrying");
                    continue;
                }
                Err(e) => break format!("the lease could not be renewed in time: {e}"),
            }
            // Someone may have deleted the key by hand: the fence would refuse every write.
            match store.holder(&self.key).await {
                Ok(Some((holder, _))) if holder == self.identity => self.renewed_at(Some(sent)),
                Ok(_) => break "the leader key was taken or deleted".to_string(),
                Err(e) => warn!(error = %e, "could not read the leader key"),
            }
        };
        self.renewed_at(None);
        reason
    }

    /// Gives the lease up at shutdown, so a standby takes over at once.
    pub async fn resign(&self, store: &Store, lease: i64) {
        self.renewed_at(None);
        let _ = store.revoke_lease(lease).await;
    }
}
