//! What the dashboard shows, decided from objects and statuses alone: each object's health (an
//! ordered rule table), the overview's counts and failures, a list page's filter, and each
//! hub's pubs and free room. Pure; the handlers read the cache and render.

use std::collections::BTreeMap;

use crds::select::Selector;
use crds::{ConditionStatus, ConditionType, Kind, ObjectRef, Resource, Status};
use reconcilers::hubs::Hub;

/// How an object is doing, in one word a person can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Something needs a person: Nomad refused or rolled back the job, checks fail, no hub has
    /// room, a git sync failed.
    Failing,
    /// On its way: a rollout, instances starting, a stop in progress.
    Progressing,
    Healthy,
    /// Set aside by `nomarch suspend`: nomarch changes nothing for it.
    Suspended,
    /// `spec.stopped`, and nothing runs.
    Stopped,
    /// Not observed yet (no status).
    Pending,
}

impl Health {
    pub const ALL: [Health; 6] = [
        Health::Failing,
        Health::Progressing,
        Health::Healthy,
        Health::Suspended,
        Health::Stopped,
        Health::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Failing => "Failing",
            Health::Progressing => "Progressing",
            Health::Healthy => "Healthy",
            Health::Suspended => "Suspended",
            Health::Stopped => "Stopped",
            Health::Pending => "Pending",
        }
    }

    /// A sign beside the word, so health reads without colour too.
    pub fn sign(self) -> &'static str {
        match self {
            Health::Failing => "✖",
            Health::Progressing => "↻",
            Health::Healthy => "✔",
            Health::Suspended => "⏸",
            Health::Stopped => "■",
            Health::Pending => "…",
        }
    }

    pub fn parse(text: &str) -> Option<Health> {
        Health::ALL
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(text))
    }
}

/// An object's health with the reason and message that earned it (a condition's, usually).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    pub reason: String,
    pub message: String,
}

type Rule = (
    &'static str,
    fn(&Resource, Option<&Status>) -> Option<Verdict>,
);

fn from_condition(
    health: Health,
    status: Option<&Status>,
    type_: ConditionType,
    holds: ConditionStatus,
) -> Option<Verdict> {
    let condition = status?.condition(type_)?;
    (condition.status == holds).then(|| Verdict {
        health,
        reason: if condition.reason.is_empty() {
            type_.as_str().to_string()
        } else {
            condition.reason.clone()
        },
        message: condition.message.clone(),
    })
}

/// First match wins; the last rule always matches.
const RULES: &[Rule] = &[
    // Set aside first: whatever its conditions say, nomarch is not acting on them.
    ("suspended", |resource, _| {
        reconcilers::operator::is_suspended(resource.metadata()).then(|| Verdict {
            health: Health::Suspended,
            reason: "Suspended".into(),
            message: "nomarch changes nothing for it; what runs keeps running".into(),
        })
    }),
    // Nomad refused the job: nothing new runs until the spec changes.
    ("invalid", |_, status| {
        from_condition(
            Health::Failing,
            status,
            ConditionType::Invalid,
            ConditionStatus::True,
        )
    }),
    // Checks fail or a rollout was rolled back (`RolledBack`).
    ("degraded", |_, status| {
        from_condition(
            Health::Failing,
            status,
            ConditionType::Degraded,
            ConditionStatus::True,
        )
    }),
    // A GitSource that cannot fetch or apply its commit (`SyncFailed`).
    ("fetch failed", |_, status| {
        from_condition(
            Health::Failing,
            status,
            ConditionType::Fetched,
            ConditionStatus::False,
        )
    }),
    ("sync failed", |_, status| {
        from_condition(
            Health::Failing,
            status,
            ConditionType::Synced,
            ConditionStatus::False,
        )
    }),
    // A pub no hub has room for: not ready, and not on its way either.
    ("unschedulable", |_, status| {
        from_condition(
            Health::Failing,
            status,
            ConditionType::Ready,
            ConditionStatus::False,
        )
        .filter(|v| v.reason == "Unschedulable")
    }),
    // Asked to stop and stopped; on its way there otherwise.
    ("stopped", |resource, status| {
        match reconcilers::operator::state_with(resource, status) {
            "Stopped" => Some(Health::Stopped),
            "Stopping" => Some(Health::Progressing),
            _ => None,
        }
        .map(|health| Verdict {
            health,
            reason: "Stopped".into(),
            message: "spec.stopped is set".into(),
        })
    }),
    ("progressing", |_, status| {
        from_condition(
            Health::Progressing,
            status,
            ConditionType::Progressing,
            ConditionStatus::True,
        )
    }),
    ("ready", |_, status| {
        from_condition(
            Health::Healthy,
            status,
            ConditionType::Ready,
            ConditionStatus::True,
        )
    }),
    // A GitSource has no Ready: a synced one is healthy.
    ("synced", |_, status| {
        from_condition(
            Health::Healthy,
            status,
            ConditionType::Synced,
            ConditionStatus::True,
        )
    }),
    // Not ready for another reason (instances starting): on its way.
    ("not ready", |_, status| {
        from_condition(
            Health::Progressing,
            status,
            ConditionType::Ready,
            ConditionStatus::False,
        )
    }),
    ("not observed", |_, _| {
        Some(Verdict {
            health: Health::Pending,
            reason: "NotObserved".into(),
            message: "the controller has not reported on it yet".into(),
        })
    }),
];

