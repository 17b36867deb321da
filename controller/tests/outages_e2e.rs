//! Outages of what nomarch depends on: etcd stopped and started again, Nomad unavailable, the
//! event stream stalled or cut mid-frame. The controller must not crash or spin, and must
//! converge once the dependency is back without losing an update written before the outage.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, World};

fn app(name: &str, replicas: u32) -> String {
    format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: nginx:1\n  replicas: {replicas}\n")
}

fn count(world: &World, job: &str) -> Value {
    world.nomad(&format!("/v1/job/{job}"))["TaskGroups"][0]["Count"].clone()
}

fn purge(world: &World, job: &str) {
    let status = world
        .http
        .delete(format!("{}/v1/job/{job}?purge=true", world.sim.nomad_url()))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

const NOMAD_REQUESTS: &str = "nomarch_api_requests_total{api=\"nomad\"}";

#[test]
fn etcd_down_for_30s_then_back_loses_nothing() {
    let mut world = World::start(&[]);
    world.apply(&app("steady", 1));
    eventually("steady Ready", || world.ready("steady"));

    // An update written just before the outage, and a change in Nomad during it.
    world.apply(&app("steady", 2));
    world.etcd.stop();
    purge(&world, "steady");
    std::thread::sleep(Duration::from_secs(30));
    let controller = world.controller.as_mut().unwrap();
    assert!(
        controller.process.is_running(),
        "no crash while etcd is down:\n{}",
        controller.process.log_text()
    );

    world.etcd.restart();
    eventually("the update and the revert land", || {
        count(&world, "steady") == json!(2) && world.ready("steady")
    });
    world.apply(&app("after", 1));
    eventually("new work after the outage", || world.ready("after"));
    let controller = world.controller.as_mut().unwrap();
    assert!(controller.process.is_running());
    let log = controller.process.log_text();
    // 30 s is longer than the lease (10 s): it stood by, then led again, in the same process.
    assert!(log.contains("lost the leader lease; standing by"), "{log}");
}

#[test]
fn nomad_unavailable_backs_off_without_spinning_and_converges() {
    let world = World::start(&[]);
    world.apply(&app("web", 1));
    eventually("web Ready", || world.ready("web"));
    let controller = world.controller.as_ref().unwrap();

    // Every Nomad request answers 500 "No cluster leader" for 8 s.
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"unavailable_ms": 8000})),
        200
    );
    let before = controller.metric(NOMAD_REQUESTS);
    world.apply(&app("web", 3));
    world.apply(&app("other", 1));
    std::thread::sleep(Duration::from_secs(6));
    let during = controller.metric(NOMAD_REQUESTS) - before;
    // Backoff makes tens of requests here; a retry loop without it makes thousands.
    assert!(
        (1.0..300.0).contains(&during),
        "{during} Nomad requests during 6 s of outage"
    );

    eventually("converged after the outage", || {
        count(&world, "web") == json!(3) && world.ready("web") && world.ready("other")
    });
}

/// Consul alone down: registrations still converge (the job is Nomad's business), status
/// reports the instances Nomad runs with readiness Unknown (ConsulUnavailable) instead of
/// failing the reconcile, and Ready returns by itself with Consul.
#[test]
fn consul_unavailable_leaves_registrations_converging_and_health_unknown() {
    let world = World::start(&[]);
    let checked = |name: &str| {
        format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: nginx:1\n  replicas: 2\n  ports:\n    - name: http\n  health:\n    port: http\n    path: /\n    interval: 1s\n    timeout: 1s\n"
        )
    };
    assert_eq!(
        world.put_nomad(
            "/_sim/chaos",
            json!({"api": "consul", "unavailable_ms": 60_000})
        ),
        200
    );
    world.apply(&checked("web"));
    let ready = |world: &World| support::condition(&world.app("web")["status"], "Ready");
    eventually("registered, running, health unknown", || {
        let app = world.app("web");
        count(&world, "web") == json!(2)
            && app["status"]["replicas"]["running"] == 2
            && ready(&world)["status"] == "Unknown"
    });
    let condition = ready(&world);
    assert_eq!(condition["reason"], "ConsulUnavailable", "{condition}");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .starts_with("2/2 replicas running; health unknown"),
        "{condition}"
    );
    assert!(
        !world.events().contains("Healed"),
        "nothing healed on unknown health"
    );

    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"api": "consul", "unavailable_ms": 0})),
        200
    );
    eventually("Ready again without any change", || world.ready("web"));
}

