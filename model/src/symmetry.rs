//! Symmetry over brokers: a state and the same state with its brokers renamed behave alike,
//! so the depth-first and simulation checkers need to visit only one of them.
//!
//! # Why renaming brokers is sound here
//!
//! A reduction by a representative function is sound when (1) the representative of a state
//! is a renaming of it, (2) renaming commutes with the transitions (the successors of a
//! renamed state are the renamed successors) and with the boundary, and (3) every property
//! judges a state and its renaming alike. (1) holds by construction: [`representative`]
//! only ever applies a permutation of broker ids, however it picks it. For (2) and (3):
//!
//! - Broker actors are one type, parameterised only by their id, and every rule compares ids
//!   for equality or tests set membership; none prefers a lower id. Properties quantify over
//!   all brokers.
//! - The controller picks a new leader by which session-expiry timer fires (one per possible
//!   successor) and moves leadership to any live ISR member: every choice is explored, so no
//!   "first in assignment order" decides a branch. Two places still take the first broker in
//!   id order. `Controller::elect_first` runs when an offline partition gets one broker
//!   back, and at most that one broker is eligible then (the sets it picks from only shrink
//!   while the partition is offline). `Controller::on_register`, when the registering broker
//!   is the unfenced leader (it restarted before its session expired), picks the first live
//!   ISR member: that branch breaks the symmetry, so [`applies`] turns the reduction off
//!   whenever it is reachable, i.e. whenever an unfenced leader may crash (the crash
//!   reduction of `node::crash_is_interesting` keeps only crashes of fenced leaders).
//! - The initial state names broker 0 as leader; that only picks which member of its orbit
//!   the search starts from. A restarted consumer starts with no leader and asks the
//!   controller, so no hint names broker 0 after the start.
//!
//! `tests/symmetry.rs` checks (2) and (3) directly: on random walks of several
//! configurations, each state and a random renaming of it have the same boundary verdict,
//! the same property verdicts, and successor sets that are renamings of each other. It also
//! checks that verdicts with and without the reduction are equal on every matrix row at
//! small bounds, and that the reduced search is smaller.
//!
//! # How the representative is chosen
//!
//! Brokers are sorted by a summary of everything the state says about them that names no
//! broker id (their own state and saved state, the controller's view of them, what brokers
//! acting as leader track for them, the messages and timers that concern them). States
//! whose brokers are renamed copies of each other get the same summaries, so they sort to
//! the same representative, except where two brokers' summaries tie and they still differ in
//! how they relate to each other; then the renamed copies may stay apart, which costs
//! states but never soundness.

use crate::broker::{BrokerState, LeaderState, Role};
use crate::config::ValidConfig;
use crate::controller::ControllerState;
use crate::msg::{Msg, PartitionState, Timer};
use crate::node::{InsyncState, NodeState, NodeStorage};
use crate::system::{msgs_hash, part_hash, Net};
use crate::types::{BrokerId, BrokerSet, REPLICAS_MAX};
use ahash::AHasher;
use smallvec::SmallVec;
use stateright::actor::Id;
use stateright::{Rewrite, RewritePlan};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// A renaming of broker ids: broker `b` becomes `to[b]`. Other actors keep their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renaming {
    to: [u8; REPLICAS_MAX],
    replicas: usize,
}

impl Renaming {
    /// `to[b]` is broker `b`'s new id; `to` must be a permutation of `0..to.len()`.
    pub fn new(to: &[BrokerId]) -> Renaming {
        let replicas = to.len();
        assert!(replicas <= REPLICAS_MAX, "at most {REPLICAS_MAX} replicas");
        let mut seen = BrokerSet::EMPTY;
        let mut map = [0u8; REPLICAS_MAX];
        for (b, t) in to.iter().enumerate() {
            assert!(
                t.index() < replicas && !seen.contains(*t),
                "not a permutation: {to:?}"
            );
            seen = seen.with(*t);
            map[b] = t.0;
        }
        for (b, m) in map.iter_mut().enumerate().skip(replicas) {
            *m = b as u8;
        }
        Renaming { to: map, replicas }
    }

    pub fn is_identity(&self) -> bool {
        self.to.iter().enumerate().all(|(b, &t)| b == t as usize)
    }

    fn plan(&self) -> RewritePlan<Id, Renaming> {
        RewritePlan::new(*self, |id, r| {
            let i = usize::from(*id);
            if i < r.replicas {
                Id::from(r.to[i] as usize)
            } else {
                *id
            }
        })
    }

