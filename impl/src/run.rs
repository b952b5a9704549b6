//! `insync run`: a workload against an in-process cluster, with faults, and a verdict on what
//! was acknowledged, lost, duplicated or read uncommitted.

use crate::checker::{AnomalyKind, Verdict};
use crate::engine::{Cluster, Delivery, EngineOptions, Resolved, SendId, SendTicket};
use crate::history::{decode_value, encode_value, Fun, History, OpType, Process, Read};
use hdrhistogram::Histogram;
use insync_model::producer::Outcome;
use insync_model::types::{BrokerId, Offset, Value};
use insync_model::ValidConfig;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
// tokio's clock, so that a run on a paused clock (`--virtual-clock`) measures virtual time.
use tokio::time::Instant;

/// A fault the run injects, once, partway through the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Crash the current leader, restart it a moment later.
    CrashLeader,
    /// Cut the current leader off from everyone, heal a moment later.
    Partition,
    /// Delay every message to and from one follower for a while.
    SlowFollower,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub records: u64,
    pub record_size: usize,
    pub faults: Vec<Fault>,
    pub seed: u64,
    /// Most sends awaiting their outcome at once.
    pub window: usize,
    pub progress: bool,
    pub engine: EngineOptions,
    /// How long a fault lasts before it is healed or the broker restarted.
    pub fault_duration: Duration,
    /// How long the drain waits for the consumer to catch up.
    pub drain_timeout: Duration,
    /// Run against the brokers and controller of a multi-process cluster instead of an
    /// in-process one.
    pub connect: Option<crate::tcp::ClusterAddrs>,
    /// The caller runs this on a paused clock (`insync run --virtual-clock`,
    /// [`crate::engine::paused_runtime`]). Every message is then delayed by [`crate::engine::VIRTUAL_HOP`]
    /// (drawn with the engine's seed; see [`crate::engine::ClusterBuilder::paused_clock`]).
    pub virtual_clock: bool,
    /// Keep the run's history in the report ([`RunReport::history`]).
    pub keep_history: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            records: 20_000,
            record_size: 100,
            faults: Vec::new(),
            seed: 0,
            window: 4096,
            progress: false,
            engine: EngineOptions::default(),
            fault_duration: Duration::from_millis(2500),
            drain_timeout: Duration::from_secs(10),
            connect: None,
            virtual_clock: false,
            keep_history: false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub config: insync_model::Config,
    pub records: u64,
    pub record_size: usize,
    pub producers: usize,
    pub seed: u64,
    pub faults: Vec<String>,
    pub acknowledged: u64,
    pub failed: u64,
    pub indeterminate: u64,
    /// The history checker's `lost-write` count: acknowledged records the final leader does
    /// not hold while later offsets were read (or that were read, then vanished).
    pub lost: u64,
    /// The checker's `duplicate` count: records read (by the consumer or in the final
    /// leader's log) at more than one offset.
    pub duplicated: u64,
    /// The checker's `read-uncommitted` count: records the consumer read that the final
    /// leader does not hold at that offset.
    pub read_uncommitted: u64,
    /// The checker's `unseen` count: acknowledged records the consumer never read (and not
    /// lost writes).
    pub unseen: u64,
    /// This run's records the consumer read (a record read twice counts twice).
    pub read: u64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub megabytes_per_second: f64,
    pub ack_latency: Latency,
    pub read_latency: Latency,
    /// Examples of lost records: `index@offset`.
    pub lost_examples: Vec<String>,
    /// Messages the network carried, dropped (faults, full mailboxes) and duplicated.
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// Whether the run was on a paused clock (`--virtual-clock`): seconds, rates and latencies
    /// are then in virtual time.
    pub virtual_clock: bool,
    /// The history checker's verdict on the run's history: every anomaly it names, with
    /// their counts (`lost`, `duplicated`, `read_uncommitted` and `unseen` are four of them).
    /// The history's values are the records' indices in the run.
    pub verdict: Verdict,
    /// The run's history, when [`RunOptions::keep_history`] asks for it (tests).
    #[serde(skip)]
    pub history: Option<History>,
}

