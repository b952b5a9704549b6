//! A broker hosting one replica of the partition: leader or follower, as the controller says.
//!
//! The rules it encodes, in Kafka's terms:
//! - A leader appends produce requests in its own `leader_epoch`, serves fetches, tracks each
//!   follower's log end offset, and advances the high watermark to the smallest log end offset
//!   over the ISR (the "maximal" ISR while an `AlterPartition` is pending, KIP-497). Only records
//!   below the high watermark are committed, and only those are served to consumers.
//! - Every fetch carries the fetcher's leader epoch and is refused across epochs (KIP-320), so a
//!   stale leader or a zombie follower is fenced by the first fetch that crosses it.
//! - A follower truncates a divergent suffix before it appends: to the end offset of the last
//!   common leader epoch (KIP-101/KIP-279, carried in the fetch as KIP-595 does), or, with the
//!   legacy rule, to its local high watermark on every become-follower.
//! - A leader drops from the ISR a follower that stayed behind its log end for
//!   `replica.lag.time.max.ms`, and re-adds one that caught up to the high watermark and to the
//!   start of the current epoch.
//! - `flush=always` saves every append before it is acknowledged or replicated; `flush=async`
//!   saves only when the flush timer fires, so a crash loses the unflushed suffix.
//!
//! Handlers take plain data in and emit commands (send, set timer, save) into `Out`; they never
//! touch a clock, a socket or a disk.

use crate::config::{Acks, Config, Flush, Guard};
use crate::limits::{fetch_end, produce_fits, record_bytes};
use crate::log::Log;
use crate::msg::{
    EpochEndOffset, ErrorCode, FetchResult, Msg, PartitionState, ProducerRecord, RequestId, Timer,
};
use crate::node::{timer_range, ActorParams, Node, NodeStorage, Topology};
use crate::rules::{self, JoinRules, SequenceCheck, TruncationCause};
use crate::types::{
    BrokerEpoch, BrokerId, BrokerSet, Epoch, Offset, PartitionEpoch, ProducerId, Record,
    REPLICAS_MAX,
};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};
use std::sync::Arc;

/// A broker actor: its identity and settings. Its state is [`BrokerState`].
#[derive(Clone, Debug)]
pub struct Broker {
    pub id: BrokerId,
    pub topology: Topology,
    /// The partition's configuration (`min.insync.replicas`, the truncation rung, the
    /// high-watermark rule, the flush policy, a removed guard).
    pub config: Config,
    /// How the host runs it: the engine's timers and limits, the model's ghost state.
    pub params: ActorParams,
}

/// What survives a crash: the flushed log, the high-watermark checkpoint, and the incarnation
/// (which the controller uses as Kafka's broker epoch, KIP-380).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BrokerStorage {
    pub incarnation: BrokerEpoch,
    pub log: Log,
    /// Kafka checkpoints the high watermark lazily; this is the value at the last save.
    pub high_watermark: Offset,
    /// Ghost (model only, never read by the protocol): what this broker ever committed as
    /// leader, kept across crashes so `committed-durable` can ask who still holds it.
    pub committed_ghost: Log,
}

/// A broker's volatile state.
///
/// Invariant: `high_watermark <= log.log_end_offset()` and `flushed <= log.log_end_offset()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BrokerState {
    pub id: BrokerId,
    pub incarnation: BrokerEpoch,
    pub log: Log,
    /// Records `[0, flushed)` are on disk.
    pub flushed: Offset,
    pub high_watermark: Offset,
    /// The newest leader epoch this broker has learned.
    pub leader_epoch: Epoch,
    pub role: Role,
    /// The high watermark as last checkpointed to disk.
    pub hw_checkpoint: Offset,
    /// Ghost (model only): see [`BrokerStorage::committed_ghost`].
    pub committed_ghost: Log,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Leader(LeaderState),
    /// Following `leader` (none while the partition is offline or after a restart, until the
    /// controller says).
    Follower {
        leader: Option<BrokerId>,
        /// Asking the leader where its epochs end before fetching (KIP-101, KIP-279, KIP-320).
        truncating: bool,
    },
}

/// What only the leader tracks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaderState {
    /// The ISR as last confirmed by the controller.
    pub isr: BrokerSet,
    pub partition_epoch: PartitionEpoch,
    /// The ISR asked for in an `AlterPartition` that has not been answered (at most one).
    pub pending_isr: Option<BrokerSet>,
    /// Replicas the controller refused to add (fenced); not proposed again until it says more.
    pub ineligible: BrokerSet,
    /// What the leader knows of each follower (its own slot unused).
    pub followers: [Progress; REPLICAS_MAX],
    /// Consumer fetches held until the high watermark passes their offset.
    pub parked_consumers: Vec<(Id, Offset)>,
    /// `acks=all` produce requests waiting for the high watermark.
    pub pending_produce: Vec<PendingProduce>,
    /// Whether the lag timer is armed (mirrors the timer, so adds no states).
    pub lag_armed: bool,
}

/// What a leader knows of one follower, from the follower's fetches: Kafka's per-replica
/// state in `Partition` (`Replica`: log end offset, broker epoch, `lastCaughtUpTime`), etcd
/// raft's `Progress`. One place, so that a rule about a follower reads one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Progress {
    /// Its log end offset, from its last fetch.
    pub end: Offset,
    /// Its incarnation (broker epoch), from its last fetch (KIP-903).
    pub incarnation: BrokerEpoch,
    /// Its fetch is held until there is something new (Kafka's delayed fetch).
    pub parked: bool,
    /// Precise lag rule only: the leader's log end when it last sent the follower records.
    pub sent_end: Offset,
    /// Precise lag rule only: it fetched up to `sent_end` since the lag timer was armed
    /// (Kafka's `lastCaughtUpTime` is newer than the timer).
    pub caught_up: bool,
}

impl Progress {
    /// A follower the leader has not heard from.
    pub const UNKNOWN: Progress = Progress {
        end: Offset::ZERO,
        incarnation: BrokerEpoch::NONE,
        parked: false,
        sent_end: Offset::ZERO,
        caught_up: false,
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingProduce {
    pub client: Id,
    pub request: RequestId,
    pub base_offset: Offset,
    /// One past the batch's last offset: the high watermark that commits it.
    pub end_offset: Offset,
}

impl LeaderState {
    fn new(partition: &PartitionState) -> LeaderState {
        LeaderState {
            isr: partition.isr,
            partition_epoch: partition.partition_epoch,
            pending_isr: None,
            ineligible: BrokerSet::EMPTY,
            followers: [Progress::UNKNOWN; REPLICAS_MAX],
            parked_consumers: Vec::new(),
            pending_produce: Vec::new(),
            lag_armed: false,
        }
    }

    /// Each follower's log end offset.
    pub fn follower_ends(&self) -> [Offset; REPLICAS_MAX] {
        self.followers.map(|p| p.end)
    }

    /// Each follower's incarnation, as its fetches said.
    pub fn follower_incarnations(&self) -> [BrokerEpoch; REPLICAS_MAX] {
        self.followers.map(|p| p.incarnation)
    }

    /// The followers for which `flag` holds, clearing it for each.
    fn take(&mut self, flag: fn(&mut Progress) -> &mut bool) -> BrokerSet {
        let mut set = BrokerSet::EMPTY;
        for (i, p) in self.followers.iter_mut().enumerate() {
            if std::mem::take(flag(p)) {
                set = set.with(BrokerId(i as u8));
            }
        }
        set
    }

    /// The followers whose fetch is parked, no longer parked.
    fn take_parked(&mut self) -> BrokerSet {
        self.take(|p| &mut p.parked)
    }

    /// The followers that caught up since the lag timer was armed, forgotten.
    fn take_caught_up(&mut self) -> BrokerSet {
        self.take(|p| &mut p.caught_up)
    }

    /// KIP-497's maximal ISR: the confirmed ISR plus any member a pending change would add, so
    /// the high watermark never counts on a shrink the controller has not accepted.
    pub fn maximal_isr(&self) -> BrokerSet {
        self.isr.union(self.pending_isr.unwrap_or(BrokerSet::EMPTY))
    }
}

impl BrokerState {
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    pub fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(l) => Some(l),
            Role::Follower { .. } => None,
        }
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// What every broker step keeps true (checked after each step in debug builds, by
    /// `Node`): the high watermark and the flushed offset never pass the log end.
    pub fn assert_invariants(&self) {
        debug_assert!(
            self.high_watermark <= self.log.log_end_offset(),
            "hw past log end: {self:?}"
        );
        debug_assert!(
            self.flushed <= self.log.log_end_offset(),
            "flushed past log end: {self:?}"
        );
    }
}

type O = Out<Node>;

impl Broker {
    /// A fresh broker joins the initial partition state; a restarted one recovers its flushed
    /// log, registers as a new incarnation and waits for the controller.
    pub fn on_start(
        &self,
        storage: Option<&BrokerStorage>,
        initial: &PartitionState,
        o: &mut O,
    ) -> BrokerState {
        let mut state = match storage {
            None => BrokerState {
                id: self.id,
                incarnation: BrokerEpoch::NONE,
                log: Log::new(),
                flushed: Offset::ZERO,
                high_watermark: Offset::ZERO,
                leader_epoch: initial.leader_epoch,
                role: if initial.leader == Some(self.id) {
                    Role::Leader(LeaderState::new(initial))
                } else {
                    // A new replica has nothing to truncate.
                    Role::Follower {
                        leader: initial.leader,
                        truncating: false,
                    }
                },
                hw_checkpoint: Offset::ZERO,
                committed_ghost: Log::new(),
            },
            Some(stored) => {
                let end = stored.log.log_end_offset();
                BrokerState {
                    id: self.id,
                    incarnation: stored.incarnation.next(),
                    log: stored.log.clone(),
                    flushed: end,
                    high_watermark: stored.high_watermark.min(end),
                    // What the log itself proves; the controller tells the rest.
                    leader_epoch: stored.log.last_epoch().unwrap_or_default(),
                    role: Role::Follower {
                        leader: None,
                        truncating: false,
                    },
                    hw_checkpoint: stored.high_watermark.min(end),
                    committed_ghost: stored.committed_ghost.clone(),
                }
            }
        };
        self.persist(&mut state, o);
        if storage.is_some() {
            o.send(
                self.topology.controller(),
                Msg::Register {
                    incarnation: state.incarnation,
                },
            );
        } else if let Role::Follower {
            leader: Some(_), ..
        } = state.role
        {
            self.send_fetch(&state, o);
        }
        if self.params.heartbeats {
            o.set_timer(Timer::Heartbeat, timer_range(Timer::Heartbeat));
        }
        self.maybe_arm_timers(&mut state, o);
        state
    }

    pub fn on_msg(&self, state: &mut BrokerState, src: Id, msg: Msg, o: &mut O) {
        match msg {
            Msg::LeaderAndIsr {
                partition,
                broker_incarnation,
            } => self.on_leader_and_isr(state, partition, broker_incarnation, o),
            Msg::Produce {
                request,
                producer,
                acks,
                records,
            } => self.on_produce(state, src, request, producer, acks, &records, o),
            Msg::Fetch {
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                incarnation,
            } => {
                if let Some(follower) = self.topology.broker_of(src) {
                    self.on_fetch(
                        state,
                        (follower, incarnation),
                        leader_epoch,
                        fetch_offset,
                        last_fetched_epoch,
                        o,
                    );
                }
            }
            Msg::FetchResponse {
                leader_epoch,
                result,
            } => self.on_fetch_response(state, src, leader_epoch, result, o),
            Msg::OffsetsForLeaderEpoch {
                current_leader_epoch,
                leader_epoch,
            } => {
                self.on_offsets_for_leader_epoch(state, src, current_leader_epoch, leader_epoch, o)
            }
            Msg::OffsetsForLeaderEpochResponse {
                asked,
                leader_epoch,
                result,
            } => self.on_offsets_for_leader_epoch_response(
                state,
                src,
                asked,
                leader_epoch,
                result,
                o,
            ),
            Msg::ConsumerFetch {
                leader_epoch,
                offset,
            } => self.on_consumer_fetch(state, src, leader_epoch, offset, o),
            Msg::AlterPartitionResponse {
                leader_epoch,
                proposed,
                result,
            } => self.on_alter_partition_response(state, leader_epoch, proposed, result, o),
            // Requests for the controller or answers for clients: not a broker's business.
            Msg::ProduceResponse { .. }
            | Msg::ConsumerFetchResponse { .. }
            | Msg::Metadata
            | Msg::MetadataResponse { .. }
            | Msg::InitProducerId { .. }
            | Msg::InitProducerIdResponse { .. }
            | Msg::AlterPartition { .. }
            | Msg::Register { .. }
            | Msg::Heartbeat { .. }
            | Msg::App(_) => {}
        }
        self.maybe_arm_timers(state, o);
    }

    pub fn on_timeout(&self, state: &mut BrokerState, timer: &Timer, o: &mut O) {
        match timer {
            Timer::IsrLag => self.on_isr_lag(state, o),
            Timer::Flush => {
                state.flushed = state.log.log_end_offset();
                self.persist(state, o);
            }
            // After a refused fetch, or a lost one (the engine): ask again.
            Timer::FetchBackoff | Timer::RequestTimeout => self.resume_following(state, o),
            Timer::Heartbeat => {
                o.send(
                    self.topology.controller(),
                    Msg::Heartbeat {
                        incarnation: state.incarnation,
                        leader_epoch: state.leader_epoch,
                    },
                );
                o.set_timer(Timer::Heartbeat, timer_range(Timer::Heartbeat));
            }
            Timer::SessionExpired { .. }
            | Timer::ElectLeader(_)
            | Timer::HeartbeatResumed(_)
            | Timer::MetadataBackoff
            | Timer::MetadataTimeout
            | Timer::ConsumerStep => {}
        }
        self.maybe_arm_timers(state, o);
    }

