//! `deploy/`: what a real cluster runs. The controller job in HCL and JSON say the same, keep
//! their deploy rules (a broken edit is refused, naming the field), and converge on nomad-sim;
//! the etcd job has three pinned members with their data; the ACL policies grant exactly what
//! the clients call; the alert rules pass promtool; the dashboard and the rules name only
//! metrics the controller exports; the systemd unit passes `systemd-analyze verify`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::procs::SimProcess;
use regex::Regex;
use serde_json::{json, Map, Value};
use support::{eventually, git, World};

const APP: &str =
    "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hcl_file(path: &str) -> Value {
    hcl::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// --- HCL jobspec → the API's JSON form ----------------------------------------------------------
//
// Enough of Nomad's jobspec (jobspec2, as `nomad job run -output` renders it) for the jobs in
// deploy/: every block and attribute they use, each mapped to its API name. Anything else is an
// error, so a new attribute in the HCL cannot silently go missing from the comparison.

/// One block or attribute: where it sits in the HCL, its API name, and how its value converts.
type Convert = fn(&Value) -> Value;

fn copy(v: &Value) -> Value {
    v.clone()
}

/// "10s", "2m" → nanoseconds, as the API carries durations.
fn nanos(v: &Value) -> Value {
    let text = v.as_str().expect("a duration is a string");
    let duration = humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    json!(duration.as_nanos() as u64)
}

/// A block that may appear once (an object) or several times (an array), as a list.
fn blocks(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Converts the attributes of one block by its table; unknown attributes are an error.
fn convert(block: &Value, table: &[(&str, &str, Convert)], at: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in block
        .as_object()
        .unwrap_or_else(|| panic!("{at} is a block"))
    {
        let (_, api, f) = table
            .iter()
            .find(|(hcl, _, _)| hcl == key)
            .unwrap_or_else(|| panic!("{at}.{key}: not known to the test's jobspec converter"));
        out.insert(api.to_string(), f(value));
    }
    out
}

fn constraints(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("attribute", "LTarget", copy),
        ("value", "RTarget", copy),
        ("operator", "Operand", copy),
    ];
    Value::Array(
        blocks(v)
            .into_iter()
            .map(|c| {
                let mut out = convert(c, table, "constraint");
                for key in ["LTarget", "RTarget"] {
                    out.entry(key).or_insert(json!(""));
                }
                out.entry("Operand").or_insert(json!("="));
                Value::Object(out)
            })
            .collect(),
    )
}

fn networks(v: &Value) -> Value {
    let mut reserved = Vec::new();
    let mut dynamic = Vec::new();
    for (label, port) in v["port"].as_object().expect("network { port ... }") {
        match port.get("static") {
            Some(value) => reserved.push(json!({"Label": label, "Value": value})),
            None => dynamic
                .push(json!({"Label": label, "To": port.get("to").cloned().unwrap_or(json!(0))})),
        }
    }
    let mut network = Map::new();
    if !reserved.is_empty() {
        network.insert("ReservedPorts".into(), Value::Array(reserved));
    }
    if !dynamic.is_empty() {
        network.insert("DynamicPorts".into(), Value::Array(dynamic));
    }
    json!([network])
}

fn volumes(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("type", "Type", copy),
        ("source", "Source", copy),
        ("read_only", "ReadOnly", copy),
    ];
    let mut out = Map::new();
    for (name, volume) in v.as_object().expect("volume \"name\" { ... }") {
        let mut converted = Map::new();
        converted.insert("Name".into(), json!(name));
        converted.extend(convert(volume, table, "volume"));
        out.insert(name.clone(), Value::Object(converted));
    }
    Value::Object(out)
}

fn update(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("max_parallel", "MaxParallel", copy),
        ("min_healthy_time", "MinHealthyTime", nanos),
        ("healthy_deadline", "HealthyDeadline", nanos),
    ];
    Value::Object(convert(v, table, "update"))
}

fn check_restart(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[("limit", "Limit", copy), ("grace", "Grace", nanos)];
    Value::Object(convert(v, table, "check_restart"))
}

fn checks(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("name", "Name", copy),
        ("type", "Type", copy),
        ("path", "Path", copy),
        ("interval", "Interval", nanos),
        ("timeout", "Timeout", nanos),
        ("check_restart", "CheckRestart", check_restart),
    ];
    Value::Array(
        blocks(v)
            .into_iter()
            .map(|c| Value::Object(convert(c, table, "check")))
            .collect(),
    )
}

