//! A located YAML reader: YAML text → `serde_json::Value` documents, each with an index from
//! field path (`spec.ports[1].port`) to the line and column where that field is written.
//!
//! We read parser events ourselves instead of deserializing straight into our types because
//! semantic validation (cron syntax, unique ports, grace ≥ interval, ...) happens after
//! deserialization and still has to point at the offending field in the file.
//!
//! Scalars are resolved with the YAML 1.2 core schema (what Kubernetes users expect: `yes` is a
//! string, `0x1F` is an integer). Duplicate keys are an error, never a silent overwrite.
//! Aliases are expanded under a node budget so a "billion laughs" document cannot blow up memory.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// Upper bound on nodes one document may expand to (aliases included).
pub const MAX_NODES_PER_DOCUMENT: usize = 100_000;
/// Upper bound on nesting depth, far beyond any real manifest.
pub const MAX_DEPTH: usize = 64;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

/// An error in the YAML text itself (not in what it says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: Position,
    /// The field the error is in, when the text parsed far enough to know it.
    pub path: String,
    pub message: String,
}

/// One YAML document, converted to JSON, with where each field was written.
#[derive(Clone, Debug)]
pub struct LocatedDocument {
    pub value: Value,
    /// Where the document starts (the position of its root node).
    pub start: Position,
    locations: HashMap<String, Position>,
}

impl LocatedDocument {
    /// The position of the field at `path`, or of its nearest written ancestor. A missing
    /// field is reported where its parent mapping is, which is where it should be added.
    pub fn position_of(&self, path: &str) -> Position {
        let mut candidate = path;
        loop {
            if let Some(pos) = self.locations.get(candidate) {
                return *pos;
            }
            match parent_path(candidate) {
                Some(parent) => candidate = parent,
                None => return self.start,
            }
        }
    }
}

