//! End to end: real etcd, nomad-sim and `nomarch controller` as processes; `nomarch` applies
//! Apps; the tests assert on Nomad's state (through nomad-sim's write log), object status and
//! events.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{eventually, nomarch_bin, settle, World, PREFIX};

fn web(image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: {image}\n  replicas: {replicas}\n  ports:\n    - name: http\n      containerPort: 80\n  health:\n    port: http\n    path: /healthz\n    interval: 1s\n    timeout: 1s\n    grace: 5s\n"
    )
}

fn job_writes(world: &World, job: &str) -> usize {
    world.writes().iter().filter(|w| w["job_id"] == job).count()
}

#[test]
fn an_applied_app_is_registered_and_becomes_ready() {
    let world = World::start(&[]);
    assert_eq!(world.apply(&web("nginx:1.27", 2)), "app/web created\n");
    eventually("web Ready", || world.ready("web"));
    let job = world.nomad("/v1/job/web");
    assert_eq!(job["Meta"]["nomarch.io/managed-by"], "nomarch");
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    let app = world.app("web");
    assert_eq!(
        app["status"]["replicas"],
        json!({"desired": 2, "running": 2, "healthy": 2})
    );
    assert_eq!(app["status"]["job"]["id"], "web");
    let events = world.events();
    assert!(
        events.contains("Registered") && events.contains("Ready"),
        "{events}"
    );
}

#[test]
fn a_change_updates_the_job_once_and_reapplying_writes_nothing() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1.27", 1));
    eventually("web Ready", || world.ready("web"));
    assert_eq!(job_writes(&world, "web"), 1);

    assert_eq!(world.apply(&web("nginx:1.28", 3)), "app/web configured\n");
    eventually("the new image registered", || {
        world.nomad("/v1/job/web")["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "nginx:1.28"
    });
    eventually("web Ready at generation 2", || world.ready("web"));
    settle();
    assert_eq!(
        job_writes(&world, "web"),
        2,
        "one write per change: {:?}",
        world.writes()
    );
    assert_eq!(world.nomad("/v1/job/web")["Version"], 1);

    let before = world.writes().len();
    assert_eq!(world.apply(&web("nginx:1.28", 3)), "app/web unchanged\n");
    settle();
    assert_eq!(
        world.writes().len(),
        before,
        "re-applying unchanged files makes zero Nomad writes"
    );
}

/// The IDs of the allocations of `job` that run.
fn running_allocs(world: &World, job: &str) -> std::collections::BTreeSet<String> {
    world
        .running_allocs(job)
        .iter()
        .filter_map(|a| a["ID"].as_str().map(String::from))
        .collect()
}

/// Nomad replaces every allocation when job meta changes (scheduler/util.go tasksUpdated), so
/// nothing per-generation may be in it: scaling 3→4 keeps the 3 instances running, and a change
/// to a field only nomarch reads writes nothing to Nomad at all.
#[test]
fn scaling_keeps_running_instances_and_nomarch_only_fields_write_nothing() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1.27", 3));
    eventually("web Ready with 3", || {
        world.ready("web") && running_allocs(&world, "web").len() == 3
    });
    let three = running_allocs(&world, "web");

    assert_eq!(world.apply(&web("nginx:1.27", 4)), "app/web configured\n");
    eventually("web Ready with 4", || {
        world.ready("web") && running_allocs(&world, "web").len() == 4
    });
    let four = running_allocs(&world, "web");
    assert!(
        three.is_subset(&four),
        "the 3 instances kept running: {three:?} then {four:?}"
    );
    assert_eq!(
        world.nomad("/v1/job/web")["Meta"]
            .as_object()
            .unwrap()
            .len(),
        3,
        "identity only"
    );

    settle();
    let writes = world.writes().len();
    let nomarch_only = format!(
        "{}  dependsOn: [web-db]\n  update:\n    maxUnavailable: 2\n",
        web("nginx:1.27", 4)
    );
    assert_eq!(world.apply(&nomarch_only), "app/web configured\n");
    eventually("generation 3 observed", || {
        world.app("web")["status"]["observedGeneration"] == 3
    });
    settle();
    assert_eq!(world.writes().len(), writes, "{:?}", world.writes());
    assert_eq!(running_allocs(&world, "web"), four, "nothing restarted");
    assert!(world.ready("web"));
}

