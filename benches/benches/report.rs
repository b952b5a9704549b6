//! One run of every engine figure, printed as markdown tables for BENCHMARKS.md:
//!
//! - `throughput`: peak records/s and MB/s of each setting, one and several clients, next
//!   to the protocol-free relay and the bare channel measured in the same run (ratios);
//! - `latency`: send→ack and send→read percentiles (HDR histogram) at half the measured
//!   peak, next to the relay at the same offered load;
//! - `disk`: the disk's append+fdatasync rate and the engine with segment files.
//!
//! `cargo bench -p insync-benches --bench report [-- SECTION]`; `INSYNC_BENCH_SHORT=1` for
//! short runs. Without `--bench` (as `cargo test --benches` runs it) it does a tiny smoke run.

use insync_benches::ceiling::{self, RelayCluster};
use insync_benches::client::{drive, histogram, paced, record_between, Client, Limit, Load};
use insync_benches::client::{Paced, PacedRun, Throughput};
use insync_benches::engine::{options, Engine, Setup};
use insync_benches::table::{ms, percent, thousands, Table};
use insync_benches::{bench_mode, machine, selected, short_mode, size_label, RECORD_SIZES};
use insync_model::config::Acks;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const BATCH: usize = 500;
const SEVERAL: usize = 4;

struct Plan {
    /// How long each closed-loop throughput case sends (after its warm-up).
    throughput: Duration,
    warmup: Duration,
    /// How long each latency case offers its load (after its warm-up).
    latency: Duration,
    disk: Duration,
    sizes: Vec<usize>,
}

impl Plan {
    fn new() -> Plan {
        if !bench_mode() {
            Plan {
                throughput: Duration::from_millis(100),
                warmup: Duration::from_millis(20),
                latency: Duration::from_millis(100),
                disk: Duration::from_millis(50),
                sizes: vec![100],
            }
        } else if short_mode() {
            Plan {
                throughput: Duration::from_millis(700),
                warmup: Duration::from_millis(200),
                latency: Duration::from_millis(1500),
                disk: Duration::from_millis(500),
                sizes: RECORD_SIZES.to_vec(),
            }
        } else {
            Plan {
                throughput: Duration::from_secs(3),
                warmup: Duration::from_millis(500),
                latency: Duration::from_secs(6),
                disk: Duration::from_secs(3),
                sizes: RECORD_SIZES.to_vec(),
            }
        }
    }
}

/// Warms up, then sends for `plan.throughput`.
/// Warms up, then sends for `plan.throughput`; returns the measured part and the records
/// sent in all (warm-up included).
fn closed_loop<C: Client>(
    rt: &Runtime,
    client: &Arc<C>,
    load: Load,
    plan: &Plan,
) -> (Throughput, u64) {
    let next = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let warm = drive(
            client,
            Limit::Until(Instant::now() + plan.warmup),
            load,
            &next,
        )
        .await;
        let t = drive(
            client,
            Limit::Until(Instant::now() + plan.throughput),
            load,
            &next,
        )
        .await;
        (t, warm.sent + t.sent)
    })
}

/// The engine's peak, and the messages its network carried per record sent (one is the
/// record handed to the producer; the rest is the protocol's, per batch and per fetch).
fn engine_peak(
    rt: &Runtime,
    setup: Setup,
    load: Load,
    plan: &Plan,
    dir: Option<&std::path::Path>,
) -> (Throughput, f64) {
    let data_dir = dir.map(|d| d.join(format!("{}-{}", setup.label(), load.size)));
    let engine = Arc::new(
        rt.block_on(Engine::start(setup, options(BATCH, data_dir.clone())))
            .expect("the engine starts"),
    );
    let (t, records) = closed_loop(rt, &engine, load, plan);
    let messages = engine.cluster.runtime().network().stats().sent;
    let engine = Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("engine still shared"));
    rt.block_on(engine.shutdown());
    if let Some(d) = data_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    (t, messages as f64 / records.max(1) as f64)
}

fn relay_for(setup: Setup) -> (usize, bool) {
    (setup.replicas, setup.acks == Acks::All)
}

