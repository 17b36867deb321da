//! High availability against real etcd and nomad-sim: two controllers, one leader. The
//! standby takes over when the leader dies or is paused, and at no moment do both write: every
//! Nomad write carries its controller's identity (User-Agent) in nomad-sim's write log, and the
//! log must never go back to the old leader once the new one wrote.

mod support;

use e2e::procs::ControllerProcess;
use serde_json::Value;
use support::{eventually, nomarch_bin, World, PREFIX};

fn controller(world: &World, id: &str) -> ControllerProcess {
    ControllerProcess::start(
        &nomarch_bin(),
        &world.etcd.endpoint(),
        PREFIX,
        &world.sim,
        &["--id", id, "--lease-ttl", "2s", "--resync", "2s"],
    )
}

fn readyz(world: &World, controller: &ControllerProcess) -> String {
    world
        .http
        .get(format!("http://127.0.0.1:{}/readyz", controller.port))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default()
}

fn apps(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {n}\nspec:\n  image: nginx:1\n  replicas: 1\n"))
        .collect()
}

/// The writers in the order they wrote, with runs collapsed: `["ctl-a", "ctl-b"]`.
fn writer_runs(world: &World) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for write in world.writes() {
        let agent = write["agent"].as_str().unwrap_or_default();
        let who = agent.strip_prefix("nomarch/").unwrap_or(agent).to_string();
        if runs.last() != Some(&who) {
            runs.push(who);
        }
    }
    runs
}

fn registered(world: &World, id: &str) -> bool {
    world.nomad(&format!("/v1/job/{id}"))["Stop"] == Value::Bool(false)
}

#[test]
fn only_the_leader_writes_and_a_standby_takes_over_when_it_dies() {
    let world = World::without_controller(&[]);
    let mut a = controller(&world, "ctl-a");
    let b = controller(&world, "ctl-b");
    assert!(
        readyz(&world, &a).contains("(leading)"),
        "{}",
        readyz(&world, &a)
    );
    assert!(
        readyz(&world, &b).contains("standby; ctl-a leads"),
        "{}",
        readyz(&world, &b)
    );
    assert!(b.metrics().contains("nomarch_leader 0"));

    world.apply(&apps(&["one", "two", "three"]));
    eventually("the leader registers the apps", || {
        ["one", "two", "three"]
            .iter()
            .all(|n| registered(&world, n))
    });
    assert_eq!(writer_runs(&world), ["ctl-a"], "the standby never wrote");

    a.process.kill();
    world.apply(&apps(&["four"]));
    eventually("the standby takes over and registers the new app", || {
        registered(&world, "four")
    });
    assert!(readyz(&world, &b).contains("(leading)"));
    assert_eq!(writer_runs(&world), ["ctl-a", "ctl-b"]);
    // The new leader adopted the converged apps: it rewrote none of them.
    let rewrites: Vec<Value> = world
        .writes()
        .into_iter()
        .filter(|w| w["agent"] == "nomarch/ctl-b" && w["job_id"] != "four")
        .collect();
    assert!(rewrites.is_empty(), "{rewrites:?}");
}

