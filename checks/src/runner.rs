//! Runs a [`Plan`] against a fresh in-process engine and records what the clients saw.
//!
//! The engine is an [`insync::engine::Cluster`], as `insync run` starts one (the model's own
//! actors hosted by `insync::runtime`), on a single-threaded tokio runtime whose clock is
//! paused ([`insync::engine::paused_runtime`]): virtual time jumps to the next timer whenever
//! every task is idle, so a leader failover (two seconds of session timeout) costs
//! microseconds, and a run with a given seed repeats itself. The runtime records every delivery
//! and timer firing, so a run can be replayed through the model ([`crate::replay`]). Each send
//! is completed by the answer its ticket's correlation id names.
//!
//! Each client call is recorded Jepsen-style: its invocation, then its completion: `ok`,
//! `fail` (definite) or `info` (indeterminate: a timeout, `NOT_ENOUGH_REPLICAS_AFTER_APPEND`,
//! no answer within the client's patience). Faults are recorded as the nemesis's operations.
//! At the end every fault is healed, every broker and the consumer restarted, and the
//! consumer drained; then the final leader's log is read as the last operation.
//!
//! With disk faults (`HistoryRunOptions::disk_faults`, or a plan that holds any) the brokers keep
//! their state in files (`insync::disk::brokers`, through the cluster's builder), the nemesis
//! damages a down broker's files (`Cluster::damage_files`) or fills a running broker's disk,
//! and what each broker's storage reports (a recovery, a refused start, a failed write) goes
//! into the history next to the faults, for the checker to match.
//! A broker whose storage refuses to start stays down for the rest of the history (the
//! engine fail-stops on damaged storage; rejoining as a broker that lost data is not
//! modelled).

use crate::history::{
    decode_value, encode_value, DiskEvent, DiskFault, Fun, History, OpType, Process, Read,
    RECORD_BYTES_MIN,
};
use crate::plan::{Plan, Step, APPLICATION_BIT, CONTROLLER_BIT};
use insync::disk::brokers::BrokerDisks;
use insync::engine::{Cluster, EngineOptions, FileDamage};
use insync::error::UsageError;
use insync::runtime::{ActorTraceLog, RuntimeError};
use insync_model::config::NetworkKind;
use insync_model::node::{Insync, Topology};
use insync_model::producer::Outcome;
use insync_model::types::{BrokerId, Value};
use insync_model::{Node, ValidConfig};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Every message takes at least this long. The engine's clients retry some errors at once
/// (error, metadata, retry, with no backoff), which on a paused clock would spin at one instant
/// forever and starve every timer; a hop that takes virtual time lets the clock move on. A
/// fixed delay keeps each connection FIFO.
pub const HOP: Duration = Duration::from_millis(1);

/// How a plan is run.
#[derive(Clone, Debug)]
pub struct HistoryRunOptions {
    /// Seeds the engine's timers and network faults.
    pub seed: u64,
    /// How long a send may go unanswered before the client records it `info` and moves on.
    pub client_timeout: Duration,
    /// Most virtual time the drain waits for the cluster to settle and the consumer to catch up.
    pub drain_max: Duration,
    /// Record the engine's deliveries and timer firings.
    pub trace: bool,
    /// Most records in one produce request / fetch response.
    pub batch_records: usize,
    /// Keep brokers' state in files (temporary directories), as disk faults need; on by
    /// itself for a plan that holds a disk fault.
    pub disk_faults: bool,
    /// With disk faults: how often a broker's state file is rewritten in the steady state
    /// (zero: at every save; see `insync::disk::brokers`). The engine's own interval by
    /// default.
    pub checkpoint_interval: Duration,
}

impl Default for HistoryRunOptions {
    fn default() -> Self {
        HistoryRunOptions {
            seed: 0,
            client_timeout: Duration::from_secs(10),
            drain_max: Duration::from_secs(60),
            trace: false,
            batch_records: 4,
            disk_faults: false,
            checkpoint_interval: insync::disk::HW_CHECKPOINT_INTERVAL,
        }
    }
}

/// What a run produced.
pub struct RunOutcome {
    pub history: History,
    /// The engine's deliveries and timer firings, when asked for.
    pub trace: Option<ActorTraceLog<Node>>,
    /// Steps of the plan that ran (the others failed their precondition).
    pub steps_run: usize,
    /// Virtual time the run took.
    pub virtual_ms: u64,
}

