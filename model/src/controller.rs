//! The controller: the source of truth for the partition's leader, leader epoch, ISR and
//! (KIP-966) eligible leader replicas.
//!
//! It abstracts ZooKeeper/KRaft and never crashes, but it knows of broker failures only through
//! expired sessions (a timer that may fire whether the broker is dead or merely slow), so it can
//! elect a new leader while the old one still runs: epochs must fence that zombie.
//!
//! Moves it may make at any moment, as Kafka's controller can (each a timer in the checker):
//! - `Controller::on_session_expired`: any registered broker's session expires. A follower
//!   leaves the ISR (unless it is the last member, or with ELR); the leader is replaced by any
//!   live ISR member (Kafka prefers assignment order, but reassignments and preferred-leader
//!   elections make any order possible), else by a live ELR member (KIP-966), else by any live
//!   replica if `unclean.leader.election.enable`, else the partition goes offline.
//! - `Controller::move_leadership`: preferred-leader election or controlled shutdown moves
//!   leadership to any live ISR member in a new epoch (model only; the engine has no operator).
//! - `Controller::on_heartbeat_resumed`: a fenced broker's heartbeats come back and it is
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

use crate::config::{Config, Guard, RestartedBroker};
use crate::msg::{ErrorCode, Msg, PartitionState, Timer};
use crate::node::{timer_range, ActorParams, Node, NodeStorage, Topology};
use crate::types::{
    BrokerEpoch, BrokerId, BrokerSet, Epoch, PartitionEpoch, ProducerId, REPLICAS_MAX,
};
use serde::{Deserialize, Serialize};
use stateright::actor::{Id, Out};

