//! Service references end to end: an App's env names another App's service; the task's template
//! resolves it through Consul (nomad-sim renders the two shapes nomarch writes), and a change of
//! the instances restarts the task with the new value (`changeMode: restart`).

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{eventually, World};

fn metrics(replicas: u32) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: metrics\nspec:\n  image: prom/statsd-exporter\n  replicas: {replicas}\n  ports:\n    - name: http\n      containerPort: 9102\n"
    )
}

const WEB: &str = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  env:\n    - name: STATS_HOST\n      serviceRef:\n        name: metrics\n    - name: STATS_ALL\n      serviceRef:\n        name: metrics\n        all: true\n";

/// `host:port` of the passing instances Consul has for a service.
fn instances(world: &World, service: &str) -> BTreeSet<String> {
    let entries: Value = world
        .http
        .get(format!(
            "{}/v1/health/service/{service}?passing",
            world.sim.consul_url()
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}:{}",
                e["Service"]["Address"].as_str().unwrap(),
                e["Service"]["Port"]
            )
        })
        .collect()
}

fn web_alloc(world: &World) -> Value {
    world
        .nomad("/v1/job/web/allocations")
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["DesiredStatus"] == "run")
        .cloned()
        .unwrap_or(Value::Null)
}

fn env_of(world: &World, alloc: &str) -> Value {
    world
        .http
        .get(format!(
            "{}/_sim/allocations/{alloc}/env",
            world.sim.nomad_url()
        ))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn a_service_reference_resolves_to_the_live_instances_and_follows_them() {
    let world = World::start(&[]);
    world.apply(&metrics(2));
    eventually("metrics Ready", || world.ready("metrics"));
    world.apply(WEB);
    eventually("web Ready", || world.ready("web"));
    let job = world.nomad("/v1/job/web");
    let templates = job["TaskGroups"][0]["Tasks"][0]["Templates"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        templates.len(),
        2,
        "one template per reference: {templates:?}"
    );

    let alloc = web_alloc(&world)["ID"].as_str().unwrap().to_string();
    let live = instances(&world, "metrics");
    assert_eq!(live.len(), 2);
    let env = &env_of(&world, &alloc)["app"];
    assert!(
        live.contains(env["STATS_HOST"].as_str().unwrap()),
        "{env} vs {live:?}"
    );
    let all: BTreeSet<String> = env["STATS_ALL"]
        .as_str()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    assert_eq!(all, live);

    // A third instance: the template renders again and the task restarts with it.
    world.apply(&metrics(3));
    eventually("metrics has 3 passing instances", || {
        instances(&world, "metrics").len() == 3
    });
    eventually("web restarted with all three", || {
        let env = &env_of(&world, &alloc)["app"];
        env["STATS_ALL"]
            .as_str()
            .is_some_and(|v| v.split(',').count() == 3)
    });
    let restarted = web_alloc(&world);
    assert_eq!(
        restarted["ID"],
        alloc.as_str(),
        "restarted in place, not replaced"
    );
    let events = restarted["TaskStates"]["app"]["Events"].to_string();
    assert!(
        events.contains("Template with change_mode restart re-rendered"),
        "{events}"
    );
}
