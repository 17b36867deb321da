//! A rollout as people follow it: Nomad's latest deployment of a job → the typed
//! [`RolloutStatus`] and the events that mark its steps. Pure.
//!
//! The phase comes from an ordered rule table over Nomad's deployment status
//! (nomad/structs/structs.go `DeploymentStatus*` and `DeploymentStatusDescription*`). Events
//! compare the previous record with the new one, so a step is announced once however often the
//! object is reconciled, and a controller that restarts announces nothing twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crds::status::{GroupRollout, PastRollout, RolloutPhase, RolloutStatus};

use crate::status::Written;

/// One deployment, as the rollout needs it (`GET /v1/job/:id/deployment`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentView {
    pub id: String,
    pub job_version: u64,
    /// The `JobModifyIndex` of the job version it rolls out: what nomarch's register answered
    /// when nomarch wrote it.
    pub job_spec_modify_index: u64,
    /// `running`, `paused`, `successful`, `failed`, `cancelled`, ...
    pub status: String,
    pub status_description: String,
    pub groups: BTreeMap<String, GroupView>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupView {
    pub auto_promote: bool,
    pub promoted: bool,
    pub desired_canaries: u32,
    pub placed_canaries: u32,
    pub desired_total: u32,
    pub placed_allocs: u32,
    pub healthy_allocs: u32,
    pub unhealthy_allocs: u32,
    /// `RequireProgressBy`; `None` for Nomad's zero time (no deadline running).
    pub require_progress_by: Option<DateTime<Utc>>,
}

impl GroupView {
    /// Canaries are all placed and healthy, and nobody promoted them yet.
    fn canaries_ready(&self) -> bool {
        self.desired_canaries > 0
            && !self.promoted
            && self.placed_canaries >= self.desired_canaries
            && self.healthy_allocs >= self.desired_canaries
    }
}

type PhaseRule = (&'static str, fn(&DeploymentView) -> Option<RolloutPhase>);

/// First match wins.
const PHASE_RULES: &[PhaseRule] = &[
    // Nomad is done and every group reached its healthy count.
    ("successful", |d| {
        (d.status == "successful").then_some(RolloutPhase::Succeeded)
    }),
    // Failed and Nomad registered the last stable version again: the description ends in
    // " - rolling back to job version N" (structs.go `DeploymentStatusDescriptionRollback`).
    ("failed and reverted", |d| {
        (d.status == "failed"
            && d.status_description
                .contains(" - rolling back to job version "))
        .then_some(RolloutPhase::RolledBack)
    }),
    // Failed without a revert: no auto_revert, or no stable version to go back to
    // (`DeploymentStatusDescriptionRollbackNoop` says so, and is also not a rollback).
    ("failed", |d| {
        (d.status == "failed").then_some(RolloutPhase::Failed)
    }),
    // Cancelled because a newer version of the job was registered (or the job stopped).
    ("cancelled", |d| {
        (d.status == "cancelled").then_some(RolloutPhase::Superseded)
    }),
    ("paused", |d| {
        (d.status == "paused").then_some(RolloutPhase::Paused)
    }),
    // Running, and every canary group waits for a person: Nomad's description is
    // "Deployment is running but requires manual promotion" from creation, so the groups say
    // whether the canaries are healthy yet.
    ("awaiting manual promotion", |d| {
        let canary_groups: Vec<&GroupView> = d
            .groups
            .values()
            .filter(|g| g.desired_canaries > 0 && !g.promoted)
            .collect();
        (!canary_groups.is_empty()
            && canary_groups
                .iter()
                .all(|g| g.canaries_ready() && !g.auto_promote))
        .then_some(RolloutPhase::AwaitingPromotion)
    }),
    // Running, initializing, pending, blocked or unblocking: it moves on by itself.
    ("in progress", |_| Some(RolloutPhase::Progressing)),
];

pub fn phase(deployment: &DeploymentView) -> RolloutPhase {
    PHASE_RULES
        .iter()
        .find_map(|(_, rule)| rule(deployment))
        .unwrap_or(RolloutPhase::Progressing)
}

/// The record of a deployment. `generation` is the object's generation now: it is the one
/// rolled out when the deployment is of the job nomarch last wrote, and the previous record
/// keeps it for a deployment already seen (the object may have changed since).
pub fn rollout_status(
    previous: Option<&RolloutStatus>,
    deployment: &DeploymentView,
    written: Option<&Written>,
    generation: i64,
) -> RolloutStatus {
    let generation = match previous.filter(|p| p.deployment_id == deployment.id) {
        Some(seen) => seen.generation,
        None => written
            .filter(|w| w.job_modify_index == deployment.job_spec_modify_index)
            .map(|_| generation),
    };
    let groups = deployment
        .groups
        .iter()
        .map(|(name, g)| {
            let group = GroupRollout {
                desired: g.desired_total,
                placed: g.placed_allocs,
                healthy: g.healthy_allocs,
                unhealthy: g.unhealthy_allocs,
                desired_canaries: g.desired_canaries,
                placed_canaries: g.placed_canaries,
                promoted: g.promoted,
            };
            (name.clone(), group)
        })
        .collect();
    let phase = phase(deployment);
    let deadline = deployment
        .groups
        .values()
        .filter_map(|g| g.require_progress_by)
        .min()
        .filter(|_| !phase.is_terminal());
    RolloutStatus {
        deployment_id: deployment.id.clone(),
        phase,
        job_version: deployment.job_version,
        generation,
        groups,
        deadline,
        description: deployment.status_description.clone(),
    }
}

/// A step worth an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutEvent {
    pub warning: bool,
    /// `RolloutStarted`, `CanariesHealthy`, `Promoted`, `RolloutSucceeded`, `RolloutFailed`.
    pub reason: &'static str,
    pub message: String,
}

