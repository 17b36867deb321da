//! Semantic validation: what a type cannot say (names are DNS labels, ports are unique, grace ≥
//! interval, cron expressions parse, ...). Every problem carries the field path, so the caller can
//! point at the line in the file.
//!
//! The rules also keep names safe to embed in Nomad job IDs, meta and Traefik rules: only the
//! characters each place accepts get through.

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use crate::meta::ObjectMeta;
use crate::nomad_rules::SERVER_SET_JOB_FIELDS;
use crate::workload::{
    CheckType, Constraint, ContainerRef, EnvVar, HealthCheck, NomadOverrides, Placement, Port,
    Protocol, Resources, Route, UpdateStrategy, Volume, VolumeType, CONSTRAINT_OPERATORS,
};
use crate::yaml::{join_index, join_key};

pub const MAX_REPLICAS: u32 = 1000;
pub const MAX_CPU_MHZ: u32 = 1_000_000;
pub const MAX_MEMORY_MB: u32 = 4_194_304;
/// Nomad refuses less (nomad/structs/structs.go `MinResources`, checked by
/// `Resources.MeetsMinResources`).
pub const MIN_MEMORY_MB: u32 = 10;
/// Nomad refuses a shorter check timeout (nomad/structs/services.go `minCheckTimeout`).
pub const MIN_CHECK_TIMEOUT: StdDuration = StdDuration::from_secs(1);
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// One thing wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// The problems found so far in one object: what a kind's rules add to.
#[derive(Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn check(&mut self, ok: bool, path: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.add(path, message());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// RFC 1123 label: what Kubernetes calls a DNS label, safe in job IDs, hostnames and meta.
pub fn dns_label_problem(value: &str) -> Option<String> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    match () {
        _ if value.is_empty() => Some("must not be empty".into()),
        _ if value.len() > 63 => Some(format!("must be at most 63 characters (has {})", value.len())),
        _ if !ok_chars || !ends_ok => Some(format!(
            "`{}` is not a DNS label: use lower-case letters, digits and `-`, starting and ending with a letter or digit",
            printable(value)
        )),
        _ => None,
    }
}

/// A DNS name (dot-separated labels), optionally with one leading `*.` wildcard.
fn dns_name_problem(value: &str) -> Option<String> {
    let body = value.strip_prefix("*.").unwrap_or(value);
    if value.len() > 253 {
        return Some("must be at most 253 characters".into());
    }
    if body.is_empty()
        || body
            .split('.')
            .any(|label| dns_label_problem(label).is_some())
    {
        return Some(format!(
            "`{}` is not a valid host name (lower-case DNS labels separated by dots)",
            printable(value)
        ));
    }
    None
}

/// Kubernetes-style qualified name, used for label and annotation keys: `[prefix/]name`.
fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if dns_name_problem(prefix).is_some() {
            return Some(format!(
                "key prefix `{}` must be a DNS name",
                printable(prefix)
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !is_label_value(name) {
        return Some(format!(
            "key `{}` must be 1-63 characters of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
            printable(key)
        ));
    }
    None
}

fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && value
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric()))
}

