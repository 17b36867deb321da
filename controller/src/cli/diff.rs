//! `nomarch diff -f PATH`: what applying would change in Nomad, from the same plan the
//! controller runs and Nomad's own plan diff, for Apps, CronJobs and Pubs (a Pub on the hub its
//! status records; placing or moving one is the controller's). Changes nothing.

use std::path::PathBuf;

use crds::{ConditionType, Kind, ObjectRef, Resource, Status};
use reconcilers::hubs::{verdict, HubFacts, HubVerdict};
use reconcilers::meta::job_id;
use reconcilers::plan::{deciding_rule, plan, JobAction};
use reconcilers::render::app::render_app;
use reconcilers::render::cronjob::render_cronjob;
use reconcilers::render::pubs::render_pub;
use serde_json::Value;

use super::connect::NomadArgs;
use super::say;
use super::{CliError, StoreArgs};
use crate::clients::nomad_types::Job;
use crate::clients::{NomadClient, QueryOptions};

/// What a manifest would make its kind register, or why there is nothing to diff.
enum Desired {
    Job {
        job: Box<Job>,
        /// `dependsOn` objects that are not Ready.
        waiting_for: Vec<String>,
    },
    Note(String),
}

pub async fn run(
    store_args: &StoreArgs,
    files: &[PathBuf],
    nomad_args: &NomadArgs,
) -> Result<(), CliError> {
    let manifests = crds::load_paths(files).map_err(CliError::Invalid)?;
    let nomad = nomad_args.client(|_| {})?;
    let store = store_args.connect().await?;
    for manifest in manifests {
        let mut resource = manifest.resource;
        let object = resource.object_ref();
        let stored = store.get(&object).await?;
        // The generation the store would give it.
        resource.metadata_mut().generation = match &stored {
            None => 1,
            Some(current) if current.spec_json() == resource.spec_json() => {
                current.metadata().generation
            }
            Some(current) => current.metadata().generation + 1,
        };
        let previous = stored.as_ref().and_then(|s| s.status());
        let (desired, waiting_for) = match desired(&store, &nomad, &resource, previous).await? {
            Desired::Job { job, waiting_for } => (job, waiting_for),
            Desired::Note(note) => {
                say!("{object}: {note}");
                continue;
            }
        };
        let live = nomad
            .job(&object.namespace, &job_id(&object), QueryOptions::default())
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?
            .value;
        let observation = crate::reconcile::job::observation(
            &object,
            &desired,
            live.as_ref(),
            previous,
            stored
                .as_ref()
                .map_or("", |s| crate::reconcile::job::retry_token(s.metadata())),
            waiting_for,
        );
        let action = plan(&observation);
        let rule = deciding_rule(&observation);
        match action {
            JobAction::Nothing => say!("{object}: no changes"),
            JobAction::Wait { reason } => say!("{object}: would wait ({reason})"),
            JobAction::Hold => {
                say!("{object}: held ({rule}): this job will not be sent again until it changes")
            }
            JobAction::Refuse { reason } => say!("{object}: would not touch the job: {reason}"),
            JobAction::Register { .. } | JobAction::VerifyDrift { .. } => {
                let planned = nomad
                    .plan(&desired)
                    .await
                    .map_err(|e| CliError::Runtime(e.to_string()))?;
                let diff = planned.diff.unwrap_or(Value::Null);
                if diff.get("Type").and_then(Value::as_str) == Some("None") {
                    say!("{object}: no changes to the job ({rule}: only nomarch's bookkeeping would be updated)");
                    continue;
                }
                say!("{object}: would register job {} ({rule})", desired.id);
                for line in describe_diff(&diff) {
                    say!("  {line}");
                }
                for line in describe_updates(planned.annotations.as_ref()) {
                    say!("  {line}");
                }
            }
        }
    }
    Ok(())
}

/// The job each kind would register now, rendered as its reconciler renders it.
async fn desired(
    store: &crate::store::Store,
    nomad: &NomadClient,
    resource: &Resource,
    previous: Option<&Status>,
) -> Result<Desired, CliError> {
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
            Ok(Desired::Job {
                job: decode(render_app(app)),
                waiting_for,
            })
        }
        Resource::CronJob(cron) => Ok(Desired::Job {
            job: decode(render_cronjob(cron)),
            waiting_for: Vec::new(),
        }),
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
) -> Result<Desired, CliError> {
    let nodes = nomad
        .nodes(QueryOptions::default().param("resources", "true"))
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?
        .value;
    let current = crate::reconcile::pubs::hub_of_status(previous);
    let hub = current.as_ref().and_then(|(id, _)| {
        nodes
            .iter()
            .find(|n| &n.id == id)
            .map(|n| crate::runtime::nodes::hub_from(n, None))
    });
    let now = chrono::Utc::now();
    let status = previous.cloned().unwrap_or_default();
    let facts = HubFacts {
        hub_id: current.as_ref().map(|(id, _)| id.as_str()),
        hub: hub.as_ref(),
        unhealthy_since: crate::reconcile::pubs::unhealthy_since(&status, hub.as_ref(), now),
        grace: pub_.spec.reallocation.grace.get(),
        now,
    };
    match (verdict(&facts), hub) {
        (HubVerdict::Stay | HubVerdict::Wait(_), Some(hub)) => Ok(Desired::Job {
            job: Box::new(
                serde_json::from_value(render_pub(pub_, &hub.id, &hub.pool))
                    .expect("rendered jobs decode as jobs"),
            ),
            waiting_for: Vec::new(),
        }),
        (HubVerdict::Move(reason), _) => Ok(Desired::Note(format!(
            "would move off hub {} ({reason}); the controller chooses the new hub",
            current.map(|(_, name)| name).unwrap_or_default()
        ))),
        _ => Ok(Desired::Note(
            "has no hub yet; the controller chooses one, then registers its job".into(),
        )),
    }
}

