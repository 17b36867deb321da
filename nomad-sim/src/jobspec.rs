//! HCL jobspecs into API jobs, as `/v1/jobs/parse` answers (command/agent/job_endpoint.go
//! `JobsParseRequest` → jobspec2 `ParseWithConfig`, path `input.hcl`): each block and argument
//! into the `api` package's field (its `hcl:` tag), `normalizeJob` after (the job's label as its
//! ID and Name, ports with a `static` value reserved, template defaults, a cron's `SpecType`).
//!
//! Modelled: the blocks and arguments of the jobspec features nomad-sim simulates (the tables
//! below). Refused as HCL refuses them (hashicorp/hcl `Diagnostic.Error`, `Range.String`; many
//! diagnostics as `Diagnostics.Error`): an unknown argument or block, a missing label, a block
//! or argument set twice, a value of the wrong type, a variable (jobspec2's `var.` needs
//! `variable` blocks, not simulated). Blocks Nomad has that nomad-sim does not simulate are
//! refused with a text that says so, not Nomad's. Syntax errors come from the Rust `hcl-edit`
//! parser: where they are is exact, their wording is that crate's, not hashicorp/hcl's.
//! `${...}` inside strings is kept as written, as jobspec2 keeps runtime interpolations
//! (`${node.class}`, `${NOMAD_PORT_http}`) for the client to resolve.

use std::ops::Range;

use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Block, BlockLabel, Body, Structure};
use hcl_edit::template::Element;
use hcl_edit::Span;
use serde_json::{json, Map, Value};

/// What an argument's value must be, and how it reads into JSON.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    /// A Go duration (`"10s"`) as integer nanoseconds.
    Duration,
    StrList,
    /// Any value, as it is (a driver's `config`, a scaling `policy`).
    Any,
    /// A map of strings (`meta = {...}`, `env = {...}`).
    StrMap,
}

