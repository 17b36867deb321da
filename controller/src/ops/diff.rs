//! What an object would change in Nomad, from the same plan the controller runs and Nomad's
//! own plan diff, for Apps, CronJobs, NomadJobs and Pubs (a Pub on the hub its status records;
//! placing or moving one is the controller's): `nomarch diff -f` for manifests, the API and the
//! dashboard for stored objects (what the controller would do now). Changes nothing.

use crds::{ConditionType, Kind, ObjectRef, Resource, Status};
use reconcilers::kind::pubs::{hub_step, HubAction, HubSnapshot};
use reconcilers::meta::job_id;
use reconcilers::plan::{deciding_rule, plan, JobAction};
use reconcilers::render::app::render_app;
use reconcilers::render::cronjob::render_cronjob;
use reconcilers::render::pubs::render_pub;
use serde_json::Value;

use super::plan_text;
use crate::clients::nomad_types::Job;
use crate::clients::{ApiError, NomadClient, QueryOptions};
use crate::store::{Store, StoreError};

/// Why an object could not be diffed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("Nomad: {0}")]
    Nomad(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What Nomad answered is not a job.
    #[error("the job is not a Nomad job: {0}")]
    NotAJob(String),
}

/// What a manifest would make its kind register, or why there is nothing to diff.
enum Desired {
    Job {
        job: Box<Job>,
        /// The job without what other actors own (a NomadJob's autoscaled counts and ignored
        /// paths), which the plan fingerprints; the same job for the other kinds.
        decided: Box<Job>,
        /// `dependsOn` objects that are not Ready.
        waiting_for: Vec<String>,
    },
    Note(String),
}

impl Desired {
    /// A job nomarch decides whole.
    fn job(job: Box<Job>, waiting_for: Vec<String>) -> Desired {
        Desired::Job {
            decided: job.clone(),
            job,
            waiting_for,
        }
    }
}

/// A NomadJob's job as its reconciler renders it: its JSON, or Nomad's parse of its HCL, with
/// the live job's values where another actor owns them.
async fn nomadjob_job(nomad: &NomadClient, object: &crds::NomadJob) -> Result<Desired, DiffError> {
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
    let rendered =
        match reconcilers::render::nomadjob::render_nomadjob(object, &source, live.as_ref()) {
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
    let (desired, decided, waiting_for) = match desired(store, nomad, &resource, previous).await? {
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
    let observation = crate::reconcile::job::observation(
        &object,
        &decided,
        live.as_ref(),
        previous,
        stored.map_or("", |s| crate::reconcile::job::retry_token(s.metadata())),
        waiting_for,
    );
    let action = plan(&observation);
    let rule = deciding_rule(&observation);
    let note = match action {
        JobAction::Nothing => None,
        JobAction::Wait { reason } => Some(format!("would wait ({reason})")),
        JobAction::Hold => Some(format!(
            "held ({rule}): this job will not be sent again until it changes"
        )),
        JobAction::Refuse { reason } => Some(format!("would not touch the job: {reason}")),
        JobAction::Register { .. } | JobAction::VerifyDrift { .. } => {
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

/// The job each kind would register now, rendered as its reconciler renders it.
async fn desired(
    store: &Store,
    nomad: &NomadClient,
    resource: &Resource,
    previous: Option<&Status>,
) -> Result<Desired, DiffError> {
    let decode = |rendered: Value| -> Box<Job> {
        Box::new(serde_json::from_value(rendered).expect("rendered jobs decode as jobs"))
    };
    match resource {
        Resource::App(app) => {
            let mut waiting_for = Vec::new();
            for dep in &app.spec.depends_on {
                let dep_ref = ObjectRef::new(Kind::App, &app.metadata.namespace, dep.as_str());
                let ready = store
                    .get(&dep_ref)
                    .await?
                    .and_then(|r| r.status().map(|s| s.is_true(ConditionType::Ready)))
                    .unwrap_or(false);
                if !ready {
                    waiting_for.push(dep.clone());
                }
            }
            Ok(Desired::job(decode(render_app(app)), waiting_for))
        }
        Resource::CronJob(cron) => Ok(Desired::job(decode(render_cronjob(cron)), Vec::new())),
        Resource::NomadJob(object) => nomadjob_job(nomad, object).await,
        Resource::Pub(pub_) => pub_job(nomad, pub_, previous).await,
        Resource::GitSource(_) => Ok(Desired::Note(
            "registers no Nomad job (`nomarch get gitsource -o wide` shows its last sync)".into(),
        )),
    }
}

/// A pub's job is pinned to its hub: the one its status records, unless the hub rules
/// (`reconcilers::hubs::verdict`, as the reconciler applies them) would place or move it,
/// which only the controller does (it weighs every other pub's claim on each hub).
async fn pub_job(
    nomad: &NomadClient,
    pub_: &crds::kinds::Pub,
    previous: Option<&Status>,
) -> Result<Desired, DiffError> {
    let nodes = nomad
        .nodes(QueryOptions::default().param("resources", "true"))
        .await?
        .value;
    let hubs: Vec<_> = nodes
        .iter()
        .map(|n| crate::runtime::nodes::hub_from(n, None))
        .collect();
    // The controller's own hub step, without a move someone asked for (those are the
    // controller's to weigh against every other pub's claim).
    let step = hub_step(&HubSnapshot {
        pub_,
        status: previous,
        hubs: &hubs,
        asked: None,
        assigned: &Default::default(),
        rebalance_due: None,
        now: chrono::Utc::now(),
    });
    let recorded = step.status.hub.hub.as_ref();
    let hub = recorded.and_then(|r| hubs.iter().find(|h| h.id == r.id));
    match (step.action, hub) {
        (HubAction::Keep, Some(hub)) => Ok(Desired::job(
            Box::new(
                serde_json::from_value(render_pub(pub_, &hub.id, &hub.pool))
                    .expect("rendered jobs decode as jobs"),
            ),
            Vec::new(),
        )),
        (
            HubAction::Choose {
                moving: Some(m), ..
            },
            _,
        ) => Ok(Desired::Note(format!(
            "would move off hub {} ({}); the controller chooses the new hub",
            m.from_name, m.reason
        ))),
        _ => Ok(Desired::Note(
            "has no hub yet; the controller chooses one, then registers its job".into(),
        )),
    }
}
