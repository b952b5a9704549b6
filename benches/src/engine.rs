//! The real engine under load: the configurations the issue names, a started cluster with a
//! consumer reading along (the cluster's own stream of reads), and the [`Client`] glue.

use crate::client::{index_of, Client};
use insync::engine::{Cluster, EngineOptions, SendTicket};
use insync_model::config::Acks;
use insync_model::producer::Outcome;
use insync_model::types::Value;
use insync_model::{Config, ValidConfig};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A replication setting, with everything else at `insync run`'s defaults (min.insync 2 or
/// the replica count if lower, retries 1, max.in.flight 1, flush always, leader-epoch
/// truncation, a consumer committing after processing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub replicas: usize,
    pub acks: Acks,
    pub idempotence: bool,
    pub max_in_flight: usize,
}

impl Setup {
    /// One replica, leader acknowledgement: the engine's own ceiling.
    pub const RF1_ACKS1: Setup = Setup::new(1, Acks::One, false);
    pub const RF3_ACKS1: Setup = Setup::new(3, Acks::One, false);
    pub const RF3_ACKS_ALL: Setup = Setup::new(3, Acks::All, false);
    pub const RF3_ACKS_ALL_IDEMPOTENT: Setup = Setup::new(3, Acks::All, true);

    /// The four settings of the issue, the ceiling first.
    pub const ALL: [Setup; 4] = [
        Setup::RF1_ACKS1,
        Setup::RF3_ACKS1,
        Setup::RF3_ACKS_ALL,
        Setup::RF3_ACKS_ALL_IDEMPOTENT,
    ];

    pub const fn new(replicas: usize, acks: Acks, idempotence: bool) -> Setup {
        Setup {
            replicas,
            acks,
            idempotence,
            max_in_flight: 1,
        }
    }

    pub const fn in_flight(self, max_in_flight: usize) -> Setup {
        Setup {
            max_in_flight,
            ..self
        }
    }

    /// `rf3-acksall-idem`, for benchmark ids.
    pub fn label(&self) -> String {
        let mut s = format!("rf{}-acks{}", self.replicas, self.acks);
        if self.idempotence {
            s.push_str("-idem");
        }
        if self.max_in_flight != 1 {
            s.push_str(&format!("-inflight{}", self.max_in_flight));
        }
        s
    }

    /// The `insync run` flags for this setting.
    pub fn flags(&self) -> String {
        let mut s = format!(
            "--replicas {} --min-insync {} --acks {}",
            self.replicas,
            self.replicas.min(2),
            self.acks
        );
        if self.idempotence {
            s.push_str(" --idempotence");
        }
        if self.max_in_flight != 1 {
            s.push_str(&format!(" --max-in-flight {}", self.max_in_flight));
        }
        s
    }

    pub fn config(&self) -> ValidConfig {
        Config {
            replicas: self.replicas,
            min_insync: self.replicas.min(2),
            acks: self.acks,
            idempotence: self.idempotence,
            max_in_flight: self.max_in_flight,
            records: 1,
            ..Config::default()
        }
        .validate()
        .expect("benchmark settings are valid")
    }
}

/// The engine's options with `batch_records` records per produce request; fetches stay at
/// the default (2,000 records), storage in memory unless `data_dir` is given.
pub fn options(batch_records: usize, data_dir: Option<std::path::PathBuf>) -> EngineOptions {
    EngineOptions {
        batch_records,
        data_dir,
        ..EngineOptions::default()
    }
}

/// A running cluster whose consumer reads along (the cluster's own stream of reads counts
/// every record, and keeps them only while read times are asked for).
pub struct Engine {
    pub cluster: Arc<Cluster>,
    /// Producers the cluster hosts; sends go round-robin over them.
    producers: usize,
    next_producer: AtomicU64,
}

impl Engine {
    /// Starts the cluster and waits until a record is acknowledged (a leader is elected and
    /// the producer knows it).
    pub async fn start(setup: Setup, options: EngineOptions) -> anyhow::Result<Engine> {
        let producers = options.producers.max(1);
        let cluster = Arc::new(Cluster::start(setup.config(), options).await?);
        cluster.keep_reads(false);
        let engine = Engine {
            cluster,
            producers,
            next_producer: AtomicU64::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resolved = engine
                .cluster
                .send(crate::client::record(u64::MAX, 0))
                .await
                .await;
            if matches!(resolved.outcome, Outcome::Acked(_)) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no record acknowledged within 30 s of starting ({:?})",
                resolved.outcome
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(engine)
    }

    /// Records read so far.
    pub fn read_count(&self) -> u64 {
        self.cluster.read_count()
    }

    /// Starts (or stops) noting when each record is read.
    pub fn keep_read_times(&self, on: bool) {
        self.cluster.keep_reads(on);
    }

    /// The `(index, when read)` pairs noted so far.
    pub fn take_read_times(&self) -> Vec<(u64, Instant)> {
        self.cluster
            .take_reads()
            .into_iter()
            .filter_map(|d| match &d.record.value {
                Value::Bytes(b) => index_of(b).map(|i| (i, d.at.into_std())),
                Value::Numbered(_) => None,
            })
            .collect()
    }

    /// Waits until `n` records were read in all, or `timeout` passes; whether they were.
    pub async fn wait_read(&self, n: u64, timeout: Duration) -> bool {
        self.cluster.wait_read(n, timeout).await
    }

    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
    }
}

/// The engine's ticket, as a [`Client`] ticket.
pub struct EngineTicket(SendTicket);

impl Future for EngineTicket {
    type Output = Option<Instant>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r.outcome {
            Outcome::Acked(_) => Some(r.at.into_std()),
            _ => None,
        })
    }
}

impl Client for Engine {
    type Ticket = EngineTicket;

    async fn send(&self, value: Vec<u8>) -> EngineTicket {
        if self.producers == 1 {
            return EngineTicket(self.cluster.send(value).await);
        }
        let p = self.next_producer.fetch_add(1, Ordering::Relaxed) as usize % self.producers;
        EngineTicket(self.cluster.send_via(p, value).await)
    }
}
