//! The messages and timers of the protocol. One enum each, shared by every actor, because
//! stateright's `ActorModel` (and the engine's transport) carry one message type.

use crate::config::Acks;
use crate::consumer::ReadRecord;
use crate::producer::Outcome;
use crate::types::{
    BrokerEpoch, BrokerId, BrokerSet, CorrelationId, Epoch, Offset, PartitionEpoch, ProducerId,
    Record, Sequence, Value,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Identifies a produce request within one producer, so a late answer to a request that timed
/// out is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u32);

/// A record as the producer sends it: the value and, when idempotent, its sequence number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProducerRecord {
    pub value: Value,
    pub sequence: Sequence,
}

/// Errors a broker returns, named as Kafka names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    NotLeaderOrFollower,
    LeaderNotAvailable,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    OutOfOrderSequenceNumber,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    OffsetOutOfRange,
    InvalidUpdateVersion,
    IneligibleReplica,
    /// Client side: no answer within `request.timeout.ms`. Indeterminate.
    RequestTimedOut,
    /// The leader refused a produce request larger than `message.max.bytes`. Not retriable:
    /// the records were not appended.
    MessageTooLarge,
    /// Client side: a record larger than `message.max.bytes` on its own, refused before it
    /// was sent. Not retriable.
    RecordTooLarge,
}

impl ErrorCode {
    /// Kafka's wire name, as logs and traces print it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            ErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::RecordTooLarge => "RECORD_TOO_LARGE",
        }
    }

    /// Whether the producer may retry (Kafka's `RetriableException`s).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::OutOfOrderSequenceNumber
                | ErrorCode::RequestTimedOut
        )
    }

    /// Whether the record may be in the log despite the error. `NOT_LEADER_OR_FOLLOWER` is
    /// one: a leader that steps down answers its appended, still-waiting requests with it (as
    /// Kafka completes delayed produces), and the client cannot tell those from refusals.
    pub fn is_indeterminate(self) -> bool {
        matches!(
            self,
            ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::RequestTimedOut
                | ErrorCode::NotLeaderOrFollower
        )
    }

    /// Whether the client should refresh its metadata (the leader moved).
    pub fn needs_metadata(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::RequestTimedOut
        )
    }
}

/// What a follower's fetch gets back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FetchResult {
    /// Records from the requested offset on, and the leader's high watermark.
    Records {
        base_offset: Offset,
        records: Arc<[Record]>,
        high_watermark: Offset,
    },
    /// The fetcher's log diverges: truncate to the end of this epoch (KIP-101/KIP-279/KIP-595).
    Diverging {
        epoch: Epoch,
        end_offset: Offset,
    },
    /// The fetch offset is past the leader's log end (legacy truncation): truncate to it.
    OutOfRange {
        log_end_offset: Offset,
    },
    Error(ErrorCode),
}

impl FetchResult {
    /// The error, if the fetch was refused.
    pub fn error(&self) -> Option<ErrorCode> {
        match self {
            FetchResult::Error(e) => Some(*e),
            _ => None,
        }
    }
}

/// A leader's answer to `OffsetsForLeaderEpoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EpochEndOffset {
    /// KIP-101 (version 0): only an offset. KIP-279 on: the largest epoch not newer than the
    /// asked one, and its end offset.
    Found { epoch: Epoch, end_offset: Offset },
    /// `UNDEFINED_EPOCH_OFFSET`: the leader knows no such epoch.
    Undefined,
}