/// Nomad's garbage collector deletes a stopped job with a `JobBatchDeregistered` event that
/// carries the job as it was. The job cache forgets it, so an App re-created with that name is
/// registered at once, not first against a job that no longer exists.
#[test]
fn a_job_deleted_by_nomads_garbage_collector_is_forgotten() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1.27", 1));
    eventually("web Ready", || world.ready("web"));
    let deleted = world.nomarch(&["delete", "app", "web"], None);
    assert!(deleted.status.success());
    eventually("the job stopped and its allocation done", || {
        let allocs = world.nomad("/v1/job/web/allocations");
        world.nomad("/v1/job/web")["Stop"] == true
            && allocs
                .as_array()
                .is_some_and(|a| a.iter().all(|a| a["ClientStatus"] == "complete"))
    });
    assert_eq!(world.put_nomad("/v1/system/gc", json!(null)), 200);
    assert!(world.nomad("/v1/job/web").is_null(), "deleted");
    settle();

    world.apply(&web("nginx:1.27", 1));
    eventually("web Ready again", || world.ready("web"));
    // A register against the deleted job would lose its check-and-set and fail the reconcile.
    let events = world.events();
    assert!(!events.contains("ReconcileFailed"), "{events}");
}

/// A register Nomad refuses for what the job is (here: a namespace Nomad does not have) is not
/// retried: one Warning, `Invalid` with Nomad's words, no further attempts; a new generation
/// is sent again and, the namespace created meanwhile, lands.
#[test]
fn a_job_nomad_refuses_is_not_sent_again_until_it_changes() {
    let world = World::start(&[]);
    let in_nope = |image: &str| {
        format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: api\n  namespace: nope\nspec:\n  image: {image}\n")
    };
    world.apply(&in_nope("api:1"));
    let invalid = |world: &World| {
        let output = world.nomarch(&["get", "app", "api", "-n", "nope", "-o", "json"], None);
        let object: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        support::condition(&object["status"], "Invalid")
    };
    eventually("Invalid with Nomad's words", || {
        invalid(&world)["status"] == "True"
    });
    let condition = invalid(&world);
    assert_eq!(condition["reason"], "RefusedByNomad");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("nonexistent namespace \"nope\""),
        "{condition}"
    );
    let errors = |world: &World| {
        world
            .controller
            .as_ref()
            .unwrap()
            .metric("nomarch_api_errors_total{api=\"nomad\"}")
    };
    let refused = errors(&world);
    // Resyncs every 2 s and a retry backoff would both have sent it again by now.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(errors(&world), refused, "not sent again");
    let events =
        String::from_utf8_lossy(&world.nomarch(&["events", "-n", "nope"], None).stdout).to_string();
    assert_eq!(events.matches("RegisterRefused").count(), 1, "{events}");
    assert!(!events.contains("ReconcileFailed"), "{events}");

    // The namespace appears and the App changes: the new job is sent, and lands.
    assert_eq!(
        world.put_nomad("/v1/namespace/nope", json!({"Name": "nope"})),
        200
    );
    world.apply(&in_nope("api:2"));
    eventually("registered in nope", || {
        world.nomad("/v1/job/api?namespace=nope")["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
            == "api:2"
    });
    eventually("Invalid cleared", || invalid(&world)["status"] == "False");
}

#[test]
fn changes_made_behind_nomarchs_back_are_restored() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1.27", 2));
    eventually("web Ready", || world.ready("web"));

    // Someone scales the job by hand, keeping nomarch's meta.
    let mut edited = world.nomad("/v1/job/web");
    edited["TaskGroups"][0]["Count"] = json!(5);
    assert_eq!(world.put_nomad("/v1/job/web", json!({"Job": edited})), 200);
    eventually("the count restored", || {
        world.nomad("/v1/job/web")["TaskGroups"][0]["Count"] == 2
    });

    // Someone stops it.
    let response = world
        .http
        .delete(format!("{}/v1/job/web", world.sim.nomad_url()))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually("the job running again", || {
        world.nomad("/v1/job/web")["Stop"] == false
    });
    // Events are recorded off the reconcile path: wait for them.
    eventually("both corrections reported", || {
        let events = world.events();
        events.contains("changed outside nomarch") && events.contains("stopped outside nomarch")
    });
    let metrics = world.controller.as_ref().unwrap().metrics();
    assert!(
        metrics.contains("nomarch_drift_corrections_total{kind=\"App\"} 2"),
        "{metrics}"
    );
}

