//! What the model's integration tests share.

use insync_model::properties;
use insync_model::Config;
use stateright::Expectation;
use std::collections::HashMap;

/// The smallest configuration worth checking: 2 replicas, min.insync 1, one record of an
/// idempotent producer, no crash, no consumer. Tests vary it field by field.
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
