//! The checker's system state and its `stateright::Model`: the cluster's actors, the network
//! between them, their timers and their disks, stepped the way stateright's `ActorModel` steps
//! them, with a state that is cheap to copy and to fingerprint.
//!
//! Why not `ActorModel` itself: it copies and rehashes the whole system for every successor it
//! generates. A profile of the checker put 23% of the time in copying states, 22% in dropping
//! them and 14% in hashing them (BENCHMARKS.md, "What limits the checker"). Here a successor
//! shares everything its step did not touch with its parent (actor states, disks and network
//! flows sit behind `Arc`s), and each part carries its own hash, computed once when the part
//! changes, so fingerprinting a state combines a few words instead of walking every log and
//! message.
//!
//! The semantics are `ActorModel`'s (stateright 0.31, `actor/model.rs`), step for step:
//! the same actions in the same order (drops, deliveries, timeouts, crashes, recoveries), a
//! delivery only at the head of a per-pair FIFO flow (or any message of the duplicating
//! network, which keeps it and remembers the last one delivered), a timer that fires is
//! disarmed first, a crash disarms every timer of the actor, a recovery reruns `on_start` with
//! what the actor saved, and at most `max_crashes` actors are down at once. The test
//! `tests/system.rs` walks both models side by side over every reachable state of several
//! configurations and checks that each state has the same actions and the same successors.

use crate::msg::{Msg, Timer};
use crate::node::{Insync, Node, NodeState, NodeStorage};
use smallvec::SmallVec;
use stateright::actor::{Actor, ActorModelAction, Command, Envelope, Id, Out};
use stateright::{Expectation, Model, Property};
use std::borrow::{Borrow, Cow};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// Per-actor columns of a state, inline up to eight actors (five brokers, the controller and
/// two clients), so copying a state allocates nothing for them.
pub type PerActor<T> = SmallVec<[T; 8]>;

/// A step of the system: stateright's own action type, so traces, the Explorer and recorded
/// paths read the same as before.
pub type Action = ActorModelAction<Msg, Timer, ()>;

/// A fixed-seed hasher for the parts' own hashes: the same in every run and on every thread,
/// so a part's hash is a function of its value alone.
pub(crate) fn part_hash<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = part_hasher();
    t.hash(&mut h);
    h.finish()
}

fn part_hasher() -> ahash::AHasher {
    ahash::RandomState::with_seeds(0x696e, 0x7379, 0x6e63, 0x21).build_hasher()
}

/// The hash of a flow's messages, oldest first, from any iterator over them, so that a
/// renamed flow can be hashed without being built (`symmetry.rs`).
pub(crate) fn msgs_hash<M: Borrow<Msg>>(len: usize, msgs: impl Iterator<Item = M>) -> u64 {
    let mut h = part_hasher();
    h.write_usize(len);
    for m in msgs {
        m.borrow().hash(&mut h);
    }
    h.finish()
}

/// Writes an ordered network's flows, each as its ends and the hash of its messages: the one
/// definition shared by [`Net`]'s `Hash` and by [`SysState::permuted_hash`].
fn hash_flows<H: Hasher>(h: &mut H, flows: impl ExactSizeIterator<Item = (Id, Id, u64)>) {
    h.write_usize(flows.len());
    for (src, dst, hash) in flows {
        h.write_usize(usize::from(src));
        h.write_usize(usize::from(dst));
        h.write_u64(hash);
    }
}

/// One per-pair FIFO connection with the messages in it, oldest first. Never empty in a
/// state (an emptied flow is removed, as `ActorModel` removes it).
#[derive(Clone)]
pub struct Flow {
    pub src: Id,
    pub dst: Id,
    msgs: Arc<VecDeque<Msg>>,
    /// `part_hash` of `msgs`.
    hash: u64,
}

impl Flow {
    /// The messages, oldest first.
    pub fn msgs(&self) -> &VecDeque<Msg> {
        &self.msgs
    }

    /// The cached hash of the messages (`msgs_hash`).
    pub(crate) fn msgs_hash(&self) -> u64 {
        self.hash
    }

    fn new(src: Id, dst: Id, msgs: VecDeque<Msg>) -> Flow {
        let hash = msgs_hash(msgs.len(), msgs.iter());
        Flow {
            src,
            dst,
            msgs: Arc::new(msgs),
            hash,
        }
    }

    fn edit(&mut self, f: impl FnOnce(&mut VecDeque<Msg>)) {
        f(Arc::make_mut(&mut self.msgs));
        self.hash = msgs_hash(self.msgs.len(), self.msgs.iter());
    }
}

impl PartialEq for Flow {
    fn eq(&self, other: &Flow) -> bool {
        self.src == other.src
            && self.dst == other.dst
            && self.hash == other.hash
            && (Arc::ptr_eq(&self.msgs, &other.msgs) || self.msgs == other.msgs)
    }
}
impl Eq for Flow {}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:?}→{:?} {:?}", self.src, self.dst, self.msgs)
    }
}

/// The network: Kafka's TCP connections (per-pair FIFO, `reliable` and `lossy`), or the
/// `duplicating` network, which may deliver any message sent, any number of times.
#[derive(Clone, PartialEq, Eq)]
pub enum Net {
    /// Flows sorted by `(src, dst)`, none empty.
    Ordered(SmallVec<[Flow; 8]>),
    /// Every envelope ever sent (a delivery keeps it), and the last one delivered (so that a
    /// delivery that changes nothing else still makes a new state, as in `ActorModel`).
    Duplicating {
        sent: Arc<BTreeSet<Envelope<Msg>>>,
        last: Option<Envelope<Msg>>,
    },
}

impl Net {
    pub fn is_ordered(&self) -> bool {
        matches!(self, Net::Ordered(_))
    }

