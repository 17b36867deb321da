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
    /// Refs by object name: every Nomad event names a job, and scanning 12,000 objects per
    /// event to find its owner was the largest cost of following the event stream.
    by_name: HashMap<String, Vec<ObjectRef>>,
    /// Refs by Consul service name ([`reconcilers::render::service_name`]): a health change
    /// names a service, which differs from the object's name outside `default`.
    by_service: HashMap<String, Vec<ObjectRef>>,
}

impl State {
    fn index(&mut self, object: &ObjectRef) {
        let service = reconcilers::render::service_name(object);
        for (map, key) in [
            (&mut self.by_name, object.name.clone()),
            (&mut self.by_service, service),
        ] {
            let refs = map.entry(key).or_default();
            if !refs.contains(object) {
                refs.push(object.clone());
            }
        }
    }

    fn unindex(&mut self, object: &ObjectRef) {
        let service = reconcilers::render::service_name(object);
        for (map, key) in [
            (&mut self.by_name, object.name.clone()),
            (&mut self.by_service, service),
        ] {
            if let Some(refs) = map.get_mut(&key) {
                refs.retain(|r| r != object);
                if refs.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }
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
            .by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter(|r| namespace.is_none_or(|ns| ns == r.namespace))
            .cloned()
            .collect()
    }

    /// The objects whose workload registers this Consul service.
    pub fn serving(&self, service: &str) -> Vec<ObjectRef> {
        self.read()
            .by_service
            .get(service)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Visits every object of a kind with its status, under one read lock and without copies:
    /// for questions over all objects of a kind asked on every reconcile (what the other pubs
    /// hold on each hub).
    pub fn for_each_of_kind(&self, kind: Kind, mut visit: impl FnMut(&Resource, Option<&Status>)) {
        let state = self.read();
        for (object, resource) in state.objects.iter().filter(|(r, _)| r.kind == kind) {
            visit(resource, state.statuses.get(object).map(|(s, _)| s));
        }
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
        state.index(&object);
        state.objects.insert(object, resource);
        changed
    }

    pub fn remove_object(&self, object: &ObjectRef) {
        let mut state = self.write();
        state.objects.remove(object);
        state.statuses.remove(object);
        state.unindex(object);
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
        state.by_name.clear();
        state.by_service.clear();
        let refs: Vec<ObjectRef> = state.objects.keys().cloned().collect();
        for object in &refs {
            state.index(object);
        }
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
