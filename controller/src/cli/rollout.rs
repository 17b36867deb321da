//! `nomarch rollout`: see where a rollout stands and what came before it, promote one waiting
//! on its canaries, undo a generation, retry one Nomad rolled back, restart the instances
//! (`restart.rs`).

use std::time::Duration;

use crds::status::RolloutStatus;
use crds::ObjectRef;

use super::say;
use super::{connect, parse_kind, wait, CliError, StoreArgs};
use crate::store::{ApplyOutcome, StoreError};

#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Promote the canaries (or the new set of a blue/green rollout) of the rollout in progress
    Promote {
        /// KIND/NAME, e.g. app/web
        #[arg(add = super::complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
    /// Show where an object's rollout stands; with --watch, follow it until it is done
    /// (exit 0 when it succeeded, 7 when it failed or was rolled back, 8 on timeout)
    ///
    /// Example: nomarch rollout status app/web --watch --timeout 5m
    Status {
        /// KIND/NAME, e.g. app/web
        #[arg(add = super::complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        #[arg(short = 'w', long)]
        watch: bool,
        /// How long --watch waits
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Each stored generation (10 are kept): when, from which commit, what changed, the Nomad
    /// job version it became and how its rollout ended
    History {
        /// KIND/NAME, e.g. app/web
        #[arg(add = super::complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Apply a stored generation's spec again, as a new generation (refused for objects a
    /// GitSource owns: revert the commit instead)
    Undo {
        /// KIND/NAME, e.g. app/web
        #[arg(add = super::complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        /// The generation to go back to (default: the one before the current)
        #[arg(long)]
        to_generation: Option<i64>,
    },
    /// Restart every running instance in place, at most maxParallel at a time, each batch
    /// waiting until its instances run and pass their checks again (exit 8 on timeout)
    Restart {
        /// KIND/NAME, e.g. app/web
        #[arg(add = super::complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        /// How long the whole restart may take
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        nomad: connect::NomadArgs,
        #[command(flatten)]
        consul: connect::ConsulArgs,
    },
    /// Register a spec Nomad rolled back once more (sets the nomarch.io/retry annotation)
    Retry {
        /// KIND/NAME, e.g. app/web
        #[arg(add = super::complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

pub async fn run(store_args: &StoreArgs, action: RolloutAction) -> Result<(), CliError> {
    match action {
        RolloutAction::Promote {
            object,
            namespace,
            nomad,
        } => promote(&object, &namespace, &nomad).await,
        RolloutAction::Status {
            object,
            namespace,
            watch,
            timeout,
        } => status(store_args, &object, &namespace, watch.then_some(timeout)).await,
        RolloutAction::History { object, namespace } => {
            history(store_args, &object_ref(&object, &namespace)?).await
        }
        RolloutAction::Undo {
            object,
            namespace,
            to_generation,
        } => undo(store_args, &object_ref(&object, &namespace)?, to_generation).await,
        RolloutAction::Restart {
            object,
            namespace,
            timeout,
            nomad,
            consul,
        } => {
            let object = object_ref(&object, &namespace)?;
            super::restart::run(store_args, &object, &nomad, &consul, timeout).await
        }
        RolloutAction::Retry { object, namespace } => {
            retry(store_args, &object_ref(&object, &namespace)?).await
        }
    }
}

/// The object as stored, or NotFound.
/// `nomarch rollout history KIND/NAME`.
async fn history(store_args: &StoreArgs, object: &ObjectRef) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let current = store.get_existing(object).await?;
    let mut generations = store.history(object).await?;
    let status = current.status().cloned();
    generations.push(current);
    let rows: Vec<Vec<(&str, String)>> = reconcilers::history::rows(&generations, status.as_ref())
        .into_iter()
        .map(|row| {
            vec![
                ("GENERATION", row.generation.to_string()),
                ("TIME", row.time),
                ("COMMIT", row.commit),
                ("JOB VERSION", row.job_version),
                ("OUTCOME", row.outcome),
                ("CHANGE", row.change),
            ]
        })
        .collect();
    super::output::print_table(&rows);
    Ok(())
}

/// `nomarch rollout undo KIND/NAME [--to-generation N]`: the stored spec of generation N (by
/// default the one before the current), applied as a new generation; labels and annotations
/// stay as they are now. Written only if the object did not change meanwhile.
async fn undo(
    store_args: &StoreArgs,
    object: &ObjectRef,
    to_generation: Option<i64>,
) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let current = store.get_existing(object).await?;
    let history = store.history(object).await?;
    let undone =
        reconcilers::history::undo(&current, &history, to_generation).map_err(|e| match e {
            reconcilers::history::UndoRefusal::Refused(why) => CliError::Usage(why),
            reconcilers::history::UndoRefusal::NotKept(why) => CliError::NotFound(why),
        })?;
    let generation = current.metadata().generation;
    let wanted = to_generation.unwrap_or(generation - 1);
    let outcomes = store.apply(&[undone]).await?;
    let done = outcomes
        .first()
        .map_or(ApplyOutcome::Unchanged, |(_, outcome)| *outcome);
    match done {
        ApplyOutcome::Unchanged => say!("{object} already has generation {wanted}'s spec"),
        _ => say!(
            "{object} rolled back to generation {wanted}'s spec (as generation {})",
            generation + 1
        ),
    }
    Ok(())
}

/// `nomarch rollout retry KIND/NAME`: a new value of the retry annotation, so the controller
/// registers the spec Nomad rolled back once more.
async fn retry(store_args: &StoreArgs, object: &ObjectRef) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let mut retried = store.get_existing(object).await?;
    let token = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    reconcilers::operator::ask_retry(&mut retried, &token).map_err(CliError::Usage)?;
    retried.set_status(None);
    store.apply(&[retried]).await?;
    say!("{object}: retry asked for");
    Ok(())
}

/// `KIND/NAME` as people type it.
pub(super) fn object_ref(text: &str, namespace: &str) -> Result<ObjectRef, CliError> {
    let Some((kind, name)) = text.split_once('/') else {
        return Err(CliError::Usage(format!(
            "`{text}` is not KIND/NAME (for example app/web)"
        )));
    };
    Ok(ObjectRef::new(parse_kind(kind)?, namespace, name))
}

/// `nomarch rollout status KIND/NAME [--watch]`: where the object's current generation stands,
/// with the rollout's groups; `--watch` follows it as `apply --wait` does.
async fn status(
    store_args: &StoreArgs,
    object: &str,
    namespace: &str,
    watch: Option<Duration>,
) -> Result<(), CliError> {
    let object = object_ref(object, namespace)?;
    let store = store_args.connect().await?;
    let Some(stored) = store.get(&object).await? else {
        return Err(StoreError::NotFound(object.to_string()).into());
    };
    let generation = stored.metadata().generation;
    if let Some(timeout) = watch {
        return wait::follow(&store, &[(object, generation.into())], timeout)
            .await?
            .into_result();
    }
    let verdict = wait::verdict(object.kind, generation, stored.status());
    say!("{}", wait::describe(&object, &verdict, None));
    if let Some(rollout) = stored.status().and_then(|s| s.workload.rollout.as_ref()) {
        for line in rollout_lines(rollout) {
            say!("  {line}");
        }
    }
    match verdict {
        wait::Verdict::Failed(_) | wait::Verdict::RolledBack(_) => Err(CliError::RolloutFailed(
            format!("{object} did not roll out generation {generation}"),
        )),
        _ => Ok(()),
    }
}

/// The deployment behind the rollout, a line per group.
pub(super) fn rollout_lines(rollout: &RolloutStatus) -> Vec<String> {
    let origin = match rollout.generation {
        Some(generation) => format!("generation {generation}"),
        None => "not written by nomarch".to_string(),
    };
    let mut lines = vec![format!(
        "deployment {}: {:?}, job version {} ({origin}): {}",
        rollout.deployment_id, rollout.phase, rollout.job_version, rollout.description
    )];
    for (name, group) in &rollout.groups {
        let mut line = format!(
            "group {name}: {}/{} healthy, {} placed, {} unhealthy",
            group.healthy, group.desired, group.placed, group.unhealthy
        );
        if group.desired_canaries > 0 {
            let promoted = if group.promoted {
                "promoted"
            } else {
                "not promoted"
            };
            line.push_str(&format!(
                ", canaries {}/{} {promoted}",
                group.placed_canaries, group.desired_canaries
            ));
        }
        lines.push(line);
    }
    if let Some(deadline) = rollout.deadline {
        lines.push(format!(
            "fails unless progress by {}",
            deadline.to_rfc3339()
        ));
    }
    lines
}

/// `nomarch rollout promote KIND/NAME`: promotes the job's running deployment, as
/// `nomad deployment promote` does; Nomad refuses while a canary is not healthy.
async fn promote(
    object: &str,
    namespace: &str,
    nomad_args: &connect::NomadArgs,
) -> Result<(), CliError> {
    let object = object_ref(object, namespace)?;
    if !matches!(object.kind, crds::Kind::App | crds::Kind::NomadJob) {
        return Err(CliError::Usage(format!(
            "{object}: only apps and Nomad jobs roll out with canaries or blue/green"
        )));
    }
    let nomad = nomad_args.client(|_| {})?;
    let job = reconcilers::meta::job_id(&object);
    let (deployment, reply) = nomad
        .promote_running(namespace, &job)
        .await
        .map_err(|e| CliError::Runtime(format!("{object} could not be promoted: {e}")))?
        .ok_or_else(|| CliError::Runtime(format!("{object} has no rollout in progress")))?;
    say!(
        "{object} promoted (deployment {}, evaluation {})",
        deployment,
        reply.get("EvalID").and_then(|v| v.as_str()).unwrap_or("?")
    );
    Ok(())
}