    /// Slot `i` of the renamed state holds the parts of actor `from[i]`: broker `b`'s go to
    /// slot `to[b]`, the other actors keep theirs.
    fn sources(&self, count: usize) -> SmallVec<[usize; 8]> {
        let n = self.replicas;
        let mut from = [0usize; REPLICAS_MAX];
        for b in 0..n {
            from[self.to[b] as usize] = b;
        }
        (0..count)
            .map(|i| if i < n { from[i] } else { i })
            .collect()
    }

    /// Whether an actor's state names a broker, so that renaming changes it: brokers, the
    /// controller and clients that know a leader.
    fn names_brokers(s: &NodeState) -> bool {
        match s {
            NodeState::Broker(_) | NodeState::Controller(_) => true,
            NodeState::Producer(p) => p.leader.is_some(),
            NodeState::Consumer(c) => c.leader.is_some(),
        }
    }

    /// An actor's state renamed, or `None` where it names no broker and only moves.
    fn renamed_state(plan: &RewritePlan<Id, Renaming>, s: &NodeState) -> Option<NodeState> {
        Self::names_brokers(s).then(|| s.rewrite(plan))
    }

    /// A disk renamed, or `None` where it only moves: a broker's disk names no broker; the
    /// controller's is renamed.
    fn renamed_storage(
        plan: &RewritePlan<Id, Renaming>,
        s: Option<&NodeStorage>,
    ) -> Option<NodeStorage> {
        match s {
            Some(s @ NodeStorage::Controller(_)) => Some(s.rewrite(plan)),
            _ => None,
        }
    }

    /// The armed timers renamed: a broker's timers move with it; only the controller's
    /// timers name brokers.
    fn renamed_timers<'a>(
        &'a self,
        plan: &'a RewritePlan<Id, Renaming>,
        state: &'a InsyncState,
    ) -> impl Iterator<Item = (usize, Timer)> + 'a {
        let n = self.replicas;
        state.timers.iter().map(move |(i, t)| {
            let i = usize::from(*i);
            if i == n {
                (i, t.rewrite(plan))
            } else if i < n {
                (self.to[i] as usize, t.clone())
            } else {
                (i, t.clone())
            }
        })
    }

    /// The whole state with its brokers renamed.
    pub fn apply(&self, state: &InsyncState) -> InsyncState {
        let plan = self.plan();
        let from = self.sources(state.actor_states.len());
        let states = from
            .iter()
            .map(|&j| Self::renamed_state(&plan, &state.actor_states[j]))
            .collect();
        let storages = from
            .iter()
            .map(|&j| Self::renamed_storage(&plan, state.actor_storages[j].as_deref()))
            .collect();
        let network = if state.network.is_ordered() {
            state
                .network
                .renamed_flows(|id| plan.rewrite(id), |m: &Msg| m.rewrite(&plan))
        } else {
            Net::build(
                false,
                state
                    .network
                    .iter_all()
                    .map(|e| e.to_cloned_msg().rewrite(&plan)),
                state.network.last_delivered().map(|e| e.rewrite(&plan)),
            )
        };
        let timers = self.renamed_timers(&plan, state);
        state.permuted(&from, states, storages, timers, network)
    }

    /// `self.apply(state).stable_hash()`, computed from the renamed parts' hashes without
    /// building the renamed state (no part is allocated or shared; the renamed messages are
    /// hashed one by one). On the duplicating network it builds the state.
    pub fn apply_hash(&self, state: &InsyncState) -> u64 {
        if !state.network.is_ordered() {
            return self.apply(state).stable_hash();
        }
        let plan = self.plan();
        let from = self.sources(state.actor_states.len());
        let key = self.key();
        MEMO.with_borrow_mut(|memo| {
            let states: SmallVec<[Option<u64>; 8]> = from
                .iter()
                .map(|&j| {
                    let s = &state.actor_states[j];
                    Self::names_brokers(s).then(|| {
                        memo.states.get(state.actor_hash(j), key, || {
                            part_hash(&Self::renamed_state(&plan, s).expect("names brokers"))
                        })
                    })
                })
                .collect();
            let storages: SmallVec<[Option<u64>; 8]> = from
                .iter()
                .map(|&j| {
                    Self::renamed_storage(&plan, state.actor_storages[j].as_deref())
                        .map(|s| part_hash(&Some(&s)))
                })
                .collect();
            let flows = state
                .network
                .flows()
                .iter()
                .map(|f| {
                    let msgs = f.msgs();
                    let hash = memo.flows.get(f.msgs_hash(), key, || {
                        msgs_hash(msgs.len(), msgs.iter().map(|m| m.rewrite(&plan)))
                    });
                    (plan.rewrite(&f.src), plan.rewrite(&f.dst), hash)
                })
                .collect();
            let timers = self.renamed_timers(&plan, state);
            state.permuted_hash(&from, &states, &storages, timers, flows)
        })
    }

    /// The renaming as one word, for the memo's keys.
    fn key(&self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[..REPLICAS_MAX].copy_from_slice(&self.to);
        bytes[REPLICAS_MAX] = self.replicas as u8;
        u64::from_le_bytes(bytes)
    }
}

