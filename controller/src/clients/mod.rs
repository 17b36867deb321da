//! Thin typed clients for Nomad's and Consul's HTTP APIs over one reqwest (rustls) stack.
//!
//! # Layout
//! - [`secret`]: tokens that never print.
//! - [`error`]: [`ApiError`], classified as transient or terminal, with a metric label.
//! - [`http`]: the shared stack: addresses, tokens, blocking-query options, status mapping.
//! - [`nomad`] and [`nomad_types`]: jobs (lossless round trips), allocations, nodes, plans,
//!   check-and-set registers, and the event stream.
//! - [`consul`]: service health with blocking queries.
//! - [`logs`]: task logs through Nomad's client filesystem API, decoded from its frames.
//! - [`stats`]: the request counters each client feeds (registered by the runtime's metrics).

pub mod consul;
pub mod error;
pub mod http;
pub mod logs;
pub mod nomad;
pub mod nomad_types;
pub mod secret;
pub mod stats;
pub mod tls;

pub use consul::ConsulClient;
pub use error::ApiError;
pub use http::{Indexed, QueryOptions};
pub use nomad::NomadClient;
pub use secret::Secret;
pub use tls::{TlsError, TlsFiles};
