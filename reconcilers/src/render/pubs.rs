//! A Pub as a Nomad service job of one instance pinned to its hub with a `${node.unique.id}`
//! constraint. The hub is part of the rendered job, so moving the pub is a change to register.

use crds::{Pub, Resource};
use serde_json::{json, Value};

use super::{
    apply_overrides, mount_volumes, network, service_env_templates, service_reschedule_policy,
    service_restart_policy, services, stop_if_stopped, task,
};
use crate::meta::{job_id, job_meta};

pub const GROUP: &str = "pub";

/// The pub's job pinned to `hub_id`, in the hub's node pool (`hub_pool`; empty for a Nomad
/// without pools). Without the pool, Nomad would look for the hub only in the `default` pool
/// and never place a pub on a hub in another one.
pub fn render_pub(pub_: &Pub, hub_id: &str, hub_pool: &str) -> Value {
    let resource = Resource::Pub(pub_.clone());
    let spec = &pub_.spec;
    let object = pub_.object_ref();
    let services = services(
        &object,
        &spec.ports,
        spec.health.as_ref(),
        spec.route.as_ref(),
    );
    let mut meta = job_meta(&resource);
    meta.insert("nomarch.io/hub".to_string(), hub_id.to_string());
    let mut job = json!({
        "ID": job_id(&object),
        "Name": object.name,
        "Namespace": object.namespace,
        "Type": "service",
        "Datacenters": ["*"],
        "Constraints": [{"LTarget": "${node.unique.id}", "Operand": "=", "RTarget": hub_id}],
        "Meta": meta,
        "TaskGroups": [{
            "Name": GROUP,
            "Count": 1,
            "Networks": [network(&spec.ports)],
            "Services": services,
            // Restart in place; a failed pub is replaced on the same hub (the constraint holds).
            "RestartPolicy": service_restart_policy(),
            "ReschedulePolicy": service_reschedule_policy(),
            "Tasks": [task(GROUP, spec.container(), &spec.ports)],
        }],
    });
    if !hub_pool.is_empty() {
        job["NodePool"] = json!(hub_pool);
    }
    mount_volumes(&mut job, &spec.volumes);
    service_env_templates(&mut job, &object, &spec.env);
    apply_overrides(&mut job, &spec.nomad);
    stop_if_stopped(&mut job, spec.stopped);
    job
}
