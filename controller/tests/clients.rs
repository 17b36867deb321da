//! The Nomad and Consul clients: they read every sample nomarch consumes, round-trip jobs
//! without losing a field, and behave against nomad-sim as against Nomad.

use std::time::Duration;

use controller::clients::consul::{HealthCheck, ServiceEntry};
use controller::clients::nomad_types::{
    AllocStub, Event, EventFrame, Job, JobStub, NodeStub, PlanResponse, RegisterResponse, Slim,
    SlimList,
};
use controller::clients::{ApiError, ConsulClient, NomadClient, QueryOptions, Secret};
use e2e::sim::config::SimConfig;
use e2e::sim::RunningSim;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

fn sample(name: &str) -> Value {
    e2e::samples::load(name)
}

fn decode<T: DeserializeOwned>(name: &str, value: Value) -> T {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{name} does not decode: {e}"))
}

/// Nulls and absent keys mean the same to Nomad; everything else must survive.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn assert_job_round_trips(name: &str, job: Value) {
    let typed: Job = decode(name, job.clone());
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        without_nulls(&back),
        without_nulls(&job),
        "{name}: a field was lost or changed"
    );
}

#[test]
fn the_clients_read_every_sample_they_consume() {
    for (name, job) in [
        ("nomad-job-read", sample("nomad-job-read")),
        (
            "nomad-allocation-read",
            sample("nomad-allocation-read")["Job"].clone(),
        ),
        (
            "nomad-job-spec-example",
            sample("nomad-job-spec-example")["Job"].clone(),
        ),
        (
            "nomad-job-register-request",
            sample("nomad-job-register-request")["Job"].clone(),
        ),
    ] {
        assert_job_round_trips(name, job);
    }
    for (i, version) in sample("nomad-job-versions")["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_job_round_trips(&format!("nomad-job-versions[{i}]"), version.clone());
    }
    let jobs: Vec<JobStub> = decode("nomad-jobs-list", sample("nomad-jobs-list"));
    assert_eq!(jobs[0].id, "example");
    let slim: SlimList<JobStub> = decode("nomad-jobs-list", sample("nomad-jobs-list"));
    assert_eq!(slim.0, jobs.into_iter().map(Slim::slim).collect::<Vec<_>>());
    for name in [
        "nomad-allocations-list",
        "nomad-job-allocations",
        "nomad-evaluation-allocations",
    ] {
        let allocs: Vec<AllocStub> = decode(name, sample(name));
        assert!(
            !allocs.is_empty()
                && allocs
                    .iter()
                    .all(|a| !a.id.is_empty() && !a.client_status.is_empty()),
            "{name}"
        );
        // The cache's reading keeps every typed field and drops only the catch-all.
        let slim: SlimList<AllocStub> = decode(name, sample(name));
        assert_eq!(slim.0.len(), allocs.len(), "{name}");
        for (slim, full) in slim.0.iter().zip(&allocs) {
            assert!(slim.extra.is_empty() && !full.extra.is_empty(), "{name}");
            assert_eq!(slim, &full.clone().slim(), "{name}");
        }
    }
    for name in [
        "nomad-node-allocations",
        "nomad-node-allocations-real-151be1dc-92e7-a488-f7dc-49faaf5a4c96",
        "nomad-node-allocations-real-b2d5bbb6-a61d-ee1f-a896-cbc6efe4f7fe",
        "nomad-node-allocations-real-b535e699-1112-c379-c020-ebd80fdd9f09",
    ] {
        let allocs: Vec<AllocStub> = decode(name, sample(name));
        assert!(!allocs.is_empty(), "{name}");
        for alloc in sample(name).as_array().unwrap() {
            assert_job_round_trips(name, alloc["Job"].clone());
        }
    }
    let nodes: Vec<NodeStub> = decode("nomad-nodes-list", sample("nomad-nodes-list"));
    assert!(nodes.iter().all(|n| !n.status.is_empty()));
    for name in [
        "nomad-job-register-response",
        "nomad-job-update-response",
        "nomad-job-revert-response",
        "nomad-job-evaluate-response",
    ] {
        let _: RegisterResponse = decode(name, sample(name));
    }
    let plan: PlanResponse = decode("nomad-job-plan-response", sample("nomad-job-plan-response"));
    assert!(plan.diff.is_some());
    let frame: EventFrame = decode(
        "nomad-event-stream-node-registration",
        sample("nomad-event-stream-node-registration"),
    );
    assert_eq!(frame.events[0].event_type, "NodeRegistration");
    let event: Event = decode(
        "nomad-event-stream-event-example",
        sample("nomad-event-stream-event-example"),
    );
    assert_eq!(event.topic, "Node");
    let entries: Vec<ServiceEntry> =
        decode("consul-health-service", sample("consul-health-service"));
    assert!(entries[0].checks.iter().any(|c| c.check_id == "serfHealth"));
    for name in [
        "consul-health-checks-service",
        "consul-health-checks-state",
        "consul-health-node",
    ] {
        let checks: Vec<HealthCheck> = decode(name, sample(name));
        assert!(
            checks
                .iter()
                .all(|c| matches!(c.status.as_str(), "passing" | "warning" | "critical")),
            "{name}"
        );
    }
}

