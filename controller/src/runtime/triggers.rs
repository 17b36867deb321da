//! What else makes objects reconcile: Nomad's event stream (jobs and allocations), Consul
//! health changes (blocking queries), and a periodic resync that also sweeps orphaned jobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crds::ObjectRef;
use futures::StreamExt;
use tracing::{debug, info, warn};

use super::context::Context;
use super::queue::backoff;
use crate::clients::nomad_types::{Event, Job};
use crate::clients::QueryOptions;
use crate::store::EventType;

/// The objects a Nomad event concerns: a job's owner from its meta, an allocation's through
/// its job ID.
fn owners_of(ctx: &Context, event: &Event) -> Vec<ObjectRef> {
    match event.topic.as_str() {
        "Job" => {
            let job: Option<Job> = event
                .payload
                .get("Job")
                .and_then(|j| serde_json::from_value(j.clone()).ok());
            match job.and_then(|j| reconcilers::meta::owner_of(&event.namespace, j.meta.as_ref())) {
                Some(owner) => vec![owner],
                None => ctx.cache.named(Some(&event.namespace), &event.key),
            }
        }
        "Allocation" => {
            let job_id = event
                .payload
                .get("Allocation")
                .and_then(|a| a.get("JobID"))
                .and_then(|j| j.as_str())
                .unwrap_or_default();
            ctx.cache.named(Some(&event.namespace), job_id)
        }
        "Node" => pubs_concerned_by_node(ctx, &event.key),
        _ => Vec::new(),
    }
}

/// A node changed: the pubs pinned to it, and every pub still waiting for a hub.
pub fn pubs_concerned_by_node(ctx: &Context, node_id: &str) -> Vec<ObjectRef> {
    ctx.cache
        .refs()
        .into_iter()
        .filter(|r| r.kind == crds::Kind::Pub)
        .filter(|r| {
            let hub = crate::reconcile::pubs::hub_of_status(ctx.cache.status(r).as_ref());
            hub.is_none_or(|(id, _)| id == node_id)
        })
        .collect()
}

