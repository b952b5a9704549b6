//! The real engine: the model's actors (brokers, controller, producer, consumer) hosted by
//! [`crate::runtime`] on tokio, with real timers, storage and a faulty network, and a client
//! API for applications.
//!
//! The engine contains no protocol logic: it builds the same `Node` actors the checker
//! explores (with the engine's [`ActorParams`]: heartbeats, an application endpoint, Kafka's
//! caught-up lag rule), and it talks to them only through messages.

use crate::disk::brokers::BrokerDisks;
use crate::disk::faults::{self, Damage, DamagedFile, FlipRegion};
use crate::disk::{DiskStorage, Identity, OpenMode, StorageNode};
use crate::error::UsageError;
use crate::runtime::{MemoryStorage, Route, Runtime, RuntimeConfig, StorageBackend};
use crate::tcp::{ClusterAddrs, Transport};
use insync_model::consumer::ReadRecord;
use insync_model::limits::{SizeLimits, RECORD_OVERHEAD_BYTES};
use insync_model::log::Log;
use insync_model::msg::{AppMsg, Msg};
use insync_model::node::{ActorParams, Insync, NodeStorage, Topology};
use insync_model::producer::Outcome;
use insync_model::types::{BrokerId, CorrelationId, Offset, Value};
use insync_model::{Node, ValidConfig};
use stateright::actor::Id;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use std::time::Duration;
// tokio's clock: on a paused clock (`insync run --virtual-clock`) latencies are virtual.
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How the engine runs, beyond the partition's configuration.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Seeds timers, random choices and network faults.
    pub seed: u64,
    /// File-backed storage here; in memory when absent. An in-process cluster formats an
    /// empty directory itself; a server process ([`serve_node`]) needs one `insync format` made.
    pub data_dir: Option<PathBuf>,
    /// The cluster id `data_dir` is formatted for: required by [`serve_node`]; an in-process
    /// cluster uses [`IN_PROCESS_CLUSTER_ID`] when absent.
    pub cluster_id: Option<String>,
    /// Most records in one fetch response.
    pub fetch_records_max: usize,
    /// Byte limits on produce requests and fetch responses (Kafka's `message.max.bytes`,
    /// `replica.fetch.max.bytes`, `fetch.max.bytes`; see [`insync_model::limits`]). Each must
    /// be at most [`LIMIT_BYTES_MAX`], so that a request or response fits one wire frame.
    pub limits: SizeLimits,
    /// Most records in one produce request.
    pub batch_records: usize,
    /// Producer actors (each with its own producer id and connection to the leader).
    pub producers: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            seed: 0,
            data_dir: None,
            cluster_id: None,
            fetch_records_max: 2000,
            limits: SizeLimits::KAFKA,
            batch_records: 500,
            producers: 1,
        }
    }
}

/// Largest byte limit [`EngineOptions::limits`] may set: a fetch response holds at most its
/// limit, or one record within `message.max.bytes`, plus framing, and must fit one wire frame
/// ([`crate::wire::FRAME_BYTES_MAX`]).
pub const LIMIT_BYTES_MAX: usize = crate::wire::FRAME_BYTES_MAX as usize / 4;

/// Refuses record counts of zero, and byte limits that a wire frame could not carry or that
/// no record could meet.
fn check_options(options: &EngineOptions) -> anyhow::Result<()> {
    let counts = [
        (
            "batch_records (records per produce request)",
            options.batch_records,
        ),
        (
            "fetch_records_max (records per fetch)",
            options.fetch_records_max,
        ),
    ];
    for (name, count) in counts {
        if count == 0 {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "{name} is 0; set it to 1 or more"
            )));
        }
    }
    let limits = &options.limits;
    let named = [
        ("message.max.bytes", limits.message_bytes_max),
        ("replica.fetch.max.bytes", limits.replica_fetch_bytes_max),
        ("fetch.max.bytes", limits.fetch_bytes_max),
    ];
    for (name, bytes) in named {
        if !(RECORD_OVERHEAD_BYTES < bytes && bytes <= LIMIT_BYTES_MAX) {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "{name} is {bytes} bytes; it must be more than \
                 {RECORD_OVERHEAD_BYTES} (a record's overhead) and at most {LIMIT_BYTES_MAX} \
                 (a quarter of the largest network frame)"
            )));
        }
    }
    Ok(())
}

/// The cluster id of an in-process cluster's data directory when none is given.
pub const IN_PROCESS_CLUSTER_ID: &str = "in-process";

/// Segment files as the runtime's storage.
impl StorageBackend<NodeStorage> for DiskStorage {
    fn save(&self, id: Id, storage: &NodeStorage) -> Result<(), crate::runtime::StorageError> {
        DiskStorage::save(self, usize::from(id), storage)
            .map_err(crate::runtime::StorageError::from)
    }

    /// Files and fsyncs: the runtime calls it on blocking threads.
    fn is_blocking(&self) -> bool {
        true
    }

    fn load(&self, id: Id) -> Result<Option<NodeStorage>, crate::runtime::StorageError> {
        DiskStorage::load(self, usize::from(id))
            .map(|found| {
                found.map(|(storage, recovery)| {
                    if recovery.truncated_bytes > 0 {
                        tracing::warn!(actor = usize::from(id), ?recovery, "segment recovered");
                    }
                    storage
                })
            })
            .map_err(crate::runtime::StorageError::from)
    }
}

/// Waiting senders, by correlation id.
type Pending = Arc<Mutex<HashMap<CorrelationId, oneshot::Sender<(Outcome, Instant)>>>>;

/// A send's identity: the producer it went through (for reports) and the correlation id the
/// cluster gave it. The id travels with the record in `Send` and comes back in the
/// `SendResult` that names it, so the engine needs no count of its own of what each producer
/// took, and a send the producer did not take (its mailbox closed), or a producer restarted
/// with none of its records, cannot make one send's outcome resolve another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SendId {
    pub producer: usize,
    /// Unique within the cluster, in the order sends began.
    pub correlation: CorrelationId,
}

