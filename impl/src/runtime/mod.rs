//! Hosts any stateright [`Actor`] on tokio. The actors stay pure state
//! machines; this runtime owns what the model abstracts away: tasks, clocks,
//! randomness, storage, the network and its faults.
//!
//! Each actor runs in its own task with a bounded mailbox ([`MAILBOX_CAPACITY`]).
//! A step's `Save` is made durable before any of its `Send`s leave
//! (write-ahead). Timer durations, random choices and network faults come from
//! RNGs seeded by [`RuntimeConfig::seed`].

mod actor_task;
mod network;
mod storage;
mod timers;
mod trace;

#[cfg(test)]
mod tests;

use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use stateright::actor::{Actor, Id};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use actor_task::{ActorTracer, Mail, Probe, TaskSetup};
use network::Router;

pub use actor_task::MAILBOX_CAPACITY;
pub use network::{NetworkHandle, NetworkStats, OutboxMsg, MAX_IN_FLIGHT};
pub use storage::{MemoryStorage, StorageBackend, StorageError};
pub use trace::{TraceEvent, TraceKind, TraceLog, MAX_TRACE_EVENTS};

/// A trace event of actor type `A`.
pub type ActorTraceEvent<A> =
    TraceEvent<<A as Actor>::Msg, <A as Actor>::Timer, <A as Actor>::Random>;
/// A drained trace of actor type `A`.
pub type ActorTraceLog<A> = TraceLog<<A as Actor>::Msg, <A as Actor>::Timer, <A as Actor>::Random>;

/// How a run is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Seeds every RNG of the run (per actor incarnation, and the network's), so
    /// timer durations, random choices and fault decisions repeat with it.
    pub seed: u64,
    /// Record a trace of at most this many events (`None`: no trace).
    pub trace_capacity: Option<usize>,
    /// Actors hosted by another process: never started here; what is sent to them goes to
    /// the outbox, for a transport to carry.
    pub remote: Vec<usize>,
}

impl RuntimeConfig {
    pub fn with_seed(seed: u64) -> Self {
        RuntimeConfig {
            seed,
            ..Self::default()
        }
    }

    /// Turns on tracing, bounded by [`MAX_TRACE_EVENTS`].
    #[must_use]
    pub fn traced(self) -> Self {
        self.trace_capacity(MAX_TRACE_EVENTS)
    }

    /// Marks actors as hosted by another process.
    #[must_use]
    pub fn remote(self, remote: Vec<usize>) -> Self {
        RuntimeConfig { remote, ..self }
    }

    #[must_use]
    pub fn trace_capacity(self, capacity: usize) -> Self {
        RuntimeConfig {
            trace_capacity: Some(capacity),
            ..self
        }
    }
}

/// Why a runtime operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    /// `Runtime::start` was called outside a tokio runtime.
    NoTokioRuntime,
    /// No actor has this id.
    UnknownActor(Id),
    /// The runtime was shut down.
    ShutDown,
    /// Loading an actor's storage failed.
    Storage { id: Id, error: StorageError },
    /// The actor runs in another process; only that process can crash or restart it.
    Remote(Id),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::NoTokioRuntime => write!(f, "not inside a tokio runtime"),
            RuntimeError::UnknownActor(id) => write!(f, "no actor has id {id:?}"),
            RuntimeError::ShutDown => write!(f, "the runtime is shut down"),
            RuntimeError::Storage { id, error } => {
                write!(f, "loading storage of actor {id:?}: {error}")
            }
            RuntimeError::Remote(id) => write!(f, "actor {id:?} runs in another process"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Storage { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// How an externally injected message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Through the network and its faults, like an actor's message.
    Network,
    /// Straight into the mailbox, bypassing faults (still dropped if the
    /// destination is crashed).
    Direct,
}

/// Derives independent seeds from the run seed (splitmix64 finalizer), so actors
/// and incarnations do not share random streams.
fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(seed ^ mix(a ^ mix(b)))
}

/// Seed stream reserved for the network (actors use their index).
const NETWORK_STREAM: u64 = u64::MAX;

/// Runs a fixed set of actors; actor `i` has `Id::from(i)`. Ids at or beyond the
/// actor count belong to the outside world: messages to them go to the outbox.
///
/// Dropping the runtime signals shutdown without waiting; prefer
/// [`Runtime::shutdown`].
pub struct Runtime<A: Actor> {
    actors: Vec<Arc<A>>,
    /// Per actor: the task of its current incarnation. The async lock
    /// serializes crash/restart/shutdown of one actor.
    lifecycle: Vec<tokio::sync::Mutex<Option<Incarnation>>>,
    router: Arc<Router<A>>,
    backend: Arc<dyn StorageBackend<A::Storage>>,
    tracer: Option<Arc<ActorTracer<A>>>,
    outbox: Mutex<Option<mpsc::UnboundedReceiver<OutboxMsg<A::Msg>>>>,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    tokio: tokio::runtime::Handle,
    seed: u64,
}