/// Shows control characters escaped, so an error message cannot rewrite the terminal.
pub(crate) fn printable(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The annotation naming the git commit an object came from (`reconcilers::meta::COMMIT`).
pub const COMMIT_ANNOTATION: &str = "nomarch.io/commit";

pub(crate) fn validate_metadata(meta: &ObjectMeta, p: &mut Problems) {
    if let Some(problem) = dns_label_problem(&meta.name) {
        p.add("metadata.name", problem);
    }
    if let Some(problem) = dns_label_problem(&meta.namespace) {
        p.add("metadata.namespace", problem);
    }
    for (key, value) in &meta.labels {
        let path = join_key("metadata.labels", key);
        if let Some(problem) = qualified_name_problem(key) {
            p.add(&path, problem);
        }
        p.check(is_label_value(value), &path, || {
            format!("label value `{}` must be at most 63 characters of letters, digits, `-`, `_` and `.`", printable(value))
        });
    }
    let mut annotation_bytes = 0;
    for (key, value) in &meta.annotations {
        if let Some(problem) = qualified_name_problem(key) {
            p.add(join_key("metadata.annotations", key), problem);
        }
        annotation_bytes += key.len() + value.len();
    }
    // The commit annotation is copied into the Nomad job's meta, where Nomad interpolates
    // `${...}`: it may only be what it claims to be, a git object ID.
    if let Some(commit) = meta.annotations.get(COMMIT_ANNOTATION) {
        let is_object_id = (4..=64).contains(&commit.len())
            && commit
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        p.check(
            is_object_id,
            &join_key("metadata.annotations", COMMIT_ANNOTATION),
            || {
                format!(
                    "`{}` is not a git commit ID (4 to 64 lower-case hex digits)",
                    printable(commit)
                )
            },
        );
    }
    p.check(
        annotation_bytes <= MAX_ANNOTATIONS_BYTES,
        "metadata.annotations",
        || {
            format!(
                "annotations total {annotation_bytes} bytes; the limit is {MAX_ANNOTATIONS_BYTES}"
            )
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Fields of the Nomad job that nomarch decides, by where a `spec.nomad` patch would set
/// them, and the manifest field that decides them instead.
const OWNED_BY_NOMARCH: &[(&str, &str, &str)] = &[
    ("job", "ID", "the job is named after the object"),
    ("job", "Name", "the job is named after the object"),
    (
        "job",
        "Namespace",
        "the job lives in the object's namespace",
    ),
    ("job", "Type", "the kind decides the job's type"),
    (
        "job",
        "TaskGroups",
        "use spec.nomad.group and spec.nomad.task",
    ),
    ("job", "Stop", "use spec.stopped (`nomarch stop`)"),
    (
        "job",
        "Periodic",
        "use spec.schedule, spec.timeZone and spec.suspend",
    ),
    ("job", "Update", "use spec.update"),
    ("job", "Datacenters", "use spec.placement.datacenters"),
    ("job", "NodePool", "use spec.placement.nodePool"),
    (
        "job",
        "Constraints",
        "use spec.placement.constraints (a pub's hub is pinned here)",
    ),
    ("group", "Name", "nomarch names the group"),
    ("group", "Count", "use spec.replicas"),
    ("group", "Tasks", "use spec.nomad.task"),
    (
        "group",
        "Services",
        "use spec.ports, spec.health and spec.route",
    ),
    ("group", "Networks", "use spec.ports"),
    ("group", "Volumes", "use spec.volumes"),
    ("group", "Update", "use spec.update"),
    ("task", "Name", "nomarch names the task"),
    ("task", "Resources", "use spec.resources"),
    (
        "task",
        "Templates",
        "secrets come from spec.env[].secretRef; other templates are not supported yet",
    ),
    ("task", "VolumeMounts", "use spec.volumes"),
];

/// Maps Nomad reads as text only (`map[string]string` in api/jobs.go `Job.Meta`, api/tasks.go
/// `TaskGroup.Meta`, `Task.Meta` and `Task.Env`): per level, the keys whose values must be
/// text (or `null`, which removes one).
const TEXT_MAPS: &[(&str, &str)] = &[
    ("job", "Meta"),
    ("group", "Meta"),
    ("task", "Meta"),
    ("task", "Env"),
];

/// A map Nomad reads as text: an object of text values (`null` removes a key in a merge patch).
fn validate_text_map(value: &serde_json::Value, path: &str, p: &mut Problems) {
    use serde_json::Value;
    match value {
        Value::Null => {}
        Value::Object(entries) => {
            for (key, value) in entries {
                p.check(
                    matches!(value, Value::String(_) | Value::Null),
                    &join_key(path, key),
                    || {
                        format!(
                            "Nomad reads this map as text: quote the value (\"{}\")",
                            printable(&value.to_string())
                        )
                    },
                );
            }
        }
        _ => p.add(path, "must be a map of text values"),
    }
}

/// A task's driver config keys nomarch sets from the spec.
const OWNED_CONFIG: &[(&str, &str)] = &[
    ("image", "use spec.image"),
    ("command", "use spec.command"),
    ("args", "use spec.args"),
    ("ports", "use spec.ports"),
];

/// `spec.nomad`: nothing nomarch decides itself (each refusal names the field that does), and
/// none of nomarch's own job meta.
pub(crate) fn validate_nomad(overrides: &NomadOverrides, spec_path: &str, p: &mut Problems) {
    let levels = [
        ("job", &overrides.job),
        ("group", &overrides.group),
        ("task", &overrides.task),
    ];
    for (level, patch) in levels {
        let path = format!("{spec_path}.nomad.{level}");
        for (owned_level, key, instead) in OWNED_BY_NOMARCH {
            if *owned_level == level && patch.contains_key(*key) {
                p.add(
                    join_key(&path, key),
                    format!("nomarch sets {key}: {instead}"),
                );
            }
        }
        if level == "job" {
            for key in SERVER_SET_JOB_FIELDS
                .iter()
                .filter(|k| patch.contains_key(**k))
            {
                p.add(
                    join_key(&path, key),
                    format!("Nomad sets {key} itself when the job is registered"),
                );
            }
        }
        for (_, map) in TEXT_MAPS.iter().filter(|(l, _)| *l == level) {
            if let Some(value) = patch.get(*map) {
                validate_text_map(value, &join_key(&path, map), p);
            }
        }
        match patch.get("Meta") {
            Some(serde_json::Value::Object(meta)) => {
                for key in meta.keys().filter(|k| k.starts_with("nomarch.io/")) {
                    p.add(
                        join_key(&join_key(&path, "Meta"), key),
                        "nomarch's own meta cannot be set or removed here",
                    );
                }
            }
            Some(serde_json::Value::Null) if level == "job" => p.add(
                join_key(&path, "Meta"),
                "removing the job's meta would remove nomarch's ownership",
            ),
            _ => {}
        }
        if level == "task" {
            if let Some(serde_json::Value::Object(config)) = patch.get("Config") {
                for (key, instead) in OWNED_CONFIG {
                    if config.contains_key(*key) {
                        p.add(
                            join_key(&join_key(&path, "Config"), key),
                            format!("nomarch sets the driver's {key}: {instead}"),
                        );
                    }
                }
            }
        }
    }
}

/// Names and mount paths unique; a source Nomad accepts (structs `VolumeRequest.Validate`: not
/// empty); an access mode for CSI volumes only, one that the mount (read-only or not) and the
/// number of `instances` sharing the volume fit.
pub(crate) fn validate_volumes(volumes: &[Volume], instances: u32, p: &mut Problems) {
    let (mut names, mut paths) = (HashSet::new(), HashSet::new());
    for (i, volume) in volumes.iter().enumerate() {
        let item = join_index("spec.volumes", i);
        if let Some(problem) = dns_label_problem(&volume.name) {
            p.add(format!("{item}.name"), problem);
        }
        p.check(names.insert(&volume.name), &format!("{item}.name"), || {
            format!("`{}` is listed twice", printable(&volume.name))
        });
        // structs/volumes.go `VolumeRequest.Validate`, refused here first in Nomad's words.
        match (volume.type_, volume.access_mode) {
            (VolumeType::Host, Some(_)) => p.add(
                format!("{item}.accessMode"),
                "only csi volumes have an access mode",
            ),
            (VolumeType::Csi, mode) => {
                let mode = mode.unwrap_or_default();
                p.check(
                    volume.read_only || !mode.reads_only(),
                    &format!("{item}.readOnly"),
                    || format!("{} volumes must be read-only", mode.as_str()),
                );
                p.check(
                    instances <= 1 || !mode.single_instance(),
                    &format!("{item}.accessMode"),
                    || {
                        format!(
                            "volume with {} access mode allows only one instance; there are {instances} replicas",
                            mode.as_str()
                        )
                    },
                );
            }
            (VolumeType::Host, None) => {}
        }
        validate_nomad_name(&volume.source, &format!("{item}.source"), p);
        let path = &volume.mount_path;
        let absolute = path.starts_with('/')
            && path.len() <= 1024
            && !path.split('/').any(|part| part == "..")
            && !path.chars().any(|c| c.is_control() || c.is_whitespace());
        p.check(absolute, &format!("{item}.mountPath"), || {
            format!(
                "`{}` must be an absolute path without `..` or white space",
                printable(path)
            )
        });
        p.check(paths.insert(path), &format!("{item}.mountPath"), || {
            format!("`{}` is mounted twice", printable(path))
        });
    }
}

/// The container's fields, wherever a kind holds them (`path` is the object holding them).
pub(crate) fn validate_container(c: ContainerRef<'_>, path: &str, p: &mut Problems) {
    validate_image(c.image, &format!("{path}.image"), p);
    validate_command(c.command, &format!("{path}.command"), p);
    validate_resources(c.resources, &format!("{path}.resources"), p);
    validate_env(c.env, &format!("{path}.env"), p);
}

fn validate_image(image: &str, path: &str, p: &mut Problems) {
    let problem = match () {
        _ if image.is_empty() => Some("must not be empty".to_string()),
        _ if image.len() > 512 => Some("must be at most 512 characters".to_string()),
        _ if image.chars().any(|c| c.is_whitespace() || c.is_control()) => Some(format!(
            "`{}` is not an image reference: it contains white space",
            printable(image)
        )),
        _ => None,
    };
    if let Some(problem) = problem {
        p.add(path, problem);
    }
}

fn validate_command(command: Option<&str>, path: &str, p: &mut Problems) {
    if let Some(command) = command {
        p.check(!command.trim().is_empty(), path, || {
            "must not be empty when given".into()
        });
    }
}

fn validate_resources(r: &Resources, path: &str, p: &mut Problems) {
    let cpu = format!("{path}.cpu");
    p.check((1..=MAX_CPU_MHZ).contains(&r.cpu), &cpu, || {
        format!("must be between 1 and {MAX_CPU_MHZ} MHz (is {})", r.cpu)
    });
    let memory = format!("{path}.memory");
    p.check(
        (MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&r.memory),
        &memory,
        || {
            format!(
                "must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB} MB (is {})",
                r.memory
            )
        },
    );
}

pub(crate) fn validate_ports(ports: &[Port], p: &mut Problems) {
    let mut names = HashSet::new();
    let mut numbers = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = join_index("spec.ports", i);
        if let Some(problem) = dns_label_problem(&port.name) {
            p.add(format!("{path}.name"), problem);
        }
        p.check(names.insert(&port.name), &format!("{path}.name"), || {
            format!("port name `{}` is used twice", port.name)
        });
        if port.port != 0 {
            p.check(numbers.insert(port.port), &format!("{path}.port"), || {
                format!("port {} is used twice", port.port)
            });
        }
        if let Some(container_port) = port.container_port {
            p.check(
                container_port != 0,
                &format!("{path}.containerPort"),
                || "must be between 1 and 65535".into(),
            );
        }
    }
}

fn validate_env(env: &[EnvVar], path: &str, p: &mut Problems) {
    let mut names = HashSet::new();
    for (i, var) in env.iter().enumerate() {
        let item = join_index(path, i);
        let name_ok = var
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        p.check(name_ok, &format!("{item}.name"), || {
            format!("`{}` is not an environment variable name (letters, digits and `_`, not starting with a digit)", printable(&var.name))
        });
        p.check(names.insert(&var.name), &format!("{item}.name"), || {
            format!("`{}` is set twice", var.name)
        });
        let sources = [
            var.value.is_some(),
            var.secret_ref.is_some(),
            var.service_ref.is_some(),
        ];
        match sources.iter().filter(|set| **set).count() {
            0 => p.add(&item, "needs `value`, `secretRef` or `serviceRef`"),
            1 => {}
            _ => p.add(
                &item,
                "set one of `value`, `secretRef` and `serviceRef`, not several",
            ),
        }
        if let Some(secret) = &var.secret_ref {
            validate_secret_ref(secret, &format!("{item}.secretRef"), p);
        }
        if let Some(service) = &var.service_ref {
            if let Some(problem) = dns_label_problem(&service.name) {
                p.add(format!("{item}.serviceRef.name"), problem);
            }
        }
    }
}

pub(crate) fn validate_secret_ref(
    secret: &crate::workload::SecretKeyRef,
    path: &str,
    p: &mut Problems,
) {
    // A Nomad variable path: 1 to 128 of `[a-zA-Z0-9-_~/]` (nomad/structs/variables.go
    // `ValidatePath`); no empty parts, so no leading, trailing or doubled `/`.
    let name_ok = (1..=128).contains(&secret.name.len())
        && secret
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '~'))
        && !secret.name.split('/').any(str::is_empty);
    p.check(name_ok, &format!("{path}.name"), || {
        format!(
            "`{}` is not a Nomad variable path (1 to 128 letters, digits, `-`, `_`, `~`, with `/` between parts)",
            printable(&secret.name)
        )
    });
    let key_ok = !secret.key.is_empty()
        && secret
            .key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    p.check(key_ok, &format!("{path}.key"), || {
        format!(
            "`{}` is not a secret key (letters, digits, `-` and `_`)",
            printable(&secret.key)
        )
    });
}

pub(crate) fn validate_health(h: &HealthCheck, ports: &[Port], p: &mut Problems) {
    let port = ports.iter().find(|port| port.name == h.port);
    p.check(port.is_some(), "spec.health.port", || {
        format!("no port is named `{}`{}", h.port, port_names_hint(ports))
    });
    match (h.type_, &h.path) {
        (CheckType::Http, None) => p.add(
            "spec.health.path",
            "an http check needs a path, e.g. `/healthz`",
        ),
        (CheckType::Http, Some(path)) => validate_http_path(path, "spec.health.path", p),
        (CheckType::Tcp, Some(_)) => p.add("spec.health.path", "a tcp check has no path"),
        (CheckType::Tcp, None) => {}
    }
    let (interval, timeout, grace) = (h.interval.get(), h.timeout.get(), h.grace.get());
    p.check(
        interval >= StdDuration::from_secs(1),
        "spec.health.interval",
        || "must be at least 1s".into(),
    );
    p.check(
        timeout >= MIN_CHECK_TIMEOUT && timeout <= interval,
        "spec.health.timeout",
        || {
            format!(
                "must be at least 1s (Nomad's minimum) and at most the interval ({})",
                h.interval
            )
        },
    );
    p.check(grace >= interval, "spec.health.grace", || {
        format!(
            "must be at least the interval ({}), or one failed check would already exceed it",
            h.interval
        )
    });
}

fn port_names_hint(ports: &[Port]) -> String {
    if ports.is_empty() {
        " (spec.ports is empty)".into()
    } else {
        let names: Vec<_> = ports.iter().map(|p| format!("`{}`", p.name)).collect();
        format!(" (ports: {})", names.join(", "))
    }
}

fn validate_http_path(path: &str, field: &str, p: &mut Problems) {
    let ok = path.starts_with('/')
        && path.len() <= 1024
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:@?".contains(c));
    p.check(ok, field, || {
        format!(
            "`{}` must be a URL path starting with `/` without spaces or backticks",
            printable(path)
        )
    });
}

pub(crate) fn validate_route(route: &Route, ports: &[Port], p: &mut Problems) {
    if let Some(problem) = dns_name_problem(&route.host) {
        p.add("spec.route.host", problem);
    }
    // Traefik rules are built from these strings; the charset below cannot close a rule.
    let path_ok = route.path.starts_with('/')
        && route.path.len() <= 1024
        && route
            .path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(c));
    p.check(path_ok, "spec.route.path", || {
        format!(
            "`{}` must start with `/` and use only letters, digits and `/-._~%`",
            printable(&route.path)
        )
    });
    let http_ports: Vec<_> = ports
        .iter()
        .filter(|port| port.protocol == Protocol::Http)
        .collect();
    match &route.port {
        Some(name) => {
            let found = ports.iter().find(|port| &port.name == name);
            match found {
                None => p.add(
                    "spec.route.port",
                    format!("no port is named `{name}`{}", port_names_hint(ports)),
                ),
                Some(port) if port.protocol != Protocol::Http => p.add(
                    "spec.route.port",
                    format!("port `{name}` is tcp; a route needs an http port"),
                ),
                Some(_) => {}
            }
        }
        None => p.check(!http_ports.is_empty(), "spec.route", || {
            "a route needs an http port in spec.ports".into()
        }),
    }
}