/// Follows Nomad's event stream. Each (re)connection first lists every allocation into the
/// allocation cache and streams from that listing's index, so nothing that happened while the
/// stream was down is missed; while it is down, the cache says so and readers ask Nomad.
pub async fn nomad_events(ctx: Arc<Context>) {
    let mut failures = 0u32;
    loop {
        let listed = ctx.nomad.allocations(QueryOptions::namespace("*")).await;
        let index = match listed {
            Ok(listing) => {
                ctx.allocs.replace(listing.value);
                ctx.jobs.restart();
                listing.index
            }
            Err(e) => {
                debug!(error = %e, "allocation listing failed");
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        match ctx
            .nomad
            .event_stream(&["Job", "Allocation"], "*", index)
            .await
        {
            Ok(mut stream) => {
                while let Some(frame) = stream.next().await {
                    match frame {
                        Ok(frame) => {
                            failures = 0;
                            for event in &frame.events {
                                if let Some(alloc) = allocation_of(event) {
                                    ctx.allocs.upsert(alloc);
                                }
                                if event.topic == "Job" {
                                    let job = event
                                        .payload
                                        .get("Job")
                                        .and_then(|j| serde_json::from_value(j.clone()).ok());
                                    ctx.jobs.on_event(&event.event_type, &event.namespace, job);
                                }
                                for owner in owners_of(&ctx, event) {
                                    ctx.queue.add(owner);
                                }
                            }
                        }
                        Err(e) => {
                            debug!(error = %e, "event stream ended");
                            break;
                        }
                    }
                }
            }
            Err(e) => debug!(error = %e, "event stream unavailable"),
        }
        ctx.allocs.mark_unsynced();
        ctx.jobs.mark_unsynced();
        failures += 1;
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// The allocation an `Allocation` event carries.
fn allocation_of(event: &Event) -> Option<crate::clients::nomad_types::AllocStub> {
    if event.topic != "Allocation" {
        return None;
    }
    serde_json::from_value(event.payload.get("Allocation")?.clone()).ok()
}

/// The shortest time between two health listings.
const HEALTH_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Watches every Consul check with a blocking query and queues the objects whose service
/// changed health.
pub async fn consul_health(ctx: Arc<Context>) {
    let mut index = 0u64;
    let mut last: HashMap<String, (String, String)> = HashMap::new();
    let mut failures = 0u32;
    let mut next_query = tokio::time::Instant::now();
    loop {
        // Every change wakes this query and it returns every check; while a cluster churns (a
        // cold start) that is a full listing per change. Asking at most every
        // HEALTH_MIN_INTERVAL coalesces the changes, as consul-template's `wait` does; heal
        // graces are seconds, so nothing waits for it.
        tokio::time::sleep_until(next_query).await;
        next_query = tokio::time::Instant::now() + HEALTH_MIN_INTERVAL;
        let options = QueryOptions::default().blocking(index, ctx.blocking_wait);
        match ctx.consul.health_state("any", options).await {
            Ok(answer) => {
                failures = 0;
                // An index that went backwards means Consul restarted: start over.
                index = if answer.index < index {
                    0
                } else {
                    answer.index
                };
                let now: HashMap<String, (String, String)> = answer
                    .value
                    .iter()
                    .map(|c| {
                        (
                            c.check_id.clone(),
                            (c.service_name.clone(), c.status.clone()),
                        )
                    })
                    .collect();
                let mut changed: Vec<&str> = now
                    .iter()
                    .filter(|(id, (_, status))| last.get(*id).map(|(_, s)| s) != Some(status))
                    .map(|(_, (service, _))| service.as_str())
                    .chain(
                        last.iter()
                            .filter(|(id, _)| !now.contains_key(*id))
                            .map(|(_, (service, _))| service.as_str()),
                    )
                    .filter(|s| !s.is_empty())
                    .collect();
                changed.sort();
                changed.dedup();
                for service in changed {
                    for owner in ctx.cache.named(None, service) {
                        ctx.queue.add(owner);
                    }
                }
                last = now;
            }
            Err(e) => {
                failures += 1;
                debug!(error = %e, "consul health query failed");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Every `period`: queue every object, and deregister managed jobs whose object is gone.
pub async fn resync(ctx: Arc<Context>, period: Duration) {
    ctx.cache.wait_synced().await;
    loop {
        sweep_orphans(&ctx).await;
        tokio::time::sleep(period).await;
        for object in ctx.cache.refs() {
            ctx.queue.add(object);
        }
    }
}

/// Deregisters jobs nomarch manages whose object no longer exists (also when the object was
/// deleted while the controller was down), unless the job is protected.
pub async fn sweep_orphans(ctx: &Context) {
    if !ctx.cache.is_synced() {
        return;
    }
    let options = QueryOptions::namespace("*").param("meta", "true");
    let jobs = match ctx.nomad.jobs_slim(options).await {
        Ok(jobs) => jobs.value,
        Err(e) => {
            warn!(error = %e, "orphan sweep could not list jobs");
            return;
        }
    };
    for job in jobs {
        let Some(owner) = reconcilers::meta::owner_of(&job.namespace, job.meta.as_ref()) else {
            continue;
        };
        if job.stop || !job.parent_id.is_empty() || ctx.cache.contains(&owner) || !ctx.owns(&owner)
        {
            continue;
        }
        let protected = job
            .meta
            .as_ref()
            .and_then(|m| m.get(reconcilers::meta::PROTECT))
            .is_some_and(|v| v == "true");
        if protected {
            debug!(job = %job.id, "orphaned but protected; kept");
            continue;
        }
        match ctx.nomad.deregister(&job.namespace, &job.id, false).await {
            Ok(_) => {
                info!(job = %job.id, owner = %owner, "deregistered orphaned job");
                ctx.event(
                    &owner,
                    EventType::Normal,
                    "Deregistered",
                    format!("job {} stopped: its {} is gone", job.id, owner.kind),
                )
                .await;
            }
            Err(e) => warn!(job = %job.id, error = %e, "could not deregister orphaned job"),
        }
    }
}
