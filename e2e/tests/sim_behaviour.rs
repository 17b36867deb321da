//! nomad-sim driven over HTTP as Nomad and Consul clients would: check-and-set, blocking
//! queries, the event stream, placement, lost allocations, periodic launches, health checks,
//! ACLs and injected faults.

use std::time::Duration;

use e2e::sim::config::{NodeSpec, SimConfig};
use e2e::sim::RunningSim;
use e2e::testing::{eventually, send};
use futures::StreamExt;
use serde_json::{json, Value};

fn fast_config() -> SimConfig {
    SimConfig {
        start_delay: Duration::from_millis(100),
        heartbeat_ttl: Duration::from_millis(300),
        heartbeat_grace: Duration::from_millis(300),
        batch_duration: Duration::from_millis(300),
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> RunningSim {
    RunningSim::start(config, 1.0, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("sim starts")
}

struct Api {
    http: reqwest::Client,
    nomad: String,
    consul: String,
}

impl Api {
    fn new(sim: &RunningSim) -> Api {
        Api {
            http: e2e::http::client(),
            nomad: sim.nomad_url(),
            consul: sim.consul_url(),
        }
    }

    /// For a simulator with ACLs on: every request carries the management token.
    fn with_token(sim: &RunningSim, token: &str) -> Api {
        e2e::http::install_tls();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("X-Nomad-Token", token.parse().unwrap());
        Api {
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            ..Api::new(sim)
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        send(self.http.get(format!("{}{path}", self.nomad))).await
    }

    async fn get_consul(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.consul))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        send(
            self.http
                .request(method, format!("{}{path}", self.nomad))
                .json(&body),
        )
        .await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    async fn register(&self, job: Value) -> Value {
        let (status, reply) = self.put("/v1/jobs", json!({"Job": job})).await;
        assert_eq!(status, 200, "{reply}");
        reply
    }

    async fn allocs(&self, job: &str) -> Vec<Value> {
        self.get(&format!("/v1/job/{job}/allocations"))
            .await
            .1
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn running(&self, job: &str) -> Vec<Value> {
        self.allocs(job)
            .await
            .into_iter()
            .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
            .collect()
    }
}

/// One second in Nomad's durations (nanoseconds).
const SECOND: u64 = 1_000_000_000;

fn service_job(id: &str, count: u64, memory: u64) -> Value {
    json!({
        "ID": id,
        "Type": "service",
        // Fast rollouts: an allocation counts as healthy after 100 ms of passing checks.
        "Update": {"MaxParallel": 1, "MinHealthyTime": SECOND / 10, "HealthyDeadline": 5 * SECOND, "ProgressDeadline": 10 * SECOND, "AutoRevert": false},
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Networks": [{"DynamicPorts": [{"Label": "http", "To": 80}]}],
            "Services": [{"Name": id, "PortLabel": "http", "Checks": [{"Name": "alive", "Type": "http", "Path": "/", "Interval": 1_000_000_000u64, "Timeout": 1_000_000_000u64}]}],
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx"}, "Resources": {"CPU": 100, "MemoryMB": memory}}],
        }],
    })
}

#[tokio::test]
async fn register_places_allocations_that_start_running() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let reply = api.register(service_job("web", 3, 128)).await;
    assert_ne!(reply["EvalID"], "");
    eventually("3 running allocations", || async {
        api.running("web").await.len() == 3
    })
    .await;
    let (_, job) = api.get("/v1/job/web").await;
    assert_eq!(job["Status"], "running");
    assert_eq!(job["Version"], 0);
    assert_eq!(
        job["TaskGroups"][0]["RestartPolicy"]["Mode"], "fail",
        "canonicalized"
    );
    let (_, summary) = api.get("/v1/job/web/summary").await;
    assert_eq!(summary["Summary"]["web"]["Running"], 3);

    // The dynamic port keeps its label and task-side port and gets a host port from Nomad's
    // default dynamic range.
    let alloc_id = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, alloc) = api.get(&format!("/v1/allocation/{alloc_id}")).await;
    let port = &alloc["AllocatedResources"]["Shared"]["Networks"][0]["DynamicPorts"][0];
    assert_eq!((&port["Label"], &port["To"]), (&json!("http"), &json!(80)));
    let host_port = port["Value"].as_u64().unwrap();
    assert!((20000..32000).contains(&host_port), "{port}");
}

#[tokio::test]
async fn check_and_set_registers_and_versions() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let create =
        |index: u64, job: Value| json!({"Job": job, "EnforceIndex": true, "JobModifyIndex": index});

    let (status, text) = api
        .put("/v1/jobs", create(5, service_job("web", 1, 64)))
        .await;
    assert_eq!(
        (status, text.as_str().unwrap()),
        (500, "Enforcing job modify index 5: job does not exist")
    );

    let (status, first) = api
        .put("/v1/jobs", create(0, service_job("web", 1, 64)))
        .await;
    assert_eq!(status, 200);
    let index = first["JobModifyIndex"].as_u64().unwrap();

    let (status, text) = api
        .put("/v1/jobs", create(0, service_job("web", 1, 64)))
        .await;
    assert_eq!(
        (status, text.as_str().unwrap()),
        (500, "Enforcing job modify index 0: job already exists")
    );

    // Same spec: no new version, JobModifyIndex unchanged, but a new evaluation.
    let (_, same) = api
        .put("/v1/jobs", create(index, service_job("web", 1, 64)))
        .await;
    assert_eq!(same["JobModifyIndex"].as_u64(), Some(index));
    assert_ne!(same["EvalID"], first["EvalID"]);
    assert_eq!(api.get("/v1/job/web").await.1["Version"], 0);

    let (status, changed) = api
        .put("/v1/jobs", create(index, service_job("web", 2, 64)))
        .await;
    assert_eq!(status, 200);
    let new_index = changed["JobModifyIndex"].as_u64().unwrap();
    assert!(new_index > index);
    assert_eq!(api.get("/v1/job/web").await.1["Version"], 1);

    let (status, text) = api
        .put("/v1/jobs", create(index, service_job("web", 3, 64)))
        .await;
    assert_eq!(status, 500);
    assert_eq!(text.as_str().unwrap(), format!("Enforcing job modify index {index}: job exists with conflicting job modify index: {new_index}"));

    let (_, versions) = api.get("/v1/job/web/versions").await;
    let numbers: Vec<u64> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 0], "newest first");

    let (status, text) = api
        .put("/v1/job/web", json!({"Job": service_job("other", 1, 64)}))
        .await;
    assert_eq!(
        (status, text.as_str().unwrap()),
        (400, "Job ID does not match name")
    );
}