/// Datacenters, node classes, pools and meta keys: Nomad's own identifier characters.
pub(crate) fn validate_nomad_name(value: &str, path: &str, p: &mut Problems) {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    p.check(ok, path, || {
        format!(
            "`{}` must be 1-128 letters, digits, `-`, `_` or `.`",
            printable(value)
        )
    });
}

pub(crate) fn validate_placement(placement: &Placement, path: &str, p: &mut Problems) {
    for (i, dc) in placement.datacenters.iter().enumerate() {
        let field = join_index(&format!("{path}.datacenters"), i);
        // `*` and `dc-*` globs are Nomad's own datacenter syntax.
        let ok = !dc.is_empty()
            && dc
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*'));
        p.check(ok, &field, || {
            format!(
                "`{}` must be letters, digits, `-`, `_`, `.` or `*`",
                printable(dc)
            )
        });
    }
    if let Some(class) = &placement.node_class {
        validate_nomad_name(class, &format!("{path}.nodeClass"), p);
    }
    if let Some(pool) = &placement.node_pool {
        validate_nomad_name(pool, &format!("{path}.nodePool"), p);
    }
    for (i, constraint) in placement.constraints.iter().enumerate() {
        validate_constraint(
            constraint,
            &join_index(&format!("{path}.constraints"), i),
            p,
        );
    }
}

