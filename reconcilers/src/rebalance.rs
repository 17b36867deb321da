//! Evening out hub usage (`nomarch rebalance pubs`): which pubs to move where, given the hubs
//! and where each pub is. Pure. Nomad never rebalances pinned work (its issue #1635 has been
//! open since 2016), so a hub that comes back or joins stays empty until someone moves pubs
//! onto it.
//!
//! Each step takes the single move that lowers the fuller of its two hubs the most (a pub off
//! the hub it is on, onto a ready, schedulable hub its selector matches, with room and its
//! volumes), and stops when no move makes things more even, or at the limit. Only pubs whose
//! policy is `spread` are moved (a `binpack` pub asked to be packed); pubs with host volumes
//! only when asked (their data stays on the old hub's disk; a CSI volume goes along).

use std::collections::{BTreeMap, BTreeSet};

use crds::kinds::{HubSelector, PlacementPolicy};
use crds::workload::Volume;
use crds::ObjectRef;

use crate::hubs::{offers, selects, Hub};

/// A pub where it is, and what a move must respect.
#[derive(Clone, Debug)]
pub struct PlacedPub {
    pub object: ObjectRef,
    pub hub_id: String,
    /// CPU (MHz) and memory (MB).
    pub need: (u64, u64),
    pub selector: HubSelector,
    pub policy: PlacementPolicy,
    pub volumes: Vec<Volume>,
    /// Not to be moved by this rebalance (outside its selector, or stopped); its load counts.
    pub pinned: bool,
}

impl PlacedPub {
    /// A host volume is on the hub's disk: a move starts the pub without it. (A CSI volume
    /// goes along.)
    fn keeps_data_on_its_hub(&self) -> bool {
        self.volumes
            .iter()
            .any(|v| v.type_ == crds::workload::VolumeType::Host)
    }
}

impl PlacedPub {
    /// A pub on the hub its status names.
    pub fn of(pub_: &crds::Pub, hub_id: &str, pinned: bool) -> PlacedPub {
        let spec = &pub_.spec;
        PlacedPub {
            object: pub_.object_ref(),
            hub_id: hub_id.to_string(),
            need: (
                u64::from(spec.resources.cpu),
                u64::from(spec.resources.memory),
            ),
            selector: spec.hub_selector.clone(),
            policy: spec.placement_policy,
            volumes: spec.volumes.clone(),
            pinned: pinned || spec.stopped,
        }
    }
}

/// How far a rebalance may go.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_moves: usize,
    /// Also move pubs with host volumes (they start fresh on the new hub).
    pub include_stateful: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub object: ObjectRef,
    pub from: String,
    pub to: String,
}

/// Moves that make things less uneven are at least this much better (fractions of a hub).
const EPSILON: f64 = 1e-9;

