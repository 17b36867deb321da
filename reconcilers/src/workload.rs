//! A workload's look once its job is settled (Apps, Pubs, NomadJobs), pure: replica counts,
//! conditions, the rollout and its steps, which allocations healing stops, what each node's
//! troubles were, and when a failing check's grace runs out, from one snapshot with one `now`.
//!
//! The controller reads what [`WorkloadSnapshot`] holds (`reconcile/workload.rs observe`) and
//! carries out what [`look`] returns ([`crate::effects`]); each kind adds its own part
//! (`crate::app`, `crate::pubs`, `crate::nomadjob`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::status::RolloutStatus;
use crds::workload::HealthCheck;
use crds::{ObjectRef, Status};

use crate::effects::{Effects, Heal, NodeTrouble, PlannedEvent, Requeue};
use crate::healing::{plan_heals, TroubleKind};
use crate::rollout::{self, DeploymentView};
use crate::status::{
    mark_health_unknown, mark_stopped, replicas, workload_status, AllocView, JobView, Written,
};

/// What a kind says about its workload: what the look counts and judges against.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadSpec<'a> {
    pub object: &'a ObjectRef,
    pub generation: i64,
    /// Instances wanted (0 while stopped).
    pub desired: u32,
    /// `spec.stopped`: nothing should run, so nothing is judged or healed.
    pub stopped: bool,
    /// Its health check: read from Consul, and healed past its grace.
    pub health: Option<&'a HealthCheck>,
    /// Healing stops at most this many instances at once.
    pub max_unavailable: u32,
    /// Whether Nomad makes deployments for its job (an update block, instances wanted): only
    /// then is the rollout read, so a job without any costs no request per reconcile.
    pub deploys: bool,
}

impl WorkloadSpec<'_> {
    /// Whether the look needs checks: there is a health check and something should run.
    pub fn reads_checks(&self) -> bool {
        self.health.is_some() && !self.stopped
    }
}

/// One allocation of the job, as Nomad lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadAlloc {
    pub view: AllocView,
    pub node_name: String,
    pub job_version: u64,
}

impl WorkloadAlloc {
    /// Wanted and on its way or running (the same test as Nomad's `AllocStub` readers).
    pub fn is_live(&self) -> bool {
        self.view.desired_status == "run"
            && matches!(self.view.client_status.as_str(), "pending" | "running")
    }
}

/// The checks of the workload's service, per allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checks {
    /// Not read: no health check, nothing should run, or nothing is live to have checks.
    NotRead,
    /// Per allocation ID: all passing, or not.
    Read(BTreeMap<String, bool>),
    /// Consul could not be asked (a transient failure): health is unknown, nothing is healed.
    Unknown(String),
}

/// The deployments read for the rollout (see `reconcile/workload.rs observe` for when).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployments {
    /// The job's latest deployment, when the record needed a refresh and Nomad has one.
    pub latest: Option<DeploymentView>,
    /// The unfinished deployment on record, read again by ID: replaced by `latest` before it
    /// was seen to end, or cancelled because the object was stopped.
    pub recorded: Option<DeploymentView>,
}

/// Everything the look reads, with one `now`.
#[derive(Clone, Debug)]
pub struct WorkloadSnapshot<'a> {
    pub spec: WorkloadSpec<'a>,
    /// The job as Nomad holds it (`None`: no job yet).
    pub job: Option<JobView>,
    /// Whether that job is stopped (`Stop`).
    pub job_stopped: bool,
    /// nomarch's last write of the job.
    pub written: Option<Written>,
    /// The status the look starts from.
    pub previous: Option<&'a Status>,
    pub allocs: Vec<WorkloadAlloc>,
    pub checks: Checks,
    pub deployments: Deployments,
    pub now: DateTime<Utc>,
}

/// What one look decided.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadLook {
    pub status: Status,
    pub heals: Vec<Heal>,
    pub troubles: Vec<NodeTrouble>,
    /// The rollout's steps since `previous` (and what the kind adds), said once the status
    /// is stored.
    pub events: Vec<PlannedEvent>,
    /// When the soonest failing check's grace runs out (to look again then).
    pub heal_due: Option<Duration>,
}

impl WorkloadLook {
    /// The look as the executor carries it out, looking again as `requeue` says.
    pub fn into_effects(self, requeue: Requeue) -> Effects {
        Effects {
            status: self.status,
            heals: self.heals,
            troubles: self.troubles,
            events: self.events,
            requeue,
        }
    }
}

