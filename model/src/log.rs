//! The partition log, as a persistent vector: cloning a broker's state (the checker does it at
//! every step) and saving the log to storage share structure instead of copying records. The
//! log keeps a digest of its records, extended at each append, so that hashing a log (the
//! checker fingerprints every state it generates) costs two words, not a walk of the records.
//!
//! The leader-epoch cache of KIP-101 is derived from the records instead of being kept beside
//! the log. Kafka's cache (`LeaderEpochFileCache.assign`) takes an entry `(epoch, start)` only
//! for an epoch newer than its latest, and ignores (with a warning) an older one, so the epoch
//! the cache gives a record is the largest epoch at or before it. Records are almost always
//! appended with non-decreasing epochs (a leader appends in its own epoch, and epochs grow),
//! and then that is the record's own epoch and a binary search finds an epoch's end. Before
//! KIP-320 they need not be: a follower still in an old epoch copies records of a newer leader
//! (its fetches carry no epoch to be fenced by), then a late `LeaderAndIsr` makes it leader in
//! an epoch between the two, and it appends in that older epoch, as Kafka's broker does. Such
//! a log is searched record by record with the cache's epochs (`Log::cache_epoch`).

use crate::types::{Epoch, Offset, Record};
use rpds::VectorSync;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::{Hash, Hasher};

#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "LogRecords", into = "LogRecords")]
pub struct Log {
    records: VectorSync<Record>,
    /// A function of the records alone (see [`extend_digest`]): equal logs have equal digests.
    digest: u64,
    /// Whether the records' epochs never decrease (a function of the records alone).
    monotone: bool,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            records: VectorSync::new_sync(),
            digest: 0,
            monotone: true,
        }
    }
}

/// What a log is written as: its records (the digest is computed again on reading).
#[derive(Serialize, Deserialize)]
struct LogRecords {
    records: VectorSync<Record>,
}

impl From<LogRecords> for Log {
    fn from(r: LogRecords) -> Log {
        let mut log = Log {
            records: r.records,
            digest: 0,
            monotone: true,
        };
        log.refresh();
        log
    }
}

impl From<Log> for LogRecords {
    fn from(log: Log) -> LogRecords {
        LogRecords {
            records: log.records,
        }
    }
}

/// The digest of a log extended by one record: a fixed-seed hash of the previous digest and
/// the record, so a log's digest depends on its records and their order only.
fn extend_digest(digest: u64, record: &Record) -> u64 {
    ahash::RandomState::with_seeds(0x6c6f, 0x67, 0x6469, 0x6765).hash_one((digest, record))
}

impl PartialEq for Log {
    fn eq(&self, other: &Log) -> bool {
        self.digest == other.digest && self.records == other.records
    }
}
impl Eq for Log {}

