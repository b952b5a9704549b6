//! The model checker's figures, as markdown tables for BENCHMARKS.md:
//!
//! - `rate`: unique states/s and resident memory per unique state on the contract default
//!   configuration (`insync check`'s), BFS and DFS, 1 and 2 threads, each with the same
//!   budget of generated states (the full default does not finish in reasonable time);
//! - `first`: time to the first counterexample of each breaking scenario of the catalogue
//!   (the seed chapter's examples), stopping at the property the scenario must break: BFS on
//!   one thread as `insync check --matrix` runs them, and DFS on one thread (with a timeout);
//! - `tlc`: TLC on Gustafson's MCKip320 and insync's closest question back to back, when
//!   `INSYNC_BENCH_TLC` names the command that runs TLC.
//!
//! Every case runs in a fresh child process, so its memory is its own.
//! `cargo bench -p insync-benches --bench checker [-- rate|first|tlc]`; `INSYNC_BENCH_SHORT=1`
//! for a small budget. Without `--bench` it checks one small case and exits.

use insync_benches::checker::{child_main, run_in_child, CheckerCase, Figure};
use insync_benches::table::{percent, thousands, Table};
use insync_benches::{bench_mode, machine, selected, short_mode};
use insync_model::config::{Config, Truncation};
use insync_model::scenarios::{catalogue, Expect};
use insync_model::symmetry;
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
    let mut scaling = Vec::new();
    for &strategy in strategies {
        let mut one_thread = None;
        for &threads in threads {
            let case = CheckerCase {
                scenario: None,
                config: None,
                strategy: strategy.into(),
                threads,
                max_states: Some(budget),
                stop_at: None,
                timeout_seconds: None,
            };
            let Some(f) = run(case) else { continue };
            let per_thread = f.unique_per_second() / threads as f64;
            match (threads, one_thread) {
                (1, _) => one_thread = Some(f.unique_per_second()),
                (2, Some(one)) => scaling.push((strategy, f.unique_per_second() / one)),
                _ => {}
            }
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
    for (strategy, ratio) in scaling {
        println!("{strategy}: 2 threads make {ratio:.2}x the unique states/s of 1 (target 1.8x).");
    }
    let config = Config::default().validate().expect("the default is valid");
    println!(
        "\nSymmetry over brokers is {} for this configuration (`insync_model::symmetry::applies`): \
         unique states are counted {}.\n",
        if symmetry::applies(&config) { "on" } else { "off" },
        if symmetry::applies(&config) {
            "up to broker renaming"
        } else {
            "without renaming"
        }
    );
}

/// The anchor the issue sets: TLC on Gustafson's MCKip320 (3 replicas, 2 records, one
/// election: MaxLeaderEpoch 2) and insync's closest question, in the same run, so their
/// ratio holds on a noisy machine. TLC is not a dependency of this crate: the command that
/// runs it comes from `INSYNC_BENCH_TLC` (for example the project's
/// `../shared/tlc/run-tlc.sh SPEC e2 2`, which needs java) and must print TLC's
/// "N distinct states found" line.
fn tlc() {
    println!("## Against TLC on Gustafson's MCKip320 (MaxLeaderEpoch 2), same run\n");
    let Ok(command) = std::env::var("INSYNC_BENCH_TLC") else {
        println!(
            "Not run: set `INSYNC_BENCH_TLC` to a command that runs TLC on MCKip320 with \
             MaxLeaderEpoch 2 on 2 workers, e.g. \
             `INSYNC_BENCH_TLC='../shared/tlc/run-tlc.sh SPEC e2 2'` (needs java).\n"
        );
        return;
    };
    let start = Instant::now();
    let output = std::process::Command::new("sh")
        .args(["-c", &command])
        .stderr(std::process::Stdio::inherit())
        .output();
    let tlc_seconds = start.elapsed().as_secs_f64();
    let text = match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!("TLC's command failed ({}): not measured.\n", o.status);
            return;
        }
        Err(e) => {
            println!("TLC's command could not start ({e}): not measured.\n");
            return;
        }
    };
    let Some(distinct) = distinct_states(&text) else {
        println!("TLC printed no \"distinct states found\" line: not measured.\n");
        return;
    };
    let config = Config {
        replicas: 3,
        min_insync: 1,
        records: 2,
        crashes: 0,
        idempotence: true,
        consumer: false,
        elections: 1,
        truncation: Truncation::Kip320,
        ..Config::default()
    };
    let case = CheckerCase {
        scenario: None,
        config: Some(config),
        strategy: "dfs".into(),
        threads: 2,
        max_states: None,
        stop_at: None,
        timeout_seconds: Some(if short_mode() { 60 } else { 1800 }),
    };
    let command_line = case.command();
    let Some(f) = run(case) else { return };
    let mut table = Table::new([
        "checker",
        "command",
        "states",
        "seconds",
        "states/s per core",
    ]);
    table.row([
        "TLC, 2 workers".to_string(),
        format!("`{command}`"),
        format!("{} distinct", thousands(distinct as f64)),
        format!("{tlc_seconds:.1}"),
        thousands(distinct as f64 / tlc_seconds / 2.0),
    ]);
    table.row([
        "insync, 2 threads".to_string(),
        format!("`{command_line}`"),
        format!(
            "{} unique{}",
            thousands(f.unique_states as f64),
            if f.complete { "" } else { ", incomplete" }
        ),
        format!("{:.1}", f.seconds),
        thousands(f.unique_per_second() / 2.0),
    ]);
    print!("{}", table.render());
    println!(
        "\ninsync took {:.2}x TLC's time; per core it visits {:.2}x TLC's states/s and {} of \
         the 200,000/s target. The spaces differ: insync's also holds the producer, the \
         messages in flight and the controller's timers.\n",
        f.seconds / tlc_seconds,
        f.unique_per_second() / 2.0 / (distinct as f64 / tlc_seconds / 2.0),
        percent(f.unique_per_second() / 2.0 / 200_000.0),
    );
}

/// The last "N distinct states found" count TLC printed.
fn distinct_states(text: &str) -> Option<u64> {
    text.lines().rev().find_map(|l| {
        let (before, _) = l.split_once(" distinct states found")?;
        let number = before.rsplit([' ', ',']).next()?;
        number.replace(['.', ','], "").parse().ok()
    })
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
                config: None,
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
    if selected("tlc") {
        tlc();
    }
    println!(
        "report took {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        machine::load_average().map_or("?".into(), |l| format!("{l:.2}"))
    );
}