/// The look, in order: counts and conditions; `Stopped` from what still runs; the rollout;
/// then (with health known) healing. The status is the previous one, unchanged, when nothing
/// but the generation moved, so a steady workload costs no status write.
pub fn look(snapshot: &WorkloadSnapshot<'_>) -> WorkloadLook {
    let spec = &snapshot.spec;
    let now = snapshot.now;
    let checks = match &snapshot.checks {
        Checks::Read(checks) => Some(checks),
        Checks::NotRead | Checks::Unknown(_) => None,
    };
    // Allocations of older versions that are over do not count; live ones always do.
    let current_version = snapshot.job.as_ref().map(|j| j.version);
    let views: Vec<AllocView> = snapshot
        .allocs
        .iter()
        .filter(|a| a.is_live() || current_version.is_none_or(|v| a.job_version == v))
        .map(|a| AllocView {
            checks_passing: checks.and_then(|c| c.get(&a.view.id).copied()),
            ..a.view.clone()
        })
        .collect();
    let has_checks = spec.reads_checks();
    let counts = replicas(spec.desired, &views, has_checks);
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
    let running_job = snapshot.job.as_ref().filter(|_| !snapshot.job_stopped);
    let mut status = workload_status(
        snapshot.previous,
        spec.generation,
        running_job,
        snapshot.written.as_ref(),
        &counts,
        failing,
        now,
    );
    // Stopped means no allocation is live on a client any more (Nomad's job is then `dead`),
    // not that none is wanted: one Nomad was told to stop runs until its client stopped it.
    // (Every allocation: the stop made a new job version, and the old ones are what still run.)
    let still_running = snapshot
        .allocs
        .iter()
        .filter(|a| matches!(a.view.client_status.as_str(), "pending" | "running"))
        .count() as u32;
    mark_stopped(&mut status, spec.stopped, still_running, now);
    let events = look_at_rollout(snapshot, running_job, &mut status);
    let mut look = WorkloadLook {
        status,
        heals: Vec::new(),
        troubles: Vec::new(),
        events,
        heal_due: None,
    };
    if let Checks::Unknown(detail) = &snapshot.checks {
        mark_health_unknown(&mut look.status, &counts, detail, now);
    } else if let Some(health) = spec.health.filter(|_| !spec.stopped) {
        heal(snapshot, &views, health.grace.get(), &mut look);
    }
    look.status = keep_if_unchanged(look.status, snapshot.previous, spec.generation);
    look
}

/// The rollout in status and its steps: from the latest deployment while the job runs and
/// makes deployments; from the recorded one read again once the object was stopped (Nomad
/// cancels it: reconcile.go `cancelUnneededDeployments`); otherwise the record as it was.
fn look_at_rollout(
    snapshot: &WorkloadSnapshot<'_>,
    running_job: Option<&JobView>,
    status: &mut Status,
) -> Vec<PlannedEvent> {
    let spec = &snapshot.spec;
    let recorded = snapshot.previous.and_then(|p| p.workload.rollout.as_ref());
    let written = snapshot.written.as_ref();
    let read = |d: &DeploymentView| rollout::rollout_status(recorded, d, written, spec.generation);
    let said =
        |steps: Vec<rollout::RolloutEvent>| steps.into_iter().map(PlannedEvent::from).collect();
    if running_job.is_some() && spec.deploys {
        let Some(latest) = &snapshot.deployments.latest else {
            return Vec::new();
        };
        let current = read(latest);
        // A recorded deployment that another replaced before it was seen to end: its end is
        // said too, and it goes on top of the past ones.
        let ended: Option<RolloutStatus> = recorded
            .filter(|r| !r.phase.is_terminal() && r.deployment_id != latest.id)
            .and(snapshot.deployments.recorded.as_ref())
            .map(read);
        let steps = match &ended {
            Some(ended) => {
                let mut steps = rollout::rollout_events(recorded, ended);
                steps.extend(rollout::rollout_events(Some(ended), &current));
                steps
            }
            None => rollout::rollout_events(recorded, &current),
        };
        let past = snapshot
            .previous
            .map_or(&[][..], |p| &p.workload.past_rollouts[..]);
        status.workload.past_rollouts =
            rollout::past_rollouts(past, ended.as_ref().or(recorded), &current);
        status.workload.rollout = Some(current);
        return said(steps);
    }
    if spec.stopped {
        let unfinished = recorded.filter(|r| !r.phase.is_terminal());
        if let (Some(recorded), Some(deployment)) = (unfinished, &snapshot.deployments.recorded) {
            let ended = read(deployment);
            let steps = rollout::rollout_events(Some(recorded), &ended);
            status.workload.rollout = Some(ended);
            return said(steps);
        }
    }
    Vec::new()
}

