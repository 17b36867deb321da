//! The cluster's state and how it changes: one raft-like index bumped per commit, per-table
//! indexes for blocking queries, and the event frames each commit produces.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{json, Value};

use super::clock::Clock;
use super::config::SimConfig;
use super::model::{
    Alloc, Deployment, Eval, JobRecord, KvEntry, Namespace, Node, VariableEntry, WriteRecord,
};

/// Event-stream frames kept for resumption, as Nomad's `event_buffer_size` default.
pub const EVENT_BUFFER_FRAMES: usize = 100;

/// The index of the last change to each table, for blocking queries on lists.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableIndex {
    pub jobs: u64,
    pub allocs: u64,
    pub nodes: u64,
    pub evals: u64,
    pub services: u64,
    pub namespaces: u64,
    pub consul: u64,
    pub kv: u64,
    pub deployments: u64,
}

#[derive(Clone, Debug)]
pub struct StreamEvent {
    pub topic: &'static str,
    pub type_: &'static str,
    pub key: String,
    pub namespace: String,
    pub filter_keys: Option<Vec<String>>,
    pub index: u64,
    pub payload: Value,
}

impl StreamEvent {
    pub fn to_json(&self) -> Value {
        json!({
            "Topic": self.topic,
            "Type": self.type_,
            "Key": self.key,
            "Namespace": self.namespace,
            "FilterKeys": self.filter_keys,
            "Index": self.index,
            "Payload": self.payload,
        })
    }
}

/// The events of one commit.
#[derive(Clone, Debug)]
pub struct Frame {
    pub index: u64,
    pub events: Vec<StreamEvent>,
}

/// A periodic job's next launch, valid while its job modify index and last launch stay the same.
#[derive(Clone, Copy, Debug)]
pub struct NextLaunch {
    pub job_modify_index: u64,
    pub since: chrono::DateTime<chrono::Utc>,
    pub next: Option<chrono::DateTime<chrono::Utc>>,
}

/// Injected trouble for one API (`PUT /_sim/chaos`, with `"api": "consul"` for Consul's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Chaos {
    pub latency_ms: u64,
    pub error_rate: f64,
    /// Answer 503 to everything until this moment.
    pub unavailable_until: Option<std::time::Instant>,
    /// Event streams go silent (open, no bytes, no heartbeats): those open now for good, and
    /// new ones while this is set.
    pub stall_streams: bool,
    /// Bumped by each request to cut the open event streams mid-frame.
    pub stream_cuts: u64,
    /// Blocking queries (those with an `index`) started while set never answer.
    pub hang_blocking: bool,
}

pub struct Cluster {
    pub index: u64,
    pub tables: TableIndex,
    pub jobs: BTreeMap<(String, String), JobRecord>,
    pub allocs: BTreeMap<String, Alloc>,
    pub nodes: BTreeMap<String, Node>,
    pub evals: BTreeMap<String, Eval>,
    pub deployments: BTreeMap<String, Deployment>,
    /// Deployment IDs per (namespace, job), oldest first: every evaluation asks for its job's.
    pub deployments_by_job: HashMap<(String, String), Vec<String>>,
    /// Deployments in `running`: the ticker checks their progress deadlines.
    pub running_deployments: BTreeSet<String>,
    /// Allocations of a deployment whose health the client has not judged yet: the ticker
    /// watches these, not every allocation.
    pub awaiting_health: BTreeSet<String>,
    /// Follow-up evaluations by the time they wait for (a failed allocation's reschedule
    /// delay): the ticker runs them when due.
    pub delayed_evals: BTreeSet<(i64, String)>,
    pub last_health_lookup: Option<chrono::DateTime<chrono::Utc>>,
    /// Allocation and evaluation IDs per (namespace, job): the scheduler and status queries ask
    /// "what does this job have" constantly, and scanning 20,000 allocations each time does not
    /// scale.
    pub allocs_by_job: HashMap<(String, String), Vec<String>>,
    pub evals_by_job: HashMap<(String, String), Vec<String>>,
    pub allocs_by_node: HashMap<String, Vec<String>>,
    /// Child job IDs per (namespace, parent ID), as Nomad's state store keeps a parent's
    /// children summary: listing 12,000 jobs must not scan every job for each one's children.
    pub children_by_parent: HashMap<(String, String), BTreeSet<String>>,
    /// Periodic parents, kept by `put_job`/`remove_job`: the 50 ms ticker must not walk every
    /// job (children included) to find the few that launch.
    pub periodic_jobs: BTreeSet<(String, String)>,
    /// The next launch of each periodic job, memoized (see `tick_periodic`).
    pub next_launches: HashMap<(String, String), NextLaunch>,
    pub namespaces: BTreeMap<String, Namespace>,
    /// CSI volumes by (namespace, ID); their claims are the allocations that use them
    /// ([`crate::csi`]).
    pub csi_volumes: BTreeMap<(String, String), super::model::CsiVolume>,
    pub kv: BTreeMap<String, KvEntry>,
    /// Nomad variables by (namespace, path).
    pub variables: BTreeMap<(String, String), VariableEntry>,
    /// Check statuses set through `PUT /_sim/checks`; the newest matching rule wins, so a rule
    /// by service name also holds for replacement allocations.
    pub check_rules: Vec<super::health::CheckRule>,
    /// Faults new allocations of a task image get (`PUT /_sim/images`); the newest rule for
    /// an image wins.
    pub image_faults: Vec<(String, super::model::Fault)>,
    pub buffer: VecDeque<Frame>,
    pub pending_events: Vec<StreamEvent>,
    pub writes: Vec<WriteRecord>,
    /// Nomad's API.
    pub chaos: Chaos,
    /// Consul's API: an outage of Consul alone (its agent without servers) is a case of its own.
    pub consul_chaos: Chaos,
    pub config: SimConfig,
    pub clock: Clock,
    pub last_gc: Option<chrono::DateTime<chrono::Utc>>,
    /// The services table index at which service templates were last rendered.
    pub services_rendered_at: u64,
    /// Allocations whose env templates read Consul services (re-rendered when services change).
    pub service_template_allocs: std::collections::BTreeSet<String>,
}

