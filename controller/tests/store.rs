//! The store against a real etcd: round trips, optimistic concurrency, generations, status,
//! history, events, and watches that survive restarts and compaction.

use std::time::Duration;

use controller::store::{
    ApplyOutcome, EventType, NewEvent, Store, StoreError, WatchEvent, HISTORY_LIMIT,
};
use crds::{Kind, ObjectRef, Resource, Status};
use e2e::etcd::TestEtcd;

fn app(name: &str, image: &str) -> Resource {
    let text = format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n");
    crds::parse_str("test.yaml", &text)
        .expect("valid test manifest")
        .remove(0)
        .resource
}

async fn store_for(etcd: &TestEtcd) -> Store {
    Store::connect(&[etcd.endpoint()], "/test/")
        .await
        .expect("connect to test etcd")
}

fn web() -> ObjectRef {
    ObjectRef::new(Kind::App, "default", "web")
}

#[tokio::test]
async fn apply_get_list_delete_round_trip() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    let outcomes = store
        .apply(&[app("web", "nginx:1"), app("api", "api:1")])
        .await
        .unwrap();
    assert_eq!(
        outcomes.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
        [ApplyOutcome::Created, ApplyOutcome::Created]
    );

    let stored = store.get(&web()).await.unwrap().expect("web exists");
    let meta = stored.metadata();
    assert_eq!(meta.generation, 1);
    assert!(!meta.uid.is_empty() && meta.creation_timestamp.is_some());
    assert_eq!(stored.spec_json(), app("web", "nginx:1").spec_json());

    let (all, revision) = store.list(Some(Kind::App)).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.metadata().name.as_str())
            .collect::<Vec<_>>(),
        ["api", "web"]
    );
    assert!(revision >= meta.resource_version.parse::<i64>().unwrap());

    store.delete(&web(), None).await.unwrap();
    assert_eq!(store.get(&web()).await.unwrap(), None);
    assert!(matches!(
        store.delete(&web(), None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn reapplying_the_same_object_writes_nothing() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    store.apply(&[app("web", "nginx:1")]).await.unwrap();
    let before = store.revision().await.unwrap();
    let outcomes = store.apply(&[app("web", "nginx:1")]).await.unwrap();
    assert_eq!(outcomes[0].1, ApplyOutcome::Unchanged);
    assert_eq!(
        store.revision().await.unwrap(),
        before,
        "an unchanged apply must not write"
    );
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_and_writes_nothing() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    store.apply(&[app("web", "nginx:1")]).await.unwrap();
    let read = store.get(&web()).await.unwrap().unwrap();

    // Someone else updates it after our read.
    store.apply(&[app("web", "nginx:2")]).await.unwrap();

    let mut stale = app("web", "nginx:3");
    stale.metadata_mut().resource_version = read.metadata().resource_version.clone();
    let before = store.revision().await.unwrap();
    let error = store
        .apply(&[app("other", "x:1"), stale])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    assert_eq!(
        store.revision().await.unwrap(),
        before,
        "a conflicting batch writes nothing at all"
    );
    assert!(store
        .get(&ObjectRef::new(Kind::App, "default", "other"))
        .await
        .unwrap()
        .is_none());
    let current = store.get(&web()).await.unwrap().unwrap();
    let Resource::App(current) = current else {
        panic!("kind changed")
    };
    assert_eq!(current.spec.image, "nginx:2");

    // A delete conditioned on the stale version is refused too.
    let stale_version = read.metadata().resource_version.clone();
    assert!(matches!(
        store.delete(&web(), Some(&stale_version)).await,
        Err(StoreError::Conflict { .. })
    ));
}

#[tokio::test]
async fn generation_moves_only_with_the_spec() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    store.apply(&[app("web", "nginx:1")]).await.unwrap();

    let mut labelled = app("web", "nginx:1");
    labelled
        .metadata_mut()
        .labels
        .insert("team".into(), "web".into());
    assert_eq!(
        store.apply(&[labelled]).await.unwrap()[0].1,
        ApplyOutcome::Configured
    );
    let after_label = store.get(&web()).await.unwrap().unwrap();
    assert_eq!(after_label.metadata().generation, 1, "labels are not spec");
    assert_eq!(
        after_label
            .metadata()
            .labels
            .get("team")
            .map(String::as_str),
        Some("web")
    );

    let status = Status {
        observed_generation: Some(1),
        ..Default::default()
    };
    store.put_status(&web(), &status).await.unwrap();
    let after_status = store.get(&web()).await.unwrap().unwrap();
    assert_eq!(after_status.metadata().generation, 1, "status is not spec");
    assert_eq!(
        after_status.metadata().resource_version,
        after_label.metadata().resource_version,
        "status lives in its own key"
    );
    assert_eq!(
        after_status.status().and_then(|s| s.observed_generation),
        Some(1)
    );

    store.apply(&[app("web", "nginx:2")]).await.unwrap();
    assert_eq!(
        store
            .get(&web())
            .await
            .unwrap()
            .unwrap()
            .metadata()
            .generation,
        2
    );
}

#[tokio::test]
async fn history_keeps_the_last_ten_generations() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    let total = HISTORY_LIMIT + 3;
    for version in 1..=total {
        store
            .apply(&[app("web", &format!("nginx:{version}"))])
            .await
            .unwrap();
    }
    let history = store.history(&web()).await.unwrap();
    let generations: Vec<i64> = history.iter().map(|r| r.metadata().generation).collect();
    let expected: Vec<i64> = (total - HISTORY_LIMIT..total).collect();
    assert_eq!(generations, expected);
    let Resource::App(oldest) = &history[0] else {
        panic!("kind changed")
    };
    assert_eq!(
        oldest.spec.image,
        format!("nginx:{}", total - HISTORY_LIMIT)
    );

    store.delete(&web(), None).await.unwrap();
    assert!(
        store.history(&web()).await.unwrap().is_empty(),
        "delete removes history"
    );
}

