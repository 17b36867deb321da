//! End to end: pubs placed on hubs and moved off dead ones; cron jobs on a fast clock.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use support::{eventually, settle, World, PREFIX};

/// Four hubs of 8192 MB: room for eight 1024 MB pubs each. Heartbeats lapse within a second.
const HUBS: &[&str] = &[
    "--nodes",
    "4",
    "--node-class",
    "hub",
    "--node-memory",
    "8192",
    "--node-cpu",
    "8000",
    "--heartbeat-ttl",
    "500ms",
    "--heartbeat-grace",
    "500ms",
];

fn pub_manifest(name: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: {name}\nspec:\n  tenant: {name}\n  image: ssb/room:1\n  resources:\n    cpu: 200\n    memory: 1024\n  hubSelector:\n    nodeClass: hub\n  reallocation:\n    grace: 2s\n"
    )
}

/// Hub name per pub, from status.
fn hubs_of(world: &World, pubs: &[String]) -> BTreeMap<String, String> {
    pubs.iter()
        .filter_map(|p| {
            Some((
                p.clone(),
                world.object("pub", p)["status"]["hub"]["name"]
                    .as_str()?
                    .to_string(),
            ))
        })
        .collect()
}

/// The node each pub's running allocation is on, from Nomad.
fn running_nodes(world: &World, pubs: &[String]) -> BTreeMap<String, Vec<String>> {
    pubs.iter()
        .map(|p| {
            let allocs = world.nomad(&format!("/v1/job/{p}/allocations"));
            let nodes = allocs
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
                .map(|a| a["NodeName"].as_str().unwrap_or_default().to_string())
                .collect();
            (p.clone(), nodes)
        })
        .collect()
}

#[test]
fn a_dead_hubs_pubs_move_once_to_hubs_with_room_and_stay_there() {
    let world = World::start(HUBS);
    let pubs: Vec<String> = (0..20).map(|i| format!("pub-{i:02}")).collect();
    let manifests: Vec<String> = pubs.iter().map(|p| pub_manifest(p)).collect();
    world.apply(&manifests.join("---\n"));
    eventually("every pub Ready", || {
        pubs.iter().all(|p| world.is_ready("pub", p))
    });
    let before = hubs_of(&world, &pubs);
    let mut per_hub: BTreeMap<&str, usize> = BTreeMap::new();
    for hub in before.values() {
        *per_hub.entry(hub).or_default() += 1;
    }
    assert!(
        per_hub.values().all(|n| *n <= 8),
        "capacity respected: {per_hub:?}"
    );
    let (victim, victim_pubs) = per_hub
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(h, n)| (h.to_string(), *n))
        .unwrap();
    let on_victim: BTreeSet<String> = before
        .iter()
        .filter(|(_, h)| **h == victim)
        .map(|(p, _)| p.clone())
        .collect();

    let status = world
        .http
        .post(format!(
            "{}/_sim/nodes/{victim}/kill",
            world.sim.nomad_url()
        ))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    eventually("every pub running off the dead hub", || {
        let nodes = running_nodes(&world, &pubs);
        nodes.values().all(|n| n.len() == 1 && n[0] != victim)
    });
    let after = hubs_of(&world, &pubs);
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    for hub in after.values() {
        *load.entry(hub).or_default() += 1;
    }
    assert!(
        load.values().all(|n| *n <= 8),
        "never onto a full hub: {load:?}"
    );
    for (pub_name, hub) in &before {
        if on_victim.contains(pub_name) {
            assert_ne!(&after[pub_name], hub, "{pub_name} moved");
        } else {
            assert_eq!(
                &after[pub_name], hub,
                "{pub_name} was not on the dead hub and stays put"
            );
        }
    }
    let events = String::from_utf8_lossy(&world.nomarch(&["events"], None).stdout).to_string();
    let reallocations: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("Reallocated"))
        .collect();
    assert_eq!(
        reallocations.len(),
        victim_pubs,
        "one Reallocated event per moved pub:\n{events}"
    );
    assert!(
        reallocations
            .iter()
            .all(|l| l.contains(&format!("from hub {victim}")) && !l.contains("(x")),
        "each pub moved once:\n{events}"
    );

    // The hub comes back: nothing moves back.
    world
        .http
        .post(format!(
            "{}/_sim/nodes/{victim}/revive",
            world.sim.nomad_url()
        ))
        .send()
        .unwrap();
    settle();
    settle();
    assert_eq!(
        hubs_of(&world, &pubs),
        after,
        "a revived hub pulls nothing back"
    );
}

