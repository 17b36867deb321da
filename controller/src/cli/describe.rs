//! `nomarch describe KIND/NAME`: everything about one object on one screen, as `kubectl
//! describe` shows it: what it is, its conditions, its Nomad job and allocations (with health
//! from Consul), the hub of a pub, the runs of a cron job, the source of a synced object, the
//! rollout, and its recent events. `-o json` gives the same as one document.
//!
//! Gathering reads etcd, Nomad and Consul once ([`gather`]); rendering is pure ([`render`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crds::{ObjectRef, Resource};
use serde::Serialize;

use super::output::age;
use super::{connect, CliError, StoreArgs};
use crate::clients::nomad_types::AllocStub;
use crate::clients::QueryOptions;
use crate::store::{Event, EventFilter};

/// How many of the object's events are shown, newest last.
const EVENTS_SHOWN: usize = 10;

/// One object, all of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub object: Resource,
    /// The job as Nomad holds it; absent when it is not registered (or for a GitSource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSummary>,
    pub allocations: Vec<Instance>,
    pub events: Vec<Event>,
    /// What could not be read (Nomad or Consul unreachable): said, not fatal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: String,
    pub version: u64,
    pub modify_index: u64,
    /// Nomad's `Status`: pending, running or dead.
    pub status: String,
    pub stopped: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub node: String,
    pub client_status: String,
    pub desired_status: String,
    pub job_version: u64,
    /// Consul's checks: `passing`, `failing`, or absent (no checks, or not registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<&'static str>,
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
}

impl Instance {
    fn of(alloc: &AllocStub, checks: &HashMap<String, bool>) -> Instance {
        let created = alloc
            .extra
            .get("CreateTime")
            .and_then(|t| t.as_i64())
            .map(DateTime::from_timestamp_nanos);
        Instance {
            id: alloc.id.clone(),
            node: alloc.node_name.clone(),
            client_status: alloc.client_status.clone(),
            desired_status: alloc.desired_status.clone(),
            job_version: alloc.job_version,
            health: checks
                .get(&alloc.id)
                .map(|passing| if *passing { "passing" } else { "failing" }),
            restarts: crate::ops::restart::restarts(alloc),
            created,
        }
    }
}

/// Reads the object, its events, and (for what runs a job) the job, its allocations and their
/// health. Nomad or Consul not answering is noted in the description; etcd not answering, or
/// no such object, is an error.
pub async fn gather(
    store_args: &StoreArgs,
    object: &ObjectRef,
    nomad_args: &connect::NomadArgs,
    consul_args: &connect::ConsulArgs,
) -> Result<Description, CliError> {
    let store = store_args.connect().await?;
    let resource = store.get_existing(object).await?;
    let (all_events, _) = store.list_events().await?;
    let filter = EventFilter {
        kind: Some(object.kind),
        namespace: Some(object.namespace.clone()),
        name: Some(object.name.clone()),
        type_: None,
        since: None,
    };
    let mut events: Vec<Event> = all_events
        .into_iter()
        .filter(|e| filter.matches(e))
        .collect();
    events.drain(..events.len().saturating_sub(EVENTS_SHOWN));
    let mut description = Description {
        object: resource,
        job: None,
        allocations: Vec::new(),
        events,
        unavailable: Vec::new(),
    };
    if object.kind == crds::Kind::GitSource {
        return Ok(description);
    }
    let nomad = nomad_args.client(|_| {})?;
    let id = reconcilers::meta::job_id(object);
    match nomad
        .job(&object.namespace, &id, QueryOptions::default())
        .await
    {
        Ok(found) => {
            description.job = found.value.map(|job| JobSummary {
                id: job.id.clone(),
                version: job.version.unwrap_or(0),
                modify_index: job.job_modify_index.unwrap_or(0),
                status: job.status.clone().unwrap_or_else(|| "unknown".into()),
                stopped: job.stop.unwrap_or(false),
            })
        }
        Err(e) => description.unavailable.push(format!("Nomad: {e}")),
    }
    if description.job.is_none() {
        return Ok(description);
    }
    let allocs = match nomad
        .job_allocations(&object.namespace, &id, QueryOptions::default())
        .await
    {
        Ok(allocs) => allocs.value,
        Err(e) => {
            description.unavailable.push(format!("Nomad: {e}"));
            return Ok(description);
        }
    };
    let checks = if description.object.has_health() {
        let consul = consul_args.client(|_| {})?;
        let service = reconcilers::render::service_name(object);
        match consul.checks_by_alloc(&service).await {
            Ok(checks) => checks,
            Err(e) => {
                description.unavailable.push(format!("Consul: {e}"));
                HashMap::new()
            }
        }
    } else {
        HashMap::new()
    };
    let mut allocs: Vec<&AllocStub> = allocs.iter().collect();
    // What runs first, then the newest.
    allocs.sort_by_key(|a| (a.desired_status != "run", std::cmp::Reverse(a.create_index)));
    description.allocations = allocs.iter().map(|a| Instance::of(a, &checks)).collect();
    Ok(description)
}

