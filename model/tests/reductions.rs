//! The checker's reductions against the unreduced model (`Config::reductions`, the CLI's
//! `--no-reductions`): on small bounds, an exhaustive search with and without them must reach
//! the same verdict on every property. The reductions are
//! - crashes (`node.rs`, `crash_is_interesting`): with every append flushed and leader-epoch
//!   truncation, only a fenced leader's crash is explored;
//! - session expiries (`controller.rs`): a follower outside the ISR and the ELR, when no
//!   unclean election could pick it, is not expired.
//!
//! Each configuration below is chosen so that the reduction is active (flush always,
//! leader-epoch truncation, a crash to spend) and so that some properties break and some hold,
//! which makes "the same verdicts" a claim with content in both directions. The bounds are
//! the largest whose unreduced search stays within seconds (RF 2, one record, one crash, no
//! ISR change beyond elections: 0.3 M to 0.5 M unique states unreduced, 7 to 10 times the
//! reduced count); at RF 3 the unreduced search passes 3 M states without finishing.

use insync_model::config::{Acks, Config};
use insync_model::Insync;
use stateright::{Checker, Model};
use std::collections::BTreeMap;

/// Every property's verdict (`true`: an `always` holds, a `sometimes` is reached) and the
/// unique state count of an exhaustive search.
fn verdicts(config: Config) -> (BTreeMap<&'static str, bool>, usize) {
    let model = Insync::new(config.validate().expect("valid")).into_model();
    let checker = model.checker().threads(1).spawn_bfs().join();
    let discoveries = checker.discoveries();
    let verdicts = insync_model::properties::all()
        .into_iter()
        .map(|p| {
            let found = discoveries.contains_key(p.name);
            let verdict = match p.expectation {
                stateright::Expectation::Always => !found,
                _ => found,
            };
            (p.name, verdict)
        })
        .collect();
    (verdicts, checker.unique_state_count())
}

fn assert_same_verdicts(name: &str, config: Config) {
    let (reduced, reduced_states) = verdicts(Config {
        reductions: true,
        ..config.clone()
    });
    let (full, full_states) = verdicts(Config {
        reductions: false,
        ..config
    });
    assert_eq!(
        reduced, full,
        "{name}: the reductions change a verdict (reduced {reduced_states} states, full {full_states})"
    );
    assert!(
        reduced_states <= full_states,
        "{name}: the reduced search is larger ({reduced_states} > {full_states})"
    );
}

fn small() -> Config {
    Config {
        replicas: 2,
        min_insync: 1,
        records: 1,
        crashes: 1,
        isr_changes: 0,
        consumer: false,
        idempotence: true,
        ..Config::default()
    }
}

#[test]
fn recommended_two_replicas_with_a_crash() {
    assert_same_verdicts("recommended rf=2", small());
}

#[test]
fn acks_1_with_a_crash() {
    assert_same_verdicts(
        "acks=1 rf=2",
        Config {
            acks: Acks::One,
            idempotence: false,
            ..small()
        },
    );
}

#[test]
fn unclean_election_with_a_crash() {
    assert_same_verdicts(
        "unclean rf=2",
        Config {
            unclean_election: true,
            ..small()
        },
    );
}

#[test]
fn retries_without_idempotence_with_a_crash() {
    assert_same_verdicts(
        "retries, no idempotence, rf=2",
        Config {
            idempotence: false,
            ..small()
        },
    );
}
