//! Fuzzer findings kept as case files that CI replays (`checks/testdata/cases/`, issue 13).
//!
//! A case file is a saved case ([`SavedCase`], what `insync fuzz` writes as `.case.json`) with
//! two more fields: `about`, the lines that say what the case caught (JSON has no comments),
//! and `expect`, what a replay must show: the anomaly kinds the checker names (none: the
//! history is valid), the checker's counts of sends and reads, what the brokers' storage
//! reported, and whether the engine's trace is a path of the model's actors. The saved case's
//! own fields stay at the top level, so `insync fuzz replay FILE` runs a case file as it is.
//!
//! `tests/cases.rs` replays every file twice (the paused clock makes a run repeat itself; the
//! two histories must be equal) and compares what it shows with `expect`. With
//! `INSYNC_REGEN=1` it writes what the replay shows into `expect` instead, and gives a file
//! without `about` a `TODO` line that fails the test until someone writes what it caught.

use crate::checker::Verdict;
use crate::fuzz::{conform_case, replay, SavedCase};
use crate::history::{DiskEvent, Fun, History};
use crate::runner::HistoryRunOptions;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The case files' directory, from the workspace root.
pub const DIR: &str = "checks/testdata/cases";

/// What `about` holds until someone writes what the case caught.
pub const ABOUT_TODO: &str = "TODO: what this case caught (the bug, where it was found, the fix)";

/// One case file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseFile {
    /// What the case caught: the bug or the behaviour, how it was found, the commit or issue.
    #[serde(default)]
    pub about: Vec<String>,
    /// What a replay must show; absent in a `.case.json` just copied from a fuzzing run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expected>,
    /// The saved case: its `anomaly` is what it showed when it was found (for a fixed bug,
    /// what it must no longer show), and `case` and `storage` what it runs.
    #[serde(flatten)]
    pub saved: SavedCase,
}

/// What a replay of a case shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The anomaly kinds the checker names, by name; empty means the history is valid.
    pub anomalies: Vec<String>,
    /// Sends acknowledged, failed and indeterminate, and records read (the checker's counts).
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub read: usize,
    /// What the brokers' storage reported: every disk line of the history but the injected
    /// faults, as the history prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<String>,
    /// Whether the engine's trace of the run is a path of the model's actors.
    pub conforms: bool,
}

impl Expected {
    /// What a history and its verdict show, and whether the trace conformed.
    pub fn of(history: &History, verdict: &Verdict, conforms: bool) -> Expected {
        let storage = history
            .ops
            .iter()
            .filter(|op| {
                matches!(&op.fun, Fun::Disk { event, .. } if !matches!(event, DiskEvent::Injected { .. }))
            })
            .map(|op| op.describe())
            .collect();
        Expected {
            anomalies: verdict
                .kinds()
                .into_iter()
                .map(|k| k.name().to_string())
                .collect(),
            acknowledged: verdict.acknowledged,
            failed: verdict.failed,
            indeterminate: verdict.indeterminate,
            read: verdict.read,
            storage,
            conforms,
        }
    }
}

/// What replaying a case file gave.
pub struct Replayed {
    pub history: History,
    pub verdict: Verdict,
    pub shown: Expected,
    /// Why the trace did not conform, if it did not.
    pub nonconformance: Option<String>,
}

impl CaseFile {
    pub fn parse(text: &str) -> anyhow::Result<CaseFile> {
        Ok(serde_json::from_str(text)?)
    }

    /// The file's text: pretty JSON, as `INSYNC_REGEN=1` writes it.
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a case file serializes");
        text.push('\n');
        text
    }

    /// Runs the case twice with the storage it records (the histories must be equal: the run
    /// is deterministic on the paused clock), then once traced for conformance.
    pub fn replay(&self) -> anyhow::Result<Replayed> {
        let options = self.saved.run_options(&HistoryRunOptions::default());
        let (history, verdict) = replay(&self.saved, &HistoryRunOptions::default())?;
        let (again, _) = replay(&self.saved, &HistoryRunOptions::default())?;
        if again != history {
            let (first, second) = (history.to_string(), again.to_string());
            let differ: Vec<String> = first
                .lines()
                .zip(second.lines())
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(a, b)| format!("  first:  {a}\n  second: {b}"))
                .collect();
            anyhow::bail!(
                "two runs of the case differ (the replay is not deterministic):\n{}\nfirst run:\n{first}",
                differ.join("\n")
            );
        }
        let nonconformance = conform_case(&self.saved.case, &options)?
            .err()
            .map(|e| e.to_string());
        let shown = Expected::of(&history, &verdict, nonconformance.is_none());
        Ok(Replayed {
            history,
            verdict,
            shown,
            nonconformance,
        })
    }
}

/// The case files in `dir`, sorted by name: every entry must be a `.json` file.
pub fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
            anyhow::bail!(
                "{} is not a case file (a `.json` file); only case files belong in {}",
                path.display(),
                dir.display()
            );
        }
        paths.push(path);
    }
    paths.sort();
    Ok(paths)
}

/// The command that makes a saved case one that CI replays.
pub fn keep_command(case_path: &Path, stem: &str) -> String {
    format!(
        "cp {} {DIR}/{stem}.json && INSYNC_REGEN=1 cargo test -p insync-checks --test cases",
        case_path.display()
    )
}