    /// Every message in flight with its flow, flow by flow, oldest first (on the duplicating
    /// network, every envelope sent).
    pub fn iter_all(&self) -> Box<dyn Iterator<Item = Envelope<&Msg>> + '_> {
        match self {
            Net::Ordered(flows) => Box::new(flows.iter().flat_map(|f| {
                f.msgs.iter().map(move |msg| Envelope {
                    src: f.src,
                    dst: f.dst,
                    msg,
                })
            })),
            Net::Duplicating { sent, .. } => Box::new(sent.iter().map(|e| Envelope {
                src: e.src,
                dst: e.dst,
                msg: &e.msg,
            })),
        }
    }

    /// What may be delivered next: the head of each flow, or any envelope sent. In
    /// `Envelope` order (source, destination, message), which is the order of the actions.
    /// Not boxed: the checker asks for it at every state.
    pub fn iter_deliverable(&self) -> impl Iterator<Item = Envelope<&Msg>> + '_ {
        let (flows, sent) = match self {
            Net::Ordered(flows) => (Some(flows.iter()), None),
            Net::Duplicating { sent, .. } => (None, Some(sent.iter())),
        };
        let heads = flows.into_iter().flatten().map(|f| Envelope {
            src: f.src,
            dst: f.dst,
            msg: f.msgs.front().expect("a flow is never empty"),
        });
        let any = sent.into_iter().flatten().map(|e| Envelope {
            src: e.src,
            dst: e.dst,
            msg: &e.msg,
        });
        heads.chain(any)
    }

    /// The flows, oldest message first (empty for the duplicating network).
    pub fn flows(&self) -> &[Flow] {
        match self {
            Net::Ordered(flows) => flows,
            Net::Duplicating { .. } => &[],
        }
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        match self {
            Net::Ordered(flows) => flows.iter().map(|f| f.msgs.len()).sum(),
            Net::Duplicating { sent, .. } => sent.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn send(&mut self, env: Envelope<Msg>) {
        match self {
            Net::Ordered(flows) => {
                match flows.binary_search_by(|f| (f.src, f.dst).cmp(&(env.src, env.dst))) {
                    Ok(i) => flows[i].edit(|m| m.push_back(env.msg)),
                    Err(i) => {
                        flows.insert(i, Flow::new(env.src, env.dst, VecDeque::from([env.msg])))
                    }
                }
            }
            Net::Duplicating { sent, .. } => {
                if !sent.contains(&env) {
                    Arc::make_mut(sent).insert(env);
                }
            }
        }
    }

    /// Removes from an ordered network every message `drop` picks, keeping each flow's order;
    /// only the flows that lose a message are rebuilt and rehashed.
    fn remove(&mut self, mut drop: impl FnMut(Id, Id, &Msg) -> bool) {
        let Net::Ordered(flows) = self else {
            return;
        };
        let mut emptied = false;
        for f in flows.iter_mut() {
            let (src, dst) = (f.src, f.dst);
            if !f.msgs.iter().any(|m| drop(src, dst, m)) {
                continue;
            }
            f.edit(|msgs| msgs.retain(|m| !drop(src, dst, m)));
            emptied |= f.msgs.is_empty();
        }
        if emptied {
            flows.retain(|f| !f.msgs.is_empty());
        }
    }

    /// Drops the head of flow `src → dst`, the only message an ordered network delivers or
    /// loses (`ActorModel` removes the first message equal to the one taken, which is the
    /// head, since only heads are offered).
    fn pop_head(&mut self, src: Id, dst: Id) {
        let Net::Ordered(flows) = self else {
            unreachable!("only an ordered network has flows");
        };
        let i = flows
            .binary_search_by(|f| (f.src, f.dst).cmp(&(src, dst)))
            .expect("a message taken from the network is in its flow");
        if flows[i].msgs.len() == 1 {
            flows.remove(i);
        } else {
            flows[i].edit(|m| {
                m.pop_front();
            });
        }
    }

    /// Takes `env` out of the network, as a loss does (an ordered network's are heads); on
    /// the duplicating network a delivery keeps it and remembers it as the last delivered.
    fn take(&mut self, env: &Envelope<Msg>, delivered: bool) {
        match self {
            Net::Ordered(flows) => {
                debug_assert!(flows
                    .iter()
                    .any(|f| (f.src, f.dst) == (env.src, env.dst)
                        && f.msgs.front() == Some(&env.msg)));
                self.pop_head(env.src, env.dst);
            }
            Net::Duplicating { sent, last } => {
                if delivered {
                    *last = Some(env.clone());
                } else {
                    Arc::make_mut(sent).remove(env);
                }
            }
        }
    }

    /// A network holding `envelopes` (each flow's in order): per-pair FIFO if `ordered`, else
    /// duplicating with `last` the envelope delivered last.
    pub fn build(
        ordered: bool,
        envelopes: impl IntoIterator<Item = Envelope<Msg>>,
        last: Option<Envelope<Msg>>,
    ) -> Net {
        if !ordered {
            return Net::Duplicating {
                sent: Arc::new(envelopes.into_iter().collect()),
                last,
            };
        }
        // Group by flow (a stable sort keeps each flow's order), then hash each flow once.
        let mut all: Vec<Envelope<Msg>> = envelopes.into_iter().collect();
        all.sort_by_key(|e| (e.src, e.dst));
        let mut flows: SmallVec<[Flow; 8]> = SmallVec::new();
        let mut msgs = VecDeque::new();
        let mut iter = all.into_iter().peekable();
        while let Some(e) = iter.next() {
            msgs.push_back(e.msg);
            if iter.peek().is_none_or(|n| (n.src, n.dst) != (e.src, e.dst)) {
                flows.push(Flow::new(e.src, e.dst, std::mem::take(&mut msgs)));
            }
        }
        Net::Ordered(flows)
    }

    /// An ordered network with every flow's ends and messages renamed (a bijection on ids, so
    /// no two flows meet): each flow is rebuilt once, and the flows sorted again.
    pub fn renamed_flows(&self, id: impl Fn(&Id) -> Id, msg: impl Fn(&Msg) -> Msg) -> Net {
        let mut flows: SmallVec<[Flow; 8]> = self
            .flows()
            .iter()
            .map(|f| Flow::new(id(&f.src), id(&f.dst), f.msgs.iter().map(&msg).collect()))
            .collect();
        flows.sort_unstable_by_key(|f| (f.src, f.dst));
        Net::Ordered(flows)
    }

    /// The last envelope delivered on the duplicating network.
    pub fn last_delivered(&self) -> Option<&Envelope<Msg>> {
        match self {
            Net::Duplicating { last, .. } => last.as_ref(),
            Net::Ordered(_) => None,
        }
    }
}

impl Hash for Net {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Net::Ordered(flows) => {
                hash_flows(h, flows.iter().map(|f| (f.src, f.dst, f.hash)));
            }
            Net::Duplicating { sent, last } => {
                sent.hash(h);
                last.hash(h);
            }
        }
    }
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Net::Ordered(flows) => f.debug_list().entries(flows).finish(),
            Net::Duplicating { sent, last } => f
                .debug_struct("Duplicating")
                .field("sent", sent)
                .field("last", last)
                .finish(),
        }
    }
}

