//! `nomad-sim`: serve a simulated Nomad + Consul cluster, or drive one (`nomad-sim ctl ...`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use nomad_sim::clock::parse_go_duration;
use nomad_sim::config::{default_nodes, BatchOutcome, ConfigFile, NodeSpec, SimConfig};
use nomad_sim::RunningSim;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "nomad-sim",
    version,
    about = "An API-faithful Nomad + Consul simulator with fault injection"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// JSON file describing the nodes: {"nodes": [{"name", "class", "datacenter", "pool", "meta", "cpu", "memory"}]}
    #[arg(long)]
    config: Option<PathBuf>,
    /// Instead of a config file: this many nodes `node-1`..`node-N`
    #[arg(long)]
    nodes: Option<usize>,
    /// Class of the nodes made by --nodes
    #[arg(long, default_value = "worker")]
    node_class: String,
    /// Datacenter of the nodes made by --nodes
    #[arg(long, default_value = "dc1")]
    datacenter: String,
    /// Node pool of the nodes made by --nodes
    #[arg(long, default_value = "default")]
    node_pool: String,
    /// Meta of the nodes made by --nodes: key=value, repeatable
    #[arg(long = "node-meta")]
    node_meta: Vec<String>,
    /// CPU (MHz) of the nodes made by --nodes
    #[arg(long, default_value_t = 4000)]
    node_cpu: u64,
    /// Memory (MB) of the nodes made by --nodes
    #[arg(long, default_value_t = 8192)]
    node_memory: u64,
    #[arg(long, env = "NOMAD_SIM_NOMAD_ADDR", default_value = "127.0.0.1:4646")]
    nomad_addr: String,
    #[arg(long, env = "NOMAD_SIM_CONSUL_ADDR", default_value = "127.0.0.1:8500")]
    consul_addr: String,
    /// Go duration, as Nomad's `heartbeat_grace` pairs with the TTL
    #[arg(long, default_value = "10s", value_parser = go_duration)]
    heartbeat_ttl: Duration,
    #[arg(long, default_value = "10s", value_parser = go_duration)]
    heartbeat_grace: Duration,
    /// From placement to running
    #[arg(long, default_value = "500ms", value_parser = go_duration)]
    start_delay: Duration,
    /// How long a batch run lasts
    #[arg(long, default_value = "1s", value_parser = go_duration)]
    batch_duration: Duration,
    /// How batch runs end: complete or fail
    #[arg(long, default_value = "complete", value_parser = ["complete", "fail"])]
    batch_outcome: String,
    /// Terminal allocations and evaluations older than this are garbage-collected (Nomad's
    /// eval_gc_threshold)
    #[arg(long, default_value = "1h", value_parser = go_duration)]
    gc_threshold: Duration,
    /// Simulated seconds per real second
    #[arg(long, default_value_t = 1.0)]
    clock_speed: f64,
    /// Require this management token (X-Nomad-Token / X-Consul-Token) on every request
    #[arg(long, env = "NOMAD_SIM_ACL_TOKEN", hide_env_values = true)]
    acl_token: Option<String>,
    /// Serve both APIs over HTTPS with this certificate (PEM; with --tls-key)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (Nomad's verify_https_client)
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a running simulator's fault-injection API
    Ctl {
        /// The simulator's Nomad address
        #[arg(long, env = "NOMAD_ADDR", default_value = "http://127.0.0.1:4646")]
        addr: String,
        #[command(subcommand)]
        action: Ctl,
    },
}

#[derive(Subcommand)]
enum Ctl {
    /// Print nodes, jobs, allocations, checks and the write log
    State,
    /// Add a node
    AddNode {
        name: String,
        #[arg(long, default_value = "worker")]
        class: String,
        #[arg(long, default_value = "dc1")]
        datacenter: String,
        #[arg(long, default_value_t = 4000)]
        cpu: u64,
        #[arg(long, default_value_t = 8192)]
        memory: u64,
        /// key=value, repeatable
        #[arg(long = "meta")]
        meta: Vec<String>,
    },
    /// Stop a node's heartbeats (it goes down after TTL + grace)
    KillNode { node: String },
    /// Resume a node's heartbeats
    ReviveNode { node: String },
    /// Cut a node off (it goes disconnected after TTL + grace)
    PartitionNode { node: String },
    /// Make an allocation's tasks fail now
    FailAlloc { id: String },
    /// Make an allocation's tasks crash repeatedly
    CrashloopAlloc { id: String },
    /// Make an allocation hang (its checks go critical)
    HangAlloc { id: String },
    /// Force check status: passing, warning or critical
    SetCheck {
        status: String,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        allocation: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
    /// Inject API latency, errors or an outage (0 clears)
    Chaos {
        /// Consul's API instead of Nomad's
        #[arg(long)]
        consul: bool,
        #[arg(long)]
        latency_ms: Option<u64>,
        #[arg(long)]
        error_rate: Option<f64>,
        #[arg(long)]
        unavailable_ms: Option<u64>,
        /// Event streams go silent (open, no heartbeats); `false` ends it for new streams
        #[arg(long)]
        stall_streams: Option<bool>,
        /// Cut every open event stream mid-frame
        #[arg(long)]
        cut_streams: bool,
        /// Blocking queries started from now never answer; `false` ends it for new queries
        #[arg(long)]
        hang_blocking: Option<bool>,
    },
}

fn parse_meta(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            bail!("meta takes key=value, got `{item}`")
        };
        pairs.insert(key.to_string(), value.to_string());
    }
    Ok(pairs)
}

