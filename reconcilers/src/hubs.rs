//! Pubs and their hubs, pure: which nodes may be a pub's hub, which one to pick (capacity
//! counted from the pubs already assigned), and whether a pub must move.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::kinds::{HubSelector, PlacementPolicy};
use crds::workload::{Volume, VolumeType};

/// A Nomad client node, as placement needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hub {
    pub id: String,
    pub name: String,
    pub class: String,
    pub datacenter: String,
    pub pool: String,
    pub meta: BTreeMap<String, String>,
    pub cpu: u64,
    pub memory: u64,
    /// `ready` in Nomad.
    pub ready: bool,
    /// Eligible and not draining.
    pub schedulable: bool,
    /// The host volumes the node offers, by name: whether each is read-only.
    pub volumes: BTreeMap<String, bool>,
}

/// scheduler/feasible.go `HostVolumeChecker` for static host volumes: the hub offers every
/// host volume, and none the pub writes is read-only there. Nomad would refuse the placement
/// otherwise (the pub's job is pinned to the hub), so such a hub is never chosen. CSI volumes
/// are Nomad's to place (its `CSIVolumeChecker` reads the volume's plugin and claims): a hub
/// without the plugin shows as the pub's placement failure.
pub fn offers(hub: &Hub, volumes: &[Volume]) -> bool {
    let host = volumes.iter().filter(|v| v.type_ == VolumeType::Host);
    host.into_iter().all(|v| {
        hub.volumes
            .get(&v.source)
            .is_some_and(|read_only| v.read_only || !read_only)
    })
}

pub fn selects(selector: &HubSelector, hub: &Hub) -> bool {
    selector.node_class.as_ref().is_none_or(|c| *c == hub.class)
        && selector
            .datacenter
            .as_ref()
            .is_none_or(|d| *d == hub.datacenter)
        && selector.node_pool.as_ref().is_none_or(|p| *p == hub.pool)
        && selector
            .meta
            .iter()
            .all(|(k, v)| hub.meta.get(k) == Some(v))
}

/// CPU and memory already promised to pubs, per hub ID.
pub type Assigned = HashMap<String, (u64, u64)>;

/// The hub for a pub needing `need` (CPU, memory), or `None` when nothing has room.
/// Binpack fills the fullest hub that still fits (keeping whole hubs free); spread picks the
/// emptiest. Ties go to the name, so the choice is stable.
pub fn choose<'h>(
    selector: &HubSelector,
    policy: PlacementPolicy,
    need: (u64, u64),
    volumes: &[Volume],
    hubs: &'h [Hub],
    assigned: &Assigned,
    exclude: Option<&str>,
) -> Option<&'h Hub> {
    let fill = |hub: &Hub| {
        let (cpu, memory) = assigned.get(&hub.id).copied().unwrap_or_default();
        let after = ((cpu + need.0) as f64 / hub.cpu.max(1) as f64)
            .max((memory + need.1) as f64 / hub.memory.max(1) as f64);
        (cpu + need.0 <= hub.cpu && memory + need.1 <= hub.memory).then_some(after)
    };
    let mut candidates: Vec<(f64, &Hub)> = hubs
        .iter()
        .filter(|h| {
            h.ready
                && h.schedulable
                && Some(h.id.as_str()) != exclude
                && selects(selector, h)
                && offers(h, volumes)
        })
        .filter_map(|h| fill(h).map(|f| (f, h)))
        .collect();
    candidates.sort_by(|(fa, a), (fb, b)| {
        let by_fill = match policy {
            PlacementPolicy::Binpack => fb.total_cmp(fa),
            PlacementPolicy::Spread => fa.total_cmp(fb),
        };
        by_fill.then_with(|| a.name.cmp(&b.name))
    });
    candidates.first().map(|(_, h)| *h)
}

/// What the pub's current hub means for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubVerdict {
    /// No hub yet: place it.
    Place,
    /// Stay where it is.
    Stay,
    /// The hub is unhealthy but within grace: stay, and look again after this long.
    Wait(Duration),
    /// Move it, for this reason.
    Move(String),
    /// The hub is lost, but the pub waits for it (`onHubLoss: wait`): stay pinned, for this
    /// reason.
    Hold(String),
}

