//! File-backed storage for a test cluster's brokers, with disk faults: what
//! [`crate::engine::ClusterBuilder::broker_disks`] gives a cluster, and the history runner's
//! `--disk-faults` uses.
//!
//! Each broker keeps its state in its own data directory under one temporary directory (on
//! `/dev/shm` when there is one: the faults are injected, the disk's speed is not what a
//! history tests), through its own [`DiskStorage`], as a broker process of `insync broker`
//! would: a storage that failed stops only its broker. A broker's start opens its directory
//! afresh, as a new process does, and recovers it; a crash drops its storage, so that the
//! runner can damage its files while it is down. The controller and the clients keep their
//! state in memory (they take no disk faults).
//!
//! By default the state file is rewritten at most every 5 s, as the engine's is
//! (`--checkpoint-interval-ms 5000`): after a crash, recovery cannot tell a final batch lost
//! or damaged since the last checkpoint from one never written, and reports everything past
//! the checkpoint as unverified (`crate::disk::Recovery::unverified_from`), which the checker
//! takes as the report of a lost fsync or a bit flip in that range. With interval zero the
//! state file is written at every save that changes it, so that it vouches for every batch the
//! segment fsynced: such a fault then refuses the start. The interval is measured on tokio's
//! clock, so on the history's paused clock it is 5 s of the history's own time, as the
//! engine's is on the real clock.
//!
//! Every load of a broker and every failed save is kept as a [`DiskEvent`] for the runner to
//! put in the history, where the checker matches each injected fault with what the storage
//! said next (`undetected-corruption`).

use crate::disk::faults::DiskFaults;
use crate::disk::{DiskError, DiskStorage, Identity, OpenMode, StorageNode};
use crate::history::DiskEvent;
use crate::runtime::{MemoryStorage, StorageBackend, StorageError};
use insync_model::node::NodeStorage;
use stateright::actor::Id;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The cluster id of the runner's data directories.
const CLUSTER_ID: &str = "insync-fuzz";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Storage for a cluster under test: files for brokers `0..brokers`, memory for the rest.
pub struct BrokerDisks {
    /// Removed with everything under it when the runner drops this.
    root: tempfile::TempDir,
    /// Per broker: its storage while it runs (`None` while it is down).
    open: Vec<Mutex<Option<DiskStorage>>>,
    faults: Vec<Arc<DiskFaults>>,
    memory: MemoryStorage<NodeStorage>,
    /// Loads and failed saves, in order, not yet taken by the runner.
    events: Mutex<Vec<(u8, DiskEvent)>>,
    /// How often a broker's state file is rewritten in the steady state.
    checkpoint_interval: Duration,
    salvage: bool,
}

impl BrokerDisks {
    /// Empty data directories for `brokers` brokers, whose state files are rewritten at most
    /// every `checkpoint_interval` in the steady state.
    /// With `salvage`, a damaged segment's intact prefix is kept
    /// ([`DiskStorage::with_salvage`]).
    pub fn new(
        brokers: usize,
        checkpoint_interval: Duration,
        salvage: bool,
    ) -> anyhow::Result<BrokerDisks> {
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("insync-disks-");
        let root = if shm.is_dir() {
            builder.tempdir_in(shm).or_else(|_| builder.tempdir())
        } else {
            builder.tempdir()
        }
        .map_err(|e| anyhow::anyhow!("creating the brokers' data directories: {e}"))?;
        // Formatted once, as `insync format` does before a broker's first start: a start then
        // opens its directory as `insync broker` does, and refuses one left without its
        // `meta.json` (an emptied directory is never taken for a new broker).
        for broker in 0..brokers {
            let dir = root.path().join(format!("broker-{broker}"));
            DiskStorage::format(&dir, &identity(broker as u8))
                .map_err(|e| anyhow::anyhow!("formatting broker {broker}'s data directory: {e}"))?;
        }
        Ok(BrokerDisks {
            root,
            open: (0..brokers).map(|_| Mutex::new(None)).collect(),
            faults: (0..brokers).map(|_| Arc::default()).collect(),
            memory: MemoryStorage::new(),
            events: Mutex::new(Vec::new()),
            checkpoint_interval,
            salvage,
        })
    }

