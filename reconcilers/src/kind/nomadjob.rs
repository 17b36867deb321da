//! A NomadJob's decisions besides its job: the workload's look (nothing is healed: the job's
//! own `check_restart` does what its authors asked), Nomad's refusal or rollback on record,
//! `Ready` said once, and when to look again; and a job that cannot be this object's at all.
//!
//! A NomadJob as the job nomarch registers: the job people wrote (Nomad's JSON, or what Nomad
//! parsed their HCL into), named after the object, in its namespace, with nomarch's meta; and,
//! once a job is live, the values other actors own (an autoscaled group's `Count`, the paths
//! in `spec.ignoreDifferences`) taken from the live job instead of reverted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crds::{NomadJob, ObjectRef, Resource};
use serde_json::{json, Map, Value};

use super::{look_and_record, settled, JobOutcome};
use crate::effects::{Effects, PlannedEvent, Requeue};
use crate::fingerprint::fingerprint;
use crate::meta::{job_id, job_meta};
use crate::render::stop_if_stopped;
use crate::status::{record_rejection, rejection, Rejection};
use crate::workload::{WorkloadSnapshot, WorkloadSpec};

/// What nomarch registers, and what it decides itself: `decided` leaves out what another actor
/// owns, so its fingerprint moves only when the object does (an autoscaler's change is not a
/// spec change), while `job` carries the live values so a register never reverts them.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedNomadJob {
    pub job: Value,
    pub decided: Value,
}

/// Why the job people wrote cannot be registered as this object's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NomadJobProblem {
    #[error("the job is {found:?}; a NomadJob's job ID is its name ({name:?}): rename one")]
    OtherId { found: String, name: String },
    #[error(
        "the job says namespace {found:?}; it lives in the object's namespace ({namespace:?})"
    )]
    OtherNamespace { found: String, namespace: String },
}

/// The job to register for `object`, from the API job it holds or Nomad parsed (`source`), and
/// the live job when there is one.
pub fn render_nomadjob(
    object: &NomadJob,
    source: &Value,
    live: Option<&Value>,
) -> Result<RenderedNomadJob, NomadJobProblem> {
    let object_ref = object.object_ref();
    let mut job = without_nulls(source.clone());
    let id = job_id(&object_ref);
    if let Some(found) = job.get("ID").and_then(Value::as_str) {
        if found != id {
            return Err(NomadJobProblem::OtherId {
                found: found.to_string(),
                name: id,
            });
        }
    }
    if let Some(found) = job.get("Namespace").and_then(Value::as_str) {
        if found != object_ref.namespace {
            return Err(NomadJobProblem::OtherNamespace {
                found: found.to_string(),
                namespace: object_ref.namespace.clone(),
            });
        }
    }
    job["ID"] = json!(id);
    if job.get("Name").is_none() {
        job["Name"] = json!(object_ref.name);
    }
    job["Namespace"] = json!(object_ref.namespace);
    let mut meta = job
        .get("Meta")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, value) in job_meta(&Resource::NomadJob(object.clone())) {
        meta.insert(key, json!(value));
    }
    job["Meta"] = Value::Object(meta);
    stop_if_stopped(&mut job, object.spec.stopped);
    let decided = job.clone();
    if let Some(live) = live {
        keep_autoscaled_counts(&mut job, live);
        for pointer in &object.spec.ignore_differences {
            keep_live_value(&mut job, live, pointer);
        }
    }
    Ok(RenderedNomadJob { job, decided })
}

/// The instances that must run for the job to be Ready: for a service job the sum of its
/// groups' counts (Nomad's default is 1). Batch and sysbatch runs end, and a system job runs
/// one per eligible node, so none of them has a number that must keep running: 0, and such a
/// job is Ready once registered.
pub fn desired_instances(job: &Value) -> u32 {
    if job.get("Type").and_then(Value::as_str).unwrap_or("service") != "service" {
        return 0;
    }
    groups(job)
        .map(|g| g.get("Count").and_then(Value::as_u64).unwrap_or(1) as u32)
        .sum()
}

