//! The checker on hand-written histories: each anomaly is named when the history shows it, and
//! a near miss (the same history made legal) shows none.

use insync_checks::checker::{check_history, AnomalyKind, Verdict};
use insync_checks::history::Builder;

fn kinds(v: &Verdict) -> Vec<&'static str> {
    v.kinds().into_iter().map(|k| k.name()).collect()
}

fn assert_clean(b: &Builder) {
    let h = b.build();
    let v = check_history(&h);
    assert!(
        v.is_valid(),
        "expected no anomaly in\n{h}\ngot {:?}",
        v.anomalies
    );
}

fn assert_only(b: &Builder, kind: AnomalyKind) -> Verdict {
    let h = b.build();
    let v = check_history(&h);
    assert_eq!(
        kinds(&v),
        vec![kind.name()],
        "in\n{h}\ngot {:?}",
        v.anomalies
    );
    v
}

#[test]
fn a_clean_history_has_no_anomaly() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .send_ok(2, 1)
        .send_fail(3, "NOT_ENOUGH_REPLICAS")
        .send_info(4, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .poll(&[(1, 2), (2, 4)])
        .commit(3)
        .final_read(0, &[(0, 1), (1, 2), (2, 4)]);
    assert_clean(&b);
    let v = check_history(&b.build());
    assert_eq!(
        (v.acknowledged, v.failed, v.indeterminate, v.read),
        (2, 1, 1, 3)
    );
}

#[test]
fn lost_write_is_an_acknowledged_record_replaced_by_later_ones() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .nemesis("crash broker 0 (the leader)")
        .send_ok(2, 0)
        .send_ok(3, 1)
        .poll(&[(0, 2), (1, 3)])
        .final_read(1, &[(0, 2), (1, 3)]);
    let v = check_history(&b.build());
    let lost = v.first(AnomalyKind::LostWrite).expect("lost-write");
    assert!(lost.about.contains("send 1"), "{lost}");
    // The send's invocation and acknowledgement, and the read that shows offset 0 taken.
    assert_eq!(lost.ops, vec![0, 1, 8]);
    // Two acknowledgements at one offset, and a later send acknowledged at a lower offset.
    assert!(v.has(AnomalyKind::InconsistentOffsets), "{:?}", v.anomalies);
    assert!(v.has(AnomalyKind::NonmonotonicSend), "{:?}", v.anomalies);
    assert!(
        !v.has(AnomalyKind::Unseen),
        "a lost write is not also unseen"
    );
}

#[test]
fn lost_write_counts_a_record_read_before_it_vanished() {
    // The consumer read send 1, then a failover dropped it and send 2 took offset 1.
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .send_ok(2, 1)
        .poll(&[(0, 1)])
        .final_read(1, &[(0, 5), (1, 2)]);
    let v = check_history(&b.build());
    assert!(v.has(AnomalyKind::LostWrite), "{:?}", v.anomalies);
    assert!(v.has(AnomalyKind::ReadUncommitted), "{:?}", v.anomalies);
}

#[test]
fn lost_write_counts_the_last_record_read_and_then_gone() {
    // Nothing after it, but the consumer read it and the final leader does not hold it.
    let mut b = Builder::new();
    b.send_ok(1, 0).poll(&[(0, 1)]).final_read(1, &[]);
    let v = check_history(&b.build());
    let lost = v.first(AnomalyKind::LostWrite).expect("lost-write");
    assert!(lost.about.contains("read"), "{lost}");
    assert!(v.has(AnomalyKind::ReadUncommitted), "{:?}", v.anomalies);
    assert!(!v.has(AnomalyKind::Unseen), "{:?}", v.anomalies);
}

#[test]
fn an_acknowledged_record_still_held_is_not_lost() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .send_ok(2, 1)
        .poll(&[(0, 1), (1, 2)])
        .final_read(1, &[(0, 1), (1, 2)]);
    assert_clean(&b);
}

#[test]
fn an_acknowledged_record_the_final_leader_lacks_is_lost_even_with_nothing_after_it() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .send_ok(2, 1)
        .poll(&[(0, 1)])
        .final_read(0, &[(0, 1)]);
    let v = assert_only(&b, AnomalyKind::LostWrite);
    assert!(v.anomalies[0].about.contains("send 2"));
}

