//! `stop-start`: 50 Apps of 2 instances. `nomarch stop` of all of them in one command, until no
//! instance of theirs runs; then `nomarch start`, until every instance runs again and Nomad's
//! health tracker calls it healthy. The floor of each is the same Nomad calls made directly in
//! the same run: 50 jobs registered with `Stop`, then without.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::clients::NomadClient;
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};
use serde_json::Value;

use crate::figures::Figure;

const SCENARIO: &str = "stop-start";
const PREFIX: &str = "/bench/";
const APPS: usize = 50;
const INSTANCES: usize = 2;
/// How often Nomad's allocations are read while waiting for a state.
const POLL: Duration = Duration::from_millis(25);

fn apps(prefix: &str) -> String {
    (0..APPS)
        .map(|i| {
            format!(
                "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {prefix}-{i:02}\nspec:\n  image: web:1\n  replicas: {INSTANCES}\n  resources: {{cpu: 50, memory: 32}}\n  update:\n    maxParallel: 2\n    minHealthyTime: 500ms\n    healthyDeadline: 30s\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// What the allocations of jobs named `prefix`-NN say.
struct Count {
    running: usize,
    healthy: usize,
}

async fn count(http: &reqwest::Client, nomad: &str, prefix: &str) -> anyhow::Result<Count> {
    let allocs: Vec<Value> = http
        .get(format!("{nomad}/v1/allocations"))
        .send()
        .await?
        .json()
        .await?;
    let running: Vec<&Value> = allocs
        .iter()
        .filter(|a| {
            a["JobID"]
                .as_str()
                .is_some_and(|j| j.starts_with(&format!("{prefix}-")))
                && a["ClientStatus"] == "running"
                && a["DesiredStatus"] == "run"
        })
        .collect();
    let healthy = running
        .iter()
        .filter(|a| a["DeploymentStatus"]["Healthy"] == true)
        .count();
    Ok(Count {
        running: running.len(),
        healthy,
    })
}

/// From `since` until the allocations satisfy `done`.
async fn until(
    http: &reqwest::Client,
    nomad: &str,
    prefix: &str,
    since: Instant,
    what: &str,
    done: impl Fn(&Count) -> bool,
) -> anyhow::Result<f64> {
    let deadline = since + Duration::from_secs(180);
    loop {
        if done(&count(http, nomad, prefix).await?) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            bail!("{prefix}: never {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn nothing_runs(c: &Count) -> bool {
    c.running == 0
}

fn all_healthy(c: &Count) -> bool {
    c.healthy == APPS * INSTANCES
}

/// `nomarch ARGS` with these Apps, to completion.
fn nomarch(etcd: &TestEtcd, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let mut child = Command::new(binary("nomarch", "controller"))
        .env("NOMARCH_ETCD_ENDPOINTS", etcd.endpoint())
        .env("NOMARCH_PREFIX", PREFIX)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut pipe = child.stdin.take().context("stdin")?;
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes())?;
    }
    drop(pipe);
    let status = child.wait()?;
    if !status.success() {
        bail!("nomarch {args:?}: {status}");
    }
    Ok(())
}

pub async fn run(figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let etcd = TestEtcd::start();
    let sim = SimProcess::start(&["--nodes", "10", "--start-delay", "200ms"]);
    let _controller = ControllerProcess::start(
        &binary("nomarch", "controller"),
        &etcd.endpoint(),
        PREFIX,
        &sim,
        &[],
    );
    let http = reqwest::Client::new();
    let nomad_url = sim.nomad_url();
    nomarch(
        &etcd,
        &["apply", "-f", "-", "--wait", "--timeout", "5m"],
        Some(&apps("web")),
    )?;

    let (direct_stop, direct_start) = direct_floor(&http, &nomad_url).await?;

    let objects: Vec<String> = (0..APPS).map(|i| format!("app/web-{i:02}")).collect();
    let with = |verb: &str| -> Vec<String> {
        let mut args = vec![verb.to_string()];
        args.extend(objects.iter().cloned());
        args.push("--no-wait".into());
        args
    };
    let stop_args = with("stop");
    let started = Instant::now();
    nomarch(
        &etcd,
        &stop_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    )?;
    let stopped = until(&http, &nomad_url, "web", started, "stopped", nothing_runs).await?;
    let start_args = with("start");
    let started = Instant::now();
    nomarch(
        &etcd,
        &start_args.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    )?;
    let healthy = until(&http, &nomad_url, "web", started, "healthy", all_healthy).await?;
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!("nomarch stop of {APPS} Apps × {INSTANCES} → no instance runs (floor: the jobs registered with Stop directly)"),
        value: stopped,
        unit: "s",
        floor: Some(direct_stop),
    });
    figures.push(Figure {
        scenario: SCENARIO,
        name: format!(
            "nomarch start → all {} instances healthy (floor: registered without Stop directly)",
            APPS * INSTANCES
        ),
        value: healthy,
        unit: "s",
        floor: Some(direct_start),
    });
    Ok(())
}

/// The same Apps' jobs, without nomarch's meta (so the controller leaves them alone), registered
/// straight to nomad-sim: running and healthy first, then stopped, then started, each timed.
async fn direct_floor(http: &reqwest::Client, nomad_url: &str) -> anyhow::Result<(f64, f64)> {
    let nomad = NomadClient::new(nomad_url, None);
    let jobs = crate::direct::unmanaged_jobs(&apps("direct"))?;
    let register_all = |stop: bool| {
        let nomad = &nomad;
        let jobs = &jobs;
        async move {
            for job in jobs {
                let mut job = job.clone();
                job.stop = stop.then_some(true);
                nomad.register(&job, None).await?;
            }
            anyhow::Ok(())
        }
    };
    register_all(false).await?;
    until(
        http,
        nomad_url,
        "direct",
        Instant::now(),
        "healthy",
        all_healthy,
    )
    .await?;
    let started = Instant::now();
    register_all(true).await?;
    let stopped = until(http, nomad_url, "direct", started, "stopped", nothing_runs).await?;
    let started = Instant::now();
    register_all(false).await?;
    let healthy = until(http, nomad_url, "direct", started, "healthy", all_healthy).await?;
    Ok((stopped, healthy))
}
