//! JSON Schemas for each kind, for editors and for CI checks of state repos. The files in
//! `crds/schemas/` are generated from the types (`make schemas`); a test fails when they drift.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use crate::kinds::{for_kind, ForKind, KindSpec};
use crate::meta::{Kind, Object, API_VERSION};

/// The schema of one kind's manifest, pinned to that kind and API version.
pub fn schema_for(kind: Kind) -> Value {
    let mut schema = for_kind(kind, Generate);
    let root = schema
        .as_object_mut()
        .expect("a struct's schema is an object");
    root.insert(
        "$id".into(),
        json!(format!(
            "https://nomarch.io/schemas/v1alpha1/{}.json",
            kind.singular()
        )),
    );
    root.insert("title".into(), json!(kind.as_str()));
    root.insert(
        "description".into(),
        json!(format!(
            "A nomarch {} manifest ({API_VERSION}).",
            kind.as_str()
        )),
    );
    let properties = root
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("objects have properties");
    properties.insert("apiVersion".into(), json!({"const": API_VERSION}));
    properties.insert("kind".into(), json!({"const": kind.as_str()}));
    // Status is the controller's to write; output of `nomarch get -o yaml` may carry it back in.
    properties.insert(
        "status".into(),
        json!({"description": "Written by the controller; ignored when applied."}),
    );
    prune_unreferenced_definitions(root);
    schema
}

/// Drops the `$defs` nothing refers to any more (the status types, once `status` is replaced
/// above), so the files hold only what a manifest may say.
fn prune_unreferenced_definitions(root: &mut serde_json::Map<String, Value>) {
    fn refs_in(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    if let Some(name) = target.strip_prefix("#/$defs/") {
                        found.push(name.to_string());
                    }
                }
                map.values().for_each(|v| refs_in(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs_in(v, found)),
            _ => {}
        }
    }
    let Some(Value::Object(definitions)) = root.get("$defs").cloned() else {
        return;
    };
    let mut pending = Vec::new();
    root.iter()
        .filter(|(key, _)| *key != "$defs")
        .for_each(|(_, value)| refs_in(value, &mut pending));
    let mut kept = serde_json::Map::new();
    while let Some(name) = pending.pop() {
        if kept.contains_key(&name) {
            continue;
        }
        if let Some(definition) = definitions.get(&name) {
            refs_in(definition, &mut pending);
            kept.insert(name, definition.clone());
        }
    }
    // In the order schemars wrote them, so the files stay stable.
    let ordered = definitions
        .into_iter()
        .filter(|(name, _)| kept.contains_key(name))
        .collect();
    root["$defs"] = Value::Object(ordered);
}

/// A kind's schema as schemars writes it, from its types.
struct Generate;

impl ForKind for Generate {
    type Output = Value;
    fn run<S: KindSpec>(self) -> Value {
        let generator = SchemaSettings::draft2020_12().into_generator();
        serde_json::to_value(generator.into_root_schema_for::<Object<S>>())
            .expect("schemas serialize")
    }
}

/// The file name a kind's schema is stored under.
pub fn schema_file_name(kind: Kind) -> String {
    format!("{}.json", kind.singular())
}

/// The text stored in the schema file: pretty JSON with a final newline.
pub fn schema_file_text(kind: Kind) -> String {
    let mut text = serde_json::to_string_pretty(&schema_for(kind)).expect("schemas serialize");
    text.push('\n');
    text
}