/// What became of a send: its correlation id, its outcome (its offset, or the Kafka-named
/// error; a timeout is `Indeterminate`) and when the application learned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub id: SendId,
    pub outcome: Outcome,
    pub at: Instant,
}

/// A send on its way ([`Cluster::send`]): its correlation id now, what became of it when
/// awaited. A cluster shut down before answering resolves it `Indeterminate`
/// (`REQUEST_TIMED_OUT`): the record may or may not be in the log.
pub struct SendTicket {
    id: SendId,
    answer: Answer,
}

enum Answer {
    Waiting(oneshot::Receiver<(Outcome, Instant)>),
    /// Known at once: the producer did not take the record.
    Now(Option<(Outcome, Instant)>),
}

impl SendTicket {
    pub fn id(&self) -> SendId {
        self.id
    }
}

impl std::future::Future for SendTicket {
    type Output = Resolved;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Resolved> {
        let id = self.id;
        let (outcome, at) = match &mut self.answer {
            Answer::Now(known) => known.take().unwrap_or_else(gone),
            Answer::Waiting(rx) => match std::pin::Pin::new(rx).poll(cx) {
                std::task::Poll::Pending => return std::task::Poll::Pending,
                std::task::Poll::Ready(answer) => answer.unwrap_or_else(|_| gone()),
            },
        };
        std::task::Poll::Ready(Resolved { id, outcome, at })
    }
}

/// The outcome of a send whose answer can no longer come.
fn gone() -> (Outcome, Instant) {
    (
        Outcome::Indeterminate(insync_model::msg::ErrorCode::RequestTimedOut),
        Instant::now(),
    )
}

/// One record the consumer handed over, and when the application got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub record: ReadRecord,
    pub at: Instant,
}

/// A running cluster: brokers, controller, producer and consumer. In-process, every actor
/// runs here; connected ([`Cluster::connect`]), only the producer and consumer do, and the
/// brokers and controller are other processes ([`serve_node`]).
pub struct Cluster {
    runtime: Arc<Runtime<Node>>,
    /// The connections to the other processes, when the cluster is not all here.
    transport: Option<Arc<Transport>>,
    topology: Topology,
    app: Id,
    /// The correlation id of the next send, through any producer: ids are never reused, so a
    /// late `SendResult` can only name its own sends.
    next_correlation: std::sync::atomic::AtomicU64,
    pending: Pending,
    delivered: Arc<Delivered>,
    /// The data directory's storage, when there is one.
    disk: Option<Arc<DiskStorage>>,
    /// Outside parties with ids of their own (the Kafka listener's connections).
    endpoints: Arc<Endpoints>,
    /// The brokers' fault-injecting disks ([`ClusterBuilder::broker_disks`]).
    broker_disks: Option<Arc<BrokerDisks>>,
}

/// A send's waiter until its record is handed to the producer: dropped before that (the
/// send failed, or its future was cancelled), it removes the waiter from the pending map.
struct Unhanded<'a> {
    pending: &'a Pending,
    correlation: CorrelationId,
    /// The producer took the record: its answer resolves the waiter.
    handed: bool,
}

impl Drop for Unhanded<'_> {
    fn drop(&mut self) {
        if self.handed {
            return;
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&self.correlation);
        }
    }
}

/// Outside parties that talk to the actors under ids of their own, as a client connection
/// talks to a broker: what an actor sends to such an id reaches that endpoint's mailbox. Ids
/// are never reused within a process, so a late answer meant for a closed endpoint is
/// dropped, never misread. A restarted broker process numbers its endpoints from the start
/// of its block again, so a controller's answer to the previous process may reach a new
/// endpoint: an `InitProducerIdResponse` carrying the same request number would hand it an
/// id allocated for a client that never received it (still an id no one else holds), a
/// `MetadataResponse` a view a moment old.
struct Endpoints {
    next: std::sync::atomic::AtomicUsize,
    /// The first id past this process's endpoint ids (see [`crate::tcp::endpoint_ids`]).
    end: usize,
    routes: Mutex<HashMap<Id, tokio::sync::mpsc::UnboundedSender<(Id, Msg)>>>,
}

impl Endpoints {
    fn new(ids: std::ops::Range<usize>) -> Arc<Endpoints> {
        Arc::new(Endpoints {
            next: std::sync::atomic::AtomicUsize::new(ids.start),
            end: ids.end,
            routes: Mutex::new(HashMap::new()),
        })
    }

    /// A new endpoint; `None` once this process has used up its ids (16,777,216 of them).
    fn endpoint(self: &Arc<Self>) -> Option<Endpoint> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if id >= self.end {
            self.next
                .store(self.end, std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        let id = Id::from(id);
        let (tx, mail) = tokio::sync::mpsc::unbounded_channel();
        self.routes.lock().expect("endpoints lock").insert(id, tx);
        Some(Endpoint {
            id,
            mail,
            endpoints: Arc::clone(self),
        })
    }

    /// Hands `msg` to endpoint `dst`'s mailbox; gives it back if `dst` is no endpoint.
    fn route(&self, dst: Id, src: Id, msg: Msg) -> Option<Msg> {
        let routes = self.routes.lock().expect("endpoints lock");
        match routes.get(&dst) {
            Some(tx) => {
                // A closed endpoint's mail is dropped, as a closed socket's would be.
                let _ = tx.send((src, msg));
                None
            }
            None => Some(msg),
        }
    }
}

/// One outside party's id and mailbox (see [`Cluster::endpoint`]). Its mailbox is unbounded
/// but holds only answers to what the endpoint itself asked, one per request (the owner asks
/// one thing at a time), and the endpoint's id is forgotten when it is dropped.
pub struct Endpoint {
    pub id: Id,
    pub mail: tokio::sync::mpsc::UnboundedReceiver<(Id, Msg)>,
    endpoints: Arc<Endpoints>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.endpoints
            .routes
            .lock()
            .expect("endpoints lock")
            .remove(&self.id);
    }
}

