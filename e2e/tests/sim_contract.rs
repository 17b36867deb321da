//! Contract: for every sample in `e2e/nomad-api/`, nomad-sim's answer to the same request has
//! the same fields (recursively), the same JSON types and the same status code. A sample that is
//! neither covered here nor listed as not simulated fails the test, so new samples get looked at.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::sim::config::SimConfig;
use e2e::sim::RunningSim;
use futures::StreamExt;
use serde_json::{json, Value};

fn sample(name: &str) -> Value {
    e2e::samples::load(name)
}

/// Samples nomad-sim does not simulate, and why. Everything else must have a case below.
const NOT_SIMULATED: &[(&str, &str)] = &[
    (
        "nomad-deployment-unblock-response",
        "multiregion deployments are not simulated",
    ),
    (
        "nomad-job-dispatch-request",
        "parameterized dispatch is not simulated",
    ),
    (
        "nomad-job-dispatch-response",
        "parameterized dispatch is not simulated",
    ),
    ("nomad-job-scale-response", "scaling is not simulated"),
    ("nomad-job-scale-status", "scaling is not simulated"),
    ("nomad-jobs-parse-request", "HCL parsing is not simulated"),
    ("nomad-jobs-parse-response", "HCL parsing is not simulated"),
    (
        "nomad-job-submission",
        "job submissions (HCL source) are not kept",
    ),
    ("nomad-job-actions", "job actions are not simulated"),
    (
        "nomad-job-revert-request-2",
        "version tags are not simulated",
    ),
];

/// Maps keyed by user data (driver config, env, meta, attributes): values differ from key to
/// key, so only keys present on both sides are compared, and an empty map is fine.
const USER_MAPS: &[&str] = &[
    "Attributes",
    "Config",
    "Details",
    "Env",
    "Header",
    "HostNetworks",
    "HostVolumes",
    "Links",
    "Meta",
    "NodeMeta",
    "ServiceMeta",
];

/// Maps keyed by names or IDs (tasks, groups, nodes, datacenters) whose values share one shape.
const KEYED_MAPS: &[&str] = &[
    "ClassEligibility",
    "ClassExhausted",
    "ClassFiltered",
    "ConstraintFiltered",
    "DesiredTGUpdates",
    "DimensionExhausted",
    "Drivers",
    "FailedTGAllocs",
    "NodesAvailable",
    "QueuedAllocations",
    "Scores",
    "Summary",
    "TaskLifecycles",
    "TaskResources",
    "TaskStates",
    "Tasks",
    "Updates",
];

/// Go pointers and slices: Nomad sends `null` when they are unset, so `null` is a valid answer
/// where the sample happens to show a value.
const NULLABLE: &[&str] = &[
    "Affinities",
    "Annotations",
    "Args",
    "ClassExhausted",
    "ClassFiltered",
    "ConstraintFiltered",
    "DimensionExhausted",
    "MaxClientDisconnect",
    "Migrate",
    "QuotaExhausted",
    "ResourcesExhausted",
    "ScoreMetaData",
    "ServiceTags",
    "Artifacts",
    "CSIPluginConfig",
    "CheckRestart",
    "Checks",
    "Constraints",
    "CreatedEvals",
    "DNS",
    "DeploymentStatus",
    "Devices",
    "Diff",
    "Disconnect",
    "DispatchPayload",
    "DrainStrategy",
    "EvalIDs",
    "Env",
    "FailedTGAllocs",
    "Fields",
    "Header",
    "LastDrain",
    "Lifecycle",
    "Meta",
    "Multiregion",
    "Networks",
    "Objects",
    "ParameterizedJob",
    "Payload",
    "Periodic",
    "PreemptedAllocations",
    "RelatedEvals",
    "RescheduleTracker",
    "ReservedPorts",
    "RevertedJobVersion",
    "PlacedCanaries",
    // `AllocDeploymentStatus.Healthy` is a `*bool`: unset until the client judged health.
    "Healthy",
    "Scaling",
    "ScalingPolicies",
    "Services",
    "Spreads",
    "Tags",
    "TaskGroups",
    "Tasks",
    "Templates",
    "Updates",
    "Vault",
    "VolumeMounts",
    "Volumes",
];

/// Fields that are only present in some states (Consul's `Session` exists only on a locked key).
const OPTIONAL: &[&str] = &["Session"];