pub fn plan(hubs: &[Hub], placed: &[PlacedPub], limits: Limits) -> Vec<Move> {
    let usable = |h: &Hub| h.ready && h.schedulable;
    let mut load: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for p in placed {
        let entry = load.entry(p.hub_id.as_str()).or_default();
        entry.0 += p.need.0;
        entry.1 += p.need.1;
    }
    let fill = |hub: &Hub, (cpu, memory): (u64, u64)| {
        (cpu as f64 / hub.cpu.max(1) as f64).max(memory as f64 / hub.memory.max(1) as f64)
    };
    let mut placed_on: BTreeMap<&ObjectRef, &str> = placed
        .iter()
        .map(|p| (&p.object, p.hub_id.as_str()))
        .collect();
    let mut moved: BTreeSet<&ObjectRef> = BTreeSet::new();
    let mut moves = Vec::new();
    while moves.len() < limits.max_moves {
        // (gain, the destination's fill after, pub, destination)
        let mut best: Option<(f64, f64, &PlacedPub, &Hub)> = None;
        for p in placed {
            let movable = !p.pinned
                && p.policy == PlacementPolicy::Spread
                && (limits.include_stateful || !p.keeps_data_on_its_hub())
                && !moved.contains(&p.object);
            let Some(source) = hubs.iter().find(|h| h.id == placed_on[&p.object]) else {
                continue;
            };
            if !movable || !usable(source) {
                continue;
            }
            let source_load = load.get(source.id.as_str()).copied().unwrap_or_default();
            let before = fill(source, source_load);
            let source_after = fill(source, (source_load.0 - p.need.0, source_load.1 - p.need.1));
            for target in hubs.iter().filter(|h| {
                h.id != source.id && usable(h) && selects(&p.selector, h) && offers(h, &p.volumes)
            }) {
                let (cpu, memory) = load.get(target.id.as_str()).copied().unwrap_or_default();
                let after = (cpu + p.need.0, memory + p.need.1);
                if after.0 > target.cpu || after.1 > target.memory {
                    continue;
                }
                let target_after = fill(target, after);
                let gain = before - target_after.max(source_after);
                // The biggest gain; on a tie the emptier destination, then names, so the plan
                // is stable and spends no move where another does as well.
                let better = best.as_ref().is_none_or(|(g, t, bp, bt)| {
                    if (gain - g).abs() > EPSILON {
                        return gain > *g;
                    }
                    if (target_after - t).abs() > EPSILON {
                        return target_after < *t;
                    }
                    (&p.object, &target.name) < (&bp.object, &bt.name)
                });
                if gain > EPSILON && better {
                    best = Some((gain, target_after, p, target));
                }
            }
        }
        let Some((_, _, p, target)) = best else {
            break;
        };
        let from = placed_on[&p.object];
        let source_load = load.entry(from).or_default();
        source_load.0 -= p.need.0;
        source_load.1 -= p.need.1;
        let target_load = load.entry(target.id.as_str()).or_default();
        target_load.0 += p.need.0;
        target_load.1 += p.need.1;
        moves.push(Move {
            object: p.object.clone(),
            from: from.to_string(),
            to: target.id.clone(),
        });
        placed_on.insert(&p.object, target.id.as_str());
        moved.insert(&p.object);
    }
    moves
}

/// Hubs that came back or joined, for pubs that rebalance by themselves (`rebalance: true`):
/// a hub counts once it has been ready and schedulable for the cool-down (a flapping hub never
/// does), and each arrival starts one rebalance.
#[derive(Debug, Default)]
pub struct HubArrivals {
    usable_since: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    settled: BTreeSet<String>,
}

