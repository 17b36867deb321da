//! `nomarch apply -f`: every manifest valid, or nothing written.

use std::path::PathBuf;

use crate::store::{ApplyOutcome, EventType, NewEvent, Store};

use super::{CliError, StoreArgs};

pub async fn run(store_args: &StoreArgs, files: &[PathBuf]) -> Result<(), CliError> {
    // Validate everything before touching etcd: one bad document means no writes at all.
    let manifests = crds::load_paths(files).map_err(CliError::Invalid)?;
    let store = store_args.connect().await?;
    let resources: Vec<_> = manifests.into_iter().map(|m| m.resource).collect();
    let outcomes = store.apply(&resources).await?;
    for (object, outcome) in &outcomes {
        println!("{object} {}", outcome.as_str());
    }
    record_events(&store, &outcomes).await;
    Ok(())
}

/// Tells `nomarch events` readers what changed. The objects are already written, so a failure
/// here is a warning, not a failed apply.
async fn record_events(store: &Store, outcomes: &[(crds::ObjectRef, ApplyOutcome)]) {
    for (object, outcome) in outcomes {
        let reason = match outcome {
            ApplyOutcome::Created => "Created",
            ApplyOutcome::Configured => "Configured",
            ApplyOutcome::Unchanged => continue,
        };
        let event = NewEvent {
            type_: EventType::Normal,
            reason: reason.to_string(),
            object: object.clone(),
            message: format!("{} by nomarch apply", outcome.as_str()),
            source: "cli".to_string(),
        };
        if let Err(e) = store.record_event(event).await {
            eprintln!(
                "warning: {object} was {} but its event was not recorded: {e}",
                outcome.as_str()
            );
        }
    }
}