/// What happened between two looks at the rollout. `RolledBack` is not among them: the job
/// reconcile announces it when it puts the rollback on hold (one event, one place).
pub fn rollout_events(
    previous: Option<&RolloutStatus>,
    current: &RolloutStatus,
) -> Vec<RolloutEvent> {
    let same = previous.filter(|p| p.deployment_id == current.deployment_id);
    let mut events = Vec::new();
    let event = |warning, reason, message| RolloutEvent {
        warning,
        reason,
        message,
    };
    let what = describe_version(current);
    // A new deployment. One first seen already over, with nothing seen before it (the object
    // is new to this status, say after an upgrade), is history, not news.
    if same.is_none() && (previous.is_some() || !current.phase.is_terminal()) {
        let (desired, _) = current.healthy_of_desired();
        events.push(event(
            false,
            "RolloutStarted",
            format!(
                "rolling out {what} to {desired} instances (deployment {})",
                short(&current.deployment_id)
            ),
        ));
    }
    let before = same.map(|p| p.phase);
    let entered = |phase: RolloutPhase| current.phase == phase && before != Some(phase);
    let canaries_ready = |r: &RolloutStatus| {
        r.groups.values().any(|g| g.desired_canaries > 0)
            && r.groups
                .values()
                .filter(|g| g.desired_canaries > 0)
                .all(|g| g.promoted || g.healthy >= g.desired_canaries)
    };
    let promoted = |r: &RolloutStatus| {
        r.groups.values().any(|g| g.desired_canaries > 0)
            && r.groups
                .values()
                .filter(|g| g.desired_canaries > 0)
                .all(|g| g.promoted)
    };
    if canaries_ready(current) && !same.is_some_and(canaries_ready) && !current.phase.is_terminal()
    {
        let canaries: u32 = current.groups.values().map(|g| g.desired_canaries).sum();
        events.push(event(
            false,
            "CanariesHealthy",
            format!("{canaries} canaries of {what} are healthy"),
        ));
    }
    if promoted(current) && !same.is_some_and(promoted) && same.is_some() {
        events.push(event(false, "Promoted", format!("{what} promoted")));
    }
    if entered(RolloutPhase::Succeeded) && (same.is_some() || previous.is_some()) {
        events.push(event(
            false,
            "RolloutSucceeded",
            format!("{what} rolled out: {}", current.description),
        ));
    }
    if (entered(RolloutPhase::Failed) || entered(RolloutPhase::RolledBack))
        && (same.is_some() || previous.is_some())
    {
        events.push(event(
            true,
            "RolloutFailed",
            format!("{what} failed to roll out: {}", current.description),
        ));
    }
    events
}

