//! Manifests from files, directories and streams: YAML → typed, validated objects, or every
//! error found, each naming `file:line:col`, the field path and what was expected.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kinds::{for_kind, ForKind, KindSpec, Resource};
use crate::meta::{Kind, Object, ObjectRef, API_VERSION};
use crate::suggest::{backticked_names, nearest};
use crate::yaml::{parse_documents, LocatedDocument, Position};

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Documents per file, and manifests per load.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Extensions read from directories.
pub const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// One error, pointing at a place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Field path such as `spec.ports[1].port`; empty when the error is about the file or
    /// document as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Where a manifest came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A valid object, and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub resource: Resource,
    pub source: Source,
    /// Whether the manifest named its namespace (a GitSource's targetNamespace fills the rest).
    pub namespace_explicit: bool,
    /// Where a NomadJob's job is written, so what Nomad says of it points into the file.
    pub job_text: Option<JobText>,
}

/// Where a NomadJob's `spec.job` or `spec.hcl` is in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobText {
    /// `spec.job` or `spec.hcl`.
    pub field: &'static str,
    /// The field's key.
    pub at: crate::yaml::Position,
    /// Where HCL line 1, column 1 is, for HCL written as a block scalar (`hcl: |`); `None`
    /// when it is written inline, where lines inside it cannot be pointed at.
    pub hcl_start: Option<crate::yaml::Position>,
}

impl Manifest {
    /// An error about the NomadJob's job, at `hcl_at` (HCL's own line and column, when Nomad
    /// said where) inside its text, or at the field.
    pub fn job_error(&self, hcl_at: Option<(usize, usize)>, message: String) -> ManifestError {
        let (field, at) = match &self.job_text {
            Some(text) => {
                let inside =
                    text.hcl_start
                        .zip(hcl_at)
                        .map(|(start, (line, col))| crate::yaml::Position {
                            line: start.line + line - 1,
                            col: start.col + col - 1,
                        });
                (text.field, inside.unwrap_or(text.at))
            }
            None => (
                "spec",
                crate::yaml::Position {
                    line: self.source.line,
                    col: self.source.col,
                },
            ),
        };
        ManifestError {
            file: self.source.file.clone(),
            line: at.line,
            col: at.col,
            field: field.to_string(),
            message,
        }
    }
}

/// A NomadJob's job text in `doc`, read from the file's `text`.
fn job_text(doc: &LocatedDocument, text: &str, resource: &Resource) -> Option<JobText> {
    let Resource::NomadJob(job) = resource else {
        return None;
    };
    let field = if job.spec.hcl.is_some() {
        "spec.hcl"
    } else {
        "spec.job"
    };
    let at = doc.position_of(field);
    let lines: Vec<&str> = text.lines().collect();
    let key_line = lines.get(at.line.checked_sub(1)?)?;
    let after_key = key_line.split_once(':').map_or("", |(_, rest)| rest).trim();
    let block = after_key.starts_with('|') || after_key.starts_with('>');
    let hcl_start = (field == "spec.hcl" && block)
        .then(|| {
            // The first line with content sets the block's indentation.
            (at.line..lines.len())
                .find(|i| !lines[*i].trim().is_empty())
                .map(|i| crate::yaml::Position {
                    line: i + 1,
                    col: lines[i].len() - lines[i].trim_start().len() + 1,
                })
        })
        .flatten();
    Some(JobText {
        field,
        at,
        hcl_start,
    })
}

/// Everything loaded, or every error. Never half of each.
pub type LoadResult = Result<Vec<Manifest>, Vec<ManifestError>>;

/// Parses one file's contents. `file` is only used in messages.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> LoadResult {
    let whole = |message: String| {
        vec![ManifestError {
            file: file.to_string(),
            line: 1,
            col: 1,
            field: String::new(),
            message,
        }]
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(whole(format!(
            "file is {} bytes; the limit is {MAX_FILE_BYTES}",
            bytes.len()
        )));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let message = format!(
                "file is not valid UTF-8 (bad byte 0x{:02x} at offset {})",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            );
            return Err(vec![ManifestError {
                file: file.to_string(),
                line,
                col,
                field: String::new(),
                message,
            }]);
        }
    };
    parse_str(file, text)
}

