//! An App as a Nomad service job: one group of `replicas` instances of one docker task, its
//! Consul service, and restart/reschedule/update policies that let Nomad heal what it can.

use crds::{App, Resource};
use serde_json::{json, Value};

use super::{nanos, network, placement, service, task};
use crate::meta::{job_id, job_meta};
use crate::spec_hash::spec_hash;

/// The group and task name inside every App job.
pub const GROUP: &str = "app";

pub fn render_app(app: &App) -> Value {
    let resource = Resource::App(app.clone());
    let spec = &app.spec;
    let object = app.object_ref();
    let router = format!("{}-{}", object.namespace, object.name);
    let (datacenters, node_pool, constraints) = placement(&spec.placement);
    let services: Vec<Value> = service(
        &object.name,
        &router,
        &spec.ports,
        spec.health.as_ref(),
        spec.route.as_ref(),
    )
    .into_iter()
    .collect();
    let update = &spec.update;
    let mut job = json!({
        "ID": job_id(&object),
        "Name": object.name,
        "Namespace": object.namespace,
        "Type": "service",
        "Datacenters": datacenters,
        "Constraints": constraints,
        "Meta": job_meta(&resource, &spec_hash(&resource)),
        "Update": {
            "MaxParallel": update.max_parallel,
            "HealthCheck": if spec.health.is_some() { "checks" } else { "task_states" },
            "MinHealthyTime": nanos(update.min_healthy_time.get()),
            "HealthyDeadline": nanos(update.healthy_deadline.get()),
            "ProgressDeadline": nanos(update.healthy_deadline.get()) * 2,
            "AutoRevert": update.auto_revert,
        },
        "TaskGroups": [{
            "Name": GROUP,
            "Count": spec.replicas,
            "Networks": [network(&spec.ports)],
            "Services": services,
            // Two quick restarts in place, then fail the allocation so Nomad reschedules it.
            "RestartPolicy": {"Attempts": 2, "Interval": nanos(std::time::Duration::from_secs(300)), "Delay": nanos(std::time::Duration::from_secs(10)), "Mode": "fail"},
            // Reschedule forever, backing off from 15 s to 5 min between attempts.
            "ReschedulePolicy": {"Unlimited": true, "Delay": nanos(std::time::Duration::from_secs(15)), "DelayFunction": "exponential", "MaxDelay": nanos(std::time::Duration::from_secs(300))},
            "Tasks": [task(GROUP, &spec.image, spec.command.as_deref(), &spec.args, &spec.ports, &spec.resources, &spec.env)],
        }],
    });
    if let Some(pool) = node_pool {
        job["NodePool"] = json!(pool);
    }
    job
}
