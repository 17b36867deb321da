//! Keeping one Nomad job, for every kind that has one, pure: from the plan's observation (and,
//! when the job moved since nomarch's write, what verifying that needed) to a [`JobStep`]:
//! the events to say, whether to register and why, nomarch's write as it stands, and what
//! keeping the job came to ([`JobOutcome`]). `controller/src/reconcile/job.rs` observes and
//! registers; the answer to a register is turned into events and records here too.

use crds::Status;

use super::JobOutcome;
use crate::effects::PlannedEvent;
use crate::plan::{plan, JobAction, Observation, RegisterReason};
use crate::status::{rejection, rollback, Rejection, Rollback, Written};

/// What Nomad's plan of the desired job said, read when the job moved since nomarch's write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NomadPlan {
    /// Whether the live job's content differs from the desired job (the diff's `Type` is not
    /// `None`).
    Differs(bool),
    /// Nomad's plan validates as its register does: the job itself is refused, in its words.
    Refused(String),
}

/// Everything the job step reads.
#[derive(Clone, Debug)]
pub struct JobSnapshot<'a> {
    pub observation: Observation,
    pub previous: Option<&'a Status>,
    /// The retry annotation's value ("" without one).
    pub retry_token: &'a str,
    pub generation: i64,
    pub job_id: &'a str,
    /// Nomad rolled nomarch's last write back since (read only while verifying drift).
    pub rollback_found: Option<Rollback>,
    /// Nomad's plan of the desired job (read only while verifying drift, and no rollback was
    /// found).
    pub nomad_plan: Option<NomadPlan>,
}

/// What the job step decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStep {
    /// Said at once, before anything is written.
    pub events: Vec<PlannedEvent>,
    /// Register the desired job, check-and-set on the index, and why.
    pub register: Option<(u64, RegisterReason)>,
    /// nomarch's write as it stands if nothing is registered (one adopted now included).
    pub written: Option<Written>,
    pub outcome: JobOutcome,
    /// A job nomarch must never touch is in the way: the reconcile fails with this, terminal
    /// until the object or the job changes.
    pub refuse: Option<String>,
}

/// The observation the plan decides on once a rollback found while verifying is counted.
pub fn with_rollback(observation: &Observation, found: Option<&Rollback>) -> Observation {
    let mut observation = observation.clone();
    if let Some(found) = found {
        observation.rolled_back = Some(found.fingerprint.clone());
    }
    observation
}

/// Whether deciding needs the verifying reads (deployments, then Nomad's plan).
pub fn verifies_drift(observation: &Observation) -> bool {
    matches!(plan(observation), JobAction::VerifyDrift { .. })
}

pub fn decide(snapshot: &JobSnapshot<'_>) -> JobStep {
    let previous = snapshot.previous;
    let observation = with_rollback(&snapshot.observation, snapshot.rollback_found.as_ref());
    let mut step = JobStep {
        events: Vec::new(),
        register: None,
        written: observation.last_written.clone(),
        outcome: JobOutcome::default(),
        refuse: None,
    };
    // The rollback on record applies while the plan holds it; one found now is said once.
    let mut rolled_back = snapshot
        .observation
        .rolled_back
        .as_ref()
        .and_then(|_| rollback(previous));
    if let Some(found) = &snapshot.rollback_found {
        step.events
            .push(PlannedEvent::warning("RolledBack", found.describe()));
        rolled_back = Some(found.clone());
    }
    match plan(&observation) {
        JobAction::Register {
            enforce_index,
            reason,
        } => step.register = Some((enforce_index, reason)),
        JobAction::VerifyDrift { enforce_index } => match &snapshot.nomad_plan {
            Some(NomadPlan::Refused(message)) => {
                let (rejection, event) = refused(snapshot, &observation, message);
                step.events.push(event);
                step.outcome.rejected = Some(rejection);
            }
            Some(NomadPlan::Differs(differs)) => {
                // Same content: our own write whose record was lost, or an edit that changed
                // nothing Nomad runs. Adopt it; write nothing.
                step.written = Some(Written {
                    job_modify_index: enforce_index,
                    fingerprint: observation.desired_fingerprint.clone(),
                });
                // A rollback on record for this very job, with the retry annotation changed
                // since: the register is that retry, not a drift correction.
                let retried = rollback(previous).is_some_and(|r| {
                    r.fingerprint == observation.desired_fingerprint
                        && r.retry_token != snapshot.retry_token
                });
                let reason = if retried {
                    RegisterReason::Retry
                } else {
                    RegisterReason::Drifted
                };
                step.register = differs.then_some((enforce_index, reason));
            }
            // Not verified (nothing was read): nothing is written on a guess.
            None => {}
        },
        JobAction::Refuse { reason } => {
            step.events
                .push(PlannedEvent::warning("JobConflict", reason.clone()));
            step.refuse = Some(reason);
        }
        JobAction::Wait { reason } => {
            step.events
                .push(PlannedEvent::normal("Waiting", reason.clone()));
            step.outcome.waiting = Some(reason);
        }
        JobAction::Hold => {
            step.outcome.rejected = rejection(previous).filter(|_| rolled_back.is_none());
            step.outcome.rolled_back = rolled_back;
        }
        JobAction::Nothing => {}
    }
    step
}

/// Nomad refused the desired job for what it is (its register or its plan): the refusal to
/// keep in status, so the same job is not sent again, and one Warning with Nomad's words.
pub fn refused(
    snapshot: &JobSnapshot<'_>,
    observation: &Observation,
    message: &str,
) -> (Rejection, PlannedEvent) {
    let event = PlannedEvent::warning(
        "RegisterRefused",
        format!(
            "Nomad refused job {} (generation {}): {message}",
            snapshot.job_id, snapshot.generation
        ),
    );
    let rejection = Rejection {
        fingerprint: observation.desired_fingerprint.clone(),
        message: message.to_string(),
    };
    (rejection, event)
}

