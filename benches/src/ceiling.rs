//! The physical ceiling for the engine's work on this machine: the same records moved
//! through the same channels with no protocol, and the disk's own append+fsync rate.
//!
//! - [`channel`]: one tokio task hands records to another over a bounded channel of the
//!   runtime's mailbox size. The cost of one message per record and nothing else.
//! - [`Relay`]: trivial actors hosted by insync's own runtime (`insync::runtime`), wired like
//!   the engine's message path: the application hands each record to a producer actor, which
//!   batches them to a leader actor with one request in flight; the leader forwards each
//!   batch to its followers and answers once they (or, for acks=1, it alone) have it; the
//!   producer tells the application through the outbox, and the application resolves one
//!   waiter per record as the engine's client API does. Once every replica has a batch the
//!   leader hands it to a consumer actor, which delivers it to the application, where a
//!   reader task takes it, as the engine's consumer and `poll` do. No logs, offsets, epochs,
//!   ISR, fetch requests, storage or timers: what remains is the runtime, the mailboxes and
//!   the client API.
//! - [`disk`]: framed batches appended to a file, each followed by `fdatasync`, as the
//!   segment files are written.

use crate::client::Client;
use insync::runtime::{MemoryStorage, Route, Runtime, RuntimeConfig};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Moves `n` records of `size` bytes from one task to another through a bounded channel of
/// the runtime's mailbox capacity; each record is allocated and copied into an `Arc<[u8]>`
/// as the engine's `send` does. Returns the elapsed time.
pub async fn channel(n: u64, size: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<[u8]>>(insync::runtime::MAILBOX_CAPACITY);
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut bytes = 0usize;
        while let Some(r) = rx.recv().await {
            bytes += r.len();
        }
        bytes
    });
    let sender = tokio::spawn(async move {
        for i in 0..n {
            let record: Arc<[u8]> = crate::client::record(i, size).into();
            if tx.send(record).await.is_err() {
                break;
            }
        }
    });
    sender.await.expect("sender panicked");
    let bytes = receiver.await.expect("receiver panicked");
    std::hint::black_box(bytes);
    start.elapsed()
}

/// A batch of records, shared as the engine shares its payloads.
pub type Records = Arc<[Arc<[u8]>]>;

/// Messages of the protocol-free relay.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RelayMsg {
    /// Application to producer: one record.
    Record(Arc<[u8]>),
    /// Producer to leader, leader to followers and to the consumer: a batch, by the index of
    /// its first record.
    Batch(u64, Records),
    /// Follower to leader, and leader to producer: the batch starting at this index is held.
    Ack(u64),
    /// Producer to application: records `first..first + count` are acknowledged.
    Done { first: u64, count: u64 },
    /// Consumer to application: records to hand over.
    Delivered(Records),
}

/// An actor of the relay.
#[derive(Clone, Debug)]
pub enum Relay {
    Producer {
        leader: Id,
        application: Id,
        batch_records: usize,
    },
    Leader {
        followers: Vec<Id>,
        consumer: Id,
        /// Answer only once every follower has the batch (acks=all), or at once (acks=1).
        wait_for_followers: bool,
    },
    Follower,
    Consumer {
        application: Id,
    },
}