/// Doc samples elide with `"..."` list items and `"//"` keys; those parts match anything.
fn elided(sample: &Value) -> bool {
    match sample {
        Value::Array(items) => items.first().is_some_and(|i| i == "..."),
        Value::Object(map) => map.contains_key("//"),
        _ => false,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MapKind {
    Fixed,
    Keyed,
    User,
}

fn map_kind(key: &str) -> MapKind {
    if USER_MAPS.contains(&key) {
        MapKind::User
    } else if KEYED_MAPS.contains(&key) {
        MapKind::Keyed
    } else {
        MapKind::Fixed
    }
}

/// Records every place where `actual` lacks a field of `sample` or has another JSON type.
fn compare(
    sample: &Value,
    actual: &Value,
    path: &str,
    kind: MapKind,
    nullable: bool,
    errors: &mut Vec<String>,
) {
    if sample.is_null() || elided(sample) || (nullable && actual.is_null()) {
        return;
    }
    let types_match = match (sample, actual) {
        (Value::Number(s), Value::Number(a)) => s.is_f64() || !a.is_f64(),
        _ => std::mem::discriminant(sample) == std::mem::discriminant(actual),
    };
    if !types_match {
        errors.push(format!(
            "{path}: expected {}, got {}",
            type_name(sample),
            type_name(actual)
        ));
        return;
    }
    match (sample, actual) {
        // User data: the same key should hold the same kind of value; its insides are the user's.
        (Value::Object(s), Value::Object(a)) if kind == MapKind::User => {
            for (key, value) in a {
                if let Some(expected) = s.get(key).filter(|e| !e.is_null()) {
                    if type_name(expected) != type_name(value)
                        && !(expected.is_number() && value.is_number())
                    {
                        errors.push(format!(
                            "{path}[{key}]: expected {}, got {}",
                            type_name(expected),
                            type_name(value)
                        ));
                    }
                }
            }
        }
        (Value::Object(s), Value::Object(a)) if kind == MapKind::Keyed => {
            if !s.is_empty() && a.is_empty() {
                errors.push(format!(
                    "{path}: expected entries, got an empty map (cannot check their shape)"
                ));
            }
            if let Some(first) = s.values().next() {
                for (key, value) in a {
                    let expected = s.get(key).unwrap_or(first);
                    compare(
                        expected,
                        value,
                        &format!("{path}[{key}]"),
                        MapKind::Fixed,
                        false,
                        errors,
                    );
                }
            }
        }
        (Value::Object(s), Value::Object(a)) => {
            for (key, value) in s {
                let child = format!("{path}.{key}");
                match a.get(key) {
                    None if OPTIONAL.contains(&key.as_str()) => {}
                    None => errors.push(format!("{child}: missing")),
                    Some(actual_value) => compare(
                        value,
                        actual_value,
                        &child,
                        map_kind(key),
                        NULLABLE.contains(&key.as_str()),
                        errors,
                    ),
                }
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            if let Some(first) = s.first() {
                if a.is_empty() && !nullable {
                    errors.push(format!(
                        "{path}: expected items, got an empty list (cannot check their shape)"
                    ));
                }
                for (i, item) in a.iter().enumerate() {
                    compare(
                        first,
                        item,
                        &format!("{path}[{i}]"),
                        MapKind::Fixed,
                        false,
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

struct Client {
    http: reqwest::Client,
    nomad: String,
    consul: String,
}

impl Client {
    async fn call(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        e2e::testing::send(request).await
    }

    async fn nomad(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(&self.nomad, method, path, body).await
    }

    async fn consul(&self, path: &str) -> (u16, Value) {
        self.call(&self.consul, "GET", path, None).await
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, reply) = self.nomad(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply
    }
}

/// A job spec as a user submits it: the sample's job without the fields the server sets.
fn submitted(mut job: Value, id: &str) -> Value {
    let object = job.as_object_mut().unwrap();
    for key in e2e::sim::model::SERVER_SET_FIELDS {
        object.remove(*key);
    }
    object.insert("ID".into(), json!(id));
    object.insert("Name".into(), json!(id));
    job
}

/// A job with a Nomad-native service and an HTTP check (the samples of `/v1/service`,
/// `/v1/allocation/:id/checks` and friends come from such a job).
fn nomad_service_job() -> Value {
    json!({
        "ID": "native", "Type": "service",
        "TaskGroups": [{
            "Name": "cache", "Count": 1,
            "Networks": [{"DynamicPorts": [{"Label": "db", "To": 6379}]}],
            "Services": [{"Name": "example-cache-redis", "PortLabel": "db", "Provider": "nomad", "Tags": ["db", "cache"],
                          "Checks": [{"Name": "redis_probe", "Type": "http", "Path": "/", "Interval": 1_000_000_000u64, "Timeout": 1_000_000_000u64}]}],
            "Tasks": [{"Name": "redis", "Driver": "docker", "Config": {"image": "redis:7"}, "Resources": {"CPU": 100, "MemoryMB": 64}}],
        }],
    })
}

/// The first data frame of an event stream request.
async fn first_frame(client: &Client, path: &str) -> Value {
    let response = client
        .http
        .get(format!("{}{path}", client.nomad))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a frame")
            .expect("open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(newline) = buffer.find('\n') {
            let line: String = buffer.drain(..=newline).collect();
            let frame: Value = serde_json::from_str(line.trim()).unwrap();
            if frame.get("Index").is_some() {
                return frame;
            }
        }
    }
}

#[tokio::test]
async fn every_sample_matches_nomad_sims_answer() {
    let config = SimConfig {
        start_delay: Duration::from_millis(50),
        ..SimConfig::default()
    };
    let sim = RunningSim::start(config, 1.0, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    let c = Client {
        http: e2e::http::client(),
        nomad: sim.nomad_url(),
        consul: sim.consul_url(),
    };

    // --- The cluster the samples describe ---------------------------------------------------
    let alloc_sample = sample("nomad-allocation-read");
    c.ok(
        "PUT",
        "/v1/jobs",
        Some(json!({"Job": submitted(alloc_sample["Job"].clone(), "example")})),
    )
    .await;
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": nomad_service_job()})))
        .await;
    let doc_job = submitted(sample("nomad-job-read"), "documented");
    c.ok(
        "PUT",
        "/v1/namespace/apps",
        Some(json!({"Description": "the documented job's namespace"})),
    )
    .await;
    // Its node pool exists once a client registers into it, as on a real cluster.
    let pool = doc_job["NodePool"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    c.ok(
        "POST",
        "/_sim/nodes",
        Some(json!({"name": "pool-client", "pool": pool})),
    )
    .await;
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": doc_job}))).await;
    c.ok("PUT", "/v1/namespace/staging", Some(json!({"Description": "Development Staging Namespace", "Meta": {"type": "dev", "contact": "helpdesk@example.com"}}))).await;
    e2e::testing::eventually("allocations running", || async {
        let (_, allocs) = c.nomad("GET", "/v1/allocations", None).await;
        allocs
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|a| a["ClientStatus"] == "running"))
    })
    .await;
    let (_, allocs) = c.nomad("GET", "/v1/job/example/allocations", None).await;
    let alloc_id = allocs[0]["ID"].as_str().unwrap().to_string();
    let node_id = allocs[0]["NodeID"].as_str().unwrap().to_string();
    let eval_id = allocs[0]["EvalID"].as_str().unwrap().to_string();
    let (_, native_allocs) = c.nomad("GET", "/v1/job/native/allocations", None).await;
    let native_alloc = native_allocs[0]["ID"].as_str().unwrap().to_string();

    // Two versions, the second adding an env var, as the versions samples show.
    let mut v0 = submitted(alloc_sample["Job"].clone(), "versioned");
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": v0.clone()})))
        .await;
    v0["TaskGroups"][0]["Tasks"][0]["Env"] = json!({"foo": "bar"});
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": v0}))).await;

    let mut periodic = nomad_service_job();
    periodic["ID"] = json!("nightly");
    periodic["Type"] = json!("batch");
    periodic["TaskGroups"][0]["Services"] = Value::Null;
    periodic["Periodic"] = sample("nomad-job-spec-periodic-fragment")["Periodic"].clone();
    periodic["Periodic"]["Spec"] = json!("30 2 * * *");
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": periodic})))
        .await;

    // A plan that cannot be placed (the plan sample shows CPU exhaustion).
    let mut too_big = sample("nomad-job-register-request")["Job"].clone();
    too_big["ID"] = json!("too-big");
    too_big["NodePool"] = json!("default");
    too_big["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 100_000, "MemoryMB": 64});

    let (_, nodes) = c.nomad("GET", "/v1/nodes", None).await;
    let spare_node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ID"] != node_id.as_str())
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let extra = c
        .ok("POST", "/_sim/nodes", Some(json!({"name": "to-purge"})))
        .await;
    let purge_id = extra["ID"].as_str().unwrap().to_string();

    let mut stop_job = nomad_service_job();
    stop_job["ID"] = json!("to-stop");
    stop_job["TaskGroups"][0]["Services"] = Value::Null;
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": stop_job})))
        .await;
    c.consul("/v1/kv/web/foo").await;
    c.call(&c.consul, "PUT", "/v1/kv/web/foo", Some(json!("test")))
        .await;
    c.call(&c.consul, "PUT", "/v1/kv/web/bar", Some(json!("x")))
        .await;
    c.call(&c.consul, "PUT", "/v1/kv/zip", Some(json!("test")))
        .await;

    // --- Requests and their samples ---------------------------------------------------------
    struct Case {
        sample: &'static str,
        status: u16,
        reply: Value,
        root_free_form: bool,
    }
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |sample: &'static str, (status, reply): (u16, Value), root_free_form: bool| {
        cases.push(Case {
            sample,
            status,
            reply,
            root_free_form,
        })
    };

    // A rollout that stays in progress (its allocations need a minute to count as healthy).
    let mut rolling = nomad_service_job();
    rolling["ID"] = json!("rolling");
    rolling["Update"] = json!({"MaxParallel": 1, "MinHealthyTime": 60_000_000_000u64});
    rolling["TaskGroups"][0]["Count"] = json!(2);
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": rolling}))).await;
    let deployment = c.ok("GET", "/v1/job/rolling/deployment", None).await;
    let deployment_id = deployment["ID"].as_str().expect("a deployment").to_string();
    let (_, members) = c
        .nomad(
            "GET",
            &format!("/v1/deployment/allocations/{deployment_id}"),
            None,
        )
        .await;
    let member = members[0]["ID"].as_str().expect("a member").to_string();
    add(
        "nomad-deployments-list",
        c.nomad("GET", "/v1/deployments", None).await,
        false,
    );
    add(
        "nomad-deployment-read",
        c.nomad("GET", &format!("/v1/deployment/{deployment_id}"), None)
            .await,
        false,
    );
    add(
        "nomad-job-deployments",
        c.nomad("GET", "/v1/job/rolling/deployments", None).await,
        false,
    );
    add(
        "nomad-job-deployment-latest",
        c.nomad("GET", "/v1/job/rolling/deployment", None).await,
        false,
    );
    add(
        "nomad-deployment-allocations",
        c.nomad(
            "GET",
            &format!("/v1/deployment/allocations/{deployment_id}"),
            None,
        )
        .await,
        false,
    );
    let mut pause = sample("nomad-deployment-pause-request");
    pause["DeploymentID"] = json!(deployment_id);
    let pause_path = format!("/v1/deployment/pause/{deployment_id}");
    add(
        "nomad-deployment-pause-request",
        c.nomad("PUT", &pause_path, Some(pause)).await,
        false,
    );
    let resume = json!({"DeploymentID": deployment_id, "Pause": false});
    add(
        "nomad-deployment-pause-response",
        c.nomad("PUT", &pause_path, Some(resume)).await,
        false,
    );
    let mut health = sample("nomad-deployment-allocation-health-request");
    health["DeploymentID"] = json!(deployment_id);
    health["HealthyAllocationIDs"] = json!([member]);
    let health_path = format!("/v1/deployment/allocation-health/{deployment_id}");
    add(
        "nomad-deployment-allocation-health-request",
        c.nomad("PUT", &health_path, Some(health)).await,
        false,
    );
    add(
        "nomad-deployment-allocation-health-response",
        c.nomad(
            "PUT",
            &health_path,
            Some(json!({"DeploymentID": deployment_id})),
        )
        .await,
        false,
    );
    add(
        "nomad-deployment-fail-response",
        c.nomad(
            "PUT",
            &format!("/v1/deployment/fail/{deployment_id}"),
            Some(json!({"DeploymentID": deployment_id})),
        )
        .await,
        false,
    );

    // A canary deployment: a new image places one canary beside the running allocation; the
    // operator judges it healthy (`health_check = "manual"`), then promotes it; the second
    // allocation's replacement keeps the deployment running for the last promote.
    let mut canaried = nomad_service_job();
    canaried["ID"] = json!("canaried");
    canaried["TaskGroups"][0]["Count"] = json!(2);
    canaried["Update"] = json!({"MaxParallel": 1, "Canary": 1, "HealthCheck": "manual"});
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": canaried.clone()})))
        .await;
    canaried["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("redis:8");
    c.ok("PUT", "/v1/jobs", Some(json!({"Job": canaried})))
        .await;
    let mut canary_deployment = Value::Null;
    for _ in 0..200 {
        canary_deployment = c.ok("GET", "/v1/job/canaried/deployment", None).await;
        if canary_deployment["TaskGroups"]["cache"]["PlacedCanaries"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let canary_deployment_id = canary_deployment["ID"].as_str().unwrap().to_string();
    let canary = canary_deployment["TaskGroups"]["cache"]["PlacedCanaries"][0].clone();
    assert!(
        canary.is_string(),
        "a canary is placed: {canary_deployment}"
    );
    c.ok(
        "PUT",
        &format!("/v1/deployment/allocation-health/{canary_deployment_id}"),
        Some(json!({"DeploymentID": canary_deployment_id, "HealthyAllocationIDs": [canary]})),
    )
    .await;
    let promote_path = format!("/v1/deployment/promote/{canary_deployment_id}");
    let mut promote_groups = sample("nomad-deployment-promote-request-groups");
    promote_groups["DeploymentID"] = json!(canary_deployment_id);
    add(
        "nomad-deployment-promote-request-groups",
        c.nomad("PUT", &promote_path, Some(promote_groups)).await,
        false,
    );
    let mut promote_all = sample("nomad-deployment-promote-request-all");
    promote_all["DeploymentID"] = json!(canary_deployment_id);
    add(
        "nomad-deployment-promote-request-all",
        c.nomad("PUT", &promote_path, Some(promote_all.clone()))
            .await,
        false,
    );
    add(
        "nomad-deployment-promote-response",
        c.nomad("PUT", &promote_path, Some(promote_all)).await,
        false,
    );

    // An update Nomad makes in place (a priority is not among tasksUpdated's fields): a meta
    // change would replace the allocation the samples below read.
    let mut updated_example = submitted(alloc_sample["Job"].clone(), "example");
    updated_example["Priority"] = json!(60);
    add(
        "nomad-job-register-request",
        c.nomad(
            "PUT",
            "/v1/jobs",
            Some(sample("nomad-job-register-request")),
        )
        .await,
        false,
    );
    add(
        "nomad-job-register-response",
        c.nomad("PUT", "/v1/jobs", Some(json!({"Job": nomad_service_job()})))
            .await,
        false,
    );
    add(
        "nomad-job-spec-example",
        c.nomad("PUT", "/v1/jobs", Some(sample("nomad-job-spec-example")))
            .await,
        false,
    );
    let mut with_update = nomad_service_job();
    with_update["ID"] = json!("with-update");
    with_update["Update"] = sample("nomad-job-spec-update-fragment")["Update"].clone();
    add(
        "nomad-job-spec-update-fragment",
        c.nomad("PUT", "/v1/jobs", Some(json!({"Job": with_update})))
            .await,
        false,
    );
    let mut with_periodic = nomad_service_job();
    with_periodic["ID"] = json!("with-periodic");
    with_periodic["Type"] = json!("batch");
    with_periodic["Periodic"] = sample("nomad-job-spec-periodic-fragment")["Periodic"].clone();
    // The docs' fragment says "*/15 - *": three fields, which Nomad's cron parser refuses
    // (hashicorp/cronexpr `Parse`: "missing field(s)"). Its shape, with a spec Nomad reads.
    with_periodic["Periodic"]["Spec"] = json!("*/15 * * * *");
    add(
        "nomad-job-spec-periodic-fragment",
        c.nomad("PUT", "/v1/jobs", Some(json!({"Job": with_periodic})))
            .await,
        false,
    );
    add(
        "nomad-job-update-response",
        c.nomad(
            "PUT",
            "/v1/job/example",
            Some(json!({"Job": updated_example})),
        )
        .await,
        false,
    );
    add(
        "nomad-jobs-list",
        c.nomad("GET", "/v1/jobs", None).await,
        false,
    );
    add(
        "nomad-job-read",
        c.nomad("GET", "/v1/job/documented?namespace=apps", None)
            .await,
        false,
    );
    add(
        "nomad-job-versions",
        c.nomad("GET", "/v1/job/versioned/versions", None).await,
        false,
    );
    add(
        "nomad-job-versions-diffs",
        c.nomad("GET", "/v1/job/versioned/versions?diffs=true", None)
            .await,
        false,
    );
    add(
        "nomad-job-allocations",
        c.nomad("GET", "/v1/job/example/allocations", None).await,
        false,
    );
    add(
        "nomad-job-evaluations",
        c.nomad("GET", "/v1/job/example/evaluations", None).await,
        false,
    );
    add(
        "nomad-job-summary",
        c.nomad("GET", "/v1/job/example/summary", None).await,
        false,
    );
    add(
        "nomad-job-services",
        c.nomad("GET", "/v1/job/native/services", None).await,
        false,
    );
    add(
        "nomad-job-plan-response",
        c.nomad(
            "PUT",
            "/v1/job/too-big/plan",
            Some(json!({"Job": too_big, "Diff": true})),
        )
        .await,
        false,
    );
    let mut evaluate = sample("nomad-job-evaluate-request");
    evaluate["JobID"] = json!("example");
    add(
        "nomad-job-evaluate-request",
        c.nomad("PUT", "/v1/job/example/evaluate", Some(evaluate.clone()))
            .await,
        false,
    );
    add(
        "nomad-job-evaluate-response",
        c.nomad("PUT", "/v1/job/example/evaluate", Some(evaluate))
            .await,
        false,
    );
    let mut stability = sample("nomad-job-stability-request");
    stability["JobID"] = json!("versioned");
    stability["JobVersion"] = json!(1);
    add(
        "nomad-job-stability-request",
        c.nomad("PUT", "/v1/job/versioned/stable", Some(stability.clone()))
            .await,
        false,
    );
    add(
        "nomad-job-stability-response",
        c.nomad("PUT", "/v1/job/versioned/stable", Some(stability))
            .await,
        false,
    );
    let mut revert = sample("nomad-job-revert-request");
    revert["JobID"] = json!("versioned");
    revert["JobVersion"] = json!(0);
    add(
        "nomad-job-revert-request",
        c.nomad("PUT", "/v1/job/versioned/revert", Some(revert))
            .await,
        false,
    );
    let revert_again = json!({"JobID": "versioned", "JobVersion": 1});
    add(
        "nomad-job-revert-response",
        c.nomad("PUT", "/v1/job/versioned/revert", Some(revert_again))
            .await,
        false,
    );
    add(
        "nomad-periodic-force-response",
        c.nomad("PUT", "/v1/job/nightly/periodic/force", None).await,
        false,
    );
    add(
        "nomad-job-stop-response",
        c.nomad("DELETE", "/v1/job/to-stop", None).await,
        false,
    );

    add(
        "nomad-allocations-list",
        c.nomad("GET", "/v1/allocations", None).await,
        false,
    );
    add(
        "nomad-allocation-read",
        c.nomad("GET", &format!("/v1/allocation/{alloc_id}"), None)
            .await,
        false,
    );
    add(
        "nomad-allocation-checks",
        c.nomad(
            "GET",
            &format!("/v1/allocation/{native_alloc}/checks"),
            None,
        )
        .await,
        true,
    );
    add(
        "nomad-allocation-services",
        c.nomad(
            "GET",
            &format!("/v1/allocation/{native_alloc}/services"),
            None,
        )
        .await,
        false,
    );
    // A task restarts only while it runs (taskrunner/lifecycle.go `Restart`): by now the
    // first allocation was replaced by an update, so wait for one that runs.
    let running = || async {
        let (_, allocs) = c.nomad("GET", "/v1/job/example/allocations", None).await;
        allocs.as_array().and_then(|allocs| {
            allocs
                .iter()
                .find(|a| a["ClientStatus"] == "running")
                .and_then(|a| a["ID"].as_str())
                .map(String::from)
        })
    };
    e2e::testing::eventually("an allocation of example runs", || async {
        running().await.is_some()
    })
    .await;
    let running_alloc = running().await.expect("one runs");
    let restart = json!({"TaskName": "redis"});
    add(
        "nomad-allocation-restart-request",
        c.nomad(
            "PUT",
            &format!("/v1/client/allocation/{running_alloc}/restart"),
            Some(restart.clone()),
        )
        .await,
        false,
    );
    // Restarted at once (no delay for a restart asked for): running again before the next.
    e2e::testing::eventually("the restarted allocation runs again", || async {
        running().await.as_deref() == Some(running_alloc.as_str())
    })
    .await;
    add(
        "nomad-allocation-restart-response",
        c.nomad(
            "PUT",
            &format!("/v1/client/allocation/{running_alloc}/restart"),
            Some(restart),
        )
        .await,
        false,
    );
    let signal = json!({"Signal": "SIGUSR1", "Task": "redis"});
    add(
        "nomad-allocation-signal-request",
        c.nomad(
            "PUT",
            &format!("/v1/client/allocation/{alloc_id}/signal"),
            Some(signal.clone()),
        )
        .await,
        false,
    );
    add(
        "nomad-allocation-signal-response",
        c.nomad(
            "PUT",
            &format!("/v1/client/allocation/{alloc_id}/signal"),
            Some(signal),
        )
        .await,
        false,
    );

    add(
        "nomad-nodes-list",
        c.nomad("GET", "/v1/nodes", None).await,
        false,
    );
    add(
        "nomad-node-read",
        c.nomad("GET", &format!("/v1/node/{node_id}"), None).await,
        false,
    );
    for real in [
        "nomad-node-allocations",
        "nomad-node-allocations-real-151be1dc-92e7-a488-f7dc-49faaf5a4c96",
        "nomad-node-allocations-real-b2d5bbb6-a61d-ee1f-a896-cbc6efe4f7fe",
        "nomad-node-allocations-real-b535e699-1112-c379-c020-ebd80fdd9f09",
    ] {
        add(
            real,
            c.nomad("GET", &format!("/v1/node/{node_id}/allocations"), None)
                .await,
            false,
        );
    }
    add(
        "nomad-node-evaluate-response",
        c.nomad("PUT", &format!("/v1/node/{node_id}/evaluate"), None)
            .await,
        false,
    );
    let eligibility = sample("nomad-node-eligibility-request");
    add(
        "nomad-node-eligibility-request",
        c.nomad(
            "PUT",
            &format!("/v1/node/{spare_node}/eligibility"),
            Some(eligibility.clone()),
        )
        .await,
        false,
    );
    add(
        "nomad-node-eligibility-response",
        c.nomad(
            "PUT",
            &format!("/v1/node/{spare_node}/eligibility"),
            Some(json!({"Eligibility": "eligible"})),
        )
        .await,
        false,
    );
    add(
        "nomad-node-drain-request",
        c.nomad(
            "PUT",
            &format!("/v1/node/{spare_node}/drain"),
            Some(sample("nomad-node-drain-request")),
        )
        .await,
        false,
    );
    add(
        "nomad-node-drain-response",
        c.nomad(
            "PUT",
            &format!("/v1/node/{spare_node}/drain"),
            Some(json!({"DrainSpec": null, "MarkEligible": true})),
        )
        .await,
        false,
    );
    add(
        "nomad-node-purge-response",
        c.nomad("PUT", &format!("/v1/node/{purge_id}/purge"), None)
            .await,
        false,
    );

    add(
        "nomad-evaluations-list",
        c.nomad("GET", "/v1/evaluations", None).await,
        false,
    );
    add(
        "nomad-evaluations-count",
        c.nomad("GET", "/v1/evaluations/count", None).await,
        false,
    );
    add(
        "nomad-evaluation-read",
        c.nomad(
            "GET",
            &format!("/v1/evaluation/{eval_id}?related=true"),
            None,
        )
        .await,
        false,
    );
    add(
        "nomad-evaluation-allocations",
        c.nomad(
            "GET",
            &format!("/v1/evaluation/{eval_id}/allocations"),
            None,
        )
        .await,
        false,
    );
    add(
        "nomad-namespaces-list",
        c.nomad("GET", "/v1/namespaces", None).await,
        false,
    );
    add(
        "nomad-namespace-read",
        c.nomad("GET", "/v1/namespace/staging", None).await,
        false,
    );
    add(
        "nomad-services-list",
        c.nomad("GET", "/v1/services", None).await,
        false,
    );
    add(
        "nomad-service-read",
        c.nomad("GET", "/v1/service/example-cache-redis", None)
            .await,
        false,
    );
    let stop = c
        .nomad("PUT", &format!("/v1/allocation/{alloc_id}/stop"), None)
        .await;
    add("nomad-allocation-stop-response", stop, false);
    // Consul's answers below read the replacement's service: wait until it runs.
    e2e::testing::eventually("the stopped allocation's replacement runs", || async {
        let (_, allocs) = c.nomad("GET", "/v1/job/example/allocations", None).await;
        allocs.as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
        })
    })
    .await;

    let node_frame = first_frame(&c, "/v1/event/stream?topic=Node").await;
    add(
        "nomad-event-stream-event-example",
        (200, node_frame["Events"][0].clone()),
        false,
    );
    add(
        "nomad-event-stream-node-registration",
        (200, node_frame),
        false,
    );

    add(
        "consul-health-service",
        c.consul("/v1/health/service/redis-cache").await,
        false,
    );
    add(
        "consul-health-checks-service",
        c.consul("/v1/health/checks/redis-cache").await,
        false,
    );
    add(
        "consul-health-checks-state",
        c.consul("/v1/health/state/any").await,
        false,
    );
    add(
        "consul-health-node",
        c.consul(&format!(
            "/v1/health/node/{}",
            allocs[0]["NodeName"].as_str().unwrap()
        ))
        .await,
        false,
    );
    add(
        "consul-catalog-services",
        c.consul("/v1/catalog/services").await,
        true,
    );
    add(
        "consul-catalog-service",
        c.consul("/v1/catalog/service/redis-cache").await,
        false,
    );
    add(
        "consul-agent-services",
        c.consul("/v1/agent/services").await,
        true,
    );
    add(
        "consul-agent-health-service-name",
        c.consul("/v1/agent/health/service/name/redis-cache").await,
        false,
    );
    add("consul-kv-read", c.consul("/v1/kv/zip").await, false);
    add("consul-kv-keys", c.consul("/v1/kv/web/?keys").await, false);
    add(
        "consul-kv-put-response",
        c.call(&c.consul, "PUT", "/v1/kv/zip", Some(json!("again")))
            .await,
        false,
    );

    // --- Every sample is covered or deliberately out of scope --------------------------------
    let on_disk: BTreeSet<String> = e2e::samples::names();
    let covered: BTreeSet<String> = cases
        .iter()
        .map(|c| c.sample.to_string())
        .chain(NOT_SIMULATED.iter().map(|(s, _)| s.to_string()))
        .collect();
    let unclassified: Vec<&String> = on_disk.difference(&covered).collect();
    assert!(
        unclassified.is_empty(),
        "samples with no contract case and no reason to skip: {unclassified:?}"
    );

    let mut failures = Vec::new();
    for case in &cases {
        let expected = sample(case.sample);
        let name = case.sample;
        // Request samples are bodies we sent: the contract is that they are accepted.
        if name.ends_with("-request") || name.contains("-request-") || name.contains("-spec-") {
            if !(200..300).contains(&case.status) {
                failures.push(format!(
                    "{name}: request refused with {}: {}",
                    case.status, case.reply
                ));
            }
            continue;
        }
        if case.status != 200 {
            failures.push(format!(
                "{name}: status {} (sample answers 200): {}",
                case.status, case.reply
            ));
            continue;
        }
        let mut errors = Vec::new();
        let root = if case.root_free_form {
            MapKind::Keyed
        } else {
            MapKind::Fixed
        };
        compare(&expected, &case.reply, "$", root, false, &mut errors);
        failures.extend(errors.into_iter().map(|e| format!("{name}: {e}")));
    }
    assert!(
        failures.is_empty(),
        "{} contract mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_comparator_catches_a_missing_field_and_a_wrong_type() {
    let mut errors = Vec::new();
    let actual = json!({"ID": "a", "Count": "1", "Tasks": [{"Nam": "t"}], "TaskStates": {"web": {"State": 1}}});
    let expected = json!({"ID": "a", "Count": 1, "Tasks": [{"Name": "t"}], "TaskStates": {"redis": {"State": "running"}}});
    compare(&expected, &actual, "$", MapKind::Fixed, false, &mut errors);
    assert_eq!(
        errors,
        [
            "$.Count: expected integer, got string",
            "$.Tasks[0].Name: missing",
            "$.TaskStates[web].State: expected string, got integer"
        ]
    );
    let mut none = Vec::new();
    let fine = json!({"ID": "b", "Count": 2, "Tasks": null, "TaskStates": {"x": {"State": "dead"}}, "Extra": true});
    compare(&expected, &fine, "$", MapKind::Fixed, false, &mut none);
    assert!(none.is_empty(), "{none:?}");
}