fn go_duration(text: &str) -> Result<Duration, String> {
    parse_go_duration(text).ok_or_else(|| format!("`{text}` is not a duration like 10s or 500ms"))
}

fn sim_config(args: &ServeArgs) -> anyhow::Result<SimConfig> {
    let mut csi_volumes = Vec::new();
    let nodes = match (&args.config, args.nodes) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: ConfigFile = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            csi_volumes = file.csi_volumes;
            file.nodes
        }
        (None, Some(count)) => {
            let meta = parse_meta(&args.node_meta)?;
            (1..=count)
                .map(|i| NodeSpec {
                    name: format!("node-{i}"),
                    class: args.node_class.clone(),
                    datacenter: args.datacenter.clone(),
                    pool: args.node_pool.clone(),
                    meta: meta.clone(),
                    cpu: args.node_cpu,
                    memory: args.node_memory,
                    host_volumes: Default::default(),
                    csi_plugins: Vec::new(),
                })
                .collect()
        }
        (None, None) => default_nodes(),
    };
    Ok(SimConfig {
        nodes,
        start_delay: args.start_delay,
        batch_duration: args.batch_duration,
        batch_outcome: if args.batch_outcome == "fail" {
            BatchOutcome::Fail
        } else {
            BatchOutcome::Complete
        },
        heartbeat_ttl: args.heartbeat_ttl,
        heartbeat_grace: args.heartbeat_grace,
        acl_token: args.acl_token.clone(),
        region: "global".into(),
        gc_threshold: args.gc_threshold,
        csi_volumes,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = sim_config(&args)?;
    let node_count = config.nodes.len();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(nomad_sim::tls::ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        }),
        _ => None,
    };
    let running = RunningSim::start_with_tls(
        config,
        args.clock_speed,
        &args.nomad_addr,
        &args.consul_addr,
        tls.as_ref(),
    )
    .await
    .with_context(|| format!("binding {} and {}", args.nomad_addr, args.consul_addr))?;
    println!(
        "nomad-sim: Nomad API on {}, Consul API on {}, {node_count} nodes, clock x{}",
        running.nomad_url(),
        running.consul_url(),
        args.clock_speed
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

async fn ctl(addr: &str, action: Ctl) -> anyhow::Result<()> {
    let base = addr.trim_end_matches('/');
    let (method, path, body) = match action {
        Ctl::State => ("GET", "/_sim/state".to_string(), None),
        Ctl::AddNode {
            name,
            class,
            datacenter,
            cpu,
            memory,
            meta,
        } => {
            let mut pairs = BTreeMap::new();
            for item in meta {
                let Some((k, v)) = item.split_once('=') else {
                    bail!("--meta takes key=value, got `{item}`")
                };
                pairs.insert(k.to_string(), v.to_string());
            }
            let body = json!({"name": name, "class": class, "datacenter": datacenter, "cpu": cpu, "memory": memory, "meta": pairs});
            ("POST", "/_sim/nodes".to_string(), Some(body))
        }
        Ctl::KillNode { node } => ("POST", format!("/_sim/nodes/{node}/kill"), None),
        Ctl::ReviveNode { node } => ("POST", format!("/_sim/nodes/{node}/revive"), None),
        Ctl::PartitionNode { node } => ("POST", format!("/_sim/nodes/{node}/partition"), None),
        Ctl::FailAlloc { id } => ("POST", format!("/_sim/allocations/{id}/fail"), None),
        Ctl::CrashloopAlloc { id } => ("POST", format!("/_sim/allocations/{id}/crashloop"), None),
        Ctl::HangAlloc { id } => ("POST", format!("/_sim/allocations/{id}/hang"), None),
        Ctl::SetCheck {
            status,
            service,
            allocation,
            node,
        } => (
            "PUT",
            "/_sim/checks".to_string(),
            Some(
                json!({"status": status, "service": service, "allocation": allocation, "node": node}),
            ),
        ),
        Ctl::Chaos {
            consul,
            latency_ms,
            error_rate,
            unavailable_ms,
            stall_streams,
            cut_streams,
            hang_blocking,
        } => {
            let mut body = serde_json::Map::new();
            for (key, value) in [
                ("api", consul.then(|| Value::from("consul"))),
                ("latency_ms", latency_ms.map(Value::from)),
                ("error_rate", error_rate.map(Value::from)),
                ("unavailable_ms", unavailable_ms.map(Value::from)),
                ("stall_streams", stall_streams.map(Value::from)),
                ("cut_streams", cut_streams.then_some(Value::Bool(true))),
                ("hang_blocking", hang_blocking.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body.insert(key.into(), value);
                }
            }
            ("PUT", "/_sim/chaos".to_string(), Some(Value::Object(body)))
        }
    };
    let client = nomad_sim::net::client();
    let url = format!("{base}{path}");
    let mut request = match method {
        "GET" => client.get(&url),
        "PUT" => client.put(&url),
        _ => client.post(&url),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach nomad-sim at {base}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Ctl { addr, action }) => ctl(&addr, action).await,
    }
}
