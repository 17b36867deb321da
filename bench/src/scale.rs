//! At size: 10,000 Apps, 1,000 Pubs and 1,000 CronJobs in etcd, 1,000 nodes in nomad-sim
//! (900 workers, 100 hubs), an empty cluster, then the controller starts.
//!
//! - cold start: controller start → every object Ready (and the convergence curve);
//! - steady state: over a window spanning several full resyncs, Nomad writes (should be 0),
//!   controller CPU-seconds per resync, requests per object per minute, memory;
//! - restart: a new controller over the converged cluster → ready, and its writes (should be 0).
//!
//! Counts come from the controller's own `/metrics`; CPU and memory from `/proc`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::store::Store;
use crds::{Kind, Resource};
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};

use crate::figures::{memory_mb, Figure};
use crate::Args;

const SCENARIO: &str = "scale";
const PREFIX: &str = "/bench/";
/// The resync period during the steady-state window, and the window itself.
const RESYNC: Duration = Duration::from_secs(20);
const WINDOW: Duration = Duration::from_secs(60);

fn parse(text: &str) -> anyhow::Result<Resource> {
    crds::parse_str("scale.yaml", text)
        .map(|mut m| m.remove(0).resource)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn objects(apps: usize, pubs: usize, crons: usize) -> anyhow::Result<Vec<Resource>> {
    let mut all = Vec::with_capacity(apps + pubs + crons);
    for i in 0..apps {
        all.push(parse(&format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: app-{i:05}\nspec:\n  image: bench/app:{i}\n  replicas: 1\n  resources: {{cpu: 10, memory: 16}}\n  placement: {{nodeClass: worker}}\n"))?);
    }
    for i in 0..pubs {
        all.push(parse(&format!("apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: pub-{i:04}\nspec:\n  tenant: t{i}\n  image: room:1\n  resources: {{cpu: 100, memory: 1024}}\n  hubSelector: {{nodeClass: hub}}\n"))?);
    }
    for i in 0..crons {
        all.push(parse(&format!("apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: cron-{i:04}\nspec:\n  schedule: \"{} 3 * * *\"\n  task:\n    image: job:1\n", i % 60))?);
    }
    Ok(all)
}

fn cluster_file(dir: &std::path::Path, nodes: usize) -> anyhow::Result<std::path::PathBuf> {
    let hubs = (nodes / 10).max(1);
    let list: Vec<serde_json::Value> = (0..nodes)
        .map(|i| {
            let (name, class) = if i < hubs {
                (format!("hub-{i}"), "hub")
            } else {
                (format!("node-{i}"), "worker")
            };
            serde_json::json!({"name": name, "class": class, "cpu": 64000, "memory": 65536})
        })
        .collect();
    let path = dir.join("cluster.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({"nodes": list}))?,
    )?;
    Ok(path)
}

/// `name{labels} value` lines of the controller's `/metrics`, summed by metric name.
async fn metrics(port: u16) -> anyhow::Result<HashMap<String, f64>> {
    let text = e2e::http::client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut sums = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let labels = series.strip_prefix(name).unwrap_or("");
        let value: f64 = value.parse().unwrap_or(0.0);
        *sums.entry(name.to_string()).or_insert(0.0) += value;
        // Per-API series are also kept by label, for reads versus writes per API.
        if !labels.is_empty() {
            *sums.entry(series.to_string()).or_insert(0.0) += value;
        }
    }
    Ok(sums)
}

fn metric(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(0.0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; here 0-based after the ')': 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Objects whose status says Ready at their generation.
async fn ready(store: &Store) -> anyhow::Result<(usize, usize)> {
    let (all, _) = store.list(None).await?;
    let ready = all
        .iter()
        .filter(|r| r.kind() != Kind::GitSource)
        .filter(|r| {
            r.status().is_some_and(|s| {
                s.observed_generation == Some(r.metadata().generation)
                    && s.is_true(crds::ConditionType::Ready)
            })
        })
        .count();
    Ok((ready, all.len()))
}

/// Runs the scenario; returns the convergence curve (seconds, objects Ready).
pub async fn run(args: &Args, figures: &mut Vec<Figure>) -> anyhow::Result<Vec<(f64, usize)>> {
    let dir = tempfile::tempdir()?;
    let etcd = TestEtcd::start();
    let config = cluster_file(dir.path(), args.nodes)?;
    let sim = SimProcess::start(&[
        "--config",
        config.to_str().context("utf-8 path")?,
        "--start-delay",
        "0s",
    ]);
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await?;
    let all = objects(args.scale_apps, args.scale_apps / 10, args.scale_apps / 10)?;
    let total = all.len();
    store.apply(&all).await?;
    drop(all);

    let nomarch = binary("nomarch", "controller");
    let resync = format!("{}s", RESYNC.as_secs());
    let flags = ["--resync", resync.as_str(), "--concurrency", "8"];
    let started = Instant::now();
    let controller = ControllerProcess::start(&nomarch, &etcd.endpoint(), PREFIX, &sim, &flags);
    let mut curve = Vec::new();
    loop {
        let (done, _) = ready(&store).await?;
        let at = started.elapsed().as_secs_f64();
        curve.push((at, done));
        if done == total {
            break;
        }
        if at > 900.0 {
            bail!("{done}/{total} ready after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cold = started.elapsed().as_secs_f64();
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!(
            "cold start: {total} objects on {} nodes, all Ready",
            args.nodes
        ),
        value: cold,
        unit: "s",
        floor: None,
    });
    let pid = controller.process.pid();
    figures.push(Figure {
        scenario: SCENARIO,
        name: "controller memory after cold start (RSS)".into(),
        value: memory_mb(pid).0,
        unit: "MB",
        floor: None,
    });

    // Steady state over a window of several full resyncs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = metrics(controller.port).await?;
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(WINDOW).await;
    let after = metrics(controller.port).await?;
    let cpu = cpu_seconds(pid) - cpu_before;
    let resyncs = WINDOW.as_secs_f64() / RESYNC.as_secs_f64();
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!(
            "steady state: Nomad writes in {}s ({resyncs:.0} full resyncs)",
            WINDOW.as_secs()
        ),
        value: delta("nomarch_api_writes_total{api=\"nomad\"}"),
        unit: "writes",
        floor: None,
    });
    figures.push(Figure {
        scenario: SCENARIO,
        name: "steady state: controller CPU per full resync".into(),
        value: cpu / resyncs,
        unit: "core-s",
        floor: None,
    });
    let minutes = WINDOW.as_secs_f64() / 60.0;
    for api in ["nomad", "consul"] {
        figures.push(Figure {
            scenario: SCENARIO,
            name: format!("steady state: {api} requests per object per minute"),
            value: delta(&format!("nomarch_api_requests_total{{api=\"{api}\"}}"))
                / total as f64
                / minutes,
            unit: "req",
            floor: None,
        });
    }
    figures.push(Figure {
        scenario: SCENARIO,
        name: "controller memory peak (VmHWM)".into(),
        value: memory_mb(pid).1,
        unit: "MB",
        floor: None,
    });

    // A rolling restart over the converged cluster: the old controller stops gracefully (and
    // gives its lease up), the new one leads.
    let mut controller = controller;
    controller.stop();
    let restarted = Instant::now();
    let mut controller = ControllerProcess::start(&nomarch, &etcd.endpoint(), PREFIX, &sim, &flags);
    controller.wait_leading();
    figures.push(Figure {
        scenario: SCENARIO,
        name: "restart: leading, ready to reconcile".into(),
        value: restarted.elapsed().as_secs_f64(),
        unit: "s",
        floor: None,
    });
    // Until as many reconciles finished as there are objects (the queue holds requeues for
    // later, so its depth never reaches zero).
    loop {
        let m = metrics(controller.port).await?;
        if metric(&m, "nomarch_reconciles_total") >= total as f64 {
            break;
        }
        if restarted.elapsed() > Duration::from_secs(300) {
            bail!("the restarted controller never caught up");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    figures.push(Figure {
        scenario: SCENARIO,
        name: "restart: every object reconciled once".into(),
        value: restarted.elapsed().as_secs_f64(),
        unit: "s",
        floor: None,
    });
    let m = metrics(controller.port).await?;
    figures.push(Figure {
        scenario: SCENARIO,
        name: "restart: Nomad writes".into(),
        value: metric(&m, "nomarch_api_writes_total{api=\"nomad\"}"),
        unit: "writes",
        floor: None,
    });
    Ok(curve)
}