pub fn health(resource: &Resource, status: Option<&Status>) -> Verdict {
    RULES
        .iter()
        .find_map(|(_, rule)| rule(resource, status))
        .expect("the last rule always matches")
}

/// The overview: how many objects of each kind are in each health, what is failing, and the
/// git sources.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overview {
    pub counts: BTreeMap<Kind, BTreeMap<Health, usize>>,
    /// Failing objects, by kind, namespace and name; at most [`FAILING_SHOWN`].
    pub failing: Vec<(ObjectRef, Verdict)>,
    pub failing_total: usize,
    pub sources: Vec<SourceRow>,
}

/// How many failing objects the overview lists (the rest are one click away in the lists).
pub const FAILING_SHOWN: usize = 50;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRow {
    pub object: ObjectRef,
    pub repository: String,
    pub branch: String,
    pub applied_commit: Option<String>,
    /// The last error, while the source is failing.
    pub error: Option<String>,
}

impl Overview {
    /// Adds one object (the overview is built in one pass over the cache).
    pub fn add(&mut self, resource: &Resource, status: Option<&Status>) {
        let verdict = health(resource, status);
        *self
            .counts
            .entry(resource.kind())
            .or_default()
            .entry(verdict.health)
            .or_default() += 1;
        if let Resource::GitSource(source) = resource {
            self.sources.push(SourceRow {
                object: resource.object_ref(),
                repository: source.spec.url.clone(),
                branch: source.spec.branch.clone(),
                applied_commit: status.and_then(|s| s.git.last_applied_commit.clone()),
                error: (verdict.health == Health::Failing).then(|| verdict.message.clone()),
            });
        }
        if verdict.health == Health::Failing {
            self.failing_total += 1;
            self.failing.push((resource.object_ref(), verdict));
        }
    }

    /// Orders what was added and keeps the first [`FAILING_SHOWN`] failures.
    pub fn finish(mut self) -> Overview {
        self.failing.sort_by(|a, b| a.0.cmp(&b.0));
        self.failing.truncate(FAILING_SHOWN);
        self.sources.sort_by(|a, b| a.object.cmp(&b.object));
        self
    }
}

/// A list page's filter: words in the name or namespace, a label selector, one health.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub search: String,
    pub selector: Option<Selector>,
    pub health: Option<Health>,
}

impl Filter {
    /// From the list page's query (`?q=&l=&health=`); a selector that does not parse is the
    /// error to show.
    pub fn parse(search: &str, labels: &str, health: &str) -> Result<Filter, String> {
        let selector = match labels.trim() {
            "" => None,
            text => Some(Selector::parse(text)?),
        };
        let health = match health.trim() {
            "" => None,
            text => Some(Health::parse(text).ok_or_else(|| format!("no health {text:?}"))?),
        };
        Ok(Filter {
            search: search.trim().to_lowercase(),
            selector,
            health,
        })
    }