/// `spec.ports[1].port` → `spec.ports[1]` → `spec.ports` → `spec` → `` (the root).
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Joins a mapping key onto a path, quoting keys that would make the path ambiguous.
pub fn join_key(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Parses every document in `text`. Documents that hold nothing (only comments, or a bare
/// `---`) are skipped, as kubectl does.
pub fn parse_documents(text: &str) -> Result<Vec<LocatedDocument>, SyntaxError> {
    let end = TextEnd::of(text);
    let mut builder = Builder::new(end);
    let parser = Parser::new_from_str(text).keep_tags(true);
    for item in parser {
        let (event, span) = item.map_err(|e| SyntaxError {
            at: end.clamp(e.marker().line(), e.marker().col() + 1),
            path: String::new(),
            message: e.info().to_string(),
        })?;
        builder.on_event(event, span)?;
    }
    Ok(builder.documents)
}

/// Where a text ends, to keep the scanner's positions inside it: at the end of a file without
/// a final newline it reports the line after the last one, which an editor cannot jump to
/// (found by fuzzing). Such a position becomes the end of the last line. Measured once per
/// text: every event asks.
#[derive(Clone, Copy)]
struct TextEnd {
    lines: usize,
    last_line_chars: usize,
}

impl TextEnd {
    fn of(text: &str) -> TextEnd {
        TextEnd {
            lines: line_count(text),
            last_line_chars: text
                .rsplit(['\n', '\r'])
                .next()
                .unwrap_or_default()
                .chars()
                .count(),
        }
    }

    fn clamp(self, line: usize, col: usize) -> Position {
        if line <= self.lines {
            return Position { line, col };
        }
        Position {
            line: self.lines,
            col: self.last_line_chars + 1,
        }
    }
}

/// Lines as YAML counts them: `\r\n`, `\n` and a lone `\r` each end one.
pub fn line_count(text: &str) -> usize {
    text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1
}

/// A container being built, with where it started and the path it lives at.
enum Frame {
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
        pos: Position,
    },
    Map {
        entries: Map<String, Value>,
        pending_key: Option<(String, Position)>,
        path: String,
        anchor: usize,
        pos: Position,
    },
}

struct Builder {
    /// Where the text ends, to keep every position inside it.
    end: TextEnd,
    documents: Vec<LocatedDocument>,
    stack: Vec<Frame>,
    root: Option<(Value, Position)>,
    locations: HashMap<String, Position>,
    anchors: HashMap<usize, Value>,
    nodes: usize,
}

impl Builder {
    fn new(end: TextEnd) -> Self {
        Builder {
            end,
            documents: Vec::new(),
            stack: Vec::new(),
            root: None,
            locations: HashMap::new(),
            anchors: HashMap::new(),
            nodes: 0,
        }
    }

    /// The path the next node will have: the parent's path plus its index or pending key.
    fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, path, .. }) => join_index(path, items.len()),
            Some(Frame::Map {
                pending_key: Some((key, _)),
                path,
                ..
            }) => join_key(path, key),
            // A key is being read: keys have no path of their own.
            Some(Frame::Map { path, .. }) => path.clone(),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn count_node(&mut self, weight: usize, at: Position) -> Result<(), SyntaxError> {
        self.nodes += weight;
        if self.nodes > MAX_NODES_PER_DOCUMENT {
            return Err(SyntaxError {
                at,
                path: String::new(),
                message: format!(
                    "document expands to more than {MAX_NODES_PER_DOCUMENT} nodes (alias bomb?)"
                ),
            });
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let pos = self.end.clamp(span.start.line(), span.start.col() + 1);
        match event {
            Event::DocumentStart(_) => {
                self.root = None;
                self.locations.clear();
                self.anchors.clear();
                self.nodes = 0;
            }
            Event::DocumentEnd => {
                if let Some((value, start)) = self.root.take() {
                    if !value.is_null() {
                        let locations = std::mem::take(&mut self.locations);
                        self.documents.push(LocatedDocument {
                            value,
                            start,
                            locations,
                        });
                    }
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count_node(1, pos)?;
                if self.expecting_key() {
                    let key = scalar_key(&text, style, pos)?;
                    self.set_key(key, pos)?;
                } else {
                    let value =
                        resolve_scalar(&text, style, tag.as_deref(), pos).map_err(|mut e| {
                            e.path = self.next_path();
                            e
                        })?;
                    self.push_value(value, anchor, pos)?;
                }
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or(SyntaxError {
                    at: pos,
                    path: String::new(),
                    message: "alias refers to an unknown anchor".into(),
                })?;
                self.count_node(count_nodes(&value), pos)?;
                if self.expecting_key() {
                    let key = match value {
                        Value::String(s) => s,
                        _ => {
                            return Err(SyntaxError {
                                at: pos,
                                path: String::new(),
                                message: "mapping keys must be strings".into(),
                            })
                        }
                    };
                    self.set_key(key, pos)?;
                } else {
                    self.push_value(value, 0, pos)?;
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    return Err(SyntaxError {
                        at: pos,
                        path: String::new(),
                        message: "mapping keys must be plain strings, not collections".into(),
                    });
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        at: pos,
                        path: String::new(),
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                self.count_node(1, pos)?;
                let path = self.next_path();
                self.locations.entry(path.clone()).or_insert(pos);
                let frame = if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        path,
                        anchor,
                        pos,
                    }
                } else {
                    Frame::Map {
                        entries: Map::new(),
                        pending_key: None,
                        path,
                        anchor,
                        pos,
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, start) = match self.stack.pop() {
                    Some(Frame::Seq {
                        items, anchor, pos, ..
                    }) => (Value::Array(items), anchor, pos),
                    Some(Frame::Map {
                        entries,
                        anchor,
                        pos,
                        ..
                    }) => (Value::Object(entries), anchor, pos),
                    None => {
                        return Err(SyntaxError {
                            at: pos,
                            path: String::new(),
                            message: "unbalanced collection end".into(),
                        })
                    }
                };
                self.attach(value, anchor, start)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn set_key(&mut self, key: String, pos: Position) -> Result<(), SyntaxError> {
        if let Some(Frame::Map {
            entries,
            pending_key,
            path,
            ..
        }) = self.stack.last_mut()
        {
            if entries.contains_key(&key) {
                let first = self.locations.get(&join_key(path, &key)).copied();
                let seen = first
                    .map(|p| format!(" (first defined at line {}, column {})", p.line, p.col))
                    .unwrap_or_default();
                return Err(SyntaxError {
                    at: pos,
                    path: join_key(path, &key),
                    message: format!("duplicate key `{key}`{seen}"),
                });
            }
            *pending_key = Some((key, pos));
        }
        Ok(())
    }

    /// Records a scalar or alias value at the current position.
    fn push_value(
        &mut self,
        value: Value,
        anchor: usize,
        pos: Position,
    ) -> Result<(), SyntaxError> {
        let path = self.next_path();
        self.locations.entry(path).or_insert(pos);
        self.attach(value, anchor, pos)
    }

    /// Hands a finished node to its parent (or makes it the document root).
    fn attach(&mut self, value: Value, anchor: usize, pos: Position) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some((value, pos)),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                entries,
                pending_key,
                path,
                ..
            }) => {
                let (key, key_pos) = pending_key.take().expect("a value always follows its key");
                // Point at the key, not the value: that is where a person reads the field.
                let field = join_key(path, &key);
                self.locations.insert(field, key_pos);
                entries.insert(key, value);
            }
        }
        Ok(())
    }
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

fn scalar_key(text: &str, style: ScalarStyle, at: Position) -> Result<String, SyntaxError> {
    // A plain `~` or empty key is YAML null; JSON cannot hold it and no manifest needs it.
    if style == ScalarStyle::Plain && matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Err(SyntaxError {
            at,
            path: String::new(),
            message: "mapping keys must not be null".into(),
        });
    }
    Ok(text.to_string())
}

