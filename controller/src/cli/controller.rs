//! `nomarch controller`: watch the store, Nomad and Consul, and converge.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use super::connect::{ConsulArgs, NomadArgs};
use super::{CliError, StoreArgs};
use crate::clients::http::{HttpApi, WriteGuard};
use crate::reconcile::AllKinds;
use crate::runtime::context::Context;
use crate::runtime::kinds::Kinds;
use crate::runtime::leader::Leadership;
use crate::runtime::metrics::Metrics;
use crate::runtime::{reflector, runner, server, triggers};

#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub nomad: NomadArgs,
    #[command(flatten)]
    pub consul: ConsulArgs,
    /// Address of the metrics and health server
    #[arg(long, default_value = "127.0.0.1:9430")]
    pub listen: String,
    /// This controller's identity in events [default: host name and pid]
    #[arg(long)]
    pub id: Option<String>,
    /// Period of the full resync (and orphan sweep)
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resync: Duration,
    /// Reconciles run at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Mark a node ineligible when it keeps needing heals (NodeSuspect)
    #[arg(long)]
    pub cordon_suspect_nodes: bool,
    /// How long a hub that came back or joined must stay up before pubs with `rebalance: true`
    /// move onto it
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub rebalance_cooldown: std::time::Duration,
    /// Folder for the git sources' bare mirrors [default: $XDG_CACHE_HOME/nomarch/git, else
    /// ~/.cache/nomarch/git]
    #[arg(long, env = "NOMARCH_GIT_CACHE")]
    pub git_cache: Option<std::path::PathBuf>,
    /// Leader lease TTL: a standby takes over at most this long after the leader dies
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// Split objects over this many controllers (each shard elects its own leader)
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Which shard this controller serves (0-based)
    #[arg(long, default_value_t = 0)]
    pub shard_index: u32,
    /// Reconnect Nomad's event stream when it carries nothing, not even its 30 s heartbeat,
    /// for this long (a half-open connection would otherwise hang it forever)
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub event_stream_idle: Duration,
    /// How long the node list and Consul health blocking queries wait for a change; one that
    /// gets no answer within this plus its slack (at most 30s) is abandoned and retried
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub blocking_wait: Duration,
}

fn default_git_cache() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("nomarch").join("git")
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crds::duration::Duration::parse(text).map(|d| d.get())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

pub async fn run(store_args: &StoreArgs, args: &ControllerArgs) -> Result<(), CliError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if args.shards == 0 || args.shard_index >= args.shards {
        return Err(CliError::Usage(format!(
            "--shard-index {} must be below --shards {}",
            args.shard_index, args.shards
        )));
    }
    if args.lease_ttl < Duration::from_secs(2) {
        return Err(CliError::Usage("--lease-ttl must be at least 2s".into()));
    }
    let store = store_args.connect().await?;
    let metrics = Arc::new(Metrics::new());
    let identity = args.id.clone().unwrap_or_else(default_identity);
    let leadership = Arc::new(Leadership::new(
        store.leader_key(args.shard_index, args.shards),
        identity.clone(),
        args.lease_ttl,
    ));
    let guard: WriteGuard = {
        let leadership = leadership.clone();
        Arc::new(move || leadership.is_held())
    };
    // Both APIs: metrics, this controller's identity, the leadership guard on writes.
    let prepare = |http: &mut HttpApi| {
        http.stats = metrics.api_stats(http.api);
        http.user_agent = format!("nomarch/{identity}");
        http.write_guard = Some(guard.clone());
    };
    let mut nomad = args.nomad.client(prepare)?;
    nomad.stream_idle_limit = args.event_stream_idle;
    let consul = args.consul.client(prepare)?;
    let kinds: Arc<dyn Kinds> = Arc::new(AllKinds::new(
        args.cordon_suspect_nodes,
        args.git_cache.clone().unwrap_or_else(default_git_cache),
        args.rebalance_cooldown,
    ));
    let mut context = Context::new(store, nomad, consul, metrics, identity.clone());
    context.leadership = leadership.clone();
    context.shard = (args.shard_index, args.shards);
    context.blocking_wait = args.blocking_wait;
    context.unsharded = kinds.unsharded();
    let ctx = Arc::new(context);

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let app = server::router(
        ctx.clone(),
        kinds.as_ref(),
        crate::dashboard::routes(ctx.clone()),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Standbys keep these warm, so a takeover starts from full caches.
    tokio::spawn(reflector::run(ctx.clone()));
    tokio::spawn(triggers::nomad_events(ctx.clone(), kinds.clone()));
    tokio::spawn(triggers::consul_health(ctx.clone()));
    tokio::spawn(triggers::follow_nodes(ctx.clone(), kinds.clone()));
    info!(identity, listen = %args.listen, nomad = %args.nomad.nomad_addr, consul = %args.consul.consul_addr,
        shard = args.shard_index, shards = args.shards, "controller started");

    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| CliError::Runtime(e.to_string()))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| CliError::Runtime(e.to_string()))?;
    // Each pass is one term as leader. Losing the lease (etcd unreachable past the TTL, or
    // the key taken) stops this term's work and goes back to standby, caches still warm.
    let (lease, mut runner, holder) = loop {
        let lease = tokio::select! {
            lease = leadership.acquire(&ctx.store) => lease,
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        };
        ctx.metrics.is_leader.set(1);
        let mut runner = tokio::spawn(runner::run(ctx.clone(), kinds.clone(), args.concurrency));
        let resync = tokio::spawn(triggers::resync(ctx.clone(), args.resync));
        let mut holder = {
            let (leadership, store) = (leadership.clone(), ctx.store.clone());
            tokio::spawn(async move { leadership.hold(&store, lease).await })
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
            _ = &mut runner => return Err(CliError::Runtime("the reconcile loop ended unexpectedly".into())),
            lost = &mut holder => {
                ctx.metrics.is_leader.set(0);
                let reason = lost.unwrap_or_else(|e| e.to_string());
                warn!(%reason, "lost the leader lease; standing by");
                // Reconciles in flight are cut off; their writes are refused anyway (Nomad by
                // the write guard, etcd by the old fence), and their keys come back next term.
                resync.abort();
                runner.abort();
                let _ = runner.await;
                ctx.queue.requeue_cut_off();
                continue;
            }
        }
        resync.abort();
        // The holder keeps renewing while the runs in flight finish.
        break (lease, runner, holder);
    };
    info!("shutting down: no new work; letting reconciles in flight finish (signal again to stop now)");
    ctx.queue.shut_down();
    tokio::select! {
        _ = &mut runner => info!("stopped cleanly"),
        _ = terminate.recv() => std::process::exit(130),
        _ = interrupt.recv() => std::process::exit(130),
    }
    holder.abort();
    leadership.resign(&ctx.store, lease).await;
    Ok(())
}