/// A snapshot of the whole system, as the checker sees it.
///
/// The public fields are for reading. Whoever builds or edits a state outside this module
/// calls [`SysState::rehash`] afterwards: the per-part hashes are what fingerprints are made
/// of (`tests/system.rs` checks that the checker's states always carry fresh ones).
#[derive(Clone)]
pub struct SysState {
    /// Each actor's state, by id. A crashed actor's last state stays visible here (as in
    /// `ActorModel`); what survives the crash is in `actor_storages`.
    pub actor_states: PerActor<Arc<NodeState>>,
    pub crashed: PerActor<bool>,
    /// What each actor last saved.
    pub actor_storages: PerActor<Option<Arc<NodeStorage>>>,
    /// Armed timers as `(actor, timer)`, sorted, each at most once.
    pub timers: SmallVec<[(u8, Timer); 8]>,
    pub network: Net,
    /// `part_hash` of each actor state and of each storage.
    actor_hashes: PerActor<u64>,
    storage_hashes: PerActor<u64>,
}

impl SysState {
    /// A state from its parts (the hashes are computed here).
    pub fn new(
        actor_states: impl IntoIterator<Item = Arc<NodeState>>,
        crashed: impl IntoIterator<Item = bool>,
        actor_storages: impl IntoIterator<Item = Option<NodeStorage>>,
        timers: impl IntoIterator<Item = (usize, Timer)>,
        network: Net,
    ) -> SysState {
        let mut s = SysState {
            actor_states: actor_states.into_iter().collect(),
            crashed: crashed.into_iter().collect(),
            actor_storages: actor_storages
                .into_iter()
                .map(|s| s.map(Arc::new))
                .collect(),
            timers: timer_list(timers),
            network,
            actor_hashes: PerActor::new(),
            storage_hashes: PerActor::new(),
        };
        s.rehash();
        s
    }

    /// `self` with its actors moved to new slots (`from[i]` is the actor whose parts slot `i`
    /// gets) and with the given parts replaced: `renamed_states[i]` and `renamed_storages[i]`
    /// (when `Some`) are slot `i`'s new state and disk; the others are moved as they are, with
    /// their hashes. For renaming brokers (`symmetry.rs`), where most parts only move.
    pub fn permuted(
        &self,
        from: &[usize],
        mut renamed_states: Vec<Option<NodeState>>,
        mut renamed_storages: Vec<Option<NodeStorage>>,
        timers: impl IntoIterator<Item = (usize, Timer)>,
        network: Net,
    ) -> SysState {
        let n = self.actor_states.len();
        let mut next = SysState {
            actor_states: PerActor::new(),
            crashed: PerActor::new(),
            actor_storages: PerActor::new(),
            timers: timer_list(timers),
            network,
            actor_hashes: PerActor::new(),
            storage_hashes: PerActor::new(),
        };
        for i in 0..n {
            let j = from[i];
            match renamed_states[i].take() {
                Some(s) => {
                    next.actor_hashes.push(part_hash(&s));
                    next.actor_states.push(Arc::new(s));
                }
                None => {
                    next.actor_hashes.push(self.actor_hashes[j]);
                    next.actor_states.push(Arc::clone(&self.actor_states[j]));
                }
            }
            match renamed_storages[i].take() {
                Some(s) => {
                    next.storage_hashes.push(part_hash(&Some(&s)));
                    next.actor_storages.push(Some(Arc::new(s)));
                }
                None => {
                    next.storage_hashes.push(self.storage_hashes[j]);
                    next.actor_storages.push(self.actor_storages[j].clone());
                }
            }
            next.crashed.push(self.crashed[j]);
        }
        next
    }

