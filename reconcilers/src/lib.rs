//! From desired objects to Nomad: rendering, hashing, the pure plan and status derivation.
//!
//! # Layout
//! - [`effects`]: what a kind's `compute` returns for the one generic executor (status,
//!   healing's stops, node troubles, events, the next look).
//! - [`fingerprint`]: the stable fingerprint of a rendered job, kept in status as what nomarch
//!   last registered (never in job meta, where Nomad would restart instances over it).
//! - [`healing`]: which allocations to replace when checks stay critical; suspect nodes.
//! - [`history`]: an object's stored generations as rows, and what `rollout undo` puts back.
//! - [`kind`]: per kind, the job it renders and the pure `compute` from a snapshot to its
//!   effects; `kind::WorkloadKind` for a kind of the App's shape.
//! - [`hubs`]: pub placement on hubs, and when a pub must move.
//! - [`meta`]: the meta keys on managed jobs, and reading a job's owner back from them.
//! - [`nomad_job`]: the Nomad job type every kind renders and the controller registers.
//! - [`operator`]: what people ask by hand of any object (suspend, reconcile now), as annotations.
//! - [`rebalance`]: which pubs to move where to even out hub usage.
//! - [`render`]: the pieces of Nomad job JSON every kind composes (networks, services, task).
//! - [`rollout`]: Nomad's latest deployment → the typed rollout status and its events.
//! - [`schedule`]: when a cron schedule fires next.
//! - [`source_sync`]: one git commit's objects → create, update, prune, conflicts.
//! - [`plan`]: observation → what to do with the job, as an ordered rule table.
//! - [`status`]: observation → replica counts and conditions.
//! - [`workload`]: a workload's look once its job is settled: counts, conditions, rollout,
//!   healing (Apps, Pubs, NomadJobs).

pub mod effects;
pub mod fingerprint;
pub mod healing;
pub mod history;
pub mod hubs;
pub mod kind;
pub mod meta;
pub mod nomad_job;
pub mod operator;
pub mod plan;
pub mod rebalance;
pub mod render;
pub mod rollout;
pub mod schedule;
pub mod source_sync;
pub mod status;
pub mod workload;