pub fn parse_str(file: &str, text: &str) -> LoadResult {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents = parse_documents(text).map_err(|e| {
        vec![ManifestError {
            file: file.to_string(),
            line: e.at.line,
            col: e.at.col,
            field: e.path,
            message: e.message,
        }]
    })?;
    if documents.is_empty() {
        let message = "file holds no manifests (it is empty or only comments)".to_string();
        return Err(vec![ManifestError {
            file: file.to_string(),
            line: 1,
            col: 1,
            field: String::new(),
            message,
        }]);
    }
    if documents.len() > MAX_DOCUMENTS {
        let message = format!(
            "file holds {} documents; the limit is {MAX_DOCUMENTS}",
            documents.len()
        );
        return Err(vec![ManifestError {
            file: file.to_string(),
            line: 1,
            col: 1,
            field: String::new(),
            message,
        }]);
    }
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for doc in &documents {
        match parse_document(file, doc, text) {
            Ok(manifest) => manifests.push(manifest),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(errors)
    }
}

/// Loads files and directories (recursively, `.yaml`/`.yml`/`.json`, hidden entries skipped,
/// in path order). `-` reads standard input. Names duplicated across all inputs are errors.
pub fn load_paths(paths: &[PathBuf]) -> LoadResult {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let files = match expand(path) {
            Ok(files) => files,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for file in files {
            match read_input(&file) {
                Ok(bytes) => match parse_bytes(&display_path(&file), &bytes) {
                    Ok(mut found) => manifests.append(&mut found),
                    Err(mut errs) => errors.append(&mut errs),
                },
                Err(e) => errors.push(e),
            }
        }
    }
    finish_load(manifests, errors)
}

/// Parses files already in memory (a git commit's tree, say), as [`load_paths`] parses files on
/// disk. Manifests that name no namespace get `default_namespace` when one is given, before
/// names are checked for duplicates.
pub fn load_blobs<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    default_namespace: Option<&str>,
) -> LoadResult {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for (file, bytes) in files {
        match parse_bytes(file, bytes) {
            Ok(mut found) => manifests.append(&mut found),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if let Some(namespace) = default_namespace {
        for manifest in manifests.iter_mut().filter(|m| !m.namespace_explicit) {
            manifest.resource.metadata_mut().namespace = namespace.to_string();
        }
    }
    finish_load(manifests, errors)
}

/// The checks that span files: names defined twice, and the document budget.
fn finish_load(manifests: Vec<Manifest>, mut errors: Vec<ManifestError>) -> LoadResult {
    errors.extend(duplicate_errors(&manifests));
    if manifests.len() > MAX_DOCUMENTS {
        let message = format!(
            "{} manifests in one load; the limit is {MAX_DOCUMENTS}",
            manifests.len()
        );
        errors.push(ManifestError {
            file: "<input>".into(),
            line: 1,
            col: 1,
            field: String::new(),
            message,
        });
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(errors)
    }
}

fn display_path(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>, ManifestError> {
    use std::io::Read;
    let fail = |message: String| ManifestError {
        file: display_path(path),
        line: 1,
        col: 1,
        field: String::new(),
        message,
    };
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read standard input: {e}")))?;
        return Ok(bytes);
    }
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES as u64 {
        return Err(fail(format!(
            "file is {size} bytes; the limit is {MAX_FILE_BYTES}"
        )));
    }
    std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// A file stays a file; a directory becomes its manifest files, sorted.
fn expand(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    if path == Path::new("-") {
        return Ok(vec![path.to_path_buf()]);
    }
    let fail = |message: String| ManifestError {
        file: path.display().to_string(),
        line: 1,
        col: 1,
        field: String::new(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| fail(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(format!("cannot list {}: {e}", dir.display())))?;
            let entry_path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if entry_path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e))
            {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn duplicate_errors(manifests: &[Manifest]) -> Vec<ManifestError> {
    let mut first_seen: HashMap<ObjectRef, &Source> = HashMap::new();
    let mut errors = Vec::new();
    for manifest in manifests {
        let key = manifest.resource.object_ref();
        if let Some(first) = first_seen.get(&key) {
            errors.push(ManifestError {
                file: manifest.source.file.clone(),
                line: manifest.source.line,
                col: manifest.source.col,
                field: "metadata.name".into(),
                message: format!("{key} is defined twice; first at {first}"),
            });
        } else {
            first_seen.insert(key, &manifest.source);
        }
    }
    errors
}

fn parse_document(
    file: &str,
    doc: &LocatedDocument,
    text: &str,
) -> Result<Manifest, Vec<ManifestError>> {
    let at = |field: &str, message: String| {
        let Position { line, col } = doc.position_of(field);
        ManifestError {
            file: file.to_string(),
            line,
            col,
            field: field.to_string(),
            message,
        }
    };
    let Some(root) = doc.value.as_object() else {
        return Err(vec![at(
            "",
            format!(
                "a manifest must be a mapping with apiVersion, kind, metadata and spec, found {}",
                describe(&doc.value)
            ),
        )]);
    };
    let kind = envelope_kind(root).map_err(|(field, message)| vec![at(field, message)])?;
    let mut resource =
        for_kind(kind, Typed(&doc.value)).map_err(|(field, message)| vec![at(&field, message)])?;
    // Status belongs to the controller; what a file says about it is not desired state.
    resource.set_status(None);
    let problems = resource.problems();
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|p| at(&p.path, p.message))
            .collect());
    }
    let namespace_explicit = root
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .is_some();
    let job_text = job_text(doc, text, &resource);
    Ok(Manifest {
        job_text,
        resource,
        source: Source {
            file: file.to_string(),
            line: doc.start.line,
            col: doc.start.col,
        },
        namespace_explicit,
    })
}

/// Checks `apiVersion` and `kind` first, so a wrong kind is reported as such rather than as a
/// pile of unknown spec fields.
fn envelope_kind(root: &serde_json::Map<String, Value>) -> Result<Kind, (&'static str, String)> {
    match root.get("apiVersion") {
        None => {
            return Err((
                "apiVersion",
                format!("missing field `apiVersion` (expected `{API_VERSION}`)"),
            ))
        }
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(Value::String(other)) => {
            return Err((
                "apiVersion",
                format!("unsupported apiVersion `{other}`; expected `{API_VERSION}`"),
            ));
        }
        Some(other) => {
            return Err((
                "apiVersion",
                format!("expected `{API_VERSION}`, found {}", describe(other)),
            ))
        }
    }
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    match root.get("kind") {
        None => Err((
            "kind",
            format!("missing field `kind` (one of {})", names.join(", ")),
        )),
        Some(Value::String(name)) => Kind::from_kind_name(name).ok_or_else(|| {
            let hint = nearest(name, &names)
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            (
                "kind",
                format!(
                    "unknown kind `{name}`{hint}; expected one of {}",
                    names.join(", ")
                ),
            )
        }),
        Some(other) => Err((
            "kind",
            format!("expected a string, found {}", describe(other)),
        )),
    }
}

/// A document read as its kind's type, or the field where reading stopped and why.
struct Typed<'a>(&'a Value);

impl ForKind for Typed<'_> {
    type Output = Result<Resource, (String, String)>;
    fn run<S: KindSpec>(self) -> Self::Output {
        let value = self.0;
        serde_path_to_error::deserialize::<_, Object<S>>(value)
            .map(S::into_resource)
            .map_err(|e| {
                let path = normalize_path(&e.path().to_string());
                let message = e.inner().to_string();
                explain(path, &message, value)
            })
    }
}

