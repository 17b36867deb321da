//! The part every kind shares: keep one Nomad job equal to its rendered form, through the pure
//! plan, with check-and-set registers, and say what was done.

use crds::{ObjectMeta, ObjectRef, Status};
use reconcilers::fingerprint::fingerprint;
use reconcilers::kind::job::{
    decide, refused, registered, verifies_drift, with_rollback, JobSnapshot, NomadPlan,
};
use reconcilers::kind::JobOutcome;
use reconcilers::meta::owner_of;
use reconcilers::plan::{LiveJob, Observation};
use reconcilers::status::{
    last_written, rejection, rollback, Rejection, Rollback, Written, RETRY_ANNOTATION,
};

use super::execute::say;
use super::ReconcileError;
use crate::clients::nomad_types::Job;
use crate::clients::{ApiError, NomadClient, QueryOptions};
use crate::runtime::context::Context;
use crate::runtime::metrics::KindLabel;
use crate::store::EventType;

/// What keeping the job produced: the job as Nomad now holds it, nomarch's last write, and
/// what it came to (waiting, refused, rolled back) for the kind's `compute`.
pub struct Ensured {
    pub job: Option<Job>,
    pub written: Option<Written>,
    pub outcome: JobOutcome,
}

impl Ensured {
    fn new(job: Option<Job>, written: Option<Written>, outcome: JobOutcome) -> Ensured {
        Ensured {
            job,
            written,
            outcome,
        }
    }

    /// Nothing written: Nomad refused the desired job.
    fn refused(job: Option<Job>, written: Option<Written>, rejection: Rejection) -> Ensured {
        let outcome = JobOutcome {
            rejected: Some(rejection),
            ..JobOutcome::default()
        };
        Ensured::new(job, written, outcome)
    }
}

/// What the plan reads, from the desired job, the live one, the object's status (and its
/// retry annotation) and its dependencies. Shared with `nomarch diff`, so both decide alike.
pub fn observation(
    key: &ObjectRef,
    desired: &Job,
    live: Option<&Job>,
    previous: Option<&Status>,
    retry_token: &str,
    waiting_for: Vec<String>,
) -> Observation {
    Observation {
        object: key.clone(),
        desired_fingerprint: desired_fingerprint(desired),
        desired_stopped: desired.stop.unwrap_or(false),
        live: live.map(|job| LiveJob {
            owner: owner_of(&key.namespace, job.meta.as_ref()),
            job_modify_index: job.job_modify_index.unwrap_or(0),
            stopped: job.stop.unwrap_or(false),
        }),
        last_written: last_written(previous),
        rejected: rejection(previous).map(|r| r.fingerprint),
        rolled_back: rollback(previous)
            .filter(|r| r.retry_token == retry_token)
            .map(|r| r.fingerprint),
        waiting_for,
    }
}

/// The value of the object's retry annotation ("" without one).
pub fn retry_token(meta: &ObjectMeta) -> &str {
    meta.annotations
        .get(RETRY_ANNOTATION)
        .map_or("", String::as_str)
}

/// What the plan compares with nomarch's last write.
pub fn desired_fingerprint(desired: &Job) -> String {
    fingerprint(&serde_json::to_value(desired).expect("jobs serialize"))
}

/// The live job `id` of `key`'s namespace: from the job cache when it is at least as new as
/// nomarch's last write, otherwise read from Nomad (and cached).
pub async fn live_job(
    ctx: &Context,
    key: &ObjectRef,
    id: &str,
    previous: Option<&Status>,
) -> Result<Option<Job>, ReconcileError> {
    let at_least = last_written(previous).map(|w| w.job_modify_index);
    if let Some(cached) = ctx.jobs.get(&key.namespace, id, at_least) {
        return Ok(cached);
    }
    let read = ctx
        .nomad
        .job(&key.namespace, id, QueryOptions::default())
        .await?
        .value;
    ctx.jobs.put(&key.namespace, id, read.clone());
    Ok(read)
}

