//! Shared pieces of insync's benchmarks: workload drivers for the real engine, the
//! protocol-free ceilings it is compared with, the model checker's measurements, and the
//! machine facts each figure is quoted with.
//!
//! The bench targets in `benches/` are thin: `engine` (criterion throughput groups),
//! `report` (one run of every engine figure as a table, with HDR latency tails and ratios to
//! the ceilings) and `checker` (the model checker's rates and memory).
//!
//! Short mode: set `INSYNC_BENCH_SHORT=1` for small sample sizes, short measurement times
//! and fewer cases; the whole `cargo bench -p insync-benches` then takes a few minutes.

pub mod ceiling;
pub mod checker;
pub mod client;
pub mod engine;
pub mod machine;
pub mod table;

use std::time::Duration;

/// Whether `INSYNC_BENCH_SHORT` asks for the short mode (any value but empty or `0`).
pub fn short_mode() -> bool {
    std::env::var("INSYNC_BENCH_SHORT").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether a custom-harness bench was started by `cargo bench` (which passes `--bench`)
/// rather than by `cargo test --benches`, which only needs it to run once, quickly.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The first free-standing argument, criterion-style: only cases whose name contains it run.
pub fn name_filter() -> Option<String> {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && !a.is_empty())
}

/// Whether a case called `name` passes the command line's filter.
pub fn selected(name: &str) -> bool {
    name_filter().is_none_or(|f| name.contains(&f))
}

/// The record sizes the issue asks about.
pub const RECORD_SIZES: [usize; 2] = [100, 1024];

/// `100B` or `1KiB`.
pub fn size_label(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// A multi-threaded tokio runtime with one worker per core, as `insync run` uses.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting tokio")
}

/// Seconds, for tables.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
