//! Service discovery as the running allocations register it: in Consul (the default provider)
//! with their checks, or in Nomad's own catalog (`provider = "nomad"`), whose health comes only
//! from the allocation checks endpoint.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::cluster::Cluster;
use super::health::{check_status, CheckRule};
use super::model::{Alloc, ClientStatus, Node};

/// One registered service instance.
pub struct Instance<'c> {
    pub alloc: &'c Alloc,
    pub node: &'c Node,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub port: u16,
    pub provider: String,
    pub checks: Vec<Value>,
    pub status: &'static str,
}

/// FNV-1a: a stable, dependency-free hash for check IDs.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

pub fn check_id(alloc: &Alloc, service: &str, check: &str) -> String {
    format!(
        "{:016x}{:016x}",
        fnv(&format!("{}/{service}", alloc.id)),
        fnv(check)
    )
}

/// Every service instance of every running allocation.
pub fn instances(cluster: &Cluster) -> Vec<Instance<'_>> {
    let running = cluster
        .allocs
        .values()
        .filter(|a| a.client_status == ClientStatus::Running && a.desired_status == "run");
    instances_of(cluster, running)
}

/// The instances of one service: only jobs that declare it are looked at.
pub fn instances_named<'c>(cluster: &'c Cluster, name: &str) -> Vec<Instance<'c>> {
    let declares = |job: &super::model::JobRecord| {
        job.groups().iter().any(|group| {
            let mut services = group
                .get("Services")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            for task in group
                .get("Tasks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                services.extend(
                    task.get("Services")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                );
            }
            services
                .iter()
                .any(|s| s.get("Name").and_then(Value::as_str) == Some(name))
        })
    };
    let allocs = cluster
        .jobs
        .values()
        .filter(|job| declares(job))
        .flat_map(|job| cluster.allocs_of_job(&job.namespace, &job.id))
        .filter(|a| a.client_status == ClientStatus::Running && a.desired_status == "run");
    instances_of(cluster, allocs)
        .into_iter()
        .filter(|i| i.name == name)
        .collect()
}

fn instances_of<'c>(
    cluster: &'c Cluster,
    allocs: impl Iterator<Item = &'c Alloc>,
) -> Vec<Instance<'c>> {
    let mut found = Vec::new();
    for alloc in allocs {
        let Some(node) = cluster.nodes.get(&alloc.node_id) else {
            continue;
        };
        for (task, service) in alloc.services() {
            let name = service
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let label = service
                .get("PortLabel")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let port = alloc.ports.iter().find(|p| p.0 == label).map_or(0, |p| p.1);
            let provider = service
                .get("Provider")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .unwrap_or("consul")
                .to_string();
            // command/agent/consul/service_client.go `serviceRegs`: a canary registers with
            // `CanaryTags` when the service has any, else with its `Tags`.
            let canary_tags = service
                .get("CanaryTags")
                .and_then(Value::as_array)
                .filter(|tags| alloc.canary && !tags.is_empty());
            let tags: Vec<String> = canary_tags
                .or_else(|| service.get("Tags").and_then(Value::as_array))
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
            let status = check_status(&cluster.check_rules, alloc, &name);
            let checks = service
                .get("Checks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            found.push(Instance {
                alloc,
                node,
                id: format!("_nomad-task-{}-{task}-{name}-{label}", alloc.id),
                name,
                tags,
                port,
                provider,
                checks,
                status,
            });
        }
    }
    found
}

