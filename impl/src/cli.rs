//! Command-line arguments (PROTOCOL.md §4) and what each command does.

use crate::check::{check, render_human, CheckOptions, CheckReport, Strategy};
use crate::error::UsageError;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use insync_model::config::{Acks, MODEL_BOUNDS};
use insync_model::kafka::KafkaVersion;
use insync_model::properties::Property;
use insync_model::{Config, Insync};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "insync",
    version,
    about = "Prove or break the reliability promises of Kafka-style partition replication"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Model-check one configuration (or, with --matrix, the built-in catalogue).
    Check(CheckArgs),
    /// Serve stateright's Explorer for a configuration, to walk its state space in a browser.
    Explore(ExploreArgs),
    /// Run the real engine: a workload, faults, and a verdict on what was lost. In-process by
    /// default; with --connect, against a cluster of `insync broker` and `insync controller`
    /// processes.
    Run(RunArgs),
    /// Format a data directory for one broker or the controller of a cluster (as Kafka's
    /// `kafka-storage format`): `insync broker --data-dir` refuses a directory without it.
    Format(FormatArgs),
    /// Serve one broker of a multi-process cluster (every process gets the same flags).
    Broker(BrokerArgs),
    /// Serve the controller of a multi-process cluster.
    Controller(ServeArgs),
    /// Combine the JSON reports of the shards of one random-walk run (`insync check --strategy
    /// simulation --shard I/N --json`) into the report of the whole run.
    Merge(MergeArgs),
    /// Other commands are programs named `insync-<command>` next to this one (`insync fuzz`
    /// runs `insync-fuzz`).
    #[command(external_subcommand)]
    External(Vec<String>),
}

/// Where the processes of a multi-process cluster listen.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Broker addresses, broker 0 first, one per replica (e.g.
    /// 127.0.0.1:9100,127.0.0.1:9101,127.0.0.1:9102).
    #[arg(long, value_delimiter = ',')]
    pub brokers: Vec<std::net::SocketAddr>,
    /// The controller's address (e.g. 127.0.0.1:9200).
    #[arg(long)]
    pub controller: Option<std::net::SocketAddr>,
    /// A file holding the cluster's shared secret (at least 16 bytes, readable only by its
    /// owner; the same file for every process of the cluster): every connection proves it.
    /// Required unless every address of the layout is loopback.
    #[arg(long)]
    pub secret_file: Option<std::path::PathBuf>,
}

impl ClusterArgs {
    fn addrs(&self, cluster_id: Option<&str>) -> anyhow::Result<crate::tcp::ClusterAddrs> {
        let Some(controller) = self.controller else {
            bail!(UsageError::InvalidConfig(
                "the cluster layout needs --controller ADDR and --brokers ADDR,ADDR,..."
                    .to_string()
            ));
        };
        if self.brokers.is_empty() {
            bail!(UsageError::InvalidConfig(
                "the cluster layout needs --brokers ADDR,ADDR,... (one per replica)".to_string()
            ));
        }
        let secret = match &self.secret_file {
            Some(path) => Some(crate::auth::Secret::from_file(path)?),
            None => None,
        };
        Ok(crate::tcp::ClusterAddrs {
            brokers: self.brokers.clone(),
            controller,
            secret,
            cluster_id: cluster_id.map(str::to_owned),
        })
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Store this process's log in segment files here (recovered when it starts again). The
    /// directory must be formatted for this node first: `insync format`.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// The cluster id --data-dir was formatted with (`insync format --cluster-id`).
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Seeds timers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Producers the clients run (places the actors; the same in every process).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("node").required(true).multiple(false)))]
pub struct FormatArgs {
    /// The directory to format (created if missing; it must be empty or already formatted
    /// for the same node).
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// The cluster's id, the same for every node (1 to 64 letters, digits, '-', '_', '.').
    #[arg(long)]
    pub cluster_id: String,
    /// The broker this directory is for (`insync broker --id N`).
    #[arg(long, group = "node")]
    pub node_id: Option<u8>,
    /// The directory is the controller's (`insync controller`).
    #[arg(long, group = "node")]
    pub controller: bool,
}

