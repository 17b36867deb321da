//! The dashboard at size, in a real browser (headless Chromium over WebDriver): the overview
//! and the App list loaded with the `scale` scenario's 12,000 objects (10,000 Apps, 1,000 Pubs,
//! 1,000 CronJobs, a hundredth of them failing), each against the same page with 10 objects
//! measured in the same run (the floor); and how long an event takes from its etcd write to an
//! open page, against the same with 10 objects.
//!
//! The objects and their statuses are written straight to etcd and this scenario holds the
//! leader lease itself, so the controller under test is a standby: it keeps its cache (what
//! the pages read) but reconciles nothing, and the figures are the dashboard's alone.
//!
//! Page time is the browser's own navigation timing (`loadEventEnd`: the request, the HTML,
//! the stylesheet and the script, laid out), the median of several loads. Event time is from
//! just before the bench writes the event to when the page's script has added it to the page
//! (a `MutationObserver` notes the time), both read from this machine's clock.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use controller::store::{new_secret, secret_sha256, EventType, NewEvent, Role, Store, TokenRecord};
use crds::{Condition, ConditionStatus, ConditionType, Kind, ObjectRef, Resource, Status};
use e2e::browser::{Chromium, Locator};
use e2e::etcd::TestEtcd;
use e2e::procs::{binary, ControllerProcess, SimProcess};

use crate::figures::{percentile, Figure};

const SCENARIO: &str = "dashboard";
const PREFIX: &str = "/bench-dashboard/";
/// Loads per page, and events per run.
const LOADS: usize = 7;
const EVENTS: usize = 25;

/// What one run at one size measured: median load times (ms) and event latencies (ms, sorted).
struct Run {
    overview: f64,
    list: f64,
    events: Vec<f64>,
}

fn parse(text: &str) -> anyhow::Result<Resource> {
    crds::parse_str("dashboard.yaml", text)
        .map(|mut m| m.remove(0).resource)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// `total` objects in the scale scenario's proportions (a tenth each Pubs and CronJobs).
fn objects(total: usize) -> anyhow::Result<Vec<Resource>> {
    let tenth = (total / 12).max(1);
    let apps = total - 2 * tenth;
    let mut all = Vec::with_capacity(total);
    for i in 0..apps {
        all.push(parse(&format!("apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: app-{i:05}\n  labels: {{tier: t{}}}\nspec:\n  image: bench/app:{i}\n", i % 7))?);
    }
    for i in 0..tenth {
        all.push(parse(&format!("apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: pub-{i:04}\nspec:\n  tenant: t{i}\n  image: room:1\n  hubSelector: {{nodeClass: hub}}\n"))?);
        all.push(parse(&format!("apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: cron-{i:04}\nspec:\n  schedule: \"0 3 * * *\"\n  task:\n    image: job:1\n"))?);
    }
    Ok(all)
}

/// A status as the controller would write it: Ready, or (one in a hundred) rolled back.
fn status(i: usize) -> Status {
    let condition = |type_, status, reason: &str| Condition {
        type_,
        status,
        reason: reason.into(),
        message: format!("{reason} (bench)"),
        last_transition_time: Utc::now(),
    };
    let mut conditions = vec![condition(
        ConditionType::Ready,
        ConditionStatus::True,
        "ReplicasHealthy",
    )];
    if i.is_multiple_of(100) {
        conditions.push(condition(
            ConditionType::Degraded,
            ConditionStatus::True,
            "RolledBack",
        ));
    }
    Status {
        observed_generation: Some(1),
        conditions,
        ..Status::default()
    }
}

/// The median navigation time of `LOADS` loads of `url`, from the browser's own timing.
async fn load_time(browser: &Chromium, url: &str) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        browser.client.goto(url).await?;
        let took = browser
            .client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;",
                vec![],
            )
            .await?;
        times.push(took.as_f64().context("a navigation time")?);
    }
    times.sort_by(f64::total_cmp);
    Ok(percentile(&times, 0.5))
}

