//! The fuzzing loop: generate cases, run each against a fresh engine, check its history, and
//! for the first case that shows each anomaly, shrink it and save it.
//!
//! Case `i` of a run with seed `S` is generated from its own ChaCha seed (derived from `S` and
//! `i`), so any case can be regenerated alone, and the seed is written to the saved
//! regression file in proptest's `cc <hex>` format. The saved `.case.json` holds the shrunk
//! case itself (configuration, steps, engine seed): [`replay`] runs it again.

use crate::checker::{check_history, AnomalyKind, Verdict};
use crate::history::{DiskEvent, DiskFault, Fun, History};
use crate::runner::{run_history, HistoryRunOptions};
use crate::strategy::{case_for, case_with_controller_faults, case_with_disk_faults, Case};
use insync::error::UsageError;
use insync_model::Config;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a fuzzing run goes.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    pub cases: u64,
    pub seed: u64,
    /// Steps per generated plan.
    pub plan_len: std::ops::Range<usize>,
    /// Where failing cases are saved (nothing is saved without it).
    pub out_dir: Option<PathBuf>,
    /// Most runs spent shrinking one failing case.
    pub shrink_runs_max: usize,
    /// Stop at the first case that shows this anomaly (tests).
    pub stop_at: Option<AnomalyKind>,
    pub progress: bool,
    /// Plans crash and restart the controller too.
    pub controller_faults: bool,
    pub run: HistoryRunOptions,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            cases: 1000,
            seed: 0,
            plan_len: 1..40,
            out_dir: None,
            shrink_runs_max: 3000,
            stop_at: None,
            progress: false,
            controller_faults: false,
            run: HistoryRunOptions::default(),
        }
    }
}

/// A failing case, shrunk.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: AnomalyKind,
    /// Index of the case in the run.
    pub case_index: u64,
    /// The ChaCha seed the case was generated from.
    pub case_seed: [u8; 32],
    pub original: Case,
    pub shrunk: Case,
    pub history: History,
    pub verdict: Verdict,
    /// Runs spent shrinking.
    pub shrink_runs: usize,
    /// The readable timeline, when saved.
    pub timeline_path: Option<PathBuf>,
    /// The case to replay, when saved.
    pub case_path: Option<PathBuf>,
    /// The brokers' storage in the run that found it.
    pub storage: SavedStorage,
}

/// What a fuzzing run found.
#[derive(Clone, Debug, Default)]
pub struct FuzzReport {
    pub cases_run: u64,
    /// How many cases showed each anomaly.
    pub cases_with: BTreeMap<AnomalyKind, u64>,
    /// The first case of each anomaly, shrunk.
    pub failures: Vec<Failure>,
    pub seconds: f64,
    pub operations: u64,
    /// Disk faults injected, by kind (`--disk-faults`).
    pub disk_faults: BTreeMap<DiskFault, u64>,
    /// Cases in which at least one disk fault was injected.
    pub cases_with_disk_faults: u64,
    /// What the damaged brokers' storage reported: starts refused as corruption, torn tails
    /// cut, writes failed.
    pub disk_reports: DiskReports,
    /// Cases that showed any anomaly.
    pub cases_with_anomalies: u64,
    /// Of those, cases whose every anomaly is the last-replica-standing loss Kafka has too, or
    /// follows from it ([`crate::checker::LAST_REPLICA_STANDING`]).
    pub cases_last_replica_standing: u64,
}

/// What storage reported over a fuzzing run's histories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskReports {
    pub starts_refused: u64,
    pub torn_tails_cut: u64,
    pub writes_failed: u64,
    /// Recoveries of the damaged broker after an unclean shutdown that reported records past
    /// the last periodic checkpoint as unverified.
    pub unverified_tails: u64,
    /// Recoveries that found a damaged segment and kept its intact prefix (`--elr`), the
    /// broker restarting out of the ISR and the ELR.
    pub segments_salvaged: u64,
}

impl FuzzReport {
    /// Counts a history's disk faults and storage reports.
    fn count_disk_events(&mut self, history: &History) {
        let injected = history.ops.iter().any(|op| {
            matches!(
                op.fun,
                Fun::Disk {
                    event: DiskEvent::Injected { .. },
                    ..
                }
            )
        });
        self.cases_with_disk_faults += u64::from(injected);
        for op in &history.ops {
            let Fun::Disk { event, .. } = &op.fun else {
                continue;
            };
            match event {
                DiskEvent::Injected { fault, .. } => {
                    *self.disk_faults.entry(*fault).or_default() += 1;
                }
                DiskEvent::Refused { .. } => self.disk_reports.starts_refused += 1,
                DiskEvent::Recovered {
                    damaged_from: Some(_),
                    ..
                } => self.disk_reports.segments_salvaged += 1,
                DiskEvent::Recovered {
                    truncated_bytes, ..
                } if *truncated_bytes > 0 => self.disk_reports.torn_tails_cut += 1,
                DiskEvent::WriteFailed { .. } => self.disk_reports.writes_failed += 1,
                _ => {}
            }
            if let DiskEvent::Recovered {
                unverified_from: Some(_),
                ..
            } = event
            {
                self.disk_reports.unverified_tails += 1;
            }
        }
    }

