//! The in-process network between actors: routes every `Send` to a mailbox (or
//! the outbox) and injects the faults configured through [`NetworkHandle`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::actor::{Actor, Id};
use tokio::sync::{mpsc, watch, Semaphore};

use super::actor_task::Mail;

/// Bound on delayed messages travelling at once; beyond it new delayed messages
/// are dropped, so a long delay under heavy load cannot exhaust memory.
pub const MAX_IN_FLIGHT: usize = 65_536;

/// A message an actor sent to an id beyond the actor count (e.g. a client):
/// `(src, dst, msg)`.
pub type OutboxMsg<M> = (Id, Id, M);

/// Traffic counters. Every message handed to the network (`sent`) plus every
/// extra copy (`duplicated`) ends up `delivered` (accepted by a mailbox or the
/// outbox), `dropped`, or is still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Delayed copies not yet delivered or dropped.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
struct FaultConfig {
    drop_rate: f64,
    duplicate_rate: f64,
    delay: Option<Range<Duration>>,
    /// `None`: no partition. Otherwise the group of each listed id; unlisted ids
    /// (clients included) share one implicit remaining group.
    groups: Option<HashMap<Id, usize>>,
    next_group: usize,
    slow: HashMap<Id, Duration>,
}

impl FaultConfig {
    fn partitioned(&self, a: Id, b: Id) -> bool {
        match &self.groups {
            None => false,
            Some(groups) => groups.get(&a) != groups.get(&b),
        }
    }
}

struct NetState {
    config: Mutex<FaultConfig>,
    sent: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    in_flight: Arc<Semaphore>,
}

/// Controls the network's faults while the runtime runs; cheap to clone.
#[derive(Clone)]
pub struct NetworkHandle {
    inner: Arc<NetState>,
}

impl std::fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Probabilities arrive from users: clamp instead of letting `gen_bool` panic.
fn probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

impl NetworkHandle {
    fn new() -> Self {
        NetworkHandle {
            inner: Arc::new(NetState {
                config: Mutex::new(FaultConfig::default()),
                sent: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                duplicated: AtomicU64::new(0),
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            }),
        }
    }

    fn config(&self) -> MutexGuard<'_, FaultConfig> {
        // The config is plain data; a panic elsewhere cannot leave it invalid.
        self.inner.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Probability (clamped to 0..=1) that a message is lost.
    pub fn set_drop_rate(&self, p: f64) {
        self.config().drop_rate = probability(p);
    }

    /// Probability (clamped to 0..=1) that a message is delivered twice.
    pub fn set_duplicate_rate(&self, p: f64) {
        self.config().duplicate_rate = probability(p);
    }

    /// Delays every message by a duration drawn uniformly from `range`
    /// (independently per message, so a pair's messages may be reordered).
    /// An empty range delays by exactly `range.start`.
    pub fn set_delay(&self, range: Range<Duration>) {
        self.config().delay = Some(range);
    }

    /// Delivers messages as soon as they are sent (apart from `slow` links).
    pub fn clear_delay(&self) {
        self.config().delay = None;
    }

    /// Drops messages between different groups. Replaces any previous partition.
    /// Ids in no group (clients included) form one further group together.
    pub fn partition(&self, groups: Vec<Vec<Id>>) {
        let mut config = self.config();
        let mut map = HashMap::new();
        for (index, group) in groups.iter().enumerate() {
            for id in group {
                map.insert(*id, index);
            }
        }
        config.next_group = groups.len();
        config.groups = Some(map);
    }

    /// Cuts `id` off from everyone else, on top of any existing partition.
    pub fn isolate(&self, id: Id) {
        let mut config = self.config();
        let group = config.next_group;
        config.next_group += 1;
        config
            .groups
            .get_or_insert_with(HashMap::new)
            .insert(id, group);
    }

    /// Removes all partitions (other faults stay).
    pub fn heal(&self) {
        let mut config = self.config();
        config.groups = None;
        config.next_group = 0;
    }

    /// Adds `extra` delay to every message to or from `id`; `Duration::ZERO`
    /// makes the link normal again.
    pub fn slow(&self, id: Id, extra: Duration) {
        let mut config = self.config();
        if extra.is_zero() {
            config.slow.remove(&id);
        } else {
            config.slow.insert(id, extra);
        }
    }

    /// Removes every fault: drops, duplicates, delays, partitions, slow links.
    pub fn clear_faults(&self) {
        *self.config() = FaultConfig::default();
    }

    /// Whether messages between `a` and `b` are currently cut by a partition.
    pub fn is_partitioned(&self, a: Id, b: Id) -> bool {
        self.config().partitioned(a, b)
    }

