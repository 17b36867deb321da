//! Evaluations and the generic scheduler: for one job, compare the allocations that should
//! exist with those that do, and place, stop or replace. Placements that fit nowhere leave a
//! `blocked` evaluation that is retried when capacity appears, as in Nomad.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cluster::{Cluster, StreamEvent};
use super::deployments::Strategy;
use super::model::{new_id, Alloc, ClientStatus, Eval, Fault, JobRecord, TaskState};
use super::placement::{group_resources, Ask, Placer};
use super::reconcile::{
    compute_group, CanaryOf, DeploymentChange, DeploymentView, GroupSnapshot, LastInSlot,
    LiveAlloc, Reschedule,
};
use super::render;
use super::reschedule::{next_reschedule, Next, ReschedulePolicy, WINDOW as RESCHEDULE_WINDOW};

impl Cluster {
    /// Creates an evaluation for a job (status `pending`) and emits its event.
    pub fn create_eval(
        &mut self,
        index: u64,
        job: &JobRecord,
        triggered_by: &str,
        event_type: &'static str,
    ) -> String {
        let now = self.clock.now_nanos();
        let eval = Eval {
            id: new_id(),
            namespace: job.namespace.clone(),
            priority: job
                .spec
                .get("Priority")
                .and_then(Value::as_i64)
                .unwrap_or(50),
            type_: job.job_type().to_string(),
            triggered_by: triggered_by.to_string(),
            job_id: job.id.clone(),
            job_modify_index: job.job_modify_index,
            node_id: String::new(),
            status: "pending",
            status_description: String::new(),
            previous_eval: String::new(),
            blocked_eval: String::new(),
            failed_tg_allocs: None,
            queued_allocations: BTreeMap::new(),
            wait_until: None,
            create_index: index,
            modify_index: index,
            create_time: now,
            modify_time: now,
        };
        let id = eval.id.clone();
        self.emit_eval(&eval, event_type, index);
        self.insert_eval(eval);
        self.tables.evals = index;
        id
    }

    pub fn emit_eval(&mut self, eval: &Eval, event_type: &'static str, index: u64) {
        let event = StreamEvent {
            topic: "Evaluation",
            type_: event_type,
            key: eval.id.clone(),
            namespace: eval.namespace.clone(),
            filter_keys: Some(vec![eval.job_id.clone(), String::new()]),
            index,
            payload: json!({"Evaluation": render::eval(eval)}),
        };
        self.emit(event);
    }

    pub fn emit_alloc(&mut self, alloc_id: &str, event_type: &'static str, index: u64) {
        let Some(alloc) = self.allocs.get(alloc_id) else {
            return;
        };
        let mut payload = render::alloc(alloc, false);
        payload["Job"] = Value::Null;
        let event = StreamEvent {
            topic: "Allocation",
            type_: event_type,
            key: alloc.id.clone(),
            namespace: alloc.namespace.clone(),
            filter_keys: Some(vec![alloc.job_id.clone(), String::new()]),
            index,
            payload: json!({"Allocation": payload}),
        };
        self.emit(event);
    }

    pub fn emit_job(&mut self, namespace: &str, id: &str, event_type: &'static str, index: u64) {
        let Some(job) = self.job(namespace, id) else {
            return;
        };
        let event = StreamEvent {
            topic: "Job",
            type_: event_type,
            key: id.to_string(),
            namespace: namespace.to_string(),
            filter_keys: None,
            index,
            payload: json!({"Job": render::job(self, job)}),
        };
        self.emit(event);
    }

