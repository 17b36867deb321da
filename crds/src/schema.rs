//! JSON Schemas for each kind, for editors and for CI checks of state repos. The files in
//! `crds/schemas/` are generated from the types (`make schemas`); a test fails when they drift.

use schemars::{generate::SchemaSettings, JsonSchema};
use serde_json::{json, Value};

use crate::kinds::{AppSpec, CronJobSpec, GitSourceSpec, PubSpec};
use crate::meta::{Kind, Object, API_VERSION};

/// The schema of one kind's manifest, pinned to that kind and API version.
pub fn schema_for(kind: Kind) -> Value {
    let mut schema = match kind {
        Kind::App => generate::<Object<AppSpec>>(),
        Kind::Pub => generate::<Object<PubSpec>>(),
        Kind::CronJob => generate::<Object<CronJobSpec>>(),
        Kind::GitSource => generate::<Object<GitSourceSpec>>(),
    };
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
    schema
}

fn generate<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).expect("schemas serialize")
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