#[test]
fn an_acknowledged_record_never_read_with_no_leader_at_the_end_is_unseen_not_lost() {
    let mut b = Builder::new();
    b.send_ok(1, 0).send_ok(2, 1).poll(&[(0, 1)]);
    let v = assert_only(&b, AnomalyKind::Unseen);
    assert!(v.anomalies[0].about.contains("send 2"));
}

#[test]
fn an_indeterminate_send_may_be_missing_or_present() {
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .send_ok(2, 0)
        .send_info(3, "NOT_ENOUGH_REPLICAS_AFTER_APPEND")
        .poll(&[(0, 2), (1, 3)])
        .final_read(0, &[(0, 2), (1, 3)]);
    assert_clean(&b);
}

#[test]
fn duplicate_is_one_value_at_two_offsets() {
    let mut b = Builder::new();
    b.send_invoke(1)
        .send_acked(1, 1)
        .poll(&[(0, 1), (1, 1)])
        .final_read(0, &[(0, 1), (1, 1)]);
    let v = assert_only(&b, AnomalyKind::Duplicate);
    assert!(
        v.anomalies[0].about.contains("offsets 0 and 1"),
        "{:?}",
        v.anomalies
    );
}

#[test]
fn duplicate_is_found_in_the_final_read_too() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .poll(&[(0, 1)])
        .final_read(0, &[(0, 1), (1, 1)]);
    let v = check_history(&b.build());
    assert!(v.has(AnomalyKind::Duplicate), "{:?}", v.anomalies);
}

