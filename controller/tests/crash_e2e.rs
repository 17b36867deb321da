//! Crash anywhere: while 200 objects converge, the controller is killed with SIGKILL at random
//! moments (seeded: `NOMARCH_CRASH_SEED` reproduces a run), 20 times, and started again. At the
//! end every object is converged, there is exactly one Nomad job per object, and no pub has
//! allocations on two hubs.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use e2e::procs::ControllerProcess;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::{eventually_within, nomarch_bin, World, PREFIX};

const APPS: usize = 180;
const PUBS: usize = 20;
const KILLS: usize = 20;

fn manifests(image_tag: u32) -> String {
    let apps = (0..APPS).map(|i| format!("---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: app-{i:03}\nspec:\n  image: app:{image_tag}\n  replicas: 1\n  resources: {{cpu: 10, memory: 16}}\n  placement: {{nodeClass: worker}}\n"));
    let pubs = (0..PUBS).map(|i| format!("---\napiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: pub-{i:02}\nspec:\n  tenant: t{i}\n  image: room:1\n  resources: {{cpu: 100, memory: 1024}}\n  hubSelector: {{nodeClass: hub}}\n"));
    apps.chain(pubs).collect()
}

fn cluster(dir: &std::path::Path) -> std::path::PathBuf {
    let nodes: Vec<Value> = (0..4)
        .map(|i| serde_json::json!({"name": format!("node-{i}"), "class": "worker", "cpu": 64000, "memory": 65536}))
        .chain((0..3).map(|i| serde_json::json!({"name": format!("hub-{i}"), "class": "hub", "cpu": 64000, "memory": 65536})))
        .collect();
    let path = dir.join("cluster.json");
    std::fs::write(&path, serde_json::json!({ "nodes": nodes }).to_string()).unwrap();
    path
}

fn start(world: &World) -> ControllerProcess {
    ControllerProcess::start(
        &nomarch_bin(),
        &world.etcd.endpoint(),
        PREFIX,
        &world.sim,
        &["--lease-ttl", "2s", "--resync", "2s", "--concurrency", "8"],
    )
}

fn all_converged(world: &World) -> bool {
    let output = world.nomarch(&["get", "apps", "-o", "json"], None);
    let apps: Value = serde_json::from_slice(&output.stdout).unwrap();
    let output = world.nomarch(&["get", "pubs", "-o", "json"], None);
    let pubs: Value = serde_json::from_slice(&output.stdout).unwrap();
    let items: Vec<&Value> = apps["items"]
        .as_array()
        .into_iter()
        .chain(pubs["items"].as_array())
        .flatten()
        .collect();
    items.len() == APPS + PUBS
        && items.iter().all(|o| {
            o["status"]["observedGeneration"] == o["metadata"]["generation"]
                && o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

#[test]
fn twenty_random_kills_leave_everything_converged_once() {
    let seed: u64 = std::env::var("NOMARCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261122);
    eprintln!("crash test seed {seed} (set NOMARCH_CRASH_SEED to reproduce)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = cluster(dir.path());
    let mut world = World::without_controller(&[
        "--config",
        config.to_str().unwrap(),
        "--start-delay",
        "50ms",
    ]);
    world.apply(&manifests(1));
    for kill in 0..KILLS {
        let mut controller = start(&world);
        // Each kill lands while this controller leads, somewhere in its work.
        controller.wait_leading();
        // Every App changes twice more while the controllers keep dying.
        if kill == KILLS / 3 || kill == 2 * KILLS / 3 {
            world.apply(&manifests(kill as u32));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..700)));
        controller.process.signal(libc::SIGKILL);
        controller.process.wait(Duration::from_secs(5));
    }
    let mut last = start(&world);
    last.wait_leading();
    world.controller = Some(last);
    let what = format!("everything converged after the kills (seed {seed})");
    eventually_within(&what, Duration::from_secs(300), || all_converged(&world));

    // Exactly one job per object, each at the latest spec.
    let jobs = world.nomad("/v1/jobs");
    let ids: Vec<String> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["Stop"] == false)
        .map(|j| j["ID"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len(),
        APPS + PUBS,
        "one live job per object (seed {seed})"
    );
    assert_eq!(unique.len(), ids.len());
    let sample = world.nomad("/v1/job/app-000");
    let last_tag = 2 * KILLS / 3;
    assert_eq!(
        sample["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        format!("app:{last_tag}")
    );

    // No pub on two hubs: its live allocations are on one node, the hub its status names.
    let allocs = world.nomad("/v1/allocations");
    let mut nodes_by_pub: HashMap<String, BTreeSet<String>> = HashMap::new();
    for alloc in allocs.as_array().unwrap() {
        let job = alloc["JobID"].as_str().unwrap();
        let live = alloc["DesiredStatus"] == "run"
            && matches!(alloc["ClientStatus"].as_str(), Some("pending" | "running"));
        if job.starts_with("pub-") && live {
            nodes_by_pub
                .entry(job.to_string())
                .or_default()
                .insert(alloc["NodeID"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(nodes_by_pub.len(), PUBS);
    for (pub_, nodes) in &nodes_by_pub {
        assert_eq!(nodes.len(), 1, "{pub_} runs on {nodes:?} (seed {seed})");
        let status = world.object("pub", pub_)["status"]["hub"]["id"].clone();
        assert_eq!(
            status.as_str(),
            nodes.iter().next().map(String::as_str),
            "{pub_}"
        );
    }
}
