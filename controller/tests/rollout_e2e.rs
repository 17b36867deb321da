//! End to end: rollouts as Nomad runs them (nomad-sim's deployments): an image change rolls
//! out `maxParallel` at a time, and a version that never turns healthy is rolled back by
//! Nomad's `auto_revert`, which nomarch reports and does not fight.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{condition, eventually, World};

/// An App whose rollouts are quick: healthy after 1 s, a 2 s healthy deadline and so (as
/// nomarch renders it) a 4 s progress deadline.
fn web(image: &str, replicas: u32, retry: &str) -> String {
    let annotations = if retry.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n    nomarch.io/retry: \"{retry}\"\n")
    };
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n{annotations}spec:\n  image: {image}\n  replicas: {replicas}\n  ports:\n    - name: http\n      containerPort: 80\n  health:\n    port: http\n    path: /healthz\n    interval: 1s\n    timeout: 1s\n    grace: 5s\n  update:\n    maxParallel: 1\n    minHealthyTime: 1s\n    healthyDeadline: 2s\n"
    )
}

const PROGRESS_DEADLINE: Duration = Duration::from_secs(4);

fn job_writes(world: &World, job: &str) -> usize {
    world.writes().iter().filter(|w| w["job_id"] == job).count()
}

fn latest_deployment(world: &World) -> Value {
    world.nomad("/v1/job/web/deployment")
}

fn allocs(world: &World) -> Vec<Value> {
    world
        .nomad("/v1/job/web/allocations")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn degraded(world: &World) -> Value {
    condition(&world.app("web")["status"], "Degraded")
}

/// A world where the image `nginx:broken` crash-loops, as a bad release does.
fn world_where_nginx_broken_crashes() -> World {
    let world = World::start(&[]);
    assert_eq!(
        world.put_nomad(
            "/_sim/images",
            json!({"image": "nginx:broken", "fault": "crashloop"})
        ),
        200
    );
    world
}

/// `nomarch apply -f - --wait`, with a minute to spare.
const APPLY_AND_WAIT: [&str; 6] = ["apply", "-f", "-", "--wait", "--timeout", "60s"];

#[test]
fn an_image_change_rolls_out_one_instance_at_a_time() {
    let world = World::start(&[]);
    world.apply(&web("nginx:1", 3, ""));
    eventually("the first rollout succeeds", || {
        latest_deployment(&world)["Status"] == "successful"
    });
    world.apply(&web("nginx:2", 3, ""));
    // Sample the rollout: never more than one new instance waits for its health at once.
    let mut most_waiting = 0;
    let mut versions_side_by_side = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live: Vec<Value> = allocs(&world)
            .into_iter()
            .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] != "failed")
            .collect();
        let versions: BTreeSet<String> = live.iter().map(|a| a["JobVersion"].to_string()).collect();
        versions_side_by_side |= versions.len() > 1;
        let waiting = live
            .iter()
            .filter(|a| a["JobVersion"] == 1 && a["DeploymentStatus"]["Healthy"] != true)
            .count();
        most_waiting = most_waiting.max(waiting);
        let d = latest_deployment(&world);
        if d["JobVersion"] == 1 && d["Status"] == "successful" {
            break;
        }
        assert!(Instant::now() < deadline, "the rollout never finished: {d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(most_waiting, 1, "maxParallel 1: one new instance at a time");
    assert!(
        versions_side_by_side,
        "old instances served while new ones started"
    );
    eventually("web Ready on the new image", || world.ready("web"));
    assert_eq!(job_writes(&world, "web"), 2, "{:?}", world.writes());
}

