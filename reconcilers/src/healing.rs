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

/// Heals and failures per node within a window: three on one node make it suspect.
pub const SUSPECT_AFTER: usize = 3;
pub const SUSPECT_WINDOW: Duration = Duration::from_secs(600);

/// Whether the node's recent troubles (times of heals and failures there) make it suspect.
pub fn is_suspect(troubles: &[DateTime<Utc>], now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(SUSPECT_WINDOW).unwrap_or_default();
    troubles.iter().filter(|t| now - **t <= window).count() >= SUSPECT_AFTER
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
    fn three_troubles_in_ten_minutes_make_a_node_suspect() {
        let now = Utc::now();
        let at = |minutes: i64| now - chrono::Duration::minutes(minutes);
        assert!(!is_suspect(&[at(1), at(2)], now));
        assert!(is_suspect(&[at(1), at(2), at(9)], now));
        assert!(
            !is_suspect(&[at(1), at(2), at(11)], now),
            "the third is too old"
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
