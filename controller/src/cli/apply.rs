//! `nomarch apply -f`: every manifest valid (a NomadJob's job by Nomad's own checks too), or
//! nothing written.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::{ApplyOutcome, EventType, NewEvent, Store};

use super::connect::NomadArgs;
use super::say;
use super::{wait, CliError, StoreArgs};
use crate::reconcile::nomadjob::{check_manifests, CheckError};

/// Applies the files; with `wait`, then follows what changed until it is done or the time is up.
pub async fn run(
    store_args: &StoreArgs,
    files: &[PathBuf],
    nomad_args: &NomadArgs,
    wait: Option<Duration>,
) -> Result<(), CliError> {
    // Validate everything before touching etcd: one bad document means no writes at all.
    let manifests = crds::load_paths(files).map_err(CliError::Invalid)?;
    // NomadJobs are asked of Nomad too (their HCL parsed, their job validated), still before
    // anything is written.
    if manifests
        .iter()
        .any(|m| m.resource.kind() == crds::Kind::NomadJob)
    {
        let nomad = nomad_args.client(|_| {})?;
        match check_manifests(&nomad, &manifests).await {
            Ok(()) => {}
            Err(CheckError::Invalid(problems)) => return Err(CliError::Invalid(problems)),
            Err(e @ CheckError::Nomad(_)) => return Err(CliError::Runtime(e.to_string())),
        }
    }
    let store = store_args.connect().await?;
    let resources: Vec<_> = manifests.into_iter().map(|m| m.resource).collect();
    let outcomes = store.apply(&resources).await?;
    for (object, outcome) in &outcomes {
        say!("{object} {}", outcome.as_str());
    }
    record_events(&store, &outcomes).await;
    let Some(timeout) = wait else {
        return Ok(());
    };
    // The generation each change made, read back: what the controller must reach.
    let mut targets = Vec::new();
    for (object, outcome) in &outcomes {
        if *outcome == ApplyOutcome::Unchanged {
            continue;
        }
        if let Some(stored) = store.get(object).await? {
            targets.push((object.clone(), stored.metadata().generation.into()));
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    wait::follow(&store, &targets, timeout).await?.into_result()
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