/// The loop this prevents: Nomad reverts a failed rollout to the last stable version, nomarch
/// sees a job that is not what it wrote and registers the failing version again, every progress
/// deadline. Instead the App shows `Degraded`/`RolledBack` and nothing is written until the
/// spec changes or the retry annotation does.
#[test]
fn a_version_nomad_rolls_back_is_not_registered_again() {
    let world = world_where_nginx_broken_crashes();
    world.apply(&web("nginx:1", 2, ""));
    eventually("version 0 is stable", || {
        world.nomad("/v1/job/web")["Stable"] == true
    });

    world.apply(&web("nginx:broken", 2, ""));
    eventually("nomarch reports Nomad's rollback", || {
        degraded(&world)["reason"] == "RolledBack"
    });
    let message = degraded(&world)["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("generation 2")
            && message.contains("Failed due to progress deadline - rolling back to job version 0"),
        "{message}"
    );
    // Three progress deadlines later: still the two writes (create, the broken image), the
    // job is version 0's spec, and one Warning said so.
    std::thread::sleep(3 * PROGRESS_DEADLINE);
    assert_eq!(job_writes(&world, "web"), 2, "{:?}", world.writes());
    let job = world.nomad("/v1/job/web");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "nginx:1"
    );
    assert_eq!(job["Version"], 2, "Nomad's revert is the only new version");
    assert_eq!(degraded(&world)["reason"], "RolledBack");
    let events = world.events();
    assert_eq!(events.matches("RolledBack").count(), 1, "{events}");
    assert_eq!(
        events
            .matches(
                "generation 2 (job version 1) failed to roll out: Failed due to progress deadline"
            )
            .count(),
        1,
        "{events}"
    );
    // What runs now is Nomad's revert (version 2 with version 0's spec), not nomarch's write.
    eventually("status shows the revert's rollout", || {
        let rollout = &world.app("web")["status"]["rollout"];
        rollout["jobVersion"] == 2 && rollout["phase"] == "Succeeded"
    });
    assert!(world.app("web")["status"]["rollout"]["generation"].is_null());

    // An explicit retry registers the same job once more, and Nomad rolls it back again.
    world.apply(&web("nginx:broken", 2, "1"));
    eventually("the retry was written", || job_writes(&world, "web") == 3);
    eventually("announced as a retry", || {
        world.events().contains("Retried")
    });
    assert!(
        !world.events().contains("DriftCorrected"),
        "{}",
        world.events()
    );
    eventually("rolled back again", || {
        world.nomad("/v1/job/web")["Version"] == 4 && degraded(&world)["reason"] == "RolledBack"
    });
    std::thread::sleep(2 * PROGRESS_DEADLINE);
    assert_eq!(job_writes(&world, "web"), 3, "{:?}", world.writes());

    // A new spec is registered and rolls out; the rollback is forgotten.
    world.apply(&web("nginx:2", 2, "1"));
    eventually("nginx:2 rolled out and web Ready", || {
        let d = latest_deployment(&world);
        d["Status"] == "successful"
            && world.nomad("/v1/job/web")["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
                == "nginx:2"
            && world.ready("web")
    });
    eventually("no longer Degraded", || {
        degraded(&world)["status"] == "False"
    });
    assert_eq!(job_writes(&world, "web"), 4);
}

/// `web` with a rollout strategy in its update block, and a route (so its instances carry
/// Traefik's tags).
fn strategic_web(image: &str, replicas: u32, strategy: &str) -> String {
    web(image, replicas, "").replace(
        "  update:\n    maxParallel: 1\n",
        &format!("  route:\n    host: web.example.com\n  update:\n{strategy}    maxParallel: 1\n"),
    )
}

fn running_images(world: &World) -> Vec<String> {
    allocs(world)
        .iter()
        .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
        .map(|a| a["JobVersion"].to_string())
        .collect()
}