impl HubArrivals {
    /// Records which hubs are usable at `now`; returns the hubs whose arrival is due now (each
    /// once) and, while others are still cooling down, how long until the next one is.
    pub fn observe(
        &mut self,
        hubs: &[Hub],
        now: chrono::DateTime<chrono::Utc>,
        cooldown: std::time::Duration,
    ) -> (Vec<String>, Option<std::time::Duration>) {
        let cooldown = chrono::Duration::from_std(cooldown).unwrap_or_default();
        for hub in hubs {
            if hub.ready && hub.schedulable {
                self.usable_since.entry(hub.id.clone()).or_insert(now);
            } else {
                // Gone away: its next return is a new arrival.
                self.usable_since.remove(&hub.id);
                self.settled.remove(&hub.id);
            }
        }
        let known: BTreeSet<&str> = hubs.iter().map(|h| h.id.as_str()).collect();
        self.usable_since
            .retain(|id, _| known.contains(id.as_str()));
        let mut due = Vec::new();
        let mut next: Option<std::time::Duration> = None;
        for (id, since) in &self.usable_since {
            if self.settled.contains(id) {
                continue;
            }
            let ready_at = *since + cooldown;
            if ready_at <= now {
                due.push(id.clone());
            } else {
                let wait = (ready_at - now).to_std().unwrap_or_default();
                next = Some(next.map_or(wait, |n| n.min(wait)));
            }
        }
        self.settled.extend(due.iter().cloned());
        (due, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Kind;
    use proptest::prelude::*;

    fn hub(name: &str, memory: u64) -> Hub {
        Hub {
            id: format!("id-{name}"),
            name: name.into(),
            class: "hub".into(),
            datacenter: "dc1".into(),
            pool: "default".into(),
            meta: Default::default(),
            cpu: 100_000,
            memory,
            ready: true,
            schedulable: true,
            volumes: Default::default(),
        }
    }

    fn placed(name: &str, hub: &str, memory: u64) -> PlacedPub {
        PlacedPub {
            object: ObjectRef::new(Kind::Pub, "default", name),
            hub_id: format!("id-{hub}"),
            need: (100, memory),
            selector: HubSelector {
                node_class: Some("hub".into()),
                ..HubSelector::default()
            },
            policy: PlacementPolicy::Spread,
            volumes: Vec::new(),
            pinned: false,
        }
    }

    const ALL: Limits = Limits {
        max_moves: 100,
        include_stateful: false,
    };

    fn counts(hubs: &[Hub], pubs: &[PlacedPub], moves: &[Move]) -> Vec<usize> {
        let mut on: BTreeMap<&ObjectRef, &str> = pubs
            .iter()
            .map(|p| (&p.object, p.hub_id.as_str()))
            .collect();
        for m in moves {
            on.insert(&m.object, m.to.as_str());
        }
        hubs.iter()
            .map(|h| on.values().filter(|id| **id == h.id).count())
            .collect()
    }

    /// A new hub (and one back from the dead) get work; nothing moves when it is even.
    #[test]
    fn new_hubs_get_pubs_until_things_are_even() {
        let hubs = [hub("a", 8192), hub("b", 8192), hub("c", 8192)];
        let pubs: Vec<PlacedPub> = (0..4)
            .map(|i| placed(&format!("p{i}"), "a", 1024))
            .collect();
        let moves = plan(&hubs, &pubs, ALL);
        assert_eq!(counts(&hubs, &pubs, &moves), [2, 1, 1], "{moves:?}");
        let even: Vec<PlacedPub> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, h)| placed(&format!("q{i}"), h, 1024))
            .collect();
        assert_eq!(moves.len(), 2, "no move spent where another does as well");
        assert!(plan(&hubs, &even, ALL).is_empty());
        let mut pinned = pubs.clone();
        for p in &mut pinned {
            p.pinned = true;
        }
        assert!(
            plan(&hubs, &pinned, ALL).is_empty(),
            "pinned pubs only weigh"
        );
    }

    #[test]
    fn limits_policies_volumes_and_unusable_hubs_are_respected() {
        let mut down = hub("down", 8192);
        down.ready = false;
        let mut drained = hub("drained", 8192);
        drained.schedulable = false;
        let hubs = [hub("a", 8192), down, drained, hub("b", 8192)];
        let mut pubs: Vec<PlacedPub> = (0..6)
            .map(|i| placed(&format!("p{i}"), "a", 1024))
            .collect();
        let limited = plan(
            &hubs,
            &pubs,
            Limits {
                max_moves: 1,
                ..ALL
            },
        );
        assert_eq!(limited.len(), 1);
        assert_eq!(limited[0].to, "id-b", "never a down or draining hub");
        for p in pubs.iter_mut().take(5) {
            p.policy = PlacementPolicy::Binpack;
        }
        pubs[5].volumes = vec![Volume {
            name: "data".into(),
            type_: crds::workload::VolumeType::Host,
            source: "tenant-data".into(),
            read_only: false,
            mount_path: "/data".into(),
            access_mode: None,
        }];
        assert!(
            plan(&hubs, &pubs, ALL).is_empty(),
            "binpack pubs stay; stateful ones too"
        );
        let stateful = Limits {
            include_stateful: true,
            ..ALL
        };
        assert!(
            plan(&hubs, &pubs, stateful).is_empty(),
            "b does not offer the volume"
        );
        let mut with_volume = hub("b", 8192);
        with_volume.volumes = [("tenant-data".to_string(), false)].into();
        let hubs = [hub("a", 8192), with_volume];
        assert_eq!(plan(&hubs, &pubs, stateful).len(), 1);
        // A CSI volume moves with its pub: nothing to be told.
        pubs[5].volumes[0].type_ = crds::workload::VolumeType::Csi;
        assert_eq!(plan(&[hub("a", 8192), hub("b", 8192)], &pubs, ALL).len(), 1);
    }

