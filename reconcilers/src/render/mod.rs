//! Rendering objects into Nomad job JSON. Pure: the same object always renders the same job,
//! which golden tests pin down.
//!
//! The pieces shared by every kind (networks, services with checks and Traefik tags, the task
//! with env and secrets, constraints) live here; each kind composes them into its job in its
//! own file (`kind/<kind>.rs`, beside its decisions).

use std::collections::BTreeMap;
use std::time::Duration;

use crds::workload::NomadOverrides;
use crds::workload::{
    CheckType, Constraint, ContainerRef, EnvVar, HealthCheck, Placement, Port, Protocol,
    RolloutStrategy, Route, UpdateStrategy, VolumeType,
};
use crds::ObjectRef;
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::meta::job_id;
use crate::nomad_job::Job;

/// Nomad durations are integer nanoseconds.
pub fn nanos(duration: Duration) -> u64 {
    duration.as_nanos() as u64
}

/// Static ports as reserved, dynamic ones as dynamic; `To` maps into the container.
pub fn network(ports: &[Port]) -> Value {
    let (reserved, dynamic): (Vec<&Port>, Vec<&Port>) = ports.iter().partition(|p| p.port != 0);
    let entry = |p: &&Port, with_value: bool| {
        let mut port = json!({"Label": p.name, "To": p.container_port.unwrap_or(p.port)});
        if with_value {
            port["Value"] = json!(p.port);
        }
        port
    };
    json!({
        "Mode": "host",
        "ReservedPorts": reserved.iter().map(|p| entry(p, true)).collect::<Vec<_>>(),
        "DynamicPorts": dynamic.iter().map(|p| entry(p, false)).collect::<Vec<_>>(),
    })
}

/// Traefik's router tags: `Host(...) && PathPrefix(...)` to the service. Validation keeps host
/// and path to characters that cannot close the rule.
pub fn traefik_tags(router: &str, route: &Route) -> Vec<String> {
    let mut rule = format!("Host(`{}`)", route.host);
    if route.path != "/" {
        rule.push_str(&format!(" && PathPrefix(`{}`)", route.path));
    }
    let mut tags = vec![
        "traefik.enable=true".to_string(),
        format!("traefik.http.routers.{router}.rule={rule}"),
        format!(
            "traefik.http.routers.{router}.entrypoints={}",
            if route.tls { "websecure" } else { "web" }
        ),
    ];
    if route.tls {
        tags.push(format!("traefik.http.routers.{router}.tls=true"));
    }
    tags
}

/// The one group of a long-running kind (App, Pub): `count` instances of its one task behind
/// its services, restarted in place and then rescheduled by Nomad.
pub fn service_group(
    name: &str,
    count: u32,
    ports: &[Port],
    services: Vec<Value>,
    container: ContainerRef<'_>,
) -> Value {
    json!({
        "Name": name,
        "Count": count,
        "Networks": [network(ports)],
        "Services": services,
        "RestartPolicy": service_restart_policy(),
        "ReschedulePolicy": service_reschedule_policy(),
        "Tasks": [task(name, container, ports)],
    })
}

/// A long-running task's restarts: two quick restarts in place, then fail the allocation so
/// Nomad reschedules it.
pub fn service_restart_policy() -> Value {
    json!({"Attempts": 2, "Interval": nanos(Duration::from_secs(300)), "Delay": nanos(Duration::from_secs(10)), "Mode": "fail"})
}

/// A long-running allocation's rescheduling: forever, backing off from 15 s to 5 min.
pub fn service_reschedule_policy() -> Value {
    json!({"Unlimited": true, "Delay": nanos(Duration::from_secs(15)), "DelayFunction": "exponential", "MaxDelay": nanos(Duration::from_secs(300))})
}

