//! From desired objects to Nomad: rendering, hashing, the pure plan and status derivation.
//!
//! # Layout
//! - [`spec_hash`]: the stable fingerprint of an object's desired state (`nomarch.io/spec-hash`).
//! - [`meta`]: the meta keys on managed jobs, and reading a job's owner back from them.
//! - [`render`]: objects → Nomad job JSON (golden-tested).
//! - [`plan`]: observation → what to do with the job, as an ordered rule table.
//! - [`status`]: observation → replica counts and conditions.

pub mod meta;
pub mod plan;
pub mod render;
pub mod spec_hash;
pub mod status;
