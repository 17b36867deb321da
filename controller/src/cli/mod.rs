//! The `nomarch` command line.
//!
//! # Layout
//! - this file: the commands and flags (clap), dispatch, [`say!`] for output that survives a
//!   closed pipe, etcd connection flags.
//! - `apply`, `get`, `delete`, `diff`, `events`, `describe`: one command each; `output`: tables,
//!   YAML and JSON; `connect`: Nomad and Consul flags and clients; `exit`: errors and exit codes.
//! - `wait`: `apply --wait` and `rollout status --watch` (a verdict rule table over status, an
//!   etcd watch); `rollout`: the `rollout` subcommands (history rows and undo decided in
//!   `reconcilers::history`); `restart`: its batches.
//! - `rebalance`: `rebalance pubs`, moves planned by `reconcilers::rebalance`, made through
//!   the controller with the `move-to` annotation.
//! - `logs`: task logs of an object's instances, merged and followed (read by `ops::logs`).
//! - `operate`: `stop`/`start`, `suspend`/`resume` and `reconcile` (check-and-set writes of one
//!   object, then the `wait` verdicts).
//! - `complete`: shell completion, object names from etcd included.
//! - `controller`: `nomarch controller`, the process that runs the runtime.

mod apply;
mod complete;
mod connect;
pub mod controller;
mod delete;
mod describe;
mod diff;
mod events;
mod exit;
mod get;
mod logs;
mod operate;
mod output;
mod rebalance;
mod restart;
mod rollout;
mod token;
mod wait;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use complete::VARIABLE as COMPLETE_VARIABLE;
pub use exit::{CliError, ExitStatus};

/// `println!` for the commands' output: a reader that went away (`nomarch diff | head`) ends
/// the command quietly, as a Unix tool killed by SIGPIPE ends (status 141), where `println!`
/// would panic. SIGPIPE itself stays ignored, as Rust leaves it: the clients write sockets with
/// `writev`, which would raise it.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*), true)
    };
}

/// [`say!`] without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*), false)
    };
}

pub(crate) use {say, say_raw};

/// What [`say!`] does.
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(128 + libc::SIGPIPE)
        }
        Err(e) => panic!("failed printing to stdout: {e}"),
    }
}

use crate::clients::{Secret, TlsFiles};
use crate::store::{EtcdUser, Store, DEFAULT_PREFIX};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  invalid manifests (every error is printed as file:line:col: field: message); for diff:
     applying would change Nomad (an invalid manifest is then 2)
  2  bad command line
  3  etcd unreachable or failing
  4  conflict: the object changed since the given resourceVersion
  5  object not found
  6  the controller could not start or stopped unexpectedly, or Nomad refused a request
  7  --wait / --watch: a rollout failed or Nomad rolled it back (or refused the job)
  8  --wait / --watch / rollout restart: the timeout passed first";

#[derive(Parser, Debug)]
#[command(name = "nomarch", version, about = "A reconciling operator for HashiCorp Nomad", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// etcd endpoints, comma-separated [env: NOMARCH_ETCD_ENDPOINTS, then ETCDCTL_ENDPOINTS]
    /// [default: http://127.0.0.1:2379]
    #[arg(long, global = true, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Key prefix of nomarch's data in etcd
    #[arg(long, global = true, env = "NOMARCH_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// etcd user, when etcd has authentication enabled; the password comes from
    /// NOMARCH_ETCD_PASSWORD or --etcd-password-file, never from the command line
    #[arg(long, global = true, env = "NOMARCH_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password (one line)
    #[arg(long, global = true, env = "NOMARCH_ETCD_PASSWORD_FILE")]
    pub etcd_password_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for https:// etcd endpoints
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub etcd_ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for an etcd with --client-cert-auth (with --etcd-key)
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's key (PEM)
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub etcd_key: Option<PathBuf>,
}

impl StoreArgs {
    /// `--etcd`, else `NOMARCH_ETCD_ENDPOINTS`, else `ETCDCTL_ENDPOINTS`, else the local default.
    pub fn endpoints(&self) -> Vec<String> {
        if !self.etcd.is_empty() {
            return self.etcd.clone();
        }
        for var in ["NOMARCH_ETCD_ENDPOINTS", "ETCDCTL_ENDPOINTS"] {
            if let Ok(value) = std::env::var(var) {
                let endpoints: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if !endpoints.is_empty() {
                    return endpoints;
                }
            }
        }
        vec!["http://127.0.0.1:2379".to_string()]
    }