/// serde_path_to_error writes the root as `.`; we write it as an empty path.
fn normalize_path(path: &str) -> String {
    if path == "." || path == "?" {
        String::new()
    } else {
        path.to_string()
    }
}

/// Turns serde's messages into ones that say what to write instead.
fn explain(path: String, message: &str, root: &Value) -> (String, String) {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked_names(rest);
        if let Some((unknown, valid)) = names.split_first() {
            let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
            // serde_path_to_error already ends the path with the unknown key.
            let field = if path.rsplit(['.', '[']).next() == Some(unknown.as_str()) {
                path
            } else {
                crate::yaml::join_key(&path, unknown)
            };
            let hint = match nearest(unknown, &valid) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("valid fields: {}", valid.join(", ")),
            };
            return (field, format!("unknown field `{unknown}` ({hint})"));
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backticked_names(rest);
        if let Some((unknown, valid)) = names.split_first() {
            let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
            let hint = nearest(unknown, &valid)
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return (
                path,
                format!("`{unknown}` is not one of {}{hint}", valid.join(", ")),
            );
        }
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        let name = field.trim_matches('`');
        return (
            crate::yaml::join_key(&path, name),
            format!("missing required field `{name}`"),
        );
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let found = lookup(root, &path).map(describe).unwrap_or_default();
        let expected = message
            .rsplit_once("expected ")
            .map(|(_, e)| humanize_expected(e))
            .unwrap_or_default();
        let hint = if expected.contains("string") && !found.starts_with("a string") {
            " (quote the value to make it a string)"
        } else {
            ""
        };
        return (path, format!("expected {expected}, found {found}{hint}"));
    }
    (path, message.to_string())
}

