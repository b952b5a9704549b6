//! Every guard earns its place: removing one of Kafka's rules (`--without-guard`, a protocol
//! mutant) must make the checker report a violation at the bounds named here. With every rule
//! in place the same bounds show none (the ladder's `leader-epoch` cell at 3 replicas: no
//! violation in 10 minutes of search, `tests/ladder.rs`, ignored as too large for CI).
//!
//! Each guard has either a search here that breaks a property without it, or a counterexample
//! in `model/testdata/guards/<guard>.txt` that replays with the guard removed and is blocked
//! with it in place (found by searches too long for CI; each file says which), or a reason in
//! [`NO_COUNTEREXAMPLE`] backed by a test that shows why the model cannot have one.

mod common;

use common::testdata::{check_file, root, Line, ScenarioFile};
use common::{counterexample, ladder, Property};
use insync::check::{check, CheckOptions, Strategy};
use insync_model::config::{Config, Flush, Guard, Truncation};

/// The ladder's bounds at 3 replicas under today's truncation.
fn ladder_rf3() -> Config {
    ladder(Truncation::LeaderEpoch, 3)
}

fn assert_guard_matters(config: Config, guard: Guard, property: Property) {
    counterexample(
        Config {
            without_guard: Some(guard),
            ..config
        },
        property,
    );
}

/// A follower that joins the ISR below the leader's high watermark makes an ISR member miss
/// a committed record.
#[test]
fn isr_join_needs_the_high_watermark() {
    assert_guard_matters(
        ladder_rf3(),
        Guard::IsrJoinHighWatermark,
        Property::IsrComplete,
    );
}

/// KIP-497: counting only the confirmed ISR while a follower's addition is pending lets the
/// high watermark pass a record that the soon-to-be member lacks.
#[test]
fn the_high_watermark_counts_the_maximal_isr() {
    assert_guard_matters(ladder_rf3(), Guard::MaximalIsr, Property::IsrComplete);
}

/// KIP-903: without the broker-epoch check, a fetch sent by broker 1 before it crashed (and
/// lost its unflushed record) reaches the leader after the restart, and the leader re-admits
/// the new, empty incarnation to the ISR: an ISR member lacks a committed record. With the
/// check the same bounds hold exhaustively (2.8 M unique states).
#[test]
fn a_restarted_broker_is_not_readmitted_on_its_old_fetches() {
    use insync_model::config::HwRule;
    let config = Config {
        replicas: 2,
        min_insync: 2,
        records: 1,
        crashes: 1,
        idempotence: true,
        consumer: false,
        flush: Flush::Async,
        elr: true,
        hw_rule: HwRule::MinIsr,
        ..Config::default()
    };
    assert_guard_matters(config, Guard::StaleBrokerEpoch, Property::IsrComplete);
}

/// Guards removed without a counterexample in the model, and why. Each has a test below.
const NO_COUNTEREXAMPLE: &[(Guard, &str)] = &[
    (
        Guard::LeaderAndIsrEpoch,
        "the model's one controller never fails and its flows to each broker are FIFO, so no \
         LeaderAndIsr can arrive after a newer one: the check never fires \
         (the_leader_and_isr_epoch_check_never_fires_in_the_model)",
    ),
    (
        Guard::NotEnoughReplicas,
        "the check before the append only saves appending records that cannot be acknowledged: \
         NOT_ENOUGH_REPLICAS_AFTER_APPEND still refuses to acknowledge them \
         (the_check_before_the_append_is_covered_by_the_one_after_it)",
    ),
];

/// The counterexample files, one per guard: `model/testdata/guards/<guard>.txt`.
fn guard_files() -> Vec<(Guard, std::path::PathBuf)> {
    Guard::ALL
        .iter()
        .map(|g| (*g, root().join(format!("guards/{g}.txt"))))
        .filter(|(_, p)| p.exists())
        .collect()
}

