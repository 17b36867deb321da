//! `make bench`: measures, never asserts. Each scenario reports its figures next to a floor
//! measured in the same run, as a ratio, because these machines are shared and noisy.
//!
//! # Layout
//! - [`figures`]: figures, percentiles, timing; [`direct`]: jobs for floors without nomarch.
//! - [`sim_scale`]: nomad-sim at 1,000 nodes and 20,000 allocations.
//! - [`apply_latency`]: `apply` → job registered, through etcd, the controller and nomad-sim;
//!   it also measures the floor the other nomarch scenarios are compared with.
//! - [`healing`]: pubs off a dead hub, and allocations healed after their grace.
//! - [`rollout`]: 20 Apps × 10 instances rolled out through `apply --wait`, against Nomad's
//!   own pacing; how soon `--wait` notices success.
//! - [`stop_start`]: 50 Apps stopped and started through `nomarch stop`/`start`, against the
//!   same Nomad calls made directly.
//! - [`git_sync`]: `git push` → 100, 500, 1,000 Apps converged, and the controller's peak memory.
//! - [`scale`]: 10,000 Apps + 1,000 Pubs + 1,000 CronJobs on 1,000 nodes: cold start, steady
//!   state (writes, CPU, requests per object), restart.
//! - [`dashboard`]: the dashboard's overview and App list with 12,000 objects in headless
//!   Chromium, and an event from etcd to an open page, each against the same with 10 objects.
//! - [`parse`]: one manifest file of 1,000 and 8,000 Apps, against the bare YAML scanner.
//! - [`plot`]: the SVG next to the table (latency CDF, convergence curve).

mod apply_latency;
mod dashboard;
mod direct;
mod figures;
mod git_sync;
mod healing;
mod parse;
mod plot;
mod rollout;
mod scale;
mod sim_scale;
mod stop_start;

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use serde_json::json;

use figures::Figure;

#[derive(Parser)]
#[command(about = "nomarch benchmarks (figures as ratios to a floor measured in the same run)")]
pub struct Args {
    /// Client nodes in the simulated cluster
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Allocations to place (jobs of 10)
    #[arg(long, default_value_t = 20_000)]
    pub allocs: usize,
    /// Samples per latency figure
    #[arg(long, default_value_t = 300)]
    pub samples: usize,
    /// Updates measured by the apply-latency scenario
    #[arg(long, default_value_t = 1000)]
    pub updates: usize,
    /// Pubs in the hub-death scenario
    #[arg(long, default_value_t = 1000)]
    pub pubs: usize,
    /// Heals measured by the heal scenario
    #[arg(long, default_value_t = 5)]
    pub heals: usize,
    /// Apps in the scale scenario (Pubs and CronJobs are a tenth each): the target size
    #[arg(long, default_value_t = 10_000)]
    pub scale_apps: usize,
    /// App counts of the git-sync scenario
    #[arg(
        long = "git-apps",
        value_delimiter = ',',
        default_value = "100,500,1000"
    )]
    pub git_apps: Vec<usize>,
    /// Run only these scenarios (apply-latency, hub-death, heal, rollout, stop-start, git-sync,
    /// scale, sim-scale, dashboard, parse); all by default
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// Where to write the JSON results
    #[arg(long, default_value = "bench/results.json")]
    pub out: PathBuf,
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{} {cores} cores, {memory:.0} GiB", std::env::consts::ARCH)
}

fn report(figures: &[Figure], out: &PathBuf) -> anyhow::Result<()> {
    let commit = git_commit();
    let machine = machine();
    println!("\n| scenario | figure | value | floor | ratio |\n|---|---|---|---|---|");
    for f in figures {
        let floor = f.floor.map_or("".into(), |v| format!("{v:.2} {}", f.unit));
        let ratio = f.ratio().map_or("".into(), |r| format!("{r:.1}x"));
        println!(
            "| {} | {} | {:.2} {} | {floor} | {ratio} |",
            f.scenario, f.name, f.value, f.unit
        );
    }
    println!("\ncommit {commit}, machine {machine}");
    let results = json!({
        "commit": commit,
        "machine": machine,
        "figures": figures.iter().map(|f| json!({"scenario": f.scenario, "figure": f.name, "value": f.value, "unit": f.unit, "floor": f.floor, "ratio": f.ratio()})).collect::<Vec<_>>(),
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("written to {}", out.display());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    e2e::http::install_tls();
    let args = Args::parse();
    let wanted = |name: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name);
    let mut figures = Vec::new();
    let mut plot = plot::PlotData::default();
    // The floor comes from apply-latency, so it runs whenever a nomarch scenario does.
    if wanted("apply-latency") || wanted("hub-death") || wanted("heal") {
        let (floor, latencies) = apply_latency::run(&args, &mut figures).await?;
        plot.latencies = Some((latencies, floor.0));
        if wanted("hub-death") {
            healing::hub_death(&args, floor, &mut figures).await?;
        }
        if wanted("heal") {
            healing::heal(&args, floor, &mut figures).await?;
        }
    }
    if wanted("rollout") {
        rollout::run(&mut figures).await?;
    }
    if wanted("stop-start") {
        stop_start::run(&mut figures).await?;
    }
    if wanted("git-sync") {
        git_sync::run(&args, &mut figures).await?;
    }
    if wanted("scale") {
        let curve = scale::run(&args, &mut figures).await?;
        let total = args.scale_apps + 2 * (args.scale_apps / 10);
        plot.convergence = Some((curve, total));
    }
    if wanted("dashboard") {
        dashboard::run(&mut figures).await?;
    }
    if wanted("sim-scale") {
        sim_scale::run(&args, &mut figures).await?;
    }
    if wanted("parse") {
        parse::run(&mut figures)?;
    }
    let svg = args.out.with_extension("svg");
    plot::write(
        &svg,
        &plot,
        &format!("nomarch {} on {}", git_commit(), machine()),
    )?;
    println!("plot written to {}", svg.display());
    report(&figures, &args.out)
}
