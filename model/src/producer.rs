//! The producer: sends records in order to the leader it knows of. In the model it sends
//! `v1, v2, ...` from the start; in the engine the application hands it records (`Send`) and
//! is told each one's outcome (`SendResult`).
//!
//! Rules encoded:
//! - `acks=0` sends and forgets; `acks=1` and `acks=all` wait for the leader's answer.
//! - At most `max.in.flight` requests are unanswered at once.
//! - Retriable errors are retried up to `retries` times per record; after that, or on a
//!   non-retriable error, the send fails and the application is told. A timeout, and
//!   `NOT_ENOUGH_REPLICAS_AFTER_APPEND`, are indeterminate: the record may be in the log.
//! - With `enable.idempotence` every record carries a sequence number that a retry keeps, so the
//!   leader can drop the duplicate; without it a retry of an appended record duplicates it.
//! - A record larger than `message.max.bytes` on its own is refused at once with
//!   `RECORD_TOO_LARGE`, before it gets a sequence number, and never sent; a batch never grows
//!   past `message.max.bytes` ([`crate::limits`]).
//! - An error that says the leader moved triggers a metadata request to the controller; the
//!   retries go out once the answer is in.
//! - Where the cluster can outlive it (the engine on a data directory, connected clients), an
//!   idempotent producer asks the controller for its producer id (KIP-98 `InitProducerId`)
//!   and sends nothing before the answer; the model's producers have fixed distinct ids
//!   ([`ActorParams::allocate_producer_ids`] says why that cannot change a verdict).

use crate::config::{Acks, Config};
use crate::limits::{produce_fits, record_bytes};
use crate::msg::{AppMsg, ErrorCode, Msg, ProducerRecord, RequestId, Timer};
use crate::node::{timer_range, ActorParams, Node, NodeStorage, Topology};
use crate::types::{BrokerId, CorrelationId, Epoch, Offset, ProducerId, Sequence, Value};
use serde::{Deserialize, Serialize};
use stateright::actor::Out;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Producer {
    pub topology: Topology,
    pub producer_id: ProducerId,
    /// The producer's settings (`acks`, `retries`, `enable.idempotence`,
    /// `max.in.flight.requests.per.connection`) and the records a model run sends.
    pub config: Config,
    /// How the host runs it: the application the engine's records come from, batches, byte
    /// limits, request timeouts.
    pub params: ActorParams,
}

/// What became of one record, from the application's point of view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged at this offset.
    Acked(Offset),
    /// Failed for certain: not in the log.
    Failed(ErrorCode),
    /// Failed, but may be in the log.
    Indeterminate(ErrorCode),
    /// Sent with `acks=0`: nothing will be known.
    Sent,
}

impl Outcome {
    /// What a batch's outcome (one `ProduceResponse`, one `SendResult`) says of its `i`-th
    /// record: a batch is appended contiguously, so an acknowledgement at `base` puts record
    /// `i` at `base + i`; any other outcome is the same for every record.
    pub fn of_record(&self, i: u32) -> Outcome {
        match self {
            Outcome::Acked(base) => Outcome::Acked(base.plus(i as usize)),
            other => other.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InFlight {
    pub request: RequestId,
    /// Record indices `first..first + count` (0-based; record i has value `v{i+1}`).
    pub first: u32,
    pub count: u32,
}

/// Records `first..first + count` sent as one request, and retried as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Batch {
    pub first: u32,
    pub count: u32,
}

/// Where an idempotent producer's id comes from ([`ActorParams::allocate_producer_ids`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProducerIdState {
    /// The actor's own fixed id (the model's producers, and non-idempotent ones).
    #[default]
    Fixed,
    /// `InitProducerId` sent with this request number; nothing is produced until the answer.
    Asking(RequestId),
    /// The id the controller allocated.
    Allocated(ProducerId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerState {
    /// Each record's value until its outcome is known (then dropped, to free the payload).
    pub values: Vec<Option<Value>>,
    /// Each record's correlation id, as the application named it in `Send`: what `SendResult`
    /// names the record by. Empty without an application (the model's producers: so the
    /// checker's states, and their counts, are as they were).
    pub ids: Vec<CorrelationId>,
    /// The leader as last learned, and its epoch.
    pub leader: Option<(BrokerId, Epoch)>,
    pub metadata_pending: bool,
    /// The next record never sent yet.
    pub next_record: u32,
    pub in_flight: Vec<InFlight>,
    /// Failed requests waiting to be sent again, oldest first.
    pub retry: Vec<Batch>,
    /// Attempts made per record.
    pub attempts: Vec<u8>,
    /// Per record: an earlier attempt ended indeterminately (timed out, or was appended
    /// without enough replicas), so the record may be in the log whatever the next attempt says.
    pub maybe_appended: Vec<bool>,
    pub next_request: u32,
    /// What became of each record that is done (ghost state for the properties).
    pub outcomes: Vec<Option<Outcome>>,
    /// Records refused as too large before they were sent, in order: they take no sequence
    /// number. Always empty in the model (see [`crate::limits`]).
    pub refused: Vec<u32>,
    /// The producer id, when the controller allocates it. Always `Fixed` in the model.
    #[serde(default)]
    pub producer_id: ProducerIdState,
}

impl ProducerState {
    /// What every producer step keeps true (checked after each step in debug builds, by
    /// `Node`): one entry per record in each per-record vector; every batch in flight or
    /// waiting to be retried holds records already handed over, with no outcome yet, and no
    /// record is in two of them.
    pub fn assert_invariants(&self) {
        let n = self.values.len();
        debug_assert!(
            self.outcomes.len() == n && self.attempts.len() == n && self.maybe_appended.len() == n,
            "per-record vectors of different lengths: {self:?}"
        );
        debug_assert!(
            self.ids.is_empty() || self.ids.len() == n,
            "correlation ids for some records only: {self:?}"
        );
        debug_assert!(
            self.next_record as usize <= n,
            "next record past the end: {self:?}"
        );
        let batches = self
            .in_flight
            .iter()
            .map(|f| (f.first, f.count))
            .chain(self.retry.iter().map(|b| (b.first, b.count)));
        let mut seen = vec![false; n];
        for (first, count) in batches {
            for i in first..first + count {
                let i = i as usize;
                debug_assert!(
                    i < n && i < self.next_record as usize,
                    "a batch of records never handed over: {self:?}"
                );
                debug_assert!(
                    self.outcomes[i].is_none(),
                    "record {i} is pending and done: {self:?}"
                );
                debug_assert!(!seen[i], "record {i} in two pending batches: {self:?}");
                seen[i] = true;
            }
        }
    }

    /// Values acknowledged, in send order, with their offsets.
    pub fn acked(&self) -> impl Iterator<Item = (u32, Offset)> + '_ {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Some(Outcome::Acked(offset)) => Some((i as u32 + 1, *offset)),
                _ => None,
            })
    }