/// The protocol's messages.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Msg {
    // ---- producer <-> leader
    Produce {
        request: RequestId,
        /// Set by an idempotent producer.
        producer: Option<ProducerId>,
        acks: Acks,
        records: Arc<[ProducerRecord]>,
    },
    ProduceResponse {
        request: RequestId,
        /// The base offset of the batch, or why it was refused.
        result: Result<Offset, ErrorCode>,
    },

    // ---- follower <-> leader
    Fetch {
        /// The fetcher's current leader epoch: a fetch across epochs is refused (KIP-320).
        leader_epoch: Epoch,
        fetch_offset: Offset,
        /// The epoch of the fetcher's last record, for the divergence check.
        last_fetched_epoch: Option<Epoch>,
        /// The fetcher's incarnation (its broker epoch, KIP-903): the leader passes it on
        /// when it proposes the fetcher for the ISR, so a fetch sent before a restart cannot
        /// bring the restarted broker back in.
        incarnation: BrokerEpoch,
    },
    FetchResponse {
        leader_epoch: Epoch,
        result: FetchResult,
    },

    // ---- follower <-> leader, before fetching (KIP-101, KIP-279, KIP-320)
    /// Where does `leader_epoch` (the epoch of the asker's last record) end in your log?
    OffsetsForLeaderEpoch {
        /// The asker's current leader epoch; the leader checks it only under KIP-320.
        current_leader_epoch: Epoch,
        leader_epoch: Epoch,
    },
    OffsetsForLeaderEpochResponse {
        /// The epoch that was asked about, so a late answer to an older question is known.
        asked: Epoch,
        /// The answering broker's current leader epoch.
        leader_epoch: Epoch,
        result: Result<EpochEndOffset, ErrorCode>,
    },

    // ---- consumer <-> leader
    ConsumerFetch {
        leader_epoch: Epoch,
        offset: Offset,
    },
    ConsumerFetchResponse {
        leader_epoch: Epoch,
        /// Committed records from the requested offset, or why not.
        result: Result<(Offset, Arc<[Record]>), ErrorCode>,
    },

    // ---- clients <-> controller (metadata)
    Metadata,
    MetadataResponse {
        leader: Option<BrokerId>,
        leader_epoch: Epoch,
    },

    // ---- clients <-> controller (producer ids)
    /// KIP-98 `InitProducerId`: a client asks the cluster for a producer id of its own. Ids are
    /// allocated by the controller, never chosen by a client, so two clients never share one.
    /// The engine only (its Kafka listener, and clients of a multi-process cluster); the
    /// model's producers keep the fixed ids the topology gives them (see
    /// [`crate::controller::ControllerState::next_producer_id`]).
    InitProducerId {
        request: RequestId,
    },
    InitProducerIdResponse {
        request: RequestId,
        producer: ProducerId,
    },

    // ---- leader <-> controller
    /// KIP-497: the leader asks to change the ISR, as a compare-and-set on `partition_epoch`.
    AlterPartition {
        leader_epoch: Epoch,
        partition_epoch: PartitionEpoch,
        isr: BrokerSet,
        /// The incarnation of each proposed member, as the leader last saw it fetch (KIP-903).
        incarnations: [BrokerEpoch; crate::types::REPLICAS_MAX],
    },
    AlterPartitionResponse {
        /// The request this answers: its leader epoch and proposed ISR (Kafka's leader
        /// ignores an answer to a proposal it no longer holds).
        leader_epoch: Epoch,
        proposed: BrokerSet,
        result: Result<PartitionState, (ErrorCode, PartitionState)>,
    },

    // ---- controller -> brokers
    /// The controller's partition state: brokers become leader or follower on it. Addressed to
    /// one incarnation of the broker, so a restarted broker ignores what was meant for the old
    /// one (KIP-380 broker epochs).
    LeaderAndIsr {
        partition: PartitionState,
        broker_incarnation: BrokerEpoch,
    },

    // ---- broker -> controller
    /// A broker (re)starts and registers with the controller, as a new incarnation.
    Register {
        incarnation: BrokerEpoch,
    },
    /// A broker's session heartbeat (the engine only: in the model the controller's session
    /// timer may fire at any moment anyway, so heartbeats would change nothing). It carries the
    /// newest leader epoch the broker has learned, so the controller can tell it again what a
    /// lost `LeaderAndIsr` said (KRaft brokers catch up on metadata through their heartbeats).
    Heartbeat {
        incarnation: BrokerEpoch,
        leader_epoch: Epoch,
    },

    // ---- application <-> clients (the engine's client API)
    /// Between the engine's application and its clients; never in the model checker's states.
    App(AppMsg),
}