#[test]
fn deleting_an_app_deregisters_its_job_even_while_the_controller_is_down() {
    let mut world = World::start(&[]);
    world.apply(&web("nginx:1.27", 1));
    let api = web("nginx:1.27", 1).replace("name: web", "name: api");
    world.apply(&api);
    eventually("both Ready", || world.ready("web") && world.ready("api"));

    world.nomarch(&["delete", "app", "web"], None);
    eventually("web stopped", || world.nomad("/v1/job/web")["Stop"] == true);

    // Down: delete api; back up: the orphan sweep stops it.
    let mut controller = world.controller.take().unwrap();
    controller.process.signal(libc::SIGTERM);
    assert_eq!(
        controller.process.wait(Duration::from_secs(20)),
        Some(0),
        "graceful stop:\n{}",
        controller.process.log_text()
    );
    world.nomarch(&["delete", "app", "api"], None);
    assert_eq!(world.nomad("/v1/job/api")["Stop"], false);
    world.restart_controller();
    eventually("api stopped after the restart", || {
        world.nomad("/v1/job/api")["Stop"] == true
    });
    assert!(world.events().contains("Deregistered"));
}

#[test]
fn a_restart_over_a_converged_cluster_writes_nothing() {
    let mut world = World::start(&[]);
    world.apply(&web("nginx:1.27", 2));
    world.apply(&web("redis:7", 1).replace("name: web", "name: cache"));
    eventually("converged", || world.ready("web") && world.ready("cache"));
    settle();
    let before = world.writes().len();
    world.controller.take();
    world.restart_controller();
    settle();
    settle();
    assert_eq!(
        world.writes().len(),
        before,
        "restart over a converged cluster: {:?}",
        &world.writes()[before..]
    );
    assert!(world.ready("web") && world.ready("cache"));
}

#[test]
fn nomad_failures_back_off_and_converge_after_recovery() {
    let world = World::start(&[]);
    assert_eq!(
        // Every Nomad request fails: the register cannot succeed by luck, so failed reconciles
        // are certain. (Consul has faults of its own now, and its failures no longer fail a
        // reconcile, so a partial rate could let the first register through.)
        world.put_nomad("/_sim/chaos", json!({"error_rate": 1.0, "latency_ms": 50})),
        200
    );
    world.apply(&web("nginx:1.27", 1));
    std::thread::sleep(Duration::from_secs(4));
    let controller = world.controller.as_ref().unwrap();
    let metrics = controller.metrics();
    let errors = controller.metric("nomarch_api_errors_total{api=\"nomad\"}");
    assert!(errors > 0.0, "failures are counted:\n{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("nomarch_reconciles_total") && !l.contains("result=\"success\"")), "{metrics}");
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"error_rate": 0, "latency_ms": 0})),
        200
    );
    eventually("converged after recovery", || world.ready("web"));
    let mut world = world;
    assert!(
        world.controller.as_mut().unwrap().process.is_running(),
        "no crash"
    );
}