/// The history's value for a record at `offset`: the run's record index, or, for a record
/// of another run (a shared cluster, a reused data directory), a value no send of this run
/// has, one per offset, so that the checker sees the offset read and no send in it.
fn history_value(value: &Value, run: u64, offset: Offset) -> u64 {
    decode_value(value, run).unwrap_or(FOREIGN_VALUES | offset.0)
}

/// Values from here on stand for other runs' records.
const FOREIGN_VALUES: u64 = 1 << 63;

/// The smallest record: index and run id.
pub use crate::history::RECORD_BYTES_MIN;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What happened during a run, as it happened: sorted by time into the run's history at the
/// end. Shared with the tasks that end faults.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

/// One thing that happened, with when.
type Event = (Instant, Process, OpType, Fun);

impl Events {
    fn push(&self, at: Instant, process: Process, op_type: OpType, fun: Fun) {
        self.0
            .lock()
            .expect("events lock")
            .push((at, process, op_type, fun));
    }

    fn nemesis(&self, what: String) {
        self.push(
            Instant::now(),
            Process::Nemesis,
            OpType::Info,
            Fun::Nemesis { what },
        );
    }

    fn polls(&self, deliveries: &[Delivery], run: u64) {
        // One poll per batch the consumer handed over (they share the moment they arrived).
        for batch in deliveries.chunk_by(|a, b| a.at == b.at) {
            let records = batch
                .iter()
                .map(|d| Read {
                    offset: d.record.offset.0,
                    value: history_value(&d.record.value, run, d.record.offset),
                })
                .collect();
            let at = batch[0].at;
            self.push(
                at,
                Process::Consumer,
                OpType::Invoke,
                Fun::Poll {
                    records: Vec::new(),
                },
            );
            self.push(at, Process::Consumer, OpType::Ok, Fun::Poll { records });
        }
    }

    /// The history, in the order things happened, times in milliseconds since `start`.
    fn into_history(self, start: Instant) -> History {
        let mut events = std::mem::take(&mut *self.0.lock().expect("events lock"));
        events.sort_by_key(|e| e.0);
        let mut history = History::new();
        for (at, process, op_type, fun) in events {
            let at_ms = at.saturating_duration_since(start).as_millis() as u64;
            history.push(at_ms, process, op_type, fun);
        }
        history
    }
}

/// The send of record `index` through `producer` as the history tells it.
fn send_op(index: u64, producer: usize, outcome: Option<&Outcome>) -> (OpType, Fun) {
    let (op_type, offset, error) = match outcome {
        None => (OpType::Invoke, None, None),
        Some(Outcome::Acked(offset)) => (OpType::Ok, Some(offset.0), None),
        Some(Outcome::Failed(e)) => (OpType::Fail, None, Some(e.name().to_string())),
        Some(Outcome::Indeterminate(e)) => (OpType::Info, None, Some(e.name().to_string())),
        Some(Outcome::Sent) => (OpType::Info, None, Some("acks=0".to_string())),
    };
    (
        op_type,
        Fun::Send {
            value: index,
            offset,
            error,
            producer: producer as u32,
        },
    )
}