    pub fn stats(&self) -> NetworkStats {
        let s = &self.inner;
        NetworkStats {
            sent: s.sent.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            duplicated: s.duplicated.load(Ordering::Relaxed),
            in_flight: (MAX_IN_FLIGHT - s.in_flight.available_permits()) as u64,
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Decides the fate of one message: `None` if lost, else the delay of each
    /// copy to deliver.
    fn plan(&self, src: Id, dst: Id, rng: &mut StdRng) -> Option<Vec<Duration>> {
        let config = self.config();
        if config.partitioned(src, dst) || rng.gen_bool(config.drop_rate) {
            return None;
        }
        let copies = if rng.gen_bool(config.duplicate_rate) {
            2
        } else {
            1
        };
        let slow = config.slow.get(&src).copied().unwrap_or_default()
            + config.slow.get(&dst).copied().unwrap_or_default();
        let delays = (0..copies)
            .map(|_| {
                let base = match &config.delay {
                    Some(range) if range.start < range.end => rng.gen_range(range.clone()),
                    Some(range) => range.start,
                    None => Duration::ZERO,
                };
                base + slow
            })
            .collect();
        Some(delays)
    }
}

/// Whether a delayed copy may wait for room in a full mailbox. Actors never wait:
/// two actors blocked on each other's full mailbox would deadlock, so between
/// actors a full mailbox drops the message (as an overloaded network would).
/// External injectors wait, which is the back-pressure a client should feel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backpressure {
    Wait,
    Drop,
}

struct Connection {
    travelling: usize,
    /// Fires when the newest travelling message is delivered or dropped.
    last: Option<watch::Receiver<bool>>,
}

struct MailboxSlot<A: Actor> {
    tx: Option<mpsc::Sender<Mail<A>>>,
    incarnation: u64,
}

/// Free mailbox slots kept for the actors' own messages: outside senders (the application)
/// may fill at most the other half, and wait for it.
const EXTERNAL_MAILBOX_MAX: usize = crate::runtime::actor_task::MAILBOX_CAPACITY / 2;

/// Routes messages between actors, applying the handle's faults.
pub(crate) struct Router<A: Actor> {
    handle: NetworkHandle,
    /// One per mailbox: permits for messages from outside the actors.
    external: Vec<Arc<tokio::sync::Semaphore>>,
    rng: Mutex<StdRng>,
    mailboxes: Vec<Mutex<MailboxSlot<A>>>,
    /// Per actor: hosted by another process (its messages go to the outbox).
    remote: Vec<bool>,
    /// Per connection `(src, dst)` with delayed messages still travelling: how many, and the
    /// delivery of the last one. Each later message waits for it, so a connection stays FIFO
    /// when a delay shrinks or a slow link is cleared (TCP never reorders).
    connections: Mutex<HashMap<(Id, Id), Connection>>,
    outbox: mpsc::UnboundedSender<OutboxMsg<A::Msg>>,
    /// Never marked seen, so every clone notices a signal sent at any time.
    shutdown: watch::Receiver<bool>,
    tokio: tokio::runtime::Handle,
}

impl<A> Router<A>
where
    A: Actor + Send + Sync + 'static,
    A::Msg: Send + Sync + 'static,
    A::State: Send + 'static,
{
    pub(crate) fn new(
        remote: Vec<bool>,
        seed: u64,
        outbox: mpsc::UnboundedSender<OutboxMsg<A::Msg>>,
        shutdown: watch::Receiver<bool>,
        tokio: tokio::runtime::Handle,
    ) -> Self {
        let actor_count = remote.len();
        Router {
            handle: NetworkHandle::new(),
            external: (0..actor_count)
                .map(|_| Arc::new(tokio::sync::Semaphore::new(EXTERNAL_MAILBOX_MAX)))
                .collect(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            mailboxes: (0..actor_count)
                .map(|_| {
                    Mutex::new(MailboxSlot {
                        tx: None,
                        incarnation: 0,
                    })
                })
                .collect(),
            remote,
            connections: Mutex::new(HashMap::new()),
            outbox,
            shutdown,
            tokio,
        }
    }

    /// Whether `(src, dst)` has delayed messages still travelling, which a new message must
    /// not overtake.
    fn is_backed_up(&self, src: Id, dst: Id) -> bool {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&(src, dst))
    }

    /// Joins the queue of `(src, dst)`: returns the delivery to wait for first, if any, and
    /// the signal of this message's own delivery.
    fn enqueue(&self, src: Id, dst: Id) -> (Option<watch::Receiver<bool>>, watch::Sender<bool>) {
        let (done_tx, done_rx) = watch::channel(false);
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let connection = connections.entry((src, dst)).or_insert(Connection {
            travelling: 0,
            last: None,
        });
        connection.travelling += 1;
        let previous = connection.last.replace(done_rx);
        (previous, done_tx)
    }

    /// Leaves the queue of `(src, dst)` once a delayed message is delivered or dropped.
    fn dequeue(&self, src: Id, dst: Id) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(connection) = connections.get_mut(&(src, dst)) {
            connection.travelling -= 1;
            if connection.travelling == 0 {
                connections.remove(&(src, dst));
            }
        }
    }