    /// The hash of the state [`SysState::permuted`] would build from the same arguments,
    /// computed from the renamed parts' hashes without building the state or its parts:
    /// `state_hashes[i]` and `storage_hashes[i]` (when `Some`) are slot `i`'s new parts'
    /// hashes, and `flows` the ordered network's flows as `(src, dst, hash of messages)` in
    /// any order. Equal to [`SysState::stable_hash`] of the built state (`tests/symmetry.rs`
    /// checks it on random walks). For the symmetry reduction's fingerprints, which
    /// stateright only ever hashes.
    pub fn permuted_hash(
        &self,
        from: &[usize],
        state_hashes: &[Option<u64>],
        storage_hashes: &[Option<u64>],
        timers: impl IntoIterator<Item = (usize, Timer)>,
        mut flows: SmallVec<[(Id, Id, u64); 8]>,
    ) -> u64 {
        let n = self.actor_states.len();
        let mut actors = PerActor::<u64>::new();
        let mut storages = PerActor::<u64>::new();
        let mut crashed = PerActor::<bool>::new();
        for i in 0..n {
            let j = from[i];
            actors.push(state_hashes[i].unwrap_or(self.actor_hashes[j]));
            storages.push(storage_hashes[i].unwrap_or(self.storage_hashes[j]));
            crashed.push(self.crashed[j]);
        }
        flows.sort_unstable_by_key(|(src, dst, _)| (*src, *dst));
        let mut h = part_hasher();
        hash_columns(&mut h, &actors, &storages, &crashed);
        timer_list(timers).hash(&mut h);
        hash_flows(&mut h, flows.into_iter());
        h.finish()
    }

    /// The state's hash by a fixed-seed hasher: the same in every run, on every thread.
    pub fn stable_hash(&self) -> u64 {
        part_hash(self)
    }

    /// A stand-in that hashes as `word` alone and is no state of the system: what the
    /// symmetry reduction hands stateright in place of a representative, which stateright
    /// only ever hashes (`checker/dfs.rs`: `fingerprint(&representative(&next_state))`).
    /// Building the representative itself costs a renamed copy of every part that names a
    /// broker; its hash needs only the renamed parts' hashes.
    pub fn fingerprint_only(word: u64) -> SysState {
        SysState {
            actor_states: PerActor::new(),
            crashed: PerActor::new(),
            actor_storages: PerActor::new(),
            timers: SmallVec::new(),
            network: Net::Ordered(SmallVec::new()),
            actor_hashes: smallvec::smallvec![word],
            storage_hashes: PerActor::new(),
        }
    }

    /// Recomputes every part's hash after the public fields were edited.
    pub fn rehash(&mut self) {
        self.actor_hashes = self.actor_states.iter().map(|s| part_hash(&**s)).collect();
        self.storage_hashes = self.actor_storages.iter().map(part_hash).collect();
        if let Net::Ordered(flows) = &mut self.network {
            for f in flows {
                f.hash = msgs_hash(f.msgs.len(), f.msgs.iter());
            }
        }
    }

    /// Whether every cached hash matches its part (for tests).
    pub fn hashes_are_fresh(&self) -> bool {
        let mut fresh = self.clone();
        fresh.rehash();
        fresh.actor_hashes == self.actor_hashes
            && fresh.storage_hashes == self.storage_hashes
            && fresh.network.flows().iter().map(|f| f.hash).eq(self
                .network
                .flows()
                .iter()
                .map(|f| f.hash))
    }

    /// The cached `part_hash` of actor `i`'s state.
    pub(crate) fn actor_hash(&self, i: usize) -> u64 {
        self.actor_hashes[i]
    }

    /// The cached `part_hash` of actor `i`'s storage.
    pub(crate) fn storage_hash(&self, i: usize) -> u64 {
        self.storage_hashes[i]
    }

    /// The timers armed for actor `i`, in order.
    pub fn timers_of(&self, i: usize) -> impl Iterator<Item = &Timer> {
        self.timers
            .iter()
            .filter(move |(a, _)| usize::from(*a) == i)
            .map(|(_, t)| t)
    }

    fn set_actor(&mut self, i: usize, state: NodeState) {
        self.actor_hashes[i] = part_hash(&state);
        self.actor_states[i] = Arc::new(state);
    }

    fn set_timer(&mut self, i: usize, timer: Timer) {
        let key = (actor_index(i), timer);
        if let Err(at) = self.timers.binary_search(&key) {
            self.timers.insert(at, key);
        }
    }

    fn cancel_timer(&mut self, i: usize, timer: &Timer) {
        let key = (actor_index(i), timer.clone());
        if let Ok(at) = self.timers.binary_search(&key) {
            self.timers.remove(at);
        }
    }

    /// Applies what an actor's handler asked for: sends, timers, saves.
    fn apply(&mut self, id: Id, out: Out<Node>) {
        let i = usize::from(id);
        for c in out {
            match c {
                Command::Send(dst, msg) => self.network.send(Envelope { src: id, dst, msg }),
                Command::SetTimer(timer, _) => self.set_timer(i, timer),
                Command::CancelTimer(timer) => self.cancel_timer(i, &timer),
                Command::Save(storage) => {
                    self.storage_hashes[i] = part_hash(&Some(&storage));
                    self.actor_storages[i] = Some(Arc::new(storage));
                }
                // `Node::Random` is `()`: no actor chooses at random.
                Command::ChooseRandom(..) => {}
            }
        }
    }
}

impl PartialEq for SysState {
    fn eq(&self, other: &SysState) -> bool {
        self.actor_hashes == other.actor_hashes
            && self.storage_hashes == other.storage_hashes
            && self.crashed == other.crashed
            && self.timers == other.timers
            && self.network == other.network
            && self
                .actor_states
                .iter()
                .zip(&other.actor_states)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
            && self.actor_storages == other.actor_storages
    }
}
impl Eq for SysState {}

/// Fingerprints combine the parts' own hashes: equal states have equal parts, so equal
/// hashes.
impl Hash for SysState {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_columns(h, &self.actor_hashes, &self.storage_hashes, &self.crashed);
        self.timers.hash(h);
        self.network.hash(h);
    }
}