#[tokio::test]
async fn blocking_queries_wake_on_change_and_time_out_with_unchanged_data() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 1, 64)).await;
    // Let it settle: the job turning `running` is a change too, and so is its deployment
    // completing (the version turns stable).
    eventually("web running and stable", || async {
        let job = api.get("/v1/job/web").await.1;
        job["Status"] == "running" && job["Stable"] == true
    })
    .await;
    let response = api
        .http
        .get(format!("{}/v1/jobs", api.nomad))
        .send()
        .await
        .unwrap();
    let index: u64 = response.headers()["x-nomad-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(response.headers()["x-nomad-knownleader"], "true");

    // Times out: 200, same index, same data.
    let response = api
        .http
        .get(format!("{}/v1/jobs?index={index}&wait=300ms", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-nomad-index"].to_str().unwrap(),
        index.to_string()
    );

    // Woken by a write.
    let url = format!("{}/v1/jobs?index={index}&wait=20s", api.nomad);
    let waiter = tokio::spawn(async move { e2e::http::get(url).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "the query must block until something changes"
    );
    api.register(service_job("api", 1, 64)).await;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken")
        .unwrap();
    let new_index: u64 = woken.headers()["x-nomad-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(new_index > index);
    let jobs: Value = woken.json().await.unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 2);

    // A list waits on its own table: a job write does not wake the node list, a node change does.
    let response = api
        .http
        .get(format!("{}/v1/nodes", api.nomad))
        .send()
        .await
        .unwrap();
    let nodes_index = response.headers()["x-nomad-index"]
        .to_str()
        .unwrap()
        .to_string();
    let nodes: Value = response.json().await.unwrap();
    let node_id = nodes[0]["ID"].as_str().unwrap().to_string();
    let url = format!("{}/v1/nodes?index={nodes_index}&wait=20s", api.nomad);
    let waiter = tokio::spawn(async move { e2e::http::get(url).await.unwrap() });
    api.register(service_job("other", 1, 64)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "a job write woke the node list");
    let (status, _) = api
        .put(
            &format!("/v1/node/{node_id}/eligibility"),
            json!({"NodeID": node_id, "Eligibility": "ineligible"}),
        )
        .await;
    assert_eq!(status, 200);
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by the node change")
        .unwrap();
    let listed: Value = woken.json().await.unwrap();
    let node = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["ID"] == node_id.as_str())
        .unwrap();
    assert_eq!(node["SchedulingEligibility"], "ineligible");

    let bad = api
        .http
        .get(format!("{}/v1/jobs?index=abc", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.text().await.unwrap(), "Invalid index");
    let bad = api
        .http
        .get(format!("{}/v1/jobs?index=1&wait=soon", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.text().await.unwrap(), "Invalid wait time");
}

/// Reads NDJSON frames from an event stream until `count` data frames arrived.
async fn frames(response: reqwest::Response, count: usize) -> Vec<Value> {
    frames_until(response, |frames| frames.len() >= count).await
}

/// Reads NDJSON data frames from an event stream until `enough` says so.
async fn frames_until(
    response: reqwest::Response,
    enough: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !enough(&frames) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("frames arrive")
            .expect("stream open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(newline) = buffer.find('\n') {
            let line: String = buffer.drain(..=newline).collect();
            let value: Value = serde_json::from_str(line.trim()).unwrap();
            if value.get("Index").is_some() {
                frames.push(value);
            }
        }
    }
    frames
}

#[tokio::test]
async fn event_stream_filters_by_topic_and_resumes_inclusively() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut heartbeat = api
        .http
        .get(format!("{}/v1/event/stream?topic=Job:web", api.nomad))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), heartbeat.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        &first[..],
        b"{}\n",
        "a heartbeat as soon as the subscription is set up"
    );
    let live = api
        .http
        .get(format!("{}/v1/event/stream?topic=Job:web", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "application/json");
    api.register(service_job("other", 1, 64)).await;
    api.register(service_job("web", 1, 64)).await;
    let got = frames(live, 1).await;
    let event = &got[0]["Events"][0];
    assert_eq!(
        (
            event["Topic"].as_str(),
            event["Type"].as_str(),
            event["Key"].as_str()
        ),
        (Some("Job"), Some("JobRegistered"), Some("web"))
    );
    let index = got[0]["Index"].as_u64().unwrap();

    // Resuming at an index replays that frame (inclusive start), then the rest.
    let resumed = api
        .http
        .get(format!(
            "{}/v1/event/stream?topic=Job:web&index={index}",
            api.nomad
        ))
        .send()
        .await
        .unwrap();
    let replay = frames(resumed, 1).await;
    assert_eq!(replay[0]["Index"].as_u64(), Some(index));

    let bad = api
        .http
        .get(format!("{}/v1/event/stream?topic=a:b:c", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let post = api
        .http
        .post(format!("{}/v1/event/stream", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn placement_honours_constraints_and_capacity() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut hubs_only = service_job("pubs", 4, 128);
    hubs_only["Constraints"] =
        json!([{"LTarget": "${node.class}", "RTarget": "hub", "Operand": "="}]);
    api.register(hubs_only).await;
    eventually("4 pubs placed", || async {
        api.allocs("pubs").await.len() == 4
    })
    .await;
    let nodes: Vec<String> = api
        .allocs("pubs")
        .await
        .iter()
        .map(|a| a["NodeName"].as_str().unwrap().to_string())
        .collect();
    assert!(nodes.iter().all(|n| n.starts_with("hub-")), "{nodes:?}");

    let mut spread = service_job("spread", 3, 64);
    spread["TaskGroups"][0]["Constraints"] = json!([{"Operand": "distinct_hosts", "RTarget": "true"}, {"LTarget": "${node.class}", "RTarget": "worker", "Operand": "="}]);
    api.register(spread).await;
    eventually("3 spread allocations", || async {
        api.allocs("spread").await.len() == 3
    })
    .await;
    let mut spread_nodes: Vec<String> = api
        .allocs("spread")
        .await
        .iter()
        .map(|a| a["NodeName"].as_str().unwrap().to_string())
        .collect();
    spread_nodes.sort();
    assert_eq!(spread_nodes, ["node-1", "node-2", "node-3"]);

    // Bigger than any node: blocked, queued, and placed when a big enough node appears.
    api.register(service_job("huge", 1, 16_000)).await;
    let (_, evals) = api.get("/v1/job/huge/evaluations").await;
    let blocked: Vec<&Value> = evals
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Status"] == "blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{evals}");
    assert_eq!(
        blocked[0]["StatusDescription"],
        "created to place remaining allocations"
    );
    let (_, summary) = api.get("/v1/job/huge/summary").await;
    assert_eq!(summary["Summary"]["web"]["Queued"], 1);
    let failed = evals
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Status"] == "complete")
        .unwrap();
    assert!(
        failed["FailedTGAllocs"]["web"]["DimensionExhausted"]["memory"]
            .as_u64()
            .unwrap()
            > 0,
        "{failed}"
    );

    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/_sim/nodes",
            json!({"name": "big-1", "class": "worker", "memory": 32768}),
        )
        .await;
    assert_eq!(status, 200);
    eventually("huge placed on big-1", || async {
        api.allocs("huge")
            .await
            .iter()
            .any(|a| a["NodeName"] == "big-1")
    })
    .await;
}

#[tokio::test]
async fn lost_allocations_are_replaced_unless_pinned() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut free = service_job("free", 1, 64);
    free["Constraints"] =
        json!([{"LTarget": "${node.unique.name}", "RTarget": "node-[12]", "Operand": "regexp"}]);
    api.register(free).await;
    eventually("free running", || async {
        api.running("free").await.len() == 1
    })
    .await;
    let first_node = api.running("free").await[0]["NodeID"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, node) = api.get(&format!("/v1/node/{first_node}")).await;
    let node_name = node["Name"].as_str().unwrap().to_string();

    let mut pinned = service_job("pinned", 1, 64);
    pinned["Constraints"] =
        json!([{"LTarget": "${node.unique.id}", "RTarget": first_node, "Operand": "="}]);
    api.register(pinned).await;
    eventually("pinned running", || async {
        api.running("pinned").await.len() == 1
    })
    .await;

    let (status, _) = api
        .send(
            reqwest::Method::POST,
            &format!("/_sim/nodes/{node_name}/kill"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    eventually("node down", || async {
        api.get(&format!("/v1/node/{first_node}")).await.1["Status"] == "down"
    })
    .await;
    eventually("free replaced on the other node", || async {
        api.running("free")
            .await
            .iter()
            .any(|a| a["NodeID"] != first_node.as_str())
    })
    .await;
    let free_allocs = api.allocs("free").await;
    let lost = free_allocs
        .iter()
        .find(|a| a["ClientStatus"] == "lost")
        .expect("the old one is lost");
    let replacement = free_allocs
        .iter()
        .find(|a| a["ClientStatus"] == "running")
        .unwrap();
    assert_eq!(replacement["PreviousAllocation"], lost["ID"]);

    // Nomad never moves a job pinned to a dead node: it waits, blocked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(api.running("pinned").await.is_empty());
    assert!(api
        .allocs("pinned")
        .await
        .iter()
        .all(|a| a["ClientStatus"] == "lost"));
    let (_, evals) = api.get("/v1/job/pinned/evaluations").await;
    assert!(evals
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["Status"] == "blocked"));

    // Revived, the node takes the pinned job back.
    api.send(
        reqwest::Method::POST,
        &format!("/_sim/nodes/{node_name}/revive"),
        json!({}),
    )
    .await;
    eventually("pinned running again", || async {
        api.running("pinned").await.len() == 1
    })
    .await;
}

#[tokio::test]
async fn periodic_jobs_launch_children_on_schedule_and_on_force() {
    let sim = RunningSim::start(fast_config(), 120.0, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    let api = Api::new(&sim);
    let mut job = service_job("backup", 1, 64);
    job["Type"] = json!("batch");
    job["Periodic"] = json!({"Enabled": true, "Spec": "* * * * *", "SpecType": "cron", "ProhibitOverlap": true, "TimeZone": "Europe/Berlin"});
    let reply = api.register(job).await;
    assert_eq!(
        (reply["EvalID"].as_str(), reply["EvalCreateIndex"].as_u64()),
        (Some(""), Some(0)),
        "periodic parents get no eval"
    );
    let (_, parent) = api.get("/v1/job/backup").await;
    assert_eq!(parent["Status"], "running");

    let children = || async {
        let (_, jobs) = api.get("/v1/jobs?prefix=backup/periodic-").await;
        jobs.as_array().cloned().unwrap_or_default()
    };
    // At 120x a minute passes every half second.
    eventually("a scheduled launch", || async {
        !children().await.is_empty()
    })
    .await;
    let child = &children().await[0];
    assert_eq!(child["ParentID"], "backup");
    let child_id = child["ID"].as_str().unwrap().to_string();
    eventually("the child run completes", || async {
        api.get(&format!("/v1/job/{child_id}")).await.1["Status"] == "dead"
    })
    .await;

    let before = children().await.len();
    let (status, forced) = api.put("/v1/job/backup/periodic/force", json!({})).await;
    assert_eq!(status, 200);
    assert!(forced["EvalID"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(children().await.len() > before);

    // The parent's summary counts its children (kept by index, not by a scan of every job).
    let (_, summary) = api.get("/v1/job/backup/summary").await;
    let counted: u64 = ["Pending", "Running", "Dead"]
        .iter()
        .map(|k| summary["Children"][k].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, children().await.len(), "{summary}");

    let (status, text) = api.put("/v1/job/nope/periodic/force", json!({})).await;
    assert_eq!((status, text.as_str().unwrap()), (500, "job not found"));
}

#[tokio::test]
async fn health_checks_flip_in_consul() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 2, 64)).await;
    eventually("2 passing instances", || async {
        api.get_consul("/v1/health/service/web?passing")
            .await
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    let (status, changed) = api
        .put(
            "/_sim/checks",
            json!({"service": "web", "status": "critical"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(changed["Changed"], 2);
    assert_eq!(
        api.get_consul("/v1/health/service/web?passing").await,
        json!([])
    );
    let all = api.get_consul("/v1/health/service/web").await;
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "without ?passing every instance is listed"
    );
    let critical = api.get_consul("/v1/health/state/critical").await;
    assert!(critical
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ServiceName"] == "web"));
    api.put(
        "/_sim/checks",
        json!({"service": "web", "status": "passing"}),
    )
    .await;
    assert_eq!(
        api.get_consul("/v1/health/service/web?passing")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let catalog = api.get_consul("/v1/catalog/services").await;
    assert!(
        catalog.get("web").is_some() && catalog.get("consul").is_some(),
        "{catalog}"
    );
}

#[tokio::test]
async fn stop_purge_and_allocation_stop() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 2, 64)).await;
    eventually("2 running", || async {
        api.running("web").await.len() == 2
    })
    .await;

    let victim = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, reply) = api
        .put(&format!("/v1/allocation/{victim}/stop"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(reply["EvalID"].as_str().is_some_and(|e| !e.is_empty()));
    eventually("a replacement runs", || async {
        let running = api.running("web").await;
        running.len() == 2 && running.iter().all(|a| a["ID"] != victim.as_str())
    })
    .await;

    let (status, reply) = api
        .send(reqwest::Method::DELETE, "/v1/job/web", json!(null))
        .await;
    assert_eq!(status, 200);
    assert!(reply["JobModifyIndex"].as_u64().unwrap() > 0);
    eventually("stopped job is dead", || async {
        api.get("/v1/job/web").await.1["Status"] == "dead"
    })
    .await;
    let (_, job) = api.get("/v1/job/web").await;
    assert_eq!(
        (job["Stop"].as_bool(), job["Version"].as_u64()),
        (Some(true), Some(1))
    );

    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/job/web?purge=true",
            json!(null),
        )
        .await;
    assert_eq!(status, 200);
    let (status, text) = api.get("/v1/job/web").await;
    assert_eq!((status, text.as_str().unwrap()), (404, "job not found"));
    let (status, reply) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/job/never-existed",
            json!(null),
        )
        .await;
    assert_eq!((status, reply["EvalID"].as_str()), (200, Some("")));
}

/// `Stop` is the submitter's field: registering the job with `Stop: true` (check-and-set)
/// stops it as a deregister does, the plan says so first, and registering it without `Stop`
/// starts it again; reverting to the stopped version stops it once more.
#[tokio::test]
async fn a_job_registered_with_stop_is_stopped_and_started_by_the_next_register() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let reply = api.register(service_job("web", 2, 64)).await;
    let first_index = reply["JobModifyIndex"].as_u64().unwrap();
    eventually("2 running", || async {
        api.running("web").await.len() == 2
    })
    .await;

    let mut stopped = service_job("web", 2, 64);
    stopped["Stop"] = json!(true);
    let (status, plan) = api
        .put(
            "/v1/job/web/plan",
            json!({"Job": stopped.clone(), "Diff": true}),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["Diff"]["Type"], "Edited", "{plan}");
    let stop_field = plan["Diff"]["Fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["Name"] == "Stop")
        .cloned();
    assert_eq!(
        stop_field.map(|f| (f["Old"].clone(), f["New"].clone())),
        Some((json!("false"), json!("true"))),
        "{plan}"
    );
    assert_eq!(
        plan["Annotations"]["DesiredTGUpdates"]["web"]["Stop"], 2,
        "{plan}"
    );

    let (status, reply) = api
        .put(
            "/v1/jobs",
            json!({"Job": stopped.clone(), "EnforceIndex": true, "JobModifyIndex": first_index}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    eventually("nothing runs", || async {
        api.running("web").await.is_empty()
    })
    .await;
    let (_, job) = api.get("/v1/job/web").await;
    assert_eq!(
        (job["Stop"].as_bool(), job["Version"].as_u64()),
        (Some(true), Some(1))
    );
    eventually("the stopped job is dead", || async {
        api.get("/v1/job/web").await.1["Status"] == "dead"
    })
    .await;

    // The same stopped job again changes nothing (structs.go `SpecChanged`).
    let again = api.register(stopped).await;
    assert_eq!(
        again["JobModifyIndex"].as_u64(),
        job["JobModifyIndex"].as_u64()
    );

    api.register(service_job("web", 2, 64)).await;
    eventually("2 running again", || async {
        api.running("web").await.len() == 2
    })
    .await;
    let (_, job) = api.get("/v1/job/web").await;
    assert_eq!(
        (job["Stop"].as_bool(), job["Version"].as_u64()),
        (Some(false), Some(2))
    );

    let (status, reply) = api
        .put(
            "/v1/job/web/revert",
            json!({"JobID": "web", "JobVersion": 1}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    eventually("the reverted-to stopped version stops it", || async {
        api.running("web").await.is_empty()
    })
    .await;
    assert_eq!(api.get("/v1/job/web").await.1["Stop"], true);
}

/// The plan says how each change would be made (scheduler/annotate.go): a task's image
/// replaces its allocations, a service's tags are updated in place, an unchanged job is
/// ignored, a higher count creates.
#[tokio::test]
async fn the_plan_annotates_in_place_and_destructive_changes() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 2, 64)).await;
    eventually("2 running", || async {
        api.running("web").await.len() == 2
    })
    .await;
    let plan = |job: Value| {
        let api = &api;
        async move {
            let (status, plan) = api
                .put("/v1/job/web/plan", json!({"Job": job, "Diff": true}))
                .await;
            assert_eq!(status, 200, "{plan}");
            plan
        }
    };

    let same = plan(service_job("web", 2, 64)).await;
    assert_eq!(same["Diff"]["Type"], "None");
    assert_eq!(same["Annotations"]["DesiredTGUpdates"]["web"]["Ignore"], 2);

    let mut tagged = service_job("web", 2, 64);
    tagged["TaskGroups"][0]["Services"][0]["Tags"] = json!(["v2"]);
    let in_place = plan(tagged).await;
    let group = &in_place["Diff"]["TaskGroups"][0];
    assert_eq!(
        group["Updates"],
        json!({"in-place update": 2}),
        "{in_place}"
    );
    assert_eq!(
        in_place["Annotations"]["DesiredTGUpdates"]["web"]["InPlaceUpdate"],
        2
    );

    let mut new_image = service_job("web", 3, 64);
    new_image["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:2");
    let replaced = plan(new_image).await;
    let group = &replaced["Diff"]["TaskGroups"][0];
    assert_eq!(
        group["Tasks"][0]["Annotations"],
        json!(["forces create/destroy update"]),
        "{replaced}"
    );
    let count = group["Fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["Name"] == "Count")
        .cloned()
        .unwrap();
    assert_eq!(count["Annotations"], json!(["forces create"]));
    assert_eq!(group["Updates"]["create"], 1, "{replaced}");
}

/// Host volumes (scheduler/feasible.go `HostVolumeChecker`): a group that mounts one is placed
/// only on nodes offering it, never writable on a node that offers it read-only, and when none
/// fits the plan says "missing compatible host volumes"; a mount of a volume the group does not
/// request is refused in Nomad's words.
#[tokio::test]
async fn host_volumes_decide_where_a_group_may_run() {
    use e2e::sim::config::HostVolume;
    let volume = |read_only: bool| {
        [(
            "data".to_string(),
            HostVolume {
                path: "/srv/data".into(),
                read_only,
            },
        )]
        .into_iter()
        .collect()
    };
    let mut writable = NodeSpec::new("writable", "");
    writable.host_volumes = volume(false);
    let mut read_only = NodeSpec::new("read-only", "");
    read_only.host_volumes = volume(true);
    let bare = NodeSpec::new("bare", "");
    let sim = start(SimConfig {
        nodes: vec![writable, read_only, bare],
        ..fast_config()
    })
    .await;
    let api = Api::new(&sim);
    let with_volume = |id: &str, count: u64, read_only: bool| {
        let mut job = service_job(id, count, 64);
        job["TaskGroups"][0]["Volumes"] = json!({"data": {"Name": "data", "Type": "host", "Source": "data", "ReadOnly": read_only}});
        job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"] =
            json!([{"Volume": "data", "Destination": "/data", "ReadOnly": read_only}]);
        job
    };
    let (_, node) = api.get("/v1/nodes").await;
    let writable_id = node
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Name"] == "writable")
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, full) = api.get(&format!("/v1/node/{writable_id}")).await;
    assert_eq!(full["HostVolumes"]["data"]["Path"], "/srv/data");

    api.register(with_volume("writer", 1, false)).await;
    eventually("the writer runs", || async {
        api.running("writer").await.len() == 1
    })
    .await;
    assert_eq!(api.running("writer").await[0]["NodeName"], "writable");

    api.register(with_volume("readers", 4, true)).await;
    eventually("the readers run", || async {
        api.running("readers").await.len() == 4
    })
    .await;
    assert!(
        api.running("readers")
            .await
            .iter()
            .all(|a| a["NodeName"] != "bare"),
        "read-only, on either node that offers it"
    );

    let mut elsewhere = with_volume("elsewhere", 1, true);
    elsewhere["TaskGroups"][0]["Volumes"]["data"]["Source"] = json!("logs");
    let (status, plan) = api
        .put("/v1/job/elsewhere/plan", json!({"Job": elsewhere}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        plan["FailedTGAllocs"]["web"]["ConstraintFiltered"]["missing compatible host volumes"], 3,
        "no node offers it: {plan}"
    );

    let mut undefined = service_job("broken", 1, 64);
    undefined["TaskGroups"][0]["Tasks"][0]["VolumeMounts"] =
        json!([{"Volume": "nope", "Destination": "/data", "ReadOnly": false}]);
    let (status, said) = api.put("/v1/jobs", json!({"Job": undefined})).await;
    assert_eq!(status, 500);
    assert!(
        said.as_str()
            .unwrap()
            .contains("Volume Mount (0) references undefined volume nope"),
        "{said}"
    );
}

/// Splits back-to-back JSON values (Nomad's frames carry no separator).
fn json_values(bytes: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .map(|v| v.expect("frames are JSON"))
        .collect()
}

fn frame_text(frames: &[Value]) -> String {
    use base64::Engine;
    frames
        .iter()
        .filter_map(|f| f["Data"].as_str())
        .map(|d| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(d).unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect()
}

/// `GET /v1/client/fs/logs/:alloc`: base64 frames naming the file, the same bytes with
/// `plain=true`, the tail with `origin=end`, and with `follow=true` new lines as they are
/// written, heartbeats between; Nomad's errors for what cannot be read.
#[tokio::test]
async fn task_logs_are_framed_as_nomad_streams_them_and_grow_while_followed() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 1, 64)).await;
    eventually("running", || async { api.running("web").await.len() == 1 }).await;
    let alloc = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = |query: &str| format!("{}/v1/client/fs/logs/{alloc}?task=app&{query}", api.nomad);
    eventually("three lines on stdout", || async {
        let body = api
            .http
            .get(logs("type=stdout&plain=true"))
            .send()
            .await
            .unwrap();
        body.text().await.unwrap().lines().count() >= 3
    })
    .await;

    let response = api.http.get(logs("type=stdout")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let frames = json_values(&response.bytes().await.unwrap());
    assert_eq!(frames[0]["File"], "alloc/logs/app.stdout.0", "{frames:?}");
    let text = frame_text(&frames);
    assert!(
        text.lines().next().unwrap().ends_with("app listening"),
        "{text}"
    );
    assert_eq!(
        frames.last().unwrap()["Offset"].as_u64(),
        Some(text.len() as u64)
    );
    let plain = api
        .http
        .get(logs("type=stdout&plain=true"))
        .send()
        .await
        .unwrap();
    let plain = plain.text().await.unwrap();
    assert!(plain.starts_with(&text), "the file only grows");
    let tail = api
        .http
        .get(logs("type=stdout&plain=true&origin=end&offset=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.text().await.unwrap().len(), 10);
    let stderr = api
        .http
        .get(logs("type=stderr&plain=true"))
        .send()
        .await
        .unwrap();
    assert!(stderr
        .text()
        .await
        .unwrap()
        .contains("app starting nginx (run 1)"));

    // Following: what is there, then each new line, with heartbeats while nothing is new.
    let mut follow = api
        .http
        .get(logs("type=stdout&follow=true&origin=end&offset=0"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while frame_text(&json_values(&received)).lines().count() < 2 {
        let chunk = tokio::time::timeout_at(deadline, follow.next())
            .await
            .expect("new lines while following")
            .unwrap()
            .unwrap();
        received.extend_from_slice(&chunk);
    }
    let followed = frame_text(&json_values(&received));
    assert!(
        followed.lines().all(|l| l.contains("app request")),
        "{followed}"
    );

    for (query, status, said) in [
        ("type=stdout&task=", 400, "must provide task name"),
        ("type=journal", 400, "must provide log type (stdout/stderr)"),
        (
            "type=stdout&origin=middle",
            400,
            "origin must be start or end",
        ),
    ] {
        let url = logs(query).replace("task=app&type=stdout&task=", "task=&type=stdout");
        let response = api.http.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{query}");
        assert_eq!(response.text().await.unwrap(), said, "{query}");
    }
    let unknown_task = api
        .http
        .get(format!(
            "{}/v1/client/fs/logs/{alloc}?task=db&type=stdout",
            api.nomad
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_task.status().as_u16(), 400);
    assert_eq!(
        unknown_task.text().await.unwrap(),
        "unknown task name \"db\""
    );
    let unknown_alloc = api
        .http
        .get(format!(
            "{}/v1/client/fs/logs/nope?task=app&type=stdout",
            api.nomad
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_alloc.status().as_u16(), 404);
    assert_eq!(
        unknown_alloc.text().await.unwrap(),
        "Unknown allocation \"nope\""
    );
}

#[tokio::test]
async fn errors_are_plain_text_with_nomads_words() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let cases: Vec<(reqwest::Method, &str, Option<Value>, u16, &str)> = vec![
        (
            reqwest::Method::PATCH,
            "/v1/jobs",
            None,
            405,
            "Invalid method",
        ),
        (
            reqwest::Method::GET,
            "/v1/job/missing",
            None,
            404,
            "job not found",
        ),
        (
            reqwest::Method::GET,
            "/v1/allocation/00000000-0000-0000-0000-000000000000",
            None,
            404,
            "alloc not found",
        ),
        (
            reqwest::Method::GET,
            "/v1/node/nope",
            None,
            404,
            "node not found",
        ),
        (
            reqwest::Method::GET,
            "/v1/evaluation/nope",
            None,
            404,
            "eval not found",
        ),
        (
            reqwest::Method::PUT,
            "/v1/jobs",
            Some(json!({"Job": {"Type": "service"}})),
            400,
            "Job ID hasn't been provided",
        ),
        (
            reqwest::Method::PUT,
            "/v1/jobs",
            Some(json!({})),
            400,
            "Job must be specified",
        ),
        (
            reqwest::Method::PUT,
            "/v1/allocation/nope/stop",
            Some(json!({})),
            404,
            "allocation not found",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let mut request = api
            .http
            .request(method.clone(), format!("{}{path}", api.nomad));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.text().await.unwrap(), text, "{method} {path}");
    }
    let empty = api
        .http
        .put(format!("{}/v1/jobs", api.nomad))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.text().await.unwrap(), "Request body is empty");
}

#[tokio::test]
async fn acl_token_is_required_when_configured() {
    let sim = start(SimConfig {
        acl_token: Some("s3cret".into()),
        ..fast_config()
    })
    .await;
    let http = e2e::http::client();
    let url = format!("{}/v1/jobs", sim.nomad_url());
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(
        (anonymous.status().as_u16(), anonymous.text().await.unwrap()),
        (403, "Permission denied".to_string())
    );
    let wrong = http
        .get(&url)
        .header("X-Nomad-Token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (wrong.status().as_u16(), wrong.text().await.unwrap()),
        (403, "ACL token not found".to_string())
    );
    let right = http
        .get(&url)
        .header("Authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let status = http
        .get(format!("{}/v1/status/leader", sim.nomad_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200, "the status endpoints need no token");
    let consul = http
        .get(format!("{}/v1/catalog/services", sim.consul_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(consul.status(), 403);
}

#[tokio::test]
async fn chaos_injects_errors_and_outages_until_cleared() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.put("/_sim/chaos", json!({"error_rate": 1.0})).await;
    let (status, _) = api.get("/v1/jobs").await;
    assert_eq!(status, 500);
    api.put(
        "/_sim/chaos",
        json!({"error_rate": 0, "unavailable_ms": 60_000}),
    )
    .await;
    let (status, text) = api.get("/v1/jobs").await;
    assert_eq!((status, text.as_str().unwrap()), (500, "No cluster leader"));
    api.put("/_sim/chaos", json!({"unavailable_ms": 0})).await;
    assert_eq!(api.get("/v1/jobs").await.0, 200);
}

#[tokio::test]
async fn drain_migrates_allocations_and_leaves_the_node_ineligible() {
    let config = SimConfig {
        nodes: vec![NodeSpec::new("a", "worker"), NodeSpec::new("b", "worker")],
        ..fast_config()
    };
    let sim = start(config).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 2, 64)).await;
    eventually("2 running", || async {
        api.running("web").await.len() == 2
    })
    .await;
    let node_id = api.running("web").await[0]["NodeID"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, reply) = api
        .put(
            &format!("/v1/node/{node_id}/drain"),
            json!({"DrainSpec": {"Deadline": 0, "IgnoreSystemJobs": false}, "MarkEligible": false}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (_, node) = api.get(&format!("/v1/node/{node_id}")).await;
    assert_eq!(
        (
            node["SchedulingEligibility"].as_str(),
            node["Drain"].as_bool()
        ),
        (Some("ineligible"), Some(true))
    );
    eventually("allocations moved off the drained node", || async {
        let running = api.running("web").await;
        running.len() == 2 && running.iter().all(|a| a["NodeID"] != node_id.as_str())
    })
    .await;
    let (status, text) = api
        .put(
            &format!("/v1/node/{node_id}/eligibility"),
            json!({"Eligibility": "eligible"}),
        )
        .await;
    assert_eq!(
        (status, text.as_str().unwrap()),
        (
            500,
            "can not set node's scheduling eligibility to eligible while it is draining"
        )
    );
}

#[tokio::test]
async fn write_log_records_every_accepted_write() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("web", 1, 64)).await;
    api.put(
        "/v1/jobs",
        json!({"Job": service_job("web", 1, 64), "EnforceIndex": true, "JobModifyIndex": 0}),
    )
    .await;
    let (_, state) = api.get("/_sim/state").await;
    let writes = state["Writes"].as_array().unwrap();
    assert_eq!(
        writes.len(),
        1,
        "the refused write is not logged: {writes:?}"
    );
    assert_eq!(
        (writes[0]["method"].as_str(), writes[0]["job_id"].as_str()),
        (Some("PUT"), Some("web"))
    );
    api.put("/v1/job/web", json!({"Job": service_job("web", 2, 64)}))
        .await;
    let (_, state) = api.get("/_sim/state").await;
    assert_eq!(state["Writes"][1]["job_id"], "web");
}

#[tokio::test]
async fn variables_are_read_back_and_written_with_check_and_set() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let (status, _) = api.get("/v1/var/nomarch/git/state").await;
    assert_eq!(status, 404, "a missing variable");
    let body = json!({"Path": "nomarch/git/state", "Items": {"token": "t1"}});
    let (status, created) = api
        .send(
            reqwest::Method::PUT,
            "/v1/var/nomarch/git/state?cas=0",
            body.clone(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(created["Items"]["token"], "t1");
    assert_eq!(created["Namespace"], "default");
    let index = created["ModifyIndex"].as_u64().unwrap();
    // cas=0 means "create only": the variable exists now, so the write is refused with it.
    let (status, current) = api
        .send(
            reqwest::Method::PUT,
            "/v1/var/nomarch/git/state?cas=0",
            body.clone(),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(current["ModifyIndex"], index);
    let update = json!({"Path": "nomarch/git/state", "Items": {"token": "t2"}});
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            &format!("/v1/var/nomarch/git/state?cas={}", index + 100),
            update.clone(),
        )
        .await;
    assert_eq!(status, 409, "a stale index");
    let (status, updated) = api
        .send(
            reqwest::Method::PUT,
            &format!("/v1/var/nomarch/git/state?cas={index}"),
            update,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["CreateIndex"], created["CreateIndex"]);
    let (_, read) = api.get("/v1/var/nomarch/git/state").await;
    assert_eq!(read["Items"]["token"], "t2");
    // Namespaces are separate stores; items must be strings.
    let (status, _) = api.get("/v1/var/nomarch/git/state?namespace=other").await;
    assert_eq!(status, 404);
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            "/v1/var/bad",
            json!({"Path": "bad", "Items": {"n": 1}}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_update_replaces_allocations_without_calling_it_a_reschedule() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 1, 128);
    for image in ["nginx:1", "nginx:2", "nginx:3"] {
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!(image);
        api.register(job.clone()).await;
        eventually("the new version runs", || async {
            let running = api.running("web").await;
            running.len() == 1 && running[0]["JobVersion"] != json!(null)
        })
        .await;
    }
    eventually("version 2 runs", || async {
        api.running("web")
            .await
            .first()
            .map(|a| a["JobVersion"].clone())
            == Some(json!(2))
    })
    .await;
    let current = api.running("web").await.remove(0);
    // Destructive updates link the allocations (PreviousAllocation), as Nomad does, but an
    // update is not a reschedule: no tracker, so nothing accumulates over many updates.
    assert_ne!(current["PreviousAllocation"], "");
    assert_eq!(current["RescheduleTracker"], Value::Null, "{current}");
}

/// scheduler/util.go tasksUpdated through the HTTP API: a new count, service tags or job meta
/// change nothing that runs, or everything. The count and the tags update the running
/// allocations in place (same IDs, new job version); a job meta change replaces every one.
#[tokio::test]
async fn updates_are_in_place_unless_tasks_updated_says_otherwise() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let ids = |allocs: Vec<Value>| -> std::collections::BTreeSet<String> {
        allocs
            .iter()
            .filter_map(|a| a["ID"].as_str().map(String::from))
            .collect()
    };
    let mut job = service_job("web", 2, 128);
    job["Meta"] = json!({"owner": "a"});
    api.register(job.clone()).await;
    eventually("2 running", || async {
        api.running("web").await.len() == 2
    })
    .await;
    let first = ids(api.running("web").await);

    job["TaskGroups"][0]["Count"] = json!(3);
    job["TaskGroups"][0]["Services"][0]["Tags"] = json!(["v2"]);
    api.register(job.clone()).await;
    eventually("3 running at version 1", || async {
        let running = api.running("web").await;
        running.len() == 3 && running.iter().all(|a| a["JobVersion"] == json!(1))
    })
    .await;
    let second = ids(api.running("web").await);
    assert!(
        first.is_subset(&second),
        "the 2 kept running: {first:?} in {second:?}"
    );

    job["Meta"] = json!({"owner": "b"});
    api.register(job).await;
    eventually("3 new allocations at version 2", || async {
        let running = api.running("web").await;
        running.len() == 3 && running.iter().all(|a| a["JobVersion"] == json!(2))
    })
    .await;
    let third = ids(api.running("web").await);
    assert!(
        third.is_disjoint(&second),
        "a meta change replaced all: {third:?} vs {second:?}"
    );
}

/// `PUT /v1/system/gc` (nomad/core_sched.go forceGC): a stopped job whose allocations are all
/// terminal is deleted, with a `JobBatchDeregistered` event carrying the job; a running job
/// and a stopped one still stopping are kept.
#[tokio::test]
async fn system_gc_deletes_dead_jobs_with_a_batch_deregistered_event() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(service_job("keep", 1, 64)).await;
    api.register(service_job("gone", 1, 64)).await;
    eventually("both running", || async {
        api.running("keep").await.len() == 1 && api.running("gone").await.len() == 1
    })
    .await;
    let (status, _) = api
        .send(reqwest::Method::DELETE, "/v1/job/gone", json!(null))
        .await;
    assert_eq!(status, 200);
    eventually("gone's allocation stopped", || async {
        api.allocs("gone")
            .await
            .iter()
            .all(|a| a["ClientStatus"] == "complete")
    })
    .await;
    let (_, before) = api.get("/v1/job/gone").await;
    let from = before["ModifyIndex"].as_u64().unwrap();

    let (status, body) = api.put("/v1/system/gc", json!(null)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = api.get("/v1/job/gone").await;
    assert_eq!(status, 404, "deleted");
    let (status, _) = api.get("/v1/job/keep").await;
    assert_eq!(status, 200, "a running job is kept");

    let response = api
        .http
        .get(format!(
            "{}/v1/event/stream?topic=Job&index={}",
            api.nomad,
            from + 1
        ))
        .send()
        .await
        .unwrap();
    // Frames after the stop, until the deletion's (the stop's own may still come first).
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let event = loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a JobBatchDeregistered event arrives")
            .expect("stream open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        let found = buffer
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
            .flat_map(|frame| frame["Events"].as_array().cloned().unwrap_or_default())
            .find(|e| e["Type"] == "JobBatchDeregistered");
        if let Some(event) = found {
            break event;
        }
    };
    assert_eq!(event["Key"], "gone");
    assert_eq!(event["Payload"]["Job"]["ID"], "gone", "the job as it was");
}

/// Validation in Nomad's words (nomad/structs/structs.go Job.Validate down to
/// Resources.MeetsMinResources; nomad/job_endpoint.go validateJobUpdate): a 500 with
/// go-multierror's text from register and plan, and nothing stored.
#[tokio::test]
async fn invalid_jobs_are_refused_with_nomads_text() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let tiny = service_job("tiny", 1, 5);
    let (status, reply) = api.put("/v1/jobs", json!({"Job": tiny.clone()})).await;
    assert_eq!(status, 500);
    let text = reply.as_str().unwrap();
    assert!(
        text.starts_with("1 error occurred:\n\t* Task group web validation failed:")
            && text.contains("minimum MemoryMB value is 10; got 5"),
        "{text:?}"
    );
    let (status, _) = api.get("/v1/job/tiny").await;
    assert_eq!(status, 404, "nothing stored");
    let (status, reply) = api.put("/v1/job/tiny/plan", json!({"Job": tiny})).await;
    assert_eq!(
        (status, reply.as_str().unwrap().contains("minimum MemoryMB")),
        (500, true)
    );

    api.register(service_job("web", 1, 64)).await;
    let mut batch = service_job("web", 1, 64);
    batch["Type"] = json!("batch");
    let (status, reply) = api.put("/v1/jobs", json!({"Job": batch})).await;
    assert_eq!(status, 500);
    assert_eq!(
        reply,
        json!("cannot update job from type \"service\" to \"batch\"")
    );

    // The other refusals nomarch's validation mirrors, each over the register endpoint.
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 5] = [
        (
            "check timeout",
            |j| j["TaskGroups"][0]["Services"][0]["Checks"][0]["Timeout"] = json!(SECOND / 2),
            "Check alive invalid: timeout (500ms) is lower than required minimum timeout 1s",
        ),
        (
            "is_set with a value",
            |j| {
                j["Constraints"] =
                    json!([{"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "is_set"}])
            },
            "Operator \"is_set\" does not support an RTarget",
        ),
        (
            "distinct_property count",
            |j| j["Constraints"] = json!([{"LTarget": "${meta.rack}", "RTarget": "two", "Operand": "distinct_property"}]),
            "Failed to convert RTarget \"two\" to uint64",
        ),
        (
            "@midnight",
            |j| {
                j["Type"] = json!("batch");
                j["Update"] = Value::Null;
                j["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "@midnight"});
            },
            "Invalid cron spec \"@midnight\": missing field(s)",
        ),
        (
            "a node pool nobody registered",
            |j| j["NodePool"] = json!("gpu"),
            "job \"bad\" is in nonexistent node pool \"gpu\"",
        ),
    ];
    for (why, edit, expected) in cases {
        let mut job = service_job("bad", 1, 64);
        edit(&mut job);
        let (status, reply) = api.put("/v1/jobs", json!({"Job": job})).await;
        assert_eq!(status, 500, "{why}: {reply}");
        let text = reply.as_str().unwrap();
        assert!(
            text.contains(" error occurred:") && text.contains(expected),
            "{why}: {text:?}"
        );
    }
}

/// Consul's API has its own faults: an outage of Consul leaves Nomad answering, and the
/// reverse.
#[tokio::test]
async fn consul_chaos_is_separate_from_nomads() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let consul_status = |api: &Api| {
        let request = api.http.get(format!("{}/v1/health/state/any", api.consul));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    api.put(
        "/_sim/chaos",
        json!({"api": "consul", "unavailable_ms": 60_000}),
    )
    .await;
    assert_eq!(consul_status(&api).await, 500);
    assert_eq!(api.get("/v1/jobs").await.0, 200, "Nomad unaffected");
    api.put("/_sim/chaos", json!({"api": "consul", "unavailable_ms": 0}))
        .await;
    api.put("/_sim/chaos", json!({"unavailable_ms": 60_000}))
        .await;
    assert_eq!(consul_status(&api).await, 200, "Consul unaffected");
    assert_eq!(api.get("/v1/jobs").await.0, 500);
    let (status, _) = api.put("/_sim/chaos", json!({"api": "vault"})).await;
    assert_eq!(status, 400);
}

async fn deployments(api: &Api, job: &str) -> Vec<Value> {
    api.get(&format!("/v1/job/{job}/deployments"))
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn latest_deployment(api: &Api, job: &str) -> Value {
    api.get(&format!("/v1/job/{job}/deployment")).await.1
}

/// Registers `job` and waits until its first deployment succeeds.
async fn deploy(api: &Api, job: &Value) {
    let id = job["ID"].as_str().unwrap().to_string();
    api.register(job.clone()).await;
    eventually("the first deployment succeeds", || async {
        latest_deployment(api, &id).await["Status"] == "successful"
    })
    .await;
}

/// The IDs of a job's running allocations.
async fn running_ids(api: &Api, job: &str) -> Vec<Value> {
    api.running(job)
        .await
        .iter()
        .map(|a| a["ID"].clone())
        .collect()
}

/// scheduler/reconcile.go `computeUnderProvisionedBy` and deploymentwatcher: an image change
/// replaces allocations `max_parallel` at a time, each new one waited for until healthy; the
/// deployment then succeeds and its job version becomes stable
/// (state_store.go `updateDeploymentStatusImpl`).
#[tokio::test]
async fn a_destructive_update_rolls_out_max_parallel_at_a_time() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 4, 64);
    job["Update"]["MaxParallel"] = json!(2);
    job["Update"]["MinHealthyTime"] = json!(SECOND / 2);
    deploy(&api, &job).await;
    let (_, v0) = api.get("/v1/job/web").await;
    assert_eq!(
        v0["Stable"], true,
        "a successful deployment marks its version stable"
    );

    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:2");
    api.register(job).await;
    let mut most_in_flight = 0;
    let mut saw_partial = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let allocs = api.allocs("web").await;
        let live = |a: &&Value| a["DesiredStatus"] == "run" && a["ClientStatus"] != "failed";
        let new: Vec<&Value> = allocs
            .iter()
            .filter(live)
            .filter(|a| a["JobVersion"] == 1)
            .collect();
        let in_flight = new
            .iter()
            .filter(|a| a["DeploymentStatus"]["Healthy"] != true)
            .count();
        most_in_flight = most_in_flight.max(in_flight);
        let old = allocs
            .iter()
            .filter(live)
            .filter(|a| a["JobVersion"] == 0)
            .count();
        saw_partial |= old > 0 && !new.is_empty();
        if latest_deployment(&api, "web").await["Status"] == "successful" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        saw_partial,
        "old and new ran side by side during the rollout"
    );
    assert!(
        (1..=2).contains(&most_in_flight),
        "at most max_parallel new allocations waited for health at once: {most_in_flight}"
    );
    let d = latest_deployment(&api, "web").await;
    assert_eq!(d["JobVersion"], 1);
    assert_eq!(d["TaskGroups"]["web"]["DesiredTotal"], 4, "{d}");
    assert_eq!(d["TaskGroups"]["web"]["HealthyAllocs"], 4, "{d}");
    let running = api.running("web").await;
    assert_eq!(running.len(), 4);
    assert!(running.iter().all(|a| a["JobVersion"] == 1));
}

/// Canaries (scheduler/reconcile.go `requiresCanaries`, `computeCanaries`; state_store.go
/// `UpdateDeploymentPromotion`): a destructive change first places the canaries beside the
/// running allocations and replaces nothing; promotion is refused until every canary is
/// healthy ("Task group \"web\" has 0/1 healthy allocations"); once promoted, the old
/// allocation sharing the canary's slot stops (`computeStop`) and the rest roll on.
#[tokio::test]
async fn canaries_wait_for_promotion_then_the_rollout_continues() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 3, 64);
    job["Update"]["Canary"] = json!(1);
    deploy(&api, &job).await;
    let old = running_ids(&api, "web").await;
    // The operator judges health from here on, so nothing turns healthy by itself.
    job["Update"]["HealthCheck"] = json!("manual");
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:2");
    api.register(job).await;
    eventually("a canary is placed", || async {
        latest_deployment(&api, "web").await["TaskGroups"]["web"]["PlacedCanaries"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    })
    .await;
    let d = latest_deployment(&api, "web").await;
    let id = d["ID"].as_str().unwrap().to_string();
    assert_eq!(d["JobVersion"], 1);
    assert_eq!(
        d["StatusDescription"],
        "Deployment is running but requires manual promotion"
    );
    assert_eq!(d["TaskGroups"]["web"]["DesiredCanaries"], 1);
    assert_eq!(d["TaskGroups"]["web"]["DesiredTotal"], 3);
    let canary = d["TaskGroups"]["web"]["PlacedCanaries"][0].clone();
    let (_, canary_alloc) = api
        .get(&format!("/v1/allocation/{}", canary.as_str().unwrap()))
        .await;
    assert_eq!(canary_alloc["DeploymentStatus"]["Canary"], true);
    assert_eq!(canary_alloc["JobVersion"], 1);

    let promote = format!("/v1/deployment/promote/{id}");
    let (status, reply) = api
        .put(&promote, json!({"DeploymentID": id, "All": true}))
        .await;
    assert_eq!(
        (status, reply),
        (
            500,
            json!("1 error occurred:\n\t* Task group \"web\" has 0/1 healthy allocations\n\n")
        ),
        "an unhealthy canary is not promoted"
    );
    let health = format!("/v1/deployment/allocation-health/{id}");
    let (status, reply) = api
        .put(
            &health,
            json!({"DeploymentID": id, "HealthyAllocationIDs": [canary]}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    // The healthy canary's evaluation runs; without promotion it changes nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = running_ids(&api, "web").await;
    assert_eq!(
        running.len(),
        4,
        "three old allocations and the canary: {running:?}"
    );
    assert!(
        old.iter().all(|id| running.contains(id)),
        "no old allocation replaced yet"
    );

    let (status, reply) = api
        .put(&promote, json!({"DeploymentID": id, "All": true}))
        .await;
    assert_eq!(status, 200, "{reply}");
    let d = latest_deployment(&api, "web").await;
    assert_eq!(d["TaskGroups"]["web"]["Promoted"], true);
    assert_eq!(d["StatusDescription"], "Deployment is running");
    let (_, canary_alloc) = api
        .get(&format!("/v1/allocation/{}", canary.as_str().unwrap()))
        .await;
    assert_eq!(
        canary_alloc["DeploymentStatus"]["Canary"], false,
        "promoted"
    );
    // The rest roll one at a time; the operator marks each new allocation healthy.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while latest_deployment(&api, "web").await["Status"] != "successful" {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout did not finish: {} {:?}",
            latest_deployment(&api, "web").await,
            api.allocs("web")
                .await
                .iter()
                .map(|a| (
                    a["Name"].clone(),
                    a["JobVersion"].clone(),
                    a["DesiredStatus"].clone(),
                    a["ClientStatus"].clone(),
                    a["DeploymentStatus"].clone()
                ))
                .collect::<Vec<_>>()
        );
        let (_, members) = api.get(&format!("/v1/deployment/allocations/{id}")).await;
        let waiting: Vec<Value> = members
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["ClientStatus"] == "running" && a["DeploymentStatus"]["Healthy"].is_null()
            })
            .map(|a| a["ID"].clone())
            .collect();
        if !waiting.is_empty() {
            api.put(
                &health,
                json!({"DeploymentID": id, "HealthyAllocationIDs": waiting}),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = api.running("web").await;
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|a| a["JobVersion"] == 1));
    assert!(
        running.iter().any(|a| a["ID"] == canary),
        "the canary stays"
    );
    let mut names: Vec<&str> = running
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 3, "one allocation per name index: {names:?}");
}

/// Blue/green with `auto_promote` (deployment_watcher.go `autoPromoteDeployment`): as many
/// canaries as the count run beside the old allocations; once all are healthy the deployment
/// promotes itself and the old ones stop.
#[tokio::test]
async fn blue_green_with_auto_promote_swaps_all_at_once() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 2, 64);
    job["Update"]["Canary"] = json!(2);
    job["Update"]["AutoPromote"] = json!(true);
    deploy(&api, &job).await;
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:2");
    api.register(job).await;
    let mut most_running = 0;
    let mut description = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        most_running = most_running.max(api.running("web").await.len());
        let d = latest_deployment(&api, "web").await;
        if d["JobVersion"] == 1 && description.is_null() {
            description = d["StatusDescription"].clone();
        }
        if d["JobVersion"] == 1 && d["Status"] == "successful" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the swap did not finish: {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        description, "Deployment is running pending automatic promotion",
        "described as such when created"
    );
    assert_eq!(most_running, 4, "blue and green ran side by side");
    let d = latest_deployment(&api, "web").await;
    assert_eq!(d["TaskGroups"]["web"]["Promoted"], true);
    let canaries = d["TaskGroups"]["web"]["PlacedCanaries"]
        .as_array()
        .unwrap()
        .clone();
    eventually("only the canaries run", || async {
        let running = api.running("web").await;
        running.len() == 2 && running.iter().all(|a| canaries.contains(&a["ID"]))
    })
    .await;
}

/// Registers `job` with a 2 s healthy deadline and a 4 s progress deadline, waits until that
/// version is stable, then rolls out `image`, whose allocations get `fault`.
async fn roll_out_a_bad_image(api: &Api, mut job: Value, image: &str, fault: &str) {
    job["Update"]["HealthyDeadline"] = json!(2 * SECOND);
    job["Update"]["ProgressDeadline"] = json!(4 * SECOND);
    api.register(job.clone()).await;
    eventually("version 0 is stable", || async {
        api.get("/v1/job/web").await.1["Stable"] == true
    })
    .await;
    let (status, _) = api
        .put("/_sim/images", json!({"image": image, "fault": fault}))
        .await;
    assert_eq!(status, 200);
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!(image);
    api.register(job).await;
}

/// deployment_watcher.go `watch`: a version whose allocations never turn healthy fails at its
/// progress deadline, and with `auto_revert` the last stable version is registered again
/// ("Failed due to progress deadline - rolling back to job version 0"), which then rolls out.
#[tokio::test]
async fn a_failing_version_is_reverted_to_the_last_stable_one() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 2, 64);
    job["Update"]["AutoRevert"] = json!(true);
    roll_out_a_bad_image(&api, job, "nginx:bad", "crashloop").await;
    eventually(
        "version 1's deployment fails and is rolled back",
        || async {
            deployments(&api, "web").await.iter().any(|d| {
                d["JobVersion"] == 1
                    && d["Status"] == "failed"
                    && d["StatusDescription"]
                        == "Failed due to progress deadline - rolling back to job version 0"
            })
        },
    )
    .await;
    eventually("version 2 (version 0's spec) runs and succeeds", || async {
        let (_, job) = api.get("/v1/job/web").await;
        let latest = latest_deployment(&api, "web").await;
        job["Version"] == 2
            && job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "nginx"
            && latest["JobVersion"] == 2
            && latest["Status"] == "successful"
    })
    .await;
    let running = api.running("web").await;
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|a| a["JobVersion"] == 2));
}

/// Without `auto_revert` a failed deployment stays failed: no revert, and nothing more is
/// replaced (reconcile.go: `deploymentFailed` gives no destructive budget), so the old
/// allocations keep running.
#[tokio::test]
async fn without_auto_revert_a_failed_deployment_leaves_the_old_allocations() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    roll_out_a_bad_image(&api, service_job("web", 3, 64), "nginx:hangs", "hang").await;
    eventually("the deployment fails at its progress deadline", || async {
        latest_deployment(&api, "web").await["StatusDescription"]
            == "Failed due to progress deadline"
    })
    .await;
    let (_, current) = api.get("/v1/job/web").await;
    assert_eq!(current["Version"], 1, "no revert without auto_revert");
    let old = api
        .running("web")
        .await
        .into_iter()
        .filter(|a| a["JobVersion"] == 0)
        .count();
    assert_eq!(
        old, 2,
        "one old allocation was replaced (max_parallel 1), the rest kept"
    );
}

/// reconcile.go `createDeployment`: a count change is an in-place update, and still gets a
/// deployment (the allocations join it, their health judged again); no update block
/// (`MaxParallel` 0, `UpdateStrategy.IsEmpty`) means no deployment at all.
#[tokio::test]
async fn scaling_keeps_allocations_and_no_update_block_means_no_deployment() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 2, 64);
    deploy(&api, &job).await;
    let before = running_ids(&api, "web").await;
    job["TaskGroups"][0]["Count"] = json!(3);
    api.register(job).await;
    eventually("the scaled version's deployment succeeds", || async {
        let d = latest_deployment(&api, "web").await;
        d["JobVersion"] == 1 && d["Status"] == "successful"
    })
    .await;
    let after = running_ids(&api, "web").await;
    assert_eq!(after.len(), 3);
    assert!(
        before.iter().all(|id| after.contains(id)),
        "{before:?} kept in {after:?}"
    );

    let mut plain = service_job("plain", 1, 64);
    plain["Update"] = json!({"MaxParallel": 0});
    api.register(plain).await;
    eventually("plain runs", || async {
        api.running("plain").await.len() == 1
    })
    .await;
    assert!(deployments(&api, "plain").await.is_empty());
    assert_eq!(latest_deployment(&api, "plain").await, Value::Null);
}

