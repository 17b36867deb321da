//! The manifest reference (`crds/schemas/REFERENCE.md`), rendered from the JSON Schemas so the
//! documentation cannot drift from what the parser accepts.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::{Map, Value};

use crate::meta::Kind;
use crate::schema::schema_for;

/// Markdown: one section per kind, then one table per object type it uses.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Manifest reference\n\n\
         Generated from the JSON Schemas in this folder by `make schemas`; do not edit by hand.\n\
         Every manifest has `apiVersion: nomarch.io/v1alpha1`, a `kind`, `metadata` and a `spec`.\n\
         Unknown fields are errors. Durations are written like `10s`, `1m30s` or `500ms`.\n",
    );
    for kind in Kind::ALL {
        let schema = schema_for(kind);
        let defs = schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let spec_def = ref_name(&schema["properties"]["spec"]).unwrap_or_default();
        let _ = write!(out, "\n## {kind}\n\n{}\n", description(&defs, &spec_def));
        let mut done = BTreeSet::new();
        let mut pending = vec![spec_def];
        while let Some(name) = pending.pop() {
            if !done.insert(name.clone()) {
                continue;
            }
            let Some(def) = defs.get(&name) else { continue };
            if let Some(properties) = def.get("properties").and_then(Value::as_object) {
                let required: BTreeSet<&str> = def
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let _ = write!(out, "\n### {kind} · `{name}`\n\n| field | type | default | description |\n|---|---|---|---|\n");
                for (field, property) in properties {
                    let default = match property.get("default") {
                        Some(value) => format!("`{value}`"),
                        None if required.contains(field.as_str()) => "**required**".into(),
                        None => String::new(),
                    };
                    let text = property
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "| `{field}` | {} | {default} | {} |",
                        type_of(property, &defs),
                        one_line(text)
                    );
                    // Later tables are in reverse so the first field's type comes next.
                    let mut refs = Vec::new();
                    collect_refs(property, &mut refs);
                    pending.extend(refs.into_iter().rev());
                }
            }
        }
    }
    out
}

fn description(defs: &Map<String, Value>, name: &str) -> String {
    defs.get(name)
        .and_then(|d| d.get("description"))
        .and_then(Value::as_str)
        .map(one_line)
        .unwrap_or_default()
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn ref_name(value: &Value) -> Option<String> {
    value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .map(String::from)
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = ref_name(value) {
                refs.push(name);
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// A short human type: `string`, `list of Port`, `one of http, tcp`, `map of string`.
fn type_of(property: &Value, defs: &Map<String, Value>) -> String {
    if let Some(name) = ref_name(property) {
        let def = defs.get(&name);
        let enumerated = def
            .and_then(|d| d.get("enum"))
            .or_else(|| def.and_then(|d| d.get("oneOf")));
        if let Some(values) = enumerated.and_then(Value::as_array) {
            let names: Vec<String> = values
                .iter()
                .filter_map(|v| {
                    v.as_str()
                        .map(String::from)
                        .or_else(|| v.get("const").and_then(Value::as_str).map(String::from))
                })
                .collect();
            if !names.is_empty() {
                return format!("one of {}", names.join(", "));
            }
        }
        if def.and_then(|d| d.get("type")).and_then(Value::as_str) == Some("string") {
            return format!("string ({name})");
        }
        return format!("`{name}`");
    }
    if let Some(options) = property.get("anyOf").and_then(Value::as_array) {
        let inner: Vec<String> = options
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .map(|o| type_of(o, defs))
            .collect();
        return inner.join(" or ");
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    match types.first().copied() {
        Some("array") => format!(
            "list of {}",
            property
                .get("items")
                .map(|i| type_of(i, defs))
                .unwrap_or_default()
        ),
        Some("object") => match property.get("additionalProperties") {
            Some(value @ Value::Object(_)) => format!("map of {}", type_of(value, defs)),
            _ => "mapping".into(),
        },
        Some(other) => other.to_string(),
        None if property.get("const").is_some() => {
            format!("`{}`", property["const"].as_str().unwrap_or_default())
        }
        None => "any".into(),
    }
}
