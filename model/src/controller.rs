//! The controller: the source of truth for the partition's leader, leader epoch, ISR and
//! (KIP-966) eligible leader replicas.
//!
//! It abstracts ZooKeeper/KRaft and never crashes, but it knows of broker failures only through
//! expired sessions (a timer that may fire whether the broker is dead or merely slow), so it can
//! elect a new leader while the old one still runs: epochs must fence that zombie.
//!
//! Moves it may make at any moment, as Kafka's controller can (each a timer in the checker):
//! - [`Controller::on_session_expired`]: any registered broker's session expires. A follower
//!   leaves the ISR (unless it is the last member, or with ELR); the leader is replaced by any
//!   live ISR member (Kafka prefers assignment order, but reassignments and preferred-leader
//!   elections make any order possible), else by a live ELR member (KIP-966), else by any live
//!   replica if `unclean.leader.election.enable`, else the partition goes offline.
//! - [`Controller::move_leadership`]: preferred-leader election or controlled shutdown moves
//!   leadership to any live ISR member in a new epoch (model only; the engine has no operator).
//! - [`Controller::on_heartbeat_resumed`]: a fenced broker's heartbeats come back and it is
//!   unfenced (in the engine, a real heartbeat does this).
//!
//! Rules encoded:
//! - Every election bumps `leader_epoch`; every change bumps `partition_epoch`.
//! - `AlterPartition` from the leader is a compare-and-set on `partition_epoch` (KIP-497), and
//!   refuses to add a fenced replica (KIP-841).
//! - A broker that registers again is a new incarnation (KIP-380 broker epochs). If the old one
//!   led, a new leader is elected first. What else happens is `--restarted-broker`:
//!   `leaves-isr` (KRaft, ZooKeeper since 2.2) removes it from the ISR unless it is the last
//!   member; `keeps-isr` (ZooKeeper before 2.2) keeps it. With ELR every restart is an unclean
//!   shutdown (the model's crashes are power losses): the broker leaves the ISR and the ELR even
//!   as the last member (KIP-966 unclean-shutdown detection).
//! - ELR (KIP-966): a replica that leaves the ISR while the ISR is below
//!   `min.insync.replicas` joins the ELR (under the `min-isr` high-watermark rule it holds
//!   everything below the high watermark); the ELR empties when the ISR is back at
//!   `min.insync.replicas`; the last ELR before it emptied is kept as `last_known_elr`.

use crate::config::RestartedBroker;
use crate::msg::{ErrorCode, Msg, PartitionState, Timer};
use crate::node::{timer_range, Node, NodeStorage, Topology};
use crate::types::{BrokerId, BrokerSet, Epoch, PartitionEpoch, REPLICAS_MAX};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};

#[derive(Clone, Debug)]
pub struct Controller {
    pub topology: Topology,
    pub unclean_election: bool,
    pub restarted_broker: RestartedBroker,
    /// KIP-966 eligible leader replicas.
    pub elr: bool,
    pub min_insync: usize,
    /// Brokers heartbeat (the engine): a heartbeat resets the session timers, and lets a
    /// broker fenced by a false suspicion back in. In the model a `HeartbeatResumed` timer
    /// stands for the first heartbeat after a false suspicion.
    pub heartbeats: bool,
    /// Operators may move leadership (preferred-leader election, controlled shutdown): the
    /// model explores it; the engine has no operator.
    pub leader_moves: bool,
    /// Skip moves that cannot change a verdict (each one argued where it is made, and tested
    /// by `tests/reductions.rs` against the unreduced model on small bounds).
    pub reduce: bool,
    /// KIP-903: refuse an ISR addition whose incarnation is stale (off only as a mutant).
    pub stale_broker_epoch_check: bool,
    /// The engine's controller saves its whole state after every step that changed it and
    /// recovers it when it starts again, so its epochs never go backwards (KRaft keeps the
    /// same facts in its replicated metadata log). The runtime writes a step's save before the
    /// step's messages leave, so nothing a broker hears was decided on unsaved state. In the
    /// model the controller never crashes (`within_boundary` cuts such states), so a save
    /// would never be read: it saves nothing there, which cannot change a verdict.
    pub durable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControllerState {
    pub partition: PartitionState,
    /// Brokers whose session expired and that have not registered or heartbeated since: not
    /// electable, not addable to the ISR.
    pub fenced: BrokerSet,
    /// Each broker's registered incarnation (Kafka's broker epoch).
    pub incarnations: [u32; REPLICAS_MAX],
    /// Elections that found no in-sync replica and picked another (for traces).
    pub unclean_elections: u32,
}

type O = Out<Node>;

impl Controller {
    /// The partition as created: the first replica leads epoch 1, every replica is in sync.
    pub fn initial_partition(replicas: usize) -> PartitionState {
        PartitionState {
            leader: Some(BrokerId(0)),
            leader_epoch: Epoch::INITIAL,
            isr: BrokerSet::all(replicas),
            elr: BrokerSet::EMPTY,
            last_known_elr: BrokerSet::EMPTY,
            partition_epoch: PartitionEpoch(0),
        }
    }

