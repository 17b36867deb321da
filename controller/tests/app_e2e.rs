//! End to end: real etcd, nomad-sim and `nomarch controller` as processes; `nomarch` applies
//! Apps; the tests assert on Nomad's state (through nomad-sim's write log), object status and
//! events.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::etcd::TestEtcd;
use e2e::procs::{ControllerProcess, SimProcess};
use serde_json::{json, Value};

const PREFIX: &str = "/e2e/";

fn nomarch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nomarch"))
}

struct World {
    etcd: TestEtcd,
    sim: SimProcess,
    controller: Option<ControllerProcess>,
    http: reqwest::blocking::Client,
}

impl World {
    fn start(sim_args: &[&str]) -> World {
        let etcd = TestEtcd::start();
        let sim = SimProcess::start(sim_args);
        let controller = Some(ControllerProcess::start(
            &nomarch_bin(),
            &etcd.endpoint(),
            PREFIX,
            &sim,
            &["--resync", "2s"],
        ));
        World {
            etcd,
            sim,
            controller,
            http: e2e::http::blocking_client(),
        }
    }

    fn restart_controller(&mut self) {
        self.controller = Some(ControllerProcess::start(
            &nomarch_bin(),
            &self.etcd.endpoint(),
            PREFIX,
            &self.sim,
            &["--resync", "2s"],
        ));
    }

    fn nomarch(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(nomarch_bin())
            .env("NOMARCH_ETCD_ENDPOINTS", self.etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        drop(pipe);
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "nomarch {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn apply(&self, manifest: &str) -> String {
        String::from_utf8_lossy(&self.nomarch(&["apply", "-f", "-"], Some(manifest)).stdout)
            .to_string()
    }

    fn app(&self, name: &str) -> Value {
        serde_json::from_slice(
            &self
                .nomarch(&["get", "app", name, "-o", "json"], None)
                .stdout,
        )
        .unwrap()
    }

    fn events(&self) -> String {
        String::from_utf8_lossy(&self.nomarch(&["events"], None).stdout).to_string()
    }

    fn nomad(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim.nomad_url()))
            .send()
            .unwrap()
            .json()
            .unwrap_or(Value::Null)
    }

    fn put_nomad(&self, path: &str, body: Value) -> u16 {
        self.http
            .put(format!("{}{path}", self.sim.nomad_url()))
            .json(&body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// Writes nomad-sim accepted, excluding the test's own (which it makes through `/v1/jobs`
    /// with a `test-` marker it then filters).
    fn writes(&self) -> Vec<Value> {
        self.nomad("/_sim/state")["Writes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn ready(&self, name: &str) -> bool {
        let app = self.app_or_null(name);
        app["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            && app["status"]["observedGeneration"] == app["metadata"]["generation"]
    }

    fn app_or_null(&self, name: &str) -> Value {
        let output = Command::new(nomarch_bin())
            .env("NOMARCH_ETCD_ENDPOINTS", self.etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .args(["get", "app", name, "-o", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(45);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

/// Long enough for the controller to have acted on anything pending (a resync is 2s here).
fn settle() {
    std::thread::sleep(Duration::from_secs(3));
}

fn web(image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: {image}\n  replicas: {replicas}\n  ports:\n    - name: http\n      containerPort: 80\n  health:\n    port: http\n    path: /healthz\n    interval: 1s\n    timeout: 500ms\n    grace: 5s\n"
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
    let events = world.events();
    assert!(events.matches("DriftCorrected").count() >= 1, "{events}");
    assert!(
        events.contains("changed outside nomarch") && events.contains("stopped outside nomarch"),
        "{events}"
    );
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
        world.put_nomad("/_sim/chaos", json!({"error_rate": 0.7, "latency_ms": 50})),
        200
    );
    world.apply(&web("nginx:1.27", 1));
    std::thread::sleep(Duration::from_secs(4));
    let metrics = world.controller.as_ref().unwrap().metrics();
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("nomarch_api_errors_total{api=\"nomad\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(errors > 0.0, "failures are counted:\n{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("nomarch_reconciles_total") && !l.contains("result=\"success\"")), "{metrics}");
    assert_eq!(
        world.put_nomad("/_sim/chaos", json!({"error_rate": 0, "latency_ms": 0})),
        200
    );
    eventually("converged after recovery", || world.ready("web"));
    let mut controller = world.controller;
    assert!(
        controller.as_mut().unwrap().process.is_running(),
        "no crash"
    );
    let _ = Path::new(PREFIX);
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
    let diff = |manifest: &str| {
        std::fs::write(&file, manifest).unwrap();
        let output = Command::new(nomarch_bin())
            .env("NOMARCH_ETCD_ENDPOINTS", world.etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .env("NOMAD_ADDR", world.sim.nomad_url())
            .args(["diff", "-f", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(diff(&web("nginx:1.27", 2)), "app/web: no changes\n");
    let changed = diff(&web("nginx:1.28", 3));
    assert!(
        changed.starts_with("app/web: would register job web (spec changed)"),
        "{changed}"
    );
    assert!(
        changed.contains("nginx:1.27") && changed.contains("nginx:1.28"),
        "{changed}"
    );
    assert!(
        changed.contains("Count") && changed.contains("\"2\" => \"3\""),
        "{changed}"
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
