//! A Pub's decisions, in two steps. The hub step ([`hub_step`], then [`placed`] under the
//! placement lock): keep the hub, wait for it, or choose one (by the rules of [`crate::hubs`]),
//! and what that puts in status and says. Then, once the hub is settled ([`compute`]): the
//! workload's look (one instance, healed in place on its hub), its phase, Nomad's refusal or
//! rollback on record, and when to look again, the hub's own pace included.
//!
//! A Pub as a Nomad service job of one instance pinned to its hub with a `${node.unique.id}`
//! constraint. The hub is part of the rendered job, so moving the pub is a change to register.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::status::{HubRecord, PubPhase, Reallocation};
use crds::{ConditionType, ObjectRef, Pub, PubSpec, Resource, Status};
use serde_json::{json, Map};

use super::{record_job_outcome, settled, JobOutcome};
use crate::effects::{Effects, PlannedEvent, Requeue};
use crate::hubs::{choose, verdict, Assigned, Hub, HubFacts, HubVerdict};
use crate::meta::job_meta;
use crate::nomad_job::Job;
use crate::render::{job, service_group, services, JobParts, Shared};
use crate::status::{mark_stopped, set_condition};
use crate::workload::{keep_if_unchanged, look, WorkloadSnapshot, WorkloadSpec};

/// The pub's job pinned to `hub_id`, in the hub's node pool (`hub_pool`; empty for a Nomad
/// without pools). Without the pool, Nomad would look for the hub only in the `default` pool
/// and never place a pub on a hub in another one.
pub fn render_pub(pub_: &Pub, hub_id: &str, hub_pool: &str) -> Job {
    let spec = &pub_.spec;
    let object = pub_.object_ref();
    let services = services(
        &object,
        &spec.ports,
        spec.health.as_ref(),
        spec.route.as_ref(),
    );
    let mut meta = job_meta(&Resource::Pub(pub_.clone()));
    meta.insert("nomarch.io/hub".to_string(), hub_id.to_string());
    let mut fields = Map::new();
    fields.insert("Datacenters".into(), json!(["*"]));
    fields.insert(
        "Constraints".into(),
        json!([{"LTarget": "${node.unique.id}", "Operand": "=", "RTarget": hub_id}]),
    );
    if !hub_pool.is_empty() {
        fields.insert("NodePool".into(), json!(hub_pool));
    }
    let parts = JobParts {
        object: &object,
        job_type: "service",
        meta,
        fields,
        // One instance, restarted in place; a failed pub is replaced on the same hub (the
        // constraint holds).
        group: service_group(PubSpec::GROUP, 1, &spec.ports, services, spec.container()),
    };
    job(
        parts,
        Shared {
            volumes: &spec.volumes,
            env: &spec.env,
            overrides: &spec.nomad,
            stopped: spec.stopped,
        },
    )
}

/// While a pub is converging, look again this often even without a trigger.
pub const CONVERGING_RECHECK: Duration = Duration::from_secs(5);
/// A pub no hub can take looks again this often.
pub const UNSCHEDULABLE_RECHECK: Duration = Duration::from_secs(10);
/// A look due at a grace's end comes this much after it, so the grace has surely run out.
pub const AFTER_GRACE: Duration = Duration::from_millis(50);
/// A pub waiting for its lost hub looks again at least this often.
pub const HOLD_RECHECK: Duration = Duration::from_secs(60);
/// A look due when a hub's grace or cool-down ends comes this much after it.
pub const AFTER_HUB_WAIT: Duration = Duration::from_millis(200);

/// What the hub step reads, with one `now`.
pub struct HubSnapshot<'a> {
    pub pub_: &'a Pub,
    /// The stored status.
    pub status: Option<&'a Status>,
    /// Every node as a hub.
    pub hubs: &'a [Hub],
    /// A move asked for (by `nomarch rebalance`, or an automatic one): the hub, and why.
    pub asked: Option<(&'a Hub, &'static str)>,
    /// What the other pubs are promised on each hub (an asked move is checked against it).
    pub assigned: &'a Assigned,
    /// When a hub still cooling down arrives (pubs that rebalance by themselves).
    pub rebalance_due: Option<Duration>,
    pub now: DateTime<Utc>,
}

/// A move off the recorded hub: its ID and name, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moving {
    pub from_id: String,
    pub from_name: String,
    pub reason: String,
}