#[derive(Clone, Debug)]
pub struct Controller {
    pub topology: Topology,
    /// The partition's configuration (unclean election, restart semantics, KIP-966,
    /// `min.insync.replicas`, the checker's reductions, a removed guard).
    pub config: Config,
    /// How the host runs it: heartbeats and a durable controller in the engine, operators'
    /// leadership moves in the model (see [`ActorParams`]).
    pub params: ActorParams,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControllerState {
    pub partition: PartitionState,
    /// Brokers whose session expired and that have not registered or heartbeated since: not
    /// electable, not addable to the ISR.
    pub fenced: BrokerSet,
    /// Each broker's registered incarnation (Kafka's broker epoch).
    pub incarnations: [BrokerEpoch; REPLICAS_MAX],
    /// Elections that found no in-sync replica and picked another (for traces).
    pub unclean_elections: u32,
    /// The next producer id `InitProducerId` hands out (KIP-98). Saved with the rest of a
    /// durable controller's state before the answer leaves, so a restarted controller never
    /// hands out an id twice. It starts at [`FIRST_ALLOCATED_PRODUCER_ID`], above the fixed ids
    /// of the topology's own producers.
    ///
    /// The model checker never sends `InitProducerId`: its producers keep their fixed ids
    /// (`1..=producers`). That cannot change a verdict: the idempotence rule only needs each
    /// producer's id to be unique, and fixed distinct ids are unique; this field then stays at
    /// its initial value in every state, so it adds no states (the pinned counts hold).
    pub next_producer_id: u32,
}

/// The first producer id the controller allocates: ids below it are the topology's own
/// producers' (at most a few), so an allocated id never collides with one.
pub const FIRST_ALLOCATED_PRODUCER_ID: u32 = 1 << 16;

type O = Out<Node>;

impl Controller {
    /// What every controller step keeps true (checked after each step in debug builds, by
    /// `Node`): the ISR and the ELR never overlap; the ELR and its last known value exist
    /// only with KIP-966; before KIP-966 the ISR never empties (its last member stays); the
    /// leader is an ISR member and not fenced.
    pub fn assert_invariants(&self, state: &ControllerState) {
        let p = &state.partition;
        let all = BrokerSet::all(self.topology.replicas);
        debug_assert!(
            p.isr.minus(all).is_empty() && p.elr.minus(all).is_empty(),
            "a replica that does not exist: {p:?}"
        );
        debug_assert!(
            p.isr.intersect(p.elr).is_empty(),
            "ISR and ELR overlap: {p:?}"
        );
        debug_assert!(
            self.config.elr || (p.elr.is_empty() && p.last_known_elr.is_empty()),
            "an ELR without KIP-966: {p:?}"
        );
        debug_assert!(
            self.config.elr || !p.isr.is_empty(),
            "an empty ISR without KIP-966: {p:?}"
        );
        if let Some(leader) = p.leader {
            debug_assert!(p.isr.contains(leader), "a leader outside the ISR: {p:?}");
            debug_assert!(
                !state.fenced.contains(leader),
                "a fenced leader: {p:?}, fenced {:?}",
                state.fenced
            );
        }
    }

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
            Some(saved) if self.params.durable_controller => saved.clone(),
            _ => ControllerState {
                partition: Controller::initial_partition(self.topology.replicas),
                fenced: BrokerSet::EMPTY,
                incarnations: [BrokerEpoch::NONE; REPLICAS_MAX],
                unclean_elections: 0,
                next_producer_id: FIRST_ALLOCATED_PRODUCER_ID,
            },
        };
        if self.params.durable_controller {
            o.save(NodeStorage::Controller(state.clone()));
        } else {
            o.save(NodeStorage::None);
        }
        // A (re)started controller has no timer armed: stateright drops a crashed actor's
        // timers, and a new engine process starts with none.
        self.arm_timers(&state, Armed::NONE, o);
        state
    }

    pub fn on_msg(&self, state: &mut ControllerState, src: Id, msg: Msg, o: &mut O) {
        let before = self.params.durable_controller.then(|| state.clone());
        let mut armed = self.wanted_timers(state);
        self.dispatch(state, src, msg, &mut armed, o);
        self.arm_timers(state, armed, o);
        self.save_if_changed(before, state, o);
    }

    /// A durable controller's save of a step that changed its state (see [`ActorParams::durable_controller`]).
    fn save_if_changed(&self, before: Option<ControllerState>, state: &ControllerState, o: &mut O) {
        if before.is_some_and(|b| &b != state) {
            o.save(NodeStorage::Controller(state.clone()));
        }
    }

    fn dispatch(
        &self,
        state: &mut ControllerState,
        src: Id,
        msg: Msg,
        armed: &mut Armed,
        o: &mut O,
    ) {
        match msg {
            Msg::Metadata => o.send(
                src,
                Msg::MetadataResponse {
                    leader: state.partition.leader,
                    leader_epoch: state.partition.leader_epoch,
                },
            ),
            // KIP-98: a fresh id per request; the state changed, so `on_msg` saves it before
            // the answer leaves (the runtime writes a step's save before its messages).
            // Once the ids run out (after 2^32 - 2^16 of them) nothing is answered and the
            // asker times out: never an id twice.
            Msg::InitProducerId { request } => {
                if let Some(next) = state.next_producer_id.checked_add(1) {
                    let producer = ProducerId(state.next_producer_id);
                    state.next_producer_id = next;
                    o.send(src, Msg::InitProducerIdResponse { request, producer });
                }
            }
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
                    self.on_heartbeat(state, b, incarnation, leader_epoch, armed, o);
                }
            }
            // Not the controller's business: data-path messages and client answers.
            _ => {}
        }
    }

    pub fn on_timeout(&self, state: &mut ControllerState, timer: &Timer, o: &mut O) {
        let before = self.params.durable_controller.then(|| state.clone());
        // The timer that fired is no longer armed (stateright and the engine both drop it).
        let armed = self.wanted_timers(state).without(timer);
        match *timer {
            Timer::SessionExpired { broker, successor } => {
                self.on_session_expired(state, broker, successor, o)
            }
            Timer::ElectLeader(b) => self.move_leadership(state, b, o),
            Timer::HeartbeatResumed(b) => self.on_heartbeat_resumed(state, b, o),
            _ => {}
        }
        self.arm_timers(state, armed, o);
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
        if self.config.elr && !eligible.is_empty() {
            return eligible;
        }
        if self.config.unclean_election {
            return live;
        }
        BrokerSet::EMPTY
    }

    /// Arms exactly the timers for the moves open now (so the checker explores no move that
    /// would change nothing), and cancels the rest.
    /// The timers the controller keeps armed in `state`: which moves the checker may take
    /// next (expiries, operators' moves, false suspicions ending). A function of the state
    /// alone, so after every step the controller's armed timers are exactly these
    /// (`InsyncModel` asserts it after each controller step in debug builds).
    pub fn wanted_timers(&self, state: &ControllerState) -> Armed {
        let p = &state.partition;
        let mut wanted = Armed::NONE;
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
                || self.config.unclean_election
                || !self.config.reductions;
            if live && expiry_matters && (!leads || successors.is_empty()) {
                wanted.insert(&Timer::SessionExpired {
                    broker: b,
                    successor: None,
                });
            }
            for c in successors.iter() {
                wanted.insert(&Timer::SessionExpired {
                    broker: b,
                    successor: Some(c),
                });
            }
            let movable =
                self.params.explore && live && p.leader.is_some() && !leads && p.isr.contains(b);
            if movable {
                wanted.insert(&Timer::ElectLeader(b));
            }
            if !self.params.heartbeats && !live {
                wanted.insert(&Timer::HeartbeatResumed(b));
            }
        }
        wanted
    }

    /// Arms the timers `state` wants and cancels the others, given the ones still `armed`:
    /// only the difference is sent, so a step that changes no timer costs no command.
    fn arm_timers(&self, state: &ControllerState, armed: Armed, o: &mut O) {
        let wanted = self.wanted_timers(state);
        for timer in armed.minus(wanted).iter() {
            o.cancel_timer(timer);
        }
        for timer in wanted.minus(armed).iter() {
            let range = timer_range(timer.clone());
            o.set_timer(timer, range);
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
        incarnations: &[BrokerEpoch; REPLICAS_MAX],
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
        if self.config.guards(Guard::StaleBrokerEpoch)
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
    #[must_use = "whether the partition changed, so the brokers need telling"]
    fn remove_from_isr(&self, state: &mut ControllerState, b: BrokerId, unclean: bool) -> bool {
        let p = &mut state.partition;
        let in_isr = p.isr.contains(b);
        let in_elr = p.elr.contains(b);
        if unclean && self.config.elr {
            if !in_isr && !in_elr {
                return false;
            }
            p.isr = p.isr.without(b);
            p.elr = p.elr.without(b);
            p.last_known_elr = p.last_known_elr.without(b);
        } else {
            if !in_isr || (p.isr.len() == 1 && !self.config.elr) {
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
        if !self.config.elr {
            return;
        }
        if p.isr.len() >= self.config.min_insync {
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
            if p.isr.contains(old) && (p.isr.len() > 1 || self.config.elr) {
                p.isr = p.isr.without(old);
                self.maintain_elr(p, BrokerSet::single(old));
            }
        }
        match leader {
            Some(c) if p.isr.contains(c) => {}
            Some(c) => {
                // From the ELR (clean, KIP-966) or an unclean election: it alone is in sync.
                if !(self.config.elr && p.elr.contains(c)) {
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

    fn on_register(
        &self,
        state: &mut ControllerState,
        b: BrokerId,
        incarnation: BrokerEpoch,
        o: &mut O,
    ) {
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
        // Whether the ISR changed does not matter below: the leader is told either way.
        let _changed = match (self.config.elr, self.config.restarted_broker) {
            (true, _) => self.remove_from_isr(state, b, true),
            (false, RestartedBroker::LeavesIsr) => self.remove_from_isr(state, b, false),
            (false, RestartedBroker::KeepsIsr) => false,
        };
        state.fenced = state.fenced.without(b);
        if state.partition.leader.is_none() {
            self.elect_first(state, o);
        } else {
            self.send_leader_and_isr(state, b, o);
            // The leader learns the ISR change, or (same partition epoch) that a replica it
            // was refused is registered again, so it may propose it anew (it clears its
            // `ineligible` set on any LeaderAndIsr of its epoch).
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
        incarnation: BrokerEpoch,
        leader_epoch: Epoch,
        armed: &mut Armed,
        o: &mut O,
    ) {
        if !self.params.heartbeats || incarnation < state.incarnations[b.index()] {
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
        // A fresh session: every expiry timer of this broker starts again (cancelled here,
        // armed afresh by `arm_timers` if the state still wants it).
        for timer in session_timers(&self.topology, b) {
            if armed.contains(&timer) {
                o.cancel_timer(timer.clone());
                *armed = armed.without(&timer);
            }
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
    proposed: &[BrokerEpoch; REPLICAS_MAX],
    registered: &[BrokerEpoch; REPLICAS_MAX],
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

/// A set of the controller's timers, one bit each: session expiries (one per broker and
/// possible successor), operators' moves and resumed heartbeats of each broker. The
/// controller computes the set it wants after a step ([`Controller::wanted_timers`]) and
/// sends only what differs from the set still armed, instead of setting or cancelling every
/// timer on every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Armed(u64);

/// Bits per broker for session expiries: no successor, or one of the brokers.
const EXPIRY_BITS: usize = REPLICAS_MAX + 1;
const ELECT_BASE: usize = REPLICAS_MAX * EXPIRY_BITS;
const RESUMED_BASE: usize = ELECT_BASE + REPLICAS_MAX;
const _: () = assert!(
    RESUMED_BASE + REPLICAS_MAX <= 64,
    "the controller's timers fit in a u64"
);

impl Armed {
    pub const NONE: Armed = Armed(0);

    /// The bit of a controller timer. Bits follow `Timer`'s order, so iterating a set
    /// yields its timers sorted as the system state keeps them.
    fn bit(timer: &Timer) -> u64 {
        let index = match *timer {
            Timer::SessionExpired { broker, successor } => {
                broker.index() * EXPIRY_BITS + successor.map_or(0, |c| c.index() + 1)
            }
            Timer::ElectLeader(b) => ELECT_BASE + b.index(),
            Timer::HeartbeatResumed(b) => RESUMED_BASE + b.index(),
            _ => unreachable!("{timer:?} is not a controller timer"),
        };
        1 << index
    }

    fn timer(index: usize) -> Timer {
        let broker = |i: usize| BrokerId(i as u8);
        if index < ELECT_BASE {
            Timer::SessionExpired {
                broker: broker(index / EXPIRY_BITS),
                successor: (index % EXPIRY_BITS).checked_sub(1).map(broker),
            }
        } else if index < RESUMED_BASE {
            Timer::ElectLeader(broker(index - ELECT_BASE))
        } else {
            Timer::HeartbeatResumed(broker(index - RESUMED_BASE))
        }
    }

    fn insert(&mut self, timer: &Timer) {
        self.0 |= Armed::bit(timer);
    }

    pub fn contains(self, timer: &Timer) -> bool {
        self.0 & Armed::bit(timer) != 0
    }

    fn without(self, timer: &Timer) -> Armed {
        Armed(self.0 & !Armed::bit(timer))
    }

    fn minus(self, other: Armed) -> Armed {
        Armed(self.0 & !other.0)
    }

    /// The timers in the set, in `Timer`'s order.
    pub fn iter(self) -> impl Iterator<Item = Timer> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let index = bits.trailing_zeros() as usize;
            (bits != 0).then(|| {
                bits &= bits - 1;
                Armed::timer(index)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::actor::Command;
    use std::collections::BTreeSet;

    /// A controller as the engine runs it, with heartbeats (operators' moves off), on
    /// `insync check`'s default configuration.
    fn controller() -> Controller {
        Controller {
            topology: Topology {
                replicas: 3,
                producers: 1,
                consumer: true,
            },
            config: Config::default(),
            params: ActorParams {
                heartbeats: true,
                explore: false,
                ..ActorParams::model(&Config::default().validate().expect("valid"))
            },
        }
    }

    /// Broker `b`'s heartbeat, at incarnation 0 and leader epoch 1; the controller's commands.
    fn beat(c: &Controller, state: &mut ControllerState, b: usize) -> O {
        let mut o = O::new();
        c.on_msg(state, Id::from(b), heartbeat(BrokerEpoch(0), 1), &mut o);
        o
    }

    /// The controller as the checker runs it: no heartbeats, operators' moves explored.
    fn exploring_controller() -> Controller {
        Controller {
            params: ActorParams {
                heartbeats: false,
                explore: true,
                ..controller().params
            },
            ..controller()
        }
    }

    /// The invariant check can fail: a leader outside the ISR, and an ELR without KIP-966.
    #[test]
    #[cfg(debug_assertions)]
    fn the_invariant_check_catches_a_leader_outside_the_isr_and_a_stray_elr() {
        let c = controller();
        let mut o = O::new();
        let good = c.on_start(None, &mut o);
        c.assert_invariants(&good);
        let mut outside = good.clone();
        outside.partition.isr = BrokerSet::single(BrokerId(1));
        let mut stray = good.clone();
        stray.partition.isr = BrokerSet::single(BrokerId(0));
        stray.partition.elr = BrokerSet::single(BrokerId(1));
        for bad in [outside, stray] {
            let caught = std::panic::catch_unwind(|| c.assert_invariants(&bad));
            assert!(caught.is_err(), "not caught: {:?}", bad.partition);
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

    fn heartbeat(incarnation: BrokerEpoch, epoch: u32) -> Msg {
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

        let o = beat(&c, &mut state, 1);
        assert_eq!(told(&o, 1), vec![state.partition]);

        let mut o = O::new();
        c.on_msg(
            &mut state,
            Id::from(1),
            heartbeat(BrokerEpoch(0), 2),
            &mut o,
        );
        assert_eq!(told(&o, 1), vec![]);
    }

    /// Setup: broker 2 restarted as incarnation 1, and its `Register` was lost. Step: its
    /// heartbeat arrives. Verdict: the heartbeat registers it, as the `Register` would have.
    #[test]
    fn a_heartbeat_from_an_unregistered_incarnation_registers_it() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        let mut o = O::new();
        c.on_msg(
            &mut state,
            Id::from(2),
            heartbeat(BrokerEpoch(1), 1),
            &mut o,
        );
        assert_eq!(state.incarnations[2], BrokerEpoch(1));
        assert_eq!(told(&o, 2).len(), 1, "told the partition on registering");
        let o = beat(&c, &mut state, 2);
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
            params: ActorParams {
                durable_controller: true,
                ..controller().params
            },
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
        c.on_msg(
            &mut state,
            Id::from(1),
            heartbeat(BrokerEpoch(0), 2),
            &mut o,
        );
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

    fn expire(c: &Controller, state: &mut ControllerState, b: u8, successor: Option<u8>) -> O {
        let mut o = O::new();
        c.on_timeout(
            state,
            &Timer::SessionExpired {
                broker: BrokerId(b),
                successor: successor.map(BrokerId),
            },
            &mut o,
        );
        o
    }

    fn set(ids: &[u8]) -> BrokerSet {
        ids.iter()
            .fold(BrokerSet::EMPTY, |s, &b| s.with(BrokerId(b)))
    }

    /// Whether `timer` is armed after a step of `c` that left `state` (the controller's armed
    /// timers are the ones its state wants: `the_controller_sends_only_the_timers_that_change`).
    fn armed(c: &Controller, state: &ControllerState, timer: &Timer) -> bool {
        c.wanted_timers(state).contains(timer)
    }

    fn expiry(b: u8, successor: Option<u8>) -> Timer {
        Timer::SessionExpired {
            broker: BrokerId(b),
            successor: successor.map(BrokerId),
        }
    }

    /// Broker 0 (the leader) asks for `isr` at `partition_epoch`, in `epoch`, having seen
    /// `incarnations`; returns the answer.
    fn alter(
        c: &Controller,
        state: &mut ControllerState,
        (from, epoch, partition_epoch): (usize, u32, u32),
        isr: BrokerSet,
        incarnations: [BrokerEpoch; REPLICAS_MAX],
    ) -> Result<PartitionState, (ErrorCode, PartitionState)> {
        let mut o = O::new();
        c.on_msg(
            state,
            Id::from(from),
            Msg::AlterPartition {
                leader_epoch: Epoch(epoch),
                partition_epoch: PartitionEpoch(partition_epoch),
                isr,
                incarnations,
            },
            &mut o,
        );
        let answers: Vec<_> = o
            .iter()
            .filter_map(|m| match m {
                Command::Send(
                    dst,
                    Msg::AlterPartitionResponse {
                        proposed, result, ..
                    },
                ) if *dst == Id::from(from) => {
                    assert_eq!(*proposed, isr);
                    Some(*result)
                }
                _ => None,
            })
            .collect();
        assert_eq!(answers.len(), 1, "one answer to the leader");
        answers[0]
    }

    #[test]
    fn the_timers_armed_are_the_moves_open() {
        let c = exploring_controller();
        let mut o = O::new();
        let state = c.on_start(None, &mut o);
        // The leader's expiry, once per live ISR successor; never "offline" while one exists.
        assert!(armed(&c, &state, &expiry(0, Some(1))));
        assert!(armed(&c, &state, &expiry(0, Some(2))));
        assert!(!armed(&c, &state, &expiry(0, Some(0))));
        assert!(!armed(&c, &state, &expiry(0, None)));
        // A follower in the ISR may expire; it names no successor.
        assert!(armed(&c, &state, &expiry(1, None)));
        assert!(!armed(&c, &state, &expiry(1, Some(2))));
        // Leadership may move to either follower, not to the leader.
        assert!(!armed(&c, &state, &Timer::ElectLeader(BrokerId(0))));
        assert!(armed(&c, &state, &Timer::ElectLeader(BrokerId(1))));
        assert!(!armed(&c, &state, &Timer::HeartbeatResumed(BrokerId(1))));
        // Broker 2 expires: it leaves the ISR, may come back, and is no successor any more.
        let mut state = state;
        expire(&c, &mut state, 2, None);
        assert!(armed(&c, &state, &Timer::HeartbeatResumed(BrokerId(2))));
        assert!(!armed(&c, &state, &expiry(2, None)), "fenced already");
        assert!(!armed(&c, &state, &expiry(0, Some(2))));
        assert!(!armed(&c, &state, &Timer::ElectLeader(BrokerId(2))));
        // With the ISR down to the leader, only "offline" remains for its expiry.
        expire(&c, &mut state, 1, None);
        assert_eq!(state.partition.isr, set(&[0]));
        assert!(armed(&c, &state, &expiry(0, None)));
        assert!(!armed(&c, &state, &expiry(0, Some(1))));
        // Unreduced, or with unclean election, a fenced follower outside the ISR still may.
        let c2 = Controller {
            config: Config {
                reductions: false,
                ..c.config.clone()
            },
            ..c.clone()
        };
        let mut s2 = c2.on_start(None, &mut O::new());
        expire(&c2, &mut s2, 2, None);
        expire(&c2, &mut s2, 2, None);
        assert!(!armed(&c2, &s2, &expiry(2, None)), "fenced: not live");
        let mut o = O::new();
        c2.on_timeout(&mut s2, &Timer::HeartbeatResumed(BrokerId(2)), &mut o);
        assert!(!s2.partition.isr.contains(BrokerId(2)));
        assert!(armed(&c2, &s2, &expiry(2, None)), "unreduced");
        let c3 = Controller {
            config: Config {
                unclean_election: true,
                ..c.config.clone()
            },
            ..c
        };
        let mut s3 = c3.on_start(None, &mut O::new());
        expire(&c3, &mut s3, 2, None);
        let mut o = O::new();
        c3.on_timeout(&mut s3, &Timer::HeartbeatResumed(BrokerId(2)), &mut o);
        assert!(armed(&c3, &s3, &expiry(2, None)), "unclean could pick it");
        // Reduced and clean, the same follower is skipped.
        let c4 = Controller {
            params: ActorParams {
                heartbeats: false,
                ..controller().params
            },
            ..controller()
        };
        let mut s4 = c4.on_start(None, &mut O::new());
        expire(&c4, &mut s4, 2, None);
        let mut o = O::new();
        c4.on_timeout(&mut s4, &Timer::HeartbeatResumed(BrokerId(2)), &mut o);
        assert!(!armed(&c4, &s4, &expiry(2, None)));
        assert!(
            !armed(&c4, &s4, &Timer::ElectLeader(BrokerId(1))),
            "no operator"
        );
    }

    #[test]
    fn a_followers_expiry_shrinks_the_isr_but_never_empties_it() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        let o = expire(&c, &mut state, 2, None);
        assert_eq!(state.partition.isr, set(&[0, 1]));
        assert_eq!(state.partition.partition_epoch, PartitionEpoch(1));
        assert_eq!(state.partition.leader_epoch, Epoch(1));
        assert_eq!(told(&o, 0), vec![state.partition], "the leader learns it");
        assert_eq!(state.fenced, set(&[2]));
        // A stale timer of a fenced broker changes nothing.
        let before = state.clone();
        let o = expire(&c, &mut state, 2, None);
        assert_eq!(state, before);
        assert!(told(&o, 0).is_empty());
        // Down to the leader; the leader is the last member and stays.
        expire(&c, &mut state, 1, None);
        assert_eq!(state.partition.isr, set(&[0]));
        let o = expire(&c, &mut state, 0, None);
        assert_eq!(state.partition.leader, None, "offline");
        assert_eq!(state.partition.isr, set(&[0]), "the last member stays");
        assert_eq!(state.partition.leader_epoch, Epoch(2));
        for b in 0..3 {
            assert_eq!(told(&o, b), vec![state.partition]);
        }
        // Broker 0 heartbeats again: unfenced, it leads the offline partition.
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::HeartbeatResumed(BrokerId(0)), &mut o);
        assert_eq!(state.partition.leader, Some(BrokerId(0)));
        assert_eq!(state.partition.leader_epoch, Epoch(3));
        assert_eq!(state.fenced, set(&[1, 2]));
        // An unfenced broker's stale resume changes nothing.
        let before = state.clone();
        c.on_timeout(
            &mut state,
            &Timer::HeartbeatResumed(BrokerId(0)),
            &mut O::new(),
        );
        assert_eq!(state, before);
        assert_eq!(state.unclean_elections, 0);
    }

    #[test]
    fn the_leaders_expiry_elects_the_successor_its_timer_names() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 0, Some(2));
        let p = state.partition;
        assert_eq!(p.leader, Some(BrokerId(2)));
        assert_eq!(p.leader_epoch, Epoch(2));
        assert_eq!(p.isr, set(&[1, 2]), "the fenced old leader leaves");
        assert_eq!(p.partition_epoch, PartitionEpoch(1));
        // A successor that is no longer eligible: offline.
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 1, None);
        expire(&c, &mut state, 0, Some(1));
        assert_eq!(state.partition.leader, None);
        // Unclean election: an out-of-sync replica leads alone.
        let c = Controller {
            config: Config {
                unclean_election: true,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 1, None);
        expire(&c, &mut state, 2, None);
        let mut o = O::new();
        c.on_timeout(&mut state, &Timer::HeartbeatResumed(BrokerId(1)), &mut o);
        expire(&c, &mut state, 0, Some(1));
        assert_eq!(state.partition.leader, Some(BrokerId(1)));
        assert_eq!(state.partition.isr, set(&[1]));
        assert_eq!(state.unclean_elections, 1);
    }

    #[test]
    fn operators_move_leadership_to_a_live_isr_member_only() {
        let c = Controller {
            params: ActorParams {
                explore: true,
                ..controller().params
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let elect = |state: &mut ControllerState, b: u8| {
            c.on_timeout(state, &Timer::ElectLeader(BrokerId(b)), &mut O::new())
        };
        let before = state.clone();
        elect(&mut state, 0);
        assert_eq!(state, before, "it leads already");
        elect(&mut state, 1);
        assert_eq!(state.partition.leader, Some(BrokerId(1)));
        assert_eq!(state.partition.leader_epoch, Epoch(2));
        assert_eq!(state.partition.isr, set(&[0, 1, 2]), "the ISR is unchanged");
        // Broker 2 fenced and out of the ISR; broker 0 fenced but still in the ISR.
        expire(&c, &mut state, 2, None);
        let before = state.clone();
        elect(&mut state, 2);
        assert_eq!(state, before, "out of the ISR");
        state.fenced = state.fenced.with(BrokerId(0));
        let before = state.clone();
        elect(&mut state, 0);
        assert_eq!(state, before, "fenced");
        state.partition.leader = None;
        let before = state.clone();
        elect(&mut state, 0);
        assert_eq!(state, before, "offline");
    }

    #[test]
    fn alter_partition_is_a_compare_and_set_from_the_leader() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        let none = [BrokerEpoch::NONE; REPLICAS_MAX];
        let r = alter(&c, &mut state, (1, 1, 0), set(&[1]), none);
        assert_eq!(
            r.map_err(|e| e.0),
            Err(ErrorCode::FencedLeaderEpoch),
            "not the leader"
        );
        let r = alter(&c, &mut state, (0, 2, 0), set(&[0]), none);
        assert_eq!(
            r.map_err(|e| e.0),
            Err(ErrorCode::FencedLeaderEpoch),
            "another epoch"
        );
        let r = alter(&c, &mut state, (0, 1, 1), set(&[0]), none);
        assert_eq!(r.map_err(|e| e.0), Err(ErrorCode::InvalidUpdateVersion));
        let r = alter(&c, &mut state, (0, 1, 0), set(&[1, 2]), none);
        assert_eq!(
            r.map_err(|e| e.0),
            Err(ErrorCode::IneligibleReplica),
            "leaves the leader out"
        );
        assert_eq!(state.partition.isr, set(&[0, 1, 2]));
        let r = alter(&c, &mut state, (0, 1, 0), set(&[0, 1]), none);
        assert_eq!(
            r.map(|p| (p.isr, p.partition_epoch)),
            Ok((set(&[0, 1]), PartitionEpoch(1)))
        );
        assert_eq!(state.partition.isr, set(&[0, 1]));
        // Adding a fenced replica is refused, whatever the incarnations.
        expire(&c, &mut state, 2, None);
        let r = alter(&c, &mut state, (0, 1, 1), set(&[0, 1, 2]), none);
        assert_eq!(r.map_err(|e| e.0), Err(ErrorCode::IneligibleReplica));
        c.on_timeout(
            &mut state,
            &Timer::HeartbeatResumed(BrokerId(2)),
            &mut O::new(),
        );
        // Broker 2 restarted (incarnation 1) but the fetches seen were incarnation 0's.
        state.incarnations[2] = BrokerEpoch(1);
        let r = alter(&c, &mut state, (0, 1, 1), set(&[0, 1, 2]), none);
        assert_eq!(
            r.map_err(|e| e.0),
            Err(ErrorCode::IneligibleReplica),
            "KIP-903"
        );
        let mut seen = none;
        seen[2] = BrokerEpoch(1);
        let r = alter(&c, &mut state, (0, 1, 1), set(&[0, 1, 2]), seen);
        assert_eq!(r.map(|p| p.isr), Ok(set(&[0, 1, 2])));
        // Without the KIP-903 check the stale addition goes through.
        let c = Controller {
            config: Config {
                without_guard: Some(Guard::StaleBrokerEpoch),
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        alter(&c, &mut state, (0, 1, 0), set(&[0, 1]), none).expect("shrink");
        state.incarnations[2] = BrokerEpoch(1);
        let r = alter(&c, &mut state, (0, 1, 1), set(&[0, 1, 2]), none);
        assert_eq!(r.map(|p| p.isr), Ok(set(&[0, 1, 2])));
        // Only a broker may ask.
        let mut o = O::new();
        c.on_msg(
            &mut state,
            Id::from(4),
            Msg::AlterPartition {
                leader_epoch: Epoch(1),
                partition_epoch: PartitionEpoch(2),
                isr: set(&[0]),
                incarnations: none,
            },
            &mut o,
        );
        assert!(
            !o.iter().any(|m| matches!(m, Command::Send(..))),
            "no answer, no LeaderAndIsr"
        );
    }

    #[test]
    fn metadata_names_the_leader_and_its_epoch() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 0, Some(1));
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(4), Msg::Metadata, &mut o);
        let answer = o.iter().find_map(|m| match m {
            Command::Send(dst, msg @ Msg::MetadataResponse { .. }) if *dst == Id::from(4) => {
                Some(msg.clone())
            }
            _ => None,
        });
        assert_eq!(
            answer,
            Some(Msg::MetadataResponse {
                leader: Some(BrokerId(1)),
                leader_epoch: Epoch(2)
            })
        );
    }

    /// KIP-98: every InitProducerId gets an id no one had, above the topology's own, and a
    /// durable controller saves the counter in the step that hands the id out, so a restart
    /// from what it saved never hands it out again.
    #[test]
    fn producer_ids_are_allocated_once_and_survive_a_restart() {
        let c = Controller {
            params: ActorParams {
                durable_controller: true,
                ..controller().params
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let ask = |state: &mut ControllerState, request: u32| {
            let mut o = O::new();
            c.on_msg(
                state,
                Id::from(7),
                Msg::InitProducerId {
                    request: crate::msg::RequestId(request),
                },
                &mut o,
            );
            let saved = o.iter().find_map(|m| match m {
                Command::Save(NodeStorage::Controller(s)) => Some(s.clone()),
                _ => None,
            });
            let id = o.iter().find_map(|m| match m {
                Command::Send(
                    dst,
                    Msg::InitProducerIdResponse {
                        request: r,
                        producer,
                    },
                ) if *dst == Id::from(7) && r.0 == request => Some(*producer),
                _ => None,
            });
            (id.expect("an answer to the asker"), saved.expect("a save"))
        };
        let (first, _) = ask(&mut state, 1);
        let (second, saved) = ask(&mut state, 2);
        assert_eq!(first, ProducerId(FIRST_ALLOCATED_PRODUCER_ID));
        assert_ne!(first, second);
        let mut restarted = c.on_start(Some(&saved), &mut O::new());
        let (third, _) = ask(&mut restarted, 3);
        assert!(third != first && third != second, "never handed out twice");
    }

    /// KIP-98: the ids `InitProducerId` hands out never collide with the fixed ids of the
    /// topology's own producers (`1..=producers`), however many are asked for.
    #[test]
    fn allocated_producer_ids_never_collide_with_the_topologys_own() {
        let c = Controller {
            topology: Topology {
                replicas: 3,
                producers: 3,
                consumer: false,
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let fixed = 1..=c.topology.producers as u32;
        for request in 0..8 {
            let mut o = O::new();
            c.on_msg(
                &mut state,
                Id::from(4),
                Msg::InitProducerId {
                    request: crate::msg::RequestId(request),
                },
                &mut o,
            );
            let producer = o.iter().find_map(|m| match m {
                Command::Send(_, Msg::InitProducerIdResponse { producer, .. }) => Some(*producer),
                _ => None,
            });
            let producer = producer.expect("an answer");
            assert!(!fixed.contains(&producer.0), "{producer:?} is a fixed id");
        }
    }

    /// KIP-966 keeps unclean leader election as the last resort: when no ISR or ELR member
    /// is live, an unclean-enabled controller still elects a live out-of-sync replica rather
    /// than taking the partition offline.
    #[test]
    fn with_elr_an_unclean_election_still_picks_a_live_replica_when_isr_and_elr_are_gone() {
        let c = Controller {
            config: Config {
                elr: true,
                unclean_election: true,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let none = [BrokerEpoch::NONE; REPLICAS_MAX];
        alter(&c, &mut state, (0, 1, 0), set(&[0]), none).expect("shrink");
        assert_eq!(state.partition.elr, set(&[1, 2]));
        // Broker 2 restarts (an unclean shutdown: out of the ELR); broker 1's session expires.
        c.on_msg(
            &mut state,
            Id::from(2),
            Msg::Register {
                incarnation: BrokerEpoch(1),
            },
            &mut O::new(),
        );
        expire(&c, &mut state, 1, None);
        assert_eq!(state.partition.elr, set(&[1]));
        assert_eq!(state.fenced, set(&[1]));
        // The leader's session expires: only broker 2, live but in neither set, may lead.
        let o = expire(&c, &mut state, 0, Some(2));
        assert_eq!(state.partition.leader, Some(BrokerId(2)));
        assert_eq!(state.partition.isr, set(&[2]));
        assert_eq!(state.unclean_elections, 1);
        assert_eq!(told(&o, 2), vec![state.partition]);
    }

    /// KIP-966 with RF 3 and min.insync 2.
    #[test]
    fn elr_collects_who_left_a_too_small_isr_and_empties_at_min_insync() {
        let c = Controller {
            config: Config {
                elr: true,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let none = [BrokerEpoch::NONE; REPLICAS_MAX];
        alter(&c, &mut state, (0, 1, 0), set(&[0, 1]), none).expect("shrink");
        assert_eq!(state.partition.elr, set(&[]), "the ISR is at min.insync");
        alter(&c, &mut state, (0, 1, 1), set(&[0]), none).expect("shrink");
        assert_eq!(state.partition.elr, set(&[1]));
        assert_eq!(state.partition.last_known_elr, set(&[]));
        alter(&c, &mut state, (0, 1, 2), set(&[0, 2]), none).expect("grow");
        assert_eq!(state.partition.elr, set(&[]));
        assert_eq!(state.partition.last_known_elr, set(&[1]));
        // Below min.insync again; the leader's expiry elects cleanly from the ELR.
        alter(&c, &mut state, (0, 1, 3), set(&[0]), none).expect("shrink");
        assert_eq!(state.partition.elr, set(&[2]));
        expire(&c, &mut state, 0, Some(2));
        assert_eq!(state.partition.leader, Some(BrokerId(2)));
        assert_eq!(state.partition.isr, set(&[2]));
        assert_eq!(
            state.partition.elr,
            set(&[0]),
            "the old leader joins the ELR"
        );
        assert_eq!(state.unclean_elections, 0, "the ELR is clean");
        // With ELR the last member may leave the ISR.
        expire(&c, &mut state, 1, None);
        let mut state = c.on_start(None, &mut O::new());
        alter(&c, &mut state, (0, 1, 0), set(&[0]), none).expect("shrink");
        assert_eq!(state.partition.elr, set(&[1, 2]));
        expire(&c, &mut state, 0, None);
        assert_eq!(state.partition.leader, None);
        assert_eq!(state.partition.isr, set(&[]));
        assert_eq!(state.partition.elr, set(&[0, 1, 2]));
    }

    /// KIP-966: a follower fenced by an expired session leaves an ISR that is then below
    /// `min.insync.replicas`, and so joins the ELR (an expiry is no unclean shutdown).
    #[test]
    fn with_elr_a_follower_whose_session_expires_below_min_insync_joins_the_elr() {
        let c = Controller {
            config: Config {
                elr: true,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let none = [BrokerEpoch::NONE; REPLICAS_MAX];
        alter(&c, &mut state, (0, 1, 0), set(&[0, 1]), none).expect("shrink");
        assert_eq!(state.partition.elr, set(&[]));
        let o = expire(&c, &mut state, 1, None);
        assert_eq!(state.partition.isr, set(&[0]));
        assert_eq!(state.partition.elr, set(&[1]));
        assert_eq!(state.partition.partition_epoch, PartitionEpoch(2));
        assert_eq!(told(&o, 0), vec![state.partition], "the leader learns it");
    }

    /// KIP-966 unclean-shutdown detection: with ELR a restarted in-sync follower leaves the
    /// ISR in a new partition epoch, and the leader is told.
    #[test]
    fn with_elr_a_restarted_isr_follower_leaves_the_isr() {
        let c = Controller {
            config: Config {
                elr: true,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let mut o = O::new();
        c.on_msg(
            &mut state,
            Id::from(2),
            Msg::Register {
                incarnation: BrokerEpoch(1),
            },
            &mut o,
        );
        assert_eq!(state.partition.isr, set(&[0, 1]));
        assert_eq!(state.partition.elr, set(&[]));
        assert_eq!(state.partition.partition_epoch, PartitionEpoch(1));
        assert_eq!(told(&o, 0), vec![state.partition]);
    }

    #[test]
    fn a_restart_registers_a_new_incarnation_with_its_isr_semantics() {
        let register = |c: &Controller, state: &mut ControllerState, b: usize, inc: u32| {
            let mut o = O::new();
            c.on_msg(
                state,
                Id::from(b),
                Msg::Register {
                    incarnation: BrokerEpoch(inc),
                },
                &mut o,
            );
            o
        };
        // leaves-isr: the restarted follower leaves, and is told the partition.
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        let o = register(&c, &mut state, 2, 1);
        assert_eq!(state.incarnations[2], BrokerEpoch(1));
        assert_eq!(state.partition.isr, set(&[0, 1]));
        assert_eq!(told(&o, 2), vec![state.partition]);
        assert_eq!(told(&o, 0), vec![state.partition]);
        let before = state.clone();
        register(&c, &mut state, 2, 1);
        assert_eq!(state, before, "a stale registration");
        // The leader restarted: the first live ISR member leads, and the old one leaves.
        register(&c, &mut state, 0, 1);
        assert_eq!(state.partition.leader, Some(BrokerId(1)));
        assert_eq!(state.partition.leader_epoch, Epoch(2));
        assert_eq!(state.partition.isr, set(&[1]));
        assert_eq!(state.fenced, set(&[]), "registered again: not fenced");
        // keeps-isr: it keeps its seat.
        let c = Controller {
            config: Config {
                restarted_broker: RestartedBroker::KeepsIsr,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        register(&c, &mut state, 2, 1);
        assert_eq!(state.partition.isr, set(&[0, 1, 2]));
        // With ELR a restart is an unclean shutdown: out of the ISR and the ELR, even last.
        let c = Controller {
            config: Config {
                elr: true,
                ..controller().config
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        let none = [BrokerEpoch::NONE; REPLICAS_MAX];
        alter(&c, &mut state, (0, 1, 0), set(&[0]), none).expect("shrink");
        register(&c, &mut state, 2, 1);
        assert_eq!(state.partition.elr, set(&[1]));
        // The last ISR member, the leader, restarts: broker 1 leads cleanly from the ELR,
        // and the restarted broker is in neither set.
        register(&c, &mut state, 0, 1);
        assert_eq!(state.partition.leader, Some(BrokerId(1)));
        assert_eq!(state.partition.isr, set(&[1]));
        assert_eq!(state.partition.elr, set(&[]));
        assert_eq!(state.unclean_elections, 0);
        // An offline partition: the returning broker is elected if it may lead.
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 1, None);
        expire(&c, &mut state, 2, None);
        expire(&c, &mut state, 0, None);
        assert_eq!(state.partition.leader, None);
        register(&c, &mut state, 0, 1);
        assert_eq!(
            state.partition.leader,
            Some(BrokerId(0)),
            "the last ISR member"
        );
        assert_eq!(state.partition.leader_epoch, Epoch(3));
    }

    #[test]
    fn stale_additions_and_session_timers() {
        let mut registered = [BrokerEpoch::NONE; REPLICAS_MAX];
        registered[1] = BrokerEpoch(2);
        let mut seen = [BrokerEpoch::NONE; REPLICAS_MAX];
        assert!(stale_addition(set(&[1]), &seen, &registered));
        assert!(!stale_addition(set(&[2]), &seen, &registered));
        seen[1] = BrokerEpoch(2);
        assert!(!stale_addition(set(&[1, 2]), &seen, &registered));
        seen[1] = BrokerEpoch(3);
        assert!(stale_addition(set(&[1]), &seen, &registered));
        assert_eq!(
            session_timers(&controller().topology, BrokerId(1)),
            vec![
                expiry(1, None),
                expiry(1, Some(0)),
                expiry(1, Some(1)),
                expiry(1, Some(2))
            ]
        );
    }

    /// The controller sends only the timer commands that change what is armed, and what is
    /// armed after each step (its commands applied in order, the fired timer dropped) is
    /// exactly what its state wants: on a walk through expiries, elections, a resumed
    /// heartbeat and steps that change nothing.
    #[test]
    fn the_controller_sends_only_the_timers_that_change() {
        let c = exploring_controller();
        let apply = |armed: &mut BTreeSet<Timer>, o: &O| -> usize {
            let mut commands = 0;
            for m in o.iter() {
                match m {
                    Command::SetTimer(t, _) => {
                        assert!(armed.insert(t.clone()), "{t:?} set while armed");
                        commands += 1;
                    }
                    Command::CancelTimer(t) => {
                        assert!(armed.remove(t), "{t:?} cancelled while not armed");
                        commands += 1;
                    }
                    _ => {}
                }
            }
            commands
        };
        let mut o = O::new();
        let mut state = c.on_start(None, &mut o);
        let mut armed = BTreeSet::new();
        apply(&mut armed, &o);
        assert!(armed.iter().cloned().eq(c.wanted_timers(&state).iter()));
        assert_eq!(
            armed.len(),
            6,
            "two successors, two followers, two moves: {armed:?}"
        );
        let steps = [
            expiry(2, None),
            Timer::HeartbeatResumed(BrokerId(2)),
            Timer::ElectLeader(BrokerId(1)),
            expiry(1, Some(0)),
            expiry(0, None),
        ];
        for timer in steps {
            assert!(armed.remove(&timer), "{timer:?} fires only while armed");
            let mut o = O::new();
            c.on_timeout(&mut state, &timer, &mut o);
            apply(&mut armed, &o);
            assert!(
                armed.iter().cloned().eq(c.wanted_timers(&state).iter()),
                "after {timer:?}: armed {armed:?}, wanted {:?}",
                c.wanted_timers(&state).iter().collect::<Vec<_>>()
            );
        }
        // A message that changes nothing the timers depend on sends no timer command.
        let mut o = O::new();
        c.on_msg(&mut state, Id::from(5), Msg::Metadata, &mut o);
        assert_eq!(apply(&mut armed, &o), 0);
        // The bits name each controller timer once, in `Timer`'s order.
        let all: Vec<Timer> = (0..REPLICAS_MAX as u8)
            .flat_map(|b| {
                std::iter::once(None)
                    .chain((0..REPLICAS_MAX as u8).map(Some))
                    .map(move |s| expiry(b, s))
            })
            .chain((0..REPLICAS_MAX as u8).map(|b| Timer::ElectLeader(BrokerId(b))))
            .chain((0..REPLICAS_MAX as u8).map(|b| Timer::HeartbeatResumed(BrokerId(b))))
            .collect();
        let mut every = Armed::NONE;
        for t in &all {
            assert!(!every.contains(t));
            every.insert(t);
        }
        assert!(every.iter().eq(all.iter().cloned()));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_heartbeat_resets_the_session_and_unfences() {
        let c = controller();
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 2, None);
        beat(&c, &mut state, 2);
        assert_eq!(state.fenced, set(&[]));
        // Broker 1's session, armed since the start, starts again: cancelled, then set.
        let o = beat(&c, &mut state, 1);
        let restarted: Vec<_> = o
            .iter()
            .filter_map(|m| match m {
                Command::CancelTimer(t) => Some((false, t.clone())),
                Command::SetTimer(t, _) => Some((true, t.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            restarted,
            vec![(false, expiry(1, None)), (true, expiry(1, None))]
        );
        // Without heartbeats (the model) a heartbeat does nothing.
        let c = Controller {
            params: ActorParams {
                heartbeats: false,
                ..controller().params
            },
            ..controller()
        };
        let mut state = c.on_start(None, &mut O::new());
        expire(&c, &mut state, 2, None);
        let before = state.clone();
        c.on_msg(
            &mut state,
            Id::from(2),
            heartbeat(BrokerEpoch(0), 1),
            &mut O::new(),
        );
        assert_eq!(state, before);
    }
}