/// The Consul service of a workload: its route as tags, its health check with `check_restart`
/// so Nomad restarts a failing task in place before nomarch ever steps in.
/// The tag a blue/green rollout's new instances carry instead of their routing tags until they
/// are promoted: Nomad registers a canary with `CanaryTags` when it has any
/// (command/agent/consul/service_client.go), and without `traefik.enable` Traefik routes
/// nothing to it.
pub const UNPROMOTED_TAG: &str = "nomarch-unpromoted";

/// The job's update block. Canary and auto-promote keys only for the strategies that use
/// them: a rolling update renders as it always has, so its fingerprint does not change.
/// Host and CSI volumes as the group's `Volumes` and the task's `VolumeMounts` (its only task). Nothing is added without volumes, so other jobs' fingerprints stay as they were.
fn mount_volumes(group: &mut Value, volumes: &[crds::workload::Volume]) {
    if volumes.is_empty() {
        return;
    }
    let requests: Map<String, Value> = volumes
        .iter()
        .map(|v| {
            let request = match v.type_ {
                VolumeType::Host => {
                    json!({"Name": v.name, "Type": "host", "Source": v.source, "ReadOnly": v.read_only})
                }
                // A filesystem mount: what a task's `volume_mount` needs of a CSI volume.
                VolumeType::Csi => json!({
                    "Name": v.name, "Type": "csi", "Source": v.source, "ReadOnly": v.read_only,
                    "AccessMode": v.access_mode.unwrap_or_default().as_str(),
                    "AttachmentMode": "file-system",
                }),
            };
            (v.name.clone(), request)
        })
        .collect();
    let mounts: Vec<Value> = volumes
        .iter()
        .map(|v| json!({"Volume": v.name, "Destination": v.mount_path, "ReadOnly": v.read_only}))
        .collect();
    group["Volumes"] = Value::Object(requests);
    group["Tasks"][0]["VolumeMounts"] = json!(mounts);
}

/// Service references as env templates, one per variable so each keeps its own change mode:
/// consul-template's `service` (the passing instances of the referenced App's Consul service in
/// the same namespace), as `host:port` of the first or, with `all`, of every one,
/// comma-separated. Appended to the task's templates; nothing changes without any.
fn service_env_templates(group: &mut Value, object: &ObjectRef, env: &[EnvVar]) {
    let templates: Vec<Value> = env
        .iter()
        .filter_map(|var| {
            let reference = var.service_ref.as_ref()?;
            let service = service_name(&ObjectRef::new(
                crds::Kind::App,
                &object.namespace,
                &reference.name,
            ));
            let text = if reference.all {
                format!(
                    "{}={{{{ range $i, $s := service \"{service}\" }}}}{{{{ if $i }}}},{{{{ end }}}}{{{{ $s.Address }}}}:{{{{ $s.Port }}}}{{{{ end }}}}\n",
                    var.name
                )
            } else {
                format!(
                    "{{{{ with service \"{service}\" }}}}{{{{ with index . 0 }}}}{}={{{{ .Address }}}}:{{{{ .Port }}}}{{{{ end }}}}{{{{ end }}}}\n",
                    var.name
                )
            };
            let change_mode = match reference.change_mode {
                crds::workload::ServiceChangeMode::Restart => "restart",
                crds::workload::ServiceChangeMode::Noop => "noop",
            };
            Some(json!({
                "DestPath": format!("local/service-{}.env", var.name),
                "EmbeddedTmpl": text,
                "Envvars": true,
                "ChangeMode": change_mode,
            }))
        })
        .collect();
    if templates.is_empty() {
        return;
    }
    let task = &mut group["Tasks"][0];
    match task["Templates"].as_array_mut() {
        Some(existing) => existing.extend(templates),
        None => task["Templates"] = Value::Array(templates),
    }
}

/// `spec.nomad`'s group and task patches: JSON merge patches (RFC 7396, `json_patch::merge`)
/// on the job's one group and its one task, after everything nomarch renders (validation keeps
/// them off what nomarch decides). Nothing changes without any.
fn patch_group(group: &mut Value, overrides: &NomadOverrides) {
    merge(group, &overrides.group);
    merge(&mut group["Tasks"][0], &overrides.task);
}

