//! The controller runtime: what turns changes into reconciles.
//!
//! # Layout
//! - [`context`]: what reconciles share (store, clients, cache, queue, metrics, identity).
//! - [`cache`] and [`reflector`]: etcd list + watch into an in-memory cache.
//! - [`queue`]: the work queue (dedup, earliest deadline, one run per key, backoff, requeue).
//! - [`triggers`]: Nomad's event stream, Consul health, periodic resync and the orphan sweep.
//! - [`runner`]: bounded concurrency, graceful drain.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`; [`metrics`]: the Prometheus registry.

pub mod cache;
pub mod context;
pub mod metrics;
pub mod queue;
pub mod reflector;
pub mod runner;
pub mod server;
pub mod triggers;
