//! An actor's armed timers, driven from inside its task (no task per timer).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Stale heap entries tolerated beyond the live ones before compacting, so a timer
/// re-set on every message (an election timeout) cannot grow the heap unboundedly.
const STALE_SLACK: usize = 64;

struct Entry<T> {
    deadline: Instant,
    generation: u64,
    timer: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Ties on the deadline go to the earlier-armed timer, keeping firing order
    /// deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.generation).cmp(&(other.deadline, other.generation))
    }
}

/// Timers armed by one actor. Every arming gets a fresh generation; a heap entry
/// whose generation is no longer the armed one is stale (cancelled or re-set)
/// and is discarded instead of fired.
pub(crate) struct Timers<T> {
    armed: HashMap<T, u64>,
    heap: BinaryHeap<Reverse<Entry<T>>>,
    next_generation: u64,
}

impl<T: Clone + Eq + Hash> Timers<T> {
    pub(crate) fn new() -> Self {
        Timers {
            armed: HashMap::new(),
            heap: BinaryHeap::new(),
            next_generation: 0,
        }
    }

    /// Arms `timer` for `deadline`, replacing any earlier arming of it.
    pub(crate) fn set(&mut self, timer: T, deadline: Instant) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.armed.insert(timer.clone(), generation);
        self.heap.push(Reverse(Entry {
            deadline,
            generation,
            timer,
        }));
        if self.heap.len() > 2 * self.armed.len() + STALE_SLACK {
            let armed = &self.armed;
            self.heap
                .retain(|Reverse(e)| armed.get(&e.timer) == Some(&e.generation));
        }
    }

    pub(crate) fn is_armed(&self, timer: &T) -> bool {
        self.armed.contains_key(timer)
    }

    pub(crate) fn cancel(&mut self, timer: &T) {
        self.armed.remove(timer);
    }

    #[cfg(test)]
    pub(crate) fn armed_len(&self) -> usize {
        self.armed.len()
    }

    fn is_current(&self, entry: &Entry<T>) -> bool {
        self.armed.get(&entry.timer) == Some(&entry.generation)
    }

    /// Waits for the next live timer to expire, disarms and returns it. Pending
    /// forever when nothing is armed. Cancel-safe: nothing live is consumed
    /// unless the future completes.
    pub(crate) async fn next_fired(&mut self) -> T {
        loop {
            let deadline = match self.heap.peek() {
                None => return std::future::pending().await,
                Some(Reverse(top)) if !self.is_current(top) => {
                    self.heap.pop();
                    continue;
                }
                Some(Reverse(top)) => top.deadline,
            };
            tokio::time::sleep_until(deadline).await;
            // The heap cannot change while this future is borrowed, so the top is
            // still the live entry seen above.
            let Reverse(top) = self
                .heap
                .pop()
                .expect("timer heap emptied while its owner was waiting");
            self.armed.remove(&top.timer);
            return top.timer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_in_deadline_order_and_skips_stale_entries() {
        let start = Instant::now();
        let mut timers = Timers::new();
        timers.set("a", start + Duration::from_millis(30));
        timers.set("b", start + Duration::from_millis(10));
        timers.set("c", start + Duration::from_millis(20));
        timers.set("b", start + Duration::from_millis(40)); // re-set: 10ms entry is stale
        timers.cancel(&"c");
        assert_eq!(timers.armed_len(), 2);
        assert_eq!(timers.next_fired().await, "a");
        assert_eq!(start.elapsed(), Duration::from_millis(30));
        assert_eq!(timers.next_fired().await, "b");
        assert_eq!(start.elapsed(), Duration::from_millis(40));
        assert_eq!(timers.armed_len(), 0);
        let nothing = tokio::time::timeout(Duration::from_secs(60), timers.next_fired()).await;
        assert!(nothing.is_err(), "no timer may fire once all are consumed");
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_resets_do_not_grow_the_heap() {
        let start = Instant::now();
        let mut timers = Timers::new();
        for i in 0..10_000u64 {
            timers.set("election", start + Duration::from_millis(1_000 + i));
        }
        assert!(
            timers.heap.len() <= 2 + STALE_SLACK + 1,
            "{}",
            timers.heap.len()
        );
        assert_eq!(timers.next_fired().await, "election");
        assert_eq!(start.elapsed(), Duration::from_millis(10_999));
    }
}