fn merge(target: &mut Value, with: &Map<String, Value>) {
    if !with.is_empty() {
        json_patch::merge(target, &Value::Object(with.clone()));
    }
}

/// `spec.nomad.job`, merged (RFC 7396) into the typed job: its `Meta` key by key (`null`
/// removes one), everything else into the fields nomarch does not type. Validation refuses a
/// patch of the fields nomarch or Nomad sets ([`Job`]'s typed ones among them) and meta that
/// is not text, so nothing here can make the job something Nomad would not read.
fn patch_job(job: &mut Job, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (key.as_str(), value) {
            ("Meta", Value::Object(meta)) => {
                let kept = job.meta.get_or_insert_with(Default::default);
                for (name, value) in meta {
                    match value {
                        Value::String(text) => {
                            kept.insert(name.clone(), text.clone());
                        }
                        Value::Null => {
                            kept.remove(name);
                        }
                        // Refused by validation: Nomad's meta holds text only.
                        _ => {}
                    }
                }
            }
            // Refused by validation: nomarch or Nomad sets these.
            (key, _) if Job::TYPED_FIELDS.contains(&key) => {}
            (key, Value::Null) => {
                job.extra.shift_remove(key);
            }
            (key, value) => match job.extra.get_mut(key) {
                Some(existing) => json_patch::merge(existing, value),
                None => {
                    let mut fresh = Value::Null;
                    json_patch::merge(&mut fresh, value);
                    job.extra.insert(key.to_string(), fresh);
                }
            },
        }
    }
}

/// What a kind renders of its job before the parts every kind shares are added.
pub struct JobParts<'a> {
    pub object: &'a ObjectRef,
    /// `service` or `batch`.
    pub job_type: &'static str,
    pub meta: BTreeMap<String, String>,
    /// The job's other fields nomarch sets (`Datacenters`, `Constraints`, `Update`,
    /// `Periodic`, `NodePool`), in the order they render.
    pub fields: Map<String, Value>,
    /// The job's one group, with its one task.
    pub group: Value,
}

/// What every kind's job gets besides its parts: the spec's volumes and service references
/// in its group, `spec.nomad`'s patches, and `Stop` when the object is stopped.
pub struct Shared<'a> {
    pub volumes: &'a [crds::workload::Volume],
    pub env: &'a [EnvVar],
    pub overrides: &'a NomadOverrides,
    pub stopped: bool,
}

/// A kind's job, typed: its parts, then volumes, service references and the group and task
/// patches in its group, then the job's own patch, then `Stop`.
pub fn job(parts: JobParts<'_>, shared: Shared<'_>) -> Job {
    let JobParts {
        object,
        job_type,
        meta,
        fields,
        mut group,
    } = parts;
    mount_volumes(&mut group, shared.volumes);
    service_env_templates(&mut group, object, shared.env);
    patch_group(&mut group, shared.overrides);
    let mut extra = Map::new();
    extra.insert("Name".into(), json!(object.name));
    extra.extend(fields);
    let mut job = Job {
        id: job_id(object),
        namespace: Some(object.namespace.clone()),
        job_type: Some(job_type.to_string()),
        meta: Some(meta),
        task_groups: Some(vec![group]),
        extra,
        ..Job::default()
    };
    patch_job(&mut job, &shared.overrides.job);
    if shared.stopped {
        job.stop = Some(true);
    }
    job
}

/// A stopped object's job is registered with `Stop: true`: Nomad keeps the job and stops its
/// allocations (structs.go `Job.Stop`), and the register stays check-and-set, which a
/// deregister is not. A running object's job carries no `Stop`, so its fingerprint is what it
/// was before objects could be stopped. (For the job people wrote, a NomadJob's; the kinds
/// nomarch renders get theirs in [`job`].)
pub fn stop_if_stopped(job: &mut Value, stopped: bool) {
    if stopped {
        job["Stop"] = json!(true);
    }
}