#[test]
fn a_stalled_or_cut_event_stream_is_replaced_and_nothing_is_missed() {
    let mut world = World::start(&[]);
    world.restart_controller_with(&["--event-stream-idle", "3s"]);
    world.apply(&app("web", 1));
    world.apply(&app("api", 1));
    eventually("both Ready", || world.ready("web") && world.ready("api"));

    // The open stream goes silent: no frames, no heartbeats. A job purged meanwhile is only
    // noticed once the controller gives the dead stream up, relists and resubscribes.
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"stall_streams": true})),
        200
    );
    std::thread::sleep(Duration::from_millis(500));
    purge(&world, "web");
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"stall_streams": false})),
        200
    );
    eventually("the purged job is registered again", || {
        count(&world, "web") == json!(1)
    });

    // Cut mid-frame: the half line is not an event; the controller resubscribes.
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"cut_streams": true})),
        200
    );
    purge(&world, "api");
    eventually("the other purged job is registered again", || {
        count(&world, "api") == json!(1)
    });
    let controller = world.controller.as_mut().unwrap();
    assert!(controller.process.is_running());
}

#[test]
fn a_blocking_query_that_never_answers_is_abandoned() {
    // Two hubs whose heartbeats lapse within a second.
    let mut world = World::start(&[
        "--nodes",
        "2",
        "--node-class",
        "hub",
        "--heartbeat-ttl",
        "500ms",
        "--heartbeat-grace",
        "500ms",
    ]);
    world.restart_controller_with(&["--blocking-wait", "2s"]);
    let pub_manifest = "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: shop\nspec:\n  tenant: shop\n  image: ssb/room:1\n  resources:\n    cpu: 100\n    memory: 256\n  hubSelector:\n    nodeClass: hub\n  reallocation:\n    grace: 1s\n";
    world.apply(pub_manifest);
    eventually("shop Ready", || world.is_ready("pub", "shop"));
    let hub = world.object("pub", "shop")["status"]["hub"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    // From now on every blocking query hangs; the node list the controller holds goes stale
    // once its current query (2 s) has returned. Then the pub's hub dies.
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"hang_blocking": true})),
        200
    );
    std::thread::sleep(Duration::from_secs(3));
    let status = world
        .http
        .post(format!("{}/_sim/nodes/{hub}/kill", world.sim.nomad_url()))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // Only a controller that gives the hung query up (and reads the nodes itself meanwhile)
    // sees the hub go down and moves the pub.
    eventually("the pub moves off the dead hub", || {
        world.object("pub", "shop")["status"]["hub"]["name"]
            .as_str()
            .is_some_and(|h| h != hub)
    });
}

#[test]
fn a_watch_resuming_past_compaction_relists_and_loses_no_update() {
    let mut world = World::start(&[]);
    let names: Vec<String> = (0..20).map(|i| format!("app-{i}")).collect();
    for name in &names {
        world.apply(&app(name, 1));
    }
    eventually("all Ready", || names.iter().all(|n| world.ready(n)));

    // The controller is paused while etcd restarts (its watch stream dies with it), the apps
    // change, and etcd compacts past the revision the controller saw last. Resumed, its watch
    // can only resume from a compacted revision: it must relist.
    let controller = world.controller.as_ref().unwrap();
    controller.process.signal(libc::SIGSTOP);
    world.etcd.restart();
    for name in &names {
        world.apply(&app(name, 2));
    }
    let endpoint = world.etcd.endpoint();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut client = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let revision = client
            .get("/", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        client
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .unwrap();
    });
    let controller = world.controller.as_mut().unwrap();
    controller.process.signal(libc::SIGCONT);

    eventually("every update lands", || {
        names.iter().all(|n| count(&world, n) == json!(2))
    });
    let controller = world.controller.as_mut().unwrap();
    assert!(controller.process.is_running());
    let log = controller.process.log_text();
    assert!(log.contains("watch revision compacted; relisting"), "{log}");
}