    pub fn keeps(&self, resource: &Resource, verdict: &Verdict) -> bool {
        let meta = resource.metadata();
        (self.search.is_empty()
            || meta.name.to_lowercase().contains(&self.search)
            || meta.namespace.to_lowercase().contains(&self.search))
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&meta.labels))
            && self.health.is_none_or(|h| h == verdict.health)
    }
}

/// One hub on the hubs page: its pubs and what is left of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubRow {
    pub name: String,
    pub ready: bool,
    pub schedulable: bool,
    pub pubs: Vec<ObjectRef>,
    /// CPU (MHz) and memory (MB) the node offers.
    pub total: (u64, u64),
    /// What its pubs were promised (their `spec.resources`, as hub placement counts them).
    pub promised: (u64, u64),
}

impl HubRow {
    pub fn free(&self) -> (i64, i64) {
        (
            self.total.0 as i64 - self.promised.0 as i64,
            self.total.1 as i64 - self.promised.1 as i64,
        )
    }
}

/// A pub as the hubs page counts it: the hub ID its status names, and its need.
pub struct PlacedPub {
    pub object: ObjectRef,
    pub hub_id: String,
    pub need: (u64, u64),
}

/// Every hub that holds a pub, by name, with its pubs and free room; pubs on a node Nomad no
/// longer lists are under their hub ID, with no room.
pub fn hub_rows(hubs: &[Hub], pubs: &[PlacedPub]) -> Vec<HubRow> {
    let mut rows: BTreeMap<String, HubRow> = BTreeMap::new();
    for placed in pubs {
        let hub = hubs.iter().find(|h| h.id == placed.hub_id);
        let row = rows.entry(placed.hub_id.clone()).or_insert_with(|| HubRow {
            name: hub.map_or_else(|| placed.hub_id.clone(), |h| h.name.clone()),
            ready: hub.is_some_and(|h| h.ready),
            schedulable: hub.is_some_and(|h| h.schedulable),
            pubs: Vec::new(),
            total: hub.map_or((0, 0), |h| (h.cpu, h.memory)),
            promised: (0, 0),
        });
        row.pubs.push(placed.object.clone());
        row.promised.0 += placed.need.0;
        row.promised.1 += placed.need.1;
    }
    let mut rows: Vec<HubRow> = rows.into_values().collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    for row in &mut rows {
        row.pubs.sort();
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use crds::Condition;

    fn app(yaml_extra: &str) -> Resource {
        let text = format!(
            "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n  namespace: shop\n  labels:\n    tier: front\n{yaml_extra}spec:\n  image: nginx:1\n"
        );
        crds::parse_str("t.yaml", &text).unwrap().remove(0).resource
    }

    fn status(conditions: &[(ConditionType, ConditionStatus, &str)]) -> Status {
        Status {
            conditions: conditions
                .iter()
                .map(|(type_, status, reason)| Condition {
                    type_: *type_,
                    status: *status,
                    reason: reason.to_string(),
                    message: format!("{reason} happened"),
                    last_transition_time: Utc::now(),
                })
                .collect(),
            ..Status::default()
        }
    }

    use ConditionStatus::{False, True};
    use ConditionType::*;

    /// Each rule, and the order between them: suspension and failures before readiness.
    #[test]
    fn health_rules_in_order() {
        let plain = app("");
        let suspended = app("  annotations:\n    nomarch.io/suspended: \"true\"\n");
        let cases: Vec<(&Resource, Option<Status>, Health, &str)> = vec![
            (&plain, None, Health::Pending, "NotObserved"),
            (
                &plain,
                Some(status(&[(Ready, True, "ReplicasHealthy")])),
                Health::Healthy,
                "ReplicasHealthy",
            ),
            (
                &plain,
                Some(status(&[(Ready, False, "Starting")])),
                Health::Progressing,
                "Starting",
            ),
            (
                &plain,
                Some(status(&[
                    (Ready, True, "ReplicasHealthy"),
                    (Degraded, True, "RolledBack"),
                ])),
                Health::Failing,
                "RolledBack",
            ),
            (
                &plain,
                Some(status(&[(Invalid, True, "InvalidJob"), (Ready, True, "x")])),
                Health::Failing,
                "InvalidJob",
            ),
            (
                &plain,
                Some(status(&[(Ready, False, "Unschedulable")])),
                Health::Failing,
                "Unschedulable",
            ),
            (
                &plain,
                Some(status(&[
                    (Progressing, True, "RolloutRunning"),
                    (Ready, False, "x"),
                ])),
                Health::Progressing,
                "RolloutRunning",
            ),
            (
                &plain,
                Some(status(&[(Synced, False, "SyncFailed")])),
                Health::Failing,
                "SyncFailed",
            ),
            (
                &plain,
                Some(status(&[
                    (Fetched, False, "FetchFailed"),
                    (Synced, True, "x"),
                ])),
                Health::Failing,
                "FetchFailed",
            ),
            (
                &plain,
                Some(status(&[(Synced, True, "Applied")])),
                Health::Healthy,
                "Applied",
            ),
            (
                &suspended,
                Some(status(&[(Degraded, True, "RolledBack")])),
                Health::Suspended,
                "Suspended",
            ),
        ];
        for (resource, status, health, reason) in cases {
            let verdict = super::health(resource, status.as_ref());
            assert_eq!(
                (verdict.health, verdict.reason.as_str()),
                (health, reason),
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_stopped_app_is_stopped_once_nothing_runs() {
        let mut stopped = app("");
        if let Resource::App(a) = &mut stopped {
            a.spec.stopped = true;
        }
        let stopping = status(&[(Stopped, False, "Stopping"), (Ready, False, "Stopped")]);
        assert_eq!(
            health(&stopped, Some(&stopping)).health,
            Health::Progressing
        );
        let done = status(&[(Stopped, True, "Stopped"), (Ready, False, "Stopped")]);
        assert_eq!(health(&stopped, Some(&done)).health, Health::Stopped);
    }

    #[test]
    fn the_overview_counts_every_object_and_lists_failures_in_order() {
        let mut overview = Overview::default();
        let failing = status(&[(Degraded, True, "RolledBack")]);
        let healthy = status(&[(Ready, True, "ReplicasHealthy")]);
        for (name, status) in [("b", &failing), ("a", &failing), ("c", &healthy)] {
            let mut resource = app("");
            resource.metadata_mut().name = name.into();
            overview.add(&resource, Some(status));
        }
        let overview = overview.finish();
        let apps = &overview.counts[&Kind::App];
        assert_eq!((apps[&Health::Failing], apps[&Health::Healthy]), (2, 1));
        let names: Vec<&str> = overview
            .failing
            .iter()
            .map(|(o, _)| o.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(overview.failing_total, 2);
        assert!(overview.sources.is_empty());
    }

    #[test]
    fn filters_combine_words_labels_and_health() {
        let resource = app("");
        let healthy = health(&resource, Some(&status(&[(Ready, True, "ok")])));
        let keeps =
            |q: &str, l: &str, h: &str| Filter::parse(q, l, h).unwrap().keeps(&resource, &healthy);
        assert!(keeps("", "", ""));
        assert!(keeps("WE", "", ""), "words ignore case");
        assert!(keeps("shop", "tier=front", "healthy"));
        assert!(!keeps("db", "", ""));
        assert!(!keeps("", "tier=back", ""));
        assert!(!keeps("", "", "failing"));
        assert!(Filter::parse("", "tier in (a)", "").is_err());
        assert!(Filter::parse("", "", "sideways").is_err());
    }

    #[test]
    fn hubs_show_their_pubs_and_what_is_left() {
        let hub = |id: &str, ready: bool| Hub {
            id: id.into(),
            name: format!("node-{id}"),
            class: "hub".into(),
            datacenter: "dc1".into(),
            pool: "default".into(),
            meta: Default::default(),
            cpu: 4000,
            memory: 8192,
            ready,
            schedulable: true,
            volumes: Default::default(),
        };
        let placed = |name: &str, hub: &str| PlacedPub {
            object: ObjectRef::new(Kind::Pub, "t", name),
            hub_id: hub.into(),
            need: (500, 1024),
        };
        let rows = hub_rows(
            &[hub("a", true), hub("b", false)],
            &[placed("y", "a"), placed("x", "a"), placed("z", "gone")],
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "gone");
        assert_eq!(rows[0].total, (0, 0));
        assert_eq!(rows[1].name, "node-a");
        assert_eq!(rows[1].free(), (3000, 6144));
        let names: Vec<&str> = rows[1].pubs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
    }
}