/// Runs the workload and judges the outcome: the run is recorded as a history (sends,
/// polls, faults, the final leader's log) and judged by the history checker
/// ([`crate::checker`]), as `insync fuzz` judges its histories.
pub async fn run(config: ValidConfig, options: RunOptions) -> anyhow::Result<RunReport> {
    let cluster = Arc::new(
        Cluster::builder(config.clone())
            .options(options.engine.clone())
            .connect(options.connect.clone())
            .paused_clock(options.virtual_clock)
            .start()
            .await?,
    );
    if options.engine.data_dir.is_some() && !cluster.is_remote() {
        // Brokers restarted on a data directory leave the ISR until they catch up (KIP-380):
        // start the workload once they are back, as an operator would after a restart.
        let replicas = cluster.topology().replicas;
        if !cluster
            .wait_for_isr(replicas, Duration::from_secs(10))
            .await
        {
            tracing::warn!(
                "the ISR did not reach all {replicas} replicas within 10 s of the start; \
                 sending anyway (min.insync.replicas may refuse sends)"
            );
        }
    }
    let run_id: u64 = rand::random();
    let start = Instant::now();
    let events = Events::default();
    let mut sent_at: Vec<Instant> = Vec::with_capacity(options.records as usize);

    let bar = options.progress.then(|| {
        let bar = indicatif::ProgressBar::new(options.records);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} records resolved {per_sec} [{elapsed_precise}] {msg}",
            )
            .expect("valid progress template"),
        );
        bar
    });

    // Faults fire when the workload reaches evenly spaced fractions of its records.
    let mut schedule: VecDeque<(u64, Fault)> = options
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let at = options.records * (i as u64 + 1) / (options.faults.len() as u64 + 1);
            (at, *f)
        })
        .collect();
    let mut injected = Vec::new();
    let mut restarts = Vec::new();

    // By correlation id: the record index each send carries.
    let mut index_of: HashMap<SendId, u64> = HashMap::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; options.records as usize];
    let mut acks = histogram();
    let mut window: VecDeque<SendTicket> = VecDeque::new();
    let mut resolve = |resolved: Resolved,
                       index_of: &mut HashMap<SendId, u64>,
                       outcomes: &mut Vec<Option<Outcome>>,
                       sent_at: &[Instant]| {
        // Every ticket's correlation id was noted when it was sent.
        let Some(index) = index_of.remove(&resolved.id) else {
            return;
        };
        if let Outcome::Acked(_) = resolved.outcome {
            let sent = sent_at[index as usize];
            let _ = acks.record(resolved.at.duration_since(sent).as_micros().max(1) as u64);
        }
        let (op_type, fun) = send_op(index, resolved.id.producer, Some(&resolved.outcome));
        events.push(resolved.at, Process::Producer, op_type, fun);
        outcomes[index as usize] = Some(resolved.outcome);
    };
    for index in 0..options.records {
        while schedule.front().is_some_and(|(at, _)| *at <= index) {
            let (_, fault) = schedule.pop_front().expect("checked front");
            let what = inject(
                &cluster,
                fault,
                options.fault_duration,
                &mut restarts,
                &events,
            )
            .await;
            injected.push(what);
            if let Some(bar) = &bar {
                bar.set_message(format!("faults: {}", injected.join(", ")));
            }
        }
        if window.len() >= options.window {
            let ticket = window.pop_front().expect("window not empty");
            resolve(ticket.await, &mut index_of, &mut outcomes, &sent_at);
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        let now = Instant::now();
        sent_at.push(now);
        let producer = index as usize % cluster.producers();
        let (op_type, fun) = send_op(index, producer, None);
        events.push(now, Process::Producer, op_type, fun);
        let ticket = cluster
            .send_via(producer, encode_value(index, run_id, options.record_size))
            .await;
        index_of.insert(ticket.id(), index);
        window.push_back(ticket);
    }
    while let Some(ticket) = window.pop_front() {
        resolve(ticket.await, &mut index_of, &mut outcomes, &sent_at);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    let produce_seconds = start.elapsed().as_secs_f64();

    // Heal everything, restart what is down, and let the consumer catch up.
    if !cluster.is_remote() {
        cluster.heal();
        for b in restarts.drain(..) {
            let _ = restart_later(&cluster, b, Duration::ZERO).await;
        }
        for b in cluster.topology().brokers() {
            let _ = cluster.restart(b).await;
        }
        events.nemesis("drain: heal partitions and slow links, restart what is down".into());
    }
    let acknowledged = outcomes
        .iter()
        .filter(|o| matches!(o, Some(Outcome::Acked(_))))
        .count() as u64;
    let mut reads: Vec<Delivery> = Vec::new();
    let of_run = |reads: &[Delivery]| {
        reads
            .iter()
            .filter(|d| decode_value(&d.record.value, run_id).is_some())
            .count() as u64
    };
    let drain_deadline = Instant::now() + options.drain_timeout;
    let mut read = 0;
    loop {
        let batch = cluster.take_reads();
        read += of_run(&batch);
        reads.extend(batch);
        if read >= acknowledged || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    if let Some(reason) = cluster.storage_failure() {
        cluster.shutdown().await;
        anyhow::bail!(
            "storage failed during the run (fail-stop; a failed write or fsync is never \
             retried): {reason}; the run's verdict would mean nothing; check the disk under \
             --data-dir"
        );
    }

    // The final read: the final leader's log. When the brokers are other processes it
    // cannot be read, and the checker judges on what the consumer read (it reads committed
    // records only).
    let (leader, records) = if cluster.is_remote() {
        (None, Vec::new())
    } else {
        let mut leader_log = None;
        for _ in 0..100 {
            if let Some(leader) = cluster.leader().await {
                if let Some((log, true)) = cluster.broker_log(leader).await {
                    leader_log = Some((leader, log));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (leader, log) = leader_log
            .ok_or_else(|| anyhow::anyhow!("no leader after the run; cannot judge it"))?;
        let records = log
            .iter()
            .enumerate()
            .map(|(i, r)| Read {
                offset: i as u64,
                value: history_value(&r.value, run_id, Offset(i as u64)),
            })
            .collect();
        (Some(leader.0), records)
    };
    events.polls(&reads, run_id);
    events.push(
        Instant::now(),
        Process::Final,
        OpType::Ok,
        Fun::FinalRead { leader, records },
    );
    let history = events.into_history(start);
    let verdict = crate::checker::check_history(&history);

    // Examples of lost records, `record INDEX@OFFSET`, from the checker's lost writes.
    let lost_examples = verdict
        .anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::LostWrite)
        .filter_map(|a| {
            a.ops.iter().find_map(|&op| match &history.ops[op].fun {
                Fun::Send {
                    value,
                    offset: Some(offset),
                    ..
                } => Some(format!("record {value}@{offset}")),
                _ => None,
            })
        })
        .take(10)
        .collect();
    let mut read_lat = histogram();
    let mut read_indices = std::collections::HashSet::new();
    for d in &reads {
        if let Some(i) = decode_value(&d.record.value, run_id) {
            if read_indices.insert(i) {
                if let Some(sent) = sent_at.get(i as usize) {
                    let _ = read_lat.record(d.at.duration_since(*sent).as_micros().max(1) as u64);
                }
            }
        }
    }
    let stats = cluster.runtime().network().stats();
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().flatten().filter(|o| f(o)).count() as u64;
    let count_of = |kind| verdict.count(kind) as u64;
    let report = RunReport {
        config: config.into_inner(),
        records: options.records,
        record_size: options.record_size,
        producers: cluster.producers(),
        seed: options.seed,
        faults: injected,
        acknowledged,
        failed: count(|o| matches!(o, Outcome::Failed(_))),
        indeterminate: count(|o| matches!(o, Outcome::Indeterminate(_))),
        lost: count_of(AnomalyKind::LostWrite),
        duplicated: count_of(AnomalyKind::Duplicate),
        read_uncommitted: count_of(AnomalyKind::ReadUncommitted),
        unseen: count_of(AnomalyKind::Unseen),
        read,
        seconds: produce_seconds,
        records_per_second: acknowledged as f64 / produce_seconds.max(1e-9),
        megabytes_per_second: (acknowledged as f64 * options.record_size as f64)
            / produce_seconds.max(1e-9)
            / 1e6,
        ack_latency: Latency::of(&acks),
        read_latency: Latency::of(&read_lat),
        lost_examples,
        messages_sent: stats.sent,
        messages_dropped: stats.dropped,
        virtual_clock: options.virtual_clock,
        verdict,
        history: options.keep_history.then_some(history),
    };
    cluster.shutdown().await;
    Ok(report)
}

async fn inject(
    cluster: &Arc<Cluster>,
    fault: Fault,
    duration: Duration,
    restarts: &mut Vec<BrokerId>,
    events: &Events,
) -> String {
    let leader = cluster.leader().await;
    let what = match (fault, leader) {
        (Fault::CrashLeader, Some(b)) => {
            // The leader the controller named may have gone down already; the restart below
            // brings it back either way.
            let _ = cluster.crash(b).await;
            restarts.push(b);
            let cluster = Arc::clone(cluster);
            let events = events.clone();
            tokio::spawn(async move {
                if restart_later(&cluster, b, duration).await {
                    events.nemesis(format!("restart broker {}", b.0));
                }
            });
            format!("crash-leader(broker {})", b.0)
        }
        (Fault::Partition, Some(b)) => {
            cluster.isolate(b);
            let cluster = Arc::clone(cluster);
            let events = events.clone();
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                cluster.heal();
                events.nemesis("heal the partition".into());
            });
            format!("partition(broker {})", b.0)
        }
        (Fault::SlowFollower, Some(_)) => match cluster.follower(0).await {
            Some(f) => {
                cluster.slow(f, Duration::from_millis(50));
                let cluster = Arc::clone(cluster);
                let events = events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(duration).await;
                    cluster.slow(f, Duration::ZERO);
                    events.nemesis(format!("end the slow link of broker {}", f.0));
                });
                format!("slow-follower(broker {})", f.0)
            }
            None => "slow-follower(no follower)".into(),
        },
        (fault, None) => format!("{fault:?}(no leader)"),
    };
    events.nemesis(what.clone());
    what
}

