//! The controller runtime: what turns changes into reconciles.
//!
//! # Layout
//! - [`context`]: what reconciles share (store, clients, cache, queue, metrics, identity).
//! - [`cache`] and [`reflector`]: etcd list + watch into an in-memory cache.
//! - [`allocs`] and [`jobs`]: Nomad allocations by job and jobs, fed by the event stream;
//!   [`nodes`]: the node list, kept by a blocking query.
//! - [`queue`]: the work queue (dedup, earliest deadline, one run per key, backoff, requeue);
//!   `due`: its waiting keys ordered by deadline.
//! - [`kinds`]: all the runtime asks of the kinds (reconcile one object; the objects a node
//!   change concerns; the kinds kept in one shard; the HTTP routes they serve). The runtime
//!   imports nothing from them and names none.
//! - [`triggers`]: Nomad's event stream, the node list, Consul health, periodic resync and the
//!   orphan sweep.
//! - [`runner`]: bounded concurrency, graceful drain.
//! - [`leader`]: leader election on an etcd lease; shards.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`, the event stream, and the kinds' own routes;
//!   [`metrics`]: the Prometheus registry.
//! - [`event_stream`]: events as Server-Sent Events, resumable with `Last-Event-ID`.

pub mod allocs;
pub mod cache;
pub mod context;
mod due;
pub mod event_stream;
pub mod jobs;
pub mod kinds;
pub mod leader;
pub mod metrics;
pub mod nodes;
pub mod queue;
pub mod reflector;
pub mod runner;
pub mod server;
pub mod triggers;