/// The hashes of renamed parts, remembered per checker thread: a successor shares most of
/// its parts with its parent, and states near each other in the search mostly need the same
/// renamings, so most renamed parts were hashed before. A part is known by its content hash
/// (the `part_hash` a state caches for each actor, the hash each flow caches for its
/// messages) and the renaming. That identifies a part by 64 bits, as the checker already
/// identifies a whole state by its 64-bit fingerprint, so it adds a collision risk of the same
/// kind and order, not a new kind of error; it changes no count (`tests/pinned.rs`, the
/// matrix, and `the_checkers_stand_in_hashes_as_the_built_representative`, which holds the
/// word equal to the built representative's hash).
///
/// The brokers' summaries use it too: a flow's summary and a broker's own summary are
/// remembered by the part's hash, and a broker's disk enters its summary by its cached hash.
/// Which brokers' summaries tie, and so which states share a representative, depends only on
/// summaries being equal, which hashing a part's summary (instead of streaming it into the
/// broker's) keeps as it was: the counts are unchanged.
struct Memo {
    states: MemoTable,
    flows: MemoTable,
    /// Summaries of parts (`summaries`), keyed by the part's hash and which summary.
    summaries: MemoTable,
}

/// The keys of the summaries' memo entries, apart from any renaming's key (`Renaming::key`
/// never sets the top byte).
const FLOW_SUMMARY: u64 = 1 << 63;
const OWN_SUMMARY: u64 = 1 << 62;

/// One table of the memo, emptied when full so that it stays small next to the search.
struct MemoTable(HashMap<(u64, u64), u64, ahash::RandomState>);

/// Entries per table and thread (about 3 MB at most); a full table is emptied. A search
/// meets few distinct parts: in the contract default's first 20 s (1.4 M unique states) no
/// table reached 8,192 entries.
const MEMO_ENTRIES_MAX: usize = 1 << 16;

impl MemoTable {
    fn new() -> MemoTable {
        MemoTable(HashMap::with_hasher(ahash::RandomState::with_seeds(
            1, 2, 3, 4,
        )))
    }

    /// The renamed hash of the part whose own hash is `part` under the renaming `key`,
    /// computed by `compute` the first time.
    fn get(&mut self, part: u64, key: u64, compute: impl FnOnce() -> u64) -> u64 {
        if let Some(&h) = self.0.get(&(part, key)) {
            return h;
        }
        if self.0.len() >= MEMO_ENTRIES_MAX {
            self.0.clear();
        }
        let h = compute();
        self.0.insert((part, key), h);
        h
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        states: MemoTable::new(),
        flows: MemoTable::new(),
        summaries: MemoTable::new(),
    });
}

/// Whether the reduction is used for `config`: only when it is sound (see the module
/// documentation: no unfenced leader can crash, because a restarted unfenced leader hands
/// leadership to the first live ISR member in id order), and only from 3 replicas. Broker 0
/// leads first, so a renaming that moves broker 0 never meets a reachable state; at 2
/// replicas that is the only renaming, and the reduction would merge nothing and cost a
/// summary per state (`tests/symmetry.rs` shows equal counts at 2 replicas).
pub fn applies(config: &ValidConfig) -> bool {
    config.replicas >= 3 && sound(config)
}

/// Whether renaming brokers commutes with every step for `config`.
pub fn sound(config: &ValidConfig) -> bool {
    config.crashes == 0 || crate::node::crash_reduction_applies(config)
}

