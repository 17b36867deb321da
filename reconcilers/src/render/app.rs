//! An App as a Nomad service job: one group of `replicas` instances of one docker task, its
//! Consul service, and restart/reschedule/update policies that let Nomad heal what it can.

use crds::{App, Resource};
use serde_json::{json, Value};

use super::{
    apply_overrides, hold_traffic_from_canaries, mount_volumes, network, placement,
    service_env_templates, service_reschedule_policy, service_restart_policy, services,
    stop_if_stopped, task, update_block,
};
use crate::meta::{job_id, job_meta};

/// The group and task name inside every App job.
pub const GROUP: &str = "app";

pub fn render_app(app: &App) -> Value {
    let resource = Resource::App(app.clone());
    let spec = &app.spec;
    let object = app.object_ref();
    let (datacenters, node_pool, constraints) = placement(&spec.placement);
    let mut services = services(
        &object,
        &spec.ports,
        spec.health.as_ref(),
        spec.route.as_ref(),
    );
    let update = &spec.update;
    hold_traffic_from_canaries(&mut services, update);
    let mut job = json!({
        "ID": job_id(&object),
        "Name": object.name,
        "Namespace": object.namespace,
        "Type": "service",
        "Datacenters": datacenters,
        "Constraints": constraints,
        "Meta": job_meta(&resource),
        "Update": update_block(update, spec.replicas, spec.health.is_some()),
        "TaskGroups": [{
            "Name": GROUP,
            "Count": spec.replicas,
            "Networks": [network(&spec.ports)],
            "Services": services,
            "RestartPolicy": service_restart_policy(),
            "ReschedulePolicy": service_reschedule_policy(),
            "Tasks": [task(GROUP, spec.container(), &spec.ports)],
        }],
    });
    if let Some(pool) = node_pool {
        job["NodePool"] = json!(pool);
    }
    mount_volumes(&mut job, &spec.volumes);
    service_env_templates(&mut job, &object, &spec.env);
    apply_overrides(&mut job, &spec.nomad);
    stop_if_stopped(&mut job, spec.stopped);
    job
}