/// A stopped pub keeps its hub: nothing of it runs, and its hub dying does not move it; once
/// started it runs on that hub again.
#[test]
fn a_stopped_pub_keeps_its_hub_and_is_not_moved() {
    let world = World::start(HUBS);
    let pubs = vec!["room".to_string()];
    world.apply(&pub_manifest("room"));
    eventually("room Ready", || world.is_ready("pub", "room"));
    let hub = hubs_of(&world, &pubs)["room"].clone();

    let stop = world.nomarch_exit(&["stop", "pub/room", "--timeout", "60s"], None);
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stop.stdout)
    );
    assert_eq!(running_nodes(&world, &pubs)["room"], Vec::<String>::new());
    let room = world.object("pub", "room");
    assert_eq!(room["status"]["phase"], "Stopped", "{room}");

    let kill = format!("{}/_sim/nodes/{hub}/kill", world.sim.nomad_url());
    assert_eq!(world.http.post(kill).send().unwrap().status(), 200);
    // Longer than the pub's reallocation grace (2s), with the hub's heartbeat lapsed.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        hubs_of(&world, &pubs)["room"],
        hub,
        "not moved while stopped"
    );
    assert!(
        !world.events().contains("Reallocated"),
        "{}",
        world.events()
    );
    let revive = format!("{}/_sim/nodes/{hub}/revive", world.sim.nomad_url());
    assert_eq!(world.http.post(revive).send().unwrap().status(), 200);
    eventually("the hub is ready again", || {
        world
            .nomad("/v1/nodes")
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["Name"] == hub.as_str() && n["Status"] == "ready")
            && world.object("pub", "room")["status"]["hubUnhealthySince"].is_null()
    });

    let start = world.nomarch_exit(&["start", "pub/room", "--timeout", "60s"], None);
    assert_eq!(
        start.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&start.stdout)
    );
    assert_eq!(running_nodes(&world, &pubs)["room"], vec![hub]);
}

#[test]
fn a_hub_chosen_before_a_crash_is_the_one_the_pub_runs_on() {
    let mut world = World::without_controller(HUBS);
    world.apply(&pub_manifest("alice"));
    // The state a controller killed between its status write and its register leaves behind.
    let nodes = world.nomad("/v1/nodes");
    let chosen = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Name"] == "node-3")
        .unwrap()
        .clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = controller::store::Store::connect(&[world.etcd.endpoint()], PREFIX)
            .await
            .unwrap();
        let object = crds::ObjectRef::new(crds::Kind::Pub, "default", "alice");
        let mut status = crds::Status::default();
        status.hub.hub = Some(crds::status::HubRecord {
            id: chosen["ID"].as_str().unwrap().to_string(),
            name: "node-3".into(),
        });
        store.put_status(&object, &status).await.unwrap();
    });
    assert!(
        world.nomad("/v1/job/alice").is_null(),
        "no job yet: only the hub was chosen"
    );
    world.restart_controller();
    eventually("alice Ready", || world.is_ready("pub", "alice"));
    let nodes = running_nodes(&world, &["alice".to_string()]);
    assert_eq!(
        nodes["alice"],
        ["node-3"],
        "exactly one hub: the one already chosen"
    );
    let job = world.nomad("/v1/job/alice");
    assert_eq!(job["Constraints"][0]["RTarget"], chosen["ID"]);
    let events = String::from_utf8_lossy(&world.nomarch(&["events"], None).stdout).to_string();
    assert!(!events.contains("Placed"), "no second placement:\n{events}");
}

#[test]
fn with_no_room_a_pub_is_unschedulable_until_a_hub_appears() {
    let world = World::start(&[
        "--nodes",
        "1",
        "--node-class",
        "hub",
        "--node-memory",
        "1024",
    ]);
    world.apply(&pub_manifest("first"));
    eventually("first Ready", || world.is_ready("pub", "first"));
    world.apply(&pub_manifest("second"));
    eventually("second Unschedulable", || {
        world.object("pub", "second")["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["reason"] == "Unschedulable")
    });
    let events = String::from_utf8_lossy(&world.nomarch(&["events"], None).stdout).to_string();
    assert!(
        events.contains("Warning") && events.contains("Unschedulable"),
        "{events}"
    );
    let added = world
        .http
        .post(format!("{}/_sim/nodes", world.sim.nomad_url()))
        .json(&json!({"name": "hub-new", "class": "hub", "memory": 4096}))
        .send()
        .unwrap();
    assert_eq!(added.status(), 200);
    eventually("second placed on the new hub", || {
        world.is_ready("pub", "second")
    });
    assert_eq!(
        world.object("pub", "second")["status"]["hub"]["name"],
        "hub-new"
    );
}

fn cron_manifest(suspend: bool) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: \"* * * * *\"\n  timeZone: Europe/Berlin\n  concurrencyPolicy: Forbid\n  suspend: {suspend}\n  task:\n    image: busybox:1\n    args: [\"true\"]\n"
    )
}

