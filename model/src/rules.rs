//! Kafka's replication rules, each one pure function of the values it reads.
//!
//! The broker's handlers ([`crate::broker`]) decide *when* a rule applies (fencing, role,
//! pending requests, guards); these functions say *what* it yields, and each has a table test
//! below. The layout section of the README names them, so a reader looking for "where does
//! the high watermark move" or "where does a follower truncate to" lands here.
//!
//! | rule | function | Kafka |
//! |---|---|---|
//! | high watermark | [`high_watermark`] | `Partition.maybeIncrementLeaderHW`, KIP-497, KIP-966 |
//! | lagging followers | [`lagging_followers`] | `Partition.getOutOfSyncReplicas` |
//! | ISR join | [`caught_up_to_join`] | `Partition.isFollowerInSync`, KAFKA-7128 |
//! | min.insync.replicas | [`enough_in_sync`] | `Partition.appendRecordsToLeader`, `checkEnoughReplicasReachOffset` |
//! | idempotent sequence | [`check_batch`] | `ProducerStateManager`, KIP-98 |
//! | where an epoch ends (leader) | [`epoch_end_offset`] | `LeaderEpochFileCache.endOffsetFor`, KIP-101, KIP-279 |
//! | truncation offset (follower) | [`truncation_offset`] | `AbstractFetcherThread`, KIP-101, KIP-279, KIP-320, KIP-595 |

use crate::config::{HwRule, Truncation};
use crate::log::Log;
use crate::msg::EpochEndOffset;
use crate::types::{BrokerId, BrokerSet, Epoch, Offset, ProducerId, Sequence, REPLICAS_MAX};

/// The high watermark a leader may move to: the smallest log end offset over `counted` (the
/// ISR, or KIP-497's maximal ISR while an `AlterPartition` is pending), the leader's own
/// included. `None` where the rule forbids any advance: under KIP-966's `min-isr` rule while
/// the confirmed `isr` has fewer than `min_insync` members. The caller keeps its current high
/// watermark when the candidate is not larger (it never moves backwards).
pub fn high_watermark(
    rule: HwRule,
    min_insync: usize,
    isr: BrokerSet,
    counted: BrokerSet,
    leader: BrokerId,
    leader_end: Offset,
    follower_end: &[Offset; REPLICAS_MAX],
) -> Option<Offset> {
    if rule == HwRule::MinIsr && isr.len() < min_insync {
        return None;
    }
    Some(
        counted
            .iter()
            .filter(|&b| b != leader)
            .map(|b| follower_end[b.index()])
            .fold(leader_end, Offset::min),
    )
}

/// The ISR members the leader proposes to drop when its lag check fires
/// (`replica.lag.time.max.ms`): every follower behind the leader's log end, except those that
/// caught up since the check was armed (Kafka's `lastCaughtUpTime`; empty unless the precise
/// rule is on).
pub fn lagging_followers(
    isr: BrokerSet,
    leader: BrokerId,
    leader_end: Offset,
    follower_end: &[Offset; REPLICAS_MAX],
    caught_up: BrokerSet,
) -> BrokerSet {
    isr.iter()
        .filter(|&b| b != leader && follower_end[b.index()] < leader_end && !caught_up.contains(b))
        .fold(BrokerSet::EMPTY, BrokerSet::with)
}

/// Which conditions a follower must meet to join the ISR: each is a rule Kafka added after a
/// bug, and each can be removed (`--without-guard`) to show what it prevents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinRules {
    /// Its log end reaches the leader's high watermark.
    pub high_watermark: bool,
    /// Its log end reaches the start of the leader's current epoch (KAFKA-7128, Kafka 2.1 on).
    pub epoch_start: bool,
}

/// Whether a follower whose log ends at `follower_end` has caught up enough to join the ISR.
pub fn caught_up_to_join(
    rules: JoinRules,
    follower_end: Offset,
    high_watermark: Offset,
    epoch_start: Offset,
) -> bool {
    (follower_end >= high_watermark || !rules.high_watermark)
        && (follower_end >= epoch_start || !rules.epoch_start)
}

