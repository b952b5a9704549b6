//! The matrix of built-in scenarios (`insync check --matrix`): each scenario of the model's
//! catalogue checked, its verdict judged against the one it promises, and the table.

use crate::check::{check, CheckOptions, CheckReport, Strategy};
use anyhow::Context;
use insync_model::properties::Property;
use insync_model::scenarios::{catalogue, Expect, Scenario};

/// One row of the matrix: a scenario, its report, and whether the verdict is the promised one.
pub type MatrixRow = (Scenario, CheckReport, bool);

/// How a matrix row is checked: a scenario that must break a property stops at its first
/// counterexample (breadth first, so it is the shortest); a safe one is exhausted.
pub fn scenario_options(scenario: &Scenario, threads: Option<usize>) -> CheckOptions {
    let mut options = CheckOptions {
        strategy: Strategy::Dfs,
        ..CheckOptions::default()
    };
    if let Some(t) = threads {
        options.threads = t;
    }
    if let Expect::Breaks(property) = scenario.expect {
        options.strategy = Strategy::Bfs;
        options.threads = 1;
        options.stop_at = Some([property].into_iter().collect());
    }
    options
}

/// Whether a report shows what the scenario promises.
pub fn verdict_matches(scenario: &Scenario, report: &CheckReport) -> bool {
    match &scenario.expect {
        Expect::Breaks(property) => report.property(*property).is_some_and(|p| !p.holds),
        Expect::Safe { reached } => {
            report.complete
                && report.violations().next().is_none()
                && reached
                    .iter()
                    .all(|name| report.property(*name).is_some_and(|p| p.holds))
        }
    }
}

/// Checks every scenario of the catalogue (`threads`: `--threads`), with progress on stderr.
pub fn check_catalogue(threads: Option<usize>) -> anyhow::Result<Vec<MatrixRow>> {
    let mut rows = Vec::new();
    for scenario in catalogue() {
        let config = scenario
            .config
            .clone()
            .validate()
            .with_context(|| format!("scenario {}", scenario.name))?;
        eprintln!("checking {} ({})", scenario.name, config.summary());
        let report = check(&config, &scenario_options(&scenario, threads));
        let matches = verdict_matches(&scenario, &report);
        rows.push((scenario, report, matches));
    }
    Ok(rows)
}

/// The matrix's exit code: 0 if every verdict is the one its scenario promises, else 1.
pub fn matrix_exit_code(rows: &[MatrixRow]) -> u8 {
    if rows.iter().all(|(_, _, matches)| *matches) {
        0
    } else {
        1
    }
}

/// `insync check --matrix --json`: one object per row.
pub fn matrix_json(rows: &[MatrixRow]) -> serde_json::Value {
    rows.iter()
        .map(|(s, r, m)| {
            serde_json::json!({"scenario": s.name, "about": s.about, "as_expected": m, "report": r})
        })
        .collect()
}

/// One table: scenario, configuration, a column per property, states, time, and whether the
/// verdict is the one the scenario promises.
pub fn render_matrix(names: &[Property], rows: &[(Scenario, CheckReport, bool)]) -> String {
    let mut s = String::new();
    s.push_str("Properties: ");
    for (i, n) in names.iter().enumerate() {
        s.push_str(&format!(
            "P{}={n}{}",
            i + 1,
            if i + 1 < names.len() { ", " } else { "\n" }
        ));
    }
    s.push_str("Verdicts: ok = holds (exhaustive), X = violated, ? = not refuted (search stopped), + = reached, - = not reached\n\n");
    let config_width = rows
        .iter()
        .map(|(sc, _, _)| sc.config.summary().len())
        .max()
        .unwrap_or(10);
    s.push_str(&format!(
        "{:<26} {:<w$} ",
        "scenario",
        "configuration",
        w = config_width
    ));
    for i in 0..names.len() {
        s.push_str(&format!("{:>4}", format!("P{}", i + 1)));
    }
    s.push_str(&format!(
        " {:>10} {:>8}  {}\n",
        "states", "time", "expected"
    ));
    for (scenario, report, matches) in rows {
        s.push_str(&format!(
            "{:<26} {:<w$} ",
            scenario.name,
            scenario.config.summary(),
            w = config_width
        ));
        for name in names {
            let cell = match report.property(*name) {
                Some(p) if p.expectation == "always" && p.holds && report.complete => "ok",
                Some(p) if p.expectation == "always" && p.holds => "?",
                Some(p) if p.expectation == "always" => "X",
                Some(p) if p.holds => "+",
                _ => "-",
            };
            s.push_str(&format!("{cell:>4}"));
        }
        s.push_str(&format!(
            " {:>10} {:>7.1}s  {}\n",
            report.unique_states,
            report.seconds,
            if *matches { "yes" } else { "NO" }
        ));
    }
    s.push_str("\nWhat each scenario shows, and the first counterexample of those that break:\n");
    for (scenario, report, _) in rows {
        s.push_str(&format!("\n{}: {}\n", scenario.name, scenario.about));
        if let Expect::Breaks(property) = scenario.expect {
            if let Some(trace) = report
                .property(property)
                .and_then(|p| p.counterexample.as_ref())
            {
                s.push_str(&format!(
                    "  {property} violated in {} steps:\n",
                    trace.len()
                ));
                for line in trace {
                    s.push_str(&format!("    {line}\n"));
                }
            }
        }
    }
    s
}