#[test]
fn a_paused_leader_loses_its_lease_and_never_writes_again() {
    let world = World::without_controller(&[]);
    let mut a = controller(&world, "ctl-a");
    let mut b = controller(&world, "ctl-b");
    world.apply(&apps(&["one"]));
    eventually("registered by the leader", || registered(&world, "one"));

    // Pause the leader past its lease; the standby takes over.
    a.process.signal(libc::SIGSTOP);
    eventually("the standby leads", || {
        readyz(&world, &b).contains("(leading)")
    });
    world.apply(&apps(&["two"]));
    eventually("the new leader registers", || registered(&world, "two"));

    // The old leader wakes up with work queued (the new app, resyncs): it must not act on a
    // lease it lost. It notices and goes back to standby, still running.
    a.process.signal(libc::SIGCONT);
    // `/readyz` reads the leader key, so it may say so a moment before this controller's own
    // renewal finds out; both must happen.
    eventually("the deposed leader stands by", || {
        readyz(&world, &a).contains("standby; ctl-b leads")
            && a.process
                .log_text()
                .contains("lost the leader lease; standing by")
    });
    world.apply(&apps(&["three"]));
    eventually("the new leader keeps going", || registered(&world, "three"));
    assert_eq!(writer_runs(&world), ["ctl-a", "ctl-b"], "never both");

    // And the old leader serves again when the new one dies.
    b.process.kill();
    eventually("the old leader leads again", || {
        readyz(&world, &a).contains("(leading)")
    });
    world.apply(&apps(&["four"]));
    eventually("registered in its second term", || {
        registered(&world, "four")
    });
    assert_eq!(
        writer_runs(&world),
        ["ctl-a", "ctl-b", "ctl-a"],
        "never both"
    );
    assert!(a.process.is_running(), "it never exited");
}

fn shard(world: &World, index: u32) -> ControllerProcess {
    let id = format!("shard-{index}");
    let index = index.to_string();
    let mut controller = ControllerProcess::start(
        &nomarch_bin(),
        &world.etcd.endpoint(),
        PREFIX,
        &world.sim,
        &[
            "--id",
            &id,
            "--shards",
            "2",
            "--shard-index",
            &index,
            "--lease-ttl",
            "2s",
            "--resync",
            "2s",
        ],
    );
    controller.wait_leading();
    controller
}

/// Which controller wrote each job, from nomad-sim's write log.
fn writers_by_job(
    world: &World,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut writers: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for write in world.writes() {
        if let (Some(job), Some(agent)) = (write["job_id"].as_str(), write["agent"].as_str()) {
            writers
                .entry(job.to_string())
                .or_default()
                .insert(agent.to_string());
        }
    }
    writers
}

fn image_of(world: &World, job: &str) -> Value {
    world.nomad(&format!("/v1/job/{job}"))["TaskGroups"][0]["Tasks"][0]["Config"]["image"].clone()
}

#[test]
fn two_shards_split_the_objects_and_a_dead_shard_stalls_only_its_own() {
    let world = World::without_controller(&[]);
    let _zero = shard(&world, 0);
    let mut one = shard(&world, 1);
    let names: Vec<String> = (0..16).map(|i| format!("app-{i}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    world.apply(&apps(&all));
    eventually("every app registered, by one shard or the other", || {
        all.iter().all(|n| registered(&world, n))
    });
    let writers = writers_by_job(&world);
    let owned_by = |agent: &str| -> Vec<String> {
        writers
            .iter()
            .filter(|(_, w)| w.contains(agent))
            .map(|(job, _)| job.clone())
            .collect()
    };
    let (of_zero, of_one) = (owned_by("nomarch/shard-0"), owned_by("nomarch/shard-1"));
    assert!(
        !of_zero.is_empty() && !of_one.is_empty(),
        "both shards work: {writers:?}"
    );
    assert!(
        writers.values().all(|w| w.len() == 1),
        "no job is written by both shards: {writers:?}"
    );

    // Shard 1 dies: its objects stop converging, shard 0's carry on.
    one.process.kill();
    let updated = all
        .iter()
        .map(|n| format!("---\napiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {n}\nspec:\n  image: nginx:2\n  replicas: 1\n"))
        .collect::<String>();
    world.apply(&updated);
    eventually("shard 0's apps move to the new image", || {
        of_zero.iter().all(|job| image_of(&world, job) == "nginx:2")
    });
    assert!(
        of_one.iter().all(|job| image_of(&world, job) == "nginx:1"),
        "a dead shard's objects wait for it"
    );

    // Back: it catches up.
    let _one = shard(&world, 1);
    eventually("shard 1's apps catch up", || {
        of_one.iter().all(|job| image_of(&world, job) == "nginx:2")
    });
}