/// `min.insync.replicas` for `acks=all`: the ISR must have at least `min_insync` members.
/// Kafka checks it twice, before appending (`NOT_ENOUGH_REPLICAS`) and again once the high
/// watermark passes the request (`NOT_ENOUGH_REPLICAS_AFTER_APPEND`); both call this.
pub fn enough_in_sync(isr: BrokerSet, min_insync: usize) -> bool {
    isr.len() >= min_insync
}

/// What the leader does with an idempotent batch (KIP-98).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The next sequence: append it.
    Next,
    /// The same batch (same first and last sequence) is already in the log at this offset:
    /// answer with the original offsets, append nothing.
    Duplicate(Offset),
    /// A gap, or a batch that only starts like one in the log: `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    OutOfOrder,
}

/// The idempotent producer's rule for a batch of `count` records from `producer` starting at
/// sequence `first`. The producer's last sequence is read from the log, so a new leader knows
/// it too. Kafka answers a retry with the original offsets only when it is the same batch; a
/// batch that only starts like one is out of order, never half-acknowledged.
pub fn check_batch(
    log: &Log,
    producer: ProducerId,
    first: Sequence,
    count: usize,
) -> SequenceCheck {
    let mut last: Option<Sequence> = None;
    let mut original = None;
    let end = log.log_end_offset().as_usize();
    for offset in (0..end).rev() {
        let Some(record) = log.get(Offset::from_usize(offset)) else {
            continue;
        };
        if let Some((pid, seq)) = record.producer {
            if pid != producer {
                continue;
            }
            if last.is_none() {
                last = Some(seq);
                if first > seq {
                    break;
                }
            }
            if seq == first {
                original = Some(Offset::from_usize(offset));
                break;
            }
        }
    }
    match (last, original) {
        (_, Some(offset)) => {
            let same_batch = (0..count).all(|i| {
                log.get(offset.plus(i)).and_then(|r| r.producer)
                    == Some((producer, Sequence(first.0 + i as u32)))
            });
            if same_batch {
                SequenceCheck::Duplicate(offset)
            } else {
                SequenceCheck::OutOfOrder
            }
        }
        (None, None) if first == Sequence(0) => SequenceCheck::Next,
        (Some(last), None) if first.0 == last.0 + 1 => SequenceCheck::Next,
        _ => SequenceCheck::OutOfOrder,
    }
}

/// The leader's answer to `OffsetsForLeaderEpoch` for `asked`, in the words of the rung.
/// KIP-101 (Kafka 0.11): the log end if `asked` is this log's latest epoch, else the first
/// offset of a newer epoch, else undefined. KIP-279 on: the largest epoch not newer than
/// `asked` and where it ends. `current` is the leader's own epoch (its log may not have a
/// record in it yet).
pub fn epoch_end_offset(
    rung: Truncation,
    log: &Log,
    asked: Epoch,
    current: Option<Epoch>,
) -> EpochEndOffset {
    let found = match rung {
        Truncation::Kip101 => log
            .end_offset_for_v0(asked, current)
            .map(|end| (asked, end)),
        _ => log.end_offset_for(asked, current),
    };
    match found {
        Some((epoch, end_offset)) => EpochEndOffset::Found { epoch, end_offset },
        None => EpochEndOffset::Undefined,
    }
}

/// What makes a follower truncate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationCause {
    /// It just became a follower (before 0.11 it truncated to its high watermark then).
    BecameFollower,
    /// The leader answered its `OffsetsForLeaderEpoch` (KIP-101, KIP-279, KIP-320).
    EpochAnswer(EpochEndOffset),
    /// The leader found its fetch diverging: its last epoch ends at `end_offset` on the leader
    /// (KIP-320's first try, KIP-595).
    Diverging { epoch: Epoch, end_offset: Offset },
    /// Its fetch offset is past the leader's log end (the legacy rule).
    OutOfRange { log_end_offset: Offset },
}

