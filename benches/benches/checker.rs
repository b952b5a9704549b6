//! The model checker's figures, as markdown tables for BENCHMARKS.md:
//!
//! - `rate`: unique states/s and resident memory per unique state on the contract default
//!   configuration (`insync check`'s), BFS and DFS, 1 and 2 threads, each with the same
//!   budget of generated states (the full default does not finish in reasonable time);
//! - `first`: time to the first counterexample of each breaking scenario of the catalogue
//!   (the seed chapter's examples), stopping at the property the scenario must break: BFS on
//!   one thread as `insync check --matrix` runs them, and DFS on one thread (with a timeout).
//!
//! Every case runs in a fresh child process, so its memory is its own.
//! `cargo bench -p insync-benches --bench checker [-- rate|first]`; `INSYNC_BENCH_SHORT=1`
//! for a small budget. Without `--bench` it checks one small case and exits.

use insync_benches::checker::{child_main, run_in_child, CheckerCase, Figure};
use insync_benches::table::{percent, thousands, Table};
use insync_benches::{bench_mode, machine, selected, short_mode};
use insync_model::scenarios::{catalogue, Expect};
use std::time::Instant;

fn budget() -> usize {
    if !bench_mode() {
        20_000
    } else if short_mode() {
        1_000_000
    } else {
        6_000_000
    }
}

/// How long a search for the first counterexample may take: BFS finds every seed example
/// in seconds (the matrix runs it); DFS can wander a long way first.
fn first_timeout(strategy: &str) -> u64 {
    match (strategy, short_mode()) {
        ("bfs", _) => 300,
        (_, true) => 10,
        (_, false) => 60,
    }
}

fn run(case: CheckerCase) -> Option<Figure> {
    match run_in_child(&case) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("checker case {} failed: {e}", case.label());
            None
        }
    }
}

fn rate() {
    let budget = budget();
    println!("## Unique states per second, contract default configuration\n");
    println!(
        "`insync check` defaults: rf=3 min.insync=2 acks=all, 2 records, 1 crash, a consumer. \
         Each case stops after {} generated states (`--max-states {budget}`).\n",
        thousands(budget as f64)
    );
    let mut table = Table::new([
        "strategy",
        "threads",
        "generated",
        "unique",
        "seconds",
        "unique/s",
        "unique/s per thread",
        "of 200,000/s/core target",
        "bytes/unique state",
        "peak RSS MiB",
    ]);
    let strategies: &[&str] = if bench_mode() {
        &["dfs", "bfs"]
    } else {
        &["dfs"]
    };
    let threads: &[usize] = if bench_mode() { &[1, 2] } else { &[1] };
    for &strategy in strategies {
        for &threads in threads {
            let case = CheckerCase {
                scenario: None,
                strategy: strategy.into(),
                threads,
                max_states: Some(budget),
                stop_at: None,
                timeout_seconds: None,
            };
            let Some(f) = run(case) else { continue };
            let per_thread = f.unique_per_second() / threads as f64;
            table.row([
                strategy.to_string(),
                threads.to_string(),
                thousands(f.states as f64),
                thousands(f.unique_states as f64),
                format!("{:.2}", f.seconds),
                thousands(f.unique_per_second()),
                thousands(per_thread),
                percent(per_thread / 200_000.0),
                format!("{:.0}", f.bytes_per_state()),
                format!("{:.0}", f.peak_rss_kib as f64 / 1024.0),
            ]);
        }
    }
    print!("{}", table.render());
    println!();
    println!(
        "Symmetry reduction: not measured, because it would be unsound for this model. A clean \
         election picks the first live ISR member in assignment order, as Kafka's controller \
         does, so renaming brokers does not commute with the transitions (README, \"No symmetry \
         reduction over brokers\").\n"
    );
}

fn first() {
    println!(
        "## Time to the first counterexample, seed examples (catalogue rows that must break)\n"
    );
    let mut table = Table::new([
        "scenario",
        "property broken",
        "strategy",
        "seconds",
        "unique states",
        "steps",
    ]);
    let scenarios: Vec<_> = catalogue()
        .into_iter()
        .filter(|s| matches!(s.expect, Expect::Breaks(_)))
        .collect();
    let scenarios = if bench_mode() {
        scenarios
    } else {
        scenarios.into_iter().take(1).collect()
    };
    for s in scenarios {
        let Expect::Breaks(property) = s.expect else {
            continue;
        };
        for strategy in ["bfs", "dfs"] {
            let case = CheckerCase {
                scenario: Some(s.name.to_string()),
                strategy: strategy.into(),
                threads: 1,
                max_states: None,
                stop_at: Some(property.to_string()),
                timeout_seconds: Some(first_timeout(strategy)),
            };
            let Some(f) = run(case) else { continue };
            let steps = f
                .violated
                .iter()
                .find(|(p, _)| *p == property.name())
                .map(|(_, n)| n.to_string());
            let broken = match &steps {
                Some(_) => property.to_string(),
                None if f.complete => format!("none (expected {property})"),
                None => format!("not found in the time limit ({property})"),
            };
            table.row([
                s.name.to_string(),
                broken,
                format!("{strategy}, 1 thread"),
                format!("{:.2}", f.seconds),
                thousands(f.unique_states as f64),
                steps.unwrap_or_else(|| "—".into()),
            ]);
        }
    }
    print!("{}", table.render());
    println!();
}

fn main() {
    if child_main() {
        return;
    }
    let started = Instant::now();
    println!("# insync model checker report\n");
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
    if selected("rate") {
        rate();
    }
    if selected("first") {
        first();
    }
    println!(
        "report took {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        machine::load_average().map_or("?".into(), |l| format!("{l:.2}"))
    );
}