    /// Every record handed over so far has its outcome, and no request is in flight or waiting
    /// to be retried: the producer will append nothing more until it is given a new record.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
            && self.retry.is_empty()
            && self.outcomes.iter().all(Option::is_some)
    }

    /// Record `index`'s sequence number: its index, less the refused records before it (they
    /// were never sent, so they leave no gap).
    pub fn sequence_of(&self, index: u32) -> Sequence {
        Sequence(index - self.refused.partition_point(|&r| r < index) as u32)
    }

    pub fn any_failed(&self) -> bool {
        self.outcomes.iter().any(|o| {
            matches!(
                o,
                Some(Outcome::Failed(_)) | Some(Outcome::Indeterminate(_))
            )
        })
    }
}

type O = Out<Node>;

impl Producer {
    pub fn value_of(index: u32) -> Value {
        Value::Numbered(index + 1)
    }

    /// The records the producer sends of its own from the start: the configuration's in the
    /// model; none where an application hands it records (the engine).
    fn own_records(&self) -> u32 {
        if self.params.application.is_some() {
            0
        } else {
            self.config.records
        }
    }

    pub fn on_start(&self, initial_leader: Option<(BrokerId, Epoch)>, o: &mut O) -> ProducerState {
        let n = self.own_records() as usize;
        let mut state = ProducerState {
            values: (0..self.own_records())
                .map(|i| Some(Producer::value_of(i)))
                .collect(),
            leader: initial_leader,
            metadata_pending: false,
            next_record: 0,
            in_flight: Vec::new(),
            retry: Vec::new(),
            attempts: vec![0; n],
            maybe_appended: vec![false; n],
            next_request: 0,
            outcomes: vec![None; n],
            refused: Vec::new(),
            // The model's records have no application to be named to; the engine's come
            // with their ids in `Send`.
            ids: Vec::new(),
            producer_id: ProducerIdState::Fixed,
        };
        o.save(NodeStorage::None);
        if self.params.allocate_producer_ids && self.config.idempotence {
            self.ask_for_producer_id(&mut state, o);
        }
        self.maybe_send(&mut state, o);
        state
    }

    /// KIP-98: asks the controller for a producer id of its own; the request timer
    /// (`MetadataTimeout`, the engine's) asks again if the answer is lost. An answer to an
    /// earlier request, if it comes too, only wastes an id.
    fn ask_for_producer_id(&self, state: &mut ProducerState, o: &mut O) {
        let request = RequestId(state.next_request);
        state.next_request += 1;
        state.producer_id = ProducerIdState::Asking(request);
        o.send(self.topology.controller(), Msg::InitProducerId { request });
        o.set_timer(Timer::MetadataTimeout, timer_range(Timer::MetadataTimeout));
    }

    /// The id produce requests carry: `None` for a producer without idempotence, or while
    /// it waits for its id (then it sends nothing).
    fn current_producer_id(&self, state: &ProducerState) -> Option<ProducerId> {
        match state.producer_id {
            ProducerIdState::Fixed => Some(self.producer_id),
            ProducerIdState::Asking(_) => None,
            ProducerIdState::Allocated(id) => Some(id),
        }
    }

    /// Whether this producer ignores `msg` whenever it arrives from now on: an answer to a
    /// produce request it no longer waits for (it timed out, or was answered already).
    /// Request ids are never reused, and in the model the producer never restarts. The
    /// checker drops such messages at once (`InsyncModel::drop_stale`).
    pub fn ignores_forever(&self, state: &ProducerState, msg: &Msg) -> bool {
        match msg {
            Msg::ProduceResponse { request, .. } => {
                request.0 < state.next_request
                    && !state.in_flight.iter().any(|f| f.request == *request)
            }
            _ => false,
        }
    }

    pub fn on_msg(&self, state: &mut ProducerState, msg: Msg, o: &mut O) {
        match msg {
            Msg::ProduceResponse { request, result } => {
                let Some(at) = state.in_flight.iter().position(|f| f.request == request) else {
                    return; // Answer to a request that already timed out.
                };
                let done = state.in_flight.remove(at);
                if at == 0 {
                    // `request.timeout.ms` now runs for the next oldest request.
                    o.cancel_timer(Timer::RequestTimeout);
                }
                match result {
                    Ok(base) => {
                        for i in 0..done.count {
                            self.finish(state, done.first + i, Outcome::Acked(base).of_record(i));
                        }
                        self.tell(state, done.first, done.count, Outcome::Acked(base), o);
                    }
                    Err(error) => self.on_error(state, &done, error, o),
                }
            }
            Msg::App(AppMsg::Send { id, value }) => {
                let index = state.values.len() as u32;
                let too_large =
                    !produce_fits([record_bytes(&value)], self.params.limits.message_bytes_max);
                state.values.push(Some(value));
                state.ids.push(id);
                state.outcomes.push(None);
                state.attempts.push(0);
                state.maybe_appended.push(false);
                if too_large {
                    let refused = Outcome::Failed(ErrorCode::RecordTooLarge);
                    self.finish(state, index, refused.clone());
                    state.refused.push(index);
                    self.tell(state, index, 1, refused, o);
                }
            }
            Msg::InitProducerIdResponse { request, producer } => {
                if state.producer_id != ProducerIdState::Asking(request) {
                    return; // The answer to a request asked again, or to no one here.
                }
                state.producer_id = ProducerIdState::Allocated(producer);
            }
            Msg::MetadataResponse {
                leader,
                leader_epoch,
            } => {
                state.leader = leader.map(|l| (l, leader_epoch));
                if self.params.application.is_some() {
                    o.cancel_timer(Timer::MetadataTimeout);
                    if matches!(state.producer_id, ProducerIdState::Asking(_)) {
                        // The same timer still covers the producer id's request.
                        o.set_timer(Timer::MetadataTimeout, timer_range(Timer::MetadataTimeout));
                    }
                }
                if leader.is_none() {
                    // Offline (LEADER_NOT_AVAILABLE): ask again after `retry.backoff.ms`.
                    o.set_timer(Timer::MetadataBackoff, timer_range(Timer::MetadataBackoff));
                    return;
                }
                state.metadata_pending = false;
            }
            _ => {}
        }
        self.maybe_send(state, o);
    }