fn web_job(count: u64) -> Job {
    decode(
        "web",
        json!({
            "ID": "web", "Namespace": "default", "Type": "service",
            "Meta": {"nomarch.io/managed-by": "nomarch"},
            "TaskGroups": [{"Name": "web", "Count": count, "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx"}}]}],
            "SomethingNomarchDoesNotModel": {"kept": true},
        }),
    )
}

async fn sim(config: SimConfig) -> RunningSim {
    RunningSim::start(config, 1.0, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test]
async fn check_and_set_registers_and_missing_jobs() {
    let sim = sim(SimConfig::default()).await;
    let nomad = NomadClient::new(&sim.nomad_url(), None);
    assert_eq!(
        nomad
            .job("default", "web", QueryOptions::default())
            .await
            .unwrap()
            .value,
        None
    );

    let created = nomad.register(&web_job(1), Some(0)).await.unwrap();
    assert!(created.job_modify_index > 0);
    let again = nomad.register(&web_job(1), Some(0)).await.unwrap_err();
    assert!(
        matches!(&again, ApiError::Conflict(m) if m.contains("job already exists")),
        "{again}"
    );
    assert!(
        again.is_transient(),
        "a lost check-and-set is retried after a re-read"
    );

    let read = nomad
        .job("default", "web", QueryOptions::default())
        .await
        .unwrap();
    let job = read.value.expect("registered");
    assert_eq!(job.job_modify_index, Some(created.job_modify_index));
    assert_eq!(job.meta("nomarch.io/managed-by"), Some("nomarch"));
    assert_eq!(
        job.extra["SomethingNomarchDoesNotModel"],
        json!({"kept": true}),
        "unknown fields survive Nomad and back"
    );

    let stale = nomad
        .register(&web_job(2), Some(created.job_modify_index + 100))
        .await
        .unwrap_err();
    assert!(matches!(stale, ApiError::Conflict(_)));
    let updated = nomad
        .register(&web_job(2), Some(created.job_modify_index))
        .await
        .unwrap();
    assert!(updated.job_modify_index > created.job_modify_index);

    let missing_alloc = nomad
        .stop_allocation("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(matches!(missing_alloc, ApiError::NotFound(_)));
    assert!(!missing_alloc.is_transient());
}

#[tokio::test]
async fn blocking_reads_and_the_event_stream() {
    let sim = sim(SimConfig::default()).await;
    let nomad = NomadClient::new(&sim.nomad_url(), None);
    let first = nomad.jobs(QueryOptions::default()).await.unwrap();
    let waiter = {
        let nomad = nomad.clone();
        let options = QueryOptions::default().blocking(first.index, Duration::from_secs(20));
        tokio::spawn(async move { nomad.jobs(options).await })
    };
    let mut events = nomad
        .event_stream(&["Job"], "default", first.index)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    nomad.register(&web_job(1), None).await.unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(woken.index > first.index);
    assert_eq!(woken.value.len(), 1);
    let frame = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (frame.events[0].topic.as_str(), frame.events[0].key.as_str()),
        ("Job", "web")
    );
}

#[tokio::test]
async fn tokens_are_sent_but_never_shown() {
    let sim = sim(SimConfig {
        acl_token: Some("t0ps3cret".into()),
        ..SimConfig::default()
    })
    .await;
    let wrong = NomadClient::new(&sim.nomad_url(), Some(Secret::new("wr0ngt0ken")));
    let error = wrong.jobs(QueryOptions::default()).await.unwrap_err();
    assert!(
        matches!(&error, ApiError::Forbidden { message, .. } if message == "ACL token not found"),
        "{error}"
    );
    assert!(!format!("{error} {error:?}").contains("wr0ngt0ken"));
    let right = NomadClient::new(&sim.nomad_url(), Some(Secret::new("t0ps3cret")));
    assert!(right.jobs(QueryOptions::default()).await.is_ok());
    let consul = ConsulClient::new(&sim.consul_url(), Some(Secret::new("t0ps3cret")));
    assert!(consul
        .health_service("web", true, QueryOptions::default())
        .await
        .unwrap()
        .value
        .is_empty());
}

#[tokio::test]
async fn an_unreachable_nomad_is_a_transient_error_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let nomad = NomadClient::new(&address, None);
    let error = nomad.jobs(QueryOptions::default()).await.unwrap_err();
    assert!(matches!(error, ApiError::Unreachable { .. }), "{error}");
    assert!(error.is_transient());
    assert!(error.to_string().contains(&address));
}
