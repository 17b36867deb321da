//! The CronJob: a task run on a cron schedule, as a Nomad periodic batch job.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Column, KindSpec};
use crate::meta::Object;
use crate::validate::{
    check_cron_schedule, printable, validate_container, validate_nomad, validate_placement,
    validate_volumes, Problems,
};
use crate::workload::{summary_lines, Container, NomadOverrides, Placement, Volume};

/// A task run on a cron schedule, as a Nomad periodic batch job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobSpec {
    /// Five-field cron expression (`minute hour day-of-month month day-of-week`) or a macro
    /// such as `@daily`.
    pub schedule: String,
    /// IANA time zone the schedule is read in.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Whether runs may overlap.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Stop launching new runs; history is kept.
    #[serde(default)]
    pub suspend: bool,
    /// The container each run starts.
    pub task: Container,
    /// Host volumes each run mounts; runs go only to nodes that offer them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Nomad fields the kind does not model, merged into what nomarch renders.
    #[serde(default, skip_serializing_if = "NomadOverrides::is_empty")]
    pub nomad: NomadOverrides,
    /// Where runs may be placed.
    #[serde(default)]
    pub placement: Placement,
}

fn utc() -> String {
    "UTC".to_string()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// Skip a run while the previous one is still going (Nomad's `prohibit_overlap`).
    Forbid,
}

impl CronJobSpec {
    /// The group, and its one task, inside every CronJob's job.
    pub const GROUP: &'static str = "run";
}

impl KindSpec for CronJobSpec {
    fn validate(object: &Object<Self>, p: &mut Problems) {
        validate_cronjob(&object.spec, p)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            ("SCHEDULE", self.schedule.clone()),
            ("SUSPEND", self.suspend.to_string()),
        ]
    }

    fn wide_column(&self) -> Column {
        ("IMAGE", self.task.image.clone())
    }

    fn summary(&self) -> Vec<String> {
        let mut items = vec![
            format!("schedule: {} ({})", self.schedule, self.time_zone),
            format!("image: {}", self.task.image),
            format!("suspend: {}", self.suspend),
        ];
        items.extend(summary_lines(&self.volumes, &self.task.env, &self.nomad));
        items
    }

    fn default_task() -> Result<&'static str, &'static str> {
        Ok(Self::GROUP)
    }

    fn stopped_mut(&mut self) -> Result<&mut bool, &'static str> {
        Err(" (a cron job's spec.suspend stops its launches)")
    }
}

fn validate_cronjob(spec: &CronJobSpec, p: &mut Problems) {
    if let Err(problem) = check_cron_schedule(&spec.schedule) {
        p.add("spec.schedule", problem);
    }
    if spec.time_zone.parse::<chrono_tz::Tz>().is_err() {
        p.add(
            "spec.timeZone",
            format!(
                "`{}` is not an IANA time zone such as `UTC` or `Europe/Berlin`",
                printable(&spec.time_zone)
            ),
        );
    }
    validate_container(spec.task.container(), "spec.task", p);
    validate_placement(&spec.placement, "spec.placement", p);
    validate_volumes(&spec.volumes, 1, p);
    validate_nomad(&spec.nomad, "spec", p);
}
