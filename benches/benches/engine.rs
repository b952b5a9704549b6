//! Criterion throughput groups: the engine in each replication setting, record size, batch
//! size and client count, next to the protocol-free ceilings of the same work.
//!
//! One criterion iteration is one record sent and acknowledged, so criterion's `elem/s` is
//! records per second (MB/s = records/s × record size). Each benchmark starts its own
//! cluster (in-memory storage, a consumer reading along) and keeps it across samples.
//!
//! `INSYNC_BENCH_SHORT=1` keeps only batch 500 and shortens every measurement.

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use criterion::{SamplingMode, Throughput};
use insync_benches::ceiling::{self, RelayCluster};
use insync_benches::client::{drive, Client, Limit, Load};
use insync_benches::engine::{options, Engine, Setup};
use insync_benches::{short_mode, size_label, tokio_runtime, RECORD_SIZES};
use insync_model::config::Acks;
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Batch sizes (`batch_records`, records per produce request) of the sweep.
fn batches() -> &'static [usize] {
    if short_mode() {
        &[500]
    } else {
        &[1, 10, 100, 500, 2000]
    }
}

/// The batch size the several-clients cases use (the engine's default).
const DEFAULT_BATCH: usize = 500;
/// Client tasks in the several-clients cases.
const SEVERAL: usize = 4;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    if short_mode() {
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
    } else {
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
    }
}

/// Runs `iters` records through `client` and returns the time they took.
fn measure<C: Client>(
    rt: &Runtime,
    client: &Arc<C>,
    iters: u64,
    load: Load,
    next: &Arc<AtomicU64>,
) -> Duration {
    let t = rt.block_on(drive(client, Limit::Records(iters), load, next));
    if t.acked < t.sent {
        eprintln!(
            "warning: {} of {} records not acknowledged",
            t.sent - t.acked,
            t.sent
        );
    }
    t.elapsed
}

fn bench_engine(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    setup: Setup,
    batch: usize,
    clients: usize,
    size: usize,
) {
    let id = BenchmarkId::new(setup.label(), format!("batch{batch}-clients{clients}"));
    let engine = Arc::new(
        rt.block_on(Engine::start(setup, options(batch, None)))
            .expect("the engine starts"),
    );
    let next = Arc::new(AtomicU64::new(0));
    let load = Load::new(clients, size);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| measure(rt, &engine, iters, load, &next))
    });
    let engine = Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("engine still shared"));
    rt.block_on(engine.shutdown());
}

fn bench_relay(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    setup: Setup,
    batch: usize,
    clients: usize,
    size: usize,
) {
    let name = format!(
        "relay-rf{}-acks{}",
        setup.replicas,
        if setup.acks == Acks::All { "all" } else { "1" }
    );
    let id = BenchmarkId::new(name, format!("batch{batch}-clients{clients}"));
    let relay = Arc::new(
        rt.block_on(async { RelayCluster::start(setup.replicas, setup.acks == Acks::All, batch) })
            .expect("the relay starts"),
    );
    let next = Arc::new(AtomicU64::new(0));
    let load = Load::new(clients, size);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| measure(rt, &relay, iters, load, &next))
    });
    rt.block_on(relay.shutdown());
}

/// The engine: every setting, the batch sweep with one client, and several clients at the
/// default batch.
fn engine(c: &mut Criterion) {
    let rt = tokio_runtime();
    for size in RECORD_SIZES {
        let mut group = c.benchmark_group(format!("engine/{}", size_label(size)));
        configure(&mut group);
        group.throughput(Throughput::Elements(1));
        for setup in Setup::ALL {
            for &batch in batches() {
                bench_engine(&mut group, &rt, setup, batch, 1, size);
            }
            bench_engine(&mut group, &rt, setup, DEFAULT_BATCH, SEVERAL, size);
        }
        group.finish();
    }
}

/// The same records through the same runtime with no protocol, and through a bare channel.
fn ceilings(c: &mut Criterion) {
    let rt = tokio_runtime();
    for size in RECORD_SIZES {
        let mut group = c.benchmark_group(format!("ceiling/{}", size_label(size)));
        configure(&mut group);
        group.throughput(Throughput::Elements(1));
        group.bench_function("channel", |b| {
            b.iter_custom(|iters| rt.block_on(ceiling::channel(iters, size)))
        });
        for setup in [Setup::RF1_ACKS1, Setup::RF3_ACKS1, Setup::RF3_ACKS_ALL] {
            for &batch in batches() {
                bench_relay(&mut group, &rt, setup, batch, 1, size);
            }
            bench_relay(&mut group, &rt, setup, DEFAULT_BATCH, SEVERAL, size);
        }
        group.finish();
    }
}

/// The disk's append+fsync rate for one framed batch of the default size.
fn disk(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(ceiling::data_root()).expect("a temporary directory");
    let mut group = c.benchmark_group("ceiling/disk");
    configure(&mut group);
    for size in RECORD_SIZES {
        let payload = vec![0xa5u8; DEFAULT_BATCH * size];
        let mut frame = Vec::new();
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let path = dir.path().join(format!("disk-{size}.log"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("a segment-like file");
        group.throughput(Throughput::Elements(DEFAULT_BATCH as u64));
        group.bench_function(
            format!("append-fdatasync/batch{DEFAULT_BATCH}x{}", size_label(size)),
            |b| {
                b.iter(|| {
                    file.write_all(&frame).expect("append");
                    file.sync_data().expect("fdatasync");
                })
            },
        );
        drop(file);
        let _ = std::fs::remove_file(&path);
    }
    group.finish();
}

criterion_group!(benches, engine, ceilings, disk);
criterion_main!(benches);
