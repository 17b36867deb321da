//! Correctness at size: 1,000 Apps on 100 nodes, against real etcd, nomad-sim and the
//! controller. Every App becomes Ready, each has exactly one job, and resyncs of the converged
//! cluster (and a controller restart over it) write nothing to Nomad. Timing is the
//! benchmark's business (`make bench`); nothing here is timed.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use e2e::procs::ControllerProcess;
use serde_json::Value;
use support::{eventually_within, nomarch_bin, World, PREFIX};

const APPS: usize = 1000;

fn manifests() -> String {
    (0..APPS)
        .map(|i| {
            format!("---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: app-{i:04}\nspec:\n  image: bench/app:{i}\n  replicas: 1\n  resources:\n    cpu: 10\n    memory: 16\n")
        })
        .collect()
}

fn ready_count(world: &World) -> usize {
    let output = world.nomarch(&["get", "apps", "-o", "json"], None);
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|app| {
            app["status"]["observedGeneration"] == app["metadata"]["generation"]
                && app["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .count()
}

#[test]
fn a_thousand_apps_converge_with_one_job_each_and_resyncs_write_nothing() {
    let mut world = World::without_controller(&[
        "--nodes",
        "100",
        "--node-memory",
        "32768",
        "--node-cpu",
        "64000",
        "--start-delay",
        "0s",
    ]);
    world.apply(&manifests());
    // Resync every 2s, so the quiet period below spans several full resyncs.
    world.restart_controller_with(&["--concurrency", "8"]);
    eventually_within("every App Ready", Duration::from_secs(600), || {
        ready_count(&world) == APPS
    });

    let jobs = world.nomad("/v1/jobs");
    let ids: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["ID"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), APPS, "one job per App, no strays");
    assert_eq!(unique.len(), APPS, "no duplicate jobs");

    // Converged: three full resyncs and a restart make no Nomad writes.
    let before = world.writes().len();
    std::thread::sleep(Duration::from_secs(7));
    // A crash, not a graceful stop: the new controller leads once the old lease expires.
    world.controller.take();
    let mut restarted = ControllerProcess::start(
        &nomarch_bin(),
        &world.etcd.endpoint(),
        PREFIX,
        &world.sim,
        &["--resync", "2s", "--lease-ttl", "3s"],
    );
    restarted.wait_leading();
    world.controller = Some(restarted);
    // Two resyncs as the new leader.
    std::thread::sleep(Duration::from_secs(5));
    let writes = world.writes();
    let extra: Vec<&Value> = writes[before..].iter().take(5).collect();
    assert_eq!(
        writes.len(),
        before,
        "resyncs and a restart over a converged cluster wrote: {extra:?}"
    );
    assert_eq!(ready_count(&world), APPS);
}