fn validate_constraint(c: &Constraint, path: &str, p: &mut Problems) {
    let operator_ok = CONSTRAINT_OPERATORS.contains(&c.operator.as_str());
    p.check(operator_ok, &format!("{path}.operator"), || {
        format!(
            "`{}` is not a Nomad constraint operator; use one of {}",
            printable(&c.operator),
            CONSTRAINT_OPERATORS.join(", ")
        )
    });
    let needs_attribute = !matches!(c.operator.as_str(), "distinct_hosts");
    let attribute_ok = !needs_attribute
        || (c.attribute.starts_with("${") && c.attribute.ends_with('}') && c.attribute.len() > 3);
    p.check(attribute_ok, &format!("{path}.attribute"), || {
        format!(
            "`{}` must be a Nomad attribute such as `${{node.class}}` or `${{meta.tier}}`",
            printable(&c.attribute)
        )
    });
    let needs_value = !matches!(
        c.operator.as_str(),
        "is_set" | "is_not_set" | "distinct_hosts" | "distinct_property"
    );
    p.check(
        !needs_value || !c.value.is_empty(),
        &format!("{path}.value"),
        || format!("operator `{}` needs a value", c.operator),
    );
    p.check(
        !c.value.chars().any(char::is_control),
        &format!("{path}.value"),
        || "must not contain control characters".into(),
    );
    // What Nomad itself refuses of the value (`Constraint.Validate`): a value where none is
    // taken, a regexp that does not compile, a malformed version or semver constraint, a
    // distinct_property count that is not a positive integer. Nomad's words.
    if matches!(
        c.operator.as_str(),
        "is_set" | "is_not_set" | "regexp" | "version" | "semver" | "distinct_property"
    ) {
        let refused =
            crate::nomad_rules::constraint_operand_errors(&c.operator, &c.attribute, &c.value);
        for problem in refused.into_iter().filter(|e| !e.contains("LTarget")) {
            p.add(
                format!("{path}.value"),
                format!("Nomad refuses this: {problem}"),
            );
        }
    }
}