async fn restart_later(cluster: &Cluster, b: BrokerId, after: Duration) -> bool {
    tokio::time::sleep(after).await;
    cluster.restart(b).await
}

/// `insync run --kafka-listen`: how to serve Kafka clients.
#[derive(Clone, Debug)]
pub struct KafkaServeOptions {
    pub kafka: crate::kafka::KafkaOptions,
    pub duration: Duration,
    pub faults: Vec<Fault>,
    pub fault_duration: Duration,
    pub engine: EngineOptions,
}

/// What the cluster looked like when `--duration` was over. External clients judge their
/// own deliveries; this is what the brokers can say.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KafkaServeReport {
    pub config: insync_model::Config,
    pub listen: Vec<String>,
    pub topic: String,
    pub seconds: f64,
    pub faults: Vec<String>,
    /// The controller's leader at the end, and its epoch.
    pub leader: Option<u8>,
    pub leader_epoch: u32,
    /// The leader's log end offset and high watermark at the end.
    pub log_end_offset: u64,
    pub high_watermark: u64,
    /// Records from idempotent producers whose (producer id, sequence) the leader's log holds
    /// more than once (KIP-98 says never).
    pub idempotent_duplicates: u64,
    /// Distinct producer ids in the leader's log.
    pub producer_ids: u64,
}