    /// A first start creates the partition; a durable controller's restart (`stored`) takes
    /// up the partition, fencing and incarnations exactly as last saved.
    pub fn on_start(&self, stored: Option<&ControllerState>, o: &mut O) -> ControllerState {
        let state = match stored {
            Some(saved) if self.durable => saved.clone(),
            _ => ControllerState {
                partition: Controller::initial_partition(self.topology.replicas),
                fenced: BrokerSet::EMPTY,
                incarnations: [0; REPLICAS_MAX],
                unclean_elections: 0,
            },
        };
        if self.durable {
            o.save(NodeStorage::Controller(state.clone()));
        } else {
            o.save(NodeStorage::None);
        }
        self.arm_timers(&state, o);
        state
    }

    pub fn on_msg(&self, state: &mut ControllerState, src: Id, msg: Msg, o: &mut O) {
        let before = self.durable.then(|| state.clone());
        self.dispatch(state, src, msg, o);
        self.arm_timers(state, o);
        self.save_if_changed(before, state, o);
    }

    /// A durable controller's save of a step that changed its state (see [`Controller::durable`]).
    fn save_if_changed(&self, before: Option<ControllerState>, state: &ControllerState, o: &mut O) {
        if before.is_some_and(|b| &b != state) {
            o.save(NodeStorage::Controller(state.clone()));
        }
    }

    fn dispatch(&self, state: &mut ControllerState, src: Id, msg: Msg, o: &mut O) {
        match msg {
            Msg::Metadata => o.send(
                src,
                Msg::MetadataResponse {
                    leader: state.partition.leader,
                    leader_epoch: state.partition.leader_epoch,
                },
            ),
            Msg::AlterPartition {
                leader_epoch,
                partition_epoch,
                isr,
                incarnations,
            } => {
                if let Some(from) = self.topology.broker_of(src) {
                    let result = self.alter_partition(
                        state,
                        from,
                        (leader_epoch, partition_epoch),
                        isr,
                        &incarnations,
                    );
                    o.send(
                        src,
                        Msg::AlterPartitionResponse {
                            leader_epoch,
                            proposed: isr,
                            result,
                        },
                    );
                }
            }
            Msg::Register { incarnation } => {
                if let Some(b) = self.topology.broker_of(src) {
                    self.on_register(state, b, incarnation, o);
                }
            }
            Msg::Heartbeat {
                incarnation,
                leader_epoch,
            } => {
                if let Some(b) = self.topology.broker_of(src) {
                    self.on_heartbeat(state, b, incarnation, leader_epoch, o);
                }
            }
            // Not the controller's business: data-path messages and client answers.
            _ => {}
        }
    }

    pub fn on_timeout(&self, state: &mut ControllerState, timer: &Timer, o: &mut O) {
        let before = self.durable.then(|| state.clone());
        match *timer {
            Timer::SessionExpired { broker, successor } => {
                self.on_session_expired(state, broker, successor, o)
            }
            Timer::ElectLeader(b) => self.move_leadership(state, b, o),
            Timer::HeartbeatResumed(b) => self.on_heartbeat_resumed(state, b, o),
            _ => {}
        }
        self.arm_timers(state, o);
        self.save_if_changed(before, state, o);
    }

    // ------------------------------------------------------------------ which moves are open

