//! Exhaustive checks at tiny bounds (RF 2, one record, no crash), each with its exact
//! verdict on every property: which `always` properties break and which `sometimes`
//! properties are reached. A property that stops failing where Kafka loses data, or starts
//! failing where it does not, changes a verdict here; so does a `sometimes` property that
//! is no longer reached (a vacuous pass). Each runs in about a second in the test profile.

mod common;
use common::small;
use insync_model::config::{Acks, Config};
use insync_model::properties;
use insync_model::{Insync, InsyncModel};
use stateright::{Checker, Model};

/// The `always` properties that break and the `sometimes` properties reached, sorted.
fn verdicts(config: Config) -> (Vec<&'static str>, Vec<&'static str>) {
    let model = Insync::new(config.validate().expect("valid")).into_model();
    let checker = model.checker().threads(1).spawn_bfs().join();
    common::broken_and_reached(&checker.discoveries())
}

/// Reached by every configuration below: a failover after a commit, by a retried record.
const REACHED: [&str; 8] = common::REACHED_WITHOUT_CONSUMER;

#[test]
fn recommended_at_rf_2_breaks_nothing() {
    let (broken, reached) = verdicts(small());
    assert_eq!(broken, Vec::<&str>::new());
    assert_eq!(reached, REACHED);
}

#[test]
fn acks_1_loses_an_acknowledged_record() {
    let config = Config {
        acks: Acks::One,
        idempotence: false,
        ..small()
    };
    let (broken, reached) = verdicts(config.clone());
    // And a duplicate: a request that times out on a slow leader is sent again, and both
    // copies are appended (no idempotence to drop the second).
    assert_eq!(broken, vec!["acked-writes-durable", "no-duplicates"]);
    assert_eq!(reached, REACHED);
    // The shortest loss: the leader appends and acknowledges, the controller elects the
    // follower, which learns it leads without the record.
    let model =
        || -> InsyncModel { Insync::new(config.clone().validate().expect("valid")).into_model() };
    // stateright 0.31's BFS may report a longer path than the shortest (it records a
    // discovery again on later states), so search with a growing depth bound: the first
    // bound that finds the loss gives a shortest path.
    let steps = (2..40)
        .find_map(|depth| {
            model()
                .checker()
                .threads(1)
                .target_max_depth(depth)
                .spawn_bfs()
                .join()
                .discovery("acked-writes-durable")
        })
        .expect("a counterexample")
        .into_vec();
    let model = model();
    let trace = insync_model::trace::describe_path(&model, &steps).join("\n");
    let (last, _) = steps.last().expect("a path has a state");
    let leader = properties::active_leader(&model, last).expect("a leader is active");
    assert_eq!(leader.id.0, 1, "{trace}");
    assert_eq!(leader.leader_epoch.0, 2, "{trace}");
    assert!(leader.log.is_empty(), "{trace}");
    assert!(trace.contains("v1 acknowledged at offset 0"), "{trace}");
}

#[test]
fn unclean_election_loses_committed_records() {
    let (broken, reached) = verdicts(Config {
        unclean_election: true,
        ..small()
    });
    assert_eq!(
        broken,
        vec![
            "acked-writes-durable",
            "committed-durable",
            "isr-complete",
            // The producer times out on the old leader, which appended the record, and
            // sends it again to the unclean one: the same value at offset 0 in epochs 1 and
            // 2, below both high watermarks.
            "log-matching",
            "strong-isr"
        ]
    );
    assert_eq!(reached, REACHED);
}

#[test]
fn retries_without_idempotence_duplicate_a_record() {
    let (broken, reached) = verdicts(Config {
        idempotence: false,
        ..small()
    });
    assert_eq!(broken, vec!["no-duplicates"]);
    assert_eq!(reached, REACHED);
}
