//! The `nomarch` binary's library: the etcd store and the command line.
//!
//! # Layout
//! - [`store`]: objects, status, history, events and resumable watches in etcd, every write a
//!   compare-and-swap transaction.
//! - [`clients`]: typed Nomad and Consul HTTP clients (blocking queries, check-and-set, event stream).
//! - [`git`]: per-source bare mirrors, fetching a branch and reading a commit's manifests.
//! - [`cli`]: the `nomarch` commands (`validate`, `apply`, `get`, `delete`, `events`, `schema`),
//!   their output formats and exit codes.

pub mod cli;
pub mod clients;
pub mod git;
pub mod reconcile;
pub mod runtime;
pub mod store;