impl Cluster {
    pub fn new(config: SimConfig, clock: Clock) -> Cluster {
        let mut cluster = Cluster {
            index: 0,
            tables: TableIndex::default(),
            jobs: BTreeMap::new(),
            allocs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            evals: BTreeMap::new(),
            deployments: BTreeMap::new(),
            deployments_by_job: HashMap::new(),
            running_deployments: BTreeSet::new(),
            awaiting_health: BTreeSet::new(),
            delayed_evals: BTreeSet::new(),
            last_health_lookup: None,
            allocs_by_job: HashMap::new(),
            evals_by_job: HashMap::new(),
            allocs_by_node: HashMap::new(),
            children_by_parent: HashMap::new(),
            periodic_jobs: BTreeSet::new(),
            next_launches: HashMap::new(),
            namespaces: BTreeMap::new(),
            csi_volumes: BTreeMap::new(),
            kv: BTreeMap::new(),
            variables: BTreeMap::new(),
            check_rules: Vec::new(),
            image_faults: Vec::new(),
            buffer: VecDeque::new(),
            pending_events: Vec::new(),
            writes: Vec::new(),
            chaos: Chaos::default(),
            consul_chaos: Chaos::default(),
            config,
            clock,
            last_gc: None,
            services_rendered_at: 0,
            service_template_allocs: Default::default(),
        };
        let index = cluster.bump();
        cluster.namespaces.insert(
            "default".into(),
            Namespace {
                name: "default".into(),
                description: "Default shared namespace".into(),
                meta: None,
                create_index: index,
                modify_index: index,
            },
        );
        cluster.tables.namespaces = index;
        for spec in &cluster.config.csi_volumes {
            let volume = super::model::CsiVolume::from_spec(spec, index);
            let key = (volume.namespace.clone(), volume.id.clone());
            cluster.csi_volumes.insert(key, volume);
        }
        cluster
    }

    /// The node pools that exist: the built-in `default` and `all`, and each pool a client
    /// registered into (nomad/node_endpoint.go `Register` creates a client's pool).
    pub fn node_pools(&self) -> BTreeSet<String> {
        let mut pools: BTreeSet<String> =
            ["default", "all"].iter().map(|p| p.to_string()).collect();
        pools.extend(self.nodes.values().map(|n| n.pool.clone()));
        pools
    }

    /// Starts a commit: the index every object written in it carries.
    pub fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    pub fn emit(&mut self, event: StreamEvent) {
        self.pending_events.push(event);
    }

    /// Closes the commits made since the last flush into frames (one per index, in order),
    /// keeps the last [`EVENT_BUFFER_FRAMES`], and returns them for live subscribers.
    pub fn flush(&mut self) -> Vec<Frame> {
        let mut frames: Vec<Frame> = Vec::new();
        for event in self.pending_events.drain(..) {
            match frames.last_mut() {
                Some(frame) if frame.index == event.index => frame.events.push(event),
                _ => frames.push(Frame {
                    index: event.index,
                    events: vec![event],
                }),
            }
        }
        for frame in &frames {
            self.buffer.push_back(frame.clone());
            while self.buffer.len() > EVENT_BUFFER_FRAMES {
                self.buffer.pop_front();
            }
        }
        frames
    }

