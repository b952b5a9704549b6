//! Command-line arguments (PROTOCOL.md §4) and what each command does.

use crate::check::{check, render_human, CheckOptions, CheckReport, Strategy};
use crate::error::UsageError;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use insync_model::config::{
    Acks, ConsumerCommit, Flush, Guard, HwRule, NetworkKind, RestartedBroker, Truncation,
};
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

/// The configuration of the partition, its clients and the model's bounds.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// replication.factor (1..=5).
    #[arg(long, default_value_t = Config::default().replicas)]
    pub replicas: usize,
    /// min.insync.replicas.
    #[arg(long, default_value_t = Config::default().min_insync)]
    pub min_insync: usize,
    /// A Kafka release whose replication protocol and producer defaults to use (0.10, 0.11,
    /// 2.0, 2.1, 2.8, 3.6, 4.0, 4.1; see the README's table). Explicit flags override it.
    #[arg(long)]
    pub kafka: Option<KafkaVersion>,
    /// Producer acks: 0, 1 or all [default: all, or the --kafka release's].
    #[arg(long)]
    pub acks: Option<Acks>,
    /// unclean.leader.election.enable.
    #[arg(long)]
    pub unclean_election: bool,
    /// The protocol generation of follower truncation, oldest first: high-watermark (before
    /// 0.11), kip-101 (0.11), kip-279 (2.0), kip-320-first-try, kip-320 (2.1), leader-epoch
    /// (today's Kafka) [default: leader-epoch, or the --kafka release's].
    #[arg(long)]
    pub truncation: Option<Truncation>,
    /// What a broker restart does to its ISR membership: leaves-isr (KRaft, ZooKeeper since
    /// 2.2, KIP-380) or keeps-isr (ZooKeeper before 2.2) [default: leaves-isr, or the --kafka
    /// release's].
    #[arg(long)]
    pub restarted_broker: Option<RestartedBroker>,
    /// KIP-966 eligible leader replicas (needs --hw-rule min-isr); `--elr false` turns off a
    /// --kafka release's.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub elr: Option<bool>,
    /// High-watermark rule: isr or min-isr (KIP-966) [default: isr, or the --kafka release's].
    #[arg(long)]
    pub hw_rule: Option<HwRule>,
    /// Log flush policy: always or async.
    #[arg(long, default_value_t = Config::default().flush)]
    pub flush: Flush,
    /// Records the producer sends (default: 2 for check and explore, 20000 for run).
    #[arg(long)]
    pub records: Option<u64>,
    /// Model bound: crashes of brokers and the consumer over the whole run [default: 1] (the
    /// engine injects crashes with `insync run --faults`).
    #[arg(long)]
    pub crashes: Option<u32>,
    /// Producer retries [default: 1, or the --kafka release's].
    #[arg(long)]
    pub retries: Option<u32>,
    /// enable.idempotence; `--idempotence false` turns off a --kafka release's.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub idempotence: Option<bool>,
    /// max.in.flight.requests.per.connection [default: 1, or the --kafka release's].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// The model's network: reliable (per-connection FIFO), lossy, or duplicating [default:
    /// reliable] (the engine's network is real; `insync run --faults` disturbs it).
    #[arg(long)]
    pub network: Option<NetworkKind>,
    /// Consumer commits its offset after or before processing a batch.
    #[arg(long, default_value_t = Config::default().consumer_commit)]
    pub consumer_commit: ConsumerCommit,
    /// Model bound: leader elections after the initial one [default: 1].
    #[arg(long)]
    pub elections: Option<u32>,
    /// Model bound: ISR changes beyond those elections make [default: 1].
    #[arg(long)]
    pub isr_changes: Option<u32>,
    /// Leave the consumer out (a smaller state space).
    #[arg(long)]
    pub no_consumer: bool,
    /// Explore without the checker's state-space reductions (to compare verdicts; slower).
    #[arg(long)]
    pub no_reductions: bool,
    /// Remove one of Kafka's protocol rules, to see what it protects (a mutant, not a Kafka
    /// configuration): fetch-epoch-fencing, fetch-response-fencing, isr-join-high-watermark,
    /// isr-join-epoch-start, maximal-isr, incarnation, leader-and-isr-epoch,
    /// not-enough-replicas, not-enough-replicas-after-append, stale-broker-epoch.
    #[arg(long)]
    pub without_guard: Option<Guard>,
}

