//! What the model's integration tests share.

use insync_model::Config;

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
