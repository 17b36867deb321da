//! The NomadJob: a Nomad job as people already write it, kept registered by nomarch.

use std::collections::{BTreeMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Column, KindSpec};
use crate::meta::{Object, ObjectMeta};
use crate::validate::{printable, Problems};
use crate::yaml::{join_index, join_key};

/// A Nomad job as people already write it: the API's JSON (`job`) or HCL (`hcl`, parsed by
/// the cluster's own `/v1/jobs/parse`), kept registered, reverted when edited out of band,
/// pruned and protected like the other kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NomadJobSpec {
    /// The job in Nomad's API form (what `nomad job run -output` prints under `Job`). Its
    /// `ID`, when given, is the object's name. Set exactly one of `job` and `hcl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub job: Option<serde_json::Map<String, serde_json::Value>>,
    /// The jobspec as HCL; its `job` block's label is the object's name. Input variables are
    /// not supported: write the values in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hcl: Option<String>,
    /// JSON pointers (RFC 6901) into the job as Nomad holds it, such as
    /// `/TaskGroups/0/Tasks/0/Config/image`, whose live values are kept instead of reverted.
    /// A group's `Count` is kept by itself while its `scaling` policy is enabled: the
    /// autoscaler owns it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<String>,
    /// Run nothing, keep everything else: the job is registered stopped (`nomarch stop`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

impl NomadJobSpec {
    /// How the job is written: `hcl` or `json`.
    pub fn form(&self) -> &'static str {
        if self.hcl.is_some() {
            "hcl"
        } else {
            "json"
        }
    }
}

impl KindSpec for NomadJobSpec {
    fn validate(object: &Object<Self>, p: &mut Problems) {
        validate_nomadjob(&object.spec, &object.metadata, p)
    }

    fn columns(&self) -> Vec<Column> {
        vec![("FORM", self.form().into())]
    }

    fn wide_column(&self) -> Column {
        ("IGNORED", self.ignore_differences.join(","))
    }

    fn summary(&self) -> Vec<String> {
        let mut items = vec![match (&self.hcl, &self.job) {
            (Some(hcl), _) => {
                format!("job: HCL, {} line(s), parsed by Nomad", hcl.lines().count())
            }
            (None, Some(job)) => {
                let groups = job
                    .get("TaskGroups")
                    .and_then(|g| g.as_array())
                    .map_or(0, Vec::len);
                format!("job: JSON, {groups} group(s)")
            }
            (None, None) => "job: none".into(),
        }];
        if !self.ignore_differences.is_empty() {
            items.push(format!(
                "live values kept at: {}",
                self.ignore_differences.join(", ")
            ));
        }
        if self.stopped {
            items.push("stopped: true".into());
        }
        items
    }

    fn default_task() -> Result<&'static str, &'static str> {
        Err("a NomadJob's tasks are named in its job: pick one with --task")
    }

    fn stopped(&self) -> Option<bool> {
        Some(self.stopped)
    }

    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        Ok(&mut self.stopped)
    }
}

/// The job types Nomad schedules (nomad/structs/structs.go `JobType*`).
const JOB_TYPES: &[&str] = &["service", "batch", "system", "sysbatch"];

/// Job fields that say who owns the job (and whether it runs), which `ignoreDifferences` may
/// not hand over: these, and what lies under them. `/Meta` itself and nomarch's own meta keys
/// only: other meta keys may be left to whoever stamps them.
const OWNERSHIP_POINTERS: &[&str] = &["/ID", "/Name", "/Namespace", "/Stop", "/Meta/nomarch.io~1"];

/// One of `job` and `hcl`; the job's identity is the object's (its ID the name, its namespace
/// the object's), nomarch's meta and `Stop` its own; ignored paths are JSON pointers that leave
/// the job's identity alone. What Nomad itself refuses is asked of Nomad before anything is
/// written (`nomarch apply`, a git sync), not guessed here.
fn validate_nomadjob(spec: &NomadJobSpec, meta: &ObjectMeta, p: &mut Problems) {
    match (&spec.job, &spec.hcl) {
        (Some(_), Some(_)) => p.add("spec.hcl", "set either spec.job or spec.hcl, not both"),
        (None, None) => p.add(
            "spec",
            "set spec.job (Nomad's JSON) or spec.hcl (a jobspec)",
        ),
        (None, Some(hcl)) => p.check(!hcl.trim().is_empty(), "spec.hcl", || {
            "must not be empty".into()
        }),
        (Some(job), None) => validate_embedded_job(job, meta, p),
    }
    let mut seen = HashSet::new();
    for (i, pointer) in spec.ignore_differences.iter().enumerate() {
        let path = join_index("spec.ignoreDifferences", i);
        if !pointer.starts_with('/') {
            p.add(
                path,
                format!(
                    "`{}` is not a JSON pointer: start it with `/`, as in `/TaskGroups/0/Count`",
                    printable(pointer)
                ),
            );
            continue;
        }
        // `/Meta/nomarch.io~1` is a prefix of keys; the others are fields and what is under them.
        let owned = pointer == "/Meta"
            || OWNERSHIP_POINTERS.iter().any(|owned| {
                if owned.ends_with("~1") {
                    pointer.starts_with(*owned)
                } else {
                    pointer == *owned || pointer.starts_with(&format!("{owned}/"))
                }
            });
        if owned {
            p.add(
                &path,
                format!(
                    "`{}` is nomarch's to keep: it says which object owns the job",
                    printable(pointer)
                ),
            );
        }
        p.check(seen.insert(pointer), &path, || {
            format!("`{}` is listed twice", printable(pointer))
        });
    }
}

fn validate_embedded_job(
    job: &serde_json::Map<String, serde_json::Value>,
    meta: &ObjectMeta,
    p: &mut Problems,
) {
    let text = |key: &str| job.get(key).map(|v| v.as_str().ok_or(v));
    match text("ID") {
        Some(Ok(id)) if id != meta.name => p.add(
            "spec.job.ID",
            format!(
                "the job's ID `{}` must be the object's name `{}` (or leave ID out)",
                printable(id),
                meta.name
            ),
        ),
        Some(Err(_)) => p.add("spec.job.ID", "must be a string"),
        _ => {}
    }
    match text("Namespace") {
        Some(Ok(ns)) if ns != meta.namespace => p.add(
            "spec.job.Namespace",
            format!(
                "the job lives in the object's namespace `{}`; set metadata.namespace instead",
                meta.namespace
            ),
        ),
        Some(Err(_)) => p.add("spec.job.Namespace", "must be a string"),
        _ => {}
    }
    match text("Type") {
        Some(Ok(kind)) if !JOB_TYPES.contains(&kind) => p.add(
            "spec.job.Type",
            format!(
                "`{}` is not a Nomad job type ({})",
                printable(kind),
                JOB_TYPES.join(", ")
            ),
        ),
        Some(Err(_)) => p.add("spec.job.Type", "must be a string"),
        _ => {}
    }
    if job.contains_key("Stop") {
        p.add("spec.job.Stop", "use spec.stopped (`nomarch stop`)");
    }
    if let Some(serde_json::Value::Object(job_meta)) = job.get("Meta") {
        for key in job_meta.keys().filter(|k| k.starts_with("nomarch.io/")) {
            p.add(
                join_key("spec.job.Meta", key),
                "nomarch's own meta cannot be set here",
            );
        }
    }
    let groups = job.get("TaskGroups").and_then(serde_json::Value::as_array);
    p.check(
        groups.is_some_and(|g| !g.is_empty()),
        "spec.job.TaskGroups",
        || "a job needs at least one group".into(),
    );
}