/// How a block reads into its parent.
#[derive(Clone, Copy)]
enum Shape {
    /// At most one, an object.
    Single,
    /// Any number, a list.
    List,
    /// Any number, each with one label stored under the given key, a list.
    Labeled(&'static str),
    /// Any number, each with one label, a map by label (the label also under `Name`).
    LabeledMap,
    /// At most one, its arguments a map of strings (`meta {}`, `env {}`).
    StrMap,
    /// At most one, anything in it as written (`config {}`).
    Any,
}

enum Field {
    Arg(&'static str, &'static str, Kind),
    Block(&'static str, &'static str, Shape, &'static [Field]),
}

use Field::{Arg, Block as Blk};
use Kind::*;

const CONSTRAINT: &[Field] = &[
    Arg("attribute", "LTarget", Str),
    Arg("value", "RTarget", Str),
    Arg("operator", "Operand", Str),
];
const UPDATE: &[Field] = &[
    Arg("stagger", "Stagger", Duration),
    Arg("max_parallel", "MaxParallel", Int),
    Arg("health_check", "HealthCheck", Str),
    Arg("min_healthy_time", "MinHealthyTime", Duration),
    Arg("healthy_deadline", "HealthyDeadline", Duration),
    Arg("progress_deadline", "ProgressDeadline", Duration),
    Arg("canary", "Canary", Int),
    Arg("auto_revert", "AutoRevert", Bool),
    Arg("auto_promote", "AutoPromote", Bool),
];
const RESTART: &[Field] = &[
    Arg("interval", "Interval", Duration),
    Arg("attempts", "Attempts", Int),
    Arg("delay", "Delay", Duration),
    Arg("mode", "Mode", Str),
    Arg("render_templates", "RenderTemplates", Bool),
];
const RESCHEDULE: &[Field] = &[
    Arg("attempts", "Attempts", Int),
    Arg("interval", "Interval", Duration),
    Arg("delay", "Delay", Duration),
    Arg("delay_function", "DelayFunction", Str),
    Arg("max_delay", "MaxDelay", Duration),
    Arg("unlimited", "Unlimited", Bool),
];
const PERIODIC: &[Field] = &[
    Arg("enabled", "Enabled", Bool),
    Arg("cron", "Spec", Str),
    Arg("crons", "Specs", StrList),
    Arg("prohibit_overlap", "ProhibitOverlap", Bool),
    Arg("time_zone", "TimeZone", Str),
];
const PORT: &[Field] = &[
    Arg("static", "Value", Int),
    Arg("to", "To", Int),
    Arg("host_network", "HostNetwork", Str),
];
const NETWORK: &[Field] = &[
    Arg("mode", "Mode", Str),
    Arg("hostname", "Hostname", Str),
    Blk("port", "DynamicPorts", Shape::Labeled("Label"), PORT),
];
const CHECK_RESTART: &[Field] = &[
    Arg("limit", "Limit", Int),
    Arg("grace", "Grace", Duration),
    Arg("ignore_warnings", "IgnoreWarnings", Bool),
];
const CHECK: &[Field] = &[
    Arg("name", "Name", Str),
    Arg("type", "Type", Str),
    Arg("command", "Command", Str),
    Arg("args", "Args", StrList),
    Arg("path", "Path", Str),
    Arg("protocol", "Protocol", Str),
    Arg("port", "PortLabel", Str),
    Arg("interval", "Interval", Duration),
    Arg("timeout", "Timeout", Duration),
    Arg("initial_status", "InitialStatus", Str),
    Arg("method", "Method", Str),
    Arg("task", "TaskName", Str),
    Arg("on_update", "OnUpdate", Str),
    Arg("success_before_passing", "SuccessBeforePassing", Int),
    Arg("failures_before_critical", "FailuresBeforeCritical", Int),
    Blk(
        "check_restart",
        "CheckRestart",
        Shape::Single,
        CHECK_RESTART,
    ),
];
const SERVICE: &[Field] = &[
    Arg("name", "Name", Str),
    Arg("tags", "Tags", StrList),
    Arg("canary_tags", "CanaryTags", StrList),
    Arg("port", "PortLabel", Str),
    Arg("address_mode", "AddressMode", Str),
    Arg("provider", "Provider", Str),
    Arg("task", "TaskName", Str),
    Arg("on_update", "OnUpdate", Str),
    Blk("check", "Checks", Shape::List, CHECK),
    Blk(
        "check_restart",
        "CheckRestart",
        Shape::Single,
        CHECK_RESTART,
    ),
    Blk("meta", "Meta", Shape::StrMap, &[]),
];
const RESOURCES: &[Field] = &[
    Arg("cpu", "CPU", Int),
    Arg("cores", "Cores", Int),
    Arg("memory", "MemoryMB", Int),
    Arg("memory_max", "MemoryMaxMB", Int),
    Arg("disk", "DiskMB", Int),
];
const TEMPLATE: &[Field] = &[
    Arg("source", "SourcePath", Str),
    Arg("destination", "DestPath", Str),
    Arg("data", "EmbeddedTmpl", Str),
    Arg("change_mode", "ChangeMode", Str),
    Arg("change_signal", "ChangeSignal", Str),
    Arg("splay", "Splay", Duration),
    Arg("perms", "Perms", Str),
    Arg("env", "Envvars", Bool),
    Arg("left_delimiter", "LeftDelim", Str),
    Arg("right_delimiter", "RightDelim", Str),
    Arg("error_on_missing_key", "ErrMissingKey", Bool),
];
const VOLUME: &[Field] = &[
    Arg("type", "Type", Str),
    Arg("source", "Source", Str),
    Arg("read_only", "ReadOnly", Bool),
    Arg("sticky", "Sticky", Bool),
    Arg("access_mode", "AccessMode", Str),
    Arg("attachment_mode", "AttachmentMode", Str),
    Arg("per_alloc", "PerAlloc", Bool),
];
const VOLUME_MOUNT: &[Field] = &[
    Arg("volume", "Volume", Str),
    Arg("destination", "Destination", Str),
    Arg("read_only", "ReadOnly", Bool),
    Arg("propagation_mode", "PropagationMode", Str),
];
const SCALING: &[Field] = &[
    Arg("min", "Min", Int),
    Arg("max", "Max", Int),
    Arg("enabled", "Enabled", Bool),
    Arg("type", "Type", Str),
    Blk("policy", "Policy", Shape::Any, &[]),
];
const TASK: &[Field] = &[
    Arg("driver", "Driver", Str),
    Arg("user", "User", Str),
    Arg("kill_timeout", "KillTimeout", Duration),
    Arg("kill_signal", "KillSignal", Str),
    Arg("shutdown_delay", "ShutdownDelay", Duration),
    Arg("leader", "Leader", Bool),
    Arg("env", "Env", StrMap),
    Arg("meta", "Meta", StrMap),
    Arg("config", "Config", Any),
    Blk("config", "Config", Shape::Any, &[]),
    Blk("env", "Env", Shape::StrMap, &[]),
    Blk("meta", "Meta", Shape::StrMap, &[]),
    Blk("constraint", "Constraints", Shape::List, CONSTRAINT),
    Blk("service", "Services", Shape::List, SERVICE),
    Blk("resources", "Resources", Shape::Single, RESOURCES),
    Blk("restart", "RestartPolicy", Shape::Single, RESTART),
    Blk("template", "Templates", Shape::List, TEMPLATE),
    Blk("volume_mount", "VolumeMounts", Shape::List, VOLUME_MOUNT),
];
const GROUP: &[Field] = &[
    Arg("count", "Count", Int),
    Arg("shutdown_delay", "ShutdownDelay", Duration),
    Arg("max_client_disconnect", "MaxClientDisconnect", Duration),
    Arg("meta", "Meta", StrMap),
    Blk("meta", "Meta", Shape::StrMap, &[]),
    Blk("constraint", "Constraints", Shape::List, CONSTRAINT),
    Blk("task", "Tasks", Shape::Labeled("Name"), TASK),
    Blk("volume", "Volumes", Shape::LabeledMap, VOLUME),
    Blk("restart", "RestartPolicy", Shape::Single, RESTART),
    Blk("reschedule", "ReschedulePolicy", Shape::Single, RESCHEDULE),
    Blk("update", "Update", Shape::Single, UPDATE),
    Blk("network", "Networks", Shape::List, NETWORK),
    Blk("service", "Services", Shape::List, SERVICE),
    Blk("scaling", "Scaling", Shape::Single, SCALING),
];
const JOB: &[Field] = &[
    Arg("region", "Region", Str),
    Arg("namespace", "Namespace", Str),
    Arg("id", "ID", Str),
    Arg("name", "Name", Str),
    Arg("type", "Type", Str),
    Arg("priority", "Priority", Int),
    Arg("all_at_once", "AllAtOnce", Bool),
    Arg("datacenters", "Datacenters", StrList),
    Arg("node_pool", "NodePool", Str),
    Arg("meta", "Meta", StrMap),
    Blk("meta", "Meta", Shape::StrMap, &[]),
    Blk("constraint", "Constraints", Shape::List, CONSTRAINT),
    Blk("group", "TaskGroups", Shape::Labeled("Name"), GROUP),
    Blk("update", "Update", Shape::Single, UPDATE),
    Blk("periodic", "Periodic", Shape::Single, PERIODIC),
    Blk("reschedule", "ReschedulePolicy", Shape::Single, RESCHEDULE),
];

/// Blocks Nomad's jobspec has that nomad-sim does not simulate: refused by name, so nobody
/// mistakes the sim's limits for Nomad's.
const NOT_SIMULATED: &[&str] = &[
    "affinity",
    "artifact",
    "connect",
    "consul",
    "csi_plugin",
    "disconnect",
    "dispatch_payload",
    "ephemeral_disk",
    "identity",
    "lifecycle",
    "locals",
    "logs",
    "migrate",
    "multiregion",
    "parameterized",
    "spread",
    "ui",
    "variable",
    "vault",
    "action",
    "schedule",
    "device",
    "numa",
    "dns",
    "cni",
];

/// One HCL diagnostic: where (a byte range of the input), summary and detail.
struct Diagnostic {
    at: Range<usize>,
    summary: String,
    detail: String,
}

/// Reads HCL into the API job `/v1/jobs/parse` answers, or hashicorp/hcl's diagnostics text.
pub fn parse(source: &str) -> Result<Value, String> {
    let body = hcl_edit::parser::parse_body(source).map_err(|e| {
        let location = e.location();
        format!(
            "input.hcl:{},{}-{}: Invalid syntax; {}",
            location.line(),
            location.column(),
            location.column() + 1,
            e.message()
        )
    })?;
    let mut reader = Reader {
        source,
        diagnostics: Vec::new(),
    };
    let job = reader.root(&body);
    if reader.diagnostics.is_empty() {
        Ok(job)
    } else {
        Err(reader.render())
    }
}

struct Reader<'a> {
    source: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn fail(&mut self, at: Option<Range<usize>>, summary: &str, detail: String) {
        self.diagnostics.push(Diagnostic {
            at: at.unwrap_or(0..0),
            summary: summary.to_string(),
            detail,
        });
    }

