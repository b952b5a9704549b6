//! Newtypes for the quantities of the replication protocol, so that an offset can never be
//! passed where an epoch is expected, and a set of brokers is a value, not a `Vec`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Most replicas a partition may have (`replication.factor`); the model uses bit sets of this size.
pub const REPLICAS_MAX: usize = 5;

/// A broker's index in the replica assignment, `0..replicas`. The assignment order is also the
/// order in which the controller prefers leaders, as Kafka's does.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct BrokerId(pub u8);

impl BrokerId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broker {}", self.0)
    }
}

/// A position in the partition's log. The log end offset is the offset the next record gets.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).expect("offset fits in memory")
    }

    pub fn from_usize(n: usize) -> Offset {
        Offset(n as u64)
    }

    #[must_use]
    pub fn plus(self, n: usize) -> Offset {
        Offset(self.0 + n as u64)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A leader epoch: bumped by the controller at every leader election. Every record carries the
/// epoch it was appended in, and every fetch carries the fetcher's epoch (KIP-101, KIP-320).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch of the leader the partition is created with.
    pub const INITIAL: Epoch = Epoch(1);

    #[must_use]
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The version of the controller's partition state (leader, epoch, ISR): every change bumps it,
/// and an ISR change from the leader is a compare-and-set on it (KIP-497 `AlterPartition`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct PartitionEpoch(pub u32);

impl PartitionEpoch {
    #[must_use]
    pub fn next(self) -> PartitionEpoch {
        PartitionEpoch(self.0 + 1)
    }
}

/// A broker's incarnation: Kafka's broker epoch (KIP-380). 0 before the first registration;
/// every start after a crash saves and registers the next one, so the controller and the
/// leader can tell a restarted broker's requests from its old incarnation's (KIP-380 for
/// `LeaderAndIsr`, KIP-903 for ISR additions). Serialized as the bare number (the engine's
/// state files and frames are unchanged), and hashed as it (state counts are unchanged).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct BrokerEpoch(pub u32);

impl BrokerEpoch {
    /// The incarnation of a broker that never registered.
    pub const NONE: BrokerEpoch = BrokerEpoch(0);

    /// The incarnation after a restart.
    #[must_use]
    pub fn next(self) -> BrokerEpoch {
        BrokerEpoch(self.0 + 1)
    }
}

impl std::fmt::Display for BrokerEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A producer's identity for idempotence (`enable.idempotence`); the leader keeps, per producer
/// id, the last sequence number it appended, to drop duplicates and refuse gaps.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ProducerId(pub u32);

/// The application's name for one record it hands a producer (the engine's client API,
/// [`crate::msg::AppMsg`]): the producer keeps it next to the record and names the record by
/// it when it tells the outcome. Chosen by the application, not counted by the producer, so
/// the two never have to agree on how many records went before (they drifted apart once,
/// when a send the producer never took was counted anyway). Unique among the records one
/// application has waiting; the model's producers have no application and no ids.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct CorrelationId(pub u64);

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A set of brokers (the ISR, the fenced brokers), as a bit set over broker indices.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct BrokerSet(u8);

impl BrokerSet {
    pub const EMPTY: BrokerSet = BrokerSet(0);

    /// Every broker of a partition with `replicas` replicas.
    pub fn all(replicas: usize) -> BrokerSet {
        assert!(replicas <= REPLICAS_MAX, "at most {REPLICAS_MAX} replicas");
        BrokerSet(((1u16 << replicas) - 1) as u8)
    }

    pub fn single(b: BrokerId) -> BrokerSet {
        BrokerSet(1 << b.0)
    }

    pub fn contains(self, b: BrokerId) -> bool {
        self.0 & (1 << b.0) != 0
    }

    #[must_use]
    pub fn with(self, b: BrokerId) -> BrokerSet {
        BrokerSet(self.0 | (1 << b.0))
    }

    #[must_use]
    pub fn without(self, b: BrokerId) -> BrokerSet {
        BrokerSet(self.0 & !(1 << b.0))
    }

    #[must_use]
    pub fn union(self, other: BrokerSet) -> BrokerSet {
        BrokerSet(self.0 | other.0)
    }

    #[must_use]
    pub fn intersect(self, other: BrokerSet) -> BrokerSet {
        BrokerSet(self.0 & other.0)
    }

    #[must_use]
    pub fn minus(self, other: BrokerSet) -> BrokerSet {
        BrokerSet(self.0 & !other.0)
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Members in assignment order.
    pub fn iter(self) -> impl Iterator<Item = BrokerId> {
        (0..REPLICAS_MAX as u8)
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(BrokerId)
    }
}

impl fmt::Display for BrokerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, b) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{}", b.0)?;
        }
        write!(f, "}}")
    }
}

/// One record of the partition: the application's value, the leader epoch it was appended in,
/// and, from an idempotent producer, its producer id and sequence number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Record {
    pub value: Value,
    pub leader_epoch: Epoch,
    pub producer: Option<(ProducerId, Sequence)>,
}

/// A record's payload. The model's producer sends values `v1, v2, ...` in order; the engine sends
/// arbitrary bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// The n-th record of the model's producer (1-based), so traces read `v1`, `v2`.
    Numbered(u32),
    /// Application bytes (the real engine), shared so that fetches do not copy payloads.
    Bytes(std::sync::Arc<[u8]>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Numbered(n) => write!(f, "v{n}"),
            Value::Bytes(b) => write!(f, "{}B", b.len()),
        }
    }
}

