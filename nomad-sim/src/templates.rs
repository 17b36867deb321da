//! Task templates that read Nomad variables, as the client's template hook treats them before
//! a task may start (client/allocrunner/taskrunner/template/template.go `handleFirstRender`):
//! every `nomadVar "path"` must render first. A variable that does not exist blocks the task
//! (`nomadVar` is consul-template's blocking query, dependency/nomad_var_get.go, named
//! `nomad.var.block(path@namespace.region)`), with a `Template` event "Missing: ...". With ACLs
//! on, the task's workload identity reads only its own paths (acl/acl.go
//! `matchingVariablesCapabilitySet`: `nomad/jobs`, `nomad/jobs/<job>`, `.../<group>`,
//! `.../<group>/<task>` in the job's namespace) unless a policy grants more; a denied read is
//! retried with backoff (client/config/config.go `DefaultTemplateConfig` `NomadRetry`: 12
//! attempts from 250 ms, at most 1 m apart), then the template fails and kills the task
//! ("Template failed: ...").
//!
//! The simulator has no ACL policies for jobs, so with ACLs on only the implicit paths are
//! readable.
//!
//! Env templates (`Envvars: true`) may also read Consul's `service "name"` (consul-template's
//! `health.service` dependency: the passing instances), in the two shapes nomarch renders for a
//! service reference: one instance (`{{ with service "s" }}{{ with index . 0 }}VAR={{ .Address
//! }}:{{ .Port }}{{ end }}{{ end }}`) or all of them, comma-separated (`VAR={{ range $i, $s :=
//! service "s" }}...`). They render when the task starts and again when the instances change;
//! `change_mode = "restart"` then restarts the task (template.go `handleTemplateRerenders`,
//! "Template with change_mode restart re-rendered"), `noop` leaves the environment as it was
//! until the next start. Other template syntax is not interpreted.

use serde_json::Value;

/// client/config/config.go `DefaultTemplateConfig` `NomadRetry`.
const RETRY_ATTEMPTS: u32 = 12;
const RETRY_BACKOFF_NANOS: i64 = 250_000_000;
const RETRY_MAX_BACKOFF_NANOS: i64 = 60_000_000_000;

/// How long denied reads are retried before the template gives up: the backoffs of every
/// attempt, each doubling, capped at the maximum.
pub fn retry_budget_nanos() -> i64 {
    (0..RETRY_ATTEMPTS)
        .map(|attempt| (RETRY_BACKOFF_NANOS << attempt).min(RETRY_MAX_BACKOFF_NANOS))
        .sum()
}

/// The task reading a variable: its workload identity's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub namespace: &'a str,
    pub job: &'a str,
    pub group: &'a str,
    pub task: &'a str,
}

/// One `nomadVar` read: the path and the namespace it is read in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarRead {
    pub path: String,
    pub namespace: String,
}

impl VarRead {
    /// dependency/nomad_var_get.go `NVGetQuery.String` for a blocking query.
    pub fn dependency(&self, region: &str) -> String {
        format!("nomad.var.block({}@{}.{region})", self.path, self.namespace)
    }
}

/// The variables a task's templates read with `nomadVar "path"` (or `"path@namespace"`),
/// in order, each once.
pub fn var_reads(task: &Value, job_namespace: &str) -> Vec<VarRead> {
    let mut reads = Vec::new();
    let templates = task.get("Templates").and_then(Value::as_array);
    for template in templates.into_iter().flatten() {
        let Some(text) = template.get("EmbeddedTmpl").and_then(Value::as_str) else {
            continue;
        };
        let mut rest = text;
        while let Some(at) = rest.find("nomadVar") {
            rest = &rest[at + "nomadVar".len()..];
            let trimmed = rest.trim_start();
            let Some(quoted) = trimmed.strip_prefix('"') else {
                continue;
            };
            let Some(end) = quoted.find('"') else {
                break;
            };
            let argument = quoted[..end].trim().trim_matches('/');
            let (path, namespace) = match argument.split_once('@') {
                Some((path, namespace)) => (path, namespace.split('.').next().unwrap_or("")),
                None => (argument, job_namespace),
            };
            let read = VarRead {
                path: path.to_string(),
                namespace: namespace.to_string(),
            };
            if !reads.contains(&read) {
                reads.push(read);
            }
            rest = &quoted[end..];
        }
    }
    reads
}