    /// hcl `Range.String`: `file:line,col-col`, or `file:line,col-line,col` across lines.
    fn range(&self, at: &Range<usize>) -> String {
        let position = |offset: usize| {
            let before = &self.source[..offset.min(self.source.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            (line, column)
        };
        let (start_line, start_col) = position(at.start);
        let (end_line, end_col) = position(at.end);
        if start_line == end_line {
            format!("input.hcl:{start_line},{start_col}-{end_col}")
        } else {
            format!("input.hcl:{start_line},{start_col}-{end_line},{end_col}")
        }
    }

    /// hcl `Diagnostics.Error`: the first, and how many more.
    fn render(&self) -> String {
        let one = |d: &Diagnostic| format!("{}: {}; {}", self.range(&d.at), d.summary, d.detail);
        let first = one(&self.diagnostics[0]);
        match self.diagnostics.len() {
            1 => first,
            n => format!("{first}, and {} other diagnostic(s)", n - 1),
        }
    }

    /// The file: exactly one `job "name" {}` (jobspec2's `jobWrapper`), normalized.
    fn root(&mut self, body: &Body) -> Value {
        let mut jobs = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Block(block) if block.ident.as_str() == "job" => jobs.push(block),
                Structure::Block(block) => self.unknown_block(block),
                Structure::Attribute(attr) => self.fail(
                    attr.key.span(),
                    "Unsupported argument",
                    format!(
                        "An argument named {:?} is not expected here.",
                        attr.key.as_str()
                    ),
                ),
            }
        }
        let Some(block) = jobs.first() else {
            self.fail(
                Some(0..0),
                "Insufficient job blocks",
                "At least 1 \"job\" blocks are required.".into(),
            );
            return Value::Null;
        };
        if let Some(extra) = jobs.get(1) {
            self.fail(
                extra.ident.span(),
                "Duplicate job block",
                format!(
                    "Only one job block is allowed. Another was defined at {}.",
                    self.range(&block.ident.span().unwrap_or(0..0))
                ),
            );
        }
        let Some(label) = self.one_label(block) else {
            return Value::Null;
        };
        let mut job = self.body(&block.body, JOB);
        normalize_job(&mut job, &label);
        Value::Object(job)
    }