fn marker(kind: &str) -> &'static str {
    match kind {
        "Added" => "+",
        "Deleted" => "-",
        _ => "~",
    }
}

/// Nomad's diff as lines: `~ TaskGroups[app].Tasks[app].Config[image]: "a" => "b"`.
pub fn describe_diff(diff: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    walk(diff, "", &mut lines);
    lines
}

fn walk(node: &Value, path: &str, lines: &mut Vec<String>) {
    for field in node
        .get("Fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = field["Type"].as_str().unwrap_or("Edited");
        if kind == "None" {
            continue;
        }
        let name = field["Name"].as_str().unwrap_or_default();
        let (old, new) = (
            field["Old"].as_str().unwrap_or_default(),
            field["New"].as_str().unwrap_or_default(),
        );
        let change = match kind {
            "Added" => format!("{new:?}"),
            "Deleted" => format!("{old:?}"),
            _ => format!("{old:?} => {new:?}"),
        };
        lines.push(format!("{} {path}{name}: {change}", marker(kind)));
    }
    for object in node
        .get("Objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = object["Name"].as_str().unwrap_or_default();
        walk(object, &format!("{path}{name}."), lines);
    }
    for (list, label) in [("TaskGroups", "TaskGroups"), ("Tasks", "Tasks")] {
        for child in node
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if child["Type"] == "None" {
                continue;
            }
            let name = child["Name"].as_str().unwrap_or_default();
            walk(child, &format!("{path}{label}[{name}]."), lines);
        }
    }
}

/// `app: 2 to place, 1 destructive update`, from the plan's DesiredTGUpdates.
fn describe_updates(annotations: Option<&Value>) -> Vec<String> {
    let Some(updates) = annotations
        .and_then(|a| a.get("DesiredTGUpdates"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    updates
        .iter()
        .map(|(group, counts)| {
            let parts: Vec<String> = [
                ("Place", "to place"),
                ("Stop", "to stop"),
                ("DestructiveUpdate", "destructive update(s)"),
                ("InPlaceUpdate", "in-place update(s)"),
                ("Canary", "canary(ies)"),
            ]
            .iter()
            .filter_map(|(key, label)| {
                counts
                    .get(*key)
                    .and_then(Value::as_u64)
                    .filter(|n| *n > 0)
                    .map(|n| format!("{n} {label}"))
            })
            .collect();
            let summary = if parts.is_empty() {
                "no allocation changes".to_string()
            } else {
                parts.join(", ")
            };
            format!("group {group}: {summary}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_read_as_paths() {
        let diff = json!({"Type": "Edited", "Fields": null, "Objects": null, "TaskGroups": [{"Type": "Edited", "Name": "app", "Fields": [{"Type": "Edited", "Name": "Count", "Old": "1", "New": "3"}],
            "Tasks": [{"Type": "Edited", "Name": "app", "Fields": null, "Objects": [{"Type": "Edited", "Name": "Config", "Fields": [{"Type": "Edited", "Name": "image", "Old": "a:1", "New": "a:2"}]}]}]}]});
        assert_eq!(
            describe_diff(&diff),
            vec![
                "~ TaskGroups[app].Count: \"1\" => \"3\"",
                "~ TaskGroups[app].Tasks[app].Config.image: \"a:1\" => \"a:2\""
            ]
        );
    }

    #[test]
    fn planned_updates_read_as_counts() {
        let annotations = json!({"DesiredTGUpdates": {
            "app": {"Place": 1, "Stop": 0, "DestructiveUpdate": 0, "InPlaceUpdate": 0, "Canary": 2, "Ignore": 3},
            "db": {"Place": 0, "Stop": 0, "DestructiveUpdate": 0, "InPlaceUpdate": 0, "Canary": 0, "Ignore": 1},
        }});
        assert_eq!(
            describe_updates(Some(&annotations)),
            vec![
                "group app: 1 to place, 2 canary(ies)",
                "group db: no allocation changes"
            ]
        );
    }
}
