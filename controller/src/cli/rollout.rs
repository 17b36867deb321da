//! `nomarch rollout`: promote a rollout waiting on its canaries, and see where one stands.

use std::time::Duration;

use crds::status::RolloutStatus;
use crds::ObjectRef;

use super::{connect, parse_kind, wait, CliError, StoreArgs};
use crate::store::StoreError;

#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Promote the canaries (or the new set of a blue/green rollout) of the rollout in progress
    Promote {
        /// KIND/NAME, e.g. app/web
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
    /// Show where an object's rollout stands; with --watch, follow it until it is done
    /// (exit 0 when it succeeded, 7 when it failed or was rolled back, 8 on timeout)
    Status {
        /// KIND/NAME, e.g. app/web
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        #[arg(short = 'w', long)]
        watch: bool,
        /// How long --watch waits
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
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
    }
}

/// `KIND/NAME` as people type it.
fn object_ref(text: &str, namespace: &str) -> Result<ObjectRef, CliError> {
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
        return wait::follow(&store, &[(object, generation)], timeout)
            .await?
            .into_result();
    }
    let verdict = wait::verdict(object.kind, generation, stored.status());
    println!("{}", wait::describe(&object, &verdict, None));
    if let Some(rollout) = stored.status().and_then(|s| s.workload.rollout.as_ref()) {
        for line in rollout_lines(rollout) {
            println!("  {line}");
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
fn rollout_lines(rollout: &RolloutStatus) -> Vec<String> {
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
    if object.kind != crds::Kind::App {
        return Err(CliError::Usage(format!(
            "{object}: only apps roll out with canaries or blue/green"
        )));
    }
    let nomad = nomad_args.client(|_| {})?;
    let job = reconcilers::meta::job_id(&object);
    let deployments = nomad
        .job_deployments(namespace, &job)
        .await
        .map_err(|e| CliError::Runtime(format!("{object}: {e}")))?;
    let Some(running) = deployments
        .iter()
        .filter(|d| d.status == "running")
        .max_by_key(|d| d.job_version)
    else {
        return Err(CliError::Runtime(format!(
            "{object} has no rollout in progress"
        )));
    };
    let reply = nomad
        .promote_deployment(namespace, &running.id)
        .await
        .map_err(|e| CliError::Runtime(format!("{object} could not be promoted: {e}")))?;
    println!(
        "{object} promoted (deployment {}, evaluation {})",
        running.id,
        reply.get("EvalID").and_then(|v| v.as_str()).unwrap_or("?")
    );
    Ok(())
}
