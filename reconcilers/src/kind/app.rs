//! An App's decisions besides its job: the workload's look (replicas, conditions, rollout,
//! healing), Nomad's refusal or rollback on record, `Ready` said once, and when to look again.
//!
//! An App as a Nomad service job: one group of `replicas` instances of one docker task, its
//! Consul service, and restart/reschedule/update policies that let Nomad heal what it can.

use std::time::Duration;

use crds::{App, AppSpec, Kind, ObjectRef, Resource};
use serde_json::{json, Map};

use super::{look_and_record, settled, JobOutcome, WorkloadKind};
use crate::effects::{Effects, Requeue};
use crate::meta::job_meta;
use crate::nomad_job::Job;
use crate::render::{
    hold_traffic_from_canaries, job, placement, service_group, services, update_block, JobParts,
    Shared,
};
use crate::workload::{WorkloadSnapshot, WorkloadSpec};

pub fn render_app(app: &App) -> Job {
    let spec = &app.spec;
    let object = app.object_ref();
    let (datacenters, node_pool, constraints) = placement(&spec.placement);
    let mut services = services(
        &object,
        &spec.ports,
        spec.health.as_ref(),
        spec.route.as_ref(),
    );
    let update = &spec.update;
    hold_traffic_from_canaries(&mut services, update);
    let mut fields = Map::new();
    fields.insert("Datacenters".into(), datacenters);
    fields.insert("Constraints".into(), constraints);
    fields.insert(
        "Update".into(),
        update_block(update, spec.replicas, spec.health.is_some()),
    );
    if let Some(pool) = node_pool {
        fields.insert("NodePool".into(), json!(pool));
    }
    let parts = JobParts {
        object: &object,
        job_type: "service",
        meta: job_meta(&Resource::App(app.clone())),
        fields,
        group: service_group(
            AppSpec::GROUP,
            spec.replicas,
            &spec.ports,
            services,
            spec.container(),
        ),
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

/// While an App is converging, look again this often even without a trigger.
pub const CONVERGING_RECHECK: Duration = Duration::from_secs(5);

/// A look due at a grace's end comes this much after it, so the grace has surely run out.
pub const AFTER_GRACE: Duration = Duration::from_millis(50);

/// What the look judges an App against.
pub fn workload_spec<'a>(app: &'a App, object: &'a ObjectRef) -> WorkloadSpec<'a> {
    let spec = &app.spec;
    WorkloadSpec {
        object,
        generation: app.metadata.generation,
        desired: if spec.stopped { 0 } else { spec.replicas },
        stopped: spec.stopped,
        health: spec.health.as_ref(),
        max_unavailable: spec.update.max_unavailable,
        // An App's job always has an update block (`render_app` above); a stopped job gets no
        // deployment (Nomad cancels the running one).
        deploys: spec.replicas > 0 && !spec.stopped,
    }
}

impl WorkloadKind for AppSpec {
    fn render(app: &App) -> Job {
        render_app(app)
    }

    fn workload_spec<'a>(app: &'a App, key: &'a ObjectRef) -> WorkloadSpec<'a> {
        workload_spec(app, key)
    }

    fn depends_on(app: &App) -> Vec<ObjectRef> {
        app.spec
            .depends_on
            .iter()
            .map(|name| ObjectRef::new(Kind::App, &app.metadata.namespace, name))
            .collect()
    }

    fn compute(app: &App, job: &JobOutcome, workload: WorkloadSnapshot<'_>) -> Effects {
        compute(&AppSnapshot { app, job, workload })
    }
}

/// Everything an App's decisions read; `workload.previous` is the App's stored status.
pub struct AppSnapshot<'a> {
    pub app: &'a App,
    pub job: &'a JobOutcome,
    pub workload: WorkloadSnapshot<'a>,
}

pub fn compute(snapshot: &AppSnapshot<'_>) -> Effects {
    let look = look_and_record(
        &snapshot.workload,
        snapshot.app.status.as_ref(),
        snapshot.job,
    );
    let settled = settled(&look.status);
    let requeue = match (&snapshot.job, look.heal_due) {
        // Refused by Nomad: nothing changes until the App does, and that queues it again.
        (
            JobOutcome {
                rejected: Some(_), ..
            },
            _,
        ) => Requeue::OnChange,
        // A check failing within its grace: look again when the grace runs out, not later.
        (_, Some(due)) => Requeue::After(due.min(CONVERGING_RECHECK) + AFTER_GRACE),
        // Waiting for dependencies, or converging: look again at the converging pace.
        (
            JobOutcome {
                waiting: Some(_), ..
            },
            None,
        ) => Requeue::After(CONVERGING_RECHECK),
        _ if !settled => Requeue::After(CONVERGING_RECHECK),
        // Settled: the next change (of the App, its job or its allocations) brings it back.
        _ => Requeue::OnChange,
    };
    look.into_effects(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AllocView, JobView, Rejection};
    use crate::workload::{Checks, Deployments, WorkloadAlloc};
    use chrono::{DateTime, Utc};
    use crds::ConditionType;
    use crds::Status;
    use serde_json::json;

    fn app(stored: Option<Status>) -> App {
        let mut app: App = serde_json::from_value(serde_json::json!({
            "apiVersion": "nomarch.io/v1", "kind": "App",
            "metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"image": "nginx", "replicas": 2,
                     "ports": [{"name": "http", "port": 0}],
                     "health": {"type": "http", "port": "http", "path": "/", "grace": "30s"}},
        }))
        .expect("an App");
        app.status = stored;
        app
    }

    fn running(id: &str) -> WorkloadAlloc {
        WorkloadAlloc {
            view: AllocView {
                id: id.into(),
                node_id: "n1".into(),
                client_status: "running".into(),
                desired_status: "run".into(),
                checks_passing: None,
            },
            node_name: "n1".into(),
            job_version: 0,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    /// One App, two instances, checks as given, the job outcome as given.
    fn effects(app: &App, job: &JobOutcome, passing: [bool; 2], now: DateTime<Utc>) -> Effects {
        let object = app.object_ref();
        compute(&AppSnapshot {
            app,
            job,
            workload: WorkloadSnapshot {
                spec: WorkloadSpec {
                    deploys: false,
                    ..workload_spec(app, &object)
                },
                job: Some(JobView {
                    id: "web".into(),
                    version: 0,
                    job_modify_index: 10,
                }),
                job_stopped: false,
                written: None,
                previous: app.status.as_ref(),
                allocs: vec![running("a1"), running("a2")],
                checks: Checks::Read(
                    [
                        ("a1".to_string(), passing[0]),
                        ("a2".to_string(), passing[1]),
                    ]
                    .into(),
                ),
                deployments: Deployments::default(),
                now,
            },
        })
    }

    #[test]
    fn the_next_look_follows_the_rules_in_order() {
        let refused = JobOutcome {
            rejected: Some(Rejection {
                fingerprint: "f".into(),
                message: "bad".into(),
            }),
            ..JobOutcome::default()
        };
        let waiting = JobOutcome {
            waiting: Some("db is not Ready".into()),
            ..JobOutcome::default()
        };
        let fine = JobOutcome::default();
        // (why, job outcome, checks passing, next look)
        let table = [
            ("refused", &refused, [false, true], Requeue::OnChange),
            (
                "a check within its grace",
                &fine,
                [true, false],
                Requeue::After(CONVERGING_RECHECK + AFTER_GRACE),
            ),
            (
                "waiting",
                &waiting,
                [true, true],
                Requeue::After(CONVERGING_RECHECK),
            ),
            ("settled", &fine, [true, true], Requeue::OnChange),
        ];
        for (why, job, passing, expected) in table {
            let plan = effects(&app(None), job, passing, at(0));
            assert_eq!(plan.requeue, expected, "{why}");
        }
    }

    #[test]
    fn ready_is_said_once_and_a_refusal_is_on_record() {
        let first = effects(&app(None), &JobOutcome::default(), [true, true], at(0));
        assert_eq!(
            first.events.iter().map(|e| e.reason).collect::<Vec<_>>(),
            ["Ready"]
        );
        let again = effects(
            &app(Some(first.status.clone())),
            &JobOutcome::default(),
            [true, true],
            at(10),
        );
        assert!(again.events.is_empty());
        assert_eq!(again.status, first.status, "a steady App writes nothing");
        let refused = JobOutcome {
            rejected: Some(Rejection {
                fingerprint: "f".into(),
                message: "Nomad says no".into(),
            }),
            ..JobOutcome::default()
        };
        let plan = effects(&app(Some(first.status)), &refused, [true, true], at(20));
        assert!(plan.status.is_true(ConditionType::Invalid));
    }

    #[test]
    fn a_check_failing_past_its_grace_is_healed() {
        let within = effects(&app(None), &JobOutcome::default(), [true, false], at(0));
        assert!(within.heals.is_empty());
        let past = effects(
            &app(Some(within.status)),
            &JobOutcome::default(),
            [true, false],
            at(31),
        );
        assert_eq!(
            past.heals
                .iter()
                .map(|h| h.alloc.as_str())
                .collect::<Vec<_>>(),
            ["a2"]
        );
    }

    proptest::proptest! {
        /// Whatever `spec.nomad.job` holds (validation refuses much of it, but rendering does not
        /// count on that), the job renders typed, and reads back from the JSON nomarch sends as the
        /// same job: no patch can put a field both in the typed part and in the rest, or make the
        /// job something the controller could not read back.
        #[test]
        fn any_job_patch_renders_a_job_that_reads_back_as_itself(
            patch in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "Meta", "Version", "Status", "Stop", "ID", "Priority", "Name", "Datacenters",
                        "Update", "TaskGroups", "ModifyIndex", "NodePool",
                    ]),
                    proptest::prop_oneof![
                        proptest::strategy::Just(json!(null)),
                        proptest::strategy::Just(json!(5)),
                        proptest::strategy::Just(json!("text")),
                        proptest::strategy::Just(json!({"team": "web", "gone": null, "n": 3})),
                        proptest::strategy::Just(json!([1, 2])),
                    ],
                ),
                0..6,
            )
        ) {
            let mut app = app(None);
            app.spec.nomad.job = patch.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let job = render_app(&app);
            let sent = serde_json::to_string(&job).unwrap();
            let read: Job = serde_json::from_str(&sent).unwrap();
            proptest::prop_assert_eq!(&read, &job);
            proptest::prop_assert_eq!(job.id.as_str(), "web");
            proptest::prop_assert!(job.meta.as_ref().is_some_and(|m| m.contains_key("nomarch.io/managed-by")));
        }
    }
}