fn services(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("name", "Name", copy),
        ("port", "PortLabel", copy),
        ("provider", "Provider", copy),
        ("tags", "Tags", copy),
        ("check", "Checks", checks),
    ];
    Value::Array(
        blocks(v)
            .into_iter()
            .map(|s| Value::Object(convert(s, table, "service")))
            .collect(),
    )
}

fn volume_mounts(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("volume", "Volume", copy),
        ("destination", "Destination", copy),
    ];
    Value::Array(
        blocks(v)
            .into_iter()
            .map(|m| Value::Object(convert(m, table, "volume_mount")))
            .collect(),
    )
}

fn identity(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[("env", "Env", copy)];
    Value::Object(convert(v, table, "identity"))
}

fn templates(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("destination", "DestPath", copy),
        ("env", "Envvars", copy),
        ("change_mode", "ChangeMode", copy),
        ("data", "EmbeddedTmpl", copy),
    ];
    Value::Array(
        blocks(v)
            .into_iter()
            .map(|t| Value::Object(convert(t, table, "template")))
            .collect(),
    )
}

fn resources(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[("cpu", "CPU", copy), ("memory", "MemoryMB", copy)];
    Value::Object(convert(v, table, "resources"))
}

fn tasks(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("driver", "Driver", copy),
        ("config", "Config", copy),
        ("kill_signal", "KillSignal", copy),
        ("kill_timeout", "KillTimeout", nanos),
        ("volume_mount", "VolumeMounts", volume_mounts),
        ("identity", "Identity", identity),
        ("env", "Env", copy),
        ("template", "Templates", templates),
        ("resources", "Resources", resources),
    ];
    named_blocks(v, table, "task")
}

/// `NAME "label" { ... }` blocks as an API list with `Name` first.
fn named_blocks(v: &Value, table: &[(&str, &str, Convert)], what: &str) -> Value {
    Value::Array(
        v.as_object()
            .unwrap_or_else(|| panic!("{what} \"name\" {{ ... }}"))
            .iter()
            .map(|(name, block)| {
                let mut out = Map::new();
                out.insert("Name".into(), json!(name));
                out.extend(convert(block, table, &format!("{what}.{name}")));
                Value::Object(out)
            })
            .collect(),
    )
}

fn groups(v: &Value) -> Value {
    let table: &[(&str, &str, Convert)] = &[
        ("count", "Count", copy),
        ("constraint", "Constraints", constraints),
        ("network", "Networks", networks),
        ("volume", "Volumes", volumes),
        ("update", "Update", update),
        ("service", "Services", services),
        ("task", "Tasks", tasks),
    ];
    named_blocks(v, table, "group")
}

/// The API form (`{"Job": {...}}`) of the one job in an HCL jobspec.
fn api_job(hcl: &Value) -> Value {
    let (id, body) = hcl["job"]
        .as_object()
        .and_then(|jobs| jobs.iter().next())
        .expect("job \"ID\" { ... }");
    let table: &[(&str, &str, Convert)] = &[
        ("type", "Type", copy),
        ("datacenters", "Datacenters", copy),
        ("meta", "Meta", copy),
        ("update", "Update", update),
        ("group", "TaskGroups", groups),
    ];
    let mut job = Map::new();
    job.insert("ID".into(), json!(id));
    job.insert("Name".into(), json!(id));
    job.extend(convert(body, table, "job"));
    json!({ "Job": job })
}

fn controller_job() -> Value {
    serde_json::from_str(&read("deploy/nomad/nomarch.nomad.json"))
        .expect("deploy/nomad/nomarch.nomad.json is JSON")
}

#[test]
fn the_controller_job_says_the_same_in_hcl_and_json() {
    let from_hcl = api_job(&hcl_file("deploy/nomad/nomarch.nomad.hcl"));
    assert_eq!(
        from_hcl,
        controller_job(),
        "deploy/nomad/nomarch.nomad.hcl and .json differ; the HCL converts to:\n{}",
        serde_json::to_string_pretty(&from_hcl).unwrap()
    );
}

// --- The controller job's deploy rules ------------------------------------------------------------