/// The actors one process hosts and its endpoints: what a Kafka listener talks through,
/// whether the process is an in-process cluster ([`Cluster::host`]) or one broker of a
/// cluster of processes ([`serve_node`]).
#[derive(Clone)]
pub struct Host {
    runtime: Arc<Runtime<Node>>,
    topology: Topology,
    endpoints: Arc<Endpoints>,
    /// The actor indices this process runs; messages to others cross the network.
    hosted: Arc<[usize]>,
}

impl Host {
    pub fn runtime(&self) -> &Runtime<Node> {
        &self.runtime
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Whether actor `id` runs in this process (else it is another process's, reached over
    /// TCP, and its state cannot be read here).
    pub fn hosts(&self, id: Id) -> bool {
        self.hosted.contains(&usize::from(id))
    }

    /// See [`Cluster::endpoint`].
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoints.endpoint()
    }
}

/// Records the consumer handed over and the application has not polled yet: the stream of
/// reads. The task that drains the runtime's outbox never waits (it would hold up every reply
/// behind one slow reader), so it appends here; what accumulates is bounded by the log the
/// consumer reads. With `keep` off, records are counted and dropped.
struct Delivered {
    records: Mutex<Vec<Delivery>>,
    /// Records handed over in all, kept or not.
    count: std::sync::atomic::AtomicU64,
    keep: std::sync::atomic::AtomicBool,
    arrived: tokio::sync::Notify,
}

impl Default for Delivered {
    fn default() -> Self {
        Delivered {
            records: Mutex::new(Vec::new()),
            count: Default::default(),
            keep: std::sync::atomic::AtomicBool::new(true),
            arrived: Default::default(),
        }
    }
}

impl Delivered {
    fn arrive(&self, records: &[ReadRecord]) {
        use std::sync::atomic::Ordering::Relaxed;
        self.count.fetch_add(records.len() as u64, Relaxed);
        if self.keep.load(Relaxed) {
            let at = Instant::now();
            self.records
                .lock()
                .expect("delivered lock")
                .extend(records.iter().map(|record| Delivery {
                    record: record.clone(),
                    at,
                }));
        }
        self.arrived.notify_waiters();
        self.arrived.notify_one();
    }
}

/// A disk fault [`Cluster::damage_files`] injects into a down broker's files (see
/// [`crate::disk::faults`] for what each stands for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileDamage {
    /// The segment's last write cut after `written` bytes.
    TornWrite { written: u32 },
    /// The last batch never reached the disk.
    LostFsync,
    /// One bit of a batch flipped, below or above the recovery point.
    BitFlip { region: FlipRegion, at: u32 },
    /// The segment, state or meta file gone.
    MissingFile { file: DamagedFile },
    /// One bit of the segment, state or meta file flipped.
    FileBitFlip { file: DamagedFile, at: u32 },
}

/// How [`ClusterBuilder::start`] starts a cluster, beyond the partition's configuration.
#[must_use = "a ClusterBuilder starts nothing until `.start()`"]
pub struct ClusterBuilder {
    config: ValidConfig,
    options: EngineOptions,
    connect: Option<ClusterAddrs>,
    storage: Option<Arc<dyn StorageBackend<NodeStorage>>>,
    trace: bool,
    delay: Option<std::ops::Range<Duration>>,
    paused_clock: bool,
    /// Brokers on fault-injecting disks, with this checkpoint interval.
    broker_disks: Option<Duration>,
}

/// A message's delay on a paused clock unless [`ClusterBuilder::delay`] says otherwise: a
/// LAN's hop.
pub const VIRTUAL_HOP: std::ops::Range<Duration> =
    Duration::from_micros(100)..Duration::from_micros(2000);

impl ClusterBuilder {
    pub fn options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Joins the brokers and controller of a multi-process cluster at `addrs` (`None`:
    /// every actor in this process).
    pub fn connect(mut self, addrs: Option<ClusterAddrs>) -> Self {
        self.connect = addrs;
        self
    }

    /// Keeps the actors' state in `storage` (the history runner's fault-injecting disks),
    /// instead of memory or [`EngineOptions::data_dir`].
    pub fn storage(mut self, storage: Arc<dyn StorageBackend<NodeStorage>>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Keeps each broker's state in files of its own under a temporary directory, with
    /// switches for disk faults ([`BrokerDisks`], [`Cluster::broker_disks`],
    /// [`Cluster::damage_files`]); a broker's state file is rewritten at most every
    /// `checkpoint_interval` in the steady state. The controller and clients stay in memory.
    pub fn broker_disks(mut self, checkpoint_interval: Duration) -> Self {
        self.broker_disks = Some(checkpoint_interval);
        self
    }

    /// Records every delivery and timer firing ([`Runtime::take_trace`]).
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }

    /// Delays every message by a duration drawn from `range` with the seed.
    pub fn delay(mut self, range: std::ops::Range<Duration>) -> Self {
        self.delay = Some(range);
        self
    }

    /// The caller runs the cluster on a paused clock ([`paused_runtime`]): virtual time jumps
    /// to the next timer whenever every task is idle. Every message is then delayed
    /// ([`VIRTUAL_HOP`] unless [`ClusterBuilder::delay`] says otherwise): otherwise messages
    /// arrive in no time, and a follower could never be behind its leader when a fault
    /// strikes.
    pub fn paused_clock(mut self, on: bool) -> Self {
        self.paused_clock = on;
        self
    }

    pub async fn start(mut self) -> anyhow::Result<Cluster> {
        let own_storage = self.storage.is_some() || self.broker_disks.is_some();
        if own_storage && (self.options.data_dir.is_some() || self.connect.is_some()) {
            anyhow::bail!(UsageError::InvalidConfig(
                "a cluster with its own storage keeps no data directory and \
                 joins no other processes"
                    .to_string()
            ));
        }
        if self.storage.is_some() && self.broker_disks.is_some() {
            anyhow::bail!(UsageError::InvalidConfig(
                "a cluster has one storage: its own, or broker disks".to_string()
            ));
        }
        let broker_disks = match self.broker_disks {
            Some(interval) => {
                let disks = Arc::new(BrokerDisks::new(
                    self.config.replicas,
                    interval,
                    self.config.elr,
                )?);
                self.storage = Some(Arc::clone(&disks) as Arc<dyn StorageBackend<NodeStorage>>);
                Some(disks)
            }
            None => None,
        };
        let delay = match (self.delay, self.paused_clock) {
            (Some(range), _) => Some(range),
            (None, true) => Some(VIRTUAL_HOP),
            (None, false) => None,
        };
        let mut cluster = Cluster::launch(
            self.config,
            self.options,
            self.connect,
            self.storage,
            self.trace,
        )
        .await?;
        cluster.broker_disks = broker_disks;
        if let Some(range) = delay {
            cluster.runtime.network().set_delay(range);
        }
        Ok(cluster)
    }
}

/// A single-threaded tokio runtime whose clock is paused: virtual time jumps to the next
/// timer whenever every task is idle, so a run with a given seed repeats itself (`insync run
/// --virtual-clock`, the history runner).
pub fn paused_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
}

