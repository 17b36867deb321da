//! nomad-sim at scale: 1,000 nodes and 20,000 allocations. Registration throughput, time until
//! everything runs, request latency at that size, and the simulator's memory.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::figures::{latencies, p50_p99, percentile, Figure};
use crate::Args;

struct Sim {
    child: Child,
    nomad: String,
    consul: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(nodes: usize) -> anyhow::Result<Sim> {
    let binary = e2e::procs::binary("nomad-sim", "nomad-sim");
    let (nomad_port, consul_port) = (e2e::ports::free_port(), e2e::ports::free_port());
    let child = Command::new(&binary)
        .args([
            "--nodes",
            &nodes.to_string(),
            "--node-cpu",
            "40000",
            "--node-memory",
            "131072",
            "--start-delay",
            "0s",
        ])
        .args([
            "--nomad-addr",
            &format!("127.0.0.1:{nomad_port}"),
            "--consul-addr",
            &format!("127.0.0.1:{consul_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with `cargo build --release -p e2e`)",
                binary.display()
            )
        })?;
    Ok(Sim {
        child,
        nomad: format!("http://127.0.0.1:{nomad_port}"),
        consul: format!("http://127.0.0.1:{consul_port}"),
    })
}

fn bench_job(i: usize) -> Value {
    json!({"Job": {
        "ID": format!("job-{i:05}"),
        "Type": "service",
        "Meta": {"nomarch.io/managed-by": "bench"},
        "TaskGroups": [{
            "Name": "web",
            "Count": 10,
            "Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080}]}],
            "Services": [{"Name": format!("svc-{i}"), "PortLabel": "http", "Checks": [{"Name": "alive", "Type": "http", "Path": "/"}]}],
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx"}, "Resources": {"CPU": 100, "MemoryMB": 128}}],
        }],
    }})
}

async fn get_ok(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let response = http.get(url).send().await?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    Ok(response.json().await?)
}

pub async fn run(args: &Args, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    const SCENARIO: &str = "sim-scale";
    let sim = start_sim(args.nodes)?;
    let http = e2e::http::client();
    let leader = format!("{}/v1/status/leader", sim.nomad);
    let started = Instant::now();
    while get_ok(&http, &leader).await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("nomad-sim did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let floor_times = latencies(args.samples, |_| async {
        get_ok(&http, &leader).await.map(|_| ())
    })
    .await?;
    let floor = percentile(&floor_times, 0.5);
    figures.push(Figure {
        scenario: SCENARIO,
        name: "floor: GET /v1/status/leader p50".into(),
        value: floor,
        unit: "ms",
        floor: None,
    });

    // Register every job, 8 at a time.
    let jobs = args.allocs.div_ceil(10);
    let register_started = Instant::now();
    let register_times: Vec<f64> = futures::stream::iter(0..jobs)
        .map(|i| {
            let http = http.clone();
            let url = format!("{}/v1/jobs", sim.nomad);
            async move {
                let started = Instant::now();
                let response = http.put(url).json(&bench_job(i)).send().await?;
                if !response.status().is_success() {
                    bail!("register job {i}: {}", response.status());
                }
                Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let register_elapsed = register_started.elapsed().as_secs_f64();
    let mut register_sorted = register_times;
    register_sorted.sort_by(f64::total_cmp);
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("register {jobs} jobs: throughput"),
        value: jobs as f64 / register_elapsed,
        unit: "jobs/s",
        floor: None,
    });
    figures.extend(p50_p99(
        SCENARIO,
        |p| format!("register {p} (8 concurrent)"),
        &register_sorted,
        (floor, floor),
    ));

    // Wait until every allocation runs.
    let running_target = jobs * 10;
    loop {
        let stubs = get_ok(&http, &format!("{}/v1/jobs", sim.nomad)).await?;
        let running: u64 = stubs
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| {
                j["JobSummary"]["Summary"]["web"]["Running"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .sum();
        if running as usize >= running_target {
            break;
        }
        if register_started.elapsed() > Duration::from_secs(600) {
            bail!("only {running} of {running_target} allocations running after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("{running_target} allocations running after first register"),
        value: register_started.elapsed().as_secs_f64(),
        unit: "s",
        floor: None,
    });
    let (rss, peak) = crate::figures::memory_mb(sim.child.id());
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!(
            "memory at {} nodes / {running_target} allocs (RSS)",
            args.nodes
        ),
        value: rss,
        unit: "MB",
        floor: None,
    });
    figures.push(Figure {
        scenario: SCENARIO,
        name: "memory peak (VmHWM)".into(),
        value: peak,
        unit: "MB",
        floor: None,
    });

    // A node that holds allocations, not an empty one.
    let allocs = get_ok(
        &http,
        &format!("{}/v1/job/job-00042/allocations", sim.nomad),
    )
    .await?;
    let node_id = allocs[0]["NodeID"].as_str().unwrap_or_default().to_string();
    let reads: Vec<(String, String)> = vec![
        (
            "GET /v1/job/:id".into(),
            format!("{}/v1/job/job-00042", sim.nomad),
        ),
        (
            "GET /v1/job/:id/allocations".into(),
            format!("{}/v1/job/job-00042/allocations", sim.nomad),
        ),
        (
            "GET /v1/node/:id/allocations".into(),
            format!("{}/v1/node/{node_id}/allocations", sim.nomad),
        ),
        (
            "GET /v1/jobs?prefix= (one job)".into(),
            format!("{}/v1/jobs?prefix=job-00042", sim.nomad),
        ),
        (
            "GET consul /v1/health/service/:name?passing".into(),
            format!("{}/v1/health/service/svc-42?passing", sim.consul),
        ),
    ];
    for (name, url) in reads {
        let times = latencies(args.samples, |_| async {
            get_ok(&http, &url).await.map(|_| ())
        })
        .await?;
        figures.extend(p50_p99(
            SCENARIO,
            |p| format!("{name} {p}"),
            &times,
            (floor, floor),
        ));
    }
    let register_url = format!("{}/v1/jobs", sim.nomad);
    let times = latencies(args.samples, |i| {
        let (http, url) = (http.clone(), register_url.clone());
        async move {
            let response = http.put(url).json(&bench_job(i % jobs)).send().await?;
            if !response.status().is_success() {
                bail!("re-register: {}", response.status());
            }
            Ok(())
        }
    })
    .await?;
    figures.extend(p50_p99(
        SCENARIO,
        |p| format!("re-register unchanged job {p}"),
        &times,
        (floor, floor),
    ));
    Ok(())
}
