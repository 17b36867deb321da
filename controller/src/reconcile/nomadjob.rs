//! The NomadJob reconciler: keep a job people wrote themselves (Nomad's JSON, or HCL that the
//! cluster's own `/v1/jobs/parse` reads) registered as written, with nomarch's meta, and
//! report it as the other workload kinds do. What another actor owns (an autoscaled count, the
//! paths in `spec.ignoreDifferences`) is taken from the live job, never reverted
//! (`reconcilers::kind::nomadjob`).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use crds::{NomadJob, ObjectRef, Resource};
use reconcilers::kind::nomadjob::render_nomadjob;
use reconcilers::kind::nomadjob::{compute, workload_spec, NomadJobSnapshot};
use serde_json::Value;

use super::driver::{Desired, DiffError, DiffLook, Driver};
use super::execute::execute;
use super::heal::HealState;
use super::job::{deregister_if_ours, desired_fingerprint, ensure_job_keeping, live_job};
use super::workload::observe;
use super::{AllKinds, ReconcileError};
use crate::clients::nomad_types::Job;
use crate::clients::{ApiError, NomadClient, QueryOptions};
use crate::runtime::context::Context;
use crate::runtime::queue::Outcome;
use futures::future::BoxFuture;
use reconcilers::meta::job_id;

/// Nomad's answer to one HCL text: the API job, or why Nomad cannot read it.
type Parsed = Result<Value, String>;

/// What NomadJobs keep across reconciles: per object, Nomad's parse of its HCL and the text it
/// was for, so a steady job costs no parse request.
#[derive(Default)]
pub struct NomadJobState {
    parsed: Mutex<HashMap<ObjectRef, (String, Parsed)>>,
}

impl NomadJobState {
    fn cached(&self, key: &ObjectRef, text: &str) -> Option<Parsed> {
        let parsed = self.parsed.lock().expect("parse cache lock");
        parsed
            .get(key)
            .filter(|(seen, _)| seen == text)
            .map(|(_, result)| result.clone())
    }

    fn remember(&self, key: &ObjectRef, text: &str, result: Parsed) {
        let mut parsed = self.parsed.lock().expect("parse cache lock");
        parsed.insert(key.clone(), (text.to_string(), result));
    }

    fn forget(&self, key: &ObjectRef) {
        self.parsed.lock().expect("parse cache lock").remove(key);
    }
}

/// The API job the object holds: its JSON, or Nomad's parse of its HCL. `Err` is why Nomad
/// cannot read it (not retried until the text changes); a transient failure is the caller's.
pub async fn source_job(
    ctx: &Context,
    state: &NomadJobState,
    object: &NomadJob,
) -> Result<Parsed, ReconcileError> {
    if let Some(job) = &object.spec.job {
        return Ok(Ok(Value::Object(job.clone())));
    }
    let hcl = object.spec.hcl.as_deref().unwrap_or_default();
    let key = object.object_ref();
    if let Some(known) = state.cached(&key, hcl) {
        return Ok(known);
    }
    let parsed = match ctx.nomad.parse_hcl(&key.namespace, hcl).await {
        Ok(job) => Ok(job),
        Err(ApiError::BadRequest { message, .. }) => Err(message),
        Err(e) => return Err(e.into()),
    };
    state.remember(&key, hcl, parsed.clone());
    Ok(parsed)
}

