//! The controller: the source of truth for the partition's leader, leader epoch and ISR.
//!
//! It abstracts ZooKeeper/KRaft and never crashes, but it knows of broker failures only through
//! expired sessions (a timer that may fire whether the broker is dead or merely slow), so it can
//! elect a new leader while the old one still runs: epochs must fence that zombie.
//!
//! Rules encoded:
//! - Clean election: the first replica, in assignment order, that is in the ISR and not fenced.
//!   With none, the partition goes offline, unless `unclean.leader.election.enable` lets any
//!   unfenced replica lead (its ISR becomes just itself, and what it lacks is lost).
//! - Every election bumps `leader_epoch`; every change bumps `partition_epoch`.
//! - `AlterPartition` from the leader is a compare-and-set on `partition_epoch` (KIP-497), and
//!   refuses to add a fenced replica (KIP-841).
//! - A broker that registers again is a new incarnation. If the old one led, it is treated as
//!   failed first (a new leader is elected), then the new one is unfenced. A follower that
//!   restarts keeps its ISR membership, as a ZooKeeper-mode controller keeps a broker that comes
//!   back within its session timeout; the leader's lag check removes it if it is behind. (KRaft
//!   with KIP-841/KIP-966 is stricter; this model keeps the weaker rule so the legacy and
//!   `flush=async` losses stay visible.)

use crate::msg::{ErrorCode, Msg, PartitionState, Timer};
use crate::node::{timer_range, Node, NodeStorage, Topology};
use crate::types::{BrokerId, BrokerSet, Epoch, PartitionEpoch, REPLICAS_MAX};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};

#[derive(Clone, Debug)]
pub struct Controller {
    pub topology: Topology,
    pub unclean_election: bool,
    /// Brokers heartbeat (the engine): a heartbeat resets the session timer, and lets a broker
    /// fenced by a false suspicion back in.
    pub heartbeats: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControllerState {
    pub partition: PartitionState,
    /// Brokers whose session expired and that have not registered since: not electable, not
    /// addable to the ISR.
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
            partition_epoch: PartitionEpoch(0),
        }
    }

    pub fn on_start(&self, o: &mut O) -> ControllerState {
        o.save(NodeStorage::None);
        let state = ControllerState {
            partition: Controller::initial_partition(self.topology.replicas),
            fenced: BrokerSet::EMPTY,
            incarnations: [0; REPLICAS_MAX],
            unclean_elections: 0,
        };
        self.arm_session_timer(&state, o);
        state
    }

    /// Only the leader's session is let expire. A follower's expiry would only take it out of
    /// the ISR, which the leader's lag check does too; this keeps the checker from exploring
    /// the same ISR shrink twice. A crashed follower is noticed when it registers again.
    fn arm_session_timer(&self, state: &ControllerState, o: &mut O) {
        for b in self.topology.brokers() {
            if state.partition.leader == Some(b) && !state.fenced.contains(b) {
                o.set_timer(
                    Timer::SessionExpired(b),
                    timer_range(Timer::SessionExpired(b)),
                );
            } else {
                o.cancel_timer(Timer::SessionExpired(b));
            }
        }
    }

    pub fn on_msg(&self, state: &mut ControllerState, src: Id, msg: Msg, o: &mut O) {
        self.dispatch(state, src, msg, o);
        self.arm_session_timer(state, o);
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
            } => {
                if let Some(from) = self.topology.broker_of(src) {
                    let result =
                        self.alter_partition(state, from, leader_epoch, partition_epoch, isr);
                    o.send(src, Msg::AlterPartitionResponse { result });
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
            _ => {}
        }
    }

    pub fn on_timeout(&self, state: &mut ControllerState, timer: &Timer, o: &mut O) {
        if let Timer::SessionExpired(b) = *timer {
            if !state.fenced.contains(b) {
                self.fence(state, b, o);
            }
        }
        self.arm_session_timer(state, o);
    }

    fn alter_partition(
        &self,
        state: &mut ControllerState,
        from: BrokerId,
        leader_epoch: Epoch,
        partition_epoch: PartitionEpoch,
        isr: BrokerSet,
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
        p.isr = isr;
        p.partition_epoch = p.partition_epoch.next();
        Ok(*p)
    }

    /// The broker is presumed dead: it loses leadership and ISR membership.
    fn fence(&self, state: &mut ControllerState, b: BrokerId, o: &mut O) {
        state.fenced = state.fenced.with(b);
        if state.partition.leader == Some(b) {
            self.elect(state, o);
        } else if state.partition.isr.contains(b) && state.partition.isr.len() > 1 {
            let p = &mut state.partition;
            p.isr = p.isr.without(b);
            p.partition_epoch = p.partition_epoch.next();
            if let Some(leader) = p.leader {
                self.send_leader_and_isr(state, leader, o);
            }
        }
    }

    /// Picks a new leader in a new epoch and tells every broker.
    fn elect(&self, state: &mut ControllerState, o: &mut O) {
        let p = &mut state.partition;
        let live_isr = p.isr.minus(state.fenced);
        let candidates = BrokerSet::all(self.topology.replicas).minus(state.fenced);
        if let Some(leader) = live_isr.iter().next() {
            p.leader = Some(leader);
            p.isr = live_isr;
        } else if let Some(leader) = candidates.iter().next().filter(|_| self.unclean_election) {
            p.leader = Some(leader);
            p.isr = BrokerSet::single(leader);
            state.unclean_elections += 1;
        } else {
            // Offline: the ISR keeps its last members so that they can lead cleanly later.
            p.leader = None;
        }
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
        if state.partition.leader == Some(b) && !state.fenced.contains(b) {
            // The old incarnation led: its pending requests and role are gone, so elect anew.
            self.fence(state, b, o);
        }
        state.incarnations[b.index()] = incarnation;
        state.fenced = state.fenced.without(b);
        if state.partition.leader.is_none() {
            self.elect(state, o);
        } else {
            self.send_leader_and_isr(state, b, o);
            if let Some(leader) = state.partition.leader {
                // The leader may add the returning replica to the ISR again.
                self.send_leader_and_isr(state, leader, o);
            }
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
            state.fenced = state.fenced.without(b);
            self.send_leader_and_isr(state, b, o);
            if state.partition.leader.is_none() {
                self.elect(state, o);
            }
        } else if leader_epoch < state.partition.leader_epoch {
            self.send_leader_and_isr(state, b, o);
        }
        if state.partition.leader == Some(b) {
            let timer = Timer::SessionExpired(b);
            o.cancel_timer(timer.clone());
            o.set_timer(timer.clone(), timer_range(timer));
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
            heartbeats: true,
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
        let mut state = c.on_start(&mut O::new());
        c.on_timeout(
            &mut state,
            &Timer::SessionExpired(BrokerId(0)),
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
        let mut state = c.on_start(&mut O::new());
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(2), heartbeat(1, 1), &mut o);
        assert_eq!(state.incarnations[2], 1);
        assert_eq!(told(&o, 2).len(), 1, "told the partition on registering");
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(2), heartbeat(0, 1), &mut o);
        assert_eq!(told(&o, 2), vec![], "the old incarnation is ignored");
    }
}