    /// Whether `dst` is the application (an id beyond the actors): the client API lives in
    /// the clients' process, so no network fault reaches it.
    fn is_application(&self, dst: Id) -> bool {
        usize::from(dst) >= self.mailboxes.len()
    }

    /// Whether the actor at `index` is hosted by another process.
    pub(crate) fn is_remote(&self, index: usize) -> bool {
        self.remote.get(index).copied().unwrap_or(false)
    }

    /// Whether messages to `index` leave through the outbox: ids beyond the actors, and
    /// actors hosted elsewhere.
    fn to_outbox(&self, index: usize) -> bool {
        index >= self.mailboxes.len() || self.is_remote(index)
    }

    pub(crate) fn handle(&self) -> &NetworkHandle {
        &self.handle
    }

    fn slot(&self, index: usize) -> MutexGuard<'_, MailboxSlot<A>> {
        // A slot is replaced whole; a poisoned one is still consistent.
        self.mailboxes[index]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `tx` the mailbox of actor `index`; returns the incarnation that
    /// owns it (needed to detach only one's own mailbox).
    pub(crate) fn attach(&self, index: usize, tx: mpsc::Sender<Mail<A>>) -> u64 {
        let mut slot = self.slot(index);
        slot.incarnation += 1;
        slot.tx = Some(tx);
        slot.incarnation
    }

    /// Stops routing to actor `index`, if `incarnation` still owns the mailbox.
    /// Returns whether it did.
    pub(crate) fn detach(&self, index: usize, incarnation: u64) -> bool {
        let mut slot = self.slot(index);
        if slot.incarnation == incarnation && slot.tx.is_some() {
            slot.tx = None;
            true
        } else {
            false
        }
    }

    /// The current incarnation of actor `index`, if it is running.
    pub(crate) fn running_incarnation(&self, index: usize) -> Option<u64> {
        let slot = self.slot(index);
        slot.tx.as_ref().map(|_| slot.incarnation)
    }

