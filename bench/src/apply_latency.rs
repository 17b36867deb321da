//! `apply` → job registered: from the etcd write of a changed App to nomad-sim accepting the
//! controller's register, over many updates. The floor is what the path cannot beat: one etcd
//! put→watch plus one register call to nomad-sim, measured in the same run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use controller::clients::nomad_types::Job;
use controller::clients::{NomadClient, QueryOptions};
use controller::store::{Store, WatchEvent};
use crds::Resource;
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};
use futures::StreamExt;
use serde_json::json;

use crate::figures::{p50_p99, percentile, Figure};
use crate::Args;

const SCENARIO: &str = "apply-latency";
const PREFIX: &str = "/bench/";

fn app(tag: usize) -> Resource {
    let text = format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: bench-web\nspec:\n  image: bench/web:{tag}\n  replicas: 1\n");
    crds::parse_str("bench.yaml", &text)
        .expect("valid")
        .remove(0)
        .resource
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// etcd put → the watch delivers it, in milliseconds.
async fn put_watch_floor(store: &Store, samples: usize) -> anyhow::Result<Vec<f64>> {
    let (_, revision) = store.list_raw("/bench-floor/").await?;
    let mut watch = store.watch_prefix("/bench-floor/".into(), revision + 1);
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let object = app(i);
        let started = Instant::now();
        let mut renamed = object.clone();
        renamed.metadata_mut().name = format!("floor-{}", i % 10);
        // A raw put under the floor prefix, through the same client stack as the store.
        store
            .apply_raw(
                &format!("/bench-floor/{i}"),
                serde_json::to_vec(&renamed.to_json())?,
            )
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), watch.recv()).await {
                Ok(Some(Ok(WatchEvent::Put(_)))) => break,
                Ok(Some(_)) => continue,
                _ => bail!("the floor watch stalled"),
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(sorted(times))
}

/// One register call to nomad-sim, in milliseconds.
async fn register_floor(nomad: &NomadClient, samples: usize) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let job: Job = serde_json::from_value(json!({
            "ID": "floor", "Namespace": "default", "Type": "service",
            "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": format!("floor:{i}")}}]}],
        }))?;
        let started = Instant::now();
        nomad.register(&job, None).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(sorted(times))
}

/// Runs the scenario; returns the floor (p50, p99 in ms) for the scenarios that follow, and
/// the sorted latencies for the plot.
pub async fn run(args: &Args, figures: &mut Vec<Figure>) -> anyhow::Result<((f64, f64), Vec<f64>)> {
    let etcd = TestEtcd::start();
    // Stopped allocations are collected after 30 s, as an operator tuning Nomad's GC would.
    let sim = SimProcess::start(&["--start-delay", "0s", "--gc-threshold", "30s"]);
    let nomarch = binary("nomarch", "controller");
    let controller = ControllerProcess::start(&nomarch, &etcd.endpoint(), PREFIX, &sim, &[]);
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await?;
    let nomad = NomadClient::new(&sim.nomad_url(), None);

    let samples = args.samples.max(50);
    let watch = put_watch_floor(&store, samples).await?;
    let register = register_floor(&nomad, samples).await?;
    let floor_p50 = percentile(&watch, 0.5) + percentile(&register, 0.5);
    let floor_p99 = percentile(&watch, 0.99) + percentile(&register, 0.99);
    figures.push(Figure {
        scenario: SCENARIO,
        name: "floor: etcd put→watch + register, p50".into(),
        value: floor_p50,
        unit: "ms",
        floor: None,
    });
    figures.push(Figure {
        scenario: SCENARIO,
        name: "floor: etcd put→watch + register, p99".into(),
        value: floor_p99,
        unit: "ms",
        floor: None,
    });

    // The App exists and is registered before the clock starts.
    store.apply(&[app(0)]).await?;
    let first = Instant::now();
    while nomad
        .job("default", "bench-web", QueryOptions::default())
        .await?
        .value
        .is_none()
    {
        if first.elapsed() > Duration::from_secs(60) {
            bail!(
                "the controller never registered bench-web:\n{}",
                controller.process.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let index = nomad.jobs(QueryOptions::default()).await?.index;
    let mut events = nomad
        .event_stream(&["Job:bench-web"], "default", index + 1)
        .await?;
    let mut latencies = Vec::with_capacity(args.updates);
    let mut apply_times = Vec::with_capacity(args.updates);
    for tag in 1..=args.updates {
        let wanted = format!("bench/web:{tag}");
        let started = Instant::now();
        store.apply(&[app(tag)]).await?;
        apply_times.push(started.elapsed().as_secs_f64() * 1000.0);
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .context("no register within 30 s")?
                .context("event stream ended")??;
            let registered = frame.events.iter().any(|e| {
                e.event_type == "JobRegistered"
                    && e.payload["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
                        == wanted.as_str()
            });
            if registered {
                break;
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let latencies = sorted(latencies);
    let apply_times = sorted(apply_times);
    figures.push(Figure {
        scenario: SCENARIO,
        name: "of which the etcd apply itself, p50".into(),
        value: percentile(&apply_times, 0.5),
        unit: "ms",
        floor: None,
    });
    let updates = args.updates;
    figures.extend(p50_p99(
        SCENARIO,
        |p| format!("apply → registered {p} ({updates} updates)"),
        &latencies,
        (floor_p50, floor_p99),
    ));
    drop(controller);
    Ok(((floor_p50, floor_p99), latencies))
}