    /// Broker `broker`'s data directory.
    pub fn dir(&self, broker: u8) -> PathBuf {
        self.root.path().join(format!("broker-{broker}"))
    }

    /// Broker `broker`'s fault switches.
    pub fn faults(&self, broker: u8) -> &DiskFaults {
        &self.faults[usize::from(broker)]
    }

    /// Drops a broker's storage (its process is gone): its files can be damaged now.
    pub fn close(&self, broker: u8) {
        if let Some(slot) = self.open.get(usize::from(broker)) {
            lock(slot).take();
        }
    }

    /// The events since the last call.
    pub fn take_events(&self) -> Vec<(u8, DiskEvent)> {
        std::mem::take(&mut lock(&self.events))
    }

    fn note(&self, broker: u8, event: DiskEvent) {
        lock(&self.events).push((broker, event));
    }

    fn broker_of(&self, id: Id) -> Option<u8> {
        let index = usize::from(id);
        (index < self.open.len()).then_some(index as u8)
    }

    fn open_storage(&self, broker: u8) -> Result<DiskStorage, DiskError> {
        Ok(
            DiskStorage::open(self.dir(broker), &identity(broker), OpenMode::Formatted)?
                .with_checkpoint_interval(self.checkpoint_interval)
                .with_salvage(self.salvage)
                .with_faults(Arc::clone(&self.faults[usize::from(broker)])),
        )
    }
}

fn identity(broker: u8) -> Identity {
    Identity::new(CLUSTER_ID, StorageNode::Broker(broker)).expect("a valid constant cluster id")
}

/// Files and fsyncs on the actor's own task (not [`StorageBackend::is_blocking`]): a run on
/// the paused clock stays deterministic, and a crash never interrupts a save half-way.
impl StorageBackend<NodeStorage> for BrokerDisks {
    fn save(&self, id: Id, storage: &NodeStorage) -> Result<(), StorageError> {
        let Some(broker) = self.broker_of(id) else {
            return self.memory.save(id, storage);
        };
        let mut slot = lock(&self.open[usize::from(broker)]);
        let Some(disk) = slot.as_ref() else {
            return Err(StorageError::new(format!(
                "broker {broker} saved while its storage was closed"
            )));
        };
        disk.save(usize::from(broker), storage).map_err(|e| {
            // Its storage has stopped for good: the broker stops with it.
            slot.take();
            self.note(
                broker,
                DiskEvent::WriteFailed {
                    reason: e.to_string(),
                },
            );
            StorageError::from(&e)
        })
    }

    fn load(&self, id: Id) -> Result<Option<NodeStorage>, StorageError> {
        let Some(broker) = self.broker_of(id) else {
            return self.memory.load(id);
        };
        let mut slot = lock(&self.open[usize::from(broker)]);
        // A start is a new process: drop whatever the last incarnation had open.
        slot.take();
        let refused = |e: DiskError| {
            self.note(
                broker,
                DiskEvent::Refused {
                    reason: e.to_string(),
                },
            );
            StorageError::from(&e)
        };
        let disk = self.open_storage(broker).map_err(refused)?;
        let loaded = disk.load(usize::from(broker)).map_err(refused)?;
        *slot = Some(disk);
        Ok(loaded.map(|(storage, recovery)| {
            self.note(
                broker,
                DiskEvent::Recovered {
                    truncated_bytes: recovery.truncated_bytes,
                    reason: recovery.reason,
                    unverified_from: recovery.unverified_from.map(|o| o.0),
                    damaged_from: recovery.damaged_from.map(|o| o.0),
                    log_end_offset: Some(recovery.records as u64),
                },
            );
            storage
        }))
    }
}