pub(crate) fn validate_update(u: &UpdateStrategy, p: &mut Problems) {
    use crate::workload::RolloutStrategy;
    let canary_strategy = u.strategy == RolloutStrategy::Canary;
    p.check(
        !canary_strategy || (1..=MAX_REPLICAS).contains(&u.canary),
        "spec.update.canary",
        || format!("must be between 1 and {MAX_REPLICAS} with `strategy: canary`"),
    );
    p.check(
        canary_strategy || u.canary == 0,
        "spec.update.canary",
        || "applies only to `strategy: canary` (blueGreen starts as many as `replicas`)".into(),
    );
    // structs.go `UpdateStrategy.Validate`: "Auto Promote requires a Canary count greater
    // than zero".
    p.check(
        !u.auto_promote || u.strategy != RolloutStrategy::Rolling,
        "spec.update.autoPromote",
        || {
            "needs `strategy: canary` or `blueGreen`: a rolling update has nothing to promote"
                .into()
        },
    );
    // "Healthy deadline must be less than progress deadline" (0 means no progress deadline).
    let progress = u.progress_deadline();
    p.check(
        progress.is_zero() || progress > u.healthy_deadline.get(),
        "spec.update.progressDeadline",
        || {
            format!(
                "must be longer than healthyDeadline ({}), or 0s for none",
                u.healthy_deadline
            )
        },
    );
    p.check(
        (1..=MAX_REPLICAS).contains(&u.max_parallel),
        "spec.update.maxParallel",
        || format!("must be between 1 and {MAX_REPLICAS}"),
    );
    p.check(
        (1..=MAX_REPLICAS).contains(&u.max_unavailable),
        "spec.update.maxUnavailable",
        || format!("must be between 1 and {MAX_REPLICAS}"),
    );
    p.check(
        u.healthy_deadline.get() > u.min_healthy_time.get(),
        "spec.update.healthyDeadline",
        || {
            format!(
                "must be longer than minHealthyTime ({})",
                u.min_healthy_time
            )
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Schedules and git

/// The macros Nomad's cron parser (hashicorp/cronexpr) knows. It has no `@midnight`, which
/// classic cron has: Nomad refuses a job with it, so nomarch does too.
pub const CRON_MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A cron macro as the five fields it stands for (as cron and Nomad read them); anything
/// else unchanged.
pub fn expand_cron_macro(schedule: &str) -> &str {
    match schedule.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    }
}

/// Five fields, as Kubernetes and classic cron have them. Six or seven fields are refused on
/// purpose: Nomad reads a sixth field as the year, while most cron libraries read it as seconds,
/// and the two readings silently disagree.
pub fn check_cron_schedule(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    if trimmed.starts_with('@') {
        return if CRON_MACROS.contains(&trimmed) {
            Ok(())
        } else if trimmed == "@midnight" {
            Err("Nomad does not know `@midnight`; use `@daily` (the same: 0 0 * * *)".into())
        } else {
            Err(format!(
                "`{}` is not a cron macro; use one of {}",
                printable(trimmed),
                CRON_MACROS.join(", ")
            ))
        };
    }
    let fields = trimmed.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "`{}` has {fields} fields; a schedule has 5: minute hour day-of-month month day-of-week (e.g. `30 2 * * *`)",
            printable(trimmed)
        ));
    }
    trimmed.parse::<croner::Cron>().map(|_| ()).map_err(|e| {
        format!(
            "`{}` is not a valid cron expression: {e}",
            printable(trimmed)
        )
    })
}

