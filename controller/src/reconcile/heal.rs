//! Healing's memory across objects: the troubles seen per node (what `reconcilers::workload`
//! decided were troubles), to tell a suspect node from one application's bug. The executor
//! notes each trouble here and says `NodeSuspect` when the pure rule
//! (`reconcilers::healing::note_trouble`) says the node just became suspect.

use crds::ObjectRef;
use reconcilers::effects::NodeTrouble;
use reconcilers::healing::{note_trouble, Trouble};

/// Per node ID: when each recent heal or failure happened, and which allocation it was.
pub type Troubles = std::collections::HashMap<String, Vec<Trouble>>;

/// What healing remembers across objects and reconciles: the troubles seen per node; and
/// whether to cordon a suspect node.
#[derive(Default)]
pub struct HealState {
    troubles: std::sync::Mutex<Troubles>,
    /// Mark nodes that keep failing ineligible (`--cordon-suspect-nodes`).
    pub cordon_suspect_nodes: bool,
}

impl HealState {
    pub fn new(cordon_suspect_nodes: bool) -> HealState {
        HealState {
            troubles: Default::default(),
            cordon_suspect_nodes,
        }
    }

    /// Notes `object`'s trouble on its node; the evidence against the node when this trouble
    /// makes it suspect.
    pub fn note(&self, object: &ObjectRef, trouble: &NodeTrouble) -> Option<usize> {
        if trouble.node_id.is_empty() {
            return None;
        }
        let mut troubles = self.troubles.lock().unwrap_or_else(|p| p.into_inner());
        let list = troubles.entry(trouble.node_id.clone()).or_default();
        let noted = Trouble {
            at: trouble.at,
            alloc: trouble.alloc.clone(),
            object: object.to_string(),
            kind: trouble.kind,
        };
        note_trouble(list, noted, trouble.at)
    }
}