    // ------------------------------------------------------------------ role changes

    fn on_leader_and_isr(
        &self,
        state: &mut BrokerState,
        partition: PartitionState,
        broker_incarnation: BrokerEpoch,
        o: &mut O,
    ) {
        if self.ignore_leader_and_isr(state, &partition, broker_incarnation) {
            return;
        }
        let me = self.id;
        if partition.leader_epoch == state.leader_epoch {
            match &mut state.role {
                Role::Leader(leader) if partition.leader == Some(me) => {
                    // Same epoch, same leader: an ISR change the controller made, or news that
                    // a fenced replica registered again.
                    leader.ineligible = BrokerSet::EMPTY;
                    if partition.partition_epoch > leader.partition_epoch {
                        leader.isr = partition.isr;
                        leader.partition_epoch = partition.partition_epoch;
                    }
                    self.maybe_advance_high_watermark(state, o);
                    return;
                }
                Role::Follower { leader, .. } if *leader == partition.leader => return,
                _ => {}
            }
        }
        state.leader_epoch = partition.leader_epoch;
        if partition.leader == Some(me) {
            self.become_leader(state, &partition, o);
        } else {
            self.become_follower(state, partition.leader, o);
        }
    }

    /// A `LeaderAndIsr` for an older epoch, or addressed to an earlier incarnation of this
    /// broker (KIP-380 broker epochs), would move it backwards.
    fn ignore_leader_and_isr(
        &self,
        state: &BrokerState,
        partition: &PartitionState,
        broker_incarnation: BrokerEpoch,
    ) -> bool {
        (broker_incarnation != state.incarnation && self.config.guards(Guard::Incarnation))
            || (partition.leader_epoch < state.leader_epoch
                && self.config.guards(Guard::LeaderAndIsrEpoch))
    }

    fn become_leader(&self, state: &mut BrokerState, partition: &PartitionState, o: &mut O) {
        state.role = Role::Leader(LeaderState::new(partition));
        o.cancel_timer(Timer::FetchBackoff);
        // A lone leader commits what it has at once.
        self.maybe_advance_high_watermark(state, o);
    }

    fn become_follower(&self, state: &mut BrokerState, leader: Option<BrokerId>, o: &mut O) {
        if let Role::Leader(old) = &state.role {
            // Requests this leader can no longer complete are told so, as Kafka answers a
            // delayed produce or fetch when the partition moves.
            for p in &old.pending_produce {
                o.send(
                    p.client,
                    Msg::ProduceResponse {
                        request: p.request,
                        result: Err(ErrorCode::NotLeaderOrFollower),
                    },
                );
            }
            for (consumer, _) in &old.parked_consumers {
                o.send(
                    *consumer,
                    Msg::ConsumerFetchResponse {
                        leader_epoch: state.leader_epoch,
                        result: Err(ErrorCode::NotLeaderOrFollower),
                    },
                );
            }
        }
        let following = leader.filter(|&l| l != self.id);
        state.role = Role::Follower {
            leader,
            truncating: following.is_some()
                && self.config.truncation.asks_epoch_end_offset()
                && !state.log.is_empty(),
        };
        // Before 0.11: anything past the local high watermark may be divergent.
        let (offset, _) = self.truncation_offset(state, TruncationCause::BecameFollower);
        self.truncate(state, offset, o);
        if following.is_some() {
            self.resume_following(state, o);
        }
    }

    /// Sends what a follower sends next: the epoch question while it is truncating, else a
    /// fetch.
    fn resume_following(&self, state: &BrokerState, o: &mut O) {
        match state.role {
            Role::Follower {
                leader: Some(leader),
                truncating: true,
            } => {
                let Some(last) = state.log.last_epoch() else {
                    return;
                };
                o.send(
                    self.topology.broker(leader),
                    Msg::OffsetsForLeaderEpoch {
                        current_leader_epoch: state.leader_epoch,
                        leader_epoch: last,
                    },
                );
            }
            Role::Follower {
                leader: Some(_),
                truncating: false,
            } => self.send_fetch(state, o),
            _ => {}
        }
    }

    // ------------------------------------------------------------------ produce

    #[allow(clippy::too_many_arguments)]
    fn on_produce(
        &self,
        state: &mut BrokerState,
        client: Id,
        request: RequestId,
        producer: Option<ProducerId>,
        acks: Acks,
        records: &[ProducerRecord],
        o: &mut O,
    ) {
        let reply = |o: &mut O, result| {
            if acks != Acks::Zero {
                o.send(client, Msg::ProduceResponse { request, result });
            }
        };
        let Role::Leader(leader) = &state.role else {
            return reply(o, Err(ErrorCode::NotLeaderOrFollower));
        };
        if records.is_empty() {
            return;
        }
        if acks == Acks::All
            && !rules::enough_in_sync(leader.isr, self.config.min_insync)
            && self.config.guards(Guard::NotEnoughReplicas)
        {
            return reply(o, Err(ErrorCode::NotEnoughReplicas));
        }
        if !produce_fits(
            records.iter().map(|r| record_bytes(&r.value)),
            self.params.limits.message_bytes_max,
        ) {
            return reply(o, Err(ErrorCode::MessageTooLarge));
        }
        let count = records.len();
        let base_offset = match producer {
            Some(pid) => match rules::check_batch(&state.log, pid, records[0].sequence, count) {
                SequenceCheck::Next => None,
                SequenceCheck::Duplicate(original) => Some(original),
                SequenceCheck::OutOfOrder => {
                    return reply(o, Err(ErrorCode::OutOfOrderSequenceNumber))
                }
            },
            None => None,
        };
        let base_offset = match base_offset {
            // A retry of a batch already in the log: answer with the original offsets.
            Some(original) => original,
            None => {
                let base = state.log.log_end_offset();
                for r in records {
                    state.log.append(Record {
                        value: r.value.clone(),
                        leader_epoch: state.leader_epoch,
                        producer: producer.map(|pid| (pid, r.sequence)),
                    });
                }
                if self.config.flush == Flush::Always {
                    state.flushed = state.log.log_end_offset();
                    self.persist(state, o);
                }
                base
            }
        };
        match acks {
            Acks::Zero => {}
            Acks::One => reply(o, Ok(base_offset)),
            Acks::All => {
                if let Role::Leader(leader) = &mut state.role {
                    leader.pending_produce.push(PendingProduce {
                        client,
                        request,
                        base_offset,
                        end_offset: base_offset.plus(count),
                    });
                }
            }
        }
        // A retry of a batch that is committed already is answered at once, as Kafka's
        // delayed produce completes on arrival when the high watermark is past it (it used
        // to wait for the next advance, which might never come).
        self.complete_committed_produces(state, o);
        self.maybe_advance_high_watermark(state, o);
        self.wake_parked_fetches(state, o);
    }

    // ------------------------------------------------------------------ replication, leader side

    #[allow(clippy::too_many_arguments)]
    fn on_fetch(
        &self,
        state: &mut BrokerState,
        (follower, incarnation): (BrokerId, BrokerEpoch),
        leader_epoch: Epoch,
        fetch_offset: Offset,
        last_fetched_epoch: Option<Epoch>,
        o: &mut O,
    ) {
        let to = self.topology.broker(follower);
        let respond = |o: &mut O, epoch: Epoch, result| {
            o.send(
                to,
                Msg::FetchResponse {
                    leader_epoch: epoch,
                    result,
                },
            )
        };
        if let Some(error) = self.ignore_replica_fetch(state, leader_epoch) {
            return respond(o, leader_epoch, FetchResult::Error(error));
        }
        // Divergence check (KIP-320's first try, KIP-595): the follower's last epoch must end
        // where the follower thinks. Older rungs send no epoch and are not checked.
        let last_fetched_epoch =
            last_fetched_epoch.filter(|_| self.config.truncation.checks_divergence_in_fetch());
        if let Some(last_epoch) = last_fetched_epoch {
            let (epoch, end_offset) = state
                .log
                .end_offset_for(last_epoch, state.is_leader().then_some(state.leader_epoch))
                .unwrap_or((last_epoch, Offset::ZERO));
            if epoch != last_epoch || end_offset < fetch_offset {
                return respond(
                    o,
                    state.leader_epoch,
                    FetchResult::Diverging { epoch, end_offset },
                );
            }
        }
        if fetch_offset > state.log.log_end_offset() {
            return respond(
                o,
                state.leader_epoch,
                FetchResult::OutOfRange {
                    log_end_offset: state.log.log_end_offset(),
                },
            );
        }
        if let Role::Leader(leader) = &mut state.role {
            let progress = &mut leader.followers[follower.index()];
            progress.end = fetch_offset;
            progress.incarnation = incarnation;
            progress.parked = false;
            if self.params.track_catch_up && fetch_offset >= progress.sent_end {
                progress.caught_up = true;
            }
        }
        self.maybe_expand_isr(state, follower, o);
        self.maybe_advance_high_watermark(state, o);
        self.maybe_answer_follower(state, follower, o);
    }

    /// A follower's fetch. Since KIP-320 it is fenced by epoch like a consumer's; before, any
    /// broker that believes it leads serves it, whatever epoch the follower is in.
    fn ignore_replica_fetch(&self, state: &BrokerState, leader_epoch: Epoch) -> Option<ErrorCode> {
        if self.config.truncation.fences_fetches() && self.config.guards(Guard::FetchEpochFencing) {
            self.ignore_fetch(state, leader_epoch)
        } else if !state.is_leader() {
            Some(ErrorCode::NotLeaderOrFollower)
        } else {
            None
        }
    }

    /// Fetches are fenced by epoch (KIP-320): an older epoch is a zombie follower, a newer one
    /// means this broker has not yet heard of the election.
    fn ignore_fetch(&self, state: &BrokerState, leader_epoch: Epoch) -> Option<ErrorCode> {
        if leader_epoch < state.leader_epoch {
            Some(ErrorCode::FencedLeaderEpoch)
        } else if leader_epoch > state.leader_epoch {
            Some(ErrorCode::UnknownLeaderEpoch)
        } else if !state.is_leader() {
            Some(ErrorCode::NotLeaderOrFollower)
        } else {
            None
        }
    }

    /// Answers a follower's fetch if there are records or a newer high watermark for it;
    /// otherwise parks it, as Kafka's delayed fetch waits for `fetch.min.bytes`.
    fn maybe_answer_follower(&self, state: &mut BrokerState, follower: BrokerId, o: &mut O) {
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let progress = &mut leader.followers[follower.index()];
        let from = progress.end;
        let end = state.log.log_end_offset();
        // Kafka's delayed fetch completes on new bytes; a newer high watermark alone waits for
        // `replica.fetch.wait.max.ms`, which we do not model: a follower learns the high
        // watermark with the next records. Its HW lags, which only weakens `log-matching` and
        // makes the legacy truncation rule lose more, never hides a loss.
        if from >= end {
            progress.parked = true;
            return;
        }
        let upto = fetch_end(
            &state.log,
            from,
            end,
            self.params.fetch_records_max,
            self.params.limits.replica_fetch_bytes_max,
        );
        let records: Arc<[Record]> = state.log.slice(from, upto).into();
        if self.params.track_catch_up {
            progress.sent_end = end;
        }
        o.send(
            self.topology.broker(follower),
            Msg::FetchResponse {
                leader_epoch: state.leader_epoch,
                result: FetchResult::Records {
                    base_offset: from,
                    records,
                    high_watermark: state.high_watermark,
                },
            },
        );
    }

    fn wake_parked_fetches(&self, state: &mut BrokerState, o: &mut O) {
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let parked = leader.take_parked();
        let consumers = std::mem::take(&mut leader.parked_consumers);
        for follower in parked.iter() {
            self.maybe_answer_follower(state, follower, o);
        }
        for (consumer, offset) in consumers {
            self.answer_consumer(state, consumer, offset, o);
        }
    }

    fn maybe_expand_isr(&self, state: &mut BrokerState, follower: BrokerId, o: &mut O) {
        let epoch_start = state.log.start_offset_of_epoch(state.leader_epoch);
        let hw = state.high_watermark;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let join = JoinRules {
            high_watermark: self.config.guards(Guard::IsrJoinHighWatermark),
            epoch_start: self.config.truncation.isr_join_needs_epoch_start()
                && self.config.guards(Guard::IsrJoinEpochStart),
        };
        let end = leader.followers[follower.index()].end;
        let eligible = !leader.isr.contains(follower)
            && !leader.ineligible.contains(follower)
            && leader.pending_isr.is_none()
            && rules::caught_up_to_join(join, end, hw, epoch_start);
        if eligible {
            let proposed = leader.isr.with(follower);
            self.send_alter_partition(state.leader_epoch, leader, proposed, o);
        }
    }