pub(crate) fn check_git_url(url: &str) -> Result<(), String> {
    let scp_style = |u: &str| {
        // git@host:path, as ssh users write it.
        u.split_once(':').is_some_and(|(host, path)| {
            host.contains('@') && !host.contains('/') && !path.is_empty()
        })
    };
    let scheme_ok = ["file://", "ssh://", "https://", "http://", "git://"]
        .iter()
        .any(|s| url.starts_with(s));
    // `https://user:token@host/...`: the token would sit in etcd and in every status.
    let password_in_url = url.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split('/').next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    });
    match () {
        _ if url.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err("must not contain white space".into())
        }
        _ if password_in_url => Err(
            "must not carry a password; put credentials in a secret and name it in secretRef"
                .into(),
        ),
        _ if scheme_ok || scp_style(url) => Ok(()),
        _ => Err(format!(
            "`{}` is not a git URL; use file://, ssh://, https:// or git@host:path",
            printable(url)
        )),
    }
}

/// The parts of `git check-ref-format` that matter for a branch name typed in a manifest.
pub(crate) fn check_branch(branch: &str) -> Result<(), String> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("@{")
        || branch
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        Err(format!(
            "`{}` is not a valid branch name",
            printable(branch)
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["web", "a", "web-2", "0abc"] {
            assert_eq!(dns_label_problem(good), None, "{good}");
        }
        for bad in ["", "Web", "-web", "web-", "we_b", "a.b", &"x".repeat(64)] {
            assert!(dns_label_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn cron_schedules() {
        assert!(check_cron_schedule("30 2 * * *").is_ok());
        assert!(check_cron_schedule("*/5 * * * 1-5").is_ok());
        assert!(check_cron_schedule("@daily").is_ok());
        assert!(check_cron_schedule("@fortnightly")
            .unwrap_err()
            .contains("not a cron macro"));
        assert!(check_cron_schedule("0 30 2 * * *")
            .unwrap_err()
            .contains("has 6 fields"));
        assert!(check_cron_schedule("61 * * * *")
            .unwrap_err()
            .contains("not a valid cron expression"));
    }

    #[test]
    fn git_urls_and_branches() {
        for good in [
            "file:///srv/state.git",
            "https://git.example.com/ops/state.git",
            "git@github.com:ops/state.git",
        ] {
            assert!(check_git_url(good).is_ok(), "{good}");
        }
        for bad in ["/srv/state.git", "ftp://x/y", "https://a b"] {
            assert!(check_git_url(bad).is_err(), "{bad}");
        }
        assert!(check_branch("release/1.2").is_ok());
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a:b"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }
}