/// The representative of `state`'s class: the state with its brokers sorted by
/// their summaries (`summaries`). For stateright's `symmetry_fn`.
pub fn representative(state: &InsyncState) -> InsyncState {
    let renaming = canonical_renaming(state);
    if renaming.is_identity() {
        state.clone()
    } else {
        renaming.apply(state)
    }
}

/// What the checker hashes in place of `representative(state)`: a stand-in carrying its
/// hash ([`InsyncState::fingerprint_only`]), so no renamed copy of the state is built. Two
/// states get equal stand-ins exactly when their representatives hash alike
/// (`tests/symmetry.rs` checks the word against the built representative on random walks).
/// For stateright's `symmetry_fn` and the simulation's seen-set.
pub fn representative_fingerprint(state: &InsyncState) -> InsyncState {
    let renaming = canonical_renaming(state);
    InsyncState::fingerprint_only(if renaming.is_identity() {
        state.stable_hash()
    } else {
        renaming.apply_hash(state)
    })
}

/// The renaming that sorts brokers by their summaries (ties keep id order).
pub fn canonical_renaming(state: &InsyncState) -> Renaming {
    let n = replicas(state);
    let keys = summaries(state, n);
    let mut order: [usize; REPLICAS_MAX] = [0, 1, 2, 3, 4];
    order[..n].sort_by_key(|&b| (keys[b], b));
    let mut to = [BrokerId(0); REPLICAS_MAX];
    for (new, &old) in order[..n].iter().enumerate() {
        to[old] = BrokerId(new as u8);
    }
    Renaming::new(&to[..n])
}

fn replicas(state: &InsyncState) -> usize {
    state
        .actor_states
        .iter()
        .take_while(|s| matches!(***s, NodeState::Broker(_)))
        .count()
}

/// A fixed-seed hasher, so summaries (and so representatives) are the same in every run.
fn hasher() -> AHasher {
    ahash::RandomState::with_seeds(0x6b61, 0x666b, 0x61, 0x5a).build_hasher()
}

fn hash_with(f: impl FnOnce(&mut AHasher)) -> u64 {
    let mut h = hasher();
    f(&mut h);
    h.finish()
}

fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = hasher();
    t.hash(&mut h);
    h.finish()
}

/// For each broker, everything the state says about it that names no broker id, hashed:
/// equal for a broker and its image under any renaming. Collections whose order depends on
/// ids (timers, flows, what several leaders track) are combined by a wrapping sum, which is
/// order-free.
fn summaries(state: &InsyncState, n: usize) -> [u64; REPLICAS_MAX] {
    let mut parts = [[0u64; 4]; REPLICAS_MAX];
    let controller = match state.actor_states.get(n).map(|s| &**s) {
        Some(NodeState::Controller(c)) => Some(c),
        _ => None,
    };
    // The controller's timers that concern each broker.
    {
        for t in state.timers_of(n) {
            for (b, mention) in timer_mentions(t) {
                parts[b.index()][0] = parts[b.index()][0].wrapping_add(hash_of(&mention));
            }
        }
    }
    // What each broker acting as leader tracks for the others.
    for l in 0..n {
        if let NodeState::Broker(s) = &*state.actor_states[l] {
            if let Some(ls) = s.leader_state() {
                for b in (0..n).filter(|&b| b != l) {
                    let view = (
                        s.leader_epoch,
                        state.crashed[l],
                        leader_view(ls, BrokerId(b as u8)),
                    );
                    parts[b][1] = parts[b][1].wrapping_add(hash_of(&view));
                }
            }
        }
    }
    // The messages to and from each broker, flow by flow.
    let body_of = |msgs: &mut dyn Iterator<Item = &Msg>| {
        let mut h = hasher();
        for m in msgs {
            message_summary(m, &mut h);
        }
        h.finish()
    };
    let mut flow = |src: usize, dst: usize, body: u64| {
        if src >= n && dst >= n {
            return;
        }
        if src < n {
            parts[src][2] = parts[src][2].wrapping_add(hash_of(&(0u8, kind(n, dst), body)));
        }
        if dst < n {
            parts[dst][2] = parts[dst][2].wrapping_add(hash_of(&(1u8, kind(n, src), body)));
        }
    };
    if state.network.is_ordered() {
        MEMO.with_borrow_mut(|memo| {
            for f in state.network.flows() {
                // A flow's summary depends on its messages only: remembered by their hash.
                let body = memo.summaries.get(f.msgs_hash(), FLOW_SUMMARY, || {
                    body_of(&mut f.msgs().iter())
                });
                flow(usize::from(f.src), usize::from(f.dst), body);
            }
        });
    } else {
        for e in state.network.iter_all() {
            let body = body_of(&mut std::iter::once(e.msg));
            flow(usize::from(e.src), usize::from(e.dst), body);
        }
    }
    let mut keys = [0u64; REPLICAS_MAX];
    for b in 0..n {
        let mut h = hasher();
        state.crashed[b].hash(&mut h);
        if let NodeState::Broker(s) = &*state.actor_states[b] {
            // A broker's own summary depends on its state only: remembered by its hash.
            let own = MEMO.with_borrow_mut(|memo| {
                memo.summaries.get(state.actor_hash(b), OWN_SUMMARY, || {
                    hash_with(|h| own_summary(s, h))
                })
            });
            h.write_u64(own);
        }
        // A broker's disk names no broker: its cached hash is the same under any renaming.
        h.write_u64(state.storage_hash(b));
        let own_timers = state
            .timers_of(b)
            .fold(0u64, |acc, t| acc.wrapping_add(hash_of(t)));
        own_timers.hash(&mut h);
        if let Some(c) = controller {
            controller_view(c, BrokerId(b as u8)).hash(&mut h);
        }
        parts[b].hash(&mut h);
        keys[b] = h.finish();
    }
    keys
}