/// What to do about the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubAction {
    /// Keep the hub on record (a pub that has none and needs none keeps none).
    Keep,
    /// Choose a hub under the placement lock ([`placed`]): only the one named, or any.
    Choose {
        only: Option<String>,
        moving: Option<Moving>,
    },
}

/// What the hub step decided.
#[derive(Clone, Debug, PartialEq)]
pub struct HubStep {
    /// The status with the hub's health as now seen.
    pub status: Status,
    pub action: HubAction,
    /// Said at once.
    pub events: Vec<PlannedEvent>,
    /// When to look again for the hub's sake.
    pub requeue: Option<Duration>,
}

/// Since when the recorded hub has been seen not ready: from status, or from `now` when it
/// was ready at the last look. `None` while it is ready.
pub fn unhealthy_since(
    status: &Status,
    hub: Option<&Hub>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match hub {
        Some(h) if !h.ready => Some(status.hub.hub_unhealthy_since.unwrap_or(now)),
        _ => None,
    }
}

/// A pub's need on a hub: its CPU and memory.
pub fn need(pub_: &Pub) -> (u64, u64) {
    let resources = &pub_.spec.resources;
    (u64::from(resources.cpu), u64::from(resources.memory))
}

/// The hub step: the hub rules' verdict ([`crate::hubs::verdict`]; a stopped pub stays where
/// it is: nothing of it runs to be moved), and a move someone asked for, taken only while
/// nothing else moves the pub and only onto a hub that can take it now.
pub fn hub_step(snapshot: &HubSnapshot<'_>) -> HubStep {
    let pub_ = snapshot.pub_;
    let mut status = snapshot.status.cloned().unwrap_or_default();
    let current = status.hub.hub.clone();
    let hub = current
        .as_ref()
        .and_then(|record| snapshot.hubs.iter().find(|h| h.id == record.id));
    status.hub.hub_unhealthy_since = unhealthy_since(&status, hub, snapshot.now);
    let facts = HubFacts {
        hub_id: current.as_ref().map(|record| record.id.as_str()),
        hub,
        unhealthy_since: status.hub.hub_unhealthy_since,
        grace: pub_.spec.reallocation.grace.get(),
        wait_on_loss: pub_.spec.waits_on_hub_loss(),
        now: snapshot.now,
    };
    let verdict = if pub_.spec.stopped {
        HubVerdict::Stay
    } else {
        verdict(&facts)
    };
    let mut step = HubStep {
        status,
        action: HubAction::Keep,
        events: Vec::new(),
        requeue: snapshot.rebalance_due.map(|due| due + AFTER_HUB_WAIT),
    };
    let moving = |reason: String| {
        current.as_ref().map(|record| Moving {
            from_id: record.id.clone(),
            from_name: record.name.clone(),
            reason,
        })
    };
    match verdict {
        HubVerdict::Stay => {
            let Some((target, why)) = snapshot.asked else {
                return step;
            };
            let fits = choose(
                &pub_.spec.hub_selector,
                pub_.spec.placement_policy,
                need(pub_),
                &pub_.spec.volumes,
                std::slice::from_ref(target),
                snapshot.assigned,
                None,
            )
            .is_some();
            if fits {
                step.action = HubAction::Choose {
                    only: Some(target.id.clone()),
                    moving: moving(why.to_string()),
                };
            } else {
                step.events.push(PlannedEvent::warning(
                    "MoveRefused",
                    format!(
                        "hub {} cannot take it now (not ready, not matching the selector, without room or without its volumes)",
                        target.name
                    ),
                ));
            }
        }
        HubVerdict::Wait(rest) => step.requeue = Some(rest + AFTER_HUB_WAIT),
        // Pinned to a lost hub on purpose: said (repeats count up, they do not flood), and
        // looked at again when the hub's node changes, or at the latest in a minute.
        HubVerdict::Hold(reason) => {
            step.events
                .push(PlannedEvent::warning("WaitingForHub", reason));
            step.requeue = Some(HOLD_RECHECK);
        }
        HubVerdict::Place => {
            step.action = HubAction::Choose {
                only: None,
                moving: None,
            }
        }
        HubVerdict::Move(reason) => {
            step.action = HubAction::Choose {
                only: None,
                moving: moving(reason),
            }
        }
    }
    step
}