fn children(world: &World) -> usize {
    world
        .nomad("/v1/jobs?prefix=tick/periodic-")
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn cron_jobs_run_on_schedule_pause_resume_and_run_now() {
    // A minute passes every second: the schedule fires about once a second.
    let world = World::start(&["--clock-speed", "60", "--batch-duration", "5s"]);
    world.apply(&cron_manifest(false));
    eventually("a run succeeded", || {
        world.object("cronjob", "tick")["status"]["lastSuccessfulTime"].is_string()
    });
    let job = world.nomad("/v1/job/tick");
    assert_eq!(
        (
            job["Type"].as_str(),
            job["Periodic"]["ProhibitOverlap"].as_bool()
        ),
        (Some("batch"), Some(true))
    );
    let status = world.object("cronjob", "tick")["status"].clone();
    assert!(
        !status["recentRuns"].as_array().unwrap().is_empty(),
        "{status}"
    );
    assert!(status["nextRun"].is_string(), "{status}");

    world.apply(&cron_manifest(true));
    eventually("suspended", || {
        world.nomad("/v1/job/tick")["Periodic"]["Enabled"] == false
    });
    let paused = children(&world);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(children(&world), paused, "no launches while suspended");
    assert!(paused > 0, "history is kept");
    // Nomad refuses to force a disabled periodic job; nomarch says why before asking.
    let nomad = world.sim.nomad_url();
    let output = support::run_nomarch(
        &world.etcd.endpoint(),
        &[("NOMAD_ADDR", &nomad)],
        &["run", "cronjob", "tick"],
        None,
    );
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success());
    assert!(text.contains("cronjob/tick is suspended"), "{text}");
    assert_eq!(children(&world), paused, "nothing launched");

    world.apply(&cron_manifest(false));
    eventually("launches again", || children(&world) > paused);

    let before = children(&world);
    let output = world.nomarch(&["run", "cronjob", "tick"], None);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(text.starts_with("cronjob/tick run started"), "{text}");
    assert!(children(&world) > before, "run now launches at once");
}

#[test]
fn a_failed_run_is_a_warning_event() {
    let world = World::start(&["--clock-speed", "60", "--batch-outcome", "fail"]);
    world.apply(&cron_manifest(false));
    eventually("a RunFailed warning", || {
        let events = String::from_utf8_lossy(&world.nomarch(&["events"], None).stdout).to_string();
        events.lines().any(|l| {
            l.contains("Warning") && l.contains("RunFailed") && l.contains("tick/periodic-")
        })
    });
    let status = world.object("cronjob", "tick")["status"].clone();
    assert!(
        status["recentRuns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "Failed"),
        "{status}"
    );
}

/// A hub in a node pool other than `default` gets its pub: the job names the hub's pool, as
/// Nomad places a job only on nodes of its own pool (a job without one is in `default`).
#[test]
fn a_hub_in_another_node_pool_gets_its_pub() {
    let world = World::start(&["--nodes", "2", "--node-class", "hub", "--node-pool", "edge"]);
    world.apply(
        "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: room\nspec:\n  tenant: room\n  image: ssb/room:1\n  hubSelector:\n    nodeClass: hub\n    nodePool: edge\n",
    );
    eventually("the pub runs on its hub", || {
        world.is_ready("pub", "room")
            && running_nodes(&world, &["room".to_string()])["room"].len() == 1
    });
    assert_eq!(world.nomad("/v1/job/room")["NodePool"], "edge");
    let hub = world.object("pub", "room")["status"]["hub"]["name"].clone();
    assert_eq!(
        running_nodes(&world, &["room".to_string()])["room"],
        vec![hub.as_str().unwrap().to_string()]
    );
}

/// `nomarch diff` covers pubs and cron jobs with the plan the controller runs: nothing for an
/// unchanged manifest, Nomad's diff for a changed one, a word for what only the controller
/// decides (a pub's first hub) and for a GitSource; and it writes nothing.
#[test]
fn diff_covers_pubs_and_cron_jobs() {
    let world = World::start(HUBS);
    world.apply(&pub_manifest("diffed"));
    world.apply(&cron_manifest(false));
    eventually("the pub is Ready", || world.is_ready("pub", "diffed"));
    eventually("the cron job is registered", || {
        world.nomad("/v1/job/tick")["Periodic"]["Specs"][0] == "* * * * *"
    });
    settle();
    let before = world.writes().len();
    // Exit 0 without changes, 1 with.
    let diff = |manifest: &str| {
        let output = world.nomarch_exit(&["diff", "-f", "-"], Some(manifest));
        assert!(matches!(output.status.code(), Some(0 | 1)), "{output:?}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(diff(&pub_manifest("diffed")), "pub/diffed: no changes\n");
    assert_eq!(diff(&cron_manifest(false)), "cronjob/tick: no changes\n");
    let pub_changed = diff(&pub_manifest("diffed").replace("ssb/room:1", "ssb/room:2"));
    assert!(
        pub_changed.starts_with("pub/diffed: would register job diffed (desired job changed)")
            && pub_changed.contains("ssb/room:2"),
        "{pub_changed}"
    );
    let cron_changed = diff(&cron_manifest(false).replace("busybox:1", "busybox:2"));
    assert!(
        cron_changed.starts_with("cronjob/tick: would register job tick (desired job changed)")
            && cron_changed.contains("busybox:2"),
        "{cron_changed}"
    );
    assert_eq!(
        diff(&pub_manifest("newcomer")),
        "pub/newcomer: has no hub yet; the controller chooses one, then registers its job\n"
    );
    let source = "apiVersion: nomarch.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: state\nspec:\n  url: https://git.example.com/state.git\n";
    assert!(
        diff(source).starts_with("gitsource/state: registers no Nomad job"),
        "a GitSource is said, not diffed"
    );
    assert_eq!(world.writes().len(), before, "diff writes nothing to Nomad");
}
