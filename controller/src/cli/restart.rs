//! `nomarch rollout restart KIND/NAME`: every running instance restarted in place, at most
//! `maxParallel` at a time, each batch waiting until its instances run again and (with health
//! checks) pass them in Consul before the next starts.
//!
//! This is `nomad job restart` (command/job_restart.go: batches of in-place restarts through
//! the allocation restart API, one batch after the other), with the batch size taken from the
//! App's update block and health, not just "running", as the bar for the next batch.

use std::collections::HashMap;
use std::time::Duration;

use crds::{ObjectRef, Resource};
use tokio::time::Instant;

use super::say;
use super::{connect, CliError, StoreArgs};
use crate::clients::nomad_types::AllocStub;
use crate::clients::{ConsulClient, NomadClient, QueryOptions};

/// How often a batch is looked at while it restarts.
const POLL: Duration = Duration::from_millis(200);

/// What a restart needs to know of the object.
struct Target {
    job: String,
    service: String,
    max_parallel: usize,
    has_checks: bool,
}

impl Target {
    fn of(object: &ObjectRef, resource: &Resource) -> Result<Target, CliError> {
        let (max_parallel, has_checks) = match resource {
            Resource::App(app) => (app.spec.update.max_parallel, app.spec.health.is_some()),
            // One instance: nothing runs beside it while it restarts.
            Resource::Pub(pub_) => (1, pub_.spec.health.is_some()),
            _ => {
                return Err(CliError::Usage(format!(
                    "{object}: only apps and pubs run instances to restart"
                )))
            }
        };
        if let Some(rollout) = resource.status().and_then(|s| s.workload.rollout.as_ref()) {
            if !rollout.phase.is_terminal() {
                return Err(CliError::Usage(format!(
                    "{object} is rolling out (deployment {}, {:?}); restart once it is over",
                    rollout.deployment_id, rollout.phase
                )));
            }
        }
        Ok(Target {
            job: reconcilers::meta::job_id(object),
            service: reconcilers::render::service_name(object),
            max_parallel: max_parallel.max(1) as usize,
            has_checks,
        })
    }
}

/// The running instances in batches of `max_parallel`, in a stable order (by node, then ID).
pub fn batches(allocs: &[AllocStub], max_parallel: usize) -> Vec<Vec<AllocStub>> {
    let mut running: Vec<AllocStub> = allocs
        .iter()
        .filter(|a| a.desired_status == "run" && a.client_status == "running")
        .cloned()
        .collect();
    running.sort_by(|a, b| (&a.node_name, &a.id).cmp(&(&b.node_name, &b.id)));
    running
        .chunks(max_parallel.max(1))
        .map(<[AllocStub]>::to_vec)
        .collect()
}

/// Restarts counted over an allocation's tasks (`TaskStates.*.Restarts`).
pub fn restarts(alloc: &AllocStub) -> u64 {
    alloc
        .extra
        .get("TaskStates")
        .and_then(|states| states.as_object())
        .map_or(0, |states| {
            states
                .values()
                .filter_map(|s| s.get("Restarts").and_then(|r| r.as_u64()))
                .sum()
        })
}

/// Where one restarted instance stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Instance {
    Restarting,
    /// Running again; its checks not passing yet.
    Running,
    Healthy,
    /// Gone or stopped meanwhile (replaced, drained).
    Gone,
}

/// The instance `id` as Nomad and Consul show it now; `before` is its restart count before.
pub fn instance(
    now: Option<&AllocStub>,
    before: u64,
    checks: &HashMap<String, bool>,
    has_checks: bool,
) -> Instance {
    let Some(alloc) = now.filter(|a| a.desired_status == "run") else {
        return Instance::Gone;
    };
    match (
        alloc.client_status.as_str(),
        restarts(alloc) > before,
        checks.get(&alloc.id),
    ) {
        ("running", true, Some(true)) => Instance::Healthy,
        ("running", true, _) if !has_checks => Instance::Healthy,
        ("running", true, _) => Instance::Running,
        ("pending" | "running", _, _) => Instance::Restarting,
        _ => Instance::Gone,
    }
}

