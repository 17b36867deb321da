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
    pub queue: Arc<WorkQueue<ObjectRef>>,
    pub metrics: Arc<Metrics>,
    /// Who this controller is, on every event it records.
    pub identity: String,
}

impl Context {
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
