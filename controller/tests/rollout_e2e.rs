//! End to end: rollouts as Nomad runs them (nomad-sim's deployments): an image change rolls
//! out `maxParallel` at a time, and a version that never turns healthy is rolled back by
//! Nomad's `auto_revert`, which nomarch reports and does not fight.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{condition, eventually, World};

/// An App whose rollouts are quick: healthy after 1 s, a 2 s healthy deadline and so (as
/// nomarch renders it) a 4 s progress deadline.
fn web(image: &str, replicas: u32, retry: &str) -> String {
    let annotations = if retry.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n    nomarch.io/retry: \"{retry}\"\n")
    };
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n{annotations}spec:\n  image: {image}\n  replicas: {replicas}\n  ports:\n    - name: http\n      containerPort: 80\n  health:\n    port: http\n    path: /healthz\n    interval: 1s\n    timeout: 1s\n    grace: 5s\n  update:\n    maxParallel: 1\n    minHealthyTime: 1s\n    healthyDeadline: 2s\n"
    )
}

const PROGRESS_DEADLINE: Duration = Duration::from_secs(4);

fn job_writes(world: &World, job: &str) -> usize {
    world.writes().iter().filter(|w| w["job_id"] == job).count()
}

fn latest_deployment(world: &World) -> Value {
    world.nomad("/v1/job/web/deployment")
}

fn allocs(world: &World) -> Vec<Value> {
    world
        .nomad("/v1/job/web/allocations")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn degraded(world: &World) -> Value {
    condition(&world.app("web")["status"], "Degraded")
}

#[test]
fn an_image_change_rolls_out_one_instance_at_a_time() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1", 3, ""));
    eventually("the first rollout succeeds", || {
        latest_deployment(&world)["Status"] == "successful"
    });
    world.apply(&web("nginx:2", 3, ""));
    // Sample the rollout: never more than one new instance waits for its health at once.
    let mut most_waiting = 0;
    let mut versions_side_by_side = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live: Vec<Value> = allocs(&world)
            .into_iter()
            .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] != "failed")
            .collect();
        let versions: BTreeSet<String> = live.iter().map(|a| a["JobVersion"].to_string()).collect();
        versions_side_by_side |= versions.len() > 1;
        let waiting = live
            .iter()
            .filter(|a| a["JobVersion"] == 1 && a["DeploymentStatus"]["Healthy"] != true)
            .count();
        most_waiting = most_waiting.max(waiting);
        let d = latest_deployment(&world);
        if d["JobVersion"] == 1 && d["Status"] == "successful" {
            break;
        }
        assert!(Instant::now() < deadline, "the rollout never finished: {d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(most_waiting, 1, "maxParallel 1: one new instance at a time");
    assert!(
        versions_side_by_side,
        "old instances served while new ones started"
    );
    eventually("web Ready on the new image", || world.ready("web"));
    assert_eq!(job_writes(&world, "web"), 2, "{:?}", world.writes());
}

/// The loop this prevents: Nomad reverts a failed rollout to the last stable version, nomarch
/// sees a job that is not what it wrote and registers the failing version again, every progress
/// deadline. Instead the App shows `Degraded`/`RolledBack` and nothing is written until the
/// spec changes or the retry annotation does.
#[test]
fn a_version_nomad_rolls_back_is_not_registered_again() {
    let world = World::start(&[]);
    assert_eq!(
        world.put_nomad(
            "/_sim/images",
            json!({"image": "nginx:broken", "fault": "crashloop"})
        ),
        200
    );
    world.apply(&web("nginx:1", 2, ""));
    eventually("version 0 is stable", || {
        world.nomad("/v1/job/web")["Stable"] == true
    });

    world.apply(&web("nginx:broken", 2, ""));
    eventually("nomarch reports Nomad's rollback", || {
        degraded(&world)["reason"] == "RolledBack"
    });
    let message = degraded(&world)["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("generation 2")
            && message.contains("Failed due to progress deadline - rolling back to job version 0"),
        "{message}"
    );
    // Three progress deadlines later: still the two writes (create, the broken image), the
    // job is version 0's spec, and one Warning said so.
    std::thread::sleep(3 * PROGRESS_DEADLINE);
    assert_eq!(job_writes(&world, "web"), 2, "{:?}", world.writes());
    let job = world.nomad("/v1/job/web");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "nginx:1"
    );
    assert_eq!(job["Version"], 2, "Nomad's revert is the only new version");
    assert_eq!(degraded(&world)["reason"], "RolledBack");
    let events = world.events();
    assert_eq!(events.matches("RolledBack").count(), 1, "{events}");

    // An explicit retry registers the same job once more, and Nomad rolls it back again.
    world.apply(&web("nginx:broken", 2, "1"));
    eventually("the retry was written", || job_writes(&world, "web") == 3);
    eventually("announced as a retry", || {
        world.events().contains("Retried")
    });
    assert!(
        !world.events().contains("DriftCorrected"),
        "{}",
        world.events()
    );
    eventually("rolled back again", || {
        world.nomad("/v1/job/web")["Version"] == 4 && degraded(&world)["reason"] == "RolledBack"
    });
    std::thread::sleep(2 * PROGRESS_DEADLINE);
    assert_eq!(job_writes(&world, "web"), 3, "{:?}", world.writes());

    // A new spec is registered and rolls out; the rollback is forgotten.
    world.apply(&web("nginx:2", 2, "1"));
    eventually("nginx:2 rolled out and web Ready", || {
        let d = latest_deployment(&world);
        d["Status"] == "successful"
            && world.nomad("/v1/job/web")["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
                == "nginx:2"
            && world.ready("web")
    });
    eventually("no longer Degraded", || {
        degraded(&world)["status"] == "False"
    });
    assert_eq!(job_writes(&world, "web"), 4);
}