    /// Who may lead if the current leader goes, in the order Kafka's election rules allow:
    /// live ISR members, else live ELR members (KIP-966), else (unclean election) any live
    /// replica. Empty: the partition would go offline.
    fn successors(&self, state: &ControllerState, departing: Option<BrokerId>) -> BrokerSet {
        let p = &state.partition;
        let live = BrokerSet::all(self.topology.replicas).minus(state.fenced);
        let live = departing.map_or(live, |d| live.without(d));
        let clean = p.isr.intersect(live);
        if !clean.is_empty() {
            return clean;
        }
        let eligible = p.elr.intersect(live);
        if self.elr && !eligible.is_empty() {
            return eligible;
        }
        if self.unclean_election {
            return live;
        }
        BrokerSet::EMPTY
    }

    /// Arms exactly the timers for the moves open now (so the checker explores no move that
    /// would change nothing), and cancels the rest.
    fn arm_timers(&self, state: &ControllerState, o: &mut O) {
        let p = &state.partition;
        for b in self.topology.brokers() {
            let live = !state.fenced.contains(b);
            let leads = p.leader == Some(b);
            let successors = if leads && live {
                self.successors(state, Some(b))
            } else {
                BrokerSet::EMPTY
            };
            // A follower's expiry is explored while it matters: in the ISR (it leaves), in the
            // ELR, or when an unclean election could pick it. A fenced follower outside both
            // differs from an unfenced one only in being refused ISR membership, which a
            // follower that has not fetched lately is refused too, so the checker skips it
            // (a reduction: `tests/reductions.rs` shows equal verdicts without it).
            let expiry_matters = leads
                || p.isr.contains(b)
                || p.elr.contains(b)
                || self.unclean_election
                || !self.reduce;
            set_or_cancel(
                o,
                Timer::SessionExpired {
                    broker: b,
                    successor: None,
                },
                live && expiry_matters && (!leads || successors.is_empty()),
            );
            for c in self.topology.brokers() {
                set_or_cancel(
                    o,
                    Timer::SessionExpired {
                        broker: b,
                        successor: Some(c),
                    },
                    successors.contains(c),
                );
            }
            let movable =
                self.leader_moves && live && p.leader.is_some() && !leads && p.isr.contains(b);
            set_or_cancel(o, Timer::ElectLeader(b), movable);
            set_or_cancel(o, Timer::HeartbeatResumed(b), !self.heartbeats && !live);
        }
    }

    // ------------------------------------------------------------------ moves

    /// A broker's session expired: it is presumed dead and fenced. A follower leaves the ISR;
    /// the leader is replaced by `successor` (one of [`Controller::successors`], chosen by
    /// which of the timers fired), or the partition goes offline.
    fn on_session_expired(
        &self,
        state: &mut ControllerState,
        b: BrokerId,
        successor: Option<BrokerId>,
        o: &mut O,
    ) {
        if state.fenced.contains(b) {
            return; // Fenced already: a stale timer.
        }
        state.fenced = state.fenced.with(b);
        if state.partition.leader == Some(b) {
            self.elect(state, successor, o);
        } else if state.partition.isr.contains(b) && self.remove_from_isr(state, b, false) {
            self.tell_leader(state, o);
        }
    }

    /// Preferred-leader election or controlled shutdown: leadership moves to `b`, a live ISR
    /// member, in a new epoch; the ISR is unchanged (Gustafson's `ControllerElectLeader`).
    fn move_leadership(&self, state: &mut ControllerState, b: BrokerId, o: &mut O) {
        let p = &state.partition;
        if p.leader.is_none() || p.leader == Some(b) || !p.isr.contains(b) {
            return;
        }
        if state.fenced.contains(b) {
            return;
        }
        self.install_leader(state, Some(b), o);
    }

    /// A broker fenced by a false suspicion heartbeats again: it is unfenced, and leads if
    /// the partition was offline waiting for it.
    fn on_heartbeat_resumed(&self, state: &mut ControllerState, b: BrokerId, o: &mut O) {
        if !state.fenced.contains(b) {
            return;
        }
        state.fenced = state.fenced.without(b);
        if state.partition.leader.is_none() {
            self.elect_first(state, o);
        }
    }

