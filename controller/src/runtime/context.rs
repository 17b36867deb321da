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
    /// Records an event; a failure to record is logged, never fatal to the reconcile.
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
        if let Err(e) = self.store.record_event(event).await {
            warn!(object = %object, reason, error = %e, "could not record event");
        }
    }
}
