//! Host volumes end to end: nomad-sim's clients offer `host_volume`s (its `--config` nodes), an
//! App mounting one runs only where it is offered, and a pub keeps its data by waiting for a
//! lost hub unless told to move (then only to a hub offering the volume).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, World};

/// A world whose nomad-sim reads `config` (its `--config` file, kept in the returned folder);
/// heartbeats lapse fast.
fn started_with(config: &Value) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let world = World::start(&[
        "--config",
        path.to_str().unwrap(),
        "--heartbeat-ttl",
        "500ms",
        "--heartbeat-grace",
        "500ms",
    ]);
    (world, dir)
}

/// Three hubs, two offering `tenant-data`; one worker offering nothing.
fn world() -> (World, tempfile::TempDir) {
    let volume = json!({"tenant-data": {"path": "/srv/tenants"}});
    let config = json!({"nodes": [
        {"name": "hub-a", "class": "hub", "host_volumes": volume},
        {"name": "hub-b", "class": "hub", "host_volumes": volume},
        {"name": "hub-c", "class": "hub"},
        {"name": "worker", "class": "worker"},
    ]});
    started_with(&config)
}

fn running_on(world: &World, job: &str) -> Vec<String> {
    world
        .running_allocs(job)
        .iter()
        .map(|a| a["NodeName"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Two hubs of 8192 MB, nothing else.
const TWO_HUBS: &[&str] = &[
    "--nodes",
    "2",
    "--node-class",
    "hub",
    "--node-memory",
    "8192",
];

fn node_id(world: &World, name: &str) -> String {
    world
        .nomad("/v1/nodes")
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Name"] == name)
        .unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string()
}

fn set_node(world: &World, name: &str, action: &str) {
    let url = format!(
        "{}/_sim/nodes/{}/{action}",
        world.sim.nomad_url(),
        node_id(world, name)
    );
    assert_eq!(world.http.post(url).send().unwrap().status(), 200);
}

const VOLUME: &str =
    "  volumes:\n    - name: data\n      source: tenant-data\n      mountPath: /data\n";

#[test]
fn an_app_mounting_a_host_volume_runs_only_where_it_is_offered() {
    let (world, _dir) = world();
    world.apply(&format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: store\nspec:\n  image: minio/minio\n  replicas: 4\n{VOLUME}"
    ));
    eventually("store Ready", || world.ready("store"));
    let nodes: BTreeSet<String> = running_on(&world, "store").into_iter().collect();
    assert!(
        nodes.is_subset(&["hub-a".to_string(), "hub-b".to_string()].into()),
        "only where tenant-data is: {nodes:?}"
    );
    let job = world.nomad("/v1/job/store");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"][0]["Destination"],
        "/data"
    );
}

fn pub_with_volume(name: &str, on_loss: Option<&str>) -> String {
    let reallocation = match on_loss {
        Some(choice) => format!("  reallocation:\n    grace: 1s\n    onHubLoss: {choice}\n"),
        None => "  reallocation:\n    grace: 1s\n".to_string(),
    };
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: {name}\nspec:\n  tenant: {name}\n  image: ssb/room:1\n  hubSelector:\n    nodeClass: hub\n{reallocation}{VOLUME}"
    )
}