/// One round of healing: every failed or lost allocation is a trouble on its node; checks
/// critical past the grace stop their allocation (within `maxUnavailable`), each a trouble
/// too; and the soonest grace still running says when to look again.
fn heal(
    snapshot: &WorkloadSnapshot<'_>,
    views: &[AllocView],
    grace: Duration,
    look: &mut WorkloadLook,
) {
    let now = snapshot.now;
    let node_name = |node: &str| -> String {
        snapshot
            .allocs
            .iter()
            .find(|a| a.view.node_id == node)
            .map(|a| a.node_name.clone())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| node.to_string())
    };
    for alloc in views {
        let kind = match alloc.client_status.as_str() {
            "failed" => TroubleKind::Failed,
            "lost" => TroubleKind::Lost,
            _ => continue,
        };
        look.troubles.push(NodeTrouble {
            node_id: alloc.node_id.clone(),
            node_name: node_name(&alloc.node_id),
            alloc: alloc.id.clone(),
            kind,
            at: now,
        });
    }
    let plan = plan_heals(
        views,
        &look.status.workload.critical_since,
        now,
        grace,
        snapshot.spec.max_unavailable,
    );
    look.status.workload.critical_since = plan.critical_since.clone();
    for id in &plan.stop {
        let node = views
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.node_id.clone())
            .unwrap_or_default();
        let critical_for = (now - plan.critical_since[id]).num_seconds();
        let short = id.get(..8).unwrap_or(id);
        look.heals.push(Heal {
            alloc: id.clone(),
            message: format!(
                "stopped allocation {short} on node {}: checks critical for {critical_for}s; Nomad places a replacement",
                node_name(&node)
            ),
        });
        look.troubles.push(NodeTrouble {
            node_name: node_name(&node),
            node_id: node,
            alloc: id.clone(),
            kind: TroubleKind::Healed,
            at: now,
        });
    }
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    look.heal_due = plan
        .critical_since
        .iter()
        .filter(|(id, _)| !plan.stop.contains(*id))
        .filter_map(|(_, since)| (*since + grace - now).to_std().ok())
        .min();
}

