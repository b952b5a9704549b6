//! Generated histories against the real engine.
//!
//! The safe configurations must show no anomaly over `INSYNC_CASES` generated histories (64 by
//! default, a few seconds; `INSYNC_SEED` picks them, 0 by default; `INSYNC_CASES=5000 cargo test --release -p insync-checks --test
//! histories` is the longer run). Each unsafe configuration of the seed examples must show its
//! anomaly within a bounded number of cases, shrunk to a handful of steps, and the saved case
//! must replay to the same anomaly.

use insync_checks::checker::{AnomalyKind, Verdict};
use insync_checks::fuzz::{fuzz, load, replay, run_case, FuzzOptions};
use insync_checks::history::History;
use insync_checks::plan::{Plan, Step};
use insync_checks::runner::HistoryRunOptions;
use insync_checks::strategy::{
    case_for, case_with_config, case_with_controller_faults, recommended, safe_config, Case,
};
use insync_model::config::{Acks, Config, Truncation};
use proptest::prelude::*;

/// Generated histories per property test (`INSYNC_CASES`).
fn cases() -> u32 {
    std::env::var("INSYNC_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

fn unexplained(_history: &History, verdict: &Verdict) -> Vec<String> {
    verdict.anomalies.iter().map(|a| a.to_string()).collect()
}

/// Writes the timeline of a failing case where a user finds it: the last one written is the
/// shrunk one, since proptest runs the minimal failing case last.
fn save_timeline(name: &str, case: &Case, history: &History, problems: &[String]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("insync-fuzz");
    let _ = std::fs::create_dir_all(&dir);
    let text = format!(
        "configuration: {}\nengine seed: {}\nplan:\n{}\nhistory:\n{history}\nanomalies:\n  {}\ncase: {}\n",
        case.config.summary(),
        case.seed,
        case.plan,
        problems.join("\n  "),
        serde_json::to_string(case).unwrap_or_default()
    );
    let _ = std::fs::write(dir.join(format!("{name}.timeline.txt")), text);
}

fn check_safe(name: &str, case: Case) -> Result<(), TestCaseError> {
    let (history, verdict) = run_case(&case, &HistoryRunOptions::default())
        .map_err(|e| TestCaseError::fail(format!("the run failed: {e:#}")))?;
    let problems = unexplained(&history, &verdict);
    if !problems.is_empty() {
        save_timeline(name, &case, &history, &problems);
        return Err(TestCaseError::fail(format!(
            "{} shows {problems:?}\n{history}",
            case.config.summary()
        )));
    }
    Ok(())
}

/// The generator's seed (`INSYNC_SEED`, 0 by default), so that CI runs the same histories
/// every time; set it to explore others.
fn rng_seed() -> proptest::test_runner::RngSeed {
    proptest::test_runner::RngSeed::Fixed(
        std::env::var("INSYNC_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_seed: rng_seed(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_recommended_configuration_shows_no_anomaly(case in case_for(recommended(), 1..40)) {
        check_safe("recommended", case)?;
    }

    #[test]
    fn safe_configurations_show_no_anomaly(case in case_with_config(safe_config(), 1..40)) {
        check_safe("safe-configurations", case)?;
    }

    /// The engine's controller is durable: crashed and restarted anywhere in a history, it
    /// comes back with its epochs, ISR and incarnations, and nothing acknowledged is lost.
    #[test]
    fn the_recommended_configuration_survives_controller_crashes(
        case in case_with_controller_faults(recommended(), 1..40, false)
    ) {
        check_safe("controller-faults", case)?;
    }
}

/// Fuzzes `config` until `kind` shows (at most `cases_max` cases), shrinks it, saves it, and
/// replays the saved case.
fn finds(name: &str, config: Config, kind: AnomalyKind, cases_max: u64, steps_max: usize) {
    let dir = tempfile_dir(name);
    let report = fuzz(
        &config,
        &FuzzOptions {
            cases: cases_max,
            seed: 0,
            out_dir: Some(dir.clone()),
            stop_at: Some(kind),
            shrink_runs_max: 1000,
            ..FuzzOptions::default()
        },
    )
    .expect("the fuzzing run completes");
    let failure = report.failure(kind).unwrap_or_else(|| {
        panic!(
            "{} did not show {kind} in {} cases (found {:?})",
            config.summary(),
            report.cases_run,
            report.cases_with
        )
    });
    assert!(
        failure.shrunk.plan.steps.len() <= steps_max,
        "shrunk to {} steps:\n{}",
        failure.shrunk.plan.steps.len(),
        failure.shrunk.plan
    );
    let timeline = std::fs::read_to_string(failure.timeline_path.as_ref().expect("saved"))
        .expect("the timeline is readable");
    assert!(timeline.contains(kind.name()), "{timeline}");
    // The saved case replays to the same anomaly, with the same history.
    let saved = load(failure.case_path.as_ref().expect("saved")).expect("the case loads");
    let (history, verdict) =
        replay(&saved, &HistoryRunOptions::default()).expect("the replay runs");
    assert!(verdict.has(kind), "the replay lost {kind}:\n{history}");
    assert_eq!(history, failure.history, "the replay is deterministic");
    let regressions = std::fs::read_to_string(dir.join("proptest-regressions.txt"))
        .expect("a regression line is written");
    assert!(regressions.starts_with("cc "), "{regressions}");
    // The engine's trace of the failing run is a path the model allows.
    let conformance = insync_checks::fuzz::conform_case(&saved.case, &HistoryRunOptions::default())
        .expect("the traced run completes")
        .unwrap_or_else(|e| panic!("the trace does not conform: {e}"));
    assert!(conformance.deliveries > 0, "{conformance:?}");
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("insync-fuzz")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn acks_1_loses_an_acknowledged_write() {
    let config = Config {
        acks: Acks::One,
        idempotence: false,
        ..recommended()
    };
    finds("acks-1", config, AnomalyKind::LostWrite, 1000, 10);
}

#[test]
fn unclean_election_loses_an_acknowledged_write() {
    let config = Config {
        unclean_election: true,
        min_insync: 1,
        ..recommended()
    };
    finds("unclean-election", config, AnomalyKind::LostWrite, 2000, 10);
}

#[test]
fn legacy_high_watermark_truncation_loses_an_acknowledged_write() {
    let config = Config {
        truncation: Truncation::HighWatermark,
        ..recommended()
    };
    finds(
        "legacy-hw-truncation",
        config,
        AnomalyKind::LostWrite,
        3000,
        12,
    );
}

#[test]
fn retries_without_idempotence_duplicate_a_record() {
    let config = Config {
        idempotence: false,
        retries: 1,
        max_in_flight: 5,
        ..recommended()
    };
    finds(
        "retries-no-idempotence",
        config,
        AnomalyKind::Duplicate,
        1000,
        10,
    );
}

fn plan(steps: Vec<Step>) -> Case {
    Case {
        config: recommended(),
        plan: Plan { steps },
        seed: 0,
    }
}

#[test]
fn a_run_repeats_itself() {
    let case = plan(vec![
        Step::Send,
        Step::SlowFollower { rank: 0, ms: 300 },
        Step::Send,
        Step::CrashLeader,
        Step::Pause { ms: 2600 },
        Step::Send,
        Step::Poll,
        Step::Commit,
        Step::Heal,
    ]);
    let (first, verdict) = run_case(&case, &HistoryRunOptions::default()).expect("runs");
    let (second, _) = run_case(&case, &HistoryRunOptions::default()).expect("runs");
    assert_eq!(first, second);
    assert!(verdict.is_valid(), "{:?}\n{first}", verdict.anomalies);
    // A heal with no partition is skipped: preconditions keep the history meaningful.
    assert!(!first.to_string().contains("heal the partition"), "{first}");
    assert!(
        first.to_string().contains("crash broker 0 (the leader)"),
        "{first}"
    );
}

/// Setup: every message takes 81 ms; the leader crashes while a record is on its way.
/// Steps: the producer and the consumer lose their leader and ask the controller again.
/// Expected: neither asks twice while its request is unanswered (a 10–20 ms re-ask timer used
/// to send about six `Metadata` requests per round trip); a lost request is still asked again
/// (the case file `testdata/cases/fixed-unseen-lost-metadata-request.json`). A trace
/// assertion, which a case file cannot express.
#[test]
fn a_slow_metadata_answer_is_not_asked_for_twice() {
    use insync::runtime::TraceKind;
    use insync_model::msg::Msg;
    let case = plan(vec![
        Step::Delay { ms: 81 },
        Step::Send,
        Step::CrashLeader,
        Step::Send,
        // Past the 3 s request timeout, when both clients give up on the crashed leader.
        Step::Pause { ms: 5000 },
    ]);
    let (_, _, outcome) =
        insync_checks::fuzz::traced_run(&case, &HistoryRunOptions::default()).expect("runs");
    let trace = outcome.trace.expect("traced");
    let controller = stateright::actor::Id::from(case.config.replicas);
    // Per client: when the controller got its last unanswered request.
    let mut asked: std::collections::HashMap<stateright::actor::Id, std::time::Duration> =
        std::collections::HashMap::new();
    let mut requests = 0;
    for event in &trace.events {
        let TraceKind::Delivered { src, msg } = &event.kind else {
            continue;
        };
        match msg {
            Msg::Metadata if event.actor == controller => {
                requests += 1;
                if let Some(earlier) = asked.insert(*src, event.at) {
                    panic!(
                        "client {src:?} asked again at {:?}, its request of {earlier:?} unanswered",
                        event.at
                    );
                }
            }
            Msg::MetadataResponse { .. } => {
                asked.remove(&event.actor);
            }
            _ => {}
        }
    }
    assert!(requests >= 2, "both clients looked for the new leader");
}

/// A crash lands after the actor's `on_start` ran, as every actor of the model starts in its
/// initial state: the consumer crashed before its task was first polled used to lose its first
/// fetch, and the trace then showed a fetch the model's consumer never sent (found by the
/// disk-fault conformance test with seed 526, kept as the case file
/// `testdata/cases/fixed-nonconformance-consumer-crashed-before-it-started.json`; here four
/// other seeds).
#[test]
fn an_actor_crashed_at_once_has_started_first() {
    use insync_checks::fuzz::conform_case;
    for seed in [0, 1, 2, 3] {
        let case = Case {
            config: recommended(),
            plan: Plan {
                steps: vec![Step::CrashConsumer, Step::Send],
            },
            seed,
        };
        conform_case(&case, &HistoryRunOptions::default())
            .expect("the run completes")
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// Setup: the recommended configuration; a record is acknowledged, the leader crashes and
/// broker 2 leads in epoch 2, where a second record is acknowledged; broker 0 comes back.
/// Steps: the controller crashes and restarts; then the leader (broker 2) crashes.
/// Expected: the restarted controller knows epoch 2 and its ISR (it saved them before any
/// broker heard of them) and elects in epoch 3, so a third send is acknowledged after the
/// first two and nothing acknowledged is lost; the engine's trace is one the model's actors
/// take. A controller that forgot would start again from epoch 1 with broker 0 as leader,
/// behind the brokers' epoch 2 (issue 12's finding: epochs going backwards).
#[test]
fn a_controller_restart_recovers_its_state_and_loses_nothing() {
    use insync_checks::fuzz::conform_case;
    let case = plan(vec![
        Step::Send,
        Step::Pause { ms: 200 },
        Step::CrashLeader,
        Step::Pause { ms: 2600 },
        Step::Send,
        Step::RestartBroker,
        Step::Pause { ms: 2600 },
        Step::CrashController,
        Step::Pause { ms: 200 },
        Step::RestartController,
        Step::Pause { ms: 1000 },
        Step::CrashLeader,
        Step::Pause { ms: 4000 },
        Step::Send,
        Step::Poll,
        Step::Commit,
    ]);
    let (history, verdict) = run_case(&case, &HistoryRunOptions::default()).expect("runs");
    let text = history.to_string();
    assert!(verdict.is_valid(), "{:?}\n{text}", verdict.anomalies);
    for event in [
        "crash the controller",
        "crash broker 2 (the leader)",
        "restart the controller",
        "send 1 @ offset 0",
        "send 2 @ offset 1",
        "send 3 @ offset 2",
    ] {
        assert!(text.contains(event), "no {event:?} in\n{text}");
    }
    conform_case(&case, &HistoryRunOptions::default())
        .expect("the run completes")
        .unwrap_or_else(|e| panic!("{e}\nplan:\n{}", case.plan));
}

#[test]
fn a_recorded_engine_trace_conforms_to_the_model() {
    use insync_checks::fuzz::conform_case;
    let strategy = case_for(recommended(), 1..40);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..cases().min(32) {
        let case = proptest::strategy::ValueTree::current(
            &strategy.new_tree(&mut runner).expect("a case"),
        );
        let conformance = conform_case(&case, &HistoryRunOptions::default())
            .expect("the run completes")
            .unwrap_or_else(|e| panic!("{e}\nplan:\n{}", case.plan));
        assert!(conformance.deliveries > 0, "{conformance:?}");
    }
}
