//! In place or destructive: which changes to a task group replace its allocations. This follows
//! Nomad's `scheduler/util.go tasksUpdated` (the same list from v1.6 to v1.10; v1.10 adds NUMA,
//! secrets size, Consul cluster and partition, which the sim compares too): a change to any
//! field below stops the old allocations and places new ones; anything else (the count,
//! services and checks without Connect, the update, restart and reschedule blocks, constraints)
//! updates the allocations in place, so running tasks keep running.
//!
//! Jobs here are the API's JSON. Nomad compares Go maps and slices with `maps.Equal` and
//! `slices.Equal*`, for which nil and empty are equal; [`same`] does the same for JSON (absent,
//! `null`, `{}` and `[]` are all "empty").

use serde_json::{Map, Value};

/// The outcome of comparing one group across two versions of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Nothing that needs new allocations changed: update in place.
    Same,
    /// This field changed (Nomad's own words for it, e.g. "task meta"): replace the allocations.
    Different(&'static str),
}

impl Comparison {
    pub fn is_destructive(&self) -> bool {
        matches!(self, Comparison::Different(_))
    }
}

/// Whether two JSON values are equal, with every kind of empty equal to every other.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn empty(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        }
    }
    if empty(a) && empty(b) {
        return true;
    }
    a == b
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name)
}

fn list<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    v.get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn named<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items
        .iter()
        .find(|item| item.get("Name").and_then(Value::as_str) == Some(name))
}

/// One group-level check: Nomad's name for the difference, and the test.
type GroupRule = (&'static str, fn(&Value, &Value) -> bool);

/// Group-level checks, in `tasksUpdated`'s order. Each returns true when the field changed.
const GROUP_RULES: &[GroupRule] = &[
    ("number of tasks", |a, b| {
        list(a, "Tasks").len() != list(b, "Tasks").len()
    }),
    ("ephemeral disk", |a, b| {
        !same(field(a, "EphemeralDisk"), field(b, "EphemeralDisk"))
    }),
    // networkUpdated: length, mode, mbits, hostname, DNS, CNI and the port map; the sim
    // compares each network whole, which is the same set of fields as the API carries them.
    ("network", |a, b| {
        !same(field(a, "Networks"), field(b, "Networks"))
    }),
    ("consul", |a, b| {
        consul_updated(field(a, "Consul"), field(b, "Consul"))
    }),
    // connectServiceUpdated: only services with a Connect block; their Connect, port label and
    // cluster. Plain services and their checks change in place.
    ("connect service", |a, b| {
        list(a, "Services").iter().any(|service_a| {
            let Some(connect) = service_a.get("Connect").filter(|c| !c.is_null()) else {
                return false;
            };
            let name = service_a.get("Name").and_then(Value::as_str).unwrap_or("");
            named(list(b, "Services"), name).is_some_and(|service_b| {
                !same(Some(connect), field(service_b, "Connect"))
                    || !same(field(service_a, "PortLabel"), field(service_b, "PortLabel"))
                    || !same(field(service_a, "Cluster"), field(service_b, "Cluster"))
            })
        })
    }),
    // "no task driver can support altering mounts in-place"
    ("volume request", |a, b| {
        !same(field(a, "Volumes"), field(b, "Volumes"))
    }),
    ("group restart render_templates", |a, b| {
        render_templates(a) != render_templates(b)
    }),
];

/// One task-level check, given the two jobs, the group's name and the two tasks.
type TaskRule = (&'static str, fn(&TaskPair) -> bool);

struct TaskPair<'a> {
    job_a: &'a Value,
    job_b: &'a Value,
    group_a: &'a Value,
    group_b: &'a Value,
    a: &'a Value,
    b: &'a Value,
}

impl TaskPair<'_> {
    fn differs(&self, name: &str) -> bool {
        !same(field(self.a, name), field(self.b, name))
    }

    fn resource_differs(&self, name: &str) -> bool {
        let empty = Value::Null;
        let a = self.a.get("Resources").unwrap_or(&empty);
        let b = self.b.get("Resources").unwrap_or(&empty);
        !same(field(a, name), field(b, name))
    }
}

