//! The consumer: fetches committed records from the leader at its position and commits its
//! offset either after processing a batch (at-least-once) or before (at-most-once).
//!
//! Rules encoded:
//! - It reads only below the leader's high watermark (the leader enforces it).
//! - With `before`, the commit and the processing of a batch are two steps with a moment
//!   between them, so a crash can fall in between and the batch is never processed.
//! - With `manual`, only the application's `Commit` moves the committed offset, and never
//!   past the position nor backwards.
//! - A restarted consumer resumes from its last committed offset (`auto.offset.reset=earliest`
//!   when that offset is out of range).
//!
//! What the application did (read and processed records) is kept as ghost state in storage, so
//! the properties can judge it across a crash.

use crate::config::ConsumerCommit;
use crate::msg::{ErrorCode, Msg, Timer};
use crate::node::{timer_range, Node, NodeStorage, Topology};
use crate::types::{BrokerId, Epoch, Offset, Record, Value};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};

#[derive(Clone, Debug)]
pub struct Consumer {
    pub topology: Topology,
    pub commit: ConsumerCommit,
    /// Where processed records go (the engine's client API); none in the model.
    pub application: Option<Id>,
    /// Give up on a fetch after `request.timeout.ms` (the engine, where a crashed leader's
    /// connection drops the parked fetch). Off in the model: a fetch lost in a crash only
    /// stops the consumer, which no safety property depends on.
    pub fetch_timeouts: bool,
}

/// A record as the consumer read it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadRecord {
    pub offset: Offset,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerStorage {
    pub incarnation: u32,
    pub committed: Offset,
    pub read: Vec<ReadRecord>,
    pub processed: Vec<Offset>,
}