/// What the controller job must hold to run nomarch safely, each a named rule with the field it
/// checks. Returns every broken rule as `field: why`.
fn deploy_problems(job: &Value) -> Vec<String> {
    let job = &job["Job"];
    let group = &job["TaskGroups"][0];
    let task = &group["Tasks"][0];
    let service = &group["Services"][0];
    let args: Vec<&str> = task["Config"]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let arg_after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1).copied())
    };
    // The drain: reconciles in flight finish (each Nomad or Consul request has its deadline),
    // then the lease is given up in one etcd request.
    let drain = controller::clients::http::REQUEST_TIMEOUT + controller::store::REQUEST_TIMEOUT;
    let check_paths: BTreeSet<&str> = service["Checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Path"].as_str())
        .collect();
    let secrets_in_env: Vec<&String> = task["Env"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| {
            ["TOKEN", "PASSWORD", "SECRET"]
                .iter()
                .any(|s| k.contains(s))
        })
        .collect();
    let git_cache = arg_after("--git-cache");
    let rules: Vec<(&str, &str, bool)> = vec![
        (
            "TaskGroups[0].Count",
            "at least 2 controllers, so one can take over",
            group["Count"].as_u64().unwrap_or(0) >= 2,
        ),
        (
            "TaskGroups[0].Constraints",
            "a distinct_hosts constraint, so one host's loss does not take both",
            group["Constraints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["Operand"] == "distinct_hosts" && c["RTarget"] == "true"),
        ),
        (
            "TaskGroups[0].Services[0].Checks",
            "checks on /readyz and /healthz",
            check_paths.contains("/readyz") && check_paths.contains("/healthz"),
        ),
        (
            "TaskGroups[0].Services[0].Tags",
            "prometheus.io/scrape=true, so /metrics is scraped",
            service["Tags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t == "prometheus.io/scrape=true"),
        ),
        (
            "TaskGroups[0].Tasks[0].KillTimeout",
            "longer than the controller's drain, so SIGKILL does not cut a reconcile or the lease hand-over",
            task["KillTimeout"].as_u64().unwrap_or(0) > drain.as_nanos() as u64,
        ),
        (
            "TaskGroups[0].Tasks[0].KillSignal",
            "SIGTERM, the signal that drains",
            task["KillSignal"] == "SIGTERM",
        ),
        (
            "TaskGroups[0].Tasks[0].Env",
            "no tokens or passwords in the job spec (they come from the variable or the identity)",
            secrets_in_env.is_empty(),
        ),
        (
            "TaskGroups[0].Tasks[0].Identity.Env",
            "the workload identity as NOMAD_TOKEN",
            task["Identity"]["Env"] == true,
        ),
        (
            "TaskGroups[0].Tasks[0].VolumeMounts",
            "the git cache (--git-cache) on the host volume",
            git_cache.is_some_and(|path| {
                task["VolumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["Destination"] == path)
            }),
        ),
        (
            "TaskGroups[0].Tasks[0].Config.args",
            "--listen on all addresses at the service's port",
            arg_after("--listen").is_some_and(|a| a.starts_with("0.0.0.0:")),
        ),
    ];
    rules
        .into_iter()
        .filter(|(_, _, holds)| !holds)
        .map(|(field, why, _)| format!("deploy/nomad/nomarch.nomad.json: Job.{field}: needs {why}"))
        .collect()
}

#[test]
fn the_controller_job_keeps_its_deploy_rules() {
    assert_eq!(deploy_problems(&controller_job()), Vec::<String>::new());
}

/// A change to the job's JSON.
type Edit = fn(&mut Value);

#[test]
fn broken_edits_of_the_controller_job_are_refused_naming_the_field() {
    let edits: Vec<(&str, Edit)> = vec![
        ("TaskGroups[0].Count", |j| {
            j["Job"]["TaskGroups"][0]["Count"] = json!(1)
        }),
        ("TaskGroups[0].Constraints", |j| {
            j["Job"]["TaskGroups"][0]["Constraints"] = json!([])
        }),
        ("TaskGroups[0].Services[0].Checks", |j| {
            j["Job"]["TaskGroups"][0]["Services"][0]["Checks"][1]["Path"] = json!("/")
        }),
        ("TaskGroups[0].Services[0].Tags", |j| {
            j["Job"]["TaskGroups"][0]["Services"][0]["Tags"] = json!(["metrics"])
        }),
        ("TaskGroups[0].Tasks[0].KillTimeout", |j| {
            j["Job"]["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!(5_000_000_000u64)
        }),
        ("TaskGroups[0].Tasks[0].KillSignal", |j| {
            j["Job"]["TaskGroups"][0]["Tasks"][0]["KillSignal"] = json!("SIGKILL")
        }),
        ("TaskGroups[0].Tasks[0].Env", |j| {
            j["Job"]["TaskGroups"][0]["Tasks"][0]["Env"]["NOMAD_TOKEN"] = json!("s3cr3t")
        }),
        ("TaskGroups[0].Tasks[0].Identity.Env", |j| {
            j["Job"]["TaskGroups"][0]["Tasks"][0]["Identity"] = json!({})
        }),
        ("TaskGroups[0].Tasks[0].VolumeMounts", |j| {
            j["Job"]["TaskGroups"][0]["Tasks"][0]["VolumeMounts"] = json!([])
        }),
        ("TaskGroups[0].Tasks[0].Config.args", |j| {
            j["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["args"][2] = json!("127.0.0.1:9430")
        }),
    ];
    for (field, edit) in edits {
        let mut job = controller_job();
        edit(&mut job);
        let problems = deploy_problems(&job);
        assert_eq!(problems.len(), 1, "{field}: {problems:?}");
        assert!(
            problems[0].contains(&format!("Job.{field}: needs")),
            "{problems:?}"
        );
    }
}

#[test]
fn the_controller_job_registers_on_nomad_sim_and_converges() {
    // Clients configured as deploy/nomad/nomarch.nomad.hcl asks: a `nomarch-git-cache` host
    // volume on each (without it Nomad, and nomad-sim, place nothing).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.json");
    let volume = json!({"nomarch-git-cache": {"path": "/var/lib/nomarch/git"}});
    let nodes: Vec<Value> = (1..=3)
        .map(|i| json!({"name": format!("node-{i}"), "class": "worker", "host_volumes": volume}))
        .collect();
    std::fs::write(&config, json!({"nodes": nodes}).to_string()).unwrap();
    let sim = SimProcess::start(&["--config", config.to_str().unwrap()]);
    let http = e2e::http::blocking_client();
    let job = controller_job();
    let response = http
        .put(format!("{}/v1/jobs", sim.nomad_url()))
        .json(&job)
        .send()
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        response.text().unwrap()
    );
    let get = |url: String| -> Value { http.get(url).send().unwrap().json().unwrap() };
    // The task reads its settings from `nomad/jobs/nomarch` before it starts, and waits while
    // the variable is missing, as the README's walk-through says (it writes it first).
    eventually("the instances wait for their variable", || {
        let allocs = get(format!("{}/v1/job/nomarch/allocations", sim.nomad_url()));
        let waiting = allocs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["TaskStates"]["controller"]["Events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| {
                        e["DisplayMessage"]
                            == "Missing: nomad.var.block(nomad/jobs/nomarch@default.global)"
                    })
            })
            .count();
        waiting == 2
    });
    let variable = json!({"Path": "nomad/jobs/nomarch", "Items": {
        "etcd_endpoints": "http://10.0.0.1:2379", "consul_addr": "http://127.0.0.1:8500"
    }});
    let written = http
        .put(format!("{}/v1/var/nomad/jobs/nomarch", sim.nomad_url()))
        .json(&variable)
        .send()
        .unwrap();
    assert!(written.status().is_success());
    eventually("two controllers running on distinct nodes", || {
        let allocs = get(format!("{}/v1/job/nomarch/allocations", sim.nomad_url()));
        let running: BTreeSet<&str> = allocs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["ClientStatus"] == "running")
            .filter_map(|a| a["NodeID"].as_str())
            .collect();
        running.len() == 2
    });
    eventually("both instances' checks pass in Consul", || {
        let healthy = get(format!(
            "{}/v1/health/service/nomarch?passing=true",
            sim.consul_url()
        ));
        healthy.as_array().map_or(0, Vec::len) == 2
    });
}