fn hub_of(world: &World, name: &str) -> String {
    world.object("pub", name)["status"]["hub"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_pub_waits_for_its_lost_hub_unless_told_to_move_and_then_only_where_its_volume_is() {
    let (world, _dir) = world();
    // Waits by default: its data is on the hub's disk.
    world.apply(&pub_with_volume("keeper", None));
    eventually("keeper Ready", || world.is_ready("pub", "keeper"));
    let home = hub_of(&world, "keeper");
    assert!(home == "hub-a" || home == "hub-b", "{home}");
    set_node(&world, &home, "kill");
    eventually("the wait is said", || {
        world.events().contains("WaitingForHub")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hub_of(&world, "keeper"), home, "still pinned to its hub");
    assert!(
        world.events().contains("onHubLoss: wait"),
        "{}",
        world.events()
    );
    set_node(&world, &home, "revive");
    eventually("keeper back on its own hub", || {
        running_on(&world, "keeper") == vec![home.clone()]
    });

    // Told to move: it moves, to the other hub with the volume, never to the one without.
    world.apply(&pub_with_volume("mover", Some("move")));
    eventually("mover Ready", || world.is_ready("pub", "mover"));
    let first = hub_of(&world, "mover");
    set_node(&world, &first, "kill");
    let other = if first == "hub-a" { "hub-b" } else { "hub-a" };
    eventually("mover runs on the other hub with tenant-data", || {
        running_on(&world, "mover") == vec![other.to_string()]
    });
    let status: Value = world.object("pub", "mover")["status"].clone();
    assert_eq!(status["hub"]["name"], other, "{status}");
}

/// Six spread pubs on the world's two hubs, all Ready, then a third hub (`hub-new`) joins.
fn spread_pubs_then_a_new_hub(world: &World, prefix: &str, extra: &str) -> Vec<String> {
    let pubs: Vec<String> = (0..6).map(|i| format!("{prefix}-{i}")).collect();
    let manifests: Vec<String> = pubs
        .iter()
        .map(|p| format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: {p}\nspec:\n  tenant: {p}\n  image: ssb/room:1\n  resources:\n    cpu: 100\n    memory: 1024\n  hubSelector:\n    nodeClass: hub\n  placementPolicy: spread\n{extra}"
        ))
        .collect();
    world.apply(&manifests.join("---\n"));
    eventually("every pub Ready", || {
        pubs.iter().all(|p| world.is_ready("pub", p))
    });
    let added = world
        .http
        .post(format!("{}/_sim/nodes", world.sim.nomad_url()))
        .json(&json!({"name": "hub-new", "class": "hub", "memory": 8192}))
        .send()
        .unwrap();
    assert_eq!(added.status(), 200);
    pubs
}

/// `rebalance pubs`: a hub that joins gets work: `--dry-run` says which moves, changes nothing;
/// then at most `--max-moves` happen, through the controller, and the annotation that asked for
/// each is gone once the pub is there.
#[test]
fn rebalance_moves_spread_pubs_onto_a_new_hub_a_bounded_number_at_a_time() {
    let world = World::start(TWO_HUBS);
    let pubs = spread_pubs_then_a_new_hub(&world, "room", "");
    eventually("the controller sees the new hub", || {
        world.nomad("/v1/nodes").as_array().unwrap().len() == 3
    });
    let on_new = |world: &World| {
        pubs.iter()
            .filter(|p| hub_of(world, p) == "hub-new")
            .count()
    };

    let dry = world.nomarch(&["rebalance", "pubs", "--dry-run"], None);
    let said = String::from_utf8_lossy(&dry.stdout).to_string();
    assert_eq!(said.matches("→ hub-new").count(), 2, "{said}");
    assert!(said.contains("dry run"), "{said}");
    assert_eq!(on_new(&world), 0, "a dry run moves nothing");

    let one = world.nomarch_exit(
        &["rebalance", "pubs", "--max-moves", "1", "--timeout", "60s"],
        None,
    );
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    assert_eq!(on_new(&world), 1);
    let moved = pubs
        .iter()
        .find(|p| hub_of(&world, p) == "hub-new")
        .unwrap();
    eventually("it runs there", || {
        running_on(&world, moved) == vec!["hub-new".to_string()]
    });
    let object = world.object("pub", moved);
    assert!(
        object["metadata"]["annotations"]["nomarch.io/move-to"].is_null(),
        "the request is removed once done: {object}"
    );
    assert!(
        world.events().contains("asked by nomarch rebalance"),
        "{}",
        world.events()
    );

    world.nomarch(&["rebalance", "pubs", "--timeout", "60s"], None);
    assert_eq!(on_new(&world), 2, "6 pubs over 3 hubs");
    let again = world.nomarch(&["rebalance", "pubs", "--dry-run"], None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to move"));
}

/// `rebalance: true`: a hub that joins and stays up for the cool-down gets pubs by itself.
#[test]
fn pubs_that_rebalance_by_themselves_move_onto_a_hub_that_joined_after_the_cool_down() {
    let mut world = World::start(TWO_HUBS);
    world.restart_controller_with(&["--rebalance-cooldown", "1s"]);
    let pubs = spread_pubs_then_a_new_hub(&world, "self", "  rebalance: true\n");
    eventually("two pubs moved onto the new hub by themselves", || {
        pubs.iter()
            .filter(|p| hub_of(&world, p) == "hub-new")
            .count()
            == 2
    });
    assert!(
        world
            .events()
            .contains("rebalanced onto a hub that came back or joined"),
        "{}",
        world.events()
    );
}

/// Two hubs running the CSI plugin `ebs`, a worker without it; volumes `pg-data` and
/// `room-data` registered single-node-writer.
fn csi_world() -> (World, tempfile::TempDir) {
    let config = json!({
        "nodes": [
            {"name": "hub-a", "class": "hub", "csi_plugins": ["ebs"]},
            {"name": "hub-b", "class": "hub", "csi_plugins": ["ebs"]},
            {"name": "worker", "class": "worker"},
        ],
        "csi_volumes": [
            {"id": "pg-data", "plugin_id": "ebs"},
            {"id": "room-data", "plugin_id": "ebs"},
        ],
    });
    started_with(&config)
}

fn csi_app(name: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: postgres:16\n  volumes:\n    - name: data\n      type: csi\n      source: pg-data\n      mountPath: /var/lib/postgresql\n"
    )
}

/// Why Nomad could not place a job's group, from its evaluations' `FailedTGAllocs`.
fn placement_failures(world: &World, job: &str) -> String {
    world
        .nomad(&format!("/v1/job/{job}/evaluations"))
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["FailedTGAllocs"].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_csi_volume_is_claimed_by_one_allocation_at_a_time() {
    let (world, _dir) = csi_world();
    world.apply(&csi_app("db"));
    eventually("db Ready", || world.ready("db"));
    let nodes = running_on(&world, "db");
    assert!(
        nodes == ["hub-a"] || nodes == ["hub-b"],
        "only where the plugin runs: {nodes:?}"
    );
    let volume = world.nomad("/v1/volume/csi/pg-data");
    let db_alloc = world.running_allocs("db")[0]["ID"].clone();
    assert!(
        volume["WriteAllocs"]
            .as_object()
            .is_some_and(|w| w.len() == 1 && w.contains_key(db_alloc.as_str().unwrap())),
        "{volume}"
    );

    // A second job asking to write the same volume waits for the claim, in Nomad's words.
    world.apply(&csi_app("db-copy"));
    eventually("db-copy refused the claim", || {
        placement_failures(&world, "db-copy")
            .contains("CSI volume pg-data has exhausted its available writer claims")
    });
    assert!(world.running_allocs("db-copy").is_empty());

    // The first lets go: the second gets the volume.
    world.nomarch(&["stop", "app/db"], None);
    eventually("db-copy runs", || {
        world.running_allocs("db-copy").len() == 1
    });
    let volume = world.nomad("/v1/volume/csi/pg-data");
    assert_eq!(volume["WriteAllocs"].as_object().map(|w| w.len()), Some(1));
}

#[test]
fn a_pub_on_a_csi_volume_moves_with_it_off_a_lost_hub() {
    let (world, _dir) = csi_world();
    world.apply(
        "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: room\nspec:\n  tenant: room\n  image: ssb/room:1\n  hubSelector:\n    nodeClass: hub\n  reallocation:\n    grace: 1s\n  volumes:\n    - name: data\n      type: csi\n      source: room-data\n      mountPath: /data\n",
    );
    eventually("room Ready", || world.is_ready("pub", "room"));
    let first = hub_of(&world, "room");
    set_node(&world, &first, "kill");
    let other = if first == "hub-a" { "hub-b" } else { "hub-a" };
    eventually("room runs on the other hub, its volume with it", || {
        running_on(&world, "room") == vec![other.to_string()]
            && world.nomad("/v1/volume/csi/room-data")["WriteAllocs"]
                .as_object()
                .is_some_and(|w| w.len() == 1)
    });
}