impl<A> Runtime<A>
where
    A: Actor + Send + Sync + 'static,
    A::Msg: Clone + Send + Sync + 'static + Debug,
    A::State: Send + 'static,
    A::Timer: Clone + Eq + Hash + Send + Sync + 'static,
    A::Storage: Clone + Send + Sync + 'static,
    A::Random: Clone + Send + 'static,
{
    /// Starts every actor (`on_start` with what `backend` holds for it). Must be
    /// called inside a tokio runtime. Loads all storage before starting any
    /// actor, so a load error starts nothing.
    pub fn start(
        actors: Vec<A>,
        backend: Arc<dyn StorageBackend<A::Storage>>,
        config: RuntimeConfig,
    ) -> Result<Self, RuntimeError> {
        let tokio =
            tokio::runtime::Handle::try_current().map_err(|_| RuntimeError::NoTokioRuntime)?;
        let remote: Vec<bool> = (0..actors.len())
            .map(|index| config.remote.contains(&index))
            .collect();
        let stored = (0..actors.len())
            .map(|index| {
                let id = Id::from(index);
                if remote[index] {
                    return Ok(None);
                }
                backend
                    .load(id)
                    .map_err(|error| RuntimeError::Storage { id, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        let router = Arc::new(Router::new(
            remote.clone(),
            derive_seed(config.seed, NETWORK_STREAM, 0),
            outbox_tx,
            shutdown_rx.clone(),
            tokio.clone(),
        ));
        let tracer = config
            .trace_capacity
            .map(|capacity| Arc::new(ActorTracer::<A>::new(tokio::time::Instant::now(), capacity)));
        let mut runtime = Runtime {
            lifecycle: actors
                .iter()
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            actors: actors.into_iter().map(Arc::new).collect(),
            router,
            backend,
            tracer,
            outbox: Mutex::new(Some(outbox_rx)),
            shutdown_tx,
            shutdown_rx,
            tokio,
            seed: config.seed,
        };
        for (index, storage) in stored.into_iter().enumerate() {
            if remote[index] {
                continue;
            }
            let task = runtime.spawn_actor(index, storage, false);
            *runtime.lifecycle[index].get_mut() = Some(task);
        }
        Ok(runtime)
    }

    fn spawn_actor(
        &self,
        index: usize,
        storage: Option<A::Storage>,
        restarted: bool,
    ) -> Incarnation {
        let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let incarnation = self.router.attach(index, tx);
        let setup = TaskSetup {
            id: Id::from(index),
            incarnation,
            restarted,
            actor: Arc::clone(&self.actors[index]),
            storage,
            mailbox: rx,
            backend: Arc::clone(&self.backend),
            router: Arc::clone(&self.router),
            tracer: self.tracer.clone(),
            shutdown: self.shutdown_rx.clone(),
            rng_seed: derive_seed(self.seed, index as u64, incarnation),
            started: Some(started_tx),
        };
        Incarnation {
            handle: self.tokio.spawn(actor_task::run(setup)),
            started: Some(started),
        }
    }

    pub fn actor_count(&self) -> usize {
        self.actors.len()
    }

    /// Fault controls and traffic counters of the network.
    pub fn network(&self) -> NetworkHandle {
        self.router.handle().clone()
    }

    /// Whether actor `id` exists and is not crashed (nor shut down).
    pub fn is_running(&self, id: Id) -> bool {
        let index = usize::from(id);
        index < self.actors.len() && self.router.running_incarnation(index).is_some()
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown_rx.borrow()
    }

    /// Crashes actor `id`: its task ends, dropping its volatile state, pending
    /// mailbox and timers. Returns false if it was not running (or unknown).
    #[must_use = "false: the actor was not running"]
    pub async fn crash(&self, id: Id) -> bool {
        let index = usize::from(id);
        let Some(lifecycle) = self.lifecycle.get(index) else {
            return false;
        };
        let mut task = lifecycle.lock().await;
        let Some(incarnation) = self.router.running_incarnation(index) else {
            return false;
        };
        // A crash lands after `on_start`, whose messages have left: the model's actors all
        // start in its initial state, so an incarnation that never ran `on_start` (its task
        // not yet polled) would be a behaviour the checker never explores (`insync fuzz`'s
        // trace conformance found it: a consumer crashed at once lost its first fetch).
        if let Some(started) = task.as_mut().and_then(|t| t.started.take()) {
            let _ = started.await;
        }
        // Detach first: nothing new reaches the dying incarnation.
        self.router.detach(index, incarnation);
        if let Some(old) = task.take() {
            old.handle.abort();
            reap(id, old.handle).await;
        }
        if let Some(tracer) = &self.tracer {
            tracer.record(id, TraceKind::Crashed);
        }
        true
    }

    /// Restarts a crashed actor: `on_start` with the storage last saved for it.
    /// `Ok(false)` if it is already running.
    pub async fn restart(&self, id: Id) -> Result<bool, RuntimeError> {
        let index = usize::from(id);
        let lifecycle = self
            .lifecycle
            .get(index)
            .ok_or(RuntimeError::UnknownActor(id))?;
        if self.router.is_remote(index) {
            return Err(RuntimeError::Remote(id));
        }
        let mut task = lifecycle.lock().await;
        if self.is_shut_down() {
            return Err(RuntimeError::ShutDown);
        }
        if self.router.running_incarnation(index).is_some() {
            return Ok(false);
        }
        // An incarnation that crashed itself (failed save, panic) may still be
        // unwinding; make sure it is gone before its successor starts.
        if let Some(old) = task.take() {
            old.handle.abort();
            reap(id, old.handle).await;
        }
        let storage = if self.backend.is_blocking() {
            let backend = Arc::clone(&self.backend);
            tokio::task::spawn_blocking(move || backend.load(id))
                .await
                .unwrap_or_else(|e| Err(StorageError::new(format!("the load did not finish: {e}"))))
        } else {
            self.backend.load(id)
        }
        .map_err(|error| RuntimeError::Storage { id, error })?;
        *task = Some(self.spawn_actor(index, storage, true));
        Ok(true)
    }

    /// Injects `msg` as if `src` sent it to `dst`, waiting while the
    /// destination mailbox is full (back-pressure). Returns false if it was
    /// dropped before leaving (faults, crashed or unknown destination, shutdown);
    /// with [`Route::Network`], true may still mean it is lost in flight.
    #[must_use = "false: the message was dropped before it left"]
    pub async fn send_from(&self, src: Id, dst: Id, msg: A::Msg, route: Route) -> bool {
        match route {
            Route::Network => self.router.route_wait(src, dst, msg).await,
            Route::Direct => {
                self.router.count_sent();
                self.router.deliver_wait(src, dst, msg).await
            }
        }
    }

    /// [`Runtime::send_from`] for synchronous callers: never waits, so a full
    /// mailbox drops the message (returning false).
    #[must_use = "false: the message was dropped"]
    pub fn try_send_from(&self, src: Id, dst: Id, msg: A::Msg, route: Route) -> bool {
        match route {
            Route::Network => self.router.route_nowait(src, dst, msg),
            Route::Direct => {
                self.router.count_sent();
                self.router.deliver_nowait(src, dst, msg)
            }
        }
    }

    /// Runs `f` on actor `id`'s current state, between two of its steps (queued
    /// behind its pending mail). `None` if it is not running or crashes first.
    pub async fn inspect<R, F>(&self, id: Id, f: F) -> Option<R>
    where
        F: FnOnce(&A::State) -> R + Send + 'static,
        R: Send + 'static,
    {
        let tx = self.router.mailbox(usize::from(id))?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let probe: Probe<A::State> = Box::new(move |state| {
            // The caller may have stopped waiting; nothing to do then.
            let _ = reply_tx.send(f(state));
        });
        tx.send(Mail::Inspect(probe)).await.ok()?;
        reply_rx.await.ok()
    }

    /// The receiver of everything actors send to ids with no actor, as
    /// `(src, dst, msg)`. One receiver per run: `None` once taken.
    ///
    /// Unbounded, so an actor never waits on it and nothing in it is dropped: a dropped
    /// `SendResult` would leave a client waiting forever for an outcome the producer already
    /// decided. What it holds is bounded by what the application asked for (one outcome per
    /// record sent, the records it reads), or by the transport's own queues when it carries
    /// messages to actors in other processes. Drain it, or drop it.
    pub fn outbox(&self) -> Option<mpsc::UnboundedReceiver<OutboxMsg<A::Msg>>> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Drains the trace recorded so far; `None` if tracing is off.
    pub fn take_trace(&self) -> Option<ActorTraceLog<A>> {
        self.tracer.as_ref().map(|tracer| tracer.take())
    }

    /// Stops every actor and delayed message, and waits until they are gone.
    /// Idempotent; afterwards sends are dropped and `restart` fails.
    pub async fn shutdown(&self) {
        self.shutdown_tx.send_replace(true);
        for (index, lifecycle) in self.lifecycle.iter().enumerate() {
            if let Some(old) = lifecycle.lock().await.take() {
                reap(Id::from(index), old.handle).await;
            }
        }
        self.router.drain_in_flight().await;
    }
}

/// One running incarnation of an actor: its task, and the signal that its `on_start` ran and
/// its messages left (taken by the first crash, which waits for it).
struct Incarnation {
    handle: JoinHandle<()>,
    started: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Waits for an actor task to end, reporting a panic (a cancelled task is the
/// expected end of a crash).
async fn reap(id: Id, handle: JoinHandle<()>) {
    if let Err(error) = handle.await {
        if error.is_panic() {
            tracing::error!(actor = ?id, "actor task panicked: {error}");
        }
    }
}

impl<A: Actor> Drop for Runtime<A> {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
    }
}

impl<A: Actor> Debug for Runtime<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("actors", &self.actors.len())
            .field("seed", &self.seed)
            .field("shut_down", &*self.shutdown_rx.borrow())
            .finish_non_exhaustive()
    }
}