/// What kind of actor an id is: 0 broker, 1 controller, 2 a client.
fn kind(replicas: usize, id: usize) -> u8 {
    match id {
        _ if id < replicas => 0,
        _ if id == replicas => 1,
        _ => 2,
    }
}

fn own_summary<H: Hasher>(s: &BrokerState, h: &mut H) {
    (
        s.incarnation,
        &s.log,
        s.flushed,
        s.high_watermark,
        s.leader_epoch,
        s.hw_checkpoint,
        &s.committed_ghost,
    )
        .hash(h);
    match &s.role {
        Role::Leader(l) => {
            let others = (0..REPLICAS_MAX)
                .filter(|&f| f != s.id.index())
                .map(|f| &l.followers[f])
                .map(|p| (p.end, p.incarnation, p.sent_end))
                .fold(0u64, |acc, t| acc.wrapping_add(hash_of(&t)));
            (
                0u8,
                l.isr.len(),
                l.isr.contains(s.id),
                l.partition_epoch,
                l.pending_isr.map(BrokerSet::len),
                l.ineligible.len(),
                l.followers.iter().filter(|p| p.parked).count(),
                &l.parked_consumers,
                &l.pending_produce,
                l.lag_armed,
                l.followers.iter().filter(|p| p.caught_up).count(),
                others,
            )
                .hash(h);
        }
        Role::Follower { leader, truncating } => {
            (1u8, leader.is_some(), *leader == Some(s.id), *truncating).hash(h)
        }
    }
}

fn controller_view(c: &ControllerState, b: BrokerId) -> (bool, bool, bool, bool, bool, u32) {
    let p = &c.partition;
    (
        p.leader == Some(b),
        p.isr.contains(b),
        p.elr.contains(b),
        p.last_known_elr.contains(b),
        c.fenced.contains(b),
        c.incarnations[b.index()].0,
    )
}

type LeaderView = (crate::types::Offset, u32, crate::types::Offset, [bool; 5]);

fn leader_view(l: &LeaderState, b: BrokerId) -> LeaderView {
    let p = &l.followers[b.index()];
    (
        p.end,
        p.incarnation.0,
        p.sent_end,
        [
            l.isr.contains(b),
            l.pending_isr.is_some_and(|p| p.contains(b)),
            l.ineligible.contains(b),
            p.parked,
            p.caught_up,
        ],
    )
}

/// The timers that name no broker (an actor's own), as one pattern: listed one by one, so
/// that a new timer must be decided wherever timers are renamed or summarised.
macro_rules! no_broker_timer {
    () => {
        Timer::IsrLag
            | Timer::Flush
            | Timer::FetchBackoff
            | Timer::RequestTimeout
            | Timer::MetadataBackoff
            | Timer::MetadataTimeout
            | Timer::Heartbeat
            | Timer::ConsumerStep
    };
}