/// A producer's per-record sequence number (idempotence).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Sequence(pub u32);

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[u8]) -> BrokerSet {
        members
            .iter()
            .fold(BrokerSet::EMPTY, |s, &b| s.with(BrokerId(b)))
    }

    /// The ISR, ELR and fenced-broker arithmetic of the controller and the leader: each
    /// operation is the set operation on broker indices, and `all` is exactly the replicas
    /// `0..replicas`, up to `REPLICAS_MAX`.
    #[test]
    fn broker_sets_are_sets_of_broker_indices() {
        assert_eq!(BrokerSet::all(0), BrokerSet::EMPTY);
        assert_eq!(BrokerSet::all(3), set(&[0, 1, 2]));
        assert_eq!(BrokerSet::all(REPLICAS_MAX).len(), REPLICAS_MAX);
        assert_eq!(BrokerSet::single(BrokerId(2)), set(&[2]));

        let isr = set(&[0, 2]);
        assert!(isr.contains(BrokerId(0)) && isr.contains(BrokerId(2)));
        assert!(!isr.contains(BrokerId(1)) && !isr.contains(BrokerId(4)));
        assert!(!BrokerSet::EMPTY.contains(BrokerId(0)));
        assert_eq!(
            isr.with(BrokerId(2)),
            isr,
            "adding a member changes nothing"
        );
        assert_eq!(isr.with(BrokerId(4)), set(&[0, 2, 4]));
        assert_eq!(isr.without(BrokerId(0)), set(&[2]));
        assert_eq!(
            isr.without(BrokerId(1)),
            isr,
            "removing a non-member changes nothing"
        );

        let other = set(&[1, 2]);
        assert_eq!(isr.union(other), set(&[0, 1, 2]));
        assert_eq!(isr.intersect(other), set(&[2]));
        assert_eq!(isr.minus(other), set(&[0]));
        assert_eq!(other.minus(isr), set(&[1]));

        assert_eq!(isr.len(), 2);
        assert_eq!(BrokerSet::EMPTY.len(), 0);
        assert!(BrokerSet::EMPTY.is_empty());
        assert!(!set(&[0]).is_empty() && !set(&[4]).is_empty());
    }

    /// Members come out in assignment order, which is the controller's order of preference
    /// for leaders (Kafka elects the first eligible replica of the assignment).
    #[test]
    fn members_iterate_in_assignment_order() {
        let members: Vec<BrokerId> = set(&[4, 1, 3]).iter().collect();
        assert_eq!(members, [1, 3, 4].map(BrokerId));
        assert_eq!(BrokerSet::EMPTY.iter().count(), 0);
        assert_eq!(BrokerSet::all(REPLICAS_MAX).iter().count(), REPLICAS_MAX);
    }

    /// The words of trace lines, counterexamples and history reports: `broker 1`, sets as
    /// `{0,2}` (`isr={0,2}`), values as `v1` or their size in bytes, and offsets, epochs,
    /// incarnations and correlation ids as bare numbers.
    #[test]
    fn quantities_print_as_trace_lines_show_them() {
        assert_eq!(BrokerId(1).to_string(), "broker 1");
        assert_eq!(set(&[0, 2]).to_string(), "{0,2}");
        assert_eq!(set(&[3]).to_string(), "{3}");
        assert_eq!(BrokerSet::all(3).to_string(), "{0,1,2}");
        assert_eq!(BrokerSet::EMPTY.to_string(), "{}");
        assert_eq!(Value::Numbered(3).to_string(), "v3");
        assert_eq!(Value::Bytes(vec![0; 16].into()).to_string(), "16B");
        assert_eq!(Offset(7).to_string(), "7");
        assert_eq!(Epoch(4).to_string(), "4");
        assert_eq!(BrokerEpoch(2).to_string(), "2");
        assert_eq!(CorrelationId(12).to_string(), "12");
    }

    /// Every counter steps by exactly one: leader epochs at each election, partition epochs at
    /// each change, incarnations at each restart; the model's bounds count these steps.
    #[test]
    fn epochs_and_incarnations_step_by_one() {
        assert_eq!(Epoch::INITIAL.next(), Epoch(2));
        assert_eq!(Epoch(2).next(), Epoch(3));
        assert_eq!(PartitionEpoch(0).next(), PartitionEpoch(1));
        assert_eq!(PartitionEpoch(2).next(), PartitionEpoch(3));
        assert_eq!(BrokerEpoch::NONE.next(), BrokerEpoch(1));
        assert_eq!(BrokerEpoch(2).next(), BrokerEpoch(3));
    }

    /// Offsets index the log: `plus` moves past appended records, and the conversions to and
    /// from `usize` keep the number.
    #[test]
    fn offsets_count_records() {
        assert_eq!(Offset(3).plus(2), Offset(5));
        assert_eq!(Offset::ZERO.plus(0), Offset::ZERO);
        assert_eq!(Offset(3).as_usize(), 3);
        assert_eq!(Offset::from_usize(4), Offset(4));
        assert_eq!(BrokerId(3).index(), 3);
    }
}