/// Writes the per-actor columns of a state: the one definition shared by [`SysState`]'s
/// `Hash` and by [`SysState::permuted_hash`].
fn hash_columns<H: Hasher>(h: &mut H, actors: &[u64], storages: &[u64], crashed: &[bool]) {
    for x in actors {
        h.write_u64(*x);
    }
    for x in storages {
        h.write_u64(*x);
    }
    for c in crashed {
        h.write_u8(u8::from(*c));
    }
}

impl fmt::Debug for SysState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("SysState")
            .field("actor_states", &self.actor_states)
            .field("crashed", &self.crashed)
            .field("timers", &self.timers)
            .field("network", &self.network)
            .field("storages", &self.actor_storages)
            .finish()
    }
}

/// Armed timers as a state keeps them: sorted, each once.
fn timer_list(timers: impl IntoIterator<Item = (usize, Timer)>) -> SmallVec<[(u8, Timer); 8]> {
    let mut list: SmallVec<[(u8, Timer); 8]> = timers
        .into_iter()
        .map(|(i, t)| (actor_index(i), t))
        .collect();
    list.sort();
    list.dedup();
    list
}

/// An actor's id as a timer's owner (a model has at most a few actors).
fn actor_index(i: usize) -> u8 {
    u8::try_from(i).expect("at most 255 actors")
}

/// A property of the model, as stateright takes it.
pub type Condition = fn(&InsyncModel, &SysState) -> bool;

/// The model checker's model of one configuration: the actors, the network kind, the crash
/// bound and the properties.
pub struct InsyncModel {
    pub cfg: Insync,
    pub actors: Vec<Node>,
    ordered: bool,
    lossy: bool,
    max_crashes: usize,
    properties: Vec<Property<InsyncModel>>,
    within_boundary: fn(&Insync, &SysState) -> bool,
    /// The stale-message reduction ([`InsyncModel::drop_stale`]), when on: whether a running
    /// actor may still crash within the bounds.
    stale: Option<fn(&Insync, &SysState) -> bool>,
}

impl InsyncModel {
    pub fn new(
        cfg: Insync,
        actors: Vec<Node>,
        ordered: bool,
        lossy: bool,
        max_crashes: usize,
        within_boundary: fn(&Insync, &SysState) -> bool,
    ) -> InsyncModel {
        InsyncModel {
            cfg,
            actors,
            ordered,
            lossy,
            max_crashes,
            properties: Vec::new(),
            within_boundary,
            stale: None,
        }
    }

    /// Turns on the stale-message reduction ([`InsyncModel::drop_stale`]) on an ordered
    /// network; `crash_left` says whether a running actor may still crash within the bounds.
    pub fn dropping_stale_messages(mut self, crash_left: fn(&Insync, &SysState) -> bool) -> Self {
        self.stale = self.ordered.then_some(crash_left);
        self
    }

    /// The same model without the stale-message reduction: every stale message stays in the
    /// network until it is delivered or lost (for differential tests).
    pub fn keeping_stale_messages(mut self) -> Self {
        self.stale = None;
        self
    }

    /// Whether the stale-message reduction is on.
    pub fn drops_stale_messages(&self) -> bool {
        self.stale.is_some()
    }

    /// The stale-message reduction: takes out of `state`'s network every message its
    /// receiver will ignore whenever it arrives ([`Node::ignores_forever`]: answers in an
    /// epoch the receiver has left, `FENCED_LEADER_EPOCH` answers, `LeaderAndIsr` for an
    /// earlier incarnation, the producer's answers to requests it gave up, and fetches in an
    /// epoch their receiver has left, while it cannot restart or once the asker has moved on
    /// too). The model applies it after every step.
    ///
    /// Why it removes states and no behaviour. Call `gc(s)` the state `s` without its stale
    /// messages. A message stale in `s` is stale in every state after it (each rule says
    /// "forever"), and delivering it changes no actor, arms no timer and sends only stale
    /// messages, so that delivery (or its loss, on a lossy network) leads from `s` to a state
    /// with the same image under `gc`: a stutter. Every other step of `s` is a step of
    /// `gc(s)` to the image of its successor: on per-pair FIFO connections a message stands
    /// at the head of its flow in `gc(s)` when every message ahead of it in `s` is stale,
    /// and the full model can deliver those first, each a stutter. So the reduced model
    /// reaches exactly the images of the full model's states, its paths are the full
    /// model's with stale deliveries left out, and, since no property reads the network
    /// (`properties.rs`), every verdict is the same. `tests/reductions.rs` checks both on
    /// small bounds: the reachable states are exactly the images, and the verdicts agree.
    /// Not on the duplicating network, where a delivery keeps the message and is recorded
    /// as the last one, so it is no stutter.
    pub fn drop_stale(&self, state: &mut SysState) {
        let Some(crash_left) = self.stale else {
            return;
        };
        let crash_left = crash_left(&self.cfg, state);
        let may_restart = |i: usize| state.crashed[i] || crash_left;
        let stale = |src: Id, dst: Id, msg: &Msg| {
            let (i, from) = (usize::from(dst), &state.actor_states[usize::from(src)]);
            i < self.actors.len()
                && self.actors[i].ignores_forever(&state.actor_states[i], msg, may_restart(i), from)
        };
        let any = state
            .network
            .flows()
            .iter()
            .any(|f| f.msgs.iter().any(|m| stale(f.src, f.dst, m)));
        if !any {
            return;
        }
        let mut network = state.network.clone();
        network.remove(|src, dst, msg| {
            let drop = stale(src, dst, msg);
            if drop && cfg!(debug_assertions) {
                self.assert_stale(state, src, dst, msg, &stale);
            }
            drop
        });
        state.network = network;
    }

