//! The part every kind shares: keep one Nomad job equal to its rendered form, through the pure
//! plan, with check-and-set registers, and say what was done.

use crds::{ObjectMeta, ObjectRef, Status};
use reconcilers::fingerprint::fingerprint;
use reconcilers::meta::owner_of;
use reconcilers::plan::{plan, JobAction, LiveJob, Observation, RegisterReason};
use reconcilers::status::{
    last_written, rejection, rollback, Rejection, Rollback, Written, RETRY_ANNOTATION,
};

use super::ReconcileError;
use crate::clients::nomad_types::Job;
use crate::clients::QueryOptions;
use crate::runtime::context::Context;
use crate::runtime::metrics::KindLabel;
use crate::store::EventType;

/// What keeping the job produced: the job as Nomad now holds it, nomarch's last write, and
/// whether to wait (dependencies not Ready).
pub struct Ensured {
    pub job: Option<Job>,
    pub written: Option<Written>,
    pub waiting: Option<String>,
    /// Nomad refused the desired job (now, or before): status shows it as `Invalid`.
    pub rejected: Option<Rejection>,
    /// Nomad rolled the desired job back after its rollout failed (now, or before): status
    /// shows it as `Degraded`, reason `RolledBack`.
    pub rolled_back: Option<Rollback>,
}