    fn alter_partition(
        &self,
        state: &mut ControllerState,
        from: BrokerId,
        (leader_epoch, partition_epoch): (Epoch, PartitionEpoch),
        isr: BrokerSet,
        incarnations: &[u32; REPLICAS_MAX],
    ) -> Result<PartitionState, (ErrorCode, PartitionState)> {
        let p = &mut state.partition;
        if p.leader != Some(from) || p.leader_epoch != leader_epoch {
            return Err((ErrorCode::FencedLeaderEpoch, *p));
        }
        if p.partition_epoch != partition_epoch {
            return Err((ErrorCode::InvalidUpdateVersion, *p));
        }
        let additions = isr.minus(p.isr);
        if !isr.contains(from) || additions.minus(state.fenced) != additions {
            return Err((ErrorCode::IneligibleReplica, *p));
        }
        if self.stale_broker_epoch_check
            && stale_addition(additions, incarnations, &state.incarnations)
        {
            return Err((ErrorCode::IneligibleReplica, *p));
        }
        let removed = p.isr.minus(isr);
        p.isr = isr;
        self.maintain_elr(p, removed);
        p.partition_epoch = p.partition_epoch.next();
        Ok(*p)
    }

    /// Takes `b` out of the ISR. Before KIP-966 the last member stays (an empty ISR could
    /// elect no one cleanly); with ELR, and for an unclean shutdown, it goes too. Returns
    /// whether the partition changed.
    fn remove_from_isr(&self, state: &mut ControllerState, b: BrokerId, unclean: bool) -> bool {
        let p = &mut state.partition;
        let in_isr = p.isr.contains(b);
        let in_elr = p.elr.contains(b);
        if unclean && self.elr {
            if !in_isr && !in_elr {
                return false;
            }
            p.isr = p.isr.without(b);
            p.elr = p.elr.without(b);
            p.last_known_elr = p.last_known_elr.without(b);
        } else {
            if !in_isr || (p.isr.len() == 1 && !self.elr) {
                return false;
            }
            p.isr = p.isr.without(b);
            self.maintain_elr(p, BrokerSet::single(b));
        }
        p.partition_epoch = p.partition_epoch.next();
        true
    }

    /// KIP-966: replicas that leave an ISR now below `min.insync.replicas` join the ELR; an
    /// ISR back at `min.insync.replicas` empties it, remembering it as the last known ELR.
    fn maintain_elr(&self, p: &mut PartitionState, removed: BrokerSet) {
        if !self.elr {
            return;
        }
        if p.isr.len() >= self.min_insync {
            if !p.elr.is_empty() {
                p.last_known_elr = p.elr;
            }
            p.elr = BrokerSet::EMPTY;
        } else {
            p.elr = p.elr.union(removed).minus(p.isr);
        }
    }

    /// The leader's seat is empty or its holder is gone: `successor` leads in a new epoch
    /// (`None`: offline).
    fn elect(&self, state: &mut ControllerState, successor: Option<BrokerId>, o: &mut O) {
        let successor = successor.filter(|&c| self.successors(state, None).contains(c));
        self.install_leader(state, successor, o);
    }

    /// Elects the first possible successor in assignment order (Kafka's default choice),
    /// where the model has no reason to branch: the partition was offline and one broker
    /// just came back, so at most that one is eligible.
    fn elect_first(&self, state: &mut ControllerState, o: &mut O) {
        let first = self.successors(state, None).iter().next();
        if first.is_some() {
            self.install_leader(state, first, o);
        }
    }

    /// Installs `leader` in a new epoch and tells every broker. The outgoing leader, if
    /// fenced, leaves the ISR as any fenced follower would.
    fn install_leader(&self, state: &mut ControllerState, leader: Option<BrokerId>, o: &mut O) {
        let old = state.partition.leader;
        let fenced = state.fenced;
        let p = &mut state.partition;
        if let Some(old) = old.filter(|&b| fenced.contains(b)) {
            if p.isr.contains(old) && (p.isr.len() > 1 || self.elr) {
                p.isr = p.isr.without(old);
                self.maintain_elr(p, BrokerSet::single(old));
            }
        }
        match leader {
            Some(c) if p.isr.contains(c) => {}
            Some(c) => {
                // From the ELR (clean, KIP-966) or an unclean election: it alone is in sync.
                if !(self.elr && p.elr.contains(c)) {
                    state.unclean_elections += 1;
                }
                p.isr = BrokerSet::single(c);
                p.elr = p.elr.without(c);
                self.maintain_elr(p, BrokerSet::EMPTY);
            }
            None => {}
        }
        p.leader = leader;
        p.leader_epoch = p.leader_epoch.next();
        p.partition_epoch = p.partition_epoch.next();
        for b in self.topology.brokers() {
            self.send_leader_and_isr(state, b, o);
        }
    }

