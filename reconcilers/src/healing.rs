//! The healing ladder's last rung, pure: Nomad restarts a failing task in place
//! (`check_restart`); when an allocation's checks stay critical past the object's grace anyway,
//! nomarch stops it so Nomad places a replacement, never more than `maxUnavailable` at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::status::AllocView;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealPlan {
    /// Since when each running allocation has failed its checks (kept in status).
    pub critical_since: BTreeMap<String, DateTime<Utc>>,
    /// Allocations to stop now, oldest failure first.
    pub stop: Vec<String>,
}

/// Replica slots being replaced: an allocation still stopping and the replacement already
/// starting are one slot, so the larger of the two counts is what the budget is spent on.
fn in_flight(allocs: &[AllocView]) -> u32 {
    let stopping = allocs
        .iter()
        .filter(|a| {
            a.desired_status != "run" && matches!(a.client_status.as_str(), "pending" | "running")
        })
        .count();
    let starting = allocs
        .iter()
        .filter(|a| a.desired_status == "run" && a.client_status == "pending")
        .count();
    stopping.max(starting) as u32
}

pub fn plan_heals(
    allocs: &[AllocView],
    previous: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
    max_unavailable: u32,
) -> HealPlan {
    let critical_since: BTreeMap<String, DateTime<Utc>> = allocs
        .iter()
        .filter(|a| a.is_running() && a.checks_passing == Some(false))
        .map(|a| (a.id.clone(), previous.get(&a.id).copied().unwrap_or(now)))
        .collect();
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    let mut overdue: Vec<(&String, &DateTime<Utc>)> = critical_since
        .iter()
        .filter(|(_, since)| now - **since >= grace)
        .collect();
    overdue.sort_by_key(|(id, since)| (**since, (*id).clone()));
    let budget = max_unavailable.saturating_sub(in_flight(allocs)) as usize;
    let stop = overdue
        .into_iter()
        .take(budget)
        .map(|(id, _)| id.clone())
        .collect();
    HealPlan {
        critical_since,
        stop,
    }
}

/// Evidence against a node within a window: this much makes it suspect.
pub const SUSPECT_AFTER: usize = 3;
pub const SUSPECT_WINDOW: Duration = Duration::from_secs(600);

/// What went wrong with one allocation on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TroubleKind {
    /// nomarch stopped it: its checks stayed critical past the grace.
    Healed,
    /// Its tasks failed (a crash loop, or check restarts past the restart policy).
    Failed,
    /// The node stopped answering and Nomad declared it lost.
    Lost,
}

/// One allocation's trouble on a node: when, which allocation, whose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trouble {
    pub at: DateTime<Utc>,
    pub alloc: String,
    /// The object the allocation ran for (`kind/namespace/name`).
    pub object: String,
    pub kind: TroubleKind,
}

/// How much a node's recent troubles point at the node rather than at an application. A bug
/// fails its own allocations wherever they run (and on one node over and over when it is
/// pinned there), so failures and heals count once per object; a lost allocation is the node
/// itself going silent, and each counts.
pub fn evidence_against_node(troubles: &[Trouble], now: DateTime<Utc>) -> usize {
    let window = chrono::Duration::from_std(SUSPECT_WINDOW).unwrap_or_default();
    let recent = troubles.iter().filter(|t| now - t.at <= window);
    let mut objects = std::collections::BTreeSet::new();
    let mut lost = 0;
    for trouble in recent {
        match trouble.kind {
            TroubleKind::Lost => lost += 1,
            TroubleKind::Healed | TroubleKind::Failed => {
                objects.insert(trouble.object.as_str());
            }
        }
    }
    lost + objects.len()
}

/// Notes one trouble on a node's list (once per allocation) and forgets those past the
/// window. Returns the evidence against the node when this trouble makes it suspect, so it is
/// said once per new trouble, never on a look that found nothing new.
pub fn note_trouble(
    list: &mut Vec<Trouble>,
    trouble: Trouble,
    now: DateTime<Utc>,
) -> Option<usize> {
    if list.iter().any(|t| t.alloc == trouble.alloc) {
        return None;
    }
    list.push(trouble);
    let window = chrono::Duration::from_std(SUSPECT_WINDOW).unwrap_or_default();
    list.retain(|t| now - t.at <= window);
    let evidence = evidence_against_node(list, now);
    (evidence >= SUSPECT_AFTER).then_some(evidence)
}