fn relay_peak(rt: &Runtime, setup: Setup, load: Load, plan: &Plan) -> Throughput {
    let (replicas, all) = relay_for(setup);
    let relay = Arc::new(
        rt.block_on(async { RelayCluster::start(replicas, all, BATCH) })
            .expect("the relay starts"),
    );
    let (t, _) = closed_loop(rt, &relay, load, plan);
    rt.block_on(relay.shutdown());
    t
}

fn channel_peak(rt: &Runtime, size: usize, plan: &Plan) -> f64 {
    // Calibrate a record count that takes about the planned time.
    let probe = 200_000u64;
    let took = rt.block_on(ceiling::channel(probe, size));
    let n = ((probe as f64 / took.as_secs_f64()) * plan.throughput.as_secs_f64()) as u64;
    let took = rt.block_on(ceiling::channel(n.max(1000), size));
    n.max(1000) as f64 / took.as_secs_f64()
}

/// Peak records/s of each setting at 1 client and batch 500, by (label, size).
type Peaks = HashMap<(String, usize), f64>;

fn throughput(rt: &Runtime, plan: &Plan, peaks: &mut Peaks) {
    println!("## Throughput (closed loop, window 4096 sends, batch {BATCH}, in-memory storage, consumer reading along)\n");
    for &size in &plan.sizes {
        let channel = channel_peak(rt, size, plan);
        let mut relays: HashMap<(usize, bool, usize), f64> = HashMap::new();
        let mut table = Table::new([
            "setting",
            "clients",
            "records/s",
            "MB/s",
            "no-protocol relay (same clients), records/s",
            "of relay",
            "of channel",
            "of rf1 acks=1",
            "msgs/record",
        ]);
        let mut rf1 = None;
        let setups = Setup::ALL
            .into_iter()
            .chain([Setup::RF3_ACKS_ALL_IDEMPOTENT.in_flight(5)]);
        for setup in setups {
            for clients in [1, SEVERAL] {
                if setup.max_in_flight != 1 && clients != 1 {
                    continue;
                }
                let (replicas, all) = relay_for(setup);
                let relay = *relays.entry((replicas, all, clients)).or_insert_with(|| {
                    relay_peak(rt, setup, Load::new(clients, size), plan).records_per_second()
                });
                let (t, per_record) = engine_peak(rt, setup, Load::new(clients, size), plan, None);
                let rate = t.records_per_second();
                if clients == 1 {
                    peaks.insert((setup.label(), size), rate);
                }
                if setup == Setup::RF1_ACKS1 && clients == 1 {
                    rf1 = Some(rate);
                }
                table.row([
                    setup.label(),
                    clients.to_string(),
                    thousands(rate),
                    format!("{:.1}", t.megabytes_per_second(size)),
                    thousands(relay),
                    percent(rate / relay),
                    percent(rate / channel),
                    rf1.map_or("—".into(), |r| percent(rate / r)),
                    format!("{per_record:.2}"),
                ]);
                if t.acked < t.sent {
                    eprintln!(
                        "warning: {}: {} of {} not acknowledged",
                        setup.label(),
                        t.sent - t.acked,
                        t.sent
                    );
                }
            }
        }
        println!("### {} records\n", size_label(size));
        println!(
            "bare channel (one message per record, no runtime): {} records/s, {:.0} MB/s\n",
            thousands(channel),
            channel * size as f64 / 1e6
        );
        print!("{}", table.render());
        println!();
    }
}