fn consul_check(instance: &Instance, check: &Value) -> Value {
    let check_name = check
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .unwrap_or_else(|| format!("service: \"{}\" check", instance.name));
    let output = match instance.status {
        "passing" => "HTTP GET: 200 OK",
        "warning" => "HTTP GET: 429 Too Many Requests",
        _ => "dial tcp: connect: connection refused",
    };
    json!({
        "Node": instance.node.name,
        "CheckID": format!("_nomad-check-{}", check_id(instance.alloc, &instance.name, &check_name)),
        "Name": check_name,
        "Status": instance.status,
        "Notes": "",
        "Output": output,
        "ServiceID": instance.id,
        "ServiceName": instance.name,
        "ServiceTags": instance.tags,
        "Type": check.get("Type").cloned().unwrap_or(json!("http")),
        "Interval": "10s",
        "Timeout": "2s",
        "ExposedPort": 0,
        "Definition": {},
        "Namespace": "default",
        "CreateIndex": instance.alloc.create_index,
        "ModifyIndex": instance.alloc.modify_index,
    })
}

/// Consul's node check, present in every `Checks` list.
fn serf_check(node: &Node) -> Value {
    json!({
        "Node": node.name,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": if node.status == "ready" { "passing" } else { "critical" },
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "Interval": "",
        "Timeout": "",
        "ExposedPort": 0,
        "Definition": {},
        "Namespace": "default",
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

fn consul_node(node: &Node) -> Value {
    json!({
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": {"lan": node.address, "wan": node.address},
        "Meta": node.meta,
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

fn tagged_addresses(instance: &Instance) -> Value {
    json!({
        "lan": {"address": instance.node.address, "port": instance.port},
        "wan": {"address": instance.node.address, "port": instance.port},
    })
}

fn consul_service(instance: &Instance) -> Value {
    json!({
        "ID": instance.id,
        "Service": instance.name,
        "Tags": instance.tags,
        "Address": instance.node.address,
        "TaggedAddresses": tagged_addresses(instance),
        "Meta": {"external-source": "nomad"},
        "Port": instance.port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": false,
        "Namespace": "default",
        "Datacenter": instance.node.datacenter,
        "CreateIndex": instance.alloc.create_index,
        "ModifyIndex": instance.alloc.modify_index,
    })
}

fn consul_instances(cluster: &Cluster) -> impl Iterator<Item = Instance<'_>> {
    instances(cluster)
        .into_iter()
        .filter(|i| i.provider == "consul")
}

fn consul_instances_named<'c>(
    cluster: &'c Cluster,
    name: &str,
) -> impl Iterator<Item = Instance<'c>> {
    instances_named(cluster, name)
        .into_iter()
        .filter(|i| i.provider == "consul")
}

fn checks_of(instance: &Instance) -> Vec<Value> {
    instance
        .checks
        .iter()
        .map(|check| consul_check(instance, check))
        .collect()
}

/// `GET /v1/health/service/:name` (`passing` keeps entries whose every check passes).
pub fn health_service(cluster: &Cluster, name: &str, passing_only: bool) -> Vec<Value> {
    consul_instances_named(cluster, name)
        .filter_map(|instance| {
            let mut checks = checks_of(&instance);
            checks.push(serf_check(instance.node));
            let all_passing = checks.iter().all(|c| c["Status"] == "passing");
            (!passing_only || all_passing).then(|| json!({"Node": consul_node(instance.node), "Service": consul_service(&instance), "Checks": checks}))
        })
        .collect()
}

pub fn health_checks(cluster: &Cluster, service: &str) -> Vec<Value> {
    consul_instances_named(cluster, service)
        .flat_map(|i| checks_of(&i))
        .collect()
}

pub fn health_state(cluster: &Cluster, state: &str) -> Vec<Value> {
    let mut checks: Vec<Value> = consul_instances(cluster)
        .flat_map(|i| checks_of(&i))
        .collect();
    checks.extend(cluster.nodes.values().map(serf_check));
    checks
        .into_iter()
        .filter(|c| state == "any" || c["Status"] == state)
        .collect()
}

pub fn health_node(cluster: &Cluster, node_name: &str) -> Vec<Value> {
    let Some(node) = cluster.nodes.values().find(|n| n.name == node_name) else {
        return Vec::new();
    };
    let mut checks = vec![serf_check(node)];
    checks.extend(
        consul_instances(cluster)
            .filter(|i| i.node.id == node.id)
            .flat_map(|i| checks_of(&i)),
    );
    for check in &mut checks {
        check["ID"] = json!(node.id);
    }
    checks
}

pub fn catalog_services(cluster: &Cluster) -> Value {
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    services.insert("consul".into(), Vec::new());
    for instance in consul_instances(cluster) {
        let tags = services.entry(instance.name.clone()).or_default();
        for tag in &instance.tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
    }
    json!(services)
}

pub fn catalog_service(cluster: &Cluster, name: &str) -> Vec<Value> {
    consul_instances_named(cluster, name)
        .map(|i| {
            json!({
                "ID": i.node.id,
                "Node": i.node.name,
                "Address": i.node.address,
                "Datacenter": i.node.datacenter,
                "TaggedAddresses": {"lan": i.node.address, "wan": i.node.address},
                "NodeMeta": i.node.meta,
                "ServiceID": i.id,
                "ServiceName": i.name,
                "ServiceAddress": i.node.address,
                "ServicePort": i.port,
                "ServiceTags": i.tags,
                "ServiceMeta": {"external-source": "nomad"},
                "ServiceTaggedAddresses": tagged_addresses(&i),
                "ServiceEnableTagOverride": false,
                "ServiceWeights": {"Passing": 1, "Warning": 1},
                "ServiceProxy": {"DestinationServiceName": "", "DestinationServiceID": "", "LocalServiceAddress": "", "LocalServicePort": 0, "Config": null, "Upstreams": null, "MeshGateway": {}, "Expose": {}},
                "ServiceConnect": {"Native": false, "Proxy": null},
                "Namespace": "default",
                "CreateIndex": i.alloc.create_index,
                "ModifyIndex": i.alloc.modify_index,
            })
        })
        .collect()
}

/// `GET /v1/agent/health/service/name/:name`: per instance, the worst status of its checks,
/// and the HTTP status Consul pairs with it (200 passing, 429 warning, 503 critical).
pub fn agent_health(cluster: &Cluster, name: &str) -> (u16, Vec<Value>) {
    let mut worst = 200;
    let entries: Vec<Value> = consul_instances_named(cluster, name)
        .map(|i| {
            let (status, code) = match i.status {
                "passing" => ("passing", 200),
                "warning" => ("warning", 429),
                _ => ("critical", 503),
            };
            worst = worst.max(code);
            json!({
                "AggregatedStatus": status,
                "Service": {
                    "ID": i.id, "Service": i.name, "Tags": i.tags, "Meta": {"external-source": "nomad"}, "Port": i.port,
                    "Address": i.node.address, "SocketPath": "",
                    "TaggedAddresses": {"lan": {"Address": i.node.address, "Port": i.port}, "wan": {"Address": i.node.address, "Port": i.port}},
                    "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": false, "Namespace": "default", "Datacenter": i.node.datacenter,
                },
                "Checks": checks_of(&i),
            })
        })
        .collect();
    let code = if entries.is_empty() { 404 } else { worst };
    (code, entries)
}

pub fn agent_services(cluster: &Cluster) -> Value {
    let services: Map<String, Value> = consul_instances(cluster)
        .map(|i| (i.id.clone(), consul_service(&i)))
        .collect();
    Value::Object(services)
}

// ---------------------------------------------------------------------------------------------
// Nomad-native services and checks

fn nomad_instances(cluster: &Cluster) -> impl Iterator<Item = Instance<'_>> {
    instances(cluster)
        .into_iter()
        .filter(|i| i.provider == "nomad")
}

pub fn nomad_registration(instance: &Instance) -> Value {
    json!({
        "ID": instance.id,
        "ServiceName": instance.name,
        "Namespace": instance.alloc.namespace,
        "NodeID": instance.node.id,
        "Datacenter": instance.node.datacenter,
        "JobID": instance.alloc.job_id,
        "AllocID": instance.alloc.id,
        "Tags": instance.tags,
        "Address": instance.node.address,
        "Port": instance.port,
        "CreateIndex": instance.alloc.create_index,
        "ModifyIndex": instance.alloc.modify_index,
    })
}

/// `GET /v1/services`: names and tags, grouped by namespace.
pub fn nomad_services(cluster: &Cluster, namespace_matches: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut by_namespace: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for instance in nomad_instances(cluster).filter(|i| namespace_matches(&i.alloc.namespace)) {
        let tags = by_namespace
            .entry(instance.alloc.namespace.clone())
            .or_default()
            .entry(instance.name.clone())
            .or_default();
        for tag in &instance.tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
    }
    by_namespace
        .into_iter()
        .map(|(namespace, services)| {
            let services: Vec<Value> = services
                .into_iter()
                .map(|(name, tags)| json!({"ServiceName": name, "Tags": tags}))
                .collect();
            json!({"Namespace": namespace, "Services": services})
        })
        .collect()
}

pub fn nomad_service(cluster: &Cluster, name: &str, namespace: &str) -> Vec<Value> {
    instances_named(cluster, name)
        .into_iter()
        .filter(|i| i.provider == "nomad" && i.alloc.namespace == namespace)
        .map(|i| nomad_registration(&i))
        .collect()
}

pub fn nomad_services_of(cluster: &Cluster, filter: impl Fn(&Alloc) -> bool) -> Vec<Value> {
    nomad_instances(cluster)
        .filter(|i| filter(i.alloc))
        .map(|i| nomad_registration(&i))
        .collect()
}

/// `GET /v1/allocation/:id/checks`: Nomad-native check results, keyed by check ID.
pub fn allocation_checks(cluster: &Cluster, alloc: &Alloc) -> Value {
    let mut results = Map::new();
    let now = cluster.clock.now().timestamp();
    for (task, service) in alloc.services() {
        if service.get("Provider").and_then(Value::as_str) != Some("nomad") {
            continue;
        }
        let name = service
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for check in service
            .get("Checks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let check_name = check
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = check_id(alloc, name, check_name);
            let status = match (
                alloc.client_status,
                check_status(&cluster.check_rules, alloc, name),
            ) {
                (ClientStatus::Running, "passing") => "success",
                (ClientStatus::Running, _) => "failure",
                _ => "pending",
            };
            let mode = if check.get("OnUpdate").and_then(Value::as_str) == Some("ignore") {
                "readiness"
            } else {
                "healthiness"
            };
            let mut result = json!({
                "ID": id,
                "Check": check_name,
                "Group": alloc.name(),
                "Service": name,
                "Mode": mode,
                "Status": status,
                "Output": if status == "success" { "nomad: http ok" } else { "nomad: connection refused" },
                "Timestamp": now,
            });
            if !task.starts_with("group-") {
                result["Task"] = json!(task);
            }
            if check.get("Type").and_then(Value::as_str) == Some("http") && status != "pending" {
                result["StatusCode"] = json!(if status == "success" { 200 } else { 503 });
            }
            results.insert(id, result);
        }
    }
    Value::Object(results)
}

impl Cluster {
    /// Records a check rule (replacing one with the same selector) and returns how many
    /// registered service instances it now covers.
    pub fn set_check_status(
        &mut self,
        service: Option<&str>,
        allocation: Option<&str>,
        node: Option<&str>,
        status: &'static str,
    ) -> usize {
        let rule = CheckRule {
            service: service.map(String::from),
            allocation: allocation.map(String::from),
            node: node.map(String::from),
            status,
        };
        self.check_rules.retain(|r| {
            (&r.service, &r.allocation, &r.node) != (&rule.service, &rule.allocation, &rule.node)
        });
        self.check_rules.push(rule.clone());
        let index = self.bump();
        self.tables.consul = index;
        self.tables.services = index;
        instances(self)
            .iter()
            .filter(|i| rule.selects(i.alloc, &i.name))
            .count()
    }
}