pub fn update_block(update: &UpdateStrategy, replicas: u32, checks: bool) -> Value {
    let mut block = json!({
        "MaxParallel": update.max_parallel,
        "HealthCheck": if checks { "checks" } else { "task_states" },
        "MinHealthyTime": nanos(update.min_healthy_time.get()),
        "HealthyDeadline": nanos(update.healthy_deadline.get()),
        "ProgressDeadline": nanos(update.progress_deadline()),
        "AutoRevert": update.auto_revert,
    });
    if update.strategy != RolloutStrategy::Rolling {
        block["Canary"] = json!(update.nomad_canaries(replicas));
        block["AutoPromote"] = json!(update.auto_promote);
    }
    block
}

/// Blue/green: the new set takes no traffic before promotion.
pub fn hold_traffic_from_canaries(services: &mut [Value], update: &UpdateStrategy) {
    if update.strategy == RolloutStrategy::BlueGreen {
        for service in services {
            service["CanaryTags"] = json!([UNPROMOTED_TAG]);
        }
    }
}

pub fn services(
    object: &ObjectRef,
    ports: &[Port],
    health: Option<&HealthCheck>,
    route: Option<&Route>,
) -> Vec<Value> {
    service(object, ports, health, route).into_iter().collect()
}

/// The Consul service name of an object's workload, unique per namespace and name. Consul's
/// catalog has no Nomad namespaces, and Traefik's Consul catalog provider serves every instance
/// registered under a name behind every router on it: two tenants' `web` must not share one.
/// The `default` namespace keeps the plain name; elsewhere the name gets 8 hex digits of a
/// hash of namespace and name, kept within the 63-character DNS label Nomad requires of
/// service names (nomad/structs/services.go `validServiceName`).
pub fn service_name(object: &ObjectRef) -> String {
    if object.namespace == "default" {
        return object.name.clone();
    }
    let digest = sha2::Sha256::digest(format!("{}/{}", object.namespace, object.name));
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let head = &object.name[..object.name.len().min(63 - 9)];
    format!("{}-{suffix}", head.trim_end_matches('-'))
}

fn service(
    object: &ObjectRef,
    ports: &[Port],
    health: Option<&HealthCheck>,
    route: Option<&Route>,
) -> Option<Value> {
    // Router names are global in Traefik too: the unique service name keeps two tenants'
    // `web` apart.
    let name = service_name(object);
    let router = name.clone();
    let http_port = || {
        ports
            .iter()
            .find(|p| p.protocol == Protocol::Http)
            .map(|p| p.name.clone())
    };
    let port_label = route
        .and_then(|r| r.port.clone().or_else(http_port))
        .or_else(|| health.map(|h| h.port.clone()))
        .or_else(|| ports.first().map(|p| p.name.clone()))?;
    let tags = route.map(|r| traefik_tags(&router, r)).unwrap_or_default();
    let checks: Vec<Value> = health.map(check).into_iter().collect();
    Some(json!({
        "Name": name,
        "PortLabel": port_label,
        "Provider": "consul",
        "Tags": tags,
        "Checks": checks,
    }))
}

fn check(health: &HealthCheck) -> Value {
    let interval = health.interval.get();
    // Restart in place after the grace plus three failed intervals; nomarch's own healing
    // (replacing the allocation) waits for the grace it was given.
    let mut check = json!({
        "Name": format!("{}-health", health.port),
        "Type": match health.type_ { CheckType::Http => "http", CheckType::Tcp => "tcp" },
        "PortLabel": health.port,
        "Interval": nanos(interval),
        "Timeout": nanos(health.timeout.get()),
        "CheckRestart": {"Limit": 3, "Grace": nanos(health.grace.get()), "IgnoreWarnings": false},
    });
    if let Some(path) = &health.path {
        check["Path"] = json!(path);
        check["Method"] = json!("GET");
    }
    check
}