impl Cluster {
    /// Starts a cluster for `config`, every actor in this process.
    pub async fn start(config: ValidConfig, options: EngineOptions) -> anyhow::Result<Cluster> {
        Cluster::builder(config).options(options).start().await
    }

    /// A cluster for `config` with more than [`EngineOptions`] says: trace, delay, paused
    /// clock, its own storage, other processes to join.
    pub fn builder(config: ValidConfig) -> ClusterBuilder {
        ClusterBuilder {
            config,
            options: EngineOptions::default(),
            connect: None,
            storage: None,
            trace: false,
            delay: None,
            paused_clock: false,
            broker_disks: None,
        }
    }

    /// Joins a cluster whose brokers and controller run as other processes (`insync broker`,
    /// `insync controller`) at `addrs`: only the producer and consumer run here.
    pub async fn connect(
        config: ValidConfig,
        options: EngineOptions,
        addrs: ClusterAddrs,
    ) -> anyhow::Result<Cluster> {
        Cluster::builder(config)
            .options(options)
            .connect(Some(addrs))
            .start()
            .await
    }

    async fn launch(
        config: ValidConfig,
        options: EngineOptions,
        addrs: Option<ClusterAddrs>,
        storage: Option<Arc<dyn StorageBackend<NodeStorage>>>,
        trace: bool,
    ) -> anyhow::Result<Cluster> {
        let config_text = config_text(&config, &options)?;
        check_options(&options)?;
        let elr = config.elr;
        let mut insync = Insync::new(config);
        insync.topology.producers = options.producers.max(1);
        let topology = insync.topology;
        let app = application_id(&insync);
        let actors = engine_actors(&insync, &options, addrs.is_some());
        let hosts: Vec<usize> = match &addrs {
            None => (0..topology.actor_count()).collect(),
            Some(addrs) => {
                addrs.validate(&topology)?;
                let mut hosts: Vec<usize> = (0..topology.producers)
                    .map(|i| usize::from(topology.producer_at(i)))
                    .collect();
                if topology.consumer {
                    hosts.push(usize::from(topology.consumer()));
                }
                hosts
            }
        };
        let disk = open_data_dir(&options, None, elr)?;
        let store = storage.unwrap_or_else(|| store_of(disk.as_ref()));
        let runtime = start_runtime(actors, &options, &hosts, store, trace)?;
        let transport = addrs.map(|addrs| {
            Arc::new(Transport::start(
                Arc::clone(&runtime),
                config_text,
                hosts,
                topology,
                &addrs,
                None,
            ))
        });
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let delivered = Arc::new(Delivered::default());
        let delivered_for_app = Arc::clone(&delivered);
        let mut outbox = runtime
            .outbox()
            .ok_or_else(|| anyhow::anyhow!("the runtime's outbox was already taken"))?;
        let pending_for_app = Arc::clone(&pending);
        let transport_for_outbox = transport.clone();
        let endpoints = Endpoints::new(usize::from(app) + 1..crate::tcp::ENDPOINT_BLOCK);
        let endpoints_for_outbox = Arc::clone(&endpoints);
        tokio::spawn(async move {
            while let Some((src, dst, msg)) = outbox.recv().await {
                if dst != app {
                    let Some(msg) = endpoints_for_outbox.route(dst, src, msg) else {
                        continue;
                    };
                    if let Some(transport) = &transport_for_outbox {
                        transport.forward(src, dst, msg);
                    }
                    continue;
                }
                match msg {
                    Msg::App(AppMsg::SendResult { ids, outcome }) => {
                        if topology.producer_index(src).is_none() {
                            continue;
                        }
                        let now = Instant::now();
                        let mut pending = pending_for_app.lock().expect("pending lock");
                        for (i, id) in (0u32..).zip(ids.iter()) {
                            if let Some(waiter) = pending.remove(id) {
                                let _ = waiter.send((outcome.of_record(i), now));
                            }
                        }
                    }
                    Msg::App(AppMsg::Delivered { records }) => delivered_for_app.arrive(&records),
                    _ => {}
                }
            }
        });
        Ok(Cluster {
            runtime,
            transport,
            topology,
            app,
            next_correlation: std::sync::atomic::AtomicU64::new(0),
            pending,
            delivered,
            disk,
            endpoints,
            broker_disks: None,
        })
    }

