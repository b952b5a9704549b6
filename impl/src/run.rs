//! `insync run`: a workload against an in-process cluster, with faults, and a verdict on what
//! was acknowledged, lost, duplicated or read uncommitted.

use crate::engine::{Cluster, EngineOptions};
use hdrhistogram::Histogram;
use insync_model::producer::Outcome;
use insync_model::types::{BrokerId, Offset, Value};
use insync_model::ValidConfig;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// The caller runs this on a paused clock (`insync run --virtual-clock`, a current-thread
    /// runtime with `start_paused`). Every message is then delayed by [`VIRTUAL_HOP`] (drawn
    /// with the engine's seed): otherwise messages arrive in no time, and a follower could
    /// never be behind its leader when a fault strikes.
    pub virtual_clock: bool,
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
    /// Acknowledged records missing from the final leader's log at their offset.
    pub lost: u64,
    /// Records present more than once in the final leader's log.
    pub duplicated: u64,
    /// Records the consumer read that the final leader does not hold at that offset.
    pub read_uncommitted: u64,
    /// Acknowledged records the consumer never read.
    pub unseen: u64,
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
}

/// A record's value: its index in the run, the run's id (so a shared cluster's log, which
/// holds earlier runs' records too, is judged by this run's records only), then padding.
fn encode_value(index: u64, run: u64, size: usize) -> Vec<u8> {
    let mut v = index.to_le_bytes().to_vec();
    v.extend_from_slice(&run.to_le_bytes());
    v.resize(size.max(RECORD_BYTES_MIN), 0);
    v
}

/// The index of a record of run `run`.
fn decode_value(value: &Value, run: u64) -> Option<u64> {
    match value {
        Value::Bytes(b) if b.len() >= RECORD_BYTES_MIN => {
            let index = u64::from_le_bytes(b[..8].try_into().ok()?);
            let of_run = u64::from_le_bytes(b[8..16].try_into().ok()?);
            (of_run == run).then_some(index)
        }
        _ => None,
    }
}

/// A message's delay on a paused clock: a LAN's hop.
pub const VIRTUAL_HOP: std::ops::Range<Duration> =
    Duration::from_micros(100)..Duration::from_micros(2000);