    /// A hub counts after the cool-down, once; one that flaps starts over.
    #[test]
    fn arrivals_are_due_after_the_cool_down_once() {
        let at = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let cooldown = std::time::Duration::from_secs(60);
        let mut arrivals = HubArrivals::default();
        let mut hubs = vec![hub("a", 8192)];
        assert_eq!(
            arrivals.observe(&hubs, at(0), cooldown),
            (vec![], Some(cooldown))
        );
        assert_eq!(
            arrivals.observe(&hubs, at(30), cooldown),
            (vec![], Some(std::time::Duration::from_secs(30)))
        );
        assert_eq!(
            arrivals.observe(&hubs, at(60), cooldown),
            (vec!["id-a".into()], None)
        );
        assert_eq!(
            arrivals.observe(&hubs, at(90), cooldown),
            (vec![], None),
            "once"
        );
        hubs[0].ready = false;
        arrivals.observe(&hubs, at(100), cooldown);
        hubs[0].ready = true;
        assert_eq!(
            arrivals.observe(&hubs, at(110), cooldown).0,
            Vec::<String>::new()
        );
        assert_eq!(
            arrivals.observe(&hubs, at(170), cooldown).0,
            vec!["id-a".to_string()],
            "back: a new arrival"
        );
    }

    proptest! {
        /// Whatever the start: no move lands on a full hub, no pub moves twice, the limit holds,
        /// and the fullest hub is never fuller after than before.
        #[test]
        fn moves_never_overfill_and_never_make_it_worse(
            sizes in proptest::collection::vec((0usize..3, 1u64..4), 0..24),
            max_moves in 0usize..10,
        ) {
            let hubs = [hub("a", 8192), hub("b", 6144), hub("c", 4096)];
            let names = ["a", "b", "c"];
            let mut load = [0u64; 3];
            let mut pubs = Vec::new();
            for (i, (h, gb)) in sizes.iter().enumerate() {
                let memory = gb * 512;
                if load[*h] + memory <= hubs[*h].memory {
                    load[*h] += memory;
                    pubs.push(placed(&format!("p{i}"), names[*h], memory));
                }
            }
            let moves = plan(&hubs, &pubs, Limits { max_moves, include_stateful: false });
            prop_assert!(moves.len() <= max_moves);
            let moved: BTreeSet<&ObjectRef> = moves.iter().map(|m| &m.object).collect();
            prop_assert_eq!(moved.len(), moves.len());
            let fullest = |load: &BTreeMap<String, u64>| {
                hubs.iter()
                    .map(|h| load.get(&h.id).copied().unwrap_or(0) as f64 / h.memory as f64)
                    .fold(0.0, f64::max)
            };
            let mut before: BTreeMap<String, u64> = BTreeMap::new();
            for p in &pubs {
                *before.entry(p.hub_id.clone()).or_default() += p.need.1;
            }
            let mut after = before.clone();
            for m in &moves {
                let need = pubs.iter().find(|p| p.object == m.object).unwrap().need.1;
                *after.get_mut(&m.from).unwrap() -= need;
                *after.entry(m.to.clone()).or_default() += need;
            }
            for h in &hubs {
                prop_assert!(after.get(&h.id).copied().unwrap_or(0) <= h.memory);
            }
            prop_assert!(fullest(&after) <= fullest(&before) + 1e-9);
        }
    }
}
