//! nomad-sim's fault model and the rest of its API surface: check_restart, crash loops, hangs,
//! partitions, Consul blocking queries and KV check-and-set, namespaces.

use std::time::Duration;

use e2e::sim::config::SimConfig;
use e2e::sim::RunningSim;
use e2e::testing::eventually;
use serde_json::{json, Value};

async fn start() -> RunningSim {
    let config = SimConfig {
        start_delay: Duration::from_millis(50),
        heartbeat_ttl: Duration::from_millis(200),
        heartbeat_grace: Duration::from_millis(200),
        ..SimConfig::default()
    };
    RunningSim::start(config, 1.0, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap()
}

async fn get(url: String) -> Value {
    e2e::http::get(url).await.unwrap().json().await.unwrap()
}

async fn put(url: String, body: Value) -> (u16, Value) {
    e2e::testing::send(e2e::http::client().put(url).json(&body)).await
}

/// A service job whose check restarts the task after one failed 100ms interval; restarts and
/// replacements without delay.
fn checked_job(id: &str) -> Value {
    json!({"Job": {
        "ID": id,
        "TaskGroups": [{
            "Name": "web",
            "Count": 1,
            "RestartPolicy": {"Attempts": 2, "Interval": 60_000_000_000u64, "Delay": 0, "Mode": "fail"},
            "ReschedulePolicy": {"Delay": 0, "DelayFunction": "constant", "Unlimited": true},
            "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
            "Services": [{"Name": id, "PortLabel": "http", "Checks": [{
                "Name": "alive", "Type": "http", "Path": "/", "Interval": 1_000_000_000u64, "Timeout": 1_000_000_000u64,
                "CheckRestart": {"Limit": 1, "Grace": 0, "IgnoreWarnings": false}
            }]}],
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx"}, "Resources": {"CPU": 100, "MemoryMB": 64}}],
        }],
    }})
}

async fn allocs(sim: &RunningSim, job: &str) -> Vec<Value> {
    get(format!("{}/v1/job/{job}/allocations", sim.nomad_url()))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Makes an allocation's tasks crash as soon as they run (`/_sim/allocations/:id/crashloop`).
async fn crashloop(sim: &RunningSim, id: &str) {
    let response = e2e::http::client()
        .post(format!(
            "{}/_sim/allocations/{id}/crashloop",
            sim.nomad_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Waits for the job's one allocation to run; its ID.
async fn the_running_one(sim: &RunningSim, job: &str) -> String {
    eventually("running", || async { running(sim, job).await.len() == 1 }).await;
    running(sim, job).await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn running(sim: &RunningSim, job: &str) -> Vec<Value> {
    allocs(sim, job)
        .await
        .into_iter()
        .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
        .collect()
}

#[tokio::test]
async fn check_restart_restarts_in_place_while_a_check_stays_critical() {
    let sim = start().await;
    put(format!("{}/v1/jobs", sim.nomad_url()), checked_job("web")).await;
    let id = the_running_one(&sim, "web").await;
    put(
        format!("{}/_sim/checks", sim.nomad_url()),
        json!({"service": "web", "status": "critical"}),
    )
    .await;
    eventually("a restart signaled by the failing check", || async {
        let alloc = get(format!("{}/v1/allocation/{id}", sim.nomad_url())).await;
        alloc["TaskStates"]["app"]["Restarts"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    // The task waits out its restart delay as `pending` (restarts.go), then runs again: the
    // same allocation, restarted in place.
    eventually("the same allocation runs again", || async {
        let alloc = get(format!("{}/v1/allocation/{id}", sim.nomad_url())).await;
        alloc["ClientStatus"] == "running"
    })
    .await;
    let alloc = get(format!("{}/v1/allocation/{id}", sim.nomad_url())).await;
    let events: Vec<&str> = alloc["TaskStates"]["app"]["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"Restart Signaled"), "{events:?}");
}

/// restarts/restarts.go `GetState`: within the policy a failed task waits out `delay` (plus
/// up to 25% jitter) as `pending` before it starts again; past `attempts` in the interval,
/// mode `fail` gives up with the policy named.
#[tokio::test]
async fn a_restart_waits_out_the_policy_delay_and_then_gives_up() {
    let sim = start().await;
    let mut job = checked_job("slow");
    job["Job"]["TaskGroups"][0]["RestartPolicy"] = json!({"Attempts": 1, "Interval": 300_000_000_000u64, "Delay": 1_000_000_000u64, "Mode": "fail"});
    put(format!("{}/v1/jobs", sim.nomad_url()), job).await;
    let id = the_running_one(&sim, "slow").await;
    let url = format!("{}/v1/allocation/{id}", sim.nomad_url());
    crashloop(&sim, &id).await;
    eventually("the crashed task waits to restart", || async {
        let alloc = get(url.clone()).await;
        alloc["ClientStatus"] == "pending" && alloc["TaskStates"]["app"]["State"] == "pending"
    })
    .await;
    eventually("it gives up after its one attempt", || async {
        get(url.clone()).await["ClientStatus"] == "failed"
    })
    .await;
    let alloc = get(url).await;
    let events = alloc["TaskStates"]["app"]["Events"].as_array().unwrap();
    let of_type = |t: &str| {
        events
            .iter()
            .filter(|e| e["Type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let restarting = of_type("Restarting");
    assert_eq!(restarting.len(), 1, "{events:?}");
    let message = restarting[0]["DisplayMessage"].as_str().unwrap();
    assert!(message.starts_with("Task restarting in 1"), "{message}");
    let started = of_type("Started");
    assert_eq!(started.len(), 2, "started, then restarted: {events:?}");
    let waited = started[1]["Time"].as_i64().unwrap() - restarting[0]["Time"].as_i64().unwrap();
    assert!(waited >= 1_000_000_000, "waited the delay: {waited}ns");
    assert_eq!(
        of_type("Not Restarting")[0]["DisplayMessage"],
        "Exceeded allowed attempts 1 in interval 5m0s and mode is \"fail\""
    );
    assert_eq!(alloc["TaskStates"]["app"]["Restarts"], 1);
}

#[tokio::test]
async fn a_crash_loop_fails_the_allocation_and_a_replacement_is_placed() {
    let sim = start().await;
    put(format!("{}/v1/jobs", sim.nomad_url()), checked_job("loop")).await;
    let id = the_running_one(&sim, "loop").await;
    crashloop(&sim, &id).await;
    eventually("the crash-looping allocation fails", || async {
        get(format!("{}/v1/allocation/{id}", sim.nomad_url())).await["ClientStatus"] == "failed"
    })
    .await;
    let failed = get(format!("{}/v1/allocation/{id}", sim.nomad_url())).await;
    assert_eq!(
        failed["TaskStates"]["app"]["Restarts"], 2,
        "restarted as many times as the policy allows"
    );
    eventually("a replacement runs", || async {
        running(&sim, "loop")
            .await
            .iter()
            .any(|a| a["PreviousAllocation"] == id.as_str())
    })
    .await;
    // The replacement of a failed allocation is a reschedule: the tracker says from where.
    let replacement = running(&sim, "loop").await.remove(0);
    let events = replacement["RescheduleTracker"]["Events"]
        .as_array()
        .unwrap();
    assert_eq!(events.len(), 1, "{replacement}");
    assert_eq!(events[0]["PrevAllocID"], id.as_str());
}

#[tokio::test]
async fn a_hung_allocation_fails_its_checks() {
    let sim = start().await;
    put(format!("{}/v1/jobs", sim.nomad_url()), checked_job("hung")).await;
    eventually("passing in consul", || async {
        get(format!(
            "{}/v1/health/service/hung?passing",
            sim.consul_url()
        ))
        .await
        .as_array()
        .unwrap()
        .len()
            == 1
    })
    .await;
    let id = running(&sim, "hung").await[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    e2e::http::client()
        .post(format!("{}/_sim/allocations/{id}/hang", sim.nomad_url()))
        .send()
        .await
        .unwrap();
    let checks = get(format!("{}/v1/health/checks/hung", sim.consul_url())).await;
    assert_eq!(checks[0]["Status"], "critical");
    assert_eq!(
        get(format!(
            "{}/v1/health/service/hung?passing",
            sim.consul_url()
        ))
        .await,
        json!([])
    );
}

async fn node_status(sim: &RunningSim, name: &str) -> Value {
    let nodes = get(format!("{}/v1/nodes", sim.nomad_url())).await;
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Name"] == name)
        .map(|n| n["Status"].clone())
        .unwrap_or(Value::Null)
}

async fn post(url: String) {
    e2e::http::client().post(url).send().await.unwrap();
}

/// nomad/heartbeat.go `invalidateHeartbeat`/`disconnectState`: a node that misses heartbeats
/// is `down` (its allocations lost) unless an allocation on it tolerates disconnects.
#[tokio::test]
async fn a_silent_node_without_disconnect_tolerant_work_goes_down() {
    let sim = start().await;
    post(format!("{}/_sim/nodes/node-2/partition", sim.nomad_url())).await;
    eventually("node-2 down", || async {
        node_status(&sim, "node-2").await == "down"
    })
    .await;
}

/// With `disconnect.lost_after` the node goes `disconnected`, its allocation `unknown` and a
/// replacement runs elsewhere; when the client is back the original runs on and the
/// replacement is stopped (reconcile.go `reconcileReconnecting`).
#[tokio::test]
async fn a_partitioned_node_goes_disconnected() {
    let sim = start().await;
    let job = json!({"Job": {
        "ID": "tolerant",
        "Type": "service",
        "Constraints": [{"LTarget": "${node.unique.name}", "RTarget": "node-2", "Operand": "="}],
        "TaskGroups": [{
            "Name": "web",
            "Count": 1,
            "Disconnect": {"LostAfter": 60_000_000_000u64},
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx"}, "Resources": {"CPU": 100, "MemoryMB": 64}}],
        }],
    }});
    put(format!("{}/v1/jobs", sim.nomad_url()), job).await;
    let allocs_url = format!("{}/v1/job/tolerant/allocations", sim.nomad_url());
    eventually("running on node-2", || async {
        get(allocs_url.clone())
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ClientStatus"] == "running")
    })
    .await;
    let original = get(allocs_url.clone()).await[0]["ID"].clone();
    post(format!("{}/_sim/nodes/node-2/partition", sim.nomad_url())).await;
    eventually("node-2 disconnected", || async {
        node_status(&sim, "node-2").await == "disconnected"
    })
    .await;
    eventually("the original unknown", || async {
        get(allocs_url.clone())
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ID"] == original && a["ClientStatus"] == "unknown")
    })
    .await;
    post(format!("{}/_sim/nodes/node-2/revive", sim.nomad_url())).await;
    eventually("the original runs again, alone", || async {
        let allocs = get(allocs_url.clone()).await;
        let live: Vec<&Value> = allocs
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
            .collect();
        live.len() == 1 && live[0]["ID"] == original
    })
    .await;
    e2e::http::client()
        .post(format!("{}/_sim/nodes/node-2/revive", sim.nomad_url()))
        .send()
        .await
        .unwrap();
    eventually("node-2 ready again", || async {
        let nodes = get(format!("{}/v1/nodes", sim.nomad_url())).await;
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["Name"] == "node-2" && n["Status"] == "ready")
    })
    .await;
}

#[tokio::test]
async fn consul_blocking_query_wakes_when_a_check_changes() {
    let sim = start().await;
    put(format!("{}/v1/jobs", sim.nomad_url()), checked_job("web")).await;
    eventually("registered in consul", || async {
        get(format!("{}/v1/health/service/web", sim.consul_url()))
            .await
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    let first = e2e::http::get(format!("{}/v1/health/service/web", sim.consul_url()))
        .await
        .unwrap();
    let index: u64 = first.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let url = format!(
        "{}/v1/health/service/web?index={index}&wait=20s",
        sim.consul_url()
    );
    let waiter = tokio::spawn(async move { e2e::http::get(url).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "blocks while nothing changes");
    put(
        format!("{}/_sim/checks", sim.nomad_url()),
        json!({"service": "web", "status": "warning"}),
    )
    .await;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    let new_index: u64 = woken.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(new_index > index);
    let body: Value = woken.json().await.unwrap();
    assert_eq!(body[0]["Checks"][0]["Status"], "warning");
}

#[tokio::test]
async fn consul_kv_check_and_set() {
    let sim = start().await;
    let kv = |key: &str| format!("{}/v1/kv/{key}", sim.consul_url());
    let client = e2e::http::client();
    let put_raw = |url: String, body: &'static str| {
        let client = client.clone();
        async move {
            client
                .put(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(put_raw(kv("app/config?cas=0"), "one").await, json!(true));
    assert_eq!(
        put_raw(kv("app/config?cas=0"), "two").await,
        json!(false),
        "cas=0 only creates"
    );
    let entry = get(kv("app/config")).await;
    assert_eq!(entry[0]["Value"], "b25l", "base64 of `one`");
    let index = entry[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        put_raw(kv(&format!("app/config?cas={}", index + 1)), "two").await,
        json!(false)
    );
    assert_eq!(
        put_raw(kv(&format!("app/config?cas={index}")), "two").await,
        json!(true)
    );
    let missing = e2e::http::get(kv("nope")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.unwrap(), "");
    let keys = get(kv("app/?keys")).await;
    assert_eq!(keys, json!(["app/config"]));
}

#[tokio::test]
async fn namespaces_scope_jobs_and_star_lists_them_all() {
    let sim = start().await;
    let (status, text) = put(
        format!("{}/v1/jobs?namespace=prod", sim.nomad_url()),
        checked_job("web"),
    )
    .await;
    assert_eq!(
        (status, text.as_str().unwrap()),
        (500, "job \"web\" is in nonexistent namespace \"prod\"")
    );
    put(
        format!("{}/v1/namespace/prod", sim.nomad_url()),
        json!({"Description": "production"}),
    )
    .await;
    let (status, _) = put(
        format!("{}/v1/jobs?namespace=prod", sim.nomad_url()),
        checked_job("web"),
    )
    .await;
    assert_eq!(status, 200);
    put(format!("{}/v1/jobs", sim.nomad_url()), checked_job("api")).await;
    let default_only = get(format!("{}/v1/jobs", sim.nomad_url())).await;
    assert_eq!(default_only.as_array().unwrap().len(), 1);
    let all = get(format!("{}/v1/jobs?namespace=*", sim.nomad_url())).await;
    let mut seen: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["Namespace"].as_str().unwrap().into(),
                j["ID"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("default".to_string(), "api".to_string()),
            ("prod".to_string(), "web".to_string())
        ]
    );
    let missing = e2e::http::get(format!("{}/v1/job/web", sim.nomad_url()))
        .await
        .unwrap();
    assert_eq!(
        missing.status(),
        404,
        "a job is only found in its namespace"
    );
}

#[tokio::test]
async fn terminal_allocations_are_garbage_collected_after_the_threshold() {
    let config = SimConfig {
        start_delay: Duration::from_millis(50),
        gc_threshold: Duration::from_millis(500),
        ..SimConfig::default()
    };
    let sim = RunningSim::start(config, 1.0, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    put(format!("{}/v1/jobs", sim.nomad_url()), checked_job("web")).await;
    let id = the_running_one(&sim, "web").await;
    put(
        format!("{}/v1/allocation/{id}/stop", sim.nomad_url()),
        json!({}),
    )
    .await;
    eventually("the stopped allocation is collected", || async {
        allocs(&sim, "web")
            .await
            .iter()
            .all(|a| a["ID"] != id.as_str())
    })
    .await;
    let gone = e2e::http::get(format!("{}/v1/allocation/{id}", sim.nomad_url()))
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(running(&sim, "web").await.len(), 1, "the replacement stays");
}