    /// In debug builds, for each message [`InsyncModel::drop_stale`] takes out: delivering it
    /// now changes neither the actor nor its timers, and what it sends is stale too.
    fn assert_stale(
        &self,
        state: &SysState,
        src: Id,
        dst: Id,
        msg: &Msg,
        stale: &dyn Fn(Id, Id, &Msg) -> bool,
    ) {
        let i = usize::from(dst);
        if state.crashed[i] {
            return; // Delivered after a restart; the rules' own argument covers it.
        }
        let before = &*state.actor_states[i];
        let mut after = Cow::Borrowed(before);
        let mut out = Out::new();
        self.actors[i].on_msg(dst, &mut after, src, msg.clone(), &mut out);
        assert!(
            *after == *before,
            "a stale {msg:?} to {dst:?} changed its state"
        );
        for c in out {
            match c {
                Command::Send(to, sent) => assert!(
                    stale(dst, to, &sent),
                    "a stale {msg:?} to {dst:?} sent {sent:?}, which is not stale"
                ),
                // A handler may re-state its timers; only a change would matter.
                Command::SetTimer(t, _) => assert!(
                    state.timers_of(i).any(|armed| *armed == t),
                    "a stale {msg:?} to {dst:?} armed {t:?}"
                ),
                Command::CancelTimer(t) => assert!(
                    !state.timers_of(i).any(|armed| *armed == t),
                    "a stale {msg:?} to {dst:?} cancelled {t:?}"
                ),
                other => panic!("a stale {msg:?} to {dst:?} did {other:?}"),
            }
        }
    }

    pub fn property(
        mut self,
        expectation: Expectation,
        name: &'static str,
        condition: Condition,
    ) -> Self {
        self.properties.push(Property {
            expectation,
            name,
            condition,
        });
        self
    }

    fn deliver(&self, last: &SysState, src: Id, id: Id, msg: Msg) -> Option<SysState> {
        let i = usize::from(id);
        if i >= self.actors.len() || last.crashed[i] {
            return None;
        }
        // The duplicating network keeps the envelope; an ordered one only drops its flow's
        // head, so the message needs no copy there.
        let kept = (!self.ordered).then(|| Envelope {
            src,
            dst: id,
            msg: msg.clone(),
        });
        let mut state = Cow::Borrowed(&*last.actor_states[i]);
        let mut out = Out::new();
        self.actors[i].on_msg(id, &mut state, src, msg, &mut out);
        // `ActorModel` prunes a delivery that changed nothing only on unordered networks.
        if !self.ordered && matches!(state, Cow::Borrowed(_)) && out.is_empty() {
            return None;
        }
        let mut next = last.clone();
        match kept {
            Some(env) => next.network.take(&env, true),
            None => next.network.pop_head(src, id),
        }
        if let Cow::Owned(s) = state {
            next.set_actor(i, s);
        }
        next.apply(id, out);
        self.assert_timers(&next, i);
        Some(next)
    }

    /// After a step of actor `i`, in debug builds: a controller's armed timers are the ones
    /// its state wants (it sends only the difference, so a missed timer would stay missed).
    fn assert_timers(&self, state: &SysState, i: usize) {
        if !cfg!(debug_assertions) {
            return;
        }
        if let Some(wanted) = self.actors[i].wanted_timers(&state.actor_states[i]) {
            assert!(
                state.timers_of(i).cloned().eq(wanted.iter()),
                "the controller's armed timers {:?} are not the ones its state wants {:?}",
                state.timers_of(i).collect::<Vec<_>>(),
                wanted.iter().collect::<Vec<_>>(),
            );
        }
    }
}

impl Model for InsyncModel {
    type State = SysState;
    type Action = Action;

    fn init_states(&self) -> Vec<SysState> {
        let n = self.actors.len();
        let network = Net::build(self.ordered, [], None);
        let mut state = SysState {
            actor_states: PerActor::new(),
            crashed: smallvec::smallvec![false; n],
            actor_storages: smallvec::smallvec![None; n],
            timers: SmallVec::new(),
            network,
            actor_hashes: PerActor::new(),
            storage_hashes: smallvec::smallvec![part_hash(&None::<&NodeStorage>); n],
        };
        for (i, actor) in self.actors.iter().enumerate() {
            let id = Id::from(i);
            let mut out = Out::new();
            let s = actor.on_start(id, &None, &mut out);
            state.actor_hashes.push(part_hash(&s));
            state.actor_states.push(Arc::new(s));
            state.apply(id, out);
        }
        self.drop_stale(&mut state);
        vec![state]
    }

    /// `ActorModel`'s actions, in its order: drops, deliveries, timeouts, crashes,
    /// recoveries, each sorted by actor and then by content.
    fn actions(&self, state: &SysState, actions: &mut Vec<Action>) {
        if self.lossy {
            for e in state.network.iter_deliverable() {
                actions.push(ActorModelAction::Drop(e.to_cloned_msg()));
            }
        }
        for e in state.network.iter_deliverable() {
            if usize::from(e.dst) < self.actors.len() {
                actions.push(ActorModelAction::Deliver {
                    src: e.src,
                    dst: e.dst,
                    msg: e.msg.clone(),
                });
            }
        }
        for (i, t) in &state.timers {
            actions.push(ActorModelAction::Timeout(
                Id::from(usize::from(*i)),
                t.clone(),
            ));
        }
        let down = state.crashed.iter().filter(|c| **c).count();
        if down < self.max_crashes {
            for (i, _) in state.crashed.iter().enumerate().filter(|(_, c)| !**c) {
                actions.push(ActorModelAction::Crash(Id::from(i)));
            }
        }
        for (i, _) in state.crashed.iter().enumerate().filter(|(_, c)| **c) {
            actions.push(ActorModelAction::Recover(Id::from(i)));
        }
    }

    fn next_state(&self, last: &SysState, action: Action) -> Option<SysState> {
        let mut next = self.step(last, action)?;
        self.drop_stale(&mut next);
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{action:?}")
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties.clone()
    }