/// Resolves a scalar by the YAML 1.2 core schema. Quoted and block scalars are always strings.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    at: Position,
) -> Result<Value, SyntaxError> {
    if let Some(tag) = tag {
        return resolve_tagged(text, tag, at);
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    Ok(resolve_plain(text, at)?.unwrap_or_else(|| Value::String(text.to_string())))
}

fn resolve_tagged(text: &str, tag: &Tag, at: Position) -> Result<Value, SyntaxError> {
    let unsupported = || SyntaxError {
        at,
        path: String::new(),
        message: format!("unsupported tag `{}{}`", tag.handle, tag.suffix),
    };
    if !tag.is_yaml_core_schema() {
        return Err(unsupported());
    }
    let mismatch = |what: &str| SyntaxError {
        at,
        path: String::new(),
        message: format!("`{text}` is not a valid {what}"),
    };
    match tag.suffix.as_str() {
        "str" => Ok(Value::String(text.to_string())),
        "int" => match resolve_plain(text, at)? {
            Some(v @ Value::Number(_)) if v.is_i64() || v.is_u64() => Ok(v),
            _ => Err(mismatch("integer")),
        },
        "float" => match resolve_plain(text, at)? {
            Some(Value::Number(n)) => Ok(Value::Number(n)),
            _ => Err(mismatch("float")),
        },
        "bool" => match resolve_plain(text, at)? {
            Some(v @ Value::Bool(_)) => Ok(v),
            _ => Err(mismatch("boolean")),
        },
        "null" => Ok(Value::Null),
        _ => Err(unsupported()),
    }
}

/// The core schema's plain-scalar rules; `None` means "just a string".
fn resolve_plain(text: &str, at: Position) -> Result<Option<Value>, SyntaxError> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Some(Value::Null)),
        "true" | "True" | "TRUE" => return Ok(Some(Value::Bool(true))),
        "false" | "False" | "FALSE" => return Ok(Some(Value::Bool(false))),
        _ => {}
    }
    if let Some(value) = parse_int(text) {
        return match value {
            Ok(n) => Ok(Some(n)),
            Err(()) => Err(SyntaxError {
                at,
                path: String::new(),
                message: format!("integer `{text}` is out of range"),
            }),
        };
    }
    Ok(parse_float(text).map(Value::Number))
}

fn parse_int(text: &str) -> Option<Result<Value, ()>> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = body.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = body.strip_prefix("0o") {
        (8, oct)
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Hex and octal are unsigned in the core schema.
    if radix != 10 && text.starts_with(['-', '+']) {
        return None;
    }
    let magnitude = match u128::from_str_radix(digits, radix) {
        Ok(m) => m,
        Err(_) => return Some(Err(())),
    };
    let value = if negative {
        i64::try_from(magnitude)
            .map(|m| Value::Number((-m).into()))
            .or_else(|_| {
                if magnitude == i64::MIN.unsigned_abs() as u128 {
                    Ok(Value::Number(i64::MIN.into()))
                } else {
                    Err(())
                }
            })
    } else {
        u64::try_from(magnitude)
            .map(|m| Value::Number(m.into()))
            .map_err(|_| ())
    };
    Some(value)
}