/// A batch the leader waits on: first index, follower answers missing, the records (for the
/// consumer once every replica has them), and the producer still owed an answer.
type Replicating = (u64, usize, Records, Option<Id>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RelayState {
    Producer {
        queued: Vec<Arc<[u8]>>,
        /// Index of the first queued record.
        next: u64,
        /// The batch awaiting its answer: first index, count.
        in_flight: Option<(u64, u64)>,
    },
    Leader {
        replicating: Vec<Replicating>,
    },
    Stateless,
}

impl Actor for Relay {
    type Msg = RelayMsg;
    type State = RelayState;
    type Timer = ();
    type Storage = ();
    type Random = ();

    fn on_start(&self, _id: Id, _storage: &Option<()>, _o: &mut Out<Self>) -> RelayState {
        match self {
            Relay::Producer { .. } => RelayState::Producer {
                queued: Vec::new(),
                next: 0,
                in_flight: None,
            },
            Relay::Leader { .. } => RelayState::Leader {
                replicating: Vec::new(),
            },
            Relay::Follower | Relay::Consumer { .. } => RelayState::Stateless,
        }
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<RelayState>,
        src: Id,
        msg: RelayMsg,
        o: &mut Out<Self>,
    ) {
        match (self, msg) {
            (
                Relay::Producer {
                    leader,
                    application,
                    batch_records,
                },
                msg,
            ) => {
                let RelayState::Producer {
                    queued,
                    next,
                    in_flight,
                } = state.to_mut()
                else {
                    return;
                };
                match msg {
                    RelayMsg::Record(r) => queued.push(r),
                    RelayMsg::Ack(first) => {
                        if let Some((f, count)) = in_flight.take() {
                            debug_assert_eq!(f, first);
                            o.send(*application, RelayMsg::Done { first, count });
                        }
                    }
                    _ => {}
                }
                if in_flight.is_none() && !queued.is_empty() {
                    let take = queued.len().min(*batch_records);
                    let batch: Records = queued.drain(..take).collect();
                    o.send(*leader, RelayMsg::Batch(*next, batch));
                    *in_flight = Some((*next, take as u64));
                    *next += take as u64;
                }
            }
            (
                Relay::Leader {
                    followers,
                    consumer,
                    wait_for_followers,
                },
                msg,
            ) => {
                let RelayState::Leader { replicating } = state.to_mut() else {
                    return;
                };
                match msg {
                    RelayMsg::Batch(first, batch) => {
                        for f in followers {
                            o.send(*f, RelayMsg::Batch(first, Arc::clone(&batch)));
                        }
                        if followers.is_empty() {
                            o.send(*consumer, RelayMsg::Batch(first, batch));
                            o.send(src, RelayMsg::Ack(first));
                        } else if *wait_for_followers {
                            replicating.push((first, followers.len(), batch, Some(src)));
                        } else {
                            o.send(src, RelayMsg::Ack(first));
                            replicating.push((first, followers.len(), batch, None));
                        }
                    }
                    RelayMsg::Ack(first) => {
                        let Some(at) = replicating.iter().position(|r| r.0 == first) else {
                            return;
                        };
                        replicating[at].1 -= 1;
                        if replicating[at].1 == 0 {
                            let (first, _, batch, producer) = replicating.remove(at);
                            o.send(*consumer, RelayMsg::Batch(first, batch));
                            if let Some(p) = producer {
                                o.send(p, RelayMsg::Ack(first));
                            }
                        }
                    }
                    _ => {}
                }
            }
            (Relay::Follower, RelayMsg::Batch(first, _)) => o.send(src, RelayMsg::Ack(first)),
            (Relay::Consumer { application }, RelayMsg::Batch(_, batch)) => {
                o.send(*application, RelayMsg::Delivered(batch))
            }
            _ => {}
        }
    }
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Instant>>>>;

/// Records the consumer handed over, waiting for the reader (as the engine's client keeps
/// them until `poll`).
#[derive(Default)]
struct Delivered {
    records: Mutex<Vec<Arc<[u8]>>>,
    arrived: tokio::sync::Notify,
    read: std::sync::atomic::AtomicU64,
}

/// The relay running on insync's runtime, with a client API shaped like the engine's and a
/// task that reads what the consumer delivers.
pub struct RelayCluster {
    runtime: Runtime<Relay>,
    producer: Id,
    application: Id,
    next_index: Mutex<u64>,
    pending: Waiters,
    delivered: Arc<Delivered>,
    reader: tokio::task::JoinHandle<()>,
}

impl RelayCluster {
    /// Producer, leader, `replicas - 1` followers and a consumer. `wait_for_followers` is
    /// acks=all. Must be called inside a tokio runtime.
    pub fn start(
        replicas: usize,
        wait_for_followers: bool,
        batch_records: usize,
    ) -> anyhow::Result<RelayCluster> {
        let producer = Id::from(0);
        let leader = Id::from(1);
        let followers: Vec<Id> = (0..replicas.saturating_sub(1))
            .map(|i| Id::from(2 + i))
            .collect();
        let consumer = Id::from(2 + followers.len());
        let application = Id::from(3 + followers.len());
        let mut actors = vec![
            Relay::Producer {
                leader,
                application,
                batch_records: batch_records.max(1),
            },
            Relay::Leader {
                followers: followers.clone(),
                consumer,
                wait_for_followers,
            },
        ];
        actors.extend(followers.iter().map(|_| Relay::Follower));
        actors.push(Relay::Consumer { application });
        let runtime = Runtime::start(
            actors,
            Arc::new(MemoryStorage::<()>::new()),
            RuntimeConfig::with_seed(0),
        )
        .map_err(|e| anyhow::anyhow!("starting the relay: {e}"))?;
        let mut outbox = runtime
            .outbox()
            .ok_or_else(|| anyhow::anyhow!("the relay's outbox was already taken"))?;
        let pending: Waiters = Arc::new(Mutex::new(HashMap::new()));
        let delivered = Arc::new(Delivered::default());
        let waiters = Arc::clone(&pending);
        let for_app = Arc::clone(&delivered);
        tokio::spawn(async move {
            while let Some((_src, _dst, msg)) = outbox.recv().await {
                match msg {
                    RelayMsg::Done { first, count } => {
                        let now = Instant::now();
                        let mut waiters = waiters.lock().expect("waiters lock");
                        for i in first..first + count {
                            if let Some(w) = waiters.remove(&i) {
                                let _ = w.send(now);
                            }
                        }
                    }
                    RelayMsg::Delivered(batch) => {
                        for_app
                            .records
                            .lock()
                            .expect("delivered lock")
                            .extend(batch.iter().cloned());
                        for_app.arrived.notify_one();
                    }
                    _ => {}
                }
            }
        });
        let for_reader = Arc::clone(&delivered);
        let reader = tokio::spawn(async move {
            loop {
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), for_reader.arrived.notified())
                        .await;
                let records =
                    std::mem::take(&mut *for_reader.records.lock().expect("delivered lock"));
                for_reader
                    .read
                    .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Ok(RelayCluster {
            runtime,
            producer,
            application,
            next_index: Mutex::new(0),
            pending,
            delivered,
            reader,
        })
    }

    /// Records the reader took from the consumer so far.
    pub fn read_count(&self) -> u64 {
        self.delivered
            .read
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn shutdown(&self) {
        self.reader.abort();
        self.runtime.shutdown().await;
    }
}

/// The relay's receiver, as a [`Client`] ticket.
pub struct RelayTicket(oneshot::Receiver<Instant>);

impl Future for RelayTicket {
    type Output = Option<Instant>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

impl Client for RelayCluster {
    type Ticket = RelayTicket;

    async fn send(&self, value: Vec<u8>) -> RelayTicket {
        let (tx, rx) = oneshot::channel();
        // As the engine's client API does: a waiter per record, by index, then the record.
        {
            let mut next = self.next_index.lock().expect("index lock");
            self.pending.lock().expect("pending lock").insert(*next, tx);
            *next += 1;
        }
        // The ceiling injects no faults and never crashes its producer: only a shutdown drops
        // the record.
        let _ = self
            .runtime
            .send_from(
                self.application,
                self.producer,
                RelayMsg::Record(value.into()),
                Route::Direct,
            )
            .await;
        RelayTicket(rx)
    }
}

/// What [`disk`] measured.
#[derive(Clone, Copy, Debug)]
pub struct DiskRate {
    /// Appends (each one write and one fdatasync) per second, over all writers.
    pub appends_per_second: f64,
    pub records_per_second: f64,
    pub megabytes_per_second: f64,
}

/// Appends frames of `batch_records` records of `size` bytes (`[length][crc32][payload]`,
/// as the segment files hold them) to `writers` files in `dir` concurrently, one thread per
/// file, each append followed by `fdatasync`, for `duration`.
pub fn disk(
    dir: &Path,
    writers: usize,
    batch_records: usize,
    size: usize,
    duration: Duration,
) -> std::io::Result<DiskRate> {
    let payload = vec![0xa5u8; batch_records * size];
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    let frame = Arc::new(frame);
    let start = Instant::now();
    let threads: Vec<_> = (0..writers.max(1))
        .map(|w| {
            let path = dir.join(format!("ceiling-{w}.log"));
            let frame = Arc::clone(&frame);
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let mut appends = 0u64;
                while start.elapsed() < duration {
                    file.write_all(&frame)?;
                    file.sync_data()?;
                    appends += 1;
                }
                drop(file);
                std::fs::remove_file(&path)?;
                Ok(appends)
            })
        })
        .collect();
    let mut appends = 0;
    for t in threads {
        appends += t.join().expect("disk writer panicked")?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let per_second = appends as f64 / seconds;
    Ok(DiskRate {
        appends_per_second: per_second,
        records_per_second: per_second * batch_records as f64,
        megabytes_per_second: per_second * (batch_records * size) as f64 / 1e6,
    })
}

/// Where file-backed figures write: `INSYNC_BENCH_DATA_DIR`, else the system's temp dir.
pub fn data_root() -> std::path::PathBuf {
    std::env::var_os("INSYNC_BENCH_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}