    fn one_label(&mut self, block: &Block) -> Option<String> {
        let name = block.ident.as_str();
        match block.labels.as_slice() {
            [label] => Some(label_text(label)),
            [] => {
                self.fail(
                    block.ident.span(),
                    &format!("Missing name for {name}"),
                    format!("All {name} blocks must have 1 labels (name)."),
                );
                None
            }
            [_, extra, ..] => {
                self.fail(
                    extra.span(),
                    &format!("Extraneous label for {name}"),
                    format!("Only 1 labels (name) are expected for {name} blocks."),
                );
                None
            }
        }
    }

    fn unknown_block(&mut self, block: &Block) {
        let name = block.ident.as_str();
        let detail = if NOT_SIMULATED.contains(&name) {
            format!("Nomad accepts {name:?} blocks here, but nomad-sim does not simulate them.")
        } else {
            format!("Blocks of type {name:?} are not expected here.")
        };
        self.fail(block.ident.span(), "Unsupported block type", detail);
    }

    fn body(&mut self, body: &Body, fields: &'static [Field]) -> Map<String, Value> {
        let mut out = Map::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let name = attr.key.as_str();
                    let Some((key, kind)) = fields.iter().find_map(|f| match f {
                        Arg(hcl, key, kind) if *hcl == name => Some((*key, *kind)),
                        _ => None,
                    }) else {
                        self.fail(
                            attr.key.span(),
                            "Unsupported argument",
                            format!("An argument named {name:?} is not expected here."),
                        );
                        continue;
                    };
                    if let Some(value) = self.value(&attr.value, kind, name) {
                        out.insert(key.to_string(), value);
                    }
                }
                Structure::Block(block) => {
                    let name = block.ident.as_str();
                    let Some((key, shape, inner)) = fields.iter().find_map(|f| match f {
                        Blk(hcl, key, shape, inner) if *hcl == name => Some((*key, *shape, *inner)),
                        _ => None,
                    }) else {
                        self.unknown_block(block);
                        continue;
                    };
                    self.block(&mut out, block, key, shape, inner);
                }
            }
        }
        out
    }

    fn block(
        &mut self,
        out: &mut Map<String, Value>,
        block: &Block,
        key: &str,
        shape: Shape,
        inner: &'static [Field],
    ) {
        let name = block.ident.as_str();
        let single = matches!(shape, Shape::Single | Shape::StrMap | Shape::Any);
        if single && out.contains_key(key) {
            self.fail(
                block.ident.span(),
                &format!("Duplicate {name} block"),
                format!("Only one {name} block is allowed."),
            );
            return;
        }
        if !matches!(shape, Shape::Labeled(_) | Shape::LabeledMap) && !block.labels.is_empty() {
            self.fail(
                block.labels[0].span(),
                &format!("Extraneous label for {name}"),
                format!("No labels are expected for {name} blocks."),
            );
            return;
        }
        match shape {
            Shape::Single => {
                let object = self.body(&block.body, inner);
                out.insert(key.to_string(), Value::Object(object));
            }
            Shape::List => {
                let object = self.body(&block.body, inner);
                push(out, key, Value::Object(object));
            }
            Shape::Labeled(label_key) => {
                let Some(label) = self.one_label(block) else {
                    return;
                };
                let mut object = Map::new();
                object.insert(label_key.to_string(), json!(label));
                object.extend(self.body(&block.body, inner));
                push(out, key, Value::Object(object));
            }
            Shape::LabeledMap => {
                let Some(label) = self.one_label(block) else {
                    return;
                };
                let mut object = Map::new();
                object.insert("Name".into(), json!(label));
                object.extend(self.body(&block.body, inner));
                let map = out.entry(key).or_insert_with(|| json!({}));
                map[label] = Value::Object(object);
            }
            Shape::StrMap => {
                let mut map = Map::new();
                for structure in block.body.iter() {
                    match structure {
                        Structure::Attribute(attr) => {
                            if let Some(value) = self.value(&attr.value, Str, attr.key.as_str()) {
                                map.insert(attr.key.to_string(), value);
                            }
                        }
                        Structure::Block(block) => self.unknown_block(block),
                    }
                }
                out.insert(key.to_string(), Value::Object(map));
            }
            Shape::Any => {
                let value = self.any_body(&block.body);
                out.insert(key.to_string(), value);
            }
        }
    }

    /// A `config {}` body as written: arguments as values, nested blocks as lists of objects
    /// (how jobspec2 hands a driver its config).
    fn any_body(&mut self, body: &Body) -> Value {
        let mut map = Map::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    if let Some(value) = self.value(&attr.value, Any, attr.key.as_str()) {
                        map.insert(attr.key.to_string(), value);
                    }
                }
                Structure::Block(block) => {
                    let inner = self.any_body(&block.body);
                    push(&mut map, block.ident.as_str(), inner);
                }
            }
        }
        Value::Object(map)
    }

    /// An expression as the argument's kind wants it; `None` after a diagnostic.
    fn value(&mut self, expr: &Expression, kind: Kind, name: &str) -> Option<Value> {
        let value = self.literal(expr)?;
        let wrong = |what: &str| format!("Inappropriate value for attribute {name:?}: {what}.");
        let checked = match kind {
            Any => Some(value),
            Str => match value {
                Value::String(_) => Some(value),
                Value::Number(n) => Some(json!(n.to_string())),
                Value::Bool(b) => Some(json!(b.to_string())),
                _ => None,
            },
            Int => match &value {
                Value::Number(n) if n.is_i64() => Some(value),
                Value::String(s) => s.parse::<i64>().ok().map(|n| json!(n)),
                _ => None,
            },
            Bool => match &value {
                Value::Bool(_) => Some(value),
                Value::String(s) => s.parse::<bool>().ok().map(|b| json!(b)),
                _ => None,
            },
            Duration => match &value {
                Value::String(s) => match crate::clock::parse_go_duration(s) {
                    Some(d) => Some(json!(d.as_nanos() as u64)),
                    None => {
                        self.fail(
                            expr.span(),
                            "Unsuitable duration value",
                            format!("time: invalid duration {s:?}"),
                        );
                        return None;
                    }
                },
                Value::Number(n) if n.is_u64() => Some(value),
                _ => None,
            },
            StrList => match &value {
                Value::Array(items) if items.iter().all(Value::is_string) => Some(value),
                _ => None,
            },
            StrMap => match &value {
                Value::Object(items) if items.values().all(Value::is_string) => Some(value),
                _ => None,
            },
        };
        if checked.is_none() {
            let what = match kind {
                Int | Duration => "a number is required",
                Bool => "a bool is required",
                StrList => "list of string required",
                StrMap => "map of string required",
                Str | Any => "string required",
            };
            self.fail(expr.span(), "Incorrect attribute value type", wrong(what));
        }
        checked
    }

    /// A literal: strings (with `${...}` kept as written), numbers, bools, lists, objects.
    fn literal(&mut self, expr: &Expression) -> Option<Value> {
        Some(match expr {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => json!(*b.value()),
            Expression::Number(n) => {
                let number = n.value();
                if let Some(i) = number.as_i64() {
                    json!(i)
                } else if let Some(u) = number.as_u64() {
                    json!(u)
                } else {
                    json!(number.as_f64())
                }
            }
            Expression::String(s) => json!(s.value()),
            Expression::StringTemplate(template) => {
                json!(self.template_text(template.iter()))
            }
            Expression::HeredocTemplate(heredoc) => {
                json!(self.template_text(heredoc.template.iter()))
            }
            Expression::Array(array) => {
                let mut items = Vec::new();
                for item in array.iter() {
                    items.push(self.literal(item)?);
                }
                Value::Array(items)
            }
            Expression::Object(object) => {
                let mut map = Map::new();
                for (key, value) in object.iter() {
                    let key = match key {
                        ObjectKey::Ident(ident) => ident.to_string(),
                        ObjectKey::Expression(expr) => match self.literal(expr)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    };
                    map.insert(key, self.literal(value.expr())?);
                }
                Value::Object(map)
            }
            Expression::Parenthesis(inner) => self.literal(inner.inner())?,
            Expression::Variable(variable) => {
                self.fail(
                    variable.span(),
                    "Unknown variable",
                    format!("There is no variable named {:?}.", variable.as_str()),
                );
                return None;
            }
            Expression::Traversal(traversal) => {
                let root = match &traversal.expr {
                    Expression::Variable(v) => v.as_str().to_string(),
                    _ => "expression".to_string(),
                };
                self.fail(
                    traversal.expr.span(),
                    "Unknown variable",
                    format!("There is no variable named {root:?}."),
                );
                return None;
            }
            other => {
                self.fail(
                    other.span(),
                    "Unsupported expression",
                    "nomad-sim reads literal values only (no functions, operators or conditionals)."
                        .into(),
                );
                return None;
            }
        })
    }

    /// A template's text: literal parts as they read, interpolations and directives as written.
    fn template_text<'e>(&self, elements: impl Iterator<Item = &'e Element>) -> String {
        let mut text = String::new();
        for element in elements {
            match element {
                Element::Literal(literal) => text.push_str(literal.value()),
                other => {
                    if let Some(span) = other.span() {
                        text.push_str(&self.source[span]);
                    }
                }
            }
        }
        text
    }
}

