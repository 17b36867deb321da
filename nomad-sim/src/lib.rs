//! nomad-sim: a Nomad + Consul API simulator with simulated client nodes, a placement
//! scheduler, deployments, health checks and fault injection. Its answers have the shapes of
//! the samples in `e2e/nomad-api/`; its behaviour follows Nomad's source, and each simulated
//! behaviour names the Nomad file and function it follows. The test harness that runs it as a
//! process lives apart, in the `e2e` crate; the binary is `nomad-sim` (`src/main.rs`).
//!
//! # Layout
//! - [`config`]: cluster shape and timings; [`clock`]: the (possibly fast) simulated clock.
//! - [`model`]: the records (jobs as canonical JSON, allocations, nodes, evaluations,
//!   deployments) and what they can tell of themselves; [`health`]: what a check reports.
//! - [`cluster`]: the state, its raft-like index, per-table indexes and event frames.
//! - [`jobs`]: register (check-and-set), stop/purge, revert, stability, plan, periodic force;
//!   [`diff`]: job diffs in Nomad's shape.
//! - [`scheduler`]: evaluations, and per job: a snapshot of each group, [`reconcile`]'s pure
//!   plan for it (Nomad's `computeGroup`), then applying it; [`placement`]: candidate nodes,
//!   capacity and binpack; [`constraints`]: constraint operands and interpolation;
//!   [`updates`]: in-place or destructive updates (Nomad's `tasksUpdated`); [`csi`]: CSI
//!   volumes, their claims and placement; [`jobspec`]: HCL jobspecs into API jobs (`/v1/jobs/parse`); [`validate`]:
//!   the jobs Nomad refuses, in its words; [`deployments`]: rollouts gated on health, progress
//!   deadlines, auto-revert and stable versions.
//! - [`lifecycle`]: what time does: tasks start and stop, nodes miss heartbeats, periodic launches;
//!   [`restarts`]: what a failing task's restart policy decides; [`reschedule`]: when a failed
//!   allocation may be replaced; [`templates`]: variables a task's templates must read first;
//!   [`logs`]: what tasks print, as their log files hold it.
//! - [`render`]: Nomad's JSON shapes; [`consul`]: Consul's view of the same allocations.
//! - [`http`]: the Nomad, Consul and `/_sim` admin APIs; [`tls`]: serving them over HTTPS,
//!   with client certificates when asked; [`net`]: HTTP clients (the binary's `ctl`, tests).

pub mod clock;
pub mod cluster;
pub mod config;
pub mod constraints;
pub mod consul;
pub mod csi;
pub mod deployments;
pub mod diff;
pub mod error;
pub mod health;
pub mod http;
pub mod jobs;
pub mod jobspec;
pub mod lifecycle;
pub mod logs;
pub mod model;
pub mod net;
pub mod placement;
pub mod reconcile;
pub mod render;
pub mod reschedule;
pub mod restarts;
pub mod scheduler;
pub mod templates;
pub mod tls;
pub mod updates;
pub mod validate;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::sync::{broadcast, watch};

use clock::Clock;
use cluster::{Cluster, Frame};
use config::SimConfig;

/// How often simulated clients and servers act.
pub const TICK: Duration = Duration::from_millis(50);

/// A handle on one simulated cluster; cheap to clone.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Mutex<Cluster>,
    changed: watch::Sender<u64>,
    frames: broadcast::Sender<Frame>,
}

impl Sim {
    pub fn new(config: SimConfig, clock_speed: f64) -> Sim {
        let nodes = config.nodes.clone();
        let cluster = Cluster::new(config, Clock::new(clock_speed));
        let (changed, _) = watch::channel(cluster.index);
        let (frames, _) = broadcast::channel(1024);
        let sim = Sim {
            inner: Arc::new(Inner {
                cluster: Mutex::new(cluster),
                changed,
                frames,
            }),
        };
        for node in &nodes {
            sim.write(|c| c.add_node(node));
        }
        sim
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        // A panic while holding the lock is a simulator bug; keep serving what is there.
        self.inner
            .cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the cluster; wakes blocking queries and streams the commit's events.
    pub fn write<R>(&self, change: impl FnOnce(&mut Cluster) -> R) -> R {
        let (result, frames, index) = {
            let mut cluster = self.lock();
            let result = change(&mut cluster);
            let frames = cluster.flush();
            (result, frames, cluster.index)
        };
        for frame in frames {
            let _ = self.inner.frames.send(frame);
        }
        self.inner.changed.send_replace(index);
        result
    }

    pub fn read<R>(&self, look: impl FnOnce(&Cluster) -> R) -> R {
        look(&self.lock())
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    pub fn frames(&self) -> broadcast::Receiver<Frame> {
        self.inner.frames.subscribe()
    }

    /// Runs simulated time until the returned task is aborted.
    pub fn spawn_ticker(&self) -> tokio::task::JoinHandle<()> {
        let sim = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                sim.write(Cluster::tick);
            }
        })
    }
}

/// Nomad and Consul are Go servers, and Go sets TCP_NODELAY on every connection; without it the
/// event stream's small frames wait out Nagle and delayed ACKs (tens of milliseconds each).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// A simulator serving on real sockets, stopped when dropped.
pub struct RunningSim {
    pub sim: Sim,
    pub nomad_addr: SocketAddr,
    pub consul_addr: SocketAddr,
    /// Whether both APIs speak HTTPS.
    pub tls: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    /// Binds both APIs (port 0 picks free ports) and starts the clock.
    pub async fn start(
        config: SimConfig,
        clock_speed: f64,
        nomad: &str,
        consul: &str,
    ) -> std::io::Result<RunningSim> {
        RunningSim::start_with_tls(config, clock_speed, nomad, consul, None).await
    }

    /// As [`RunningSim::start`], serving both APIs over HTTPS when `tls` is given.
    pub async fn start_with_tls(
        config: SimConfig,
        clock_speed: f64,
        nomad: &str,
        consul: &str,
        tls: Option<&tls::ServerTls>,
    ) -> std::io::Result<RunningSim> {
        let acceptor = tls.map(tls::ServerTls::acceptor).transpose()?;
        let sim = Sim::new(config, clock_speed);
        let nomad_listener = tokio::net::TcpListener::bind(nomad).await?;
        let consul_listener = tokio::net::TcpListener::bind(consul).await?;
        let nomad_addr = nomad_listener.local_addr()?;
        let consul_addr = consul_listener.local_addr()?;
        let nomad_app = http::nomad_router(sim.clone());
        let consul_app = http::consul_router(sim.clone());
        let serve = |listener: tokio::net::TcpListener, app: axum::Router| match acceptor.clone() {
            Some(acceptor) => tokio::spawn(tls::serve(listener, app, acceptor)),
            None => tokio::spawn(async move {
                let _ = axum::serve(listener.tap_io(no_delay), app).await;
            }),
        };
        let tasks = vec![
            sim.spawn_ticker(),
            serve(nomad_listener, nomad_app),
            serve(consul_listener, consul_app),
        ];
        Ok(RunningSim {
            sim,
            nomad_addr,
            consul_addr,
            tls: acceptor.is_some(),
            tasks,
        })
    }

    pub fn nomad_url(&self) -> String {
        format!("{}://{}", net::scheme(self.tls), self.nomad_addr)
    }

    pub fn consul_url(&self) -> String {
        format!("{}://{}", net::scheme(self.tls), self.consul_addr)
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