/// Starts an in-process cluster with a Kafka listener per broker, injects `faults` evenly
/// over `duration`, and reports the brokers' final state. The listeners' addresses are
/// printed on stderr as soon as they are bound (`kafka listeners: ADDR,ADDR,...`), so a
/// script can wait for that line.
pub async fn serve_kafka(
    config: ValidConfig,
    options: KafkaServeOptions,
) -> anyhow::Result<KafkaServeReport> {
    let cluster = Arc::new(Cluster::start(config.clone(), options.engine.clone()).await?);
    let listeners = crate::kafka::listen(Arc::clone(&cluster), options.kafka.clone()).await?;
    let listen: Vec<String> = listeners.addrs.iter().map(|a| a.to_string()).collect();
    eprintln!("kafka listeners: {}", listen.join(","));
    let start = Instant::now();
    // The engine's own consumer reads the log too; what it hands over is counted and dropped.
    cluster.keep_reads(false);
    let mut injected = Vec::new();
    let mut restarts = Vec::new();
    let n = options.faults.len() as u32;
    for (i, fault) in options.faults.iter().enumerate() {
        let at = options.duration * (i as u32 + 1) / (n + 1);
        tokio::time::sleep_until(start + at).await;
        let what = inject(
            &cluster,
            *fault,
            options.fault_duration,
            &mut restarts,
            &Events::default(),
        )
        .await;
        eprintln!("fault at {:.1}s: {what}", start.elapsed().as_secs_f64());
        injected.push(what);
    }
    tokio::time::sleep_until(start + options.duration).await;
    let (leader, leader_epoch) = cluster
        .runtime()
        .inspect(cluster.topology().controller(), |s| {
            s.as_controller()
                .map(|c| (c.partition.leader, c.partition.leader_epoch))
        })
        .await
        .flatten()
        .unwrap_or((None, insync_model::types::Epoch(0)));
    let mut report = KafkaServeReport {
        config: config.clone().into_inner(),
        listen,
        topic: options.kafka.topic.clone(),
        seconds: start.elapsed().as_secs_f64(),
        faults: injected,
        leader: leader.map(|b| b.0),
        leader_epoch: leader_epoch.0,
        ..KafkaServeReport::default()
    };
    if let Some(b) = leader {
        let view = cluster
            .runtime()
            .inspect(cluster.topology().broker(b), |s| {
                s.as_broker().map(|b| (b.log.clone(), b.high_watermark))
            })
            .await
            .flatten();
        if let Some((log, hw)) = view {
            report.log_end_offset = log.log_end_offset().0;
            report.high_watermark = hw.0;
            let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
            for offset in 0..log.log_end_offset().as_usize() {
                if let Some((pid, seq)) =
                    log.get(Offset::from_usize(offset)).and_then(|r| r.producer)
                {
                    *seen.entry((pid.0, seq.0)).or_default() += 1;
                }
            }
            report.idempotent_duplicates =
                seen.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
            let pids: std::collections::HashSet<u32> = seen.keys().map(|k| k.0).collect();
            report.producer_ids = pids.len() as u64;
        }
    }
    drop(listeners);
    cluster.shutdown().await;
    Ok(report)
}