/// A hub chosen (or none could be), and what it puts in status and says.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The hub's ID; `None`: no hub can take the pub (`Unschedulable` in status).
    pub hub: Option<String>,
    pub status: Status,
    pub events: Vec<PlannedEvent>,
}

/// Chooses a hub among `hubs` (the recorded one excluded when moving) against what the other
/// pubs are promised, and records it: the hub and a move in status, `Placed` or `Reallocated`;
/// or `Unschedulable` (said once, when it becomes so). Run under the placement lock, with
/// `assigned` read under it, so two pubs never take the last room on a hub.
pub fn placed(
    pub_: &Pub,
    mut status: Status,
    hubs: &[Hub],
    assigned: &Assigned,
    moving: Option<&Moving>,
    now: DateTime<Utc>,
) -> Placement {
    let need = need(pub_);
    let exclude = moving.map(|m| m.from_id.as_str());
    let chosen = choose(
        &pub_.spec.hub_selector,
        pub_.spec.placement_policy,
        need,
        &pub_.spec.volumes,
        hubs,
        assigned,
        exclude,
    );
    let Some(hub) = chosen else {
        let volumes = if pub_.spec.volumes.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = pub_
                .spec
                .volumes
                .iter()
                .map(|v| v.source.as_str())
                .collect();
            format!(" and offers host volume(s) {}", names.join(", "))
        };
        let message = format!(
            "no ready hub matching the selector has room for {} MHz and {} MB{volumes}",
            need.0, need.1
        );
        let was_unschedulable = status
            .condition(ConditionType::Ready)
            .is_some_and(|c| c.reason == "Unschedulable");
        set_condition(
            &mut status.conditions,
            ConditionType::Ready,
            false,
            "Unschedulable",
            message.clone(),
            now,
        );
        status.hub.phase = Some(PubPhase::Unschedulable);
        let events = (!was_unschedulable)
            .then(|| PlannedEvent::warning("Unschedulable", message))
            .into_iter()
            .collect();
        return Placement {
            hub: None,
            status,
            events,
        };
    };
    status.hub.hub = Some(HubRecord {
        id: hub.id.clone(),
        name: hub.name.clone(),
    });
    status.hub.hub_unhealthy_since = None;
    let event = match moving {
        Some(m) => {
            status.hub.last_reallocation = Some(Reallocation {
                from: m.from_name.clone(),
                to: hub.name.clone(),
                at: now,
                reason: m.reason.clone(),
            });
            PlannedEvent::normal(
                "Reallocated",
                format!(
                    "moved from hub {} to hub {}: {}",
                    m.from_name, hub.name, m.reason
                ),
            )
        }
        None => PlannedEvent::normal("Placed", format!("placed on hub {}", hub.name)),
    };
    Placement {
        hub: Some(hub.id.clone()),
        status,
        events: vec![event],
    }
}

/// What the look judges a Pub against: one instance, at most one replaced at a time.
pub fn workload_spec<'a>(pub_: &'a Pub, object: &'a ObjectRef) -> WorkloadSpec<'a> {
    WorkloadSpec {
        object,
        generation: pub_.metadata.generation,
        desired: u32::from(!pub_.spec.stopped),
        stopped: pub_.spec.stopped,
        health: pub_.spec.health.as_ref(),
        max_unavailable: 1,
        // A pub's job has no update block (`render_pub` above): one instance, replaced in place.
        deploys: false,
    }
}

/// The phase people read, as an ordered rule table over what the look counted.
pub fn phase(status: &Status, stopped: bool) -> PubPhase {
    let replicas = status.workload.replicas.unwrap_or_default();
    let hub_down = status.hub.hub_unhealthy_since.is_some();
    match () {
        // Asked to run nothing: whatever still runs is on its way out.
        _ if stopped => PubPhase::Stopped,
        // Its hub is unhealthy: what runs there may be gone any moment.
        _ if hub_down => PubPhase::HubDown,
        _ if replicas.healthy >= 1 => PubPhase::Running,
        _ if replicas.running >= 1 => PubPhase::Starting,
        _ => PubPhase::Pending,
    }
}