    /// A new outside party: an id no actor and no earlier endpoint has, and the mailbox of
    /// what actors send to it. Send as it with [`Runtime::send_from`]. `None` once the
    /// process has used up its endpoint ids.
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoints.endpoint()
    }

    /// What a Kafka listener needs of this cluster: every actor is hosted here, unless the
    /// cluster is connected to other processes (then none of the brokers is).
    pub fn host(&self) -> Host {
        let hosted = if self.is_remote() {
            Vec::new()
        } else {
            (0..self.topology.actor_count()).collect()
        };
        Host {
            runtime: Arc::clone(&self.runtime),
            topology: self.topology,
            endpoints: Arc::clone(&self.endpoints),
            hosted: hosted.into(),
        }
    }

    /// Why the data directory's storage stopped taking writes, if it did (a failed write or
    /// fsync; see [`crate::disk`]). A run whose storage failed proves nothing.
    pub fn storage_failure(&self) -> Option<String> {
        self.disk.as_ref().and_then(|d| d.failure())
    }

    /// Whether the brokers and controller run in other processes (then `leader`,
    /// `broker_log` and the fault methods do not reach them).
    pub fn is_remote(&self) -> bool {
        self.transport.is_some()
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    pub fn runtime(&self) -> &Runtime<Node> {
        &self.runtime
    }

    /// Hands a record to the (first) producer; the ticket carries the send's correlation id
    /// and resolves with what became of it ([`Resolved`]).
    pub async fn send(&self, value: Vec<u8>) -> SendTicket {
        self.send_via(0, value).await
    }

    /// [`Cluster::send`] through producer `producer` (taken modulo the producer count). A
    /// producer that does not take the record (it is down) fails it at once with
    /// `LEADER_NOT_AVAILABLE`; its correlation id is never used again.
    pub async fn send_via(&self, producer: usize, value: Vec<u8>) -> SendTicket {
        let producer = producer % self.topology.producers.max(1);
        let (tx, rx) = oneshot::channel();
        let correlation = CorrelationId(
            self.next_correlation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let id = SendId {
            producer,
            correlation,
        };
        // Waiting before the record is handed over: its answer may come before `send_from`
        // returns.
        self.pending
            .lock()
            .expect("pending lock")
            .insert(correlation, tx);
        // If this future is dropped while the producer's mailbox is full (a caller's timeout),
        // the record was never handed over: its waiter goes with it.
        let mut unhanded = Unhanded {
            pending: &self.pending,
            correlation,
            handed: false,
        };
        // The application and its producers share a process: no network between them. The
        // mailbox is bounded, so a busy producer slows the application down.
        let taken = self
            .runtime
            .send_from(
                self.app,
                self.topology.producer_at(producer),
                Msg::App(AppMsg::Send {
                    id: correlation,
                    value: Value::Bytes(value.into()),
                }),
                Route::Direct,
            )
            .await;
        unhanded.handed = taken;
        drop(unhanded);
        if !taken {
            let failed = Outcome::Failed(insync_model::msg::ErrorCode::LeaderNotAvailable);
            return SendTicket {
                id,
                answer: Answer::Now(Some((failed, Instant::now()))),
            };
        }
        SendTicket {
            id,
            answer: Answer::Waiting(rx),
        }
    }

    /// Sends whose answer the client API still waits for.
    pub fn waiting_sends(&self) -> usize {
        self.pending.lock().map_or(0, |p| p.len())
    }

    /// The application's id: what the actors send to, past every actor's id.
    pub fn app(&self) -> Id {
        self.app
    }

    /// How many producers the cluster has.
    pub fn producers(&self) -> usize {
        self.topology.producers
    }

    /// Records the consumer read and processed since the last poll, waiting up to `timeout`
    /// for the first batch.
    pub async fn poll(&self, timeout: Duration) -> Vec<ReadRecord> {
        self.poll_timed(timeout)
            .await
            .into_iter()
            .map(|d| d.record)
            .collect()
    }

    /// [`Cluster::poll`] with the moment each record reached the application.
    pub async fn poll_timed(&self, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.take_reads();
            if !records.is_empty() {
                return records;
            }
            // A wake-up may be stale (its records already taken): wait again, to the deadline.
            let arrived = self.delivered.arrived.notified();
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.take_reads();
            }
        }
    }

    /// What the consumer handed over since the last poll, without waiting.
    pub fn take_reads(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.delivered.records.lock().expect("delivered lock"))
    }

    /// Records the consumer handed over in all, polled or not, kept or not.
    pub fn read_count(&self) -> u64 {
        self.delivered
            .count
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether delivered records are kept for [`Cluster::poll`] (the default) or only counted
    /// and dropped (a benchmark that never looks at them).
    pub fn keep_reads(&self, keep: bool) {
        self.delivered
            .keep
            .store(keep, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until `n` records were handed over in all, or `timeout` passes; whether they
    /// were.
    #[must_use = "whether the records arrived before the timeout"]
    pub async fn wait_read(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.delivered.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.read_count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.read_count() >= n;
            }
        }
    }

    /// Commits the consumer's offset (`commitSync`): records below `offset` are done and a
    /// restarted consumer resumes there. Takes effect with `--consumer-commit manual`; the
    /// automatic modes commit by themselves. Clamped to what the consumer has read, never
    /// backwards.
    ///
    /// Returns once the commit is saved, with the consumer's committed offset after it; `None`
    /// if the consumer is down (or crashed before taking the commit), so nothing was saved.
    /// The consumer takes its mail in order and saves within the step (before it takes the
    /// next), so a look at its state queued behind the commit sees the saved offset.
    #[must_use = "`None`: the consumer was down and nothing was saved"]
    pub async fn commit(&self, offset: Offset) -> Option<Offset> {
        let consumer = self.topology.consumer();
        if !self
            .runtime
            .send_from(
                self.app,
                consumer,
                Msg::App(AppMsg::Commit { offset }),
                Route::Direct,
            )
            .await
        {
            return None;
        }
        self.committed().await
    }

    /// The consumer's committed offset (`None` while it is down).
    pub async fn committed(&self) -> Option<Offset> {
        self.runtime
            .inspect(self.topology.consumer(), |s| {
                s.as_consumer().map(|c| c.committed)
            })
            .await
            .flatten()
    }

    /// Crashes the consumer: its position is lost; it resumes from its committed offset
    /// when restarted.
    #[must_use = "false: the consumer was not running"]
    pub async fn crash_consumer(&self) -> bool {
        self.runtime.crash(self.topology.consumer()).await
    }

    #[must_use = "false: the consumer did not restart"]
    pub async fn restart_consumer(&self) -> bool {
        self.runtime
            .restart(self.topology.consumer())
            .await
            .unwrap_or(false)
    }

    /// Crashes the controller. It saved every change before the messages that depended on it
    /// left ([`insync_model::node::ActorParams::durable_controller`]), so a restart recovers
    /// its epochs, ISR and incarnations; while it is down, nothing is elected and no ISR
    /// changes.
    #[must_use = "false: the controller was not running"]
    pub async fn crash_controller(&self) -> bool {
        self.runtime.crash(self.topology.controller()).await
    }

    #[must_use = "false: the controller did not restart"]
    pub async fn restart_controller(&self) -> bool {
        match self.runtime.restart(self.topology.controller()).await {
            Ok(restarted) => restarted,
            Err(e) => {
                tracing::error!("controller restart failed: {e}");
                false
            }
        }
    }

    /// The broker the controller names leader.
    pub async fn leader(&self) -> Option<BrokerId> {
        self.runtime
            .inspect(self.topology.controller(), |s| {
                s.as_controller().and_then(|c| c.partition.leader)
            })
            .await
            .flatten()
    }

    /// Waits up to `timeout` until a broker leads with at least `members` in its ISR, as an
    /// operator waits for under-replicated partitions to clear after a restart: brokers that
    /// restart leave the ISR and rejoin it by catching up (KIP-380), and until then
    /// `min.insync.replicas` refuses sends. Whether it happened.
    pub async fn wait_for_isr(&self, members: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            for b in self.topology.brokers() {
                let isr = self
                    .runtime
                    .inspect(self.topology.broker(b), |s| {
                        s.as_broker()
                            .and_then(|b| b.leader_state())
                            .map(|l| l.isr.len())
                    })
                    .await
                    .flatten();
                if isr.is_some_and(|n| n >= members) {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A broker's log as it is now (`None` while it is down).
    pub async fn broker_log(&self, b: BrokerId) -> Option<(Log, bool)> {
        self.runtime
            .inspect(self.topology.broker(b), |s| {
                s.as_broker().map(|b| (b.log.clone(), b.is_leader()))
            })
            .await
            .flatten()
    }

    /// Crashes broker `b`; with broker disks, its storage is dropped too (its process is
    /// gone), so that its files can be damaged while it is down.
    #[must_use = "false: the broker was not running"]
    pub async fn crash(&self, b: BrokerId) -> bool {
        let crashed = self.runtime.crash(self.topology.broker(b)).await;
        if let (true, Some(disks)) = (crashed, &self.broker_disks) {
            disks.close(b.0);
        }
        crashed
    }

    /// The brokers' fault-injecting disks, when the cluster has them
    /// ([`ClusterBuilder::broker_disks`]): their fault switches (a full disk) and what their
    /// storage reported.
    pub fn broker_disks(&self) -> Option<&Arc<BrokerDisks>> {
        self.broker_disks.as_ref()
    }

    /// Damages broker `b`'s files (it should be down) as `damage` says; what was damaged,
    /// or `None` if the fault does not apply to what the files hold. Refused without broker
    /// disks.
    pub fn damage_files(&self, b: BrokerId, damage: FileDamage) -> std::io::Result<Option<Damage>> {
        let Some(disks) = &self.broker_disks else {
            return Err(std::io::Error::other(
                "the cluster has no broker disks to damage (ClusterBuilder::broker_disks)",
            ));
        };
        let (dir, actor) = (disks.dir(b.0), usize::from(self.topology.broker(b)));
        match damage {
            FileDamage::TornWrite { written } => faults::tear_tail(&dir, actor, written),
            FileDamage::LostFsync => faults::lose_last_batch(&dir, actor),
            FileDamage::BitFlip { region, at } => faults::flip_bit(&dir, actor, region, at),
            FileDamage::MissingFile { file } => faults::remove_file(&dir, actor, file),
            FileDamage::FileBitFlip { file, at } => faults::flip_file_bit(&dir, actor, file, at),
        }
    }

    #[must_use = "false: the broker did not restart"]
    pub async fn restart(&self, b: BrokerId) -> bool {
        match self.runtime.restart(self.topology.broker(b)).await {
            Ok(restarted) => restarted,
            Err(e) => {
                tracing::error!(broker = b.0, "restart failed: {e}");
                false
            }
        }
    }

    /// Cuts `b` off from every other actor.
    pub fn isolate(&self, b: BrokerId) {
        self.runtime.network().isolate(self.topology.broker(b));
    }

    /// Slows every message to and from `b`.
    pub fn slow(&self, b: BrokerId, extra: Duration) {
        self.runtime.network().slow(self.topology.broker(b), extra);
    }

    pub fn heal(&self) {
        self.runtime.network().heal();
    }

    /// Splits the actors into `sides` that cannot reach each other (an actor in no side
    /// reaches every side); [`Cluster::heal`] ends it.
    pub fn partition(&self, sides: Vec<Vec<Id>>) {
        self.runtime.network().partition(sides);
    }

    /// The brokers other than `leader`, in assignment order (a follower's rank is its index
    /// here).
    pub fn followers_of(&self, leader: BrokerId) -> Vec<BrokerId> {
        self.topology.brokers().filter(|&b| b != leader).collect()
    }

    /// The `rank`-th follower (modulo their count) of the current leader, or of broker 0 when
    /// none leads; `None` with a single replica.
    pub async fn follower(&self, rank: usize) -> Option<BrokerId> {
        let leader = self.leader().await.unwrap_or(BrokerId(0));
        let followers = self.followers_of(leader);
        (!followers.is_empty()).then(|| followers[rank % followers.len()])
    }

    /// Crashes the broker the controller names leader; which one, if it did.
    #[must_use = "`None`: no broker was crashed"]
    pub async fn crash_leader(&self) -> Option<BrokerId> {
        let leader = self.leader().await?;
        self.crash(leader).await.then_some(leader)
    }

    /// Crashes the `rank`-th follower ([`Cluster::follower`]); which one, if it did.
    #[must_use = "`None`: no broker was crashed"]
    pub async fn crash_follower(&self, rank: usize) -> Option<BrokerId> {
        let follower = self.follower(rank).await?;
        self.crash(follower).await.then_some(follower)
    }

    /// Stops every actor; with a data directory, then marks a clean shutdown, so that the
    /// next start verifies every saved record ([`DiskStorage::close_cleanly`]).
    pub async fn shutdown(&self) {
        self.runtime.shutdown().await;
        if let Some(disk) = &self.disk {
            close_cleanly(disk).await;
        }
    }
}

/// Marks a clean shutdown of a stopped runtime's storage ([`DiskStorage::close_cleanly`]), or
/// says why the next start will report what follows the last periodic checkpoint as
/// unverified.
async fn close_cleanly(disk: &Arc<DiskStorage>) {
    let disk = Arc::clone(disk);
    match tokio::task::spawn_blocking(move || disk.close_cleanly()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(
            error = %e,
            "no clean-shutdown checkpoint: the next start reports what follows the last \
             periodic checkpoint as unverified"
        ),
        Err(e) => tracing::error!(error = %e, "the clean-shutdown checkpoint panicked"),
    }
}

/// Resolves when the process is asked to stop: SIGTERM (what `kill`, systemd and Kubernetes
/// send) or SIGINT (Ctrl-C).
async fn stop_requested() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "no signal handler: the process stops only when killed");
            std::future::pending().await
        }
    }
}