/// Runs `plan` on a fresh cluster for `config`. Builds its own single-threaded runtime with a
/// paused clock, so call it from plain (non-async) code.
pub fn run_history(
    config: &ValidConfig,
    plan: &Plan,
    options: &HistoryRunOptions,
) -> anyhow::Result<RunOutcome> {
    let tokio = insync::engine::paused_runtime()?;
    tokio.block_on(run_async(config.clone(), plan.clone(), options.clone()))
}

/// The engine's options for a history: fetches and produce requests of `batch_records`.
/// [`crate::replay`] replays a trace through the actors these give
/// ([`insync::engine::engine_actors`]).
pub fn engine_options(options: &HistoryRunOptions) -> EngineOptions {
    EngineOptions {
        seed: options.seed,
        fetch_records_max: options.batch_records.max(1),
        batch_records: options.batch_records.max(1),
        ..EngineOptions::default()
    }
}

/// A history's values travel as `insync run`'s records do ([`encode_value`]), of run 0.
fn decode(value: &Value) -> Option<u64> {
    decode_value(value, 0)
}

/// The history being written, shared with the task that hears the producer and consumer.
struct Recorder {
    start: Instant,
    history: History,
    /// Sends not yet completed: value -> deadline.
    pending: BTreeMap<u64, Instant>,
}

impl Recorder {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn push(&mut self, process: Process, op_type: OpType, fun: Fun) -> usize {
        let at = self.now_ms();
        self.history.push(at, process, op_type, fun)
    }

    /// Records a send's completion, once.
    fn complete(&mut self, value: u64, outcome: &Outcome) {
        if self.pending.remove(&value).is_none() {
            return; // Already given up on (client timeout): it stays indeterminate.
        }
        let (op_type, offset, error) = match outcome {
            Outcome::Acked(offset) => (OpType::Ok, Some(offset.0), None),
            Outcome::Failed(e) => (OpType::Fail, None, Some(e.name().to_string())),
            Outcome::Indeterminate(e) => (OpType::Info, None, Some(e.name().to_string())),
            Outcome::Sent => (OpType::Info, None, Some("acks=0".to_string())),
        };
        self.push(
            Process::Producer,
            op_type,
            Fun::Send {
                value,
                offset,
                error,
                producer: 0,
            },
        );
    }

    /// Gives up on sends past their deadline.
    fn expire(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(v, _)| *v)
            .collect();
        for value in late {
            self.pending.remove(&value);
            self.push(
                Process::Producer,
                OpType::Info,
                Fun::Send {
                    value,
                    offset: None,
                    error: Some("no answer within the client timeout".to_string()),
                    producer: 0,
                },
            );
        }
    }
}

type Shared = Arc<Mutex<Recorder>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    // The recorder is plain data; a panic elsewhere cannot leave it half-written.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cluster under test ([`insync::engine::Cluster`]), and what is down.
struct Harness {
    cluster: Cluster,
    topology: Topology,
    network: NetworkKind,
    recorder: Shared,
    next_value: u64,
    /// Brokers down, oldest crash first.
    down: VecDeque<BrokerId>,
    consumer_down: bool,
    controller_down: bool,
    partitioned: bool,
    /// The network's fixed delay, and each slowed broker's extra delay. On a FIFO network they
    /// only ever grow within a run: the engine's network delays each message by the delay in
    /// force when it is sent, so shortening a delay lets later messages overtake earlier ones
    /// on the same connection, which TCP never does and the model does not allow.
    delay_ms: u64,
    slow_ms: BTreeMap<BrokerId, u64>,
    options: HistoryRunOptions,
    /// The brokers' files, with disk faults.
    disks: Option<Arc<BrokerDisks>>,
    /// Brokers whose storage refused to start them: down for good.
    dead: BTreeSet<BrokerId>,
    /// The one broker disk faults hit in this history, once one has.
    damaged: Option<BrokerId>,
}

