//! Allocations by job, fed by Nomad's event stream. A reconcile reads a job's allocations here
//! instead of listing them from Nomad: that listing holds every terminal allocation until
//! Nomad's GC, so its size (and the cost of each status observation) grew with every update
//! (the apply-latency benchmark showed it). The cache is refilled by one listing each time the
//! stream (re)connects, so a gap in the stream never leaves it stale, and it says when it is
//! not synced, so readers fall back to asking Nomad. The stream carries the namespaces that
//! existed when it opened; it is reopened (and this cache refilled) when one appears.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use crate::clients::nomad_types::{AllocStub, Slim};

type JobKey = (String, String);

#[derive(Default)]
struct State {
    synced: bool,
    by_job: HashMap<JobKey, BTreeMap<String, AllocStub>>,
}

#[derive(Default)]
pub struct AllocCache {
    state: RwLock<State>,
}

/// Whether the client has finished with the allocation (it no longer runs or will run).
fn client_terminal(alloc: &AllocStub) -> bool {
    matches!(alloc.client_status.as_str(), "complete" | "failed" | "lost")
}

impl AllocCache {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces everything with a fresh listing and marks the cache synced.
    pub fn replace(&self, allocs: Vec<AllocStub>) {
        let mut by_job: HashMap<JobKey, BTreeMap<String, AllocStub>> = HashMap::new();
        for alloc in allocs {
            let key = (alloc.namespace.clone(), alloc.job_id.clone());
            by_job
                .entry(key)
                .or_default()
                .insert(alloc.id.clone(), alloc.slim());
        }
        for allocs in by_job.values_mut() {
            prune_superseded(allocs);
        }
        let mut state = self.write();
        state.by_job = by_job;
        state.synced = true;
    }

    /// An allocation from the event stream; an older copy never replaces a newer one.
    pub fn upsert(&self, alloc: AllocStub) {
        let mut state = self.write();
        let allocs = state
            .by_job
            .entry((alloc.namespace.clone(), alloc.job_id.clone()))
            .or_default();
        let newer = allocs
            .get(&alloc.id)
            .is_none_or(|have| have.modify_index <= alloc.modify_index);
        if newer {
            allocs.insert(alloc.id.clone(), alloc.slim());
            prune_superseded(allocs);
        }
    }

    /// nomarch asked Nomad to stop this allocation: record it now, before the event comes.
    /// The event (with a higher modify index) replaces this guess.
    pub fn mark_stopping(&self, alloc_id: &str) {
        let mut state = self.write();
        for allocs in state.by_job.values_mut() {
            if let Some(alloc) = allocs.get_mut(alloc_id) {
                alloc.desired_status = "stop".to_string();
                return;
            }
        }
    }

    /// The stream is gone: until the next listing, readers ask Nomad.
    pub fn mark_unsynced(&self) {
        self.write().synced = false;
    }

    /// A job's allocations, or `None` when the cache is not synced.
    pub fn of_job(&self, namespace: &str, job_id: &str) -> Option<Vec<AllocStub>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if !state.synced {
            return None;
        }
        let key = (namespace.to_string(), job_id.to_string());
        Some(
            state
                .by_job
                .get(&key)
                .map(|allocs| allocs.values().cloned().collect())
                .unwrap_or_default(),
        )
    }

    /// Allocations held, for metrics and tests.
    pub fn len(&self) -> usize {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.by_job.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops finished allocations of versions older than the newest one present: nothing reads
/// them (status counts live allocations and the current version's), and without this a job
/// updated a thousand times would hold a thousand of them until the next listing.
fn prune_superseded(allocs: &mut BTreeMap<String, AllocStub>) {
    let Some(newest) = allocs.values().map(|a| a.job_version).max() else {
        return;
    };
    allocs.retain(|_, a| !(client_terminal(a) && a.job_version < newest));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, version: u64, client: &str, modify_index: u64) -> AllocStub {
        serde_json::from_value(serde_json::json!({
            "ID": id, "JobID": "web", "Namespace": "default", "ClientStatus": client,
            "DesiredStatus": "run", "JobVersion": version, "ModifyIndex": modify_index,
            "Job": {"ID": "web", "TaskGroups": []},
        }))
        .unwrap()
    }

    fn ids(cache: &AllocCache) -> Vec<String> {
        let mut ids: Vec<String> = cache
            .of_job("default", "web")
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn unsynced_means_ask_nomad() {
        let cache = AllocCache::default();
        assert!(cache.of_job("default", "web").is_none());
        cache.replace(vec![alloc("a", 0, "running", 1)]);
        assert_eq!(ids(&cache), ["a"]);
        cache.mark_unsynced();
        assert!(cache.of_job("default", "web").is_none());
    }

    #[test]
    fn events_update_in_order_and_superseded_finished_allocations_go() {
        let cache = AllocCache::default();
        cache.replace(vec![alloc("a", 0, "running", 5)]);
        // A late, older copy of `a` changes nothing.
        cache.upsert(alloc("a", 0, "pending", 3));
        assert_eq!(
            cache.of_job("default", "web").unwrap()[0].client_status,
            "running"
        );
        // An update: b runs version 1, a completes; a is finished and superseded, so it goes.
        cache.upsert(alloc("b", 1, "running", 6));
        assert_eq!(ids(&cache), ["a", "b"], "a still runs while b starts");
        cache.upsert(alloc("a", 0, "complete", 7));
        assert_eq!(ids(&cache), ["b"]);
        // A failed allocation of the current version stays: status reports it.
        cache.upsert(alloc("c", 1, "failed", 8));
        assert_eq!(ids(&cache), ["b", "c"]);
        // A stop nomarch asked for shows at once; the event that follows replaces it.
        cache.mark_stopping("b");
        let b = |c: &AllocCache| {
            c.of_job("default", "web")
                .unwrap()
                .into_iter()
                .find(|a| a.id == "b")
                .unwrap()
        };
        assert_eq!(b(&cache).desired_status, "stop");
        cache.upsert(alloc("b", 1, "running", 9));
        assert_eq!(b(&cache).desired_status, "run", "the event is the truth");
        // The job's copy inside an event's allocation is not kept.
        assert!(cache.of_job("default", "web").unwrap()[0].extra.is_empty());
        assert_eq!(cache.of_job("default", "other"), Some(Vec::new()));
    }
}
