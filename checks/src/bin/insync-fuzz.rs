//! `insync fuzz`: generated operation histories against the in-process engine, checked for
//! anomalies; each anomaly's first case is shrunk and saved.
//!
//! A thin binary: parse the arguments, call `insync_checks::fuzz`, print, exit with 0 (no
//! anomaly), 1 (anomalies found, or a replay reproduced its anomaly) or 2 (bad usage).

use clap::{Args, Parser, Subcommand};
use insync::error::UsageError;
use insync_checks::checker::AnomalyKind;
use insync_checks::fuzz::{fuzz, load, render_summary, replay, FuzzOptions};
use insync_checks::runner::HistoryRunOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "insync fuzz",
    bin_name = "insync fuzz",
    about = "Run generated histories of client operations and faults against the real engine, and name the anomalies they show",
    // The flattened configuration's doc comment is not this command's help.
    long_about = None,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    fuzz: FuzzArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Judge a history recorded elsewhere (JSON, the format `insync fuzz` writes; e.g. what
    /// `clients/kafka_clients.py --history FILE` records of real Kafka clients) with the
    /// Jepsen-named checker. Exit 0 without anomalies, 1 with.
    Check {
        /// The history.
        file: PathBuf,
        /// Print the verdict as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run a saved case (a `.case.json` written by a fuzzing run) again, check it, and replay
    /// the engine's trace through the model's actors (trace conformance).
    Replay {
        /// The saved case.
        file: PathBuf,
        /// Run it this many times; every run must show the same anomalies.
        #[arg(long, default_value_t = 2)]
        times: u32,
        /// Also print the engine's trace: every message delivered, timer fired, crash and
        /// restart, with its virtual time (use --from-ms/--to-ms to narrow it).
        #[arg(long)]
        trace: bool,
        /// First virtual millisecond of the trace to print.
        #[arg(long, default_value_t = 0, requires = "trace")]
        from_ms: u64,
        /// Last virtual millisecond of the trace to print.
        #[arg(long, requires = "trace")]
        to_ms: Option<u64>,
        /// Also write the first run's history as a timeline, one self-contained HTML page: a
        /// lane per process, a bar per operation, faults as shaded spans, the anomalies marked.
        #[arg(long, value_name = "OUT.html")]
        html: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct FuzzArgs {
    #[command(flatten)]
    config: insync::cli::ConfigArgs,
    /// Generated cases to run.
    #[arg(long, default_value_t = 1000)]
    cases: u64,
    /// Seeds the generator (case i of seed S is always the same case).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where shrunk failing cases are saved.
    #[arg(long, default_value = "insync-fuzz-out")]
    out: PathBuf,
    /// Most steps in a generated plan.
    #[arg(long, default_value_t = 40)]
    steps_max: usize,
    /// Most runs spent shrinking one failing case.
    #[arg(long, default_value_t = 3000)]
    shrink_runs: usize,
    /// Print the shrunk timeline of each anomaly found.
    #[arg(long)]
    show: bool,
    /// Add disk faults to the plans (torn writes, lost fsyncs, bit flips, missing files, a
    /// full disk) on one broker per history; brokers keep their state in files (temporary
    /// directories), and a fault their storage does not report is `undetected-corruption`.
    #[arg(long)]
    disk_faults: bool,
    /// Add the controller's crashes and restarts to the plans. The engine's controller saves
    /// its state before anything that depends on it leaves and recovers it on restart, so
    /// its epochs never go backwards and nothing acknowledged is lost.
    #[arg(long)]
    controller_faults: bool,
    /// With --disk-faults: rewrite a broker's state file (its high-watermark checkpoint and
    /// the record count recovery must find) at most this often, in wall-clock milliseconds.
    /// The default is the engine's own, 5000 (Kafka's
    /// replica.high.watermark.checkpoint.interval.ms): after an unclean shutdown, recovery
    /// then reports what follows the last checkpoint as unverified. 0 rewrites it at every
    /// save, so that it vouches for every fsynced batch (two more fsyncs per save).
    #[arg(long, default_value_t = insync::disk::HW_CHECKPOINT_INTERVAL.as_millis() as u64, requires = "disk_faults")]
    checkpoint_interval_ms: u64,
}

/// Most cases one run takes: beyond this, use several seeds.
const CASES_MAX: u64 = 100_000_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Replay {
            file,
            times,
            trace,
            from_ms,
            to_ms,
            html,
        }) => {
            let window = trace.then(|| {
                Duration::from_millis(from_ms)..to_ms.map_or(Duration::MAX, |ms| {
                    Duration::from_millis(ms.saturating_add(1))
                })
            });
            run_replay(&file, times, window, html.as_deref())
        }
        Some(Command::Check { file, json }) => run_check(&file, json),
        None => run_fuzz(&cli.fuzz),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("insync fuzz: {e:#}");
            ExitCode::from(insync::error::exit_code(&e))
        }
    }
}

