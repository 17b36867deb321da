//! `rollout`: 20 Apps of 10 instances, `maxParallel: 2`, a short `minHealthyTime`; one image
//! change to all of them through `nomarch apply --wait`.
//!
//! - From the apply until every deployment is successful, against the floor Nomad's own pacing
//!   sets: batches × (start delay + min healthy time), the time a rollout takes when nothing
//!   waits on anything else.
//! - How long `--wait` takes to say an App succeeded after Nomad reported its deployment
//!   successful (the Deployment event stream's timestamp, taken as it arrives).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::clients::{NomadClient, QueryOptions};
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};
use futures::StreamExt;

use crate::figures::{percentile, Figure};

const SCENARIO: &str = "rollout";
const PREFIX: &str = "/bench/";
const APPS: usize = 20;
const INSTANCES: usize = 10;
const MAX_PARALLEL: usize = 2;
const START_DELAY_MS: u64 = 200;
const MIN_HEALTHY_MS: u64 = 500;

fn apps(image: &str) -> String {
    (0..APPS)
        .map(|i| {
            format!(
                "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: roll-{i:02}\nspec:\n  image: {image}\n  replicas: {INSTANCES}\n  resources: {{cpu: 50, memory: 32}}\n  update:\n    maxParallel: {MAX_PARALLEL}\n    minHealthyTime: {MIN_HEALTHY_MS}ms\n    healthyDeadline: 30s\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

pub async fn run(figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let etcd = TestEtcd::start();
    let start_delay = format!("{START_DELAY_MS}ms");
    let sim = SimProcess::start(&["--nodes", "10", "--start-delay", &start_delay]);
    let controller = ControllerProcess::start(
        &binary("nomarch", "controller"),
        &etcd.endpoint(),
        PREFIX,
        &sim,
        &[],
    );
    let nomarch = |args: &[&str]| {
        let mut command = Command::new(binary("nomarch", "controller"));
        command
            .env("NOMARCH_ETCD_ENDPOINTS", etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command
    };
    let wait = ["apply", "-f", "-", "--wait", "--timeout", "5m"];

    // Version 0 of every App, rolled out before anything is measured.
    let mut first = nomarch(&wait).spawn()?;
    first
        .stdin
        .take()
        .context("stdin")?
        .write_all(apps("web:1").as_bytes())?;
    let status = first.wait()?;
    if !status.success() {
        bail!(
            "the first rollout did not succeed: {status}\n{}",
            controller.process.log_text()
        );
    }

    let nomad = NomadClient::new(&sim.nomad_url(), None);
    let index = nomad.jobs(QueryOptions::default()).await?.index;
    let mut stream = nomad
        .event_stream(&["Deployment"], "default", index + 1)
        .await?;
    let (succeeded_tx, mut succeeded_rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let now = Instant::now();
            for event in &frame.events {
                let deployment = &event.payload["Deployment"];
                if deployment["Status"] == "successful" && deployment["JobVersion"] == 1 {
                    let job = deployment["JobID"].as_str().unwrap_or_default().to_string();
                    let _ = succeeded_tx.send((job, now));
                }
            }
        }
    });

    let applied = Instant::now();
    let mut second = nomarch(&wait).spawn()?;
    second
        .stdin
        .take()
        .context("stdin")?
        .write_all(apps("web:2").as_bytes())?;
    let stdout = second.stdout.take().context("stdout")?;
    let lines = tokio::task::spawn_blocking(move || {
        let mut said = BTreeMap::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // "app/roll-07: succeeded: rolled out (job version 1) (4s)"
            if let Some((object, rest)) = line.split_once(": ") {
                if rest.starts_with("succeeded") {
                    said.insert(
                        object.trim_start_matches("app/").to_string(),
                        Instant::now(),
                    );
                }
            }
        }
        said
    });
    let status = tokio::task::spawn_blocking(move || second.wait()).await??;
    let said = lines.await?;
    if !status.success() {
        bail!("the rollout did not succeed: {status}");
    }
    let mut succeeded = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while succeeded.len() < APPS {
        let (job, at) = tokio::time::timeout_at(deadline, succeeded_rx.recv())
            .await
            .context("every deployment's success on the stream")?
            .context("stream ended")?;
        succeeded.entry(job).or_insert(at);
    }
    watcher.abort();
    let all_done = succeeded
        .values()
        .max()
        .copied()
        .context("no deployments")?;
    let batches = INSTANCES.div_ceil(MAX_PARALLEL) as f64;
    let floor_s = batches * (START_DELAY_MS + MIN_HEALTHY_MS) as f64 / 1000.0;
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!(
            "apply → {APPS} Apps × {INSTANCES} rolled out (maxParallel {MAX_PARALLEL}; floor: batches × (start delay + min healthy))"
        ),
        value: (all_done - applied).as_secs_f64(),
        unit: "s",
        floor: Some(floor_s),
    });
    let mut notice: Vec<f64> = succeeded
        .iter()
        .filter_map(|(job, at)| {
            let seen = said.get(job)?;
            Some(seen.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    if notice.len() < APPS {
        bail!("--wait said {} of {APPS} Apps succeeded", notice.len());
    }
    notice.sort_by(f64::total_cmp);
    for (label, p) in [("p50", 0.5), ("max", 1.0)] {
        figures.push(Figure {
            scenario: SCENARIO,
            name: format!("deployment successful → --wait says so, {label}"),
            value: percentile(&notice, p),
            unit: "ms",
            floor: None,
        });
    }
    Ok(())
}
