//! What Apps and Pubs share after their job is settled: read the job's allocations and their
//! checks, count replicas, derive conditions, and run one round of healing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use crds::workload::HealthCheck;
use crds::{ObjectRef, Status};

use reconcilers::status::{
    mark_health_unknown, replicas, workload_status, AllocView, JobView, Written,
};

use super::heal::{heal, HealState, Healing};
use super::ReconcileError;
use crate::clients::consul::alloc_id_of_service;
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;

/// The workload being observed.
pub struct Workload<'a> {
    pub object: &'a ObjectRef,
    /// Healing's memory across objects.
    pub heal: &'a HealState,
    /// Its Consul service name.
    pub service: &'a str,
    pub desired: u32,
    pub generation: i64,
    pub health: Option<&'a HealthCheck>,
    pub max_unavailable: u32,
}

/// The new status, and when a failing check's grace runs out (to look again then).
pub async fn observe(
    ctx: &Context,
    workload: Workload<'_>,
    job: Option<&Job>,
    written: Option<Written>,
    previous: Option<&Status>,
) -> Result<(Status, Option<Duration>), ReconcileError> {
    let namespace = &workload.object.namespace;
    let allocs = match job {
        Some(job) => match ctx.allocs.of_job(namespace, &job.id) {
            Some(cached) => cached,
            None => {
                ctx.nomad
                    .job_allocations(namespace, &job.id, QueryOptions::default())
                    .await?
                    .value
            }
        },
        None => Vec::new(),
    };
    let has_checks = workload.health.is_some();
    // Consul failing does not stop the rest: the job is registered already, the allocations
    // come from Nomad, and only health is unknown (nothing is healed on unknown health).
    let mut health_unknown = None;
    let checks = if has_checks && allocs.iter().any(|a| a.is_live()) {
        match checks_by_alloc(ctx, workload.service).await {
            Ok(checks) => checks,
            Err(ReconcileError::Api(e)) if e.is_transient() => {
                health_unknown = Some(e.to_string());
                Default::default()
            }
            Err(e) => return Err(e),
        }
    } else {
        Default::default()
    };
    let current_version = job.and_then(|j| j.version);
    let views: Vec<AllocView> = allocs
        .iter()
        .filter(|a| a.is_live() || current_version.is_none_or(|v| a.job_version == v))
        .map(|a| AllocView {
            id: a.id.clone(),
            node_id: a.node_id.clone(),
            client_status: a.client_status.clone(),
            desired_status: a.desired_status.clone(),
            checks_passing: checks.get(&a.id).copied(),
        })
        .collect();
    let counts = replicas(workload.desired, &views, has_checks);
    let failing_count = views
        .iter()
        .filter(|a| a.is_running() && a.checks_passing == Some(false))
        .count();
    let failing = (failing_count > 0).then(|| {
        (
            "ChecksFailing",
            format!("{failing_count} allocation(s) failing health checks"),
        )
    });
    let job_view = job.filter(|j| !j.stop.unwrap_or(false)).map(|j| JobView {
        id: j.id.clone(),
        version: j.version.unwrap_or(0),
        job_modify_index: j.job_modify_index.unwrap_or(0),
    });
    let mut status = workload_status(
        previous,
        workload.generation,
        job_view.as_ref(),
        written.as_ref(),
        &counts,
        failing,
        Utc::now(),
    );
    let mut heal_due = None;
    if let Some(detail) = &health_unknown {
        mark_health_unknown(&mut status, &counts, detail, Utc::now());
        return Ok((status, heal_due));
    }
    if let Some(health) = workload.health {
        let node_names: BTreeMap<String, String> = allocs
            .iter()
            .map(|a| (a.node_id.clone(), a.node_name.clone()))
            .collect();
        let healing = Healing {
            state: workload.heal,
            object: workload.object,
            allocs: &views,
            node_names: &node_names,
            grace: health.grace.get(),
            max_unavailable: workload.max_unavailable,
        };
        heal_due = heal(ctx, healing, &mut status).await?;
    }
    Ok((status, heal_due))
}

/// Conditions only move their times when they change; anything else unchanged must not make
/// every reconcile a status write.
pub fn keep_if_unchanged(status: Status, previous: Option<&Status>, generation: i64) -> Status {
    match previous {
        Some(previous)
            if status.conditions == previous.conditions && status.details == previous.details =>
        {
            let mut same = previous.clone();
            same.observed_generation = Some(generation);
            same
        }
        _ => status,
    }
}

/// Whether each allocation's service checks pass, from Consul (the node's own check aside).
pub async fn checks_by_alloc(
    ctx: &Context,
    service: &str,
) -> Result<HashMap<String, bool>, ReconcileError> {
    let entries = ctx
        .consul
        .health_service(service, false, QueryOptions::default())
        .await?
        .value;
    let mut checks = HashMap::new();
    for entry in entries {
        let Some(alloc) = alloc_id_of_service(entry.service_id()) else {
            continue;
        };
        let passing = entry
            .checks
            .iter()
            .filter(|c| !c.service_id.is_empty())
            .all(|c| c.status == "passing");
        checks.insert(alloc.to_string(), passing);
    }
    Ok(checks)
}