async fn run_async(
    config: ValidConfig,
    plan: Plan,
    options: HistoryRunOptions,
) -> anyhow::Result<RunOutcome> {
    let network = config.network;
    let insync = Insync::new(config.clone());
    let topology = insync.topology;
    if !topology.consumer {
        anyhow::bail!(UsageError::InvalidConfig(
            "a history needs the consumer; drop --no-consumer".to_string()
        ));
    }
    let mut cluster = Cluster::builder(config)
        .options(engine_options(&options))
        .paused_clock(true)
        .trace(options.trace)
        .delay(HOP..HOP);
    if options.disk_faults || plan.has_disk_faults() {
        cluster = cluster.broker_disks(options.checkpoint_interval);
    }
    let cluster = cluster
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("starting the cluster: {e}"))?;
    let disks = cluster.broker_disks().cloned();
    let start = Instant::now();
    let recorder: Shared = Arc::new(Mutex::new(Recorder {
        start,
        history: History::new(),
        pending: BTreeMap::new(),
    }));
    let mut h = Harness {
        cluster,
        topology,
        network,
        recorder: Arc::clone(&recorder),
        next_value: 1,
        down: VecDeque::new(),
        consumer_down: false,
        controller_down: false,
        partitioned: false,
        delay_ms: 0,
        slow_ms: BTreeMap::new(),
        options,
        disks,
        dead: BTreeSet::new(),
        damaged: None,
    };
    let mut steps_run = 0;
    for step in &plan.steps {
        lock(&h.recorder).expire(Instant::now());
        if h.apply(step).await {
            steps_run += 1;
        }
    }
    h.drain().await;
    let trace = h.cluster.runtime().take_trace();
    h.cluster.shutdown().await;
    h.record_disk_events();
    let r = lock(&recorder);
    Ok(RunOutcome {
        history: r.history.clone(),
        trace,
        steps_run,
        virtual_ms: r.now_ms(),
    })
}

impl Harness {
    fn nemesis(&self, what: String) {
        lock(&self.recorder).push(Process::Nemesis, OpType::Info, Fun::Nemesis { what });
    }

    async fn leader(&self) -> Option<BrokerId> {
        if !self.controller_down {
            return self.cluster.leader().await;
        }
        // With the controller down, the broker that still acts as leader.
        for b in self.topology.brokers() {
            if let Some((_, true)) = self.cluster.broker_log(b).await {
                return Some(b);
            }
        }
        None
    }

    /// The `rank`-th follower of the current leader (or of broker 0 with no leader).
    async fn follower(&self, rank: u8) -> Option<BrokerId> {
        self.cluster.follower(usize::from(rank)).await
    }

    fn is_down(&self, b: BrokerId) -> bool {
        self.down.contains(&b)
    }

    /// Brokers down, for good or for now, and those whose disk is full (about to stop).
    fn out_of_service(&self) -> usize {
        let full = self.disks.as_ref().map_or(0, |disks| {
            self.topology
                .brokers()
                .filter(|b| disks.faults(b.0).is_full())
                .count()
        });
        self.down.len() + self.dead.len() + full
    }

    async fn crash(&mut self, b: BrokerId, why: &str) -> bool {
        // Keep one broker up: with none, nothing in the history can be judged.
        if self.is_down(b)
            || self.dead.contains(&b)
            || self.out_of_service() + 1 >= self.topology.replicas
        {
            return false;
        }
        if !self.cluster.crash(b).await {
            return false;
        }
        self.down.push_back(b);
        self.nemesis(format!("crash broker {}{why}", b.0));
        // The cluster dropped its storage with it: a full disk gets its space back.
        self.maybe_free_space(b);
        true
    }

    async fn restart(&mut self, b: BrokerId) -> bool {
        let result = self
            .cluster
            .runtime()
            .restart(self.topology.broker(b))
            .await;
        self.down.retain(|&d| d != b);
        let restarted = match result {
            Ok(restarted) => {
                if restarted {
                    self.nemesis(format!("restart broker {}", b.0));
                }
                restarted
            }
            Err(RuntimeError::Storage { error, .. }) if self.disks.is_some() => {
                self.dead.insert(b);
                let error = self.without_disk_root(error.to_string());
                self.nemesis(format!(
                    "restart broker {}: refused, it stays down ({error})",
                    b.0
                ));
                true
            }
            Err(_) => false,
        };
        self.record_disk_events();
        restarted
    }