/// The configuration as every process of a cluster must share it (compared in the hello):
/// the partition's, and the producer count, which places the actors.
fn config_text(config: &ValidConfig, options: &EngineOptions) -> anyhow::Result<String> {
    Ok(format!(
        "{} producers={}",
        serde_json::to_string(&config.clone().into_inner())?,
        options.producers.max(1)
    ))
}

/// The id of the application (the client API that hosts the producers and consumers): the
/// first id past the actors of [`engine_actors`].
pub fn application_id(insync: &Insync) -> Id {
    Id::from(insync.topology.actor_count())
}

/// The model's actors with the engine's switches on: heartbeats, the application client
/// API, Kafka's caught-up rule, and batches sized for throughput.
///
/// The history runner's trace replay (`insync_checks::replay`) replays a run through
/// these same actors; the application's id is the first past them ([`application_id`]).
///
/// Idempotent producers ask the controller for their ids (KIP-98 `InitProducerId`) when the
/// cluster can outlive them: its brokers keep their logs in a data directory, or the
/// producers are clients `connected` to processes that run on. A cluster held in memory by
/// one process is born and ends with its producers, so the topology's fixed ids are unique
/// for its whole life, as they are in the model (`ActorParams::allocate_producer_ids`).
pub fn engine_actors(insync: &Insync, options: &EngineOptions, connected: bool) -> Vec<Node> {
    let mut params = ActorParams::engine(
        application_id(insync),
        options.fetch_records_max,
        options.batch_records,
        options.limits,
    );
    params.allocate_producer_ids = connected || options.data_dir.is_some();
    insync.actors_with(&params)
}

