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
    /// It was placed as a canary (it is in its deployment's `PlacedCanaries`).
    pub canary: Option<CanaryOf>,
}

/// The deployment a canary was placed for, and whether that group was promoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryOf {
    pub deployment_id: String,
    pub promoted: bool,
}

/// How the newest finished allocation of a slot ended, for the replacement rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastInSlot {
    /// Its node was lost, or it was migrated off a draining node.
    LostOrMigrated,
    /// It failed, as part of this deployment (or another); its reschedule policy says when
    /// it may be replaced.
    Failed {
        deployment_id: String,
        reschedule: Reschedule,
    },
    /// Stopped for an update, a scale-down or by a user.
    Stopped,
}

/// When a failed allocation's slot may be filled again (reconcile_util.go
/// `updateByReschedulable`, with [`super::reschedule::next_reschedule`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reschedule {
    /// Its time is within `rescheduleWindowSize`, or this is its follow-up evaluation.
    Now,
    /// Later, at `at`; `followup` says whether an evaluation already waits for it.
    Later {
        alloc_id: String,
        at: i64,
        followup: bool,
    },
}

/// The job's current deployment as the group sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentView {
    pub id: String,
    pub status: &'static str,
    pub has_group: bool,
    /// The group's `DesiredCanaries` and `Promoted` (0 and false when it has no state yet).
    pub desired_canaries: usize,
    pub promoted: bool,
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
    /// Slots whose failed allocation the reschedule policy allows no more replacements.
    pub exhausted_slots: BTreeSet<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentChange {
    None,
    /// A new deployment for this job version, starting with this group.
    Create {
        desired_total: u64,
        desired_canaries: u64,
    },
    /// The group joins the version's existing deployment.
    AddGroup {
        desired_total: u64,
        desired_canaries: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    /// More allocations than the count (the highest slots, old ones sharing a promoted
    /// canary's slot first), and canaries no deployment wants any more.
    pub stop_extra: Vec<String>,
    pub in_place: Vec<String>,
    /// Stopped now; their slots are among `place`.
    pub destructive: Vec<String>,
    /// Slots to place an allocation in.
    pub place: Vec<usize>,
    /// Slots to place a canary in, beside the allocation that runs there.
    pub canaries: Vec<usize>,
    pub deployment: DeploymentChange,
    /// Failed allocations to replace later, and when: each needs a follow-up evaluation
    /// (reconcile.go `createRescheduleLaterEvals`).
    pub reschedule_later: Vec<(String, i64)>,
    /// Work left for a later evaluation (replacements the deployment holds back, canaries
    /// waiting for promotion, failed allocations waiting out their reschedule delay).
    pub held_back: bool,
}

/// reconcile.go `computeReplacements` for a paused or failed deployment: a slot is refilled
/// only for a lost or migrated allocation, or a failure outside that deployment.
fn replacement_allowed(last: Option<&LastInSlot>, deployment_id: &str) -> bool {
    match last {
        Some(LastInSlot::LostOrMigrated) => true,
        Some(LastInSlot::Failed {
            deployment_id: of, ..
        }) => of != deployment_id,
        Some(LastInSlot::Stopped) | None => false,
    }
}

/// reconcile.go `cancelUnneededCanaries`: a canary not promoted is stopped when its
/// deployment is an older one, or the current one failed.
fn canary_unneeded(canary: &CanaryOf, deployment: Option<&DeploymentView>) -> bool {
    !canary.promoted
        && match deployment {
            Some(d) => d.id != canary.deployment_id || d.status == "failed",
            None => true,
        }
}

/// reconcile_util.go `allocNameIndex.NextCanaries`: the slots of allocations being replaced
/// first, then free slots below the count, then slots past it, skipping canaries' slots.
fn next_canary_slots(
    n: usize,
    count: usize,
    taken: &BTreeSet<usize>,
    destructive: &[&LiveAlloc],
    canary_slots: &BTreeSet<usize>,
) -> Vec<usize> {
    let mut destructive_slots: Vec<usize> = destructive.iter().map(|a| a.slot).collect();
    destructive_slots.sort_unstable();
    let preferred = destructive_slots.into_iter().filter(|s| *s < count);
    let free = (0..count).filter(|s| !taken.contains(s));
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    for slot in preferred.chain(free) {
        if chosen.len() == n {
            return chosen;
        }
        if !canary_slots.contains(&slot) && !chosen.contains(&slot) {
            chosen.push(slot);
        }
    }
    let remainder = n - chosen.len();
    chosen.extend(count..count + remainder);
    chosen
}

pub fn compute_group(s: &GroupSnapshot) -> GroupPlan {
    let current = s.deployment.as_ref();
    let deployment_id = current.map(|d| d.id.clone()).unwrap_or_default();
    // `cancelUnneededCanaries` first: stale canaries leave the picture.
    let (unneeded, mut live): (Vec<LiveAlloc>, Vec<LiveAlloc>) =
        s.live.iter().cloned().partition(|a| {
            a.canary
                .as_ref()
                .is_some_and(|c| canary_unneeded(c, current))
        });
    live.sort_by_key(|a| (a.slot, a.canary.is_some()));
    let is_canary = |a: &LiveAlloc| {
        a.canary
            .as_ref()
            .is_some_and(|c| !deployment_id.is_empty() && c.deployment_id == deployment_id)
    };
    let group_state = current.filter(|d| d.has_group);
    let promoted = group_state.is_some_and(|d| d.promoted);
    let canarying_before = group_state.is_some_and(|d| d.desired_canaries != 0 && !d.promoted);
    let canaries: Vec<LiveAlloc> = live.iter().filter(|a| is_canary(a)).cloned().collect();
    let canary_slots: BTreeSet<usize> = canaries.iter().map(|a| a.slot).collect();
    // `computeStop`: while canarying the canaries are not counted; once promoted, an old
    // allocation sharing a canary's slot goes first, then the highest slots.
    let mut untainted: Vec<LiveAlloc> = live
        .iter()
        .filter(|a| !(canarying_before && is_canary(a)))
        .cloned()
        .collect();
    let mut stop_extra: Vec<String> = unneeded.into_iter().map(|a| a.id).collect();
    let mut remove = untainted.len().saturating_sub(s.count);
    if remove > 0 && !canarying_before && !canaries.is_empty() {
        let shadowed: Vec<String> = untainted
            .iter()
            .filter(|a| !is_canary(a) && canary_slots.contains(&a.slot))
            .take(remove)
            .map(|a| a.id.clone())
            .collect();
        remove -= shadowed.len();
        untainted.retain(|a| !shadowed.contains(&a.id));
        stop_extra.extend(shadowed);
    }
    // The highest slots; of two in one slot, the old one (canaries sort after it).
    let mut by_height: Vec<LiveAlloc> = untainted.clone();
    by_height.sort_by_key(|a| (std::cmp::Reverse(a.slot), is_canary(a)));
    let highest: Vec<String> = by_height.into_iter().take(remove).map(|a| a.id).collect();
    untainted.retain(|a| !highest.contains(&a.id));
    stop_extra.extend(highest);
    // `computeUpdates`.
    let outdated = untainted.iter().filter(|a| !a.current_version);
    let in_place: Vec<String> = outdated
        .clone()
        .filter(|a| !a.destructive)
        .map(|a| a.id.clone())
        .collect();
    let destructive: Vec<&LiveAlloc> = outdated.filter(|a| a.destructive).collect();
    // While the group canaries, its canaries are not among `untainted`: they fill no slot.
    let occupied: BTreeSet<usize> = untainted.iter().map(|a| a.slot).collect();
    let missing = s.count.saturating_sub(untainted.len());
    // `requiresCanaries` / `computeCanaries`.
    let wanted_canaries = s.strategy.as_ref().map_or(0, |st| st.canary);
    let requires_canaries =
        !destructive.is_empty() && canaries.len() < wanted_canaries && !promoted;
    let desired_canaries = if requires_canaries {
        wanted_canaries
    } else {
        group_state.map_or(0, |d| d.desired_canaries)
    };
    let status = current.map(|d| d.status);
    let halted = matches!(status, Some("paused" | "failed"));
    let canary_place = if requires_canaries && !halted {
        next_canary_slots(
            wanted_canaries - canaries.len(),
            s.count,
            &occupied,
            &destructive,
            &canary_slots,
        )
    } else {
        Vec::new()
    };
    let is_canarying = desired_canaries != 0 && !promoted;
    let desired_total = (in_place.len() + destructive.len() + missing) as u64;
    // `createDeployment`: an update block, something to do, and a first run or a spec change.
    let wants_deployment = s.strategy.is_some()
        && desired_total != 0
        && (!s.had_running || !in_place.is_empty() || !destructive.is_empty());
    let deployment = match (current, wants_deployment && group_state.is_none()) {
        (_, false) => DeploymentChange::None,
        (None, true) => DeploymentChange::Create {
            desired_total,
            desired_canaries: desired_canaries as u64,
        },
        (Some(_), true) => DeploymentChange::AddGroup {
            desired_total,
            desired_canaries: desired_canaries as u64,
        },
    };
    let status = match (&deployment, status) {
        (DeploymentChange::Create { .. }, _) => Some("running"),
        (_, status) => status,
    };
    // `computeUnderProvisionedBy`: the deployment's allocations among `untainted`. A failed
    // one that may not be replaced yet (reconcile_util.go `filterByRescheduleable` keeps it in
    // `untainted` until its reschedule time, or for good when its policy is spent) counts as
    // the unhealthy allocation it is: nothing more is replaced while it is there.
    let occupied_now: BTreeSet<usize> = untainted.iter().map(|a| a.slot).collect();
    let failed_waiting = (0..s.count)
        .filter(|slot| !occupied_now.contains(slot))
        .filter(|slot| match s.last_in_slot.get(slot) {
            Some(LastInSlot::Failed {
                deployment_id: of,
                reschedule,
            }) => {
                !deployment_id.is_empty()
                    && *of == deployment_id
                    && (matches!(reschedule, Reschedule::Later { .. })
                        || s.exhausted_slots.contains(slot))
            }
            _ => false,
        })
        .map(|_| Some(false));
    let health: Vec<Option<bool>> = untainted
        .iter()
        .filter(|a| !deployment_id.is_empty() && a.deployment_id == deployment_id)
        .map(|a| a.healthy)
        .chain(failed_waiting)
        .collect();
    let under_provisioned_by = if is_canarying {
        0
    } else {
        destructive_budget(
            s.strategy.as_ref(),
            s.count,
            destructive.len(),
            status,
            &health,
        )
    };
    // `deploymentPlaceReady`: not paused, not failed, no canaries waiting for promotion.
    let place_ready = !halted && !is_canarying;
    // `computePlacements` / `computeReplacements`: the empty slots first (missing, failed,
    // lost), each taking one of the deployment's slots when it is ready to place...
    let mut place = Vec::new();
    let mut reschedule_later = Vec::new();
    let mut held_back = is_canarying;
    for slot in (0..s.count).filter(|slot| !occupied_now.contains(slot)) {
        if s.exhausted_slots.contains(&slot) {
            continue;
        }
        if let Some(LastInSlot::Failed {
            reschedule:
                Reschedule::Later {
                    alloc_id,
                    at,
                    followup,
                },
            ..
        }) = s.last_in_slot.get(&slot)
        {
            held_back = true;
            if !followup {
                reschedule_later.push((alloc_id.clone(), *at));
            }
            continue;
        }
        if !place_ready && !replacement_allowed(s.last_in_slot.get(&slot), &deployment_id) {
            held_back = true;
            continue;
        }
        place.push(slot);
    }
    let budget = if place_ready {
        under_provisioned_by.saturating_sub(place.len())
    } else {
        under_provisioned_by
    };
    // ...then `computeDestructiveUpdates` with what is left: each replaced allocation's slot
    // is placed again.
    let replacing: Vec<&LiveAlloc> = destructive.iter().copied().take(budget).collect();
    held_back |= replacing.len() < destructive.len();
    place.extend(
        replacing
            .iter()
            .map(|a| a.slot)
            .filter(|slot| *slot < s.count),
    );
    place.sort_unstable();
    place.dedup();
    GroupPlan {
        stop_extra,
        in_place,
        destructive: replacing.into_iter().map(|a| a.id.clone()).collect(),
        place,
        canaries: canary_place,
        deployment,
        reschedule_later,
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
            canary: 0,
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
            canary: None,
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
            desired_canaries: 0,
            promoted: false,
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
                    canaries: vec![],
                    reschedule_later: vec![],
                    deployment: DeploymentChange::Create {
                        desired_total: 3,
                        desired_canaries: 0,
                    },
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
                    canaries: vec![],
                    reschedule_later: vec![],
                    deployment: DeploymentChange::Create {
                        desired_total: 4,
                        desired_canaries: 0,
                    },
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
                    canaries: vec![],
                    reschedule_later: vec![],
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
                    canaries: vec![],
                    reschedule_later: vec![],
                    deployment: DeploymentChange::Create {
                        desired_total: 3,
                        desired_canaries: 0,
                    },
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
                    canaries: vec![],
                    reschedule_later: vec![],
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
                                reschedule: Reschedule::Now,
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
                    canaries: vec![],
                    reschedule_later: vec![],
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
                    canaries: vec![],
                    reschedule_later: vec![],
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
                    canaries: vec![],
                    reschedule_later: vec![],
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

    fn canary_strategy(canary: usize) -> Option<Strategy> {
        strategy(1).map(|s| Strategy { canary, ..s })
    }

    fn canary_alloc(slot: usize, of: &str, promoted: bool, healthy: Option<bool>) -> LiveAlloc {
        LiveAlloc {
            id: format!("c{slot}"),
            slot,
            current_version: true,
            destructive: false,
            deployment_id: of.into(),
            healthy,
            canary: Some(CanaryOf {
                deployment_id: of.into(),
                promoted,
            }),
        }
    }

    fn canary_deployment(status: &'static str, promoted: bool) -> Option<DeploymentView> {
        Some(DeploymentView {
            id: "d1".into(),
            status,
            has_group: true,
            desired_canaries: 1,
            promoted,
        })
    }

    fn one_canary_of_three() -> DeploymentChange {
        DeploymentChange::Create {
            desired_total: 3,
            desired_canaries: 1,
        }
    }

    fn three_old() -> Vec<LiveAlloc> {
        (0..3).map(|slot| alloc(slot, false, true)).collect()
    }

    /// The canary rules of `computeGroup` (reconcile.go `requiresCanaries`, `computeCanaries`,
    /// `cancelUnneededCanaries`, `computeStop`), as reconcile_test.go's canary cases.
    #[test]
    fn the_canary_rules() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plan = |stop_extra: &[&str],
                    destructive: &[&str],
                    place: Vec<usize>,
                    canaries: Vec<usize>,
                    deployment,
                    held_back| GroupPlan {
            stop_extra: ids(stop_extra),
            in_place: vec![],
            destructive: ids(destructive),
            place,
            canaries,
            deployment,
            reschedule_later: vec![],
            held_back,
        };
        let with_old_and = |extra: Vec<LiveAlloc>| {
            let mut live = three_old();
            live.extend(extra);
            live
        };
        let cases: Vec<(&str, GroupSnapshot, GroupPlan)> = vec![
            (
                "a destructive change with canaries: canaries beside the old, nothing replaced",
                GroupSnapshot {
                    strategy: canary_strategy(1),
                    ..snapshot(3, three_old())
                },
                plan(&[], &[], vec![], vec![0], one_canary_of_three(), true),
            ),
            (
                "blue/green: as many canaries as the count",
                GroupSnapshot {
                    strategy: canary_strategy(3),
                    ..snapshot(3, three_old())
                },
                plan(
                    &[],
                    &[],
                    vec![],
                    vec![0, 1, 2],
                    DeploymentChange::Create {
                        desired_total: 3,
                        desired_canaries: 3,
                    },
                    true,
                ),
            ),
            (
                "more canaries than the count: slots past it (`NextCanaries`)",
                GroupSnapshot {
                    strategy: canary_strategy(2),
                    ..snapshot(1, vec![alloc(0, false, true)])
                },
                plan(
                    &[],
                    &[],
                    vec![],
                    vec![0, 1],
                    DeploymentChange::Create {
                        desired_total: 1,
                        desired_canaries: 2,
                    },
                    true,
                ),
            ),
            (
                "a healthy canary not promoted: everything waits for promotion",
                GroupSnapshot {
                    strategy: canary_strategy(1),
                    deployment: canary_deployment("running", false),
                    ..snapshot(
                        3,
                        with_old_and(vec![canary_alloc(0, "d1", false, Some(true))]),
                    )
                },
                plan(&[], &[], vec![], vec![], DeploymentChange::None, true),
            ),
            (
                "promoted: the old allocation in the canary's slot stops, the rest roll on",
                GroupSnapshot {
                    strategy: canary_strategy(1),
                    deployment: canary_deployment("running", true),
                    ..snapshot(
                        3,
                        with_old_and(vec![canary_alloc(0, "d1", true, Some(true))]),
                    )
                },
                plan(
                    &["a0"],
                    &["a1"],
                    vec![1],
                    vec![],
                    DeploymentChange::None,
                    true,
                ),
            ),
            (
                "a failed deployment's unpromoted canary stops, and nothing is replaced",
                GroupSnapshot {
                    strategy: canary_strategy(1),
                    deployment: canary_deployment("failed", false),
                    ..snapshot(
                        3,
                        with_old_and(vec![canary_alloc(0, "d1", false, Some(false))]),
                    )
                },
                plan(&["c0"], &[], vec![], vec![], DeploymentChange::None, true),
            ),
            (
                "an older deployment's unpromoted canary stops; the new version canaries again",
                GroupSnapshot {
                    strategy: canary_strategy(1),
                    ..snapshot(
                        3,
                        with_old_and(vec![canary_alloc(0, "d0", false, Some(true))]),
                    )
                },
                plan(&["c0"], &[], vec![], vec![0], one_canary_of_three(), true),
            ),
            (
                "a paused deployment places no canary",
                GroupSnapshot {
                    strategy: canary_strategy(1),
                    deployment: Some(DeploymentView {
                        desired_canaries: 0,
                        ..canary_deployment("paused", false).unwrap()
                    }),
                    ..snapshot(3, three_old())
                },
                plan(&[], &[], vec![], vec![], DeploymentChange::None, true),
            ),
        ];
        for (why, snapshot, expected) in cases {
            assert_eq!(compute_group(&snapshot), expected, "{why}");
        }
    }

    /// reconcile_util.go `updateByReschedulable`: a failed allocation whose reschedule time
    /// is not near waits for a follow-up evaluation (one is asked for unless it exists).
    #[test]
    fn failed_allocations_wait_out_their_reschedule_delay() {
        let later = |id: &str, followup| LastInSlot::Failed {
            deployment_id: String::new(),
            reschedule: Reschedule::Later {
                alloc_id: id.into(),
                at: 500,
                followup,
            },
        };
        let s = GroupSnapshot {
            strategy: None,
            last_in_slot: BTreeMap::from([(1, later("f1", false)), (2, later("f2", true))]),
            ..snapshot(3, vec![alloc(0, true, false)])
        };
        let plan = compute_group(&s);
        assert_eq!(plan.place, Vec::<usize>::new());
        assert_eq!(plan.reschedule_later, vec![("f1".to_string(), 500)]);
        assert!(plan.held_back);
        let now = GroupSnapshot {
            strategy: None,
            last_in_slot: BTreeMap::from([(
                1,
                LastInSlot::Failed {
                    deployment_id: String::new(),
                    reschedule: Reschedule::Now,
                },
            )]),
            ..snapshot(2, vec![alloc(0, true, false)])
        };
        assert_eq!(compute_group(&now).place, vec![1]);
    }

    /// A rollout whose new allocation failed: reconcile.go `computeUnderProvisionedBy` sees
    /// the failed allocation among `untainted` (not replaceable yet) and replaces nothing more;
    /// when it is replaced, the replacement takes the deployment's one slot
    /// (`computeReplacements`), so still no old allocation is stopped in that evaluation.
    #[test]
    fn a_failed_new_allocation_holds_the_rest_of_the_rollout() {
        let failed = |reschedule| LastInSlot::Failed {
            deployment_id: "d1".into(),
            reschedule,
        };
        let old = vec![alloc(1, false, true), alloc(2, false, true)];
        let waiting = GroupSnapshot {
            deployment: deployment("running"),
            last_in_slot: BTreeMap::from([(
                0,
                failed(Reschedule::Later {
                    alloc_id: "f0".into(),
                    at: 500,
                    followup: true,
                }),
            )]),
            ..snapshot(3, old.clone())
        };
        let plan = compute_group(&waiting);
        assert!(
            plan.destructive.is_empty() && plan.place.is_empty() && plan.held_back,
            "{plan:?}"
        );
        let exhausted = GroupSnapshot {
            last_in_slot: BTreeMap::from([(0, failed(Reschedule::Now))]),
            exhausted_slots: BTreeSet::from([0]),
            ..waiting.clone()
        };
        assert!(compute_group(&exhausted).destructive.is_empty());
        let now = GroupSnapshot {
            last_in_slot: BTreeMap::from([(0, failed(Reschedule::Now))]),
            ..waiting.clone()
        };
        let plan = compute_group(&now);
        assert_eq!((plan.place, plan.destructive), (vec![0], vec![]));
        // A failure from an older deployment is no reason to hold this one.
        let older = GroupSnapshot {
            last_in_slot: BTreeMap::from([(
                0,
                LastInSlot::Failed {
                    deployment_id: "d0".into(),
                    reschedule: Reschedule::Later {
                        alloc_id: "f0".into(),
                        at: 500,
                        followup: true,
                    },
                },
            )]),
            ..waiting
        };
        assert_eq!(compute_group(&older).destructive, vec!["a1".to_string()]);
    }
}