    fn on_register(&self, state: &mut ControllerState, b: BrokerId, incarnation: u32, o: &mut O) {
        if incarnation <= state.incarnations[b.index()] {
            return; // A stale registration.
        }
        state.incarnations[b.index()] = incarnation;
        if state.partition.leader == Some(b) && !state.fenced.contains(b) {
            // The old incarnation led: its pending requests and role are gone. Kafka's
            // controller elects the first live ISR member in assignment order here; the model
            // explores other successors when the session expires first, which is the path
            // its crash reduction keeps (`node::crash_is_interesting`).
            state.fenced = state.fenced.with(b);
            let first = self.successors(state, Some(b)).iter().next();
            self.install_leader(state, first, o);
        }
        // The old incarnation is fenced (KIP-380): what that does to the ISR is the
        // restart semantics; with ELR the crash is an unclean shutdown.
        let changed = match (self.elr, self.restarted_broker) {
            (true, _) => self.remove_from_isr(state, b, true),
            (false, RestartedBroker::LeavesIsr) => self.remove_from_isr(state, b, false),
            (false, RestartedBroker::KeepsIsr) => false,
        };
        state.fenced = state.fenced.without(b);
        if state.partition.leader.is_none() {
            self.elect_first(state, o);
        } else {
            self.send_leader_and_isr(state, b, o);
            // The leader learns the ISR change, and may add the returning replica again.
            let _ = changed;
            self.tell_leader(state, o);
        }
    }

    /// A heartbeat also repairs what a lost message broke, as Kafka's controller retries its
    /// requests to a broker until answered: a heartbeat from an incarnation that never
    /// registered is its registration (the `Register` was lost), and a broker that reports an
    /// older leader epoch than the controller's is sent the current `LeaderAndIsr` again (else
    /// a leader elected while the controller was cut off might never learn it leads, and
    /// nobody would serve the partition).
    fn on_heartbeat(
        &self,
        state: &mut ControllerState,
        b: BrokerId,
        incarnation: u32,
        leader_epoch: Epoch,
        o: &mut O,
    ) {
        if !self.heartbeats || incarnation < state.incarnations[b.index()] {
            return; // A heartbeat from an incarnation that has been replaced.
        }
        if incarnation > state.incarnations[b.index()] {
            self.on_register(state, b, incarnation, o);
            return;
        }
        if state.fenced.contains(b) {
            // The session was lost to a false suspicion; the broker is back.
            self.on_heartbeat_resumed(state, b, o);
        }
        if leader_epoch < state.partition.leader_epoch {
            self.send_leader_and_isr(state, b, o);
        }
        // A fresh session: every expiry timer of this broker starts again.
        for timer in session_timers(&self.topology, b) {
            o.cancel_timer(timer);
        }
    }

    fn tell_leader(&self, state: &ControllerState, o: &mut O) {
        if let Some(leader) = state.partition.leader {
            self.send_leader_and_isr(state, leader, o);
        }
    }