impl Ensured {
    /// Nothing written: Nomad refused the desired job.
    fn refused(job: Option<Job>, written: Option<Written>, rejection: Rejection) -> Ensured {
        Ensured {
            job,
            written,
            waiting: None,
            rejected: Some(rejection),
            rolled_back: None,
        }
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
    let retry = retry_token(meta);
    let live = live_job(ctx, key, &desired.id, previous).await?;
    let mut observation = observation(key, decided, live.as_ref(), previous, retry, waiting_for);
    // The job moved since nomarch's write: if Nomad rolled that write back, hold it.
    let mut rolled_back = observation
        .rolled_back
        .as_ref()
        .and_then(|_| rollback(previous));
    if matches!(plan(&observation), JobAction::VerifyDrift { .. }) {
        if let Some(found) =
            rolled_back_now(ctx, key, &observation, previous, generation, retry).await?
        {
            ctx.event(key, EventType::Warning, "RolledBack", found.describe())
                .await;
            observation.rolled_back = Some(found.fingerprint.clone());
            rolled_back = Some(found);
        }
    }
    let written_now = |index: u64| Written {
        job_modify_index: index,
        fingerprint: observation.desired_fingerprint.clone(),
    };
    let mut written = observation.last_written.clone();
    let register = match plan(&observation) {
        JobAction::Register {
            enforce_index,
            reason,
        } => Some((enforce_index, reason)),
        JobAction::VerifyDrift { enforce_index } => {
            let planned = match ctx.nomad.plan(desired).await {
                Ok(planned) => planned,
                // Nomad's plan validates as its register does: the job itself is refused.
                Err(e) if e.refuses_the_job() => {
                    let rejected = refused(ctx, key, desired, generation, &e, &observation).await;
                    return Ok(Ensured::refused(live, written, rejected));
                }
                Err(e) => return Err(e.into()),
            };
            let differs = planned
                .diff
                .as_ref()
                .and_then(|d| d.get("Type"))
                .and_then(|t| t.as_str())
                != Some("None");
            // Same content: our own write whose record was lost, or an edit that changed
            // nothing Nomad runs. Adopt it; write nothing.
            written = Some(written_now(enforce_index));
            // A rollback on record for this very job, with the retry annotation changed since:
            // the register is that retry, not a drift correction.
            let retried = rollback(previous).is_some_and(|r| {
                r.fingerprint == observation.desired_fingerprint && r.retry_token != retry
            });
            let reason = if retried {
                RegisterReason::Retry
            } else {
                RegisterReason::Drifted
            };
            differs.then_some((enforce_index, reason))
        }
        JobAction::Refuse { reason } => {
            ctx.event(key, EventType::Warning, "JobConflict", reason.clone())
                .await;
            return Err(ReconcileError::Refused(reason));
        }
        JobAction::Wait { reason } => {
            ctx.event(key, EventType::Normal, "Waiting", reason.clone())
                .await;
            return Ok(Ensured {
                job: live,
                written,
                waiting: Some(reason),
                rejected: None,
                rolled_back: None,
            });
        }
        JobAction::Hold => {
            return Ok(Ensured {
                job: live,
                written,
                waiting: None,
                rejected: rejection(previous).filter(|_| rolled_back.is_none()),
                rolled_back,
            });
        }
        JobAction::Nothing => None,
    };
    let Some((enforce_index, reason)) = register else {
        return Ok(Ensured {
            job: live,
            written,
            waiting: None,
            rejected: None,
            rolled_back: None,
        });
    };
    let response = match ctx.nomad.register(desired, Some(enforce_index)).await {
        Ok(response) => response,
        // Refused for what the job is: not retried (the same job gets the same answer); one
        // Warning, and status says why until the desired job changes.
        Err(e) if e.refuses_the_job() => {
            let rejected = refused(ctx, key, desired, generation, &e, &observation).await;
            return Ok(Ensured::refused(live, written, rejected));
        }
        Err(e) => {
            // A lost check-and-set means the cached job was stale: the retry reads Nomad.
            ctx.jobs.forget(&key.namespace, &desired.id);
            return Err(e.into());
        }
    };
    announce(ctx, key, reason, &desired.id, generation).await;
    // Nomad now holds the desired job at the next version; no need to read it back.
    let mut registered = desired.clone();
    registered.version = Some(live.as_ref().and_then(|j| j.version).map_or(0, |v| v + 1));
    registered.job_modify_index = Some(response.job_modify_index);
    registered.stop = Some(desired.stop.unwrap_or(false));
    Ok(Ensured {
        job: Some(registered),
        written: Some(written_now(response.job_modify_index)),
        waiting: None,
        rejected: None,
        rolled_back: None,
    })
}

/// Whether Nomad rolled back nomarch's last write: a failed deployment of that very job version
/// (its `JobSpecModifyIndex` is the index the register answered) whose description says Nomad
/// is rolling back (deploymentwatcher `DeploymentStatusDescriptionRollback`). A rollback already
/// on record for this job, with a retry asked for since, does not count again.
async fn rolled_back_now(
    ctx: &Context,
    key: &ObjectRef,
    observation: &Observation,
    previous: Option<&Status>,
    generation: i64,
    retry: &str,
) -> Result<Option<Rollback>, ReconcileError> {
    let Some(written) = &observation.last_written else {
        return Ok(None);
    };
    let retried = rollback(previous).is_some_and(|r| r.fingerprint == written.fingerprint);
    if retried {
        return Ok(None);
    }
    let id = reconcilers::meta::job_id(key);
    let deployments = ctx.nomad.job_deployments(&key.namespace, &id).await?;
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

/// Nomad refused the desired job for what it is: one Warning with Nomad's words, and the
/// refusal to keep in status, so the same job is not sent again.
async fn refused(
    ctx: &Context,
    key: &ObjectRef,
    desired: &Job,
    generation: i64,
    error: &crate::clients::ApiError,
    observation: &Observation,
) -> Rejection {
    let message = match error {
        crate::clients::ApiError::Server { message, .. }
        | crate::clients::ApiError::BadRequest { message, .. } => message.clone(),
        other => other.to_string(),
    };
    ctx.event(
        key,
        EventType::Warning,
        "RegisterRefused",
        format!(
            "Nomad refused job {} (generation {generation}): {message}",
            desired.id
        ),
    )
    .await;
    Rejection {
        fingerprint: observation.desired_fingerprint.clone(),
        message,
    }
}

async fn announce(
    ctx: &Context,
    key: &ObjectRef,
    reason: RegisterReason,
    job: &str,
    generation: i64,
) {
    let (type_, label) = match reason {
        RegisterReason::Create => (EventType::Normal, "Registered"),
        RegisterReason::SpecChanged => (EventType::Normal, "Updated"),
        RegisterReason::Retry => (EventType::Normal, "Retried"),
        RegisterReason::Stop => (EventType::Normal, "Stopped"),
        RegisterReason::Start => (EventType::Normal, "Started"),
        RegisterReason::Stopped | RegisterReason::Drifted => (EventType::Warning, "DriftCorrected"),
    };
    if reason.is_drift() {
        ctx.metrics
            .drift_corrections
            .get_or_create(&KindLabel {
                kind: key.kind.as_str().into(),
            })
            .inc();
    }
    ctx.event(
        key,
        type_,
        label,
        format!(
            "job {job} registered (generation {generation}): {}",
            reason.describe()
        ),
    )
    .await;
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

/// Writes a status only when it changed (the store never sees a no-op write).
pub async fn save_status(
    ctx: &Context,
    key: &ObjectRef,
    previous: Option<&Status>,
    status: &Status,
) -> Result<(), ReconcileError> {
    if previous == Some(status) {
        return Ok(());
    }
    match ctx.store.put_status(key, status).await {
        // The next run of this key (never concurrent with this one) must see this status,
        // even before the watch delivers it.
        Ok(revision) => {
            ctx.cache.put_status(key.clone(), status.clone(), revision);
            Ok(())
        }
        Err(crate::store::StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
