//! From desired objects to Nomad: rendering, hashing and (next) the pure plan functions.
//!
//! # Layout
//! - [`spec_hash`]: the stable fingerprint of an object's desired state, written into managed
//!   jobs' meta (`nomarch.io/spec-hash`) so a reconcile can tell "nothing to do" without a diff.

pub mod spec_hash;