/// "generation 4 (job version 7)", or "job version 7 (not written by nomarch)".
fn describe_version(rollout: &RolloutStatus) -> String {
    match rollout.generation {
        Some(generation) => format!(
            "generation {generation} (job version {})",
            rollout.job_version
        ),
        None => format!(
            "job version {} (not written by nomarch)",
            rollout.job_version
        ),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// How many ended rollouts status keeps, as many as the store keeps generations.
pub const PAST_ROLLOUTS: usize = 10;

/// The rollouts before `current`, newest first: `ended` (the record it replaced, as last
/// seen) goes on top when it is another deployment, and the oldest fall off.
pub fn past_rollouts(
    past: &[PastRollout],
    ended: Option<&RolloutStatus>,
    current: &RolloutStatus,
) -> Vec<PastRollout> {
    let replaced = ended.filter(|e| e.deployment_id != current.deployment_id);
    replaced
        .map(|e| PastRollout {
            deployment_id: e.deployment_id.clone(),
            job_version: e.job_version,
            generation: e.generation,
            phase: e.phase,
        })
        .into_iter()
        .chain(past.iter().cloned())
        .take(PAST_ROLLOUTS)
        .collect()
}

/// Whether the deployment must be read again: there is none on record, it is still going, or
/// the job moved to another version since. A rollout over for the running version needs no
/// more reads, so steady state costs nothing.
pub fn needs_refresh(previous: Option<&RolloutStatus>, live_job_version: u64) -> bool {
    match previous {
        None => true,
        Some(p) => !p.phase.is_terminal() || p.job_version != live_job_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group(desired: u32, healthy: u32) -> GroupView {
        GroupView {
            desired_total: desired,
            placed_allocs: desired,
            healthy_allocs: healthy,
            ..GroupView::default()
        }
    }

    fn deployment(id: &str, status: &str, description: &str, group: GroupView) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            job_version: 2,
            job_spec_modify_index: 40,
            status: status.into(),
            status_description: description.into(),
            groups: [("web".to_string(), group)].into(),
        }
    }

    fn canaries(desired: u32, placed: u32, healthy: u32, promoted: bool, auto: bool) -> GroupView {
        GroupView {
            desired_canaries: desired,
            placed_canaries: placed,
            healthy_allocs: healthy,
            promoted,
            auto_promote: auto,
            desired_total: 3,
            placed_allocs: placed,
            ..GroupView::default()
        }
    }

    #[test]
    fn phases_follow_the_rule_table() {
        use RolloutPhase::*;
        let cases = [
            ("successful", "Deployment completed successfully", group(3, 3), Succeeded),
            (
                "failed",
                "Failed due to progress deadline - rolling back to job version 1",
                group(3, 1),
                RolledBack,
            ),
            ("failed", "Failed due to unhealthy allocations", group(3, 1), Failed),
            (
                "failed",
                "Failed due to unhealthy allocations - not rolling back to stable job version 1 as current job has same specification",
                group(3, 1),
                Failed,
            ),
            ("cancelled", "Cancelled due to newer version of job", group(3, 1), Superseded),
            ("paused", "Deployment is paused", group(3, 1), Paused),
            ("running", "Deployment is running", group(3, 1), Progressing),
            (
                "running",
                "Deployment is running but requires manual promotion",
                canaries(1, 1, 0, false, false),
                Progressing,
            ),
            (
                "running",
                "Deployment is running but requires manual promotion",
                canaries(1, 1, 1, false, false),
                AwaitingPromotion,
            ),
            (
                "running",
                "Deployment is running pending automatic promotion",
                canaries(1, 1, 1, false, true),
                Progressing,
            ),
            ("running", "Deployment is running", canaries(1, 1, 3, true, false), Progressing),
            ("initializing", "", group(3, 0), Progressing),
        ];
        for (status, description, group, want) in cases {
            let d = deployment("d1", status, description, group);
            assert_eq!(phase(&d), want, "{status}: {description}");
        }
    }

    fn written(index: u64) -> Written {
        Written {
            job_modify_index: index,
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn the_generation_is_known_only_for_nomarchs_own_write() {
        let d = deployment("d1", "running", "Deployment is running", group(3, 0));
        let ours = rollout_status(None, &d, Some(&written(40)), 5);
        assert_eq!(ours.generation, Some(5));
        let theirs = rollout_status(None, &d, Some(&written(39)), 5);
        assert_eq!(theirs.generation, None, "a rollback's version, or an edit");
        // Seen before: the record keeps what it knew, though the object moved on.
        let later = rollout_status(Some(&ours), &d, Some(&written(50)), 6);
        assert_eq!(later.generation, Some(5));
        assert_eq!(later.deadline, None, "no deadline in the view");
    }

    fn reasons(events: &[RolloutEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.reason).collect()
    }

    #[test]
    fn a_canary_rollout_announces_each_step_once() {
        let w = written(40);
        let steps = [
            (
                "running",
                canaries(1, 0, 0, false, false),
                vec!["RolloutStarted"],
            ),
            ("running", canaries(1, 1, 0, false, false), vec![]),
            (
                "running",
                canaries(1, 1, 1, false, false),
                vec!["CanariesHealthy"],
            ),
            ("running", canaries(1, 1, 1, false, false), vec![]),
            ("running", canaries(1, 1, 1, true, false), vec!["Promoted"]),
            ("running", canaries(1, 1, 2, true, false), vec![]),
            (
                "successful",
                canaries(1, 1, 3, true, false),
                vec!["RolloutSucceeded"],
            ),
            ("successful", canaries(1, 1, 3, true, false), vec![]),
        ];
        let mut previous: Option<RolloutStatus> = None;
        for (i, (status, group, want)) in steps.into_iter().enumerate() {
            let d = deployment("d1", status, "", group);
            let current = rollout_status(previous.as_ref(), &d, Some(&w), 3);
            assert_eq!(
                reasons(&rollout_events(previous.as_ref(), &current)),
                want,
                "step {i}"
            );
            previous = Some(current);
        }
    }

    #[test]
    fn a_failure_is_a_warning_and_a_new_deployment_starts_again() {
        let w = written(40);
        let running = rollout_status(
            None,
            &deployment("d1", "running", "", group(3, 1)),
            Some(&w),
            3,
        );
        let failed = rollout_status(
            Some(&running),
            &deployment(
                "d1",
                "failed",
                "Failed due to progress deadline - rolling back to job version 1",
                group(3, 1),
            ),
            Some(&w),
            3,
        );
        let events = rollout_events(Some(&running), &failed);
        assert_eq!(reasons(&events), ["RolloutFailed"]);
        assert!(events[0].warning && events[0].message.contains("generation 3"));
        // Nomad's rollback registers the stable spec as a new version: a new deployment, not
        // nomarch's write.
        let mut revert = deployment("d2", "running", "", group(3, 0));
        revert.job_spec_modify_index = 44;
        let reverting = rollout_status(Some(&failed), &revert, Some(&w), 3);
        let events = rollout_events(Some(&failed), &reverting);
        assert_eq!(reasons(&events), ["RolloutStarted"]);
        assert!(
            events[0].message.contains("not written by nomarch"),
            "{}",
            events[0].message
        );
    }

    #[test]
    fn history_first_seen_is_not_news() {
        let done = rollout_status(
            None,
            &deployment("d1", "successful", "", group(3, 3)),
            None,
            1,
        );
        assert!(rollout_events(None, &done).is_empty());
        // A new deployment that ended between two looks: started and ended, both said.
        let older = RolloutStatus {
            deployment_id: "d0".into(),
            ..done.clone()
        };
        assert_eq!(
            reasons(&rollout_events(Some(&older), &done)),
            ["RolloutStarted", "RolloutSucceeded"]
        );
    }

    #[test]
    fn refresh_stops_once_the_running_version_is_settled() {
        let done = rollout_status(
            None,
            &deployment("d1", "successful", "", group(3, 3)),
            None,
            1,
        );
        assert!(!needs_refresh(Some(&done), 2));
        assert!(needs_refresh(Some(&done), 3), "a newer version rolls out");
        let running = rollout_status(None, &deployment("d1", "running", "", group(3, 1)), None, 1);
        assert!(needs_refresh(Some(&running), 2));
        assert!(needs_refresh(None, 0));
    }

    #[test]
    fn past_rollouts_keep_the_newest_ten() {
        let record = |id: &str, version: u64| {
            let mut r = rollout_status(
                None,
                &deployment(id, "successful", "", group(1, 1)),
                None,
                1,
            );
            r.job_version = version;
            r
        };
        let mut past = Vec::new();
        let mut shown = record("d0", 0);
        for version in 1..=12u64 {
            let next = record(&format!("d{version}"), version);
            past = past_rollouts(&past, Some(&shown), &next);
            shown = next;
        }
        let versions: Vec<u64> = past.iter().map(|p| p.job_version).collect();
        assert_eq!(versions, (2..=11).rev().collect::<Vec<u64>>());
        assert_eq!(
            past_rollouts(&past, Some(&shown), &shown),
            past,
            "the same deployment again adds nothing"
        );
    }

    fn any_group() -> impl Strategy<Value = GroupView> {
        (0u32..3, 0u32..3, 0u32..4, any::<bool>(), any::<bool>()).prop_map(
            |(desired_canaries, placed_canaries, healthy, promoted, auto_promote)| GroupView {
                desired_canaries,
                placed_canaries,
                healthy_allocs: healthy,
                promoted,
                auto_promote,
                desired_total: 3,
                placed_allocs: 3,
                ..GroupView::default()
            },
        )
    }

    fn any_status() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "running",
            "paused",
            "successful",
            "failed",
            "cancelled",
            "pending",
        ])
    }

    proptest! {
        /// Looking twice at the same deployment says nothing the second time, and no
        /// deployment is announced as started twice.
        #[test]
        fn events_are_said_once(
            first in any_group(), second in any_group(),
            s1 in any_status(), s2 in any_status(),
        ) {
            let w = written(40);
            let a = rollout_status(None, &deployment("d1", s1, "", first), Some(&w), 1);
            let b = rollout_status(Some(&a), &deployment("d1", s2, "", second), Some(&w), 1);
            prop_assert!(rollout_events(Some(&b), &b).is_empty());
            prop_assert!(!reasons(&rollout_events(Some(&a), &b)).contains(&"RolloutStarted"));
        }
    }
}
