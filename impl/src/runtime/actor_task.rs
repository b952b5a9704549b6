//! One tokio task per live actor: owns the actor's state, timers and RNG, and
//! turns its pure handlers' commands into effects.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hash;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::actor::{Actor, Command, Id, Out};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::network::Router;
use super::storage::{StorageBackend, StorageError};
use super::timers::Timers;
use super::trace::{TraceKind, Tracer};

/// Capacity of each actor's mailbox: a full mailbox makes external senders wait
/// (`Runtime::send_from`) and drops actor-to-actor messages, instead of growing
/// memory. Actors never wait: two actors blocked on each other's full mailbox
/// would deadlock; an overloaded real network drops too.
pub const MAILBOX_CAPACITY: usize = 1_024;

/// A closure run on an actor's state between steps (for `Runtime::inspect`).
pub(crate) type Probe<S> = Box<dyn FnOnce(&S) + Send>;

/// What an actor's mailbox carries.
pub(crate) enum Mail<A: Actor> {
    Deliver {
        src: Id,
        msg: A::Msg,
        /// Held by a message from outside the actors until the actor takes it, so outside
        /// traffic never occupies more than half the mailbox.
        _external: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// Runs between steps on the current state (for `Runtime::inspect`).
    Inspect(Probe<A::State>),
}

pub(crate) type ActorTracer<A> =
    Tracer<<A as Actor>::Msg, <A as Actor>::Timer, <A as Actor>::Random>;

/// Everything a task needs to run one incarnation of an actor.
pub(crate) struct TaskSetup<A: Actor> {
    pub(crate) id: Id,
    pub(crate) incarnation: u64,
    pub(crate) restarted: bool,
    pub(crate) actor: Arc<A>,
    pub(crate) storage: Option<A::Storage>,
    pub(crate) mailbox: mpsc::Receiver<Mail<A>>,
    pub(crate) backend: Arc<dyn StorageBackend<A::Storage>>,
    pub(crate) router: Arc<Router<A>>,
    pub(crate) tracer: Option<Arc<ActorTracer<A>>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) rng_seed: u64,
    /// Told once `on_start` ran and its messages left (dropped if it never does).
    pub(crate) started: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The actor stopped (its save failed); its step's messages did not leave.
struct Crashed;

/// Stops routing to the mailbox however the task ends: normal exit, abort
/// (`Runtime::crash`), or a panicking handler.
struct DetachOnDrop<A>
where
    A: Actor + Send + Sync + 'static,
    A::Msg: Send + Sync + 'static,
    A::State: Send + 'static,
{
    router: Arc<Router<A>>,
    index: usize,
    incarnation: u64,
}

impl<A> Drop for DetachOnDrop<A>
where
    A: Actor + Send + Sync + 'static,
    A::Msg: Send + Sync + 'static,
    A::State: Send + 'static,
{
    fn drop(&mut self) {
        self.router.detach(self.index, self.incarnation);
    }
}

struct ActorTask<A: Actor> {
    id: Id,
    actor: Arc<A>,
    backend: Arc<dyn StorageBackend<A::Storage>>,
    router: Arc<Router<A>>,
    tracer: Option<Arc<ActorTracer<A>>>,
    rng: StdRng,
    timers: Timers<A::Timer>,
    /// `ChooseRandom` requests not answered yet, oldest first, one per key.
    randoms: VecDeque<(String, Vec<A::Random>)>,
}

enum Event<A: Actor> {
    Mail(Mail<A>),
    Timer(A::Timer),
    Random,
}

/// Runs one incarnation of an actor until shutdown, a failed save, or abort.
pub(crate) async fn run<A>(setup: TaskSetup<A>)
where
    A: Actor + Send + Sync + 'static,
    A::Msg: Clone + Send + Sync + 'static + Debug,
    A::State: Send + 'static,
    A::Timer: Clone + Eq + Hash + Send + Sync + 'static,
    A::Storage: Clone + Send + Sync + 'static,
    A::Random: Clone + Send + 'static,
{
    let TaskSetup {
        id,
        incarnation,
        restarted,
        actor,
        storage,
        mut mailbox,
        backend,
        router,
        tracer,
        mut shutdown,
        rng_seed,
        mut started,
    } = setup;
    let _detach = DetachOnDrop {
        router: Arc::clone(&router),
        index: usize::from(id),
        incarnation,
    };
    // A receiver subscribed after the signal would never see it change.
    if *shutdown.borrow() {
        return;
    }
    let mut task = ActorTask {
        id,
        actor,
        backend,
        router,
        tracer,
        rng: StdRng::seed_from_u64(rng_seed),
        timers: Timers::new(),
        randoms: VecDeque::new(),
    };
    if restarted {
        task.trace(TraceKind::Restarted);
    }
    let mut out = Out::new();
    let mut state = task.actor.on_start(id, &storage, &mut out);
    drop(storage);
    if task.apply(out).await.is_err() {
        return;
    }
    if let Some(started) = started.take() {
        let _ = started.send(());
    }
    loop {
        let event = tokio::select! {
            // Err: the runtime is gone without signalling; stop as well.
            _ = shutdown.changed() => return,
            mail = mailbox.recv() => match mail {
                Some(mail) => Event::Mail(mail),
                None => return,
            },
            timer = task.timers.next_fired() => Event::Timer(timer),
            _ = std::future::ready(()), if !task.randoms.is_empty() => Event::Random,
        };
        let stepped = match event {
            Event::Mail(Mail::Inspect(probe)) => {
                probe(&state);
                (state, Out::new())
            }
            Event::Mail(Mail::Deliver { src, msg, .. }) => {
                if task.tracer.is_some() {
                    task.trace(TraceKind::Delivered {
                        src,
                        msg: msg.clone(),
                    });
                }
                task.step(state, |actor, id, state, out| {
                    actor.on_msg(id, state, src, msg, out)
                })
            }
            Event::Timer(timer) => {
                if task.tracer.is_some() {
                    task.trace(TraceKind::TimerFired {
                        timer: timer.clone(),
                    });
                }
                task.step(state, |actor, id, state, out| {
                    actor.on_timeout(id, state, &timer, out)
                })
            }
            Event::Random => {
                let (key, choices) = task
                    .randoms
                    .pop_front()
                    .expect("the random branch runs only when a choice is pending");
                let random = choices[task.rng.gen_range(0..choices.len())].clone();
                if task.tracer.is_some() {
                    task.trace(TraceKind::RandomChosen {
                        key,
                        random: random.clone(),
                    });
                }
                task.step(state, |actor, id, state, out| {
                    actor.on_random(id, state, &random, out)
                })
            }
        };
        let (next, out) = stepped;
        // The step's handler and its borrows are done with before the save is awaited.
        if task.apply(out).await.is_err() {
            return;
        }
        state = next;
    }
}

impl<A> ActorTask<A>
where
    A: Actor + Send + Sync + 'static,
    A::Msg: Clone + Send + Sync + 'static + Debug,
    A::State: Send + 'static,
    A::Timer: Clone + Eq + Hash + Send + Sync + 'static,
    A::Storage: Clone + Send + Sync + 'static,
    A::Random: Clone + Send + 'static,
{
    fn trace(&self, kind: TraceKind<A::Msg, A::Timer, A::Random>) {
        if let Some(tracer) = &self.tracer {
            tracer.record(self.id, kind);
        }
    }

    /// Runs one handler on the owned state (no clone: `Cow::Owned` in,
    /// `into_owned` out) and applies its commands. `None` if the actor crashed.
    fn step(
        &mut self,
        state: A::State,
        handler: impl FnOnce(&A, Id, &mut Cow<'_, A::State>, &mut Out<A>),
    ) -> (A::State, Out<A>) {
        let mut cow = Cow::Owned(state);
        let mut out = Out::new();
        handler(&self.actor, self.id, &mut cow, &mut out);
        (cow.into_owned(), out)
    }

    /// Write-ahead: the step's storage is durable before any of its messages
    /// leave; if saving fails, none leave and the actor is crashed.
    async fn apply(&mut self, out: Out<A>) -> Result<(), Crashed> {
        let commands: Vec<_> = out.into_iter().collect();
        // Only the last save of a step matters: each replaces the whole storage.
        let last_save = commands.iter().rev().find_map(|c| match c {
            Command::Save(storage) => Some(storage),
            _ => None,
        });
        if let Some(storage) = last_save {
            let backend = Arc::clone(&self.backend);
            if let Err(error) = save(backend, self.id, storage).await {
                tracing::error!(
                    actor = ?self.id,
                    %error,
                    "saving storage failed; crashing the actor before its messages leave"
                );
                self.trace(TraceKind::SaveFailed);
                return Err(Crashed);
            }
        }
        for command in commands {
            match command {
                Command::Send(dst, msg) => {
                    // Never waits: see `MAILBOX_CAPACITY`.
                    self.router.route_nowait(self.id, dst, msg);
                }
                // Stateright's semantics: the armed timers are a set, so setting an armed
                // timer changes nothing (its deadline stands). An actor that wants a fresh
                // deadline cancels the timer first, in the same step.
                Command::SetTimer(timer, range) => {
                    if !self.timers.is_armed(&timer) {
                        let after = self.draw(range);
                        self.timers.set(timer, Instant::now() + after);
                    }
                }
                Command::CancelTimer(timer) => self.timers.cancel(&timer),
                Command::ChooseRandom(key, choices) => {
                    self.randoms.retain(|(pending, _)| *pending != key);
                    if !choices.is_empty() {
                        self.randoms.push_back((key, choices));
                    }
                }
                Command::Save(_) => {}
            }
        }
        Ok(())
    }

    /// A duration uniform in `range` from the actor's seeded RNG; an empty range
    /// means exactly `range.start` (avoids `gen_range`'s panic).
    fn draw(&mut self, range: Range<Duration>) -> Duration {
        if range.start < range.end {
            self.rng.gen_range(range)
        } else {
            range.start
        }
    }
}

/// Saves `storage`: on a blocking thread when the backend blocks (the actor's task waits for
/// it, but the async workers go on with other actors), else right here.
async fn save<S: Clone + Send + Sync + 'static>(
    backend: Arc<dyn StorageBackend<S>>,
    id: Id,
    storage: &S,
) -> Result<(), StorageError> {
    if !backend.is_blocking() {
        return backend.save(id, storage);
    }
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || backend.save(id, &storage))
        .await
        .unwrap_or_else(|e| Err(StorageError::new(format!("the save did not finish: {e}"))))
}