/// The brokers a controller timer concerns, and how.
fn timer_mentions(t: &Timer) -> impl Iterator<Item = (BrokerId, u8)> {
    let (first, second) = match *t {
        Timer::SessionExpired { broker, successor } => (
            Some((broker, u8::from(successor.is_some()))),
            successor.map(|s| (s, 2)),
        ),
        Timer::ElectLeader(b) => (Some((b, 3)), None),
        Timer::HeartbeatResumed(b) => (Some((b, 4)), None),
        no_broker_timer!() => (None, None),
    };
    first.into_iter().chain(second)
}

/// The messages that name no broker (`FetchResult` and the clients' messages carry offsets,
/// epochs and records only), as one pattern: listed one by one, so that a new message must
/// be decided wherever messages are renamed or summarised.
macro_rules! no_broker_msg {
    () => {
        Msg::Produce { .. }
            | Msg::ProduceResponse { .. }
            | Msg::Fetch { .. }
            | Msg::FetchResponse { .. }
            | Msg::OffsetsForLeaderEpoch { .. }
            | Msg::OffsetsForLeaderEpochResponse { .. }
            | Msg::ConsumerFetch { .. }
            | Msg::ConsumerFetchResponse { .. }
            | Msg::Metadata
            | Msg::InitProducerId { .. }
            | Msg::InitProducerIdResponse { .. }
            | Msg::Register { .. }
            | Msg::Heartbeat { .. }
            | Msg::App(_)
    };
}

/// A message hashed without the broker ids it names (sets by their size).
fn message_summary<H: Hasher>(m: &Msg, h: &mut H) {
    std::mem::discriminant(m).hash(h);
    match m {
        Msg::MetadataResponse {
            leader,
            leader_epoch,
        } => (leader.is_some(), leader_epoch).hash(h),
        Msg::AlterPartition {
            leader_epoch,
            partition_epoch,
            isr,
            incarnations,
        } => {
            let mut inc = *incarnations;
            inc.sort_unstable();
            (leader_epoch, partition_epoch, isr.len(), inc).hash(h)
        }
        Msg::AlterPartitionResponse {
            leader_epoch,
            proposed,
            result,
        } => {
            (leader_epoch, proposed.len()).hash(h);
            match result {
                Ok(p) => (0u8, partition_summary(p)).hash(h),
                Err((e, p)) => (1u8, e, partition_summary(p)).hash(h),
            }
        }
        Msg::LeaderAndIsr {
            partition,
            broker_incarnation,
        } => (partition_summary(partition), broker_incarnation).hash(h),
        // The rest name no broker (listed, so that a new message must be decided here).
        no_broker_msg!() => m.hash(h),
    }
}

fn partition_summary(p: &PartitionState) -> impl Hash {
    (
        p.leader.is_some(),
        p.leader_epoch,
        p.isr.len(),
        p.elr.len(),
        p.last_known_elr.len(),
        p.partition_epoch,
    )
}

// ---------------------------------------------------------------- renaming each type

fn broker<S>(b: BrokerId, plan: &RewritePlan<Id, S>) -> BrokerId {
    BrokerId(usize::from(plan.rewrite(&Id::from(b.index()))) as u8)
}

fn set<S>(s: BrokerSet, plan: &RewritePlan<Id, S>) -> BrokerSet {
    s.iter()
        .fold(BrokerSet::EMPTY, |acc, b| acc.with(broker(b, plan)))
}

/// An array indexed by broker, reindexed.
fn per_broker<T: Copy, S>(a: &[T; REPLICAS_MAX], plan: &RewritePlan<Id, S>) -> [T; REPLICAS_MAX] {
    let mut out = *a;
    for (b, v) in a.iter().enumerate() {
        out[broker(BrokerId(b as u8), plan).index()] = *v;
    }
    out
}

impl Rewrite<Id> for PartitionState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        // Every field listed, so that a new one must be decided here.
        let PartitionState {
            leader,
            leader_epoch,
            isr,
            elr,
            last_known_elr,
            partition_epoch,
        } = *self;
        PartitionState {
            leader: leader.map(|b| broker(b, plan)),
            leader_epoch,
            isr: set(isr, plan),
            elr: set(elr, plan),
            last_known_elr: set(last_known_elr, plan),
            partition_epoch,
        }
    }
}