    fn on_isr_lag(&self, state: &mut BrokerState, o: &mut O) {
        let end = state.log.log_end_offset();
        let me = self.id;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        leader.lag_armed = false;
        if leader.pending_isr.is_some() {
            return;
        }
        let caught_up = leader.take_caught_up();
        let lagging =
            rules::lagging_followers(leader.isr, me, end, &leader.follower_ends(), caught_up);
        if !lagging.is_empty() {
            let proposed = leader.isr.minus(lagging);
            self.send_alter_partition(state.leader_epoch, leader, proposed, o);
        }
    }

    fn send_alter_partition(
        &self,
        leader_epoch: Epoch,
        leader: &mut LeaderState,
        isr: BrokerSet,
        o: &mut O,
    ) {
        leader.pending_isr = Some(isr);
        o.send(
            self.topology.controller(),
            Msg::AlterPartition {
                leader_epoch,
                partition_epoch: leader.partition_epoch,
                isr,
                incarnations: leader.follower_incarnations(),
            },
        );
    }

    fn on_alter_partition_response(
        &self,
        state: &mut BrokerState,
        request_epoch: Epoch,
        proposed: BrokerSet,
        result: Result<PartitionState, (ErrorCode, PartitionState)>,
        o: &mut O,
    ) {
        let me = self.id;
        let epoch = state.leader_epoch;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        if self.ignore_alter_partition_response(leader, epoch, request_epoch, proposed) {
            return;
        }
        leader.pending_isr = None;
        let partition = match result {
            Ok(partition) => partition,
            Err((error, partition)) => {
                if error == ErrorCode::IneligibleReplica {
                    leader.ineligible = leader.ineligible.union(proposed.minus(leader.isr));
                }
                partition
            }
        };
        if partition.leader == Some(me)
            && partition.leader_epoch == epoch
            && partition.partition_epoch > leader.partition_epoch
        {
            leader.isr = partition.isr;
            leader.partition_epoch = partition.partition_epoch;
        }
        self.maybe_advance_high_watermark(state, o);
    }

    /// An answer to a proposal this leader no longer holds: one sent in an earlier epoch (a
    /// leader deposed and elected again), or none pending. Taking it for the pending one
    /// would drop a pending addition from the maximal ISR while that addition can still
    /// land, and commit past the added replica (found by the checker once leadership could
    /// move away and back; Kafka's `Partition` ignores such answers the same way).
    fn ignore_alter_partition_response(
        &self,
        leader: &LeaderState,
        epoch: Epoch,
        request_epoch: Epoch,
        proposed: BrokerSet,
    ) -> bool {
        request_epoch != epoch || leader.pending_isr != Some(proposed)
    }

    /// Advances the high watermark to the smallest log end offset over the (maximal) ISR, then
    /// completes what that commits: `acks=all` requests and held fetches.
    fn maybe_advance_high_watermark(&self, state: &mut BrokerState, o: &mut O) {
        let me = self.id;
        let end = state.log.log_end_offset();
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let counted = if self.config.guards(Guard::MaximalIsr) {
            leader.maximal_isr()
        } else {
            leader.isr
        };
        let Some(candidate) = rules::high_watermark(
            self.config.hw_rule,
            self.config.min_insync,
            leader.isr,
            counted,
            me,
            end,
            &leader.follower_ends(),
        ) else {
            return;
        };
        if candidate <= state.high_watermark {
            return;
        }
        state.high_watermark = candidate;
        if self.params.explore && candidate > state.committed_ghost.log_end_offset() {
            let mut committed = state.log.clone();
            committed.truncate(candidate);
            state.committed_ghost = committed;
            self.save(state, state.hw_checkpoint, o);
        }
        self.complete_committed_produces(state, o);
        self.wake_parked_fetches(state, o);
    }

    /// Answers the `acks=all` requests the high watermark has passed, checking
    /// `min.insync.replicas` again as Kafka does once the records are committed.
    fn complete_committed_produces(&self, state: &mut BrokerState, o: &mut O) {
        let hw = state.high_watermark;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        if leader.pending_produce.iter().all(|p| p.end_offset > hw) {
            return;
        }
        let enough = rules::enough_in_sync(leader.isr, self.config.min_insync)
            || !self.config.guards(Guard::NotEnoughReplicasAfterAppend);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut leader.pending_produce)
            .into_iter()
            .partition(|p| p.end_offset <= hw);
        leader.pending_produce = waiting;
        for p in done {
            // Kafka checks min.insync.replicas again once the record is committed.
            let result = if enough {
                Ok(p.base_offset)
            } else {
                Err(ErrorCode::NotEnoughReplicasAfterAppend)
            };
            o.send(
                p.client,
                Msg::ProduceResponse {
                    request: p.request,
                    result,
                },
            );
        }
    }

    // ------------------------------------------------------------------ replication, follower side

    fn send_fetch(&self, state: &BrokerState, o: &mut O) {
        let Role::Follower {
            leader: Some(leader),
            truncating: false,
        } = state.role
        else {
            return;
        };
        let last_fetched_epoch = if self.config.truncation.checks_divergence_in_fetch() {
            state.log.last_epoch()
        } else {
            None
        };
        o.send(
            self.topology.broker(leader),
            Msg::Fetch {
                leader_epoch: state.leader_epoch,
                fetch_offset: state.log.log_end_offset(),
                last_fetched_epoch,
                incarnation: state.incarnation,
            },
        );
        if self.params.request_timeouts {
            // A fresh deadline for this fetch.
            o.cancel_timer(Timer::RequestTimeout);
            o.set_timer(Timer::RequestTimeout, timer_range(Timer::RequestTimeout));
        }
    }

    fn on_fetch_response(
        &self,
        state: &mut BrokerState,
        src: Id,
        leader_epoch: Epoch,
        result: FetchResult,
        o: &mut O,
    ) {
        if self.ignore_fetch_response(state, src, leader_epoch) {
            return;
        }
        match result {
            FetchResult::Records {
                base_offset,
                records,
                high_watermark,
            } => {
                if base_offset != state.log.log_end_offset() {
                    return; // An answer to a fetch from before a truncation.
                }
                for r in records.iter() {
                    state.log.append(r.clone());
                }
                let leader_hw = high_watermark.min(state.log.log_end_offset());
                state.high_watermark = state.high_watermark.max(leader_hw);
                if self.config.flush == Flush::Always && !records.is_empty() {
                    state.flushed = state.log.log_end_offset();
                    self.persist(state, o);
                }
            }
            FetchResult::Diverging { epoch, end_offset } => {
                // Truncate; a next fetch with the new last epoch asks again if need be.
                let cause = TruncationCause::Diverging { epoch, end_offset };
                let (offset, _) = self.truncation_offset(state, cause);
                self.truncate(state, offset, o);
            }
            FetchResult::OutOfRange { log_end_offset } => {
                let cause = TruncationCause::OutOfRange { log_end_offset };
                let (offset, _) = self.truncation_offset(state, cause);
                self.truncate(state, offset, o);
            }
            FetchResult::Error(ErrorCode::FencedLeaderEpoch) => {
                return; // The controller's LeaderAndIsr is on its way.
            }
            FetchResult::Error(_) => {
                o.set_timer(Timer::FetchBackoff, timer_range(Timer::FetchBackoff));
                return;
            }
        }
        self.send_fetch(state, o);
    }

    /// Only answers from the leader this broker follows count, and only once it is done
    /// truncating; since KIP-320 only answers in its current epoch.
    fn ignore_fetch_response(&self, state: &BrokerState, src: Id, leader_epoch: Epoch) -> bool {
        let Role::Follower {
            leader: Some(leader),
            truncating: false,
        } = state.role
        else {
            return true;
        };
        src != self.topology.broker(leader)
            || (self.config.truncation.fences_fetches()
                && self.config.guards(Guard::FetchResponseFencing)
                && leader_epoch != state.leader_epoch)
    }

    // ------------------------------------------------------------------ OffsetsForLeaderEpoch

    /// Leader side of `OffsetsForLeaderEpoch`: where `asked` ends in this log, in the words of
    /// the rung: KIP-101's offset-only answer, or KIP-279's (epoch, end offset). Fenced by the
    /// asker's current epoch only under KIP-320.
    fn on_offsets_for_leader_epoch(
        &self,
        state: &mut BrokerState,
        src: Id,
        current_leader_epoch: Epoch,
        asked: Epoch,
        o: &mut O,
    ) {
        let result = match self.ignore_replica_fetch(state, current_leader_epoch) {
            Some(error) => Err(error),
            None => Ok(rules::epoch_end_offset(
                self.config.truncation,
                &state.log,
                asked,
                state.is_leader().then_some(state.leader_epoch),
            )),
        };
        o.send(
            src,
            Msg::OffsetsForLeaderEpochResponse {
                asked,
                leader_epoch: state.leader_epoch,
                result,
            },
        );
    }

    /// Where this follower truncates on `cause`, by its rung ([`rules::truncation_offset`]).
    fn truncation_offset(&self, state: &BrokerState, cause: TruncationCause) -> (Offset, bool) {
        rules::truncation_offset(
            self.config.truncation,
            &state.log,
            state.high_watermark,
            cause,
        )
    }

    /// Follower side: truncate where the answer says; under KIP-279 and KIP-320, ask again
    /// while the answer names an epoch this log does not have (Kafka 2.0's
    /// `truncationCompleted = false`); then start fetching.
    fn on_offsets_for_leader_epoch_response(
        &self,
        state: &mut BrokerState,
        src: Id,
        asked: Epoch,
        leader_epoch: Epoch,
        result: Result<EpochEndOffset, ErrorCode>,
        o: &mut O,
    ) {
        if self.ignore_epoch_answer(state, src, asked, leader_epoch) {
            return;
        }
        let answer = match result {
            Ok(answer) => answer,
            // The controller's LeaderAndIsr is on its way.
            Err(ErrorCode::FencedLeaderEpoch) => return,
            Err(_) => {
                o.set_timer(Timer::FetchBackoff, timer_range(Timer::FetchBackoff));
                return;
            }
        };
        let (offset, done) = self.truncation_offset(state, TruncationCause::EpochAnswer(answer));
        self.truncate(state, offset, o);
        let done = done || state.log.is_empty();
        if let Role::Follower { truncating, .. } = &mut state.role {
            *truncating = !done;
        }
        self.resume_following(state, o);
    }

    /// Only an answer from the leader this broker follows, to the question it is asking now
    /// (about its current last epoch), counts; since KIP-320 only one in its current epoch.
    fn ignore_epoch_answer(
        &self,
        state: &BrokerState,
        src: Id,
        asked: Epoch,
        leader_epoch: Epoch,
    ) -> bool {
        let Role::Follower {
            leader: Some(leader),
            truncating: true,
        } = state.role
        else {
            return true;
        };
        src != self.topology.broker(leader)
            || state.log.last_epoch() != Some(asked)
            || (self.config.truncation.fences_fetches() && leader_epoch != state.leader_epoch)
    }

    // ------------------------------------------------------------------ stale messages

    /// Whether this broker, in `state`, ignores `msg` whenever it arrives from now on: its
    /// delivery changes nothing and sends only answers that are themselves ignored forever.
    /// The checker drops such a message at once instead of exploring when it arrives
    /// (`InsyncModel::drop_stale`), which removes states without removing behaviours: see
    /// there for the argument, and `tests/reductions.rs` for the test that the reachable
    /// states are exactly the full model's with these messages taken out.
    ///
    /// `may_restart`: whether this broker may still start again within the bounds. A restart
    /// reloads its leader epoch from its log's last epoch, which can be older than the one it
    /// knew. The rules on answers hold across a restart: a restarted broker acts on an answer
    /// only once it leads or follows again, which takes a `LeaderAndIsr` addressed to its new
    /// incarnation, sent after the restart in the controller's epoch then, and the
    /// controller's epoch never falls below any broker's. `sender_epoch`: the leader epoch
    /// the sending broker is in now, if a broker sent `msg`. Every rule assumes all of the
    /// protocol's guards (the checker turns the reduction off for a `--without-guard` mutant).
    pub fn ignores_forever(
        &self,
        state: &BrokerState,
        msg: &Msg,
        may_restart: bool,
        sender_epoch: Option<Epoch>,
    ) -> bool {
        let fenced = Some(ErrorCode::FencedLeaderEpoch);
        let fences = self.config.truncation.fences_fetches();
        let guards = |g| self.config.guards(g);
        match msg {
            // `on_fetch_response` and `on_offsets_for_leader_epoch_response` do nothing with
            // `FENCED_LEADER_EPOCH`, whatever the state (the controller's `LeaderAndIsr` is on
            // its way).
            Msg::FetchResponse { result, .. } if result.error() == fenced => true,
            Msg::OffsetsForLeaderEpochResponse { result, .. } if result.err() == fenced => true,
            // Since KIP-320 a follower takes an answer only in the epoch it is in
            // (`ignore_fetch_response`, `ignore_epoch_answer`), and its epoch only grows until
            // a restart.
            Msg::FetchResponse { leader_epoch, .. } => {
                fences && guards(Guard::FetchResponseFencing) && *leader_epoch < state.leader_epoch
            }
            Msg::OffsetsForLeaderEpochResponse { leader_epoch, .. } => {
                fences && *leader_epoch < state.leader_epoch
            }
            // A leader takes an answer to an `AlterPartition` only in the epoch it was sent in
            // (`ignore_alter_partition_response`).
            Msg::AlterPartitionResponse { leader_epoch, .. } => *leader_epoch < state.leader_epoch,
            // Addressed to an earlier incarnation (`ignore_leader_and_isr`); incarnations only
            // grow.
            Msg::LeaderAndIsr {
                broker_incarnation, ..
            } => guards(Guard::Incarnation) && *broker_incarnation < state.incarnation,
            // Since KIP-320 a request in an older epoch is answered `FENCED_LEADER_EPOCH`
            // (`ignore_replica_fetch`), which the asker ignores (above), and changes nothing
            // here. After a restart this broker's epoch may be older, and then it answers
            // with another error, which changes nothing here either, in the request's epoch,
            // as every answer to a fenced request is: stale at an asker that has left that
            // epoch (above). It never leads that epoch again (a restarted broker leads only
            // in the controller's epoch, which is past it). So: while no restart can come, or
            // once the asker has moved on.
            Msg::Fetch { leader_epoch, .. }
            | Msg::OffsetsForLeaderEpoch {
                current_leader_epoch: leader_epoch,
                ..
            } => {
                let asker_moved_on = sender_epoch.is_some_and(|e| *leader_epoch < e);
                fences
                    && guards(Guard::FetchEpochFencing)
                    && *leader_epoch < state.leader_epoch
                    && (!may_restart || asker_moved_on)
            }
            _ => false,
        }
    }