/// The deployment endpoints (nomad/deployment_endpoint.go): pause holds a rollout, fail ends
/// it (with the rollback the group asks for), terminal ones refuse, unknown IDs are 404.
#[tokio::test]
async fn deployments_can_be_paused_and_failed_through_the_api() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 2, 64);
    job["Update"]["MinHealthyTime"] = json!(SECOND);
    deploy(&api, &job).await;
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:2");
    api.register(job).await;
    let id = latest_deployment(&api, "web").await["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = api
        .put(
            &format!("/v1/deployment/pause/{id}"),
            json!({"DeploymentID": id, "Pause": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, d) = api.get(&format!("/v1/deployment/{id}")).await;
    assert_eq!(d["Status"], "paused");
    let (status, reply) = api
        .put(
            &format!("/v1/deployment/fail/{id}"),
            json!({"DeploymentID": id}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (_, d) = api.get(&format!("/v1/deployment/{id}")).await;
    assert_eq!(d["Status"], "failed");
    assert_eq!(d["StatusDescription"], "Deployment marked as failed");
    let (status, reply) = api
        .put(
            &format!("/v1/deployment/fail/{id}"),
            json!({"DeploymentID": id}),
        )
        .await;
    assert_eq!(
        (status, reply),
        (500, json!("can't fail terminal deployment"))
    );
    let (status, _) = api
        .get("/v1/deployment/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, 404);
    let (_, members) = api.get(&format!("/v1/deployment/allocations/{id}")).await;
    assert!(!members.as_array().unwrap().is_empty());
}

/// client/serviceregistration/watcher.go restarts a task whose check stays critical, as a
/// failure: past the restart policy's attempts the allocation fails (and is replaced) instead
/// of restarting forever.
#[tokio::test]
async fn check_restarts_count_against_the_restart_policy() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 1, 64);
    job["TaskGroups"][0]["RestartPolicy"] =
        json!({"Attempts": 2, "Interval": 300 * SECOND, "Delay": 0, "Mode": "fail"});
    job["TaskGroups"][0]["ReschedulePolicy"] =
        json!({"Delay": 0, "DelayFunction": "constant", "Unlimited": true});
    job["TaskGroups"][0]["Services"][0]["Checks"][0]["CheckRestart"] =
        json!({"Limit": 1, "Grace": 0});
    api.register(job).await;
    eventually("running", || async { api.running("web").await.len() == 1 }).await;
    let first = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    api.put(
        "/_sim/checks",
        json!({"allocation": first, "status": "critical"}),
    )
    .await;
    eventually("the allocation fails after its restarts", || async {
        let (_, alloc) = api.get(&format!("/v1/allocation/{first}")).await;
        alloc["ClientStatus"] == "failed"
    })
    .await;
    let (_, alloc) = api.get(&format!("/v1/allocation/{first}")).await;
    assert_eq!(alloc["TaskStates"]["app"]["Restarts"], 2, "{alloc}");
    eventually("a replacement runs", || async {
        api.running("web")
            .await
            .iter()
            .any(|a| a["ID"] != json!(first))
    })
    .await;
}

/// client/client.go `RestartAllocation`: the running tasks restart in place, not counted
/// against the restart policy (restarts.go `SetRestartTriggered(false)`); the allocation is
/// pending and out of the catalog meanwhile, then runs again under the same ID. What Nomad
/// refuses, it refuses in its words.
#[tokio::test]
async fn a_restart_asked_for_restarts_in_place() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 1, 64);
    // No attempts left for failures: a restart counted as one would fail the allocation.
    job["TaskGroups"][0]["RestartPolicy"] =
        json!({"Attempts": 0, "Interval": 300 * SECOND, "Delay": 0, "Mode": "fail"});
    api.register(job).await;
    eventually("running", || async { api.running("web").await.len() == 1 }).await;
    let id = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let restart = format!("/v1/client/allocation/{id}/restart");
    for round in 1..=2 {
        let (_, now) = api.get(&format!("/v1/allocation/{id}")).await;
        let stream = api
            .http
            .get(format!(
                "{}/v1/event/stream?topic=Allocation:{id}&index={}",
                api.nomad,
                now["ModifyIndex"].as_u64().unwrap() + 1
            ))
            .send()
            .await
            .unwrap();
        let (code, _) = api.put(&restart, json!({})).await;
        assert_eq!(code, 200);
        // Pending while the task restarts, then running: the same allocation throughout.
        // (Updates that do not change the client status, such as deployment health, may come
        // between.)
        let statuses = |frames: &[Value]| -> Vec<Value> {
            let mut seen: Vec<Value> = frames
                .iter()
                .flat_map(|f| f["Events"].as_array().cloned().unwrap_or_default())
                .map(|e| e["Payload"]["Allocation"]["ClientStatus"].clone())
                .skip_while(|s| s != "pending")
                .collect();
            seen.dedup();
            seen
        };
        let read = frames_until(stream, |frames| statuses(frames).len() >= 2).await;
        assert_eq!(statuses(&read)[..2], [json!("pending"), json!("running")]);
        let (_, alloc) = api.get(&format!("/v1/allocation/{id}")).await;
        let task = &alloc["TaskStates"]["app"];
        assert_eq!(task["Restarts"], round, "{task}");
        let kinds: Vec<&str> = task["Events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["Type"].as_str())
            .collect();
        assert!(
            kinds.ends_with(&["Restart Signaled", "Terminated", "Restarting", "Started"]),
            "{kinds:?}"
        );
    }
    let (code, said) = api.put(&restart, json!({"TaskName": "nope"})).await;
    assert_eq!(
        (code, said),
        (500, json!("Could not find task runner for task: nope"))
    );
    let (code, said) = api
        .put(&restart, json!({"TaskName": "app", "AllTasks": true}))
        .await;
    assert_eq!(
        (code, said),
        (
            500,
            json!("task name cannot be set when restarting all tasks")
        )
    );
    let (code, _) = api
        .put("/v1/client/allocation/0000/restart", json!({}))
        .await;
    assert_eq!(code, 404);
    api.put(&format!("/v1/allocation/{id}/stop"), json!({}))
        .await;
    eventually("stopped", || async {
        let (_, alloc) = api.get(&format!("/v1/allocation/{id}")).await;
        alloc["DesiredStatus"] == "stop"
    })
    .await;
    let (code, said) = api.put(&restart, json!({})).await;
    assert_eq!(
        (code, said),
        (500, json!("restart of an alloc that should not run"))
    );
}

/// structs.go `Allocation.NextRescheduleTime` and reconcile.go `createRescheduleLaterEvals`:
/// a failed allocation is replaced only after its reschedule delay, by a follow-up evaluation
/// that waits until then (`WaitUntil`, the allocation's `FollowupEvalID`); with
/// `delay_function = "exponential"` the next failure in the chain waits twice as long.
#[tokio::test]
async fn a_failed_allocation_is_replaced_after_its_reschedule_delay() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let mut job = service_job("web", 1, 64);
    job["TaskGroups"][0]["ReschedulePolicy"] = json!({
        "Delay": 2 * SECOND, "DelayFunction": "exponential", "MaxDelay": 60 * SECOND, "Unlimited": true
    });
    api.register(job).await;
    eventually("running", || async { api.running("web").await.len() == 1 }).await;
    let first = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let fail = |id: String| {
        let api = &api;
        async move {
            let (status, _) = api
                .send(
                    reqwest::Method::POST,
                    &format!("/_sim/allocations/{id}/fail"),
                    json!({}),
                )
                .await;
            assert_eq!(status, 200);
        }
    };
    fail(first.clone()).await;
    eventually(
        "the failed allocation names its follow-up evaluation",
        || async {
            let failed = api.get(&format!("/v1/allocation/{first}")).await.1;
            failed["FollowupEvalID"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        },
    )
    .await;
    let failed = api.get(&format!("/v1/allocation/{first}")).await.1;
    let followup = failed["FollowupEvalID"].as_str().unwrap().to_string();
    let (_, eval) = api.get(&format!("/v1/evaluation/{followup}")).await;
    assert_eq!(eval["TriggeredBy"], "alloc-failure");
    assert_eq!(eval["Status"], "pending", "it waits: {eval}");
    assert_eq!(
        eval["StatusDescription"],
        "created for delayed rescheduling"
    );
    let wait_until =
        chrono::DateTime::parse_from_rfc3339(eval["WaitUntil"].as_str().unwrap()).unwrap();
    let finished = failed["TaskStates"]["app"]["FinishedAt"].as_str().unwrap();
    let finished = chrono::DateTime::parse_from_rfc3339(finished).unwrap();
    assert_eq!(
        (wait_until - finished).num_seconds(),
        2,
        "failure time plus the delay"
    );
    assert!(
        api.running("web").await.is_empty(),
        "no replacement before the delay"
    );
    eventually("the follow-up places the replacement", || async {
        api.running("web")
            .await
            .iter()
            .any(|a| a["PreviousAllocation"] == first.as_str())
    })
    .await;
    let (_, eval) = api.get(&format!("/v1/evaluation/{followup}")).await;
    assert_eq!(eval["Status"], "complete");
    let second = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, replacement) = api.get(&format!("/v1/allocation/{second}")).await;
    assert_eq!(
        replacement["RescheduleTracker"]["Events"][0]["Delay"],
        2 * SECOND
    );

    fail(second.clone()).await;
    eventually("the second replacement runs", || async {
        api.running("web")
            .await
            .iter()
            .any(|a| a["PreviousAllocation"] == second.as_str())
    })
    .await;
    let third = api.running("web").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, replacement) = api.get(&format!("/v1/allocation/{third}")).await;
    let events = replacement["RescheduleTracker"]["Events"]
        .as_array()
        .unwrap();
    assert_eq!(events.len(), 2, "the chain's events carried on");
    assert_eq!(
        events[1]["Delay"],
        4 * SECOND,
        "exponential: twice the last delay"
    );
}

