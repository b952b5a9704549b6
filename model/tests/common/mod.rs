//! What the model's integration tests share.

use insync_model::properties;
use insync_model::Config;
use stateright::Expectation;
use std::collections::HashMap;

/// The smallest configuration worth checking: 2 replicas, min.insync 1, one record of an
/// idempotent producer, no crash, no consumer. Tests vary it field by field.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn small() -> Config {
    Config {
        replicas: 2,
        min_insync: 1,
        records: 1,
        crashes: 0,
        consumer: false,
        idempotence: true,
        ..Config::default()
    }
}

/// Every matrix row at bounds small enough to search exhaustively both ways in a
/// differential test: 1 record, at most 1 election (none where a consumer and a crash are
/// both in play), no ISR change beyond elections, and at most `replicas_max` replicas
/// (min.insync capped to match).
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn small_matrix_rows(replicas_max: usize) -> Vec<(&'static str, Config)> {
    insync_model::scenarios::catalogue()
        .into_iter()
        .map(|s| {
            let c = s.config;
            let elections = if c.consumer && c.crashes > 0 {
                0
            } else {
                c.elections.min(1)
            };
            let replicas = c.replicas.min(replicas_max);
            let small = Config {
                records: 1,
                elections,
                isr_changes: 0,
                replicas,
                min_insync: c.min_insync.min(replicas),
                ..c
            };
            (s.name, small)
        })
        .collect()
}

/// What a search found, by property name (`Checker::discoveries`), split into the `always`
/// properties it broke and the `sometimes` properties it reached, each sorted.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn broken_and_reached<V>(
    found: &HashMap<&'static str, V>,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut broken = Vec::new();
    let mut reached = Vec::new();
    for p in properties::all() {
        if found.contains_key(p.name) {
            match p.expectation {
                Expectation::Always => broken.push(p.name),
                _ => reached.push(p.name),
            }
        }
    }
    broken.sort_unstable();
    reached.sort_unstable();
    (broken, reached)
}

/// The `sometimes` properties every small configuration without a consumer reaches: a
/// failover after a commit, by a retried record.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub const REACHED_WITHOUT_CONSUMER: [&str; 8] = [
    "acked-after-failover",
    "committed-after-failover",
    "hw-on-two-replicas",
    "isr-shrunk",
    "leader-changed",
    "record-committed",
    "record-retried",
    "send-failed",
];
