//! A real three-member etcd, as a production install runs it: the CLI and the controller keep
//! working with any one member down, across a leader being killed mid-apply, and say
//! "unreachable" only when no member answers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::etcd::TestEtcdCluster;
use e2e::procs::{ControllerProcess, SimProcess};
use serde_json::Value;
use support::{eventually, nomarch_bin, run_nomarch, PREFIX};

fn app(name: &str, image: &str) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  replicas: 1\n---\n"
    )
}

/// The endpoints with `first` listed first, so the CLI's first try goes to it.
fn endpoints_starting_with(cluster: &TestEtcdCluster, first: usize) -> String {
    let mut endpoints = cluster.endpoints();
    endpoints.rotate_left(first);
    endpoints.join(",")
}

fn nomarch_ok(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let output = run_nomarch(endpoints, &[], args, stdin);
    assert!(
        output.status.success(),
        "nomarch {args:?} failed against {endpoints}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn object(endpoints: &str, name: &str) -> Value {
    let output = run_nomarch(endpoints, &[], &["get", "app", name, "-o", "json"], None);
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

fn ready(endpoints: &str, name: &str) -> bool {
    support::is_ready(&object(endpoints, name))
}

#[test]
fn the_cli_works_with_any_one_member_down() {
    let mut cluster = TestEtcdCluster::start(3);
    let leader = cluster.leader().expect("a leader after start");
    // A follower first, then the leader (an election follows), then the last one.
    let follower = cluster.follower();
    let last = 3 - leader - follower;
    for (round, down) in [follower, leader, last].into_iter().enumerate() {
        cluster.member(down).stop();
        // The stopped member is listed first, so every command meets it before the others.
        let endpoints = endpoints_starting_with(&cluster, down);
        let name = format!("round{round}");
        let applied = nomarch_ok(
            &endpoints,
            &["apply", "-f", "-"],
            Some(&app(&name, "nginx:1")),
        );
        assert!(
            applied.contains(&format!("app/{name} created")),
            "{applied}"
        );
        for _ in 0..5 {
            let listing = nomarch_ok(&endpoints, &["get", "apps"], None);
            assert!(listing.contains(&name), "{listing}");
        }
        let deleted = nomarch_ok(&endpoints, &["delete", "app", &name], None);
        assert!(deleted.contains("deleted"), "{deleted}");
        cluster.member(down).restart();
    }
}

#[test]
fn unreachable_is_said_only_when_no_member_answers() {
    let mut cluster = TestEtcdCluster::start(3);
    let endpoints = cluster.endpoints().join(",");
    // Quorum lost: two members answer, but cannot serve. That is not "unreachable".
    let leader = cluster.leader().expect("a leader");
    let follower = cluster.follower();
    cluster.member(leader).stop();
    cluster.member(follower).stop();
    let output = run_nomarch(&endpoints, &[], &["get", "apps"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        !stderr.contains("unreachable"),
        "one member answered: {stderr}"
    );
    assert!(stderr.contains("unavailable"), "{stderr}");

    // Every member down: now it is unreachable, naming every endpoint.
    let last = 3 - leader - follower;
    cluster.member(last).stop();
    let output = run_nomarch(&endpoints, &[], &["get", "apps"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("etcd at {endpoints} is unreachable")),
        "{stderr}"
    );
}

/// Applies run back to back while the leader is killed; every one of them succeeds, and at
/// least one was running when the leader died.
#[test]
fn applies_survive_the_leader_killed_mid_apply() {
    let mut cluster = TestEtcdCluster::start(3);
    let endpoints = cluster.endpoints().join(",");
    let manifest: String = (0..200)
        .map(|i| app(&format!("bulk{i:03}"), "nginx:1"))
        .collect();
    nomarch_ok(&endpoints, &["apply", "-f", "-"], Some(&manifest));

    // Each round changes every image, so every apply writes.
    let spans: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let runner = {
        let (endpoints, spans) = (endpoints.clone(), spans.clone());
        std::thread::spawn(move || {
            for round in 0..8 {
                let manifest: String = (0..200)
                    .map(|i| app(&format!("bulk{i:03}"), &format!("nginx:{}", round + 2)))
                    .collect();
                let started = Instant::now();
                nomarch_ok(&endpoints, &["apply", "-f", "-"], Some(&manifest));
                spans.lock().unwrap().push((started, Instant::now()));
            }
        })
    };
    eventually("the first apply of the loop ends", || {
        !spans.lock().unwrap().is_empty()
    });
    // Kill the leader once an apply is under way (the loop starts the next one at once).
    std::thread::sleep(Duration::from_millis(100));
    let leader = cluster.leader().expect("a leader");
    let killed_at = Instant::now();
    cluster.member(leader).stop();
    runner.join().expect("every apply succeeded");

    let spans = spans.lock().unwrap();
    assert!(
        spans.iter().any(|(start, end)| *start <= killed_at && killed_at <= *end),
        "no apply was running when the leader died, so this proves nothing: {spans:?} vs {killed_at:?}"
    );
    let listing = nomarch_ok(&endpoints, &["get", "apps", "-o", "json"], None);
    assert_eq!(
        listing.matches("nginx:9").count(),
        200,
        "the last round landed whole"
    );
}

#[test]
fn the_controller_starts_with_a_member_down_and_rides_out_a_leader_change() {
    let mut cluster = TestEtcdCluster::start(3);
    let first_down = cluster.follower();
    cluster.member(first_down).stop();
    let endpoints = endpoints_starting_with(&cluster, first_down);
    let sim = SimProcess::start(&[]);
    let controller = ControllerProcess::start(
        &nomarch_bin(),
        &endpoints,
        PREFIX,
        &sim,
        &["--resync", "2s"],
    );

    nomarch_ok(
        &endpoints,
        &["apply", "-f", "-"],
        Some(&app("before", "nginx:1")),
    );
    eventually("an app converges with a member down", || {
        ready(&endpoints, "before")
    });

    cluster.member(first_down).restart();
    let leader = cluster.leader().expect("a leader");
    cluster.member(leader).stop();
    nomarch_ok(
        &endpoints,
        &["apply", "-f", "-"],
        Some(&app("after", "nginx:1")),
    );
    eventually("an app converges after the etcd leader died", || {
        ready(&endpoints, "after")
    });
    let mut process = controller.process;
    assert!(process.is_running(), "{}", process.log_text());
}