    /// Puts what the brokers' storage reported into the history (a recovery only if it cut
    /// something, or is the damaged broker's), and takes a broker whose storage failed out of
    /// service.
    fn record_disk_events(&mut self) {
        let Some(disks) = self.disks.clone() else {
            return;
        };
        for (broker, event) in disks.take_events() {
            let b = BrokerId(broker);
            let quiet = matches!(
                event,
                DiskEvent::Recovered {
                    truncated_bytes: 0,
                    ..
                }
            ) && self.damaged != Some(b);
            let failed = matches!(event, DiskEvent::WriteFailed { .. });
            if !quiet {
                self.disk_event(b, event);
            }
            if failed {
                // The broker stopped itself (its storage fail-stopped).
                if !self.is_down(b) {
                    self.down.push_back(b);
                }
                self.maybe_free_space(b);
            }
        }
    }

    /// `text` with the brokers' temporary root directory written as `$DISKS`, so that a
    /// history that names a broker's files is the same in every run of its case.
    fn without_disk_root(&self, text: String) -> String {
        let Some(root) = self
            .disks
            .as_ref()
            .and_then(|d| d.dir(0).parent().map(Path::to_path_buf))
        else {
            return text;
        };
        text.replace(&*root.to_string_lossy(), "$DISKS")
    }

    fn disk_event(&self, b: BrokerId, event: DiskEvent) {
        let event = match event {
            DiskEvent::Refused { reason } => DiskEvent::Refused {
                reason: self.without_disk_root(reason),
            },
            DiskEvent::WriteFailed { reason } => DiskEvent::WriteFailed {
                reason: self.without_disk_root(reason),
            },
            DiskEvent::Recovered {
                truncated_bytes,
                reason,
                unverified_from,
                log_end_offset,
                damaged_from,
            } => DiskEvent::Recovered {
                truncated_bytes,
                reason: reason.map(|r| self.without_disk_root(r)),
                unverified_from,
                log_end_offset,
                damaged_from,
            },
            DiskEvent::Injected {
                fault,
                what,
                first_offset,
            } => DiskEvent::Injected {
                fault,
                what: self.without_disk_root(what),
                first_offset,
            },
            other => other,
        };
        lock(&self.recorder).push(
            Process::Nemesis,
            OpType::Info,
            Fun::Disk { broker: b.0, event },
        );
    }

    /// A full disk gets its space back (the broker stopped, or the history ends).
    fn maybe_free_space(&mut self, b: BrokerId) {
        let Some(disks) = self.disks.clone() else {
            return;
        };
        if disks.faults(b.0).is_full() {
            let writes_refused = disks.faults(b.0).free();
            self.disk_event(b, DiskEvent::SpaceFreed { writes_refused });
        }
    }