/// The event a register is announced with: corrections of someone else's change are
/// `DriftCorrected` Warnings.
pub fn registered(reason: RegisterReason, job_id: &str, generation: i64) -> PlannedEvent {
    let label = match reason {
        RegisterReason::Create => "Registered",
        RegisterReason::SpecChanged => "Updated",
        RegisterReason::Retry => "Retried",
        RegisterReason::Stop => "Stopped",
        RegisterReason::Start => "Started",
        RegisterReason::Stopped | RegisterReason::Drifted => "DriftCorrected",
    };
    let message = format!(
        "job {job_id} registered (generation {generation}): {}",
        reason.describe()
    );
    if reason.is_drift() {
        PlannedEvent::warning(label, message)
    } else {
        PlannedEvent::normal(label, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LiveJob;
    use crds::{Kind, ObjectRef};

    fn object() -> ObjectRef {
        ObjectRef::new(Kind::App, "default", "web")
    }

    /// The desired job `f2`, live at index 20; nomarch last wrote `written` at `at`.
    fn observation(written: Option<(&str, u64)>) -> Observation {
        Observation {
            object: object(),
            desired_fingerprint: "f2".into(),
            desired_stopped: false,
            live: Some(LiveJob {
                owner: Some(object()),
                job_modify_index: 20,
                stopped: false,
            }),
            last_written: written.map(|(fingerprint, index)| Written {
                job_modify_index: index,
                fingerprint: fingerprint.into(),
            }),
            rejected: None,
            rolled_back: None,
            waiting_for: Vec::new(),
        }
    }

    fn snapshot(observation: Observation) -> JobSnapshot<'static> {
        JobSnapshot {
            observation,
            previous: None,
            retry_token: "",
            generation: 4,
            job_id: "web",
            rollback_found: None,
            nomad_plan: None,
        }
    }

    fn found() -> Rollback {
        Rollback {
            fingerprint: "f2".into(),
            generation: 4,
            message: "Deployment failed - rolling back".into(),
            retry_token: String::new(),
        }
    }

    /// (why, rollback found, Nomad's plan) → (register, events, rejected, rolled back)
    type Row = (
        &'static str,
        Option<Rollback>,
        Option<NomadPlan>,
        Option<RegisterReason>,
        Vec<&'static str>,
        bool,
        bool,
    );

    #[test]
    fn each_answer_to_verifying_drift_is_its_own_step() {
        let moved = observation(Some(("f2", 10)));
        assert!(verifies_drift(&moved));
        let table: Vec<Row> = vec![
            (
                "same content: adopted",
                None,
                Some(NomadPlan::Differs(false)),
                None,
                vec![],
                false,
                false,
            ),
            (
                "changed behind our back",
                None,
                Some(NomadPlan::Differs(true)),
                Some(RegisterReason::Drifted),
                vec![],
                false,
                false,
            ),
            (
                "Nomad refuses the job",
                None,
                Some(NomadPlan::Refused("bad".into())),
                None,
                vec!["RegisterRefused"],
                true,
                false,
            ),
            (
                "Nomad rolled our write back",
                Some(found()),
                None,
                None,
                vec!["RolledBack"],
                false,
                true,
            ),
            (
                "nothing read: nothing written",
                None,
                None,
                None,
                vec![],
                false,
                false,
            ),
        ];
        for (why, rollback_found, nomad_plan, register, events, rejected, rolled_back) in table {
            let step = decide(&JobSnapshot {
                rollback_found,
                nomad_plan,
                ..snapshot(moved.clone())
            });
            assert_eq!(step.register.map(|(_, r)| r), register, "{why}");
            assert_eq!(
                step.events.iter().map(|e| e.reason).collect::<Vec<_>>(),
                events,
                "{why}"
            );
            assert_eq!(step.outcome.rejected.is_some(), rejected, "{why}");
            assert_eq!(step.outcome.rolled_back.is_some(), rolled_back, "{why}");
        }
    }

    #[test]
    fn an_adopted_write_is_on_record_at_the_live_index() {
        let step = decide(&JobSnapshot {
            nomad_plan: Some(NomadPlan::Differs(false)),
            ..snapshot(observation(None))
        });
        assert_eq!(
            step.written,
            Some(Written {
                job_modify_index: 20,
                fingerprint: "f2".into()
            })
        );
    }

    #[test]
    fn waiting_refusing_and_registering_say_why() {
        let mut waiting = observation(None);
        waiting.live = None;
        waiting.waiting_for = vec!["db".into()];
        let step = decide(&snapshot(waiting));
        assert_eq!(step.outcome.waiting.as_deref(), Some("waiting for db"));
        assert_eq!(step.events[0].reason, "Waiting");

        let mut foreign = observation(None);
        foreign.live.as_mut().unwrap().owner = None;
        let step = decide(&snapshot(foreign));
        assert!(step.refuse.is_some());
        assert_eq!(step.events[0].reason, "JobConflict");

        let step = decide(&snapshot(observation(Some(("f1", 20)))));
        assert_eq!(step.register, Some((20, RegisterReason::SpecChanged)));
        let said = registered(RegisterReason::SpecChanged, "web", 4);
        assert_eq!((said.reason, said.warning), ("Updated", false));
        let drift = registered(RegisterReason::Drifted, "web", 4);
        assert_eq!((drift.reason, drift.warning), ("DriftCorrected", true));
    }
}
