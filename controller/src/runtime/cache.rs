//! The reflector's cache: every object and status as of the last watch event. Reconcilers read
//! desired state here instead of asking etcd each time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crds::{Kind, ObjectRef, Resource, Status};
use tokio::sync::watch;

#[derive(Default)]
struct State {
    objects: HashMap<ObjectRef, Resource>,
    /// Each status with the revision it was written at: a late watch event never replaces a
    /// newer status the controller already put here.
    statuses: HashMap<ObjectRef, (Status, i64)>,
}

#[derive(Clone)]
pub struct Cache {
    state: Arc<RwLock<State>>,
    synced: watch::Sender<bool>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            state: Arc::default(),
            synced: watch::channel(false).0,
        }
    }
}

impl Cache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The object with its status.
    pub fn get(&self, object: &ObjectRef) -> Option<Resource> {
        let state = self.read();
        let mut resource = state.objects.get(object)?.clone();
        resource.set_status(state.statuses.get(object).map(|(s, _)| s.clone()));
        Some(resource)
    }

    pub fn status(&self, object: &ObjectRef) -> Option<Status> {
        self.read().statuses.get(object).map(|(s, _)| s.clone())
    }

    pub fn contains(&self, object: &ObjectRef) -> bool {
        self.read().objects.contains_key(object)
    }

    pub fn refs(&self) -> Vec<ObjectRef> {
        self.read().objects.keys().cloned().collect()
    }

    /// Objects in a namespace with this name, of any kind: who a Nomad job ID or Consul
    /// service name may belong to.
    pub fn named(&self, namespace: Option<&str>, name: &str) -> Vec<ObjectRef> {
        self.read()
            .objects
            .keys()
            .filter(|r| r.name == name && namespace.is_none_or(|ns| ns == r.namespace))
            .cloned()
            .collect()
    }

    /// Copies of the objects (without status) that `keep` selects.
    pub fn select(&self, keep: impl Fn(&Resource) -> bool) -> Vec<Resource> {
        self.read()
            .objects
            .values()
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.read()
            .objects
            .keys()
            .filter(|r| r.kind == kind)
            .count()
    }

    /// Stores an object; returns whether its desired state (spec, labels, annotations) changed.
    pub fn put_object(&self, resource: Resource) -> bool {
        let object = resource.object_ref();
        let mut state = self.write();
        let changed = state.objects.get(&object).is_none_or(|old| {
            old.metadata().generation != resource.metadata().generation
                || old.metadata() != resource.metadata()
        });
        state.objects.insert(object, resource);
        changed
    }

    pub fn remove_object(&self, object: &ObjectRef) {
        let mut state = self.write();
        state.objects.remove(object);
        state.statuses.remove(object);
    }

    /// Stores a status written at `revision`, unless a newer one is already here.
    pub fn put_status(&self, object: ObjectRef, status: Status, revision: i64) {
        let mut state = self.write();
        let newer_present = state
            .statuses
            .get(&object)
            .is_some_and(|(_, have)| *have > revision);
        if !newer_present {
            state.statuses.insert(object, (status, revision));
        }
    }

    pub fn remove_status(&self, object: &ObjectRef) {
        self.write().statuses.remove(object);
    }

    /// Replaces everything (after a listing); returns the refs that appeared, changed or went.
    pub fn replace(
        &self,
        objects: Vec<Resource>,
        statuses: Vec<(ObjectRef, Status)>,
        revision: i64,
    ) -> Vec<ObjectRef> {
        let mut state = self.write();
        let fresh: HashMap<ObjectRef, Resource> =
            objects.into_iter().map(|r| (r.object_ref(), r)).collect();
        let mut touched: Vec<ObjectRef> = state
            .objects
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        touched.extend(
            fresh
                .iter()
                .filter(|(k, v)| state.objects.get(*k) != Some(*v))
                .map(|(k, _)| k.clone()),
        );
        state.objects = fresh;
        state.statuses = statuses
            .into_iter()
            .map(|(object, status)| (object, (status, revision)))
            .collect();
        touched
    }

    pub fn mark_synced(&self) {
        self.synced.send_replace(true);
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits for the first complete listing.
    pub async fn wait_synced(&self) {
        let mut receiver = self.synced.subscribe();
        let _ = receiver.wait_for(|synced| *synced).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Kind;

    fn status(generation: i64) -> Status {
        Status {
            observed_generation: Some(generation),
            ..Status::default()
        }
    }

    #[test]
    fn a_late_watch_event_never_replaces_a_newer_status() {
        let cache = Cache::default();
        let web = ObjectRef::new(Kind::App, "default", "web");
        cache.put_status(web.clone(), status(2), 12);
        cache.put_status(web.clone(), status(1), 10);
        assert_eq!(cache.status(&web), Some(status(2)));
        cache.put_status(web.clone(), status(3), 14);
        assert_eq!(cache.status(&web), Some(status(3)));
    }
}