    pub fn record_write(
        &mut self,
        method: &str,
        path: &str,
        job_id: Option<String>,
        agent: String,
    ) {
        let record = WriteRecord {
            index: self.index,
            time: self.clock.now(),
            method: method.into(),
            path: path.into(),
            job_id,
            agent,
        };
        self.writes.push(record);
    }

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    pub fn job(&self, namespace: &str, id: &str) -> Option<&JobRecord> {
        self.jobs.get(&(namespace.to_string(), id.to_string()))
    }

    pub fn node_by_id_or_name(&self, id_or_name: &str) -> Option<&Node> {
        self.nodes
            .get(id_or_name)
            .or_else(|| self.nodes.values().find(|n| n.name == id_or_name))
    }

    /// The jobs whose `ParentID` names this one (periodic launches, dispatches).
    pub fn children_of<'a>(
        &'a self,
        namespace: &'a str,
        parent_id: &'a str,
    ) -> impl Iterator<Item = &'a JobRecord> + 'a {
        self.children_by_parent
            .get(&(namespace.to_string(), parent_id.to_string()))
            .into_iter()
            .flatten()
            .filter_map(move |id| self.job(namespace, id))
    }

    /// Stores a job, keeping the children index in step with its `ParentID`.
    pub fn put_job(&mut self, job: JobRecord) {
        let key = (job.namespace.clone(), job.id.clone());
        self.unindex_child(&key);
        let parent = job.parent_id();
        if !parent.is_empty() {
            self.children_by_parent
                .entry((job.namespace.clone(), parent.to_string()))
                .or_default()
                .insert(job.id.clone());
        }
        if job.is_periodic() {
            self.periodic_jobs.insert(key.clone());
        } else {
            self.periodic_jobs.remove(&key);
        }
        self.jobs.insert(key, job);
    }

    /// Removes a job (a purge), and it from its parent's children.
    pub fn remove_job(&mut self, key: &(String, String)) -> Option<JobRecord> {
        self.unindex_child(key);
        self.next_launches.remove(key);
        self.periodic_jobs.remove(key);
        // A purged job's deployments go with it (nomad/state/state_store.go `DeleteJobTxn`).
        for id in self.deployments_by_job.remove(key).unwrap_or_default() {
            self.running_deployments.remove(&id);
            self.deployments.remove(&id);
        }
        self.jobs.remove(key)
    }

    fn unindex_child(&mut self, key: &(String, String)) {
        let Some(old_parent) = self.jobs.get(key).map(|j| j.parent_id().to_string()) else {
            return;
        };
        let parent_key = (key.0.clone(), old_parent);
        if let Some(children) = self.children_by_parent.get_mut(&parent_key) {
            children.remove(&key.1);
            if children.is_empty() {
                self.children_by_parent.remove(&parent_key);
            }
        }
    }

    /// Jobs whose ID starts with `prefix` in `namespace` (or every namespace for `*`). One
    /// namespace is a range walk of the (namespace, ID) keys, not a scan of every job.
    pub fn jobs_with_prefix<'a>(
        &'a self,
        namespace: &'a str,
        prefix: &'a str,
    ) -> Box<dyn Iterator<Item = &'a JobRecord> + 'a> {
        if namespace == "*" {
            return Box::new(self.jobs.values().filter(move |j| j.id.starts_with(prefix)));
        }
        let start = (namespace.to_string(), prefix.to_string());
        Box::new(
            self.jobs
                .range(start..)
                .take_while(move |((ns, id), _)| ns == namespace && id.starts_with(prefix))
                .map(|(_, job)| job),
        )
    }

    pub fn allocs_of_job<'a>(
        &'a self,
        namespace: &'a str,
        job_id: &'a str,
    ) -> impl Iterator<Item = &'a Alloc> + 'a {
        let key = (namespace.to_string(), job_id.to_string());
        let ids = self
            .allocs_by_job
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        ids.iter().filter_map(|id| self.allocs.get(id))
    }

    pub fn allocs_on_node<'a>(&'a self, node_id: &str) -> impl Iterator<Item = &'a Alloc> + 'a {
        let ids = self
            .allocs_by_node
            .get(node_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        ids.iter().filter_map(|id| self.allocs.get(id))
    }

    pub fn evals_of_job<'a>(
        &'a self,
        namespace: &'a str,
        job_id: &'a str,
    ) -> impl Iterator<Item = &'a Eval> + 'a {
        let key = (namespace.to_string(), job_id.to_string());
        let ids = self
            .evals_by_job
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        ids.iter().filter_map(|id| self.evals.get(id))
    }

    pub fn insert_alloc(&mut self, alloc: Alloc) {
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        self.allocs_by_job
            .entry(key)
            .or_default()
            .push(alloc.id.clone());
        self.allocs_by_node
            .entry(alloc.node_id.clone())
            .or_default()
            .push(alloc.id.clone());
        self.allocs.insert(alloc.id.clone(), alloc);
    }

    pub fn insert_eval(&mut self, eval: Eval) {
        if !self.evals.contains_key(&eval.id) {
            let key = (eval.namespace.clone(), eval.job_id.clone());
            self.evals_by_job
                .entry(key)
                .or_default()
                .push(eval.id.clone());
        }
        self.evals.insert(eval.id.clone(), eval);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Cluster, Namespace};
    use crate::clock::Clock;
    use crate::config::SimConfig;

    fn key(namespace: &str, id: &str) -> (String, String) {
        (namespace.to_string(), id.to_string())
    }

    fn register(cluster: &mut Cluster, namespace: &str, job: serde_json::Value) {
        cluster
            .register_job(Some(namespace), &json!({ "Job": job }), None)
            .expect("registered");
    }

    #[test]
    fn the_periodic_index_follows_registrations_and_purges() {
        let mut cluster = Cluster::new(SimConfig::default(), Clock::new(1.0));
        let periodic = json!({"ID": "backup", "Type": "batch",
            "Periodic": {"Enabled": true, "Spec": "0 3 * * *", "SpecType": "cron"},
            "TaskGroups": [{"Name": "run", "Tasks": [{"Name": "t"}]}]});
        register(&mut cluster, "default", periodic);
        assert!(cluster.periodic_jobs.contains(&key("default", "backup")));

        // Re-registered without its schedule: Nomad refuses (job_endpoint.go
        // validateJobUpdate), so it stays a periodic parent until it is purged.
        let plain = json!({"ID": "backup", "Type": "batch",
            "TaskGroups": [{"Name": "run", "Tasks": [{"Name": "t"}]}]});
        let refused = cluster.register_job(Some("default"), &json!({ "Job": plain }), None);
        assert_eq!(
            refused.unwrap_err().message,
            "cannot update periodic job to being non-periodic"
        );
        assert!(cluster.periodic_jobs.contains(&key("default", "backup")));
        cluster.deregister_job("default", "backup", true);
        assert!(cluster.periodic_jobs.is_empty());

        let periodic = json!({"ID": "nightly", "Type": "batch",
            "Periodic": {"Enabled": false, "Spec": "0 3 * * *", "SpecType": "cron"},
            "TaskGroups": [{"Name": "run", "Tasks": [{"Name": "t"}]}]});
        register(&mut cluster, "default", periodic);
        assert!(
            cluster.periodic_jobs.contains(&key("default", "nightly")),
            "a disabled schedule is still periodic (Nomad's IsPeriodic)"
        );
        cluster.deregister_job("default", "nightly", true);
        assert!(cluster.periodic_jobs.is_empty());
    }

    #[test]
    fn jobs_by_prefix_stay_inside_the_namespace_unless_all_are_asked_for() {
        let mut cluster = Cluster::new(SimConfig::default(), Clock::new(1.0));
        cluster.namespaces.insert(
            "team".into(),
            Namespace {
                name: "team".into(),
                description: String::new(),
                meta: None,
                create_index: 1,
                modify_index: 1,
            },
        );
        for (namespace, id) in [
            ("default", "api"),
            ("default", "web"),
            ("default", "web-2"),
            ("default", "zz"),
            ("team", "web-3"),
            ("team", "a"),
        ] {
            let job = json!({"ID": id, "TaskGroups": [{"Name": "g", "Count": 0, "Tasks": [{"Name": "t"}]}]});
            register(&mut cluster, namespace, job);
        }
        let ids = |namespace: &str, prefix: &str| -> Vec<String> {
            cluster
                .jobs_with_prefix(namespace, prefix)
                .map(|j| format!("{}/{}", j.namespace, j.id))
                .collect()
        };
        assert_eq!(ids("default", "web"), ["default/web", "default/web-2"]);
        assert_eq!(ids("team", "web"), ["team/web-3"]);
        assert_eq!(
            ids("*", "web"),
            ["default/web", "default/web-2", "team/web-3"]
        );
        assert_eq!(
            ids("default", ""),
            ["default/api", "default/web", "default/web-2", "default/zz"]
        );
        assert!(ids("nope", "").is_empty());
    }
}