    /// Damages the files of the damaged broker while it is down (before any is damaged, the
    /// broker down longest) as `damage` says; false if there is none, or the fault does not
    /// apply.
    fn damage(&mut self, fault: DiskFault, damage: FileDamage) -> bool {
        if self.disks.is_none() {
            return false;
        }
        let target = match self.damaged {
            Some(d) => self.is_down(d).then_some(d),
            None => self.down.front().copied(),
        };
        let Some(b) = target else {
            return false;
        };
        match self.cluster.damage_files(b, damage) {
            Ok(Some(damage)) => {
                self.damaged = Some(b);
                self.disk_event(
                    b,
                    DiskEvent::Injected {
                        fault,
                        what: damage.what,
                        first_offset: damage.first_offset.map(|o| o.0),
                    },
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.nemesis(format!("damaging broker {}'s files failed: {e}", b.0));
                false
            }
        }
    }

    /// Runs one step if its precondition holds; returns whether it ran.
    async fn apply(&mut self, step: &Step) -> bool {
        self.record_disk_events();
        let network = self.cluster.runtime().network();
        match *step {
            Step::Send => {
                let value = self.next_value;
                self.next_value += 1;
                {
                    let mut r = lock(&self.recorder);
                    let deadline = Instant::now() + self.options.client_timeout;
                    r.pending.insert(value, deadline);
                    r.push(
                        Process::Producer,
                        OpType::Invoke,
                        Fun::Send {
                            value,
                            offset: None,
                            error: None,
                            producer: 0,
                        },
                    );
                }
                // The ticket's correlation id names the send; its answer completes it (at
                // once if the producer did not take the record).
                let ticket = self
                    .cluster
                    .send(encode_value(value, 0, RECORD_BYTES_MIN))
                    .await;
                let recorder = Arc::clone(&self.recorder);
                tokio::spawn(async move {
                    let resolved = ticket.await;
                    lock(&recorder).complete(value, &resolved.outcome);
                });
            }
            Step::Poll => self.poll(false),
            Step::Commit => {
                let committed = self.cluster.committed().await.map(|o| o.0);
                let mut r = lock(&self.recorder);
                r.push(
                    Process::Consumer,
                    OpType::Invoke,
                    Fun::Commit { offset: None },
                );
                let op_type = if committed.is_some() {
                    OpType::Ok
                } else {
                    OpType::Fail
                };
                r.push(
                    Process::Consumer,
                    op_type,
                    Fun::Commit { offset: committed },
                );
            }
            Step::Pause { ms } => {
                self.sleep(Duration::from_millis(ms)).await;
            }
            Step::CrashLeader => {
                let Some(leader) = self.leader().await else {
                    return false;
                };
                return self.crash(leader, " (the leader)").await;
            }
            Step::CrashFollower { rank } => {
                let Some(b) = self.follower(rank).await else {
                    return false;
                };
                return self.crash(b, " (a follower)").await;
            }
            Step::RestartBroker => {
                let Some(&b) = self.down.front() else {
                    return false;
                };
                return self.restart(b).await;
            }
            Step::RestartAll => {
                if self.down.is_empty() {
                    return false;
                }
                for b in self.down.clone() {
                    self.restart(b).await;
                }
            }
            Step::Partition { followers, clients } => {
                let leader = self.leader().await.unwrap_or(BrokerId(0));
                let mut side = vec![self.topology.broker(leader)];
                let mut names = vec![format!("b{}", leader.0)];
                for (rank, f) in self.cluster.followers_of(leader).into_iter().enumerate() {
                    if followers & (1 << rank) != 0 {
                        side.push(self.topology.broker(f));
                        names.push(format!("b{}", f.0));
                    }
                }
                // The application hosts the producer and the consumer: one client process.
                let app = self.cluster.app();
                let application = [self.topology.producer(), self.topology.consumer(), app];
                if clients & CONTROLLER_BIT != 0 {
                    side.push(self.topology.controller());
                    names.push("ctl".to_string());
                }
                if clients & APPLICATION_BIT != 0 {
                    side.extend(application);
                    names.push("prod,cons".to_string());
                }
                let other: Vec<Id> = (0..usize::from(app))
                    .map(Id::from)
                    .filter(|id| !side.contains(id))
                    .chain((clients & APPLICATION_BIT == 0).then_some(app))
                    .collect();
                let other_names: Vec<String> = other
                    .iter()
                    .filter(|&&id| id != app)
                    .map(|&id| self.topology.short_name(id))
                    .collect();
                let (a, b) = (side, other);
                self.cluster.partition(vec![a, b]);
                self.partitioned = true;
                self.nemesis(format!(
                    "partition {{{}}} | {{{}}}",
                    names.join(","),
                    other_names.join(",")
                ));
            }
            Step::Heal => {
                if !self.partitioned {
                    return false;
                }
                network.heal();
                self.partitioned = false;
                self.nemesis("heal the partition".into());
            }
            Step::Drop { percent } => {
                if self.network == NetworkKind::Reliable {
                    return false;
                }
                let p = f64::from(percent.min(50)) / 100.0;
                network.set_drop_rate(p);
                self.nemesis(format!("drop {}% of messages", percent.min(50)));
            }
            Step::Duplicate { percent } => {
                if self.network != NetworkKind::Duplicating {
                    return false;
                }
                let p = f64::from(percent.min(50)) / 100.0;
                network.set_duplicate_rate(p);
                self.nemesis(format!("duplicate {}% of messages", percent.min(50)));
            }
            Step::Delay { ms } => {
                let ms = ms.clamp(1, 200);
                if self.network == NetworkKind::Duplicating {
                    network.set_delay(HOP..HOP + Duration::from_millis(ms));
                    self.nemesis(format!("delay messages 0..{ms}ms (reordering)"));
                } else {
                    // Never shorter than before: see `Harness::delay_ms`.
                    let ms = ms.max(self.delay_ms);
                    self.delay_ms = ms;
                    let d = Duration::from_millis(ms).max(HOP);
                    network.set_delay(d..d);
                    self.nemesis(format!("delay messages {ms}ms"));
                }
            }
            Step::ClearNetwork => {
                network.set_drop_rate(0.0);
                network.set_duplicate_rate(0.0);
                if self.network == NetworkKind::Duplicating {
                    network.set_delay(HOP..HOP);
                }
                self.nemesis("clear drops and duplicates".into());
            }
            Step::SlowFollower { rank, ms } => {
                let Some(b) = self.follower(rank).await else {
                    return false;
                };
                let slowest = self.slow_ms.entry(b).or_default();
                let ms = ms.clamp(1, 2000).max(*slowest);
                *slowest = ms;
                network.slow(self.topology.broker(b), Duration::from_millis(ms));
                self.nemesis(format!("slow broker {} by {ms}ms", b.0));
            }
            Step::CrashConsumer => {
                if self.consumer_down {
                    return false;
                }
                let _ = self.cluster.crash_consumer().await;
                self.consumer_down = true;
                self.nemesis("crash the consumer".into());
            }
            Step::RestartConsumer => {
                if !self.consumer_down {
                    return false;
                }
                let _ = self.cluster.restart_consumer().await;
                self.consumer_down = false;
                self.nemesis("restart the consumer".into());
            }
            Step::CrashController => {
                if self.controller_down || !self.cluster.crash_controller().await {
                    return false;
                }
                self.controller_down = true;
                self.nemesis("crash the controller".into());
            }
            Step::RestartController => {
                if !self.controller_down {
                    return false;
                }
                // A controller that cannot recover stays down; the drain says so.
                self.controller_down = !self.cluster.restart_controller().await;
                self.nemesis("restart the controller".into());
            }
            Step::TornWrite { written } => {
                return self.damage(DiskFault::TornWrite, FileDamage::TornWrite { written });
            }
            Step::LostFsync => {
                return self.damage(DiskFault::LostFsync, FileDamage::LostFsync);
            }
            Step::BitFlip { region, at } => {
                return self.damage(DiskFault::BitFlip, FileDamage::BitFlip { region, at });
            }
            Step::MissingFile { file } => {
                return self.damage(DiskFault::MissingFile, FileDamage::MissingFile { file });
            }
            Step::FileBitFlip { file, at } => {
                return self.damage(DiskFault::BitFlip, FileDamage::FileBitFlip { file, at });
            }
            Step::DiskFull => {
                let Some(disks) = self.disks.clone() else {
                    return false;
                };
                let target = match self.damaged {
                    Some(d) => Some(d),
                    None => self.leader().await,
                };
                let Some(b) = target else {
                    return false;
                };
                if self.is_down(b)
                    || self.dead.contains(&b)
                    || disks.faults(b.0).is_full()
                    || self.out_of_service() + 1 >= self.topology.replicas
                {
                    return false;
                }
                disks.faults(b.0).fill();
                self.damaged = Some(b);
                self.disk_event(
                    b,
                    DiskEvent::Injected {
                        fault: DiskFault::DiskFull,
                        what: "disk full: its next write fails with ENOSPC".into(),
                        first_offset: None,
                    },
                );
            }
        }
        true
    }

    /// Records a poll of what the consumer delivered; `quiet` skips an empty one.
    fn poll(&self, quiet: bool) {
        let records: Vec<Read> = self
            .cluster
            .take_reads()
            .into_iter()
            .filter_map(|d| {
                decode(&d.record.value).map(|value| Read {
                    offset: d.record.offset.0,
                    value,
                })
            })
            .collect();
        if quiet && records.is_empty() {
            return;
        }
        let mut r = lock(&self.recorder);
        r.push(
            Process::Consumer,
            OpType::Invoke,
            Fun::Poll {
                records: Vec::new(),
            },
        );
        r.push(Process::Consumer, OpType::Ok, Fun::Poll { records });
    }

    /// Lets virtual time pass, giving up on sends whose client timeout passes meanwhile.
    async fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let next_deadline = lock(&self.recorder).pending.values().min().copied();
            let wake = next_deadline.map_or(until, |n| n.min(until));
            tokio::time::sleep_until(wake).await;
            lock(&self.recorder).expire(Instant::now());
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// Heals every fault, restarts what is down, waits for the sends and for the consumer to
    /// read everything the final leader committed, and reads the final leader's log.
    async fn drain(&mut self) {
        let network = self.cluster.runtime().network();
        // Every fault ends. Delays and slow links go back to one hop too: the network keeps each
        // connection FIFO when a delay shrinks, so nothing in flight is reordered. (A slow link
        // left in place can hold a round trip above the clients' request timeout for good: the
        // answer always arrives just after the client gave up on it, and no client progresses.)
        network.heal();
        network.set_drop_rate(0.0);
        network.set_duplicate_rate(0.0);
        network.set_delay(HOP..HOP);
        for b in std::mem::take(&mut self.slow_ms).into_keys() {
            network.slow(self.topology.broker(b), Duration::ZERO);
        }
        self.delay_ms = 0;
        self.partitioned = false;
        self.record_disk_events();
        for b in self.topology.brokers() {
            self.maybe_free_space(b);
        }
        let down: Vec<BrokerId> = self.down.iter().copied().collect();
        for b in down {
            self.restart(b).await;
        }
        if self.consumer_down {
            let _ = self.cluster.restart_consumer().await;
            self.consumer_down = false;
        }
        if self.controller_down {
            self.controller_down = !self.cluster.restart_controller().await;
        }
        self.nemesis(
            "drain: heal partitions, end drops, duplicates, delays and slow links, restart what is down"
                .into(),
        );
        let deadline = Instant::now() + self.options.drain_max;
        let step = Duration::from_millis(100);
        let mut settled_final = None;
        while Instant::now() < deadline {
            self.sleep(step).await;
            self.record_disk_events();
            self.poll(true);
            if !lock(&self.recorder).pending.is_empty() {
                continue;
            }
            if let Some(done) = self.settled().await {
                settled_final = Some(done);
                break;
            }
        }
        // Whatever the consumer delivered at the very end.
        self.sleep(step).await;
        self.poll(true);
        lock(&self.recorder).expire(Instant::now() + self.options.client_timeout);
        let (leader, records) = match settled_final {
            Some(found) => found,
            None => self.final_log().await,
        };
        lock(&self.recorder).push(
            Process::Final,
            OpType::Ok,
            Fun::FinalRead {
                leader: leader.map(|b| b.0),
                records,
            },
        );
    }

    /// The final leader's log, once the producer has given up or finished every record (a
    /// send the client stopped waiting for may still be retried and appended), the leader has
    /// committed all of its log, and the consumer has reached its end.
    async fn settled(&self) -> Option<(Option<BrokerId>, Vec<Read>)> {
        let producer_idle = self
            .cluster
            .runtime()
            .inspect(self.topology.producer(), |s| {
                s.as_producer().map(|p| p.is_idle())
            })
            .await
            .flatten()?;
        if !producer_idle {
            return None;
        }
        let leader = self.leader().await?;
        let (records, hw, end, is_leader) = self
            .cluster
            .runtime()
            .inspect(self.topology.broker(leader), |s| {
                s.as_broker().map(|b| {
                    let records: Vec<(u64, Option<u64>)> = b
                        .log
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (i as u64, decode(&r.value)))
                        .collect();
                    (
                        records,
                        b.high_watermark.0,
                        b.log_end_offset().0,
                        b.is_leader(),
                    )
                })
            })
            .await
            .flatten()?;
        if !is_leader || hw != end {
            return None;
        }
        let position = self
            .cluster
            .runtime()
            .inspect(self.topology.consumer(), |s| {
                s.as_consumer().map(|c| c.position.0)
            })
            .await
            .flatten()?;
        if position != end {
            return None;
        }
        let reads = records
            .into_iter()
            .filter_map(|(offset, v)| v.map(|value| Read { offset, value }))
            .collect();
        Some((Some(leader), reads))
    }

    /// The log of whoever the controller names leader, settled or not.
    async fn final_log(&self) -> (Option<BrokerId>, Vec<Read>) {
        let Some(leader) = self.leader().await else {
            return (None, Vec::new());
        };
        let records = self
            .cluster
            .runtime()
            .inspect(self.topology.broker(leader), |s| {
                s.as_broker().map(|b| {
                    b.log
                        .iter()
                        .enumerate()
                        .filter_map(|(i, r)| {
                            decode(&r.value).map(|value| Read {
                                offset: i as u64,
                                value,
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .await
            .flatten()
            .unwrap_or_default();
        (Some(leader), records)
    }
}