impl ConfigArgs {
    /// Refuses the flags that only bound or shape the model's search, which the engine
    /// (`run`, `broker`, `controller`) would otherwise silently ignore.
    fn reject_model_only(&self, command: &str) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            (self.crashes.is_some(), "--crashes"),
            (self.elections.is_some(), "--elections"),
            (self.isr_changes.is_some(), "--isr-changes"),
            (self.network.is_some(), "--network"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            bail!(UsageError::InvalidConfig(format!(
                "{} only bound{} the model checker's search; `insync {command}` runs \
                 the real engine, whose crashes, elections and network are real (inject faults \
                 with `insync run --faults`); drop {}",
                given.join(", "),
                if given.len() == 1 { "s" } else { "" },
                if given.len() == 1 { "it" } else { "them" }
            )));
        }
        Ok(())
    }

    /// The configuration for the model (`check`, `explore`).
    pub fn to_config(&self) -> Config {
        let records = self.records.unwrap_or(u64::from(Config::default().records));
        Config {
            records: u32::try_from(records).unwrap_or(u32::MAX),
            ..self.base_config()
        }
    }

    /// The contract's defaults, then the `--kafka` release's settings, then explicit flags.
    fn base_config(&self) -> Config {
        let defaults = Config::default();
        let release = match self.kafka {
            Some(v) => v.profile().apply(defaults),
            None => defaults,
        };
        // As Kafka's producer does since 3.2 (KAFKA-13598): idempotence that was only a
        // default gives way to an explicit acks other than all or retries=0.
        let explicit_conflict =
            self.acks.is_some_and(|a| a != Acks::All) || self.retries == Some(0);
        let idempotence = self
            .idempotence
            .unwrap_or(release.idempotence && !explicit_conflict);
        Config {
            replicas: self.replicas,
            min_insync: self.min_insync,
            acks: self.acks.unwrap_or(release.acks),
            unclean_election: self.unclean_election,
            truncation: self.truncation.unwrap_or(release.truncation),
            hw_rule: self.hw_rule.unwrap_or(release.hw_rule),
            flush: self.flush,
            restarted_broker: self.restarted_broker.unwrap_or(release.restarted_broker),
            elr: self.elr.unwrap_or(release.elr),
            records: 1,
            crashes: self.crashes.unwrap_or(release.crashes),
            retries: self.retries.unwrap_or(release.retries),
            idempotence,
            max_in_flight: self.max_in_flight.unwrap_or(release.max_in_flight),
            network: self.network.unwrap_or(release.network),
            consumer_commit: self.consumer_commit,
            elections: self.elections.unwrap_or(release.elections),
            isr_changes: self.isr_changes.unwrap_or(release.isr_changes),
            consumer: !self.no_consumer,
            batch_records: 1,
            reductions: !self.no_reductions,
            without_guard: self.without_guard.or(release.without_guard),
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
    if args.config.records.is_some() {
        bail!(UsageError::InvalidConfig(format!("--records is the client's: `insync run --connect --records N`; drop it from `insync {command}`")));
    }
    if args.cluster_id.is_some() && args.data_dir.is_none() {
        bail!(UsageError::InvalidConfig("--cluster-id names the cluster a --data-dir was formatted for; give --data-dir too, or drop --cluster-id".to_string()));
    }
    let config = args
        .config
        .base_config()
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
    let records = args.config.records.unwrap_or(20_000);
    if records == 0 || records > RUN_RECORDS_MAX {
        bail!(UsageError::InvalidConfig(format!("records ({records}) must be between 1 and {RUN_RECORDS_MAX}; set --records in that range")));
    }
    args.config.reject_model_only("run")?;
    let record_size = checked_record_size(args.record_size, records, args.connect)?;
    let config = args
        .config
        .base_config()
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

/// The `insync check` flags that give `config` (those that differ from the defaults, in the
/// order of `--help`): `insync check $(config_flags(c))` checks exactly `c`. Scenario files
/// (`model/testdata`) write their configuration this way, so it can be pasted into a shell.
pub fn config_flags(config: &Config) -> Vec<String> {
    /// How a field is written: `--flag VALUE`; `--flag` when true (a switch); `--flag` when
    /// false (`--no-consumer`); `--flag` or `--flag false` (an optional boolean).
    enum Kind {
        Value,
        Switch,
        Negated,
        Bool,
    }
    use Kind::*;
    const FIELDS: [(&str, &str, Kind); 22] = [
        ("replicas", "replicas", Value),
        ("min_insync", "min-insync", Value),
        ("acks", "acks", Value),
        ("unclean_election", "unclean-election", Switch),
        ("truncation", "truncation", Value),
        ("restarted_broker", "restarted-broker", Value),
        ("elr", "elr", Bool),
        ("hw_rule", "hw-rule", Value),
        ("flush", "flush", Value),
        ("records", "records", Value),
        ("crashes", "crashes", Value),
        ("retries", "retries", Value),
        ("idempotence", "idempotence", Bool),
        ("max_in_flight", "max-in-flight", Value),
        ("network", "network", Value),
        ("consumer_commit", "consumer-commit", Value),
        ("elections", "elections", Value),
        ("isr_changes", "isr-changes", Value),
        ("consumer", "no-consumer", Negated),
        ("reductions", "no-reductions", Negated),
        ("without_guard", "without-guard", Value),
        // Not a flag: `insync check` always sends one record per request.
        ("batch_records", "", Value),
    ];
    let json = |c: &Config| serde_json::to_value(c).unwrap_or_default();
    let (given, defaults) = (json(config), json(&Config::default()));
    let mut flags = Vec::new();
    for (field, flag, kind) in FIELDS {
        let value = &given[field];
        if flag.is_empty() || *value == defaults[field] || value.is_null() {
            continue;
        }
        flags.push(format!("--{flag}"));
        match (kind, value) {
            (Value, serde_json::Value::String(s)) => flags.push(s.clone()),
            (Value, other) => flags.push(other.to_string()),
            (Bool, serde_json::Value::Bool(false)) => flags.push("false".into()),
            (Switch | Negated | Bool, _) => {}
        }
    }
    flags
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