    fn truncate(&self, state: &mut BrokerState, offset: Offset, o: &mut O) {
        if offset >= state.log.log_end_offset() {
            return;
        }
        state.log.truncate(offset);
        state.high_watermark = state.high_watermark.min(offset);
        state.flushed = state.flushed.min(offset);
        // Truncation rewrites the segment on disk at once in Kafka.
        self.persist(state, o);
    }

    // ------------------------------------------------------------------ consumers

    fn on_consumer_fetch(
        &self,
        state: &mut BrokerState,
        consumer: Id,
        leader_epoch: Epoch,
        offset: Offset,
        o: &mut O,
    ) {
        if let Some(error) = self.ignore_fetch(state, leader_epoch) {
            o.send(
                consumer,
                Msg::ConsumerFetchResponse {
                    leader_epoch,
                    result: Err(error),
                },
            );
            return;
        }
        if offset > state.log.log_end_offset() {
            o.send(
                consumer,
                Msg::ConsumerFetchResponse {
                    leader_epoch,
                    result: Err(ErrorCode::OffsetOutOfRange),
                },
            );
            return;
        }
        self.answer_consumer(state, consumer, offset, o);
    }

    /// Serves committed records only: `[offset, high_watermark)`; holds the fetch if none.
    fn answer_consumer(&self, state: &mut BrokerState, consumer: Id, offset: Offset, o: &mut O) {
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        if offset >= state.high_watermark {
            // A consumer waits on one fetch at a time (Kafka serves a connection's requests
            // in order): a newer fetch replaces the one it held, so what is parked is bounded
            // by the consumers, however often an idle one asks again.
            leader.parked_consumers.retain(|(c, _)| *c != consumer);
            leader.parked_consumers.push((consumer, offset));
            return;
        }
        let upto = fetch_end(
            &state.log,
            offset,
            state.high_watermark,
            self.params.fetch_records_max,
            self.params.limits.fetch_bytes_max,
        );
        o.send(
            consumer,
            Msg::ConsumerFetchResponse {
                leader_epoch: state.leader_epoch,
                result: Ok((offset, state.log.slice(offset, upto).into())),
            },
        );
    }

    // ------------------------------------------------------------------ timers and storage

    /// Arms only the timers that could matter now, so the model checker does not explore a
    /// timer that would change nothing: the lag check while an ISR follower is behind and no
    /// ISR change is pending, the flush while something is unflushed. Without the checker's
    /// reductions (`--no-reductions`) both run for as long as Kafka runs them (the lag check
    /// while the broker leads, the flush always), and a firing with nothing to do changes
    /// nothing; `tests/reductions.rs` checks that the verdicts are the same both ways.
    fn maybe_arm_timers(&self, state: &mut BrokerState, o: &mut O) {
        let end = state.log.log_end_offset();
        let me = self.id;
        match &mut state.role {
            Role::Leader(leader) => {
                let lagging = leader.pending_isr.is_none()
                    && leader
                        .isr
                        .iter()
                        .any(|b| b != me && leader.followers[b.index()].end < end);
                if lagging && !leader.lag_armed {
                    leader.lag_armed = true;
                    let _forgotten = leader.take_caught_up();
                    o.set_timer(Timer::IsrLag, timer_range(Timer::IsrLag));
                } else if !lagging && leader.lag_armed {
                    leader.lag_armed = false;
                    o.cancel_timer(Timer::IsrLag);
                }
                if !self.config.reductions && !leader.lag_armed {
                    o.set_timer(Timer::IsrLag, timer_range(Timer::IsrLag));
                }
            }
            Role::Follower { .. } => o.cancel_timer(Timer::IsrLag),
        }
        if self.config.flush == Flush::Async {
            if state.flushed < end || !self.config.reductions {
                o.set_timer(Timer::Flush, timer_range(Timer::Flush));
            } else {
                o.cancel_timer(Timer::Flush);
            }
        }
    }

    /// Saves what is on disk: the flushed prefix of the log and the high-watermark checkpoint.
    fn persist(&self, state: &mut BrokerState, o: &mut O) {
        let checkpoint = state.high_watermark.min(state.flushed);
        state.hw_checkpoint = checkpoint;
        self.save(state, checkpoint, o);
    }

    fn save(&self, state: &BrokerState, hw_checkpoint: Offset, o: &mut O) {
        let mut log = state.log.clone();
        log.truncate(state.flushed);
        o.save(NodeStorage::Broker(BrokerStorage {
            incarnation: state.incarnation,
            log,
            high_watermark: hw_checkpoint,
            committed_ghost: state.committed_ghost.clone(),
        }));
    }
}

