//! Day-2 acts end to end (real etcd, nomad-sim and the controller as processes): `stop` and
//! `start`, `suspend` and `resume`, `reconcile` now.

mod support;

use serde_json::{json, Value};
use support::{condition, eventually, settle, World};

fn web(replicas: u32) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  replicas: {replicas}\n  ports:\n    - name: http\n      containerPort: 80\n  health:\n    port: http\n    path: /healthz\n    interval: 1s\n    timeout: 1s\n    grace: 5s\n"
    )
}

fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn running(world: &World, job: &str) -> usize {
    world.running_allocs(job).len()
}

fn writes_to(world: &World, job: &str) -> Vec<Value> {
    world
        .writes()
        .into_iter()
        .filter(|w| w["job_id"] == job)
        .collect()
}

/// The row `nomarch get KIND` prints for one object, cells by header.
fn row(world: &World, kind: &str, name: &str) -> std::collections::BTreeMap<String, String> {
    let text = String::from_utf8_lossy(&world.nomarch(&["get", kind], None).stdout).to_string();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let cells: Vec<&str> = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
        .split_whitespace()
        .collect();
    header
        .iter()
        .zip(cells)
        .map(|(h, c)| (h.to_string(), c.to_string()))
        .collect()
}

#[test]
fn stop_runs_nothing_and_start_brings_every_instance_back() {
    let world = World::start(&[]);
    world.apply(&web(2));
    eventually("web Ready", || world.ready("web"));
    let writes_before = writes_to(&world, "web").len();

    let stop = world.nomarch_exit(&["stop", "app/web", "--timeout", "60s"], None);
    assert_eq!(stop.status.code(), Some(0), "{}", said(&stop));
    assert!(
        said(&stop).contains("app/web: succeeded: stopped: no instance runs"),
        "{}",
        said(&stop)
    );
    // The job is kept, stopped by a check-and-set register (not a deregister), and nothing runs.
    let job = world.nomad("/v1/job/web");
    assert_eq!(
        (job["Stop"].clone(), job["Status"].clone()),
        (json!(true), json!("dead"))
    );
    assert_eq!(running(&world, "web"), 0);
    let writes = writes_to(&world, "web");
    assert_eq!(writes.len(), writes_before + 1, "one write: {writes:?}");
    let stop_write = writes.last().unwrap();
    assert_eq!(
        (stop_write["method"].as_str(), stop_write["path"].as_str()),
        (Some("PUT"), Some("/v1/job/web")),
        "a register, not a deregister: {stop_write}"
    );
    let app = world.app("web");
    assert_eq!(app["spec"]["stopped"], true);
    assert_eq!(condition(&app["status"], "Stopped")["status"], "True");
    assert_eq!(condition(&app["status"], "Ready")["reason"], "Stopped");
    assert_eq!(condition(&app["status"], "Degraded")["status"], "False");
    assert_eq!(row(&world, "apps", "web")["STATE"], "Stopped");
    eventually("the stop is said", || world.events().contains("Stopped"));

    // Stopped stays stopped: nothing heals it or registers it again.
    settle();
    assert_eq!(writes_to(&world, "web").len(), writes_before + 1);
    let again = world.nomarch_exit(&["stop", "app/web", "--no-wait"], None);
    assert!(said(&again).contains("stopped already"), "{}", said(&again));

    let start = world.nomarch_exit(&["start", "app/web", "--timeout", "60s"], None);
    assert_eq!(start.status.code(), Some(0), "{}", said(&start));
    assert!(
        said(&start).contains("app/web: succeeded"),
        "{}",
        said(&start)
    );
    assert_eq!(world.nomad("/v1/job/web")["Stop"], false);
    assert_eq!(running(&world, "web"), 2);
    let app = world.app("web");
    assert!(condition(&app["status"], "Stopped").is_null(), "{app}");
    assert_eq!(row(&world, "apps", "web")["STATE"], "Active");
    let events = world.events();
    assert!(
        events.contains("Started") && !events.contains("DriftCorrected"),
        "a start is not a drift correction:\n{events}"
    );
}

