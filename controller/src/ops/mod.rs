//! Day-2 reads (and the restart) shared by the CLI, the HTTP API and the dashboard, so each says the same:
//! below all three, above the clients.
//!
//! # Layout
//! - [`logs`]: an object's logs: which instances, merged by time, tails, followed.
//! - [`diff`]: what an object would change in Nomad (the controller's rendering and plan, and
//!   Nomad's plan diff); [`plan_text`]: that diff as `nomad job plan` prints it.
//! - [`restart`]: `rollout restart`, batches of in-place restarts, told step by step.

pub mod diff;
pub mod logs;
pub mod plan_text;
pub mod restart;
