//! Optional record of what each actor handled, in the order it handled it, so a
//! run can be replayed through the model afterwards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use stateright::actor::Id;
use tokio::time::Instant;

/// Default bound on recorded events: a trace must not become the memory leak of
/// a long run.
pub const MAX_TRACE_EVENTS: usize = 1_000_000;

/// What an actor handled (or suffered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceKind<M, T, R> {
    /// `on_msg` was called with this message.
    Delivered { src: Id, msg: M },
    /// `on_timeout` was called for this timer.
    TimerFired { timer: T },
    /// `on_random` was called with this choice (answering `ChooseRandom(key, ..)`).
    RandomChosen { key: String, random: R },
    /// The actor's volatile state and timers were dropped.
    Crashed,
    /// The save of the step just traced failed: none of that step's commands took effect (no
    /// message left, no timer was set, storage holds the save before), and the actor crashed
    /// as [`TraceKind::Crashed`] says.
    SaveFailed,
    /// `on_start` was called again with the storage last saved.
    Restarted,
}

/// One recorded event; `at` is measured from the runtime's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent<M, T, R> {
    pub at: Duration,
    pub actor: Id,
    pub kind: TraceKind<M, T, R>,
}

/// Events taken out of the recorder, plus how many did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLog<M, T, R> {
    pub events: Vec<TraceEvent<M, T, R>>,
    pub overflowed: u64,
}

pub(crate) struct Tracer<M, T, R> {
    start: Instant,
    capacity: usize,
    events: Mutex<Vec<TraceEvent<M, T, R>>>,
    overflowed: AtomicU64,
}

impl<M, T, R> Tracer<M, T, R> {
    pub(crate) fn new(start: Instant, capacity: usize) -> Self {
        Tracer {
            start,
            capacity,
            events: Mutex::new(Vec::new()),
            overflowed: AtomicU64::new(0),
        }
    }

    /// Records an event, or counts it as overflowed when the bound is reached.
    pub(crate) fn record(&self, actor: Id, kind: TraceKind<M, T, R>) {
        let at = self.start.elapsed();
        // A poisoned lock only means another recorder panicked mid-push; the
        // Vec itself is still valid.
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() < self.capacity {
            events.push(TraceEvent { at, actor, kind });
        } else {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drains the recorded events (freeing room for more) and the overflow count.
    pub(crate) fn take(&self) -> TraceLog<M, T, R> {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        TraceLog {
            events: std::mem::take(&mut *events),
            overflowed: self.overflowed.swap(0, Ordering::Relaxed),
        }
    }
}
