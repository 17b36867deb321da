//! Nomad's node list, kept by one blocking query instead of one listing per pub reconcile
//! (at 1,000 nodes that listing was a third of nomad-sim's work during a cold start). Nomad
//! bumps the nodes index on status, drain and eligibility changes, not on heartbeats, so the
//! query wakes exactly when placement could change.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tracing::debug;

use super::context::Context;
use super::queue::backoff;
use crate::clients::nomad_types::NodeStub;
use crate::clients::QueryOptions;

#[derive(Default)]
pub struct NodeCache {
    /// `None` until the first answer, and again while the query fails.
    nodes: RwLock<Option<Arc<Vec<NodeStub>>>>,
}

impl NodeCache {
    pub fn get(&self) -> Option<Arc<Vec<NodeStub>>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, nodes: Option<Vec<NodeStub>>) {
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = nodes.map(Arc::new);
    }
}

/// Keeps `ctx.nodes` current; a failure empties it, so readers ask Nomad themselves.
pub async fn follow(ctx: Arc<Context>) {
    let mut index = 0u64;
    let mut failures = 0u32;
    loop {
        let options = QueryOptions::default()
            .param("resources", "true")
            .blocking(index, Duration::from_secs(300));
        match ctx.nomad.nodes(options).await {
            Ok(answer) => {
                failures = 0;
                // An index that went backwards means Nomad's state was reset: start over.
                index = if answer.index < index {
                    0
                } else {
                    answer.index
                };
                ctx.nodes.set(Some(answer.value));
            }
            Err(e) => {
                debug!(error = %e, "node query failed");
                ctx.nodes.set(None);
                index = 0;
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}
