//! What the simulated client agents do as time passes: start and stop tasks, finish batch runs,
//! heartbeat (or stop heartbeating), restart failing tasks, and what the servers do in turn:
//! mark silent nodes down, replace lost allocations, launch periodic jobs.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cluster::{Cluster, NextLaunch, StreamEvent};
use super::config::{BatchOutcome, NodeSpec};
use super::model::{new_id, Alloc, ClientStatus, Fault, JobRecord, Node, TaskEvent, TaskState};
use super::render;

fn push_event(state: &mut TaskState, event: TaskEvent) {
    // The runs the logs are written from: a start opens one, the end of the task closes it.
    match event.type_ {
        "Started" => state.runs.push(super::model::TaskRun {
            started: chrono::DateTime::from_timestamp_nanos(event.time),
            ended: None,
        }),
        "Terminated" | "Killed" => {
            if let Some(run) = state.runs.last_mut().filter(|r| r.ended.is_none()) {
                run.ended = Some((
                    chrono::DateTime::from_timestamp_nanos(event.time),
                    event.exit_code,
                ));
            }
        }
        _ => {}
    }
    state.events.push(event);
    // Nomad keeps the last 10 task events.
    let excess = state.events.len().saturating_sub(10);
    state.events.drain(..excess);
}

impl Cluster {
    pub fn add_node(&mut self, spec: &NodeSpec) -> String {
        let index = self.bump();
        let now = self.clock.now();
        let id = new_id();
        let address = format!(
            "127.0.{}.{}",
            (self.nodes.len() / 250) % 250,
            self.nodes.len() % 250 + 1
        );
        let mut attributes = BTreeMap::new();
        for (key, value) in [
            ("kernel.name", "linux".to_string()),
            ("os.name", "debian".to_string()),
            ("cpu.arch", "amd64".to_string()),
            ("cpu.totalcompute", spec.cpu.to_string()),
            ("memory.totalbytes", (spec.memory * 1024 * 1024).to_string()),
            ("driver.docker", "1".to_string()),
            ("nomad.version", "1.9.0".to_string()),
            ("unique.hostname", spec.name.clone()),
            ("unique.network.ip-address", address.clone()),
        ] {
            attributes.insert(key.to_string(), value);
        }
        let node = Node {
            id: id.clone(),
            secret_id: new_id(),
            name: spec.name.clone(),
            datacenter: spec.datacenter.clone(),
            class: spec.class.clone(),
            pool: spec.pool.clone(),
            meta: spec.meta.clone(),
            attributes,
            cpu: spec.cpu,
            memory: spec.memory,
            host_volumes: spec.host_volumes.clone(),
            csi_plugins: spec.csi_plugins.clone(),
            address,
            status: "ready",
            eligibility: "eligible",
            drain: None,
            last_drain: None,
            create_index: index,
            modify_index: index,
            status_updated_at: now.timestamp(),
            events: vec![
                json!({"Message": "Node registered", "Subsystem": "Cluster", "Details": null, "CreateIndex": 0, "Timestamp": render::rfc3339(Some(now))}),
            ],
            heartbeat_stopped: false,
            partitioned: false,
            last_heartbeat: now,
        };
        self.nodes.insert(id.clone(), node);
        self.tables.nodes = index;
        self.emit_node(&id, "NodeRegistration", index);
        self.unblock_evals();
        id
    }

    pub fn emit_node(&mut self, id: &str, event_type: &'static str, index: u64) {
        let Some(node) = self.nodes.get(id) else {
            return;
        };
        let payload = json!({"Node": render::node(node, self.clock.now(), false)});
        self.emit(StreamEvent {
            topic: "Node",
            type_: event_type,
            key: id.to_string(),
            namespace: String::new(),
            filter_keys: None,
            index,
            payload,
        });
    }

    fn set_node_status(&mut self, id: &str, status: &'static str) {
        let index = self.bump();
        let now = self.clock.now();
        if let Some(node) = self.nodes.get_mut(id) {
            node.status = status;
            node.modify_index = index;
            node.status_updated_at = now.timestamp();
            node.events.push(json!({"Message": format!("Node status changed to {status}"), "Subsystem": "Cluster", "Details": null, "CreateIndex": index, "Timestamp": render::rfc3339(Some(now))}));
            let excess = node.events.len().saturating_sub(10);
            node.events.drain(..excess);
        }
        self.tables.nodes = index;
        self.emit_node(id, "NodeStreamEvent", index);
    }

