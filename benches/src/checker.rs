//! Model-checker measurements. Each case runs in a fresh child process (the bench binary
//! re-executed with [`CASE_ENV`] set), so its memory figure is its own: the peak resident
//! set of the child minus what it held before the check started.

use insync::check::{check, CheckOptions, Strategy};
use insync_model::properties;
use insync_model::scenarios::catalogue;
use insync_model::{Config, ValidConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// The variable that tells the bench binary to run one case and print its [`Figure`].
pub const CASE_ENV: &str = "INSYNC_BENCH_CHECKER_CASE";
/// The prefix of the child's result line on stdout.
pub const RESULT_PREFIX: &str = "INSYNC_BENCH_RESULT ";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckerCase {
    /// A catalogue scenario, or `None` for the contract default (`insync check`).
    pub scenario: Option<String>,
    /// A configuration of its own, in place of a catalogue row or the default.
    #[serde(default)]
    pub config: Option<Config>,
    /// `bfs` or `dfs`.
    pub strategy: String,
    pub threads: usize,
    /// Stop after this many generated states (`--max-states`).
    pub max_states: Option<usize>,
    /// Stop at the first counterexample to this property, or to any safety property when it
    /// is `safety` (`--first`).
    pub stop_at: Option<String>,
    /// Give up after this long (`--timeout`).
    pub timeout_seconds: Option<u64>,
}

impl CheckerCase {
    pub fn label(&self) -> String {
        format!(
            "{} {} {}t",
            self.scenario.as_deref().unwrap_or("default"),
            self.strategy,
            self.threads
        )
    }

    /// The `insync check` command line that runs the same search.
    pub fn command(&self) -> String {
        let mut s = String::from("insync check");
        if let Some(c) = &self.config {
            for f in c.flags() {
                s.push(' ');
                s.push_str(&f);
            }
        } else if let Some(name) = &self.scenario {
            s.push_str(&format!(" <{name} flags>"));
        }
        s.push_str(&format!(
            " --strategy {} --threads {}",
            self.strategy, self.threads
        ));
        if let Some(m) = self.max_states {
            s.push_str(&format!(" --max-states {m}"));
        }
        match self.stop_at.as_deref() {
            Some("safety") => s.push_str(" --first"),
            Some(p) => s.push_str(&format!(" (stop at {p})")),
            None => {}
        }
        if let Some(t) = self.timeout_seconds {
            s.push_str(&format!(" --timeout {t}"));
        }
        s
    }

    fn config(&self) -> ValidConfig {
        if let Some(c) = &self.config {
            return c
                .clone()
                .validate()
                .expect("a bench configuration is valid");
        }
        match &self.scenario {
            None => Config::default().validate().expect("the default is valid"),
            Some(name) => catalogue()
                .into_iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no scenario {name}"))
                .config
                .validate()
                .expect("catalogue configurations are valid"),
        }
    }
}

/// What one case measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    pub case: CheckerCase,
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub complete: bool,
    /// Safety properties with a counterexample, and its length in steps.
    pub violated: Vec<(String, usize)>,
    pub rss_before_kib: u64,
    pub peak_rss_kib: u64,
}

impl Figure {
    pub fn unique_per_second(&self) -> f64 {
        self.unique_states as f64 / self.seconds.max(1e-9)
    }

    /// Bytes of resident memory the search added, per unique state.
    pub fn bytes_per_state(&self) -> f64 {
        let added = self.peak_rss_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0;
        added / self.unique_states.max(1) as f64
    }
}

fn strategy(name: &str) -> Strategy {
    match name {
        "bfs" => Strategy::Bfs,
        "dfs" => Strategy::Dfs,
        "simulation" => Strategy::Simulation,
        other => panic!("unknown strategy {other}"),
    }
}

/// Runs `case` in this process (the child's side).
pub fn run_here(case: &CheckerCase) -> Figure {
    let config = case.config();
    let stop_at = case.stop_at.as_deref().map(|wanted| {
        properties::all()
            .into_iter()
            .filter(|p| match wanted {
                "safety" => p.expectation == stateright::Expectation::Always,
                name => p.name == name,
            })
            .map(|p| p.property)
            .collect::<BTreeSet<_>>()
    });
    let options = CheckOptions {
        strategy: strategy(&case.strategy),
        threads: case.threads,
        max_states: case.max_states,
        timeout: case.timeout_seconds.map(Duration::from_secs),
        stop_at,
        progress: false,
        ..CheckOptions::default()
    };
    let rss_before_kib = crate::machine::rss_kib();
    let report = check(&config, &options);
    let peak_rss_kib = crate::machine::peak_rss_kib();
    Figure {
        case: case.clone(),
        states: report.states,
        unique_states: report.unique_states,
        max_depth: report.max_depth,
        seconds: report.seconds,
        complete: report.complete,
        violated: report
            .violations()
            .map(|p| {
                (
                    p.name.to_string(),
                    p.counterexample.as_ref().map_or(0, Vec::len),
                )
            })
            .collect(),
        rss_before_kib,
        peak_rss_kib,
    }
}

/// If this process was started as a case's child, runs it, prints the result line and
/// returns true.
pub fn child_main() -> bool {
    let Ok(json) = std::env::var(CASE_ENV) else {
        return false;
    };
    let case: CheckerCase = serde_json::from_str(&json).expect("a case from the parent");
    let figure = run_here(&case);
    println!(
        "{RESULT_PREFIX}{}",
        serde_json::to_string(&figure).expect("serializable figure")
    );
    true
}

/// Runs `case` in a fresh child process of the current executable.
pub fn run_in_child(case: &CheckerCase) -> anyhow::Result<Figure> {
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new(exe)
        .env(CASE_ENV, serde_json::to_string(case)?)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "case {} printed no result (status {})",
                case.label(),
                output.status
            )
        })?;
    Ok(serde_json::from_str(line)?)
}