impl Hash for Log {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_usize(self.records.len());
        h.write_u64(self.digest);
    }
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> Offset {
        Offset::from_usize(self.records.len())
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, offset: Offset) -> Option<&Record> {
        self.records.get(offset.as_usize())
    }

    pub fn append(&mut self, record: Record) {
        if let Some(last) = self.records.last() {
            self.monotone &= last.leader_epoch <= record.leader_epoch;
        }
        self.digest = extend_digest(self.digest, &record);
        self.records.push_back_mut(record);
    }

    /// The digest and the monotone flag computed again from the records.
    fn refresh(&mut self) {
        self.digest = self.records.iter().fold(0, extend_digest);
        self.monotone = self
            .records
            .iter()
            .zip(self.records.iter().skip(1))
            .all(|(a, b)| a.leader_epoch <= b.leader_epoch);
    }

    /// Whether every record's epoch is at least the one before it: always on KIP-320 rungs
    /// and later, where a follower's fetch carries its epoch and a newer leader fences it.
    pub fn epochs_never_decrease(&self) -> bool {
        self.monotone
    }

    /// The epoch Kafka's leader-epoch cache gives the record at `index`: the largest epoch of
    /// the records up to it (an older epoch's assignment is ignored, `LeaderEpochFileCache`).
    fn cache_epoch(&self, index: usize) -> Epoch {
        if self.monotone {
            return self.records[index].leader_epoch;
        }
        self.records
            .iter()
            .take(index + 1)
            .map(|r| r.leader_epoch)
            .max()
            .expect("a record at index")
    }

    /// Drops every record at or after `offset`.
    pub fn truncate(&mut self, offset: Offset) {
        if self.records.len() <= offset.as_usize() {
            return;
        }
        while self.records.len() > offset.as_usize() {
            self.records.drop_last_mut();
        }
        // Truncations are rare (a new leader's followers, a restart): computing the digest of
        // the prefix again keeps appends at one hash each.
        self.refresh();
    }

    /// Records in `[from, to)`, clamped to the log.
    pub fn slice(&self, from: Offset, to: Offset) -> Vec<Record> {
        let to = to.min(self.log_end_offset()).as_usize();
        (from.as_usize()..to)
            .filter_map(|i| self.records.get(i).cloned())
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// The latest epoch of the log's leader-epoch cache (the last record's epoch unless a
    /// record of an older epoch followed a newer one), which a follower sends as
    /// `last_fetched_epoch` (Kafka's `latestEpoch`).
    pub fn last_epoch(&self) -> Option<Epoch> {
        let last = self.records.len().checked_sub(1)?;
        Some(self.cache_epoch(last))
    }

    /// The end offset of `epoch` in this log: the first offset whose cached epoch is larger.
    fn end_offset_of_epoch(&self, epoch: Epoch) -> Offset {
        if !self.monotone {
            let mut max = Epoch(0);
            for (i, r) in self.records.iter().enumerate() {
                max = max.max(r.leader_epoch);
                if max > epoch {
                    return Offset::from_usize(i);
                }
            }
            return self.log_end_offset();
        }
        let (mut lo, mut hi) = (0usize, self.records.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.records[mid].leader_epoch <= epoch {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Offset::from_usize(lo)
    }

    /// KIP-101/KIP-279 `OffsetsForLeaderEpoch`: the largest epoch in this log that is not newer
    /// than `epoch`, and the end offset of that epoch. `None` when every record is newer.
    pub fn epoch_end_offset(&self, epoch: Epoch) -> Option<(Epoch, Offset)> {
        let end = self.end_offset_of_epoch(epoch);
        if end == Offset::ZERO {
            return None;
        }
        let found = self.cache_epoch(end.as_usize() - 1);
        Some((found, end))
    }

    /// Kafka's leader-epoch cache lookup (`LeaderEpochFileCache.endOffsetFor`, Kafka 2.0 on):
    /// the cache holds an entry (epoch, start offset) per epoch of this log, plus, on a leader,
    /// its `current` epoch from the moment it became leader (KIP-101 assigns it then). For
    /// the latest epoch: the log end. Else, with the first entry of a newer epoch at `s`: the
    /// largest epoch not newer than `requested` and `s`, or `requested` itself and `s` when
    /// no entry is that old. `None` (`UNDEFINED_EPOCH_OFFSET`) for an empty cache or an
    /// epoch newer than every entry.
    pub fn end_offset_for(
        &self,
        requested: Epoch,
        current: Option<Epoch>,
    ) -> Option<(Epoch, Offset)> {
        let own_latest = self.last_epoch();
        let latest = match (own_latest, current) {
            (Some(l), Some(c)) => Some(l.max(c)),
            (l, c) => l.or(c),
        }?;
        if requested == latest {
            return Some((requested, self.log_end_offset()));
        }
        if requested > latest {
            return None;
        }
        // The first entry newer than `requested`: a record's epoch, or the leader's own.
        let higher_start = self.end_offset_of_epoch(requested);
        let floor = self.epoch_end_offset(requested).map(|(epoch, _)| epoch);
        Some((floor.unwrap_or(requested), higher_start))
    }

    /// KIP-101 as Kafka 0.11 shipped it (`endOffsetFor` returning an offset only): the log
    /// end for the latest epoch; `None` (`UNDEFINED_EPOCH_OFFSET`) when `requested` is older
    /// than every entry or newer than all; else the start of the first newer epoch.
    pub fn end_offset_for_v0(&self, requested: Epoch, current: Option<Epoch>) -> Option<Offset> {
        let first = self.records.first().map(|r| r.leader_epoch).or(current)?;
        let (_, end) = self.end_offset_for(requested, current)?;
        (requested >= first).then_some(end)
    }

    /// The first offset appended in `epoch` or later (where a new leader's epoch starts).
    pub fn start_offset_of_epoch(&self, epoch: Epoch) -> Offset {
        match epoch.0.checked_sub(1) {
            Some(previous) => self.end_offset_of_epoch(Epoch(previous)),
            None => Offset::ZERO,
        }
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, r) in self.records.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{}@e{}", r.value, r.leader_epoch)?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;

    fn record(value: u32, epoch: u32) -> Record {
        Record {
            value: Value::Numbered(value),
            leader_epoch: Epoch(epoch),
            producer: None,
        }
    }

    #[test]
    fn epoch_end_offsets_follow_kip_101() {
        let mut log = Log::new();
        for (v, e) in [(1, 1), (2, 1), (3, 3), (4, 3), (5, 4)] {
            log.append(record(v, e));
        }
        assert_eq!(log.epoch_end_offset(Epoch(1)), Some((Epoch(1), Offset(2))));
        // Epoch 2 never appended here: the answer is the largest older epoch and its end.
        assert_eq!(log.epoch_end_offset(Epoch(2)), Some((Epoch(1), Offset(2))));
        assert_eq!(log.epoch_end_offset(Epoch(3)), Some((Epoch(3), Offset(4))));
        assert_eq!(log.epoch_end_offset(Epoch(9)), Some((Epoch(4), Offset(5))));
        assert_eq!(log.epoch_end_offset(Epoch(0)), None);
        assert_eq!(log.start_offset_of_epoch(Epoch(3)), Offset(2));
        assert_eq!(log.start_offset_of_epoch(Epoch(5)), Offset(5));
    }

    #[test]
    fn truncate_and_slice() {
        let mut log = Log::new();
        for v in 1..=4 {
            log.append(record(v, 1));
        }
        let saved = log.clone();
        log.truncate(Offset(1));
        assert_eq!(log.log_end_offset(), Offset(1));
        assert_eq!(
            saved.log_end_offset(),
            Offset(4),
            "clones do not share truncation"
        );
        assert_eq!(
            saved.slice(Offset(1), Offset(3)),
            vec![record(2, 1), record(3, 1)]
        );
        assert_eq!(saved.slice(Offset(3), Offset(9)), vec![record(4, 1)]);
    }

    fn log_of(epochs: &[u32]) -> Log {
        let mut log = Log::new();
        for (i, &e) in epochs.iter().enumerate() {
            log.append(record(i as u32 + 1, e));
        }
        log
    }

    #[test]
    fn an_empty_log() {
        let log = Log::new();
        assert_eq!(log.log_end_offset(), Offset(0));
        assert!(log.is_empty());
        assert_eq!(log.get(Offset(0)), None);
        assert_eq!(log.last_epoch(), None);
        assert_eq!(log.iter().count(), 0);
        assert_eq!(log.slice(Offset(0), Offset(3)), vec![]);
        assert_eq!(log.epoch_end_offset(Epoch(1)), None);
        assert_eq!(log.start_offset_of_epoch(Epoch(3)), Offset(0));
        // A follower's empty cache knows nothing; a new leader's holds its own epoch.
        assert_eq!(log.end_offset_for(Epoch(1), None), None);
        assert_eq!(log.end_offset_for_v0(Epoch(1), None), None);
        assert_eq!(
            log.end_offset_for(Epoch(3), Some(Epoch(3))),
            Some((Epoch(3), Offset(0)))
        );
        assert_eq!(
            log.end_offset_for(Epoch(2), Some(Epoch(3))),
            Some((Epoch(2), Offset(0)))
        );
        assert_eq!(log.end_offset_for(Epoch(4), Some(Epoch(3))), None);
        assert_eq!(
            log.end_offset_for_v0(Epoch(3), Some(Epoch(3))),
            Some(Offset(0))
        );
        assert_eq!(log.end_offset_for_v0(Epoch(2), Some(Epoch(3))), None);
        assert_eq!(format!("{log}"), "[]");
    }

    #[test]
    fn append_get_and_last_epoch() {
        let mut log = Log::new();
        log.append(record(7, 2));
        log.append(record(8, 2));
        log.append(record(9, 5));
        assert!(!log.is_empty());
        assert_eq!(log.log_end_offset(), Offset(3));
        assert_eq!(log.get(Offset(0)), Some(&record(7, 2)));
        assert_eq!(log.get(Offset(2)), Some(&record(9, 5)));
        assert_eq!(log.get(Offset(3)), None);
        assert_eq!(log.last_epoch(), Some(Epoch(5)));
        assert_eq!(
            log.iter().cloned().collect::<Vec<_>>(),
            vec![record(7, 2), record(8, 2), record(9, 5)]
        );
        assert_eq!(format!("{log}"), "[v7@e2 v8@e2 v9@e5]");
        assert_eq!(format!("{log:?}"), "[v7@e2 v8@e2 v9@e5]");
    }

    /// Before KIP-320 a log can take an older epoch after a newer one (the module's doc):
    /// Kafka's cache ignores the older epoch, so its records count as the newer epoch's in
    /// every lookup, and a truncation back past them makes the log monotone again.
    #[test]
    fn an_older_epoch_after_a_newer_one_counts_as_the_newer_in_lookups() {
        let mut log = log_of(&[1, 3]);
        assert!(log.epochs_never_decrease());
        log.append(record(3, 2));
        log.append(record(4, 2));
        assert!(!log.epochs_never_decrease());
        assert_eq!(log.last_epoch(), Some(Epoch(3)), "the cache's latest epoch");
        // Epoch 1 ends where epoch 3 starts; epochs 2 and 3 end at the log end.
        assert_eq!(log.epoch_end_offset(Epoch(1)), Some((Epoch(1), Offset(1))));
        assert_eq!(log.epoch_end_offset(Epoch(2)), Some((Epoch(1), Offset(1))));
        assert_eq!(
            log.end_offset_for(Epoch(3), None),
            Some((Epoch(3), Offset(4)))
        );
        assert_eq!(
            log.end_offset_for(Epoch(2), None),
            Some((Epoch(1), Offset(1)))
        );
        assert_eq!(log.start_offset_of_epoch(Epoch(3)), Offset(1));
        assert_eq!(log.start_offset_of_epoch(Epoch(4)), Offset(4));
        // A monotone log with the same lookups is the one Kafka's cache describes.
        let cached = log_of(&[1, 3, 3, 3]);
        for e in 0..5 {
            assert_eq!(
                log.end_offset_for(Epoch(e), None),
                cached.end_offset_for(Epoch(e), None)
            );
            assert_eq!(
                log.epoch_end_offset(Epoch(e)),
                cached.epoch_end_offset(Epoch(e))
            );
        }
        log.truncate(Offset(2));
        assert!(log.epochs_never_decrease());
        assert_eq!(log, log_of(&[1, 3]));
        // Read back from storage, the flag is computed again.
        let mut odd = log_of(&[2]);
        odd.append(record(2, 1));
        let back: Log = serde_json::from_str(&serde_json::to_string(&odd).unwrap()).unwrap();
        assert!(!back.epochs_never_decrease());
        assert_eq!(back, odd);
    }

    #[test]
    fn truncate_at_or_past_the_end_changes_nothing() {
        let mut log = log_of(&[1, 1, 2]);
        log.truncate(Offset(3));
        assert_eq!(log, log_of(&[1, 1, 2]));
        log.truncate(Offset(9));
        assert_eq!(log, log_of(&[1, 1, 2]));
        log.truncate(Offset(2));
        assert_eq!(log, log_of(&[1, 1]));
        assert_eq!(log.last_epoch(), Some(Epoch(1)));
        log.truncate(Offset(0));
        assert!(log.is_empty());
    }

    #[test]
    fn slice_is_half_open_and_clamped() {
        let log = log_of(&[1, 1, 2, 2]);
        assert_eq!(log.slice(Offset(0), Offset(0)), vec![]);
        assert_eq!(log.slice(Offset(0), Offset(1)), vec![record(1, 1)]);
        assert_eq!(
            log.slice(Offset(2), Offset(4)),
            vec![record(3, 2), record(4, 2)]
        );
        assert_eq!(log.slice(Offset(3), Offset(2)), vec![]);
        assert_eq!(log.slice(Offset(4), Offset(8)), vec![]);
        assert_eq!(log.slice(Offset(6), Offset(8)), vec![]);
    }

    /// Kafka 2.0's `endOffsetFor` on `[e1 e1 e3 e3 e4]`, as a follower (no current epoch) and
    /// as leaders of epoch 6 and (an out-of-date) 2.
    #[test]
    fn end_offset_for_follows_the_leader_epoch_cache() {
        let log = log_of(&[1, 1, 3, 3, 4]);
        let at = |e, o| Some((Epoch(e), Offset(o)));
        assert_eq!(
            log.end_offset_for(Epoch(4), None),
            at(4, 5),
            "latest: log end"
        );
        assert_eq!(log.end_offset_for(Epoch(5), None), None, "newer than all");
        assert_eq!(log.end_offset_for(Epoch(3), None), at(3, 4));
        assert_eq!(
            log.end_offset_for(Epoch(2), None),
            at(1, 2),
            "the floor epoch"
        );
        assert_eq!(log.end_offset_for(Epoch(1), None), at(1, 2));
        assert_eq!(
            log.end_offset_for(Epoch(0), None),
            at(0, 0),
            "older than all"
        );
        // A leader of epoch 6 with no record of its own yet.
        let leader = Some(Epoch(6));
        assert_eq!(log.end_offset_for(Epoch(6), leader), at(6, 5));
        assert_eq!(log.end_offset_for(Epoch(5), leader), at(4, 5));
        assert_eq!(log.end_offset_for(Epoch(4), leader), at(4, 5));
        assert_eq!(log.end_offset_for(Epoch(7), leader), None);
        // A current epoch older than the log's own latest: the log's wins.
        assert_eq!(log.end_offset_for(Epoch(4), Some(Epoch(2))), at(4, 5));
        assert_eq!(log.end_offset_for(Epoch(2), Some(Epoch(2))), at(1, 2));
    }

    /// Kafka 0.11's offset-only answer: unknown for an epoch older than the first entry.
    #[test]
    fn end_offset_for_v0_is_undefined_below_the_first_epoch() {
        let log = log_of(&[1, 1, 3, 3, 4]);
        assert_eq!(log.end_offset_for_v0(Epoch(0), None), None);
        assert_eq!(log.end_offset_for_v0(Epoch(1), None), Some(Offset(2)));
        assert_eq!(log.end_offset_for_v0(Epoch(2), None), Some(Offset(2)));
        assert_eq!(log.end_offset_for_v0(Epoch(3), None), Some(Offset(4)));
        assert_eq!(log.end_offset_for_v0(Epoch(4), None), Some(Offset(5)));
        assert_eq!(log.end_offset_for_v0(Epoch(5), None), None);
        assert_eq!(
            log.end_offset_for_v0(Epoch(5), Some(Epoch(6))),
            Some(Offset(5))
        );
        let later = log_of(&[2, 2]);
        assert_eq!(later.end_offset_for_v0(Epoch(1), None), None);
        assert_eq!(later.end_offset_for_v0(Epoch(2), None), Some(Offset(2)));
    }

    /// Every log of up to six records over epochs 1..=4, against the definitions by linear
    /// scan: `epoch_end_offset(e)` is the last record not newer than `e` (its epoch, one past
    /// it); `start_offset_of_epoch(e)` is the first record of epoch `e` or later.
    #[test]
    fn epoch_lookups_agree_with_a_linear_scan_on_every_small_log() {
        fn logs(len: usize, from: u32, prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
            out.push(prefix.clone());
            if prefix.len() == len {
                return;
            }
            for e in from..=4 {
                prefix.push(e);
                logs(len, e, prefix, out);
                prefix.pop();
            }
        }
        let mut all = Vec::new();
        logs(6, 1, &mut Vec::new(), &mut all);
        assert_eq!(
            all.len(),
            210,
            "non-decreasing sequences of length 0..=6 over 4 epochs"
        );
        for epochs in &all {
            let log = log_of(epochs);
            for e in 0..=6 {
                let floor = epochs.iter().rposition(|&x| x <= e);
                let expected = floor.map(|i| (Epoch(epochs[i]), Offset::from_usize(i + 1)));
                assert_eq!(log.epoch_end_offset(Epoch(e)), expected, "{epochs:?} e{e}");
                let start = epochs.iter().position(|&x| x >= e).unwrap_or(epochs.len());
                assert_eq!(
                    log.start_offset_of_epoch(Epoch(e)),
                    Offset::from_usize(start),
                    "{epochs:?} start of e{e}"
                );
            }
        }
    }

    /// The checker knows a state by its hash alone, so two different logs that hashed alike
    /// would merge two states and hide the behaviours of one. Every log of up to four
    /// records (values 1..=2, epochs 1..=3, in any order) hashes apart from every other,
    /// however it was built (appends, a truncation, reading it back from storage), and a
    /// log equals exactly the logs with its records.
    #[test]
    fn different_logs_hash_apart_and_equal_logs_alike() {
        fn hash(log: &Log) -> u64 {
            crate::system::part_hash(log)
        }
        let mut all: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
        let mut frontier = all.clone();
        for _ in 0..4 {
            let mut next = Vec::new();
            for prefix in &frontier {
                for v in 1..=2 {
                    for e in 1..=3 {
                        let mut longer = prefix.clone();
                        longer.push((v, e));
                        next.push(longer);
                    }
                }
            }
            all.extend(next.iter().cloned());
            frontier = next;
        }
        let build = |records: &[(u32, u32)]| {
            let mut log = Log::new();
            for &(v, e) in records {
                log.append(record(v, e));
            }
            log
        };
        let mut seen = std::collections::HashMap::new();
        for records in &all {
            let log = build(records);
            if let Some(other) = seen.insert(hash(&log), records.clone()) {
                panic!("{records:?} and {other:?} hash alike");
            }
            // The same log by another road: one record more, truncated back; and through
            // storage.
            let mut longer = log.clone();
            longer.append(record(9, 9));
            longer.truncate(log.log_end_offset());
            let stored: Log =
                serde_json::from_str(&serde_json::to_string(&log).expect("write")).expect("read");
            for same in [&longer, &stored] {
                assert!(*same == log, "{records:?}");
                assert_eq!(hash(same), hash(&log), "{records:?}");
            }
        }
        assert_eq!(seen.len(), 1 + 6 + 36 + 216 + 1296);
        for (a, b) in all.iter().zip(all.iter().skip(1)) {
            assert!(build(a) != build(b), "{a:?} against {b:?}");
        }
    }
}
