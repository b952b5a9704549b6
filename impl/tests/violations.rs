//! Each safety property can fail: a real configuration in which Kafka breaks it, found breadth
//! first. The matrix (`tests/matrix.rs`) covers `acked-writes-durable`, `committed-durable`,
//! `isr-complete`, `no-duplicates` and `processed-before-commit`; the ladder (`tests/ladder.rs`)
//! covers `strong-isr`. The rest are here. `leader-in-isr` is reported "by construction" (the
//! controller never installs an ISR without its leader), and `sends-resolve` can only fail
//! through a protocol bug (the committed-retry hang, fixed in `broker.rs`), so neither has a
//! real configuration that breaks it.

mod common;

use common::counterexample as assert_breaks;
use common::Property;
use insync_model::config::Config;

/// Without idempotence, `max.in.flight.requests.per.connection` 2 and a retry: the first
/// request fails (the ISR shrank below min.insync), the ISR grows back, the second succeeds,
/// and the retry of the first lands after it. Kafka documents this reordering for retries > 0
/// with more than one request in flight. (No election is needed; two ISR changes are.)
#[test]
fn producer_order_breaks_with_two_in_flight_and_no_idempotence() {
    let trace = assert_breaks(
        Config {
            max_in_flight: 2,
            records: 2,
            crashes: 0,
            elections: 0,
            isr_changes: 2,
            consumer: false,
            ..Config::default()
        },
        Property::ProducerOrder,
    );
    assert!(
        trace.iter().any(|s| s.contains("v2 acknowledged")),
        "{trace:?}"
    );
}

/// With an unclean election, a consumer reads a committed record and an out-of-sync replica
/// then leads without it.
#[test]
fn committed_read_breaks_under_unclean_election() {
    let trace = assert_breaks(
        Config {
            min_insync: 1,
            unclean_election: true,
            records: 1,
            crashes: 0,
            idempotence: true,
            ..Config::default()
        },
        Property::CommittedRead,
    );
    assert!(trace.iter().any(|s| s.contains("(unclean)")), "{trace:?}");
}

/// Two replicas whose high watermarks both pass an offset hold different records there: the
/// unclean leader writes the second record where the deposed leader's committed first one sits.
/// (Without idempotence: an idempotent producer's second record, sequence 1, is refused by a
/// leader that never saw its producer id, so the unclean leader writes nothing at offset 0.)
#[test]
fn log_matching_breaks_under_unclean_election() {
    assert_breaks(
        Config {
            replicas: 2,
            min_insync: 1,
            unclean_election: true,
            records: 2,
            crashes: 0,
            idempotence: false,
            consumer: false,
            ..Config::default()
        },
        Property::LogMatching,
    );
}

/// A finding about the model, not about Kafka: on the duplicating network an AlterPartition
/// is delivered twice. The controller refuses the first copy (the broker to add is fenced),
/// the broker is unfenced, and the second copy of the same request, with the same partition
/// epoch, is accepted; the leader takes the refusal, keeps its ISR, and commits without the
/// broker the controller now counts in sync. Kafka's connections are TCP, and its leader
/// resends an AlterPartition only when the answer is lost, so it never receives a refusal
/// for a request the controller then accepts. The report says so under such a counterexample.
#[test]
fn the_duplicating_network_breaks_isr_complete_by_a_request_delivered_twice() {
    let trace = assert_breaks(
        Config {
            replicas: 2,
            min_insync: 1,
            records: 1,
            crashes: 0,
            isr_changes: 2,
            idempotence: true,
            consumer: false,
            network: insync_model::config::NetworkKind::Duplicating,
            ..Config::default()
        },
        Property::IsrComplete,
    );
    let alter: Vec<&String> = trace
        .iter()
        .filter(|s| s.contains("-> ctl AlterPartition"))
        .collect();
    assert_eq!(alter.len(), 2, "{trace:?}");
    // Strip the step number and what the step did: the same request, twice.
    let request = |s: &str| {
        s.split(". ")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .map(str::to_owned)
    };
    assert_eq!(
        request(alter[0]),
        request(alter[1]),
        "the same request twice: {trace:?}"
    );
    assert!(
        trace.iter().any(|s| s.contains("INELIGIBLE_REPLICA")),
        "{trace:?}"
    );
    assert!(insync::check::DUPLICATING_CAVEAT.contains("TCP"));
}