/// The safety properties the file says are broken at its end.
fn last_violated(file: &ScenarioFile) -> Vec<String> {
    file.lines
        .iter()
        .rev()
        .find_map(|l| match l {
            Line::Violated(names) => Some(names.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn every_guard_has_a_counterexample_or_a_reason_it_cannot_have_one() {
    let files: Vec<Guard> = guard_files().into_iter().map(|(g, _)| g).collect();
    let searched = [
        Guard::IsrJoinHighWatermark,
        Guard::MaximalIsr,
        Guard::StaleBrokerEpoch,
    ];
    for g in Guard::ALL {
        let reasons = NO_COUNTEREXAMPLE.iter().filter(|(r, _)| r == g).count();
        let ways = usize::from(files.contains(g)) + usize::from(searched.contains(g)) + reasons;
        assert_eq!(
            ways, 1,
            "{g}: give it exactly one of a search in this file, model/testdata/guards/{g}.txt, or a reason in NO_COUNTEREXAMPLE"
        );
    }
    // Every file is named after a guard.
    let names = std::fs::read_dir(root().join("guards")).expect("model/testdata/guards");
    for entry in names {
        let name = entry.expect("an entry").file_name();
        let name = name.to_string_lossy();
        let stem = name.strip_suffix(".txt").unwrap_or(&name);
        assert!(
            stem.parse::<Guard>().is_ok(),
            "model/testdata/guards/{name} is not named after a guard"
        );
    }
}

/// Each file replays as written with its guard removed and ends with a property broken; with
/// the guard in place, the same actions either stop being enabled or no longer break it.
#[test]
fn every_guard_counterexample_replays_and_the_guard_blocks_it() {
    let files = guard_files();
    assert!(files.len() >= 4, "{files:?}");
    for (guard, path) in files {
        check_file(&path);
        let text = std::fs::read_to_string(&path).expect("readable");
        let file = ScenarioFile::parse(&text).expect("parses");
        let removal = ["--without-guard".to_string(), guard.to_string()];
        assert!(
            file.flags.windows(2).any(|w| w == removal),
            "{}: the config must remove {guard}",
            path.display()
        );
        let broken = last_violated(&file);
        assert!(!broken.is_empty(), "{}: breaks nothing", path.display());

        let guarded = ScenarioFile {
            flags: file
                .flags
                .iter()
                .enumerate()
                .filter(|(i, f)| **f != removal[0] && !(*i > 0 && file.flags[i - 1] == removal[0]))
                .map(|(_, f)| f.clone())
                .collect(),
            lines: file.lines.clone(),
        };
        assert_eq!(guarded.flags.len() + 2, file.flags.len());
        // Steps taken by their action alone, as when regenerating: the guard may change a
        // step's effects without disabling the action.
        match guarded.replay(true) {
            Err(_) => {}
            Ok(replayed) => {
                let now = last_violated(&replayed);
                assert!(
                    broken.iter().any(|p| !now.contains(p)),
                    "{}: with {guard} in place the same steps still break {broken:?}",
                    path.display()
                );
            }
        }
    }
}

/// A LeaderAndIsr older than what the broker knows cannot reach it in the model: the search
/// with and without the epoch check visits exactly the same states. Both without the
/// checker's reductions, since a mutant is searched without the stale-message reduction.
#[test]
fn the_leader_and_isr_epoch_check_never_fires_in_the_model() {
    let config = Config {
        reductions: false,
        replicas: 2,
        min_insync: 1,
        records: 1,
        crashes: 1,
        idempotence: true,
        consumer: false,
        ..Config::default()
    };
    let count = |without_guard| {
        let config = Config {
            without_guard,
            ..config.clone()
        };
        let options = CheckOptions {
            strategy: Strategy::Dfs,
            threads: 1,
            ..CheckOptions::default()
        };
        let report = check(&config.validate().expect("valid"), &options);
        assert!(report.complete);
        (report.unique_states, report.states)
    };
    assert_eq!(count(None), count(Some(Guard::LeaderAndIsrEpoch)));
}

/// Without the check before the append, a leader alone in the ISR appends acks=all records
/// below min.insync.replicas; the check once they are committed still refuses to acknowledge
/// them, so no acknowledged record is lost (exhaustively; the committed, unacknowledged
/// record's loss is the last replica standing, broken with the check too).
#[test]
fn the_check_before_the_append_is_covered_by_the_one_after_it() {
    let config = Config {
        replicas: 2,
        min_insync: 2,
        flush: Flush::Async,
        records: 1,
        crashes: 1,
        idempotence: true,
        consumer: false,
        isr_changes: 0,
        elections: 1,
        without_guard: Some(Guard::NotEnoughReplicas),
        ..Config::default()
    };
    let options = CheckOptions {
        strategy: Strategy::Dfs,
        ..CheckOptions::default()
    };
    let report = check(&config.validate().expect("valid"), &options);
    let violated: Vec<Property> = report.violations().map(|p| p.name).collect();
    assert!(report.complete);
    assert_eq!(violated, [Property::CommittedDurable]);
}
