//! The truncation ladder against Gustafson's TLA+ specifications
//! (`hachikuji/kafka-specification`, one module per rung): at 2 records, no crash, up to three
//! leader epochs (`--elections 2`) and leadership moving to any live ISR member, each rung
//! keeps or breaks Gustafson's StrongIsr (insync's `strong-isr`) as his model checks of it do.
//!
//! | `--truncation`      | 2 replicas | 3 replicas |
//! |---------------------|------------|------------|
//! | `high-watermark`    | violated   | violated   |
//! | `kip-101`           | violated   | violated   |
//! | `kip-279`           | violated*  | violated   |
//! | `kip-320-first-try` | violated*  | violated   |
//! | `kip-320`           | holds      | holds      |
//! | `leader-epoch`      | holds      | holds      |
//!
//! (*) Gustafson's model checks find both rungs holding at 2 replicas, and insync did too
//! until the producer's request timer ran without crashes (2026-12-06). A finding, not a
//! tuning target: in his specs a new follower computes its truncation point from the new
//! leader's log directly (`BecomeFollowerTruncateKip279` reads `replicaLog[leader]`), while
//! insync sends Kafka's request (`OffsetsForLeaderEpoch`, or the first try's fetch with the last
//! fetched epoch) to the broker the `LeaderAndIsr` names, which may not have heard yet that it
//! leads again. Before KIP-320 that broker answers from its old epoch's view (no current
//! epoch in the request fences it): asked about epoch 2, which it never saw, it sends
//! `UNDEFINED_EPOCH_OFFSET` (the follower truncates to its high watermark, 0) or says
//! epoch 2 ends at 0, and the follower drops the committed record. Reaching it takes the
//! producer to learn of the leader of epoch 2 between two quick leadership moves, which a
//! request timeout gives (`kip_279_breaks_at_two_replicas`). KIP-320's current-epoch fencing
//! is what closes it: the `kip-320` rung holds.
//!
//! A violated cell is found breadth first (the shortest counterexample, in seconds). A
//! holding cell at 2 replicas is an exhaustive search of a few million unique states (a
//! minute or two in release on the 2-core machine); the 3-replica holding cells do not fit a test's
//! budget and are measured in the README instead, so here they are `#[ignore]`d, runnable with
//! `cargo test --release -p insync --test ladder -- --ignored`.

mod common;

use common::{counterexample, ladder, Property};
use insync::check::{check, CheckOptions, Strategy};
use insync_model::config::Truncation;

fn assert_violated(truncation: Truncation, replicas: usize) {
    let trace = counterexample(ladder(truncation, replicas), Property::StrongIsr);
    assert!(
        trace.iter().any(|s| s.contains("LeaderAndIsr")),
        "the counterexample is told in Kafka's words and needs a leader change: {trace:?}"
    );
}

fn assert_holds(truncation: Truncation, replicas: usize) {
    let config = ladder(truncation, replicas).validate().expect("valid");
    let options = CheckOptions {
        strategy: Strategy::Dfs,
        ..CheckOptions::default()
    };
    let report = check(&config, &options);
    let violated: Vec<Property> = report.violations().map(|p| p.name).collect();
    assert!(
        report.complete && violated.is_empty(),
        "{truncation} at {replicas} replicas should hold: violated {violated:?}, complete={}",
        report.complete
    );
    for premise in [
        Property::LeaderChanged,
        Property::RecordCommitted,
        Property::AckedAfterFailover,
    ] {
        assert!(
            report.property(premise).is_some_and(|p| p.holds),
            "{premise} must be reached, or the verdict is vacuous"
        );
    }
}

#[test]
fn high_watermark_truncation_breaks_at_two_replicas() {
    assert_violated(Truncation::HighWatermark, 2);
}

#[test]
fn high_watermark_truncation_breaks_at_three_replicas() {
    assert_violated(Truncation::HighWatermark, 3);
}

#[test]
fn kip_101_breaks_at_two_replicas() {
    assert_violated(Truncation::Kip101, 2);
}

#[test]
fn kip_101_breaks_at_three_replicas() {
    assert_violated(Truncation::Kip101, 3);
}

#[test]
fn kip_279_breaks_at_two_replicas() {
    let trace = counterexample(ladder(Truncation::Kip279, 2), Property::StrongIsr);
    // The mechanism the module's doc gives: the deposed-then-reelected leader, still in
    // epoch 1, answers a question about epoch 2 it cannot know.
    assert!(
        trace.iter().any(|s| s.contains("UNDEFINED_EPOCH_OFFSET")),
        "{trace:#?}"
    );
}

#[test]
fn kip_279_breaks_at_three_replicas() {
    assert_violated(Truncation::Kip279, 3);
}

#[test]
fn kip_320_first_try_breaks_at_two_replicas() {
    assert_violated(Truncation::Kip320FirstTry, 2);
}

#[test]
fn kip_320_first_try_breaks_at_three_replicas() {
    assert_violated(Truncation::Kip320FirstTry, 3);
}

#[test]
fn kip_320_holds_at_two_replicas() {
    assert_holds(Truncation::Kip320, 2);
}

#[test]
#[ignore = "an exhaustive search too large for CI; see the README's ladder figures"]
fn kip_320_holds_at_three_replicas() {
    assert_holds(Truncation::Kip320, 3);
}

#[test]
fn leader_epoch_holds_at_two_replicas() {
    assert_holds(Truncation::LeaderEpoch, 2);
}

#[test]
#[ignore = "an exhaustive search too large for CI; see the README's ladder figures"]
fn leader_epoch_holds_at_three_replicas() {
    assert_holds(Truncation::LeaderEpoch, 3);
}