fn run_fuzz(args: &FuzzArgs) -> anyhow::Result<u8> {
    if args.cases == 0 || args.cases > CASES_MAX {
        anyhow::bail!(UsageError::InvalidConfig(format!(
            "cases ({}) must be between 1 and {CASES_MAX}; set --cases in that range",
            args.cases
        )));
    }
    if args.steps_max == 0 || args.steps_max > 10_000 {
        anyhow::bail!(UsageError::InvalidConfig(format!(
            "steps-max ({}) must be between 1 and 10000; set --steps-max in that range",
            args.steps_max
        )));
    }
    // The generated plans choose the workload and the faults.
    args.config.reject_model_only_but("fuzz", &["network"])?;
    if args.config.given("records") {
        anyhow::bail!(UsageError::InvalidConfig(
            "each generated history chooses how many records it sends; drop --records".to_string()
        ));
    }
    let config = insync_model::Config {
        records: 1,
        ..args.config.to_config()
    };
    config
        .clone()
        .validate()
        .map_err(|e| anyhow::anyhow!(UsageError::InvalidConfig(e.to_string())))?;
    eprintln!(
        "fuzzing {} with {} cases, seed {}",
        config.summary(),
        args.cases,
        args.seed
    );
    let options = FuzzOptions {
        cases: args.cases,
        seed: args.seed,
        plan_len: 1..args.steps_max + 1,
        out_dir: Some(args.out.clone()),
        shrink_runs_max: args.shrink_runs,
        progress: true,
        controller_faults: args.controller_faults,
        run: HistoryRunOptions {
            disk_faults: args.disk_faults,
            checkpoint_interval: Duration::from_millis(args.checkpoint_interval_ms),
            ..HistoryRunOptions::default()
        },
        ..FuzzOptions::default()
    };
    let report = fuzz(&config, &options)?;
    println!("configuration: {}", config.summary());
    if args.disk_faults {
        println!(
            "storage: files, a broker's state file rewritten at most every {} ms{}",
            args.checkpoint_interval_ms,
            if args.checkpoint_interval_ms == 0 {
                " (at every save)"
            } else {
                ""
            }
        );
    }
    print!("{}", render_summary(&report));
    if args.show {
        for f in &report.failures {
            println!();
            print!(
                "{}",
                insync_checks::fuzz::timeline(f, f.case_path.as_deref(), args.seed)
            );
        }
    }
    if !report.failures.is_empty() {
        println!(
            "\nsaved in {}: a timeline (.timeline.txt) and a replayable case (.case.json) per anomaly, and proptest-regressions.txt",
            args.out.display()
        );
        println!(
            "to keep one as a case CI replays, run from the workspace root (then say in its `about` what it caught; see checks/README.md):"
        );
        for f in &report.failures {
            if let Some(path) = &f.case_path {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                let stem = format!("{}-seed{}-case{}", f.kind, args.seed, f.case_index);
                println!("  {}", insync_checks::cases::keep_command(&path, &stem));
            }
        }
    }
    Ok(if report.cases_with.is_empty() { 0 } else { 1 })
}