/// Opens the data directory for the node `served` names (`None`: an in-process cluster,
/// which formats an empty directory itself).
///
/// With `elr` (KIP-966's unclean-shutdown rule) a damaged segment is salvaged: the broker
/// restarts with its intact prefix as a new incarnation after an unclean shutdown, which the
/// controller takes out of the ISR and the ELR until it catches up, the same branch the
/// checker explores for every restart under `--elr` (with `--flush async` a restart comes
/// back with any prefix of its log; the matrix row `async-flush-elr` holds). Without it the
/// protocol has no way to say "this broker lost data": a last ISR member would lead without
/// what it lost, so the start is refused instead (fail-stop).
fn open_disk(
    dir: &std::path::Path,
    cluster_id: Option<&str>,
    served: Option<Served>,
    elr: bool,
) -> anyhow::Result<DiskStorage> {
    let (node, mode) = match served {
        None => (StorageNode::InProcess, OpenMode::FormatIfEmpty),
        Some(Served::Broker(b)) => (StorageNode::Broker(b.0), OpenMode::Formatted),
        Some(Served::Controller) => (StorageNode::Controller, OpenMode::Formatted),
    };
    let cluster_id = match (cluster_id, served) {
        (Some(id), _) => id,
        (None, None) => IN_PROCESS_CLUSTER_ID,
        (None, Some(_)) => anyhow::bail!(UsageError::InvalidConfig(
            "--data-dir needs --cluster-id, the id `insync format` gave the \
             directory"
                .to_string()
        )),
    };
    let identity = Identity::new(cluster_id, node).map_err(|e| {
        anyhow::anyhow!(UsageError::InvalidConfig(format!("{e}; set --cluster-id")))
    })?;
    let disk = DiskStorage::open(dir, &identity, mode)?.with_salvage(elr);
    if !elr && !matches!(served, Some(Served::Controller)) {
        tracing::warn!("{}", NO_KIP_966_WARNING);
    }
    Ok(disk)
}

/// What a broker's data directory without KIP-966 cannot promise, said once at the start:
/// the last-replica-standing loss that Kafka has too before 4.1 (README, "Disk faults in the
/// generated histories"; `checks/tests/disk_faults.rs` pins it).
pub const NO_KIP_966_WARNING: &str = "a data directory without KIP-966: a broker left the \
    last in-sync replica whose disk loses writes it acknowledged (a power loss, a disk cache \
    that lies about fsync) can restart without them and lead, losing acknowledged records, as \
    in Kafka before 4.1 (its recovery reports the tail it cannot vouch for); --elr --hw-rule \
    min-isr (or --kafka 4.1, which sets both) prevents it";

/// The options' data directory, opened (and locked) for `served`, if there is one.
fn open_data_dir(
    options: &EngineOptions,
    served: Option<Served>,
    elr: bool,
) -> anyhow::Result<Option<Arc<DiskStorage>>> {
    options
        .data_dir
        .as_ref()
        .map(|dir| open_disk(dir, options.cluster_id.as_deref(), served, elr).map(Arc::new))
        .transpose()
}