/// Whether the node's recent troubles make it suspect.
pub fn is_suspect(troubles: &[Trouble], now: DateTime<Utc>) -> bool {
    evidence_against_node(troubles, now) >= SUSPECT_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alloc(id: &str, client: &str, desired: &str, passing: Option<bool>) -> AllocView {
        AllocView {
            id: id.into(),
            node_id: "n1".into(),
            client_status: client.into(),
            desired_status: desired.into(),
            checks_passing: passing,
        }
    }

    #[test]
    fn waits_out_the_grace_then_heals_the_oldest_first() {
        let now = Utc::now();
        let allocs = [
            alloc("a", "running", "run", Some(false)),
            alloc("b", "running", "run", Some(false)),
            alloc("c", "running", "run", Some(true)),
        ];
        let first = plan_heals(&allocs, &BTreeMap::new(), now, Duration::from_secs(30), 1);
        assert!(first.stop.is_empty(), "just noticed: within grace");
        assert_eq!(first.critical_since.keys().collect::<Vec<_>>(), ["a", "b"]);
        let mut since = first.critical_since.clone();
        since.insert("b".into(), now - chrono::Duration::seconds(40));
        since.insert("a".into(), now - chrono::Duration::seconds(35));
        let later = plan_heals(&allocs, &since, now, Duration::from_secs(30), 1);
        assert_eq!(
            later.stop,
            ["b"],
            "max unavailable 1: the oldest failure only"
        );
    }

    #[test]
    fn replacements_in_flight_use_the_budget() {
        let now = Utc::now();
        let long_ago: BTreeMap<String, DateTime<Utc>> =
            [("a".to_string(), now - chrono::Duration::minutes(5))].into();
        let allocs = [
            alloc("a", "running", "run", Some(false)),
            alloc("r", "pending", "run", None),
        ];
        assert!(
            plan_heals(&allocs, &long_ago, now, Duration::from_secs(30), 1)
                .stop
                .is_empty()
        );
        assert_eq!(
            plan_heals(&allocs, &long_ago, now, Duration::from_secs(30), 2).stop,
            ["a"]
        );
    }

    #[test]
    fn recovered_allocations_are_forgotten() {
        let now = Utc::now();
        let since: BTreeMap<String, DateTime<Utc>> =
            [("a".to_string(), now - chrono::Duration::minutes(5))].into();
        let plan = plan_heals(
            &[alloc("a", "running", "run", Some(true))],
            &since,
            now,
            Duration::from_secs(30),
            1,
        );
        assert!(plan.critical_since.is_empty() && plan.stop.is_empty());
    }

    #[test]
    fn troubles_tied_to_the_node_make_it_suspect_one_apps_bug_does_not() {
        let now = Utc::now();
        let trouble = |minutes: i64, object: &str, kind| Trouble {
            at: now - chrono::Duration::minutes(minutes),
            alloc: format!("{object}-{minutes}"),
            object: object.into(),
            kind,
        };
        use TroubleKind::*;
        let cases: Vec<(&str, Vec<Trouble>, bool)> = vec![
            (
                "two objects failing",
                vec![trouble(1, "a", Failed), trouble(2, "b", Failed)],
                false,
            ),
            (
                "three objects failing or healed",
                vec![
                    trouble(1, "a", Failed),
                    trouble(2, "b", Healed),
                    trouble(9, "c", Failed),
                ],
                true,
            ),
            (
                "one object failing over and over",
                vec![
                    trouble(1, "a", Failed),
                    trouble(2, "a", Failed),
                    trouble(3, "a", Healed),
                    trouble(4, "a", Failed),
                ],
                false,
            ),
            (
                "lost allocations count each",
                vec![
                    trouble(1, "a", Lost),
                    trouble(2, "a", Lost),
                    trouble(3, "a", Failed),
                ],
                true,
            ),
            (
                "the third is too old",
                vec![
                    trouble(1, "a", Failed),
                    trouble(2, "b", Failed),
                    trouble(11, "c", Failed),
                ],
                false,
            ),
        ];
        for (why, troubles, suspect) in cases {
            assert_eq!(is_suspect(&troubles, now), suspect, "{why}");
        }
    }

    #[test]
    fn a_trouble_is_noted_once_and_says_suspect_only_when_it_tips_the_node() {
        let now = Utc::now();
        let trouble = |alloc: &str, object: &str, minutes: i64| Trouble {
            at: now - chrono::Duration::minutes(minutes),
            alloc: alloc.into(),
            object: object.into(),
            kind: TroubleKind::Failed,
        };
        let mut list = vec![trouble("old", "z", 30)];
        assert_eq!(note_trouble(&mut list, trouble("a1", "a", 2), now), None);
        assert_eq!(list.len(), 1, "the one past the window is forgotten");
        assert_eq!(note_trouble(&mut list, trouble("b1", "b", 1), now), None);
        assert_eq!(note_trouble(&mut list, trouble("c1", "c", 0), now), Some(3));
        assert_eq!(
            note_trouble(&mut list, trouble("c1", "c", 0), now),
            None,
            "the same allocation seen again is not new evidence"
        );
    }

    proptest! {
        /// Whatever the state: never more stopped than the budget allows, and only overdue,
        /// critical, running allocations.
        #[test]
        fn never_exceeds_the_budget(states in proptest::collection::vec((0u8..4, any::<bool>(), 0i64..120), 0..12), max in 1u32..4) {
            let now = Utc::now();
            let mut allocs = Vec::new();
            let mut since = BTreeMap::new();
            for (i, (state, passing, age)) in states.iter().enumerate() {
                let id = format!("a{i}");
                let (client, desired) = match state { 0 => ("running", "run"), 1 => ("pending", "run"), 2 => ("running", "stop"), _ => ("complete", "stop") };
                allocs.push(alloc(&id, client, desired, Some(*passing)));
                since.insert(id, now - chrono::Duration::seconds(*age));
            }
            let plan = plan_heals(&allocs, &since, now, Duration::from_secs(60), max);
            prop_assert!(plan.stop.len() as u32 + in_flight(&allocs) <= max.max(in_flight(&allocs)));
            for id in &plan.stop {
                let a = allocs.iter().find(|a| &a.id == id).unwrap();
                prop_assert!(a.is_running() && a.checks_passing == Some(false));
                prop_assert!(now - since[id] >= chrono::Duration::seconds(60));
            }
        }
    }
}