fn run_check(file: &std::path::Path, json: bool) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let history: insync_checks::history::History = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a history (a JSON object with `ops`, as `insync fuzz` writes): {e}",
            file.display()
        )
    })?;
    let verdict = insync_checks::checker::check_history(&history);
    if json {
        println!("{}", serde_json::to_string(&verdict)?);
    } else {
        println!(
            "{} operations: {} acknowledged, {} failed, {} indeterminate, {} read",
            history.operation_count(),
            verdict.acknowledged,
            verdict.failed,
            verdict.indeterminate,
            verdict.read
        );
        if verdict.is_valid() {
            println!("no anomaly");
        }
        for a in &verdict.anomalies {
            println!("  {a}");
        }
    }
    Ok(u8::from(!verdict.is_valid()))
}

fn run_replay(
    file: &std::path::Path,
    times: u32,
    trace_window: Option<std::ops::Range<Duration>>,
    html: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let saved = load(file)?;
    let code = replay_and_conform(&saved, times, file, html)?;
    if let Some(window) = trace_window {
        let (config, _, outcome) = insync_checks::fuzz::traced_run(
            &saved.case,
            &saved.run_options(&HistoryRunOptions::default()),
        )?;
        if let Some(trace) = &outcome.trace {
            println!("\nengine trace (virtual time, actor, what it handled):");
            print!(
                "{}",
                insync_checks::replay::render_trace(&config, trace, window)
            );
        }
    }
    Ok(code)
}

fn replay_and_conform(
    saved: &insync_checks::fuzz::SavedCase,
    times: u32,
    file: &std::path::Path,
    html: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let expected = AnomalyKind::from_name(&saved.anomaly);
    let mut first = None;
    for i in 0..times.max(1) {
        let (history, verdict) = replay(saved, &HistoryRunOptions::default())?;
        if i == 0 {
            println!("configuration: {}", saved.case.config.summary());
            println!("plan:\n{}", saved.case.plan);
            println!("history:\n{history}");
            println!("anomalies:");
            for a in &verdict.anomalies {
                println!("  {a}");
            }
            if let Some(out) = html {
                write_timeline(out, saved, file, &history, &verdict)?;
                println!("timeline: {}", out.display());
            }
        }
        match &first {
            None => first = Some(history),
            Some(h) if *h == history => {}
            Some(_) => println!("run {}: the history differs from run 1", i + 1),
        }
        let shown = expected.is_some_and(|k| verdict.has(k));
        println!(
            "run {}: {} {}",
            i + 1,
            saved.anomaly,
            if shown {
                "reproduced"
            } else {
                "NOT reproduced"
            }
        );
        if !shown {
            return Ok(0);
        }
    }
    match insync_checks::fuzz::conform_case(
        &saved.case,
        &saved.run_options(&HistoryRunOptions::default()),
    )? {
        Ok(c) => println!(
            "trace conformance: the engine's {} steps ({} deliveries, {} timer firings, {} crashes, {} restarts) are steps the model's actors allow",
            c.steps, c.deliveries, c.timers, c.crashes, c.restarts
        ),
        Err(e) => println!("trace conformance: NOT a path of the model: {e}"),
    }
    Ok(1)
}

/// Writes the timeline page of one run of a saved case.
fn write_timeline(
    out: &std::path::Path,
    saved: &insync_checks::fuzz::SavedCase,
    file: &std::path::Path,
    history: &insync_checks::history::History,
    verdict: &insync_checks::checker::Verdict,
) -> anyhow::Result<()> {
    let case = &saved.case;
    let title = format!("{}: {}", saved.anomaly, case.config.summary());
    let about = [
        format!(
            "insync-fuzz replay {}: case {} of seed {}, engine seed {}, {} plan steps, {} history entries",
            file.display(),
            saved.case_index,
            saved.run_seed,
            case.seed,
            case.plan.steps.len(),
            history.ops.len()
        ),
    ];
    let details = [
        ("the plan", case.plan.to_string()),
        (
            "the history as text (index, virtual time, process, type, operation)",
            history.to_string(),
        ),
    ];
    let page = insync_checks::timeline::render_timeline(history, verdict, &title, &about, &details);
    std::fs::write(out, page).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))
}