#[test]
fn inconsistent_offsets_is_one_offset_read_with_two_values() {
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .send_info(2, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .poll(&[(1, 2)]);
    assert_clean(&b);
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .send_info(2, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .poll(&[(0, 2)]);
    let v = check_history(&b.build());
    assert!(v.has(AnomalyKind::InconsistentOffsets), "{:?}", v.anomalies);
    // Re-reading offset 0 is also a step backwards.
    assert!(v.has(AnomalyKind::NonmonotonicPoll), "{:?}", v.anomalies);
}

#[test]
fn aborted_read_is_a_failed_send_that_was_read() {
    let mut b = Builder::new();
    b.send_fail(1, "NOT_ENOUGH_REPLICAS")
        .poll(&[(0, 1)])
        .final_read(0, &[(0, 1)]);
    let v = assert_only(&b, AnomalyKind::AbortedRead);
    assert_eq!(v.anomalies[0].ops, vec![0, 1, 3]);
    // The same read of an indeterminate send is fine.
    let mut b = Builder::new();
    b.send_info(1, "NOT_ENOUGH_REPLICAS_AFTER_APPEND")
        .poll(&[(0, 1)])
        .final_read(0, &[(0, 1)]);
    assert_clean(&b);
}

#[test]
fn read_uncommitted_is_a_read_the_final_leader_does_not_hold() {
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .final_read(2, &[]);
    let v = assert_only(&b, AnomalyKind::ReadUncommitted);
    assert!(
        v.anomalies[0].about.contains("no such offset"),
        "{:?}",
        v.anomalies
    );
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .final_read(2, &[(0, 1)]);
    assert_clean(&b);
}

#[test]
fn poll_skip_is_a_gap_in_what_the_consumer_read() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .send_ok(2, 1)
        .send_ok(3, 2)
        .poll(&[(0, 1)])
        .poll(&[(2, 3)])
        .final_read(0, &[(0, 1), (1, 2), (2, 3)]);
    let v = check_history(&b.build());
    assert!(v.has(AnomalyKind::PollSkip), "{:?}", v.anomalies);
    // Send 2 was acknowledged and never read as well.
    assert!(v.has(AnomalyKind::Unseen), "{:?}", v.anomalies);
}

#[test]
fn poll_skip_is_a_commit_past_records_never_read() {
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .send_info(2, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .commit(2)
        .final_read(0, &[(0, 1), (1, 2)]);
    let v = assert_only(&b, AnomalyKind::PollSkip);
    assert!(
        v.anomalies[0].about.contains("committed offset 2"),
        "{:?}",
        v.anomalies
    );
    let mut b = Builder::new();
    b.send_info(1, "REQUEST_TIMED_OUT")
        .send_info(2, "REQUEST_TIMED_OUT")
        .poll(&[(0, 1)])
        .commit(1)
        .poll(&[(1, 2)])
        .commit(2)
        .final_read(0, &[(0, 1), (1, 2)]);
    assert_clean(&b);
}

#[test]
fn nonmonotonic_poll_is_a_step_back() {
    let mut b = Builder::new();
    b.send_ok(1, 0)
        .send_ok(2, 1)
        .poll(&[(0, 1), (1, 2)])
        .poll(&[(1, 2)])
        .final_read(0, &[(0, 1), (1, 2)]);
    let v = assert_only(&b, AnomalyKind::NonmonotonicPoll);
    assert_eq!(v.anomalies[0].ops, vec![5, 7]);
}

#[test]
fn nonmonotonic_send_is_a_later_send_acknowledged_earlier() {
    let mut b = Builder::new();
    b.send_invoke(1)
        .send_invoke(2)
        .send_acked(2, 0)
        .send_acked(1, 1)
        .poll(&[(0, 2), (1, 1)])
        .final_read(0, &[(0, 2), (1, 1)]);
    let v = assert_only(&b, AnomalyKind::NonmonotonicSend);
    assert!(v.anomalies[0].about.contains("send 2"), "{:?}", v.anomalies);
    // Completions may arrive in any order as long as the offsets follow the sends.
    let mut b = Builder::new();
    b.send_invoke(1)
        .send_invoke(2)
        .send_acked(2, 1)
        .send_acked(1, 0)
        .poll(&[(0, 1), (1, 2)])
        .final_read(0, &[(0, 1), (1, 2)]);
    assert_clean(&b);
}

#[test]
fn nonmonotonic_send_compares_the_sends_of_one_producer() {
    // `insync run --producers 2`: send 1 through producer 0, send 2 through producer 1; the
    // two producers' records interleave in any order.
    let mut b = Builder::new();
    b.producer(0)
        .send_invoke(1)
        .producer(1)
        .send_invoke(2)
        .send_acked(2, 0)
        .producer(0)
        .send_acked(1, 1)
        .poll(&[(0, 2), (1, 1)])
        .final_read(0, &[(0, 2), (1, 1)]);
    assert_clean(&b);
    // Within one producer the order still holds.
    let mut b = Builder::new();
    b.producer(1)
        .send_invoke(1)
        .send_invoke(2)
        .send_acked(2, 0)
        .send_acked(1, 1)
        .poll(&[(0, 2), (1, 1)])
        .final_read(0, &[(0, 2), (1, 1)]);
    assert_only(&b, AnomalyKind::NonmonotonicSend);
}

#[test]
fn unseen_needs_the_consumer_not_the_log() {
    // The final leader holds it, the consumer never got it: unseen.
    let mut b = Builder::new();
    b.send_ok(1, 0).final_read(0, &[(0, 1)]);
    assert_only(&b, AnomalyKind::Unseen);
}

#[test]
fn a_final_read_without_a_leader_judges_nothing() {
    // The partition stayed offline: the consumer's reads are all there is.
    let mut h = Builder::new();
    h.send_ok(1, 0).poll(&[(0, 1)]);
    let mut history = h.build();
    history.push(
        10,
        insync_checks::history::Process::Final,
        insync_checks::history::OpType::Ok,
        insync_checks::history::Fun::FinalRead {
            leader: None,
            records: Vec::new(),
        },
    );
    let v = check_history(&history);
    assert!(v.is_valid(), "{:?}", v.anomalies);
}

#[test]
fn anomalies_of_one_kind_are_bounded() {
    let mut b = Builder::new();
    for v in 1..=100 {
        b.send_ok(v, v - 1);
    }
    b.final_read(0, &[]);
    let v = check_history(&b.build());
    assert_eq!(
        v.anomalies.len(),
        insync_checks::checker::ANOMALIES_PER_KIND_MAX
    );
}

#[test]
fn anomaly_names_round_trip() {
    for kind in AnomalyKind::ALL {
        assert_eq!(AnomalyKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(
        AnomalyKind::from_name("lost-write"),
        Some(AnomalyKind::LostWrite)
    );
    assert_eq!(AnomalyKind::from_name("nope"), None);
}
