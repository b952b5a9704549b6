//! `insync check --budget S`: scope deepening. Small scopes are cheap and catch most bugs
//! (Jackson's small-scope hypothesis, the reason Alloy and TLC users start small), while the
//! scope a user asks for may not finish in the time they have. So the check starts from one
//! record, no crash, no election and no ISR change, and raises one bound at a time towards the
//! configuration's own (elections, crashes, records, ISR changes, in turn), each scope a
//! complete check of its own, while the budget lasts. It stops at the first scope with a
//! counterexample (the smallest scope that breaks the property, so its trace is short), or
//! when the budget runs out, or after the asked-for scope finished.
//!
//! The verdict follows PROTOCOL.md §4: 1 when a scope found a counterexample, 0 only when the
//! asked-for scope itself finished without one, 3 otherwise; the report names the largest scope
//! that finished and the scope that was cut short.

use crate::check::{check, Bounds, CheckOptions, CheckReport, CutShort};
use insync_model::{Config, ValidConfig};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One scope of a deepening run.
#[derive(Clone, Debug, Serialize)]
pub struct ScopeRun {
    pub bounds: Bounds,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<CutShort>,
    pub unique_states: usize,
    pub seconds: f64,
    /// Safety properties this scope found a counterexample for.
    pub violated: Vec<&'static str>,
}

/// What a deepening run covered, attached to the report of its deciding scope.
#[derive(Clone, Debug, Serialize)]
pub struct Deepening {
    pub budget_seconds: f64,
    /// Every scope checked, smallest first.
    pub scopes: Vec<ScopeRun>,
    /// The largest scope that finished without a counterexample.
    pub largest_complete: Option<Bounds>,
    /// The scope whose counterexample the report shows.
    pub first_violation: Option<Bounds>,
    /// Whether the last scope is the configuration's own bounds.
    pub reached_target: bool,
}

/// The scopes from the smallest to `target`, each one bound above the one before: elections,
/// crashes, records and ISR changes are raised in turn, skipping a bound already at the target.
pub fn scopes(target: &Config) -> Vec<Config> {
    let mut scope = Config {
        records: 1,
        crashes: 0,
        elections: 0,
        isr_changes: 0,
        ..target.clone()
    };
    let mut out = vec![scope.clone()];
    loop {
        let mut raised = false;
        for bound in 0..4 {
            let (current, goal) = match bound {
                0 => (&mut scope.elections, target.elections),
                1 => (&mut scope.crashes, target.crashes),
                2 => (&mut scope.records, target.records),
                _ => (&mut scope.isr_changes, target.isr_changes),
            };
            if *current < goal {
                *current += 1;
                raised = true;
                out.push(scope.clone());
            }
        }
        if !raised {
            return out;
        }
    }
}

/// Checks `config` by scope deepening within `budget`.
pub fn check_within_budget(
    config: &ValidConfig,
    options: &CheckOptions,
    budget: Duration,
) -> CheckReport {
    let start = Instant::now();
    let target: &Config = config;
    let mut runs: Vec<ScopeRun> = Vec::new();
    let mut largest_complete = None;
    let mut last: Option<(CheckReport, bool)> = None;
    for scope in scopes(target) {
        let is_target = &scope == target;
        // A smaller scope that the configuration's own checks refuse (none does today) is
        // skipped rather than reported: the target itself passed them.
        let Ok(scope) = scope.validate() else {
            continue;
        };
        let remaining = budget.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            break;
        }
        let report = check(
            &scope,
            &CheckOptions {
                timeout: Some(remaining),
                ..options.clone()
            },
        );
        let violated: Vec<&'static str> = report.violations().map(|p| p.name.name()).collect();
        runs.push(ScopeRun {
            bounds: report.bounds.clone(),
            complete: report.complete,
            cut_short: report.cut_short,
            unique_states: report.unique_states,
            seconds: report.seconds,
            violated: violated.clone(),
        });
        let finished = report.complete && violated.is_empty();
        if finished {
            largest_complete = Some(report.bounds.clone());
        }
        let stop = !violated.is_empty() || !report.complete || is_target;
        last = Some((report, is_target));
        if stop {
            break;
        }
    }
    let (mut report, reached_target) = match last {
        Some(last) => last,
        // The budget was zero: nothing was checked, which is a search cut short.
        None => {
            let mut report = check(
                config,
                &CheckOptions {
                    timeout: Some(Duration::ZERO),
                    ..options.clone()
                },
            );
            report.cut_short = Some(CutShort::Timeout);
            report.complete = false;
            (report, false)
        }
    };
    let first_violation = report
        .violations()
        .next()
        .is_some()
        .then(|| report.bounds.clone());
    if !reached_target && report.complete && first_violation.is_none() {
        // A smaller scope finished, then the budget ended before the next one started.
        report.complete = false;
        report.cut_short = Some(CutShort::Timeout);
    }
    report.seconds = start.elapsed().as_secs_f64();
    report.deepening = Some(Deepening {
        budget_seconds: budget.as_secs_f64(),
        scopes: runs,
        largest_complete,
        first_violation,
        reached_target,
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_raise_one_bound_at_a_time_up_to_the_target() {
        let target = Config {
            records: 2,
            crashes: 1,
            elections: 2,
            isr_changes: 1,
            ..Config::default()
        };
        let got: Vec<(u32, u32, u32, u32)> = scopes(&target)
            .iter()
            .map(|c| (c.elections, c.crashes, c.records, c.isr_changes))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 1, 0),
                (1, 0, 1, 0),
                (1, 1, 1, 0),
                (1, 1, 2, 0),
                (1, 1, 2, 1),
                (2, 1, 2, 1),
            ]
        );
        assert_eq!(scopes(&target).last(), Some(&target));
    }

    #[test]
    fn the_smallest_target_is_its_only_scope() {
        let target = Config {
            records: 1,
            crashes: 0,
            elections: 0,
            isr_changes: 0,
            ..Config::default()
        };
        assert_eq!(scopes(&target), vec![target]);
    }
}
