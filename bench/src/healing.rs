//! Moving pubs off a dead hub, and healing: how long nomarch takes beyond the grace it was told
//! to give. Figures next to the same floor as the apply-latency scenario.
//!
//! - `hub-death`: 1,000 pubs on 50 hubs; the fullest hub's heartbeats stop. From the moment
//!   Nomad marks it down until every one of its pubs is registered on another hub.
//! - `heal`: an App's check goes critical; from then until nomarch asks Nomad to stop the
//!   allocation, minus the grace.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::clients::{NomadClient, QueryOptions};
use controller::store::Store;
use crds::Resource;
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::figures::{percentile, Figure};
use crate::Args;

const PREFIX: &str = "/bench/";
const PUB_GRACE_SECONDS: u64 = 1;
const HEAL_GRACE_SECONDS: u64 = 2;

fn manifest(text: &str) -> Resource {
    crds::parse_str("bench.yaml", text)
        .expect("valid")
        .remove(0)
        .resource
}

fn pub_object(i: usize) -> Resource {
    manifest(&format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: pub-{i:04}\nspec:\n  tenant: t{i}\n  image: room:1\n  resources: {{cpu: 100, memory: 1024}}\n  hubSelector: {{nodeClass: hub}}\n  reallocation: {{grace: {PUB_GRACE_SECONDS}s}}\n"
    ))
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn hub_death(
    args: &Args,
    floor: (f64, f64),
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    const SCENARIO: &str = "hub-death";
    let pubs = args.pubs;
    let etcd = TestEtcd::start();
    let sim = SimProcess::start(&[
        "--nodes",
        "50",
        "--node-class",
        "hub",
        "--node-memory",
        "32768",
        "--node-cpu",
        "64000",
        "--heartbeat-ttl",
        "500ms",
        "--heartbeat-grace",
        "500ms",
        "--start-delay",
        "0s",
        "--gc-threshold",
        "30s",
    ]);
    let controller = ControllerProcess::start(
        &binary("nomarch", "controller"),
        &etcd.endpoint(),
        PREFIX,
        &sim,
        &["--concurrency", "8"],
    );
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await?;
    let nomad = NomadClient::new(&sim.nomad_url(), None);
    let objects: Vec<Resource> = (0..pubs).map(pub_object).collect();
    let placing = Instant::now();
    store.apply(&objects).await?;
    wait_for("every pub registered", Duration::from_secs(600), || async {
        Ok(nomad.jobs(QueryOptions::default()).await?.value.len() >= pubs)
    })
    .await
    .with_context(|| controller.process.log_text())?;
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("{pubs} pubs placed and registered"),
        value: placing.elapsed().as_secs_f64(),
        unit: "s",
        floor: None,
    });

    // The fullest hub, from the jobs' pins.
    let jobs = nomad.jobs(QueryOptions::default()).await?.value;
    let mut pins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stub in &jobs {
        let job = nomad
            .job("default", &stub.id, QueryOptions::default())
            .await?
            .value
            .context("job vanished")?;
        let pin = job
            .extra
            .get("Constraints")
            .and_then(|c| c[0]["RTarget"].as_str())
            .unwrap_or_default()
            .to_string();
        pins.entry(pin).or_default().push(stub.id.clone());
    }
    let (victim, victims) = pins
        .iter()
        .max_by_key(|(_, v)| v.len())
        .map(|(h, v)| (h.clone(), v.clone()))
        .context("no pins")?;
    let nodes = nomad.nodes(QueryOptions::default()).await?.value;
    let victim_name = nodes
        .iter()
        .find(|n| n.id == victim)
        .map(|n| n.name.clone())
        .context("victim node")?;

    let index = nomad.jobs(QueryOptions::default()).await?.index;
    let mut events = nomad.event_stream(&["Job"], "default", index + 1).await?;
    let killed = e2e::http::client()
        .post(format!("{}/_sim/nodes/{victim_name}/kill", sim.nomad_url()))
        .send()
        .await?;
    if !killed.status().is_success() {
        bail!("could not kill {victim_name}");
    }
    wait_for("the hub marked down", Duration::from_secs(30), || async {
        Ok(nomad
            .nodes(QueryOptions::default())
            .await?
            .value
            .iter()
            .any(|n| n.id == victim && n.status == "down"))
    })
    .await?;
    let down_at = Instant::now();
    let mut waiting: BTreeSet<String> = victims.iter().cloned().collect();
    while !waiting.is_empty() {
        let frame = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .context("pubs did not move")?
            .context("stream ended")??;
        for event in frame
            .events
            .iter()
            .filter(|e| e.event_type == "JobRegistered")
        {
            let pin = event.payload["Job"]["Constraints"][0]["RTarget"]
                .as_str()
                .unwrap_or_default();
            if pin != victim && !pin.is_empty() {
                waiting.remove(&event.key);
            }
        }
    }
    let moved = down_at.elapsed().as_secs_f64();
    let count = victims.len();
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("hub down → its {count} pubs re-registered (grace {PUB_GRACE_SECONDS}s)"),
        value: moved,
        unit: "s",
        floor: None,
    });
    let beyond_ms = (moved - PUB_GRACE_SECONDS as f64) * 1000.0;
    figures.push(Figure {
        scenario: SCENARIO,
        name: "of which beyond the grace".into(),
        value: beyond_ms,
        unit: "ms",
        floor: Some(floor.0),
    });
    Ok(())
}

