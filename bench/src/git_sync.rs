//! `git push` → every App converged, for 100, 500 and 1,000 Apps (one file each), with the
//! controller's peak memory: the shape of Flux's published scaling benchmark, so the two can be
//! read side by side. The floor is the same Apps written to etcd directly (`nomarch apply`'s
//! path) and converged, measured in the same run on a fresh cluster: the ratio is what the git
//! path (fetch, parse, validate, plan, one changeset) adds.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::store::Store;
use crds::{Kind, Resource};
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::figures::Figure;
use crate::Args;

const SCENARIO: &str = "git-sync";
const PREFIX: &str = "/bench/";
const SECRET: &str = "bench-webhook-secret";

fn app_text(i: usize) -> String {
    format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: app-{i:04}\nspec:\n  image: bench/app:{i}\n  replicas: 1\n  resources:\n    cpu: 10\n    memory: 16\n")
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@nomarch.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@nomarch.invalid")
        .args(args)
        .output()?;
    if !output.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// A cluster with room for a thousand small Apps, etcd and a controller.
struct Rig {
    _etcd: TestEtcd,
    sim: SimProcess,
    controller: ControllerProcess,
    store: Store,
    _cache: tempfile::TempDir,
}

async fn rig() -> anyhow::Result<Rig> {
    let etcd = TestEtcd::start();
    let sim = SimProcess::start(&[
        "--nodes",
        "50",
        "--node-memory",
        "32768",
        "--node-cpu",
        "64000",
        "--start-delay",
        "0s",
    ]);
    let cache = tempfile::tempdir()?;
    let controller = ControllerProcess::start(
        &binary("nomarch", "controller"),
        &etcd.endpoint(),
        PREFIX,
        &sim,
        &["--git-cache", cache.path().to_str().context("utf-8 path")?],
    );
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await?;
    Ok(Rig {
        _etcd: etcd,
        sim,
        controller,
        store,
        _cache: cache,
    })
}

/// Waits until `count` Apps exist and every one is Ready at its generation.
async fn converged(rig: &Rig, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (apps, _) = rig.store.list(Some(Kind::App)).await?;
        let ready = apps
            .iter()
            .filter(|a| {
                a.status().is_some_and(|s| {
                    s.observed_generation == Some(a.metadata().generation)
                        && s.is_true(crds::ConditionType::Ready)
                })
            })
            .count();
        if apps.len() == count && ready == count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{ready}/{count} Apps ready after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `apply` of `count` Apps straight into etcd → converged, in ms (the floor).
async fn direct(count: usize) -> anyhow::Result<f64> {
    let rig = rig().await?;
    let apps: Vec<Resource> = (0..count)
        .map(|i| {
            crds::parse_str("bench.yaml", &app_text(i))
                .map(|mut m| m.remove(0).resource)
                .map_err(|e| anyhow::anyhow!("{e:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    rig.store.apply(&apps).await?;
    converged(&rig, count).await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// `git push` of `count` App files, announced by a signed webhook → converged: (ms, peak MB).
async fn pushed(count: usize) -> anyhow::Result<(f64, f64)> {
    let rig = rig().await?;
    let repo = tempfile::tempdir()?;
    let (bare, work) = (repo.path().join("state.git"), repo.path().join("work"));
    git(
        repo.path(),
        &["init", "-q", "--bare", "-b", "main", "state.git"],
    )?;
    git(repo.path(), &["clone", "-q", "state.git", "work"])?;
    git(&work, &["checkout", "-q", "-b", "main"])?;
    std::fs::write(work.join("README.md"), "bench state repo\n")?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", "empty"])?;
    git(&work, &["push", "-q", "origin", "main"])?;

    let nomad = e2e::http::client();
    nomad
        .put(format!("{}/v1/var/bench/hook", rig.sim.nomad_url()))
        .json(&serde_json::json!({"Path": "bench/hook", "Items": {"secret": SECRET}}))
        .send()
        .await?
        .error_for_status()?;
    let source = format!("apiVersion: nomarch.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: state\nspec:\n  url: file://{}\n  interval: 1h\n  prune: true\n  webhookSecretRef:\n    name: bench/hook\n    key: secret\n", bare.display());
    let source = crds::parse_str("source.yaml", &source)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .remove(0)
        .resource;
    rig.store.apply(&[source]).await?;
    // The empty commit is synced before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rig
        .store
        .list(Some(Kind::GitSource))
        .await?
        .0
        .iter()
        .any(|s| {
            s.status()
                .is_some_and(|s| s.git.last_applied_commit.is_some())
        })
    {
        if Instant::now() > deadline {
            bail!(
                "the source never synced:\n{}",
                rig.controller.process.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::create_dir_all(work.join("apps"))?;
    for i in 0..count {
        std::fs::write(work.join(format!("apps/app-{i:04}.yaml")), app_text(i))?;
    }
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", "apps"])?;
    let started = Instant::now();
    git(&work, &["push", "-q", "origin", "main"])?;
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let url = format!(
        "http://127.0.0.1:{}/api/v1/webhooks/git/state",
        rig.controller.port
    );
    let status = nomad
        .post(url)
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await?
        .status();
    if status.as_u16() != 202 {
        bail!("the webhook answered {status}");
    }
    converged(&rig, count).await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    Ok((
        elapsed,
        crate::figures::memory_mb(rig.controller.process.pid()).1,
    ))
}

pub async fn run(args: &Args, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    for &count in &args.git_apps {
        let floor = direct(count).await?;
        let (elapsed, peak) = pushed(count).await?;
        figures.push(Figure {
            scenario: SCENARIO,
            name: format!("git push → {count} Apps converged"),
            value: elapsed,
            unit: "ms",
            floor: Some(floor),
        });
        figures.push(Figure {
            scenario: SCENARIO,
            name: format!("controller peak RSS, {count} Apps"),
            value: peak,
            unit: "MB",
            floor: None,
        });
    }
    Ok(())
}