/// The description as text, sections in a fixed order; `now` dates ages.
pub fn render(d: &Description, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let meta = d.object.metadata();
    let status = d.object.status();
    line(format!("Name:         {}", meta.name));
    line(format!("Namespace:    {}", meta.namespace));
    line(format!("Kind:         {}", d.object.kind().as_str()));
    line(format!(
        "Generation:   {} (observed: {})",
        meta.generation,
        status
            .and_then(|s| s.observed_generation)
            .map_or("-".to_string(), |g| g.to_string())
    ));
    line(format!(
        "Created:      {} ago",
        age(meta.creation_timestamp, now)
    ));
    let since = status
        .and_then(|s| s.condition(crds::ConditionType::Suspended))
        .map(|c| format!(" (since {} ago)", age(Some(c.last_transition_time), now)))
        .unwrap_or_default();
    line(format!(
        "State:        {}{since}",
        reconcilers::operator::state(&d.object)
    ));
    match reconcilers::source_sync::Owner::of(&d.object) {
        reconcilers::source_sync::Owner::Source(source) => line(format!(
            "Source:       {source}, commit {}",
            meta.annotations
                .get(reconcilers::meta::COMMIT)
                .map_or("-", String::as_str)
        )),
        reconcilers::source_sync::Owner::Hand => line("Source:       nomarch apply".into()),
    }
    for (key, value) in &meta.labels {
        line(format!("Label:        {key}={value}"));
    }
    line("Spec:".into());
    for item in d.object.summary() {
        line(format!("  {item}"));
    }
    line("Conditions:".into());
    match status.map(|s| &s.conditions[..]).filter(|c| !c.is_empty()) {
        None => line("  (none yet)".into()),
        Some(conditions) => {
            line(format!(
                "  {:<12} {:<8} {:<18} {:<6} MESSAGE",
                "TYPE", "STATUS", "REASON", "AGE"
            ));
            for c in conditions {
                line(format!(
                    "  {:<12} {:<8} {:<18} {:<6} {}",
                    c.type_.as_str(),
                    c.status.to_string(),
                    c.reason,
                    age(Some(c.last_transition_time), now),
                    c.message
                ));
            }
        }
    }
    if let Some(hub) = status.and_then(|s| s.hub.hub.as_ref()) {
        let phase = status
            .and_then(|s| s.hub.phase)
            .map_or("-".to_string(), |p| format!("{p:?}"));
        line(format!(
            "Hub:          {} ({}), phase {phase}",
            hub.name, hub.id
        ));
    }
    if let Some(cron) = status.map(|s| &s.cron) {
        if let Some(next) = cron.next_run {
            line(format!("Next run:     {}", next.to_rfc3339()));
        }
        for run in cron.recent_runs.iter().flatten() {
            line(format!(
                "  run {}  {}  {}",
                run.job,
                run.scheduled.to_rfc3339(),
                run.outcome
            ));
        }
    }
    if let Some(git) = status
        .map(|s| &s.git)
        .filter(|g| g.last_fetch_time.is_some())
    {
        line(format!(
            "Applied:      {} ({} objects), last fetch {} ago",
            git.last_applied_commit.as_deref().unwrap_or("-"),
            git.objects.unwrap_or(0),
            age(git.last_fetch_time, now)
        ));
    }
    if let Some(job) = &d.job {
        line(format!(
            "Nomad job:    {} version {} (modify index {}), {}{}",
            job.id,
            job.version,
            job.modify_index,
            job.status,
            if job.stopped { ", stopped" } else { "" }
        ));
    } else if d.object.kind() != crds::Kind::GitSource {
        line("Nomad job:    not registered".into());
    }
    if let Some(rollout) = status.and_then(|s| s.workload.rollout.as_ref()) {
        line("Rollout:".into());
        for text in super::rollout::rollout_lines(rollout) {
            line(format!("  {text}"));
        }
    }
    if !d.allocations.is_empty() {
        line("Allocations:".into());
        line(format!(
            "  {:<10} {:<14} {:<9} {:<8} {:<8} {:<8} {:<9} AGE",
            "ID", "NODE", "STATUS", "DESIRED", "VERSION", "HEALTH", "RESTARTS"
        ));
        for a in &d.allocations {
            line(format!(
                "  {:<10} {:<14} {:<9} {:<8} {:<8} {:<8} {:<9} {}",
                &a.id[..a.id.len().min(8)],
                a.node,
                a.client_status,
                a.desired_status,
                a.job_version,
                a.health.unwrap_or("-"),
                a.restarts,
                age(a.created, now)
            ));
        }
    }
    for problem in &d.unavailable {
        line(format!("Unavailable:  {problem}"));
    }
    line("Events:".into());
    if d.events.is_empty() {
        line("  (none)".into());
    }
    for e in &d.events {
        let count = if e.count > 1 {
            format!(" (x{})", e.count)
        } else {
            String::new()
        };
        line(format!(
            "  {:<6} {:<7} {:<18} {}{count}",
            age(Some(e.last_timestamp), now),
            format!("{:?}", e.type_),
            e.reason,
            e.message
        ));
    }
    out
}

