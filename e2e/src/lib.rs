//! Harnesses that run real processes for integration and end-to-end tests, and nomad-sim's
//! tests (the simulator itself is the `nomad-sim` crate, re-exported here as [`sim`]).
//!
//! # Layout
//! - [`sim`]: the `nomad-sim` crate (the Nomad + Consul API simulator, binary `nomad-sim`).
//! - [`browser`]: headless Chromium over WebDriver, for the dashboard.
//! - [`etcd`]: a private etcd server on free loopback ports with a temporary data dir, which a
//!   test can stop and restart on the same ports and data, and which is killed on drop; and a
//!   cluster of several such members.
//! - [`http`]: reqwest clients with the TLS provider installed.
//! - [`ports`]: free loopback ports.
//! - [`testing`]: polling helpers for tests; [`tls`]: a throwaway CA with server and client
//!   certificates.
//! - [`procs`]: nomad-sim and `nomarch controller` as real processes.
//! - [`samples`]: the Nomad and Consul API samples in `e2e/nomad-api/`.

pub mod browser;
pub mod etcd;
pub mod http;
pub mod ports;
pub mod procs;
pub mod samples;
pub use nomad_sim as sim;
pub mod testing;
pub mod tls;
