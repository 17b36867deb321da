//! Day-2 operations shared by the CLI, the HTTP API and the dashboard, so each says the same:
//! below all three, above the clients.
//!
//! # Layout
//! - [`logs`]: an object's logs: which instances, merged by time, tails, followed.

pub mod logs;