pub async fn ensure_job(
    ctx: &Context,
    key: &ObjectRef,
    desired: &Job,
    meta: &ObjectMeta,
    previous: Option<&Status>,
    waiting_for: Vec<String>,
) -> Result<Ensured, ReconcileError> {
    ensure_job_keeping(ctx, key, desired, desired, meta, previous, waiting_for).await
}

/// [`ensure_job`] for a job some of whose values another actor owns: `desired` carries them as
/// the live job holds them (a register never reverts them), `decided` as the object says, and
/// only `decided` is fingerprinted, so their changes are not spec changes.
///
/// Observe (the live job; while verifying drift, Nomad's deployments and then its plan) →
/// `reconcilers::kind::job::decide` → say its events, register if it says so.
pub async fn ensure_job_keeping(
    ctx: &Context,
    key: &ObjectRef,
    desired: &Job,
    decided: &Job,
    meta: &ObjectMeta,
    previous: Option<&Status>,
    waiting_for: Vec<String>,
) -> Result<Ensured, ReconcileError> {
    let generation = meta.generation;
    let live = live_job(ctx, key, &desired.id, previous).await?;
    let read = JobRead {
        key,
        desired,
        decided,
        live: live.as_ref(),
        previous,
        retry_token: retry_token(meta),
        generation,
        waiting_for,
    };
    let snapshot = job_snapshot(&ctx.nomad, read).await?;
    let step = decide(&snapshot);
    for event in step.events {
        say(ctx, key, event).await;
    }
    if let Some(reason) = step.refuse {
        return Err(ReconcileError::Refused(reason));
    }
    let Some((enforce_index, reason)) = step.register else {
        return Ok(Ensured::new(live, step.written, step.outcome));
    };
    let response = match ctx.nomad.register(desired, Some(enforce_index)).await {
        Ok(response) => response,
        // Refused for what the job is: not retried (the same job gets the same answer); one
        // Warning, and status says why until the desired job changes.
        Err(e) if e.refuses_the_job() => {
            let (rejection, event) = refused(&snapshot, &snapshot.observation, &nomads_words(&e));
            say(ctx, key, event).await;
            return Ok(Ensured::refused(live, step.written, rejection));
        }
        Err(e) => {
            // A lost check-and-set means the cached job was stale: the retry reads Nomad.
            ctx.jobs.forget(&key.namespace, &desired.id);
            return Err(e.into());
        }
    };
    if reason.is_drift() {
        ctx.metrics
            .drift_corrections
            .get_or_create(&KindLabel {
                kind: key.kind.as_str().into(),
            })
            .inc();
    }
    say(ctx, key, registered(reason, &desired.id, generation)).await;
    // Nomad now holds the desired job at the next version; no need to read it back.
    let mut registered = desired.clone();
    registered.version = Some(live.as_ref().and_then(|j| j.version).map_or(0, |v| v + 1));
    registered.job_modify_index = Some(response.job_modify_index);
    registered.stop = Some(desired.stop.unwrap_or(false));
    let written = Written {
        job_modify_index: response.job_modify_index,
        fingerprint: snapshot.observation.desired_fingerprint.clone(),
    };
    Ok(Ensured::new(
        Some(registered),
        Some(written),
        JobOutcome::default(),
    ))
}

/// What deciding a job starts from: the object, its desired job (and the part nomarch decides
/// whole), the live job, and the object's stored status, retry annotation and generation.
pub struct JobRead<'a> {
    pub key: &'a ObjectRef,
    pub desired: &'a Job,
    pub decided: &'a Job,
    pub live: Option<&'a Job>,
    pub previous: Option<&'a Status>,
    pub retry_token: &'a str,
    pub generation: i64,
    pub waiting_for: Vec<String>,
}