    pub fn failure(&self, kind: AnomalyKind) -> Option<&Failure> {
        self.failures.iter().find(|f| f.kind == kind)
    }
}

/// Case `index`'s generator seed.
pub fn case_seed(seed: u64, index: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in out.chunks_mut(8) {
        // splitmix64
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(x ^ (x >> 31)).to_le_bytes());
    }
    out
}

/// The case's configuration, validated, and `options` with the case's engine seed.
fn prepare(
    case: &Case,
    options: &HistoryRunOptions,
) -> anyhow::Result<(insync_model::ValidConfig, HistoryRunOptions)> {
    let config = case
        .config
        .clone()
        .validate()
        .map_err(|e| anyhow::anyhow!(UsageError::InvalidConfig(e.to_string())))?;
    let options = HistoryRunOptions {
        seed: case.seed,
        ..options.clone()
    };
    Ok((config, options))
}

/// Runs a case and checks its history.
pub fn run_case(case: &Case, options: &HistoryRunOptions) -> anyhow::Result<(History, Verdict)> {
    let (config, options) = prepare(case, options)?;
    let outcome = run_history(&config, &case.plan, &options)?;
    let verdict = check_history(&outcome.history);
    Ok((outcome.history, verdict))
}

/// Runs a case with the engine's trace on; returns the validated configuration, the options
/// it ran with, and what it produced.
pub fn traced_run(
    case: &Case,
    options: &HistoryRunOptions,
) -> anyhow::Result<(
    insync_model::ValidConfig,
    HistoryRunOptions,
    crate::runner::RunOutcome,
)> {
    let (config, mut options) = prepare(case, options)?;
    options.trace = true;
    let outcome = run_history(&config, &case.plan, &options)?;
    Ok((config, options, outcome))
}

/// Runs a case with the engine's trace on, and replays the trace through the model's actors.
pub fn conform_case(
    case: &Case,
    options: &HistoryRunOptions,
) -> anyhow::Result<Result<crate::replay::Conformance, crate::replay::Nonconformance>> {
    let (config, options, outcome) = traced_run(case, options)?;
    let trace = outcome
        .trace
        .ok_or_else(|| anyhow::anyhow!("the run recorded no trace"))?;
    if trace.overflowed > 0 {
        anyhow::bail!("the trace overflowed ({} events lost)", trace.overflowed);
    }
    Ok(crate::replay::conform(&config, &options, &trace))
}

