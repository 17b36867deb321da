//! The resource kinds nomarch reconciles, and everything about reading them from people.
//!
//! # Layout
//! - [`meta`]: the Kubernetes-style envelope (`apiVersion`, `kind`, `metadata`, `status`).
//! - [`status`]: what the controller observed, typed: conditions and one section per concern.
//! - [`kinds`]: one file per kind (its spec, rules, columns and summary, as its
//!   [`KindSpec`]), the one list of kinds (`for_each_kind!`), and [`Resource`], any one of them.
//! - [`workload`]: pieces the container kinds share (resources, ports, env, health, route, placement).
//! - [`duration`]: durations as written (`10s`, `1m30s`).
//! - [`yaml`]: YAML text → JSON documents that remember the line and column of every field.
//! - [`manifest`]: files, directories and streams → validated objects, or every error with
//!   `file:line:col: field: message`.
//! - [`validate`]: the metadata's rules and the rules the kinds share (each kind's own are in
//!   its file); [`nomad_rules`]: Nomad's own rules
//!   (constraint operands) in Nomad's words, shared with nomad-sim.
//! - [`suggest`]: "did you mean" for misspelt names.
//! - [`schema`]: JSON Schema per kind (checked in under `crds/schemas/`).
//! - [`reference`]: the Markdown manifest reference rendered from those schemas.
//! - [`select`]: label selectors (`-l app=web,!legacy`) and `--sort-by` field paths.
//! - `fuzz_checks`: what must hold for any bytes given to the parser (fuzzing, corpus replay).

pub mod duration;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod kinds;
pub mod manifest;
pub mod meta;
pub mod nomad_rules;
pub mod reference;
pub mod schema;
pub mod select;
pub mod status;
pub mod suggest;
pub mod validate;
pub mod workload;
pub mod yaml;

pub use kinds::{
    App, AppSpec, CronJob, CronJobSpec, GitSource, GitSourceSpec, InResource, KindSpec, NomadJob,
    NomadJobSpec, Pub, PubSpec, Resource,
};
pub use manifest::{
    load_blobs, load_paths, parse_bytes, parse_str, JobText, Manifest, ManifestError,
};
pub use meta::{Kind, Object, ObjectMeta, ObjectRef, API_VERSION, DEFAULT_NAMESPACE};
pub use status::{Condition, ConditionStatus, ConditionType, Status};