/// A job whose task reads `path` through a template, as nomarch's secret references do.
fn job_reading_variable(id: &str, path: &str) -> Value {
    let mut job = service_job(id, 1, 64);
    job["TaskGroups"][0]["Tasks"][0]["Templates"] = json!([{
        "DestPath": "secrets/app.env", "Envvars": true, "ChangeMode": "restart",
        "EmbeddedTmpl": format!("{{{{ with nomadVar \"{path}\" }}}}PASSWORD={{{{ index . \"password\" }}}}{{{{ end }}}}\n"),
    }]);
    job
}

/// template.go `handleFirstRender` with consul-template's blocking `nomadVar`: a task whose
/// template reads a variable that does not exist waits, with a `Template` event naming it,
/// and starts once the variable is written.
#[tokio::test]
async fn a_task_waits_for_the_variables_its_templates_read() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    api.register(job_reading_variable("web", "nomad/jobs/web"))
        .await;
    eventually("the task says what it waits for", || async {
        api.allocs("web").await.iter().any(|a| {
            a["TaskStates"]["app"]["Events"]
                .as_array()
                .is_some_and(|events| {
                    events.iter().any(|e| {
                        e["Type"] == "Template"
                            && e["DisplayMessage"]
                                == "Missing: nomad.var.block(nomad/jobs/web@default.global)"
                    })
                })
        })
    })
    .await;
    let waiting = api.allocs("web").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["ClientStatus"], "pending");
    let (status, _) = api
        .put(
            "/v1/var/nomad/jobs/web",
            json!({"Path": "nomad/jobs/web", "Items": {"password": "x"}}),
        )
        .await;
    assert_eq!(status, 200);
    eventually("it starts once the variable exists", || async {
        api.running("web").await.len() == 1
    })
    .await;
}