    pub fn on_timeout(&self, state: &mut ProducerState, timer: &Timer, o: &mut O) {
        match timer {
            Timer::RequestTimeout => {
                for f in std::mem::take(&mut state.in_flight) {
                    self.on_error(state, &f, ErrorCode::RequestTimedOut, o);
                }
            }
            Timer::MetadataBackoff | Timer::MetadataTimeout => {
                state.metadata_pending = false;
                if matches!(state.producer_id, ProducerIdState::Asking(_)) {
                    self.ask_for_producer_id(state, o);
                }
            }
            _ => return,
        }
        self.maybe_send(state, o);
    }

    fn on_error(&self, state: &mut ProducerState, failed: &InFlight, error: ErrorCode, o: &mut O) {
        if error.needs_metadata() {
            state.leader = None;
        }
        // Records of one request share their fate: all retried, or all failed alike.
        let retry = error.is_retriable()
            && (failed.first..failed.first + failed.count)
                .all(|i| u32::from(state.attempts[i as usize]) <= self.config.retries);
        // A definite refusal of this attempt says nothing of an earlier one that may have
        // been appended: the record's fate stays unknown.
        let records = failed.first as usize..(failed.first + failed.count) as usize;
        let outcome = if error.is_indeterminate()
            || state.maybe_appended[records.clone()].iter().any(|&m| m)
        {
            Outcome::Indeterminate(error)
        } else {
            Outcome::Failed(error)
        };
        if error.is_indeterminate() {
            state.maybe_appended[records].fill(true);
        }
        if retry {
            let batch = Batch {
                first: failed.first,
                count: failed.count,
            };
            if !state.retry.contains(&batch) {
                state.retry.push(batch);
                state.retry.sort_unstable();
            }
        } else {
            for index in failed.first..failed.first + failed.count {
                self.finish(state, index, outcome.clone());
            }
        }
        if !retry {
            self.tell(state, failed.first, failed.count, outcome, o);
        }
    }

    /// Records a record's final outcome.
    fn finish(&self, state: &mut ProducerState, index: u32, outcome: Outcome) {
        let i = index as usize;
        state.values[i] = None;
        state.outcomes[i] = Some(outcome);
    }

    /// Tells the application, if there is one, what became of a run of records, naming them
    /// by the correlation ids they came with, in the run's order.
    fn tell(&self, state: &ProducerState, first: u32, count: u32, outcome: Outcome, o: &mut O) {
        if let Some(app) = self.params.application {
            let ids = state.ids[first as usize..(first + count) as usize].into();
            o.send(app, Msg::App(AppMsg::SendResult { ids, outcome }));
        }
    }

    /// Sends what it may: retries first (in order), then new records, up to `max.in.flight`
    /// requests, each with up to `batch_records` consecutive records.
    fn maybe_send(&self, state: &mut ProducerState, o: &mut O) {
        let Some((leader, _)) = state.leader else {
            let waiting =
                !state.retry.is_empty() || (state.next_record as usize) < state.values.len();
            if waiting && !state.metadata_pending {
                state.metadata_pending = true;
                o.send(self.topology.controller(), Msg::Metadata);
                if self.params.application.is_some() {
                    // The engine's network can lose the request: ask again if no answer comes
                    // (the model's reliable network never loses it).
                    o.set_timer(Timer::MetadataTimeout, timer_range(Timer::MetadataTimeout));
                }
            }
            self.arm_timeout(state, o);
            return;
        };
        let producer = self.current_producer_id(state);
        if self.config.idempotence && producer.is_none() {
            return; // No id yet: nothing goes out before the controller's answer.
        }
        while self.config.acks == Acks::Zero || state.in_flight.len() < self.config.max_in_flight {
            let batch = self.next_batch(state);
            if batch.is_empty() {
                break;
            }
            let request = RequestId(state.next_request);
            state.next_request += 1;
            let records: Arc<[ProducerRecord]> = batch
                .iter()
                .map(|&i| {
                    state.attempts[i as usize] = state.attempts[i as usize].saturating_add(1);
                    ProducerRecord {
                        value: state.values[i as usize]
                            .clone()
                            .expect("a record is kept until its outcome is known"),
                        sequence: state.sequence_of(i),
                    }
                })
                .collect();
            o.send(
                self.topology.broker(leader),
                Msg::Produce {
                    request,
                    producer: producer.filter(|_| self.config.idempotence),
                    acks: self.config.acks,
                    records,
                },
            );
            if self.config.acks == Acks::Zero {
                for &i in &batch {
                    self.finish(state, i, Outcome::Sent);
                }
                self.tell(state, batch[0], batch.len() as u32, Outcome::Sent, o);
            } else {
                state.in_flight.push(InFlight {
                    request,
                    first: batch[0],
                    count: batch.len() as u32,
                });
            }
        }
        self.arm_timeout(state, o);
    }

