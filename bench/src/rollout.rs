//! `rollout`: 20 Apps of 10 instances, `maxParallel: 2`, a short `minHealthyTime`; one image
//! change to all of them through `nomarch apply --wait`.
//!
//! - From the apply until every deployment is successful, against two floors: the one Nomad's
//!   pacing sets in theory, batches × (start delay + min healthy time), and the same change
//!   registered straight to nomad-sim (no nomarch), measured in the same run: the first ratio
//!   says how close the whole path comes to the theory, the second what nomarch adds.
//! - How long `--wait` takes to say an App succeeded after Nomad reported its deployment
//!   successful (the Deployment event stream's timestamp, taken as it arrives).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::clients::nomad_types::Job;
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
                "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web-{i:02}\nspec:\n  image: {image}\n  replicas: {INSTANCES}\n  resources: {{cpu: 50, memory: 32}}\n  update:\n    maxParallel: {MAX_PARALLEL}\n    minHealthyTime: {MIN_HEALTHY_MS}ms\n    healthyDeadline: 30s\n"
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
    // `nomarch apply -f - --wait` of every App with this image, running.
    let apply_and_wait = |image: &str| -> anyhow::Result<std::process::Child> {
        let mut child = Command::new(binary("nomarch", "controller"))
            .env("NOMARCH_ETCD_ENDPOINTS", etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .args(["apply", "-f", "-", "--wait", "--timeout", "5m"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(apps(image).as_bytes())?;
        Ok(child)
    };

    // Version 0 of every App, rolled out before anything is measured.
    let status = apply_and_wait("web:1")?.wait()?;
    if !status.success() {
        bail!(
            "the first rollout did not succeed: {status}\n{}",
            controller.process.log_text()
        );
    }

    let nomad = NomadClient::new(&sim.nomad_url(), None);
    let direct_s = direct_floor(&nomad).await?;
    let mut successes = Successes::follow(&nomad, 1).await?;

    let applied = Instant::now();
    let mut second = apply_and_wait("web:2")?;
    let stdout = second.stdout.take().context("stdout")?;
    let lines = tokio::task::spawn_blocking(move || {
        let mut said = BTreeMap::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // "app/web-07: succeeded: rolled out (job version 1) (4s)"
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
    let succeeded = successes.all("web-").await?;
    let all_done = succeeded
        .values()
        .max()
        .copied()
        .context("no deployments")?;
    let took = (all_done - applied).as_secs_f64();
    let batches = INSTANCES.div_ceil(MAX_PARALLEL) as f64;
    let floor_s = batches * (START_DELAY_MS + MIN_HEALTHY_MS) as f64 / 1000.0;
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!(
            "apply → {APPS} Apps × {INSTANCES} rolled out (maxParallel {MAX_PARALLEL}; floor: batches × (start delay + min healthy))"
        ),
        value: took,
        unit: "s",
        floor: Some(floor_s),
    });
    figures.push(Figure {
        scenario: SCENARIO,
        name: "the same, against registering straight to nomad-sim".into(),
        value: took,
        unit: "s",
        floor: Some(direct_s),
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

/// Deployments turning successful, as the event stream tells it, timestamped on arrival.
struct Successes {
    receiver: tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Successes {
    /// From now on, the successes of deployments of `job_version`.
    async fn follow(nomad: &NomadClient, job_version: u64) -> anyhow::Result<Successes> {
        let index = nomad.jobs(QueryOptions::default()).await?.index;
        let mut stream = nomad
            .event_stream(&["Deployment"], "default", index + 1)
            .await?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let now = Instant::now();
                for event in &frame.events {
                    let deployment = &event.payload["Deployment"];
                    if deployment["Status"] == "successful"
                        && deployment["JobVersion"] == job_version
                    {
                        let job = deployment["JobID"].as_str().unwrap_or_default();
                        let _ = sender.send((job.to_string(), now));
                    }
                }
            }
        });
        Ok(Successes { receiver, watcher })
    }

    /// When each of the `APPS` jobs named `prefix`NN succeeded.
    async fn all(&mut self, prefix: &str) -> anyhow::Result<BTreeMap<String, Instant>> {
        let mut succeeded = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while succeeded.len() < APPS {
            let (job, at) = tokio::time::timeout_at(deadline, self.receiver.recv())
                .await
                .context("every deployment's success on the stream")?
                .context("stream ended")?;
            if job.starts_with(prefix) {
                succeeded.entry(job).or_insert(at);
            }
        }
        self.watcher.abort();
        Ok(succeeded)
    }
}

/// The rendered jobs of `direct-NN` Apps, to register straight to nomad-sim, without nomarch's
/// meta (so the controller leaves them alone).
fn direct_jobs(image: &str) -> anyhow::Result<Vec<Job>> {
    crate::direct::unmanaged_jobs(&apps(image).replace("name: web-", "name: direct-"))
}

/// The same rollout with nomarch out of the path: version 0, then the image change, registered
/// straight to nomad-sim; from the registers until every deployment succeeded.
async fn direct_floor(nomad: &NomadClient) -> anyhow::Result<f64> {
    let mut first = Successes::follow(nomad, 0).await?;
    for job in direct_jobs("web:1")? {
        nomad.register(&job, None).await?;
    }
    first.all("direct-").await?;
    let mut second = Successes::follow(nomad, 1).await?;
    let registered = Instant::now();
    for job in direct_jobs("web:2")? {
        nomad.register(&job, None).await?;
    }
    let succeeded = second.all("direct-").await?;
    let all_done = succeeded
        .values()
        .max()
        .copied()
        .context("no deployments")?;
    Ok((all_done - registered).as_secs_f64())
}
