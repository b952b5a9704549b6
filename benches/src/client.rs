//! Load generators that work on anything with a send-and-await-acknowledgement API: the
//! engine's [`insync::engine::Cluster`] and the protocol-free relay of [`crate::ceiling`].
//! Both are driven by the same code, so their figures differ only by what is behind `send`.

use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something records can be sent through.
pub trait Client: Send + Sync + 'static {
    /// Resolves to the moment the sender learned its record was acknowledged, or `None` when
    /// it was not (failed, indeterminate, or the system went away).
    type Ticket: Future<Output = Option<Instant>> + Send + Unpin + 'static;

    /// Hands one record over; waits only while the system pushes back.
    fn send(&self, value: Vec<u8>) -> impl Future<Output = Self::Ticket> + Send;
}

/// A record of `size` bytes (at least [`insync::history::RECORD_BYTES_MIN`]) that carries
/// `index`, as `insync run` writes its records (of run 0), so a reader can tell which send it
/// came from.
pub fn record(index: u64, size: usize) -> Vec<u8> {
    insync::history::encode_value(index, 0, size)
}

/// The index [`record`] wrote.
pub fn index_of(bytes: &[u8]) -> Option<u64> {
    insync::history::decode_bytes(bytes, 0)
}

/// What a throughput run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Throughput {
    pub sent: u64,
    pub acked: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn records_per_second(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn megabytes_per_second(&self, size: usize) -> f64 {
        self.records_per_second() * size as f64 / 1e6
    }
}

/// How a closed-loop throughput run sends.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Concurrent sending tasks. Each is a client task of the one system under test (the
    /// engine hosts a single producer actor: several tasks share it).
    pub clients: usize,
    /// Unresolved sends allowed across all tasks (split evenly), as `insync run`'s window.
    pub window: usize,
    pub size: usize,
}

impl Load {
    pub fn new(clients: usize, size: usize) -> Load {
        Load {
            clients,
            window: 4096,
            size,
        }
    }
}

/// When a closed-loop run stops sending.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// After this many records in all.
    Records(u64),
    /// At this moment (every task stops sending; what is in flight is still awaited).
    Until(Instant),
}

/// Sends as fast as the system acknowledges, from `load.clients` spawned tasks (one task
/// too, so that one and several clients run on the same threads), until `limit`. The time
/// runs from the first send to the last acknowledgement.
pub async fn drive<C: Client>(
    client: &Arc<C>,
    limit: Limit,
    load: Load,
    next_index: &Arc<AtomicU64>,
) -> Throughput {
    let clients = load.clients.max(1) as u64;
    let window = (load.window / clients as usize).max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (count, until) = match limit {
            Limit::Records(n) => (n / clients + u64::from(k < n % clients), None),
            Limit::Until(t) => (u64::MAX, Some(t)),
        };
        let client = Arc::clone(client);
        let next = Arc::clone(next_index);
        let size = load.size;
        tasks.push(tokio::spawn(async move {
            let mut unresolved: VecDeque<C::Ticket> = VecDeque::with_capacity(window);
            let (mut sent, mut acked) = (0u64, 0u64);
            while sent < count {
                // Checking the clock every 64 records keeps its cost out of the figure.
                if sent % 64 == 0 && until.is_some_and(|t| Instant::now() >= t) {
                    break;
                }
                if unresolved.len() >= window {
                    let ticket = unresolved.pop_front().expect("window is not empty");
                    acked += u64::from(ticket.await.is_some());
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                unresolved.push_back(client.send(record(index, size)).await);
                sent += 1;
            }
            for ticket in unresolved {
                acked += u64::from(ticket.await.is_some());
            }
            (sent, acked)
        }));
    }
    let (mut sent, mut acked) = (0, 0);
    for task in tasks {
        let (s, a) = task.await.expect("a client task panicked");
        sent += s;
        acked += a;
    }
    Throughput {
        sent,
        acked,
        elapsed: start.elapsed(),
    }
}

/// A histogram of microseconds, 1 µs to 60 s, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records `to - from` in microseconds (at least 1).
pub fn record_between(h: &mut Histogram<u64>, from: Instant, to: Instant) {
    let us = to.saturating_duration_since(from).as_micros().max(1) as u64;
    h.saturating_record(us);
}

/// An open-loop run at a fixed offered rate.
#[derive(Clone, Copy, Debug)]
pub struct Paced {
    /// Records per second offered.
    pub rate: f64,
    /// Sent first and left out of the histograms.
    pub warmup: Duration,
    pub duration: Duration,
    pub size: usize,
}

/// What an open-loop run measured.
pub struct PacedRun {
    pub offered: f64,
    /// Records acknowledged per second over the measured part.
    pub achieved: f64,
    pub sent: u64,
    pub acked: u64,
    /// Send call to acknowledgement, measured records only.
    pub ack: Histogram<u64>,
    /// Scheduled send time to acknowledgement: includes any time the sender fell behind its
    /// schedule (corrects for coordinated omission).
    pub ack_from_schedule: Histogram<u64>,
    /// When each record's `send` was called, by index relative to the run's first index.
    pub sent_at: Vec<Instant>,
    /// Records sent during the warm-up (left out of every histogram).
    pub warm_records: u64,
    /// The first index this run encoded.
    pub first_index: u64,
    /// The furthest the sender fell behind its schedule.
    pub max_lag: Duration,
}

/// Offers `paced.rate` records per second from one task: every millisecond it sends what
/// the schedule says is due. Acknowledgements are awaited by a second task, so a slow one
/// never holds the sender back. Returns once every sent record is resolved.
pub async fn paced<C: Client>(
    client: &Arc<C>,
    paced: Paced,
    next_index: &Arc<AtomicU64>,
) -> PacedRun {
    let total = (paced.rate * (paced.warmup + paced.duration).as_secs_f64()) as u64;
    let warm = (paced.rate * paced.warmup.as_secs_f64()) as u64;
    let first_index = next_index.fetch_add(total, Ordering::Relaxed);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant, Instant, C::Ticket)>();
    let resolver = tokio::spawn(async move {
        let mut ack = histogram();
        let mut from_schedule = histogram();
        let mut acked = 0u64;
        let mut first_measured: Option<Instant> = None;
        let mut last_ack: Option<Instant> = None;
        while let Some((i, sent, scheduled, ticket)) = rx.recv().await {
            if let Some(when) = ticket.await {
                if i >= warm {
                    acked += 1;
                    record_between(&mut ack, sent, when);
                    record_between(&mut from_schedule, scheduled, when);
                    first_measured.get_or_insert(sent);
                    last_ack = Some(last_ack.map_or(when, |l| l.max(when)));
                }
            }
        }
        let span = match (first_measured, last_ack) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        (ack, from_schedule, acked, span)
    });
    let mut sent_at = Vec::with_capacity(total as usize);
    let mut max_lag = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * paced.rate) as u64).min(total);
        while sent < due {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / paced.rate);
            let now = Instant::now();
            max_lag = max_lag.max(now.saturating_duration_since(scheduled));
            let ticket = client.send(record(first_index + sent, paced.size)).await;
            sent_at.push(now);
            let _ = tx.send((sent, now, scheduled, ticket));
            sent += 1;
        }
    }
    drop(tx);
    let (ack, ack_from_schedule, acked, span) = resolver.await.expect("resolver panicked");
    PacedRun {
        offered: paced.rate,
        achieved: acked as f64 / span.as_secs_f64().max(1e-9),
        sent: total,
        acked,
        ack,
        ack_from_schedule,
        sent_at,
        warm_records: warm,
        first_index,
        max_lag,
    }
}