/// A few lines on what the spec asks for.
#[cfg(test)]
mod tests {
    use super::*;
    use crds::{Condition, ConditionStatus, ConditionType, Status};
    use serde_json::json;

    fn app() -> Resource {
        let yaml = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  replicas: 2\n";
        crds::parse_str("web.yaml", yaml)
            .unwrap()
            .remove(0)
            .resource
    }

    /// Volumes, service references and Nomad overrides are said in the spec summary.
    #[test]
    fn the_spec_summary_says_volumes_references_and_overrides() {
        let yaml = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1\n  env:\n    - name: STATS\n      serviceRef:\n        name: metrics\n        all: true\n  volumes:\n    - name: data\n      source: tenant-data\n      mountPath: /data\n      readOnly: true\n  nomad:\n    task:\n      KillTimeout: 1000000000\n";
        let app = crds::parse_str("web.yaml", yaml)
            .unwrap()
            .remove(0)
            .resource;
        let items = app.summary();
        for line in [
            "volume data: host volume tenant-data at /data, read-only",
            "env STATS: every instance of app metrics",
            "nomad task overrides: KillTimeout",
        ] {
            assert!(items.iter().any(|i| i == line), "{line} in {items:?}");
        }
    }

    #[test]
    fn every_section_in_its_place() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let mut object = app();
        object.metadata_mut().creation_timestamp = Some(now - chrono::Duration::minutes(5));
        object.metadata_mut().generation = 2;
        object.set_status(Some(Status {
            observed_generation: Some(2),
            conditions: vec![Condition {
                type_: ConditionType::Ready,
                status: ConditionStatus::True,
                reason: "ReplicasHealthy".into(),
                message: "2/2 replicas healthy".into(),
                last_transition_time: now - chrono::Duration::seconds(30),
            }],
            ..Status::default()
        }));
        let alloc: AllocStub = serde_json::from_value(json!({
            "ID": "0123456789", "JobID": "web", "NodeName": "node-1", "ClientStatus": "running",
            "DesiredStatus": "run", "JobVersion": 1, "CreateTime": (now.timestamp() - 60) * 1_000_000_000i64,
            "TaskStates": {"app": {"Restarts": 2}},
        }))
        .unwrap();
        let checks = HashMap::from([("0123456789".to_string(), true)]);
        let description = Description {
            object,
            job: Some(JobSummary {
                id: "web".into(),
                version: 1,
                modify_index: 42,
                status: "running".into(),
                stopped: false,
            }),
            allocations: vec![Instance::of(&alloc, &checks)],
            events: vec![],
            unavailable: vec!["Consul: unreachable".into()],
        };
        let text = render(&description, now);
        let expected = [
            "Name:         web",
            "Generation:   2 (observed: 2)",
            "Created:      5m ago",
            "Source:       nomarch apply",
            "  image: nginx:1",
            "  Ready        True     ReplicasHealthy    30s    2/2 replicas healthy",
            "Nomad job:    web version 1 (modify index 42), running",
            "  01234567   node-1         running   run      1        passing  2         60s",
            "Unavailable:  Consul: unreachable",
            "Events:\n  (none)",
        ];
        let mut from = 0;
        for part in expected {
            let at = text[from..]
                .find(part)
                .unwrap_or_else(|| panic!("`{part}` in order in:\n{text}"));
            from += at + part.len();
        }
        let as_json = serde_json::to_value(&description).unwrap();
        assert_eq!(as_json["allocations"][0]["health"], "passing");
        assert_eq!(
            as_json["object"]["status"]["conditions"][0]["type"],
            "Ready"
        );
    }
}