/// Several producer actors (`EngineOptions::producers`), each fed round-robin by the client
/// tasks, against one producer with the same client tasks.
fn producers(rt: &Runtime, plan: &Plan) {
    println!("## Several producers (closed loop, {SEVERAL} client tasks, batch {BATCH})\n");
    let mut table = Table::new([
        "setting",
        "size",
        "producers",
        "records/s",
        "MB/s",
        "msgs/record",
    ]);
    for &size in &plan.sizes {
        for setup in [
            Setup::RF1_ACKS1,
            Setup::RF3_ACKS_ALL,
            Setup::RF3_ACKS_ALL_IDEMPOTENT,
        ] {
            for producers in [1, SEVERAL] {
                let engine = Arc::new(
                    rt.block_on(Engine::start(
                        setup,
                        insync::engine::EngineOptions {
                            producers,
                            ..options(BATCH, None)
                        },
                    ))
                    .expect("the engine starts"),
                );
                let (t, records) = closed_loop(rt, &engine, Load::new(SEVERAL, size), plan);
                let messages = engine.cluster.runtime().network().stats().sent;
                let engine =
                    Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("engine still shared"));
                rt.block_on(engine.shutdown());
                table.row([
                    setup.label(),
                    size_label(size),
                    producers.to_string(),
                    thousands(t.records_per_second()),
                    format!("{:.1}", t.megabytes_per_second(size)),
                    format!("{:.2}", messages as f64 / records.max(1) as f64),
                ]);
            }
        }
    }
    print!("{}", table.render());
    println!();
}

/// A latency case's row cells.
fn latency_cells(
    run: &PacedRun,
    read: Option<(&hdrhistogram::Histogram<u64>, u64)>,
) -> Vec<String> {
    let q = |h: &hdrhistogram::Histogram<u64>, q: f64| ms(h.value_at_quantile(q));
    let mut cells = vec![
        thousands(run.offered),
        thousands(run.achieved),
        q(&run.ack, 0.5),
        q(&run.ack, 0.99),
        q(&run.ack, 0.999),
        ms(run.ack.max()),
        q(&run.ack_from_schedule, 0.99),
    ];
    match read {
        Some((h, unread)) => {
            cells.push(q(h, 0.5));
            cells.push(q(h, 0.99));
            cells.push(q(h, 0.999));
            cells.push(unread.to_string());
        }
        None => cells.extend(["—", "—", "—", "—"].map(String::from)),
    }
    cells
}

fn paced_engine(rt: &Runtime, setup: Setup, size: usize, rate: f64, plan: &Plan) -> Vec<String> {
    let engine = Arc::new(
        rt.block_on(Engine::start(setup, options(BATCH, None)))
            .expect("the engine starts"),
    );
    let next = Arc::new(AtomicU64::new(0));
    engine.keep_read_times(true);
    let run = rt.block_on(paced(
        &engine,
        Paced {
            rate,
            warmup: plan
                .warmup
                .max(Duration::from_millis(500))
                .min(plan.latency / 2),
            duration: plan.latency,
            size,
        },
        &next,
    ));
    // Everything acknowledged is read eventually; wait for it (bounded).
    rt.block_on(engine.wait_read(run.acked + run.warm_records, Duration::from_secs(10)));
    let times = engine.take_read_times();
    let mut read = histogram();
    let mut seen = std::collections::HashSet::new();
    for (index, at) in times {
        let Some(rel) = index.checked_sub(run.first_index) else {
            continue;
        };
        if rel < run.warm_records || rel >= run.sent || !seen.insert(rel) {
            continue;
        }
        record_between(&mut read, run.sent_at[rel as usize], at);
    }
    let unread = (run.sent - run.warm_records).saturating_sub(read.len());
    let engine = Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("engine still shared"));
    rt.block_on(engine.shutdown());
    let mut cells = vec![setup.label()];
    cells.extend(latency_cells(&run, Some((&read, unread))));
    cells
}

fn paced_relay(rt: &Runtime, setup: Setup, size: usize, rate: f64, plan: &Plan) -> Vec<String> {
    let (replicas, all) = relay_for(setup);
    let relay = Arc::new(
        rt.block_on(async { RelayCluster::start(replicas, all, BATCH) })
            .expect("the relay starts"),
    );
    let next = Arc::new(AtomicU64::new(0));
    let run = rt.block_on(paced(
        &relay,
        Paced {
            rate,
            warmup: plan
                .warmup
                .max(Duration::from_millis(500))
                .min(plan.latency / 2),
            duration: plan.latency,
            size,
        },
        &next,
    ));
    rt.block_on(relay.shutdown());
    let mut cells = vec![format!("relay (no protocol) as {}", setup.label())];
    cells.extend(latency_cells(&run, None));
    cells
}