pub async fn reconcile(
    ctx: &Context,
    state: &NomadJobState,
    heal: &HealState,
    key: &ObjectRef,
) -> Result<Outcome, ReconcileError> {
    let Some(Resource::NomadJob(object)) = ctx.cache.get(key) else {
        state.forget(key);
        deregister_if_ours(ctx, key).await?;
        return Ok(Outcome::Done);
    };
    let previous = object.status.clone();
    let source = match source_job(ctx, state, &object).await? {
        Ok(source) => source,
        Err(message) => return unreadable(ctx, heal, &object, message).await,
    };
    let as_job = |value: Value| -> Result<Job, ReconcileError> {
        serde_json::from_value(value)
            .map_err(|e| ReconcileError::Refused(format!("the job is not a Nomad job: {e}")))
    };
    let id = reconcilers::meta::job_id(key);
    let rendered = match render_nomadjob(&object, &source, None) {
        Ok(rendered) => rendered,
        Err(problem) => return unreadable(ctx, heal, &object, problem.to_string()).await,
    };
    // Values another actor owns come from the whole live job (the job cache keeps jobs slim),
    // read only when it matters: the job moved since nomarch's write, or nomarch will write.
    let decided_fingerprint = desired_fingerprint(&as_job(rendered.decided.clone())?);
    let rendered = match live_job(ctx, key, &id, previous.as_ref()).await? {
        Some(live) if others_own_values(&rendered.decided, &object) => {
            let settled = reconcilers::status::last_written(previous.as_ref()).is_some_and(|w| {
                w.job_modify_index == live.job_modify_index.unwrap_or(0)
                    && w.fingerprint == decided_fingerprint
            });
            if settled {
                rendered
            } else {
                let whole = ctx
                    .nomad
                    .job(&key.namespace, &id, crate::clients::QueryOptions::default())
                    .await?
                    .value
                    .map(|j| serde_json::to_value(j).expect("jobs serialize"));
                render_nomadjob(&object, &source, whole.as_ref())
                    .expect("the same job rendered a moment ago")
            }
        }
        _ => rendered,
    };
    let desired = as_job(rendered.job)?;
    let decided = as_job(rendered.decided)?;
    let ensured = ensure_job_keeping(
        ctx,
        key,
        &desired,
        &decided,
        &object.metadata,
        previous.as_ref(),
        Vec::new(),
    )
    .await?;
    let desired_json = serde_json::to_value(&desired).expect("jobs serialize");
    let stored = previous.as_ref();
    let spec = workload_spec(&object, key, &desired_json);
    let workload = observe(ctx, spec, ensured.job.as_ref(), ensured.written, stored).await?;
    let effects = compute(&NomadJobSnapshot {
        object: &object,
        job: &ensured.outcome,
        workload,
    });
    execute(ctx, heal, key, stored, effects).await
}

/// Whether some of the job's values are another actor's: paths the object ignores, or a group
/// the autoscaler sizes.
fn others_own_values(decided: &Value, object: &NomadJob) -> bool {
    let autoscaled = decided
        .get("TaskGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|g| g.get("Scaling").is_some_and(Value::is_object));
    autoscaled || !object.spec.ignore_differences.is_empty()
}

/// A job that cannot be this object's: `reconcilers::kind::nomadjob::unreadable` decides.
async fn unreadable(
    ctx: &Context,
    heal: &HealState,
    object: &NomadJob,
    message: String,
) -> Result<Outcome, ReconcileError> {
    let effects = reconcilers::kind::nomadjob::unreadable(object, message, Utc::now());
    execute(
        ctx,
        heal,
        &object.object_ref(),
        object.status.as_ref(),
        effects,
    )
    .await
}

/// Why manifests cannot be written: what Nomad says of their jobs (each at its place in the
/// file), or Nomad could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{} problem(s) in NomadJob manifests", .0.len())]
    Invalid(Vec<crds::ManifestError>),
    #[error("a NomadJob's job is checked by Nomad before anything is written: {0}")]
    Nomad(#[from] ApiError),
}

/// Asks Nomad about every NomadJob among `manifests` before anything is written (`nomarch
/// apply`, a git sync): its HCL parsed (`/v1/jobs/parse`, the diagnostics' line and column
/// mapped into the manifest), the job it makes this object's, and Nomad's validation of it
/// (`/v1/validate/job`). Other kinds cost nothing.
pub async fn check_manifests(
    nomad: &crate::clients::NomadClient,
    manifests: &[crds::Manifest],
) -> Result<(), CheckError> {
    let mut problems = Vec::new();
    for manifest in manifests {
        let Resource::NomadJob(object) = &manifest.resource else {
            continue;
        };
        let source = match (&object.spec.job, &object.spec.hcl) {
            (Some(job), _) => Value::Object(job.clone()),
            (None, Some(hcl)) => match nomad.parse_hcl(&object.metadata.namespace, hcl).await {
                Ok(job) => job,
                Err(ApiError::BadRequest { message, .. }) => {
                    problems.push(manifest.job_error(hcl_position(&message), message));
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
            (None, None) => continue,
        };
        let rendered = match render_nomadjob(object, &source, None) {
            Ok(rendered) => rendered,
            Err(problem) => {
                problems.push(manifest.job_error(None, problem.to_string()));
                continue;
            }
        };
        for refusal in nomad.validate_job(&rendered.job).await? {
            problems.push(manifest.job_error(None, format!("Nomad refuses the job: {refusal}")));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CheckError::Invalid(problems))
    }
}

/// The first `input.hcl:LINE,COL` in what Nomad said of a jobspec.
fn hcl_position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("input.hcl:")? + "input.hcl:".len()..];
    let (line, rest) = rest.split_once(',')?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, col.parse().ok()?))
}

