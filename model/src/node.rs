//! One actor type for the whole cluster, so that stateright's `ActorModel` (and the engine)
//! can host brokers, the controller and the clients side by side, and the wiring of a
//! configuration into a model.

use crate::broker::{Broker, BrokerState, BrokerStorage};
use crate::config::{NetworkKind, ValidConfig};
use crate::consumer::{Consumer, ConsumerState, ConsumerStorage};
use crate::controller::{Armed, Controller, ControllerState};
use crate::limits::SizeLimits;
use crate::msg::{Msg, Timer};
use crate::producer::{Producer, ProducerState};
use crate::types::{BrokerId, Epoch, ProducerId};
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, ActorModel, Id, Network, Out};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// Where each actor sits: brokers `0..replicas`, then the controller, the producer and (when
/// there is one) the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Topology {
    pub replicas: usize,
    /// Producers, each its own actor with its own producer id. The model has one (the
    /// properties speak of "the producer"); the engine may host several.
    pub producers: usize,
    pub consumer: bool,
}

/// What an actor id stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    Broker(BrokerId),
    Controller,
    Producer,
    Consumer,
}

impl Topology {
    pub fn broker(&self, b: BrokerId) -> Id {
        Id::from(b.index())
    }
    pub fn controller(&self) -> Id {
        Id::from(self.replicas)
    }
    /// The first producer (the model's only one).
    pub fn producer(&self) -> Id {
        self.producer_at(0)
    }
    /// Producer `i` (0-based).
    pub fn producer_at(&self, i: usize) -> Id {
        Id::from(self.replicas + 1 + i)
    }
    /// Which producer an actor id is, if it is one.
    pub fn producer_index(&self, id: Id) -> Option<usize> {
        let i = usize::from(id).checked_sub(self.replicas + 1)?;
        (i < self.producers).then_some(i)
    }
    pub fn consumer(&self) -> Id {
        Id::from(self.replicas + 1 + self.producers)
    }
    pub fn actor_count(&self) -> usize {
        self.replicas + 1 + self.producers + usize::from(self.consumer)
    }
    pub fn brokers(&self) -> impl Iterator<Item = BrokerId> {
        (0..self.replicas as u8).map(BrokerId)
    }
    pub fn broker_of(&self, id: Id) -> Option<BrokerId> {
        let i = usize::from(id);
        (i < self.replicas).then_some(BrokerId(i as u8))
    }
    pub fn kind(&self, id: Id) -> ActorKind {
        let i = usize::from(id);
        match i {
            _ if i < self.replicas => ActorKind::Broker(BrokerId(i as u8)),
            _ if i == self.replicas => ActorKind::Controller,
            _ if i <= self.replicas + self.producers => ActorKind::Producer,
            _ => ActorKind::Consumer,
        }
    }
    /// A short name for traces: `b0`, `ctl`, `prod`, `cons`, and `app` for the engine's
    /// application endpoint (the first id beyond the actors).
    pub fn short_name(&self, id: Id) -> String {
        if usize::from(id) >= self.actor_count() {
            return "app".into();
        }
        match self.kind(id) {
            ActorKind::Broker(b) => format!("b{}", b.0),
            ActorKind::Controller => "ctl".into(),
            ActorKind::Producer => "prod".into(),
            ActorKind::Consumer => "cons".into(),
        }
    }
}

/// The range a timer's real duration is drawn from in the engine (the checker ignores it).
/// Scaled-down Kafka defaults, in the same proportions.
pub fn timer_range(timer: Timer) -> Range<Duration> {
    let ms = |lo: u64, hi: u64| Duration::from_millis(lo)..Duration::from_millis(hi);
    match timer {
        Timer::SessionExpired { .. } => ms(1800, 2000),
        // Never armed in the engine (`ActorParams::explore`, `ActorParams::heartbeats`).
        Timer::ElectLeader(_) | Timer::HeartbeatResumed(_) => ms(10_000, 20_000),
        Timer::IsrLag => ms(1000, 1000),
        Timer::Flush => ms(50, 100),
        Timer::FetchBackoff => ms(10, 20),
        Timer::RequestTimeout => ms(3000, 3000),
        Timer::MetadataBackoff => ms(10, 20),
        Timer::MetadataTimeout => ms(300, 300),
        Timer::ConsumerStep => ms(0, 1),
        Timer::Heartbeat => ms(300, 300),
    }
}

