//! Pinned state counts (STYLE.md §7): a change in these numbers changes what the checker
//! explores, and the commit that causes it must say why.

mod common;
use common::small;
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
    assert_eq!(unique_states(small()), PINNED_TWO_REPLICAS);
}

#[test]
fn two_replicas_one_record_one_crash() {
    let config = Config {
        crashes: 1,
        ..small()
    };
    assert_eq!(unique_states(config), PINNED_TWO_REPLICAS_CRASH);
}

// 1,660 and 23,236 while the controller elected only on the leader's session expiry and a
// deposed leader stayed fenced. Since the controller may do what Kafka's does (leadership moves
// to any live ISR member, any broker's session expires, heartbeats unfence, a restarted broker
// leaves the ISR) and the producer's, the ghost committed log and the truncation ladder carry
// more state, the counts are 17,480 and 174,994: every extra state is a behaviour Kafka has.
// KIP-903 (the leader remembers each follower's incarnation from its fetches) tells apart the
// fetches of a broker before and after its restart: 174,994 became 175,180.
const PINNED_TWO_REPLICAS: usize = 17480;
const PINNED_TWO_REPLICAS_CRASH: usize = 175180;

#[test]
fn two_replicas_one_record_and_a_consumer() {
    let config = Config {
        consumer: true,
        ..small()
    };
    assert_eq!(unique_states(config), PINNED_TWO_REPLICAS_CONSUMER);
}

#[test]
fn two_replicas_one_record_on_a_lossy_network() {
    let config = Config {
        network: insync_model::config::NetworkKind::Lossy,
        ..small()
    };
    assert_eq!(unique_states(config), PINNED_TWO_REPLICAS_LOSSY);
}

// Pinned on 2026-12-04 at 7e94f00: the consumer's fetches, reads and commits, and the lost
// messages with the producer's request timeout they arm.
const PINNED_TWO_REPLICAS_CONSUMER: usize = 167987;
const PINNED_TWO_REPLICAS_LOSSY: usize = 311446;
