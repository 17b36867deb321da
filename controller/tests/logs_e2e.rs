//! `nomarch logs` end to end: real etcd, nomad-sim (which writes its tasks' logs over simulated
//! time and serves them as Nomad's client filesystem API does) and the controller.

mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{eventually, nomarch_bin, World, PREFIX};

fn web(replicas: u32) -> String {
    format!(
        "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  replicas: {replicas}\n"
    )
}

fn running_ids(world: &World) -> Vec<String> {
    world
        .running_allocs("web")
        .iter()
        .map(|a| a["ID"].as_str().unwrap().to_string())
        .collect()
}

fn logs(world: &World, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs", "app/web"];
    all.extend_from_slice(args);
    let output = world.nomarch(&all, None);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// `(instance, time stamp)` of a prefixed line: `<alloc8> <time> <task> ...`.
fn instance_and_time(line: &str) -> (String, String) {
    let mut words = line.split_whitespace();
    let instance = words.next().unwrap().to_string();
    let time = words.next().unwrap().to_string();
    (instance, time)
}

#[test]
fn instances_merge_in_time_order_and_tail_stderr_and_instance_narrow_them() {
    let world = World::start(&[]);
    world.apply(&web(2));
    eventually("web Ready", || world.ready("web"));
    let ids = running_ids(&world);
    assert_eq!(ids.len(), 2);
    eventually("each instance printed a few lines", || {
        logs(&world, &[]).len() >= 8
    });

    let lines = logs(&world, &[]);
    let parsed: Vec<(String, String)> = lines.iter().map(|l| instance_and_time(l)).collect();
    let instances: std::collections::BTreeSet<&str> =
        parsed.iter().map(|(i, _)| i.as_str()).collect();
    let shorts: std::collections::BTreeSet<&str> = ids.iter().map(|id| &id[..8]).collect();
    assert_eq!(
        instances, shorts,
        "both instances, by their short IDs:\n{lines:#?}"
    );
    let times: Vec<&str> = parsed.iter().map(|(_, t)| t.as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "merged in time order:\n{lines:#?}");

    let tail = logs(&world, &["--tail", "1"]);
    assert_eq!(tail.len(), 2, "one line per instance: {tail:#?}");
    let stderr = logs(&world, &["--stderr"]);
    assert!(
        stderr
            .iter()
            .all(|l| l.contains("app starting nginx:1 (run 1)")),
        "{stderr:#?}"
    );
    let one = logs(&world, &["--instance", &ids[0][..6]]);
    assert!(
        one[0].split_whitespace().next().unwrap().ends_with('Z'),
        "one instance: no prefix: {one:#?}"
    );
    let recent = logs(&world, &["--since", "1h"]);
    assert!(recent.len() >= lines.len(), "everything is within the hour");
    let none = logs(&world, &["--since", "1ms"]);
    assert!(none.len() < recent.len(), "{none:#?}");

    let unknown = world.nomarch_exit(&["logs", "app/web", "--instance", "zzzz"], None);
    assert_eq!(unknown.status.code(), Some(5));
    let missing = world.nomarch_exit(&["logs", "app/nowhere"], None);
    assert_eq!(missing.status.code(), Some(5));
    let source = world.nomarch_exit(&["logs", "gitsource/state"], None);
    assert_ne!(source.status.code(), Some(0));
}

#[test]
fn following_picks_up_the_instance_that_replaces_a_stopped_one() {
    let world = World::start(&[]);
    world.apply(&web(1));
    eventually("web Ready", || world.ready("web"));
    let first = running_ids(&world)[0].clone();

    let mut child = Command::new(nomarch_bin())
        .env("NOMARCH_ETCD_ENDPOINTS", world.etcd.endpoint())
        .env("NOMARCH_PREFIX", PREFIX)
        .env("NOMAD_ADDR", world.sim.nomad_url())
        .args(["logs", "app/web", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str, check: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if check(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("never saw {what}"),
            }
        }
    };
    wait_for("a new line of the first instance", &|l| {
        l.starts_with(&first[..8]) && l.contains("request")
    });

    // The instance is stopped; Nomad places a replacement, which the follow picks up.
    let stopped = world.put_nomad(&format!("/v1/allocation/{first}/stop"), json!({}));
    assert_eq!(stopped, 200);
    let line = wait_for("a line of the replacement", &|l| {
        !l.starts_with(&first[..8]) && l.contains("app listening")
    });
    let replacement = line.split_whitespace().next().unwrap().to_string();
    assert!(
        running_ids(&world)
            .iter()
            .any(|id| id.starts_with(&replacement)),
        "{line}"
    );
    wait_for("the replacement goes on printing", &|l| {
        l.starts_with(&replacement) && l.contains("request")
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The same logs over the HTTP API (a viewer's token): merged with the instance in front,
/// `tail` per instance, a git source refused with the CLI's reason, and `follow=true` keeps
/// the answer open and sends lines written after it was asked.
#[test]
fn the_api_serves_and_follows_logs() {
    use std::io::Read;
    let world = World::start(&[]);
    world.apply(&web(2));
    eventually("web Ready", || world.ready("web"));
    let viewer = world.token("viewer", &["--all", "--role", "viewer"]);
    let port = world.controller.as_ref().unwrap().port;
    let url =
        |query: &str| format!("http://127.0.0.1:{port}/api/v1/objects/app/default/web/logs{query}");
    let get = |query: &str| {
        let response = world
            .http
            .get(url(query))
            .bearer_auth(&viewer)
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    eventually("each instance printed a few lines", || {
        get("").1.lines().count() >= 8
    });
    let ids = running_ids(&world);
    let (status, text) = get("?tail=2");
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "two per instance: {text}");
    for line in &lines {
        let instance = line.split_whitespace().next().unwrap();
        assert!(ids.iter().any(|id| id.starts_with(instance)), "{line}");
    }
    let (status, _) = get_status(
        &world,
        &viewer,
        port,
        "/api/v1/objects/app/default/web/logs?since=soon",
    );
    assert_eq!(status, 400);
    let (status, _) = world
        .http
        .get(url(""))
        .send()
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401, "logs need a token");

    // Followed: the answer stays open and brings lines written after the request.
    let mut response = world
        .http
        .get(url("?follow=true&tail=0"))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 4096];
    while !got.contains(&b'\n') {
        assert!(Instant::now() < deadline, "no followed line in 30s");
        let n = response.read(&mut buffer).unwrap();
        assert!(n > 0, "the followed answer ended");
        got.extend_from_slice(&buffer[..n]);
    }
    let first = String::from_utf8_lossy(&got);
    let instance = first.split_whitespace().next().unwrap();
    assert!(ids.iter().any(|id| id.starts_with(instance)), "{first}");
}

fn get_status(world: &World, token: &str, port: u16, path: &str) -> (u16, String) {
    let response = world
        .http
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}
