//! The reflector's cache: every object and status as of the last watch event. Reconcilers read
//! desired state here instead of asking etcd each time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crds::{Kind, ObjectRef, Resource, Status};
use tokio::sync::watch;

#[derive(Default)]
struct State {
    objects: HashMap<ObjectRef, Resource>,
    statuses: HashMap<ObjectRef, Status>,
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
        resource.set_status(state.statuses.get(object).cloned());
        Some(resource)
    }

    pub fn status(&self, object: &ObjectRef) -> Option<Status> {
        self.read().statuses.get(object).cloned()
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

    pub fn put_status(&self, object: ObjectRef, status: Status) {
        self.write().statuses.insert(object, status);
    }

    pub fn remove_status(&self, object: &ObjectRef) {
        self.write().statuses.remove(object);
    }

    /// Replaces everything (after a listing); returns the refs that appeared, changed or went.
    pub fn replace(
        &self,
        objects: Vec<Resource>,
        statuses: Vec<(ObjectRef, Status)>,
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
        state.statuses = statuses.into_iter().collect();
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
