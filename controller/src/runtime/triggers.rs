//! What else makes objects reconcile: Nomad's event stream (jobs, allocations and
//! deployments), Consul
//! health changes (blocking queries), and a periodic resync that also sweeps orphaned jobs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crds::ObjectRef;
use futures::StreamExt;
use tracing::{debug, info, warn};

use super::context::Context;
use super::kinds::Kinds;
use super::queue::backoff;
use crate::clients::nomad_types::{AllocStub, Event, Job};
use crate::clients::QueryOptions;
use crate::store::EventType;

/// What one Nomad event carries, decoded once: the stream's hottest path in a cold start is
/// turning each event's payload into these (thousands per second), so it reads the payload
/// in place instead of cloning it, and only once per event.
enum Payload {
    Job(Option<Job>),
    Allocation(Option<AllocStub>),
    /// A deployment's job ID: rollouts in status follow their deployment.
    Deployment(Option<String>),
    Other,
}

impl Payload {
    fn of(event: &Event) -> Payload {
        match event.topic.as_str() {
            "Job" => Payload::Job(decoded(event.payload.get("Job"))),
            "Allocation" => Payload::Allocation(decoded(event.payload.get("Allocation"))),
            "Deployment" => Payload::Deployment(decoded(
                event.payload.get("Deployment").and_then(|d| d.get("JobID")),
            )),
            _ => Payload::Other,
        }
    }
}

/// Deserializes from a borrowed JSON value (no copy of the tree).
fn decoded<T: serde::de::DeserializeOwned>(value: Option<&serde_json::Value>) -> Option<T> {
    value.and_then(|v| T::deserialize(v).ok())
}

/// The objects a Nomad event concerns: a job's owner from its meta, an allocation's through
/// its job ID.
fn owners_of(ctx: &Context, kinds: &dyn Kinds, event: &Event, payload: &Payload) -> Vec<ObjectRef> {
    match payload {
        Payload::Job(job) => {
            let owner = job
                .as_ref()
                .and_then(|j| reconcilers::meta::owner_of(&event.namespace, j.meta.as_ref()));
            match owner {
                Some(owner) => vec![owner],
                None => ctx.cache.named(Some(&event.namespace), &event.key),
            }
        }
        Payload::Allocation(alloc) => {
            // The job ID from the payload when it decoded; else the raw field, so a payload
            // that lost a field still wakes its owner.
            let job_id = match alloc {
                Some(alloc) => alloc.job_id.as_str(),
                None => event
                    .payload
                    .get("Allocation")
                    .and_then(|a| a.get("JobID"))
                    .and_then(|j| j.as_str())
                    .unwrap_or_default(),
            };
            ctx.cache.named(Some(&event.namespace), job_id)
        }
        Payload::Deployment(job_id) => match job_id {
            Some(job_id) => ctx.cache.named(Some(&event.namespace), job_id),
            None => Vec::new(),
        },
        Payload::Other if event.topic == "Node" => kinds.concerned_by_node(ctx, &event.key),
        Payload::Other => Vec::new(),
    }
}

/// Keeps `ctx.nodes` current (one blocking query on the node list, see [`super::nodes`]) and
/// wakes the objects a changed node concerns; a failure empties it, so readers ask Nomad themselves.
pub async fn follow_nodes(ctx: Arc<Context>, kinds: Arc<dyn Kinds>) {
    let mut index = 0u64;
    let mut failures = 0u32;
    loop {
        let options = QueryOptions::default()
            .param("resources", "true")
            .blocking(index, ctx.blocking_wait);
        match ctx.nomad.nodes(options).await {
            Ok(answer) => {
                failures = 0;
                // An index that went backwards means Nomad's state was reset: start over.
                index = if answer.index < index {
                    0
                } else {
                    answer.index
                };
                let changed = super::nodes::changed_nodes(
                    ctx.nodes.get().map(|n| n.nodes).as_deref(),
                    &answer.value,
                );
                ctx.nodes.set(Some(answer.value));
                // After the cache holds the change, so the reconciles it wakes see it.
                for node in changed {
                    for object in kinds.concerned_by_node(&ctx, &node) {
                        ctx.queue.add(object);
                    }
                }
            }
            Err(e) => {
                debug!(error = %e, "node query failed");
                ctx.nodes.set(None);
                index = 0;
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Follows Nomad's event stream. Each (re)connection first lists the namespaces and every
/// allocation into the allocation cache and streams from that listing's index, so nothing that
/// happened while the stream was down is missed; while it is down, the cache says so and
/// readers ask Nomad. Nomad resolves the stream's `*` namespace once, when it opens
/// (nomad/event_endpoint.go `validateACL`), so a namespace created later carries no events to
/// it: a blocking query on the namespaces reopens the stream when one appears.
pub async fn nomad_events(ctx: Arc<Context>, kinds: Arc<dyn Kinds>) {
    let mut failures = 0u32;
    loop {
        let namespaces = match ctx.nomad.namespaces(QueryOptions::default()).await {
            Ok(listing) => listing,
            Err(e) => {
                debug!(error = %e, "namespace listing failed");
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        let covered: HashSet<String> = namespaces.value.into_iter().map(|n| n.name).collect();
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
        let new_namespace = namespace_added(&ctx, &covered, namespaces.index);
        tokio::pin!(new_namespace);
        let mut reopen = false;
        match ctx
            .nomad
            .event_stream(&["Job", "Allocation", "Deployment"], "*", index)
            .await
        {
            Ok(mut stream) => loop {
                let frame = tokio::select! {
                    frame = stream.next() => frame,
                    // Until the reopen, the caches are marked unsynced (below), so reads of
                    // the new namespace go to Nomad.
                    () = &mut new_namespace => {
                        debug!("a namespace appeared; reopening the event stream");
                        reopen = true;
                        break;
                    }
                };
                let Some(frame) = frame else { break };
                match frame {
                    Ok(frame) => {
                        failures = 0;
                        for event in &frame.events {
                            let payload = Payload::of(event);
                            let owners = owners_of(&ctx, kinds.as_ref(), event, &payload);
                            // Caches first, so the reconciles queued next read this event.
                            match payload {
                                Payload::Allocation(Some(alloc)) => ctx.allocs.upsert(alloc),
                                Payload::Job(job) => {
                                    ctx.jobs.on_event(&event.event_type, &event.namespace, job)
                                }
                                _ => {}
                            }
                            for owner in owners {
                                ctx.queue.add(owner);
                            }
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "event stream ended");
                        break;
                    }
                }
            },
            Err(e) => debug!(error = %e, "event stream unavailable"),
        }
        ctx.allocs.mark_unsynced();
        ctx.jobs.mark_unsynced();
        if reopen {
            continue;
        }
        failures += 1;
        tokio::time::sleep(backoff(failures)).await;
    }
}

/// Resolves when Nomad lists a namespace the stream does not carry (blocking queries from
/// `index`); errors only wait and ask again, the stream itself reports Nomad being gone.
async fn namespace_added(ctx: &Context, covered: &HashSet<String>, mut index: u64) {
    loop {
        let options = QueryOptions::default().blocking(index, ctx.blocking_wait);
        match ctx.nomad.namespaces(options).await {
            Ok(answer) => {
                if answer.value.iter().any(|n| !covered.contains(&n.name)) {
                    return;
                }
                index = answer.index.max(1);
            }
            Err(e) => {
                debug!(error = %e, "namespace watch failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
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
                    for owner in ctx.cache.serving(service) {
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