    fn within_boundary(&self, state: &SysState) -> bool {
        (self.within_boundary)(&self.cfg, state)
    }
}

impl InsyncModel {
    /// One step of `ActorModel`'s semantics, before the stale-message reduction.
    fn step(&self, last: &SysState, action: Action) -> Option<SysState> {
        match action {
            ActorModelAction::Drop(env) => {
                let mut next = last.clone();
                next.network.take(&env, false);
                Some(next)
            }
            ActorModelAction::Deliver { src, dst, msg } => self.deliver(last, src, dst, msg),
            ActorModelAction::Timeout(id, timer) => {
                let i = usize::from(id);
                let mut state = Cow::Borrowed(&*last.actor_states[i]);
                let mut out = Out::new();
                self.actors[i].on_timeout(id, &mut state, &timer, &mut out);
                if stateright::actor::is_no_op_with_timer(&state, &out, &timer) {
                    return None;
                }
                let mut next = last.clone();
                next.cancel_timer(i, &timer);
                if let Cow::Owned(s) = state {
                    next.set_actor(i, s);
                }
                next.apply(id, out);
                self.assert_timers(&next, i);
                Some(next)
            }
            ActorModelAction::Crash(id) => {
                let i = usize::from(id);
                let mut next = last.clone();
                next.timers.retain(|(a, _)| usize::from(*a) != i);
                next.crashed[i] = true;
                Some(next)
            }
            ActorModelAction::Recover(id) => {
                let i = usize::from(id);
                assert!(last.crashed[i], "only a crashed actor recovers");
                let mut out = Out::new();
                let storage = last.actor_storages[i].as_deref().cloned();
                let s = self.actors[i].on_start(id, &storage, &mut out);
                let mut next = last.clone();
                next.set_actor(i, s);
                next.crashed[i] = false;
                next.apply(id, out);
                self.assert_timers(&next, i);
                Some(next)
            }
            // `Node::Random` is `()`: no actor offers a random choice.
            ActorModelAction::SelectRandom { .. } => None,
        }
    }
}

