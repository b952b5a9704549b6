//! Every guard earns its place: removing one of Kafka's rules (`--without-guard`, a protocol
//! mutant) must make the checker report a violation at the bounds named here. With every rule
//! in place the same bounds show none (the ladder's `leader-epoch` cell at 3 replicas: no
//! violation in 10 minutes of search, `tests/ladder.rs`, ignored as too large for CI).
//!
//! Guards with no test here did not show a violation when removed alone, at bounds a test can
//! afford (see the README's "what the model claims" and the issue notes): fetch-epoch
//! fencing, fetch-response fencing and the epoch-start ISR-join rule at 2 replicas under
//! `leader-epoch` truncation (the fetch's own divergence check covers them there), and the
//! incarnation, leader-epoch and `NOT_ENOUGH_REPLICAS` checks at 2 to 3 replicas, one record,
//! one crash, reliable network.

mod common;

use common::{counterexample, ladder, Property};
use insync_model::config::{Config, Guard, Truncation};

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
    use insync_model::config::{Flush, HwRule};
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
