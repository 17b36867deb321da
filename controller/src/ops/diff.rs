//! What an object would change in Nomad, from the same plan the controller runs and Nomad's
//! own plan diff, for every kind: the job is the one its driver would register
//! (`reconcile/driver.rs`; a Pub on the hub its status records, placing or moving one is the
//! controller's): `nomarch diff -f` for manifests, the API and the
//! dashboard for stored objects (what the controller would do now). Changes nothing.

use crds::Resource;
use reconcilers::kind::job::{decide, with_rollback};
use reconcilers::kind::JobOutcome;
use reconcilers::meta::job_id;
use reconcilers::plan::{deciding_rule, plan, JobAction};
use serde_json::Value;

use super::plan_text;
use crate::clients::{NomadClient, QueryOptions};
pub use crate::reconcile::driver::DiffError;
use crate::reconcile::driver::{Desired, DiffLook};
use crate::reconcile::driver_of;
use crate::reconcile::job::{job_snapshot, retry_token, JobRead};
use crate::store::Store;

/// One object's answer, as `-o json` prints it: the full plan Nomad answered, for scripts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Planned {
    pub object: String,
    /// The rule of nomarch's plan that decided (`create`, `desired job changed`, ...).
    pub rule: &'static str,
    /// Whether applying would write the job to Nomad.
    pub changes: bool,
    /// What nomarch would do instead of writing, when it would not; with a plan, the plan's
    /// lines as `nomad job plan` prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
}

impl Planned {
    /// The answer as people read it.
    pub fn text(&self) -> String {
        match (&self.plan, &self.note) {
            // The plan's own lines begin with the object.
            (Some(_), Some(lines)) => lines.clone(),
            (None, Some(note)) => format!("{}: {note}", self.object),
            (_, None) => format!("{}: no changes", self.object),
        }
    }
}

/// What `resource` (as a manifest says it, or as stored) would change in Nomad now. `stored`
/// is the object as etcd holds it, if it does.
pub async fn diff(
    store: &Store,
    nomad: &NomadClient,
    mut resource: Resource,
    stored: Option<&Resource>,
) -> Result<Planned, DiffError> {
    let object = resource.object_ref();
    // The generation the store would give it.
    resource.metadata_mut().generation = match stored {
        None => 1,
        Some(current) if current.spec_json() == resource.spec_json() => {
            current.metadata().generation
        }
        Some(current) => current.metadata().generation + 1,
    };
    let previous = stored.and_then(|s| s.status());
    let look = DiffLook {
        store,
        nomad,
        resource: &resource,
        previous,
    };
    let (desired, decided, waiting_for) = match driver_of(object.kind).desired(look).await? {
        Desired::Job {
            job,
            decided,
            waiting_for,
        } => (job, decided, waiting_for),
        Desired::Note(note) => {
            return Ok(Planned {
                object: object.to_string(),
                rule: "not diffed",
                changes: false,
                note: Some(note),
                plan: None,
            })
        }
    };
    let live = nomad
        .job(&object.namespace, &job_id(&object), QueryOptions::default())
        .await?
        .value;
    // What the controller's job step reads, read the same way, and its own decision.
    let read = JobRead {
        key: &object,
        desired: &desired,
        decided: &decided,
        live: live.as_ref(),
        previous,
        retry_token: stored.map_or("", |s| retry_token(s.metadata())),
        generation: resource.metadata().generation,
        waiting_for,
    };
    let snapshot = job_snapshot(nomad, read).await?;
    let step = decide(&snapshot);
    let counted = with_rollback(&snapshot.observation, snapshot.rollback_found.as_ref());
    let rule = deciding_rule(&counted);
    let note = match (plan(&counted), step.register, step.outcome) {
        (JobAction::Wait { reason }, ..) => Some(format!("would wait ({reason})")),
        (JobAction::Hold, ..) => Some(format!(
            "held ({rule}): this job will not be sent again until it changes"
        )),
        (JobAction::Refuse { reason }, ..) => Some(format!("would not touch the job: {reason}")),
        // The job moved since nomarch's write and Nomad's plan refuses the desired job (a
        // rollback found is held above): refused, as the controller would record it.
        (
            _,
            None,
            JobOutcome {
                rejected: Some(refusal),
                ..
            },
        ) => Some(format!("Nomad refuses the job: {}", refusal.message)),
        // The job moved, but Nomad runs the same content: adopted, nothing is written.
        (JobAction::VerifyDrift { .. }, None, _) => Some(format!(
            "no changes to the job ({rule}: only nomarch's bookkeeping would be updated)"
        )),
        (JobAction::Nothing | JobAction::Register { .. }, None, _) => None,
        (_, Some(_), _) => {
            let planned = nomad.plan(&desired).await?;
            let changes = plan_text::changes(&planned);
            let mut lines = Vec::new();
            if changes {
                lines.push(format!(
                    "{object}: would register job {} ({rule})",
                    desired.id
                ));
                lines.extend(plan_text::diff_lines(
                    planned.diff.as_ref().unwrap_or(&Value::Null),
                    &desired,
                ));
                lines.push(String::new());
                lines.push("Scheduler dry-run:".into());
                lines.extend(plan_text::dry_run_lines(&planned));
            } else {
                lines.push(format!("{object}: no changes to the job ({rule}: only nomarch's bookkeeping would be updated)"));
            }
            return Ok(Planned {
                object: object.to_string(),
                rule,
                changes,
                note: Some(lines.join("\n")),
                plan: Some(serde_json::to_value(&planned).expect("plans serialize")),
            });
        }
    };
    Ok(Planned {
        object: object.to_string(),
        rule,
        changes: false,
        note,
        plan: None,
    })
}