fn parse_float(text: &str) -> Option<Number> {
    let special = matches!(
        text,
        ".inf"
            | ".Inf"
            | ".INF"
            | "+.inf"
            | "+.Inf"
            | "+.INF"
            | "-.inf"
            | "-.Inf"
            | "-.INF"
            | ".nan"
            | ".NaN"
            | ".NAN"
    );
    if special {
        // JSON has no infinities or NaN, and no manifest field takes one.
        return None;
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mut chars = body.chars().peekable();
    let mut saw_digit = false;
    while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
        chars.next();
        saw_digit = true;
    }
    if chars.peek() == Some(&'.') {
        chars.next();
        while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
            chars.next();
            saw_digit = true;
        }
    }
    if !saw_digit {
        return None;
    }
    if matches!(chars.peek(), Some('e' | 'E')) {
        chars.next();
        if matches!(chars.peek(), Some('-' | '+')) {
            chars.next();
        }
        let mut exp_digit = false;
        while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
            chars.next();
            exp_digit = true;
        }
        if !exp_digit {
            return None;
        }
    }
    if chars.next().is_some() {
        return None;
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> LocatedDocument {
        let mut docs = parse_documents(text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn an_error_at_the_end_of_the_file_points_inside_it() {
        // Found by fuzzing: the scanner put this error on line 3 of a two-line file.
        let error = parse_documents("- jus=t\n/ a").unwrap_err();
        assert_eq!((error.at.line, error.at.col), (2, 4), "{}", error.message);
        assert_eq!(
            line_count("a\r\nb\rc\nd"),
            4,
            "CRLF, CR and LF each end a line"
        );
    }

    #[test]
    fn core_schema_scalars() {
        let doc =
            one("a: yes\nb: 0x1F\nc: -12\nd: 1.5e3\ne: ~\nf: 'true'\ng: True\nh: 08\ni: .inf\n");
        assert_eq!(
            doc.value,
            json!({"a": "yes", "b": 31, "c": -12, "d": 1500.0, "e": null, "f": "true", "g": true, "h": 8, "i": ".inf"})
        );
    }

    #[test]
    fn positions_point_at_keys_and_items() {
        let doc = one(
            "spec:\n  ports:\n    - name: http\n      port: 80\n    - name: tcp\n      port: 81\n",
        );
        assert_eq!(
            doc.position_of("spec.ports[1].port"),
            Position { line: 6, col: 7 }
        );
        assert_eq!(
            doc.position_of("spec.ports[0].name"),
            Position { line: 3, col: 7 }
        );
        // A missing field is reported at its closest written parent.
        assert_eq!(
            doc.position_of("spec.ports[1].protocol"),
            Position { line: 5, col: 7 }
        );
        assert_eq!(doc.position_of("spec"), Position { line: 1, col: 1 });
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.at, Position { line: 3, col: 1 });
        assert_eq!(
            err.message,
            "duplicate key `a` (first defined at line 1, column 1)"
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("---\n# nothing\n---\na: 1\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].start, Position { line: 4, col: 1 });
    }

    #[test]
    fn aliases_expand_within_budget() {
        let doc = one("base: &b {x: 1}\ncopy: *b\n");
        assert_eq!(doc.value, json!({"base": {"x": 1}, "copy": {"x": 1}}));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..8 {
            let prev = (b'a' + level - 1) as char;
            let name = (b'a' + level) as char;
            bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let err = parse_documents(&bomb).unwrap_err();
        assert!(err.message.contains("more than"), "{}", err.message);
    }

    #[test]
    fn huge_integers_are_rejected_where_written() {
        let err = parse_documents("spec:\n  replicas: 99999999999999999999999\n").unwrap_err();
        assert_eq!(err.at, Position { line: 2, col: 13 });
        assert!(err.message.contains("out of range"));
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("nesting deeper"), "{}", err.message);
    }
}