/// Task-level checks, in `tasksUpdated`'s order.
const TASK_RULES: &[TaskRule] = &[
    ("task driver", |t| t.differs("Driver")),
    ("task user", |t| t.differs("User")),
    ("task config", |t| t.differs("Config")),
    ("task env", |t| t.differs("Env")),
    ("task artifacts", |t| t.differs("Artifacts")),
    ("task vault", |t| t.differs("Vault")),
    ("task consul", |t| {
        consul_updated(field(t.a, "Consul"), field(t.b, "Consul"))
    }),
    ("task templates", |t| t.differs("Templates")),
    ("task csi config", |t| t.differs("CSIPluginConfig")),
    ("task volume mount", |t| t.differs("VolumeMounts")),
    // Job, group and task meta merged (`Job.CombinedTaskMeta`): a change to the job's own meta
    // replaces every allocation of every group.
    ("task meta", |t| {
        combined_meta(t.job_a, t.group_a, t.a) != combined_meta(t.job_b, t.group_b, t.b)
    }),
    ("task network", |t| t.resource_differs("Networks")),
    // nonNetworkResourcesUpdated
    ("task cpu", |t| t.resource_differs("CPU")),
    ("task cores", |t| t.resource_differs("Cores")),
    ("task memory", |t| t.resource_differs("MemoryMB")),
    ("task memory max", |t| t.resource_differs("MemoryMaxMB")),
    ("task devices", |t| t.resource_differs("Devices")),
    ("numa", |t| t.resource_differs("NUMA")),
    ("task secrets", |t| t.resource_differs("SecretsMB")),
    ("task identity", |t| t.differs("Identity")),
    ("task identities", |t| t.differs("Identities")),
    ("task log disabled", |t| {
        let disabled = |task: &Value| {
            task.get("LogConfig")
                .and_then(|l| l.get("Disabled"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        disabled(t.a) != disabled(t.b)
    }),
    ("task restart render_templates", |t| {
        render_templates(t.a) != render_templates(t.b)
    }),
];

/// `consulUpdated`: the namespace always counts; cluster and partition only when both sides
/// have a Consul block.
fn consul_updated(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    let get = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if get(a, "Namespace") != get(b, "Namespace") {
        return true;
    }
    a.is_some()
        && b.is_some()
        && (get(a, "Cluster") != get(b, "Cluster") || get(a, "Partition") != get(b, "Partition"))
}

fn render_templates(v: &Value) -> bool {
    v.get("RestartPolicy")
        .and_then(|r| r.get("RenderTemplates"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `Job.CombinedTaskMeta`: the job's meta, overridden by the group's, overridden by the task's.
fn combined_meta(job: &Value, group: &Value, task: &Value) -> Map<String, Value> {
    let mut meta = Map::new();
    for level in [job, group, task] {
        if let Some(Value::Object(m)) = level.get("Meta") {
            meta.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    meta
}

/// Whether group `group` of `old_job` must be replaced to become that of `new_job` (both the
/// API's JSON). A group missing from either side is a difference (it is placed or stopped
/// whole).
pub fn tasks_updated(old_job: &Value, new_job: &Value, group: &str) -> Comparison {
    let (Some(group_a), Some(group_b)) = (
        named(list(old_job, "TaskGroups"), group),
        named(list(new_job, "TaskGroups"), group),
    ) else {
        return Comparison::Different("task group");
    };
    if let Some((name, _)) = GROUP_RULES
        .iter()
        .find(|(_, changed)| changed(group_a, group_b))
    {
        return Comparison::Different(name);
    }
    for a in list(group_a, "Tasks") {
        let task = a.get("Name").and_then(Value::as_str).unwrap_or("");
        let Some(b) = named(list(group_b, "Tasks"), task) else {
            return Comparison::Different("task deleted");
        };
        let pair = TaskPair {
            job_a: old_job,
            job_b: new_job,
            group_a,
            group_b,
            a,
            b,
        };
        if let Some((name, _)) = TASK_RULES.iter().find(|(_, changed)| changed(&pair)) {
            return Comparison::Different(name);
        }
    }
    Comparison::Same
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Value {
        json!({
            "ID": "web",
            "Meta": {"owner": "team-a"},
            "TaskGroups": [{
                "Name": "web",
                "Count": 3,
                "Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080}]}],
                "Services": [{"Name": "web", "PortLabel": "http", "Tags": ["v1"],
                    "Checks": [{"Type": "http", "Path": "/health"}]}],
                "Update": {"MaxParallel": 1},
                "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}],
                "Tasks": [{
                    "Name": "web",
                    "Driver": "docker",
                    "Config": {"image": "nginx:1"},
                    "Env": {"A": "1"},
                    "Resources": {"CPU": 100, "MemoryMB": 128},
                }],
            }],
        })
    }

    /// A change to a job's JSON.
    type Edit = fn(&mut Value);

    /// One case per rule the sim models, and the in-place changes Nomad makes without
    /// replacing anything, each with the name `tasksUpdated` gives the difference.
    #[test]
    fn each_field_is_in_place_or_destructive_as_nomad_decides() {
        let cases: Vec<(&str, Edit, Comparison)> = vec![
            (
                "count",
                |j| j["TaskGroups"][0]["Count"] = json!(4),
                Comparison::Same,
            ),
            (
                "service tags and checks",
                |j| {
                    j["TaskGroups"][0]["Services"][0]["Tags"] = json!(["v2"]);
                    j["TaskGroups"][0]["Services"][0]["Checks"][0]["Path"] = json!("/ready");
                },
                Comparison::Same,
            ),
            (
                "update block",
                |j| j["TaskGroups"][0]["Update"]["MaxParallel"] = json!(2),
                Comparison::Same,
            ),
            (
                "constraints",
                |j| j["TaskGroups"][0]["Constraints"] = json!([]),
                Comparison::Same,
            ),
            (
                "env null vs empty",
                |j| {
                    j["TaskGroups"][0]["Tasks"][0]["Env"] = json!({"A": "1"});
                    j["TaskGroups"][0]["Tasks"][0]["Artifacts"] = Value::Null;
                },
                Comparison::Same,
            ),
            (
                "job meta",
                |j| j["Meta"]["owner"] = json!("team-b"),
                Comparison::Different("task meta"),
            ),
            (
                "job meta added",
                |j| j["Meta"]["nomarch.io/generation"] = json!("2"),
                Comparison::Different("task meta"),
            ),
            (
                "group meta",
                |j| j["TaskGroups"][0]["Meta"] = json!({"x": "1"}),
                Comparison::Different("task meta"),
            ),
            (
                "task config",
                |j| j["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("nginx:2"),
                Comparison::Different("task config"),
            ),
            (
                "task env",
                |j| j["TaskGroups"][0]["Tasks"][0]["Env"]["A"] = json!("2"),
                Comparison::Different("task env"),
            ),
            (
                "task driver",
                |j| j["TaskGroups"][0]["Tasks"][0]["Driver"] = json!("exec"),
                Comparison::Different("task driver"),
            ),
            (
                "task cpu",
                |j| j["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = json!(200),
                Comparison::Different("task cpu"),
            ),
            (
                "task memory",
                |j| j["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(256),
                Comparison::Different("task memory"),
            ),
            (
                "group network",
                |j| j["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["To"] = json!(9090),
                Comparison::Different("network"),
            ),
            (
                "volumes",
                |j| {
                    j["TaskGroups"][0]["Volumes"] =
                        json!({"data": {"Type": "host", "Source": "data"}})
                },
                Comparison::Different("volume request"),
            ),
            (
                "templates",
                |j| j["TaskGroups"][0]["Tasks"][0]["Templates"] = json!([{"EmbeddedTmpl": "x"}]),
                Comparison::Different("task templates"),
            ),
            (
                "a second task",
                |j| {
                    let task = j["TaskGroups"][0]["Tasks"][0].clone();
                    j["TaskGroups"][0]["Tasks"]
                        .as_array_mut()
                        .unwrap()
                        .push(task);
                },
                Comparison::Different("number of tasks"),
            ),
            (
                "task renamed",
                |j| j["TaskGroups"][0]["Tasks"][0]["Name"] = json!("api"),
                Comparison::Different("task deleted"),
            ),
            (
                "log collection off",
                |j| j["TaskGroups"][0]["Tasks"][0]["LogConfig"] = json!({"Disabled": true}),
                Comparison::Different("task log disabled"),
            ),
            (
                "identity",
                |j| j["TaskGroups"][0]["Tasks"][0]["Identity"] = json!({"Env": true}),
                Comparison::Different("task identity"),
            ),
        ];
        for (what, edit, expected) in cases {
            let old = job();
            let mut new = old.clone();
            edit(&mut new);
            assert_eq!(tasks_updated(&old, &new, "web"), expected, "{what}");
        }
    }

    /// connectServiceUpdated looks at services that had Connect in the old version: changing
    /// their Connect block or port label replaces the allocations.
    #[test]
    fn connect_services_are_destructive_when_their_plumbing_changes() {
        let mut old = job();
        old["TaskGroups"][0]["Services"][0]["Connect"] = json!({"Native": true});
        let mut new = old.clone();
        new["TaskGroups"][0]["Services"][0]["Connect"] = json!({"Native": false});
        assert_eq!(
            tasks_updated(&old, &new, "web"),
            Comparison::Different("connect service")
        );
        let mut new = old.clone();
        new["TaskGroups"][0]["Services"][0]["PortLabel"] = json!("admin");
        assert_eq!(
            tasks_updated(&old, &new, "web"),
            Comparison::Different("connect service")
        );
        let mut new = old.clone();
        new["TaskGroups"][0]["Services"][0]["Tags"] = json!(["v2"]);
        assert_eq!(tasks_updated(&old, &new, "web"), Comparison::Same);
    }

    /// Task meta overrides group meta, which overrides job meta: the same merged value on both
    /// sides is no change, wherever it was set.
    #[test]
    fn meta_is_compared_merged() {
        let mut old = job();
        old["Meta"] = json!({"k": "job"});
        old["TaskGroups"][0]["Tasks"][0]["Meta"] = json!({"k": "task"});
        let mut new = job();
        new["Meta"] = json!({"k": "other"});
        new["TaskGroups"][0]["Tasks"][0]["Meta"] = json!({"k": "task"});
        assert_eq!(tasks_updated(&old, &new, "web"), Comparison::Same);
    }
}