fn latency(rt: &Runtime, plan: &Plan, peaks: &mut Peaks) {
    println!("## Latency at half the peak (open loop, one sender, batch {BATCH}; ms)\n");
    println!("Peaks are this run's closed-loop figures with one client; 'ack p99 sched' counts from the scheduled send time (coordinated omission corrected).\n");
    for &size in &plan.sizes {
        let mut table = Table::new([
            "setting",
            "offered/s",
            "acked/s",
            "ack p50",
            "ack p99",
            "ack p99.9",
            "ack max",
            "ack p99 sched",
            "read p50",
            "read p99",
            "read p99.9",
            "unread",
        ]);
        for setup in Setup::ALL {
            let peak = *peaks.entry((setup.label(), size)).or_insert_with(|| {
                engine_peak(rt, setup, Load::new(1, size), plan, None)
                    .0
                    .records_per_second()
            });
            let rate = (peak / 2.0).max(1.0);
            table.row(paced_engine(rt, setup, size, rate, plan));
            if setup == Setup::RF3_ACKS_ALL {
                table.row(paced_relay(rt, setup, size, rate, plan));
            }
        }
        println!("### {} records\n", size_label(size));
        print!("{}", table.render());
        println!();
    }
}

fn disk(rt: &Runtime, plan: &Plan) {
    let dir = tempfile::tempdir_in(ceiling::data_root()).expect("a temporary directory");
    println!(
        "## File-backed (segment files with fdatasync per save, in {})\n",
        ceiling::data_root().display()
    );
    for &size in &plan.sizes {
        let one = ceiling::disk(dir.path(), 1, BATCH, size, plan.disk).expect("disk ceiling");
        let three = ceiling::disk(dir.path(), 3, BATCH, size, plan.disk).expect("disk ceiling");
        let mut table = Table::new([
            "what",
            "records/s",
            "MB/s",
            "appends+fdatasync/s",
            "of 1-file disk ceiling",
        ]);
        table.row([
            format!("disk: 1 file, {BATCH}-record frames"),
            thousands(one.records_per_second),
            format!("{:.1}", one.megabytes_per_second),
            thousands(one.appends_per_second),
            "100%".into(),
        ]);
        table.row([
            format!("disk: 3 files at once, {BATCH}-record frames (total)"),
            thousands(three.records_per_second),
            format!("{:.1}", three.megabytes_per_second),
            thousands(three.appends_per_second),
            percent(three.records_per_second / one.records_per_second),
        ]);
        for setup in [Setup::RF1_ACKS1, Setup::RF3_ACKS_ALL] {
            let (t, _) = engine_peak(rt, setup, Load::new(1, size), plan, Some(dir.path()));
            table.row([
                format!("engine {} --data-dir", setup.label()),
                thousands(t.records_per_second()),
                format!("{:.1}", t.megabytes_per_second(size)),
                "—".into(),
                percent(t.records_per_second() / one.records_per_second),
            ]);
        }
        println!("### {} records\n", size_label(size));
        print!("{}", table.render());
        println!();
    }
}

fn main() {
    let plan = Plan::new();
    let rt = insync_benches::tokio_runtime();
    let started = Instant::now();
    println!("# insync engine report\n");
    println!("{}", machine::describe());
    println!(
        "mode: {}\n",
        if !bench_mode() {
            "smoke (cargo test)"
        } else if short_mode() {
            "short (INSYNC_BENCH_SHORT)"
        } else {
            "full"
        }
    );
    let mut peaks = Peaks::new();
    if selected("throughput") {
        throughput(&rt, &plan, &mut peaks);
    }
    if selected("producers") {
        producers(&rt, &plan);
    }
    if selected("latency") {
        latency(&rt, &plan, &mut peaks);
    }
    if selected("disk") {
        disk(&rt, &plan);
    }
    println!(
        "report took {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        machine::load_average().map_or("?".into(), |l| format!("{l:.2}"))
    );
}
