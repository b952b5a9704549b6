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

use crate::config::{Config, ConsumerCommit};
use crate::msg::{AppMsg, ErrorCode, Msg, Timer};
use crate::node::{timer_range, ActorParams, Node, NodeStorage, Topology};
use crate::types::{BrokerId, Epoch, Offset, Record, Value};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};

#[derive(Clone, Debug)]
pub struct Consumer {
    pub topology: Topology,
    /// The consumer's settings (when it commits its offset).
    pub config: Config,
    /// How the host runs it: the application processed records go to, fetch timeouts.
    pub params: ActorParams,
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

impl ConsumerState {
    /// What every consumer step keeps true (checked after each step in debug builds, by
    /// `Node`): what it read and processed is sorted without repeats, and it processed only
    /// what it read.
    pub fn assert_invariants(&self) {
        debug_assert!(
            self.read.windows(2).all(|w| w[0].offset < w[1].offset),
            "reads not sorted by offset: {self:?}"
        );
        debug_assert!(
            self.processed.windows(2).all(|w| w[0] < w[1]),
            "processed offsets not sorted: {self:?}"
        );
        debug_assert!(
            self.processed
                .iter()
                .all(|p| self.read.binary_search_by_key(p, |r| r.offset).is_ok()),
            "processed an offset never read: {self:?}"
        );
    }
}

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
                if self.params.request_timeouts {
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
                if self.params.request_timeouts {
                    o.cancel_timer(Timer::MetadataTimeout);
                }
                if leader.is_none() {
                    o.set_timer(Timer::MetadataBackoff, timer_range(Timer::MetadataBackoff));
                    return;
                }
                state.metadata_pending = false;
            }
            Msg::App(AppMsg::Commit { offset }) if Some(src) == self.params.application => {
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
        if self.params.application.is_none() {
            for r in &batch {
                insert_sorted(&mut state.read, r.clone());
            }
        }
        state.position = base.plus(records.len());
        match self.config.consumer_commit {
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
        match self.params.application {
            Some(app) => o.send(
                app,
                Msg::App(AppMsg::Delivered {
                    records: batch.into(),
                }),
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
                if self.params.request_timeouts {
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
                if self.params.request_timeouts {
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

/// A consumer's rules, one handler call at a time: where it fetches, what it reads and
/// processes, when it commits, and how it finds the leader again.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{sent, sets};
    use crate::types::Value;
    use stateright::actor::Command;
    use std::sync::Arc;

    const CTL: usize = 3;
    const APP: usize = 6;

    fn consumer(commit: ConsumerCommit) -> Consumer {
        Consumer {
            topology: Topology {
                replicas: 3,
                producers: 1,
                consumer: true,
            },
            config: Config {
                consumer_commit: commit,
                ..Config::default()
            },
            params: ActorParams::model(&Config::default().validate().expect("valid")),
        }
    }

    fn engine(commit: ConsumerCommit) -> Consumer {
        let model = consumer(commit);
        Consumer {
            params: ActorParams {
                application: Some(Id::from(APP)),
                request_timeouts: true,
                ..model.params
            },
            ..model
        }
    }

    fn start(c: &Consumer) -> (ConsumerState, O) {
        let mut o = O::new();
        let state = c.on_start(None, Some((BrokerId(0), Epoch(1))), &mut o);
        (state, o)
    }

    /// The invariant check can fail: an offset processed but never read.
    #[test]
    #[cfg(debug_assertions)]
    fn the_invariant_check_catches_an_offset_processed_but_never_read() {
        let (mut state, _) = start(&consumer(ConsumerCommit::After));
        state.assert_invariants();
        state.processed.push(Offset(0));
        let caught = std::panic::catch_unwind(|| state.assert_invariants());
        assert!(caught.is_err(), "not caught: {state:?}");
    }

    fn saved(o: &O) -> Vec<ConsumerStorage> {
        o.iter()
            .filter_map(|c| match c {
                Command::Save(NodeStorage::Consumer(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    fn fetch(epoch: u32, offset: u64) -> Msg {
        Msg::ConsumerFetch {
            leader_epoch: Epoch(epoch),
            offset: Offset(offset),
        }
    }

    fn records(base: u64, values: &[u32]) -> Msg {
        let rs: Vec<Record> = values
            .iter()
            .map(|&v| Record {
                value: Value::Numbered(v),
                leader_epoch: Epoch(1),
                producer: None,
            })
            .collect();
        Msg::ConsumerFetchResponse {
            leader_epoch: Epoch(1),
            result: Ok((Offset(base), Arc::from(rs))),
        }
    }

    fn error(code: ErrorCode) -> Msg {
        Msg::ConsumerFetchResponse {
            leader_epoch: Epoch(1),
            result: Err(code),
        }
    }

    fn deliver(c: &Consumer, state: &mut ConsumerState, from: usize, msg: Msg) -> O {
        let mut o = O::new();
        c.on_msg(state, Id::from(from), msg, &mut o);
        o
    }

    fn read(offsets_values: &[(u64, u32)]) -> Vec<ReadRecord> {
        offsets_values
            .iter()
            .map(|&(o, v)| ReadRecord {
                offset: Offset(o),
                value: Value::Numbered(v),
            })
            .collect()
    }

    /// At-least-once (`after`): a batch is read, processed and committed in one step, and
    /// the consumer polls again from the new position. Answers from another broker, another
    /// epoch, for another offset, or when it is not fetching are ignored.
    #[test]
    fn after_processing_a_batch_the_consumer_commits_and_polls_from_its_end() {
        let c = consumer(ConsumerCommit::After);
        let (mut state, o) = start(&c);
        assert_eq!(sent(&o), vec![(0, fetch(1, 0))]);
        assert_eq!(
            saved(&o).len(),
            1,
            "a start saves, so a restart is told apart"
        );
        let before = state.clone();
        for (from, msg) in [
            (1, records(0, &[7])),
            (
                0,
                Msg::ConsumerFetchResponse {
                    leader_epoch: Epoch(2),
                    result: Ok((Offset(0), Arc::from(Vec::new()))),
                },
            ),
        ] {
            let o = deliver(&c, &mut state, from, msg);
            assert_eq!(state, before);
            assert!(sent(&o).is_empty());
        }
        let o = deliver(&c, &mut state, 0, records(0, &[7, 8]));
        assert_eq!(state.read, read(&[(0, 7), (1, 8)]));
        assert_eq!(state.processed, vec![Offset(0), Offset(1)]);
        assert_eq!(state.committed, Offset(2));
        assert_eq!(saved(&o).last().map(|s| s.committed), Some(Offset(2)));
        assert_eq!(sent(&o), vec![(0, fetch(1, 2))]);
        // A batch for an offset it no longer asks for reads nothing; it polls again.
        let o = deliver(&c, &mut state, 0, records(0, &[7]));
        assert_eq!(state.position, Offset(2));
        assert_eq!(state.read.len(), 2);
        assert_eq!(sent(&o), vec![(0, fetch(1, 2))]);
        // An empty batch reads nothing either.
        deliver(&c, &mut state, 0, records(2, &[]));
        assert_eq!(state.position, Offset(2));
        // An answer when no fetch is out is ignored.
        state.fetching = false;
        let before = state.clone();
        let o = deliver(&c, &mut state, 0, records(2, &[9]));
        assert_eq!(state, before);
        assert!(sent(&o).is_empty());
    }

    /// At-most-once (`before`): the offset is committed first and the batch processed in a
    /// later step, so a crash in between loses it; no poll until it is processed.
    #[test]
    fn before_processing_the_consumer_commits_first_and_processes_in_a_later_step() {
        let c = consumer(ConsumerCommit::Before);
        let (mut state, _) = start(&c);
        let o = deliver(&c, &mut state, 0, records(0, &[7]));
        assert_eq!(state.committed, Offset(1));
        assert_eq!(saved(&o).last().map(|s| s.committed), Some(Offset(1)));
        assert!(state.processed.is_empty());
        assert!(sets(&o, Timer::ConsumerStep));
        assert!(sent(&o).is_empty(), "no poll before processing");
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::ConsumerStep, &mut o);
        assert_eq!(state.processed, vec![Offset(0)]);
        assert_eq!(
            saved(&o).last().map(|s| s.processed.clone()),
            Some(vec![Offset(0)])
        );
        assert_eq!(sent(&o), vec![(0, fetch(1, 1))]);
        // With nothing pending the step does nothing.
        let before = state.clone();
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::ConsumerStep, &mut o);
        assert_eq!(state, before);
        assert!(o.is_empty());
    }

    /// `enable.auto.commit=false`: only the application's `commitSync` moves the committed
    /// offset, never past the position and never backwards; the engine's consumer hands the
    /// batch to the application.
    #[test]
    fn with_manual_commits_only_the_application_commits() {
        let c = engine(ConsumerCommit::Manual);
        let (mut state, _) = start(&c);
        let o = deliver(&c, &mut state, 0, records(0, &[7, 8]));
        assert_eq!(state.committed, Offset(0));
        assert!(state.read.is_empty(), "no ghost in the engine");
        assert!(sent(&o).contains(&(
            APP,
            Msg::App(AppMsg::Delivered {
                records: read(&[(0, 7), (1, 8)]).into()
            })
        )));
        let commit = |offset| {
            Msg::App(AppMsg::Commit {
                offset: Offset(offset),
            })
        };
        deliver(&c, &mut state, 0, commit(1));
        assert_eq!(state.committed, Offset(0), "not from the application");
        let o = deliver(&c, &mut state, APP, commit(5));
        assert_eq!(state.committed, Offset(2), "not past the position");
        assert_eq!(saved(&o).last().map(|s| s.committed), Some(Offset(2)));
        let o = deliver(&c, &mut state, APP, commit(1));
        assert_eq!(state.committed, Offset(2), "never backwards");
        assert!(saved(&o).is_empty());
    }

    /// A restarted consumer resumes from its committed offset with what it had read and
    /// processed, asks the controller for the leader, and fetches once told; an offline
    /// partition means backing off and asking again.
    #[test]
    fn a_restarted_consumer_resumes_from_its_committed_offset() {
        let c = consumer(ConsumerCommit::After);
        let stored = ConsumerStorage {
            incarnation: 0,
            committed: Offset(1),
            read: read(&[(0, 7), (1, 8)]),
            processed: vec![Offset(0)],
        };
        let mut o = O::new();
        let mut state = c.on_start(Some(&stored), None, &mut o);
        assert_eq!(state.incarnation, 1);
        assert_eq!(state.position, Offset(1));
        assert_eq!(state.committed, Offset(1));
        assert_eq!(state.read, stored.read);
        assert_eq!(state.processed, stored.processed);
        assert_eq!(sent(&o), vec![(CTL, Msg::Metadata)]);
        let offline = Msg::MetadataResponse {
            leader: None,
            leader_epoch: Epoch(2),
        };
        let o = deliver(&c, &mut state, CTL, offline);
        assert!(sets(&o, Timer::MetadataBackoff));
        assert!(sent(&o).is_empty());
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::MetadataBackoff, &mut o);
        assert_eq!(sent(&o), vec![(CTL, Msg::Metadata)]);
        let o = deliver(
            &c,
            &mut state,
            CTL,
            Msg::MetadataResponse {
                leader: Some(BrokerId(2)),
                leader_epoch: Epoch(3),
            },
        );
        assert_eq!(sent(&o), vec![(2, fetch(3, 1))]);
    }

    /// `auto.offset.reset=earliest` on an out-of-range offset; any other error means the
    /// leader moved: ask the controller.
    #[test]
    fn fetch_errors_reset_to_earliest_or_look_for_the_leader() {
        let c = consumer(ConsumerCommit::After);
        let (mut state, _) = start(&c);
        deliver(&c, &mut state, 0, records(0, &[7]));
        let o = deliver(&c, &mut state, 0, error(ErrorCode::OffsetOutOfRange));
        assert_eq!(state.position, Offset(0));
        assert_eq!(sent(&o), vec![(0, fetch(1, 0))]);
        let o = deliver(&c, &mut state, 0, error(ErrorCode::NotLeaderOrFollower));
        assert_eq!(state.leader, None);
        assert_eq!(sent(&o), vec![(CTL, Msg::Metadata)]);
        // While the question is out, nothing asks it again.
        let o = deliver(
            &c,
            &mut state,
            0,
            Msg::App(AppMsg::Commit { offset: Offset(1) }),
        );
        assert!(sent(&o).is_empty(), "asking already");
    }

    /// The engine's `request.timeout.ms`: a fetch with no answer is given up and the leader
    /// looked up again; a metadata request with no answer is sent again.
    #[test]
    fn in_the_engine_unanswered_requests_time_out() {
        let c = engine(ConsumerCommit::After);
        let (mut state, o) = start(&c);
        assert!(sets(&o, Timer::RequestTimeout));
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::RequestTimeout, &mut o);
        assert_eq!(state.leader, None);
        assert_eq!(sent(&o), vec![(CTL, Msg::Metadata)]);
        assert!(sets(&o, Timer::MetadataTimeout));
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::MetadataTimeout, &mut o);
        assert_eq!(sent(&o), vec![(CTL, Msg::Metadata)]);
        let o = deliver(
            &c,
            &mut state,
            CTL,
            Msg::MetadataResponse {
                leader: Some(BrokerId(1)),
                leader_epoch: Epoch(2),
            },
        );
        assert!(o
            .iter()
            .any(|m| matches!(m, Command::CancelTimer(Timer::MetadataTimeout))));
        assert_eq!(sent(&o), vec![(1, fetch(2, 0))]);
        let o = deliver(
            &c,
            &mut state,
            1,
            Msg::ConsumerFetchResponse {
                leader_epoch: Epoch(2),
                result: Ok((Offset(0), Arc::from(Vec::new()))),
            },
        );
        assert!(o
            .iter()
            .any(|m| matches!(m, Command::CancelTimer(Timer::RequestTimeout))));
        // A timeout with no fetch out changes nothing.
        let mut idle = state.clone();
        idle.fetching = false;
        let before = idle.clone();
        c.on_timeout(&mut idle, &Timer::RequestTimeout, &mut O::new());
        assert_eq!(idle, before);
    }
}
