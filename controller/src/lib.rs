//! The `nomarch` binary's library: the etcd store and the command line.
//!
//! # Layout
//! - [`store`]: objects, status, history, events and resumable watches in etcd, every write a
//!   compare-and-swap transaction.
//! - [`clients`]: typed Nomad and Consul HTTP clients (blocking queries, check-and-set, event stream).
//! - [`git`]: per-source bare mirrors, fetching a branch and reading a commit's manifests.
//! - [`runtime`]: what turns changes into reconciles (caches, triggers, the work queue, the
//!   runner, leadership, metrics); it knows no kind and runs whatever `runtime::kinds::Kinds`
//!   it is handed.
//! - [`reconcile`]: the kinds, one module each, and `reconcile::AllKinds` for the runtime.
//! - [`ops`]: day-2 reads shared by the CLI, the API and the dashboard (an object's logs).
//! - [`api`]: the HTTP API (`/api/v1`) with bearer tokens and roles; mounted by
//!   `cli::controller` on the runtime's listener.
//! - [`dashboard`]: the web dashboard at `/` (sign-in sessions, pages, live updates), over the
//!   API's access rules; mounted with the API.
//! - [`cli`]: the `nomarch` commands (`validate`, `apply`, `get`, `delete`, `events`, `schema`),
//!   their output formats and exit codes.

pub mod api;
pub mod cli;
pub mod clients;
pub mod dashboard;
pub mod git;
pub mod ops;
pub mod reconcile;
pub mod runtime;
pub mod store;