#[test]
fn diff_shows_the_change_and_writes_nothing() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1.27", 2));
    eventually("web Ready", || world.ready("web"));
    settle();
    let before = world.writes().len();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    let diff_with = |manifest: &str, extra: &[&str]| {
        std::fs::write(&file, manifest).unwrap();
        let output = Command::new(nomarch_bin())
            .env("NOMARCH_ETCD_ENDPOINTS", world.etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .env("NOMAD_ADDR", world.sim.nomad_url())
            .args(["diff", "-f", file.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };
    let diff = |manifest: &str| diff_with(manifest, &[]);
    assert_eq!(
        diff(&web("nginx:1.27", 2)),
        (Some(0), "app/web: no changes\n".to_string()),
        "exit 0: nothing would change"
    );
    let (code, changed) = diff(&web("nginx:1.28", 3));
    assert_eq!(
        code,
        Some(1),
        "exit 1: changes, as `nomad job plan` says it"
    );
    let lines: Vec<&str> = changed.lines().collect();
    assert_eq!(
        &lines[..6],
        [
            "app/web: would register job web (desired job changed)",
            "~ Job: \"web\"",
            "~ Task Group: \"app\" (1 create, 1 create/destroy update, 1 ignore)",
            "  ~ Count: \"2\" => \"3\" (forces create)",
            "  ~ Task: \"app\" (forces create/destroy update)",
            "    ~ Config {",
        ],
        "{changed}"
    );
    assert!(
        changed.contains("~ image: \"nginx:1.27\" => \"nginx:1.28\"")
            && changed.contains("Scheduler dry-run:\n- All tasks successfully allocated."),
        "{changed}"
    );

    // A new job: its group and task, not every empty field of the API form.
    let other = web("nginx:1.27", 2).replace("name: web", "name: api");
    let (code, created) = diff(&other);
    assert_eq!(code, Some(1));
    assert!(
        created.contains("+ Job: \"api\"\n+ Task Group: \"app\" (2 create)\n  + Task: \"app\" (forces create)\n      image nginx:1.27"),
        "{created}"
    );
    assert!(!created.contains("ConsulToken"), "{created}");
    let (code, json) = diff_with(&other, &["-o", "json"]);
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["rule"], "create");
    assert_eq!(
        json[0]["plan"]["Diff"]["Type"], "Added",
        "the full plan for scripts"
    );
    let (code, _) = diff("kind: App\n");
    assert_eq!(
        code,
        Some(2),
        "an invalid manifest is trouble, not a difference"
    );

    assert_eq!(world.writes().len(), before, "diff writes nothing to Nomad");
    assert_eq!(
        world.app("web")["spec"]["image"],
        "nginx:1.27",
        "nor to the store"
    );
}

#[test]
fn sigterm_waits_for_reconciles_in_flight_and_a_second_signal_stops_at_once() {
    let mut world = World::start(&[]);
    // Every Nomad answer now takes 20 s: a reconcile will be in flight.
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"latency_ms": 20_000})),
        200
    );
    world.apply(&web("nginx:1.27", 1));
    std::thread::sleep(Duration::from_secs(1));
    let mut controller = world.controller.take().unwrap();
    controller.process.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        controller.process.is_running(),
        "the first signal lets the reconcile in flight finish"
    );
    assert!(
        controller.process.log_text().contains("shutting down"),
        "{}",
        controller.process.log_text()
    );
    controller.process.signal(libc::SIGTERM);
    assert_eq!(
        controller.process.wait(Duration::from_secs(10)),
        Some(130),
        "the second signal stops it at once"
    );
}

#[test]
fn a_protected_job_is_kept_when_its_app_is_deleted() {
    let world = World::start(&[]);
    let protected = web("nginx:1.27", 1).replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    nomarch.io/protect: \"true\"\n",
    );
    world.apply(&protected);
    eventually("web Ready", || world.ready("web"));
    assert_eq!(
        world.nomad("/v1/job/web")["Meta"]["nomarch.io/protect"],
        "true"
    );
    world.nomarch(&["delete", "app", "web"], None);
    settle();
    assert_eq!(
        world.nomad("/v1/job/web")["Stop"],
        false,
        "protected: neither the delete nor the orphan sweep stops it"
    );
}

/// Consul's catalog has no Nomad namespaces and Traefik serves every instance of a service
/// name behind every router on it: two tenants' `web` get a service (and router) each, and
/// each App reads its own health.
#[test]
fn apps_of_one_name_in_two_namespaces_get_their_own_consul_services() {
    let world = World::start(&[]);
    for ns in ["tenant-a", "tenant-b"] {
        assert_eq!(
            world.put_nomad(&format!("/v1/namespace/{ns}"), json!({"Name": ns})),
            200
        );
        let manifest = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  image: nginx:1.27\n  replicas: 1\n  ports:\n    - name: http\n      containerPort: 80\n  health:\n    port: http\n    path: /healthz\n    interval: 1s\n    timeout: 1s\n  route:\n    host: {ns}.example.com\n"
        );
        assert_eq!(world.apply(&manifest), format!("app/web -n {ns} created\n"));
    }
    let ready = |ns: &str| {
        let out = world.nomarch(&["get", "app", "web", "-n", ns, "-o", "json"], None);
        let app: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        support::is_ready(&app)
    };
    eventually("both Ready", || ready("tenant-a") && ready("tenant-b"));
    let catalog: serde_json::Value = world
        .http
        .get(format!("{}/v1/catalog/services", world.sim.consul_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let services: Vec<(&String, Vec<&str>)> = catalog
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("web"))
        .map(|(name, tags)| {
            let tags = tags
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str())
                .collect();
            (name, tags)
        })
        .collect();
    assert_eq!(services.len(), 2, "one service per tenant: {catalog}");
    for (name, tags) in &services {
        let rules: Vec<&&str> = tags.iter().filter(|t| t.contains(".rule=Host")).collect();
        assert_eq!(rules.len(), 1, "{name}: {tags:?}");
        assert!(
            rules[0].starts_with(&format!("traefik.http.routers.{name}.rule=")),
            "the router is named after the service: {rules:?}"
        );
    }
    let hosts: std::collections::BTreeSet<bool> = services
        .iter()
        .map(|(_, tags)| tags.iter().any(|t| t.contains("tenant-a.example.com")))
        .collect();
    assert_eq!(
        hosts.len(),
        2,
        "each service carries its own tenant's route"
    );
}