/// Everything a Pub's decisions read once it has a hub. `workload.previous` is the status the
/// hub step left (hub chosen, kept or moved), not yet stored; `stored` is what etcd holds.
pub struct PubSnapshot<'a> {
    pub pub_: &'a Pub,
    pub stored: Option<&'a Status>,
    pub job: &'a JobOutcome,
    pub workload: WorkloadSnapshot<'a>,
    /// When the hub step wants another look (a grace running, a lost hub held, a rebalance).
    pub hub_requeue: Option<Duration>,
}

pub fn compute(snapshot: &PubSnapshot<'_>) -> Effects {
    let now = snapshot.workload.now;
    let mut look = look(&snapshot.workload);
    let mut status = std::mem::take(&mut look.status);
    status.hub.phase = Some(phase(&status, snapshot.pub_.spec.stopped));
    let mut status = keep_if_unchanged(
        status,
        snapshot.workload.previous,
        snapshot.pub_.metadata.generation,
    );
    record_job_outcome(&mut status, snapshot.stored, snapshot.job, now);
    let settled = settled(&status);
    let heal_due = look.heal_due.map(|due| due + AFTER_GRACE);
    let requeue = match (snapshot.hub_requeue, heal_due) {
        // The sooner of the hub's look and the grace's end.
        (Some(hub), Some(heal)) => Requeue::After(hub.min(heal)),
        (Some(wait), None) | (None, Some(wait)) => Requeue::After(wait),
        (None, None) if settled => Requeue::OnChange,
        (None, None) => Requeue::After(CONVERGING_RECHECK),
    };
    look.status = status;
    look.into_effects(requeue)
}