/// Everything `reconcilers::kind::job::decide` reads, for the controller and `nomarch diff`
/// alike: the observation, and, when the job moved since nomarch's write, first whether Nomad
/// rolled that write back (then it is held), otherwise Nomad's plan of the desired job
/// (whether its content differs at all).
pub async fn job_snapshot<'a>(
    nomad: &NomadClient,
    read: JobRead<'a>,
) -> Result<JobSnapshot<'a>, ApiError> {
    let JobRead {
        key,
        desired,
        decided,
        live,
        previous,
        retry_token,
        generation,
        waiting_for,
    } = read;
    let observation = observation(key, decided, live, previous, retry_token, waiting_for);
    let mut snapshot = JobSnapshot {
        observation,
        previous,
        retry_token,
        generation,
        job_id: &desired.id,
        rollback_found: None,
        nomad_plan: None,
    };
    if verifies_drift(&snapshot.observation) {
        snapshot.rollback_found = rolled_back_now(
            nomad,
            key,
            &snapshot.observation,
            previous,
            generation,
            retry_token,
        )
        .await?;
        let counted = with_rollback(&snapshot.observation, snapshot.rollback_found.as_ref());
        if verifies_drift(&counted) {
            snapshot.nomad_plan = Some(match nomad.plan(desired).await {
                Ok(planned) => NomadPlan::Differs(
                    planned
                        .diff
                        .as_ref()
                        .and_then(|d| d.get("Type"))
                        .and_then(|t| t.as_str())
                        != Some("None"),
                ),
                Err(e) if e.refuses_the_job() => NomadPlan::Refused(nomads_words(&e)),
                Err(e) => return Err(e),
            });
        }
    }
    Ok(snapshot)
}

/// Whether Nomad rolled back nomarch's last write: a failed deployment of that very job version
/// (its `JobSpecModifyIndex` is the index the register answered) whose description says Nomad
/// is rolling back (deploymentwatcher `DeploymentStatusDescriptionRollback`). A rollback already
/// on record for this job, with a retry asked for since, does not count again.
async fn rolled_back_now(
    nomad: &NomadClient,
    key: &ObjectRef,
    observation: &Observation,
    previous: Option<&Status>,
    generation: i64,
    retry: &str,
) -> Result<Option<Rollback>, ApiError> {
    let Some(written) = &observation.last_written else {
        return Ok(None);
    };
    let retried = rollback(previous).is_some_and(|r| r.fingerprint == written.fingerprint);
    if retried {
        return Ok(None);
    }
    let id = reconcilers::meta::job_id(key);
    let deployments = nomad.job_deployments(&key.namespace, &id).await?;
    Ok(deployments
        .iter()
        .find(|d| d.job_spec_modify_index == written.job_modify_index && d.rolled_back())
        .map(|d| Rollback {
            fingerprint: written.fingerprint.clone(),
            generation,
            message: d.status_description.clone(),
            retry_token: retry.to_string(),
        }))
}

/// Nomad's own words for a refusal.
fn nomads_words(error: &crate::clients::ApiError) -> String {
    match error {
        crate::clients::ApiError::Server { message, .. }
        | crate::clients::ApiError::BadRequest { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The object is gone: stop its job if nomarch manages it for this object (and it is not
/// protected).
pub async fn deregister_if_ours(ctx: &Context, key: &ObjectRef) -> Result<(), ReconcileError> {
    let id = reconcilers::meta::job_id(key);
    let Some(job) = ctx
        .nomad
        .job(&key.namespace, &id, QueryOptions::default())
        .await?
        .value
    else {
        return Ok(());
    };
    let ours = owner_of(&key.namespace, job.meta.as_ref()).as_ref() == Some(key);
    let protected = job.meta(reconcilers::meta::PROTECT) == Some("true");
    if !ours || job.stop.unwrap_or(false) || protected {
        return Ok(());
    }
    ctx.nomad.deregister(&key.namespace, &id, false).await?;
    ctx.event(
        key,
        EventType::Normal,
        "Deregistered",
        format!("job {id} stopped: the {} was deleted", key.kind),
    )
    .await;
    Ok(())
}
