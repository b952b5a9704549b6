//! The partition log, as a persistent vector: cloning a broker's state (the checker does it at
//! every step) and saving the log to storage share structure instead of copying records.
//!
//! Records are appended with non-decreasing leader epochs (a leader appends only in its own
//! epoch, and epochs only grow), so the leader-epoch cache of KIP-101 is derived by binary search
//! instead of being kept beside the log.

use crate::types::{Epoch, Offset, Record};
use rpds::VectorSync;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Log {
    records: VectorSync<Record>,
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
            assert!(
                last.leader_epoch <= record.leader_epoch,
                "leader epochs in a log never decrease: {} after {}",
                record.leader_epoch,
                last.leader_epoch
            );
        }
        self.records.push_back_mut(record);
    }

    /// Drops every record at or after `offset`.
    pub fn truncate(&mut self, offset: Offset) {
        while self.records.len() > offset.as_usize() {
            self.records.drop_last_mut();
        }
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

    /// The epoch of the last record, which a follower sends as `last_fetched_epoch`.
    pub fn last_epoch(&self) -> Option<Epoch> {
        self.records.last().map(|r| r.leader_epoch)
    }

    /// The end offset of `epoch` in this log: the first offset whose record has a larger epoch.
    fn end_offset_of_epoch(&self, epoch: Epoch) -> Offset {
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
        let found = self.records[end.as_usize() - 1].leader_epoch;
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
}