fn humanize_expected(expected: &str) -> String {
    match expected {
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "an integer from 0 to 4294967295".into(),
        "i64" | "u64" => "an integer".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        other if other.starts_with("struct ") || other.starts_with("a map") => "a mapping".into(),
        other => other.to_string(),
    }
}

/// Finds the value at a path like `spec.ports[1].port`, for "found ..." messages.
fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = root;
    for segment in path_segments(path) {
        current = match segment {
            Segment::Key(key) => current.get(key)?,
            Segment::Index(i) => current.get(i)?,
        };
    }
    Some(current)
}

enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

fn path_segments(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            segments.push(Segment::Key(name));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(i));
            }
        }
    }
    segments
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean `{b}`"),
        Value::Number(n) => format!("a number `{n}`"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("a string \"{}…\"", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("a string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: nomarch.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: nginx:1.27\n";

    #[test]
    fn a_minimal_app_gets_its_defaults() {
        let manifests = parse_str("web.yaml", WEB).unwrap();
        let Resource::App(app) = &manifests[0].resource else {
            panic!("not an app")
        };
        assert_eq!(app.spec.replicas, 1);
        assert_eq!(app.metadata.namespace, "default");
        assert_eq!(app.spec.resources.cpu, 100);
        assert!(!manifests[0].namespace_explicit);
        assert_eq!(manifests[0].source.to_string(), "web.yaml:1:1");
    }

    #[test]
    fn unknown_fields_suggest_the_nearest_name() {
        let text = WEB.replace("  image:", "  imagee:");
        let errors = parse_str("web.yaml", &text).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "web.yaml:6:3: spec.imagee: unknown field `imagee` (did you mean `image`?)"
        );
    }

    #[test]
    fn wrong_types_name_what_was_found() {
        let text = format!("{WEB}  replicas: three\n");
        let errors = parse_str("web.yaml", &text).unwrap_err();
        assert_eq!(errors[0].to_string(), "web.yaml:7:3: spec.replicas: expected an integer from 0 to 4294967295, found a string \"three\"");
    }

    /// The container fields are written once (`with_container!`) for three kinds; each kind
    /// still refuses unknown fields and names the exact place of a wrong one, its own defaults
    /// kept (a pub reserves more by default than an App).
    #[test]
    fn container_fields_keep_their_locations_in_every_kind() {
        let pub_ = "apiVersion: nomarch.io/v1alpha1\nkind: Pub\nmetadata:\n  name: p\nspec:\n  tenant: acme\n  image: nginx\n  hubSelector:\n    nodeClass: hub\n";
        let cron = "apiVersion: nomarch.io/v1alpha1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  schedule: \"@daily\"\n  task:\n    image: busybox\n";
        let cases = [
            (
                format!("{WEB}  resources:\n    cpu: lots\n"),
                "web.yaml:8:5: spec.resources.cpu: expected an integer from 0 to 4294967295, found a string \"lots\"",
            ),
            (
                format!("{pub_}  envv: []\n"),
                "web.yaml:10:3: spec.envv: unknown field `envv` (did you mean `env`?)",
            ),
            (
                format!("{cron}    comand: run\n"),
                "web.yaml:9:5: spec.task.comand: unknown field `comand` (did you mean `command`?)",
            ),
        ];
        for (text, expected) in cases {
            let errors = parse_str("web.yaml", &text).unwrap_err();
            assert_eq!(errors[0].to_string(), expected);
        }
        let manifests = parse_str("p.yaml", pub_).unwrap();
        let Resource::Pub(p) = &manifests[0].resource else {
            panic!("not a pub")
        };
        assert_eq!((p.spec.resources.cpu, p.spec.resources.memory), (200, 1024));
        assert_eq!(p.spec.container().image, "nginx");
    }

    #[test]
    fn second_document_errors_point_into_it() {
        let text = format!("{WEB}---\n{}", WEB.replace("name: web", "name: Web"));
        let errors = parse_str("two.yaml", &text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 11);
        assert_eq!(errors[0].field, "metadata.name");
    }

    #[test]
    fn paths_are_found_in_values() {
        let value = serde_json::json!({"spec": {"ports": [{"port": 1}, {"port": "x"}]}});
        assert_eq!(
            lookup(&value, "spec.ports[1].port"),
            Some(&Value::String("x".into()))
        );
    }

    #[test]
    fn blobs_take_the_default_namespace_before_names_are_compared() {
        let explicit = WEB.replace("name: web\n", "name: web\n  namespace: default\n");
        let files = [("a.yaml", WEB.as_bytes()), ("b.yaml", explicit.as_bytes())];
        // Without a default namespace, both are default/web: defined twice.
        let errors = load_blobs(files, None).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("b.yaml:1:1: metadata.name: app/web is defined twice"),
            "{}",
            errors[0]
        );
        // With one, the implicit manifest moves there and the two no longer clash.
        let loaded = load_blobs(files, Some("prod")).unwrap();
        let namespaces: Vec<&str> = loaded
            .iter()
            .map(|m| m.resource.metadata().namespace.as_str())
            .collect();
        assert_eq!(namespaces, ["prod", "default"]);
    }

    #[test]
    fn one_bad_blob_fails_the_whole_load() {
        let files = [
            ("ok.yaml", WEB.as_bytes()),
            ("bad.yaml", b"kind: [".as_slice()),
        ];
        let errors = load_blobs(files, None).unwrap_err();
        assert!(errors.iter().all(|e| e.file == "bad.yaml"), "{errors:?}");
    }

    #[test]
    fn an_oversized_file_is_refused_whole_with_its_size() {
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        let errors = parse_bytes("big.yaml", big.as_bytes()).unwrap_err();
        assert_eq!(errors.len(), 1);
        let error = &errors[0];
        assert_eq!(
            (error.file.as_str(), error.line, error.col),
            ("big.yaml", 1, 1)
        );
        assert!(error.message.contains("the limit is"), "{}", error.message);
    }

    #[test]
    fn too_many_documents_in_a_file_is_one_clear_error() {
        let many = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
        let errors = parse_str("many.yaml", &many).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("documents; the limit is")),
            "{errors:?}"
        );
    }
}