type Rule = (&'static str, fn(&HubFacts) -> Option<HubVerdict>);

/// What is known about a pub's hub.
pub struct HubFacts<'h> {
    pub hub_id: Option<&'h str>,
    /// The hub as Nomad lists it; `None` when Nomad no longer knows it (purged).
    pub hub: Option<&'h Hub>,
    /// Since when nomarch has seen the hub not ready.
    pub unhealthy_since: Option<DateTime<Utc>>,
    pub grace: Duration,
    /// `reallocation.onHubLoss` is (or defaults to) `wait`.
    pub wait_on_loss: bool,
    pub now: DateTime<Utc>,
}

const RULES: &[Rule] = &[
    // Never placed (or the status was lost before the first register): place it.
    ("unplaced", |f| {
        f.hub_id.is_none().then_some(HubVerdict::Place)
    }),
    // Nomad forgot the node: it is not coming back. A pub told to wait for its data waits,
    // and says so: only someone can decide to start it fresh elsewhere.
    ("hub gone", |f| {
        f.hub.is_none().then(|| {
            let reason = "its hub no longer exists".to_string();
            if f.wait_on_loss {
                HubVerdict::Hold(format!("{reason}; waiting (reallocation.onHubLoss: wait)"))
            } else {
                HubVerdict::Move(reason)
            }
        })
    }),
    // An operator is draining the hub or took it out of scheduling: leave it now.
    ("hub draining", |f| {
        let hub = f.hub?;
        (hub.ready && !hub.schedulable)
            .then(|| HubVerdict::Move(format!("hub {} is draining or ineligible", hub.name)))
    }),
    // Down or disconnected past the grace: Nomad never moves pinned work, so nomarch does.
    ("hub down past grace", |f| {
        let hub = f.hub?;
        let since = f.unhealthy_since?;
        let down_for = (f.now - since).to_std().unwrap_or_default();
        (!hub.ready && down_for >= f.grace).then(|| {
            let reason = format!("hub {} has been down for {}s", hub.name, down_for.as_secs());
            if f.wait_on_loss {
                HubVerdict::Hold(format!(
                    "{reason}; waiting for it, as its data is there (reallocation.onHubLoss: wait)"
                ))
            } else {
                HubVerdict::Move(reason)
            }
        })
    }),
    // Down, but it may come back within the grace: wait out the rest of it.
    ("hub down within grace", |f| {
        let hub = f.hub?;
        if hub.ready {
            return None;
        }
        let since = f.unhealthy_since.unwrap_or(f.now);
        let waited = (f.now - since).to_std().unwrap_or_default();
        Some(HubVerdict::Wait(f.grace.saturating_sub(waited)))
    }),
];