pub async fn run(
    store_args: &StoreArgs,
    object: &ObjectRef,
    nomad_args: &connect::NomadArgs,
    consul_args: &connect::ConsulArgs,
    timeout: Duration,
) -> Result<(), CliError> {
    let store = store_args.connect().await?;
    let resource = store.get_existing(object).await?;
    let target = Target::of(object, &resource)?;
    let nomad = nomad_args.client(|_| {})?;
    let consul = consul_args.client(|_| {})?;
    let namespace = &object.namespace;
    let allocs = job_allocations(&nomad, object, &target).await?;
    let batches = batches(&allocs, target.max_parallel);
    let count: usize = batches.iter().map(Vec::len).sum();
    if count == 0 {
        return Err(CliError::Runtime(format!(
            "{object} has no running instance to restart"
        )));
    }
    say!(
        "restarting {object}: {count} instance(s), {} at a time",
        target.max_parallel
    );
    let started = Instant::now();
    let deadline = started + timeout;
    for batch in &batches {
        for alloc in batch {
            nomad
                .restart_allocation(namespace, &alloc.id)
                .await
                .map_err(|e| CliError::Runtime(format!("{object}: {}: {e}", short(&alloc.id))))?;
            say!("  {} on {}: restarting", short(&alloc.id), alloc.node_name);
        }
        wait_for_batch(&nomad, &consul, object, &target, batch, deadline).await?;
    }
    say!(
        "{object} restarted: {count} instance(s) in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}

async fn job_allocations(
    nomad: &NomadClient,
    object: &ObjectRef,
    target: &Target,
) -> Result<Vec<AllocStub>, CliError> {
    Ok(nomad
        .job_allocations(&object.namespace, &target.job, QueryOptions::default())
        .await
        .map_err(|e| CliError::Runtime(format!("{object}: {e}")))?
        .value)
}

/// Until each instance of the batch is healthy again; an instance that went away fails the
/// restart (something else replaced it: a deploy, a drain), the deadline times it out.
async fn wait_for_batch(
    nomad: &NomadClient,
    consul: &ConsulClient,
    object: &ObjectRef,
    target: &Target,
    batch: &[AllocStub],
    deadline: Instant,
) -> Result<(), CliError> {
    let before: HashMap<&str, u64> = batch.iter().map(|a| (a.id.as_str(), restarts(a))).collect();
    loop {
        let allocs = job_allocations(nomad, object, target).await?;
        let checks = if target.has_checks {
            consul
                .checks_by_alloc(&target.service)
                .await
                .map_err(|e| CliError::Runtime(format!("{object}: {e}")))?
        } else {
            HashMap::new()
        };
        let mut waiting = Vec::new();
        for alloc in batch {
            let now = allocs.iter().find(|a| a.id == alloc.id);
            match instance(now, before[alloc.id.as_str()], &checks, target.has_checks) {
                Instance::Healthy => {}
                Instance::Gone => {
                    return Err(CliError::Runtime(format!(
                        "{object}: instance {} went away while restarting; nothing more restarted",
                        short(&alloc.id)
                    )))
                }
                state => waiting.push(format!("{} {state:?}", short(&alloc.id))),
            }
        }
        if waiting.is_empty() {
            for alloc in batch {
                say!("  {}: running and healthy again", short(&alloc.id));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout(format!(
                "{object}: timed out waiting for {}",
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alloc(id: &str, node: &str, client: &str, restarts: u64) -> AllocStub {
        serde_json::from_value(json!({
            "ID": id, "JobID": "web", "NodeName": node, "ClientStatus": client,
            "DesiredStatus": "run", "TaskStates": {"app": {"Restarts": restarts}},
        }))
        .unwrap()
    }

    #[test]
    fn running_instances_go_in_batches_of_max_parallel() {
        let allocs = [
            alloc("d", "node-2", "running", 0),
            alloc("a", "node-1", "running", 0),
            alloc("p", "node-1", "pending", 0),
            alloc("c", "node-3", "running", 0),
            alloc("b", "node-1", "running", 0),
        ];
        let batched = batches(&allocs, 2);
        let ids: Vec<Vec<&str>> = batched
            .iter()
            .map(|b| b.iter().map(|a| a.id.as_str()).collect())
            .collect();
        assert_eq!(ids, [vec!["a", "b"], vec!["d", "c"]]);
        assert_eq!(batches(&allocs, 0).len(), 4, "at least one at a time");
    }

    #[test]
    fn an_instance_is_done_when_restarted_running_and_passing() {
        let passing: HashMap<String, bool> = [("a".to_string(), true)].into();
        let failing: HashMap<String, bool> = [("a".to_string(), false)].into();
        let none = HashMap::new();
        let cases = [
            (
                Some(alloc("a", "n", "running", 0)),
                &passing,
                true,
                Instance::Restarting,
            ),
            (
                Some(alloc("a", "n", "pending", 1)),
                &passing,
                true,
                Instance::Restarting,
            ),
            (
                Some(alloc("a", "n", "running", 1)),
                &failing,
                true,
                Instance::Running,
            ),
            (
                Some(alloc("a", "n", "running", 1)),
                &none,
                true,
                Instance::Running,
            ),
            (
                Some(alloc("a", "n", "running", 1)),
                &passing,
                true,
                Instance::Healthy,
            ),
            (
                Some(alloc("a", "n", "running", 1)),
                &none,
                false,
                Instance::Healthy,
            ),
            (
                Some(alloc("a", "n", "failed", 1)),
                &none,
                false,
                Instance::Gone,
            ),
            (None, &none, false, Instance::Gone),
        ];
        for (now, checks, has_checks, want) in cases {
            assert_eq!(
                instance(now.as_ref(), 0, checks, has_checks),
                want,
                "{now:?}"
            );
        }
    }
}