/// acl/acl.go `matchingVariablesCapabilitySet`: with ACLs on, a task's identity reads its own
/// job's paths without a policy; a read of any other path is denied, retried for about five
/// minutes (client/config `NomadRetry`), then the template kills the task.
#[tokio::test]
async fn with_acls_a_task_reads_only_its_own_jobs_variables() {
    let token = "s3cret";
    // A hundred simulated seconds per second: the retries run out in about three.
    let sim = RunningSim::start(
        SimConfig {
            acl_token: Some(token.into()),
            ..fast_config()
        },
        100.0,
        "127.0.0.1:0",
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let api = Api::with_token(&sim, token);
    for path in ["nomad/jobs/own", "shared/db"] {
        let (status, _) = api
            .put(
                &format!("/v1/var/{path}"),
                json!({"Path": path, "Items": {"password": "x"}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    api.register(job_reading_variable("own", "nomad/jobs/own"))
        .await;
    api.register(job_reading_variable("other", "shared/db"))
        .await;
    eventually("the job's own variable is read and it runs", || async {
        !api.running("own").await.is_empty()
    })
    .await;
    eventually("the other's template gives up and kills the task", || async {
        api.allocs("other").await.iter().any(|a| {
            a["ClientStatus"] == "failed"
                && a["TaskStates"]["app"]["Events"].as_array().is_some_and(|events| {
                    events.iter().any(|e| {
                        e["Type"] == "Killing"
                            && e["DisplayMessage"]
                                == "Template failed: nomad.var.block(shared/db@default.global): Unexpected response code: 403 (Permission denied)"
                    })
                })
        })
    })
    .await;
    assert!(api.running("other").await.is_empty(), "it never ran");
}

/// Smaller behaviours Nomad's source shows and samples do not: a check-and-set on a missing
/// variable conflicts with a zero-valued variable (state_store_variables.go `varSetCASImpl`);
/// variable paths are 1 to 128 of `[a-zA-Z0-9-_~/]` (structs/variables.go `ValidatePath`);
/// stopping a stopped job writes another version (fsm.go `handleJobDeregister`); forcing a
/// disabled periodic job is refused as untracked (periodic.go `ForceEval`).
#[tokio::test]
async fn variables_stops_and_forced_launches_answer_as_nomads_source_says() {
    let sim = start(fast_config()).await;
    let api = Api::new(&sim);
    let body = json!({"Path": "nomarch/missing", "Items": {"k": "v"}});
    let (status, conflict) = api
        .send(reqwest::Method::PUT, "/v1/var/nomarch/missing?cas=7", body)
        .await;
    assert_eq!(status, 409);
    assert_eq!(conflict["Path"], "nomarch/missing");
    assert_eq!(conflict["Namespace"], "default");
    assert_eq!(
        conflict["ModifyIndex"], 0,
        "a zero value, not null: {conflict}"
    );
    for (path, why) in [
        ("nomarch/has%20space", "a space"),
        (
            &*format!("nomarch/{}", "x".repeat(130)),
            "over 128 characters",
        ),
        ("nomad", "the reserved top level"),
        ("nomad/other", "outside nomad/jobs"),
    ] {
        let (status, text) = api
            .send(
                reqwest::Method::PUT,
                &format!("/v1/var/{path}"),
                json!({"Items": {"k": "v"}}),
            )
            .await;
        assert_eq!(status, 500, "{why}: {text}");
    }
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            "/v1/var/nomad/jobs/web/db",
            json!({"Items": {"k": "v"}}),
        )
        .await;
    assert_eq!(status, 200, "nomad/jobs/... is allowed");

    api.register(service_job("web", 1, 64)).await;
    for expected in [1, 2] {
        let (status, _) = api
            .send(reqwest::Method::DELETE, "/v1/job/web", json!(null))
            .await;
        assert_eq!(status, 200);
        assert_eq!(api.get("/v1/job/web").await.1["Version"], expected);
    }

    let mut nightly = service_job("nightly", 1, 64);
    nightly["Type"] = json!("batch");
    nightly["Update"] = Value::Null;
    nightly["Periodic"] = json!({"Enabled": false, "SpecType": "cron", "Spec": "0 3 * * *"});
    api.register(nightly).await;
    let (status, text) = api.put("/v1/job/nightly/periodic/force", json!({})).await;
    assert_eq!(
        (status, text),
        (
            500,
            json!("force launch for job \"nightly\" failed: can't force run non-tracked job \"nightly\" (default)")
        )
    );
    let (status, text) = api.put("/v1/job/web/periodic/force", json!({})).await;
    assert_eq!(
        (status, text),
        (500, json!("can't force launch non-periodic job"))
    );
}
