//! The controller's Server-Sent Events stream against real etcd, nomad-sim and the controller:
//! every live event first, then new ones as they happen, and a reconnect with `Last-Event-ID`
//! that neither repeats nor skips.

mod support;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{eventually, World};

/// One SSE frame: its id and its JSON data.
#[derive(Debug)]
struct Frame {
    id: i64,
    data: Value,
}

fn stream_url(world: &World, query: &str) -> String {
    let port = world.controller.as_ref().unwrap().port;
    format!("http://127.0.0.1:{port}/api/v1/events/stream{query}")
}

/// Opens the stream with `secret` and forwards its frames to a channel, from a thread of its
/// own.
fn open(
    world: &World,
    secret: &str,
    query: &str,
    last_event_id: Option<i64>,
) -> mpsc::Receiver<Frame> {
    let mut request = world.http.get(stream_url(world, query)).bearer_auth(secret);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut id, mut data) = (None, None);
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if let Some(value) = line.strip_prefix("id: ") {
                id = value.parse().ok();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = serde_json::from_str(value).ok();
            } else if line.is_empty() {
                if let (Some(id), Some(data)) = (id.take(), data.take()) {
                    if sender.send(Frame { id, data }).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

fn app(name: &str) -> String {
    format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: nginx:1\n  replicas: 1\n")
}

fn next(frames: &mpsc::Receiver<Frame>) -> Frame {
    frames
        .recv_timeout(Duration::from_secs(20))
        .expect("a frame in time")
}

#[test]
fn the_stream_replays_live_events_and_resumes_from_last_event_id() {
    let world = World::start(&[]);
    world.apply(&app("web"));
    eventually("an event about web", || world.events().contains("app/web"));

    let viewer = world.token("viewer", &["--all", "--role", "viewer"]);
    let frames = open(&world, &viewer, "", None);
    let first = next(&frames);
    assert!(first.id > 0);
    assert!(first.data["object"]["name"].is_string(), "{:?}", first.data);

    // Reconnect after the first frame: only later events come, in revision order.
    drop(frames);
    let resumed = open(&world, &viewer, "?kind=app&name=api", Some(first.id));
    world.apply(&app("api"));
    let frame = next(&resumed);
    assert!(
        frame.id > first.id,
        "nothing at or before Last-Event-ID again"
    );
    assert_eq!(frame.data["object"]["name"], "api", "the filter holds");
    let again = next(&resumed);
    assert!(again.id > frame.id);
    assert_eq!(again.data["object"]["name"], "api");

    // A filter that cannot parse is a 400, not an empty stream.
    let bad = world
        .http
        .get(stream_url(&world, "?type=Error"))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// The stream is the API's: no token, no events; a tenant's token hears its namespace only.
#[test]
fn the_stream_needs_a_token_and_holds_a_tenant_to_its_namespace() {
    let world = World::start(&[]);
    let anonymous = world.http.get(stream_url(&world, "")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    for ns in ["alice", "bob"] {
        world.put_nomad(
            &format!("/v1/namespace/{ns}"),
            serde_json::json!({"Name": ns}),
        );
    }
    let tenant = world.token("alice", &["--namespace", "alice", "--role", "viewer"]);
    let elsewhere = world
        .http
        .get(stream_url(&world, "?namespace=bob"))
        .bearer_auth(&tenant)
        .send()
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        404,
        "another tenant's events do not exist"
    );
    let frames = open(&world, &tenant, "", None);
    let in_ns = |ns: &str, name: &str| {
        format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  image: nginx:1\n")
    };
    world.apply(&in_ns("bob", "secret-plans"));
    world.apply(&in_ns("alice", "web"));
    let frame = next(&frames);
    assert_eq!(
        frame.data["object"]["namespace"], "alice",
        "{:?}",
        frame.data
    );
    assert_eq!(frame.data["object"]["name"], "web");
}