#[test]
fn stop_and_start_refuse_kinds_that_do_not_run_and_objects_that_are_missing() {
    let world = World::start(&[]);
    world.apply(
        "apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  schedule: \"0 3 * * *\"\n  task:\n    image: busybox\n",
    );
    world.apply(&web(1));
    let cron = world.nomarch_exit(&["stop", "app/web", "cronjob/nightly"], None);
    assert_eq!(cron.status.code(), Some(2), "{}", said(&cron));
    assert!(said(&cron).contains("spec.suspend"), "{}", said(&cron));
    assert!(
        world.app("web")["spec"]["stopped"].is_null(),
        "each object is checked before any is written"
    );
    let missing = world.nomarch_exit(&["start", "app/nowhere"], None);
    assert_eq!(missing.status.code(), Some(5), "{}", said(&missing));
    let wrong = world.nomarch_exit(&["stop", "widget/x"], None);
    assert_eq!(wrong.status.code(), Some(2), "{}", said(&wrong));
}

#[test]
fn a_suspended_app_is_left_alone_until_resumed() {
    let world = World::start(&[]);
    world.apply(&web(2));
    eventually("web Ready", || world.ready("web"));

    let suspend = world.nomarch(&["suspend", "app/web"], None);
    assert!(said(&suspend).contains("suspended"), "{}", said(&suspend));
    eventually("the suspension recorded", || {
        condition(&world.app("web")["status"], "Suspended")["status"] == "True"
    });
    assert_eq!(row(&world, "apps", "web")["STATE"], "Suspended");
    let described = said(&world.nomarch(&["describe", "app/web"], None));
    assert!(
        described.contains("State:        Suspended (since"),
        "{described}"
    );

    // A change behind nomarch's back stays while it is suspended; what runs keeps running.
    let mut edited = world.nomad("/v1/job/web");
    edited["TaskGroups"][0]["Count"] = json!(3);
    assert_eq!(world.put_nomad("/v1/job/web", json!({"Job": edited})), 200);
    eventually("3 running", || running(&world, "web") == 3);
    settle();
    assert_eq!(world.nomad("/v1/job/web")["TaskGroups"][0]["Count"], 3);
    let reconcile = world.nomarch_exit(&["reconcile", "app/web"], None);
    assert_eq!(reconcile.status.code(), Some(2), "{}", said(&reconcile));
    assert!(
        said(&reconcile).contains("is suspended"),
        "{}",
        said(&reconcile)
    );

    world.nomarch(&["resume", "app/web"], None);
    eventually("the count restored", || {
        world.nomad("/v1/job/web")["TaskGroups"][0]["Count"] == 2
    });
    let app = world.app("web");
    assert!(condition(&app["status"], "Suspended").is_null(), "{app}");
    let events = world.events();
    let suspended = events.find("Suspended").expect("a Suspended event");
    let resumed = events.find("Resumed").expect("a Resumed event");
    assert!(suspended < resumed, "{events}");
}

#[test]
fn reconcile_now_runs_at_once_and_reports_the_outcome() {
    let world = World::start(&[]);
    world.apply(&web(1));
    eventually("web Ready", || world.ready("web"));
    let reconcile = world.nomarch_exit(&["reconcile", "app/web", "--timeout", "60s"], None);
    assert_eq!(reconcile.status.code(), Some(0), "{}", said(&reconcile));
    assert!(
        said(&reconcile).contains("app/web: succeeded"),
        "{}",
        said(&reconcile)
    );
    let app = world.app("web");
    let token = &app["metadata"]["annotations"]["nomarch.io/reconcile-requested-at"];
    assert!(token.is_string(), "{app}");
    assert_eq!(&app["status"]["lastHandledReconcileAt"], token);
    // A request is not a new generation: nothing to roll out.
    assert_eq!(app["metadata"]["generation"], 1);

    let applied_by_hand = world.nomarch_exit(&["reconcile", "app/web", "--with-source"], None);
    assert_eq!(
        applied_by_hand.status.code(),
        Some(2),
        "{}",
        said(&applied_by_hand)
    );
}