/// acl/acl.go `matchingVariablesCapabilitySet`'s automatic access for a workload.
pub fn workload_may_read(claim: &Claim, read: &VarRead) -> bool {
    if read.namespace != claim.namespace {
        return false;
    }
    let job = format!("nomad/jobs/{}", claim.job);
    let group = format!("{job}/{}", claim.group);
    let task = format!("{group}/{}", claim.task);
    read.path == "nomad/jobs" || read.path == job || read.path == group || read.path == task
}

/// What the template hook does with a task's reads, at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Render {
    /// Every variable could be read: the task may start.
    Ready,
    /// Variables that do not exist yet: the task waits ("Missing: ..."), as long as it takes.
    Missing(Vec<String>),
    /// A read the identity may not make, retried until the budget runs out.
    Denied { dependency: String, gave_up: bool },
}

type Rule<'a> = (&'static str, &'a dyn Fn() -> Option<Render>);

/// The rules in order: a denied read fails the template whatever else is missing; otherwise
/// missing variables block; otherwise it renders.
pub fn render(
    reads: &[VarRead],
    claim: &Claim,
    acl_enabled: bool,
    exists: &dyn Fn(&VarRead) -> bool,
    blocked_for_nanos: i64,
    region: &str,
) -> Render {
    let denied = || {
        reads
            .iter()
            .find(|r| acl_enabled && !workload_may_read(claim, r))
            .map(|r| Render::Denied {
                dependency: r.dependency(region),
                gave_up: blocked_for_nanos >= retry_budget_nanos(),
            })
    };
    let missing = || {
        let missing: Vec<String> = reads
            .iter()
            .filter(|r| !exists(r))
            .map(|r| r.dependency(region))
            .collect();
        (!missing.is_empty()).then_some(Render::Missing(missing))
    };
    let rules: [Rule; 2] = [("denied", &denied), ("missing", &missing)];
    rules
        .iter()
        .find_map(|(_, rule)| rule())
        .unwrap_or(Render::Ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLAIM: Claim = Claim {
        namespace: "default",
        job: "api",
        group: "app",
        task: "main",
    };

    fn read(path: &str) -> VarRead {
        VarRead {
            path: path.into(),
            namespace: "default".into(),
        }
    }

    #[test]
    fn reads_are_found_in_embedded_templates() {
        let task = json!({"Templates": [{"EmbeddedTmpl":
            "{{ with nomadVar \"nomad/jobs/api\" }}A={{ index . \"a\" }}{{ end }}\n{{ with nomadVar \"shared/db@team\" }}B={{ .b }}{{ end }}\n{{ with nomadVar \"nomad/jobs/api\" }}{{ end }}"}]});
        assert_eq!(
            var_reads(&task, "default"),
            vec![
                read("nomad/jobs/api"),
                VarRead {
                    path: "shared/db".into(),
                    namespace: "team".into()
                }
            ]
        );
    }

    #[test]
    fn a_workload_reads_only_its_own_paths() {
        for (path, allowed) in [
            ("nomad/jobs", true),
            ("nomad/jobs/api", true),
            ("nomad/jobs/api/app", true),
            ("nomad/jobs/api/app/main", true),
            ("nomad/jobs/api/other", false),
            ("nomad/jobs/web", false),
            ("shared/db", false),
        ] {
            assert_eq!(workload_may_read(&CLAIM, &read(path)), allowed, "{path}");
        }
        let elsewhere = VarRead {
            path: "nomad/jobs/api".into(),
            namespace: "team".into(),
        };
        assert!(!workload_may_read(&CLAIM, &elsewhere), "another namespace");
    }

    #[test]
    fn denied_beats_missing_and_gives_up_after_the_retries() {
        let reads = [read("nomad/jobs/api"), read("shared/db")];
        let none = |_: &VarRead| false;
        let all = |_: &VarRead| true;
        assert_eq!(
            render(&reads, &CLAIM, false, &none, 0, "global"),
            Render::Missing(vec![
                "nomad.var.block(nomad/jobs/api@default.global)".into(),
                "nomad.var.block(shared/db@default.global)".into()
            ]),
            "without ACLs only existence matters"
        );
        assert_eq!(
            render(&reads, &CLAIM, false, &all, 0, "global"),
            Render::Ready
        );
        assert_eq!(
            render(&reads, &CLAIM, true, &all, 1, "global"),
            Render::Denied {
                dependency: "nomad.var.block(shared/db@default.global)".into(),
                gave_up: false
            }
        );
        assert_eq!(
            render(&reads, &CLAIM, true, &all, retry_budget_nanos(), "global"),
            Render::Denied {
                dependency: "nomad.var.block(shared/db@default.global)".into(),
                gave_up: true
            }
        );
        assert_eq!(retry_budget_nanos(), 303_750_000_000, "about five minutes");
    }
}

/// One env variable a template fills from a Consul service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEnv {
    pub var: String,
    pub service: String,
    /// Every passing instance, comma-separated; otherwise the first.
    pub all: bool,
    /// The template's `ChangeMode` is `restart`.
    pub restarts: bool,
}