// --- The etcd job -------------------------------------------------------------------------------

#[test]
fn the_etcd_job_has_three_members_pinned_to_their_data() {
    let job = api_job(&hcl_file("deploy/nomad/etcd.nomad.hcl"));
    let job = &job["Job"];
    let initial = job["Meta"]["initial_cluster"]
        .as_str()
        .expect("meta.initial_cluster");
    let named: BTreeSet<&str> = initial
        .split(',')
        .map(|m| m.split('=').next().unwrap())
        .collect();
    let groups = job["TaskGroups"].as_array().expect("groups");
    assert_eq!(groups.len(), 3, "three members");
    let mut pins = BTreeSet::new();
    for group in groups {
        let name = group["Name"].as_str().unwrap();
        assert_eq!(
            group.get("Count"),
            None,
            "{name}: one instance (the default)"
        );
        let pin = group["Constraints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["LTarget"] == "${meta.etcd_member}")
            .unwrap_or_else(|| panic!("{name}: pinned by node meta"));
        pins.insert(pin["RTarget"].as_str().unwrap().to_string());
        assert_eq!(group["Volumes"]["data"]["Type"], "host", "{name}");
        let task = &group["Tasks"][0];
        assert_eq!(task["VolumeMounts"][0]["Volume"], "data", "{name}");
        let args: Vec<&str> = task["Config"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
        assert_eq!(after("--name"), name, "member name is the group name");
        assert!(
            named.contains(name),
            "{name} is in the initial cluster {initial}"
        );
        assert_eq!(after("--initial-cluster"), "${NOMAD_META_initial_cluster}");
        assert!(
            after("--data-dir")
                .starts_with(task["VolumeMounts"][0]["Destination"].as_str().unwrap()),
            "{name}: data on the host volume"
        );
    }
    assert_eq!(pins.len(), 3, "each member on its own node: {pins:?}");
    assert_eq!(named.len(), 3, "{initial}");
}

// --- ACL policies against the calls the clients make --------------------------------------------

/// The grant each API path needs, from the Nomad and Consul source named in the policies'
/// comments. Paths as they appear in the client code, with `:x` for each placeholder.
const NOMAD_NEEDS: &[(&str, &[&str])] = &[
    ("/v1/jobs", &["namespace:list-jobs"]),
    // GET (read), PUT (register) and DELETE (stop) of one job.
    (
        "/v1/job/:x",
        &["namespace:read-job", "namespace:submit-job"],
    ),
    ("/v1/job/:x/plan", &["namespace:submit-job"]),
    // A NomadJob's HCL: job_endpoint.go JobsParseRequest allows parse-job or submit-job.
    ("/v1/jobs/parse", &["namespace:submit-job"]),
    // A NomadJob checked before it is written: job_endpoint.go Validate checks read-job.
    ("/v1/validate/job", &["namespace:read-job"]),
    ("/v1/job/:x/allocations", &["namespace:read-job"]),
    ("/v1/job/:x/deployments", &["namespace:read-job"]),
    ("/v1/job/:x/deployment", &["namespace:read-job"]),
    ("/v1/job/:x/periodic/force", &["namespace:submit-job"]),
    // A rollout replaced before it was seen to end: deployment_endpoint.go GetDeployment.
    ("/v1/deployment/:x", &["namespace:read-job"]),
    // `nomarch rollout promote`: deployment_endpoint.go Promote checks submit-job.
    ("/v1/deployment/promote/:x", &["namespace:submit-job"]),
    ("/v1/allocations", &["namespace:read-job"]),
    ("/v1/allocation/:x/stop", &["namespace:alloc-lifecycle"]),
    // `nomarch rollout restart`: client/alloc_endpoint.go Restart checks alloc-lifecycle.
    (
        "/v1/client/allocation/:x/restart",
        &["namespace:alloc-lifecycle"],
    ),
    // `nomarch logs`: client/fs_endpoint.go logs checks read-logs (or read-fs).
    ("/v1/client/fs/logs/:x", &["namespace:read-logs"]),
    ("/v1/var/:x", &["variables:nomarch/*:read"]),
    // The namespaces the token can see (namespace_endpoint.go ListNamespaces filters by any
    // capability in them): the event stream reopens when one appears.
    ("/v1/namespaces", &["namespace:read-job"]),
    ("/v1/nodes", &["node:read"]),
    ("/v1/node/:x", &["node:read"]),
    ("/v1/node/:x/eligibility", &["cordon:node:write"]),
    // Topics Job, Allocation and Deployment (checked below) in namespace "*".
    ("/v1/event/stream", &["namespace:read-job"]),
];

const CONSUL_NEEDS: &[(&str, &[&str])] = &[
    (
        "/v1/health/service/:x",
        &["service_prefix::read", "node_prefix::read"],
    ),
    (
        "/v1/health/state/:x",
        &["service_prefix::read", "node_prefix::read"],
    ),
];

/// The API paths a client source file calls, test module left out.
fn called_paths(path: &str) -> BTreeSet<String> {
    let source = read(path);
    let code = source.split("#[cfg(test)]").next().unwrap();
    let literal = Regex::new(r#""(/v1/[^"]*)""#).unwrap();
    let job_suffix = Regex::new(r#"job_path\([^,]+,\s*"([^"]*)"\)"#).unwrap();
    let placeholder = Regex::new(r"\{[^}]*\}").unwrap();
    literal
        .captures_iter(code)
        .map(|c| c[1].to_string())
        .chain(
            job_suffix
                .captures_iter(code)
                .map(|c| format!("/v1/job/{{}}{}", &c[1])),
        )
        .map(|p| placeholder.replace_all(&p, ":x").into_owned())
        // `job_path`'s own format string; its callers' suffixes are read above.
        .filter(|p| p != "/v1/job/:x:x")
        .collect()
}

fn needed(paths: &BTreeSet<String>, table: &[(&str, &[&str])], client: &str) -> BTreeSet<String> {
    let known: BTreeSet<String> = table.iter().map(|(p, _)| p.to_string()).collect();
    let unmapped: Vec<&String> = paths.difference(&known).collect();
    assert!(
        unmapped.is_empty(),
        "{client} calls {unmapped:?}: add the ACL it needs to this test's table and to deploy/acl/"
    );
    let stale: Vec<&String> = known.difference(paths).collect();
    assert!(
        stale.is_empty(),
        "{client} no longer calls {stale:?}: drop them here and from deploy/acl/"
    );
    table
        .iter()
        .flat_map(|(_, grants)| grants.iter().map(|g| g.to_string()))
        .collect()
}

/// The grants in a Nomad policy, in the table's words.
fn nomad_grants(policy: &Value, prefix: &str) -> BTreeSet<String> {
    let mut grants = BTreeSet::new();
    for (_, namespace) in policy["namespace"].as_object().into_iter().flatten() {
        for capability in namespace["capabilities"].as_array().into_iter().flatten() {
            grants.insert(format!(
                "{prefix}namespace:{}",
                capability.as_str().unwrap()
            ));
        }
        for (path, rule) in namespace["variables"]["path"]
            .as_object()
            .into_iter()
            .flatten()
        {
            for capability in rule["capabilities"].as_array().into_iter().flatten() {
                grants.insert(format!(
                    "{prefix}variables:{path}:{}",
                    capability.as_str().unwrap()
                ));
            }
        }
        assert!(
            namespace.get("policy").is_none(),
            "capabilities, not a coarse policy"
        );
    }
    if let Some(policy) = policy["node"]["policy"].as_str() {
        grants.insert(format!("{prefix}node:{policy}"));
    }
    grants
}

#[test]
fn the_acl_policies_grant_exactly_what_the_clients_call() {
    let mut nomad_paths = called_paths("controller/src/clients/nomad.rs");
    nomad_paths.extend(called_paths("controller/src/clients/logs.rs"));
    let needs = needed(&nomad_paths, NOMAD_NEEDS, "the Nomad client");
    let policy = hcl_file("deploy/acl/nomad-policy.hcl");
    assert_eq!(
        policy["namespace"]
            .as_object()
            .map(|n| n.keys().collect::<Vec<_>>()),
        Some(vec![&"*".to_string()]),
        "the event stream in namespace \"*\" needs read-job in every namespace"
    );
    let mut granted = nomad_grants(&policy, "");
    granted.extend(nomad_grants(
        &hcl_file("deploy/acl/nomad-policy-cordon.hcl"),
        "cordon:",
    ));
    assert_eq!(
        granted, needs,
        "deploy/acl/nomad-policy*.hcl against the Nomad client's calls"
    );

    // The event stream's topics decide what it needs: Job, Allocation and Deployment are
    // read-job (event_endpoint.go validateNsOp).
    let triggers = read("controller/src/runtime/triggers.rs");
    let topics = Regex::new(r#"event_stream\(&\[([^\]]*)\]"#).unwrap();
    let subscribed: Vec<String> = topics
        .captures_iter(&triggers)
        .map(|c| c[1].replace([' ', '"'], ""))
        .collect();
    assert_eq!(
        subscribed,
        ["Job,Allocation,Deployment"],
        "new topics need their ACL in the policy"
    );

    let consul_paths = called_paths("controller/src/clients/consul.rs");
    let needs = needed(&consul_paths, CONSUL_NEEDS, "the Consul client");
    let policy = hcl_file("deploy/acl/consul-policy.hcl");
    let mut granted = BTreeSet::new();
    for rule in [
        "service_prefix",
        "node_prefix",
        "service",
        "node",
        "key_prefix",
        "agent_prefix",
    ] {
        for (name, body) in policy[rule].as_object().into_iter().flatten() {
            granted.insert(format!(
                "{rule}:{name}:{}",
                body["policy"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(
        granted, needs,
        "deploy/acl/consul-policy.hcl against the Consul client's calls"
    );
}

// --- Prometheus, Grafana, systemd -----------------------------------------------------------------

fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo().join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("promtool ({e}): run `make deps` (Debian's prometheus)"));
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool() {
    promtool(&["check", "rules", "nomarch-rules.yml"]);
    promtool(&["test", "rules", "nomarch-rules.test.yml"]);
}

/// The sample names `/metrics` can carry, from its TYPE lines (a counter's samples end in
/// `_total`, a histogram's in `_bucket`, `_sum` and `_count`).
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

#[test]
fn the_dashboard_and_the_rules_name_only_metrics_the_controller_exports() {
    // A git source that has synced, so its series exists too (the others exist from start).
    let repo_dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(repo_dir.path().join("app.yaml"), APP).unwrap();
    git(repo_dir.path(), &["init", "-q", "-b", "main"]);
    git(repo_dir.path(), &["add", "."]);
    git(repo_dir.path(), &["commit", "-q", "-m", "one app"]);
    let mut world = World::without_controller(&[]);
    world.restart_controller_with(&["--git-cache", cache.path().to_str().unwrap()]);
    world.apply(&format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: state\nspec:\n  url: file://{}\n  branch: main\n  path: .\n",
        repo_dir.path().display()
    ));
    let controller = world.controller.as_ref().unwrap();
    eventually("the git source synced", || {
        controller
            .metrics()
            .contains("nomarch_git_last_sync_timestamp_seconds{")
    });
    let metrics = controller.metrics();
    let exported = exported(&metrics);

    let name = Regex::new(r"nomarch_[a-z_]+").unwrap();
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/nomarch-dashboard.json"))
        .expect("the dashboard is JSON");
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let found: Vec<&str> = name.find_iter(expr).map(|m| m.as_str()).collect();
            assert!(
                !found.is_empty(),
                "{}: {expr} names no nomarch metric",
                panel["title"]
            );
            used.extend(found.into_iter().map(|n| ("dashboard", n.to_string())));
        }
    }
    let rules = read("deploy/prometheus/nomarch-rules.yml");
    let rules: Value = serde_saphyr::from_str(&rules).expect("the rules are YAML");
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            used.extend(
                name.find_iter(expr)
                    .map(|m| ("rules", m.as_str().to_string())),
            );
        }
    }
    let missing: Vec<&(&str, String)> =
        used.iter().filter(|(_, n)| !exported.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{metrics}"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    // verify needs the unit's binary and environment file to exist: point them at this build.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/nomarch.service")
        .replace("/usr/local/bin/nomarch", env!("CARGO_BIN_EXE_nomarch"))
        .replace(
            "/etc/nomarch/nomarch.env",
            repo().join("deploy/systemd/nomarch.env").to_str().unwrap(),
        );
    let path = dir.path().join("nomarch.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd; `make deps` installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );

    // The environment file names every address the controller needs.
    let env = read("deploy/systemd/nomarch.env");
    for name in ["NOMARCH_ETCD_ENDPOINTS", "NOMAD_ADDR", "CONSUL_HTTP_ADDR"] {
        assert!(env.contains(&format!("\n{name}=")), "{name} in nomarch.env");
    }
}