/// The step the application has still to take for the last batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PendingStep {
    /// `before`: committed, process next.
    Process(Vec<ReadRecord>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsumerState {
    pub incarnation: u32,
    pub leader: Option<(BrokerId, Epoch)>,
    pub metadata_pending: bool,
    pub position: Offset,
    pub committed: Offset,
    pub fetching: bool,
    pub pending: Option<PendingStep>,
    /// Every record read, sorted, without repeats (ghost; the model only).
    pub read: Vec<ReadRecord>,
    /// Every offset processed, sorted, without repeats (ghost; the model only).
    pub processed: Vec<Offset>,
}

type O = Out<Node>;

impl Consumer {
    pub fn on_start(
        &self,
        storage: Option<&ConsumerStorage>,
        initial_leader: Option<(BrokerId, Epoch)>,
        o: &mut O,
    ) -> ConsumerState {
        let mut state = match storage {
            None => ConsumerState {
                incarnation: 0,
                leader: initial_leader,
                metadata_pending: false,
                position: Offset::ZERO,
                committed: Offset::ZERO,
                fetching: false,
                pending: None,
                read: Vec::new(),
                processed: Vec::new(),
            },
            Some(s) => ConsumerState {
                incarnation: s.incarnation + 1,
                leader: None,
                metadata_pending: false,
                position: s.committed,
                committed: s.committed,
                fetching: false,
                pending: None,
                read: s.read.clone(),
                processed: s.processed.clone(),
            },
        };
        self.persist(&state, o);
        self.maybe_fetch(&mut state, o);
        state
    }

    pub fn on_msg(&self, state: &mut ConsumerState, src: Id, msg: Msg, o: &mut O) {
        match msg {
            Msg::ConsumerFetchResponse {
                leader_epoch,
                result,
            } => {
                let from_leader = state
                    .leader
                    .is_some_and(|(l, e)| self.topology.broker(l) == src && e == leader_epoch);
                if !state.fetching || !from_leader {
                    return;
                }
                state.fetching = false;
                if self.fetch_timeouts {
                    o.cancel_timer(Timer::RequestTimeout);
                }
                match result {
                    Ok((base, records)) => self.on_records(state, base, &records, o),
                    Err(ErrorCode::OffsetOutOfRange) => state.position = Offset::ZERO,
                    Err(_) => state.leader = None,
                }
            }
            Msg::MetadataResponse {
                leader,
                leader_epoch,
            } => {
                state.leader = leader.map(|l| (l, leader_epoch));
                if self.fetch_timeouts {
                    o.cancel_timer(Timer::MetadataTimeout);
                }
                if leader.is_none() {
                    o.set_timer(Timer::MetadataBackoff, timer_range(Timer::MetadataBackoff));
                    return;
                }
                state.metadata_pending = false;
            }
            Msg::Commit { offset } if Some(src) == self.application => {
                // Kafka's commitSync: only offsets the consumer has reached, never backwards.
                let offset = offset.min(state.position);
                if offset > state.committed {
                    state.committed = offset;
                    self.persist(state, o);
                }
            }
            _ => {}
        }
        self.maybe_fetch(state, o);
    }

    pub fn on_timeout(&self, state: &mut ConsumerState, timer: &Timer, o: &mut O) {
        match timer {
            Timer::ConsumerStep => match state.pending.take() {
                Some(PendingStep::Process(batch)) => {
                    self.process(state, batch, o);
                    self.persist(state, o);
                }
                None => return,
            },
            Timer::MetadataBackoff | Timer::MetadataTimeout => state.metadata_pending = false,
            Timer::RequestTimeout if state.fetching => {
                state.fetching = false;
                state.leader = None;
            }
            _ => return,
        }
        self.maybe_fetch(state, o);
    }

    fn on_records(&self, state: &mut ConsumerState, base: Offset, records: &[Record], o: &mut O) {
        if base != state.position || records.is_empty() {
            return;
        }
        let batch: Vec<ReadRecord> = records
            .iter()
            .enumerate()
            .map(|(i, r)| ReadRecord {
                offset: base.plus(i),
                value: r.value.clone(),
            })
            .collect();
        if self.application.is_none() {
            for r in &batch {
                insert_sorted(&mut state.read, r.clone());
            }
        }
        state.position = base.plus(records.len());
        match self.commit {
            ConsumerCommit::Manual => {
                self.process(state, batch, o);
                self.persist(state, o);
            }
            ConsumerCommit::After => {
                state.committed = state.position;
                // Processing and committing are one step here: the moment between them only
                // matters for processing a batch twice after a crash, which no property judges
                // (a re-read that differs is caught by `committed-read` all the same).
                self.process(state, batch, o);
                self.persist(state, o);
            }
            ConsumerCommit::Before => {
                state.committed = state.position;
                state.pending = Some(PendingStep::Process(batch));
                self.persist(state, o);
                o.set_timer(Timer::ConsumerStep, timer_range(Timer::ConsumerStep));
            }
        }
    }

    /// The application's processing: handed the records (engine), or noted as ghost state
    /// (model).
    fn process(&self, state: &mut ConsumerState, batch: Vec<ReadRecord>, o: &mut O) {
        match self.application {
            Some(app) => o.send(
                app,
                Msg::Delivered {
                    records: batch.into(),
                },
            ),
            None => {
                for r in batch {
                    insert_sorted(&mut state.processed, r.offset);
                }
            }
        }
    }

    /// Polls again once the last batch is fully handled.
    fn maybe_fetch(&self, state: &mut ConsumerState, o: &mut O) {
        if state.fetching || state.pending.is_some() {
            return;
        }
        match state.leader {
            Some((leader, leader_epoch)) => {
                state.fetching = true;
                if self.fetch_timeouts {
                    o.set_timer(Timer::RequestTimeout, timer_range(Timer::RequestTimeout));
                }
                o.send(
                    self.topology.broker(leader),
                    Msg::ConsumerFetch {
                        leader_epoch,
                        offset: state.position,
                    },
                );
            }
            None if !state.metadata_pending => {
                state.metadata_pending = true;
                o.send(self.topology.controller(), Msg::Metadata);
                if self.fetch_timeouts {
                    // The engine's network can lose the request: ask again if no answer comes.
                    o.set_timer(Timer::MetadataTimeout, timer_range(Timer::MetadataTimeout));
                }
            }
            None => {}
        }
    }

    fn persist(&self, state: &ConsumerState, o: &mut O) {
        o.save(NodeStorage::Consumer(ConsumerStorage {
            incarnation: state.incarnation,
            committed: state.committed,
            read: state.read.clone(),
            processed: state.processed.clone(),
        }));
    }
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, item: T) {
    if let Err(at) = v.binary_search(&item) {
        v.insert(at, item);
    }
}