pub async fn heal(args: &Args, floor: (f64, f64), figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    const SCENARIO: &str = "heal";
    let etcd = TestEtcd::start();
    let sim = SimProcess::start(&["--start-delay", "0s"]);
    let _controller = ControllerProcess::start(
        &binary("nomarch", "controller"),
        &etcd.endpoint(),
        PREFIX,
        &sim,
        &[],
    );
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await?;
    let nomad = NomadClient::new(&sim.nomad_url(), None);
    let http = e2e::http::client();
    let app = manifest(&format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: healme\nspec:\n  image: web:1\n  ports: [{{name: http}}]\n  health: {{port: http, path: /, interval: 1s, timeout: 1s, grace: {HEAL_GRACE_SECONDS}s}}\n"
    ));
    store.apply(&[app]).await?;
    let mut samples = Vec::new();
    for _ in 0..args.heals {
        wait_for(
            "one healthy allocation",
            Duration::from_secs(60),
            || async {
                let allocs = nomad
                    .job_allocations("default", "healme", QueryOptions::default())
                    .await?
                    .value;
                Ok(allocs
                    .iter()
                    .filter(|a| a.client_status == "running" && a.desired_status == "run")
                    .count()
                    == 1)
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let writes_before = writes(&http, &sim.nomad_url()).await?.len();
        http.put(format!("{}/_sim/checks", sim.nomad_url()))
            .json(&json!({"service": "healme", "status": "critical"}))
            .send()
            .await?;
        let critical_at = Instant::now();
        wait_for("the stop request", Duration::from_secs(60), || async {
            let writes = writes(&http, &sim.nomad_url()).await?;
            Ok(writes[writes_before..]
                .iter()
                .any(|w| w["path"].as_str().is_some_and(|p| p.ends_with("/stop"))))
        })
        .await?;
        samples.push((critical_at.elapsed().as_secs_f64() - HEAL_GRACE_SECONDS as f64) * 1000.0);
        http.put(format!("{}/_sim/checks", sim.nomad_url()))
            .json(&json!({"service": "healme", "status": "passing"}))
            .send()
            .await?;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("critical past grace → stop request, p50 ({n} heals)"),
        value: percentile(&samples, 0.5),
        unit: "ms",
        floor: Some(floor.0),
    });
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("critical past grace → stop request, max ({n} heals)"),
        value: percentile(&samples, 1.0),
        unit: "ms",
        floor: Some(floor.1),
    });
    Ok(())
}

async fn writes(http: &reqwest::Client, nomad: &str) -> anyhow::Result<Vec<Value>> {
    let state: Value = http
        .get(format!("{nomad}/_sim/state"))
        .send()
        .await?
        .json()
        .await?;
    Ok(state["Writes"].as_array().cloned().unwrap_or_default())
}
