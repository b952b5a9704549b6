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

    /// The set with broker indices renamed by `map` (old index -> new index).
    #[must_use]
    pub fn permuted(self, map: &[BrokerId]) -> BrokerSet {
        self.iter()
            .fold(BrokerSet::EMPTY, |set, b| set.with(map[b.index()]))
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
