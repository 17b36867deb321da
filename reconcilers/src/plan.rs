//! What to do about one object's Nomad job: a pure function of what was observed. The same
//! plan drives the reconciler, `nomarch diff` and the tests.
//!
//! The decision is an ordered rule table: the first rule that matches decides, and each rule
//! says why it exists.

use crds::ObjectRef;

use crate::status::Written;

/// The live job, reduced to what the plan reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveJob {
    /// The object its meta says owns it; `None` when nomarch does not manage it.
    pub owner: Option<ObjectRef>,
    pub job_modify_index: u64,
    pub stopped: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub object: ObjectRef,
    /// The fingerprint of the job nomarch would register now ([`crate::fingerprint`]).
    pub desired_fingerprint: String,
    /// The object asks to run nothing (`spec.stopped`): its job is registered with `Stop`.
    pub desired_stopped: bool,
    pub live: Option<LiveJob>,
    /// nomarch's last write, from the object's status.
    pub last_written: Option<Written>,
    /// The fingerprint of a job Nomad refused, from the object's status.
    pub rejected: Option<String>,
    /// The fingerprint of a job whose rollout failed and that Nomad rolled back (its
    /// deployment's `auto_revert`), unless a retry was asked for since.
    pub rolled_back: Option<String>,
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
    /// A job Nomad rolled back, sent again because the retry annotation changed.
    Retry,
    /// The object was stopped (`spec.stopped` set): its job is registered with `Stop`.
    Stop,
    /// The object was started again (`spec.stopped` cleared).
    Start,
}

