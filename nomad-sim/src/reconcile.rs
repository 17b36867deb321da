//! What the scheduler does with one task group, decided from a snapshot and nothing else, as
//! Nomad's `scheduler/reconcile.go` `allocReconciler.computeGroup` decides it: which
//! allocations to stop as extras, which to update in place, which to replace (at most what the
//! deployment allows), which slots to place, and whether the group joins a deployment. The
//! scheduler ([`super::scheduler`]) builds the snapshot, asks [`compute_group`], and applies
//! the plan; placement on nodes (which may still fail) is the applying step's.

use std::collections::{BTreeMap, BTreeSet};

use super::deployments::{destructive_budget, Strategy};

/// A live allocation of the group (running or to run; a finished batch run counts too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveAlloc {
    pub id: String,
    pub slot: usize,
    /// It already runs the job's current version.
    pub current_version: bool,
    /// A move to the current version would be destructive (scheduler/util.go `tasksUpdated`).
    pub destructive: bool,
    pub deployment_id: String,
    pub healthy: Option<bool>,
}

/// How the newest finished allocation of a slot ended, for the replacement rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastInSlot {
    /// Its node was lost, or it was migrated off a draining node.
    LostOrMigrated,
    /// It failed, as part of this deployment (or another).
    Failed { deployment_id: String },
    /// Stopped for an update, a scale-down or by a user.
    Stopped,
}

/// The job's current deployment as the group sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentView {
    pub id: String,
    pub status: &'static str,
    pub has_group: bool,
}