/// Fuzzes one configuration. `config` must be valid (it is validated here, and an invalid one
/// is an error, not a panic).
pub fn fuzz(config: &Config, options: &FuzzOptions) -> anyhow::Result<FuzzReport> {
    config
        .clone()
        .validate()
        .map_err(|e| anyhow::anyhow!(UsageError::InvalidConfig(e.to_string())))?;
    if !config.consumer {
        anyhow::bail!(UsageError::InvalidConfig(
            "a history needs the consumer; drop --no-consumer".to_string()
        ));
    }
    if options.plan_len.is_empty() {
        anyhow::bail!("the plan length range is empty");
    }
    if let Some(dir) = &options.out_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    // With disk faults (`options.run.disk_faults`), plans draw them among the faults.
    let strategy = if options.controller_faults {
        case_with_controller_faults(
            config.clone(),
            options.plan_len.clone(),
            options.run.disk_faults,
        )
        .boxed()
    } else if options.run.disk_faults {
        case_with_disk_faults(config.clone(), options.plan_len.clone()).boxed()
    } else {
        case_for(config.clone(), options.plan_len.clone()).boxed()
    };
    let bar = options.progress.then(|| {
        let bar = indicatif::ProgressBar::new(options.cases);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} cases {per_sec} [{elapsed_precise}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let start = Instant::now();
    let mut report = FuzzReport::default();
    for index in 0..options.cases {
        let seed = case_seed(options.seed, index);
        let mut runner = TestRunner::new_with_rng(
            proptest::test_runner::Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
        );
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| anyhow::anyhow!("generating case {index}: {e}"))?;
        let case = tree.current();
        let (history, verdict) = run_case(&case, &options.run)?;
        report.cases_run += 1;
        report.operations += history.operation_count() as u64;
        report.count_disk_events(&history);
        if !verdict.is_valid() {
            report.cases_with_anomalies += 1;
            if verdict
                .anomalies
                .iter()
                .all(|a| a.is_last_replica_standing_loss())
            {
                report.cases_last_replica_standing += 1;
            }
        }
        let mut stop = false;
        for kind in verdict.kinds() {
            *report.cases_with.entry(kind).or_default() += 1;
            if report.failure(kind).is_some() {
                continue;
            }
            let failure = shrink(index, seed, &mut tree, kind, case.clone(), options)?;
            let failure = match &options.out_dir {
                Some(dir) => save(dir, failure, options)?,
                None => failure,
            };
            if let Some(bar) = &bar {
                bar.println(format!(
                    "case {index}: {kind}, shrunk to {} steps{}",
                    failure.shrunk.plan.steps.len(),
                    failure
                        .timeline_path
                        .as_ref()
                        .map(|p| format!(": {}", p.display()))
                        .unwrap_or_default()
                ));
            }
            report.failures.push(failure);
            // The tree was shrunk for this kind; regenerate it for the next one.
            tree = strategy
                .new_tree(&mut TestRunner::new_with_rng(
                    proptest::test_runner::Config::default(),
                    TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
                ))
                .map_err(|e| anyhow::anyhow!("generating case {index}: {e}"))?;
            stop |= options.stop_at == Some(kind);
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            if !report.cases_with.is_empty() {
                let found: Vec<String> = report
                    .cases_with
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                bar.set_message(found.join(", "));
            }
        }
        if stop {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Shrinks a case that shows `kind` to one as small as proptest can make it that still shows
/// `kind`.
fn shrink(
    index: u64,
    seed: [u8; 32],
    tree: &mut impl ValueTree<Value = Case>,
    kind: AnomalyKind,
    original: Case,
    options: &FuzzOptions,
) -> anyhow::Result<Failure> {
    let (mut history, mut verdict) = run_case(&original, &options.run)?;
    let mut best = original.clone();
    let mut runs = 0;
    if verdict.has(kind) && tree.simplify() {
        while runs < options.shrink_runs_max {
            let candidate = tree.current();
            let (h, v) = run_case(&candidate, &options.run)?;
            runs += 1;
            if v.has(kind) {
                best = candidate;
                history = h;
                verdict = v;
                if !tree.simplify() {
                    break;
                }
            } else if !tree.complicate() {
                break;
            }
        }
    }
    Ok(Failure {
        kind,
        case_index: index,
        case_seed: seed,
        original,
        shrunk: best,
        history,
        verdict,
        shrink_runs: runs,
        timeline_path: None,
        case_path: None,
        storage: SavedStorage::of(&options.run),
    })
}

/// What a saved case file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedCase {
    pub anomaly: String,
    pub case: Case,
    pub run_seed: u64,
    pub case_index: u64,
    /// How the brokers kept their state in the run that found it, so that a replay runs the
    /// same way (a case saved before this was recorded ran with the then defaults: memory
    /// unless the plan holds a disk fault, a state file at every save).
    #[serde(default)]
    pub storage: SavedStorage,
}

/// The run options a saved case must replay with: what decides what a broker's storage
/// recovers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedStorage {
    /// `--disk-faults`: brokers keep their state in files.
    pub disk_faults: bool,
    /// `--checkpoint-interval-ms`.
    pub checkpoint_interval_ms: u64,
}

impl SavedStorage {
    pub fn of(options: &HistoryRunOptions) -> SavedStorage {
        SavedStorage {
            disk_faults: options.disk_faults,
            checkpoint_interval_ms: u64::try_from(options.checkpoint_interval.as_millis())
                .unwrap_or(u64::MAX),
        }
    }
}

impl SavedCase {
    /// `options` with the storage settings the case was found with.
    pub fn run_options(&self, options: &HistoryRunOptions) -> HistoryRunOptions {
        HistoryRunOptions {
            disk_faults: self.storage.disk_faults,
            checkpoint_interval: std::time::Duration::from_millis(
                self.storage.checkpoint_interval_ms,
            ),
            ..options.clone()
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes `<kind>-case<i>.timeline.txt`, `<kind>-case<i>.case.json`, and a line in
/// `proptest-regressions.txt`.
fn save(dir: &Path, mut failure: Failure, options: &FuzzOptions) -> anyhow::Result<Failure> {
    let stem = format!("{}-case{}", failure.kind, failure.case_index);
    let timeline_path = dir.join(format!("{stem}.timeline.txt"));
    let case_path = dir.join(format!("{stem}.case.json"));
    let saved = SavedCase {
        anomaly: failure.kind.name().to_string(),
        case: failure.shrunk.clone(),
        run_seed: options.seed,
        case_index: failure.case_index,
        storage: SavedStorage::of(&options.run),
    };
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    };
    write(&case_path, serde_json::to_string_pretty(&saved)?)?;
    write(
        &timeline_path,
        timeline(&failure, Some(&case_path), options.seed),
    )?;
    let regressions = dir.join("proptest-regressions.txt");
    let line = format!(
        "cc {} # {} in case {} of seed {}; shrinks to {} steps; replay: insync-fuzz replay {}\n",
        hex(&failure.case_seed),
        failure.kind,
        failure.case_index,
        options.seed,
        failure.shrunk.plan.steps.len(),
        case_path.display()
    );
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&regressions)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", regressions.display()))?;
    failure.timeline_path = Some(timeline_path);
    failure.case_path = Some(case_path);
    Ok(failure)
}

/// The readable timeline of a failing case.
pub fn timeline(failure: &Failure, case_path: Option<&Path>, run_seed: u64) -> String {
    let mut s = String::new();
    let case = &failure.shrunk;
    let _ = writeln!(s, "anomaly: {}", failure.kind);
    let _ = writeln!(s, "configuration: {}", case.config.summary());
    let _ = writeln!(
        s,
        "found in case {} of `insync fuzz --seed {run_seed}`; engine seed {}",
        failure.case_index, case.seed
    );
    if failure.storage.disk_faults {
        let _ = writeln!(
            s,
            "storage: files, --disk-faults --checkpoint-interval-ms {}",
            failure.storage.checkpoint_interval_ms
        );
    }
    let _ = writeln!(
        s,
        "plan: {} steps, shrunk from {} in {} runs",
        case.plan.steps.len(),
        failure.original.plan.steps.len(),
        failure.shrink_runs
    );
    s.push_str(&indent(&case.plan.to_string()));
    s.push_str("\nhistory (index, virtual time, process, type, operation):\n");
    s.push_str(&indent(&failure.history.to_string()));
    s.push_str("\nanomalies:\n");
    for a in &failure.verdict.anomalies {
        let _ = writeln!(s, "  {a}");
    }
    if let Some(path) = case_path {
        let _ = writeln!(s, "\nreplay: insync-fuzz replay {}", path.display());
    }
    s
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Loads a saved case.
pub fn load(path: &Path) -> anyhow::Result<SavedCase> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a saved case: {e}", path.display()))
}

/// Runs a saved case again, with its storage settings over `options`.
pub fn replay(
    saved: &SavedCase,
    options: &HistoryRunOptions,
) -> anyhow::Result<(History, Verdict)> {
    run_case(&saved.case, &saved.run_options(options))
}

/// The summary table: one row per anomaly, the cases that showed it, and the saved timeline.
pub fn render_summary(report: &FuzzReport) -> String {
    let mut s = String::new();
    let per_second = report.cases_run as f64 / report.seconds.max(1e-9);
    let _ = writeln!(
        s,
        "{} cases ({} operations) in {:.1}s, {:.0} cases/s",
        report.cases_run, report.operations, report.seconds, per_second
    );
    if !report.disk_faults.is_empty() {
        let faults: Vec<String> = report
            .disk_faults
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        let r = &report.disk_reports;
        let _ = writeln!(
            s,
            "disk faults injected: {} in {} cases ({}); storage reported {} refused starts, {} \
             torn tails cut, {} failed writes, {} unverified tails (an unclean shutdown after a \
             periodic checkpoint), {} damaged segments salvaged (--elr)",
            report.disk_faults.values().sum::<u64>(),
            report.cases_with_disk_faults,
            faults.join(", "),
            r.starts_refused,
            r.torn_tails_cut,
            r.writes_failed,
            r.unverified_tails,
            r.segments_salvaged
        );
    }
    let _ = writeln!(
        s,
        "\n{:<22} {:>7}  {:>7}  timeline",
        "anomaly", "cases", "steps"
    );
    for kind in AnomalyKind::ALL {
        let n = report.cases_with.get(&kind).copied().unwrap_or(0);
        let failure = report.failure(kind);
        let steps = failure.map_or("-".to_string(), |f| f.shrunk.plan.steps.len().to_string());
        let path = failure
            .and_then(|f| f.timeline_path.as_ref())
            .map_or("-".to_string(), |p| p.display().to_string());
        let _ = writeln!(s, "{:<22} {:>7}  {:>7}  {}", kind.name(), n, steps, path);
    }
    if report.cases_last_replica_standing > 0 {
        let _ = writeln!(
            s,
            "\n{} of the {} cases with an anomaly show only {}: a broker came back from an \
             unclean shutdown without records its storage reported unverified (lost-write, and \
             the read-uncommitted, nonmonotonic-poll or unseen that follow)",
            report.cases_last_replica_standing,
            report.cases_with_anomalies,
            crate::checker::LAST_REPLICA_STANDING
        );
    }
    s
}
