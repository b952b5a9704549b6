//! The catalogue's promises, checked: the recommended configuration is safe and its `sometimes`
//! properties are reached; each seed example breaks the property it is about.
//!
//! Bounds are the catalogue's (see `insync_model::scenarios`): exhaustive DFS for the safe
//! scenarios, BFS to the first counterexample for the breaking ones.

mod common;

use common::testdata::{expect_file, root, Line, ScenarioFile};
use insync::check::check;
use insync::matrix::{scenario_options, verdict_matches};
use insync_model::scenarios::{catalogue, Expect, Scenario};

fn scenario(name: &str) -> Scenario {
    catalogue()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn assert_scenario(name: &str) {
    let s = scenario(name);
    let config = s
        .config
        .clone()
        .validate()
        .expect("catalogue configs are valid");
    let report = check(&config, &scenario_options(&s, None));
    let summary: Vec<String> = report
        .properties
        .iter()
        .map(|p| format!("{}={}", p.name, p.holds))
        .collect();
    assert!(
        verdict_matches(&s, &report),
        "{name}: expected {:?}, got {summary:?} (complete={})",
        s.expect,
        report.complete
    );
    if let Expect::Breaks(property) = s.expect {
        let trace = report
            .property(property)
            .and_then(|p| p.counterexample.clone());
        let trace = trace.expect("a counterexample");
        pin_counterexample(&s, &trace);
        // A shortest one: a breadth-first search that admits only shorter paths (a path of
        // n steps ends at depth n + 1) finds none.
        let shorter = check(
            &config,
            &insync::check::CheckOptions {
                max_depth: Some(trace.len() + 1),
                ..scenario_options(&s, None)
            },
        );
        let found = shorter
            .property(property)
            .and_then(|p| p.counterexample.clone());
        assert!(
            found.is_none(),
            "{name}: a shorter counterexample than {trace:#?} exists: {found:#?}"
        );
    }
}

/// The counterexample is the one in `model/testdata/matrix/NAME.txt`, step for step (written
/// there with `INSYNC_REGEN=1`; `tests/testdata.rs` replays the file).
fn pin_counterexample(s: &Scenario, trace: &[String]) {
    let flags = s.config.flags();
    let mut lines = vec![
        Line::Comment(format!("# Matrix row {}: {}", s.name, s.about)),
        Line::Comment(format!(
            "# The shortest counterexample of {}, as `insync check --matrix` finds it.",
            match s.expect {
                Expect::Breaks(p) => p,
                Expect::Safe { .. } => unreachable!("only breaking rows have one"),
            }
        )),
    ];
    for step in trace {
        let (_, step) = step.split_once(". ").expect("numbered steps");
        lines.push(Line::Step(step.to_string()));
    }
    lines.push(Line::Violated(Vec::new()));
    lines.push(Line::FinalState(Vec::new()));
    let file = ScenarioFile { flags, lines }
        .replay(true)
        .unwrap_or_else(|e| panic!("{}: the counterexample does not replay: {e}", s.name));
    let path = root().join(format!("matrix/{}.txt", s.name));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    expect_file(&path, &text, &file.render());
}

#[test]
fn recommended_is_safe_through_a_failover() {
    assert_scenario("recommended");
}

#[test]
fn recommended_is_safe_through_a_leader_crash() {
    assert_scenario("recommended-crash");
}

#[test]
fn recommended_is_safe_for_a_consumer() {
    assert_scenario("recommended-consumer");
}

#[test]
fn acks_1_loses_an_acknowledged_record() {
    assert_scenario("acks-1");
}

#[test]
fn unclean_election_loses_committed_records() {
    assert_scenario("unclean-election");
}

#[test]
fn no_retries_turns_failover_into_failed_send() {
    assert_scenario("no-retries");
}

#[test]
fn retries_without_idempotence_duplicate() {
    assert_scenario("retries-no-idempotence");
}

#[test]
fn legacy_high_watermark_truncation_loses_data() {
    assert_scenario("legacy-hw-truncation");
}

#[test]
fn async_flush_under_old_zookeeper_breaks_isr_completeness() {
    assert_scenario("async-flush-zookeeper");
}

#[test]
fn async_flush_loses_committed_records_at_the_last_replica() {
    assert_scenario("async-flush-last-replica");
}

#[test]
fn async_flush_with_elr_and_min_isr_high_watermark_is_safe() {
    assert_scenario("async-flush-elr");
}

#[test]
fn every_catalogue_row_has_a_test() {
    let source = include_str!("matrix.rs");
    for s in catalogue() {
        assert!(
            source.contains(&format!("assert_scenario(\"{}\")", s.name)),
            "catalogue row {} has no test in impl/tests/matrix.rs",
            s.name
        );
    }
}

#[test]
fn committing_before_processing_skips_records() {
    assert_scenario("commit-before-processing");
}