/// `strategy: canary` with `autoPromote`: the new version starts one canary beside the three
/// old instances, replaces nothing until it is healthy, promotes itself, then rolls the rest.
#[test]
fn a_canary_promotes_itself_once_healthy_then_the_rest_roll() {
    let world = World::start(&[]);
    let strategy = "    strategy: canary\n    canary: 1\n    autoPromote: true\n";
    world.apply(&strategic_web("nginx:1", 3, strategy));
    eventually("the first rollout succeeds", || {
        latest_deployment(&world)["Status"] == "successful"
    });
    let update = &world.nomad("/v1/job/web")["TaskGroups"][0]["Update"];
    assert_eq!(
        (update["Canary"].as_u64(), update["AutoPromote"].as_bool()),
        (Some(1), Some(true))
    );
    world.apply(&strategic_web("nginx:2", 3, strategy));
    let mut four_running = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = latest_deployment(&world);
        four_running |= running_images(&world).len() == 4;
        if d["JobVersion"] == 1 && d["Status"] == "successful" {
            assert_eq!(d["TaskGroups"]["app"]["Promoted"], true, "{d}");
            assert_eq!(d["TaskGroups"]["app"]["DesiredCanaries"], 1, "{d}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the canary rollout did not finish: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        four_running,
        "the canary ran beside the three old instances"
    );
    eventually("three new instances", || {
        running_images(&world) == vec!["1".to_string(); 3]
    });
    // Status and events tell the same story, each step once.
    eventually("status shows the rollout succeeded", || {
        world.app("web")["status"]["rollout"]["phase"] == "Succeeded"
    });
    let rollout = &world.app("web")["status"]["rollout"];
    assert_eq!(
        (&rollout["generation"], &rollout["jobVersion"]),
        (&json!(2), &json!(1)),
        "{rollout}"
    );
    let group = &rollout["groups"]["app"];
    assert_eq!(
        (
            &group["desiredCanaries"],
            &group["promoted"],
            &group["healthy"]
        ),
        (&json!(1), &json!(true), &json!(3)),
        "{rollout}"
    );
    let events = world.events();
    for step in [
        "rolling out generation 2 (job version 1)",
        "1 canaries of generation 2 (job version 1) are healthy",
        "generation 2 (job version 1) promoted",
        "generation 2 (job version 1) rolled out",
    ] {
        assert_eq!(events.matches(step).count(), 1, "{step}: {events}");
    }
}

/// `strategy: blueGreen`: a whole new set starts beside the old one and takes no traffic (its
/// Consul registrations carry only the unpromoted tag) until promoted; then the old set stops.
/// A blue/green App rolled out once, then changed: the second rollout's new set runs beside
/// the old one.
fn world_with_a_second_blue_green_rollout() -> World {
    let world = World::start(&[]);
    let strategy = "    strategy: blueGreen\n";
    world.apply(&strategic_web("nginx:1", 2, strategy));
    eventually("the first rollout succeeds", || {
        latest_deployment(&world)["Status"] == "successful"
    });
    world.apply(&strategic_web("nginx:2", 2, strategy));
    world
}

#[test]
fn blue_green_switches_traffic_only_when_promoted() {
    let world = world_with_a_second_blue_green_rollout();
    eventually("the green set is healthy and waits for promotion", || {
        let d = latest_deployment(&world);
        d["JobVersion"] == 1
            && d["TaskGroups"]["app"]["HealthyAllocs"] == 2
            && d["StatusDescription"] == "Deployment is running but requires manual promotion"
    });
    eventually("status says the rollout awaits promotion", || {
        let rollout = &world.app("web")["status"]["rollout"];
        rollout["phase"] == "AwaitingPromotion"
            && rollout["groups"]["app"]["desiredCanaries"] == 2
            && rollout["groups"]["app"]["healthy"] == 2
    });
    assert!(world
        .events()
        .contains("2 canaries of generation 2 (job version 1) are healthy"));
    let consul = world.sim.consul_url();
    let tags_by_version = |world: &World| -> Vec<(String, bool)> {
        let entries: Value = world
            .http
            .get(format!("{consul}/v1/health/service/web"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let allocs = allocs(world);
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let id = e["Service"]["ID"].as_str().unwrap_or_default().to_string();
                let version = allocs
                    .iter()
                    .find(|a| id.contains(a["ID"].as_str().unwrap()))
                    .map(|a| a["JobVersion"].to_string())
                    .unwrap_or_default();
                let routed = e["Service"]["Tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == "traefik.enable=true");
                (version, routed)
            })
            .collect()
    };
    let mut before = tags_by_version(&world);
    before.sort();
    assert_eq!(
        before,
        vec![
            ("0".to_string(), true),
            ("0".to_string(), true),
            ("1".to_string(), false),
            ("1".to_string(), false)
        ],
        "blue routed, green not yet"
    );
    let id = latest_deployment(&world)["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let promoted = world.nomarch(&["rollout", "promote", "app/web"], None);
    let said = String::from_utf8_lossy(&promoted.stdout);
    assert!(
        said.starts_with(&format!("app/web promoted (deployment {id}, evaluation ")),
        "{said}"
    );
    eventually("green alone runs, routed", || {
        let mut after = tags_by_version(&world);
        after.sort();
        after == vec![("1".to_string(), true), ("1".to_string(), true)]
    });
    eventually("the rollout succeeds", || {
        latest_deployment(&world)["Status"] == "successful"
    });
    let again = world.nomarch_exit(&["rollout", "promote", "app/web"], None);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("app/web has no rollout in progress"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// `apply --wait` follows what it changed: exit 0 once the rollout succeeded, 7 when Nomad
/// rolled it back, 8 when the time ran out first (a blue/green set nobody promotes).
#[test]
fn apply_wait_exits_by_how_the_rollout_ended() {
    let world = world_where_nginx_broken_crashes();
    let wait = APPLY_AND_WAIT;
    let said = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).to_string();

    let first = world.nomarch_exit(&wait, Some(&web("nginx:1", 2, "")));
    assert_eq!(first.status.code(), Some(0), "{}", said(&first));
    assert!(
        said(&first).contains("app/web: succeeded: rolled out (job version 0)"),
        "{}",
        said(&first)
    );
    assert_eq!(
        latest_deployment(&world)["Status"],
        "successful",
        "--wait returned only once Nomad's deployment succeeded"
    );

    let broken = world.nomarch_exit(&wait, Some(&web("nginx:broken", 2, "")));
    assert_eq!(broken.status.code(), Some(7), "{}", said(&broken));
    assert!(
        said(&broken).contains("app/web: rolled back: "),
        "{}",
        said(&broken)
    );
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("did not roll out: app/web"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );

    // `rollout retry` registers the rolled-back spec once more, without a spec change.
    let writes = job_writes(&world, "web");
    let retried = world.nomarch(&["rollout", "retry", "app/web"], None);
    assert_eq!(said(&retried), "app/web: retry asked for\n");
    eventually("the retry was written", || {
        job_writes(&world, "web") == writes + 1
    });

    let blue_green = strategic_web("nginx:2", 2, "    strategy: blueGreen\n");
    let waiting = world.nomarch_exit(
        &["apply", "-f", "-", "--wait", "--timeout", "8s"],
        Some(&blue_green),
    );
    assert_eq!(waiting.status.code(), Some(8), "{}", said(&waiting));
    assert!(
        said(&waiting).contains("AwaitingPromotion (nomarch rollout promote) 2/2 healthy"),
        "{}",
        said(&waiting)
    );
    let status = world.nomarch_exit(&["rollout", "status", "app/web"], None);
    assert_eq!(status.status.code(), Some(0));
    let shown = said(&status);
    assert!(
        shown.starts_with("app/web: AwaitingPromotion (nomarch rollout promote) 2/2 healthy\n")
            && shown.contains("canaries 2/2 not promoted"),
        "{shown}"
    );

    let nothing = world.nomarch_exit(&["rollout", "retry", "app/web"], None);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no rolled-back rollout to retry"));

    // Nothing changed: nothing to wait for.
    let again = world.nomarch_exit(&wait, Some(&blue_green));
    assert_eq!(again.status.code(), Some(0), "{}", said(&again));
    assert_eq!(said(&again), "app/web unchanged\n");
}

/// Five generations, each waited for; history shows each with the job version it became and
/// how its rollout ended; undo applies generation 2's spec as generation 6 and it rolls out.
#[test]
fn history_after_five_changes_and_undo() {
    let world = world_where_nginx_broken_crashes();
    let wait = APPLY_AND_WAIT;
    for (image, replicas, exit) in [
        ("nginx:1", 2, 0),
        ("nginx:2", 2, 0),
        ("nginx:broken", 2, 7),
        ("nginx:3", 2, 0),
        ("nginx:3", 3, 0),
    ] {
        let applied = world.nomarch_exit(&wait, Some(&web(image, replicas, "")));
        assert_eq!(
            applied.status.code(),
            Some(exit),
            "{image} x{replicas}: {}",
            String::from_utf8_lossy(&applied.stdout)
        );
    }
    let history = |world: &World| -> Vec<Vec<String>> {
        let out = world.nomarch(&["rollout", "history", "app/web"], None);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|line| {
                // GENERATION TIME COMMIT JOB-VERSION OUTCOME CHANGE, split on the column gaps.
                line.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect()
            })
            .collect()
    };
    let rows = history(&world);
    let summary: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[3].clone(), r[4].clone(), r[5].clone()))
        .collect();
    let row = |g: &str, v: &str, outcome: &str, change: &str| {
        (
            g.to_string(),
            v.to_string(),
            outcome.to_string(),
            change.to_string(),
        )
    };
    assert_eq!(
        summary,
        vec![
            row("1", "0", "succeeded", "created"),
            row("2", "1", "succeeded", "image: nginx:1 → nginx:2"),
            row("3", "2", "rolled back", "image: nginx:2 → nginx:broken"),
            // Version 3 is Nomad's revert to version 1's spec.
            row("4", "4", "succeeded", "image: nginx:broken → nginx:3"),
            row("5", "5", "succeeded", "replicas: 2 → 3"),
        ],
        "{rows:?}"
    );

    let undone = world.nomarch(
        &["rollout", "undo", "app/web", "--to-generation", "2"],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&undone.stdout),
        "app/web rolled back to generation 2's spec (as generation 6)\n"
    );
    let watched = world.nomarch_exit(
        &[
            "rollout",
            "status",
            "app/web",
            "--watch",
            "--timeout",
            "60s",
        ],
        None,
    );
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watched.stdout)
    );
    let job = world.nomad("/v1/job/web");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "nginx:2"
    );
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    let last = history(&world).pop().unwrap();
    assert_eq!(
        (last[0].as_str(), last[4].as_str(), last[5].as_str()),
        (
            "6",
            "succeeded",
            "image: nginx:3 → nginx:2, replicas: 3 → 2"
        ),
        "{last:?}"
    );
    let missing = world.nomarch_exit(
        &["rollout", "undo", "app/web", "--to-generation", "40"],
        None,
    );
    assert_eq!(missing.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("has no stored generation 40 (kept: 1, 2, 3, 4, 5)"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// `rollout restart` restarts every instance in place, two at a time as `maxParallel` says, a
/// batch starting only once the one before runs and passes its checks again.
#[test]
fn restart_takes_at_most_max_parallel_down() {
    let world = World::start(&[]);
    let app = web("nginx:1", 4, "").replace("maxParallel: 1", "maxParallel: 2");
    world.nomarch(&APPLY_AND_WAIT, Some(&app));
    let running = |world: &World| -> Vec<String> {
        let mut ids: Vec<String> = allocs(world)
            .iter()
            .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
            .map(|a| a["ID"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let before = running(&world);
    assert_eq!(before.len(), 4);

    // Meanwhile, how many instances are not in Consul with passing checks, at most.
    let consul = world.sim.consul_url();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stop, consul) = (stop.clone(), consul.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            let mut most_down = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let passing: Vec<Value> = http
                    .get(format!("{consul}/v1/health/service/web?passing=true"))
                    .send()
                    .and_then(|r| r.json())
                    .unwrap_or_default();
                most_down = most_down.max(4usize.saturating_sub(passing.len()));
                std::thread::sleep(Duration::from_millis(10));
            }
            most_down
        })
    };
    let restarted = world.nomarch(
        &["rollout", "restart", "app/web", "--consul-addr", &consul],
        None,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most_down = sampler.join().unwrap();
    let said = String::from_utf8_lossy(&restarted.stdout).to_string();
    assert!(
        said.starts_with("restarting app/web: 4 instance(s), 2 at a time\n")
            && said.contains("app/web restarted: 4 instance(s)"),
        "{said}"
    );
    assert!(most_down <= 2, "{most_down} instances down at once");
    assert_eq!(
        running(&world),
        before,
        "restarted in place: the same allocations"
    );

    // Each restarted once; the second batch was signaled after the first ran again.
    let mut windows: Vec<(i64, i64)> = allocs(&world)
        .iter()
        .filter(|a| a["DesiredStatus"] == "run")
        .map(|a| {
            let task = &a["TaskStates"]["app"];
            assert_eq!(task["Restarts"], 1, "{task}");
            let events = task["Events"].as_array().unwrap();
            let time = |kind: &str| {
                events
                    .iter()
                    .rev()
                    .find(|e| e["Type"] == kind)
                    .and_then(|e| e["Time"].as_i64())
                    .unwrap()
            };
            (time("Restart Signaled"), time("Started"))
        })
        .collect();
    windows.sort();
    let first_batch_up = windows[0].1.max(windows[1].1);
    assert!(
        windows[2].0 >= first_batch_up && windows[3].0 >= first_batch_up,
        "{windows:?}"
    );
}

/// A canary that never turns healthy: nothing of the old version is replaced, Nomad fails the
/// deployment and reverts the job, the App shows `RolledBack`, and nomarch does not register
/// the canary's spec again.
#[test]
fn a_failing_canary_is_rolled_back_and_not_registered_again() {
    let world = world_where_nginx_broken_crashes();
    let strategy = "    strategy: canary\n    canary: 1\n";
    let wait = APPLY_AND_WAIT;
    let first = world.nomarch_exit(&wait, Some(&strategic_web("nginx:1", 3, strategy)));
    assert_eq!(first.status.code(), Some(0));
    eventually("version 0 is stable", || {
        world.nomad("/v1/job/web")["Stable"] == true
    });
    let old: BTreeSet<String> = allocs(&world)
        .iter()
        .filter(|a| a["ClientStatus"] == "running")
        .map(|a| a["ID"].as_str().unwrap().to_string())
        .collect();

    let broken = world.nomarch_exit(&wait, Some(&strategic_web("nginx:broken", 3, strategy)));
    assert_eq!(
        broken.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&broken.stdout)
    );
    assert_eq!(degraded(&world)["reason"], "RolledBack");
    let still: BTreeSet<String> = allocs(&world)
        .iter()
        .filter(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run")
        .map(|a| a["ID"].as_str().unwrap().to_string())
        .collect();
    assert!(
        old.is_subset(&still),
        "the old instances kept running: {old:?} {still:?}"
    );
    let writes = job_writes(&world, "web");
    std::thread::sleep(2 * PROGRESS_DEADLINE);
    assert_eq!(job_writes(&world, "web"), writes, "{:?}", world.writes());
    let job = world.nomad("/v1/job/web");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"], "nginx:1",
        "Nomad's revert holds"
    );
    let events = world.events();
    assert_eq!(events.matches("RolledBack").count(), 1, "{events}");
    assert_eq!(events.matches("RolloutFailed").count(), 1, "{events}");
}

/// Stopped while a rollout waits (a blue/green set nobody promoted): Nomad cancels the
/// deployment, and status says how it ended instead of showing it going forever.
#[test]
fn a_rollout_cut_short_by_a_stop_is_shown_ended() {
    let world = world_with_a_second_blue_green_rollout();
    eventually("status says the rollout awaits promotion", || {
        world.app("web")["status"]["rollout"]["phase"] == "AwaitingPromotion"
    });
    let stop = world.nomarch_exit(&["stop", "app/web", "--timeout", "60s"], None);
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stop.stdout)
    );
    eventually("the rollout shows as ended by the stop", || {
        let rollout = &world.app("web")["status"]["rollout"];
        rollout["phase"] == "Superseded"
            && rollout["description"]
                .as_str()
                .is_some_and(|d| d.contains("job is stopped"))
    });
}