/// `nomarch describe` puts one object on one screen: what it is, its conditions, the Nomad job,
/// each allocation with its health from Consul, and the object's events; `-o json` says the
/// same for scripts. A missing object and a wrong kind fail with their exit codes.
#[test]
fn describe_shows_the_object_its_job_allocations_and_events() {
    let world = World::start(&[]);
    let manifest = web("nginx:1", 2);
    world.apply(&manifest);
    eventually("web Ready", || world.ready("web"));
    let consul = world.sim.consul_url();
    let described = world.nomarch(&["describe", "app/web", "--consul-addr", &consul], None);
    let text = String::from_utf8_lossy(&described.stdout).to_string();
    for part in [
        "Name:         web",
        "Kind:         App",
        "  image: nginx:1",
        "  Ready        True     ReplicasHealthy",
        "Nomad job:    web version 0",
        "Allocations:",
        "Events:",
        "Registered",
    ] {
        assert!(text.contains(part), "`{part}` in:\n{text}");
    }
    let healthy_rows = text
        .lines()
        .filter(|l| l.contains(" running ") && l.contains(" passing "))
        .count();
    assert_eq!(healthy_rows, 2, "{text}");

    let json = world.nomarch(
        &[
            "describe",
            "app/web",
            "-o",
            "json",
            "--consul-addr",
            &consul,
        ],
        None,
    );
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["job"]["id"], "web");
    assert_eq!(document["allocations"].as_array().map(Vec::len), Some(2));
    assert_eq!(document["allocations"][0]["health"], "passing");
    assert_eq!(document["object"]["metadata"]["name"], "web");

    let missing = world.nomarch_exit(&["describe", "app/nope"], None);
    assert_eq!(missing.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("app/nope"));
    let wrong = world.nomarch_exit(&["describe", "deployment/web"], None);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unknown kind `deployment`"));
}

/// `spec.nomad` reaches Nomad merged into what nomarch renders; a change behind nomarch's back
/// to an overridden field is put back like any other; `diff` shows an override's change.
#[test]
fn nomad_overrides_reach_the_job_and_are_kept() {
    let world = World::start(&[]);
    let tuned = |kill_timeout: u64| {
        format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: tuned\nspec:\n  image: nginx:1\n  nomad:\n    job:\n      Meta:\n        team: web\n    group:\n      ShutdownDelay: 5000000000\n    task:\n      KillTimeout: {kill_timeout}\n"
        )
    };
    world.apply(&tuned(30_000_000_000));
    eventually("tuned Ready", || world.ready("tuned"));
    let job = world.nomad("/v1/job/tuned");
    assert_eq!(job["Meta"]["team"], "web");
    assert_eq!(job["Meta"]["nomarch.io/managed-by"], "nomarch");
    assert_eq!(job["TaskGroups"][0]["ShutdownDelay"], 5_000_000_000u64);
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["KillTimeout"],
        30_000_000_000u64
    );

    let mut edited = job.clone();
    edited["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!(1_000_000_000u64);
    assert_eq!(
        world.put_nomad("/v1/job/tuned", json!({"Job": edited})),
        200
    );
    eventually("the override put back", || {
        world.nomad("/v1/job/tuned")["TaskGroups"][0]["Tasks"][0]["KillTimeout"]
            == 30_000_000_000u64
    });

    let output = world.nomarch_exit(&["diff", "-f", "-"], Some(&tuned(60_000_000_000)));
    let said = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("~ KillTimeout: \"30000000000\" => \"60000000000\""),
        "{said}"
    );
}