#[derive(Clone, Debug)]
pub struct GroupSnapshot {
    pub count: usize,
    pub strategy: Option<Strategy>,
    /// reconcile.go `createDeployment`'s `hadRunning`: this version ran here before.
    pub had_running: bool,
    pub live: Vec<LiveAlloc>,
    pub deployment: Option<DeploymentView>,
    pub last_in_slot: BTreeMap<usize, LastInSlot>,
    /// Batch slots whose runs failed more often than the reschedule policy allows.
    pub exhausted_slots: BTreeSet<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentChange {
    None,
    /// A new deployment for this job version, starting with this group.
    Create {
        desired_total: u64,
    },
    /// The group joins the version's existing deployment.
    AddGroup {
        desired_total: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    /// More allocations than the count: the highest slots go.
    pub stop_extra: Vec<String>,
    pub in_place: Vec<String>,
    /// Stopped now; their slots are among `place`.
    pub destructive: Vec<String>,
    /// Slots to place an allocation in.
    pub place: Vec<usize>,
    pub deployment: DeploymentChange,
    /// Work left for a later evaluation (replacements the deployment holds back).
    pub held_back: bool,
}

/// reconcile.go `computeReplacements` for a paused or failed deployment: a slot is refilled
/// only for a lost or migrated allocation, or a failure outside that deployment.
fn replacement_allowed(last: Option<&LastInSlot>, deployment_id: &str) -> bool {
    match last {
        Some(LastInSlot::LostOrMigrated) => true,
        Some(LastInSlot::Failed { deployment_id: of }) => of != deployment_id,
        Some(LastInSlot::Stopped) | None => false,
    }
}

pub fn compute_group(s: &GroupSnapshot) -> GroupPlan {
    let mut live = s.live.clone();
    live.sort_by_key(|a| a.slot);
    // `computeStop` before `computeUpdates`: extras go first, from the highest slot.
    let stop_extra: Vec<String> = live
        .split_off(s.count.min(live.len()))
        .into_iter()
        .rev()
        .map(|a| a.id)
        .collect();
    let outdated = live.iter().filter(|a| !a.current_version);
    let in_place: Vec<String> = outdated
        .clone()
        .filter(|a| !a.destructive)
        .map(|a| a.id.clone())
        .collect();
    let destructive: Vec<&LiveAlloc> = outdated.filter(|a| a.destructive).collect();
    let missing = s.count - live.len();
    let desired_total = (in_place.len() + destructive.len() + missing) as u64;
    // `createDeployment`: an update block, something to do, and a first run or a spec change.
    let wants_deployment = s.strategy.is_some()
        && desired_total != 0
        && (!s.had_running || !in_place.is_empty() || !destructive.is_empty());
    let has_group = s.deployment.as_ref().is_some_and(|d| d.has_group);
    let deployment = match (&s.deployment, wants_deployment && !has_group) {
        (_, false) => DeploymentChange::None,
        (None, true) => DeploymentChange::Create { desired_total },
        (Some(_), true) => DeploymentChange::AddGroup { desired_total },
    };
    let (deployment_id, status) = match (&s.deployment, &deployment) {
        (_, DeploymentChange::Create { .. }) => (String::new(), Some("running")),
        (Some(d), _) => (d.id.clone(), Some(d.status)),
        (None, _) => (String::new(), None),
    };
    let health: Vec<Option<bool>> = live
        .iter()
        .filter(|a| !deployment_id.is_empty() && a.deployment_id == deployment_id)
        .map(|a| a.healthy)
        .collect();
    let budget = destructive_budget(
        s.strategy.as_ref(),
        s.count,
        destructive.len(),
        status,
        &health,
    );
    let replacing: Vec<&LiveAlloc> = destructive.iter().copied().take(budget).collect();
    let mut held_back = replacing.len() < destructive.len();
    let used: BTreeSet<usize> = live
        .iter()
        .filter(|a| !replacing.iter().any(|r| r.id == a.id))
        .map(|a| a.slot)
        .collect();
    let place_ready = !matches!(status, Some("paused" | "failed"));
    let mut place = Vec::new();
    for slot in (0..s.count).filter(|slot| !used.contains(slot)) {
        if s.exhausted_slots.contains(&slot) {
            continue;
        }
        if !place_ready && !replacement_allowed(s.last_in_slot.get(&slot), &deployment_id) {
            held_back = true;
            continue;
        }
        place.push(slot);
    }
    GroupPlan {
        stop_extra,
        in_place,
        destructive: replacing.into_iter().map(|a| a.id.clone()).collect(),
        place,
        deployment,
        held_back,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(max_parallel: usize) -> Option<Strategy> {
        Some(Strategy {
            max_parallel,
            health_check: "checks",
            min_healthy_time: 1,
            healthy_deadline: 10,
            progress_deadline: 20,
            auto_revert: true,
            auto_promote: false,
        })
    }

    fn alloc(slot: usize, current: bool, destructive: bool) -> LiveAlloc {
        LiveAlloc {
            id: format!("a{slot}"),
            slot,
            current_version: current,
            destructive,
            deployment_id: String::new(),
            healthy: None,
        }
    }

    fn snapshot(count: usize, live: Vec<LiveAlloc>) -> GroupSnapshot {
        GroupSnapshot {
            count,
            strategy: strategy(1),
            had_running: true,
            live,
            deployment: None,
            last_in_slot: BTreeMap::new(),
            exhausted_slots: BTreeSet::new(),
        }
    }

    fn deployment(status: &'static str) -> Option<DeploymentView> {
        Some(DeploymentView {
            id: "d1".into(),
            status,
            has_group: true,
        })
    }

    /// One case per rule of `computeGroup`, as reconcile_test.go tables them.
    #[test]
    fn the_group_rules() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, GroupSnapshot, GroupPlan)> = vec![
            (
                "first placement: every slot, and a deployment for the version",
                GroupSnapshot {
                    had_running: false,
                    ..snapshot(3, vec![])
                },
                GroupPlan {
                    stop_extra: vec![],
                    in_place: vec![],
                    destructive: vec![],
                    place: vec![0, 1, 2],
                    deployment: DeploymentChange::Create { desired_total: 3 },
                    held_back: false,
                },
            ),
            (
                "scale 3 to 4: the three in place, one placement",
                snapshot(
                    4,
                    vec![
                        alloc(0, false, false),
                        alloc(1, false, false),
                        alloc(2, false, false),
                    ],
                ),
                GroupPlan {
                    stop_extra: vec![],
                    in_place: ids(&["a0", "a1", "a2"]),
                    destructive: vec![],
                    place: vec![3],
                    deployment: DeploymentChange::Create { desired_total: 4 },
                    held_back: false,
                },
            ),
            (
                "scale 3 to 2: the highest slot stops, nothing else",
                snapshot(
                    2,
                    vec![
                        alloc(0, true, false),
                        alloc(1, true, false),
                        alloc(2, true, false),
                    ],
                ),
                GroupPlan {
                    stop_extra: ids(&["a2"]),
                    in_place: vec![],
                    destructive: vec![],
                    place: vec![],
                    deployment: DeploymentChange::None,
                    held_back: false,
                },
            ),
            (
                "destructive update: max_parallel of them now, the rest held back",
                snapshot(
                    3,
                    vec![
                        alloc(0, false, true),
                        alloc(1, false, true),
                        alloc(2, false, true),
                    ],
                ),
                GroupPlan {
                    stop_extra: vec![],
                    in_place: vec![],
                    destructive: ids(&["a0"]),
                    place: vec![0],
                    deployment: DeploymentChange::Create { desired_total: 3 },
                    held_back: true,
                },
            ),
            (
                "a failed deployment: no replacements, no new placements",
                GroupSnapshot {
                    deployment: deployment("failed"),
                    ..snapshot(3, vec![alloc(0, false, true), alloc(1, false, true)])
                },
                GroupPlan {
                    stop_extra: vec![],
                    in_place: vec![],
                    destructive: vec![],
                    place: vec![],
                    deployment: DeploymentChange::None,
                    held_back: true,
                },
            ),
            (
                "a failed deployment still replaces a lost allocation",
                GroupSnapshot {
                    deployment: deployment("failed"),
                    last_in_slot: BTreeMap::from([
                        (2, LastInSlot::LostOrMigrated),
                        (
                            1,
                            LastInSlot::Failed {
                                deployment_id: "d1".into(),
                            },
                        ),
                    ]),
                    ..snapshot(3, vec![alloc(0, true, false)])
                },
                GroupPlan {
                    stop_extra: vec![],
                    in_place: vec![],
                    destructive: vec![],
                    place: vec![2],
                    deployment: DeploymentChange::None,
                    held_back: true,
                },
            ),
            (
                "no update block: every destructive update at once, no deployment",
                GroupSnapshot {
                    strategy: None,
                    ..snapshot(2, vec![alloc(0, false, true), alloc(1, false, true)])
                },
                GroupPlan {
                    stop_extra: vec![],
                    in_place: vec![],
                    destructive: ids(&["a0", "a1"]),
                    place: vec![0, 1],
                    deployment: DeploymentChange::None,
                    held_back: false,
                },
            ),
            (
                "an exhausted batch slot is not placed again",
                GroupSnapshot {
                    strategy: None,
                    exhausted_slots: BTreeSet::from([1]),
                    ..snapshot(2, vec![alloc(0, true, false)])
                },
                GroupPlan {
                    stop_extra: vec![],
                    in_place: vec![],
                    destructive: vec![],
                    place: vec![],
                    deployment: DeploymentChange::None,
                    held_back: false,
                },
            ),
        ];
        for (why, snapshot, expected) in cases {
            assert_eq!(compute_group(&snapshot), expected, "{why}");
        }
    }

    /// While a deployment runs, a new allocation not yet healthy takes a max_parallel slot.
    #[test]
    fn unhealthy_or_waiting_allocations_of_the_deployment_hold_the_rollout() {
        let mut waiting = alloc(0, true, false);
        waiting.deployment_id = "d1".into();
        let s = GroupSnapshot {
            deployment: deployment("running"),
            ..snapshot(2, vec![waiting.clone(), alloc(1, false, true)])
        };
        let plan = compute_group(&s);
        assert!(plan.destructive.is_empty() && plan.held_back, "{plan:?}");
        waiting.healthy = Some(true);
        let s = GroupSnapshot {
            deployment: deployment("running"),
            ..snapshot(2, vec![waiting, alloc(1, false, true)])
        };
        assert_eq!(compute_group(&s).destructive, vec!["a1".to_string()]);
    }
}