impl RegisterReason {
    pub fn describe(self) -> &'static str {
        match self {
            RegisterReason::Create => "job created",
            RegisterReason::SpecChanged => "spec changed",
            RegisterReason::Stopped => "job was stopped outside nomarch",
            RegisterReason::Drifted => "job was changed outside nomarch",
            RegisterReason::Retry => "retry asked for after Nomad rolled it back",
            RegisterReason::Stop => "stopped: spec.stopped is true",
            RegisterReason::Start => "started: spec.stopped is false again",
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
    /// The job moved since nomarch's last write (or no write is on record) and the desired job
    /// is still what nomarch last wrote: ask Nomad's plan whether the live job differs, and
    /// register only if it does. (A controller killed between its register and its status
    /// write lands here too, and must not write again.)
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
    /// Nomad refused this very job, or rolled it back after its rollout failed: sending it
    /// again would get the same answer (or the same failed rollout, every progress deadline).
    /// Held until the desired job changes, or a retry is asked for.
    Hold,
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
    // Nomad refused this exact job before (invalid, or impossible as it is): do not send it
    // again; a change to what would be sent lifts the hold.
    ("refused by Nomad", |o| {
        (o.rejected.as_deref() == Some(o.desired_fingerprint.as_str())).then_some(JobAction::Hold)
    }),
    // Nomad rolled this very job back after its deployment failed: registering it again would
    // fail the same way and loop (Nomad reverting, nomarch re-registering). A new desired job
    // or an explicit retry lifts the hold.
    ("rolled back by Nomad", |o| {
        (o.rolled_back.as_deref() == Some(o.desired_fingerprint.as_str()))
            .then_some(JobAction::Hold)
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
    // Started again: the job nomarch stopped runs once more. Before "stopped", which would
    // call the start a correction of someone else's stop.
    ("start asked", |o| {
        let live = o.live.as_ref()?;
        let changed = o
            .last_written
            .as_ref()
            .is_some_and(|w| w.fingerprint != o.desired_fingerprint);
        (live.stopped && !o.desired_stopped && changed).then_some(JobAction::Register {
            enforce_index: live.job_modify_index,
            reason: RegisterReason::Start,
        })
    }),
    // Stopped behind our back: run it again.
    ("stopped", |o| {
        let live = o.live.as_ref()?;
        (live.stopped && !o.desired_stopped).then_some(JobAction::Register {
            enforce_index: live.job_modify_index,
            reason: RegisterReason::Stopped,
        })
    }),
    // Asked to run nothing: register the job with `Stop`, check-and-set (a deregister could
    // not be). A stopped job that someone started again is drift, found by Nomad's plan below.
    ("stop asked", |o| {
        let live = o.live.as_ref()?;
        let changed = o
            .last_written
            .as_ref()
            .is_none_or(|w| w.fingerprint != o.desired_fingerprint);
        (o.desired_stopped && !live.stopped && changed).then_some(JobAction::Register {
            enforce_index: live.job_modify_index,
            reason: RegisterReason::Stop,
        })
    }),
    // The desired job is not the one nomarch last wrote (a spec edit that Nomad runs, a new
    // hub): register it, over whatever the live job holds now.
    ("desired job changed", |o| {
        let live = o.live.as_ref()?;
        let written = o.last_written.as_ref()?;
        (written.fingerprint != o.desired_fingerprint).then_some(JobAction::Register {
            enforce_index: live.job_modify_index,
            reason: RegisterReason::SpecChanged,
        })
    }),
    // The job moved since nomarch's write, or no write is on record: only Nomad's plan can
    // say whether its content differs from the desired job.
    ("moved since our write", |o| {
        let live = o.live.as_ref()?;
        let unchanged = o
            .last_written
            .as_ref()
            .is_some_and(|w| w.job_modify_index == live.job_modify_index);
        (!unchanged).then_some(JobAction::VerifyDrift {
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

    fn live(owner: Option<ObjectRef>, index: u64, stopped: bool) -> Option<LiveJob> {
        Some(LiveJob {
            owner,
            job_modify_index: index,
            stopped,
        })
    }

    /// A write on record: at this index, of a job with this fingerprint.
    fn wrote(index: u64, fingerprint: &str) -> Option<Written> {
        Some(Written {
            job_modify_index: index,
            fingerprint: fingerprint.into(),
        })
    }

    /// What was observed, wanting the job with fingerprint "f1".
    fn observe(live: Option<LiveJob>, written: Option<Written>) -> Observation {
        Observation {
            object: web(),
            desired_fingerprint: "f1".into(),
            desired_stopped: false,
            live,
            last_written: written,
            rejected: None,
            rolled_back: None,
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
                observe(None, wrote(7, "f1")),
                Register {
                    enforce_index: 0,
                    reason: RegisterReason::Create,
                },
            ),
            (
                "unmanaged",
                observe(live(None, 5, false), None),
                Refuse {
                    reason: "a job with this ID exists and is not managed by nomarch".into(),
                },
            ),
            (
                "another owner",
                observe(live(Some(other), 5, false), None),
                Refuse {
                    reason: "the job belongs to pub/web".into(),
                },
            ),
            (
                "stopped",
                observe(live(Some(web()), 5, true), wrote(5, "f1")),
                Register {
                    enforce_index: 5,
                    reason: RegisterReason::Stopped,
                },
            ),
            (
                "desired job changed",
                observe(live(Some(web()), 5, false), wrote(5, "f0")),
                Register {
                    enforce_index: 5,
                    reason: RegisterReason::SpecChanged,
                },
            ),
            (
                "desired job changed and the job was edited too",
                observe(live(Some(web()), 9, false), wrote(5, "f0")),
                Register {
                    enforce_index: 9,
                    reason: RegisterReason::SpecChanged,
                },
            ),
            (
                "edited since our write",
                observe(live(Some(web()), 9, false), wrote(5, "f1")),
                VerifyDrift { enforce_index: 9 },
            ),
            (
                "in sync",
                observe(live(Some(web()), 5, false), wrote(5, "f1")),
                Nothing,
            ),
            (
                "status lost: ask Nomad",
                observe(live(Some(web()), 5, false), None),
                VerifyDrift { enforce_index: 5 },
            ),
        ];
        for (name, observation, expected) in cases {
            assert_eq!(plan(&observation), expected, "{name}");
        }
    }

    /// A job Nomad refused is not sent again, whatever else holds; another job is.
    #[test]
    fn a_refused_job_is_held_until_the_desired_job_changes() {
        let mut refused = observe(None, None);
        refused.rejected = Some("f1".into());
        assert_eq!(plan(&refused), JobAction::Hold);
        refused.live = live(Some(web()), 5, true);
        assert_eq!(
            plan(&refused),
            JobAction::Hold,
            "not even to restart a stopped job"
        );
        refused.rejected = Some("f0".into());
        assert_eq!(
            plan(&refused),
            JobAction::Register {
                enforce_index: 5,
                reason: RegisterReason::Stopped
            }
        );
    }

    /// A job Nomad rolled back is not registered again, though the live job moved (Nomad's
    /// revert is a new version); a changed desired job is.
    #[test]
    fn a_rolled_back_job_is_held_until_the_desired_job_changes() {
        let mut reverted = observe(live(Some(web()), 9, false), wrote(5, "f1"));
        assert_eq!(
            plan(&reverted),
            JobAction::VerifyDrift { enforce_index: 9 },
            "without the record, Nomad's revert looks like drift"
        );
        reverted.rolled_back = Some("f1".into());
        assert_eq!(plan(&reverted), JobAction::Hold);
        assert_eq!(deciding_rule(&reverted), "rolled back by Nomad");
        reverted.desired_fingerprint = "f2".into();
        assert_eq!(
            plan(&reverted),
            JobAction::Register {
                enforce_index: 9,
                reason: RegisterReason::SpecChanged
            }
        );
    }

    /// `spec.stopped` turns into a check-and-set register with `Stop`, and clearing it into
    /// a start, each said as what it is; a stopped job stays stopped; one started behind
    /// nomarch's back is drift for Nomad's plan to confirm.
    #[test]
    fn stop_and_start_are_registers_named_for_what_they_are() {
        let mut stopping = observe(live(Some(web()), 5, false), wrote(5, "f0"));
        stopping.desired_stopped = true;
        assert_eq!(
            plan(&stopping),
            JobAction::Register {
                enforce_index: 5,
                reason: RegisterReason::Stop
            }
        );
        let mut stopped = observe(live(Some(web()), 6, true), wrote(6, "f1"));
        stopped.desired_stopped = true;
        assert_eq!(plan(&stopped), JobAction::Nothing, "stays stopped");
        let mut started_elsewhere = observe(live(Some(web()), 7, false), wrote(6, "f1"));
        started_elsewhere.desired_stopped = true;
        assert_eq!(
            plan(&started_elsewhere),
            JobAction::VerifyDrift { enforce_index: 7 }
        );
        let starting = observe(live(Some(web()), 6, true), wrote(6, "f0"));
        assert_eq!(
            plan(&starting),
            JobAction::Register {
                enforce_index: 6,
                reason: RegisterReason::Start
            }
        );
        assert_eq!(deciding_rule(&starting), "start asked");
        let stopped_elsewhere = observe(live(Some(web()), 6, true), wrote(5, "f1"));
        assert_eq!(
            plan(&stopped_elsewhere),
            JobAction::Register {
                enforce_index: 6,
                reason: RegisterReason::Stopped
            }
        );
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
        waiting.live = live(Some(web()), 5, false);
        waiting.last_written = wrote(5, "f1");
        assert_eq!(
            plan(&waiting),
            JobAction::Nothing,
            "a running app is not stopped because a dependency flaps"
        );
    }

    proptest! {
        /// Whatever was observed: a job that is not ours is never written; an in-sync job
        /// (ours, running, at the index and fingerprint nomarch last wrote) is left alone; a
        /// register is check-and-set on the index read; and without a write on record nothing
        /// is registered over an existing job before Nomad's plan has been asked.
        #[test]
        fn never_writes_someone_elses_job(ours in any::<bool>(), same_fingerprint in any::<bool>(), index in 1u64..100, written in proptest::option::of(1u64..100), stopped in any::<bool>(), desired_stopped in any::<bool>()) {
            let owner = ours.then(web);
            let fingerprint = if same_fingerprint { "f1" } else { "f0" };
            let on_record = written.and_then(|w| wrote(w, fingerprint));
            let mut observation = observe(live(owner, index, stopped), on_record.clone());
            observation.desired_stopped = desired_stopped;
            let action = plan(&observation);
            if !ours {
                let refused = matches!(action, JobAction::Refuse { .. });
                prop_assert!(refused);
            }
            // In sync, stopped or running as asked: nothing to do.
            if ours && same_fingerprint && stopped == desired_stopped && written == Some(index) {
                prop_assert_eq!(&action, &JobAction::Nothing);
            }
            if ours && !stopped && !desired_stopped && on_record.is_none() {
                prop_assert_eq!(&action, &JobAction::VerifyDrift { enforce_index: index });
            }
            if let JobAction::Register { enforce_index, .. } = action {
                prop_assert_eq!(enforce_index, index, "registers are check-and-set on what was read");
            }
        }
    }
}
