//! `rollout restart` (the CLI's, the API's, the dashboard's): every running instance restarted
//! in place, at most `maxParallel` at a time, each batch waiting until its instances run again
//! and (with health checks) pass them in Consul before the next starts.
//!
//! This is `nomad job restart` (command/job_restart.go: batches of in-place restarts through
//! the allocation restart API, one batch after the other), with the batch size taken from the
//! App's update block and health, not just "running", as the bar for the next batch. What
//! happens is told step by step ([`Step`]): the CLI prints the steps, the API and the
//! dashboard record them as the object's events.

use std::collections::HashMap;
use std::time::Duration;

use crds::{ObjectRef, Resource};
use tokio::time::Instant;

use crate::clients::nomad_types::AllocStub;
use crate::clients::{ApiError, ConsulClient, NomadClient, QueryOptions};

/// How often a batch is looked at while it restarts.
const POLL: Duration = Duration::from_millis(200);

/// Why a restart was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// It does not apply to the object now (a kind without instances, a rollout under way).
    #[error("{0}")]
    Refused(String),
    /// Nothing runs, an instance went away, or Nomad or Consul failed.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
}

/// What a restart needs to know of the object; made before anything is restarted, so a
/// refusal comes first.
pub struct Target {
    object: ObjectRef,
    job: String,
    service: String,
    pub max_parallel: usize,
    has_checks: bool,
}

impl Target {
    pub fn of(resource: &Resource) -> Result<Target, RestartError> {
        let object = resource.object_ref();
        let (max_parallel, has_checks) = match resource {
            Resource::App(app) => (app.spec.update.max_parallel, app.spec.health.is_some()),
            // One instance: nothing runs beside it while it restarts.
            Resource::Pub(pub_) => (1, pub_.spec.health.is_some()),
            _ => {
                return Err(RestartError::Refused(format!(
                    "{object}: only apps and pubs run instances to restart"
                )))
            }
        };
        if let Some(rollout) = resource.status().and_then(|s| s.workload.rollout.as_ref()) {
            if !rollout.phase.is_terminal() {
                return Err(RestartError::Refused(format!(
                    "{object} is rolling out (deployment {}, {:?}); restart once it is over",
                    rollout.deployment_id, rollout.phase
                )));
            }
        }
        Ok(Target {
            job: reconcilers::meta::job_id(&object),
            service: reconcilers::render::service_name(&object),
            max_parallel: max_parallel.max(1) as usize,
            has_checks,
            object,
        })
    }

    fn failed(&self, e: ApiError) -> RestartError {
        RestartError::Failed(format!("{}: {e}", self.object))
    }

    /// The job's allocations now.
    async fn allocations(&self, nomad: &NomadClient) -> Result<Vec<AllocStub>, RestartError> {
        Ok(nomad
            .job_allocations(&self.object.namespace, &self.job, QueryOptions::default())
            .await
            .map_err(|e| self.failed(e))?
            .value)
    }

    /// The running instances in their batches; refused when nothing runs.
    pub async fn plan(&self, nomad: &NomadClient) -> Result<Vec<Vec<AllocStub>>, RestartError> {
        let batches = batches(&self.allocations(nomad).await?, self.max_parallel);
        if batches.is_empty() {
            return Err(RestartError::Failed(format!(
                "{} has no running instance to restart",
                self.object
            )));
        }
        Ok(batches)
    }
}

/// One step of a restart, as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Started { instances: usize, at_a_time: usize },
    Restarting { instance: String, node: String },
    Healthy { instance: String },
    Done { instances: usize, seconds: u64 },
}

impl Step {
    /// The step in words (the CLI's lines; the events' messages).
    pub fn text(&self, object: &ObjectRef) -> String {
        match self {
            Step::Started {
                instances,
                at_a_time,
            } => format!("restarting {object}: {instances} instance(s), {at_a_time} at a time"),
            Step::Restarting { instance, node } => {
                format!("  {} on {node}: restarting", short(instance))
            }
            Step::Healthy { instance } => {
                format!("  {}: running and healthy again", short(instance))
            }
            Step::Done { instances, seconds } => {
                format!("{object} restarted: {instances} instance(s) in {seconds}s")
            }
        }
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

/// Restarts `batches` (from [`Target::plan`]) one after the other, telling `progress` each
/// step; stops at the first instance that goes away, or at `timeout`.
pub async fn restart(
    nomad: &NomadClient,
    consul: &ConsulClient,
    target: &Target,
    batches: &[Vec<AllocStub>],
    timeout: Duration,
    mut progress: impl FnMut(Step),
) -> Result<(), RestartError> {
    let count: usize = batches.iter().map(Vec::len).sum();
    progress(Step::Started {
        instances: count,
        at_a_time: target.max_parallel,
    });
    let started = Instant::now();
    let deadline = started + timeout;
    for batch in batches {
        for alloc in batch {
            nomad
                .restart_allocation(&target.object.namespace, &alloc.id)
                .await
                .map_err(|e| {
                    RestartError::Failed(format!("{}: {}: {e}", target.object, short(&alloc.id)))
                })?;
            progress(Step::Restarting {
                instance: alloc.id.clone(),
                node: alloc.node_name.clone(),
            });
        }
        wait_for_batch(nomad, consul, target, batch, deadline).await?;
        for alloc in batch {
            progress(Step::Healthy {
                instance: alloc.id.clone(),
            });
        }
    }
    progress(Step::Done {
        instances: count,
        seconds: started.elapsed().as_secs(),
    });
    Ok(())
}

/// Until each instance of the batch is healthy again; an instance that went away fails the
/// restart (something else replaced it: a deploy, a drain), the deadline times it out.
async fn wait_for_batch(
    nomad: &NomadClient,
    consul: &ConsulClient,
    target: &Target,
    batch: &[AllocStub],
    deadline: Instant,
) -> Result<(), RestartError> {
    let object = &target.object;
    let before: HashMap<&str, u64> = batch.iter().map(|a| (a.id.as_str(), restarts(a))).collect();
    loop {
        let allocs = target.allocations(nomad).await?;
        let checks = if target.has_checks {
            consul
                .checks_by_alloc(&target.service)
                .await
                .map_err(|e| target.failed(e))?
        } else {
            HashMap::new()
        };
        let mut waiting = Vec::new();
        for alloc in batch {
            let now = allocs.iter().find(|a| a.id == alloc.id);
            match instance(now, before[alloc.id.as_str()], &checks, target.has_checks) {
                Instance::Healthy => {}
                Instance::Gone => {
                    return Err(RestartError::Failed(format!(
                        "{object}: instance {} went away while restarting; nothing more restarted",
                        short(&alloc.id)
                    )))
                }
                state => waiting.push(format!("{} {state:?}", short(&alloc.id))),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RestartError::Timeout(format!(
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