/// Conditions only move their times when they change; anything else unchanged must not make
/// every reconcile a status write.
pub fn keep_if_unchanged(status: Status, previous: Option<&Status>, generation: i64) -> Status {
    let same_but_generation = |previous: &Status| {
        Status {
            observed_generation: previous.observed_generation,
            ..status.clone()
        } == *previous
    };
    match previous {
        Some(previous) if same_but_generation(previous) => Status {
            observed_generation: Some(generation),
            ..previous.clone()
        },
        _ => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::status::RolloutPhase;
    use crds::{ConditionStatus, ConditionType, Kind};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn alloc(id: &str, node: &str, client: &str, desired: &str, version: u64) -> WorkloadAlloc {
        WorkloadAlloc {
            view: AllocView {
                id: id.into(),
                node_id: node.into(),
                client_status: client.into(),
                desired_status: desired.into(),
                checks_passing: None,
            },
            node_name: format!("{node}-name"),
            job_version: version,
        }
    }

    fn health(grace_seconds: u64) -> HealthCheck {
        serde_json::from_value(serde_json::json!({
            "type": "http", "port": "http", "path": "/health",
            "grace": format!("{grace_seconds}s"),
        }))
        .unwrap()
    }

    struct Case {
        desired: u32,
        stopped: bool,
        health: Option<HealthCheck>,
        allocs: Vec<WorkloadAlloc>,
        checks: Checks,
        previous: Option<Status>,
        now: DateTime<Utc>,
    }

    impl Default for Case {
        fn default() -> Case {
            Case {
                desired: 2,
                stopped: false,
                health: None,
                allocs: vec![
                    alloc("a1", "n1", "running", "run", 1),
                    alloc("a2", "n2", "running", "run", 1),
                ],
                checks: Checks::NotRead,
                previous: None,
                now: at(0),
            }
        }
    }

    fn run(case: &Case) -> WorkloadLook {
        let object = ObjectRef::new(Kind::App, "default", "web");
        look(&WorkloadSnapshot {
            spec: WorkloadSpec {
                object: &object,
                generation: 3,
                desired: case.desired,
                stopped: case.stopped,
                health: case.health.as_ref(),
                max_unavailable: 1,
                deploys: false,
            },
            job: Some(JobView {
                id: "web".into(),
                version: 1,
                job_modify_index: 40,
            }),
            job_stopped: case.stopped,
            written: None,
            previous: case.previous.as_ref(),
            allocs: case.allocs.clone(),
            checks: case.checks.clone(),
            deployments: Deployments::default(),
            now: case.now,
        })
    }

    fn condition(look: &WorkloadLook, type_: ConditionType) -> (ConditionStatus, String) {
        let c = look.status.condition(type_).expect("condition set");
        (c.status, c.reason.clone())
    }

    fn failing(ids: &[&str]) -> Checks {
        Checks::Read(ids.iter().map(|id| (id.to_string(), false)).collect())
    }

    #[test]
    fn counts_and_conditions_follow_the_allocations() {
        // (case, Ready, Degraded reason)
        let table: Vec<(&str, Case, ConditionStatus, &str)> = vec![
            (
                "all running",
                Case::default(),
                ConditionStatus::True,
                "Healthy",
            ),
            (
                "one pending",
                Case {
                    allocs: vec![
                        alloc("a1", "n1", "running", "run", 1),
                        alloc("a2", "n2", "pending", "run", 1),
                    ],
                    ..Case::default()
                },
                ConditionStatus::False,
                "Healthy",
            ),
            (
                "an old version's finished allocation does not count",
                Case {
                    allocs: vec![
                        alloc("a1", "n1", "running", "run", 1),
                        alloc("a2", "n2", "running", "run", 1),
                        alloc("old", "n2", "complete", "stop", 0),
                    ],
                    ..Case::default()
                },
                ConditionStatus::True,
                "Healthy",
            ),
            (
                "a failing check degrades",
                Case {
                    health: Some(health(60)),
                    checks: Checks::Read(
                        [("a1".to_string(), true), ("a2".to_string(), false)].into(),
                    ),
                    ..Case::default()
                },
                ConditionStatus::False,
                "ChecksFailing",
            ),
            (
                "Consul unreachable: Ready is unknown, nothing degraded",
                Case {
                    health: Some(health(60)),
                    checks: Checks::Unknown("consul: connection refused".into()),
                    ..Case::default()
                },
                ConditionStatus::Unknown,
                "Healthy",
            ),
        ];
        for (name, case, ready, degraded) in table {
            let look = run(&case);
            assert_eq!(condition(&look, ConditionType::Ready).0, ready, "{name}");
            assert_eq!(
                condition(&look, ConditionType::Degraded).1,
                degraded,
                "{name}"
            );
        }
    }

    #[test]
    fn checks_critical_past_the_grace_are_healed_within_max_unavailable() {
        let mut previous = Status::default();
        previous.workload.critical_since = [("a1".to_string(), at(0)), ("a2".to_string(), at(5))]
            .into_iter()
            .collect();
        let case = Case {
            health: Some(health(30)),
            checks: failing(&["a1", "a2"]),
            previous: Some(previous),
            now: at(40),
            ..Case::default()
        };
        let look = run(&case);
        // Both past the grace; one at a time (maxUnavailable 1), the older failure first.
        assert_eq!(
            look.heals
                .iter()
                .map(|h| h.alloc.as_str())
                .collect::<Vec<_>>(),
            ["a1"]
        );
        assert!(look.heals[0].message.contains("node n1-name"));
        assert!(look.heals[0].message.contains("critical for 40s"));
        assert_eq!(
            look.troubles
                .iter()
                .map(|t| (t.node_id.as_str(), t.kind))
                .collect::<Vec<_>>(),
            [("n1", TroubleKind::Healed)]
        );
        // a2 is past its grace too but waits for the budget: no due time of its own.
        assert_eq!(look.heal_due, None);
    }

    #[test]
    fn a_check_within_its_grace_says_when_to_look_again() {
        let case = Case {
            health: Some(health(30)),
            checks: failing(&["a2"]),
            now: at(10),
            ..Case::default()
        };
        let look = run(&case);
        assert!(look.heals.is_empty());
        assert_eq!(look.heal_due, Some(Duration::from_secs(30)));
        assert_eq!(look.status.workload.critical_since["a2"], at(10));
    }

    #[test]
    fn nothing_is_healed_while_stopped_or_while_health_is_unknown() {
        let mut previous = Status::default();
        previous.workload.critical_since = [("a1".to_string(), at(0))].into_iter().collect();
        for (name, case) in [
            (
                "stopped",
                Case {
                    stopped: true,
                    desired: 0,
                    health: Some(health(1)),
                    checks: failing(&["a1"]),
                    previous: Some(previous.clone()),
                    now: at(100),
                    ..Case::default()
                },
            ),
            (
                "unknown",
                Case {
                    health: Some(health(1)),
                    checks: Checks::Unknown("timeout".into()),
                    previous: Some(previous.clone()),
                    now: at(100),
                    ..Case::default()
                },
            ),
        ] {
            let look = run(&case);
            assert!(look.heals.is_empty(), "{name}");
            assert_eq!(look.heal_due, None, "{name}");
        }
    }

    #[test]
    fn failed_and_lost_allocations_are_troubles_on_their_node() {
        let case = Case {
            health: Some(health(30)),
            checks: Checks::Read(BTreeMap::new()),
            allocs: vec![
                alloc("a1", "n1", "failed", "run", 1),
                alloc("a2", "n2", "lost", "stop", 1),
                alloc("a3", "n3", "running", "run", 1),
            ],
            ..Case::default()
        };
        let look = run(&case);
        assert_eq!(
            look.troubles
                .iter()
                .map(|t| (t.node_name.as_str(), t.alloc.as_str(), t.kind))
                .collect::<Vec<_>>(),
            [
                ("n1-name", "a1", TroubleKind::Failed),
                ("n2-name", "a2", TroubleKind::Lost)
            ]
        );
    }

    #[test]
    fn a_stopped_workload_is_stopped_once_nothing_runs() {
        let stopping = run(&Case {
            stopped: true,
            desired: 0,
            ..Case::default()
        });
        assert_eq!(
            condition(&stopping, ConditionType::Stopped),
            (ConditionStatus::False, "Stopping".to_string())
        );
        let stopped = run(&Case {
            stopped: true,
            desired: 0,
            allocs: vec![alloc("a1", "n1", "complete", "stop", 1)],
            ..Case::default()
        });
        assert_eq!(
            condition(&stopped, ConditionType::Stopped),
            (ConditionStatus::True, "Stopped".to_string())
        );
    }

    #[test]
    fn a_second_look_at_the_same_world_changes_nothing() {
        let first = run(&Case::default());
        let again = run(&Case {
            previous: Some(first.status.clone()),
            now: at(60),
            ..Case::default()
        });
        assert_eq!(again.status, first.status);
        assert!(again.events.is_empty());
    }

    fn deployment(id: &str, status: &str) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            job_version: 1,
            job_spec_modify_index: 40,
            status: status.into(),
            status_description: String::new(),
            groups: BTreeMap::new(),
        }
    }

    /// A deploying App's job at `version`, with the deployments read.
    fn deploying<'a>(
        object: &'a ObjectRef,
        version: u64,
        previous: Option<&'a Status>,
        deployments: Deployments,
        now: DateTime<Utc>,
    ) -> WorkloadSnapshot<'a> {
        WorkloadSnapshot {
            spec: WorkloadSpec {
                object,
                generation: 1,
                desired: 2,
                stopped: false,
                health: None,
                max_unavailable: 1,
                deploys: true,
            },
            job: Some(JobView {
                id: "web".into(),
                version,
                job_modify_index: 40 + version,
            }),
            job_stopped: false,
            written: None,
            previous,
            allocs: Vec::new(),
            checks: Checks::NotRead,
            deployments,
            now,
        }
    }

    #[test]
    fn a_replaced_rollout_is_ended_and_kept_among_the_past_ones() {
        let object = ObjectRef::new(Kind::App, "default", "web");
        let started = Deployments {
            latest: Some(deployment("d1", "running")),
            recorded: None,
        };
        let first = look(&deploying(&object, 1, None, started, at(0)));
        let recorded = first.status.workload.rollout.clone().unwrap();
        assert_eq!(recorded.phase, RolloutPhase::Progressing);
        let replaced = Deployments {
            latest: Some(deployment("d2", "running")),
            recorded: Some(deployment("d1", "failed")),
        };
        let second = look(&deploying(
            &object,
            2,
            Some(&first.status),
            replaced,
            at(10),
        ));
        assert_eq!(
            second
                .status
                .workload
                .rollout
                .as_ref()
                .unwrap()
                .deployment_id,
            "d2"
        );
        assert_eq!(second.status.workload.past_rollouts[0].deployment_id, "d1");
        assert_eq!(
            second.status.workload.past_rollouts[0].phase,
            RolloutPhase::Failed
        );
        let reasons: Vec<&str> = second.events.iter().map(|e| e.reason).collect();
        assert!(reasons.contains(&"RolloutFailed"), "{reasons:?}");
        assert!(reasons.contains(&"RolloutStarted"), "{reasons:?}");
    }
}