    /// Runs the scheduler for an evaluation in its own commit (a plan apply in Nomad).
    pub fn process_eval(&mut self, eval_id: &str) {
        let Some(eval) = self.evals.get(eval_id).cloned() else {
            return;
        };
        if eval.status != "pending" {
            return;
        }
        let index = self.bump();
        let status_before = self
            .job(&eval.namespace, &eval.job_id)
            .map(|j| render::job_status(self, j));
        let failures = self.reconcile_job(&eval.namespace, &eval.job_id, &eval.id, index);
        let now = self.clock.now_nanos();
        let mut finished = self.evals.get(eval_id).cloned().expect("eval exists");
        finished.status = "complete";
        finished.modify_index = index;
        finished.modify_time = now;
        // Blocked evaluations of this job are superseded by this run.
        let superseded: Vec<String> = self
            .evals_of_job(&eval.namespace, &eval.job_id)
            .filter(|e| e.status == "blocked" && e.id != eval.id)
            .map(|e| e.id.clone())
            .collect();
        for id in superseded {
            if let Some(old) = self.evals.get_mut(&id) {
                old.status = "canceled";
                old.status_description = "evaluation reached terminal state".into();
                old.modify_index = index;
            }
        }
        let groups: Vec<String> = self
            .job(&eval.namespace, &eval.job_id)
            .map(|j| {
                j.groups()
                    .iter()
                    .filter_map(|g| g.get("Name").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        finished.queued_allocations = groups.into_iter().map(|g| (g, 0)).collect();
        if !failures.is_empty() {
            let failed: serde_json::Map<String, Value> = failures
                .iter()
                .map(|(g, (m, _))| (g.clone(), m.clone()))
                .collect();
            finished.failed_tg_allocs = Some(Value::Object(failed));
            let queued: BTreeMap<String, u64> =
                failures.iter().map(|(g, (_, n))| (g.clone(), *n)).collect();
            finished.queued_allocations = queued.clone();
            let blocked = Eval {
                id: new_id(),
                status: "blocked",
                status_description: "created to place remaining allocations".into(),
                triggered_by: "queued-allocs".into(),
                previous_eval: finished.id.clone(),
                failed_tg_allocs: None,
                queued_allocations: queued,
                create_index: index,
                modify_index: index,
                create_time: now,
                modify_time: now,
                ..finished.clone()
            };
            finished.blocked_eval = blocked.id.clone();
            self.emit_eval(&blocked, "PlanResult", index);
            self.insert_eval(blocked);
        }
        self.emit_eval(&finished, "PlanResult", index);
        self.insert_eval(finished);
        self.tables.evals = index;
        self.touch_job(
            &eval.namespace,
            &eval.job_id,
            status_before,
            index,
            "PlanResult",
        );
    }

    /// Bumps a job's ModifyIndex (and tells the stream) when its computed status changed.
    pub fn touch_job(
        &mut self,
        namespace: &str,
        id: &str,
        before: Option<&'static str>,
        index: u64,
        event_type: &'static str,
    ) {
        let after = self.job(namespace, id).map(|j| render::job_status(self, j));
        if after.is_some() && after != before {
            if let Some(job) = self.jobs.get_mut(&(namespace.to_string(), id.to_string())) {
                job.modify_index = index;
            }
            self.tables.jobs = index;
            self.emit_job(namespace, id, event_type, index);
        }
    }

    /// Brings one job's allocations in line with its spec. Returns, per group that could not
    /// be fully placed, the failure metrics and how many allocations are still queued.
    fn reconcile_job(
        &mut self,
        namespace: &str,
        job_id: &str,
        eval_id: &str,
        index: u64,
    ) -> BTreeMap<String, (Value, u64)> {
        let mut failures = BTreeMap::new();
        // A deregistered, stopped, periodic or parameterized job runs nothing of its own
        // (periodic and parameterized jobs run as children).
        let runnable = self
            .job(namespace, job_id)
            .filter(|job| !(job.stop || job.is_periodic() || job.is_parameterized()))
            .cloned();
        // reconcile.go `cancelUnneededDeployments` runs first, for stopped jobs too.
        let mut deployment = self.current_deployment((namespace, job_id), index);
        let Some(job) = runnable else {
            self.stop_allocs(
                namespace,
                job_id,
                None,
                "alloc not needed due to job update",
                index,
            );
            return failures;
        };
        let rendered = std::sync::Arc::new(render::job(self, &job));
        let group_names: Vec<String> = job
            .groups()
            .iter()
            .filter_map(|g| g.get("Name").and_then(Value::as_str).map(String::from))
            .collect();
        // Groups that left the spec lose their allocations.
        let orphaned: Vec<String> = self
            .allocs_of_job(namespace, job_id)
            .filter(|a| !a.is_terminal() && !group_names.contains(&a.group))
            .map(|a| a.id.clone())
            .collect();
        for id in orphaned {
            self.stop_alloc(&id, "alloc not needed due to job update", index);
        }
        let mut placer = Placer::new(self, rendered.as_ref(), eval_id);
        let mut open_work = false;
        let mut created = None;
        for group in job.groups() {
            let name = group
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let snapshot =
                self.group_snapshot(&job, &rendered, group, deployment.as_deref(), eval_id);
            let plan = compute_group(&snapshot);
            open_work |= plan.held_back;
            // Apply, in reconcile.go's order: extras, the deployment, in-place updates,
            // destructive stops, placements.
            for id in &plan.stop_extra {
                self.stop_alloc(id, "alloc not needed due to job update", index);
            }
            let (create, desired) = match plan.deployment {
                DeploymentChange::None => (false, None),
                DeploymentChange::Create {
                    desired_total,
                    desired_canaries,
                } => (true, Some((desired_total, desired_canaries))),
                DeploymentChange::AddGroup {
                    desired_total,
                    desired_canaries,
                } => (false, Some((desired_total, desired_canaries))),
            };
            if create {
                deployment = self.create_deployment((namespace, job_id), index);
                created = deployment.clone();
            }
            if let (Some((total, canaries)), Some(id), Some(strategy)) =
                (desired, &deployment, &snapshot.strategy)
            {
                self.add_deployment_group(id, &name, strategy, total, canaries);
            }
            let joining = deployment
                .as_ref()
                .filter(|d| self.deployments.get(*d).is_some_and(|d| d.active()))
                .cloned();
            for id in &plan.in_place {
                self.update_in_place(id, &job, &rendered, joining.as_deref(), index);
            }
            for id in &plan.destructive {
                self.stop_alloc(id, "alloc is being updated due to job update", index);
            }
            self.follow_up_later(&job, eval_id, plan.reschedule_later.clone(), index);
            let (cpu, memory) = group_resources(group);
            let mut unplaced = 0;
            let mut metrics = None;
            let placements = plan
                .canaries
                .iter()
                .map(|slot| (*slot, true))
                .chain(plan.place.iter().map(|slot| (*slot, false)));
            for (slot, canary) in placements {
                let ask = Ask {
                    namespace,
                    job_id,
                    job: rendered.as_ref(),
                    group,
                    cpu,
                    memory,
                };
                match placer.choose(self, &ask) {
                    Ok((node_id, placement_metrics)) => {
                        placer.record(&node_id, &ask);
                        let placed = self.place(
                            &job,
                            &rendered,
                            group,
                            Slot {
                                group: &name,
                                index: slot,
                                canary,
                            },
                            &node_id,
                            eval_id,
                            index,
                            (cpu, memory),
                        );
                        if let Some(alloc) = self.allocs.get_mut(&placed) {
                            alloc.metrics = placement_metrics.to_json();
                        }
                        if let Some(deployment) = &joining {
                            self.join_deployment(&placed, deployment, index);
                            if canary {
                                self.count_canary(&placed, deployment);
                            }
                        }
                    }
                    Err(failure) => {
                        unplaced += 1;
                        open_work = true;
                        metrics = Some(failure.to_json());
                    }
                }
            }
            if unplaced > 0 {
                failures.insert(name, (metrics.unwrap_or(Value::Null), unplaced));
            }
        }
        // reconcile.go `computeDeploymentUpdates`: a new deployment waiting on canaries says
        // how they will be promoted.
        if let Some(id) = &created {
            self.describe_promotion(id);
        }
        // The plan applied: one event for the deployment it created or changed.
        if let Some(id) = deployment.as_ref().filter(|id| {
            self.deployments
                .get(*id)
                .is_some_and(|d| d.modify_index == index)
        }) {
            self.emit_deployment(id, "DeploymentStatusUpdate", index);
        }
        // reconcile.go `computeDeploymentComplete`: nothing left to do and every group healthy.
        if let Some(id) = deployment {
            let done = self
                .deployments
                .get(&id)
                .is_some_and(|d| d.status == "running" && super::deployments::groups_complete(d));
            if done && !open_work {
                self.complete_deployment(&id, index);
            }
        }
        failures
    }

    /// What [`compute_group`] decides from, for one group: its live allocations (an `unknown`
    /// one, its node disconnected, is not: it gets a replacement meanwhile, as reconcile.go's
    /// disconnecting allocations join `rescheduleNow`), whether each would be updated in place
    /// or replaced (scheduler/util.go `tasksUpdated`, see [`super::updates`]), the deployment,
    /// how each slot's last allocation ended (a failed one: when its reschedule policy lets it
    /// be replaced, [`super::reschedule`]), and the slots whose policy is spent.
    fn group_snapshot(
        &self,
        job: &JobRecord,
        rendered: &Value,
        group: &Value,
        deployment: Option<&str>,
        eval_id: &str,
    ) -> GroupSnapshot {
        let name = group
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let count = group.get("Count").and_then(Value::as_u64).unwrap_or(1) as usize;
        let batch = matches!(job.job_type(), "batch" | "sysbatch");
        let of_group = || {
            self.allocs_of_job(&job.namespace, &job.id)
                .filter(move |a| a.group == name)
        };
        let live = of_group()
            .filter(|a| a.desired_status == "run" && a.client_status != ClientStatus::Unknown)
            .filter(|a| {
                !a.client_status.is_terminal()
                    || (batch && a.client_status == ClientStatus::Complete)
            })
            .map(|a| LiveAlloc {
                id: a.id.clone(),
                slot: a.index,
                current_version: a.job_version == job.version,
                destructive: a.job_version != job.version
                    && super::updates::tasks_updated(&a.job, rendered, name).is_destructive(),
                deployment_id: a.deployment_id.clone(),
                healthy: a.healthy,
                canary: self.placed_canary(a),
            })
            .collect();
        let now = self.clock.now_nanos();
        let policy = ReschedulePolicy::of(job.job_type(), Some(group));
        let mut last_in_slot = BTreeMap::new();
        let mut exhausted_slots = std::collections::BTreeSet::new();
        let mut newest: BTreeMap<usize, u64> = BTreeMap::new();
        for a in of_group().filter(|a| a.is_terminal()) {
            if newest.get(&a.index).is_some_and(|n| *n > a.create_index) {
                continue;
            }
            newest.insert(a.index, a.create_index);
            exhausted_slots.remove(&a.index);
            let last = match a.client_status {
                ClientStatus::Lost => LastInSlot::LostOrMigrated,
                _ if a.migrate => LastInSlot::LostOrMigrated,
                // Stopped on purpose (an update, a scale-down): no reschedule to wait for.
                ClientStatus::Failed if a.desired_status != "run" => LastInSlot::Failed {
                    deployment_id: a.deployment_id.clone(),
                    reschedule: Reschedule::Now,
                },
                ClientStatus::Failed => {
                    let reschedule =
                        match next_reschedule(&policy, &a.reschedule_attempts(), a.failed_at()) {
                            Next::Never => {
                                exhausted_slots.insert(a.index);
                                Reschedule::Now
                            }
                            // reconcile_util.go `updateByReschedulable`: now when this is its
                            // follow-up evaluation or the time is within the window.
                            Next::At { time, .. }
                                if a.followup_eval_id == eval_id
                                    || time - now <= RESCHEDULE_WINDOW =>
                            {
                                Reschedule::Now
                            }
                            Next::At { time, .. } => Reschedule::Later {
                                alloc_id: a.id.clone(),
                                at: time,
                                followup: !a.followup_eval_id.is_empty(),
                            },
                        };
                    LastInSlot::Failed {
                        deployment_id: a.deployment_id.clone(),
                        reschedule,
                    }
                }
                _ => LastInSlot::Stopped,
            };
            last_in_slot.insert(a.index, last);
        }
        GroupSnapshot {
            count,
            strategy: Strategy::of(job.job_type(), group),
            had_running: of_group().any(|a| a.job_version == job.version),
            live,
            deployment: deployment.and_then(|id| self.deployments.get(id)).map(|d| {
                let state = d.groups.get(name);
                DeploymentView {
                    id: d.id.clone(),
                    status: d.status,
                    has_group: state.is_some(),
                    desired_canaries: state.map_or(0, |s| s.desired_canaries as usize),
                    promoted: state.is_some_and(|s| s.promoted),
                }
            }),
            last_in_slot,
            exhausted_slots,
        }
    }

    /// An in-place update: the allocation runs the new version as it is; with an active
    /// deployment it joins it and its health is judged again (generic_sched.go
    /// `computeJobAllocs`: `DeploymentID` set, `DeploymentStatus` cleared).
    fn update_in_place(
        &mut self,
        id: &str,
        job: &JobRecord,
        rendered: &std::sync::Arc<Value>,
        deployment: Option<&str>,
        index: u64,
    ) {
        if let Some(alloc) = self.allocs.get_mut(id) {
            alloc.job_version = job.version;
            alloc.job = std::sync::Arc::clone(rendered);
            alloc.modify_index = index;
            alloc.alloc_modify_index = index;
        }
        match deployment {
            Some(deployment) => self.join_deployment(id, deployment, index),
            None => self.emit_alloc(id, "PlanResult", index),
        }
    }

    /// An allocation becomes part of a deployment: counted as placed, health unknown again,
    /// and the tracker starts over if its tasks already run.
    fn join_deployment(&mut self, id: &str, deployment: &str, index: u64) {
        let now = self.clock.now();
        let Some(alloc) = self.allocs.get_mut(id) else {
            return;
        };
        if alloc.deployment_id == deployment {
            return;
        }
        alloc.deployment_id = deployment.to_string();
        alloc.healthy = None;
        self.awaiting_health.insert(id.to_string());
        alloc.healthy_since = None;
        alloc.health_watch_start = (alloc.client_status == ClientStatus::Running).then_some(now);
        let group = alloc.group.clone();
        self.emit_alloc(id, "PlanResult", index);
        self.count_placement(deployment, &group, index);
    }

    /// reconcile.go `createRescheduleLaterEvals`: failed allocations to replace later get
    /// follow-up evaluations, `pending` until their time (`WaitUntil`), one per batch of
    /// times within `batchedFailedAllocWindowSize`; each allocation names its own
    /// (`FollowupEvalID`), so later evaluations do not ask again.
    fn follow_up_later(
        &mut self,
        job: &JobRecord,
        eval_id: &str,
        mut later: Vec<(String, i64)>,
        index: u64,
    ) {
        later.sort_by_key(|(_, at)| *at);
        let mut batch: Option<(i64, String)> = None;
        for (alloc_id, at) in later {
            let follow_up = match &batch {
                Some((start, id)) if at - start < super::reschedule::BATCH_WINDOW => id.clone(),
                _ => {
                    let id = self.create_eval(index, job, "alloc-failure", "EvaluationUpdated");
                    if let Some(eval) = self.evals.get_mut(&id) {
                        eval.wait_until = Some(at);
                        eval.previous_eval = eval_id.to_string();
                        eval.status_description = "created for delayed rescheduling".into();
                    }
                    self.delayed_evals.insert((at, id.clone()));
                    batch = Some((at, id.clone()));
                    id
                }
            };
            if let Some(alloc) = self.allocs.get_mut(&alloc_id) {
                alloc.followup_eval_id = follow_up;
                alloc.modify_index = index;
            }
            self.emit_alloc(&alloc_id, "PlanResult", index);
        }
    }

    /// The follow-up evaluations whose time has come run (the eval broker's delay heap).
    pub fn run_due_evals(&mut self) {
        let now = self.clock.now_nanos();
        while let Some((at, id)) = self.delayed_evals.first().cloned() {
            if at > now {
                break;
            }
            self.delayed_evals.pop_first();
            self.process_eval(&id);
        }
    }

    /// The deployment an allocation was placed for as a canary (in its `PlacedCanaries`).
    fn placed_canary(&self, alloc: &Alloc) -> Option<CanaryOf> {
        let d = self.deployments.get(&alloc.deployment_id)?;
        let state = d.groups.get(&alloc.group)?;
        state.placed_canaries.contains(&alloc.id).then(|| CanaryOf {
            deployment_id: d.id.clone(),
            promoted: state.promoted,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        job: &JobRecord,
        rendered: &std::sync::Arc<Value>,
        group: &Value,
        slot: Slot,
        node_id: &str,
        eval_id: &str,
        index: u64,
        (cpu, memory): (u64, u64),
    ) -> String {
        let Slot {
            group: group_name,
            index: slot,
            canary,
        } = slot;
        let now = self.clock.now();
        let node_name = self
            .nodes
            .get(node_id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        // The newest terminal allocation in this slot is the one being replaced (a canary
        // replaces nothing: it runs beside the slot's allocation).
        let previous = self
            .allocs_of_job(&job.namespace, &job.id)
            .filter(|a| {
                !canary
                    && a.group == group_name
                    && a.index == slot
                    && a.is_terminal()
                    && a.next_allocation.is_empty()
            })
            .max_by_key(|a| a.create_index)
            .map(|a| {
                let rescheduled = a.client_status == ClientStatus::Failed;
                (
                    a.id.clone(),
                    a.node_id.clone(),
                    a.reschedule_events.clone(),
                    rescheduled,
                    a.reschedule_attempts(),
                    a.failed_at(),
                )
            });
        let id = new_id();
        let mut reschedule_events = Vec::new();
        if let Some((prev_id, prev_node, prev_events, rescheduled, attempts, failed_at)) = &previous
        {
            // As Nomad's scheduler: only a failed allocation's replacement is a reschedule
            // (an update or a lost node's replacement is not), and the tracker keeps the
            // events inside the policy's interval, or the last five when unlimited.
            if *rescheduled {
                let now = self.clock.now_nanos();
                let policy = ReschedulePolicy::of(job.job_type(), Some(group));
                let delay = super::reschedule::next_delay(&policy, attempts, *failed_at);
                let attempt = super::reschedule::event(prev_id, prev_node, now, delay);
                reschedule_events =
                    super::reschedule::carried_events(prev_events, &policy, now, attempt);
            }
            if let Some(prev) = self.allocs.get_mut(prev_id) {
                prev.next_allocation = id.clone();
                prev.modify_index = index;
            }
        }
        let tasks = group
            .get("Tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("Name").and_then(Value::as_str))
            .map(|name| (name.to_string(), TaskState::pending(now)))
            .collect();
        let ports = self.assign_ports(group, node_id);
        let start_delay = chrono::Duration::from_std(self.config.start_delay).unwrap_or_default();
        let alloc = Alloc {
            id: id.clone(),
            namespace: job.namespace.clone(),
            job_id: job.id.clone(),
            job_version: job.version,
            job_type: job.job_type().to_string(),
            group: group_name.to_string(),
            index: slot,
            node_id: node_id.to_string(),
            node_name,
            eval_id: eval_id.to_string(),
            desired_status: "run",
            desired_description: String::new(),
            migrate: false,
            client_status: ClientStatus::Pending,
            client_description: "No tasks have started".into(),
            tasks,
            previous_allocation: previous.map(|p| p.0).unwrap_or_default(),
            next_allocation: String::new(),
            reschedule_events,
            create_index: index,
            modify_index: index,
            alloc_modify_index: index,
            create_time: self.clock.now_nanos(),
            modify_time: self.clock.now_nanos(),
            start_at: now + start_delay,
            finish_at: None,
            fault: self.image_fault(group),
            cpu,
            memory,
            ports,
            job: std::sync::Arc::clone(rendered),
            critical_since: None,
            healthy: None,
            health_timestamp: 0,
            health_modify_index: 0,
            health_watch_start: None,
            healthy_since: None,
            deployment_id: String::new(),
            canary: false,
            restarts: None,
            restarting: false,
            template_blocked_since: None,
            service_env: Default::default(),
            followup_eval_id: String::new(),
            metrics: Value::Null,
        };
        self.insert_alloc(alloc);
        self.tables.allocs = index;
        self.emit_alloc(&id, "PlanResult", index);
        id
    }

    /// The fault `PUT /_sim/images` attached to an image one of the group's tasks runs (a bad
    /// image: its tasks exit as soon as they start).
    fn image_fault(&self, group: &Value) -> Fault {
        let images: Vec<&str> = group
            .get("Tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("Config")?.get("image")?.as_str())
            .collect();
        self.image_faults
            .iter()
            .rev()
            .find(|(image, _)| images.contains(&image.as_str()))
            .map_or(Fault::None, |(_, fault)| *fault)
    }

    /// Static ports as asked; dynamic ones from the node's range, avoiding ports in use there.
    fn assign_ports(&self, group: &Value, node_id: &str) -> Vec<(String, u16, u16)> {
        let mut taken: Vec<u16> = self
            .allocs_on_node(node_id)
            .filter(|a| !a.is_terminal())
            .flat_map(|a| a.ports.iter().map(|p| p.1))
            .collect();
        let mut ports = Vec::new();
        // Group networks, and the older task-level `Resources.Networks`.
        let mut networks = group
            .get("Networks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for task in group
            .get("Tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            networks.extend(
                task.get("Resources")
                    .and_then(|r| r.get("Networks"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        for network in &networks {
            for reserved in network
                .get("ReservedPorts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (label, to) = port_label_and_target(reserved);
                let value = reserved.get("Value").and_then(Value::as_u64).unwrap_or(0) as u16;
                taken.push(value);
                ports.push((label, value, to));
            }
            for dynamic in network
                .get("DynamicPorts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (label, to) = port_label_and_target(dynamic);
                let value = (20000u16..32000)
                    .find(|p| !taken.contains(p))
                    .unwrap_or(20000);
                taken.push(value);
                ports.push((label, value, to));
            }
        }
        ports
    }

    /// Marks allocations of a job (one group, or all) to stop.
    pub fn stop_allocs(
        &mut self,
        namespace: &str,
        job_id: &str,
        group: Option<&str>,
        why: &str,
        index: u64,
    ) {
        let ids: Vec<String> = self
            .allocs_of_job(namespace, job_id)
            .filter(|a| !a.is_terminal() && group.is_none_or(|g| a.group == g))
            .map(|a| a.id.clone())
            .collect();
        for id in ids {
            self.stop_alloc(&id, why, index);
        }
    }

    pub fn stop_alloc(&mut self, id: &str, why: &str, index: u64) {
        if let Some(alloc) = self.allocs.get_mut(id) {
            alloc.desired_status = "stop";
            alloc.desired_description = why.to_string();
            alloc.modify_index = index;
            alloc.alloc_modify_index = index;
            alloc.modify_time = self.clock.now_nanos();
            self.tables.allocs = index;
        }
        self.emit_alloc(id, "PlanResult", index);
    }

    /// `ClassEligibility`: every computed node class, and whether it could take work.
    pub fn class_eligibility(&self) -> Value {
        let classes: serde_json::Map<String, Value> = self
            .nodes
            .values()
            .map(|n| {
                (
                    n.computed_class(),
                    json!(n.status == "ready" && n.eligibility == "eligible"),
                )
            })
            .collect();
        Value::Object(classes)
    }

    /// Re-runs every job that has a blocked evaluation: capacity may have appeared.
    pub fn unblock_evals(&mut self) {
        let blocked: Vec<(String, String)> = self
            .evals
            .values()
            .filter(|e| e.status == "blocked")
            .map(|e| (e.namespace.clone(), e.job_id.clone()))
            .collect();
        for (namespace, job_id) in blocked {
            self.reevaluate(&namespace, &job_id, "queued-allocs");
        }
    }

    /// Creates and runs an evaluation for one job.
    pub fn reevaluate(&mut self, namespace: &str, job_id: &str, triggered_by: &str) {
        let Some(job) = self.job(namespace, job_id).cloned() else {
            return;
        };
        let index = self.bump();
        let eval_id = self.create_eval(index, &job, triggered_by, "EvaluationUpdated");
        self.process_eval(&eval_id);
    }
}

/// A port request's label and the port it maps to inside the task (`To`, 0 when unset).
fn port_label_and_target(port: &Value) -> (String, u16) {
    let label = port
        .get("Label")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let to = port.get("To").and_then(Value::as_u64).unwrap_or(0) as u16;
    (label.to_string(), to)
}

/// Where an allocation goes in its group: its name index, and whether it is a canary.
struct Slot<'a> {
    group: &'a str,
    index: usize,
    canary: bool,
}