/// Whether Nomad makes deployments for the job: a service job whose groups update through an
/// update block (scheduler `reconciler.go` only creates a deployment for one with
/// `MaxParallel` above zero; the job's block fills each group's).
pub fn deploys(job: &Value) -> bool {
    let service = job.get("Type").and_then(Value::as_str).unwrap_or("service") == "service";
    let job_update = job.get("Update").filter(|u| u.is_object());
    let updates = |group: &Value| {
        let block = group.get("Update").filter(|u| u.is_object()).or(job_update);
        block
            .and_then(|u| u.get("MaxParallel"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 0
    };
    service && groups(job).any(updates)
}

fn groups(job: &Value) -> impl Iterator<Item = &Value> {
    job.get("TaskGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A group whose scaling policy is enabled (Nomad canonicalizes a policy without `Enabled` as
/// enabled, api/scaling.go `Canonicalize`) has its count owned by the autoscaler: the live
/// group's count stands.
fn keep_autoscaled_counts(job: &mut Value, live: &Value) {
    let Some(desired_groups) = job.get_mut("TaskGroups").and_then(Value::as_array_mut) else {
        return;
    };
    for group in desired_groups {
        let scaled = group
            .get("Scaling")
            .filter(|s| s.is_object())
            .is_some_and(|s| s.get("Enabled").and_then(Value::as_bool) != Some(false));
        if !scaled {
            continue;
        }
        let name = group.get("Name").cloned();
        let live_count = groups(live)
            .find(|g| g.get("Name") == name.as_ref())
            .and_then(|g| g.get("Count"))
            .cloned();
        if let Some(count) = live_count {
            group["Count"] = count;
        }
    }
}

/// The live value at `pointer` replaces the desired one; where the live job has none, the
/// desired one goes too. Parents the desired job lacks are made as objects.
fn keep_live_value(job: &mut Value, live: &Value, pointer: &str) {
    let Some((parent_pointer, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match live.pointer(pointer) {
        Some(value) => {
            let Some(parent) = make_parents(job, parent_pointer) else {
                return;
            };
            match parent {
                Value::Object(map) => {
                    map.insert(key, value.clone());
                }
                Value::Array(items) => {
                    if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        *slot = value.clone();
                    }
                }
                _ => {}
            }
        }
        None => {
            if let Some(Value::Object(map)) = job.pointer_mut(parent_pointer) {
                map.remove(&key);
            }
        }
    }
}

/// The value at `pointer`, making missing object members on the way; `None` when the path
/// crosses a scalar or an array index that does not exist.
fn make_parents<'v>(job: &'v mut Value, pointer: &str) -> Option<&'v mut Value> {
    let mut at = job;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(map) => map
                .entry(token)
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => items.get_mut(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Nomad's parse answers unset fields as `null`; registering them or leaving them out is the
/// same job, so they are left out and fingerprints do not depend on which a Nomad sent.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// While a job is converging, look again this often even without a trigger.
pub const CONVERGING_RECHECK: Duration = Duration::from_secs(5);

/// What the look judges a NomadJob against: the instances its job asks for (the sum of its
/// groups' counts), and whether Nomad makes deployments for it.
pub fn workload_spec<'a>(
    object: &'a NomadJob,
    key: &'a ObjectRef,
    desired_job: &Value,
) -> WorkloadSpec<'a> {
    let stopped = object.spec.stopped;
    WorkloadSpec {
        object: key,
        generation: object.metadata.generation,
        desired: if stopped {
            0
        } else {
            desired_instances(desired_job)
        },
        stopped,
        // Checks live in the job as people wrote them; nomarch heals none of them.
        health: None,
        max_unavailable: 0,
        deploys: deploys(desired_job) && !stopped,
    }
}

/// Everything a NomadJob's decisions read; `workload.previous` is its stored status.
pub struct NomadJobSnapshot<'a> {
    pub object: &'a NomadJob,
    pub job: &'a JobOutcome,
    pub workload: WorkloadSnapshot<'a>,
}

pub fn compute(snapshot: &NomadJobSnapshot<'_>) -> Effects {
    let look = look_and_record(
        &snapshot.workload,
        snapshot.object.status.as_ref(),
        snapshot.job,
    );
    let settled = settled(&look.status);
    let requeue = match snapshot.job.rejected {
        // Refused by Nomad: nothing changes until the object does.
        Some(_) => Requeue::OnChange,
        None if settled => Requeue::OnChange,
        None => Requeue::After(CONVERGING_RECHECK),
    };
    look.into_effects(requeue)
}

/// A job that cannot be this object's (Nomad cannot parse it, or it names another job):
/// `Invalid` in status with the reason, one Warning per distinct text, nothing written, and
/// nothing retried until the object changes.
pub fn unreadable(object: &NomadJob, message: String, now: DateTime<Utc>) -> Effects {
    let stored = object.status.as_ref();
    let mut status = stored.cloned().unwrap_or_default();
    status.observed_generation = Some(object.metadata.generation);
    let refusal = Rejection {
        fingerprint: fingerprint(&Value::String(message.clone())),
        message: message.clone(),
    };
    let said_before = rejection(stored).is_some_and(|r| r.fingerprint == refusal.fingerprint);
    record_rejection(&mut status, Some(&refusal), now);
    let events = (!said_before)
        .then(|| PlannedEvent::warning("InvalidJob", message))
        .into_iter()
        .collect();
    Effects::without_healing(status, events, Requeue::OnChange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::{ConditionType, Status};

    fn object(status: Option<Status>) -> NomadJob {
        let mut object: NomadJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "nomarch.io/v1", "kind": "NomadJob",
            "metadata": {"name": "batch", "namespace": "default", "generation": 2},
            "spec": {"job": {"ID": "batch", "Type": "batch", "TaskGroups": []}},
        }))
        .expect("a NomadJob");
        object.status = status;
        object
    }

    #[test]
    fn an_unreadable_job_is_invalid_and_said_once_per_text() {
        let first = unreadable(&object(None), "line 3: unexpected }".into(), Utc::now());
        assert!(first.status.is_true(ConditionType::Invalid));
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.requeue, Requeue::OnChange);
        let again = unreadable(
            &object(Some(first.status.clone())),
            "line 3: unexpected }".into(),
            Utc::now(),
        );
        assert!(again.events.is_empty(), "the same text is not said again");
        let other = unreadable(
            &object(Some(first.status)),
            "line 4: unexpected {".into(),
            Utc::now(),
        );
        assert_eq!(other.events[0].reason, "InvalidJob");
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;
    use crds::meta::ObjectMeta;

    fn object(ignore: &[&str]) -> NomadJob {
        let mut metadata = ObjectMeta::new("web");
        metadata.generation = 1;
        NomadJob {
            api_version: crds::API_VERSION.into(),
            kind: crds::Kind::NomadJob,
            metadata,
            spec: crds::NomadJobSpec {
                job: None,
                hcl: Some("job \"web\" {}".into()),
                ignore_differences: ignore.iter().map(|s| s.to_string()).collect(),
                stopped: false,
            },
            status: None,
        }
    }

    fn source() -> Value {
        json!({
            "ID": "web", "Name": "web", "Region": null, "Meta": {"team": "ops"},
            "TaskGroups": [
                {"Name": "web", "Count": 2, "Scaling": {"Enabled": true, "Min": 1, "Max": 10},
                 "Tasks": [{"Name": "web", "Config": {"image": "nginx:1"}}]},
                {"Name": "side", "Count": 1,
                 "Tasks": [{"Name": "side", "Config": {"image": "busybox"}}]}
            ]
        })
    }

    #[test]
    fn the_job_is_the_objects_with_nomarchs_meta_and_no_nulls() {
        let rendered = render_nomadjob(&object(&[]), &source(), None).unwrap();
        let job = &rendered.job;
        assert_eq!(job["ID"], "web");
        assert_eq!(job["Namespace"], "default");
        assert_eq!(job["Meta"]["team"], "ops");
        assert_eq!(job["Meta"]["nomarch.io/managed-by"], "nomarch");
        assert_eq!(job["Meta"]["nomarch.io/kind"], "NomadJob");
        assert!(job.get("Region").is_none(), "nulls are left out");
        assert_eq!(rendered.job, rendered.decided, "nothing live to keep");
        assert_eq!(desired_instances(job), 3);
        let mut batch = job.clone();
        batch["Type"] = json!("batch");
        assert_eq!(
            desired_instances(&batch),
            0,
            "runs end: nothing must keep running"
        );
    }

    #[test]
    fn another_id_or_namespace_is_refused() {
        let mut other = source();
        other["ID"] = json!("api");
        assert!(matches!(
            render_nomadjob(&object(&[]), &other, None),
            Err(NomadJobProblem::OtherId { .. })
        ));
        let mut elsewhere = source();
        elsewhere["Namespace"] = json!("ops");
        assert!(matches!(
            render_nomadjob(&object(&[]), &elsewhere, None),
            Err(NomadJobProblem::OtherNamespace { .. })
        ));
    }

    #[test]
    fn an_autoscaled_count_and_ignored_paths_keep_their_live_values() {
        let mut live = source();
        live["TaskGroups"][0]["Count"] = json!(7);
        live["TaskGroups"][1]["Count"] = json!(4);
        live["TaskGroups"][1]["Tasks"][0]["Config"]["image"] = json!("busybox:edited");
        let ignored = ["/TaskGroups/1/Tasks/0/Config/image", "/Meta/team"];
        let mut live_without_team = live.clone();
        live_without_team["Meta"]
            .as_object_mut()
            .unwrap()
            .remove("team");
        let rendered =
            render_nomadjob(&object(&ignored), &source(), Some(&live_without_team)).unwrap();
        let job = &rendered.job;
        assert_eq!(
            job["TaskGroups"][0]["Count"], 7,
            "the autoscaler's count stands"
        );
        assert_eq!(
            job["TaskGroups"][1]["Count"], 1,
            "a group without a scaling policy is nomarch's"
        );
        assert_eq!(
            job["TaskGroups"][1]["Tasks"][0]["Config"]["image"],
            "busybox:edited"
        );
        assert!(
            job["Meta"].get("team").is_none(),
            "an ignored path the live job lacks is left out"
        );
        assert_eq!(rendered.decided["TaskGroups"][0]["Count"], 2);
        assert_eq!(rendered.decided["Meta"]["team"], "ops");
    }

    #[test]
    fn a_disabled_scaling_policy_leaves_the_count_to_the_object() {
        let mut disabled = source();
        disabled["TaskGroups"][0]["Scaling"]["Enabled"] = json!(false);
        let mut live = disabled.clone();
        live["TaskGroups"][0]["Count"] = json!(9);
        let rendered = render_nomadjob(&object(&[]), &disabled, Some(&live)).unwrap();
        assert_eq!(rendered.job["TaskGroups"][0]["Count"], 2);
    }

    #[test]
    fn deployments_follow_the_update_block() {
        let mut job = source();
        assert!(!deploys(&job), "no update block");
        job["Update"] = json!({"MaxParallel": 1});
        assert!(deploys(&job));
        job["Type"] = json!("batch");
        assert!(!deploys(&job), "batch jobs get no deployment");
    }
}