#[tokio::test]
async fn status_of_a_missing_object_is_refused() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    let result = store.put_status(&web(), &Status::default()).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn identical_events_are_counted_not_repeated() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    let event = |message: &str| NewEvent {
        type_: EventType::Warning,
        reason: "CheckFailed".into(),
        object: web(),
        message: message.into(),
        source: "test".into(),
    };
    store.record_event(event("check critical")).await.unwrap();
    let second = store.record_event(event("check critical")).await.unwrap();
    assert_eq!(second.count, 2);
    assert!(second.last_timestamp >= second.first_timestamp);
    store
        .record_event(event("check passing again"))
        .await
        .unwrap();
    let (events, _) = store.list_events().await.unwrap();
    let counts: Vec<(String, u32)> = events
        .iter()
        .map(|e| (e.message.clone(), e.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("check critical".to_string(), 2),
            ("check passing again".to_string(), 1)
        ]
    );
}

#[tokio::test]
async fn unreachable_etcd_fails_fast_with_a_clear_error() {
    // A port that accepts connections and never answers: the worst case, a silent peer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let attempt = Store::connect(std::slice::from_ref(&endpoint), "/test/");
    // The outer limit only turns a hang into a failure; the store's own deadline is shorter.
    let result = tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .expect("connect must not hang");
    let error = result.err().expect("a silent peer is not an etcd");
    assert!(matches!(error, StoreError::Unreachable { .. }), "{error}");
    assert!(
        error.to_string().contains(&endpoint),
        "the error names the endpoint: {error}"
    );
}

/// Receives the next watch item that is not a connection error.
async fn next_change(
    stream: &mut tokio::sync::mpsc::Receiver<controller::store::Result<WatchEvent>>,
) -> WatchEvent {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(30), stream.recv())
            .await
            .expect("watch delivers")
            .expect("open");
        if let Ok(event) = item {
            return event;
        }
    }
}

