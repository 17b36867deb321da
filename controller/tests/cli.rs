//! The `nomarch` binary as people run it: exit codes, output, and what ends up in etcd.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use controller::store::Store;
use e2e::etcd::TestEtcd;

const PREFIX: &str = "/cli-test/";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn examples() -> PathBuf {
    repo_root().join("manifests/examples")
}

/// Runs nomarch with a clean environment for the endpoint variables.
fn nomarch(etcd: Option<&TestEtcd>, args: &[&str], stdin: Option<&str>) -> Output {
    nomarch_with(etcd, &[], args, stdin)
}

/// [`nomarch`] with more environment (`NOMAD_ADDR` of a nomad-sim).
fn nomarch_with(
    etcd: Option<&TestEtcd>,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nomarch"));
    command
        .env_remove("NOMARCH_ETCD_ENDPOINTS")
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("NOMAD_ADDR")
        .env("NOMARCH_PREFIX", PREFIX)
        .envs(env.iter().copied());
    if let Some(etcd) = etcd {
        command.env("NOMARCH_ETCD_ENDPOINTS", etcd.endpoint());
    }
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("nomarch runs");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

async fn store(etcd: &TestEtcd) -> Store {
    Store::connect(&[etcd.endpoint()], PREFIX).await.unwrap()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn validate_is_offline_and_reports_every_error() {
    let ok = nomarch(
        None,
        &[
            "--etcd",
            "http://127.0.0.1:1",
            "validate",
            "-f",
            examples().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(stdout(&ok).contains("app/website valid"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: a\nspec:\n  image: ''\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: nomarch.io/v1alpha1\nkind: Ap\n",
    )
    .unwrap();
    let bad = nomarch(
        None,
        &["validate", "-f", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code(&bad), 1);
    let errors = stderr(&bad);
    assert!(
        errors.contains("a.yaml:6:3: spec.image: must not be empty"),
        "{errors}"
    );
    assert!(
        errors.contains("b.yaml:2:1: kind: unknown kind `Ap` (did you mean `App`?)"),
        "{errors}"
    );
    assert!(errors.contains("2 error(s)"), "{errors}");
}

#[tokio::test]
async fn apply_of_a_directory_with_one_bad_file_writes_nothing() {
    let etcd = TestEtcd::start();
    let dir = tempfile::tempdir().unwrap();
    for entry in ["apps/website.yaml", "apps/api.yaml", "pubs/alice.yaml"] {
        let name = entry.replace('/', "-");
        std::fs::copy(examples().join(entry), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("zz-broken.yaml"), "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: broken\nspec:\n  image: x\n  replicas: -1\n").unwrap();
    let store = store(&etcd).await;
    let before = store.revision().await.unwrap();

    let output = nomarch(
        Some(&etcd),
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("zz-broken.yaml:7:3: spec.replicas: expected an integer"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(
        store.revision().await.unwrap(),
        before,
        "etcd must be untouched"
    );
    let (objects, _) = store.list(None).await.unwrap();
    assert!(objects.is_empty());
}

#[tokio::test]
async fn apply_reports_like_kubectl_and_reapplying_writes_nothing() {
    let etcd = TestEtcd::start();
    // The examples hold a NomadJob: its HCL is read by Nomad before anything is written.
    let sim = e2e::procs::SimProcess::start(&[]);
    let nomad_url = sim.nomad_url();
    let nomad = [("NOMAD_ADDR", nomad_url.as_str())];
    let examples = examples();
    let first = nomarch_with(
        Some(&etcd),
        &nomad,
        &["apply", "-f", examples.to_str().unwrap()],
        None,
    );
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert_eq!(
        sorted_lines(&stdout(&first)),
        [
            "app/api created",
            "app/redis created",
            "app/website created",
            "cronjob/cache-warmer created",
            "cronjob/nightly-backup created",
            "nomadjob/whoami created",
            "pub/pub-alice created",
            "pub/pub-bob created",
            "pub/pub-carol created",
            "pub/pub-dave created",
        ]
    );

    let store = store(&etcd).await;
    let before = store.revision().await.unwrap();
    let again = nomarch_with(
        Some(&etcd),
        &nomad,
        &["apply", "-f", examples.to_str().unwrap()],
        None,
    );
    assert_eq!(code(&again), 0);
    assert!(
        stdout(&again).lines().all(|l| l.ends_with(" unchanged")),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        store.revision().await.unwrap(),
        before,
        "re-applying the same files writes nothing"
    );

    // A change through standard input.
    let edited = std::fs::read_to_string(examples.join("apps/redis.yaml"))
        .unwrap()
        .replace("7.4-alpine", "7.4.1-alpine");
    let configured = nomarch(Some(&etcd), &["apply", "-f", "-"], Some(&edited));
    assert_eq!(
        stdout(&configured),
        "app/redis configured\n",
        "{}",
        stderr(&configured)
    );

    let events = nomarch(Some(&etcd), &["events"], None);
    let text = stdout(&events);
    assert!(
        text.contains("Created") && text.contains("app/website"),
        "{text}"
    );
    assert!(
        text.contains("Configured") && text.contains("app/redis"),
        "{text}"
    );
}

#[tokio::test]
async fn get_shows_tables_yaml_and_json() {
    let etcd = TestEtcd::start();
    let apply = nomarch(
        Some(&etcd),
        &["apply", "-f", examples().join("apps").to_str().unwrap()],
        None,
    );
    assert_eq!(code(&apply), 0);

    let table = stdout(&nomarch(Some(&etcd), &["get", "apps"], None));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "REPLICAS", "READY", "STATE", "AGE"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("website") && l.contains(" 3 ")),
        "{table}"
    );

    let wide = stdout(&nomarch(Some(&etcd), &["get", "app", "-o", "wide"], None));
    assert!(
        wide.contains("GENERATION") && wide.contains("nginx:1.27-alpine"),
        "{wide}"
    );

    let json = nomarch(Some(&etcd), &["get", "app", "website", "-o", "json"], None);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["spec"]["replicas"], 3);
    assert_eq!(value["metadata"]["generation"], 1);

    // YAML output is a manifest again: it validates and re-applies as unchanged.
    let yaml = stdout(&nomarch(
        Some(&etcd),
        &["get", "app", "website", "-o", "yaml"],
        None,
    ));
    let reapplied = nomarch(Some(&etcd), &["apply", "-f", "-"], Some(&yaml));
    assert_eq!(
        stdout(&reapplied),
        "app/website unchanged\n",
        "{}",
        stderr(&reapplied)
    );

    let missing = nomarch(Some(&etcd), &["get", "app", "nope"], None);
    assert_eq!(code(&missing), 5);
    assert!(stderr(&missing).contains("app/nope not found"));

    let bad_kind = nomarch(Some(&etcd), &["get", "deployments"], None);
    assert_eq!(code(&bad_kind), 2);
}

#[tokio::test]
async fn stale_resource_version_from_a_file_is_a_conflict() {
    let etcd = TestEtcd::start();
    nomarch(
        Some(&etcd),
        &[
            "apply",
            "-f",
            examples().join("apps/redis.yaml").to_str().unwrap(),
        ],
        None,
    );
    let yaml = stdout(&nomarch(
        Some(&etcd),
        &["get", "app", "redis", "-o", "yaml"],
        None,
    ));
    // Someone else changes it after we read it.
    let edited = std::fs::read_to_string(examples().join("apps/redis.yaml"))
        .unwrap()
        .replace("replicas: 1", "replicas: 2");
    assert_eq!(
        code(&nomarch(Some(&etcd), &["apply", "-f", "-"], Some(&edited))),
        0
    );

    let ours = yaml.replace("replicas: 1", "replicas: 3");
    let conflict = nomarch(Some(&etcd), &["apply", "-f", "-"], Some(&ours));
    assert_eq!(code(&conflict), 4, "{}", stderr(&conflict));
    assert!(
        stderr(&conflict).contains("changed by someone else"),
        "{}",
        stderr(&conflict)
    );
    let json = nomarch(Some(&etcd), &["get", "app", "redis", "-o", "json"], None);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        value["spec"]["replicas"], 2,
        "the conflicting write did not land"
    );
}

#[tokio::test]
async fn delete_by_name_and_by_file() {
    let etcd = TestEtcd::start();
    let apps = examples().join("apps");
    nomarch(Some(&etcd), &["apply", "-f", apps.to_str().unwrap()], None);

    let by_name = nomarch(Some(&etcd), &["delete", "app", "redis"], None);
    assert_eq!(stdout(&by_name), "app/redis deleted\n");
    let again = nomarch(Some(&etcd), &["delete", "app", "redis"], None);
    assert_eq!(code(&again), 5);

    let by_file = nomarch(Some(&etcd), &["delete", "-f", apps.to_str().unwrap()], None);
    assert_eq!(code(&by_file), 5, "redis is already gone");
    assert_eq!(
        sorted_lines(&stdout(&by_file)),
        ["app/api deleted", "app/website deleted"]
    );
    let (left, _) = store(&etcd).await.list(None).await.unwrap();
    assert!(left.is_empty());
}

#[test]
fn unreachable_etcd_exits_3_and_names_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let output = nomarch(None, &["--etcd", &endpoint, "get", "apps"], None);
    assert_eq!(code(&output), 3);
    assert!(stderr(&output).contains(&endpoint), "{}", stderr(&output));
    // The day-2 commands too: nothing is half done, the same exit.
    for command in [
        &["stop", "app/web"][..],
        &["suspend", "app/web"],
        &["reconcile", "app/web"],
        &["logs", "app/web"],
    ] {
        let mut args = vec!["--etcd", endpoint.as_str()];
        args.extend_from_slice(command);
        let output = nomarch(None, &args, None);
        assert_eq!(code(&output), 3, "{command:?}: {}", stderr(&output));
    }
}

/// `logs` and `describe` with Nomad away: the object is found, Nomad's absence is said (exit 6
/// for logs, which has nothing else to show).
#[test]
fn logs_says_when_nomad_does_not_answer() {
    let etcd = TestEtcd::start();
    let app = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n";
    assert_eq!(
        code(&nomarch(Some(&etcd), &["apply", "-f", "-"], Some(app))),
        0
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let output = nomarch(
        Some(&etcd),
        &["logs", "app/web", "--nomad-addr", &closed],
        None,
    );
    assert_eq!(code(&output), 6, "{}", stderr(&output));
    assert!(stderr(&output).contains("Nomad"), "{}", stderr(&output));
}

#[tokio::test]
async fn etcdctl_endpoints_is_the_fallback() {
    let etcd = TestEtcd::start();
    let output = Command::new(env!("CARGO_BIN_EXE_nomarch"))
        .env_remove("NOMARCH_ETCD_ENDPOINTS")
        .env("ETCDCTL_ENDPOINTS", etcd.endpoint())
        .args(["get", "apps"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn schema_prints_the_checked_in_file_and_help_lists_exit_codes() {
    let output = nomarch(None, &["schema", "pubs"], None);
    let checked_in = std::fs::read_to_string(repo_root().join("crds/schemas/pub.json")).unwrap();
    assert_eq!(stdout(&output), checked_in);
    let help = stdout(&nomarch(None, &["--help"], None));
    assert!(
        help.contains("Exit codes:") && help.contains("4  conflict"),
        "{help}"
    );
}

#[tokio::test]
async fn events_watch_streams_new_events() {
    let etcd = TestEtcd::start();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_nomarch"))
        .env("NOMARCH_ETCD_ENDPOINTS", etcd.endpoint())
        .env("NOMARCH_PREFIX", PREFIX)
        .args(["events", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watcher.stdout.take().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    // The watcher may still be starting; apply until its line shows up.
    let mut seen = None;
    for attempt in 0..50 {
        let name = format!("w{attempt}");
        let text = format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: x\n");
        nomarch(Some(&etcd), &["apply", "-f", "-"], Some(&text));
        if let Ok(line) = receiver.recv_timeout(Duration::from_millis(200)) {
            seen = Some(line);
            break;
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let line = seen.expect("events --watch printed a new event");
    assert!(line.contains("Created") && line.contains("app/w"), "{line}");
}

/// `nomarch completion SHELL` prints a hook its shell accepts (`-n`: read, run nothing); in
/// bash, the hook completes subcommands, and `KIND/NAME` arguments with the kinds and then the
/// names stored in etcd (and just the kinds when etcd does not answer).
#[test]
fn completion_hooks_parse_in_their_shells_and_complete_object_names() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = nomarch(None, &["completion", shell], None);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains("NOMARCH_COMPLETE"), "{shell}: {script}");
        let path = dir.path().join(format!("nomarch.{shell}"));
        std::fs::write(&path, &script).unwrap();
        // Run where the script is, with $PWD saying so: a shell whose $PWD is not its folder
        // (cargo runs tests in the package folder and leaves $PWD alone) walks up through `..`
        // to find out where it is.
        let checked = Command::new(shell)
            .arg("-n")
            .arg(&path)
            .current_dir(dir.path())
            .env("PWD", dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{shell} (installed by make deps): {e}"));
        assert!(
            checked.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    let etcd = TestEtcd::start();
    let apps = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: worker\n  namespace: jobs\nspec:\n  image: nginx:1\n---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: api\nspec:\n  image: nginx:1\n";
    assert_eq!(
        code(&nomarch(Some(&etcd), &["apply", "-f", "-"], Some(apps))),
        0
    );
    // What bash offers for the last word of a command line, through the hook.
    let offered = |endpoint: &str, words: &[&str]| -> Vec<String> {
        let hook = dir.path().join("nomarch.bash");
        let line = words.join(" ");
        let script = format!(
            "source {}\nCOMP_WORDS=({line})\nCOMP_CWORD={}\n_clap_complete_nomarch nomarch {} {}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            hook.display(),
            words.len() - 1,
            words.last().unwrap(),
            words[words.len() - 2],
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .env("PWD", dir.path())
            .env("NOMARCH_ETCD_ENDPOINTS", endpoint)
            .env("NOMARCH_PREFIX", PREFIX)
            .output()
            .unwrap();
        let mut said: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        said.sort();
        said
    };
    let endpoint = etcd.endpoint();
    assert!(offered(&endpoint, &["nomarch", "desc"]).contains(&"describe".to_string()));
    assert_eq!(offered(&endpoint, &["nomarch", "logs", "ap"]), ["app/"]);
    assert_eq!(
        offered(&endpoint, &["nomarch", "describe", "app/w"]),
        ["app/web", "app/worker"]
    );
    assert_eq!(
        offered(&endpoint, &["nomarch", "rollout", "status", "app/"]),
        ["app/api", "app/web", "app/worker"]
    );
    assert_eq!(
        offered("http://127.0.0.1:9", &["nomarch", "stop", "app/w"]),
        Vec::<String>::new(),
        "etcd away: no names, and no hang"
    );
}

/// A reader that stops early (`nomarch ... | head -1`) ends the command quietly, with the
/// status of a Unix tool killed by SIGPIPE (141), instead of a panic on the closed pipe.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Far more output than a pipe holds: one line per document.
    let manifest: String = (0..3000)
        .map(|i| {
            format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: a{i}\nspec:\n  image: nginx:1\n---\n")
        })
        .collect();
    let file = dir.path().join("many.yaml");
    std::fs::write(&file, manifest).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nomarch"))
        .args(["validate", "-f", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("app/a0 valid"), "{first}");
    // The reader is gone now.
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(141), "{:?}", output.status);
    assert_eq!(stderr(&output), "", "nothing said on the way out");
}

/// `get -l` keeps the objects whose labels match, `--sort-by` orders by a field, and
/// `events --since` keeps what was seen in that last while; malformed ones are usage errors.
#[test]
fn get_selects_by_label_and_sorts_and_events_look_back() {
    let etcd = TestEtcd::start();
    let app = |name: &str, tier: &str, replicas: u32| {
        format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\n  labels:\n    tier: {tier}\nspec:\n  image: nginx:1\n  replicas: {replicas}\n---\n")
    };
    let manifests = [
        app("a", "front", 3),
        app("b", "back", 1),
        app("c", "front", 2),
    ]
    .concat();
    assert_eq!(
        code(&nomarch(
            Some(&etcd),
            &["apply", "-f", "-"],
            Some(&manifests)
        )),
        0
    );
    let names = |args: &[&str]| -> Vec<String> {
        let out = nomarch(Some(&etcd), args, None);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect()
    };
    assert_eq!(names(&["get", "apps", "-l", "tier=front"]), ["a", "c"]);
    assert_eq!(names(&["get", "apps", "-l", "tier!=front"]), ["b"]);
    assert_eq!(
        names(&["get", "apps", "--sort-by", ".spec.replicas"]),
        ["b", "c", "a"]
    );
    assert_eq!(
        names(&["get", "apps", "-l", "tier", "--sort-by", ".metadata.name"]),
        ["a", "b", "c"]
    );
    let bad = nomarch(Some(&etcd), &["get", "apps", "-l", "tier in (front)"], None);
    assert_eq!(code(&bad), 2);
    assert!(stderr(&bad).contains("set selectors"), "{}", stderr(&bad));

    let recent = nomarch(Some(&etcd), &["events", "--since", "1h"], None);
    assert_eq!(
        stdout(&recent).matches("Created").count(),
        3,
        "{}",
        stdout(&recent)
    );
    let none = nomarch(Some(&etcd), &["events", "--since", "1ns"], None);
    assert_eq!(
        stdout(&none),
        "",
        "everything was seen before this command started"
    );
}

/// `get -w` on a pipe: the table once, then a line for each object whose row changed (not the
/// others), as `kubectl get -w` prints them; with `-o yaml` it is a usage error.
#[test]
fn get_watch_prints_the_rows_that_change() {
    use std::io::BufRead;
    let etcd = TestEtcd::start();
    let app = |name: &str, replicas: u32| {
        format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: nginx:1\n  replicas: {replicas}\n")
    };
    let apply = |manifest: &str| {
        let out = nomarch(Some(&etcd), &["apply", "-f", "-"], Some(manifest));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    apply(&format!("{}---\n{}", app("a", 1), app("b", 1)));
    let mut child = Command::new(env!("CARGO_BIN_EXE_nomarch"))
        .env("NOMARCH_ETCD_ENDPOINTS", etcd.endpoint())
        .env("NOMARCH_PREFIX", PREFIX)
        .args(["get", "apps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a line")
    };
    let first: Vec<String> = (0..3).map(|_| next()).collect();
    assert!(first[0].starts_with("NAME"), "{first:?}");
    assert!(
        first[1].starts_with("a ") && first[2].starts_with("b "),
        "{first:?}"
    );

    apply(&app("a", 5));
    let changed = next();
    let cells: Vec<&str> = changed.split_whitespace().collect();
    assert_eq!(&cells[..2], ["a", "5"], "{changed}");
    apply(&app("c", 2));
    let added = next();
    assert!(
        added.starts_with("c "),
        "only the new row, not b again: {added}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let yaml = nomarch(Some(&etcd), &["get", "apps", "-w", "-o", "yaml"], None);
    assert_eq!(code(&yaml), 2, "{}", stderr(&yaml));
}