    pub async fn connect(&self) -> Result<Store, CliError> {
        let user = self.etcd_user()?;
        let tls = TlsFiles {
            ca_cert: self.etcd_ca_cert.clone(),
            client_cert: self.etcd_cert.clone(),
            client_key: self.etcd_key.clone(),
        };
        let tls = (!tls.is_empty()).then_some(tls);
        Ok(Store::connect_as(&self.endpoints(), &self.prefix, user.as_ref(), tls.as_ref()).await?)
    }

    /// The etcd user and password, when a user is named. Errors name the file or variable to
    /// fix, never the password.
    fn etcd_user(&self) -> Result<Option<EtcdUser>, CliError> {
        let Some(name) = self.etcd_user.clone() else {
            return Ok(None);
        };
        let password = match &self.etcd_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::Usage(format!(
                        "--etcd-password-file {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                Secret::new(text.trim_end_matches(['\n', '\r']))
            }
            None => Secret::from_env("NOMARCH_ETCD_PASSWORD").ok_or_else(|| {
                CliError::Usage(format!(
                    "--etcd-user {name} needs a password: set NOMARCH_ETCD_PASSWORD or --etcd-password-file"
                ))
            })?,
        };
        Ok(Some(EtcdUser { name, password }))
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check manifests offline (no etcd); prints every error
    Validate {
        /// Files or directories (read recursively); `-` for standard input
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Create or update objects; writes nothing unless every manifest is valid
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Follow every object this changed until it is rolled out, failed or rolled back
        /// (exit 0 only when all succeeded, 7 when one failed, 8 on timeout)
        #[arg(long)]
        wait: bool,
        /// How long --wait waits
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Nomad, asked to parse and validate NomadJobs before anything is written
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
    /// Show what applying would change in Nomad, as `nomad job plan` shows it; changes nothing
    /// (exit 0: no changes, 1: changes, 2: invalid manifests)
    ///
    /// Example: nomarch diff -f apps/ | less
    Diff {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// json: nomarch's decision and Nomad's full plan per object, for scripts
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<DescribeOutput>,
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
    /// Show objects
    ///
    /// Example: nomarch get apps -A -l tier=front --sort-by .status.replicas.healthy -w
    Get {
        /// app, pub, cronjob or gitsource (plural and short forms work too)
        kind: String,
        name: Option<String>,
        #[command(flatten)]
        namespace: NamespaceArgs,
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<OutputFormat>,
        /// Only objects whose labels match: key=value, key!=value, key, !key (comma-separated)
        #[arg(short = 'l', long = "selector", value_parser = crds::select::Selector::parse)]
        selector: Option<crds::select::Selector>,
        /// Order by a field of the object as -o json shows it, e.g. .status.replicas.healthy
        #[arg(long, value_parser = crds::select::SortBy::parse)]
        sort_by: Option<crds::select::SortBy>,
        /// Keep the rows up to date as objects and their status change (in place on a
        /// terminal; otherwise a line per changed row)
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Delete objects by name or by the manifests that define them
    Delete {
        kind: Option<String>,
        name: Option<String>,
        #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "name"])]
        files: Vec<PathBuf>,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Show events, oldest first
    ///
    /// Example: nomarch events --kind app --name web --since 1h --type Warning
    Events {
        /// Keep streaming new events until interrupted
        #[arg(short = 'w', long)]
        watch: bool,
        #[command(flatten)]
        namespace: NamespaceArgs,
        /// Only events about objects of this kind (app, pub, cronjob, gitsource)
        #[arg(long)]
        kind: Option<String>,
        /// Only events about objects with this name
        #[arg(long)]
        name: Option<String>,
        /// Only events of this type (Normal or Warning)
        #[arg(long = "type")]
        type_: Option<String>,
        /// `json`: one JSON object per line, for tools
        #[arg(short = 'o', long)]
        output: Option<events::EventsOutput>,
        /// Colour: auto (when writing to a terminal and NO_COLOR is unset), always, never
        #[arg(long, default_value = "auto")]
        color: events::ColorChoice,
        /// Only events seen in this last while (10m, 2h)
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Print the JSON Schema of a kind
    Schema { kind: String },
    /// Act on an object's rollout
    Rollout {
        #[command(subcommand)]
        action: rollout::RolloutAction,
    },
    /// Bearer tokens for the controller's HTTP API (`/api/v1`)
    Token {
        #[command(subcommand)]
        action: token::TokenAction,
    },
    /// Launch a run of a cron job now (Nomad's periodic force)
    Run {
        /// cronjob
        kind: String,
        name: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
    /// Everything about one object: spec, conditions, Nomad job, allocations with health,
    /// hub, runs, source, rollout and recent events
    ///
    /// Example: nomarch describe app/web -n staging
    Describe {
        /// KIND/NAME, e.g. app/web
        #[arg(add = complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        /// json: the same as one document, for scripts
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<DescribeOutput>,
        #[command(flatten)]
        nomad: connect::NomadArgs,
        #[command(flatten)]
        consul: connect::ConsulArgs,
    },
    /// What an object's instances print (their Nomad task logs); several instances' lines
    /// are prefixed with the instance and merged in time order
    ///
    /// Example: nomarch logs app/web -f --since 10m
    Logs {
        /// KIND/NAME, e.g. app/web
        #[arg(add = complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
        /// Keep printing new lines, and the lines of instances that start meanwhile
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only lines stamped within this last while (10m, 2h); lines without a time stamp go
        /// with the line before them
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only each instance's last N lines
        #[arg(long)]
        tail: Option<usize>,
        /// Standard error instead of standard output
        #[arg(long)]
        stderr: bool,
        /// One instance: its allocation ID or a prefix of it
        #[arg(long, conflicts_with = "all")]
        instance: Option<String>,
        /// Every instance Nomad still has, stopped and failed ones too (default: those running,
        /// or the newest when none runs)
        #[arg(long)]
        all: bool,
        /// The task (default: the one nomarch renders for the kind)
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
    /// Stop an app or pub: its Nomad job is stopped (not purged), nothing is healed or moved,
    /// and its spec and hub are kept (sets spec.stopped; waits until nothing runs)
    ///
    /// Example: nomarch stop app/web -n staging
    Stop {
        /// KIND/NAME, e.g. app/web (several: each is checked before any is written)
        #[arg(add = complete::objects(), required = true)]
        objects: Vec<String>,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Start a stopped app or pub again (clears spec.stopped; waits until it is rolled out)
    ///
    /// Example: nomarch start app/web
    Start {
        /// KIND/NAME, e.g. app/web (several: each is checked before any is written)
        #[arg(add = complete::objects(), required = true)]
        objects: Vec<String>,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Set an object aside: nomarch reverts no drift, heals and moves nothing, fetches nothing
    /// for it, while what runs keeps running (any kind; `nomarch resume` undoes it)
    ///
    /// Example: nomarch suspend gitsource/platform
    Suspend {
        /// KIND/NAME, e.g. app/web
        #[arg(add = complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Reconcile a suspended object again
    ///
    /// Example: nomarch resume gitsource/platform
    Resume {
        /// KIND/NAME, e.g. app/web
        #[arg(add = complete::objects())]
        object: String,
        #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Reconcile an object now (a git source: fetch now) and report the outcome
    ///
    /// Example: nomarch reconcile app/web --with-source
    Reconcile {
        /// KIND/NAME, e.g. app/web
        #[arg(add = complete::objects())]
        object: String,
        /// First fetch and sync the git source that owns the object
        #[arg(long)]
        with_source: bool,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Even out hub usage: move pubs (policy spread) onto hubs that came back or joined
    ///
    /// Example: nomarch rebalance pubs --dry-run --max-moves 5
    Rebalance {
        #[command(subcommand)]
        what: RebalanceWhat,
    },
    /// Print the shell's completion hook: subcommands, flags and object names (from etcd)
    ///
    /// Example: source <(nomarch completion bash)
    ///
    /// bash: `source <(nomarch completion bash)` in ~/.bashrc; zsh: `source <(nomarch
    /// completion zsh)` in ~/.zshrc; fish: `nomarch completion fish | source` in
    /// ~/.config/fish/config.fish
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the controller: watch the store, Nomad and Consul, and converge
    Controller(Box<controller::ControllerArgs>),
}

#[derive(Subcommand, Debug)]
pub enum RebalanceWhat {
    /// Move pubs to even out their hubs, at most --max-moves, never onto a full hub, never a
    /// pub with host volumes unless --include-stateful (it starts fresh; its data stays)
    Pubs {
        #[command(flatten)]
        namespace: NamespaceArgs,
        /// Only pubs whose labels match (the others still count for each hub's load)
        #[arg(short = 'l', long = "selector", value_parser = crds::select::Selector::parse)]
        selector: Option<crds::select::Selector>,
        /// Print the moves, make none
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value_t = 10)]
        max_moves: usize,
        /// Also move pubs with host volumes
        #[arg(long)]
        include_stateful: bool,
        /// How long to wait for the moves (exit 8 after)
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        nomad: connect::NomadArgs,
    },
}

/// What `stop`, `start` and `reconcile` share: where the object is, and how long to follow
/// the controller's answer (exit 7 when it failed, 8 on timeout).
#[derive(Args, Debug, Clone)]
pub struct ActArgs {
    #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Return once the request is stored, without following it
    #[arg(long)]
    pub no_wait: bool,
    /// How long to follow the controller's answer
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

impl ActArgs {
    fn follow(&self) -> operate::Follow {
        (!self.no_wait).then_some(self.timeout)
    }
}

#[derive(Args, Debug, Clone)]
pub struct NamespaceArgs {
    #[arg(short = 'n', long, default_value = crds::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

impl NamespaceArgs {
    pub fn matches(&self, namespace: &str) -> bool {
        self.all_namespaces || self.namespace == namespace
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DescribeOutput {
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
    Wide,
}

pub fn parse_kind(name: &str) -> Result<crds::Kind, CliError> {
    crds::Kind::from_cli_name(name).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown kind `{name}`; use app, pub, cronjob or gitsource"
        ))
    })
}

/// Runs one command, printing its output; the error carries the exit status.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Apply {
            files,
            wait,
            timeout,
            nomad,
        } => apply::run(&cli.store, &files, &nomad, wait.then_some(timeout)).await,
        Command::Get {
            kind,
            name,
            namespace,
            output,
            selector,
            sort_by,
            watch,
        } => {
            let shown = get::Shown {
                namespace,
                selector,
                sort_by,
            };
            get::run(&cli.store, &kind, name.as_deref(), &shown, output, watch).await
        }
        Command::Delete {
            kind,
            name,
            files,
            namespace,
        } => delete::run(&cli.store, kind, name, &files, &namespace).await,
        Command::Events {
            watch,
            namespace,
            kind,
            name,
            type_,
            output,
            color,
            since,
        } => {
            let mut filter = crate::store::EventFilter::parse(
                kind.as_deref(),
                (!namespace.all_namespaces).then_some(namespace.namespace.as_str()),
                name.as_deref(),
                type_.as_deref(),
            )
            .map_err(CliError::Usage)?;
            filter.since = since
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| chrono::Utc::now() - d);
            let style = events::Style::choose(output, color);
            events::run(&cli.store, watch, &filter, style).await
        }
        Command::Controller(args) => controller::run(&cli.store, &args).await,
        Command::Describe {
            object,
            namespace,
            output,
            nomad,
            consul,
        } => {
            let object = rollout::object_ref(&object, &namespace)?;
            let description = describe::gather(&cli.store, &object, &nomad, &consul).await?;
            match output {
                Some(DescribeOutput::Json) => say!(
                    "{}",
                    serde_json::to_string_pretty(&description).expect("descriptions serialize")
                ),
                None => say_raw!("{}", describe::render(&description, chrono::Utc::now())),
            }
            Ok(())
        }
        Command::Completion { shell } => {
            say_raw!("{}", complete::registration(shell)?);
            Ok(())
        }
        Command::Run {
            kind,
            name,
            namespace,
            nomad,
        } => run_now(&cli.store, &kind, &name, &namespace, &nomad).await,
        Command::Diff {
            files,
            output,
            nomad,
        } => diff::run(&cli.store, &files, &nomad, output.is_some()).await,
        Command::Rollout { action } => rollout::run(&cli.store, action).await,
        Command::Token { action } => token::run(&cli.store, action).await,
        Command::Logs {
            object,
            namespace,
            follow,
            since,
            tail,
            stderr,
            instance,
            all,
            task,
            nomad,
        } => {
            let object = rollout::object_ref(&object, &namespace)?;
            let selection = match (instance, all) {
                (Some(prefix), _) => crate::ops::logs::Selection::One(prefix),
                (None, true) => crate::ops::logs::Selection::All,
                (None, false) => crate::ops::logs::Selection::Running,
            };
            let args = crate::ops::logs::LogsArgs {
                selection,
                follow,
                since,
                tail,
                stderr,
                task,
            };
            logs::run(&cli.store, &object, &args, &nomad).await
        }
        Command::Rebalance {
            what:
                RebalanceWhat::Pubs {
                    namespace,
                    selector,
                    dry_run,
                    max_moves,
                    include_stateful,
                    timeout,
                    nomad,
                },
        } => {
            let args = rebalance::RebalanceArgs {
                namespace,
                selector,
                dry_run,
                limits: reconcilers::rebalance::Limits {
                    max_moves,
                    include_stateful,
                },
                timeout,
            };
            let store = cli.store.connect().await?;
            rebalance::run(&store, &nomad, &args).await
        }
        Command::Stop { objects, act } => set_stopped(&cli.store, &objects, &act, true).await,
        Command::Start { objects, act } => set_stopped(&cli.store, &objects, &act, false).await,
        Command::Suspend { object, namespace } => {
            set_suspended(&cli.store, &object, &namespace, true).await
        }
        Command::Resume { object, namespace } => {
            set_suspended(&cli.store, &object, &namespace, false).await
        }
        Command::Reconcile {
            object,
            with_source,
            act,
        } => {
            let object = rollout::object_ref(&object, &act.namespace)?;
            let store = cli.store.connect().await?;
            operate::reconcile_now(&store, &object, with_source, act.follow()).await
        }
        Command::Schema { kind } => {
            say_raw!("{}", crds::schema::schema_file_text(parse_kind(&kind)?));
            Ok(())
        }
    }
}

fn validate(files: &[PathBuf]) -> Result<(), CliError> {
    let manifests = crds::load_paths(files).map_err(CliError::Invalid)?;
    for manifest in &manifests {
        say!(
            "{} valid ({})",
            manifest.resource.object_ref(),
            manifest.source
        );
    }
    Ok(())
}

/// `nomarch run cronjob NAME`: one run now, outside the schedule.
async fn set_stopped(
    store: &StoreArgs,
    objects: &[String],
    act: &ActArgs,
    stopped: bool,
) -> Result<(), CliError> {
    let objects = objects
        .iter()
        .map(|o| rollout::object_ref(o, &act.namespace))
        .collect::<Result<Vec<_>, _>>()?;
    let store = store.connect().await?;
    operate::set_stopped(&store, &objects, stopped, act.follow()).await
}

async fn set_suspended(
    store: &StoreArgs,
    object: &str,
    namespace: &str,
    suspended: bool,
) -> Result<(), CliError> {
    let object = rollout::object_ref(object, namespace)?;
    let store = store.connect().await?;
    operate::set_suspended(&store, &object, suspended).await
}

async fn run_now(
    store_args: &StoreArgs,
    kind: &str,
    name: &str,
    namespace: &str,
    nomad_args: &connect::NomadArgs,
) -> Result<(), CliError> {
    if parse_kind(kind)? != crds::Kind::CronJob {
        return Err(CliError::Usage(
            "only cron jobs can be run now: nomarch run cronjob NAME".into(),
        ));
    }
    let object = crds::ObjectRef::new(crds::Kind::CronJob, namespace, name);
    let store = store_args.connect().await?;
    let Some(stored) = store.get(&object).await? else {
        return Err(crate::store::StoreError::NotFound(object.to_string()).into());
    };
    // A suspended cron job's periodic job is disabled, and Nomad refuses to force a launch of
    // a disabled one ("can't force run non-tracked job"); say why in nomarch's words.
    if let crds::Resource::CronJob(cron) = &stored {
        if cron.spec.suspend {
            return Err(CliError::Usage(format!(
                "{object} is suspended (spec.suspend: true): Nomad does not launch a disabled periodic job; set suspend to false to run it"
            )));
        }
    }
    let nomad = nomad_args.client(|_| {})?;
    let reply = nomad
        .periodic_force(namespace, &reconcilers::meta::job_id(&object))
        .await
        .map_err(|e| CliError::Runtime(format!("{object} could not be run: {e}")))?;
    say!(
        "{object} run started (evaluation {})",
        reply.get("EvalID").and_then(|v| v.as_str()).unwrap_or("?")
    );
    Ok(())
}