fn label_text(label: &BlockLabel) -> String {
    match label {
        BlockLabel::Ident(ident) => ident.to_string(),
        BlockLabel::String(text) => text.value().clone(),
    }
}

fn push(out: &mut Map<String, Value>, key: &str, item: Value) {
    match out.entry(key).or_insert_with(|| json!([])) {
        Value::Array(items) => items.push(item),
        slot => *slot = json!([item]),
    }
}

/// jobspec2/parse_job.go `normalizeJob`: the label as ID and Name when unset, a cron's
/// `SpecType`, `normalizeNetworkPorts` (a port with a `static` value is reserved) and
/// `normalizeTemplates` (change mode, perms, splay, missing keys).
fn normalize_job(job: &mut Map<String, Value>, label: &str) {
    job.entry("Name").or_insert_with(|| json!(label));
    job.entry("ID").or_insert_with(|| json!(label));
    if let Some(Value::Object(periodic)) = job.get_mut("Periodic") {
        if periodic.contains_key("Spec") || periodic.contains_key("Specs") {
            periodic.insert("SpecType".into(), json!("cron"));
        }
    }
    let groups = job.get_mut("TaskGroups").and_then(Value::as_array_mut);
    for group in groups.into_iter().flatten() {
        normalize_networks(group);
        let tasks = group.get_mut("Tasks").and_then(Value::as_array_mut);
        for task in tasks.into_iter().flatten() {
            let templates = task.get_mut("Templates").and_then(Value::as_array_mut);
            for template in templates.into_iter().flatten() {
                let Value::Object(template) = template else {
                    continue;
                };
                template
                    .entry("ChangeMode")
                    .or_insert_with(|| json!("restart"));
                template.entry("Perms").or_insert_with(|| json!("0644"));
                template
                    .entry("Splay")
                    .or_insert_with(|| json!(5_000_000_000u64));
                template
                    .entry("ErrMissingKey")
                    .or_insert_with(|| json!(false));
            }
        }
    }
}