/// Milliseconds from each event's etcd write to its appearance on the open overview.
async fn event_latencies(browser: &Chromium, store: &Store) -> anyhow::Result<Vec<f64>> {
    // The page notes when each live event's line arrives, by the event's message.
    browser
        .client
        .execute(
            "window.arrived = {};
             new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
               window.arrived[n.textContent.split(' ').pop()] = Date.now();
             }))).observe(document.getElementById('live-events'), {childList: true});
             return null;",
            vec![],
        )
        .await?;
    let object = ObjectRef::new(Kind::App, "default", "app-00001");
    let mut latencies = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let marker = format!("mark-{i}");
        let sent = Utc::now().timestamp_millis();
        store
            .record_event(NewEvent {
                type_: EventType::Normal,
                reason: "Bench".into(),
                object: object.clone(),
                message: marker.clone(),
                source: "bench".into(),
            })
            .await?;
        let arrived = loop {
            let seen = browser
                .client
                .execute(
                    &format!("return window.arrived['{marker}'] || null"),
                    vec![],
                )
                .await?;
            if let Some(at) = seen.as_i64() {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        latencies.push((arrived - sent) as f64);
        // Events a second apart, so each page refresh ends before the next event.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

async fn run_at(total: usize) -> anyhow::Result<Run> {
    let etcd = TestEtcd::start();
    let sim = SimProcess::start(&["--start-delay", "0s"]);
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await?;
    // Hold the leader lease: the controller below stays a standby and only serves.
    let lease = store.grant_lease(Duration::from_secs(900)).await?;
    store
        .try_lead(&store.leader_key(0, 1), "the-dashboard-bench", lease)
        .await?
        .map_err(|holder| anyhow::anyhow!("the lease is held by {holder}"))?;
    let all = objects(total)?;
    for chunk in all.chunks(500) {
        store.apply(chunk).await?;
    }
    for (i, resource) in all.iter().enumerate() {
        store.put_status(&resource.object_ref(), &status(i)).await?;
    }
    let secret = new_secret();
    store
        .create_token(&TokenRecord {
            name: "bench".into(),
            namespace: None,
            role: Role::Viewer,
            created: Utc::now(),
            expires: None,
            secret_sha256: secret_sha256(&secret),
        })
        .await?;
    let nomarch = binary("nomarch", "controller");
    let controller = ControllerProcess::start(&nomarch, &etcd.endpoint(), PREFIX, &sim, &[]);
    let base = format!("http://127.0.0.1:{}", controller.port);

    let browser = Chromium::start(1280, 1000).await;
    browser.client.goto(&format!("{base}/login")).await?;
    browser
        .client
        .find(Locator::Css("#token"))
        .await?
        .send_keys(&secret)
        .await?;
    browser
        .client
        .find(Locator::Css("form.signin button"))
        .await?
        .click()
        .await?;
    let list = load_time(&browser, &format!("{base}/ui/app")).await?;
    let overview = load_time(&browser, &format!("{base}/")).await?;
    let events = event_latencies(&browser, &store).await?;
    browser.close().await;
    drop(controller);
    Ok(Run {
        overview,
        list,
        events,
    })
}

pub async fn run(figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let small = run_at(10).await?;
    let large = run_at(12_000).await?;
    for (name, value, floor) in [
        (
            "overview load, 12,000 objects",
            large.overview,
            small.overview,
        ),
        (
            "App list load (first 100 of 10,000 Apps)",
            large.list,
            small.list,
        ),
        (
            "event: etcd write → open page, p50",
            percentile(&large.events, 0.5),
            percentile(&small.events, 0.5),
        ),
        (
            "event: etcd write → open page, p99",
            percentile(&large.events, 0.99),
            percentile(&small.events, 0.99),
        ),
    ] {
        figures.push(Figure {
            scenario: SCENARIO,
            name: name.into(),
            value,
            unit: "ms",
            floor: Some(floor),
        });
    }
    Ok(())
}