/// Starts the runtime for the actors this process hosts (`hosts`), on `disk` or, without
/// one, in memory.
fn start_runtime(
    actors: Vec<Node>,
    options: &EngineOptions,
    hosts: &[usize],
    store: Arc<dyn StorageBackend<NodeStorage>>,
    trace: bool,
) -> anyhow::Result<Arc<Runtime<Node>>> {
    let remote = (0..actors.len()).filter(|i| !hosts.contains(i)).collect();
    let mut config = RuntimeConfig::with_seed(options.seed).remote(remote);
    if trace {
        config = config.traced();
    }
    let runtime = Runtime::start(actors, store, config)
        .map_err(|e| anyhow::anyhow!("starting the actors: {e}"))?;
    Ok(Arc::new(runtime))
}

/// The data directory's storage, or memory without one.
fn store_of(disk: Option<&Arc<DiskStorage>>) -> Arc<dyn StorageBackend<NodeStorage>> {
    match disk {
        Some(disk) => Arc::clone(disk) as Arc<dyn StorageBackend<NodeStorage>>,
        None => Arc::new(MemoryStorage::<NodeStorage>::new()),
    }
}

/// Resolves when `disk` reports a failed write or fsync (never without a disk).
async fn storage_failed(disk: Option<&DiskStorage>) -> String {
    let Some(disk) = disk else {
        return std::future::pending().await;
    };
    let mut failures = disk.failures();
    loop {
        if let Some(reason) = failures.borrow_and_update().clone() {
            return reason;
        }
        if failures.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// What one server process of a cluster hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Broker(BrokerId),
    Controller,
}

/// Runs one broker or the controller of a multi-process cluster: listens on its address of
/// `addrs`, dials the others, and serves until SIGTERM or SIGINT stops it cleanly (`Ok`: the
/// actor stops, then its state files are marked clean) or an error ends it. With `data_dir` (formatted
/// for this node by `insync format`, and locked while it runs), a broker killed and started
/// again recovers what it had flushed; damaged storage refuses the start, and a failed write
/// or fsync ends the process (fail-stop) rather than serve from an untrusted page cache.
///
/// With `kafka` (a broker only), the broker also serves Kafka clients on its own address of
/// `kafka.listen` ([`crate::kafka`]); its listener asks the controller, over the cluster's
/// connections, for producer ids and the partition's leader.
pub async fn serve_node(
    config: ValidConfig,
    options: EngineOptions,
    served: Served,
    addrs: ClusterAddrs,
    kafka: Option<crate::kafka::KafkaOptions>,
) -> anyhow::Result<()> {
    let config_text = config_text(&config, &options)?;
    check_options(&options)?;
    let elr = config.elr;
    let mut insync = Insync::new(config);
    insync.topology.producers = options.producers.max(1);
    let topology = insync.topology;
    addrs.validate(&topology)?;
    let index = match served {
        Served::Broker(b) => {
            if b.index() >= topology.replicas {
                anyhow::bail!(UsageError::InvalidConfig(format!(
                    "broker {} does not exist with --replicas {}; broker ids are \
                     0..{}",
                    b.0, topology.replicas, topology.replicas
                )));
            }
            usize::from(topology.broker(b))
        }
        Served::Controller => usize::from(topology.controller()),
    };
    let Some(listen) = addrs.address_of(&topology, index) else {
        anyhow::bail!("no address for actor {index} in the cluster layout");
    };
    // The data directory first: a second process on it is refused for the lock, whatever
    // address it was given.
    let disk = open_data_dir(&options, Some(served), elr)?;
    if let (Served::Controller, Some(disk)) = (served, &disk) {
        if let Some((NodeStorage::Controller(saved), _)) = disk.load(index)? {
            let p = &saved.partition;
            tracing::info!(
                leader = ?p.leader.map(|b| b.0),
                leader_epoch = p.leader_epoch.0,
                partition_epoch = p.partition_epoch.0,
                isr = %p.isr,
                "the controller takes up its saved state"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e}; is another process using the address?")
    })?;
    // The process hosts a broker or the controller, no producer.
    let actors = engine_actors(&insync, &options, true);
    let runtime = start_runtime(actors, &options, &[index], store_of(disk.as_ref()), false)?;
    let transport = Transport::start(
        Arc::clone(&runtime),
        config_text,
        vec![index],
        topology,
        &addrs,
        Some(listener),
    );
    tracing::info!(%listen, ?served, "serving");
    let mut outbox = runtime
        .outbox()
        .ok_or_else(|| anyhow::anyhow!("the runtime's outbox was already taken"))?;
    let endpoints = Endpoints::new(crate::tcp::endpoint_ids(index));
    let _kafka = match kafka {
        None => None,
        Some(kafka) => {
            let host = Host {
                runtime: Arc::clone(&runtime),
                topology,
                endpoints: Arc::clone(&endpoints),
                hosted: vec![index].into(),
            };
            let listeners = crate::kafka::listen_on(host, kafka).await?;
            tracing::info!(kafka = ?listeners.addrs, "serving Kafka clients");
            Some(listeners)
        }
    };
    let failed = storage_failed(disk.as_deref());
    tokio::pin!(failed);
    let stop = stop_requested();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            next = outbox.recv() => match next {
                Some((src, dst, msg)) => {
                    if let Some(msg) = endpoints.route(dst, src, msg) {
                        transport.forward(src, dst, msg);
                    }
                }
                None => anyhow::bail!("the runtime stopped"),
            },
            reason = &mut failed => anyhow::bail!(
                "storage failed, stopping (fail-stop: a failed write or fsync is never retried, \
                 the page cache cannot be trusted): {reason}; check the disk, then start the \
                 process again to recover from what is on disk"
            ),
            signal = &mut stop => {
                // A clean stop: the actor finishes its step and stops, then each state file
                // vouches for every save, so the next start verifies every record and is not
                // an unclean shutdown (KIP-966 would take the broker out of the ELR).
                tracing::info!(signal, "stopping cleanly");
                runtime.shutdown().await;
                if let Some(disk) = &disk {
                    close_cleanly(disk).await;
                }
                return Ok(());
            }
        }
    }
}
