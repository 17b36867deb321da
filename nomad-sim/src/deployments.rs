//! Deployments, as Nomad runs them: a service job version with an update block rolls out
//! under a deployment; destructive updates go `max_parallel` at a time, gated on each new
//! allocation's health; a deployment that misses its progress deadline (or whose allocations
//! fail with no deadline to wait for) fails, and with `auto_revert` the last stable version is
//! registered again. A deployment that completes marks its job version stable.
//!
//! With `canary` set, a destructive change first places the canaries beside the running
//! allocations; the rollout waits for their promotion (by the API, or `auto_promote` once all
//! are healthy), then replaces the rest.
//!
//! The decisions are pure functions of a snapshot (tested by table below); [`Cluster`] methods
//! apply them.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cluster::{Cluster, StreamEvent};
use super::model::{new_id, strip_server_fields, Alloc, ClientStatus, Deployment, DeploymentState};
use super::render;

/// A group's update block, read from the job as registered.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    pub max_parallel: usize,
    /// `checks`, `task_states` or `manual`.
    pub health_check: &'static str,
    pub min_healthy_time: i64,
    pub healthy_deadline: i64,
    pub progress_deadline: i64,
    pub auto_revert: bool,
    pub auto_promote: bool,
    /// Canaries placed beside the running allocations before any is replaced.
    pub canary: usize,
}

impl Strategy {
    /// nomad/structs/structs.go `UpdateStrategy.IsEmpty`: an update block with `MaxParallel`
    /// 0 is no update block. Batch jobs never roll out (reconcile.go builds no deployment for
    /// them; their canonical update block is zeroed).
    pub fn of(job_type: &str, group: &Value) -> Option<Strategy> {
        if job_type != "service" {
            return None;
        }
        let update = group.get("Update").filter(|u| u.is_object())?;
        let int = |key: &str| update.get(key).and_then(Value::as_i64).unwrap_or(0);
        let max_parallel = int("MaxParallel");
        if max_parallel <= 0 {
            return None;
        }
        Some(Strategy {
            max_parallel: max_parallel as usize,
            health_check: match update.get("HealthCheck").and_then(Value::as_str) {
                Some("task_states") => "task_states",
                Some("manual") => "manual",
                _ => "checks",
            },
            min_healthy_time: int("MinHealthyTime"),
            healthy_deadline: int("HealthyDeadline"),
            progress_deadline: int("ProgressDeadline"),
            auto_revert: update
                .get("AutoRevert")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            auto_promote: update
                .get("AutoPromote")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            canary: int("Canary").max(0) as usize,
        })
    }
}

/// scheduler/reconcile.go `computeUnderProvisionedBy`: how many allocations may be replaced
/// destructively now. `health` is the health of each live allocation of the current
/// deployment in this group.
pub fn destructive_budget(
    strategy: Option<&Strategy>,
    count: usize,
    changing: usize,
    deployment_status: Option<&str>,
    health: &[Option<bool>],
) -> usize {
    let Some(strategy) = strategy else {
        // No update strategy: everything at once.
        return count;
    };
    if changing == 0 {
        return count;
    }
    let Some(status) = deployment_status else {
        // The first evaluation of a new version: the deployment is made by this very plan.
        return strategy.max_parallel;
    };
    // Paused or failed: nothing more is replaced.
    if matches!(status, "paused" | "failed") {
        return 0;
    }
    // An unhealthy allocation stops the rollout; one not yet judged takes a slot.
    if health.contains(&Some(false)) {
        return 0;
    }
    let waiting = health.iter().filter(|h| h.is_none()).count();
    strategy.max_parallel.saturating_sub(waiting)
}

/// What the client's health tracker concludes about one allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Undecided,
    Healthy,
    Unhealthy,
}

/// What the tracker looks at, at one instant.
#[derive(Clone, Debug)]
pub struct HealthInput {
    pub now: DateTime<Utc>,
    /// When watching began; `healthy_deadline` counts from here.
    pub watch_start: DateTime<Utc>,
    /// Since when all tasks have run and (for `checks`) all checks passed, unbroken.
    pub healthy_since: Option<DateTime<Utc>>,
    /// A task failed (the allocation is failed).
    pub failed: bool,
    pub min_healthy_time: i64,
    pub healthy_deadline: i64,
}