/// Where a follower truncates its log, and whether it is done (`false`: ask again about the
/// epoch the answer named, Kafka 2.0's `truncationCompleted = false`). An offset at or past
/// the log end truncates nothing.
///
/// - high-watermark rung: to its own high watermark on becoming follower;
/// - KIP-101: to the offset the leader named, or to the high watermark if it named none;
/// - KIP-279 on, and a diverging fetch: if its own log's answer for the named epoch is an
///   older epoch, to its own end of that one, not done; else to the smaller of both ends
///   (Kafka's `getOffsetTruncationState`);
/// - out of range: to the leader's log end.
pub fn truncation_offset(
    rung: Truncation,
    log: &Log,
    high_watermark: Offset,
    cause: TruncationCause,
) -> (Offset, bool) {
    let end = log.log_end_offset();
    let (offset, done) = match cause {
        TruncationCause::BecameFollower if rung == Truncation::HighWatermark => {
            (high_watermark, true)
        }
        TruncationCause::BecameFollower => (end, true),
        // Kafka falls back to the high watermark when the leader knows no such epoch.
        TruncationCause::EpochAnswer(EpochEndOffset::Undefined) => (high_watermark, true),
        TruncationCause::EpochAnswer(EpochEndOffset::Found { end_offset, .. })
            if rung == Truncation::Kip101 =>
        {
            (end_offset, true)
        }
        TruncationCause::EpochAnswer(EpochEndOffset::Found { epoch, end_offset })
        | TruncationCause::Diverging { epoch, end_offset } => {
            match log.end_offset_for(epoch, None) {
                Some((own_epoch, own_end)) if own_epoch != epoch => (own_end, false),
                Some((_, own_end)) => (own_end.min(end_offset), true),
                None => (end_offset, true),
            }
        }
        TruncationCause::OutOfRange { log_end_offset } => (log_end_offset, true),
    };
    (offset.min(end), done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Record;

    fn set(ids: &[u8]) -> BrokerSet {
        ids.iter()
            .fold(BrokerSet::EMPTY, |s, &b| s.with(BrokerId(b)))
    }

    fn ends(e: [u64; 3]) -> [Offset; REPLICAS_MAX] {
        let mut out = [Offset::ZERO; REPLICAS_MAX];
        for (i, v) in e.iter().enumerate() {
            out[i] = Offset(*v);
        }
        out
    }

    /// A log from `(value, epoch)` pairs; `producer` tags records with producer 1 and the
    /// given sequences.
    fn log(records: &[(u32, u32)], sequences: Option<&[u32]>) -> Log {
        let mut l = Log::new();
        for (i, (value, epoch)) in records.iter().enumerate() {
            l.append(Record {
                value: crate::types::Value::Numbered(*value),
                leader_epoch: Epoch(*epoch),
                producer: sequences.map(|s| (ProducerId(1), Sequence(s[i]))),
            });
        }
        l
    }

    #[test]
    fn the_high_watermark_is_the_smallest_end_over_the_counted_replicas() {
        use HwRule::*;
        // (rule, min.insync, isr, counted, leader end, ends of brokers 0..3) -> candidate
        type Row = (
            HwRule,
            usize,
            &'static [u8],
            &'static [u8],
            u64,
            [u64; 3],
            Option<u64>,
        );
        let table: &[Row] = &[
            (Isr, 2, &[0, 1, 2], &[0, 1, 2], 5, [0, 3, 4], Some(3)),
            // A lone leader commits what it has.
            (Isr, 2, &[0], &[0], 5, [0, 0, 0], Some(5)),
            // KIP-497: a pending addition counts before the controller confirms it.
            (Isr, 2, &[0, 1], &[0, 1, 2], 5, [0, 5, 1], Some(1)),
            // Followers outside the counted set do not hold it back.
            (Isr, 1, &[0, 1], &[0, 1], 5, [0, 4, 0], Some(4)),
            // KIP-966: below min.insync the high watermark does not move...
            (MinIsr, 2, &[0], &[0], 5, [0, 0, 0], None),
            // ...and at min.insync it is the same minimum.
            (MinIsr, 2, &[0, 2], &[0, 2], 5, [0, 0, 2], Some(2)),
            // The confirmed ISR decides, not the maximal one.
            (MinIsr, 2, &[0], &[0, 1], 5, [0, 3, 0], None),
        ];
        for &(rule, min, isr, counted, leader_end, e, want) in table {
            let got = high_watermark(
                rule,
                min,
                set(isr),
                set(counted),
                BrokerId(0),
                Offset(leader_end),
                &ends(e),
            );
            assert_eq!(
                got,
                want.map(Offset),
                "{rule:?} min {min} isr {isr:?} counted {counted:?} ends {e:?}"
            );
        }
    }

    #[test]
    fn followers_behind_the_log_end_lag_unless_they_caught_up_since_the_check() {
        // (isr, leader end, ends, caught up) -> lagging
        type Row = (&'static [u8], u64, [u64; 3], &'static [u8], &'static [u8]);
        let table: &[Row] = &[
            (&[0, 1, 2], 3, [3, 3, 3], &[], &[]),
            (&[0, 1, 2], 3, [3, 2, 3], &[], &[1]),
            (&[0, 1, 2], 3, [3, 0, 1], &[], &[1, 2]),
            // Outside the ISR: nothing to drop.
            (&[0, 1], 3, [3, 3, 0], &[], &[]),
            // Kafka's precise rule: caught up since the check was armed.
            (&[0, 1, 2], 3, [3, 2, 1], &[1], &[2]),
            // The leader's own entry is never read.
            (&[0], 3, [0, 0, 0], &[], &[]),
        ];
        for &(isr, end, e, caught, want) in table {
            let got = lagging_followers(set(isr), BrokerId(0), Offset(end), &ends(e), set(caught));
            assert_eq!(got, set(want), "isr {isr:?} end {end} ends {e:?}");
        }
    }

    #[test]
    fn a_follower_joins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        let both = JoinRules {
            high_watermark: true,
            epoch_start: true,
        };
        let hw_only = JoinRules {
            epoch_start: false,
            ..both
        };
        let neither = JoinRules {
            high_watermark: false,
            epoch_start: false,
        };
        // (rules, follower end, hw, epoch start) -> joins
        let table = [
            (both, 3, 3, 2, true),
            (both, 2, 3, 2, false),
            // KAFKA-7128: at the high watermark but short of the epoch's first offset.
            (both, 1, 1, 2, false),
            (hw_only, 1, 1, 2, true),
            (neither, 0, 3, 2, true),
        ];
        for (rules, end, hw, start, want) in table {
            assert_eq!(
                caught_up_to_join(rules, Offset(end), Offset(hw), Offset(start)),
                want,
                "{rules:?} end {end} hw {hw} epoch start {start}"
            );
        }
    }

    #[test]
    fn acks_all_needs_min_insync_members() {
        for (isr, min, want) in [
            (&[0u8][..], 1, true),
            (&[0], 2, false),
            (&[0, 1], 2, true),
            (&[0, 1, 2], 3, true),
            (&[0, 2], 3, false),
        ] {
            assert_eq!(enough_in_sync(set(isr), min), want, "isr {isr:?} min {min}");
        }
    }

    #[test]
    fn the_sequence_check_accepts_the_next_answers_the_same_batch_and_refuses_the_rest() {
        use SequenceCheck::*;
        // (sequences in the log, batch's first sequence, batch length) -> check
        let table: &[(&[u32], u32, usize, SequenceCheck)] = &[
            (&[], 0, 1, Next),
            (&[], 1, 1, OutOfOrder),
            (&[0], 1, 1, Next),
            (&[0], 2, 1, OutOfOrder),
            (&[0, 1], 0, 1, Duplicate(Offset(0))),
            (&[0, 1], 1, 1, Duplicate(Offset(1))),
            (&[0, 1], 0, 2, Duplicate(Offset(0))),
            // Starts like the logged batch but is longer: not the same batch.
            (&[0], 0, 2, OutOfOrder),
            (&[0, 1], 2, 1, Next),
        ];
        for &(seqs, first, count, want) in table {
            let records: Vec<(u32, u32)> = seqs.iter().map(|s| (*s + 1, 1)).collect();
            let l = log(&records, Some(seqs));
            assert_eq!(
                check_batch(&l, ProducerId(1), Sequence(first), count),
                want,
                "log {seqs:?} first {first} count {count}"
            );
        }
        // Another producer's records do not count.
        let other = log(&[(1, 1)], Some(&[0]));
        assert_eq!(check_batch(&other, ProducerId(2), Sequence(0), 1), Next);
    }

    #[test]
    fn the_leader_names_where_an_epoch_ends_in_each_rungs_words() {
        // Log: epoch 1 at 0..2, epoch 3 at 2..3; the leader is in epoch 4.
        let l = log(&[(1, 1), (2, 1), (3, 3)], None);
        let found = |epoch, end| EpochEndOffset::Found {
            epoch: Epoch(epoch),
            end_offset: Offset(end),
        };
        let table = [
            (Truncation::Kip101, 1, found(1, 2)),
            // KIP-101 names the asked epoch even where the log never had it.
            (Truncation::Kip101, 2, found(2, 2)),
            (Truncation::Kip101, 4, found(4, 3)),
            // KIP-279 on: the largest epoch not newer than the asked one.
            (Truncation::Kip279, 2, found(1, 2)),
            (Truncation::Kip320, 3, found(3, 3)),
            (Truncation::Kip320, 4, found(4, 3)),
            // Newer than anything the leader has: undefined.
            (Truncation::LeaderEpoch, 5, EpochEndOffset::Undefined),
        ];
        for (rung, asked, want) in table {
            assert_eq!(
                epoch_end_offset(rung, &l, Epoch(asked), Some(Epoch(4))),
                want,
                "{rung:?} asked {asked}"
            );
        }
    }

    #[test]
    fn a_follower_truncates_where_its_rung_says() {
        use Truncation::*;
        use TruncationCause::*;
        // Follower log: epoch 1 at 0..2, epoch 2 at 2..4; its high watermark is 1. A second
        // follower log skips epoch 2: epoch 1 at 0..2, epoch 3 at 2..4.
        let l = log(&[(1, 1), (2, 1), (3, 2), (4, 2)], None);
        let skipped = log(&[(1, 1), (2, 1), (3, 3), (4, 3)], None);
        let hw = Offset(1);
        let answer = |epoch, end| {
            EpochAnswer(EpochEndOffset::Found {
                epoch: Epoch(epoch),
                end_offset: Offset(end),
            })
        };
        let diverging = |epoch, end| Diverging {
            epoch: Epoch(epoch),
            end_offset: Offset(end),
        };
        // (rung, follower log, cause) -> (offset, done)
        let table = [
            (HighWatermark, &l, BecameFollower, (1, true)),
            (Kip101, &l, BecameFollower, (4, true)),
            (LeaderEpoch, &l, BecameFollower, (4, true)),
            (
                Kip101,
                &l,
                EpochAnswer(EpochEndOffset::Undefined),
                (1, true),
            ),
            (
                Kip320,
                &l,
                EpochAnswer(EpochEndOffset::Undefined),
                (1, true),
            ),
            // KIP-101 takes the leader's offset as it is...
            (Kip101, &l, answer(2, 3), (3, true)),
            // ...but never past its own end.
            (Kip101, &l, answer(2, 9), (4, true)),
            // KIP-279: the smaller of both ends of the common epoch.
            (Kip279, &l, answer(2, 3), (3, true)),
            (Kip279, &l, answer(1, 1), (1, true)),
            // An epoch newer than this log's: the leader's offset.
            (Kip320, &l, answer(3, 2), (2, true)),
            // The leader named epoch 2, which this log skipped: its own end of the epoch
            // before (1), and ask again.
            (Kip279, &skipped, answer(2, 3), (2, false)),
            (Kip320, &skipped, answer(2, 3), (2, false)),
            // KIP-101 has no such step: it takes the offset.
            (Kip101, &skipped, answer(2, 3), (3, true)),
            (Kip320FirstTry, &l, diverging(1, 1), (1, true)),
            (LeaderEpoch, &l, diverging(2, 3), (3, true)),
            (LeaderEpoch, &skipped, diverging(2, 3), (2, false)),
            (
                HighWatermark,
                &l,
                OutOfRange {
                    log_end_offset: Offset(2),
                },
                (2, true),
            ),
            (
                HighWatermark,
                &l,
                OutOfRange {
                    log_end_offset: Offset(7),
                },
                (4, true),
            ),
        ];
        for (rung, follower, cause, (offset, done)) in table {
            assert_eq!(
                truncation_offset(rung, follower, hw, cause),
                (Offset(offset), done),
                "{rung:?} {cause:?}"
            );
        }
    }
}