    pub(crate) fn mailbox(&self, index: usize) -> Option<mpsc::Sender<Mail<A>>> {
        self.mailboxes
            .get(index)
            .and_then(|_| self.slot(index).tx.clone())
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Applies the faults to one message: the copies to deliver with their
    /// delays, or none if it is lost. Counts sent, dropped and duplicated.
    fn plan(&self, src: Id, dst: Id, msg: A::Msg) -> Vec<(Duration, A::Msg)> {
        let stats = &self.handle.inner;
        NetworkHandle::count(&stats.sent);
        let delays = if self.is_shut_down() {
            None
        } else {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            self.handle.plan(src, dst, &mut rng)
        };
        let Some(mut delays) = delays else {
            NetworkHandle::count(&stats.dropped);
            return Vec::new();
        };
        let mut copies = Vec::with_capacity(delays.len());
        let last = delays
            .pop()
            .expect("a delivered message has at least one copy");
        for delay in delays {
            NetworkHandle::count(&stats.duplicated);
            copies.push((delay, msg.clone()));
        }
        copies.push((last, msg));
        copies
    }

    /// Sends through the faulty network without ever waiting (how actors
    /// send). Returns false if every copy was lost before leaving; true means
    /// delivered or scheduled.
    pub(crate) fn route_nowait(self: &Arc<Self>, src: Id, dst: Id, msg: A::Msg) -> bool {
        if self.is_application(dst) {
            self.count_sent();
            return self.deliver_nowait(src, dst, msg);
        }
        let mut any = false;
        for (delay, copy) in self.plan(src, dst, msg) {
            any |= if delay.is_zero() && !self.is_backed_up(src, dst) {
                self.deliver_nowait(src, dst, copy)
            } else {
                self.schedule(src, dst, copy, delay, Backpressure::Drop)
            };
        }
        any
    }

    /// Like [`Router::route_nowait`] but waits for room in a full mailbox.
    pub(crate) async fn route_wait(self: &Arc<Self>, src: Id, dst: Id, msg: A::Msg) -> bool {
        if self.is_application(dst) {
            self.count_sent();
            return self.deliver_wait(src, dst, msg).await;
        }
        let mut any = false;
        for (delay, copy) in self.plan(src, dst, msg) {
            any |= if delay.is_zero() && !self.is_backed_up(src, dst) {
                self.deliver_wait(src, dst, copy).await
            } else {
                self.schedule(src, dst, copy, delay, Backpressure::Wait)
            };
        }
        any
    }

    fn schedule(
        self: &Arc<Self>,
        src: Id,
        dst: Id,
        msg: A::Msg,
        delay: Duration,
        backpressure: Backpressure,
    ) -> bool {
        let stats = &self.handle.inner;
        let Ok(permit) = Arc::clone(&stats.in_flight).try_acquire_owned() else {
            NetworkHandle::count(&stats.dropped);
            return false;
        };
        let router = Arc::clone(self);
        let mut shutdown = self.shutdown.clone();
        let (previous, done) = self.enqueue(src, dst);
        self.tokio.spawn(async move {
            let _permit = permit;
            let due = tokio::time::Instant::now() + delay;
            let in_order = async move {
                tokio::time::sleep_until(due).await;
                if let Some(mut previous) = previous {
                    // Delivered, dropped, or its task gone: either way, our turn.
                    let _ = previous.wait_for(|delivered| *delivered).await;
                }
            };
            tokio::select! {
                _ = in_order => {
                    // A partition that started while the message travelled cuts it.
                    if router.handle.is_partitioned(src, dst) {
                        NetworkHandle::count(&router.handle.inner.dropped);
                    } else if backpressure == Backpressure::Wait {
                        router.deliver_wait(src, dst, msg).await;
                    } else {
                        router.deliver_nowait(src, dst, msg);
                    }
                }
                _ = shutdown.changed() => {
                    NetworkHandle::count(&router.handle.inner.dropped);
                }
            }
            router.dequeue(src, dst);
            let _ = done.send(true);
        });
        true
    }

    fn counted(&self, accepted: bool) -> bool {
        let stats = &self.handle.inner;
        NetworkHandle::count(if accepted {
            &stats.delivered
        } else {
            &stats.dropped
        });
        accepted
    }

    /// Puts a message into `dst`'s mailbox (or the unbounded outbox) without faults,
    /// dropping it if the mailbox has no room. Messages to a crashed actor are dropped,
    /// as a closed connection would.
    pub(crate) fn deliver_nowait(&self, src: Id, dst: Id, msg: A::Msg) -> bool {
        let index = usize::from(dst);
        let accepted = if self.to_outbox(index) {
            self.outbox.send((src, dst, msg)).is_ok()
        } else {
            self.mailbox(index).is_some_and(|tx| {
                tx.try_send(Mail::Deliver {
                    src,
                    msg,
                    _external: None,
                })
                .is_ok()
            })
        };
        self.counted(accepted)
    }

    /// Like [`Router::deliver_nowait`] but waits for room in the actor's mailbox
    /// (never for the outbox: the application may not be reading it).
    ///
    /// Outside senders share half the mailbox and wait for a place in it, so injected
    /// traffic can never fill the mailbox: the actors' own messages, which are dropped
    /// rather than wait (to rule out deadlocks), always find room.
    pub(crate) async fn deliver_wait(&self, src: Id, dst: Id, msg: A::Msg) -> bool {
        let index = usize::from(dst);
        if self.to_outbox(index) {
            return self.deliver_nowait(src, dst, msg);
        }
        let Ok(permit) = Arc::clone(&self.external[index]).acquire_owned().await else {
            return self.counted(false);
        };
        let accepted = match self.mailbox(index) {
            Some(tx) => tx
                .send(Mail::Deliver {
                    src,
                    msg,
                    _external: Some(permit),
                })
                .await
                .is_ok(),
            None => false,
        };
        self.counted(accepted)
    }

    /// Waits until every delayed copy has been delivered or dropped; only
    /// meaningful after the shutdown signal, which stops new ones.
    pub(crate) async fn drain_in_flight(&self) {
        let semaphore = &self.handle.inner.in_flight;
        if let Ok(all) = semaphore.acquire_many(MAX_IN_FLIGHT as u32).await {
            drop(all);
        }
    }

    /// Counts a message handed to the network outside `route` (direct injection).
    pub(crate) fn count_sent(&self) {
        NetworkHandle::count(&self.handle.inner.sent);
    }
}
