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
    pub queue: Arc<WorkQueue<ObjectRef>>,
    pub metrics: Arc<Metrics>,
    /// Who this controller is, on every event it records.
    pub identity: String,
    /// Serializes pub placement, so two pubs never take the last room on a hub.
    pub placement: tokio::sync::Mutex<()>,
    /// When the next pub move may start: moves off a dead hub go at a bounded rate.
    pub next_repin: tokio::sync::Mutex<tokio::time::Instant>,
    /// Recent heals and failed allocations per node ID, with the allocation each was about.
    pub troubles: std::sync::Mutex<Troubles>,
    /// Mark nodes that keep failing ineligible (`--cordon-suspect-nodes`).
    pub cordon_suspect_nodes: bool,
    /// Where git sources keep their bare mirrors (`--git-cache`).
    pub git_cache: std::path::PathBuf,
    /// Each git source's last parsed commit, so a poll that finds no new commit parses nothing.
    pub parsed_commits: std::sync::Mutex<std::collections::HashMap<ObjectRef, ParsedCommit>>,
    /// Git sources a verified webhook asked to fetch now, before their interval is up.
    pub fetch_requests: std::sync::Mutex<std::collections::HashSet<ObjectRef>>,
}

/// One commit's manifests as parsed for one source (folder and namespace included in the key:
/// a source whose `path` or `targetNamespace` changed parses again).
pub struct ParsedCommit {
    pub key: String,
    pub manifests: Arc<Result<Vec<crds::Resource>, Vec<crds::ManifestError>>>,
}

/// Per node ID: when each recent heal or failure happened, and which allocation it was.
pub type Troubles = std::collections::HashMap<String, Vec<(chrono::DateTime<chrono::Utc>, String)>>;

/// Pub moves per second at most, so a hub dying with many pubs does not stampede Nomad.
pub const REPINS_PER_SECOND: u32 = 50;

impl Context {
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
            queue: WorkQueue::new(),
            metrics,
            identity,
            placement: tokio::sync::Mutex::new(()),
            next_repin: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            troubles: std::sync::Mutex::default(),
            cordon_suspect_nodes: false,
            git_cache: std::env::temp_dir().join("nomarch-git"),
            parsed_commits: std::sync::Mutex::default(),
            fetch_requests: std::sync::Mutex::default(),
        }
    }

    /// Waits for this move's slot in the pace of [`REPINS_PER_SECOND`].
    pub async fn pace_repin(&self) {
        let mut next = self.next_repin.lock().await;
        let now = tokio::time::Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + std::time::Duration::from_secs(1) / REPINS_PER_SECOND;
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