#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// Which broker this process is (0-based, below --replicas).
    #[arg(long)]
    pub id: u8,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Serve Kafka clients too. Every broker process gets the same value: one address (broker
    /// i listens on its port + i) or one per broker, comma-separated; this broker listens on
    /// its own, and Metadata names the others' as given (so no port 0).
    #[arg(long)]
    pub kafka_listen: Option<String>,
    /// The Kafka listener's one topic (one partition, 0).
    #[arg(long, default_value = "insync", requires = "kafka_listen")]
    pub kafka_topic: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Producers, each its own producer actor and id; records go to them in turn.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Bytes per record (16, the record's index and the run's id, up to 1 MiB, what
    /// message.max.bytes takes).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Faults to inject, in order, spread over the run.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<crate::run::Fault>,
    /// Seeds timers and faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Store logs in segment files here instead of memory (an empty directory is formatted
    /// for the run; one formatted for a broker or the controller is refused).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Produce to and consume from a running multi-process cluster (at --brokers and
    /// --controller) instead of starting one in-process.
    #[arg(long)]
    pub connect: bool,
    /// Run on one thread with a paused clock that jumps to the next timer (as the history
    /// runner of `insync fuzz` does): the same flags and --seed give the same outcome every
    /// time, and rates and latencies are in virtual time. In-memory logs only; not with
    /// external clients (--kafka-listen), whose waits would let the clock jump.
    #[arg(long, conflicts_with_all = ["connect", "data_dir", "kafka_listen"])]
    pub virtual_clock: bool,
    /// Serve Kafka clients instead of running the built-in workload: broker i listens on
    /// this address's port + i (port 0: free ports), or give one address per broker,
    /// comma-separated. The cluster stays up for --duration seconds under --faults.
    #[arg(long)]
    pub kafka_listen: Option<String>,
    /// The Kafka listener's one topic (one partition, 0).
    #[arg(long, default_value = "insync")]
    pub kafka_topic: String,
    /// With --kafka-listen: seconds the cluster serves (faults spread evenly over them).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The configuration flags: every field of [`Config`] is a flag, declared with the field
/// (its doc comment is the help; its default, shown in `--help`, is [`Config::default`]'s),
/// and `--kafka` names a release whose settings sit between the defaults and the explicit
/// flags.
#[derive(Debug, Clone)]
pub struct ConfigArgs {
    /// The `--kafka` release, if one was named.
    pub kafka: Option<KafkaVersion>,
    /// The defaults, then the release's settings, then the flags given.
    config: Config,
    /// The fields whose flags were given on the command line.
    given: BTreeSet<String>,
}

/// `--kafka`, the one configuration flag that is not a field of [`Config`].
#[derive(Args, Debug)]
struct KafkaFlag {
    /// A Kafka release whose replication protocol and producer defaults to use (0.10, 0.11,
    /// 2.0, 2.1, 2.8, 3.6, 4.0, 4.1; see the README's table). Explicit flags override it.
    #[arg(long)]
    kafka: Option<KafkaVersion>,
}

/// The flags [`Config`] declares, as its fields' names.
fn config_fields() -> impl Iterator<Item = clap::Arg> {
    let command = Config::augment_args(clap::Command::new("config"));
    command
        .get_arguments()
        .cloned()
        .collect::<Vec<_>>()
        .into_iter()
}

impl Args for ConfigArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        let mut command = Config::augment_args(KafkaFlag::augment_args(command));
        for arg in config_fields() {
            let id = arg.get_id().as_str().to_string();
            let default = match &defaults[&id] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) if arg.get_num_args().is_some() => b.to_string(),
                _ => continue,
            };
            // The default is `Config::default()`'s, never a second copy of it.
            command = command.mut_arg(id, |a| a.required(false).default_value(default));
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let kafka = KafkaFlag::from_arg_matches(matches)?.kafka;
        let flags = Config::from_arg_matches(matches)?;
        let given: BTreeSet<String> = config_fields()
            .map(|a| a.get_id().as_str().to_string())
            .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .collect();
        let config = layered(kafka, &flags, &given);
        Ok(ConfigArgs {
            kafka,
            config,
            given,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// The contract's defaults, then the `--kafka` release's settings, then the flags `given`
/// (with their values in `flags`).
fn layered(kafka: Option<KafkaVersion>, flags: &Config, given: &BTreeSet<String>) -> Config {
    let defaults = Config::default();
    let release = match kafka {
        Some(v) => v.profile().apply(defaults),
        None => defaults,
    };
    let mut merged = serde_json::to_value(&release).expect("a configuration serializes");
    let explicit = serde_json::to_value(flags).expect("a configuration serializes");
    for field in given {
        merged[field] = explicit[field].clone();
    }
    let mut config: Config =
        serde_json::from_value(merged).expect("fields of one configuration make one");
    // As Kafka's producer does since 3.2 (KAFKA-13598): idempotence that was only a default
    // gives way to an explicit acks other than all or retries=0.
    let explicit_conflict = (given.contains("acks") && config.acks != Acks::All)
        || (given.contains("retries") && config.retries == 0);
    if !given.contains("idempotence") && explicit_conflict {
        config.idempotence = false;
    }
    config
}

impl ConfigArgs {
    /// Whether `field`'s flag was given on the command line.
    pub fn given(&self, field: &str) -> bool {
        self.given.contains(field)
    }

    /// Refuses the flags that only bound or shape the model checker's search (those under
    /// the [`MODEL_BOUNDS`] heading of `--help`), which a command that runs the real engine
    /// would otherwise silently ignore.
    pub fn reject_model_only(&self, command: &str) -> anyhow::Result<()> {
        self.reject_model_only_but(command, &[])
    }

    /// As [`ConfigArgs::reject_model_only`], for a command that does use the model-bound
    /// fields `used` (`insync fuzz` runs its histories on the configured network).
    pub fn reject_model_only_but(&self, command: &str, used: &[&str]) -> anyhow::Result<()> {
        let given: Vec<String> = config_fields()
            .filter(|a| a.get_help_heading() == Some(MODEL_BOUNDS))
            .filter(|a| !used.contains(&a.get_id().as_str()))
            .filter(|a| self.given(a.get_id().as_str()))
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        if !given.is_empty() {
            bail!(UsageError::InvalidConfig(format!(
                "{} only bound{} or shape{} the model checker's search; `insync {command}` runs \
                 the real engine, whose crashes, elections and network are real (inject faults \
                 with `insync run --faults`); drop {}",
                given.join(", "),
                if given.len() == 1 { "s" } else { "" },
                if given.len() == 1 { "s" } else { "" },
                if given.len() == 1 { "it" } else { "them" }
            )));
        }
        Ok(())
    }

    /// The configuration for the model (`check`, `explore`).
    pub fn to_config(&self) -> Config {
        self.config.clone()
    }

    /// The configuration for the engine, whose records come from the workload
    /// (`insync run --records`), not from the configuration: one, so that the model's bound
    /// on records does not refuse a long run.
    fn engine_config(&self) -> Config {
        Config {
            records: 1,
            ..self.config.clone()
        }
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Search strategy: auto (breadth first for the first million states, then depth first),
    /// bfs, dfs or simulation.
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: Strategy,
    /// Checker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Explore no deeper than this many steps.
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// Simulation: seed of the random walks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many states (simulation's budget; default 1,000,000 there unless
    /// --walks or --timeout is given).
    #[arg(long)]
    pub max_states: Option<usize>,
    /// Simulation: how many random walks the run takes (walk j's seed derives from --seed and
    /// j alone, so a run is the same on any number of threads).
    #[arg(long)]
    pub walks: Option<u64>,
    /// Simulation: take only shard I of N of the run's walks (walks j with j mod N = I; I
    /// from 0, as a Kubernetes indexed job or `$SLURM_ARRAY_TASK_ID` with --array=0-N-1).
    /// Shards never repeat a walk; `insync merge` combines their --json reports.
    #[arg(long)]
    pub shard: Option<crate::simulate::Shard>,
    /// Stop after this long: seconds, or with a unit (90s, 2m, 1h).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Scope deepening: check the smallest scope first (1 record, no crash, no election, no
    /// ISR change), then raise elections, crashes, records and ISR changes one at a time up to
    /// the configuration's bounds while this much time remains (seconds, or 90s, 2m, 1h).
    /// Reports the largest scope that finished and the first that broke a property.
    #[arg(long, value_parser = parse_duration, conflicts_with_all = ["timeout", "matrix"])]
    pub budget: Option<Duration>,
    /// Stop at the first safety violation (with bfs: the shortest counterexample, on one thread
    /// unless --threads says otherwise).
    #[arg(long)]
    pub first: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Visit every state, not one per class of states that differ only in broker names (the
    /// symmetry reduction of depth-first and simulation searches; to compare, slower).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Check the built-in catalogue of scenarios and print one table.
    #[arg(long)]
    pub matrix: bool,
    /// After the check, serve the Explorer at the last state of its counterexample (the first
    /// violated safety property's, or --property's), as `insync explore --path` does.
    #[arg(long, conflicts_with = "matrix")]
    pub explore: bool,
    /// With --explore: the address to serve the Explorer on (default 127.0.0.1:3000).
    #[arg(long, requires = "explore")]
    pub addr: Option<String>,
    /// With --explore: open this property's path instead (a violated safety property's
    /// counterexample, or a reached `sometimes` property's example).
    #[arg(long, requires = "explore")]
    pub property: Option<String>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' reports (JSON files written by `insync check ... --json`).
    #[arg(required = true)]
    pub reports: Vec<std::path::PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to serve the Explorer on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: String,
    /// Open at the last state of a counterexample: the JSON report of `insync check --json`
    /// with the same configuration flags (its first violated property), or a file holding
    /// Explorer action indices such as 0/3/1.
    #[arg(long)]
    pub path: Option<std::path::PathBuf>,
    /// With a --path report: open this property's path instead of the first violated safety
    /// property's (a violated safety property's counterexample, or a reached `sometimes`
    /// property's example).
    #[arg(long, requires = "path")]
    pub property: Option<String>,
}

/// Runs a command; the result is the process exit code (PROTOCOL.md §4: 0 safe within the
/// bounds, 1 violated, 2 bad usage, 3 no violation but the search was cut short).
pub fn run_command(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Check(args) if args.matrix => run_matrix(&args),
        Command::Check(args) => run_check(&args),
        Command::Explore(args) => run_explore(&args),
        Command::Run(args) => run_engine(&args),
        Command::Format(args) => run_format(&args),
        Command::Broker(args) => {
            let served = crate::engine::Served::Broker(insync_model::types::BrokerId(args.id));
            let kafka = args
                .kafka_listen
                .as_deref()
                .map(|listen| (listen, &*args.kafka_topic));
            run_server(&args.serve, served, kafka)
        }
        Command::Controller(args) => run_server(&args, crate::engine::Served::Controller, None),
        Command::Merge(args) => run_merge(&args),
        Command::External(args) => run_external(&args),
    }
}

/// `insync <command> ...` for a command built as its own program, `insync-<command>`, next to
/// this executable (as git does).
fn run_external(args: &[String]) -> anyhow::Result<u8> {
    let Some((command, rest)) = args.split_first() else {
        bail!("no command given; see insync --help");
    };
    let program = format!("insync-{command}");
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&program)))
        .filter(|path| path.exists());
    let Some(path) = sibling else {
        bail!(
            "unknown command `{command}`: no `{program}` next to this executable; see insync --help \
             (for `insync fuzz`, build the workspace: cargo build --release --workspace)"
        );
    };
    let status = std::process::Command::new(&path)
        .args(rest)
        .status()
        .with_context(|| format!("running {}", path.display()))?;
    Ok(status.code().map_or(2, |c| u8::try_from(c).unwrap_or(2)))
}

/// Writes a command's output to stdout. A reader that went away (`insync ... | head`, EPIPE)
/// ends the output quietly instead of a panic; the command's exit code stays its verdict.
fn write_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("insync: writing the output: {e}");
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default level.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: a log redirected to a file stays plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Most producers one engine hosts.
pub const PRODUCERS_MAX: usize = 64;

fn checked_producers(producers: usize) -> anyhow::Result<usize> {
    if producers == 0 || producers > PRODUCERS_MAX {
        bail!(UsageError::InvalidConfig(format!("producers ({producers}) must be between 1 and {PRODUCERS_MAX}; set --producers in that range")));
    }
    Ok(producers)
}

/// `insync format`: writes the data directory's identity.
fn run_format(args: &FormatArgs) -> anyhow::Result<u8> {
    use crate::disk::{DiskStorage, Formatted, Identity, StorageNode};
    let node = match args.node_id {
        Some(id) => StorageNode::Broker(id),
        None => StorageNode::Controller,
    };
    let identity = Identity::new(&args.cluster_id, node).map_err(|e| {
        anyhow::anyhow!(UsageError::InvalidConfig(format!("{e}; set --cluster-id")))
    })?;
    let dir = args.data_dir.display();
    match DiskStorage::format(&args.data_dir, &identity)? {
        Formatted::Created => write_out(&format!("formatted {dir} for {identity}\n")),
        Formatted::AlreadyFormatted => write_out(&format!(
            "{dir} is already formatted for {identity}; nothing changed\n"
        )),
    }
    Ok(0)
}

/// `insync broker` and `insync controller`; `kafka` is a broker's `--kafka-listen` and
/// `--kafka-topic`.
fn run_server(
    args: &ServeArgs,
    served: crate::engine::Served,
    kafka: Option<(&str, &str)>,
) -> anyhow::Result<u8> {
    init_logging("info");
    let command = match served {
        crate::engine::Served::Broker(_) => "broker",
        crate::engine::Served::Controller => "controller",
    };
    args.config.reject_model_only(command)?;
    if args.config.given("records") {
        bail!(UsageError::InvalidConfig(format!("--records is the client's: `insync run --connect --records N`; drop it from `insync {command}`")));
    }
    if args.cluster_id.is_some() && args.data_dir.is_none() {
        bail!(UsageError::InvalidConfig("--cluster-id names the cluster a --data-dir was formatted for; give --data-dir too, or drop --cluster-id".to_string()));
    }
    let config = args
        .config
        .engine_config()
        .validate()
        .map_err(UsageError::Config)?;
    let addrs = args.cluster.addrs(args.cluster_id.as_deref())?;
    let options = crate::engine::EngineOptions {
        seed: args.seed,
        data_dir: args.data_dir.clone(),
        cluster_id: args.cluster_id.clone(),
        producers: checked_producers(args.producers)?,
        ..crate::engine::EngineOptions::default()
    };
    let kafka = match kafka {
        Some((listen, topic)) => Some(crate::kafka::KafkaOptions {
            listen: crate::kafka::KafkaOptions::parse_listen(listen, config.replicas)?,
            topic: topic.to_string(),
        }),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(crate::engine::serve_node(
        config, options, served, addrs, kafka,
    ))?;
    Ok(0)
}

/// Most records one `insync run` sends.
pub const RUN_RECORDS_MAX: u64 = 100_000_000;
/// Largest record `insync run` sends: 1 MiB, which Kafka's default `message.max.bytes`
/// ([`insync_model::limits::SizeLimits::KAFKA`]) takes with a record's overhead.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;
const _: () = assert!(
    RECORD_BYTES_MAX + insync_model::limits::RECORD_OVERHEAD_BYTES
        <= insync_model::limits::SizeLimits::KAFKA.message_bytes_max
);
/// Most payload bytes one in-process run holds (every replica keeps the whole log in memory).
pub const RUN_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

/// Checks `--record-size` against what the run can carry: at most `message.max.bytes` per
/// record (fetches are sized in bytes, so any such record crosses the network), and `records`
/// of it in memory.
fn checked_record_size(size: usize, records: u64, connect: bool) -> anyhow::Result<usize> {
    use crate::run::RECORD_BYTES_MIN;
    let max = RECORD_BYTES_MAX;
    if !(RECORD_BYTES_MIN..=max).contains(&size) {
        bail!(UsageError::InvalidConfig(format!(
            "--record-size {size} must be between {RECORD_BYTES_MIN} (the record's \
             index and the run's id) and {max} (message.max.bytes less a record's overhead); set \
             it in that range"
        )));
    }
    let total = records.saturating_mul(size as u64);
    if !connect && total > RUN_BYTES_MAX {
        bail!(UsageError::InvalidConfig(format!(
            "--records {records} of --record-size {size} is {total} bytes; an \
             in-process run holds every replica's log in memory, at most {RUN_BYTES_MAX} bytes; \
             lower --records or --record-size"
        )));
    }
    Ok(size)
}

fn run_engine(args: &RunArgs) -> anyhow::Result<u8> {
    if args.consumers != 1 {
        bail!(
            UsageError::InvalidConfig(format!("the engine hosts one consumer (one group reading the partition) so far, got --consumers {}; use --consumers 1",
            args.consumers)));
    }
    let producers = checked_producers(args.producers)?;
    let records = if args.config.given("records") {
        u64::from(args.config.to_config().records)
    } else {
        20_000
    };
    if records == 0 || records > RUN_RECORDS_MAX {
        bail!(UsageError::InvalidConfig(format!("records ({records}) must be between 1 and {RUN_RECORDS_MAX}; set --records in that range")));
    }
    args.config.reject_model_only("run")?;
    let record_size = checked_record_size(args.record_size, records, args.connect)?;
    let config = args
        .config
        .engine_config()
        .validate()
        .map_err(UsageError::Config)?;
    init_logging("warn");
    if let Some(listen) = &args.kafka_listen {
        return serve_kafka(args, config, listen, producers);
    }
    let connect = if args.connect {
        if args.data_dir.is_some() {
            bail!(UsageError::InvalidConfig("--data-dir stores an in-process cluster's logs; with --connect the brokers keep theirs (`insync broker --data-dir`); drop --data-dir".to_string()));
        }
        if !args.faults.is_empty() {
            bail!(UsageError::InvalidConfig("--faults act on an in-process cluster; with --connect, inject faults by stopping and starting the broker processes".to_string()));
        }
        Some(args.cluster.addrs(None)?)
    } else {
        None
    };
    let options = crate::run::RunOptions {
        connect,
        records,
        record_size,
        faults: args.faults.clone(),
        seed: args.seed,
        progress: !args.json,
        engine: crate::engine::EngineOptions {
            seed: args.seed,
            data_dir: args.data_dir.clone(),
            producers,
            ..crate::engine::EngineOptions::default()
        },
        virtual_clock: args.virtual_clock,
        ..crate::run::RunOptions::default()
    };
    let runtime = if args.virtual_clock {
        crate::engine::paused_runtime()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
    .context("starting tokio")?;
    let report = runtime.block_on(crate::run::run(config, options))?;
    if args.json {
        write_out(&format!("{}\n", serde_json::to_string(&report)?));
    } else {
        write_out(&crate::run::render_run_report(&report));
    }
    Ok(run_exit_code(&report))
}

/// `insync run --kafka-listen`: an in-process cluster serving Kafka clients for `--duration`.
fn serve_kafka(
    args: &RunArgs,
    config: insync_model::ValidConfig,
    listen: &str,
    producers: usize,
) -> anyhow::Result<u8> {
    if args.connect {
        bail!(UsageError::InvalidConfig(
            "--kafka-listen serves an in-process cluster; drop --connect".to_string()
        ));
    }
    if args.duration == 0 || args.duration > 24 * 3600 {
        bail!(UsageError::InvalidConfig(format!(
            "--duration ({}) must be between 1 and 86400 seconds",
            args.duration
        )));
    }
    let listen = crate::kafka::KafkaOptions::parse_listen(listen, config.replicas)?;
    let options = crate::run::KafkaServeOptions {
        kafka: crate::kafka::KafkaOptions {
            listen,
            topic: args.kafka_topic.clone(),
        },
        duration: std::time::Duration::from_secs(args.duration),
        faults: args.faults.clone(),
        fault_duration: crate::run::RunOptions::default().fault_duration,
        engine: crate::engine::EngineOptions {
            seed: args.seed,
            data_dir: args.data_dir.clone(),
            producers,
            ..crate::engine::EngineOptions::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let report = runtime.block_on(crate::run::serve_kafka(config, options))?;
    if args.json {
        write_out(&format!("{}\n", serde_json::to_string(&report)?));
    } else {
        write_out(&crate::run::render_kafka(&report));
    }
    Ok(0)
}

/// `insync run`'s verdict as an exit code: 1 if an acknowledged record was lost; 3 if no
/// record was acknowledged at all (the run shows nothing either way); else 0.
#[must_use]
pub fn run_exit_code(report: &crate::run::RunReport) -> u8 {
    if report.lost > 0 {
        1
    } else if report.acknowledged == 0 {
        eprintln!(
            "insync: no record was acknowledged, so the run proves nothing; is the cluster up \
             (with --connect: are the brokers and controller reachable)?"
        );
        3
    } else {
        0
    }
}

fn options_from(args: &CheckArgs) -> CheckOptions {
    let mut options = CheckOptions {
        strategy: args.strategy,
        max_depth: args.max_depth,
        seed: args.seed,
        max_states: args.max_states,
        timeout: args.timeout,
        progress: true,
        symmetry: !args.no_symmetry,
        ..CheckOptions::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads;
    }
    if let Some(shard) = args.shard {
        options.shard = shard;
    }
    options.walks = args.walks;
    if args.strategy == Strategy::Simulation
        && options.max_states.is_none()
        && args.walks.is_none()
        && args.timeout.is_none()
    {
        options.max_states = Some(1_000_000);
    }
    if args.first {
        options.stop_at = Some(safety_names());
        if args.strategy == Strategy::Bfs && args.threads.is_none() {
            // Several BFS threads do not finish a level together; one finds the shortest.
            options.threads = 1;
        }
    }
    options
}

/// A length of time: plain seconds (`60`) or a number with a unit (`500ms`, `90s`, `2m`, `1h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write seconds (60) or 90s, 2m, 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

fn safety_names() -> BTreeSet<Property> {
    insync_model::properties::all()
        .into_iter()
        .filter(|p| p.expectation == stateright::Expectation::Always)
        .map(|p| p.property)
        .collect()
}

fn run_check(args: &CheckArgs) -> anyhow::Result<u8> {
    let config = args
        .config
        .to_config()
        .validate()
        .map_err(UsageError::Config)?;
    if let Some(name) = &args.property {
        known_property(name)?;
    }
    if (args.shard.is_some() || args.walks.is_some()) && args.strategy != Strategy::Simulation {
        bail!(UsageError::InvalidConfig("--shard and --walks divide random walks; add --strategy simulation (exhaustive searches cannot be split this way)".to_string()));
    }
    if args.walks == Some(0) {
        bail!(UsageError::InvalidConfig(
            "--walks 0 takes no walk; give at least 1".to_string()
        ));
    }
    let options = options_from(args);
    let report = match args.budget {
        Some(budget) => crate::budget::check_within_budget(&config, &options, budget),
        None => check(&config, &options),
    };
    if args.json {
        write_out(&format!("{}\n", serde_json::to_string(&report)?));
    } else {
        write_out(&render_human(&report));
    }
    if args.explore {
        std::io::Write::flush(&mut std::io::stdout())?;
        // With --budget the report may be of a smaller scope than the flags: explore that one.
        let checked = report
            .config
            .clone()
            .validate()
            .map_err(UsageError::Config)?;
        let from = crate::explore::OpenFrom::Report(serde_json::to_value(&report)?);
        let addr = args.addr.as_deref().unwrap_or(EXPLORER_ADDR);
        return open_explorer(checked, addr, Some((from, args.property.as_deref())));
    }
    Ok(report.exit_code())
}

/// `insync merge`: one report from the shards' reports. Exit 1 if a shard found a
/// counterexample, else 3 (random walks never exhaust the space); 2 on reports that do not
/// belong together.
fn run_merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let mut reports = Vec::new();
    for path in &args.reports {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
        let report: CheckReport = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{file} is not a JSON report of `insync check --json`: {e}")
        })?;
        reports.push((file, report));
    }
    let merged = crate::simulate::merge(reports).map_err(anyhow::Error::msg)?;
    if args.json {
        write_out(&format!("{}\n", serde_json::to_string(&merged)?));
    } else {
        write_out(&render_human(&merged));
    }
    Ok(merged.exit_code())
}

/// Refuses a property name the model does not have, before any search.
fn known_property(name: &str) -> anyhow::Result<()> {
    match name.parse::<Property>() {
        Ok(_) => Ok(()),
        Err(e) => bail!("--property {name}: {e}"),
    }
}

fn run_matrix(args: &CheckArgs) -> anyhow::Result<u8> {
    let rows = crate::matrix::check_catalogue(args.threads)?;
    if args.json {
        write_out(&format!(
            "{}\n",
            serde_json::to_string(&crate::matrix::matrix_json(&rows))?
        ));
    } else {
        write_out(&crate::matrix::render_matrix(&Property::ALL, &rows));
    }
    Ok(crate::matrix::matrix_exit_code(&rows))
}

/// Where `check --explore` serves the Explorer unless `--addr` says otherwise (as `explore`).
const EXPLORER_ADDR: &str = "127.0.0.1:3000";

fn run_explore(args: &ExploreArgs) -> anyhow::Result<u8> {
    let config = args
        .config
        .to_config()
        .validate()
        .map_err(UsageError::Config)?;
    if let Some(name) = &args.property {
        known_property(name)?;
    }
    let open = args.path.as_ref().map(|file| {
        (
            crate::explore::OpenFrom::File(file.clone()),
            args.property.as_deref(),
        )
    });
    open_explorer(config, &args.addr, open)
}

/// Serves the Explorer for `config`, opened at the last state of a path when one is given:
/// `insync explore [--path]` and `insync check --explore` both end here.
fn open_explorer(
    config: insync_model::ValidConfig,
    addr: &str,
    open: Option<(crate::explore::OpenFrom, Option<&str>)>,
) -> anyhow::Result<u8> {
    let summary = config.summary();
    let model = crate::explore::ExplorerModel::new(Insync::new(config.clone()).into_model());
    let opened = match open {
        Some((from, property)) => Some(crate::explore::open(
            from,
            property,
            &model,
            &config.clone().into_inner(),
        )?),
        None => None,
    };
    eprintln!("Explorer for {summary} at http://{addr}/");
    if let Some(o) = &opened {
        eprintln!(
            "opening {} ({} steps) at http://{addr}/#/steps/{}",
            o.describe(),
            o.indices.len() - 1,
            o.encoded()
        );
    }
    crate::explore::serve_explorer(model, addr, summary, opened)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunReport;

    fn config_args(flags: &[&str]) -> ConfigArgs {
        let args = ["insync", "check"].iter().chain(flags);
        match Cli::try_parse_from(args).expect("parses") {
            Cli {
                command: Command::Check(check),
            } => check.config,
            other => unreachable!("{other:?}"),
        }
    }

    /// Every field of `Config` is a flag whose default is `Config::default()`'s, and only the
    /// flags given count as given (what `--kafka`'s layering and the engine's refusals read).
    #[test]
    fn the_configuration_flags_are_the_configurations_fields() {
        let none = config_args(&[]);
        assert_eq!(none.to_config(), Config::default());
        assert!(none.given.is_empty(), "{:?}", none.given);
        let fields: Vec<String> = config_fields()
            .map(|a| a.get_id().as_str().to_string())
            .collect();
        let json = serde_json::to_value(Config::default()).expect("serializes");
        for key in json.as_object().expect("an object").keys() {
            assert!(fields.contains(key), "{key} is not a flag");
        }
        let some = config_args(&["--records", "2", "--no-consumer", "--elr", "false"]);
        let given: Vec<&str> = some.given.iter().map(String::as_str).collect();
        assert_eq!(given, ["consumer", "elr", "records"]);
        // Given at its default value, a flag still overrides a release's setting.
        let release = config_args(&["--kafka", "4.1", "--elr", "false", "--hw-rule", "isr"]);
        assert!(!release.to_config().elr);
        assert!(release.to_config().idempotence, "4.1's, not overridden");
    }

    #[test]
    fn a_run_that_acknowledged_nothing_is_not_a_pass() {
        let report = |acknowledged, lost| RunReport {
            records: 10,
            acknowledged,
            lost,
            ..RunReport::default()
        };
        assert_eq!(run_exit_code(&report(10, 0)), 0);
        assert_eq!(run_exit_code(&report(10, 2)), 1);
        assert_eq!(run_exit_code(&report(0, 0)), 3);
    }
}