/// A NomadJob's job as its reconciler renders it: its JSON, or Nomad's parse of its HCL, with
/// the live job's values where another actor owns them.
async fn desired_job(nomad: &NomadClient, object: &NomadJob) -> Result<Desired, DiffError> {
    let key = object.object_ref();
    let source = match (&object.spec.job, &object.spec.hcl) {
        (Some(job), _) => Value::Object(job.clone()),
        (None, Some(hcl)) => match nomad.parse_hcl(&key.namespace, hcl).await {
            Ok(job) => job,
            Err(crate::clients::ApiError::BadRequest { message, .. }) => {
                return Ok(Desired::Note(format!(
                    "Nomad cannot read spec.hcl: {message}"
                )))
            }
            Err(e) => return Err(e.into()),
        },
        (None, None) => return Ok(Desired::Note("holds no job".into())),
    };
    let live = nomad
        .job(&key.namespace, &job_id(&key), QueryOptions::default())
        .await?
        .value
        .map(|j| serde_json::to_value(j).expect("jobs serialize"));
    let rendered = match render_nomadjob(object, &source, live.as_ref()) {
        Ok(rendered) => rendered,
        Err(problem) => return Ok(Desired::Note(problem.to_string())),
    };
    let decode = |value: Value| -> Result<Box<Job>, DiffError> {
        serde_json::from_value(value)
            .map(Box::new)
            .map_err(|e| DiffError::NotAJob(e.to_string()))
    };
    Ok(Desired::Job {
        job: decode(rendered.job)?,
        decided: decode(rendered.decided)?,
        waiting_for: Vec::new(),
    })
}

/// The NomadJob's driver: the job people wrote, kept registered.
pub struct NomadJobs;

impl Driver for NomadJobs {
    fn reconcile<'a>(
        &'a self,
        ctx: &'a Context,
        kinds: &'a AllKinds,
        key: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Outcome, ReconcileError>> {
        Box::pin(reconcile(ctx, &kinds.nomad_jobs, &kinds.heal, key))
    }

    fn desired<'a>(&'a self, look: DiffLook<'a>) -> BoxFuture<'a, Result<Desired, DiffError>> {
        Box::pin(async move {
            let object = look.object::<crds::NomadJobSpec>();
            desired_job(look.nomad, object).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nomads_diagnostics_say_where_in_the_hcl() {
        let said = "Failed to parse job: input.hcl:3,5-9: Unsupported argument; An argument named \"cont\" is not expected here.";
        assert_eq!(hcl_position(said), Some((3, 5)));
        assert_eq!(hcl_position("Job spec is empty"), None);
        assert_eq!(hcl_position("input.hcl:x,1"), None);
    }

    #[test]
    fn an_error_inside_block_hcl_points_at_its_line_in_the_manifest() {
        let yaml = "apiVersion: nomarch.io/v1alpha1\nkind: NomadJob\nmetadata:\n  name: web\nspec:\n  hcl: |\n    job \"web\" {\n      group \"web\" {\n        cont = 1\n      }\n    }\n";
        let manifest = crds::parse_str("web.yaml", yaml).unwrap().remove(0);
        let error = manifest.job_error(Some((3, 5)), "Unsupported argument".into());
        assert_eq!(
            (error.line, error.col, error.field.as_str()),
            (9, 9, "spec.hcl"),
            "HCL line 3 column 5 is the file's line 9, past the block's indentation"
        );
        let elsewhere = manifest.job_error(None, "Nomad refuses the job".into());
        assert_eq!(
            (elsewhere.line, elsewhere.col),
            (6, 3),
            "at the field's key"
        );
    }
}