#[derive(Clone, Debug)]
pub enum Node {
    Broker(Broker),
    Controller(Controller),
    Producer(Producer),
    Consumer(Consumer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeState {
    Broker(BrokerState),
    Controller(ControllerState),
    Producer(ProducerState),
    Consumer(ConsumerState),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeStorage {
    /// Actors with nothing durable still save once at start, so that a recovery is told apart
    /// from a first start.
    None,
    Broker(BrokerStorage),
    Consumer(ConsumerStorage),
    /// The engine's controller (`ActorParams::durable_controller`); the model's saves `None`.
    Controller(ControllerState),
}

impl NodeState {
    pub fn as_broker(&self) -> Option<&BrokerState> {
        match self {
            NodeState::Broker(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_controller(&self) -> Option<&ControllerState> {
        match self {
            NodeState::Controller(c) => Some(c),
            _ => None,
        }
    }
    pub fn as_producer(&self) -> Option<&ProducerState> {
        match self {
            NodeState::Producer(p) => Some(p),
            _ => None,
        }
    }
    pub fn as_consumer(&self) -> Option<&ConsumerState> {
        match self {
            NodeState::Consumer(c) => Some(c),
            _ => None,
        }
    }
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Timer;
    type Storage = NodeStorage;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<NodeStorage>, o: &mut Out<Self>) -> NodeState {
        let state = match self {
            Node::Broker(b) => {
                let stored = match storage {
                    Some(NodeStorage::Broker(s)) => Some(s),
                    _ => None,
                };
                let initial = Controller::initial_partition(b.topology.replicas);
                NodeState::Broker(b.on_start(stored, &initial, o))
            }
            Node::Controller(c) => {
                let stored = match storage {
                    Some(NodeStorage::Controller(s)) => Some(s),
                    _ => None,
                };
                NodeState::Controller(c.on_start(stored, o))
            }
            Node::Producer(p) => NodeState::Producer(p.on_start(initial_leader(), o)),
            Node::Consumer(c) => {
                let stored = match storage {
                    Some(NodeStorage::Consumer(s)) => Some(s),
                    _ => None,
                };
                NodeState::Consumer(c.on_start(stored, initial_leader(), o))
            }
        };
        self.assert_invariants(&state);
        state
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, state.to_mut()) {
            (Node::Broker(a), NodeState::Broker(s)) => a.on_msg(s, src, msg, o),
            (Node::Controller(a), NodeState::Controller(s)) => a.on_msg(s, src, msg, o),
            (Node::Producer(a), NodeState::Producer(s)) => a.on_msg(s, msg, o),
            (Node::Consumer(a), NodeState::Consumer(s)) => a.on_msg(s, src, msg, o),
            _ => unreachable!("an actor's state always matches its kind"),
        }
        self.assert_invariants(state);
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<NodeState>, timer: &Timer, o: &mut Out<Self>) {
        match (self, state.to_mut()) {
            (Node::Broker(a), NodeState::Broker(s)) => a.on_timeout(s, timer, o),
            (Node::Controller(a), NodeState::Controller(s)) => a.on_timeout(s, timer, o),
            (Node::Producer(a), NodeState::Producer(s)) => a.on_timeout(s, timer, o),
            (Node::Consumer(a), NodeState::Consumer(s)) => a.on_timeout(s, timer, o),
            _ => unreachable!("an actor's state always matches its kind"),
        }
        self.assert_invariants(state);
    }
}

impl Node {
    /// The timers a controller in `state` keeps armed after any step of its own
    /// ([`Controller::wanted_timers`]); `None` for the other actors, whose timers are not
    /// a function of their state alone.
    pub fn wanted_timers(&self, state: &NodeState) -> Option<Armed> {
        match (self, state) {
            (Node::Controller(c), NodeState::Controller(s)) => Some(c.wanted_timers(s)),
            _ => None,
        }
    }

    /// Whether this actor, in `state`, ignores `msg` from `sender` whenever it arrives from
    /// now on ([`Broker::ignores_forever`], [`Producer::ignores_forever`]); `may_restart`
    /// says whether it may still start again within the bounds. The controller and the
    /// consumer are not asked: the controller answers every request, and the consumer
    /// restarts.
    pub fn ignores_forever(
        &self,
        state: &NodeState,
        msg: &Msg,
        may_restart: bool,
        sender: &NodeState,
    ) -> bool {
        match (self, state) {
            (Node::Broker(a), NodeState::Broker(s)) => {
                let sender_epoch = sender.as_broker().map(|b| b.leader_epoch);
                a.ignores_forever(s, msg, may_restart, sender_epoch)
            }
            (Node::Producer(a), NodeState::Producer(s)) => a.ignores_forever(s, msg),
            _ => false,
        }
    }

    /// Each actor's invariants, after its start and every step, in debug builds (tests
    /// included); a no-op in release builds.
    fn assert_invariants(&self, state: &NodeState) {
        if !cfg!(debug_assertions) {
            return;
        }
        match (self, state) {
            (Node::Broker(_), NodeState::Broker(s)) => s.assert_invariants(),
            (Node::Controller(a), NodeState::Controller(s)) => a.assert_invariants(s),
            (Node::Producer(_), NodeState::Producer(s)) => s.assert_invariants(),
            (Node::Consumer(_), NodeState::Consumer(s)) => s.assert_invariants(),
            _ => {}
        }
    }
}

fn initial_leader() -> Option<(BrokerId, Epoch)> {
    Some((BrokerId(0), Epoch::INITIAL))
}

/// How the actors are set up beyond the configuration: the host that runs them, the model
/// checker ([`ActorParams::model`]) or the engine ([`ActorParams::engine`]). They differ only
/// here. Each switch is off in the model because, there, it could only add states without
/// adding behaviours; tests turn single switches on in the model to explore the engine's
/// branches (`tests/pinned.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActorParams {
    /// Brokers send session heartbeats that reset the controller's session timer, and let a
    /// broker fenced by a false suspicion back in. In the model a `HeartbeatResumed` timer
    /// stands for the first heartbeat after a false suspicion.
    pub heartbeats: bool,
    /// Where clients send `SendResult` and `Delivered`, and where the producer's records come
    /// from (the engine's client API); none in the model, whose producer sends the
    /// configuration's records from the start.
    pub application: Option<Id>,
    /// Fetches the network can lose are given up after `request.timeout.ms`: a follower sends
    /// its fetch again, the consumer gives up on a parked fetch. The engine's network loses
    /// requests in partitions and crashes. Off in the model, where a lost fetch only stalls a
    /// follower or the consumer (the lag check covers the follower; no safety property
    /// depends on the consumer's progress). Not the producer's request timer, which runs in
    /// both whenever a request is in flight (`Producer::arm_timeout`).
    pub request_timeouts: bool,
    /// Most records in a fetch response.
    pub fetch_records_max: usize,
    /// Records per produce request: the model sends one per request so that `max.in.flight`
    /// matters; the engine batches.
    pub batch_records: usize,
    /// Byte limits on produce requests and fetch responses ([`crate::limits`]); unlimited in
    /// the model, whose values are a few bytes.
    pub limits: SizeLimits,
    /// Kafka's precise lag rule: a follower leaves the ISR only if it has not caught up since
    /// the lag timer was armed. The model lets the timer fire at any moment instead, which
    /// allows more shrinks than Kafka (a sound over-approximation for safety).
    pub track_catch_up: bool,
    /// The model's exploration aids, off in the engine: operators' leadership moves
    /// (preferred-leader election, controlled shutdown) and the ghost state the properties
    /// read (what each broker committed as leader).
    pub explore: bool,
    /// The controller saves its whole state after every step that changed it and recovers it
    /// when it starts again, so its epochs never go backwards (KRaft keeps the same facts in
    /// its replicated metadata log). The runtime writes a step's save before the step's
    /// messages leave, so nothing a broker hears was decided on unsaved state. In the model
    /// the controller never crashes (`within_boundary` cuts such states), so a save would
    /// never be read: it saves nothing there, which cannot change a verdict.
    pub durable_controller: bool,
    /// An idempotent producer asks the controller for its producer id (KIP-98
    /// `InitProducerId`) before its first produce request, so that a producer that starts
    /// again, in this process or another, never reuses an id the brokers hold sequence
    /// numbers for. In the model each producer has a fixed id of its own from the start
    /// (`1..=producers`), the outcome such an exchange would have: the idempotence rule needs
    /// ids to be distinct, and they are; the exchange itself only delays the first send,
    /// which the model's message delays already cover. So the branch cannot change a verdict,
    /// and it adds no states.
    pub allocate_producer_ids: bool,
}

impl ActorParams {
    /// The model checker's setting.
    pub fn model(config: &ValidConfig) -> ActorParams {
        ActorParams {
            heartbeats: false,
            application: None,
            request_timeouts: false,
            fetch_records_max: config.records as usize,
            batch_records: 1,
            limits: SizeLimits::UNLIMITED,
            track_catch_up: false,
            explore: true,
            durable_controller: false,
            allocate_producer_ids: false,
        }
    }

    /// The engine's setting: real heartbeats and timeouts, Kafka's lag rule, a durable
    /// controller, an application at `application`; fetches of at most `fetch_records_max`
    /// records, produce requests of `batch_records`, both within `limits`.
    pub fn engine(
        application: Id,
        fetch_records_max: usize,
        batch_records: usize,
        limits: SizeLimits,
    ) -> ActorParams {
        ActorParams {
            heartbeats: true,
            application: Some(application),
            request_timeouts: true,
            fetch_records_max,
            batch_records,
            limits,
            track_catch_up: true,
            explore: false,
            durable_controller: true,
            allocate_producer_ids: true,
        }
    }
}

/// The model's configuration value: stateright passes it to properties and the boundary.
#[derive(Clone, Debug)]
pub struct Insync {
    pub config: ValidConfig,
    pub topology: Topology,
    /// Raised by whoever runs the check to end it early (a deadline): every state is then
    /// outside the boundary, so the checker's threads drain their queues and stop. stateright
    /// reads its own timeout only between work batches, and one batch can be the whole search.
    pub stop: StopFlag,
}

/// A shared "stop searching" flag; cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    /// Ends the search at the next state the checker looks at.
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    #[must_use]
    pub fn is_raised(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

pub use crate::system::{InsyncModel, SysState as InsyncState};

/// stateright's own `ActorModel` of the same actors (no properties, no bounds): the reference
/// the checker's [`InsyncModel`] is tested against (`tests/system.rs`).
pub type ReferenceModel = ActorModel<Node, Insync, ()>;

impl Insync {
    pub fn new(config: ValidConfig) -> Insync {
        let topology = Topology {
            replicas: config.replicas,
            producers: 1,
            consumer: config.consumer,
        };
        Insync {
            config,
            topology,
            stop: StopFlag::default(),
        }
    }

    /// The actors of the cluster for the model checker, in id order.
    pub fn actors(&self) -> Vec<Node> {
        self.actors_with(&ActorParams::model(&self.config))
    }

    /// The actors of the cluster, in id order.
    pub fn actors_with(&self, params: &ActorParams) -> Vec<Node> {
        let (config, t, params) = (&*self.config, self.topology, *params);
        let mut actors: Vec<Node> = t
            .brokers()
            .map(|id| {
                Node::Broker(Broker {
                    id,
                    topology: t,
                    config: config.clone(),
                    params,
                })
            })
            .collect();
        actors.push(Node::Controller(Controller {
            topology: t,
            config: config.clone(),
            params,
        }));
        actors.extend((0..t.producers).map(|i| {
            Node::Producer(Producer {
                topology: t,
                // Fixed ids, not `InitProducerId`'s: they are distinct, which is all the
                // idempotence rule needs (see `ControllerState::next_producer_id`).
                producer_id: ProducerId(1 + i as u32),
                config: config.clone(),
                params,
            })
        }));
        if config.consumer {
            actors.push(Node::Consumer(Consumer {
                topology: t,
                config: config.clone(),
                params,
            }));
        }
        actors
    }

    /// The model checker's model of this configuration, with every property and the bounds.
    pub fn into_model(self) -> InsyncModel {
        let ordered = self.config.network != NetworkKind::Duplicating;
        let lossy = self.config.network == NetworkKind::Lossy;
        let max_crashes = self.config.crashes as usize;
        let actors = self.actors();
        let stale = stale_reduction_applies(&self.config);
        let mut model =
            InsyncModel::new(self, actors, ordered, lossy, max_crashes, within_boundary);
        if stale {
            model = model.dropping_stale_messages(crash_left);
        }
        for p in crate::properties::all() {
            model = model.property(p.expectation, p.name, p.condition);
        }
        model
    }

    /// stateright's `ActorModel` of the same actors and network, without properties or
    /// bounds: what [`InsyncModel`] must step exactly like.
    pub fn into_reference_model(self) -> ReferenceModel {
        let network = match self.config.network {
            // Kafka's connections are TCP: per-pair FIFO.
            NetworkKind::Reliable | NetworkKind::Lossy => Network::new_ordered([]),
            NetworkKind::Duplicating => Network::new_unordered_duplicating([]),
        };
        let lossy = if self.config.network == NetworkKind::Lossy {
            stateright::actor::LossyNetwork::Yes
        } else {
            stateright::actor::LossyNetwork::No
        };
        let max_crashes = self.config.crashes as usize;
        let actors = self.actors();
        ActorModel::new(self, ())
            .actors(actors)
            .init_network(network)
            .lossy_network(lossy)
            .max_crashes(max_crashes)
    }
}

/// The bounds of a check: elections, ISR changes, crashes; and only brokers and the consumer
/// crash (the controller abstracts a replicated quorum; the producer's outcomes are the
/// application's record of what was acknowledged).
pub fn within_boundary(cfg: &Insync, state: &InsyncState) -> bool {
    if cfg.stop.is_raised() {
        return false;
    }
    let t = &cfg.topology;
    let c = &cfg.config;
    if state.crashed[usize::from(t.controller())] || state.crashed[usize::from(t.producer())] {
        return false;
    }
    let Some(controller) = state.actor_states[usize::from(t.controller())].as_controller() else {
        return false;
    };
    if controller.partition.leader_epoch.0 > Epoch::INITIAL.0 + c.elections {
        return false;
    }
    if controller.partition.partition_epoch.0 > c.elections + c.isr_changes {
        return false;
    }
    if crash_reduction_applies(c) && !crash_is_interesting(t, controller, state) {
        return false;
    }
    crashes(state) <= c.crashes
}

/// The crashes spent so far: every restart so far (an incarnation), and every actor down.
fn crashes(state: &InsyncState) -> u32 {
    let mut crashes = state.crashed.iter().filter(|&&x| x).count() as u32;
    for s in &state.actor_states {
        crashes += match &**s {
            NodeState::Broker(b) => b.incarnation.0,
            NodeState::Consumer(c) => c.incarnation,
            _ => 0,
        };
    }
    crashes
}

/// Whether a running actor may still crash within the bounds (for the stale-message
/// reduction, which keeps what a restart could make live again).
pub fn crash_left(cfg: &Insync, state: &InsyncState) -> bool {
    crashes(state) < cfg.config.crashes
}

/// Whether the checker drops stale messages ([`InsyncModel::drop_stale`]): with the
/// reductions on, and with every guard of the protocol (the rules that make a message stale
/// are those guards; a mutant explores every delivery).
pub fn stale_reduction_applies(c: &ValidConfig) -> bool {
    c.reductions && c.without_guard.is_none()
}

/// Whether the checker explores only the crashes of `crash_is_interesting`.
pub fn crash_reduction_applies(c: &ValidConfig) -> bool {
    c.reductions
        && c.flush == crate::config::Flush::Always
        && c.truncation == crate::config::Truncation::LeaderEpoch
}

/// With every append flushed and leader-epoch truncation, most crashes add nothing new, so the checker explores only those
/// that do. A follower's crash only stops it for a while, which the lag timer already explores
/// as a slow follower (under the legacy truncation rule it is not: a restart truncates to the
/// high-watermark checkpoint, so there every crash is explored). A leader that crashes before the controller notices behaves like a
/// zombie that idles until the controller fences it and then crashes (messages to a crashed
/// actor are kept either way). So the only crash explored is that of a leader the controller
/// has already fenced; it loses its pending requests and its role.
fn crash_is_interesting(t: &Topology, controller: &ControllerState, state: &InsyncState) -> bool {
    t.brokers().all(|b| {
        let i = usize::from(t.broker(b));
        !state.crashed[i]
            || (controller.fenced.contains(b)
                && state.actor_states[i]
                    .as_broker()
                    .is_some_and(|s| s.is_leader()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Flush, Guard, Truncation};
    use crate::types::BrokerEpoch;
    use stateright::Model;
    use std::sync::Arc;

    fn insync(config: Config) -> Insync {
        Insync::new(config.validate().expect("valid"))
    }

    /// The initial state of `config`'s model, and a way to change one actor's state in it.
    fn initial(cfg: &Insync) -> InsyncState {
        cfg.clone().into_model().init_states().remove(0)
    }

    fn with_actor(s: &InsyncState, i: usize, f: impl FnOnce(&mut NodeState)) -> InsyncState {
        let mut s = s.clone();
        let mut actor = (*s.actor_states[i]).clone();
        f(&mut actor);
        s.actor_states[i] = Arc::new(actor);
        s
    }

    fn controller_at(
        cfg: &Insync,
        s: &InsyncState,
        leader_epoch: u32,
        partition_epoch: u32,
    ) -> InsyncState {
        with_actor(s, usize::from(cfg.topology.controller()), |n| {
            if let NodeState::Controller(c) = n {
                c.partition.leader_epoch = Epoch(leader_epoch);
                c.partition.partition_epoch = crate::types::PartitionEpoch(partition_epoch);
            }
        })
    }

    fn restarted(s: &InsyncState, i: usize) -> InsyncState {
        with_actor(s, i, |n| match n {
            NodeState::Broker(b) => b.incarnation = b.incarnation.next(),
            NodeState::Consumer(c) => c.incarnation += 1,
            _ => {}
        })
    }

    /// The bounds of a check (`--elections 1 --isr-changes 1 --crashes 1`): the leader epoch
    /// may rise by the elections, the partition epoch by elections plus ISR changes, and
    /// crashes (crashed actors plus every restart so far) up to the bound; the controller and
    /// the producer never crash; a raised stop flag ends the search.
    #[test]
    fn the_checkers_bounds_are_elections_isr_changes_and_crashes() {
        let cfg = insync(Config {
            elections: 1,
            isr_changes: 1,
            crashes: 1,
            consumer: true,
            reductions: false,
            ..Config::default()
        });
        let s = initial(&cfg);
        assert!(within_boundary(&cfg, &s));
        assert!(within_boundary(&cfg, &controller_at(&cfg, &s, 2, 2)));
        assert!(!within_boundary(&cfg, &controller_at(&cfg, &s, 3, 2)));
        assert!(!within_boundary(&cfg, &controller_at(&cfg, &s, 2, 3)));
        for never in [cfg.topology.controller(), cfg.topology.producer()] {
            let mut crashed = s.clone();
            crashed.crashed[usize::from(never)] = true;
            assert!(!within_boundary(&cfg, &crashed), "{never:?} crashed");
        }
        let consumer = usize::from(cfg.topology.consumer());
        assert!(within_boundary(&cfg, &restarted(&s, 1)));
        assert!(within_boundary(&cfg, &restarted(&s, consumer)));
        assert!(!within_boundary(&cfg, &restarted(&restarted(&s, 1), 2)));
        assert!(!within_boundary(
            &cfg,
            &restarted(&restarted(&s, 1), consumer)
        ));
        let mut down = s.clone();
        down.crashed[1] = true;
        assert!(within_boundary(&cfg, &down));
        assert!(!within_boundary(&cfg, &restarted(&down, 0)));
        let stop = cfg.stop.clone();
        stop.raise();
        assert!(cfg.stop.is_raised(), "a clone shares the flag");
        assert!(!within_boundary(&cfg, &s));
    }

    /// The crash reduction (with every append flushed and leader-epoch truncation) explores
    /// only the crash of a leader the controller has fenced.
    #[test]
    fn with_the_crash_reduction_only_a_fenced_leader_crashes() {
        let reduced = insync(Config {
            crashes: 1,
            ..Config::default()
        });
        assert!(crash_reduction_applies(&reduced.config));
        let s = initial(&reduced);
        let mut follower = s.clone();
        follower.crashed[1] = true;
        assert!(!within_boundary(&reduced, &follower));
        let mut leader = s.clone();
        leader.crashed[0] = true;
        assert!(!within_boundary(&reduced, &leader), "not fenced yet");
        let fenced = with_actor(&leader, usize::from(reduced.topology.controller()), |n| {
            if let NodeState::Controller(c) = n {
                c.fenced = c.fenced.with(BrokerId(0));
            }
        });
        assert!(within_boundary(&reduced, &fenced));
        for other in [
            Config {
                reductions: false,
                ..Config::default()
            },
            Config {
                flush: Flush::Async,
                ..Config::default()
            },
            Config {
                truncation: Truncation::Kip320,
                ..Config::default()
            },
        ] {
            assert!(!crash_reduction_applies(&insync(other).config));
        }
    }

    /// A restarted actor takes up what it saved: a broker its flushed log as a new
    /// incarnation, a durable controller its partition and epochs, a consumer its committed
    /// offset. What a first start saves is what a restart reads back.
    #[test]
    fn each_actor_restarts_from_what_it_saved() {
        let cfg = insync(Config {
            consumer: true,
            ..Config::default()
        });
        let params = ActorParams {
            durable_controller: true,
            ..ActorParams::model(&cfg.config)
        };
        let actors = cfg.actors_with(&params);
        let start = |i: usize, storage: Option<NodeStorage>| {
            let mut o = Out::new();
            let state = actors[i].on_start(Id::from(i), &storage, &mut o);
            (state, o)
        };
        let first_save = |o: &Out<Node>| {
            o.iter().find_map(|c| match c {
                stateright::actor::Command::Save(s) => Some(s.clone()),
                _ => None,
            })
        };
        // Broker 1 recovers a saved record.
        let (_, o) = start(1, None);
        let Some(NodeStorage::Broker(mut stored)) = first_save(&o) else {
            panic!("a broker saves its storage");
        };
        stored.log.append(crate::types::Record {
            value: crate::types::Value::Numbered(7),
            leader_epoch: Epoch(1),
            producer: None,
        });
        let (state, _) = start(1, Some(NodeStorage::Broker(stored.clone())));
        let b = state.as_broker().expect("a broker");
        assert_eq!(b.incarnation, BrokerEpoch(1));
        assert_eq!(b.log, stored.log);
        // The durable controller takes up its saved epoch.
        let ctl = usize::from(cfg.topology.controller());
        let (state, _) = start(ctl, None);
        let mut saved = state.as_controller().expect("the controller").clone();
        saved.partition.leader_epoch = Epoch(5);
        let (state, _) = start(ctl, Some(NodeStorage::Controller(saved.clone())));
        assert_eq!(state.as_controller(), Some(&saved));
        // The consumer resumes at its committed offset.
        let cons = usize::from(cfg.topology.consumer());
        let stored = crate::consumer::ConsumerStorage {
            incarnation: 0,
            committed: crate::types::Offset(3),
            read: Vec::new(),
            processed: Vec::new(),
        };
        let (state, _) = start(cons, Some(NodeStorage::Consumer(stored)));
        let c = state.as_consumer().expect("the consumer");
        assert_eq!((c.incarnation, c.position), (1, crate::types::Offset(3)));
        // The producer starts by asking the initial leader, broker 0 in epoch 1.
        let (_, o) = start(usize::from(cfg.topology.producer()), None);
        let to: Vec<Id> = o
            .iter()
            .filter_map(|c| match c {
                stateright::actor::Command::Send(dst, _) => Some(*dst),
                _ => None,
            })
            .collect();
        assert_eq!(to, vec![Id::from(0)]);
        // So does a fresh consumer.
        let (_, o) = start(cons, None);
        assert!(o.iter().any(|c| matches!(
            c,
            stateright::actor::Command::Send(dst, Msg::ConsumerFetch { leader_epoch, .. })
                if *dst == Id::from(0) && *leader_epoch == Epoch(1)
        )));
    }

    /// The node hands each message and timer to its own actor: here the consumer (with
    /// commit-before-processing) reads a batch it was sent, then processes it when its step
    /// timer fires.
    #[test]
    fn the_node_hands_the_consumer_its_messages_and_timers() {
        let cfg = insync(Config {
            consumer: true,
            consumer_commit: crate::config::ConsumerCommit::Before,
            ..Config::default()
        });
        let actors = cfg.actors();
        let cons = usize::from(cfg.topology.consumer());
        let id = Id::from(cons);
        let state = actors[cons].on_start(id, &None, &mut Out::new());
        let mut state = Cow::Owned(state);
        let record = crate::types::Record {
            value: crate::types::Value::Numbered(7),
            leader_epoch: Epoch(1),
            producer: None,
        };
        let batch = Msg::ConsumerFetchResponse {
            leader_epoch: Epoch(1),
            result: Ok((crate::types::Offset(0), vec![record].into())),
        };
        actors[cons].on_msg(id, &mut state, Id::from(0), batch, &mut Out::new());
        let c = state.as_consumer().expect("the consumer");
        assert_eq!(c.committed, crate::types::Offset(1));
        assert!(c.processed.is_empty());
        actors[cons].on_timeout(id, &mut state, &Timer::ConsumerStep, &mut Out::new());
        let c = state.as_consumer().expect("the consumer");
        assert_eq!(c.processed, vec![crate::types::Offset(0)]);
    }

    /// Kafka's connections are TCP: the reference model's network is per-pair FIFO for
    /// `reliable` and `lossy` and loses messages only for `lossy`; `duplicating` is unordered.
    #[test]
    fn the_reference_model_has_the_configured_network() {
        use crate::config::NetworkKind;
        use stateright::actor::LossyNetwork;
        for (network, ordered, lossy) in [
            (NetworkKind::Reliable, true, LossyNetwork::No),
            (NetworkKind::Lossy, true, LossyNetwork::Yes),
            (NetworkKind::Duplicating, false, LossyNetwork::No),
        ] {
            let m = insync(Config {
                network,
                ..Config::default()
            })
            .into_reference_model();
            assert!(m.lossy_network == lossy, "{network:?}");
            assert_eq!(
                matches!(m.init_network, Network::Ordered(_)),
                ordered,
                "{network:?}"
            );
        }
    }

    /// How a configuration becomes actors: the KIP-903 check is on unless its guard is
    /// removed, producers have distinct fixed ids from 1, and producers time out requests
    /// where a crash or a lossy network can lose them, and always in the engine.
    #[test]
    fn the_actors_follow_the_configuration() {
        let controller = |cfg: &Insync| {
            cfg.actors()
                .into_iter()
                .find_map(|a| match a {
                    Node::Controller(c) => Some(c),
                    _ => None,
                })
                .expect("a controller")
        };
        let producers = |cfg: &Insync, params: &ActorParams| -> Vec<Producer> {
            cfg.actors_with(params)
                .into_iter()
                .filter_map(|a| match a {
                    Node::Producer(p) => Some(p),
                    _ => None,
                })
                .collect()
        };
        let cfg = insync(Config {
            crashes: 0,
            ..Config::default()
        });
        assert!(controller(&cfg).config.guards(Guard::StaleBrokerEpoch));
        let without = insync(Config {
            without_guard: Some(Guard::StaleBrokerEpoch),
            ..Config::default()
        });
        assert!(!controller(&without).config.guards(Guard::StaleBrokerEpoch));
        let mut two = cfg.clone();
        two.topology.producers = 2;
        let model = ActorParams::model(&cfg.config);
        let ids: Vec<ProducerId> = producers(&two, &model)
            .iter()
            .map(|p| p.producer_id)
            .collect();
        assert_eq!(ids, vec![ProducerId(1), ProducerId(2)]);
    }

    /// Actor ids: brokers `0..replicas`, the controller, the producers, then the consumer;
    /// an id past them is the engine's application endpoint. Every handler that answers
    /// "who sent this" (a fetch from a broker, a request from a producer) relies on it.
    #[test]
    fn actors_are_numbered_brokers_controller_producers_consumer() {
        let t = Topology {
            replicas: 3,
            producers: 2,
            consumer: true,
        };
        assert_eq!(t.actor_count(), 7);
        assert_eq!(t.controller(), Id::from(3));
        assert_eq!(t.producer(), Id::from(4));
        assert_eq!(t.producer_at(1), Id::from(5));
        assert_eq!(t.consumer(), Id::from(6));
        let kinds: Vec<ActorKind> = (0..7).map(|i| t.kind(Id::from(i))).collect();
        assert_eq!(
            kinds,
            vec![
                ActorKind::Broker(BrokerId(0)),
                ActorKind::Broker(BrokerId(1)),
                ActorKind::Broker(BrokerId(2)),
                ActorKind::Controller,
                ActorKind::Producer,
                ActorKind::Producer,
                ActorKind::Consumer,
            ]
        );
        let producers: Vec<Option<usize>> = (0..8).map(|i| t.producer_index(Id::from(i))).collect();
        assert_eq!(
            producers,
            vec![None, None, None, None, Some(0), Some(1), None, None]
        );
        let brokers: Vec<Option<BrokerId>> = (0..5).map(|i| t.broker_of(Id::from(i))).collect();
        assert_eq!(
            brokers,
            vec![
                Some(BrokerId(0)),
                Some(BrokerId(1)),
                Some(BrokerId(2)),
                None,
                None
            ]
        );
        let names: Vec<String> = (0..8).map(|i| t.short_name(Id::from(i))).collect();
        assert_eq!(
            names,
            ["b0", "b1", "b2", "ctl", "prod", "prod", "cons", "app"]
        );
        let without_consumer = Topology {
            consumer: false,
            ..t
        };
        assert_eq!(without_consumer.actor_count(), 6);
        assert_eq!(without_consumer.short_name(Id::from(6)), "app");
    }
}