/// The text of a template line outside its `{{ ... }}` actions.
fn literal_text(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        match rest[open..].find("}}") {
            Some(close) => rest = &rest[open + close + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The service-reading lines of a task's env templates.
pub fn service_envs(task: &Value) -> Vec<ServiceEnv> {
    let mut found = Vec::new();
    let templates = task.get("Templates").and_then(Value::as_array);
    for template in templates.into_iter().flatten() {
        if template.get("Envvars").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let restarts = template.get("ChangeMode").and_then(Value::as_str) != Some("noop");
        let text = template
            .get("EmbeddedTmpl")
            .and_then(Value::as_str)
            .unwrap_or("");
        for line in text.lines() {
            let Some(at) = line.find("service \"") else {
                continue;
            };
            let quoted = &line[at + "service \"".len()..];
            let Some(end) = quoted.find('"') else {
                continue;
            };
            let literal = literal_text(line);
            let Some((var, _)) = literal.split_once('=') else {
                continue;
            };
            found.push(ServiceEnv {
                var: var.trim().to_string(),
                service: quoted[..end].to_string(),
                all: line.contains("range"),
                restarts,
            });
        }
    }
    found
}

/// The variable's value from the service's passing instances (`address:port`, in Consul's
/// order); `None` when the one-instance shape finds none (the variable is left out).
pub fn render_service_env(env: &ServiceEnv, instances: &[String]) -> Option<String> {
    if env.all {
        Some(instances.join(","))
    } else {
        instances.first().cloned()
    }
}

#[cfg(test)]
mod service_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nomarchs_two_shapes_are_read_and_rendered() {
        let task = json!({"Templates": [
            {"Envvars": true, "ChangeMode": "restart", "EmbeddedTmpl": "{{ with service \"metrics\" }}{{ with index . 0 }}STATS_HOST={{ .Address }}:{{ .Port }}{{ end }}{{ end }}\n"},
            {"Envvars": true, "ChangeMode": "noop", "EmbeddedTmpl": "PEERS={{ range $i, $s := service \"db\" }}{{ if $i }},{{ end }}{{ $s.Address }}:{{ $s.Port }}{{ end }}\n"},
            {"Envvars": false, "EmbeddedTmpl": "{{ with service \"x\" }}{{ end }}"},
        ]});
        let envs = service_envs(&task);
        assert_eq!(
            envs,
            [
                ServiceEnv {
                    var: "STATS_HOST".into(),
                    service: "metrics".into(),
                    all: false,
                    restarts: true
                },
                ServiceEnv {
                    var: "PEERS".into(),
                    service: "db".into(),
                    all: true,
                    restarts: false
                },
            ]
        );
        let two = ["10.0.0.1:2000".to_string(), "10.0.0.2:2001".to_string()];
        assert_eq!(
            render_service_env(&envs[0], &two).as_deref(),
            Some("10.0.0.1:2000")
        );
        assert_eq!(
            render_service_env(&envs[1], &two).as_deref(),
            Some("10.0.0.1:2000,10.0.0.2:2001")
        );
        assert_eq!(render_service_env(&envs[0], &[]), None);
        assert_eq!(render_service_env(&envs[1], &[]).as_deref(), Some(""));
    }
}
