//! Pinned state counts (STYLE.md §7): a change in these numbers changes what the checker
//! explores, and the commit that causes it must say why.

use insync_model::config::Config;
use insync_model::Insync;
use stateright::{Checker, Model};

fn unique_states(config: Config) -> usize {
    let model = Insync::new(config.validate().expect("valid")).into_model();
    model
        .checker()
        .threads(1)
        .spawn_dfs()
        .join()
        .unique_state_count()
}

#[test]
fn two_replicas_one_record() {
    let config = Config {
        replicas: 2,
        min_insync: 1,
        records: 1,
        crashes: 0,
        consumer: false,
        idempotence: true,
        ..Config::default()
    };
    assert_eq!(unique_states(config), PINNED_TWO_REPLICAS);
}

#[test]
fn two_replicas_one_record_one_crash() {
    let config = Config {
        replicas: 2,
        min_insync: 1,
        records: 1,
        crashes: 1,
        consumer: false,
        idempotence: true,
        ..Config::default()
    };
    assert_eq!(unique_states(config), PINNED_TWO_REPLICAS_CRASH);
}

const PINNED_TWO_REPLICAS: usize = 1660;
// 23,236 until the producer remembered that an earlier attempt may have been appended
// (`maybe_appended`): a failure after a timeout is now indeterminate, a new distinction.
const PINNED_TWO_REPLICAS_CRASH: usize = 25033;