/// The engine's client API: the application hands records to the producer and commits the
/// consumer's offsets, and the clients tell it what became of each send and what was read.
/// Not Kafka's protocol (a Kafka client is a library the application calls in-process), so
/// apart from it: the model's clients have no application and never send these. Kept as the
/// last variant of [`Msg`], so the other variants' discriminants, and so the model's state
/// hashes and counts, are what they were before it was split out.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AppMsg {
    /// The application hands the producer a record to send, named by an id of the
    /// application's choosing.
    Send { id: CorrelationId, value: Value },
    /// The producer tells the application what became of the records `ids` names, in batch
    /// order: all acknowledged from the outcome's offset on (the `i`-th at
    /// [`Outcome::of_record`]`(i)`), or all failed alike. One message per request, not per
    /// record. Named by the ids the application chose, so it needs no count of its own of
    /// what the producer took.
    SendResult {
        ids: Arc<[CorrelationId]>,
        outcome: Outcome,
    },
    /// The consumer hands the application records it read and processed.
    Delivered { records: Arc<[ReadRecord]> },
    /// The application commits the consumer's offset: records below `offset` are done.
    Commit { offset: Offset },
}

/// The controller's record of the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionState {
    /// `None` while the partition is offline (no eligible replica).
    pub leader: Option<BrokerId>,
    pub leader_epoch: Epoch,
    pub isr: BrokerSet,
    /// KIP-966 eligible leader replicas: out of the ISR, but holding everything below the
    /// high watermark, so electable cleanly. Empty without `--elr`.
    pub elr: BrokerSet,
    /// The ELR as it was before it last emptied (KIP-966 `LastKnownElr`).
    pub last_known_elr: BrokerSet,
    pub partition_epoch: PartitionEpoch,
}

/// Timers. In the model any set timer may fire at any moment; the engine draws a real duration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Controller: the broker's session expired (missed heartbeats), whether it crashed or is
    /// only slow. For the leader, one timer per broker that may succeed it (`None`: the
    /// partition goes offline), so that which one fires first is the election's choice.
    SessionExpired {
        broker: BrokerId,
        successor: Option<BrokerId>,
    },
    /// Controller (model only): an operator moves leadership to this ISR member
    /// (preferred-leader election, controlled shutdown of the leader).
    ElectLeader(BrokerId),
    /// Controller (model only): a broker fenced by a false suspicion heartbeats again. The
    /// engine's brokers send real heartbeats instead.
    HeartbeatResumed(BrokerId),
    /// Leader: `replica.lag.time.max.ms` elapsed while some ISR follower was behind.
    IsrLag,
    /// Broker with `flush=async`: the background flush.
    Flush,
    /// Follower: `replica.fetch.backoff.ms` after a fetch error.
    FetchBackoff,
    /// Producer: `request.timeout.ms` elapsed with requests in flight.
    RequestTimeout,
    /// Producer or consumer: `retry.backoff.ms` before asking for metadata again.
    MetadataBackoff,
    /// Producer or consumer (engine only): a `Metadata` request went unanswered this long, so
    /// the network lost it; ask again. Longer than any round trip to the controller, so a
    /// slow answer is not asked for twice.
    MetadataTimeout,
    /// Broker (engine only): send the next session heartbeat.
    Heartbeat,
    /// Consumer: the application finished the step between commit and processing.
    ConsumerStep,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trace lines and logs print errors by Kafka's wire names (`Errors.java`), which are the
    /// variants' names in upper snake case: `NotEnoughReplicasAfterAppend` is
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, as a Kafka user searching for it would type it.
    #[test]
    fn errors_print_as_kafka_names_them() {
        use ErrorCode::*;
        let all = [
            NotLeaderOrFollower,
            LeaderNotAvailable,
            NotEnoughReplicas,
            NotEnoughReplicasAfterAppend,
            OutOfOrderSequenceNumber,
            FencedLeaderEpoch,
            UnknownLeaderEpoch,
            OffsetOutOfRange,
            InvalidUpdateVersion,
            IneligibleReplica,
            RequestTimedOut,
            MessageTooLarge,
            RecordTooLarge,
        ];
        for e in all {
            let mut snake = String::new();
            for (i, c) in format!("{e:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_uppercase());
            }
            assert_eq!(e.name(), snake);
        }
        assert_eq!(NotEnoughReplicas.name(), "NOT_ENOUGH_REPLICAS");
    }
}