    /// The next request's records: the oldest failed batch again, whole and alone (as
    /// Kafka's producer resends the same `ProducerBatch`, so the leader can recognise a
    /// duplicate by its first and last sequence); else up to `batch_records` new records.
    fn next_batch(&self, state: &mut ProducerState) -> Vec<u32> {
        if !state.retry.is_empty() {
            let again = state.retry.remove(0);
            return (again.first..again.first + again.count).collect();
        }
        // Records refused before sending are done already: skip them.
        let len = state.values.len() as u32;
        while state.next_record < len && state.outcomes[state.next_record as usize].is_some() {
            state.next_record += 1;
        }
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while state.next_record < len && batch.len() < self.params.batch_records {
            let i = state.next_record as usize;
            // A batch is contiguous: it ends before a refused record.
            let Some(value) = state.values[i]
                .as_ref()
                .filter(|_| state.outcomes[i].is_none())
            else {
                break;
            };
            let size = record_bytes(value);
            if !batch.is_empty()
                && !produce_fits([bytes, size], self.params.limits.message_bytes_max)
            {
                break;
            }
            bytes = bytes.saturating_add(size);
            batch.push(state.next_record);
            state.next_record += 1;
        }
        batch
    }

    fn arm_timeout(&self, state: &ProducerState, o: &mut O) {
        // `request.timeout.ms`: armed whenever a request is in flight, in the model too. Until
        // 2026-12-06 the model armed it only where an answer could be lost for good (a crash, a
        // lossy network), on the argument that an early timeout on a slow broker adds only
        // retries other errors already explore. That was wrong for `acks=1` without
        // idempotence: there no error follows an append, and only a timeout makes the
        // producer write a record twice (`tests/reductions.rs`,
        // `a_slow_broker_times_out_and_the_retry_duplicates_with_acks_1`).
        if !state.in_flight.is_empty() {
            o.set_timer(Timer::RequestTimeout, timer_range(Timer::RequestTimeout));
        } else {
            o.cancel_timer(Timer::RequestTimeout);
        }
    }
}

