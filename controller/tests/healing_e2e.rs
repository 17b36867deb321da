//! End to end: the healing ladder. Checks held critical past the grace get allocations
//! replaced, never more than maxUnavailable at a time; a node that keeps needing it is suspect.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{eventually, World};

fn app(name: &str, replicas: u32, pin: Option<&str>) -> String {
    let placement = pin.map_or(String::new(), |node| {
        format!("  placement:\n    constraints:\n      - attribute: \"${{node.unique.name}}\"\n        value: {node}\n")
    });
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: nginx:1\n  replicas: {replicas}\n  ports:\n    - name: http\n  health:\n    port: http\n    path: /\n    interval: 1s\n    timeout: 1s\n    grace: 2s\n  update:\n    maxUnavailable: 1\n{placement}"
    )
}

/// Replica slots being replaced right now: allocations stopping, or replacements starting
/// (one heal briefly shows one of each).
fn in_flight(world: &World, job: &str) -> usize {
    let allocs = world.nomad(&format!("/v1/job/{job}/allocations"));
    let list = allocs.as_array().cloned().unwrap_or_default();
    let state = |a: &Value| {
        (
            a["ClientStatus"].as_str().unwrap_or("").to_string(),
            a["DesiredStatus"].as_str().unwrap_or("").to_string(),
        )
    };
    let stopping = list
        .iter()
        .filter(|a| {
            let (c, d) = state(a);
            d != "run" && matches!(c.as_str(), "pending" | "running")
        })
        .count();
    let starting = list
        .iter()
        .filter(|a| {
            let (c, d) = state(a);
            d == "run" && c == "pending"
        })
        .count();
    stopping.max(starting)
}

fn events(world: &World) -> String {
    String::from_utf8_lossy(&world.nomarch(&["events"], None).stdout).to_string()
}

#[test]
fn critical_checks_are_healed_one_allocation_at_a_time_after_the_grace() {
    let world = World::start(&[]);
    world.apply(&app("web", 3, None));
    eventually("web Ready", || world.is_ready("app", "web"));
    let originals: Vec<String> = world
        .nomad("/v1/job/web/allocations")
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ID"].as_str().unwrap().to_string())
        .collect();
    let set = world
        .http
        .put(format!("{}/_sim/checks", world.sim.nomad_url()))
        .json(&json!({"service": "web", "status": "critical"}))
        .send()
        .unwrap();
    assert_eq!(set.status(), 200);
    let started = Instant::now();
    let mut most_in_flight = 0;
    while started.elapsed() < Duration::from_secs(12) {
        most_in_flight = most_in_flight.max(in_flight(&world, "web"));
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        most_in_flight <= 1,
        "never more than maxUnavailable (1) at a time, saw {most_in_flight}"
    );
    let allocs = world.nomad("/v1/job/web/allocations");
    let stopped: Vec<&Value> = allocs
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            originals.contains(&a["ID"].as_str().unwrap().to_string())
                && a["DesiredStatus"] == "stop"
        })
        .collect();
    assert_eq!(stopped.len(), 3, "every original allocation was replaced");
    let log = events(&world);
    let heals: Vec<&str> = log.lines().filter(|l| l.contains("Healed")).collect();
    assert!(!heals.is_empty(), "{log}");
    for line in &heals {
        let seconds: u64 = line
            .split("critical for ")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(seconds >= 2, "healed only after the 2s grace: {line}");
    }
    let metrics = world.controller.as_ref().unwrap().metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("nomarch_heals_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn a_node_that_keeps_needing_heals_is_suspect_and_can_be_cordoned() {
    let mut world = World::start(&[]);
    world.restart_controller_with(&["--cordon-suspect-nodes"]);
    // Three objects healed there: the node, not one application, is the common factor.
    for name in ["flaky-a", "flaky-b", "flaky-c"] {
        world.apply(&app(name, 1, Some("node-2")));
    }
    for name in ["flaky-a", "flaky-b", "flaky-c"] {
        eventually("Ready", || world.is_ready("app", name));
    }
    let set = world
        .http
        .put(format!("{}/_sim/checks", world.sim.nomad_url()))
        .json(&json!({"node": "node-2", "status": "critical"}))
        .send()
        .unwrap();
    assert_eq!(set.status(), 200);
    eventually("NodeSuspect raised", || {
        events(&world).contains("NodeSuspect")
    });
    let log = events(&world);
    assert!(
        log.lines().any(|l| l.contains("Warning")
            && l.contains("NodeSuspect")
            && l.contains("node node-2")),
        "{log}"
    );
    eventually("node-2 cordoned", || {
        world
            .nomad("/v1/nodes")
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["Name"] == "node-2" && n["SchedulingEligibility"] == "ineligible")
    });
}

/// Crash-loops one running allocation of `job` (not one already crashed) until Nomad gives up
/// on it.
fn crash_one(world: &World, job: &str, crashed: &mut Vec<Value>) {
    let mut running = None;
    eventually("a running allocation", || {
        let allocs = world.nomad(&format!("/v1/job/{job}/allocations"));
        running = allocs
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["ClientStatus"] == "running"
                    && a["DesiredStatus"] == "run"
                    && !crashed.contains(&a["ID"])
            })
            .map(|a| a["ID"].clone());
        running.is_some()
    });
    let id = running.unwrap();
    let posted = world
        .http
        .post(format!(
            "{}/_sim/allocations/{}/crashloop",
            world.sim.nomad_url(),
            id.as_str().unwrap()
        ))
        .send()
        .unwrap();
    assert_eq!(posted.status(), 200);
    eventually("the allocation failed", || {
        world.nomad(&format!("/v1/allocation/{}", id.as_str().unwrap()))["ClientStatus"] == "failed"
    });
    crashed.push(id);
}

/// One application failing again and again on a node (it is pinned there) is that
/// application's bug, not the node's; failures of three different objects there are.
#[test]
fn failures_of_different_objects_on_one_node_make_it_suspect() {
    let world = World::start(&[]);
    for name in ["crashy-a", "crashy-b", "crashy-c"] {
        world.apply(&app(name, 1, Some("node-3")));
    }
    for name in ["crashy-a", "crashy-b", "crashy-c"] {
        eventually("Ready", || world.is_ready("app", name));
    }
    let mut crashed = Vec::new();
    for _ in 0..3 {
        crash_one(&world, "crashy-a", &mut crashed);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !events(&world).contains("NodeSuspect"),
        "one object's failures: {}",
        events(&world)
    );
    crash_one(&world, "crashy-b", &mut crashed);
    crash_one(&world, "crashy-c", &mut crashed);
    eventually("NodeSuspect for node-3", || {
        events(&world)
            .lines()
            .any(|l| l.contains("NodeSuspect") && l.contains("node node-3"))
    });
}
