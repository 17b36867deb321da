//! Shared by the end-to-end tests: real etcd, nomad-sim and `nomarch controller` as processes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::etcd::TestEtcd;
use e2e::procs::{ControllerProcess, SimProcess};
use serde_json::Value;

pub const PREFIX: &str = "/e2e/";

pub fn nomarch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nomarch"))
}

pub struct World {
    pub etcd: TestEtcd,
    pub sim: SimProcess,
    pub controller: Option<ControllerProcess>,
    pub http: reqwest::blocking::Client,
}

impl World {
    /// etcd and nomad-sim only; `restart_controller` starts the controller.
    pub fn without_controller(sim_args: &[&str]) -> World {
        let etcd = TestEtcd::start();
        let sim = SimProcess::start(sim_args);
        World {
            etcd,
            sim,
            controller: None,
            http: e2e::http::blocking_client(),
        }
    }

    /// An object as `nomarch get KIND NAME -o json` shows it (null when missing).
    pub fn object(&self, kind: &str, name: &str) -> Value {
        let output = Command::new(nomarch_bin())
            .env("NOMARCH_ETCD_ENDPOINTS", self.etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .args(["get", kind, name, "-o", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    pub fn is_ready(&self, kind: &str, name: &str) -> bool {
        is_ready(&self.object(kind, name))
    }

    pub fn start(sim_args: &[&str]) -> World {
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

    /// Replaces the controller with one started with these extra flags.
    /// Replaces the controller (stopped gracefully, so it gives its lease up) with one started
    /// with these extra flags, and waits until the new one leads.
    pub fn restart_controller_with(&mut self, extra: &[&str]) {
        if let Some(mut old) = self.controller.take() {
            old.stop();
        }
        let mut args = vec!["--resync", "2s"];
        args.extend_from_slice(extra);
        let mut controller = ControllerProcess::start(
            &nomarch_bin(),
            &self.etcd.endpoint(),
            PREFIX,
            &self.sim,
            &args,
        );
        controller.wait_leading();
        self.controller = Some(controller);
    }

    pub fn restart_controller(&mut self) {
        self.restart_controller_with(&[]);
    }

    /// Runs the CLI against this world, whatever its exit status.
    pub fn nomarch_exit(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let nomad = self.sim.nomad_url();
        run_nomarch(
            &self.etcd.endpoint(),
            &[("NOMAD_ADDR", &nomad)],
            args,
            stdin,
        )
    }

    pub fn nomarch(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let output = self.nomarch_exit(args, stdin);
        assert!(
            output.status.success(),
            "nomarch {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A new API token's secret, as `nomarch token create NAME ARGS...` prints it.
    pub fn token(&self, name: &str, args: &[&str]) -> String {
        let mut full = vec!["token", "create", name];
        full.extend_from_slice(args);
        String::from_utf8(self.nomarch(&full, None).stdout)
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn apply(&self, manifest: &str) -> String {
        String::from_utf8_lossy(&self.nomarch(&["apply", "-f", "-"], Some(manifest)).stdout)
            .to_string()
    }

    pub fn app(&self, name: &str) -> Value {
        serde_json::from_slice(
            &self
                .nomarch(&["get", "app", name, "-o", "json"], None)
                .stdout,
        )
        .unwrap()
    }

    pub fn events(&self) -> String {
        String::from_utf8_lossy(&self.nomarch(&["events"], None).stdout).to_string()
    }

    pub fn nomad(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim.nomad_url()))
            .send()
            .unwrap()
            .json()
            .unwrap_or(Value::Null)
    }

    pub fn put_nomad(&self, path: &str, body: Value) -> u16 {
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
    pub fn writes(&self) -> Vec<Value> {
        self.nomad("/_sim/state")["Writes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The allocations of `job` that run (desired and client status both say so).
    pub fn running_allocs(&self, job: &str) -> Vec<Value> {
        self.nomad(&format!("/v1/job/{job}/allocations"))
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
            .cloned()
            .collect()
    }

    pub fn ready(&self, name: &str) -> bool {
        let app = self.app_or_null(name);
        app["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            && app["status"]["observedGeneration"] == app["metadata"]["generation"]
    }

    pub fn app_or_null(&self, name: &str) -> Value {
        let output = Command::new(nomarch_bin())
            .env("NOMARCH_ETCD_ENDPOINTS", self.etcd.endpoint())
            .env("NOMARCH_PREFIX", PREFIX)
            .args(["get", "app", name, "-o", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }
}

pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(45), check);
}

/// As [`eventually`], for what legitimately takes longer (a thousand objects on a debug build
/// on a shared machine); only a hang should fail.
pub fn eventually_within(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

/// Long enough for the controller to have acted on anything pending (a resync is 2s here).
pub fn settle() {
    std::thread::sleep(Duration::from_secs(3));
}

impl Drop for World {
    /// A failing test shows what the controller and nomad-sim said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(controller) = &self.controller {
                eprintln!("--- controller log ---\n{}", controller.process.log_text());
            }
            eprintln!("--- nomad-sim log ---\n{}", self.sim.process.log_text());
        }
    }
}

/// A GitHub-style webhook signature (`X-Hub-Signature-256`) of `body` with `secret`.
pub fn sign(body: &[u8], secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs the `nomarch` CLI against this etcd with more environment, feeding `stdin`; its output,
/// whatever the exit status.
pub fn run_nomarch(
    etcd: &str,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(nomarch_bin())
        .env("NOMARCH_ETCD_ENDPOINTS", etcd)
        .env("NOMARCH_PREFIX", PREFIX)
        .envs(env.iter().copied())
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
    child.wait_with_output().unwrap()
}

/// Runs git in `dir` as a fixed author; fails the test with git's own words.
pub fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether an object (as `nomarch get -o json` shows it) is Ready at its current generation.
pub fn is_ready(object: &Value) -> bool {
    condition(&object["status"], "Ready")["status"] == "True"
        && object["status"]["observedGeneration"] == object["metadata"]["generation"]
}

/// One condition of a status, null when it has none of that type.
pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

/// A bare "state repo" and a working clone that pushes to it.
pub struct StateRepo {
    pub _dir: tempfile::TempDir,
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl StateRepo {
    pub fn new() -> StateRepo {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("state.git");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "state.git"],
        );
        git(dir.path(), &["clone", "-q", "state.git", "work"]);
        git(&work, &["checkout", "-q", "-b", "main"]);
        StateRepo {
            _dir: dir,
            bare,
            work,
        }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    pub fn write(&self, path: &str, text: &str) {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.work.join(path)).unwrap();
    }

    /// Commits everything and pushes; returns the new commit id.
    pub fn push(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        let head = Command::new("git")
            .current_dir(&self.work)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        String::from_utf8(head.stdout).unwrap().trim().to_string()
    }
}