/// The producer's rules, one handler call at a time, with exact commands and states.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::SizeLimits;
    use crate::testkit::sets;
    use stateright::actor::Command;
    use stateright::actor::Id;

    const APP: usize = 9;

    /// An acks=all producer of 2 records, without idempotence, one request in flight, on a
    /// reliable network without crashes (so without request timeouts).
    fn producer() -> Producer {
        let config = Config {
            records: 2,
            crashes: 0,
            ..Config::default()
        };
        Producer {
            topology: Topology {
                replicas: 3,
                producers: 1,
                consumer: false,
            },
            producer_id: ProducerId(1),
            params: ActorParams::model(&config.clone().validate().expect("valid")),
            config,
        }
    }

    fn leader() -> Option<(BrokerId, Epoch)> {
        Some((BrokerId(0), Epoch(1)))
    }

    /// The invariant check can fail: a pending record with an outcome, and one record in two
    /// pending batches.
    #[test]
    #[cfg(debug_assertions)]
    fn the_invariant_check_catches_a_pending_record_that_is_done_or_pending_twice() {
        let p = producer();
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        state.assert_invariants();
        assert_eq!(state.in_flight.len(), 1, "the first record is in flight");
        let mut done = state.clone();
        done.outcomes[0] = Some(Outcome::Sent);
        let mut twice = state.clone();
        twice.retry.push(Batch { first: 0, count: 1 });
        state.next_record = 9;
        for bad in [done, twice, state] {
            let caught = std::panic::catch_unwind(|| bad.assert_invariants());
            assert!(caught.is_err(), "not caught: {bad:?}");
        }
    }

    /// The produce requests in `o`: destination, request id, producer id, acks, and each
    /// record's value number and sequence.
    #[allow(clippy::type_complexity)]
    fn produces(o: &O) -> Vec<(usize, u32, Option<ProducerId>, Acks, Vec<(u32, u32)>)> {
        o.iter()
            .filter_map(|c| match c {
                Command::Send(
                    dst,
                    Msg::Produce {
                        request,
                        producer,
                        acks,
                        records,
                    },
                ) => Some((
                    usize::from(*dst),
                    request.0,
                    *producer,
                    *acks,
                    records
                        .iter()
                        .map(|r| match r.value {
                            Value::Numbered(n) => (n, r.sequence.0),
                            Value::Bytes(_) => panic!("the model numbers its values"),
                        })
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Starts `p` (which takes its records from the application) and hands it `n` records,
    /// the values the model's producer would send of its own.
    fn start_with_sends(p: &Producer, n: u32) -> (ProducerState, O) {
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        for i in 0..n {
            p.on_msg(
                &mut state,
                Msg::App(AppMsg::Send {
                    id: CorrelationId(u64::from(i)),
                    value: Producer::value_of(i),
                }),
                &mut o,
            );
        }
        (state, o)
    }

    fn sends_to(o: &O, to: usize) -> Vec<Msg> {
        o.iter()
            .filter_map(|c| match c {
                Command::Send(dst, m) if usize::from(*dst) == to => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn cancels(o: &O, timer: Timer) -> bool {
        o.iter()
            .any(|c| matches!(c, Command::CancelTimer(t) if *t == timer))
    }

    fn answer(
        p: &Producer,
        state: &mut ProducerState,
        request: u32,
        result: Result<Offset, ErrorCode>,
    ) -> O {
        let mut o = O::new();
        p.on_msg(
            state,
            Msg::ProduceResponse {
                request: RequestId(request),
                result,
            },
            &mut o,
        );
        o
    }

    /// A producer's state just started (its first record in flight), and the same once
    /// both its records are acknowledged.
    fn started_and_both_acked(p: &Producer) -> (ProducerState, ProducerState) {
        let start = p.on_start(leader(), &mut O::new());
        let mut acked = start.clone();
        answer(p, &mut acked, 0, Ok(Offset(0)));
        answer(p, &mut acked, 1, Ok(Offset(1)));
        (start, acked)
    }

    /// Idle means all three: nothing in flight, nothing waiting to be retried, and every
    /// record given an outcome. Each alone keeps the producer busy (the engine's runner waits
    /// on it before it judges a run).
    #[test]
    fn idle_needs_nothing_in_flight_nothing_to_retry_and_every_outcome() {
        let p = producer();
        let (start, idle) = started_and_both_acked(&p);
        assert!(idle.is_idle());
        let mut in_flight = idle.clone();
        in_flight.in_flight = start.in_flight.clone();
        let mut to_retry = idle.clone();
        to_retry.retry.push(Batch { first: 1, count: 1 });
        let mut unresolved = idle.clone();
        unresolved.outcomes[1] = None;
        for busy in [in_flight, to_retry, unresolved] {
            assert!(!busy.is_idle(), "{busy:?}");
        }
    }

    /// Without a leader, the producer asks the controller only if it has something to send:
    /// an idle producer whose leader went away stays quiet, one with a record waiting asks.
    #[test]
    fn without_a_leader_only_a_producer_with_work_asks_for_metadata() {
        let p = producer();
        let (_, state) = started_and_both_acked(&p);
        let asks = |state: &mut ProducerState| {
            let mut o = O::new();
            p.on_timeout(state, &Timer::MetadataBackoff, &mut o);
            o.iter()
                .any(|c| matches!(c, Command::Send(_, Msg::Metadata)))
        };
        let mut idle = state.clone();
        idle.leader = None;
        assert!(!asks(&mut idle), "nothing to send");
        let mut waiting = idle.clone();
        waiting.outcomes[1] = None;
        waiting.retry.push(Batch { first: 1, count: 1 });
        assert!(asks(&mut waiting), "a record waits for a leader");
    }

    /// An answer is stale ([`Producer::ignores_forever`]) once its request was answered or
    /// given up, never while it is in flight, and never for a request not sent yet.
    #[test]
    fn stale_answers_are_those_to_requests_no_longer_in_flight() {
        let p = producer();
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        let reply = |request: u32| Msg::ProduceResponse {
            request: RequestId(request),
            result: Ok(Offset(0)),
        };
        assert!(!p.ignores_forever(&state, &reply(0)), "in flight");
        assert!(!p.ignores_forever(&state, &reply(1)), "not sent yet");
        answer(&p, &mut state, 0, Ok(Offset(0)));
        assert!(p.ignores_forever(&state, &reply(0)), "answered");
        let before = state.clone();
        let o = answer(&p, &mut state, 0, Ok(Offset(0)));
        assert_eq!(state, before, "a stale answer changes nothing");
        assert!(o.is_empty());
        assert!(!p.ignores_forever(&state, &Msg::Metadata));
    }

    #[test]
    fn it_sends_one_record_at_a_time_and_the_next_on_an_ack() {
        let p = producer();
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        assert_eq!(produces(&o), vec![(0, 0, None, Acks::All, vec![(1, 0)])]);
        assert_eq!(state.attempts, vec![1, 0]);
        assert_eq!(state.next_record, 1);
        assert_eq!(state.next_request, 1);
        assert!(!state.is_idle());
        let o = answer(&p, &mut state, 0, Ok(Offset(4)));
        assert_eq!(state.outcomes, vec![Some(Outcome::Acked(Offset(4))), None]);
        assert_eq!(
            state.values[0], None,
            "the payload is dropped once acknowledged"
        );
        assert_eq!(produces(&o), vec![(0, 1, None, Acks::All, vec![(2, 1)])]);
        assert!(cancels(&o, Timer::RequestTimeout));
        let o = answer(&p, &mut state, 1, Ok(Offset(5)));
        assert!(produces(&o).is_empty());
        assert!(state.is_idle());
        assert_eq!(
            state.acked().collect::<Vec<_>>(),
            vec![(1, Offset(4)), (2, Offset(5))]
        );
        assert!(!state.any_failed());
    }

    #[test]
    fn max_in_flight_and_batches_bound_what_goes_out() {
        let p = Producer {
            config: Config {
                max_in_flight: 2,
                records: 3,
                ..producer().config
            },
            ..producer()
        };
        let mut o = O::new();
        let state = p.on_start(leader(), &mut o);
        assert_eq!(
            produces(&o),
            vec![
                (0, 0, None, Acks::All, vec![(1, 0)]),
                (0, 1, None, Acks::All, vec![(2, 1)])
            ]
        );
        assert_eq!(state.in_flight.len(), 2);
        let p = Producer {
            config: Config {
                records: 3,
                idempotence: true,
                ..producer().config
            },
            params: ActorParams {
                batch_records: 2,
                ..producer().params
            },
            ..producer()
        };
        let mut o = O::new();
        let mut state = p.on_start(Some((BrokerId(2), Epoch(1))), &mut o);
        assert_eq!(
            produces(&o),
            vec![(2, 0, Some(ProducerId(1)), Acks::All, vec![(1, 0), (2, 1)])]
        );
        // A batch acknowledged at 7 puts its records at 7 and 8.
        let o = answer(&p, &mut state, 0, Ok(Offset(7)));
        assert_eq!(
            state.outcomes,
            vec![
                Some(Outcome::Acked(Offset(7))),
                Some(Outcome::Acked(Offset(8))),
                None
            ]
        );
        assert_eq!(
            produces(&o),
            vec![(2, 1, Some(ProducerId(1)), Acks::All, vec![(3, 2)])]
        );
    }

    #[test]
    fn acks_0_sends_everything_and_knows_nothing() {
        let p = Producer {
            config: Config {
                acks: Acks::Zero,
                records: 3,
                ..producer().config
            },
            params: ActorParams {
                application: Some(Id::from(APP)),
                ..producer().params
            },
            ..producer()
        };
        let (state, o) = start_with_sends(&p, 3);
        assert_eq!(
            produces(&o).len(),
            3,
            "max.in.flight does not hold back acks=0"
        );
        assert!(state.in_flight.is_empty());
        assert_eq!(state.outcomes, vec![Some(Outcome::Sent); 3]);
        assert!(state.is_idle());
        assert_eq!(
            sends_to(&o, APP),
            (0..3)
                .map(|i| Msg::App(AppMsg::SendResult {
                    ids: [CorrelationId(i)].into(),
                    outcome: Outcome::Sent
                }))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_moved_leader_is_asked_for_and_the_record_retried_with_its_sequence() {
        let p = Producer {
            config: Config {
                idempotence: true,
                ..producer().config
            },
            ..producer()
        };
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        let o = answer(&p, &mut state, 0, Err(ErrorCode::NotLeaderOrFollower));
        assert_eq!(state.leader, None);
        assert!(state.metadata_pending);
        assert_eq!(sends_to(&o, 3), vec![Msg::Metadata]);
        assert!(produces(&o).is_empty());
        assert_eq!(state.retry, vec![Batch { first: 0, count: 1 }]);
        assert_eq!(
            state.maybe_appended,
            vec![true, false],
            "NOT_LEADER may follow an append"
        );
        // Offline: ask again after the backoff, not at once.
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::MetadataResponse {
                leader: None,
                leader_epoch: Epoch(2),
            },
            &mut o,
        );
        assert!(sets(&o, Timer::MetadataBackoff));
        assert!(sends_to(&o, 3).is_empty());
        let mut o = O::new();
        p.on_timeout(&mut state, &Timer::MetadataBackoff, &mut o);
        assert_eq!(sends_to(&o, 3), vec![Msg::Metadata]);
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::MetadataResponse {
                leader: Some(BrokerId(1)),
                leader_epoch: Epoch(2),
            },
            &mut o,
        );
        assert_eq!(state.leader, Some((BrokerId(1), Epoch(2))));
        assert!(!state.metadata_pending);
        // The retry goes first, with its sequence kept.
        assert_eq!(
            produces(&o),
            vec![(1, 1, Some(ProducerId(1)), Acks::All, vec![(1, 0)])]
        );
        assert_eq!(state.attempts, vec![2, 0]);
        assert!(state.retry.is_empty());
        // Its retries spent, the record fails; the first attempt may be in the log.
        let o = answer(&p, &mut state, 1, Err(ErrorCode::NotEnoughReplicas));
        assert_eq!(
            state.outcomes,
            vec![
                Some(Outcome::Indeterminate(ErrorCode::NotEnoughReplicas)),
                None
            ]
        );
        assert!(state.any_failed());
        assert_eq!(
            produces(&o),
            vec![(1, 2, Some(ProducerId(1)), Acks::All, vec![(2, 1)])]
        );
    }

    #[test]
    fn a_non_retriable_error_fails_the_record_at_once() {
        let p = Producer {
            config: Config {
                retries: 5,
                ..producer().config
            },
            params: ActorParams {
                application: Some(Id::from(APP)),
                ..producer().params
            },
            ..producer()
        };
        let (mut state, _) = start_with_sends(&p, 2);
        let o = answer(&p, &mut state, 0, Err(ErrorCode::OffsetOutOfRange));
        assert_eq!(
            state.outcomes,
            vec![Some(Outcome::Failed(ErrorCode::OffsetOutOfRange)), None]
        );
        assert_eq!(state.leader, leader(), "not a leader change");
        assert_eq!(
            sends_to(&o, APP),
            vec![Msg::App(AppMsg::SendResult {
                ids: [CorrelationId(0)].into(),
                outcome: Outcome::Failed(ErrorCode::OffsetOutOfRange)
            })]
        );
        assert_eq!(produces(&o), vec![(0, 1, None, Acks::All, vec![(2, 1)])]);
    }

    #[test]
    fn retries_count_attempts_per_record() {
        // retries=0: the first retriable error is final.
        let p = Producer {
            config: Config {
                retries: 0,
                ..producer().config
            },
            ..producer()
        };
        let mut state = p.on_start(leader(), &mut O::new());
        answer(&p, &mut state, 0, Err(ErrorCode::NotEnoughReplicas));
        assert_eq!(
            state.outcomes[0],
            Some(Outcome::Failed(ErrorCode::NotEnoughReplicas))
        );
        // retries=2: two retries, then final.
        let p = Producer {
            config: Config {
                retries: 2,
                ..producer().config
            },
            ..producer()
        };
        let mut state = p.on_start(leader(), &mut O::new());
        for request in 0..2 {
            let o = answer(&p, &mut state, request, Err(ErrorCode::NotEnoughReplicas));
            assert_eq!(state.outcomes[0], None, "retry {request}");
            assert_eq!(produces(&o)[0].4, vec![(1, 0)]);
        }
        answer(&p, &mut state, 2, Err(ErrorCode::NotEnoughReplicas));
        assert_eq!(
            state.outcomes[0],
            Some(Outcome::Failed(ErrorCode::NotEnoughReplicas))
        );
        assert_eq!(state.attempts, vec![3, 1]);
    }

    #[test]
    fn an_answer_to_an_unknown_request_is_ignored() {
        let p = producer();
        let mut state = p.on_start(leader(), &mut O::new());
        let before = state.clone();
        let o = answer(&p, &mut state, 7, Ok(Offset(0)));
        assert_eq!(state, before);
        assert!(produces(&o).is_empty());
    }

    #[test]
    fn a_request_timeout_is_armed_while_requests_fly_and_fails_them_indeterminately() {
        let p = Producer {
            config: Config {
                max_in_flight: 2,
                ..producer().config
            },
            params: ActorParams {
                request_timeouts: true,
                ..producer().params
            },
            ..producer()
        };
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        assert!(sets(&o, Timer::RequestTimeout));
        let mut o = O::new();
        p.on_timeout(&mut state, &Timer::RequestTimeout, &mut o);
        // Both in flight time out, ask for metadata, and wait to be retried in order.
        assert_eq!(
            state.retry,
            vec![Batch { first: 0, count: 1 }, Batch { first: 1, count: 1 }]
        );
        assert_eq!(state.maybe_appended, vec![true, true]);
        assert_eq!(state.leader, None);
        assert_eq!(sends_to(&o, 3), vec![Msg::Metadata]);
        assert!(cancels(&o, Timer::RequestTimeout), "nothing in flight");
        // An answer to a timed-out request changes nothing.
        let before = state.clone();
        answer(&p, &mut state, 0, Ok(Offset(0)));
        assert_eq!(state, before);
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::MetadataResponse {
                leader: Some(BrokerId(0)),
                leader_epoch: Epoch(1),
            },
            &mut o,
        );
        assert_eq!(
            produces(&o),
            vec![
                (0, 2, None, Acks::All, vec![(1, 0)]),
                (0, 3, None, Acks::All, vec![(2, 1)])
            ]
        );
        assert!(sets(&o, Timer::RequestTimeout));
        // The model's producer, on a reliable network without crashes, arms it too: a slow
        // broker is enough to time a request out.
        let mut o = O::new();
        producer().on_start(leader(), &mut o);
        assert!(!producer().params.request_timeouts && producer().config.crashes == 0);
        assert!(sets(&o, Timer::RequestTimeout));
        assert!(!cancels(&o, Timer::RequestTimeout));
    }

    #[test]
    fn the_oldest_answer_restarts_the_request_timeout_a_later_one_does_not() {
        let p = Producer {
            config: Config {
                max_in_flight: 2,
                records: 2,
                ..producer().config
            },
            params: ActorParams {
                request_timeouts: true,
                ..producer().params
            },
            ..producer()
        };
        let mut state = p.on_start(leader(), &mut O::new());
        let o = answer(&p, &mut state, 1, Ok(Offset(1)));
        assert!(!cancels(&o, Timer::RequestTimeout), "the oldest still runs");
        assert!(sets(&o, Timer::RequestTimeout));
        let o = answer(&p, &mut state, 0, Ok(Offset(0)));
        assert!(cancels(&o, Timer::RequestTimeout));
        assert!(!sets(&o, Timer::RequestTimeout));
    }

    /// Each produce request in `o` as its records' value lengths and sequence numbers.
    fn produced_bytes(o: &O) -> Vec<Vec<(usize, u32)>> {
        o.iter()
            .filter_map(|c| match c {
                Command::Send(_, Msg::Produce { records, .. }) => Some(
                    records
                        .iter()
                        .map(|r| match &r.value {
                            Value::Bytes(b) => (b.len(), r.sequence.0),
                            Value::Numbered(_) => panic!("the engine sends bytes"),
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_record_over_message_max_bytes_is_refused_unsent_and_batches_stay_within_it() {
        let p = Producer {
            config: Config {
                idempotence: true,
                ..producer().config
            },
            params: ActorParams {
                application: Some(Id::from(APP)),
                batch_records: 10,
                limits: SizeLimits {
                    message_bytes_max: 100,
                    ..SizeLimits::UNLIMITED
                },
                ..producer().params
            },
            ..producer()
        };
        let mut state = p.on_start(leader(), &mut O::new());
        // Each record's id is ten times its length: not its index.
        let send = |state: &mut ProducerState, n: usize| {
            let mut o = O::new();
            let value = Value::Bytes(vec![1u8; n].into());
            let id = CorrelationId(10 * n as u64);
            p.on_msg(state, Msg::App(AppMsg::Send { id, value }), &mut o);
            o
        };
        assert_eq!(produced_bytes(&send(&mut state, 10)), vec![vec![(10, 0)]]);
        // Too large on its own: refused at once, never sent, no sequence number.
        let o = send(&mut state, 200);
        assert!(produced_bytes(&o).is_empty());
        assert_eq!(
            sends_to(&o, APP),
            vec![Msg::App(AppMsg::SendResult {
                ids: [CorrelationId(2000)].into(),
                outcome: Outcome::Failed(ErrorCode::RecordTooLarge)
            })]
        );
        for n in [10, 10, 60] {
            assert!(
                produced_bytes(&send(&mut state, n)).is_empty(),
                "one in flight"
            );
        }
        // The next batch holds what fits 100 bytes (26 + 26; a third record of 76 does not),
        // numbered on from the last sent record: no gap where the refused one was.
        let o = answer(&p, &mut state, 0, Ok(Offset(0)));
        assert_eq!(produced_bytes(&o), vec![vec![(10, 1), (10, 2)]]);
        let o = answer(&p, &mut state, 1, Ok(Offset(1)));
        assert_eq!(produced_bytes(&o), vec![vec![(60, 3)]]);
        let o = answer(&p, &mut state, 2, Ok(Offset(3)));
        assert!(produced_bytes(&o).is_empty());
        assert!(state.is_idle());
        assert_eq!(
            state.outcomes,
            vec![
                Some(Outcome::Acked(Offset(0))),
                Some(Outcome::Failed(ErrorCode::RecordTooLarge)),
                Some(Outcome::Acked(Offset(1))),
                Some(Outcome::Acked(Offset(2))),
                Some(Outcome::Acked(Offset(3))),
            ]
        );
    }

    #[test]
    fn an_idempotent_engine_producer_sends_nothing_before_the_controller_gives_it_an_id() {
        let p = Producer {
            params: ActorParams {
                application: Some(Id::from(APP)),
                allocate_producer_ids: true,
                ..producer().params
            },
            config: Config {
                idempotence: true,
                ..producer().config
            },
            ..producer()
        };
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        let ask = |request| Msg::InitProducerId {
            request: RequestId(request),
        };
        assert_eq!(sends_to(&o, 3), vec![ask(0)]);
        assert!(sets(&o, Timer::MetadataTimeout));
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::App(AppMsg::Send {
                id: CorrelationId(1),
                value: Value::Numbered(7),
            }),
            &mut o,
        );
        assert!(produces(&o).is_empty(), "no id yet");
        // The answer is lost: the timer asks again; the late answer to the first request
        // is ignored, the answer to the second one taken.
        let mut o = O::new();
        p.on_timeout(&mut state, &Timer::MetadataTimeout, &mut o);
        assert_eq!(sends_to(&o, 3), vec![ask(1)]);
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::InitProducerIdResponse {
                request: RequestId(0),
                producer: ProducerId(300),
            },
            &mut o,
        );
        assert!(produces(&o).is_empty(), "an answer to an earlier request");
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::InitProducerIdResponse {
                request: RequestId(1),
                producer: ProducerId(301),
            },
            &mut o,
        );
        assert_eq!(
            produces(&o),
            vec![(0, 2, Some(ProducerId(301)), Acks::All, vec![(7, 0)])]
        );
        assert_eq!(
            state.producer_id,
            ProducerIdState::Allocated(ProducerId(301))
        );
        // A metadata answer keeps the timer for an id still asked for.
        let mut state = p.on_start(None, &mut O::new());
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::MetadataResponse {
                leader: Some(BrokerId(0)),
                leader_epoch: Epoch(1),
            },
            &mut o,
        );
        assert!(sets(&o, Timer::MetadataTimeout));
        // The model's producers keep their fixed ids and never ask.
        let mut o = O::new();
        let model = Producer {
            config: p.config.clone(),
            ..producer()
        };
        let state = model.on_start(leader(), &mut o);
        assert_eq!(state.producer_id, ProducerIdState::Fixed);
        assert!(sends_to(&o, 3).is_empty());
        assert_eq!(produces(&o)[0].2, Some(ProducerId(1)));
    }

    #[test]
    fn the_engines_records_come_from_send() {
        let p = Producer {
            params: ActorParams {
                application: Some(Id::from(APP)),
                ..producer().params
            },
            ..producer()
        };
        let mut o = O::new();
        let mut state = p.on_start(leader(), &mut o);
        assert!(produces(&o).is_empty());
        assert!(state.is_idle());
        let mut o = O::new();
        p.on_msg(
            &mut state,
            Msg::App(AppMsg::Send {
                id: CorrelationId(5),
                value: Value::Numbered(42),
            }),
            &mut o,
        );
        assert_eq!(produces(&o), vec![(0, 0, None, Acks::All, vec![(42, 0)])]);
        assert_eq!(state.attempts, vec![1]);
        assert_eq!(state.maybe_appended, vec![false]);
        let o = answer(&p, &mut state, 0, Ok(Offset(3)));
        assert_eq!(
            sends_to(&o, APP),
            vec![Msg::App(AppMsg::SendResult {
                ids: [CorrelationId(5)].into(),
                outcome: Outcome::Acked(Offset(3))
            })]
        );
        // Without a leader the engine asks with a deadline.
        let mut o = O::new();
        p.on_timeout(&mut state, &Timer::MetadataTimeout, &mut o);
        state.leader = None;
        p.on_msg(
            &mut state,
            Msg::App(AppMsg::Send {
                id: CorrelationId(6),
                value: Value::Numbered(43),
            }),
            &mut o,
        );
        assert_eq!(sends_to(&o, 3), vec![Msg::Metadata]);
        assert!(sets(&o, Timer::MetadataTimeout));
    }

    /// Setup: a producer with an application, batches of up to three records, one request in
    /// flight.
    /// Steps: the application sends records with ids 40, 7, 1000 and 3 (none of them its
    /// index); the first goes out alone, the other three wait and go out together; the
    /// two requests are acknowledged.
    /// Expected: each `SendResult` names exactly the ids of its request's records, in batch
    /// order, so the application resolves each send with its own record's offset. (Named
    /// by position, results resolved the wrong sends when the application's count and the
    /// producer's drifted apart.)
    #[test]
    fn send_results_name_the_records_by_the_ids_they_came_with() {
        let p = Producer {
            params: ActorParams {
                application: Some(Id::from(APP)),
                batch_records: 3,
                ..producer().params
            },
            ..producer()
        };
        let mut state = p.on_start(leader(), &mut O::new());
        let mut o = O::new();
        for (id, value) in [(40, 1), (7, 2), (1000, 3), (3, 4)] {
            let send = AppMsg::Send {
                id: CorrelationId(id),
                value: Value::Numbered(value),
            };
            p.on_msg(&mut state, Msg::App(send), &mut o);
        }
        assert_eq!(
            produces(&o),
            vec![(0, 0, None, Acks::All, vec![(1, 0)])],
            "one request in flight"
        );
        let ids = |ids: &[u64]| -> Arc<[CorrelationId]> {
            ids.iter().copied().map(CorrelationId).collect()
        };
        let o = answer(&p, &mut state, 0, Ok(Offset(9)));
        assert_eq!(
            sends_to(&o, APP),
            vec![Msg::App(AppMsg::SendResult {
                ids: ids(&[40]),
                outcome: Outcome::Acked(Offset(9))
            })]
        );
        assert_eq!(
            produces(&o),
            vec![(0, 1, None, Acks::All, vec![(2, 1), (3, 2), (4, 3)])]
        );
        let o = answer(&p, &mut state, 1, Ok(Offset(10)));
        assert_eq!(
            sends_to(&o, APP),
            vec![Msg::App(AppMsg::SendResult {
                ids: ids(&[7, 1000, 3]),
                outcome: Outcome::Acked(Offset(10))
            })]
        );
        assert!(state.is_idle());
        assert_eq!(state.ids, &ids(&[40, 7, 1000, 3])[..]);
    }

    #[test]
    fn small_helpers() {
        assert_eq!(Producer::value_of(0), Value::Numbered(1));
        assert_eq!(
            Outcome::Acked(Offset(3)).of_record(2),
            Outcome::Acked(Offset(5))
        );
        assert_eq!(Outcome::Sent.of_record(2), Outcome::Sent);
    }
}