/// A Pub no hub holds: stopped before it ever had one (nothing to place, no job to stop), or
/// none can take it (`Unschedulable`, set by the hub step; looked at again soon).
pub fn without_hub(pub_: &Pub, after_hub_step: Status, now: DateTime<Utc>) -> Effects {
    let mut status = after_hub_step;
    let requeue = if pub_.spec.stopped {
        mark_stopped(&mut status, true, 0, now);
        status.hub.phase = Some(PubPhase::Stopped);
        status.observed_generation = Some(pub_.metadata.generation);
        Requeue::OnChange
    } else {
        Requeue::After(UNSCHEDULABLE_RECHECK)
    };
    Effects::without_healing(status, Vec::new(), requeue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubs::tests::hub;
    use crds::status::ReplicaCounts;

    fn pub_(stopped: bool) -> Pub {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "nomarch.io/v1", "kind": "Pub",
            "metadata": {"name": "p", "namespace": "default", "generation": 1},
            "spec": {"tenant": "acme", "image": "nginx", "stopped": stopped,
                     "hubSelector": {"nodeClass": "hub"},
                     "reallocation": {"grace": "60s", "onHubLoss": "move"}},
        }))
        .expect("a Pub")
    }

    /// A status recording `hub` (down since `down_since` seconds before `at(0)`, if given).
    fn on(hub: &Hub, down_since: Option<i64>) -> Status {
        let mut status = Status::default();
        status.hub.hub = Some(HubRecord {
            id: hub.id.clone(),
            name: hub.name.clone(),
        });
        status.hub.hub_unhealthy_since = down_since.map(|s| at(-s));
        status
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn step(
        pub_: &Pub,
        status: &Status,
        hubs: &[Hub],
        asked: Option<(&Hub, &'static str)>,
    ) -> HubStep {
        hub_step(&HubSnapshot {
            pub_,
            status: Some(status),
            hubs,
            asked,
            assigned: &Assigned::new(),
            rebalance_due: None,
            now: at(0),
        })
    }

    /// (why, pub, status, hubs) → (action, next look)
    type Row = (
        &'static str,
        Pub,
        Status,
        Vec<Hub>,
        HubAction,
        Option<Duration>,
    );

    #[test]
    fn the_hub_step_keeps_waits_or_chooses_by_the_hub_rules() {
        let up = hub("a", 4096, true, true);
        let down = hub("a", 4096, false, true);
        let other = hub("b", 4096, true, true);
        let moving = |reason: &str| {
            Some(Moving {
                from_id: "id-a".into(),
                from_name: "a".into(),
                reason: reason.into(),
            })
        };
        let table: Vec<Row> = vec![
            (
                "never placed",
                pub_(false),
                Status::default(),
                vec![up.clone()],
                HubAction::Choose {
                    only: None,
                    moving: None,
                },
                None,
            ),
            (
                "on a ready hub",
                pub_(false),
                on(&up, None),
                vec![up.clone()],
                HubAction::Keep,
                None,
            ),
            (
                "down within the grace",
                pub_(false),
                on(&down, Some(20)),
                vec![down.clone()],
                HubAction::Keep,
                Some(Duration::from_secs(40) + AFTER_HUB_WAIT),
            ),
            (
                "down past the grace",
                pub_(false),
                on(&down, Some(90)),
                vec![down.clone(), other.clone()],
                HubAction::Choose {
                    only: None,
                    moving: moving("hub a has been down for 90s"),
                },
                None,
            ),
            (
                "stopped stays, even on a dead hub",
                pub_(true),
                on(&down, Some(90)),
                vec![down.clone()],
                HubAction::Keep,
                None,
            ),
        ];
        for (why, pub_, status, hubs, action, requeue) in table {
            let step = step(&pub_, &status, &hubs, None);
            assert_eq!(step.action, action, "{why}");
            assert_eq!(step.requeue, requeue, "{why}");
        }
    }

    #[test]
    fn an_asked_move_goes_only_onto_a_hub_that_can_take_it() {
        let here = hub("a", 4096, true, true);
        let roomy = hub("b", 4096, true, true);
        let full = hub("c", 512, true, true);
        let status = on(&here, None);
        let taken = step(
            &pub_(false),
            &status,
            &[here.clone(), roomy.clone()],
            Some((&roomy, "asked")),
        );
        assert_eq!(
            taken.action,
            HubAction::Choose {
                only: Some("id-b".into()),
                moving: Some(Moving {
                    from_id: "id-a".into(),
                    from_name: "a".into(),
                    reason: "asked".into()
                })
            }
        );
        let refused = step(
            &pub_(false),
            &status,
            &[here, full.clone()],
            Some((&full, "asked")),
        );
        assert_eq!(refused.action, HubAction::Keep);
        assert_eq!(refused.events[0].reason, "MoveRefused");
    }

    #[test]
    fn a_placement_is_recorded_or_unschedulable_said_once() {
        let small = hub("s", 512, true, true);
        let roomy = hub("r", 4096, true, true);
        let none = placed(
            &pub_(false),
            Status::default(),
            std::slice::from_ref(&small),
            &Assigned::new(),
            None,
            at(0),
        );
        assert_eq!(none.hub, None);
        assert_eq!(none.status.hub.phase, Some(PubPhase::Unschedulable));
        assert_eq!(none.events[0].reason, "Unschedulable");
        let again = placed(
            &pub_(false),
            none.status.clone(),
            &[small],
            &Assigned::new(),
            None,
            at(5),
        );
        assert!(again.events.is_empty(), "said once, not on every look");

        let moving = Moving {
            from_id: "id-s".into(),
            from_name: "s".into(),
            reason: "hub s is draining or ineligible".into(),
        };
        let moved = placed(
            &pub_(false),
            none.status,
            &[roomy],
            &Assigned::new(),
            Some(&moving),
            at(9),
        );
        assert_eq!(moved.hub.as_deref(), Some("id-r"));
        assert_eq!(moved.status.hub.hub.as_ref().unwrap().name, "r");
        let record = moved.status.hub.last_reallocation.as_ref().unwrap();
        assert_eq!((record.from.as_str(), record.to.as_str()), ("s", "r"));
        assert_eq!(moved.events[0].reason, "Reallocated");
    }

    #[test]
    fn the_phase_follows_its_rules_in_order() {
        let counts = |running, healthy| ReplicaCounts {
            desired: 1,
            running,
            healthy,
        };
        // (stopped, hub down, running, healthy) → phase
        let table = [
            (true, true, 1, 1, PubPhase::Stopped),
            (false, true, 1, 1, PubPhase::HubDown),
            (false, false, 1, 1, PubPhase::Running),
            (false, false, 1, 0, PubPhase::Starting),
            (false, false, 0, 0, PubPhase::Pending),
        ];
        for (stopped, hub_down, running, healthy, expected) in table {
            let mut status = Status::default();
            status.workload.replicas = Some(counts(running, healthy));
            status.hub.hub_unhealthy_since = hub_down.then(Utc::now);
            assert_eq!(
                phase(&status, stopped),
                expected,
                "stopped {stopped}, hub down {hub_down}, {running} running, {healthy} healthy"
            );
        }
    }
}
