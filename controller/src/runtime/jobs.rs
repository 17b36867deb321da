//! Jobs as Nomad last said, fed by the event stream: a reconcile of an unchanged object plans
//! from here instead of reading its job from Nomad, so a resync of a converged cluster makes
//! no Nomad requests at all for it.
//!
//! Filled lazily (a miss reads Nomad once) and kept current by `Job` events. Cleared whenever
//! the stream (re)connects, because events missed while it was down would leave entries stale.
//! A reader also says the lowest `JobModifyIndex` it can accept (the one nomarch last wrote):
//! an entry older than that is a miss, so the cache can never make nomarch re-register a job
//! it just wrote.
//!
//! The stream carries the namespaces that existed when it was opened (Nomad resolves `*` once,
//! nomad/event_endpoint.go `validateACL`); the stream is reopened, and this cache restarted,
//! as soon as a namespace appears (`triggers::nomad_events`).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clients::nomad_types::Job;

type JobKey = (String, String);

#[derive(Default)]
struct State {
    synced: bool,
    /// `None`: Nomad said there is no such job.
    jobs: HashMap<JobKey, Option<Job>>,
}

#[derive(Default)]
pub struct JobCache {
    state: RwLock<State>,
}

/// What planning and status read; groups and the rest stay in Nomad.
fn slim(job: Job) -> Job {
    Job {
        task_groups: None,
        extra: Default::default(),
        ..job
    }
}

fn key(namespace: &str, id: &str) -> JobKey {
    (namespace.to_string(), id.to_string())
}

impl JobCache {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream is (re)connected: start empty and trust events from here on.
    pub fn restart(&self) {
        let mut state = self.write();
        state.jobs.clear();
        state.synced = true;
    }

    /// The stream is gone: every read goes to Nomad until it is back.
    pub fn mark_unsynced(&self) {
        let mut state = self.write();
        state.jobs.clear();
        state.synced = false;
    }

    /// The job (or its absence), when cached and at least as new as `at_least`.
    pub fn get(&self, namespace: &str, id: &str, at_least: Option<u64>) -> Option<Option<Job>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        if !state.synced {
            return None;
        }
        let entry = state.jobs.get(&key(namespace, id))?;
        let fresh = match (entry, at_least) {
            (_, None) => true,
            (Some(job), Some(index)) => job.job_modify_index.unwrap_or(0) >= index,
            // Absent, but nomarch wrote it: the entry predates that write.
            (None, Some(_)) => false,
        };
        fresh.then(|| entry.clone())
    }

    /// What a read from Nomad returned; never replaces a newer entry.
    pub fn put(&self, namespace: &str, id: &str, job: Option<Job>) {
        let mut state = self.write();
        if !state.synced {
            return;
        }
        let key = key(namespace, id);
        let newer = match (state.jobs.get(&key), &job) {
            (None, _) => true,
            (Some(Some(have)), Some(new)) => {
                have.job_modify_index.unwrap_or(0) <= new.job_modify_index.unwrap_or(0)
            }
            (Some(None), Some(_)) => true,
            (Some(_), None) => false,
        };
        if newer {
            state.jobs.insert(key, job.map(slim));
        }
    }

    /// Drops one entry: the next reader asks Nomad.
    pub fn forget(&self, namespace: &str, id: &str) {
        self.write().jobs.remove(&key(namespace, id));
    }

    /// A `Job` event: registered or updated jobs replace their entry; a deregistered one is
    /// forgotten, and the next reader asks Nomad. `JobDeregistered` is a stop or a purge;
    /// `JobBatchDeregistered` is the garbage collector (or a batch deregister) deleting jobs,
    /// and carries each job as it was before deletion (nomad/state/events.go), which must not
    /// be mistaken for a job that still exists.
    pub fn on_event(&self, event_type: &str, namespace: &str, job: Option<Job>) {
        let Some(job) = job else { return };
        let key = key(namespace, &job.id);
        let mut state = self.write();
        if !state.synced {
            return;
        }
        if matches!(event_type, "JobDeregistered" | "JobBatchDeregistered") {
            state.jobs.remove(&key);
        } else {
            state.jobs.insert(key, Some(slim(job)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(index: u64) -> Job {
        serde_json::from_value(serde_json::json!({
            "ID": "web", "JobModifyIndex": index, "TaskGroups": [{"Name": "g"}], "Datacenters": ["dc1"],
        }))
        .unwrap()
    }

    #[test]
    fn reads_miss_until_synced_and_entries_older_than_our_write() {
        let cache = JobCache::default();
        cache.put("default", "web", Some(job(5)));
        assert!(
            cache.get("default", "web", None).is_none(),
            "not synced yet"
        );
        cache.restart();
        assert!(
            cache.get("default", "web", None).is_none(),
            "not cached yet"
        );
        cache.put("default", "web", Some(job(5)));
        let cached = cache.get("default", "web", Some(5)).unwrap().unwrap();
        assert_eq!(cached.job_modify_index, Some(5));
        assert!(
            cached.task_groups.is_none() && cached.extra.is_empty(),
            "kept slim"
        );
        // nomarch wrote index 9: an entry at 5 is stale for that reader.
        assert!(cache.get("default", "web", Some(9)).is_none());
        // An older read never replaces a newer event.
        cache.on_event("JobRegistered", "default", Some(job(9)));
        cache.put("default", "web", Some(job(5)));
        assert_eq!(
            cache
                .get("default", "web", Some(9))
                .unwrap()
                .unwrap()
                .job_modify_index,
            Some(9)
        );
        cache.on_event("JobDeregistered", "default", Some(job(9)));
        assert!(cache.get("default", "web", None).is_none());
        // The garbage collector's deletion carries the deleted job: forgotten, not cached.
        cache.put("default", "web", Some(job(9)));
        cache.on_event("JobBatchDeregistered", "default", Some(job(9)));
        assert!(
            cache.get("default", "web", None).is_none(),
            "GC'd job forgotten"
        );
        cache.put("default", "web", Some(job(9)));
        cache.forget("default", "web");
        assert!(cache.get("default", "web", None).is_none(), "forgotten");
        cache.put("default", "missing", None);
        assert_eq!(cache.get("default", "missing", None), Some(None));
        assert!(cache.get("default", "missing", Some(3)).is_none());
        cache.mark_unsynced();
        assert!(cache.get("default", "missing", None).is_none());
    }
}
