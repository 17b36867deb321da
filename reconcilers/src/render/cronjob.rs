//! A CronJob as a Nomad periodic batch job: Nomad launches `<id>/periodic-<time>` children on
//! the schedule; `suspend` disables the periodic block without touching past runs.

use crds::kinds::ConcurrencyPolicy;
use crds::{CronJob, Resource};
use serde_json::{json, Value};

use super::{apply_overrides, mount_volumes, nanos, placement, service_env_templates, task};
use crate::meta::{job_id, job_meta};

pub const GROUP: &str = "run";

pub fn render_cronjob(cron: &CronJob) -> Value {
    let resource = Resource::CronJob(cron.clone());
    let spec = &cron.spec;
    let object = cron.object_ref();
    let (datacenters, node_pool, constraints) = placement(&spec.placement);
    let mut job = json!({
        "ID": job_id(&object),
        "Name": object.name,
        "Namespace": object.namespace,
        "Type": "batch",
        "Datacenters": datacenters,
        "Constraints": constraints,
        "Meta": job_meta(&resource),
        "Periodic": {
            "Enabled": !spec.suspend,
            "SpecType": "cron",
            "Specs": [spec.schedule.trim()],
            "TimeZone": spec.time_zone,
            "ProhibitOverlap": spec.concurrency_policy == ConcurrencyPolicy::Forbid,
        },
        "TaskGroups": [{
            "Name": GROUP,
            "Count": 1,
            // A failed run is retried in place once, then reported; the next run is the retry.
            "RestartPolicy": {"Attempts": 1, "Interval": nanos(std::time::Duration::from_secs(600)), "Delay": nanos(std::time::Duration::from_secs(15)), "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [task(GROUP, spec.task.container(), &[])],
        }],
    });
    if let Some(pool) = node_pool {
        job["NodePool"] = json!(pool);
    }
    mount_volumes(&mut job, &spec.volumes);
    service_env_templates(&mut job, &object, &spec.task.env);
    apply_overrides(&mut job, &spec.nomad);
    job
}