    /// `kill`: heartbeats stop; the node goes `down` after TTL + grace.
    pub fn kill_node(&mut self, id: &str) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.heartbeat_stopped = true;
        }
    }

    /// `partition`: the node is cut off; it goes `disconnected` after TTL + grace.
    pub fn partition_node(&mut self, id: &str) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.partitioned = true;
        }
    }

    /// `revive`: heartbeats resume; a down node comes back `ready` (with no allocations: those
    /// were replaced elsewhere, as Nomad does).
    pub fn revive_node(&mut self, id: &str) {
        if let Some(node) = self.nodes.get_mut(id) {
            node.heartbeat_stopped = false;
            node.partitioned = false;
            node.last_heartbeat = self.clock.now();
        }
    }

    pub fn set_eligibility(&mut self, id: &str, eligible: bool) -> u64 {
        let index = self.bump();
        if let Some(node) = self.nodes.get_mut(id) {
            node.eligibility = if eligible { "eligible" } else { "ineligible" };
            node.modify_index = index;
        }
        self.tables.nodes = index;
        self.emit_node(id, "NodeEligibility", index);
        if eligible {
            self.unblock_evals();
        }
        index
    }

    /// Starts (or with `None` cancels) a drain: the node turns ineligible and its allocations
    /// are migrated elsewhere.
    pub fn drain_node(
        &mut self,
        id: &str,
        spec: Option<&Value>,
        mark_eligible: bool,
    ) -> (u64, Vec<String>) {
        let index = self.bump();
        let now = render::rfc3339(Some(self.clock.now()));
        let mut jobs = Vec::new();
        if let Some(node) = self.nodes.get_mut(id) {
            node.modify_index = index;
            match spec {
                Some(spec) => {
                    let deadline = spec.get("Deadline").and_then(Value::as_i64).unwrap_or(0);
                    node.drain = Some(
                        json!({"Deadline": deadline, "IgnoreSystemJobs": spec.get("IgnoreSystemJobs").cloned().unwrap_or(json!(false)), "ForceDeadline": render::ZERO_TIME, "StartedAt": now}),
                    );
                    node.eligibility = "ineligible";
                    node.last_drain = Some(
                        json!({"Status": "draining", "StartedAt": now, "UpdatedAt": now, "AccessorID": "", "Meta": null}),
                    );
                }
                None => {
                    node.drain = None;
                    if let Some(last) = node.last_drain.as_mut() {
                        last["Status"] = json!("canceled");
                        last["UpdatedAt"] = json!(now);
                    }
                    if mark_eligible {
                        node.eligibility = "eligible";
                    }
                }
            }
        }
        self.tables.nodes = index;
        self.emit_node(id, "NodeDrain", index);
        if spec.is_some() {
            let moving: Vec<String> = self
                .allocs_on_node(id)
                .filter(|a| !a.is_terminal())
                .map(|a| a.id.clone())
                .collect();
            for alloc_id in moving {
                if let Some(alloc) = self.allocs.get_mut(&alloc_id) {
                    alloc.migrate = true;
                    jobs.push((alloc.namespace.clone(), alloc.job_id.clone()));
                }
                self.stop_alloc(&alloc_id, "alloc is being migrated", index);
            }
        } else if mark_eligible {
            self.unblock_evals();
        }
        jobs.sort();
        jobs.dedup();
        let mut eval_ids = Vec::new();
        for (namespace, job_id) in jobs {
            self.reevaluate(&namespace, &job_id, "node-drain");
            if let Some(eval) = self
                .evals
                .values()
                .filter(|e| e.job_id == job_id)
                .max_by_key(|e| e.create_index)
            {
                eval_ids.push(eval.id.clone());
            }
        }
        (index, eval_ids)
    }

    /// Re-evaluates every job with live allocations on a node; returns the new eval IDs.
    pub fn evaluate_node(&mut self, id: &str) -> (u64, Vec<String>) {
        let mut jobs: Vec<(String, String)> = self
            .allocs_on_node(id)
            .filter(|a| !a.is_terminal())
            .map(|a| (a.namespace.clone(), a.job_id.clone()))
            .collect();
        jobs.sort();
        jobs.dedup();
        let before: std::collections::HashSet<String> = self.evals.keys().cloned().collect();
        for (namespace, job_id) in jobs {
            self.reevaluate(&namespace, &job_id, "node-update");
        }
        let created = self
            .evals
            .keys()
            .filter(|e| !before.contains(*e))
            .cloned()
            .collect();
        (self.index, created)
    }

    /// Removes a node; its allocations are lost and replaced elsewhere.
    pub fn purge_node(&mut self, id: &str) -> (u64, Vec<String>) {
        let before: std::collections::HashSet<String> = self.evals.keys().cloned().collect();
        self.lose_allocs_on(id);
        let index = self.bump();
        let payload = self
            .nodes
            .get(id)
            .map(|n| json!({"Node": render::node(n, self.clock.now(), false)}));
        self.nodes.remove(id);
        self.tables.nodes = index;
        if let Some(payload) = payload {
            self.emit(StreamEvent {
                topic: "Node",
                type_: "NodeDeregistration",
                key: id.to_string(),
                namespace: String::new(),
                filter_keys: None,
                index,
                payload,
            });
        }
        let created = self
            .evals
            .keys()
            .filter(|e| !before.contains(*e))
            .cloned()
            .collect();
        (index, created)
    }

    /// One step of simulated time.
    pub fn tick(&mut self) {
        self.tick_nodes();
        self.tick_allocs();
        self.tick_service_templates();
        self.tick_deployments();
        self.run_due_evals();
        self.tick_periodic();
        self.collect_garbage();
    }

    /// Removes terminal allocations and evaluations last changed more than the GC threshold
    /// ago (simulated clock), as Nomad's core GC does. Runs at most once a simulated second.
    fn collect_garbage(&mut self) {
        let now = self.clock.now();
        if self
            .last_gc
            .is_some_and(|last| now - last < chrono::Duration::seconds(1))
        {
            return;
        }
        self.last_gc = Some(now);
        let cutoff = (now
            - chrono::Duration::from_std(self.config.gc_threshold).unwrap_or_default())
        .timestamp_nanos_opt()
        .unwrap_or(i64::MIN);
        self.collect_allocs_and_evals(cutoff);
    }

    /// `PUT /v1/system/gc`: nomad/system_endpoint.go `GarbageCollect` enqueues a force-GC core
    /// evaluation (nomad/core_sched.go `forceGC`), which collects with no age threshold: every
    /// terminal allocation and evaluation, and every job `jobIsGCable` (nomad/state/schema.go)
    /// allows whose allocations are all terminal. Jobs go in one `JobBatchDeregister` (core_sched.go
    /// `jobReap`), so each produces a `JobBatchDeregistered` event carrying the job as it was
    /// before deletion (nomad/state/events.go `eventFromChange`, table "jobs").
    pub fn force_gc(&mut self) {
        let gcable: Vec<(String, String)> = self
            .jobs
            .values()
            .filter(|job| self.job_is_gcable(job))
            .filter(|job| {
                self.allocs_of_job(&job.namespace, &job.id)
                    .all(|a| a.client_status.is_terminal())
            })
            .map(|job| (job.namespace.clone(), job.id.clone()))
            .collect();
        let index = if gcable.is_empty() {
            self.index
        } else {
            self.bump()
        };
        for key in &gcable {
            let Some(job) = self.jobs.get(key) else {
                continue;
            };
            let last = render::job(self, job);
            self.remove_job(key);
            self.emit(StreamEvent {
                topic: "Job",
                type_: "JobBatchDeregistered",
                key: key.1.clone(),
                namespace: key.0.clone(),
                filter_keys: None,
                index,
                payload: json!({"Job": last}),
            });
        }
        if !gcable.is_empty() {
            self.tables.jobs = index;
        }
        self.collect_allocs_and_evals(i64::MAX);
    }

    /// nomad/state/schema.go `jobIsGCable`: a periodic or parameterized parent once stopped;
    /// any other job once dead and either stopped or a batch job (which finishes by itself).
    fn job_is_gcable(&self, job: &JobRecord) -> bool {
        if job.is_periodic() || job.is_parameterized() {
            return job.stop;
        }
        render::job_status(self, job) == "dead"
            && (job.stop || matches!(job.job_type(), "batch" | "sysbatch"))
    }

    /// Forgets terminal allocations and finished evaluations last modified before `cutoff`.
    fn collect_allocs_and_evals(&mut self, cutoff: i64) {
        let dead_allocs: Vec<String> = self
            .allocs
            .values()
            .filter(|a| a.client_status.is_terminal() && a.modify_time < cutoff)
            .map(|a| a.id.clone())
            .collect();
        let dead_evals: Vec<String> = self
            .evals
            .values()
            .filter(|e| {
                matches!(e.status, "complete" | "failed" | "canceled") && e.modify_time < cutoff
            })
            .map(|e| e.id.clone())
            .collect();
        for id in &dead_allocs {
            self.allocs.remove(id);
        }
        // nomad/core_sched.go `deploymentGC`: terminal deployments past the threshold that
        // no allocation refers to any more.
        let referenced: std::collections::HashSet<&str> = self
            .allocs
            .values()
            .map(|a| a.deployment_id.as_str())
            .collect();
        let dead_deployments: Vec<String> = self
            .deployments
            .values()
            .filter(|d| {
                !d.active() && d.modify_time < cutoff && !referenced.contains(d.id.as_str())
            })
            .map(|d| d.id.clone())
            .collect();
        for id in &dead_deployments {
            if let Some(d) = self.deployments.remove(id) {
                let key = (d.namespace, d.job_id);
                if let Some(ids) = self.deployments_by_job.get_mut(&key) {
                    ids.retain(|i| i != id);
                    if ids.is_empty() {
                        self.deployments_by_job.remove(&key);
                    }
                }
            }
        }
        if dead_allocs.is_empty() && dead_evals.is_empty() {
            return;
        }
        for id in &dead_evals {
            self.evals.remove(id);
        }
        // Deletions of allocations and evaluations produce no stream events in Nomad.
        let allocs = &self.allocs;
        self.allocs_by_job
            .values_mut()
            .for_each(|ids| ids.retain(|id| allocs.contains_key(id)));
        self.allocs_by_node
            .values_mut()
            .for_each(|ids| ids.retain(|id| allocs.contains_key(id)));
        let evals = &self.evals;
        self.evals_by_job
            .values_mut()
            .for_each(|ids| ids.retain(|id| evals.contains_key(id)));
        let index = self.bump();
        self.tables.allocs = index;
        self.tables.evals = index;
    }

    fn tick_nodes(&mut self) {
        let now = self.clock.now();
        let limit =
            chrono::Duration::from_std(self.config.heartbeat_ttl + self.config.heartbeat_grace)
                .unwrap_or_default();
        let ids: Vec<String> = self.nodes.keys().cloned().collect();
        for id in ids {
            let node = &self.nodes[&id];
            let silent = node.heartbeat_stopped || node.partitioned;
            if !silent {
                let was_away = node.status != "ready";
                self.nodes.get_mut(&id).expect("exists").last_heartbeat = now;
                if was_away {
                    self.set_node_status(&id, "ready");
                    self.reconnect_allocs_on(&id);
                    self.unblock_evals();
                }
                continue;
            }
            if node.status == "ready" && now - node.last_heartbeat > limit {
                let status = self.missed_heartbeat_status(&id, now);
                self.set_node_status(&id, status);
                self.lose_allocs_on(&id);
            } else if node.status == "disconnected" {
                self.expire_unknown_allocs(&id, now);
            }
        }
    }

    /// nomad/heartbeat.go `invalidateHeartbeat` with `disconnectState`: a node whose heartbeats
    /// stopped is `down`, unless a live allocation on it tolerates disconnects (its group's
    /// `disconnect.lost_after`, or the older `max_client_disconnect`) and has not expired; then
    /// it is `disconnected`. The server cannot tell a dead client from a cut-off one.
    fn missed_heartbeat_status(&self, node_id: &str, now: DateTime<Utc>) -> &'static str {
        let tolerant = self.allocs_on_node(node_id).any(|a| {
            a.desired_status == "run"
                && !a.client_status.is_terminal()
                && disconnect_timeout(a).is_some()
                && !expired(a, now)
        });
        if tolerant {
            "disconnected"
        } else {
            "down"
        }
    }

    /// A disconnected client is back: its `unknown` allocations run again, and the replacements
    /// made meanwhile are stopped (scheduler/reconcile.go `reconcileReconnecting`, keeping the
    /// original as `best_score` does when scores tie).
    fn reconnect_allocs_on(&mut self, node_id: &str) {
        let back: Vec<Alloc> = self
            .allocs_on_node(node_id)
            .filter(|a| a.client_status == ClientStatus::Unknown && a.desired_status == "run")
            .cloned()
            .collect();
        if back.is_empty() {
            return;
        }
        let index = self.bump();
        let now = self.clock.now();
        for original in &back {
            if let Some(alloc) = self.allocs.get_mut(&original.id) {
                alloc.client_status = ClientStatus::Running;
                alloc.client_description = "Tasks are running".into();
                alloc.modify_index = index;
                alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
                for state in alloc.tasks.values_mut() {
                    state.state = "running";
                    state.finished_at = None;
                }
            }
            self.emit_alloc(&original.id, "AllocationUpdated", index);
            let replacements: Vec<String> = self
                .allocs_of_job(&original.namespace, &original.job_id)
                .filter(|a| {
                    a.id != original.id
                        && a.group == original.group
                        && a.index == original.index
                        && !a.is_terminal()
                        && a.create_index > original.create_index
                })
                .map(|a| a.id.clone())
                .collect();
            for id in replacements {
                self.stop_alloc(
                    &id,
                    "alloc not needed due to disconnected client reconnect",
                    index,
                );
            }
        }
        self.tables.allocs = index;
        self.tables.consul = index;
    }

    /// structs.go `Allocation.Expired`: an `unknown` allocation whose disconnect window ran
    /// out is lost, and replaced for good; once none is left, the node is `down` (the next
    /// heartbeat invalidation finds nothing that can wait).
    fn expire_unknown_allocs(&mut self, node_id: &str, now: DateTime<Utc>) {
        let expired_ids: Vec<String> = self
            .allocs_on_node(node_id)
            .filter(|a| a.client_status == ClientStatus::Unknown && expired(a, now))
            .map(|a| a.id.clone())
            .collect();
        if expired_ids.is_empty() {
            if !self
                .allocs_on_node(node_id)
                .any(|a| a.client_status == ClientStatus::Unknown)
            {
                self.set_node_status(node_id, "down");
            }
            return;
        }
        let index = self.bump();
        let mut jobs = Vec::new();
        for id in expired_ids {
            let alloc = self.allocs.get_mut(&id).expect("exists");
            alloc.client_status = ClientStatus::Lost;
            alloc.desired_status = "stop";
            alloc.desired_description = "alloc is lost since its node is down".into();
            alloc.modify_index = index;
            alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
            jobs.push((alloc.namespace.clone(), alloc.job_id.clone()));
            self.emit_alloc(&id, "AllocationUpdated", index);
        }
        self.tables.allocs = index;
        jobs.sort();
        jobs.dedup();
        for (namespace, job_id) in jobs {
            self.reevaluate(&namespace, &job_id, "max-disconnect-timeout");
        }
    }

    /// A node stopped answering: its allocations are `lost` (or `unknown` when their group
    /// tolerates disconnects) and their jobs are re-evaluated to replace them.
    pub fn lose_allocs_on(&mut self, node_id: &str) {
        let index = self.bump();
        let now = self.clock.now();
        let disconnected = self
            .nodes
            .get(node_id)
            .is_some_and(|n| n.status == "disconnected");
        let affected: Vec<String> = self
            .allocs_on_node(node_id)
            .filter(|a| !a.client_status.is_terminal())
            .map(|a| a.id.clone())
            .collect();
        let mut jobs = Vec::new();
        for id in affected {
            let alloc = self.allocs.get_mut(&id).expect("exists");
            let tolerates = disconnect_timeout(alloc).is_some();
            alloc.client_status = if disconnected && tolerates {
                ClientStatus::Unknown
            } else {
                ClientStatus::Lost
            };
            alloc.client_description = "alloc is lost since its node is down".into();
            if alloc.client_status == ClientStatus::Lost {
                alloc.desired_status = "stop";
                alloc.desired_description = "alloc is lost since its node is down".into();
            }
            alloc.modify_index = index;
            alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
            for state in alloc.tasks.values_mut() {
                state.state = "dead";
                state.finished_at = Some(now);
            }
            jobs.push((alloc.namespace.clone(), alloc.job_id.clone()));
            self.emit_alloc(&id, "AllocationUpdated", index);
        }
        self.tables.allocs = index;
        self.tables.consul = index;
        jobs.sort();
        jobs.dedup();
        for (namespace, job_id) in jobs {
            self.reevaluate(&namespace, &job_id, "node-update");
        }
    }

    fn tick_allocs(&mut self) {
        let now = self.clock.now();
        // Only allocations something can happen to; a steady running service is skipped
        // without a clone, so a tick over 20,000 allocations stays cheap.
        let critical_rules = self.check_rules.iter().any(|r| r.status == "critical");
        let ids: Vec<String> = self
            .allocs
            .values()
            .filter(|a| !a.client_status.is_terminal())
            .filter(|a| {
                a.desired_status != "run"
                    || (a.client_status == ClientStatus::Pending && a.start_at <= now)
                    || a.fault != Fault::None
                    || a.finish_at.is_some()
                    || a.critical_since.is_some()
                    || critical_rules
            })
            .map(|a| a.id.clone())
            .collect();
        for id in ids {
            let Some(alloc) = self.allocs.get(&id) else {
                continue;
            };
            let node_ready = self
                .nodes
                .get(&alloc.node_id)
                .is_some_and(|n| n.status == "ready");
            if !node_ready {
                continue;
            }
            if alloc.desired_status != "run" {
                self.finish_alloc(
                    &id,
                    ClientStatus::Complete,
                    "Killed",
                    "Task successfully killed",
                    0,
                );
            } else if alloc.client_status == ClientStatus::Pending && alloc.start_at <= now {
                self.start_alloc(&id);
            } else if alloc.client_status == ClientStatus::Running {
                if alloc.fault == Fault::CrashLoop {
                    self.crash(&id);
                } else if alloc.finish_at.is_some_and(|t| t <= now) {
                    match self.config.batch_outcome {
                        BatchOutcome::Complete => self.finish_alloc(
                            &id,
                            ClientStatus::Complete,
                            "Terminated",
                            "Exit Code: 0",
                            0,
                        ),
                        BatchOutcome::Fail => self.finish_alloc(
                            &id,
                            ClientStatus::Failed,
                            "Terminated",
                            "Exit Code: 1",
                            1,
                        ),
                    }
                } else {
                    self.check_restart(&id);
                }
            }
        }
    }

    fn start_alloc(&mut self, id: &str) {
        if !self.allocs[id].restarting && self.templates_hold(id) {
            return;
        }
        let before = {
            let alloc = &self.allocs[id];
            self.job(&alloc.namespace, &alloc.job_id)
                .map(|j| render::job_status(self, j))
        };
        let index = self.bump();
        let now = self.clock.now();
        let batch_duration =
            chrono::Duration::from_std(self.config.batch_duration).unwrap_or_default();
        let alloc = self.allocs.get_mut(id).expect("exists");
        alloc.client_status = ClientStatus::Running;
        alloc.client_description = "Tasks are running".into();
        alloc.modify_index = index;
        alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
        let restart = std::mem::take(&mut alloc.restarting);
        if !restart {
            // client/allocrunner/health_hook.go: the health tracker starts with the tasks;
            // restarts.go `NewRestartTracker`: so does the restart interval.
            if !alloc.deployment_id.is_empty() {
                alloc.health_watch_start = Some(now);
            }
            alloc.restarts = Some(super::restarts::Tracker::new(now));
        }
        if matches!(alloc.job_type.as_str(), "batch" | "sysbatch") {
            alloc.finish_at = Some(now + batch_duration);
        }
        // A restart starts the tasks it stopped; the others keep running as they were.
        for state in alloc
            .tasks
            .values_mut()
            .filter(|s| !restart || s.state == "pending")
        {
            state.state = "running";
            state.started_at = Some(now);
            if !restart {
                push_event(
                    state,
                    TaskEvent::new("Task Setup", now, "Building Task Directory", 0),
                );
            }
            push_event(
                state,
                TaskEvent::new("Started", now, "Task started by client", 0),
            );
        }
        let (namespace, job_id) = (alloc.namespace.clone(), alloc.job_id.clone());
        // Env templates that read Consul services render as the tasks start.
        let rendered = self.render_service_envs(id);
        if !rendered.is_empty() {
            self.service_template_allocs.insert(id.to_string());
        }
        self.allocs.get_mut(id).expect("exists").service_env = rendered;
        self.tables.allocs = index;
        self.tables.services = index;
        self.tables.consul = index;
        self.emit_alloc(id, "AllocationUpdated", index);
        self.touch_job(&namespace, &job_id, before, index, "AllocationUpdated");
    }

    /// Each task's service-reading env templates, rendered from the passing instances now.
    fn render_service_envs(&self, id: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        use super::templates::{render_service_env, service_envs};
        let mut rendered = BTreeMap::new();
        let alloc = &self.allocs[id];
        let tasks = alloc.group_tasks();
        for task in &tasks {
            let envs = service_envs(task);
            if envs.is_empty() {
                continue;
            }
            let mut values = BTreeMap::new();
            for env in &envs {
                let instances: Vec<String> =
                    super::consul::health_service(self, &env.service, true)
                        .iter()
                        .map(|entry| {
                            format!(
                                "{}:{}",
                                entry["Service"]["Address"].as_str().unwrap_or_default(),
                                entry["Service"]["Port"]
                            )
                        })
                        .collect();
                if let Some(value) = render_service_env(env, &instances) {
                    values.insert(env.var.clone(), value);
                }
            }
            let name = task.get("Name").and_then(Value::as_str).unwrap_or_default();
            rendered.insert(name.to_string(), values);
        }
        rendered
    }

    /// Service templates render again when the services change; a task whose template says
    /// `change_mode = "restart"` restarts when what it rendered changed (template.go
    /// `handleTemplateRerenders`). Only allocations with such templates are looked at.
    fn tick_service_templates(&mut self) {
        if self.tables.services == self.services_rendered_at {
            return;
        }
        self.services_rendered_at = self.tables.services;
        let watched: Vec<String> = self.service_template_allocs.iter().cloned().collect();
        for id in watched {
            let live = self.allocs.get(&id).is_some_and(|a| {
                a.desired_status == "run" && a.client_status == ClientStatus::Running
            });
            if !live {
                if self.allocs.get(&id).is_none_or(|a| a.is_terminal()) {
                    self.service_template_allocs.remove(&id);
                }
                continue;
            }
            let now = self.render_service_envs(&id);
            let alloc = &self.allocs[&id];
            let restart: Vec<String> = alloc
                .group_spec()
                .and_then(|g| g.get("Tasks"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|task| {
                    let name = task.get("Name").and_then(Value::as_str)?;
                    let restarts = super::templates::service_envs(task)
                        .iter()
                        .any(|e| e.restarts);
                    (restarts && now.get(name) != alloc.service_env.get(name))
                        .then(|| name.to_string())
                })
                .collect();
            if !restart.is_empty() {
                self.signal_restart(
                    &id,
                    restart,
                    "Template with change_mode restart re-rendered",
                );
            }
        }
    }

    /// The template hook before a first start ([`super::templates`]): says whether the tasks
    /// must keep waiting. A task waiting on missing variables gets one `Template` event
    /// naming them; one whose identity may not read a variable fails once the retries run out.
    fn templates_hold(&mut self, id: &str) -> bool {
        use super::templates::{render, var_reads, Claim, Render};
        let now = self.clock.now();
        let alloc = &self.allocs[id];
        let blocked_for = alloc.template_blocked_since.map_or(0, |since| {
            (now - since).num_nanoseconds().unwrap_or(i64::MAX)
        });
        let acl_enabled = self.config.acl_token.is_some();
        let variables = &self.variables;
        let exists = |r: &super::templates::VarRead| {
            variables.contains_key(&(r.namespace.clone(), r.path.clone()))
        };
        let tasks = alloc.group_tasks();
        // structs.go `Job.GetIDforWorkloadIdentity`: a periodic or dispatched child reads as
        // its parent.
        let identity_job = alloc
            .job
            .get("ParentID")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .unwrap_or(&alloc.job_id);
        let outcome = tasks
            .iter()
            .map(|task| {
                let claim = Claim {
                    namespace: &alloc.namespace,
                    job: identity_job,
                    group: &alloc.group,
                    task: task.get("Name").and_then(Value::as_str).unwrap_or(""),
                };
                let reads = var_reads(task, &alloc.namespace);
                render(
                    &reads,
                    &claim,
                    acl_enabled,
                    &exists,
                    blocked_for,
                    &self.config.region,
                )
            })
            .find(|outcome| *outcome != Render::Ready)
            .unwrap_or(Render::Ready);
        let first_block = alloc.template_blocked_since.is_none();
        match outcome {
            Render::Ready => {
                self.allocs
                    .get_mut(id)
                    .expect("exists")
                    .template_blocked_since = None;
                false
            }
            Render::Denied {
                dependency,
                gave_up: true,
            } => {
                // template.go: the runner's error kills the task as failed.
                let message = format!(
                    "Template failed: {dependency}: Unexpected response code: 403 (Permission denied)"
                );
                self.finish_alloc(id, ClientStatus::Failed, "Killing", &message, 0);
                true
            }
            Render::Denied { .. } | Render::Missing(_) if !first_block => true,
            Render::Denied { .. } | Render::Missing(_) => {
                let index = self.bump();
                let alloc = self.allocs.get_mut(id).expect("exists");
                alloc.template_blocked_since = Some(now);
                if let Render::Missing(missing) = &outcome {
                    let message = format!("Missing: {}", missing.join(", "));
                    for state in alloc.tasks.values_mut() {
                        push_event(state, TaskEvent::new("Template", now, &message, 0));
                    }
                }
                alloc.modify_index = index;
                self.tables.allocs = index;
                self.emit_alloc(id, "AllocationUpdated", index);
                true
            }
        }
    }

    fn finish_alloc(
        &mut self,
        id: &str,
        status: ClientStatus,
        event: &'static str,
        message: &str,
        exit_code: i64,
    ) {
        let index = self.bump();
        let now = self.clock.now();
        let before = {
            let alloc = &self.allocs[id];
            self.job(&alloc.namespace, &alloc.job_id)
                .map(|j| render::job_status(self, j))
        };
        let alloc = self.allocs.get_mut(id).expect("exists");
        alloc.client_status = status;
        alloc.client_description = match status {
            ClientStatus::Failed => "Failed tasks".into(),
            _ => "All tasks have completed".into(),
        };
        alloc.modify_index = index;
        alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
        for state in alloc.tasks.values_mut() {
            state.state = "dead";
            state.failed = status == ClientStatus::Failed;
            state.finished_at = Some(now);
            push_event(state, TaskEvent::new(event, now, message, exit_code));
        }
        let (namespace, job_id, desired) = (
            alloc.namespace.clone(),
            alloc.job_id.clone(),
            alloc.desired_status,
        );
        self.tables.allocs = index;
        self.tables.services = index;
        self.tables.consul = index;
        self.emit_alloc(id, "AllocationUpdated", index);
        self.touch_job(&namespace, &job_id, before, index, "AllocationUpdated");
        // A run that ended on its own is the scheduler's business: replace a failed service
        // allocation, retry a failed batch run (within its policy).
        if desired == "run" && status == ClientStatus::Failed {
            // client/allochealth/tracker.go: a failed task makes a deployment's allocation
            // unhealthy before the servers see the failure.
            let judged = self
                .allocs
                .get(id)
                .is_some_and(|a| a.deployment_id.is_empty() || a.healthy.is_some());
            if !judged {
                let index = self.bump();
                self.set_alloc_health(id, false, index);
            }
            self.reevaluate(&namespace, &job_id, "alloc-failure");
        }
        self.unblock_evals();
    }

    /// A task failed (exited non-zero, or `check_restart` killed it as a failure): its restart
    /// tracker ([`super::restarts`]) decides. Within the policy the tasks wait out the delay
    /// as `pending` (task_runner.go `shouldRestart` sets `TaskStatePending`, and the
    /// allocation with no running task is `pending`); past it the allocation fails ("Not
    /// Restarting") and the reschedule policy takes over. Says whether it failed.
    fn task_failed(&mut self, id: &str, exit_code: i64) -> bool {
        let now = self.clock.now();
        let decision = {
            let Some(alloc) = self.allocs.get_mut(id) else {
                return false;
            };
            let policy = super::restarts::RestartPolicy::of(&alloc.job_type, alloc.group_spec());
            let tracker = alloc
                .restarts
                .get_or_insert_with(|| super::restarts::Tracker::new(now));
            super::restarts::on_failure(&policy, tracker, now, rand::random::<f64>())
        };
        let delay_nanos = match &decision {
            super::restarts::Decision::GiveUp { .. } => {
                let message = decision.message();
                self.finish_alloc(
                    id,
                    ClientStatus::Failed,
                    "Not Restarting",
                    &message,
                    exit_code,
                );
                return true;
            }
            super::restarts::Decision::Restart { delay_nanos, .. } => *delay_nanos,
        };
        let index = self.bump();
        let message = decision.message();
        let alloc = self.allocs.get_mut(id).expect("exists");
        for state in alloc.tasks.values_mut() {
            state.restarts += 1;
            state.last_restart = Some(now);
            state.state = "pending";
            push_event(
                state,
                TaskEvent::new(
                    "Terminated",
                    now,
                    &format!("Exit Code: {exit_code}"),
                    exit_code,
                ),
            );
            push_event(state, TaskEvent::new("Restarting", now, &message, 0));
        }
        alloc.client_status = ClientStatus::Pending;
        alloc.client_description = "No tasks have started".into();
        alloc.restarting = true;
        alloc.start_at = now + chrono::Duration::nanoseconds(delay_nanos);
        alloc.modify_index = index;
        alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
        self.tables.allocs = index;
        self.tables.services = index;
        self.tables.consul = index;
        self.emit_alloc(id, "AllocationUpdated", index);
        false
    }

    /// One crash of a crash-looping task.
    fn crash(&mut self, id: &str) {
        self.task_failed(id, 1);
    }

    /// `check_restart`: a check critical for longer than its grace plus `limit` intervals gets
    /// its task restarted in place.
    fn check_restart(&mut self, id: &str) {
        let now = self.clock.now();
        let alloc = &self.allocs[id];
        // The common case, on every tick for every allocation: nothing can be critical.
        let critical_possible = alloc.fault == Fault::Hang
            || alloc.critical_since.is_some()
            || self.check_rules.iter().any(|r| r.status == "critical");
        if !critical_possible {
            return;
        }
        let mut deadline = None;
        let mut any_critical = false;
        for (_, service) in alloc.services() {
            let name = service
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if super::health::check_status(&self.check_rules, alloc, name) != "critical" {
                continue;
            }
            any_critical = true;
            for check in service
                .get("Checks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(restart) = check.get("CheckRestart").filter(|r| r.is_object()) else {
                    continue;
                };
                let limit = restart.get("Limit").and_then(Value::as_i64).unwrap_or(0);
                if limit <= 0 {
                    continue;
                }
                let grace = restart.get("Grace").and_then(Value::as_i64).unwrap_or(0);
                let interval = check
                    .get("Interval")
                    .and_then(Value::as_i64)
                    .unwrap_or(10_000_000_000);
                deadline = Some(chrono::Duration::nanoseconds(grace + limit * interval));
            }
        }
        let critical_since = alloc.critical_since;
        match (any_critical, critical_since) {
            (false, Some(_)) => self.allocs.get_mut(id).expect("exists").critical_since = None,
            (true, None) => self.allocs.get_mut(id).expect("exists").critical_since = Some(now),
            (true, Some(since)) => {
                if deadline.is_some_and(|d| now - since > d) {
                    // client/serviceregistration/watcher.go restarts the task as a failure
                    // (`Restart(..., failure=true)`), which restarts/restarts.go counts against
                    // the group's restart policy like an exit: a delayed restart within it,
                    // past it the allocation fails and the reschedule policy takes over.
                    if let Some(alloc) = self.allocs.get_mut(id) {
                        alloc.critical_since = None;
                        for state in alloc.tasks.values_mut() {
                            push_event(
                                state,
                                TaskEvent::new(
                                    "Restart Signaled",
                                    now,
                                    "healthcheck: check unhealthy",
                                    0,
                                ),
                            );
                        }
                    }
                    self.task_failed(id, 0);
                }
            }
            (false, None) => {}
        }
    }

    /// Restarts an allocation's tasks in place (same allocation ID, `Restarts` + 1).
    /// `PUT /v1/client/allocation/:id/restart`, as client/client.go `RestartAllocation` runs
    /// it: one named task (allocrunner `RestartTask`), every task (`RestartAll`) or the running
    /// ones (`RestartRunning`). taskrunner/lifecycle.go `restartImpl` emits "Restart Signaled",
    /// kills the task (the group's services leave the catalog: `PreTaskRestart`), and the run
    /// loop starts it again at once: restarts.go `GetState` answers a triggered restart with
    /// `TaskRestarting` and no delay, and does not count it against the restart policy. A
    /// task that is not running is left alone (`ErrTaskNotRunning`), except by `AllTasks`.
    pub fn restart_alloc(
        &mut self,
        id: &str,
        task: Option<&str>,
        all_tasks: bool,
    ) -> Result<(), crate::error::ApiError> {
        use crate::error::ApiError;
        let Some(alloc) = self.allocs.get(id) else {
            return Err(ApiError::not_found(format!("Unknown allocation \"{id}\"")));
        };
        if all_tasks && task.is_some() {
            return Err(ApiError::internal(
                "task name cannot be set when restarting all tasks",
            ));
        }
        if let Some(name) = task {
            if !alloc.tasks.contains_key(name) {
                return Err(ApiError::internal(format!(
                    "Could not find task runner for task: {name}"
                )));
            }
        }
        // alloc_runner.go `restartTasks`: `shouldRun` (not for one named task, whose runner
        // answers by its own state).
        let terminal = alloc.desired_status != "run" || alloc.client_status.is_terminal();
        if terminal && task.is_none() {
            return Err(ApiError::internal(
                "restart of an alloc that should not run",
            ));
        }
        let reason = match (task, all_tasks) {
            (Some(_), _) => "User requested task to restart",
            (None, true) => "User requested all tasks to restart",
            (None, false) => "User requested running tasks to restart",
        };
        let chosen: Vec<String> = alloc
            .tasks
            .iter()
            .filter(|(name, _)| task.is_none_or(|t| t == name.as_str()))
            .filter(|(_, state)| all_tasks || state.state == "running")
            .map(|(name, _)| name.clone())
            .collect();
        if chosen.is_empty() {
            // `Restart` on a task that is pending or dead: nothing to kill.
            return match task {
                Some(_) => Err(ApiError::internal("Task not running")),
                None => Ok(()),
            };
        }
        self.signal_restart(id, chosen, reason);
        Ok(())
    }

    /// Restarts these tasks of a running allocation in place, saying why (task_runner.go
    /// `Restart` with a `Restart Signaled` event).
    fn signal_restart(&mut self, id: &str, chosen: Vec<String>, reason: &str) {
        let index = self.bump();
        let now = self.clock.now();
        let alloc = self.allocs.get_mut(id).expect("exists");
        for name in &chosen {
            let state = alloc.tasks.get_mut(name).expect("chosen from the tasks");
            push_event(state, TaskEvent::new("Restart Signaled", now, reason, 0));
            push_event(
                state,
                TaskEvent::new("Terminated", now, "Exit Code: 0, Signal: 15", 0),
            );
            // task_runner.go `UpdateState`: a `Restarting` event counts a restart.
            state.restarts += 1;
            state.last_restart = Some(now);
            state.state = "pending";
            push_event(
                state,
                TaskEvent::new("Restarting", now, "Task restarting in 0s", 0),
            );
        }
        alloc.client_status = ClientStatus::Pending;
        alloc.client_description = "No tasks have started".into();
        alloc.restarting = true;
        alloc.start_at = now;
        alloc.modify_index = index;
        alloc.modify_time = now.timestamp_nanos_opt().unwrap_or_default();
        self.tables.allocs = index;
        self.tables.services = index;
        self.tables.consul = index;
        self.emit_alloc(id, "AllocationUpdated", index);
    }

    pub fn set_fault(&mut self, id: &str, fault: Fault) {
        let index = self.bump();
        if let Some(alloc) = self.allocs.get_mut(id) {
            alloc.fault = fault;
            alloc.modify_index = index;
        }
        self.tables.consul = index;
        self.tables.allocs = index;
    }

    /// `fail`: the allocation's tasks die now and do not restart.
    pub fn fail_alloc(&mut self, id: &str) {
        self.finish_alloc(
            id,
            ClientStatus::Failed,
            "Terminated",
            "Exit Code: 137",
            137,
        );
    }

    fn tick_periodic(&mut self) {
        let now = self.clock.now();
        let mut due: Vec<(String, String)> = Vec::new();
        let mut computed = Vec::new();
        let periodic = self
            .periodic_jobs
            .iter()
            .filter_map(|key| self.jobs.get(key));
        for j in periodic.filter(|j| !j.stop) {
            let periodic = &j.spec["Periodic"];
            let enabled = periodic
                .get("Enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if !enabled {
                continue;
            }
            let since = j
                .last_launch
                .unwrap_or_else(|| DateTime::from_timestamp_nanos(j.submit_time));
            let key = (j.namespace.clone(), j.id.clone());
            // Parsing every cron spec on every 50 ms tick was a tenth of the simulator's CPU
            // with 1,000 periodic jobs; the answer only changes with the spec or the last launch.
            let next = match self.next_launches.get(&key) {
                Some(memo)
                    if memo.job_modify_index == j.job_modify_index && memo.since == since =>
                {
                    memo.next
                }
                _ => {
                    let next = next_launch(periodic, since);
                    computed.push((
                        key.clone(),
                        NextLaunch {
                            job_modify_index: j.job_modify_index,
                            since,
                            next,
                        },
                    ));
                    next
                }
            };
            if next.is_some_and(|next| next <= now) {
                due.push(key);
            }
        }
        self.next_launches.extend(computed);
        for (namespace, id) in due {
            let prohibit = self
                .job(&namespace, &id)
                .and_then(|j| j.spec["Periodic"].get("ProhibitOverlap"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let running_child = self
                .children_of(&namespace, &id)
                .any(|c| render::job_status(self, c) != "dead");
            if prohibit && running_child {
                // Skipped, as Nomad does; the next launch is counted from now.
                if let Some(job) = self.jobs.get_mut(&(namespace.clone(), id.clone())) {
                    job.last_launch = Some(now);
                }
                continue;
            }
            let _ = self.launch_periodic(&namespace, &id);
        }
    }
}

/// The next launch of a periodic job after `since`, in its time zone.
pub fn next_launch(periodic: &Value, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let specs: Vec<String> = match periodic.get("Specs").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => periodic
            .get("Spec")
            .and_then(Value::as_str)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
    };
    let zone = periodic
        .get("TimeZone")
        .and_then(Value::as_str)
        .filter(|z| !z.is_empty())
        .unwrap_or("UTC");
    let zone = chrono_tz::Tz::from_str(zone).unwrap_or(chrono_tz::UTC);
    let local = since.with_timezone(&zone);
    specs
        .iter()
        .filter_map(|spec| croner::Cron::from_str(crds::validate::expand_cron_macro(spec)).ok())
        .filter_map(|cron| cron.find_next_occurrence(&local, false).ok())
        .map(|t| t.with_timezone(&Utc))
        .min()
}

/// structs.go `TaskGroup.GetDisconnectLostTimeout`: how long an allocation of this group may be
/// out of touch before it is lost (`disconnect.lost_after`, which `max_client_disconnect` is
/// canonicalized into); `None` when the group does not tolerate disconnects.
fn disconnect_timeout(alloc: &Alloc) -> Option<chrono::Duration> {
    let group = alloc.group_spec()?;
    let nanos = group
        .get("Disconnect")
        .and_then(|d| d.get("LostAfter"))
        .and_then(Value::as_i64)
        .or_else(|| group.get("MaxClientDisconnect").and_then(Value::as_i64))
        .filter(|n| *n > 0)?;
    Some(chrono::Duration::nanoseconds(nanos))
}

/// structs.go `Allocation.Expired`: unknown for longer than its disconnect timeout (counted
/// from when it turned unknown, its last modification).
fn expired(alloc: &Alloc, now: DateTime<Utc>) -> bool {
    if alloc.client_status != ClientStatus::Unknown {
        return false;
    }
    let Some(timeout) = disconnect_timeout(alloc) else {
        return false;
    };
    let since = DateTime::from_timestamp_nanos(alloc.modify_time);
    now > since + timeout
}
