//! What to do about one object's Nomad job: a pure function of what was observed. The same
//! plan drives the reconciler, `nomarch diff` and the tests.
//!
//! The decision is an ordered rule table: the first rule that matches decides, and each rule
//! says why it exists.

use crds::ObjectRef;

/// The live job, reduced to what the plan reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveJob {
    /// The object its meta says owns it; `None` when nomarch does not manage it.
    pub owner: Option<ObjectRef>,
    pub spec_hash: Option<String>,
    pub job_modify_index: u64,
    pub stopped: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub object: ObjectRef,
    pub desired_hash: String,
    pub live: Option<LiveJob>,
    /// The `JobModifyIndex` of nomarch's last write, from the object's status.
    pub last_written_index: Option<u64>,
    /// Objects named in `dependsOn` that are not Ready yet.
    pub waiting_for: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterReason {
    Create,
    SpecChanged,
    /// Someone stopped the job behind nomarch's back.
    Stopped,
    /// Someone changed the job behind nomarch's back.
    Drifted,
}

impl RegisterReason {
    pub fn describe(self) -> &'static str {
        match self {
            RegisterReason::Create => "job created",
            RegisterReason::SpecChanged => "spec changed",
            RegisterReason::Stopped => "job was stopped outside nomarch",
            RegisterReason::Drifted => "job was changed outside nomarch",
        }
    }

    /// Corrections of someone else's change are announced as `DriftCorrected`.
    pub fn is_drift(self) -> bool {
        matches!(self, RegisterReason::Stopped | RegisterReason::Drifted)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobAction {
    /// Register the rendered job, check-and-set on `enforce_index` (0: it must not exist yet).
    Register {
        enforce_index: u64,
        reason: RegisterReason,
    },
    /// The job moved since nomarch's last write but still carries the desired hash: ask Nomad's
    /// plan whether its content differs, and register only if it does. (A controller killed
    /// between its register and its status write lands here too, and must not write again.)
    VerifyDrift {
        enforce_index: u64,
    },
    /// A job with this ID exists and belongs to someone else; it is never touched.
    Refuse {
        reason: String,
    },
    /// Not yet: the named dependencies are not Ready.
    Wait {
        reason: String,
    },
    Nothing,
}

type Rule = (&'static str, fn(&Observation) -> Option<JobAction>);

/// First match wins.
const RULES: &[Rule] = &[
    // Dependencies first: nothing is created before what it depends on is Ready.
    ("wait for dependencies", |o| {
        (o.live.is_none() && !o.waiting_for.is_empty()).then(|| JobAction::Wait {
            reason: format!("waiting for {}", o.waiting_for.join(", ")),
        })
    }),
    // No job yet: create it, and only if nobody created it meanwhile.
    ("create", |o| {
        o.live.is_none().then_some(JobAction::Register {
            enforce_index: 0,
            reason: RegisterReason::Create,
        })
    }),
    // A job without nomarch's meta was made by someone else: never adopt or overwrite it.
    ("not ours", |o| {
        let live = o.live.as_ref()?;
        live.owner.is_none().then(|| JobAction::Refuse {
            reason: "a job with this ID exists and is not managed by nomarch".into(),
        })
    }),
    // Managed by nomarch for another object (another kind with the same name): leave it.
    ("another owner", |o| {
        let owner = o.live.as_ref()?.owner.as_ref()?;
        (owner != &o.object).then(|| JobAction::Refuse {
            reason: format!("the job belongs to {owner}"),
        })
    }),
    // Stopped behind our back: run it again.
    ("stopped", |o| {
        let live = o.live.as_ref()?;
        live.stopped.then_some(JobAction::Register {
            enforce_index: live.job_modify_index,
            reason: RegisterReason::Stopped,
        })
    }),
    // The spec changed (or someone replaced the job with another spec): register it.
    ("spec changed", |o| {
        let live = o.live.as_ref()?;
        (live.spec_hash.as_deref() != Some(o.desired_hash.as_str())).then_some(
            JobAction::Register {
                enforce_index: live.job_modify_index,
                reason: RegisterReason::SpecChanged,
            },
        )
    }),
    // Same hash, but the job moved since our last write: maybe an edit that kept our meta.
    ("moved since our write", |o| {
        let live = o.live.as_ref()?;
        let written = o.last_written_index?;
        (written != live.job_modify_index).then_some(JobAction::VerifyDrift {
            enforce_index: live.job_modify_index,
        })
    }),
];

pub fn plan(observation: &Observation) -> JobAction {
    RULES
        .iter()
        .find_map(|(_, rule)| rule(observation))
        .unwrap_or(JobAction::Nothing)
}

/// The name of the rule that decided, for logs and `nomarch diff`.
pub fn deciding_rule(observation: &Observation) -> &'static str {
    RULES
        .iter()
        .find(|(_, rule)| rule(observation).is_some())
        .map_or("in sync", |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::Kind;
    use proptest::prelude::*;

    fn web() -> ObjectRef {
        ObjectRef::new(Kind::App, "default", "web")
    }

    fn live(owner: Option<ObjectRef>, hash: &str, index: u64, stopped: bool) -> Option<LiveJob> {
        Some(LiveJob {
            owner,
            spec_hash: Some(hash.into()),
            job_modify_index: index,
            stopped,
        })
    }

    fn observe(live: Option<LiveJob>, written: Option<u64>) -> Observation {
        Observation {
            object: web(),
            desired_hash: "h1".into(),
            live,
            last_written_index: written,
            waiting_for: vec![],
        }
    }

    #[test]
    fn the_rule_table() {
        use JobAction::*;
        let other = ObjectRef::new(Kind::Pub, "default", "web");
        let cases: Vec<(&str, Observation, JobAction)> = vec![
            (
                "absent",
                observe(None, None),
                Register {
                    enforce_index: 0,
                    reason: RegisterReason::Create,
                },
            ),
            (
                "absent, status remembers a write",
                observe(None, Some(7)),
                Register {
                    enforce_index: 0,
                    reason: RegisterReason::Create,
                },
            ),
            (
                "unmanaged",
                observe(live(None, "h1", 5, false), None),
                Refuse {
                    reason: "a job with this ID exists and is not managed by nomarch".into(),
                },
            ),
            (
                "another owner",
                observe(live(Some(other), "h1", 5, false), None),
                Refuse {
                    reason: "the job belongs to pub/web".into(),
                },
            ),
            (
                "stopped",
                observe(live(Some(web()), "h1", 5, true), Some(5)),
                Register {
                    enforce_index: 5,
                    reason: RegisterReason::Stopped,
                },
            ),
            (
                "new spec",
                observe(live(Some(web()), "h0", 5, false), Some(5)),
                Register {
                    enforce_index: 5,
                    reason: RegisterReason::SpecChanged,
                },
            ),
            (
                "edited, meta kept",
                observe(live(Some(web()), "h1", 9, false), Some(5)),
                VerifyDrift { enforce_index: 9 },
            ),
            (
                "in sync",
                observe(live(Some(web()), "h1", 5, false), Some(5)),
                Nothing,
            ),
            (
                "in sync, status lost",
                observe(live(Some(web()), "h1", 5, false), None),
                Nothing,
            ),
        ];
        for (name, observation, expected) in cases {
            assert_eq!(plan(&observation), expected, "{name}");
        }
    }

    #[test]
    fn dependencies_only_gate_creation() {
        let mut waiting = observe(None, None);
        waiting.waiting_for = vec!["redis".into()];
        assert_eq!(
            plan(&waiting),
            JobAction::Wait {
                reason: "waiting for redis".into()
            }
        );
        waiting.live = live(Some(web()), "h1", 5, false);
        assert_eq!(
            plan(&waiting),
            JobAction::Nothing,
            "a running app is not stopped because a dependency flaps"
        );
    }

    proptest! {
        /// Whatever was observed: a job that is not ours is never written, and an in-sync job
        /// (ours, same hash, same index, running) is left alone.
        #[test]
        fn never_writes_someone_elses_job(ours in any::<bool>(), same_hash in any::<bool>(), index in 1u64..100, written in proptest::option::of(1u64..100), stopped in any::<bool>()) {
            let owner = ours.then(web);
            let hash = if same_hash { "h1" } else { "h0" };
            let observation = observe(live(owner, hash, index, stopped), written);
            let action = plan(&observation);
            if !ours {
                let refused = matches!(action, JobAction::Refuse { .. });
                prop_assert!(refused);
            }
            if ours && same_hash && !stopped && written.is_none_or(|w| w == index) {
                prop_assert_eq!(action, JobAction::Nothing);
            }
            if let JobAction::Register { enforce_index, .. } = plan(&observation) {
                prop_assert_eq!(enforce_index, index, "registers are check-and-set on what was read");
            }
        }
    }
}