fn image_of(event: &WatchEvent) -> String {
    let WatchEvent::Put(item) = event else {
        panic!("expected a put, got {event:?}")
    };
    let value: serde_json::Value = serde_json::from_slice(&item.value).unwrap();
    value["spec"]["image"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn watch_survives_an_etcd_restart_without_gaps_or_repeats() {
    let mut etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    let (_, revision) = store.list(None).await.unwrap();
    let mut stream = store.watch_prefix(store.keys().objects(None), revision + 1);

    store.apply(&[app("web", "v1")]).await.unwrap();
    assert_eq!(image_of(&next_change(&mut stream).await), "v1");

    etcd.stop();
    // Writes made while the watcher is disconnected (by another client, after restart) must
    // arrive exactly once, in order.
    etcd.restart();
    let writer = store_for(&etcd).await;
    writer.apply(&[app("web", "v2")]).await.unwrap();
    writer.apply(&[app("web", "v3")]).await.unwrap();

    assert_eq!(image_of(&next_change(&mut stream).await), "v2");
    assert_eq!(image_of(&next_change(&mut stream).await), "v3");
    writer.apply(&[app("web", "v4")]).await.unwrap();
    assert_eq!(
        image_of(&next_change(&mut stream).await),
        "v4",
        "no repeats of v2/v3 after the reconnect"
    );
}

#[tokio::test]
async fn watch_relists_when_its_revision_was_compacted() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    store.apply(&[app("web", "v1")]).await.unwrap();
    let (_, start) = store.list(None).await.unwrap();
    store
        .apply(&[app("web", "v2"), app("api", "a1")])
        .await
        .unwrap();
    store
        .delete(&ObjectRef::new(Kind::App, "default", "api"), None)
        .await
        .unwrap();
    store
        .compact(store.revision().await.unwrap())
        .await
        .unwrap();

    let mut stream = store.watch_prefix(store.keys().objects(None), start + 1);
    match next_change(&mut stream).await {
        WatchEvent::Relisted { items, revision } => {
            assert_eq!(items.len(), 1, "api was deleted before the relist");
            assert!(items[0].key.ends_with("/app/default/web"));
            assert!(revision > start);
        }
        other => panic!("expected a relist, got {other:?}"),
    }
    store.apply(&[app("web", "v3")]).await.unwrap();
    assert_eq!(
        image_of(&next_change(&mut stream).await),
        "v3",
        "the watch carries on after relisting"
    );
}

#[tokio::test]
async fn a_changeset_compares_every_revision_it_was_planned_against() {
    use controller::store::Change;
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    store
        .apply(&[app("web", "nginx:1"), app("old", "x:1")])
        .await
        .unwrap();
    let web_seen = store.get(&web()).await.unwrap().unwrap();
    let old = ObjectRef::new(Kind::App, "default", "old");
    let old_seen = store.get(&old).await.unwrap().unwrap();

    // A create of an object someone applied in between fails, and nothing else is written.
    store.apply(&[app("late", "y:1")]).await.unwrap();
    let mut updated = app("web", "nginx:2");
    updated.metadata_mut().resource_version = web_seen.metadata().resource_version.clone();
    let before = store.revision().await.unwrap();
    let error = store
        .commit_changes(&[
            Change::Update(updated.clone()),
            Change::Create(app("late", "z:1")),
        ])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    assert_eq!(store.revision().await.unwrap(), before, "nothing written");

    // Planned against the right revisions, the whole set lands in one go.
    let before = store.revision().await.unwrap();
    store
        .commit_changes(&[
            Change::Update(updated),
            Change::Create(app("new", "n:1")),
            Change::Delete {
                object: old.clone(),
                resource_version: old_seen.metadata().resource_version.clone(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.revision().await.unwrap(),
        before + 1,
        "one transaction"
    );
    let web_now = store.get(&web()).await.unwrap().unwrap();
    assert_eq!(web_now.metadata().generation, 2);
    assert_eq!(store.get(&old).await.unwrap(), None);

    // A delete planned against a revision that moved on is refused.
    let error = store
        .commit_changes(&[Change::Delete {
            object: web(),
            resource_version: web_seen.metadata().resource_version.clone(),
        }])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    assert!(store.get(&web()).await.unwrap().is_some());
}

#[tokio::test]
async fn listings_larger_than_a_page_come_back_whole_with_their_statuses() {
    let etcd = TestEtcd::start();
    let store = store_for(&etcd).await;
    let apps: Vec<Resource> = (0..600)
        .map(|i| app(&format!("app-{i:03}"), "x:1"))
        .collect();
    store.apply(&apps).await.unwrap();
    for i in [0, 299, 599] {
        let status = Status {
            observed_generation: Some(i),
            ..Status::default()
        };
        let r = ObjectRef::new(Kind::App, "default", format!("app-{i:03}"));
        store.put_status(&r, &status).await.unwrap();
    }
    let (listed, revision) = store.list(Some(Kind::App)).await.unwrap();
    assert_eq!(listed.len(), 600);
    assert_eq!(listed[599].metadata().name, "app-599");
    let with_status: Vec<i64> = listed
        .iter()
        .filter_map(|r| r.status().and_then(|s| s.observed_generation))
        .collect();
    assert_eq!(with_status, [0, 299, 599]);
    assert_eq!(revision, store.revision().await.unwrap());
    let (raw, _) = store.list_raw("/test/objects/").await.unwrap();
    assert_eq!(raw.len(), 600);
}