impl Rewrite<Id> for Msg {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            Msg::MetadataResponse {
                leader,
                leader_epoch,
            } => Msg::MetadataResponse {
                leader: leader.map(|b| broker(b, plan)),
                leader_epoch: *leader_epoch,
            },
            Msg::AlterPartition {
                leader_epoch,
                partition_epoch,
                isr,
                incarnations,
            } => Msg::AlterPartition {
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                isr: set(*isr, plan),
                incarnations: per_broker(incarnations, plan),
            },
            Msg::AlterPartitionResponse {
                leader_epoch,
                proposed,
                result,
            } => Msg::AlterPartitionResponse {
                leader_epoch: *leader_epoch,
                proposed: set(*proposed, plan),
                result: match result {
                    Ok(p) => Ok(p.rewrite(plan)),
                    Err((e, p)) => Err((*e, p.rewrite(plan))),
                },
            },
            Msg::LeaderAndIsr {
                partition,
                broker_incarnation,
            } => Msg::LeaderAndIsr {
                partition: partition.rewrite(plan),
                broker_incarnation: *broker_incarnation,
            },
            // Every other message names no broker (`FetchResult` and the clients' messages
            // carry offsets, epochs and records only). Listed one by one, so that a new
            // message must be decided here.
            no_broker_msg!() => self.clone(),
        }
    }
}

impl Rewrite<Id> for Timer {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match *self {
            Timer::SessionExpired {
                broker: b,
                successor,
            } => Timer::SessionExpired {
                broker: broker(b, plan),
                successor: successor.map(|s| broker(s, plan)),
            },
            Timer::ElectLeader(b) => Timer::ElectLeader(broker(b, plan)),
            Timer::HeartbeatResumed(b) => Timer::HeartbeatResumed(broker(b, plan)),
            no_broker_timer!() => self.clone(),
        }
    }
}

impl Rewrite<Id> for ControllerState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        ControllerState {
            partition: self.partition.rewrite(plan),
            fenced: set(self.fenced, plan),
            incarnations: per_broker(&self.incarnations, plan),
            unclean_elections: self.unclean_elections,
            next_producer_id: self.next_producer_id,
        }
    }
}

impl Rewrite<Id> for LeaderState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        LeaderState {
            isr: set(self.isr, plan),
            partition_epoch: self.partition_epoch,
            pending_isr: self.pending_isr.map(|p| set(p, plan)),
            ineligible: set(self.ineligible, plan),
            followers: per_broker(&self.followers, plan),
            // Consumers and producers are not brokers: their ids stay.
            parked_consumers: self.parked_consumers.clone(),
            pending_produce: self.pending_produce.clone(),
            lag_armed: self.lag_armed,
        }
    }
}

impl Rewrite<Id> for BrokerState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        // Every field listed, so that a new one must be decided here: only the id and the
        // role name brokers.
        let BrokerState {
            id,
            incarnation,
            log,
            flushed,
            high_watermark,
            leader_epoch,
            role,
            hw_checkpoint,
            committed_ghost,
        } = self;
        BrokerState {
            id: broker(*id, plan),
            incarnation: *incarnation,
            log: log.clone(),
            flushed: *flushed,
            high_watermark: *high_watermark,
            leader_epoch: *leader_epoch,
            role: match role {
                Role::Leader(l) => Role::Leader(l.rewrite(plan)),
                Role::Follower { leader, truncating } => Role::Follower {
                    leader: leader.map(|b| broker(b, plan)),
                    truncating: *truncating,
                },
            },
            hw_checkpoint: *hw_checkpoint,
            committed_ghost: committed_ghost.clone(),
        }
    }
}

impl Rewrite<Id> for NodeState {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            NodeState::Broker(b) => NodeState::Broker(b.rewrite(plan)),
            NodeState::Controller(c) => NodeState::Controller(c.rewrite(plan)),
            NodeState::Producer(p) => {
                let mut p = p.clone();
                p.leader = p.leader.map(|(b, e)| (broker(b, plan), e));
                NodeState::Producer(p)
            }
            NodeState::Consumer(c) => {
                let mut c = c.clone();
                c.leader = c.leader.map(|(b, e)| (broker(b, plan), e));
                NodeState::Consumer(c)
            }
        }
    }
}

impl Rewrite<Id> for NodeStorage {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            NodeStorage::Controller(c) => NodeStorage::Controller(c.rewrite(plan)),
            // A broker's saved log, checkpoint and incarnation name no broker.
            other => other.clone(),
        }
    }
}