/// The network's rules, as `ActorModel` has them: per-pair FIFO flows for Kafka's TCP
/// connections, and the duplicating network that keeps what it delivers.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BrokerEpoch;

    fn env(src: usize, dst: usize, incarnation: u32) -> Envelope<Msg> {
        Envelope {
            src: Id::from(src),
            dst: Id::from(dst),
            msg: Msg::Register {
                incarnation: BrokerEpoch(incarnation),
            },
        }
    }

    fn heads(net: &Net) -> Vec<Envelope<Msg>> {
        net.iter_deliverable()
            .map(|e| Envelope {
                src: e.src,
                dst: e.dst,
                msg: e.msg.clone(),
            })
            .collect()
    }

    /// Only each connection's oldest message may be delivered (or lost); a connection that
    /// empties is gone, and messages sent later queue behind the ones in flight.
    #[test]
    fn an_ordered_network_delivers_each_connection_in_order() {
        let mut net = Net::build(true, [env(0, 1, 1), env(0, 1, 2)], None);
        net.send(env(0, 1, 3));
        net.send(env(0, 2, 4));
        assert_eq!(net.len(), 4);
        let msgs: Vec<Msg> = net.flows()[0].msgs().iter().cloned().collect();
        assert_eq!(
            msgs,
            [env(0, 1, 1), env(0, 1, 2), env(0, 1, 3)].map(|e| e.msg)
        );
        assert_eq!(heads(&net), vec![env(0, 1, 1), env(0, 2, 4)]);
        net.take(&env(0, 1, 1), true);
        assert_eq!(heads(&net), vec![env(0, 1, 2), env(0, 2, 4)]);
        net.take(&env(0, 2, 4), false);
        assert_eq!(heads(&net), vec![env(0, 1, 2)]);
        assert_eq!(net.flows().len(), 1, "an emptied connection is gone");
        assert_eq!(net.len(), 2);
        assert!(net.is_ordered() && !net.is_empty());
        assert_eq!(
            format!("{:?}", net.flows()[0]),
            format!("Id(0)→Id(1) {:?}", net.flows()[0].msgs())
        );
        assert_eq!(format!("{net:?}"), format!("[{:?}]", net.flows()[0]));
        assert!(Net::build(true, [], None).is_empty());
    }

    /// Two networks are the same state when every connection holds the same messages,
    /// however they were built; a different sender, receiver or message is another state.
    #[test]
    fn networks_are_equal_exactly_when_their_connections_hold_the_same_messages() {
        let build = |e: Envelope<Msg>| Net::build(true, [e], None);
        let mut sent = Net::build(true, [], None);
        sent.send(env(0, 1, 1));
        assert!(build(env(0, 1, 1)) == sent);
        assert!(build(env(0, 1, 1)) == build(env(0, 1, 1)));
        assert!(build(env(0, 1, 1)) != build(env(2, 1, 1)));
        assert!(build(env(0, 1, 1)) != build(env(0, 2, 1)));
        assert!(build(env(0, 1, 1)) != build(env(0, 1, 2)));
    }

    /// A state's fingerprint combines the cached hashes of its parts: after an edit of a
    /// public field the cache is stale until `rehash`, which makes it hash like the same
    /// state built afresh.
    #[test]
    fn an_edited_state_hashes_like_a_fresh_one_once_rehashed() {
        use crate::config::Config;
        let fingerprint = |s: &SysState| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        let cfg = Insync::new(Config::default().validate().expect("valid"));
        let mut state = cfg.into_model().init_states().remove(0);
        assert!(state.hashes_are_fresh());
        let mut broker = (*state.actor_states[1]).clone();
        if let NodeState::Broker(b) = &mut broker {
            b.incarnation = b.incarnation.next();
        }
        state.actor_states[1] = Arc::new(broker);
        assert!(!state.hashes_are_fresh(), "an actor's hash is stale");
        state.rehash();
        assert!(state.hashes_are_fresh());
        let mut lost = state.clone();
        lost.actor_storages[1] = None;
        assert!(!lost.hashes_are_fresh(), "a disk's hash is stale");
        let mut queued = state.clone();
        if let Net::Ordered(flows) = &mut queued.network {
            Arc::make_mut(&mut flows[0].msgs).push_back(Msg::Metadata);
        }
        assert!(!queued.hashes_are_fresh(), "a connection's hash is stale");
        let fresh = SysState::new(
            state.actor_states.iter().cloned(),
            state.crashed.iter().copied(),
            state.actor_storages.iter().map(|s| s.as_deref().cloned()),
            state
                .timers
                .iter()
                .map(|(a, t)| (usize::from(*a), t.clone())),
            state.network.clone(),
        );
        assert_eq!(fingerprint(&state), fingerprint(&fresh));
        // Each actor's armed timers: the controller's session expiries, none of the leader's.
        let ctl = 3; // brokers 0..3, then the controller
        let controller: Vec<&Timer> = state.timers_of(ctl).collect();
        assert!(controller
            .iter()
            .any(|t| matches!(t, Timer::SessionExpired { .. })));
        assert!(!state
            .timers_of(0)
            .any(|t| matches!(t, Timer::SessionExpired { .. })));
    }

    /// Two states are equal exactly when every part is: a state that differs from another in
    /// one part only (an actor, its cached hash, a disk, a crash flag, a timer, the network) is
    /// another state, and a copy of an actor's state counts as the same state.
    #[test]
    fn states_are_equal_exactly_when_every_part_is() {
        use crate::config::Config;
        let cfg = Insync::new(Config::default().validate().expect("valid"));
        let base = cfg.into_model().init_states().remove(0);
        let mut copied = base.clone();
        copied.actor_states[0] = Arc::new((*base.actor_states[0]).clone());
        copied.actor_storages[0] = base.actor_storages[0].as_deref().cloned().map(Arc::new);
        assert!(!Arc::ptr_eq(&copied.actor_states[0], &base.actor_states[0]));
        assert_eq!(base, base.clone());
        assert_eq!(base, copied);
        assert_eq!(copied, base);
        type Edit = fn(&mut SysState);
        let variants: [(&str, Edit); 7] = [
            ("an actor's hash", |s| s.actor_hashes[0] ^= 1),
            ("a disk's hash", |s| s.storage_hashes[0] ^= 1),
            ("a crash flag", |s| s.crashed[0] = !s.crashed[0]),
            ("the timers", |s| {
                s.timers.pop();
            }),
            ("the network", |s| s.network.send(env(0, 1, 7))),
            ("an actor (same hash)", |s| {
                s.actor_states[0] = Arc::clone(&s.actor_states[1]);
            }),
            ("a disk (same hash)", |s| {
                s.actor_storages[0] = match s.actor_storages[0] {
                    Some(_) => None,
                    None => Some(Arc::new(NodeStorage::None)),
                };
            }),
        ];
        for (what, edit) in variants {
            let mut other = base.clone();
            edit(&mut other);
            assert_ne!(base, other, "{what} differs");
            assert_ne!(other, base, "{what} differs");
        }
    }

    /// Actions read as `ActorModel` shows them (its `format_action` is the action's debug
    /// form), and a state's debug form names its parts, for the Explorer and printed paths.
    #[test]
    fn actions_and_states_read_as_actor_model_shows_them() {
        use crate::config::Config;
        let model = Insync::new(Config::default().validate().expect("valid")).into_model();
        let state = model.init_states().remove(0);
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        assert!(!actions.is_empty());
        for a in &actions {
            assert_eq!(model.format_action(a), format!("{a:?}"));
        }
        let shown = format!("{state:?}");
        assert!(shown.starts_with("SysState { actor_states: ["), "{shown}");
        for part in ["crashed: [", "timers: [", "network: [", "storages: ["] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
    }

    /// As in `ActorModel`, a message addressed to no actor of the model is never delivered
    /// (there is no such actor), though it stays in the network.
    #[test]
    fn a_message_to_no_actor_is_never_delivered() {
        use crate::config::Config;
        let model = Insync::new(Config::default().validate().expect("valid")).into_model();
        let mut state = model.init_states().remove(0);
        let nobody = model.actors.len();
        state.network.send(env(0, nobody, 1));
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        assert!(actions
            .iter()
            .any(|a| matches!(a, ActorModelAction::Deliver { .. })));
        assert!(!actions.iter().any(
            |a| matches!(a, ActorModelAction::Deliver { dst, .. } if usize::from(*dst) == nobody)
        ));
    }

    /// The duplicating network may deliver a message any number of times: a delivery keeps
    /// it and is remembered as the last one; a loss removes it.
    #[test]
    fn the_duplicating_network_keeps_what_it_delivers() {
        let mut net = Net::build(false, [env(0, 1, 1)], None);
        net.send(env(0, 1, 1));
        assert_eq!(net.len(), 1, "a message sent twice is there once");
        assert!(!net.is_ordered() && net.flows().is_empty());
        assert!(format!("{net:?}").starts_with("Duplicating { sent: "));
        net.send(env(0, 1, 2));
        assert_eq!(net.len(), 2);
        net.take(&env(0, 1, 2), false);
        net.take(&env(0, 1, 1), true);
        assert_eq!(heads(&net), vec![env(0, 1, 1)]);
        assert_eq!(net.last_delivered(), Some(&env(0, 1, 1)));
        net.take(&env(0, 1, 1), false);
        assert!(net.is_empty());
    }
}
