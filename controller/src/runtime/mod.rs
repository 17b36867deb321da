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
//!   change concerns). The runtime imports nothing from them.
//! - [`triggers`]: Nomad's event stream, the node list, Consul health, periodic resync and the
//!   orphan sweep.
//! - [`runner`]: bounded concurrency, graceful drain.
//! - [`leader`]: leader election on an etcd lease; shards.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`; [`metrics`]: the Prometheus registry.
//! - [`webhook`]: verified git push webhooks that queue a source's sync; [`deliveries`]: the
//!   deliveries already received, so replays are refused.
//! - [`event_stream`]: events as Server-Sent Events, resumable with `Last-Event-ID`.

pub mod allocs;
pub mod cache;
pub mod context;
pub mod deliveries;
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
pub mod webhook;