/// A broker's rules, one handler call at a time: the leader's commit, fencing and ISR
/// rules, the follower's append and truncation, and the idempotent producer's check.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HwRule, Truncation};
    use crate::controller::Controller;
    use crate::limits::SizeLimits;
    use crate::testkit::{sent, sets};
    use crate::types::Sequence;
    use crate::types::Value;
    use stateright::actor::Command;

    const CTL: usize = 3;
    const PROD: usize = 4;
    const CONS: usize = 5;

    /// The configuration the tests start from: `insync check`'s defaults (min.insync 2, today's
    /// truncation, the ISR high-watermark rule, flush always).
    fn config() -> Config {
        Config::default()
    }

    /// The model checker's parameters, with fetches of at most 10 records.
    fn params() -> ActorParams {
        ActorParams {
            fetch_records_max: 10,
            ..ActorParams::model(&Config::default().validate().expect("valid"))
        }
    }

    fn broker_on(id: u8, config: Config, params: ActorParams) -> Broker {
        Broker {
            id: BrokerId(id),
            topology: Topology {
                replicas: 3,
                producers: 1,
                consumer: true,
            },
            config,
            params,
        }
    }

    fn broker_with(id: u8, config: Config) -> Broker {
        broker_on(id, config, params())
    }

    fn broker(id: u8) -> Broker {
        broker_with(id, config())
    }

    fn start(b: &Broker) -> (BrokerState, O) {
        let mut o = O::new();
        let state = b.on_start(None, &Controller::initial_partition(3), &mut o);
        (state, o)
    }

    fn rec(value: u32, epoch: u32) -> Record {
        Record {
            value: Value::Numbered(value),
            leader_epoch: Epoch(epoch),
            producer: None,
        }
    }

    fn log(records: &[(u32, u32)]) -> Log {
        let mut log = Log::new();
        for &(v, e) in records {
            log.append(rec(v, e));
        }
        log
    }

    fn saves(o: &O) -> Vec<BrokerStorage> {
        o.iter()
            .filter_map(|c| match c {
                Command::Save(NodeStorage::Broker(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    fn produce(value: u32) -> Msg {
        Msg::Produce {
            request: RequestId(value),
            producer: None,
            acks: Acks::All,
            records: vec![ProducerRecord {
                value: Value::Numbered(value),
                sequence: Sequence(0),
            }]
            .into(),
        }
    }

    fn idempotent(request: u32, sequences: &[u32], acks: Acks) -> Msg {
        Msg::Produce {
            request: RequestId(request),
            producer: Some(ProducerId(7)),
            acks,
            records: sequences
                .iter()
                .map(|&s| ProducerRecord {
                    value: Value::Numbered(s + 1),
                    sequence: Sequence(s),
                })
                .collect::<Vec<_>>()
                .into(),
        }
    }

    fn fetch(epoch: u32, offset: u64, last: Option<u32>) -> Msg {
        Msg::Fetch {
            leader_epoch: Epoch(epoch),
            fetch_offset: Offset(offset),
            last_fetched_epoch: last.map(Epoch),
            incarnation: BrokerEpoch(0),
        }
    }

    fn deliver(b: &Broker, state: &mut BrokerState, from: usize, msg: Msg) -> O {
        let mut o = O::new();
        b.on_msg(state, Id::from(from), msg, &mut o);
        state.assert_invariants();
        o
    }

    fn leader(state: &mut BrokerState) -> &mut LeaderState {
        match &mut state.role {
            Role::Leader(l) => l,
            Role::Follower { .. } => panic!("a leader"),
        }
    }

    fn records(rs: &[(u32, u32)]) -> Arc<[Record]> {
        rs.iter()
            .map(|&(v, e)| rec(v, e))
            .collect::<Vec<_>>()
            .into()
    }

    fn set(ids: &[u8]) -> BrokerSet {
        ids.iter()
            .fold(BrokerSet::EMPTY, |s, &b| s.with(BrokerId(b)))
    }

    #[test]
    fn a_fresh_follower_fetches_from_the_initial_leader() {
        let (state, o) = start(&broker(1));
        assert!(!state.is_leader());
        assert_eq!(state.leader_epoch, Epoch(1));
        assert_eq!(sent(&o), vec![(0, fetch(1, 0, None))]);
        let (state, o) = start(&broker(0));
        assert!(state.is_leader());
        assert_eq!(leader_state_isr(&state), set(&[0, 1, 2]));
        assert!(sent(&o).is_empty());
    }

    fn leader_state_isr(state: &BrokerState) -> BrokerSet {
        state.leader_state().expect("leads").isr
    }

    fn leader_and_isr(leader: u8, epoch: u32, isr: &[u8], partition_epoch: u32) -> Msg {
        Msg::LeaderAndIsr {
            partition: PartitionState {
                leader: Some(BrokerId(leader)),
                leader_epoch: Epoch(epoch),
                isr: set(isr),
                elr: BrokerSet::EMPTY,
                last_known_elr: BrokerSet::EMPTY,
                partition_epoch: PartitionEpoch(partition_epoch),
            },
            broker_incarnation: BrokerEpoch(0),
        }
    }

    /// KIP-497: the controller shrinks the ISR in the leader's epoch (a follower's session
    /// expired) and tells the leader, which adopts the newer partition epoch's ISR and commits
    /// without the removed follower; an older partition epoch's ISR is not taken back.
    #[test]
    fn a_leader_adopts_an_isr_shrink_the_controller_made_in_its_epoch() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        deliver(&b, &mut state, PROD, produce(1));
        deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
        assert_eq!(state.high_watermark, Offset(0), "broker 2 has nothing");
        let o = deliver(&b, &mut state, CTL, leader_and_isr(0, 1, &[0, 1], 1));
        assert_eq!(leader_state_isr(&state), set(&[0, 1]));
        assert_eq!(state.high_watermark, Offset(1));
        assert!(sent(&o).contains(&(
            PROD,
            Msg::ProduceResponse {
                request: RequestId(1),
                result: Ok(Offset(0))
            }
        )));
        let o = deliver(&b, &mut state, CTL, leader_and_isr(0, 1, &[0, 1, 2], 0));
        assert_eq!(leader_state_isr(&state), set(&[0, 1]), "an older change");
        assert!(sent(&o).is_empty());
    }

    /// A restarted follower's log proves the epoch it ends in; the controller's
    /// `LeaderAndIsr` for that same epoch still tells it whom to follow, and it fetches.
    #[test]
    fn a_restarted_follower_told_the_leader_of_its_last_epoch_fetches_from_it() {
        let b = broker(1);
        let stored = BrokerStorage {
            incarnation: BrokerEpoch(0),
            log: log(&[(1, 1)]),
            high_watermark: Offset(1),
            committed_ghost: Log::new(),
        };
        let mut state = b.on_start(
            Some(&stored),
            &Controller::initial_partition(3),
            &mut O::new(),
        );
        assert_eq!(state.leader_epoch, Epoch(1));
        let mut told = leader_and_isr(0, 1, &[0, 2], 1);
        if let Msg::LeaderAndIsr {
            broker_incarnation, ..
        } = &mut told
        {
            *broker_incarnation = BrokerEpoch(1);
        }
        let o = deliver(&b, &mut state, CTL, told);
        assert_eq!(
            sent(&o),
            vec![(
                0,
                Msg::Fetch {
                    leader_epoch: Epoch(1),
                    fetch_offset: Offset(1),
                    last_fetched_epoch: Some(Epoch(1)),
                    incarnation: BrokerEpoch(1),
                }
            )]
        );
    }

    /// A follower the controller elects leader in a new epoch leads: it takes produce
    /// requests, appends them in its epoch, and as the ISR's only member commits them at once.
    #[test]
    fn a_follower_elected_leader_takes_produce_requests_in_its_epoch() {
        let b = broker_with(
            1,
            Config {
                min_insync: 1,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        deliver(&b, &mut state, CTL, leader_and_isr(1, 2, &[1], 2));
        assert!(state.is_leader());
        assert_eq!(state.leader_epoch, Epoch(2));
        assert_eq!(leader_state_isr(&state), set(&[1]));
        let o = deliver(&b, &mut state, PROD, produce(1));
        assert_eq!(state.log, log(&[(1, 2)]));
        assert_eq!(state.high_watermark, Offset(1));
        assert!(sent(&o).contains(&(
            PROD,
            Msg::ProduceResponse {
                request: RequestId(1),
                result: Ok(Offset(0))
            }
        )));
    }

    /// A `LeaderAndIsr` that repeats the epoch and leader a follower already follows changes
    /// nothing: no second fetch, no truncation restarted.
    #[test]
    fn a_follower_told_again_whom_it_follows_does_nothing() {
        let b = broker(1);
        let (mut state, _) = start(&b);
        let before = state.clone();
        let o = deliver(&b, &mut state, CTL, leader_and_isr(0, 1, &[0, 1, 2], 0));
        assert_eq!(state, before);
        assert!(sent(&o).is_empty());
    }

    /// A follower's log end offset is where its next fetch starts.
    #[test]
    fn a_followers_log_end_offset_is_where_it_fetches_next() {
        let b = broker(1);
        let (mut state, _) = start(&b);
        assert_eq!(state.log_end_offset(), Offset(0));
        let o = deliver(
            &b,
            &mut state,
            0,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::Records {
                    base_offset: Offset(0),
                    records: records(&[(1, 1), (2, 1)]),
                    high_watermark: Offset(0),
                },
            },
        );
        assert_eq!(state.log_end_offset(), Offset(2));
        assert_eq!(sent(&o), vec![(0, fetch(1, 2, Some(1)))]);
    }

    #[test]
    fn a_restarted_broker_recovers_its_disk_and_registers() {
        let b = broker(1);
        let stored = BrokerStorage {
            incarnation: BrokerEpoch(2),
            log: log(&[(1, 1), (2, 3)]),
            high_watermark: Offset(5),
            committed_ghost: log(&[(1, 1)]),
        };
        let mut o = O::new();
        let state = b.on_start(Some(&stored), &Controller::initial_partition(3), &mut o);
        assert_eq!(state.incarnation, BrokerEpoch(3));
        assert_eq!(state.log, stored.log);
        assert_eq!(state.flushed, Offset(2));
        assert_eq!(state.high_watermark, Offset(2), "clamped to the log");
        assert_eq!(state.hw_checkpoint, Offset(2));
        assert_eq!(state.leader_epoch, Epoch(3));
        assert_eq!(state.committed_ghost, stored.committed_ghost);
        assert_eq!(
            state.role,
            Role::Follower {
                leader: None,
                truncating: false
            }
        );
        assert_eq!(
            sent(&o),
            vec![(
                CTL,
                Msg::Register {
                    incarnation: BrokerEpoch(3)
                }
            )]
        );
        assert_eq!(saves(&o)[0].incarnation, BrokerEpoch(3));
    }

    /// acks=all: answered once the high watermark, the smallest log end over the ISR, passes
    /// the record; each follower's fetch offset is its log end.
    #[test]
    fn the_leader_commits_at_the_smallest_isr_log_end() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        let o = deliver(&b, &mut state, PROD, produce(1));
        assert!(sent(&o).is_empty(), "waits for the ISR");
        assert_eq!(
            saves(&o).last().map(|s| s.log.clone()),
            Some(log(&[(1, 1)])),
            "flushed"
        );
        deliver(&b, &mut state, PROD, produce(2));
        assert_eq!(state.log, log(&[(1, 1), (2, 1)]));
        let o = deliver(&b, &mut state, 1, fetch(1, 0, None));
        assert_eq!(
            sent(&o),
            vec![(
                1,
                Msg::FetchResponse {
                    leader_epoch: Epoch(1),
                    result: FetchResult::Records {
                        base_offset: Offset(0),
                        records: records(&[(1, 1), (2, 1)]),
                        high_watermark: Offset(0)
                    }
                }
            )]
        );
        let o = deliver(&b, &mut state, 1, fetch(1, 2, Some(1)));
        assert_eq!(state.high_watermark, Offset(0), "broker 2 has nothing");
        assert!(sent(&o).is_empty(), "parked: nothing new");
        assert!(leader(&mut state).followers[1].parked);
        let o = deliver(&b, &mut state, 2, fetch(1, 1, Some(1)));
        assert_eq!(state.high_watermark, Offset(1));
        assert_eq!(state.committed_ghost, log(&[(1, 1)]));
        let msgs = sent(&o);
        assert!(msgs.contains(&(
            PROD,
            Msg::ProduceResponse {
                request: RequestId(1),
                result: Ok(Offset(0))
            }
        )));
        assert!(!msgs.iter().any(|(_, m)| matches!(
            m,
            Msg::ProduceResponse {
                request: RequestId(2),
                ..
            }
        )));
        assert!(msgs.contains(&(
            2,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::Records {
                    base_offset: Offset(1),
                    records: records(&[(2, 1)]),
                    high_watermark: Offset(1)
                }
            }
        )));
        let o = deliver(&b, &mut state, 2, fetch(1, 2, Some(1)));
        assert_eq!(state.high_watermark, Offset(2));
        assert!(sent(&o).contains(&(
            PROD,
            Msg::ProduceResponse {
                request: RequestId(2),
                result: Ok(Offset(1))
            }
        )));
        assert!(leader(&mut state).pending_produce.is_empty());
    }

    #[test]
    fn acks_1_is_answered_on_append_and_acks_0_never() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        let one = |v, acks| Msg::Produce {
            request: RequestId(v),
            producer: None,
            acks,
            records: vec![ProducerRecord {
                value: Value::Numbered(v),
                sequence: Sequence(0),
            }]
            .into(),
        };
        let o = deliver(&b, &mut state, PROD, one(1, Acks::One));
        assert_eq!(
            sent(&o),
            vec![(
                PROD,
                Msg::ProduceResponse {
                    request: RequestId(1),
                    result: Ok(Offset(0))
                }
            )]
        );
        let o = deliver(&b, &mut state, PROD, one(2, Acks::Zero));
        assert!(sent(&o).is_empty());
        assert_eq!(state.log, log(&[(1, 1), (2, 1)]));
        // A follower refuses, but not to acks=0.
        let f = broker(1);
        let (mut fs, _) = start(&f);
        let o = deliver(&f, &mut fs, PROD, one(1, Acks::One));
        assert_eq!(
            sent(&o),
            vec![(
                PROD,
                Msg::ProduceResponse {
                    request: RequestId(1),
                    result: Err(ErrorCode::NotLeaderOrFollower)
                }
            )]
        );
        assert!(sent(&deliver(&f, &mut fs, PROD, one(1, Acks::Zero))).is_empty());
        assert!(fs.log.is_empty());
    }

    #[test]
    fn acks_all_is_refused_below_min_insync_unless_the_guard_is_removed() {
        for (guard, refused) in [(None, true), (Some(Guard::NotEnoughReplicas), false)] {
            let b = broker_with(
                0,
                Config {
                    without_guard: guard,
                    ..config()
                },
            );
            let (mut state, _) = start(&b);
            leader(&mut state).isr = set(&[0]);
            let o = deliver(&b, &mut state, PROD, produce(1));
            let refusal = (
                PROD,
                Msg::ProduceResponse {
                    request: RequestId(1),
                    result: Err(ErrorCode::NotEnoughReplicas),
                },
            );
            assert_eq!(sent(&o).contains(&refusal), refused, "{guard:?}");
            assert_eq!(state.log.is_empty(), refused);
        }
        // At min.insync exactly: accepted; a lone leader commits at once, answered with
        // NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below min.insync by then.
        let b = broker(0);
        let (mut state, _) = start(&b);
        leader(&mut state).isr = set(&[0, 1]);
        deliver(&b, &mut state, PROD, produce(1));
        assert_eq!(state.log.log_end_offset(), Offset(1));
        leader(&mut state).isr = set(&[0]);
        let partition = PartitionState {
            isr: set(&[0]),
            partition_epoch: PartitionEpoch(1),
            ..Controller::initial_partition(3)
        };
        let o = deliver(
            &b,
            &mut state,
            CTL,
            Msg::LeaderAndIsr {
                partition,
                broker_incarnation: BrokerEpoch(0),
            },
        );
        assert_eq!(state.high_watermark, Offset(1));
        assert!(sent(&o).contains(&(
            PROD,
            Msg::ProduceResponse {
                request: RequestId(1),
                result: Err(ErrorCode::NotEnoughReplicasAfterAppend)
            }
        )));
    }

    #[test]
    fn fetches_are_fenced_by_epoch() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        let error = |o: &O| match &sent(o)[..] {
            [(
                1,
                Msg::FetchResponse {
                    result: FetchResult::Error(e),
                    ..
                },
            )] => Some(*e),
            _ => None,
        };
        let o = deliver(&b, &mut state, 1, fetch(0, 0, None));
        assert_eq!(error(&o), Some(ErrorCode::FencedLeaderEpoch));
        let o = deliver(&b, &mut state, 1, fetch(2, 0, None));
        assert_eq!(error(&o), Some(ErrorCode::UnknownLeaderEpoch));
        let f = broker(2);
        let (mut fs, _) = start(&f);
        let o = deliver(&f, &mut fs, 1, fetch(1, 0, None));
        assert_eq!(error(&o), Some(ErrorCode::NotLeaderOrFollower));
        // Without KIP-320's fencing (KIP-279), a leader serves any epoch; a follower does not.
        let old = broker_with(
            0,
            Config {
                truncation: Truncation::Kip279,
                ..config()
            },
        );
        let (mut os, _) = start(&old);
        os.log = log(&[(1, 1)]);
        let o = deliver(&old, &mut os, 1, fetch(0, 0, None));
        assert_eq!(error(&o), None);
        let f = broker_with(2, old.config.clone());
        let (mut fs, _) = start(&f);
        let o = deliver(&f, &mut fs, 1, fetch(0, 0, None));
        assert_eq!(error(&o), Some(ErrorCode::NotLeaderOrFollower));
        // Nor does a removed guard.
        let g = broker_with(
            0,
            Config {
                without_guard: Some(Guard::FetchEpochFencing),
                ..config()
            },
        );
        let (mut gs, _) = start(&g);
        gs.log = log(&[(1, 1)]);
        let o = deliver(&g, &mut gs, 1, fetch(0, 0, None));
        assert_eq!(error(&o), None);
    }

    /// The leader of epoch 2 holds `[v1@1 v2@1 v3@2]`.
    fn epoch_2_leader(b: &Broker) -> BrokerState {
        let (mut state, _) = start(b);
        state.log = log(&[(1, 1), (2, 1), (3, 2)]);
        state.flushed = Offset(3);
        state.leader_epoch = Epoch(2);
        state
    }

    #[test]
    fn a_fetch_whose_last_epoch_ends_earlier_on_the_leader_diverges() {
        let b = broker(0);
        let mut state = epoch_2_leader(&b);
        let answer = |state: &mut BrokerState, offset, last| match sent(&deliver(
            &b,
            state,
            1,
            fetch(2, offset, last),
        ))
        .pop()
        .map(|(_, m)| m)
        {
            Some(Msg::FetchResponse { result, .. }) => result,
            other => panic!("{other:?}"),
        };
        let diverging = |e, o| FetchResult::Diverging {
            epoch: Epoch(e),
            end_offset: Offset(o),
        };
        assert_eq!(answer(&mut state, 3, Some(1)), diverging(1, 2));
        assert_eq!(answer(&mut state, 5, Some(2)), diverging(2, 3));
        assert_eq!(answer(&mut state, 1, Some(3)), diverging(3, 0));
        // Epoch 1 ends at 2 here too: serve from 2.
        assert_eq!(
            answer(&mut state, 2, Some(1)),
            FetchResult::Records {
                base_offset: Offset(2),
                records: records(&[(3, 2)]),
                high_watermark: Offset(0)
            }
        );
        // Below the end of its epoch is fine.
        assert!(matches!(
            answer(&mut state, 1, Some(1)),
            FetchResult::Records {
                base_offset: Offset(1),
                ..
            }
        ));
        // No epoch sent: past the log end is out of range.
        assert_eq!(
            answer(&mut state, 5, None),
            FetchResult::OutOfRange {
                log_end_offset: Offset(3)
            }
        );
        // A rung that does not check divergence in the fetch ignores the epoch sent.
        let k = broker_with(
            0,
            Config {
                truncation: Truncation::Kip320,
                ..config()
            },
        );
        let mut ks = epoch_2_leader(&k);
        let o = deliver(&k, &mut ks, 1, fetch(2, 3, Some(1)));
        assert!(sent(&o).is_empty(), "at the log end: parked, not diverging");
    }

    #[test]
    fn the_idempotent_check_accepts_the_next_answers_a_duplicate_and_refuses_a_gap() {
        let mut l = Log::new();
        let p = ProducerId(7);
        let check = |l: &Log, s| match rules::check_batch(l, p, Sequence(s), 1) {
            SequenceCheck::Next => "next".to_string(),
            SequenceCheck::Duplicate(o) => format!("dup@{}", o.0),
            SequenceCheck::OutOfOrder => "gap".to_string(),
        };
        assert_eq!(check(&l, 0), "next");
        assert_eq!(check(&l, 1), "gap");
        for (s, pid) in [(0, p), (5, ProducerId(8)), (1, p)] {
            l.append(Record {
                value: Value::Numbered(s),
                leader_epoch: Epoch(1),
                producer: Some((pid, Sequence(s))),
            });
        }
        assert_eq!(check(&l, 2), "next");
        assert_eq!(check(&l, 1), "dup@2");
        assert_eq!(check(&l, 0), "dup@0");
        assert_eq!(check(&l, 3), "gap");
        // Another producer's records do not count.
        assert!(matches!(
            rules::check_batch(&l, ProducerId(8), Sequence(6), 1),
            SequenceCheck::Next
        ));
        assert!(matches!(
            rules::check_batch(&l, ProducerId(9), Sequence(0), 1),
            SequenceCheck::Next
        ));
    }

    #[test]
    fn an_idempotent_retry_is_answered_with_the_original_offsets() {
        let b = broker_with(
            0,
            Config {
                min_insync: 1,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        leader(&mut state).isr = set(&[0]);
        let answer = |o: &O| match &sent(o)[..] {
            [(PROD, Msg::ProduceResponse { result, .. })] => *result,
            other => panic!("{other:?}"),
        };
        let o = deliver(&b, &mut state, PROD, idempotent(0, &[0, 1], Acks::All));
        assert_eq!(answer(&o), Ok(Offset(0)));
        let o = deliver(&b, &mut state, PROD, idempotent(1, &[0, 1], Acks::All));
        assert_eq!(answer(&o), Ok(Offset(0)), "the same batch again");
        assert_eq!(state.log.log_end_offset(), Offset(2));
        let o = deliver(&b, &mut state, PROD, idempotent(2, &[1, 2], Acks::All));
        assert_eq!(
            answer(&o),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "only starts like it"
        );
        let o = deliver(&b, &mut state, PROD, idempotent(3, &[3], Acks::All));
        assert_eq!(
            answer(&o),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "a gap"
        );
        let o = deliver(&b, &mut state, PROD, idempotent(4, &[2], Acks::One));
        assert_eq!(answer(&o), Ok(Offset(2)));
        assert_eq!(
            state.log.get(Offset(2)).and_then(|r| r.producer),
            Some((ProducerId(7), Sequence(2)))
        );
    }

    #[test]
    fn a_follower_appends_what_its_leader_sends_in_its_epoch() {
        let b = broker(1);
        let (mut state, _) = start(&b);
        let response = |base, rs: &[(u32, u32)], hw| Msg::FetchResponse {
            leader_epoch: Epoch(1),
            result: FetchResult::Records {
                base_offset: Offset(base),
                records: records(rs),
                high_watermark: Offset(hw),
            },
        };
        let o = deliver(&b, &mut state, 0, response(0, &[(1, 1), (2, 1)], 5));
        assert_eq!(state.log, log(&[(1, 1), (2, 1)]));
        assert_eq!(
            state.high_watermark,
            Offset(2),
            "the leader's, clamped to the log"
        );
        assert_eq!(state.flushed, Offset(2));
        assert_eq!(
            saves(&o).last().map(|s| s.log.clone()),
            Some(log(&[(1, 1), (2, 1)]))
        );
        assert_eq!(sent(&o), vec![(0, fetch(1, 2, Some(1)))]);
        // The high watermark never goes back.
        deliver(&b, &mut state, 0, response(2, &[(3, 1)], 1));
        assert_eq!(state.high_watermark, Offset(2));
        assert_eq!(state.log.log_end_offset(), Offset(3));
        // An answer for an offset it no longer fetches, from another broker, or from another
        // epoch: ignored.
        let before = state.clone();
        for (from, msg) in [
            (0, response(1, &[(9, 1)], 3)),
            (2, response(3, &[(9, 1)], 3)),
            (
                0,
                Msg::FetchResponse {
                    leader_epoch: Epoch(2),
                    result: FetchResult::Records {
                        base_offset: Offset(3),
                        records: records(&[(9, 2)]),
                        high_watermark: Offset(3),
                    },
                },
            ),
        ] {
            let o = deliver(&b, &mut state, from, msg);
            assert_eq!(state, before);
            assert!(sent(&o).is_empty());
        }
        // An error: back off; a fenced epoch: wait for the controller.
        let o = deliver(
            &b,
            &mut state,
            0,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::Error(ErrorCode::NotLeaderOrFollower),
            },
        );
        assert!(sets(&o, Timer::FetchBackoff));
        let o = deliver(
            &b,
            &mut state,
            0,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::Error(ErrorCode::FencedLeaderEpoch),
            },
        );
        assert!(!sets(&o, Timer::FetchBackoff));
        assert!(sent(&o).is_empty());
        // The backoff ends in a fetch.
        let mut o = O::new();
        b.on_timeout(&mut state, &Timer::FetchBackoff, &mut o);
        assert_eq!(sent(&o), vec![(0, fetch(1, 3, Some(1)))]);
    }

    #[test]
    fn a_diverging_follower_truncates_to_the_common_epoch_end() {
        let b = broker(1);
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 1), (2, 1), (9, 1)]);
        state.flushed = Offset(3);
        state.high_watermark = Offset(3);
        let o = deliver(
            &b,
            &mut state,
            0,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::Diverging {
                    epoch: Epoch(1),
                    end_offset: Offset(2),
                },
            },
        );
        assert_eq!(state.log, log(&[(1, 1), (2, 1)]));
        assert_eq!(state.high_watermark, Offset(2));
        assert_eq!(state.flushed, Offset(2));
        assert_eq!(
            saves(&o).last().map(|s| s.log.clone()),
            Some(log(&[(1, 1), (2, 1)]))
        );
        assert_eq!(sent(&o), vec![(0, fetch(1, 2, Some(1)))]);
        // The leader's epoch is not in this log: truncate to where the own older epoch ends.
        let mut state2 = state.clone();
        state2.log = log(&[(1, 1), (2, 3)]);
        let diverging = |epoch, end_offset| TruncationCause::Diverging {
            epoch: Epoch(epoch),
            end_offset: Offset(end_offset),
        };
        assert_eq!(
            b.truncation_offset(&state2, diverging(2, 5)),
            (Offset(1), false)
        );
        assert_eq!(
            b.truncation_offset(&state2, diverging(3, 1)),
            (Offset(1), true)
        );
        assert_eq!(
            b.truncation_offset(&state2, diverging(3, 7)),
            (Offset(2), true)
        );
        // Older than every epoch here: to the start.
        assert_eq!(
            b.truncation_offset(&state2, diverging(0, 1)),
            (Offset(0), true)
        );
        // Newer than every epoch here: to the leader's end, within this log.
        assert_eq!(
            b.truncation_offset(&state2, diverging(5, 1)),
            (Offset(1), true)
        );
        assert_eq!(
            b.truncation_offset(&state2, diverging(5, 9)),
            (Offset(2), true)
        );
        // Out of range: to the leader's end.
        let o = deliver(
            &b,
            &mut state,
            0,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::OutOfRange {
                    log_end_offset: Offset(1),
                },
            },
        );
        assert_eq!(state.log, log(&[(1, 1)]));
        assert_eq!(sent(&o), vec![(0, fetch(1, 1, Some(1)))]);
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_a_caught_up_one_in() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        deliver(&b, &mut state, PROD, produce(1));
        let mut o = O::new();
        b.on_msg(&mut state, Id::from(1), fetch(1, 1, Some(1)), &mut o);
        assert!(leader(&mut state).lag_armed, "broker 2 is behind");
        let mut o = O::new();
        b.on_timeout(&mut state, &Timer::IsrLag, &mut o);
        assert_eq!(
            sent(&o),
            vec![(
                CTL,
                Msg::AlterPartition {
                    leader_epoch: Epoch(1),
                    partition_epoch: PartitionEpoch(0),
                    isr: set(&[0, 1]),
                    incarnations: [BrokerEpoch(0); REPLICAS_MAX],
                }
            )]
        );
        assert_eq!(leader(&mut state).pending_isr, Some(set(&[0, 1])));
        // While it is pending the high watermark counts the maximal ISR: broker 2 still.
        assert_eq!(state.high_watermark, Offset(0));
        // A stale answer (another proposal) is ignored.
        let accepted = PartitionState {
            isr: set(&[0, 1]),
            partition_epoch: PartitionEpoch(1),
            ..Controller::initial_partition(3)
        };
        let answer = |proposed, result| Msg::AlterPartitionResponse {
            leader_epoch: Epoch(1),
            proposed,
            result,
        };
        deliver(&b, &mut state, CTL, answer(set(&[0]), Ok(accepted)));
        assert_eq!(leader(&mut state).pending_isr, Some(set(&[0, 1])));
        let o = deliver(&b, &mut state, CTL, answer(set(&[0, 1]), Ok(accepted)));
        assert_eq!(leader(&mut state).isr, set(&[0, 1]));
        assert_eq!(leader(&mut state).pending_isr, None);
        assert_eq!(
            state.high_watermark,
            Offset(1),
            "committed without broker 2"
        );
        assert!(sent(&o).iter().any(|(to, _)| *to == PROD));
        // Broker 2 catches up to the high watermark: proposed back in, with its incarnation.
        let mut o = O::new();
        b.on_msg(
            &mut state,
            Id::from(2),
            Msg::Fetch {
                leader_epoch: Epoch(1),
                fetch_offset: Offset(1),
                last_fetched_epoch: Some(Epoch(1)),
                incarnation: BrokerEpoch(4),
            },
            &mut o,
        );
        let mut incarnations = [BrokerEpoch::NONE; REPLICAS_MAX];
        incarnations[2] = BrokerEpoch(4);
        assert!(sent(&o).contains(&(
            CTL,
            Msg::AlterPartition {
                leader_epoch: Epoch(1),
                partition_epoch: PartitionEpoch(1),
                isr: set(&[0, 1, 2]),
                incarnations,
            }
        )));
        // Refused as ineligible: not proposed again until the controller says more.
        let refused = Err((ErrorCode::IneligibleReplica, accepted));
        deliver(&b, &mut state, CTL, answer(set(&[0, 1, 2]), refused));
        assert_eq!(leader(&mut state).ineligible, set(&[2]));
        let o = deliver(&b, &mut state, 2, fetch(1, 1, Some(1)));
        assert!(!sent(&o).iter().any(|(to, _)| *to == CTL));
    }

    /// `replica.lag.time.max.ms`: with Kafka's rule (`lastCaughtUpTimeMs`) a follower that
    /// fetched up to what it was last sent since the check was armed stays in the ISR though
    /// it is behind the log end now; under the model's coarser rule any follower behind the log
    /// end when the check fires is proposed out.
    #[test]
    fn only_kafkas_lag_rule_keeps_a_follower_that_caught_up_since_the_check_was_armed() {
        for (track_catch_up, proposed) in [(true, set(&[0, 1])), (false, set(&[0]))] {
            let b = broker_on(
                0,
                config(),
                ActorParams {
                    track_catch_up,
                    ..params()
                },
            );
            let (mut state, _) = start(&b);
            deliver(&b, &mut state, PROD, produce(1));
            assert!(leader(&mut state).lag_armed);
            deliver(&b, &mut state, 1, fetch(1, 0, None));
            deliver(&b, &mut state, PROD, produce(2));
            deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
            assert_eq!(leader(&mut state).followers[1].end, Offset(1), "behind 2");
            let mut o = O::new();
            b.on_timeout(&mut state, &Timer::IsrLag, &mut o);
            assert_eq!(
                sent(&o),
                vec![(
                    CTL,
                    Msg::AlterPartition {
                        leader_epoch: Epoch(1),
                        partition_epoch: PartitionEpoch(0),
                        isr: proposed,
                        incarnations: [BrokerEpoch(0); REPLICAS_MAX],
                    }
                )],
                "track_catch_up={track_catch_up}"
            );
        }
    }

    #[test]
    fn a_follower_behind_the_high_watermark_is_not_proposed() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 1), (2, 1)]);
        state.high_watermark = Offset(2);
        leader(&mut state).isr = set(&[0, 1]);
        let o = deliver(&b, &mut state, 2, fetch(1, 1, Some(1)));
        assert!(!sent(&o).iter().any(|(to, _)| *to == CTL));
        let o = deliver(&b, &mut state, 2, fetch(1, 2, Some(1)));
        assert!(
            sent(&o).iter().any(|(to, _)| *to == CTL),
            "at the hw exactly"
        );
    }

    #[test]
    fn a_leader_told_it_follows_answers_what_it_held() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        deliver(&b, &mut state, PROD, produce(1));
        let moved = PartitionState {
            leader: Some(BrokerId(1)),
            leader_epoch: Epoch(2),
            ..Controller::initial_partition(3)
        };
        // Addressed to another incarnation, or older than what it knows: ignored.
        let before = state.clone();
        let o = deliver(
            &b,
            &mut state,
            CTL,
            Msg::LeaderAndIsr {
                partition: moved,
                broker_incarnation: BrokerEpoch(1),
            },
        );
        assert_eq!(state, before);
        assert!(sent(&o).is_empty());
        state.leader_epoch = Epoch(3);
        deliver(
            &b,
            &mut state,
            CTL,
            Msg::LeaderAndIsr {
                partition: moved,
                broker_incarnation: BrokerEpoch(0),
            },
        );
        assert!(state.is_leader(), "epoch 2 is older than 3");
        state.leader_epoch = Epoch(1);
        let o = deliver(
            &b,
            &mut state,
            CTL,
            Msg::LeaderAndIsr {
                partition: moved,
                broker_incarnation: BrokerEpoch(0),
            },
        );
        assert_eq!(state.leader_epoch, Epoch(2));
        assert_eq!(
            sent(&o),
            vec![
                (
                    PROD,
                    Msg::ProduceResponse {
                        request: RequestId(1),
                        result: Err(ErrorCode::NotLeaderOrFollower)
                    }
                ),
                (1, fetch(2, 1, Some(1)))
            ]
        );
    }

    #[test]
    fn the_legacy_rule_truncates_to_the_high_watermark_on_becoming_follower() {
        let b = broker_with(
            2,
            Config {
                truncation: Truncation::HighWatermark,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 1), (2, 1)]);
        state.flushed = Offset(2);
        state.high_watermark = Offset(1);
        let moved = PartitionState {
            leader: Some(BrokerId(1)),
            leader_epoch: Epoch(2),
            ..Controller::initial_partition(3)
        };
        let o = deliver(
            &b,
            &mut state,
            CTL,
            Msg::LeaderAndIsr {
                partition: moved,
                broker_incarnation: BrokerEpoch(0),
            },
        );
        assert_eq!(state.log, log(&[(1, 1)]));
        assert_eq!(sent(&o), vec![(1, fetch(2, 1, None))]);
        // KIP-101 asks first, while it has records.
        let k = broker_with(
            2,
            Config {
                truncation: Truncation::Kip101,
                ..config()
            },
        );
        let (mut ks, _) = start(&k);
        ks.log = log(&[(1, 1), (2, 1)]);
        ks.flushed = Offset(2);
        let o = deliver(
            &k,
            &mut ks,
            CTL,
            Msg::LeaderAndIsr {
                partition: moved,
                broker_incarnation: BrokerEpoch(0),
            },
        );
        assert_eq!(ks.log.log_end_offset(), Offset(2));
        assert_eq!(
            sent(&o),
            vec![(
                1,
                Msg::OffsetsForLeaderEpoch {
                    current_leader_epoch: Epoch(2),
                    leader_epoch: Epoch(1)
                }
            )]
        );
    }

    #[test]
    fn consumers_are_served_committed_records_only() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 1), (2, 1)]);
        state.high_watermark = Offset(1);
        let ask = |state: &mut BrokerState, epoch, offset| {
            sent(&deliver(
                &b,
                state,
                CONS,
                Msg::ConsumerFetch {
                    leader_epoch: Epoch(epoch),
                    offset: Offset(offset),
                },
            ))
        };
        let reply = |result| {
            vec![(
                CONS,
                Msg::ConsumerFetchResponse {
                    leader_epoch: Epoch(1),
                    result,
                },
            )]
        };
        assert_eq!(
            ask(&mut state, 1, 0),
            reply(Ok((Offset(0), records(&[(1, 1)]))))
        );
        assert_eq!(ask(&mut state, 1, 1), vec![], "held until the hw passes it");
        assert_eq!(
            leader(&mut state).parked_consumers,
            vec![(Id::from(CONS), Offset(1))]
        );
        assert_eq!(
            ask(&mut state, 1, 3),
            reply(Err(ErrorCode::OffsetOutOfRange))
        );
        assert_eq!(ask(&mut state, 1, 2), vec![], "at the log end: held");
        let fenced = ask(&mut state, 0, 0);
        assert_eq!(
            fenced,
            vec![(
                CONS,
                Msg::ConsumerFetchResponse {
                    leader_epoch: Epoch(0),
                    result: Err(ErrorCode::FencedLeaderEpoch)
                }
            )]
        );
    }

    /// Kafka's delayed fetch: a follower's fetch held at the log end is answered when a
    /// produce appends, and a consumer's fetch held at the high watermark when the high
    /// watermark passes it.
    #[test]
    fn held_fetches_are_answered_when_records_arrive_or_commit() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        leader(&mut state).isr = set(&[0, 1]);
        let o = deliver(&b, &mut state, 1, fetch(1, 0, None));
        assert!(sent(&o).is_empty(), "held: nothing to send");
        let consumer_fetch = Msg::ConsumerFetch {
            leader_epoch: Epoch(1),
            offset: Offset(0),
        };
        assert!(sent(&deliver(&b, &mut state, CONS, consumer_fetch)).is_empty());
        let o = deliver(&b, &mut state, PROD, produce(1));
        assert_eq!(
            sent(&o),
            vec![(
                1,
                Msg::FetchResponse {
                    leader_epoch: Epoch(1),
                    result: FetchResult::Records {
                        base_offset: Offset(0),
                        records: records(&[(1, 1)]),
                        high_watermark: Offset(0)
                    }
                }
            )],
            "the follower gets the record; the consumer waits for the commit"
        );
        let o = deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
        assert_eq!(state.high_watermark, Offset(1));
        assert!(sent(&o).contains(&(
            CONS,
            Msg::ConsumerFetchResponse {
                leader_epoch: Epoch(1),
                result: Ok((Offset(0), records(&[(1, 1)])))
            }
        )));
    }

    /// `replica.lag.time.max.ms` is watched only while it can matter: the lag check is armed
    /// while an ISR follower is behind the log end and no ISR change is pending, and cancelled
    /// once every follower has caught up.
    #[test]
    fn the_lag_check_is_armed_only_while_an_isr_follower_is_behind() {
        let cancels = |o: &O| {
            o.iter()
                .any(|c| matches!(c, Command::CancelTimer(Timer::IsrLag)))
        };
        let b = broker(0);
        let (mut state, o) = start(&b);
        assert!(!sets(&o, Timer::IsrLag), "an empty log: no one is behind");
        let o = deliver(&b, &mut state, PROD, produce(1));
        assert!(sets(&o, Timer::IsrLag));
        let o = deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
        assert!(
            !sets(&o, Timer::IsrLag) && !cancels(&o),
            "broker 2 is behind"
        );
        let o = deliver(&b, &mut state, 2, fetch(1, 1, Some(1)));
        assert!(cancels(&o), "both caught up");
        assert!(!leader(&mut state).lag_armed);
        // Behind again; the check fires and proposes a shrink: not armed while it is pending.
        deliver(&b, &mut state, PROD, produce(2));
        deliver(&b, &mut state, 1, fetch(1, 2, Some(1)));
        let mut o = O::new();
        b.on_timeout(&mut state, &Timer::IsrLag, &mut o);
        assert_eq!(leader(&mut state).pending_isr, Some(set(&[0, 1])));
        assert!(!sets(&o, Timer::IsrLag));
        assert!(!leader(&mut state).lag_armed);
    }

    /// A consumer waits on one fetch at a time: a newer held fetch replaces the one it held,
    /// and it is answered once when the high watermark passes it.
    #[test]
    fn a_consumer_is_held_on_its_newest_fetch_only() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        leader(&mut state).isr = set(&[0, 1]);
        deliver(&b, &mut state, PROD, produce(1));
        let ask = |offset| Msg::ConsumerFetch {
            leader_epoch: Epoch(1),
            offset: Offset(offset),
        };
        deliver(&b, &mut state, CONS, ask(0));
        deliver(&b, &mut state, CONS, ask(0));
        assert_eq!(
            leader(&mut state).parked_consumers,
            vec![(Id::from(CONS), Offset(0))]
        );
        let o = deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
        let answers = sent(&o).into_iter().filter(|(to, _)| *to == CONS).count();
        assert_eq!(answers, 1);
    }

    /// KAFKA-7128 (with KIP-320): a follower at the high watermark but short of the start of
    /// the leader's current epoch does not join the ISR yet; older rungs, or the guard
    /// removed, let it join.
    #[test]
    fn a_follower_joins_the_isr_only_once_it_reaches_the_leaders_epoch_start() {
        let proposes = |config: Config, last: Option<u32>| {
            let b = broker_with(0, config);
            let mut state = epoch_2_leader(&b);
            state.high_watermark = Offset(1);
            leader(&mut state).isr = set(&[0, 1]);
            let o = deliver(&b, &mut state, 2, fetch(2, 1, last));
            sent(&o).iter().any(|(to, _)| *to == CTL)
        };
        assert!(!proposes(config(), Some(1)), "epoch 2 starts at offset 2");
        assert!(proposes(
            Config {
                without_guard: Some(Guard::IsrJoinEpochStart),
                ..config()
            },
            Some(1)
        ));
        assert!(proposes(
            Config {
                truncation: Truncation::Kip279,
                ..config()
            },
            None
        ));
    }

    /// A leader's pending proposal is refused with the controller's partition from an epoch
    /// the leader has not taken up (it was deposed, or deposed and elected again): the leader
    /// keeps its ISR and waits for the `LeaderAndIsr`, as Kafka's `Partition` does.
    #[test]
    fn a_refused_proposal_does_not_take_the_isr_of_another_epoch() {
        for (new_leader, new_epoch) in [(1, 2), (0, 3)] {
            let b = broker(0);
            let (mut state, _) = start(&b);
            deliver(&b, &mut state, PROD, produce(1));
            deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
            b.on_timeout(&mut state, &Timer::IsrLag, &mut O::new());
            assert_eq!(leader(&mut state).pending_isr, Some(set(&[0, 1])));
            let newer = PartitionState {
                leader: Some(BrokerId(new_leader)),
                leader_epoch: Epoch(new_epoch),
                isr: set(&[new_leader, 2]),
                partition_epoch: PartitionEpoch(1),
                ..Controller::initial_partition(3)
            };
            deliver(
                &b,
                &mut state,
                CTL,
                Msg::AlterPartitionResponse {
                    leader_epoch: Epoch(1),
                    proposed: set(&[0, 1]),
                    result: Err((ErrorCode::FencedLeaderEpoch, newer)),
                },
            );
            assert_eq!(leader(&mut state).pending_isr, None);
            assert_eq!(leader(&mut state).isr, set(&[0, 1, 2]));
            assert_eq!(state.high_watermark, Offset(0));
        }
    }

    /// KIP-966's high-watermark rule (`min-isr`): the leader does not advance the high
    /// watermark while the ISR is below `min.insync.replicas`; the classic rule does.
    #[test]
    fn under_the_min_isr_rule_the_high_watermark_waits_for_min_insync() {
        for (hw_rule, alone, back) in [(HwRule::MinIsr, 0, 1), (HwRule::Isr, 1, 1)] {
            let b = broker_with(
                0,
                Config {
                    hw_rule,
                    ..config()
                },
            );
            let (mut state, _) = start(&b);
            deliver(&b, &mut state, PROD, produce(1));
            deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
            deliver(&b, &mut state, CTL, leader_and_isr(0, 1, &[0], 1));
            assert_eq!(state.high_watermark, Offset(alone), "{hw_rule:?} alone");
            deliver(&b, &mut state, CTL, leader_and_isr(0, 1, &[0, 1], 2));
            assert_eq!(state.high_watermark, Offset(back), "{hw_rule:?} at min");
        }
    }

    /// An `acks=all` request whose record is committed along with later records (the high
    /// watermark jumps past it) is answered.
    #[test]
    fn an_acks_all_request_is_answered_when_the_high_watermark_jumps_past_it() {
        let b = broker(0);
        let (mut state, _) = start(&b);
        leader(&mut state).isr = set(&[0, 1]);
        deliver(&b, &mut state, PROD, produce(1));
        let acks_1 = Msg::Produce {
            request: RequestId(2),
            producer: None,
            acks: Acks::One,
            records: vec![ProducerRecord {
                value: Value::Numbered(2),
                sequence: Sequence(0),
            }]
            .into(),
        };
        deliver(&b, &mut state, PROD, acks_1);
        let o = deliver(&b, &mut state, 1, fetch(1, 2, Some(1)));
        assert_eq!(state.high_watermark, Offset(2));
        assert!(sent(&o).contains(&(
            PROD,
            Msg::ProduceResponse {
                request: RequestId(1),
                result: Ok(Offset(0))
            }
        )));
    }

    /// `flush=async` on a follower: fetched records are appended but not saved until the
    /// flush timer fires.
    #[test]
    fn with_async_flush_a_follower_does_not_save_what_it_fetches() {
        let b = broker_with(
            1,
            Config {
                flush: Flush::Async,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        let o = deliver(
            &b,
            &mut state,
            0,
            Msg::FetchResponse {
                leader_epoch: Epoch(1),
                result: FetchResult::Records {
                    base_offset: Offset(0),
                    records: records(&[(1, 1)]),
                    high_watermark: Offset(0),
                },
            },
        );
        assert_eq!(state.log, log(&[(1, 1)]));
        assert_eq!(state.flushed, Offset(0));
        assert!(saves(&o).is_empty());
        assert!(sets(&o, Timer::Flush));
    }

    /// The engine keeps no ghost: committing records leaves its committed ghost empty.
    #[test]
    fn without_the_ghost_a_commit_records_nothing_beside_the_log() {
        let b = broker_on(
            0,
            config(),
            ActorParams {
                explore: false,
                ..params()
            },
        );
        let (mut state, _) = start(&b);
        leader(&mut state).isr = set(&[0, 1]);
        deliver(&b, &mut state, PROD, produce(1));
        deliver(&b, &mut state, 1, fetch(1, 1, Some(1)));
        assert_eq!(state.high_watermark, Offset(1));
        assert!(state.committed_ghost.is_empty());
    }

    /// The committed ghost is the evidence `committed-durable` reads: once this broker
    /// committed a record at an offset as leader, a different record it later commits at the
    /// same offset (after losing the first) does not erase that evidence.
    #[test]
    fn the_committed_ghost_keeps_what_was_committed_first() {
        let b = broker_with(
            0,
            Config {
                min_insync: 1,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 2)]);
        state.flushed = Offset(1);
        state.leader_epoch = Epoch(2);
        state.committed_ghost = log(&[(9, 1)]);
        leader(&mut state).isr = set(&[0]);
        deliver(&b, &mut state, CTL, leader_and_isr(0, 2, &[0], 1));
        assert_eq!(state.high_watermark, Offset(1));
        assert_eq!(state.committed_ghost, log(&[(9, 1)]));
    }

    fn epoch_question(current: u32, asked: u32) -> Msg {
        Msg::OffsetsForLeaderEpoch {
            current_leader_epoch: Epoch(current),
            leader_epoch: Epoch(asked),
        }
    }

    fn epoch_answer(
        asked: u32,
        leader_epoch: u32,
        result: Result<EpochEndOffset, ErrorCode>,
    ) -> Msg {
        Msg::OffsetsForLeaderEpochResponse {
            asked: Epoch(asked),
            leader_epoch: Epoch(leader_epoch),
            result,
        }
    }

    fn found(epoch: u32, end_offset: u64) -> Result<EpochEndOffset, ErrorCode> {
        Ok(EpochEndOffset::Found {
            epoch: Epoch(epoch),
            end_offset: Offset(end_offset),
        })
    }

    /// The leader's side of `OffsetsForLeaderEpoch` on `[v1@1 v2@1 v3@2]` in epoch 2:
    /// KIP-101 answers an offset (unknown for an epoch older than its log), KIP-279 the
    /// largest epoch not newer than the one asked and its end; KIP-320 fences the asker's
    /// stale current epoch.
    #[test]
    fn the_leader_answers_where_an_epoch_ends_in_each_rungs_words() {
        let answer = |truncation, current, asked| {
            let b = broker_with(
                0,
                Config {
                    truncation,
                    ..config()
                },
            );
            let mut state = epoch_2_leader(&b);
            sent(&deliver(&b, &mut state, 1, epoch_question(current, asked)))
        };
        let reply = |asked, result| vec![(1, epoch_answer(asked, 2, result))];
        assert_eq!(answer(Truncation::Kip101, 2, 1), reply(1, found(1, 2)));
        assert_eq!(
            answer(Truncation::Kip101, 2, 0),
            reply(0, Ok(EpochEndOffset::Undefined))
        );
        assert_eq!(answer(Truncation::Kip279, 2, 1), reply(1, found(1, 2)));
        assert_eq!(answer(Truncation::Kip279, 2, 0), reply(0, found(0, 0)));
        assert_eq!(answer(Truncation::Kip279, 1, 1), reply(1, found(1, 2)));
        assert_eq!(
            answer(Truncation::Kip320, 1, 1),
            reply(1, Err(ErrorCode::FencedLeaderEpoch))
        );
    }

    /// KIP-279: a follower whose last epoch (3) the new leader never had is told the largest
    /// epoch the leader has below it (2); its own log ends that one with epoch 1's records, so
    /// it truncates there and asks again about epoch 1, and fetches once both agree. Before
    /// KIP-320 the answers are not fenced by the leader epoch they carry.
    #[test]
    fn a_kip_279_follower_asks_again_until_it_and_the_leader_agree_on_an_epoch() {
        let b = broker_with(
            1,
            Config {
                truncation: Truncation::Kip279,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 1), (5, 3)]);
        state.flushed = Offset(2);
        state.leader_epoch = Epoch(3);
        let o = deliver(&b, &mut state, CTL, leader_and_isr(0, 4, &[0, 1], 1));
        assert_eq!(sent(&o), vec![(0, epoch_question(4, 3))]);
        let o = deliver(&b, &mut state, 0, epoch_answer(3, 5, found(2, 2)));
        assert_eq!(state.log, log(&[(1, 1)]));
        assert_eq!(sent(&o), vec![(0, epoch_question(4, 1))]);
        let o = deliver(&b, &mut state, 0, epoch_answer(1, 5, found(1, 1)));
        assert_eq!(state.log, log(&[(1, 1)]));
        assert_eq!(sent(&o), vec![(0, fetch(4, 1, None))]);
    }

    /// KIP-320: while truncating, a follower takes only the answer of the leader it follows,
    /// to the question it asks now, in its current epoch; an answer it takes ends in a fetch.
    #[test]
    fn a_truncating_follower_ignores_stray_epoch_answers() {
        let b = broker_with(
            1,
            Config {
                truncation: Truncation::Kip320,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        state.log = log(&[(1, 1), (2, 1)]);
        state.flushed = Offset(2);
        let o = deliver(&b, &mut state, CTL, leader_and_isr(0, 2, &[0, 1], 1));
        assert_eq!(sent(&o), vec![(0, epoch_question(2, 1))]);
        let before = state.clone();
        for (from, msg) in [
            (2, epoch_answer(1, 2, found(1, 1))),
            (0, epoch_answer(0, 2, found(0, 0))),
            (0, epoch_answer(1, 1, found(1, 1))),
        ] {
            let o = deliver(&b, &mut state, from, msg.clone());
            assert_eq!(state, before, "{msg:?} from {from}");
            assert!(sent(&o).is_empty());
        }
        let o = deliver(&b, &mut state, 0, epoch_answer(1, 2, found(1, 1)));
        assert_eq!(state.log, log(&[(1, 1)]));
        assert_eq!(sent(&o), vec![(0, fetch(2, 1, None))]);
    }

    /// The stale-message rules ([`Broker::ignores_forever`]), each on both sides of its line,
    /// for a follower in epoch 3 of its second incarnation: answers in an older epoch (fetch
    /// and epoch answers only where fetches are fenced), fenced answers, an older
    /// incarnation's `LeaderAndIsr`, and requests in an older epoch only while no restart can
    /// come or once the asker has moved on. Each one the rule calls stale changes nothing
    /// when delivered.
    #[test]
    fn stale_messages_are_those_this_broker_ignores_forever() {
        let records = |epoch: u32, result| Msg::FetchResponse {
            leader_epoch: Epoch(epoch),
            result,
        };
        let data = || FetchResult::Records {
            base_offset: Offset(0),
            records: Arc::from(vec![rec(1, 3)]),
            high_watermark: Offset(0),
        };
        let altered = |epoch: u32| Msg::AlterPartitionResponse {
            leader_epoch: Epoch(epoch),
            proposed: set(&[0, 1]),
            result: Ok(Controller::initial_partition(3)),
        };
        let for_incarnation = |n: u32| match leader_and_isr(0, 3, &[0, 1], 2) {
            Msg::LeaderAndIsr { partition, .. } => Msg::LeaderAndIsr {
                partition,
                broker_incarnation: BrokerEpoch(n),
            },
            _ => unreachable!(),
        };
        let fenced = FetchResult::Error(ErrorCode::FencedLeaderEpoch);
        let not_leader = FetchResult::Error(ErrorCode::NotLeaderOrFollower);
        let cases: Vec<(Msg, bool, Option<u32>, bool)> = vec![
            // (message, may restart, the sender's epoch, stale)
            (records(2, data()), true, None, true),
            (records(3, data()), false, None, false),
            (records(3, fenced.clone()), true, None, true),
            (records(3, not_leader), false, None, false),
            (epoch_answer(3, 2, found(3, 1)), true, None, true),
            (epoch_answer(3, 3, found(3, 1)), false, None, false),
            (
                epoch_answer(3, 3, Err(ErrorCode::FencedLeaderEpoch)),
                true,
                None,
                true,
            ),
            (altered(2), true, None, true),
            (altered(3), false, None, false),
            (for_incarnation(0), true, None, true),
            (for_incarnation(1), false, None, false),
            (fetch(2, 0, None), false, Some(2), true),
            (fetch(2, 0, None), true, Some(2), false),
            (fetch(2, 0, None), true, Some(3), true),
            (fetch(3, 0, None), false, Some(3), false),
            (epoch_question(2, 1), false, Some(2), true),
            (epoch_question(2, 1), true, Some(2), false),
        ];
        let b = broker(1);
        let (mut state, _) = start(&b);
        state.incarnation = BrokerEpoch(1);
        deliver(&b, &mut state, CTL, for_incarnation(1));
        assert_eq!(state.leader_epoch, Epoch(3));
        for (msg, may_restart, sender, stale) in cases {
            let said = b.ignores_forever(&state, &msg, may_restart, sender.map(Epoch));
            assert_eq!(
                said, stale,
                "{msg:?}, may restart {may_restart}, sender {sender:?}"
            );
            if stale {
                let mut after = state.clone();
                let o = deliver(&b, &mut after, 0, msg.clone());
                assert_eq!(after, state, "a stale {msg:?} changed the broker");
                assert!(
                    sent(&o).iter().all(|(_, m)| matches!(
                        m,
                        Msg::FetchResponse { result, .. } if *result == fenced
                    ) || matches!(
                        m,
                        Msg::OffsetsForLeaderEpochResponse {
                            result: Err(ErrorCode::FencedLeaderEpoch),
                            ..
                        }
                    )),
                    "a stale {msg:?} sent {o:?}"
                );
            }
        }
        // Before KIP-320 a follower takes answers from any epoch.
        let old = broker_with(
            1,
            Config {
                truncation: Truncation::HighWatermark,
                ..config()
            },
        );
        assert!(!old.ignores_forever(&state, &records(2, data()), false, None));
        assert!(!old.ignores_forever(&state, &epoch_answer(3, 2, found(3, 1)), false, None));
        assert!(!old.ignores_forever(&state, &fetch(2, 0, None), false, Some(Epoch(3))));
        assert!(old.ignores_forever(&state, &altered(2), true, None));
    }

    /// Byte limits ([`crate::limits`]) with the model's values, `per` bytes each.
    #[test]
    fn produces_over_message_max_bytes_are_refused_and_fetches_are_cut_by_bytes() {
        let per = record_bytes(&Value::Numbered(0));
        let b = broker_on(
            0,
            config(),
            ActorParams {
                limits: SizeLimits {
                    message_bytes_max: 3 * per,
                    replica_fetch_bytes_max: 2 * per + per / 2,
                    fetch_bytes_max: per + per / 2,
                },
                ..params()
            },
        );
        let (mut state, _) = start(&b);
        let o = deliver(
            &b,
            &mut state,
            PROD,
            idempotent(0, &[0, 1, 2, 3], Acks::One),
        );
        assert_eq!(
            sent(&o),
            vec![(
                PROD,
                Msg::ProduceResponse {
                    request: RequestId(0),
                    result: Err(ErrorCode::MessageTooLarge)
                }
            )]
        );
        assert!(
            state.log.is_empty(),
            "nothing of a refused request is appended"
        );
        let o = deliver(&b, &mut state, PROD, idempotent(1, &[0, 1, 2], Acks::One));
        assert_eq!(
            sent(&o),
            vec![(
                PROD,
                Msg::ProduceResponse {
                    request: RequestId(1),
                    result: Ok(Offset(0))
                }
            )]
        );
        let fetched = |o: &O| -> Vec<usize> {
            sent(o)
                .into_iter()
                .filter_map(|(_, m)| match m {
                    Msg::FetchResponse {
                        result: FetchResult::Records { records, .. },
                        ..
                    } => Some(records.len()),
                    Msg::ConsumerFetchResponse {
                        result: Ok((_, records)),
                        ..
                    } => Some(records.len()),
                    _ => None,
                })
                .collect()
        };
        // A follower gets 2 of the 3 records (a limit of two and a half), then the third.
        assert_eq!(
            fetched(&deliver(&b, &mut state, 1, fetch(1, 0, None))),
            vec![2]
        );
        assert_eq!(
            fetched(&deliver(&b, &mut state, 1, fetch(1, 2, Some(1)))),
            vec![1]
        );
        // A consumer's limit is below two records: one at a time, never none.
        state.high_watermark = Offset(3);
        let consume = |state: &mut BrokerState, offset| {
            let msg = Msg::ConsumerFetch {
                leader_epoch: Epoch(1),
                offset: Offset(offset),
            };
            fetched(&deliver(&b, state, CONS, msg))
        };
        assert_eq!(consume(&mut state, 0), vec![1]);
        assert_eq!(consume(&mut state, 2), vec![1]);
    }

    #[test]
    fn async_flush_saves_only_when_its_timer_fires() {
        let b = broker_with(
            0,
            Config {
                flush: Flush::Async,
                ..config()
            },
        );
        let (mut state, _) = start(&b);
        let o = deliver(&b, &mut state, PROD, produce(1));
        assert!(saves(&o).is_empty());
        assert_eq!(state.flushed, Offset(0));
        assert!(sets(&o, Timer::Flush));
        let mut o = O::new();
        b.on_timeout(&mut state, &Timer::Flush, &mut o);
        assert_eq!(state.flushed, Offset(1));
        assert_eq!(
            saves(&o).last().map(|s| s.log.clone()),
            Some(log(&[(1, 1)]))
        );
        assert!(!sets(&o, Timer::Flush));
    }
}