/// Literal env vars as `Env`; secret references as a template that reads the Nomad variable at
/// run time, so the secret never passes through nomarch.
pub fn env_and_templates(env: &[EnvVar]) -> (Value, Value) {
    let mut literals = Map::new();
    let mut secret_lines = Vec::new();
    for var in env {
        match (&var.value, &var.secret_ref) {
            (Some(value), _) => {
                literals.insert(var.name.clone(), json!(value));
            }
            (None, Some(secret)) => {
                secret_lines.push(format!(
                    // `index`, not `.key`: a key with `-` is not a Go template field name.
                    "{{{{ with nomadVar \"{}\" }}}}{}={{{{ index . \"{}\" }}}}{{{{ end }}}}",
                    secret.name, var.name, secret.key
                ));
            }
            (None, None) => {}
        }
    }
    let env = if literals.is_empty() {
        Value::Null
    } else {
        Value::Object(literals)
    };
    let templates = if secret_lines.is_empty() {
        Value::Null
    } else {
        json!([{"DestPath": "secrets/nomarch.env", "EmbeddedTmpl": secret_lines.join("\n") + "\n", "Envvars": true, "ChangeMode": "restart"}])
    };
    (env, templates)
}

pub fn task(name: &str, container: ContainerRef<'_>, ports: &[Port]) -> Value {
    let ContainerRef {
        image,
        command,
        args,
        resources,
        env,
    } = container;
    let mut config = json!({"image": image});
    if let Some(command) = command {
        config["command"] = json!(command);
    }
    if !args.is_empty() {
        config["args"] = json!(args);
    }
    if !ports.is_empty() {
        config["ports"] = json!(ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
    }
    let (env, templates) = env_and_templates(env);
    json!({
        "Name": name,
        "Driver": "docker",
        "Config": config,
        "Env": env,
        "Templates": templates,
        "Resources": {"CPU": resources.cpu, "MemoryMB": resources.memory},
    })
}

/// Datacenters (all when none are named), node pool and constraints.
pub fn placement(placement: &Placement) -> (Value, Option<String>, Value) {
    let datacenters = if placement.datacenters.is_empty() {
        json!(["*"])
    } else {
        json!(placement.datacenters)
    };
    let mut constraints: Vec<Value> = Vec::new();
    if let Some(class) = &placement.node_class {
        constraints.push(json!({"LTarget": "${node.class}", "Operand": "=", "RTarget": class}));
    }
    constraints.extend(placement.constraints.iter().map(constraint));
    let constraints = if constraints.is_empty() {
        Value::Null
    } else {
        json!(constraints)
    };
    (datacenters, placement.node_pool.clone(), constraints)
}

fn constraint(c: &Constraint) -> Value {
    json!({"LTarget": c.attribute, "Operand": c.operator, "RTarget": c.value})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Kind;

    /// Two tenants' `web` get different Consul services (and so different Traefik routers),
    /// every name is a DNS label of at most 63 characters, and `default` keeps plain names.
    #[test]
    fn service_names_are_unique_per_namespace() {
        let web = |ns: &str, name: &str| service_name(&ObjectRef::new(Kind::App, ns, name));
        assert_eq!(web("default", "web"), "web");
        let a = web("tenant-a", "web");
        let b = web("tenant-b", "web");
        assert_ne!(a, b);
        assert_ne!(a, "web");
        assert!(a.starts_with("web-") && a.len() == "web-".len() + 8, "{a}");
        assert_eq!(a, web("tenant-a", "web"), "stable");
        // Splitting differently around a dash does not collide either.
        assert_ne!(web("a-b", "c"), web("a", "b-c"));
        let long = "x".repeat(62) + "-y";
        for name in [web("tenant-a", &long), web("tenant-a", &"z".repeat(63))] {
            assert!(crds::validate::dns_label_problem(&name).is_none(), "{name}");
        }
    }
}