pub fn verdict(facts: &HubFacts) -> HubVerdict {
    RULES
        .iter()
        .find_map(|(_, rule)| rule(facts))
        .unwrap_or(HubVerdict::Stay)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hub of class `hub` in `dc1` with 10 GHz, as the tests of placement and pubs use.
    pub(crate) fn hub(name: &str, memory: u64, ready: bool, schedulable: bool) -> Hub {
        Hub {
            id: format!("id-{name}"),
            name: name.into(),
            class: "hub".into(),
            datacenter: "dc1".into(),
            pool: "default".into(),
            meta: BTreeMap::new(),
            cpu: 10_000,
            memory,
            ready,
            schedulable,
            volumes: BTreeMap::new(),
        }
    }

    fn selector() -> HubSelector {
        HubSelector {
            node_class: Some("hub".into()),
            ..HubSelector::default()
        }
    }

    #[test]
    fn binpack_fills_the_fullest_hub_that_fits_and_spread_the_emptiest() {
        let hubs = [hub("a", 4096, true, true), hub("b", 4096, true, true)];
        let assigned: Assigned = [("id-a".to_string(), (0, 2048))].into();
        let need = (200, 1024);
        assert_eq!(
            choose(
                &selector(),
                PlacementPolicy::Binpack,
                need,
                &[],
                &hubs,
                &assigned,
                None
            )
            .unwrap()
            .name,
            "a"
        );
        assert_eq!(
            choose(
                &selector(),
                PlacementPolicy::Spread,
                need,
                &[],
                &hubs,
                &assigned,
                None
            )
            .unwrap()
            .name,
            "b"
        );
        let full: Assigned = [
            ("id-a".to_string(), (0, 4096)),
            ("id-b".to_string(), (0, 3500)),
        ]
        .into();
        assert_eq!(
            choose(
                &selector(),
                PlacementPolicy::Binpack,
                need,
                &[],
                &hubs,
                &full,
                None
            ),
            None,
            "never onto a full hub"
        );
    }

    #[test]
    fn only_ready_schedulable_matching_hubs_and_never_the_one_being_left() {
        let mut worker = hub("w", 65536, true, true);
        worker.class = "worker".into();
        let hubs = [
            hub("down", 65536, false, true),
            hub("drained", 65536, true, false),
            worker,
            hub("old", 65536, true, true),
        ];
        let chosen = choose(
            &selector(),
            PlacementPolicy::Binpack,
            (1, 1),
            &[],
            &hubs,
            &Assigned::new(),
            Some("id-old"),
        );
        assert_eq!(chosen, None);
    }

    #[test]
    fn the_verdict_table() {
        let now = Utc::now();
        let grace = Duration::from_secs(30);
        let up = hub("a", 1, true, true);
        let down = hub("a", 1, false, true);
        let drained = hub("a", 1, true, false);
        let facts = |hub_id: Option<&'static str>,
                     hub: Option<&'static Hub>,
                     since: Option<i64>| HubFacts {
            hub_id,
            hub,
            unhealthy_since: since.map(|s| now - chrono::Duration::seconds(s)),
            grace,
            wait_on_loss: false,
            now,
        };
        let leak = |h: Hub| -> &'static Hub { Box::leak(Box::new(h)) };
        let (up, down, drained) = (leak(up), leak(down), leak(drained));
        assert_eq!(verdict(&facts(None, None, None)), HubVerdict::Place);
        assert_eq!(
            verdict(&facts(Some("id-a"), None, None)),
            HubVerdict::Move("its hub no longer exists".into())
        );
        assert_eq!(
            verdict(&facts(Some("id-a"), Some(up), None)),
            HubVerdict::Stay
        );
        assert!(matches!(
            verdict(&facts(Some("id-a"), Some(drained), None)),
            HubVerdict::Move(_)
        ));
        assert_eq!(
            verdict(&facts(Some("id-a"), Some(down), Some(10))),
            HubVerdict::Wait(Duration::from_secs(20))
        );
        assert!(
            matches!(verdict(&facts(Some("id-a"), Some(down), Some(31))), HubVerdict::Move(m) if m.contains("down for 31s"))
        );
        // Waiting for its data: a lost hub holds the pub; a draining one is still left.
        let waiting = |hub_id, hub, since| HubFacts {
            wait_on_loss: true,
            ..facts(hub_id, hub, since)
        };
        assert!(
            matches!(verdict(&waiting(Some("id-a"), Some(down), Some(31))), HubVerdict::Hold(m) if m.contains("onHubLoss: wait"))
        );
        assert!(matches!(
            verdict(&waiting(Some("id-a"), None, None)),
            HubVerdict::Hold(_)
        ));
        assert!(matches!(
            verdict(&waiting(Some("id-a"), Some(drained), None)),
            HubVerdict::Move(_)
        ));
        assert_eq!(
            verdict(&waiting(Some("id-a"), Some(down), Some(10))),
            HubVerdict::Wait(Duration::from_secs(20))
        );
    }

    /// Only hubs offering the pub's host volumes (writable where it writes) are chosen.
    #[test]
    fn a_pub_with_volumes_goes_only_where_they_are() {
        let volume = |read_only| Volume {
            name: "data".into(),
            type_: crds::workload::VolumeType::Host,
            source: "tenant-data".into(),
            read_only,
            mount_path: "/data".into(),
            access_mode: None,
        };
        let mut writable = hub("writable", 4096, true, true);
        writable.volumes = [("tenant-data".to_string(), false)].into();
        let mut read_only = hub("read-only", 8192, true, true);
        read_only.volumes = [("tenant-data".to_string(), true)].into();
        let hubs = [hub("bare", 65536, true, true), read_only, writable];
        let pick = |v: Volume| {
            choose(
                &selector(),
                PlacementPolicy::Spread,
                (1, 1),
                &[v],
                &hubs,
                &Assigned::new(),
                None,
            )
            .map(|h| h.name.clone())
        };
        assert_eq!(pick(volume(false)).as_deref(), Some("writable"));
        assert_eq!(
            pick(volume(true)).as_deref(),
            Some("read-only"),
            "the emptiest that offers it"
        );
        // A CSI volume is Nomad's to place: no hub is ruled out for it here.
        let csi = Volume {
            type_: crds::workload::VolumeType::Csi,
            source: "shared-disk".into(),
            ..volume(false)
        };
        assert!(pick(csi).is_some());
    }
}