    fn send_leader_and_isr(&self, state: &ControllerState, b: BrokerId, o: &mut O) {
        o.send(
            self.topology.broker(b),
            Msg::LeaderAndIsr {
                partition: state.partition,
                broker_incarnation: state.incarnations[b.index()],
            },
        );
    }
}

/// KIP-903 (Kafka 3.5): an addition proposed on the strength of fetches from an earlier
/// incarnation (one that crashed and lost its unflushed log) is refused; the leader sees the
/// new incarnation's fetches soon enough and proposes it again.
fn stale_addition(
    additions: BrokerSet,
    proposed: &[u32; REPLICAS_MAX],
    registered: &[u32; REPLICAS_MAX],
) -> bool {
    additions
        .iter()
        .any(|b| proposed[b.index()] != registered[b.index()])
}

/// Every session-expiry timer of broker `b`, one per possible successor.
fn session_timers(topology: &Topology, b: BrokerId) -> Vec<Timer> {
    std::iter::once(None)
        .chain(topology.brokers().map(Some))
        .map(|successor| Timer::SessionExpired {
            broker: b,
            successor,
        })
        .collect()
}

fn set_or_cancel(o: &mut O, timer: Timer, armed: bool) {
    if armed {
        let range = timer_range(timer.clone());
        o.set_timer(timer, range);
    } else {
        o.cancel_timer(timer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::actor::Command;

    fn controller() -> Controller {
        Controller {
            topology: Topology {
                replicas: 3,
                producers: 1,
                consumer: true,
            },
            unclean_election: false,
            restarted_broker: RestartedBroker::LeavesIsr,
            elr: false,
            min_insync: 2,
            heartbeats: true,
            leader_moves: false,
            reduce: true,
            stale_broker_epoch_check: true,
            durable: false,
        }
    }

    /// The partitions told to broker `b` in `o`.
    fn told(o: &O, b: usize) -> Vec<PartitionState> {
        o.iter()
            .filter_map(|c| match c {
                Command::Send(dst, Msg::LeaderAndIsr { partition, .. }) if *dst == Id::from(b) => {
                    Some(*partition)
                }
                _ => None,
            })
            .collect()
    }

    fn heartbeat(incarnation: u32, epoch: u32) -> Msg {
        Msg::Heartbeat {
            incarnation,
            leader_epoch: Epoch(epoch),
        }
    }

    /// Setup: broker 0 leads epoch 1; its session expires and broker 1 is elected in epoch 2,
    /// but the `LeaderAndIsr` never arrives. Step: broker 1 heartbeats, still at epoch 1.
    /// Verdict: it is told again that it leads epoch 2; a heartbeat at epoch 2 is not.
    #[test]
    fn a_heartbeat_behind_the_leader_epoch_is_told_the_partition_again() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        c.on_timeout(
            &mut state,
            &Timer::SessionExpired {
                broker: BrokerId(0),
                successor: Some(BrokerId(1)),
            },
            &mut O::new(),
        );
        assert_eq!(state.partition.leader, Some(BrokerId(1)));
        assert_eq!(state.partition.leader_epoch, Epoch(2));

        let mut o = O::new();
        c.on_msg(&mut state, Id::from(1), heartbeat(0, 1), &mut o);
        assert_eq!(told(&o, 1), vec![state.partition]);

        let mut o = O::new();
        c.on_msg(&mut state, Id::from(1), heartbeat(0, 2), &mut o);
        assert_eq!(told(&o, 1), vec![]);
    }

    /// Setup: broker 2 restarted as incarnation 1, and its `Register` was lost. Step: its
    /// heartbeat arrives. Verdict: the heartbeat registers it, as the `Register` would have.
    #[test]
    fn a_heartbeat_from_an_unregistered_incarnation_registers_it() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(2), heartbeat(1, 1), &mut o);
        assert_eq!(state.incarnations[2], 1);
        assert_eq!(told(&o, 2).len(), 1, "told the partition on registering");
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(2), heartbeat(0, 1), &mut o);
        assert_eq!(told(&o, 2), vec![], "the old incarnation is ignored");
    }

    fn saved(o: &O) -> Vec<ControllerState> {
        o.iter()
            .filter_map(|c| match c {
                Command::Save(NodeStorage::Controller(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Setup: a durable controller elects broker 1 in epoch 2 after broker 0's session
    /// expires. Step: it restarts on what it saved. Verdict: it saved the election in the same
    /// step, and the restart takes up epoch 2 with broker 1 leading; a heartbeat that changes
    /// nothing saves nothing. Without durability it saves nothing and a restart starts over.
    #[test]
    fn a_durable_controller_saves_each_change_and_restarts_where_it_was() {
        let c = Controller {
            durable: true,
            ..controller()
        };
        let mut o = O::new();
        let mut state = c.on_start(None, &mut o);
        assert_eq!(
            saved(&o),
            vec![state.clone()],
            "the first start saves the partition"
        );
        let mut o = O::new();
        c.on_timeout(
            &mut state,
            &Timer::SessionExpired {
                broker: BrokerId(0),
                successor: Some(BrokerId(1)),
            },
            &mut o,
        );
        assert_eq!(saved(&o), vec![state.clone()]);
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(1), heartbeat(0, 2), &mut o);
        assert_eq!(saved(&o), vec![], "nothing changed, nothing saved");

        let restarted = c.on_start(Some(&state), &mut O::new());
        assert_eq!(restarted, state);
        assert_eq!(restarted.partition.leader, Some(BrokerId(1)));
        assert_eq!(restarted.partition.leader_epoch, Epoch(2));

        let forgetful = controller();
        let mut o = O::new();
        let fresh = forgetful.on_start(Some(&state), &mut o);
        assert_eq!(fresh.partition.leader_epoch, Epoch::INITIAL);
        assert_eq!(saved(&o), vec![], "the model's controller saves nothing");
    }
}