/// The smallest record: index and run id.
pub const RECORD_BYTES_MIN: usize = 16;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs the workload and judges the outcome.
pub async fn run(config: ValidConfig, options: RunOptions) -> anyhow::Result<RunReport> {
    let cluster = Arc::new(match &options.connect {
        None => Cluster::start(config.clone(), options.engine.clone()).await?,
        Some(addrs) => {
            Cluster::connect(config.clone(), options.engine.clone(), addrs.clone()).await?
        }
    });
    if options.virtual_clock {
        cluster.runtime().network().set_delay(VIRTUAL_HOP);
    }
    let run_id: u64 = rand::random();
    let start = Instant::now();
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));

    // The consumer side: read everything, note when.
    let reads: Arc<Mutex<Vec<(Offset, Value, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop_reading = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let cluster = Arc::clone(&cluster);
        let reads = Arc::clone(&reads);
        let stop = Arc::clone(&stop_reading);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.notified() => return,
                    batch = cluster.poll(Duration::from_millis(100)) => {
                        let now = Instant::now();
                        let mut reads = reads.lock().expect("reads lock");
                        // A shared cluster's log holds earlier runs' records too.
                        reads.extend(
                            batch
                                .into_iter()
                                .filter(|r| decode_value(&r.value, run_id).is_some())
                                .map(|r| (r.offset, r.value, now)),
                        );
                    }
                }
            }
        })
    };

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

    let mut outcomes: Vec<Option<Outcome>> = vec![None; options.records as usize];
    let mut acks = histogram();
    type Resolved = (Outcome, Instant);
    let mut window: VecDeque<(u64, tokio::sync::oneshot::Receiver<Resolved>)> = VecDeque::new();
    let resolve = |index: u64,
                   outcome: Result<Resolved, tokio::sync::oneshot::error::RecvError>,
                   outcomes: &mut Vec<Option<Outcome>>,
                   acks: &mut Histogram<u64>| {
        let (outcome, when) = outcome.unwrap_or((
            Outcome::Indeterminate(insync_model::msg::ErrorCode::RequestTimedOut),
            Instant::now(),
        ));
        if let Outcome::Acked(_) = outcome {
            let sent = sent_at.lock().expect("sent_at lock")[index as usize];
            let _ = acks.record(when.duration_since(sent).as_micros().max(1) as u64);
        }
        outcomes[index as usize] = Some(outcome);
    };
    for index in 0..options.records {
        while schedule.front().is_some_and(|(at, _)| *at <= index) {
            let (_, fault) = schedule.pop_front().expect("checked front");
            injected.push(inject(&cluster, fault, options.fault_duration, &mut restarts).await);
            if let Some(bar) = &bar {
                bar.set_message(format!("faults: {}", injected.join(", ")));
            }
        }
        if window.len() >= options.window {
            let (i, rx) = window.pop_front().expect("window not empty");
            resolve(i, rx.await, &mut outcomes, &mut acks);
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        sent_at.lock().expect("sent_at lock").push(Instant::now());
        let rx = cluster
            .send_via(
                index as usize % cluster.producers(),
                encode_value(index, run_id, options.record_size),
            )
            .await;
        window.push_back((index, rx));
    }
    while let Some((i, rx)) = window.pop_front() {
        resolve(i, rx.await, &mut outcomes, &mut acks);
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
    }
    let acked: HashMap<u64, Offset> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Some(Outcome::Acked(offset)) => Some((i as u64, *offset)),
            _ => None,
        })
        .collect();
    let drain_deadline = Instant::now() + options.drain_timeout;
    loop {
        let read_values: usize = reads.lock().expect("reads lock").len();
        if read_values as u64 >= acked.len() as u64 || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_reading.notify_one();
    let _ = reader.await;
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

    // The verdict, against the final leader's log; or, when the brokers are other
    // processes, against what the consumer read (it reads committed records only, so the
    // last value read at each offset is the committed log as far as it was read).
    let reads = std::mem::take(&mut *reads.lock().expect("reads lock"));
    let log: BTreeMap<Offset, Value> = if cluster.is_remote() {
        reads.iter().map(|(o, v, _)| (*o, v.clone())).collect()
    } else {
        let mut leader_log = None;
        for _ in 0..100 {
            if let Some(leader) = cluster.leader().await {
                if let Some((log, true)) = cluster.broker_log(leader).await {
                    leader_log = Some(log);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = leader_log
            .ok_or_else(|| anyhow::anyhow!("no leader after the run; cannot judge it"))?;
        log.iter()
            .enumerate()
            .map(|(i, r)| (Offset(i as u64), r.value.clone()))
            .collect()
    };
    let mut lost = 0;
    let mut lost_examples = Vec::new();
    // In order of the record's index, so the examples are the same in every run of a seed.
    let mut acked_in_order: Vec<(&u64, &Offset)> = acked.iter().collect();
    acked_in_order.sort_unstable();
    for (&index, &offset) in acked_in_order {
        let held = log.get(&offset).and_then(|v| decode_value(v, run_id));
        // Remotely, an offset never read is `unseen`, not proven lost.
        let judged = !cluster.is_remote() || log.contains_key(&offset);
        if judged && held != Some(index) {
            lost += 1;
            if lost_examples.len() < 10 {
                lost_examples.push(format!("record {index}@{offset}"));
            }
        }
    }
    let mut seen_in_log: HashMap<u64, u32> = HashMap::new();
    for value in log.values() {
        if let Some(i) = decode_value(value, run_id) {
            *seen_in_log.entry(i).or_default() += 1;
        }
    }
    let duplicated = seen_in_log.values().filter(|&&n| n > 1).count() as u64;
    let mut read_lat = histogram();
    let mut read_indices = std::collections::HashSet::new();
    let mut read_uncommitted = 0;
    {
        let sent_at = sent_at.lock().expect("sent_at lock");
        for (offset, value, at) in reads.iter() {
            let index = decode_value(value, run_id);
            if log.get(offset) != Some(value) {
                read_uncommitted += 1;
            }
            if let Some(i) = index {
                if read_indices.insert(i) {
                    if let Some(sent) = sent_at.get(i as usize) {
                        let _ = read_lat.record(at.duration_since(*sent).as_micros().max(1) as u64);
                    }
                }
            }
        }
    }
    let stats = cluster.runtime().network().stats();
    let unseen = acked.keys().filter(|i| !read_indices.contains(i)).count() as u64;
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().flatten().filter(|o| f(o)).count() as u64;
    let acknowledged = acked.len() as u64;
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
        lost,
        duplicated,
        read_uncommitted,
        unseen,
        read: reads.len() as u64,
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
    };
    cluster.shutdown().await;
    Ok(report)
}

async fn inject(
    cluster: &Arc<Cluster>,
    fault: Fault,
    duration: Duration,
    restarts: &mut Vec<BrokerId>,
) -> String {
    let leader = cluster.leader().await;
    match (fault, leader) {
        (Fault::CrashLeader, Some(b)) => {
            cluster.crash(b).await;
            restarts.push(b);
            let cluster = Arc::clone(cluster);
            tokio::spawn(async move { restart_later(&cluster, b, duration).await });
            format!("crash-leader(broker {})", b.0)
        }
        (Fault::Partition, Some(b)) => {
            cluster.isolate(b);
            let cluster = Arc::clone(cluster);
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                cluster.heal();
            });
            format!("partition(broker {})", b.0)
        }
        (Fault::SlowFollower, Some(leader)) => {
            let follower = cluster.topology().brokers().find(|&b| b != leader);
            match follower {
                Some(f) => {
                    cluster.slow(f, Duration::from_millis(50));
                    let cluster = Arc::clone(cluster);
                    tokio::spawn(async move {
                        tokio::time::sleep(duration).await;
                        cluster.slow(f, Duration::ZERO);
                    });
                    format!("slow-follower(broker {})", f.0)
                }
                None => "slow-follower(no follower)".into(),
            }
        }
        (fault, None) => format!("{fault:?}(no leader)"),
    }
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
    // The engine's own consumer reads the log too; what it hands over is dropped here.
    let drain = {
        let cluster = Arc::clone(&cluster);
        tokio::spawn(async move {
            loop {
                cluster.poll(Duration::from_millis(200)).await;
            }
        })
    };
    let mut injected = Vec::new();
    let mut restarts = Vec::new();
    let n = options.faults.len() as u32;
    for (i, fault) in options.faults.iter().enumerate() {
        let at = options.duration * (i as u32 + 1) / (n + 1);
        tokio::time::sleep_until(start + at).await;
        let what = inject(&cluster, *fault, options.fault_duration, &mut restarts).await;
        eprintln!("fault at {:.1}s: {what}", start.elapsed().as_secs_f64());
        injected.push(what);
    }
    tokio::time::sleep_until(start + options.duration).await;
    drain.abort();
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
pub fn render(report: &RunReport) -> String {
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
