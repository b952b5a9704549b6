//! What the property tests (`ladder.rs`, `guards.rs`, `violations.rs`) share: the ladder's
//! bounds, and a breadth-first search for one property's first counterexample.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]
use insync::check::{check, CheckOptions, Strategy};
use insync_model::config::{Config, Truncation};
pub use insync_model::properties::Property;

/// Gustafson's bounds for the ladder: 2 records, no crash, up to three leader epochs,
/// min.insync 1, an idempotent producer and no consumer.
pub fn ladder(truncation: Truncation, replicas: usize) -> Config {
    Config {
        truncation,
        replicas,
        min_insync: 1,
        records: 2,
        crashes: 0,
        idempotence: true,
        consumer: false,
        elections: 2,
        ..Config::default()
    }
}

/// Searches breadth first, on one thread, until `property` has a
/// counterexample, and returns it; fails the test if the space holds none.
pub fn counterexample(config: Config, property: Property) -> Vec<String> {
    let summary = config.summary();
    let options = CheckOptions {
        strategy: Strategy::Bfs,
        threads: 1,
        stop_at: Some([property].into_iter().collect()),
        // Only that a counterexample exists matters here; `tests/matrix.rs` checks that
        // reported counterexamples are shortest.
        shortest: false,
        ..CheckOptions::default()
    };
    let report = check(&config.validate().expect("valid"), &options);
    let p = report.property(property).expect("the property is checked");
    assert!(
        !p.holds,
        "{summary}: {property} should be violated ({} unique states, complete={})",
        report.unique_states, report.complete
    );
    assert_eq!(report.exit_code(), 1);
    p.counterexample.clone().expect("a counterexample")
}
pub mod testdata;