/// The human report of [`serve_kafka`].
pub fn render_kafka(report: &KafkaServeReport) -> String {
    format!(
        "configuration: {}\nkafka listeners: {} (topic {:?}, partition 0)\nserved {:.1} s, faults: {}\n\
         leader at the end: {} (epoch {}), log end offset {}, high watermark {}\n\
         idempotent producers in the log: {}, records held twice by (producer id, sequence): {}\n",
        engine_summary(&report.config),
        report.listen.join(","),
        report.topic,
        report.seconds,
        if report.faults.is_empty() {
            "none".to_string()
        } else {
            report.faults.join(", ")
        },
        report
            .leader
            .map_or("none".to_string(), |b| format!("broker {b}")),
        report.leader_epoch,
        report.log_end_offset,
        report.high_watermark,
        report.producer_ids,
        report.idempotent_duplicates,
    )
}

/// The configuration's summary without the model's record count, which bounds only the
/// checker's search (the engine's workload, or the Kafka clients, send their own).
fn engine_summary(config: &insync_model::Config) -> String {
    insync_model::Config {
        records: insync_model::Config::default().records,
        ..config.clone()
    }
    .summary()
}

/// The human report.
pub fn render_run_report(report: &RunReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "configuration: {}\n",
        engine_summary(&report.config)
    ));
    s.push_str(&format!(
        "workload: {} records of {} B from {} producer(s), seed {}, faults: {}\n\n",
        report.records,
        report.record_size,
        report.producers,
        report.seed,
        if report.faults.is_empty() {
            "none".to_string()
        } else {
            report.faults.join(", ")
        }
    ));
    s.push_str(&format!(
        "acknowledged {}  failed {}  indeterminate {}\n",
        report.acknowledged, report.failed, report.indeterminate
    ));
    s.push_str(&format!(
        "LOST {}  duplicated {}  read-uncommitted {}  unseen {}  read {}\n",
        report.lost, report.duplicated, report.read_uncommitted, report.unseen, report.read
    ));
    for e in &report.lost_examples {
        s.push_str(&format!("  lost: {e}\n"));
    }
    s.push_str(&format!("checker: {}\n", verdict_line(&report.verdict)));
    s.push_str(&format!(
        "messages: {} sent, {} dropped\n",
        report.messages_sent, report.messages_dropped
    ));
    s.push_str(&format!(
        "\nthroughput: {:.0} records/s, {:.1} MB/s over {:.2}s{}\n",
        report.records_per_second,
        report.megabytes_per_second,
        report.seconds,
        if report.virtual_clock {
            " of virtual time (--virtual-clock)"
        } else {
            ""
        }
    ));
    let lat = |name: &str, l: &Latency| {
        format!(
            "{name}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)\n",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
        )
    };
    s.push_str(&lat("send -> ack ", &report.ack_latency));
    s.push_str(&lat("send -> read", &report.read_latency));
    s
}

/// The checker's verdict in one line: `valid`, or each anomaly kind with its count.
fn verdict_line(verdict: &Verdict) -> String {
    if verdict.is_valid() {
        return "valid (no anomaly in the run's history)".to_string();
    }
    let kinds: Vec<String> = verdict
        .counts
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    kinds.join(", ")
}