fn normalize_networks(group: &mut Value) {
    let networks = group.get_mut("Networks").and_then(Value::as_array_mut);
    for network in networks.into_iter().flatten() {
        let Some(Value::Array(ports)) = network.get_mut("DynamicPorts").map(Value::take) else {
            continue;
        };
        let (reserved, dynamic): (Vec<Value>, Vec<Value>) = ports
            .into_iter()
            .partition(|p| p.get("Value").and_then(Value::as_u64).unwrap_or(0) > 0);
        network["DynamicPorts"] = if dynamic.is_empty() {
            Value::Null
        } else {
            json!(dynamic)
        };
        if !reserved.is_empty() {
            network["ReservedPorts"] = json!(reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = r#"
job "web" {
  datacenters = ["dc1"]
  type        = "service"
  meta { team = "ops" }

  group "web" {
    count = 2
    network {
      port "http" { to = 8080 }
      port "admin" { static = 9000 }
    }
    service {
      name = "web"
      port = "http"
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }
    scaling {
      enabled = true
      min     = 1
      max     = 10
      policy { cooldown = "1m" }
    }
    task "web" {
      driver = "docker"
      config {
        image = "nginx:1.27"
        ports = ["http"]
      }
      env { GREETING = "hi ${NOMAD_ALLOC_ID}" }
      resources {
        cpu    = 100
        memory = 128
      }
      template {
        data        = <<EOT
upstream {{ range service "api" }}{{ .Address }}{{ end }}
EOT
        destination = "local/up.conf"
      }
    }
  }
}
"#;

    #[test]
    fn a_jobspec_reads_into_the_api_job() {
        let job = parse(WEB).unwrap();
        assert_eq!(job["ID"], "web");
        assert_eq!(job["Name"], "web");
        assert_eq!(job["Datacenters"], json!(["dc1"]));
        assert_eq!(job["Meta"], json!({"team": "ops"}));
        let group = &job["TaskGroups"][0];
        assert_eq!(group["Name"], "web");
        assert_eq!(group["Count"], 2);
        let network = &group["Networks"][0];
        assert_eq!(
            network["DynamicPorts"],
            json!([{"Label": "http", "To": 8080}])
        );
        assert_eq!(
            network["ReservedPorts"],
            json!([{"Label": "admin", "Value": 9000}]),
            "a static port is reserved (normalizeNetworkPorts)"
        );
        let check = &group["Services"][0]["Checks"][0];
        assert_eq!(check["Interval"], 10_000_000_000u64);
        assert_eq!(check["Path"], "/health");
        assert_eq!(group["Scaling"]["Enabled"], true);
        assert_eq!(group["Scaling"]["Policy"], json!({"cooldown": "1m"}));
        let task = &group["Tasks"][0];
        assert_eq!(task["Config"]["image"], "nginx:1.27");
        assert_eq!(task["Config"]["ports"], json!(["http"]));
        assert_eq!(
            task["Env"]["GREETING"], "hi ${NOMAD_ALLOC_ID}",
            "runtime interpolation is kept for the client"
        );
        assert_eq!(task["Resources"], json!({"CPU": 100, "MemoryMB": 128}));
        let template = &task["Templates"][0];
        assert_eq!(
            template["EmbeddedTmpl"],
            "upstream {{ range service \"api\" }}{{ .Address }}{{ end }}\n"
        );
        assert_eq!(template["ChangeMode"], "restart", "normalizeTemplates");
        assert_eq!(template["Splay"], 5_000_000_000u64);
    }

    #[test]
    fn mistakes_are_refused_where_they_are_in_hcls_words() {
        let unknown = parse("job \"x\" {\n  group \"g\" {\n    cont = 1\n  }\n}\n").unwrap_err();
        assert_eq!(
            unknown,
            "input.hcl:3,5-9: Unsupported argument; An argument named \"cont\" is not expected here."
        );
        let block = parse("job \"x\" {\n  grp \"g\" {}\n}\n").unwrap_err();
        assert_eq!(
            block,
            "input.hcl:2,3-6: Unsupported block type; Blocks of type \"grp\" are not expected here."
        );
        let typed = parse("job \"x\" {\n  group \"g\" { count = \"many\" }\n}\n").unwrap_err();
        assert!(
            typed.starts_with("input.hcl:2,23-29: Incorrect attribute value type;"),
            "{typed}"
        );
        let twice =
            parse("job \"x\" {\n  type = \"batch\"\n  type = \"service\"\n}\n").unwrap_err();
        assert!(
            twice.starts_with("input.hcl:3,3-4: Invalid syntax;") && twice.contains("redefined"),
            "an argument set twice is the parser's refusal: {twice}"
        );
        let several = parse("job \"x\" {\n  a = 1\n  b = 2\n}\n").unwrap_err();
        assert!(
            several.ends_with(", and 1 other diagnostic(s)"),
            "{several}"
        );
        let unlabelled = parse("job {\n}\n").unwrap_err();
        assert!(unlabelled.contains("Missing name for job"), "{unlabelled}");
        let none = parse("# nothing\n").unwrap_err();
        assert!(none.contains("Insufficient job blocks"), "{none}");
        let syntax = parse("job \"x\" {\n  count = = 1\n}\n").unwrap_err();
        assert!(syntax.starts_with("input.hcl:2,"), "{syntax}");
        let variable = parse("job \"x\" {\n  type = var.kind\n}\n").unwrap_err();
        assert!(variable.contains("Unknown variable"), "{variable}");
        let vault = parse(
            "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      vault {}\n    }\n  }\n}\n",
        )
        .unwrap_err();
        assert!(vault.contains("nomad-sim does not simulate"), "{vault}");
    }

    #[test]
    fn volumes_are_a_map_by_label_and_crons_say_their_type() {
        let job = parse(
            "job \"c\" {\n  type = \"batch\"\n  periodic { cron = \"*/5 * * * *\" }\n  group \"g\" {\n    volume \"data\" {\n      type = \"host\"\n      source = \"tenant-data\"\n    }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(job["Periodic"]["SpecType"], "cron");
        assert_eq!(
            job["TaskGroups"][0]["Volumes"]["data"],
            json!({"Name": "data", "Type": "host", "Source": "tenant-data"})
        );
    }
}