type HealthRule = (&'static str, fn(&HealthInput) -> Option<Verdict>);

/// client/allochealth/tracker.go, as an ordered rule table (first match wins).
const HEALTH_RULES: &[HealthRule] = &[
    // `watchTaskEvents`: a failed task makes the allocation unhealthy at once.
    ("task failed", |i| i.failed.then_some(Verdict::Unhealthy)),
    // `setTaskHealth`/`setCheckHealth`: healthy once both held for `min_healthy_time`, if
    // that moment came before the deadline (Nomad's timer fires then; the simulator may look
    // a little later).
    ("healthy for min_healthy_time", |i| {
        let healthy_at = i.healthy_since? + chrono::Duration::nanoseconds(i.min_healthy_time);
        let deadline = i.watch_start + chrono::Duration::nanoseconds(i.healthy_deadline);
        (i.now >= healthy_at && (i.healthy_deadline == 0 || healthy_at <= deadline))
            .then_some(Verdict::Healthy)
    }),
    // `watch`: the healthy deadline passed before health was reached.
    ("healthy deadline passed", |i| {
        let deadline = i.watch_start + chrono::Duration::nanoseconds(i.healthy_deadline);
        (i.healthy_deadline > 0 && i.now >= deadline).then_some(Verdict::Unhealthy)
    }),
];

pub fn judge(input: &HealthInput) -> Verdict {
    HEALTH_RULES
        .iter()
        .find_map(|(_, rule)| rule(input))
        .unwrap_or(Verdict::Undecided)
}

/// nomad/deploymentwatcher/deployment_watcher.go `shouldFail`: (fail, roll back). A group
/// fails when it has fewer healthy allocations than it wants; it rolls back when its update
/// block says `auto_revert`.
pub fn should_fail(deployment: &Deployment) -> (bool, bool) {
    let mut fail = false;
    for state in deployment.groups.values() {
        let enough = if state.desired_canaries > 0 && !state.promoted {
            state.healthy_allocs >= state.desired_canaries
        } else {
            state.healthy_allocs >= state.desired_total
        };
        if enough {
            continue;
        }
        fail = true;
        if state.auto_revert {
            return (true, true);
        }
    }
    (fail, false)
}

/// deployment_watcher.go `getDeploymentProgressCutoff`: the earliest `RequireProgressBy` of
/// the groups that are not done (`doneGroups`: as many healthy allocations as wanted).
pub fn progress_cutoff(deployment: &Deployment) -> Option<i64> {
    deployment
        .groups
        .values()
        .filter(|s| s.healthy_allocs < s.desired_total.max(s.desired_canaries))
        .filter_map(|s| s.require_progress_by)
        .min()
}

/// reconcile.go `isDeploymentComplete`, for the group states: enough healthy allocations and,
/// with canaries, promoted.
pub fn groups_complete(deployment: &Deployment) -> bool {
    deployment.groups.values().all(|s| {
        s.healthy_allocs >= s.desired_total.max(s.desired_canaries)
            && (s.desired_canaries == 0 || s.promoted)
    })
}

const RUNNING: &str = "Deployment is running";
const SUCCESSFUL: &str = "Deployment completed successfully";
const NEWER_JOB: &str = "Cancelled due to newer version of job";
const STOPPED_JOB: &str = "Cancelled because job is stopped";
const FAILED_ALLOCATIONS: &str = "Failed due to unhealthy allocations";
const PROGRESS_DEADLINE: &str = "Failed due to progress deadline";
const FAILED_BY_USER: &str = "Deployment marked as failed";
const PAUSED: &str = "Deployment is paused";
const NEEDS_PROMOTION: &str = "Deployment is running but requires manual promotion";
const AUTO_PROMOTION: &str = "Deployment is running pending automatic promotion";

/// structs.go `Deployment.RequiresPromotion`: running, with a group whose canaries are not
/// promoted.
pub fn requires_promotion(deployment: &Deployment) -> bool {
    deployment.status == "running"
        && deployment
            .groups
            .values()
            .any(|s| s.desired_canaries > 0 && !s.promoted)
}

/// deployment_watcher.go `autoPromoteDeployment`: every group with canaries says
/// `auto_promote`, has placed them all, and each is healthy.
pub fn auto_promotable(deployment: &Deployment, healthy: &dyn Fn(&str) -> bool) -> bool {
    let placed_some = deployment
        .groups
        .values()
        .any(|s| !s.placed_canaries.is_empty());
    placed_some
        && requires_promotion(deployment)
        && deployment
            .groups
            .values()
            .filter(|s| s.desired_canaries >= 1)
            .all(|s| {
                s.auto_promote
                    && s.placed_canaries.len() as u64 >= s.desired_canaries
                    && s.placed_canaries.iter().filter(|c| healthy(c)).count() as u64
                        == s.desired_canaries
            })
}

impl Cluster {
    /// The newest deployment of a job (`DeploymentsByJobID`, latest by create index).
    pub fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<&Deployment> {
        self.deployments_of_job(namespace, job_id)
            .max_by_key(|d| d.create_index)
    }

    pub fn deployments_of_job(
        &self,
        namespace: &str,
        job_id: &str,
    ) -> impl Iterator<Item = &Deployment> + '_ {
        self.deployments_by_job
            .get(&(namespace.to_string(), job_id.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.deployments.get(id))
    }

    /// The deployment the scheduler works under for this job, after reconcile.go
    /// `cancelUnneededDeployments`: an active deployment of another version (or of a stopped
    /// job) is cancelled; one of this version is kept, whatever its status.
    pub fn current_deployment(&mut self, job_key: (&str, &str), index: u64) -> Option<String> {
        let (namespace, job_id) = job_key;
        let job = self.job(namespace, job_id)?.clone();
        let stale: Vec<String> = self
            .deployments_of_job(namespace, job_id)
            .filter(|d| d.active())
            .filter(|d| job.stop || d.job_version != job.version)
            .map(|d| d.id.clone())
            .collect();
        for id in stale {
            let why = if job.stop { STOPPED_JOB } else { NEWER_JOB };
            self.set_deployment_status(&id, "cancelled", why.to_string(), index);
        }
        if job.stop {
            return None;
        }
        self.latest_deployment(namespace, job_id)
            .filter(|d| d.job_version == job.version && d.job_create_index == job.create_index)
            .map(|d| d.id.clone())
    }

    /// reconcile.go `createDeployment` with structs.go `NewDeployment`.
    pub fn create_deployment(&mut self, job_key: (&str, &str), index: u64) -> Option<String> {
        let job = self.job(job_key.0, job_key.1)?.clone();
        let now = self.clock.now_nanos();
        let deployment = Deployment {
            id: new_id(),
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            job_version: job.version,
            job_modify_index: job.modify_index,
            job_spec_modify_index: job.job_modify_index,
            job_create_index: job.create_index,
            groups: Default::default(),
            status: "running",
            status_description: RUNNING.into(),
            create_index: index,
            modify_index: index,
            create_time: now,
            modify_time: now,
        };
        let id = deployment.id.clone();
        self.deployments_by_job
            .entry((job.namespace.clone(), job.id.clone()))
            .or_default()
            .push(id.clone());
        self.running_deployments.insert(id.clone());
        self.deployments.insert(id.clone(), deployment);
        self.tables.deployments = index;
        Some(id)
    }

    /// reconcile.go `initializeDeploymentState`: a group joins the deployment with its
    /// strategy's revert, promote and deadline settings.
    pub fn add_deployment_group(
        &mut self,
        deployment_id: &str,
        group: &str,
        strategy: &Strategy,
        desired_total: u64,
        desired_canaries: u64,
    ) {
        if let Some(d) = self.deployments.get_mut(deployment_id) {
            d.groups
                .entry(group.to_string())
                .or_insert_with(|| DeploymentState {
                    auto_revert: strategy.auto_revert,
                    auto_promote: strategy.auto_promote,
                    progress_deadline: strategy.progress_deadline,
                    desired_total,
                    desired_canaries,
                    ..DeploymentState::default()
                });
        }
    }

    /// A placed canary is listed in its group's `PlacedCanaries` (state_store.go
    /// `updateDeploymentWithAlloc`) and carries `DeploymentStatus.Canary`.
    pub fn count_canary(&mut self, alloc_id: &str, deployment_id: &str) {
        let Some(alloc) = self.allocs.get_mut(alloc_id) else {
            return;
        };
        alloc.canary = true;
        let group = alloc.group.clone();
        if let Some(state) = self
            .deployments
            .get_mut(deployment_id)
            .and_then(|d| d.groups.get_mut(&group))
        {
            state.placed_canaries.push(alloc_id.to_string());
        }
    }

    /// reconcile.go `computeDeploymentUpdates`: a deployment created waiting on canaries is
    /// described as pending automatic or manual promotion (structs.go `RequiresPromotion`,
    /// `HasAutoPromote`).
    pub fn describe_promotion(&mut self, id: &str) {
        let Some(d) = self.deployments.get_mut(id) else {
            return;
        };
        if !requires_promotion(d) {
            return;
        }
        let auto = d
            .groups
            .values()
            .all(|s| s.desired_canaries == 0 || s.auto_promote);
        d.status_description = if auto {
            AUTO_PROMOTION
        } else {
            NEEDS_PROMOTION
        }
        .into();
    }

    /// nomad/state/state_store.go `updateDeploymentWithAlloc`, for a placement (or an
    /// allocation joining the deployment in place): `PlacedAllocs` + 1, and the first one
    /// starts the progress deadline. The plan's commit emits the deployment's event.
    pub fn count_placement(&mut self, deployment_id: &str, group: &str, index: u64) {
        let now = self.clock.now_nanos();
        let Some(d) = self.deployments.get_mut(deployment_id) else {
            return;
        };
        let Some(state) = d.groups.get_mut(group) else {
            return;
        };
        state.placed_allocs += 1;
        if state.progress_deadline != 0 && state.require_progress_by.is_none() {
            state.require_progress_by = Some(now + state.progress_deadline);
        }
        // The event goes out once per plan (the scheduler's), not once per placement.
        d.modify_index = index;
        d.modify_time = now;
        self.tables.deployments = index;
    }

    pub fn set_deployment_status(
        &mut self,
        id: &str,
        status: &'static str,
        description: String,
        index: u64,
    ) {
        let now = self.clock.now_nanos();
        let Some(d) = self.deployments.get_mut(id) else {
            return;
        };
        d.status = status;
        d.status_description = description;
        if status == "running" {
            self.running_deployments.insert(id.to_string());
        } else {
            self.running_deployments.remove(id);
        }
        d.modify_index = index;
        d.modify_time = now;
        self.tables.deployments = index;
        self.emit_deployment(id, "DeploymentStatusUpdate", index);
    }

    /// state_store.go `updateDeploymentStatusImpl`: a successful deployment marks its job
    /// version stable (`updateJobStabilityImpl`).
    pub fn complete_deployment(&mut self, id: &str, index: u64) {
        self.set_deployment_status(id, "successful", SUCCESSFUL.into(), index);
        let Some(d) = self.deployments.get(id).cloned() else {
            return;
        };
        let body = json!({"JobVersion": d.job_version, "Stable": true});
        let _ = self.set_stability(&d.namespace, &d.job_id, &body);
        if let Some(job) = self.jobs.get_mut(&(d.namespace.clone(), d.job_id.clone())) {
            job.modify_index = index;
        }
        self.tables.jobs = index;
        self.emit_job(&d.namespace, &d.job_id, "DeploymentStatusUpdate", index);
    }

    pub fn emit_deployment(&mut self, id: &str, event_type: &'static str, index: u64) {
        let Some(d) = self.deployments.get(id) else {
            return;
        };
        let event = StreamEvent {
            topic: "Deployment",
            type_: event_type,
            key: d.id.clone(),
            namespace: d.namespace.clone(),
            filter_keys: Some(vec![d.job_id.clone()]),
            index,
            payload: json!({"Deployment": render::deployment(d)}),
        };
        self.emit(event);
    }

    /// Sets an allocation's deployment health (client/allocrunner/health_hook.go reports
    /// it; the servers count it in `updateDeploymentWithAlloc`), then does what the deployment
    /// watcher does with it (`handleAllocUpdate`): a healthy allocation gets the job evaluated
    /// so the rollout moves on; an unhealthy one fails the deployment at once when there is no
    /// progress deadline to wait for (`shouldFailEarly`).
    pub fn set_alloc_health(&mut self, alloc_id: &str, healthy: bool, index: u64) {
        if self.judge_alloc_health(alloc_id, healthy, index) {
            if let Some(a) = self.allocs.get(alloc_id) {
                let (namespace, job_id) = (a.namespace.clone(), a.job_id.clone());
                self.reevaluate(&namespace, &job_id, "deployment-watcher");
            }
        }
    }

    /// [`Cluster::set_alloc_health`] without the evaluation: says whether the job wants one
    /// (the ticker batches them per job, as the watcher's `createBatchedUpdate` does).
    fn judge_alloc_health(&mut self, alloc_id: &str, healthy: bool, index: u64) -> bool {
        let now = self.clock.now_nanos();
        let Some(alloc) = self.allocs.get_mut(alloc_id) else {
            return false;
        };
        if alloc.healthy.is_some() {
            return false;
        }
        self.awaiting_health.remove(alloc_id);
        alloc.healthy = Some(healthy);
        alloc.health_timestamp = now;
        alloc.health_modify_index = index;
        alloc.modify_index = index;
        let (deployment_id, group) = (alloc.deployment_id.clone(), alloc.group.clone());
        self.tables.allocs = index;
        self.emit_alloc(alloc_id, "AllocationUpdated", index);
        let mut fail_now = false;
        if let Some(d) = self.deployments.get_mut(&deployment_id) {
            if let Some(state) = d.groups.get_mut(&group) {
                if healthy {
                    state.healthy_allocs += 1;
                    if state.progress_deadline != 0 {
                        let by = now + state.progress_deadline;
                        if state.require_progress_by.is_none_or(|old| by > old) {
                            state.require_progress_by = Some(by);
                        }
                    }
                } else {
                    state.unhealthy_allocs += 1;
                    fail_now = state.progress_deadline == 0 && d.active();
                }
                d.modify_index = index;
                d.modify_time = now;
                self.tables.deployments = index;
                self.emit_deployment(&deployment_id, "DeploymentAllocHealth", index);
            }
        }
        if fail_now {
            let rollback = self.deployments[&deployment_id]
                .groups
                .values()
                .any(|s| s.auto_revert);
            self.fail_deployment(&deployment_id, FAILED_ALLOCATIONS, rollback);
            return false;
        }
        // deployment_watcher.go `watch`: after an allocation update, `autoPromoteDeployment`
        // (the promotion brings its own evaluation).
        let allocs = &self.allocs;
        let promote = self.deployments.get(&deployment_id).is_some_and(|d| {
            auto_promotable(d, &|id| {
                allocs
                    .get(id)
                    .is_some_and(|a| !a.is_terminal() && a.healthy == Some(true))
            })
        });
        if promote && self.promote_deployment(&deployment_id, true, &[]).is_ok() {
            return false;
        }
        healthy
    }

    /// The end of deployment_watcher.go `watch`: the deployment fails; with a rollback, the
    /// latest stable version (`latestStableJob`) is registered again, unless its spec is the
    /// current one (`handleRollbackValidity`); an evaluation follows either way.
    pub fn fail_deployment(&mut self, id: &str, base: &str, rollback: bool) -> Option<u64> {
        let d = self.deployments.get(id)?.clone();
        let mut description = base.to_string();
        let mut revert_to = None;
        if rollback {
            match self.latest_stable_spec(&d.namespace, &d.job_id) {
                Some((version, spec)) => {
                    // structs.go `Job.SpecChanged`: the server-set fields aside (a version's
                    // stored form without them is its spec).
                    let current = self.job(&d.namespace, &d.job_id).map(|j| j.submittable());
                    if current.is_some_and(|c| c != spec) {
                        description = format!("{base} - rolling back to job version {version}");
                        revert_to = Some((version, spec));
                    } else {
                        description = format!(
                            "{base} - not rolling back to stable job version {version} as current job has same specification"
                        );
                    }
                }
                None => description = format!("{base} - no stable job version to auto revert to"),
            }
        }
        let index = self.bump();
        self.set_deployment_status(id, "failed", description, index);
        match revert_to {
            Some((version, spec)) => {
                let _ = self.register_job(Some(&d.namespace), &json!({"Job": spec}), None);
                Some(version)
            }
            None => {
                self.reevaluate(&d.namespace, &d.job_id, "deployment-watcher");
                None
            }
        }
    }

    /// The newest stable version of a job, current one included, as a submittable spec.
    fn latest_stable_spec(&self, namespace: &str, job_id: &str) -> Option<(u64, Value)> {
        let job = self.job(namespace, job_id)?;
        if job.stable {
            return Some((job.version, job.submittable()));
        }
        job.versions
            .iter()
            .find(|v| v.get("Stable").and_then(Value::as_bool) == Some(true))
            .map(|v| {
                let version = v.get("Version").and_then(Value::as_u64).unwrap_or(0);
                (version, strip_server_fields(v.clone()))
            })
    }

    /// What time does to deployments: the client health trackers judge new allocations, and
    /// each active deployment's watcher checks its progress deadline.
    pub fn tick_deployments(&mut self) {
        if self.awaiting_health.is_empty() && self.running_deployments.is_empty() {
            return;
        }
        let now = self.clock.now();
        // client/allochealth/tracker.go looks at checks every `checkLookupInterval` (500 ms).
        let lookup = chrono::Duration::milliseconds(500);
        if self
            .last_health_lookup
            .is_none_or(|last| now - last >= lookup)
        {
            self.last_health_lookup = Some(now);
            // Stopped or collected allocations are judged no more.
            let allocs = &self.allocs;
            self.awaiting_health.retain(|id| {
                allocs
                    .get(id)
                    .is_some_and(|a| a.desired_status == "run" && a.healthy.is_none())
            });
            let watched: Vec<String> = self.awaiting_health.iter().cloned().collect();
            let mut evaluate = std::collections::BTreeSet::new();
            for id in watched {
                if self.track_health(&id, now) {
                    if let Some(a) = self.allocs.get(&id) {
                        evaluate.insert((a.namespace.clone(), a.job_id.clone()));
                    }
                }
            }
            // deployment_watcher.go `createBatchedUpdate`: one evaluation per job for the
            // allocations that turned healthy together.
            for (namespace, job_id) in evaluate {
                self.reevaluate(&namespace, &job_id, "deployment-watcher");
            }
        }
        let nanos = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let due: Vec<String> = self
            .running_deployments
            .iter()
            .filter_map(|id| self.deployments.get(id))
            .filter(|d| progress_cutoff(d).is_some_and(|cutoff| nanos >= cutoff))
            .map(|d| d.id.clone())
            .collect();
        for id in due {
            let (fail, rollback) = should_fail(&self.deployments[&id]);
            if fail {
                self.fail_deployment(&id, PROGRESS_DEADLINE, rollback);
            }
        }
    }

    /// client/allochealth/tracker.go for one allocation of a deployment.
    fn track_health(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        let Some(alloc) = self.allocs.get(id) else {
            return false;
        };
        let Some(watch_start) = alloc.health_watch_start else {
            // Not started yet: the tracker starts with the tasks.
            return false;
        };
        let Some(strategy) = alloc
            .group_spec()
            .and_then(|g| Strategy::of(&alloc.job_type, g))
        else {
            return false;
        };
        // `manual`: the operator sets health through the API.
        if strategy.health_check == "manual" {
            return false;
        }
        let all_running = alloc.client_status == ClientStatus::Running
            && alloc.tasks.values().all(|t| t.state == "running");
        // Without an override or a hung task every check passes: no need to read them.
        let checks_pass = strategy.health_check != "checks"
            || (self.check_rules.is_empty() && alloc.fault != super::model::Fault::Hang)
            || self.checks_passing(alloc);
        let good = all_running && checks_pass;
        // tracker.go `watchTaskEvents`: a restart starts the wait over (`LastRestart`).
        let last_restart = alloc.tasks.values().filter_map(|t| t.last_restart).max();
        let healthy_since = match (good, alloc.healthy_since) {
            (true, Some(since)) => Some(last_restart.map_or(since, |r| since.max(r))),
            (true, None) => Some(now),
            (false, _) => None,
        };
        let input = HealthInput {
            now,
            watch_start,
            healthy_since,
            failed: alloc.client_status == ClientStatus::Failed,
            min_healthy_time: strategy.min_healthy_time,
            healthy_deadline: strategy.healthy_deadline,
        };
        let verdict = judge(&input);
        if let Some(alloc) = self.allocs.get_mut(id) {
            alloc.healthy_since = healthy_since;
        }
        match verdict {
            Verdict::Undecided => false,
            Verdict::Healthy | Verdict::Unhealthy => {
                let index = self.bump();
                self.judge_alloc_health(id, verdict == Verdict::Healthy, index)
            }
        }
    }

    /// Every check of every service of the allocation passes (Consul's view, after overrides).
    fn checks_passing(&self, alloc: &Alloc) -> bool {
        alloc
            .services()
            .iter()
            .filter(|(_, service)| {
                service
                    .get("Checks")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty())
            })
            .all(|(_, service)| {
                let name = service
                    .get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                super::health::check_status(&self.check_rules, alloc, name) == "passing"
            })
    }

    /// `PUT /v1/deployment/fail/:id` (nomad/deployment_endpoint.go `Fail`, deployment_watcher.go
    /// `FailDeployment`): an active deployment fails as marked by the user, rolling back when
    /// a group asks for it.
    pub fn fail_deployment_by_user(&mut self, id: &str) -> Result<Value, String> {
        let d = self
            .deployments
            .get(id)
            .ok_or_else(|| format!("deployment not found: {id}"))?;
        if !d.active() {
            return Err("can't fail terminal deployment".into());
        }
        let rollback = d.groups.values().any(|s| s.auto_revert);
        let reverted = self.fail_deployment(id, FAILED_BY_USER, rollback);
        Ok(self.deployment_update_reply(id, reverted))
    }

    /// `PUT /v1/deployment/pause/:id` (deployment_watcher.go `PauseDeployment`).
    pub fn pause_deployment(&mut self, id: &str, pause: bool) -> Result<Value, String> {
        let d = self
            .deployments
            .get(id)
            .ok_or_else(|| format!("deployment not found: {id}"))?;
        if !d.active() {
            let verb = if pause { "pause" } else { "resume" };
            return Err(format!("can't {verb} terminal deployment"));
        }
        let (namespace, job_id) = (d.namespace.clone(), d.job_id.clone());
        let index = self.bump();
        if pause {
            self.set_deployment_status(id, "paused", PAUSED.into(), index);
        } else {
            self.set_deployment_status(id, "running", RUNNING.into(), index);
            self.reevaluate(&namespace, &job_id, "deployment-watcher");
        }
        Ok(self.deployment_update_reply(id, None))
    }

    /// `PUT /v1/deployment/promote/:id` (nomad/deployment_endpoint.go `Promote`, then
    /// state_store.go `UpdateDeploymentPromotion`): every promoted group (all, or those named)
    /// needs as many healthy canaries as it desires; then the groups are promoted, their
    /// progress deadline starts over, the canaries lose `DeploymentStatus.Canary`, and an
    /// evaluation moves the rollout on.
    pub fn promote_deployment(
        &mut self,
        id: &str,
        all: bool,
        groups: &[String],
    ) -> Result<Value, String> {
        let d = self
            .deployments
            .get(id)
            .ok_or_else(|| "deployment not found".to_string())?;
        if !d.active() {
            return Err("can't promote terminal deployment".into());
        }
        let chosen = |group: &str| all || groups.iter().any(|g| g == group);
        let mut promotable = Vec::new();
        let mut short = Vec::new();
        for (group, state) in d.groups.iter().filter(|(g, _)| chosen(g)) {
            let healthy: Vec<&String> = state
                .placed_canaries
                .iter()
                .filter(|c| {
                    self.allocs
                        .get(*c)
                        .is_some_and(|a| !a.is_terminal() && a.healthy == Some(true))
                })
                .collect();
            if (healthy.len() as u64) < state.desired_canaries {
                short.push(format!(
                    "Task group \"{group}\" has {}/{} healthy allocations",
                    healthy.len(),
                    state.desired_canaries
                ));
            }
            promotable.extend(healthy.into_iter().cloned());
        }
        if !short.is_empty() {
            return Err(super::validate::multierror(&short));
        }
        let now = self.clock.now_nanos();
        let index = self.bump();
        let d = self.deployments.get_mut(id).expect("looked up above");
        for (group, state) in d.groups.iter_mut() {
            if !chosen(group) {
                continue;
            }
            if state.progress_deadline > 0 && state.require_progress_by.is_some() {
                state.require_progress_by = Some(now + state.progress_deadline);
            }
            state.promoted = true;
        }
        if !requires_promotion(d) && d.status == "running" {
            d.status_description = RUNNING.into();
        }
        d.modify_index = index;
        d.modify_time = now;
        let (namespace, job_id) = (d.namespace.clone(), d.job_id.clone());
        self.tables.deployments = index;
        for alloc_id in promotable {
            if let Some(alloc) = self.allocs.get_mut(&alloc_id) {
                alloc.canary = false;
                alloc.health_modify_index = index;
                alloc.modify_index = index;
                alloc.alloc_modify_index = index;
            }
            self.emit_alloc(&alloc_id, "AllocationUpdated", index);
        }
        self.tables.allocs = index;
        // Promoted canaries register with their own tags now (`serviceRegs`).
        self.tables.services = index;
        self.tables.consul = index;
        self.emit_deployment(id, "DeploymentPromotion", index);
        self.reevaluate(&namespace, &job_id, "deployment-watcher");
        Ok(self.deployment_update_reply(id, None))
    }

    /// `PUT /v1/deployment/allocation-health/:id` (state store
    /// `UpdateDeploymentAllocHealth`): the operator's verdict for allocations of an active
    /// deployment, used with `health_check = "manual"`.
    pub fn deployment_alloc_health(
        &mut self,
        id: &str,
        healthy: &[String],
        unhealthy: &[String],
    ) -> Result<Value, String> {
        let d = self
            .deployments
            .get(id)
            .ok_or_else(|| format!("deployment not found: {id}"))?;
        if !d.active() {
            return Err("can't set health of allocations for a terminal deployment".into());
        }
        for alloc in healthy.iter().chain(unhealthy) {
            let member = self
                .allocs
                .get(alloc)
                .is_some_and(|a| a.deployment_id == id);
            if !member {
                return Err(format!(
                    "Deployment {id} does not contain allocation {alloc}"
                ));
            }
        }
        for alloc in healthy {
            let index = self.bump();
            self.set_alloc_health(alloc, true, index);
        }
        for alloc in unhealthy {
            let index = self.bump();
            self.set_alloc_health(alloc, false, index);
        }
        Ok(self.deployment_update_reply(id, None))
    }

    /// `DeploymentUpdateResponse`.
    fn deployment_update_reply(&self, id: &str, reverted: Option<u64>) -> Value {
        let d = &self.deployments[id];
        let eval = self
            .evals_of_job(&d.namespace, &d.job_id)
            .max_by_key(|e| e.create_index);
        json!({
            "EvalID": eval.map(|e| e.id.clone()).unwrap_or_default(),
            "EvalCreateIndex": eval.map_or(0, |e| e.create_index),
            "DeploymentModifyIndex": d.modify_index,
            "RevertedJobVersion": reverted,
            "Index": self.index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(max_parallel: usize) -> Strategy {
        Strategy {
            max_parallel,
            health_check: "checks",
            min_healthy_time: 10,
            healthy_deadline: 100,
            progress_deadline: 1000,
            auto_revert: true,
            auto_promote: false,
            canary: 0,
        }
    }

    fn deployment(status: &'static str, groups: &[(&str, DeploymentState)]) -> Deployment {
        Deployment {
            id: "d".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            job_version: 1,
            job_modify_index: 1,
            job_spec_modify_index: 1,
            job_create_index: 1,
            groups: groups
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
            status,
            status_description: String::new(),
            create_index: 1,
            modify_index: 1,
            create_time: 0,
            modify_time: 0,
        }
    }

    /// scheduler/reconcile_test.go's update-limit cases, in the simulator's terms.
    #[test]
    fn destructive_budget_follows_compute_under_provisioned_by() {
        let s = strategy(2);
        let (running, failed, paused) = ("running", "failed", "paused");
        // (why, strategy, allocations changing, deployment, health of its allocations, budget)
        type Case<'a> = (
            &'a str,
            Option<&'a Strategy>,
            usize,
            Option<&'a str>,
            Vec<Option<bool>>,
            usize,
        );
        let cases: Vec<Case> = vec![
            ("no update block: all at once", None, 5, None, vec![], 5),
            (
                "nothing changing: no limit",
                Some(&s),
                0,
                Some(running),
                vec![],
                5,
            ),
            (
                "new version, no deployment yet: max_parallel",
                Some(&s),
                5,
                None,
                vec![],
                2,
            ),
            (
                "failed deployment: nothing",
                Some(&s),
                5,
                Some(failed),
                vec![],
                0,
            ),
            (
                "paused deployment: nothing",
                Some(&s),
                5,
                Some(paused),
                vec![],
                0,
            ),
            (
                "one unhealthy stops the rollout",
                Some(&s),
                5,
                Some(running),
                vec![Some(true), Some(false)],
                0,
            ),
            (
                "one undecided takes a slot",
                Some(&s),
                5,
                Some(running),
                vec![Some(true), None],
                1,
            ),
            (
                "healthy ones free their slots",
                Some(&s),
                5,
                Some(running),
                vec![Some(true), Some(true)],
                2,
            ),
            (
                "never below zero",
                Some(&s),
                5,
                Some(running),
                vec![None, None, None],
                0,
            ),
        ];
        for (why, strategy, changing, deployment, health, want) in cases {
            assert_eq!(
                destructive_budget(strategy, 5, changing, deployment, &health),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn health_verdicts_follow_the_tracker() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let at = |nanos: i64| t0 + chrono::Duration::nanoseconds(nanos);
        let input = |now, since: Option<i64>, failed| HealthInput {
            now: at(now),
            watch_start: t0,
            healthy_since: since.map(at),
            failed,
            min_healthy_time: 10,
            healthy_deadline: 100,
        };
        let cases = [
            ("just started", input(1, None, false), Verdict::Undecided),
            (
                "healthy, not long enough",
                input(15, Some(10), false),
                Verdict::Undecided,
            ),
            (
                "healthy long enough",
                input(20, Some(10), false),
                Verdict::Healthy,
            ),
            (
                "a failed task wins",
                input(20, Some(10), true),
                Verdict::Unhealthy,
            ),
            (
                "deadline passed",
                input(100, None, false),
                Verdict::Unhealthy,
            ),
            (
                "deadline beats a late start",
                input(105, Some(99), false),
                Verdict::Unhealthy,
            ),
            (
                "healthy before the deadline, seen after it",
                input(130, Some(50), false),
                Verdict::Healthy,
            ),
        ];
        for (why, input, want) in cases {
            assert_eq!(judge(&input), want, "{why}");
        }
    }

    #[test]
    fn a_group_short_of_healthy_fails_and_reverts_only_with_auto_revert() {
        let short = |auto_revert| DeploymentState {
            auto_revert,
            desired_total: 3,
            healthy_allocs: 1,
            ..DeploymentState::default()
        };
        let done = DeploymentState {
            desired_total: 3,
            healthy_allocs: 3,
            ..DeploymentState::default()
        };
        let cases = [
            ("all groups done", vec![("a", done.clone())], (false, false)),
            ("short, no revert", vec![("a", short(false))], (true, false)),
            ("short, revert", vec![("a", short(true))], (true, true)),
            (
                "one of two short",
                vec![("a", done.clone()), ("b", short(true))],
                (true, true),
            ),
        ];
        for (why, groups, want) in cases {
            assert_eq!(should_fail(&deployment("running", &groups)), want, "{why}");
        }
    }

    #[test]
    fn the_progress_cutoff_ignores_done_groups() {
        let group = |healthy, by| DeploymentState {
            desired_total: 2,
            healthy_allocs: healthy,
            require_progress_by: by,
            ..DeploymentState::default()
        };
        let d = deployment(
            "running",
            &[("a", group(2, Some(5))), ("b", group(1, Some(9)))],
        );
        assert_eq!(progress_cutoff(&d), Some(9));
        let d = deployment("running", &[("a", group(1, None))]);
        assert_eq!(progress_cutoff(&d), None, "no placement yet, no deadline");
        assert!(!groups_complete(&deployment(
            "running",
            &[("a", group(1, None))]
        )));
        assert!(groups_complete(&deployment(
            "running",
            &[("a", group(2, None))]
        )));
    }
}
