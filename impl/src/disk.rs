//! File-backed storage for the actors' `save`d state (`--data-dir`).
//!
//! # Layout
//!
//! A data directory belongs to one node of one cluster. `insync format` (or `insync run`, for
//! an empty directory) writes its identity to `meta.json` (layout version, cluster id, node),
//! and every process that opens the directory holds an exclusive `flock` on `.lock` for its
//! lifetime, so two processes never write the same files. A directory that is unformatted,
//! formatted for another cluster or node, or locked, is refused.
//!
//! A broker's log lives in an append-only segment file (`actor-N.log`) of record batches, each
//! framed as `[length u32][crc32 u32][payload]`. A save writes only what changed since the
//! last one: the appended records as batches, after truncating the file back to the last batch
//! boundary the log still shares (a follower's truncation). A save that wrote or cut the
//! segment ends with its fsync: the broker saves only when its flush policy says the data is
//! on disk.
//!
//! Small state (the high-watermark checkpoint, incarnations, how many records the segment
//! held at the checkpoint, a consumer's offsets) is written to a side file (`actor-N.state`)
//! atomically: write, fsync, rename, fsync the directory.
//!
//! # Checkpoints
//!
//! A broker's state file is rewritten only when it must be: at its first save, before a
//! truncation cuts the segment (the file then vouches for no more than stays), when the
//! incarnation changes (a restart: the new incarnation is durable before the broker
//! registers with it), and otherwise at most every [`HW_CHECKPOINT_INTERVAL`] (Kafka's
//! `replica.high.watermark.checkpoint.interval.ms`). So the steady state costs one fsync per
//! append. What the file holds is then a lower bound: a recovered high watermark may be
//! older (Kafka's is too; the broker learns the current one from the leader or the ISR), and
//! the "segment holds fewer records than recorded" check covers the records up to the last
//! checkpoint, not the last save. A batch saved after the checkpoint that the disk then lost
//! (an fsync that lied) or damaged (its final batch, cut as torn) cannot be told from one
//! never written. So after an unclean shutdown recovery vouches only for what the checkpoint
//! recorded, and reports everything after it as unverified ([`Recovery::unverified_from`], a
//! WARN line with the file, offset and byte): the fault is reported, not silent, and the broker
//! restarts as a new incarnation after an unclean shutdown. With `--elr` (KIP-966) the
//! controller takes it out of the ISR and the ELR, so it leads again only after catching up;
//! without, as in Kafka before KIP-966, the last ISR member may come back without what it
//! lost and lead (`insync fuzz --disk-faults` names that loss; `checks/tests/disk_faults.rs`).
//!
//! A state file vouches for every save when it is written at every save (interval zero, two
//! more fsyncs and a rename per save) or by a clean shutdown ([`DiskStorage::close_cleanly`],
//! Kafka's clean-shutdown marker): recovery then refuses a segment shorter than it. The first
//! save after loading such a file rewrites it, since it no longer vouches once outrun.
//! Checksums still catch every damaged batch before the last one. `meta.json` also lists the
//! actors that have saved here, so that a missing state file or segment is seen as the loss it
//! is, never mistaken for a first start; it carries a CRC-32 of its fields.
//!
//! # Recovery
//!
//! Only a torn tail, the unfinished end of a save interrupted before its fsync (a short final
//! batch, a final batch failing its checksum, or zero bytes the file system allocated but never
//! filled), is cut, with a warning. Anything else is corruption, reported with the file and
//! byte offset, which refuses the start or (with `--elr`) is salvaged, see below: a bad length, a checksum mismatch with more data after it, a batch
//! that passes its checksum but does not decode, starts at the wrong offset or lowers the
//! leader epoch, and a segment that holds fewer records than its state file recorded at the
//! last save (or than its high-watermark checkpoint). Nothing read from disk reaches the model
//! unchecked, so no on-disk bytes can make it panic.
//!
//! What happens next depends on the controller's rules. With KIP-966 (`--elr`) the storage
//! salvages ([`DiskStorage::with_salvage`]): it keeps the records before the first damaged
//! batch (a missing segment keeps none), cuts the rest from the file, reports the offset from
//! which on it dropped records ([`Recovery::damaged_from`], ERROR with file, offset and byte),
//! and the broker restarts with the shorter log as a new incarnation after an unclean
//! shutdown: the controller takes it out of the ISR and the ELR, so it leads again only after
//! fetching what it lost. That is the branch the checker explores for every restart under
//! `--elr`, where with `--flush async` a restart comes back with any prefix of its log (the
//! matrix row `async-flush-elr` holds). Without KIP-966 the protocol has no way to say "this
//! broker lost records": the controller keeps a restarted broker that is the last ISR member
//! in the ISR, and it would lead without them. So there the engine fail-stops on damaged
//! storage (the start is refused; the operator restores the directory). A damaged state file
//! or `meta.json`, or a missing one, is refused in both: the broker's incarnation and identity
//! are gone with it.
//!
//! # Failures
//!
//! A failed write or fsync is not retried: after a failed fsync the page cache cannot be
//! trusted to reach the disk. The storage refuses every later save and load, and reports the
//! failure on [`DiskStorage::failures`], which the engine turns into the process's exit.
//!
//! # Injected faults
//!
//! [`faults`] damages a stopped node's files the way disks and file systems do (torn writes,
//! lost fsyncs, bit flips, missing files) and fills a running node's disk (ENOSPC), for the
//! generated histories (`insync fuzz --disk-faults`) and the tests. Production never sets
//! [`DiskStorage::with_faults`].

pub mod brokers;
pub mod faults;

use insync_model::broker::BrokerStorage;
use insync_model::log::Log;
use insync_model::node::NodeStorage;
use insync_model::types::{BrokerEpoch, Epoch, Offset, Record};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
/// tokio's clock, so that on a paused clock (`insync run --virtual-clock`, the fuzzer's
/// histories) the periodic checkpoint fires every `checkpoint_interval` of that clock's time,
/// as it does on the real clock; outside a runtime it is the system's monotonic clock.
use tokio::time::Instant;

/// Largest batch a segment may hold: a longer length field is corruption, not a batch.
pub const BATCH_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// A save's records are split into batches of about this many bytes.
const BATCH_BYTES_TARGET: u64 = 8 * 1024 * 1024;
const FRAME_HEADER_BYTES: u64 = 8;
/// The identity file `insync format` writes.
pub const META_FILE: &str = "meta.json";
/// The file every process using the directory holds an exclusive `flock` on.
pub const LOCK_FILE: &str = ".lock";
/// The layout `meta.json` describes; another version is refused.
pub const LAYOUT_VERSION: u32 = 1;
/// Longest cluster id.
pub const CLUSTER_ID_BYTES_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "corrupt {path}: {reason}. The node refuses to start on damaged storage rather than \
         serve less than it saved (and may have acknowledged); restore the data directory from \
         a backup (rejoining as a broker that lost data is not supported)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{dir} is not a formatted data directory (no {META_FILE}); run `insync format \
         --data-dir {dir} --cluster-id ID --node-id N` (or `--controller`) first"
    )]
    Unformatted { dir: PathBuf },
    #[error(
        "{dir} holds {entry} but no {META_FILE}: it is not an insync data directory, or one \
         from before `insync format`; use an empty directory, or move its contents aside"
    )]
    NotEmpty { dir: PathBuf, entry: String },
    #[error(
        "{dir} is formatted for {found}, not for {expected}; point --data-dir at this node's own \
         directory, or format a new empty one with `insync format`"
    )]
    Foreign {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{dir} is locked by another process using it (an `insync broker`, `controller` or \
         `run`); stop that process or use another --data-dir"
    )]
    Locked { dir: PathBuf },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("cannot encode state to save: {0}")]
    Encode(String),
    #[error(
        "storage failed earlier and takes no more writes (fail-stop): {0}; restart the process \
         to recover from what is on disk"
    )]
    Failed(String),
}

/// A data directory's failure as the runtime's storage layer sees it (the
/// [`crate::runtime::StorageBackend`] of [`DiskStorage`] and of the test clusters' broker
/// disks): a corrupt file stays [`Corrupt`](crate::runtime::StorageError::Corrupt) (the node
/// refuses to start on it); every other failure is an I/O failure. The text is the disk's.
impl From<&DiskError> for crate::runtime::StorageError {
    fn from(e: &DiskError) -> Self {
        match e {
            DiskError::Corrupt { .. } => crate::runtime::StorageError::Corrupt(e.to_string()),
            e => crate::runtime::StorageError::new(e.to_string()),
        }
    }
}

impl From<DiskError> for crate::runtime::StorageError {
    fn from(e: DiskError) -> Self {
        Self::from(&e)
    }
}

/// Which node of a cluster a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageNode {
    /// `insync broker --id N`.
    Broker(u8),
    /// `insync controller`.
    Controller,
    /// `insync run` without `--connect`: every actor in one process.
    InProcess,
}

impl fmt::Display for StorageNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageNode::Broker(id) => write!(f, "broker {id}"),
            StorageNode::Controller => write!(f, "the controller"),
            StorageNode::InProcess => write!(f, "an in-process cluster (insync run)"),
        }
    }
}

/// The cluster and node a data directory is formatted for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub node: StorageNode,
}

impl Identity {
    /// Checks the cluster id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
    pub fn new(cluster_id: &str, node: StorageNode) -> Result<Identity, String> {
        let ok = !cluster_id.is_empty()
            && cluster_id.len() <= CLUSTER_ID_BYTES_MAX
            && cluster_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(format!(
                "cluster id {cluster_id:?} must be 1 to {CLUSTER_ID_BYTES_MAX} ASCII letters, \
                 digits, '-', '_' or '.'"
            ));
        }
        Ok(Identity {
            cluster_id: cluster_id.to_string(),
            node,
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of cluster {:?}", self.node, self.cluster_id)
    }
}

/// What `meta.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaFile {
    version: u32,
    cluster_id: String,
    node: StorageNode,
    /// Actors that completed a save here: their state files (and a broker's segment) must
    /// exist.
    #[serde(default)]
    saved_actors: BTreeSet<usize>,
    /// CRC-32 of the other fields as compact JSON ([`MetaFile::crc`]): a flipped bit that
    /// leaves valid JSON (another node id, a saved actor forgotten) is refused, not believed.
    /// Written by every save of the file; a file from before it has none and is read as is
    /// (an unknown field, a misspelt `crc32` among them, is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crc32: Option<u32>,
}

impl MetaFile {
    /// The checksum of everything but the checksum.
    fn crc(&self) -> u32 {
        let bare = MetaFile {
            crc32: None,
            ..self.clone()
        };
        crc32fast::hash(&serde_json::to_vec(&bare).unwrap_or_default())
    }

    fn identity(&self) -> Identity {
        Identity {
            cluster_id: self.cluster_id.clone(),
            node: self.node.clone(),
        }
    }
}

/// How [`DiskStorage::open`] treats a directory that was never formatted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// It must have been formatted (`insync format`) beforehand: `insync broker`, `controller`.
    Formatted,
    /// A missing or empty directory is formatted on the spot: `insync run`, tests.
    FormatIfEmpty,
}

/// What [`DiskStorage::format`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formatted {
    Created,
    /// The directory was already formatted for the same identity; nothing changed.
    AlreadyFormatted,
}

/// What recovery found and dropped from one segment file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub batches: usize,
    pub records: usize,
    /// Bytes of a torn tail after the last good batch, cut off.
    pub truncated_bytes: u64,
    pub reason: Option<String>,
    /// Set after an unclean shutdown when the state file was a periodic checkpoint (see the
    /// module's "Checkpoints"): the offset from which on nothing is vouched for. A batch saved
    /// after the checkpoint and then lost or damaged by the disk (a lost fsync, a flipped bit
    /// in the final batch) cannot be told from one never written, so everything from here on
    /// is reported as unverified rather than silently taken as whole.
    pub unverified_from: Option<Offset>,
    /// Set when the storage salvages ([`DiskStorage::with_salvage`]) and found corruption in
    /// the segment (a missing segment, a bad length or checksum before the last batch, a
    /// batch that does not decode, starts at the wrong offset or lowers the leader epoch, or
    /// fewer records than the state file recorded): the offset of the first record lost. The
    /// log is kept up to it, the rest is cut from the file, and the broker restarts with the
    /// shorter log as a new incarnation after an unclean shutdown.
    pub damaged_from: Option<Offset>,
}

#[derive(Serialize, Deserialize)]
struct Batch {
    base_offset: Offset,
    records: Vec<Record>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BrokerMeta {
    incarnation: BrokerEpoch,
    high_watermark: Offset,
    /// Records the segment held when this was written: recovery must find at least these.
    log_end_offset: Offset,
    /// No save completed after this file was written without rewriting it: a checkpoint
    /// written at every save (interval zero) or at a clean shutdown
    /// ([`DiskStorage::close_cleanly`]). Then recovery vouches for every record. False for a
    /// periodic checkpoint, which later saves outrun: recovery after an unclean shutdown then
    /// reports what follows `log_end_offset` as unverified ([`Recovery::unverified_from`]).
    vouches_for_last_save: bool,
}

/// A state file written before [`BrokerMeta::vouches_for_last_save`] existed.
#[derive(Deserialize)]
struct BrokerMetaWithoutVouch {
    incarnation: BrokerEpoch,
    high_watermark: Offset,
    log_end_offset: Offset,
}

/// A broker's state file payload, of either form (an older one vouches for no later save).
fn decode_broker_meta(bytes: &[u8]) -> Result<BrokerMeta, bincode::Error> {
    bincode::deserialize::<BrokerMeta>(bytes).or_else(|e| {
        let older: BrokerMetaWithoutVouch = bincode::deserialize(bytes).map_err(|_| e)?;
        Ok(BrokerMeta {
            incarnation: older.incarnation,
            high_watermark: older.high_watermark,
            log_end_offset: older.log_end_offset,
            vouches_for_last_save: false,
        })
    })
}

/// Where one broker's segment stands on disk.
struct Segment {
    file: File,
    path: PathBuf,
    /// The log as it is on disk (shares structure with the broker's log).
    on_disk: Log,
    /// `(base offset, file position)` of every batch, for truncation.
    batches: Vec<(Offset, u64)>,
    len_bytes: u64,
}

/// One actor's open files: its segment (a broker's, once saved or loaded) and the state file
/// last written for it, with when.
#[derive(Default)]
struct ActorFiles {
    segment: Option<Segment>,
    checkpoint: Option<(BrokerMeta, Instant)>,
    /// What the last save (or the load) of a broker knew: what a clean shutdown's state file
    /// vouches for.
    last_saved: Option<BrokerMeta>,
}

/// How often a broker's state file (high-watermark checkpoint) is rewritten in the steady
/// state: Kafka's `replica.high.watermark.checkpoint.interval.ms` default.
pub const HW_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Storage for every actor of one process, under one directory it holds locked.
pub struct DiskStorage {
    dir: PathBuf,
    meta: Mutex<MetaFile>,
    /// Each actor's files behind a lock of their own: one broker's fsync never waits for
    /// another's. A save and a load of one actor exclude each other.
    actors: Mutex<HashMap<usize, Arc<Mutex<ActorFiles>>>>,
    /// See [`HW_CHECKPOINT_INTERVAL`].
    checkpoint_interval: Duration,
    /// Test hooks: state files written, segment fsyncs made.
    #[cfg(test)]
    state_writes: std::sync::atomic::AtomicU64,
    #[cfg(test)]
    segment_syncs: std::sync::atomic::AtomicU64,
    /// The first failed write or fsync; once set, nothing more is written.
    failed: tokio::sync::watch::Sender<Option<String>>,
    /// Held for the storage's lifetime: the `flock` on [`LOCK_FILE`].
    _lock: File,
    /// Test hooks: fail every fsync; fail a segment's fsyncs only.
    #[cfg(test)]
    fail_syncs: std::sync::atomic::AtomicBool,
    #[cfg(test)]
    fail_segment_syncs: std::sync::atomic::AtomicBool,
    /// Injected faults ([`faults`]); `None` outside tests and the fuzzer.
    faults: Option<Arc<faults::DiskFaults>>,
    /// Whether recovery keeps a damaged segment's intact prefix (see the module's
    /// "Recovery") rather than refusing the start.
    salvage: bool,
}

/// A lock whose holder panicked is still usable: every write either completed or fail-stopped
/// the storage.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ERROR line of a salvaged segment (the corruption itself was logged as found).
fn salvaged(path: &Path, from: Offset, byte: u64) {
    tracing::error!(
        path = %path.display(),
        offset = %from,
        byte,
        "damaged segment salvaged: the records from offset {from} (byte {byte}) on are dropped. \
         The broker restarts with the records before them, as a new incarnation after an \
         unclean shutdown: the controller (KIP-966) takes it out of the ISR and the ELR, so it \
         leads again only after fetching what it lost"
    );
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> DiskError {
    DiskError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Takes the exclusive lock on `dir`'s lock file, without waiting.
fn lock_dir(dir: &Path) -> Result<File, DiskError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    #[cfg(unix)]
    {
        use rustix::fs::{flock, FlockOperation};
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(DiskError::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io(&path)(e.into())),
        }
    }
    Ok(file)
}

fn sync_dir_of(path: &Path) -> Result<(), DiskError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Writes `bytes` to `path` atomically and durably: a temporary file, fsync, rename, fsync of
/// the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DiskError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir_of(path)
}

fn write_meta(dir: &Path, meta: &MetaFile) -> Result<(), DiskError> {
    let path = dir.join(META_FILE);
    let meta = MetaFile {
        crc32: Some(meta.crc()),
        ..meta.clone()
    };
    let mut text = serde_json::to_string_pretty(&meta).map_err(|e| DiskError::Format {
        path: path.clone(),
        reason: format!("cannot encode: {e}"),
    })?;
    text.push('\n');
    write_atomically(&path, text.as_bytes())
}

/// `meta.json`, if the directory has one.
fn read_meta(dir: &Path) -> Result<Option<MetaFile>, DiskError> {
    let path = dir.join(META_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| DiskError::Format {
        path: path.clone(),
        reason: format!("not valid JSON ({e}); it was not written by `insync format`"),
    })?;
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(LAYOUT_VERSION)) {
        return Err(DiskError::Format {
            path,
            reason: format!(
                "layout version {}; this insync reads version {LAYOUT_VERSION}",
                version.map_or("missing".to_string(), |v| v.to_string())
            ),
        });
    }
    let meta: MetaFile = serde_json::from_value(value).map_err(|e| DiskError::Format {
        path: path.clone(),
        reason: format!("not a valid {META_FILE}: {e}"),
    })?;
    match meta.crc32 {
        Some(crc) if crc != meta.crc() => {
            let reason = format!(
                "checksum mismatch (crc32 {crc}, contents {}): the file is damaged; restore it \
                 from a backup",
                meta.crc()
            );
            tracing::error!(path = %path.display(), "{reason}");
            Err(corrupt(&path, reason))
        }
        _ => Ok(Some(meta)),
    }
}

/// The first entry of `dir` other than the lock file and a leftover temporary `meta.json`.
fn first_foreign_entry(dir: &Path) -> Result<Option<String>, DiskError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        if name != LOCK_FILE && name != "meta.tmp" {
            return Ok(Some(name.into_owned()));
        }
    }
    Ok(None)
}

fn check_identity(dir: &Path, meta: &MetaFile, identity: &Identity) -> Result<(), DiskError> {
    let found = meta.identity();
    if &found != identity {
        return Err(DiskError::Foreign {
            dir: dir.to_path_buf(),
            found: found.to_string(),
            expected: identity.to_string(),
        });
    }
    Ok(())
}

impl DiskStorage {
    /// Formats `dir` (created if missing) for `identity`, as `kafka-storage format` does: it
    /// must be empty, or already formatted for the same identity.
    pub fn format(dir: &Path, identity: &Identity) -> Result<Formatted, DiskError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let _lock = lock_dir(dir)?;
        if let Some(meta) = read_meta(dir)? {
            check_identity(dir, &meta, identity)?;
            return Ok(Formatted::AlreadyFormatted);
        }
        if let Some(entry) = first_foreign_entry(dir)? {
            return Err(DiskError::NotEmpty {
                dir: dir.to_path_buf(),
                entry,
            });
        }
        write_meta(
            dir,
            &MetaFile {
                version: LAYOUT_VERSION,
                cluster_id: identity.cluster_id.clone(),
                node: identity.node.clone(),
                saved_actors: BTreeSet::new(),
                crc32: None,
            },
        )?;
        // The directory's own entry in its parent, for a directory format created.
        sync_dir_of(dir)?;
        Ok(Formatted::Created)
    }

    /// Opens `dir` for `identity` and locks it for the storage's lifetime.
    pub fn open(
        dir: impl Into<PathBuf>,
        identity: &Identity,
        mode: OpenMode,
    ) -> Result<DiskStorage, DiskError> {
        let dir = dir.into();
        match mode {
            OpenMode::Formatted => {
                let meta = dir.join(META_FILE);
                if !meta.try_exists().map_err(io(&meta))? {
                    return Err(DiskError::Unformatted { dir });
                }
            }
            OpenMode::FormatIfEmpty => {
                Self::format(&dir, identity)?;
            }
        }
        let lock = lock_dir(&dir)?;
        let meta = read_meta(&dir)?.ok_or_else(|| DiskError::Unformatted { dir: dir.clone() })?;
        check_identity(&dir, &meta, identity)?;
        Ok(DiskStorage {
            dir,
            meta: Mutex::new(meta),
            actors: Mutex::new(HashMap::new()),
            checkpoint_interval: HW_CHECKPOINT_INTERVAL,
            #[cfg(test)]
            state_writes: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            segment_syncs: std::sync::atomic::AtomicU64::new(0),
            failed: tokio::sync::watch::Sender::new(None),
            _lock: lock,
            #[cfg(test)]
            fail_syncs: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            fail_segment_syncs: std::sync::atomic::AtomicBool::new(false),
            faults: None,
            salvage: false,
        })
    }

    /// Lets `faults` fail this storage's writes (tests and the fuzzer only).
    pub fn with_faults(mut self, faults: Arc<faults::DiskFaults>) -> DiskStorage {
        self.faults = Some(faults);
        self
    }

    /// Keeps a damaged segment's intact prefix and reports the rest
    /// ([`Recovery::damaged_from`]) instead of refusing the start: for a broker whose
    /// controller applies KIP-966's unclean-shutdown rule (`--elr`), under which a broker
    /// that restarts with less than it had leaves the ISR and the ELR and leads again only
    /// after catching up (see the module's "Recovery").
    pub fn with_salvage(mut self, salvage: bool) -> DiskStorage {
        self.salvage = salvage;
        self
    }

    /// Rewrites a broker's state file at most every `interval` in the steady state (zero:
    /// at every save).
    pub fn with_checkpoint_interval(mut self, interval: Duration) -> DiskStorage {
        self.checkpoint_interval = interval;
        self
    }

    /// The lock over one actor's files.
    fn files(&self, actor: usize) -> Arc<Mutex<ActorFiles>> {
        Arc::clone(lock(&self.actors).entry(actor).or_default())
    }

    /// Tells when a write or fsync failed (the value becomes `Some(reason)` once, for good).
    pub fn failures(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.failed.subscribe()
    }

    /// Why storage stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    fn segment_path(&self, actor: usize) -> PathBuf {
        self.dir.join(format!("actor-{actor}.log"))
    }

    fn meta_path(&self, actor: usize) -> PathBuf {
        self.dir.join(format!("actor-{actor}.state"))
    }

    /// fsync of a file (data and size); a failure stops the storage.
    fn sync(&self, file: &File, path: &Path) -> Result<(), DiskError> {
        #[cfg(test)]
        self.segment_syncs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        #[cfg(test)]
        if self.fail_syncs.load(std::sync::atomic::Ordering::SeqCst)
            || self
                .fail_segment_syncs
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(io(path)(std::io::Error::other("injected fsync failure")));
        }
        file.sync_data().map_err(io(path))
    }

    /// Saves an actor's durable state; returns once it is on disk. After any failure, this
    /// and every later save fail: the process must stop (see the module's "Failures").
    pub fn save(&self, actor: usize, storage: &NodeStorage) -> Result<(), DiskError> {
        if let Some(reason) = self.failure() {
            return Err(DiskError::Failed(reason));
        }
        let files = self.files(actor);
        let saved = self.save_unchecked(actor, storage, &mut lock(&files));
        if let Err(e) = &saved {
            tracing::error!(
                actor,
                error = %e,
                "storage failed; no more writes (fail-stop)"
            );
            self.failed.send_replace(Some(e.to_string()));
        }
        saved
    }

    /// A broker's save: the segment's new records (one fsync), then its state file only when
    /// it is due (see the module's "Checkpoints").
    fn save_unchecked(
        &self,
        actor: usize,
        storage: &NodeStorage,
        files: &mut ActorFiles,
    ) -> Result<(), DiskError> {
        match storage {
            NodeStorage::Broker(b) => {
                self.save_log(actor, b, files)?;
                let meta = BrokerMeta {
                    incarnation: b.incarnation,
                    high_watermark: b.high_watermark,
                    log_end_offset: b.log.log_end_offset(),
                    vouches_for_last_save: self.checkpoint_interval.is_zero(),
                };
                let due = match &files.checkpoint {
                    None => true,
                    Some((last, at)) => {
                        last.incarnation != meta.incarnation
                            || (*last != meta && at.elapsed() >= self.checkpoint_interval)
                    }
                };
                if due {
                    self.write_side_file(actor, &(true, bincode_bytes(&meta)?))?;
                    files.checkpoint = Some((meta.clone(), Instant::now()));
                }
                files.last_saved = Some(meta);
            }
            other => self.write_side_file(actor, &(false, bincode_bytes(other)?))?,
        }
        self.note_saved(actor)
    }

    /// A clean shutdown (call it once the actors have stopped): rewrites each broker's state
    /// file to vouch for everything its last save wrote, so that the next start verifies
    /// every record (Kafka's clean-shutdown marker plays this part for its log recovery).
    /// After a crash, or when this never ran, the state file is the last periodic checkpoint,
    /// and recovery reports what follows it as unverified ([`Recovery::unverified_from`]). A
    /// save that still comes after this rewrites the state file again, as a periodic
    /// checkpoint that vouches for no later save. Returns how many state files it wrote.
    pub fn close_cleanly(&self) -> Result<usize, DiskError> {
        if let Some(reason) = self.failure() {
            return Err(DiskError::Failed(reason));
        }
        let actors: Vec<(usize, Arc<Mutex<ActorFiles>>)> = lock(&self.actors)
            .iter()
            .map(|(actor, files)| (*actor, Arc::clone(files)))
            .collect();
        let mut written = 0;
        for (actor, files) in actors {
            let mut files = lock(&files);
            let Some(segment) = &files.segment else {
                continue;
            };
            let Some(last) = &files.last_saved else {
                continue;
            };
            let meta = BrokerMeta {
                log_end_offset: segment.on_disk.log_end_offset(),
                vouches_for_last_save: true,
                ..last.clone()
            };
            if let Err(e) = self.write_side_file(actor, &(true, bincode_bytes(&meta)?)) {
                self.failed.send_replace(Some(e.to_string()));
                return Err(e);
            }
            // The next save, if any, rewrites it (it no longer vouches once outrun).
            files.checkpoint = None;
            written += 1;
        }
        tracing::info!(
            dir = %self.dir.display(),
            brokers = written,
            "clean shutdown: the state files vouch for every saved record"
        );
        Ok(written)
    }

    /// Records in `meta.json` that `actor` saved here, the first time it does.
    fn note_saved(&self, actor: usize) -> Result<(), DiskError> {
        let mut meta = self.meta.lock().expect("meta lock");
        if meta.saved_actors.contains(&actor) {
            return Ok(());
        }
        let mut updated = meta.clone();
        updated.saved_actors.insert(actor);
        write_meta(&self.dir, &updated)?;
        *meta = updated;
        Ok(())
    }

    /// Loads an actor's durable state, recovering its segment. `None` if it never saved.
    pub fn load(&self, actor: usize) -> Result<Option<(NodeStorage, Recovery)>, DiskError> {
        if let Some(reason) = self.failure() {
            return Err(DiskError::Failed(reason));
        }
        let files = self.files(actor);
        let mut files = lock(&files);
        let meta_path = self.meta_path(actor);
        let saved_before = self
            .meta
            .lock()
            .expect("meta lock")
            .saved_actors
            .contains(&actor);
        if !meta_path.try_exists().map_err(io(&meta_path))? {
            if saved_before {
                let reason = format!(
                    "the state file is missing, but {} records that actor {actor} saved here",
                    self.dir.join(META_FILE).display()
                );
                tracing::error!(path = %meta_path.display(), "{reason}");
                return Err(corrupt(&meta_path, reason));
            }
            // Never saved (or a first save cut short before its state file: it never returned).
            return Ok(None);
        }
        let (is_broker, bytes): (bool, Vec<u8>) = read_side_file(&meta_path)?;
        if !is_broker {
            let storage = bincode::deserialize(&bytes)
                .map_err(|e| corrupt(&meta_path, format!("undecodable state: {e}")))?;
            return Ok(Some((storage, Recovery::default())));
        }
        let meta: BrokerMeta = decode_broker_meta(&bytes)
            .map_err(|e| corrupt(&meta_path, format!("undecodable broker state: {e}")))?;
        let (segment, recovery) = self.recover_segment(actor, &meta, &meta_path)?;
        let log = segment.on_disk.clone();
        files.segment = Some(segment);
        let high_watermark = meta.high_watermark.min(log.log_end_offset());
        // A state file that vouches for the last save must not outlive the next one: the
        // first save after this load rewrites it (a clean shutdown's would otherwise go on
        // vouching, until the interval passed, for records saved after it).
        files.checkpoint = (!meta.vouches_for_last_save).then(|| (meta.clone(), Instant::now()));
        files.last_saved = Some(BrokerMeta {
            high_watermark,
            log_end_offset: log.log_end_offset(),
            ..meta.clone()
        });
        Ok(Some((
            NodeStorage::Broker(BrokerStorage {
                incarnation: meta.incarnation,
                log,
                high_watermark,
                // The ghost is the model's; the engine keeps none.
                committed_ghost: Default::default(),
            }),
            recovery,
        )))
    }

    /// Creates an empty segment for an actor's first save.
    fn create_segment(&self, actor: usize) -> Result<Segment, DiskError> {
        let path = self.segment_path(actor);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        self.sync(&file, &path)?;
        sync_dir_of(&path)?;
        Ok(Segment {
            file,
            path,
            on_disk: Log::new(),
            batches: Vec::new(),
            len_bytes: 0,
        })
    }

    /// Reads every batch, checked; cuts a torn tail; refuses anything else (see the module's
    /// "Recovery").
    fn recover_segment(
        &self,
        actor: usize,
        saved: &BrokerMeta,
        state_path: &Path,
    ) -> Result<(Segment, Recovery), DiskError> {
        let path = self.segment_path(actor);
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reason = format!(
                    "the segment is missing, but {} recorded {} records in it at the last save",
                    state_path.display(),
                    saved.log_end_offset
                );
                tracing::error!(path = %path.display(), "{reason}");
                if !self.salvage {
                    return Err(corrupt(&path, reason));
                }
                let segment = self.create_segment(actor)?;
                let recovery = Recovery {
                    reason: Some(reason),
                    damaged_from: Some(Offset::ZERO),
                    ..Recovery::default()
                };
                salvaged(&path, Offset::ZERO, 0);
                return Ok((segment, recovery));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let mut segment = Segment {
            file,
            path: path.clone(),
            on_disk: Log::new(),
            batches: Vec::new(),
            len_bytes: 0,
        };
        let mut recovery = Recovery::default();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let log = &segment.on_disk;
            match parse_batch(&bytes[pos..], log.log_end_offset(), log.last_epoch()) {
                Parsed::Batch(batch, used) => {
                    segment.batches.push((batch.base_offset, pos as u64));
                    recovery.batches += 1;
                    recovery.records += batch.records.len();
                    for r in batch.records {
                        segment.on_disk.append(r);
                    }
                    pos += used;
                }
                Parsed::Torn(reason) => {
                    recovery.truncated_bytes = (bytes.len() - pos) as u64;
                    recovery.reason = Some(reason);
                    break;
                }
                Parsed::Corrupt(reason) => {
                    let reason = format!("at byte {pos}: {reason}");
                    tracing::error!(path = %path.display(), offset = pos, "{reason}");
                    if !self.salvage {
                        return Err(corrupt(&path, reason));
                    }
                    // Everything from the damaged batch on is cut, as a torn tail is.
                    recovery.truncated_bytes = (bytes.len() - pos) as u64;
                    recovery.damaged_from = Some(segment.on_disk.log_end_offset());
                    recovery.reason = Some(reason);
                    break;
                }
            }
        }
        let end = segment.on_disk.log_end_offset();
        if recovery.damaged_from.is_none()
            && (end < saved.log_end_offset || end < saved.high_watermark)
        {
            let reason = format!(
                "holds {end} records{} but {} recorded {} records and a high-watermark \
                 checkpoint of {} at the last save: records the node saved are gone",
                match &recovery.reason {
                    Some(r) => format!(" before byte {pos} ({r})"),
                    None => String::new(),
                },
                state_path.display(),
                saved.log_end_offset,
                saved.high_watermark
            );
            tracing::error!(path = %path.display(), offset = pos, "{reason}");
            if !self.salvage {
                return Err(corrupt(&path, reason));
            }
            recovery.damaged_from = Some(end);
            recovery.reason = Some(reason);
        }
        segment.len_bytes = pos as u64;
        if let Some(from) = recovery.damaged_from {
            salvaged(&path, from, pos as u64);
        }
        if recovery.truncated_bytes > 0 && recovery.damaged_from.is_none() {
            tracing::warn!(
                path = %path.display(),
                offset = pos,
                bytes = recovery.truncated_bytes,
                reason = recovery.reason.as_deref().unwrap_or(""),
                "torn segment tail cut in recovery (a save interrupted before its fsync)"
            );
        }
        if recovery.truncated_bytes > 0 {
            segment.file.set_len(segment.len_bytes).map_err(io(&path))?;
            self.sync(&segment.file, &path)?;
        }
        if !saved.vouches_for_last_save {
            let from = saved.log_end_offset;
            recovery.unverified_from = Some(from);
            let byte = segment
                .batches
                .iter()
                .find(|(base, _)| *base >= from)
                .map_or(segment.len_bytes, |(_, pos)| *pos);
            tracing::warn!(
                path = %path.display(),
                offset = %from,
                byte,
                "unclean shutdown after a periodic checkpoint: {} vouches for {from} records; \
                 the {} records recovered after them (from byte {byte} on) and any batch saved \
                 after them cannot be verified (a batch the disk lost or damaged there is not \
                 seen). The broker restarts as a new incarnation after an unclean shutdown: \
                 with --elr the controller takes it out of the ISR and the ELR, so it cannot \
                 lead before it catches up; without, as in Kafka before KIP-966, it can lead as \
                 the last ISR member without what it lost",
                state_path.display(),
                segment.on_disk.log_end_offset().0.saturating_sub(from.0)
            );
        }
        Ok((segment, recovery))
    }

    fn save_log(
        &self,
        actor: usize,
        storage: &BrokerStorage,
        files: &mut ActorFiles,
    ) -> Result<(), DiskError> {
        let log = &storage.log;
        if files.segment.is_none() {
            files.segment = Some(self.create_segment(actor)?);
        }
        let segment = files.segment.as_mut().expect("segment just created");
        let mut truncated = false;
        let common = common_prefix(&segment.on_disk, log);
        if common < segment.on_disk.log_end_offset() {
            // Truncate back to the last batch boundary at or below the common prefix.
            let keep = segment
                .batches
                .iter()
                .rposition(|(base, _)| *base <= common)
                .unwrap_or(0);
            let (base, pos) = segment
                .batches
                .get(keep)
                .copied()
                .unwrap_or((Offset::ZERO, 0));
            // First lower what the state file vouches for, so that recovery after a crash
            // between here and the next state file does not take the shorter segment for lost
            // records. The high-watermark checkpoint is clamped to what stays on disk, as
            // loading would clamp it.
            let interim = BrokerMeta {
                incarnation: storage.incarnation,
                high_watermark: storage.high_watermark.min(base),
                log_end_offset: base,
                vouches_for_last_save: self.checkpoint_interval.is_zero(),
            };
            self.write_side_file(actor, &(true, bincode_bytes(&interim)?))?;
            files.checkpoint = Some((interim, Instant::now()));
            truncated = true;
            segment.batches.truncate(keep);
            segment.file.set_len(pos).map_err(io(&segment.path))?;
            segment.len_bytes = pos;
            segment.on_disk.truncate(base);
        }
        let to = log.log_end_offset();
        let mut synced = false;
        while segment.on_disk.log_end_offset() < to {
            let from = segment.on_disk.log_end_offset();
            let batch = next_batch(log, from, to);
            let frame = frame_batch(&batch, &segment.path)?;
            segment
                .file
                .seek(SeekFrom::Start(segment.len_bytes))
                .map_err(io(&segment.path))?;
            if let Some(faults) = &self.faults {
                faults
                    .before_write(&mut segment.file, &frame)
                    .map_err(io(&segment.path))?;
            }
            segment.file.write_all(&frame).map_err(io(&segment.path))?;
            segment.batches.push((from, segment.len_bytes));
            segment.len_bytes += frame.len() as u64;
            for r in batch.records {
                segment.on_disk.append(r);
            }
            // One fsync per batch: only the last batch of a save can be torn.
            self.sync(&segment.file, &segment.path)?;
            synced = true;
        }
        if truncated && !synced {
            // A save that only truncated. One that changed nothing in the log needs no fsync:
            // the last one covered it.
            self.sync(&segment.file, &segment.path)?;
        }
        Ok(())
    }

    fn write_side_file<T: Serialize>(&self, actor: usize, value: &T) -> Result<(), DiskError> {
        let path = self.meta_path(actor);
        let payload = bincode_bytes(value)?;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        #[cfg(test)]
        if self.fail_syncs.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io(&path)(std::io::Error::other("injected fsync failure")));
        }
        #[cfg(test)]
        self.state_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(faults) = &self.faults {
            faults
                .before_write(&mut std::io::sink(), &[])
                .map_err(io(&path))?;
        }
        write_atomically(&path, &frame)
    }
}

/// The records from `from` on, up to `to`, that fit one batch of about
/// [`BATCH_BYTES_TARGET`] (at least one record).
fn next_batch(log: &Log, from: Offset, to: Offset) -> Batch {
    let mut records = Vec::new();
    let mut bytes = 0u64;
    let mut at = from;
    while at < to {
        let Some(record) = log.get(at) else { break };
        let size = bincode::serialized_size(record).unwrap_or(0);
        if !records.is_empty() && bytes + size > BATCH_BYTES_TARGET {
            break;
        }
        bytes += size;
        records.push(record.clone());
        at = at.plus(1);
    }
    Batch {
        base_offset: from,
        records,
    }
}

/// The offset up to which two logs hold the same records. Logs only diverge at their tails,
/// so this walks back from the shorter end.
fn common_prefix(a: &Log, b: &Log) -> Offset {
    let mut n = a.log_end_offset().min(b.log_end_offset());
    while n > Offset::ZERO {
        let last = Offset(n.0 - 1);
        if a.get(last) == b.get(last) {
            break;
        }
        n = last;
    }
    n
}

fn bincode_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, DiskError> {
    bincode::serialize(value).map_err(|e| DiskError::Encode(e.to_string()))
}

fn frame_batch(batch: &Batch, path: &Path) -> Result<Vec<u8>, DiskError> {
    let payload = bincode_bytes(batch)?;
    if payload.len() as u64 > u64::from(BATCH_BYTES_MAX) {
        return Err(DiskError::Format {
            path: path.to_path_buf(),
            reason: format!(
                "a record batch of {} bytes exceeds the segment's limit of {BATCH_BYTES_MAX}",
                payload.len()
            ),
        });
    }
    let mut frame = Vec::with_capacity(payload.len() + FRAME_HEADER_BYTES as usize);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// What the front of a segment's remaining bytes holds.
enum Parsed {
    /// A good batch and the bytes it used.
    Batch(Batch, usize),
    /// The unfinished end of an interrupted save: safe to cut.
    Torn(String),
    /// Damage: recovery refuses.
    Corrupt(String),
}

/// One batch from the front of `bytes`, checked against the log before it (its end offset
/// and last leader epoch).
fn parse_batch(bytes: &[u8], expected_base: Offset, last_epoch: Option<Epoch>) -> Parsed {
    if bytes.iter().all(|&b| b == 0) {
        return Parsed::Torn(format!(
            "{} zero bytes at the end (allocated by the file system, never written)",
            bytes.len()
        ));
    }
    if bytes.len() < FRAME_HEADER_BYTES as usize {
        return Parsed::Torn(format!("torn batch header ({} bytes)", bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > BATCH_BYTES_MAX {
        return Parsed::Corrupt(format!(
            "batch length {len} exceeds the limit of {BATCH_BYTES_MAX}"
        ));
    }
    let end = FRAME_HEADER_BYTES as usize + len as usize;
    if bytes.len() < end {
        return Parsed::Torn(format!(
            "torn final batch: {} of {len} bytes",
            bytes.len() - FRAME_HEADER_BYTES as usize
        ));
    }
    let payload = &bytes[FRAME_HEADER_BYTES as usize..end];
    if crc32fast::hash(payload) != crc {
        if end == bytes.len() {
            return Parsed::Torn("the final batch fails its checksum (torn write)".into());
        }
        return Parsed::Corrupt(format!(
            "batch checksum mismatch, with {} more bytes after the batch",
            bytes.len() - end
        ));
    }
    let batch: Batch = match bincode::deserialize(payload) {
        Ok(batch) => batch,
        Err(e) => {
            return Parsed::Corrupt(format!(
                "a batch that passes its checksum does not decode: {e}"
            ))
        }
    };
    if batch.base_offset != expected_base {
        return Parsed::Corrupt(format!(
            "batch starts at offset {} where {} was expected",
            batch.base_offset, expected_base
        ));
    }
    let mut previous = last_epoch;
    for (i, record) in batch.records.iter().enumerate() {
        if let Some(p) = previous {
            if record.leader_epoch < p {
                return Parsed::Corrupt(format!(
                    "the record at offset {} has leader epoch {} after epoch {p}; leader epochs \
                     in a log never decrease",
                    expected_base.plus(i),
                    record.leader_epoch
                ));
            }
        }
        previous = Some(record.leader_epoch);
    }
    Parsed::Batch(batch, end)
}

fn read_side_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, DiskError> {
    let bytes = fs::read(path).map_err(io(path))?;
    if bytes.len() < 8 {
        return Err(corrupt(path, "shorter than its header"));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let payload = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or_else(|| corrupt(path, "torn"))?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    bincode::deserialize(payload).map_err(|e| corrupt(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::types::Value;

    fn record(v: u32, epoch: u32) -> Record {
        Record {
            value: Value::Numbered(v),
            leader_epoch: Epoch(epoch),
            producer: None,
        }
    }

    fn broker(log: &Log, hw: u64) -> NodeStorage {
        NodeStorage::Broker(BrokerStorage {
            incarnation: BrokerEpoch(2),
            log: log.clone(),
            high_watermark: Offset(hw),
            committed_ghost: Default::default(),
        })
    }

    fn log_of(storage: &NodeStorage) -> Log {
        match storage {
            NodeStorage::Broker(b) => b.log.clone(),
            other => panic!("not a broker: {other:?}"),
        }
    }

    fn identity() -> Identity {
        Identity::new("test-cluster", StorageNode::InProcess).expect("valid id")
    }

    /// A store that writes the state file at every save that changes it, as the tests below
    /// the checkpoint test expect.
    fn open(dir: &Path) -> DiskStorage {
        DiskStorage::open(dir, &identity(), OpenMode::FormatIfEmpty)
            .expect("open")
            .with_checkpoint_interval(Duration::ZERO)
    }

    /// A broker's segment with one batch per record `1..=n`, all saved with `hw`.
    fn saved_batches(dir: &Path, actor: usize, n: u32, hw: u64) -> Log {
        let store = open(dir);
        let mut log = Log::new();
        for v in 1..=n {
            log.append(record(v, 1));
            store.save(actor, &broker(&log, hw)).expect("save");
        }
        log
    }

    fn corrupt_reason(err: DiskError) -> (PathBuf, String) {
        match err {
            DiskError::Corrupt { path, reason } => (path, reason),
            other => panic!("not corruption: {other}"),
        }
    }

    /// Setup: the default checkpoint interval (5 s).
    /// Steps: 100 saves, each appending a record and moving the high watermark; then a
    /// restart (a new incarnation), and a truncation.
    /// Expected: one segment fsync per save and one state file, written at the first save;
    /// recovery finds every record and the first save's (lower) high-watermark checkpoint; a
    /// flipped bit is still corruption; the new incarnation and the truncation each write the
    /// state file at once, and the truncated segment recovers.
    #[test]
    fn the_steady_state_costs_one_fsync_per_save_and_recovery_still_holds() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            DiskStorage::open(dir.path(), &identity(), OpenMode::FormatIfEmpty).expect("open");
        let mut log = Log::new();
        log.append(record(1, 1));
        store.save(0, &broker(&log, 0)).expect("first save");
        let (syncs, writes) = (
            store.segment_syncs.load(SeqCst),
            store.state_writes.load(SeqCst),
        );
        for v in 2..=101 {
            log.append(record(v, 1));
            store
                .save(0, &broker(&log, u64::from(v) - 1))
                .expect("save");
        }
        assert_eq!(
            store.segment_syncs.load(SeqCst) - syncs,
            100,
            "one fsync per save"
        );
        assert_eq!(
            store.state_writes.load(SeqCst) - writes,
            0,
            "no state file in between"
        );
        drop(store);

        let store =
            DiskStorage::open(dir.path(), &identity(), OpenMode::FormatIfEmpty).expect("open");
        let (storage, recovery) = store.load(0).expect("load").expect("saved");
        assert_eq!(log_of(&storage), log);
        assert_eq!(recovery.truncated_bytes, 0);
        let NodeStorage::Broker(recovered) = &storage else {
            unreachable!()
        };
        assert_eq!(recovered.high_watermark, Offset(0), "the older checkpoint");
        // The restarted broker's first save carries its new incarnation: written at once.
        let writes = store.state_writes.load(SeqCst);
        let restarted = NodeStorage::Broker(BrokerStorage {
            incarnation: BrokerEpoch(3),
            ..recovered.clone()
        });
        store.save(0, &restarted).expect("save");
        assert_eq!(store.state_writes.load(SeqCst) - writes, 1);
        // A truncation writes it before cutting.
        let mut truncated = log.clone();
        truncated.truncate(Offset(50));
        store
            .save(
                0,
                &NodeStorage::Broker(BrokerStorage {
                    incarnation: BrokerEpoch(3),
                    log: truncated.clone(),
                    high_watermark: Offset(40),
                    committed_ghost: Default::default(),
                }),
            )
            .expect("truncate");
        assert_eq!(store.state_writes.load(SeqCst) - writes, 2);
        drop(store);
        let store = open(dir.path());
        let (storage, _) = store.load(0).expect("load").expect("saved");
        assert_eq!(log_of(&storage), truncated);
        drop(store);

        // Corruption before the last batch is still refused.
        let path = dir.path().join("actor-0.log");
        let mut bytes = fs::read(&path).expect("read");
        let first_len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize + 8;
        bytes[first_len + 10] ^= 0x04;
        fs::write(&path, &bytes).expect("write");
        let err = open(dir.path()).load(0).expect_err("corrupt");
        assert_eq!(corrupt_reason(err).0, path);
    }

    #[test]
    fn saves_appends_and_truncations_and_recovers_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        for v in 1..=3 {
            log.append(record(v, 1));
            store.save(0, &broker(&log, 1)).expect("save");
        }
        // A follower truncates its divergent suffix and takes a new leader's records.
        log.truncate(Offset(1));
        log.append(record(7, 2));
        store.save(0, &broker(&log, 2)).expect("save");
        drop(store);

        let reopened = open(dir.path());
        let (storage, recovery) = reopened.load(0).expect("load").expect("saved");
        assert_eq!(log_of(&storage), log);
        assert_eq!(recovery.truncated_bytes, 0);
        match storage {
            NodeStorage::Broker(b) => {
                assert_eq!(b.incarnation, BrokerEpoch(2));
                assert_eq!(b.high_watermark, Offset(2));
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_truncation_cut_short_by_a_crash_is_not_taken_for_lost_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        for v in 1..=3 {
            log.append(record(v, 1));
            store.save(0, &broker(&log, 3)).expect("save");
        }
        // Unclean: the new leader holds only the first record; the follower truncates below
        // its checkpoint. A crash right after the truncation leaves the interim state file.
        // The crash: the segment's fsync after the truncation never completes.
        let state_before = fs::read(dir.path().join("actor-0.state")).expect("state");
        log.truncate(Offset(1));
        store
            .fail_segment_syncs
            .store(true, std::sync::atomic::Ordering::SeqCst);
        store.save(0, &broker(&log, 1)).expect_err("crash");
        drop(store);
        let segment = dir.path().join("actor-0.log");
        let (storage, _) = open(dir.path()).load(0).expect("load").expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(1));
        // Without the interim state file, the shorter segment would look like lost records.
        fs::write(dir.path().join("actor-0.state"), state_before).expect("write");
        let err = open(dir.path()).load(0).expect_err("refused");
        assert_eq!(corrupt_reason(err).0, segment);
    }

    /// A torn tail (a save interrupted before its fsync) is cut silently.
    #[test]
    fn torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        log.append(record(1, 1));
        store.save(3, &broker(&log, 0)).expect("save");
        // The second save's batch reaches the segment, but its state file never does.
        let state = fs::read(dir.path().join("actor-3.state")).expect("state");
        log.append(record(2, 1));
        store.save(3, &broker(&log, 0)).expect("save");
        drop(store);
        fs::write(dir.path().join("actor-3.state"), state).expect("write");
        // Tear the last batch in half, as a power loss mid-write would.
        let path = dir.path().join("actor-3.log");
        let len = fs::metadata(&path).expect("meta").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(len - 3).expect("tear");
        drop(file);

        let reopened = open(dir.path());
        let (storage, recovery) = reopened.load(3).expect("load").expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(1));
        assert!(recovery.truncated_bytes > 0);
        assert!(recovery.reason.unwrap().contains("torn"));
        // The cut is durable: the file ends at the last good batch.
        assert!(fs::metadata(&path).expect("meta").len() < len - 3);

        // A zero-filled tail (allocated, never written) is a torn tail too.
        let mut bytes = fs::read(&path).expect("read");
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&path, bytes).expect("write");
        drop(reopened);
        let (_, recovery) = open(dir.path()).load(3).expect("load").expect("saved");
        assert_eq!(recovery.truncated_bytes, 4096);
    }

    /// Setup: three saves of one record each, the state file at every save (it vouches for
    /// all three); a storage that salvages (`--elr`) and one that does not.
    /// Steps: a bit flips inside the second batch; later the segment goes missing.
    /// Expected: without salvage both refuse the start. With it, recovery keeps the first
    /// record, reports the damage from offset 1 on, and cuts the file after the first batch,
    /// so the next saves append where the intact log ends and a further restart finds it
    /// whole; a missing segment comes back empty, damaged from offset 0.
    #[test]
    fn a_salvaging_storage_keeps_the_intact_prefix_and_reports_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        let mut ends = Vec::new();
        for v in 1..=3 {
            log.append(record(v, 1));
            store.save(3, &broker(&log, 1)).expect("save");
            ends.push(
                fs::metadata(dir.path().join("actor-3.log"))
                    .expect("meta")
                    .len(),
            );
        }
        drop(store);
        let path = dir.path().join("actor-3.log");
        let mut bytes = fs::read(&path).expect("read");
        let inside_second = (ends[0] + (ends[1] - ends[0]) / 2) as usize;
        bytes[inside_second] ^= 0x10;
        fs::write(&path, &bytes).expect("write");

        let err = open(dir.path())
            .load(3)
            .expect_err("refused without salvage");
        assert!(matches!(err, DiskError::Corrupt { .. }), "{err}");

        let store = open(dir.path()).with_salvage(true);
        let (storage, recovery) = store.load(3).expect("load").expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(1));
        assert_eq!(recovery.damaged_from, Some(Offset(1)));
        assert!(recovery.reason.expect("a reason").contains("checksum"));
        assert_eq!(fs::metadata(&path).expect("meta").len(), ends[0], "cut");
        // The broker fetches again what it lost; the saves append after the intact prefix.
        let mut again = log_of(&storage);
        again.append(record(7, 2));
        store.save(3, &broker(&again, 1)).expect("save");
        drop(store);
        let (storage, recovery) = open(dir.path()).load(3).expect("load").expect("saved");
        assert_eq!(log_of(&storage), again);
        assert_eq!(recovery.damaged_from, None);

        fs::remove_file(&path).expect("remove");
        assert!(open(dir.path()).load(3).is_err(), "refused without salvage");
        let (storage, recovery) = open(dir.path())
            .with_salvage(true)
            .load(3)
            .expect("load")
            .expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset::ZERO);
        assert_eq!(recovery.damaged_from, Some(Offset::ZERO));
    }

    /// Setup: the default checkpoint interval (5 s); a first save of one record (the state
    /// file is written), then two more saves (it is not).
    /// Steps: the last batch is lost (an fsync that lied), then a restart: once without a clean
    /// shutdown, once after [`DiskStorage::close_cleanly`], and once from a state file of the
    /// older form, which never vouches.
    /// Expected: after the unclean shutdown, recovery keeps the two records and reports
    /// everything from offset 1 (past the checkpoint) as unverified, so the lost batch at
    /// offset 2 is covered by the report; after the clean shutdown the state file vouches for
    /// all three records and the same loss refuses the start.
    #[test]
    fn a_batch_lost_past_a_periodic_checkpoint_is_reported_unverified_and_after_a_clean_shutdown_refused(
    ) {
        let production = |dir: &Path| {
            DiskStorage::open(dir, &identity(), OpenMode::FormatIfEmpty).expect("open")
        };
        let lose_last = |dir: &Path| {
            faults::lose_last_batch(dir, 0)
                .expect("io")
                .expect("a batch to lose")
        };
        let save_three = |dir: &Path, clean: bool| {
            let store = production(dir);
            let mut log = Log::new();
            for v in 1..=3 {
                log.append(record(v, 1));
                store.save(0, &broker(&log, 0)).expect("save");
            }
            if clean {
                assert_eq!(store.close_cleanly().expect("close"), 1);
            }
        };

        let dir = tempfile::tempdir().expect("tempdir");
        save_three(dir.path(), false);
        let damage = lose_last(dir.path());
        assert_eq!(damage.first_offset, Some(Offset(2)));
        let (storage, recovery) = production(dir.path())
            .load(0)
            .expect("load")
            .expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(2));
        assert_eq!(recovery.unverified_from, Some(Offset(1)));
        assert_eq!(recovery.truncated_bytes, 0);

        let dir = tempfile::tempdir().expect("tempdir");
        save_three(dir.path(), true);
        lose_last(dir.path());
        let err = production(dir.path()).load(0).expect_err("refused");
        let (_, reason) = corrupt_reason(err);
        assert!(reason.contains("recorded 3 records"), "{reason}");

        // A clean shutdown's state file, then a restart and a save: the file no longer vouches.
        let dir = tempfile::tempdir().expect("tempdir");
        save_three(dir.path(), true);
        let store = production(dir.path());
        let (storage, recovery) = store.load(0).expect("load").expect("saved");
        assert_eq!(recovery.unverified_from, None, "a clean shutdown vouches");
        let mut log = log_of(&storage);
        log.append(record(4, 1));
        store.save(0, &broker(&log, 0)).expect("save");
        drop(store);
        let (_, recovery) = production(dir.path())
            .load(0)
            .expect("load")
            .expect("saved");
        assert_eq!(recovery.unverified_from, Some(Offset(4)));

        // A state file of the older form (no vouching flag) decodes, and vouches for nothing
        // past its record count.
        let dir = tempfile::tempdir().expect("tempdir");
        save_three(dir.path(), true);
        #[derive(Serialize)]
        struct Older {
            incarnation: u32,
            high_watermark: Offset,
            log_end_offset: Offset,
        }
        let older = Older {
            incarnation: 2,
            high_watermark: Offset(0),
            log_end_offset: Offset(3),
        };
        let store = production(dir.path());
        store
            .write_side_file(0, &(true, bincode_bytes(&older).expect("encode")))
            .expect("write");
        drop(store);
        let (storage, recovery) = production(dir.path())
            .load(0)
            .expect("load")
            .expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(3));
        assert_eq!(recovery.unverified_from, Some(Offset(3)));
    }

    /// With the state file at every save, it vouches for the last save: no unverified tail.
    #[test]
    fn a_state_file_written_at_every_save_leaves_nothing_unverified() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_batches(dir.path(), 0, 3, 1);
        let (_, recovery) = open(dir.path()).load(0).expect("load").expect("saved");
        assert_eq!(recovery.unverified_from, None);
    }

    /// A torn final batch below what the last save recorded is lost data, not a torn tail.
    #[test]
    fn a_tail_shorter_than_the_last_save_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_batches(dir.path(), 0, 3, 2);
        let path = dir.path().join("actor-0.log");
        let len = fs::metadata(&path).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len - 3)
            .expect("tear");
        let err = open(dir.path()).load(0).expect_err("refused");
        let (at, reason) = corrupt_reason(err);
        assert_eq!(at, path);
        assert!(reason.contains("holds 2 records"), "{reason}");
        assert!(reason.contains("recorded 3 records"), "{reason}");
        // Nothing was cut: the operator still has the bytes.
        assert_eq!(fs::metadata(&path).expect("meta").len(), len - 3);
    }

    /// A flipped bit in a batch with more after it is corruption: an error naming the file
    /// and the batch's byte offset, and nothing is cut.
    #[test]
    fn a_flipped_bit_in_a_batch_before_the_last_is_an_error_naming_file_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_batches(dir.path(), 1, 3, 0);
        let path = dir.path().join("actor-1.log");
        let mut bytes = fs::read(&path).expect("read");
        let first_len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize + 8;
        // A bit in the second batch's payload.
        bytes[first_len + 10] ^= 0x04;
        fs::write(&path, &bytes).expect("write");

        let err = open(dir.path()).load(1).expect_err("corrupt");
        let message = err.to_string();
        let (at, reason) = corrupt_reason(err);
        assert_eq!(at, path);
        assert!(
            reason.contains(&format!("at byte {first_len}")) && reason.contains("checksum"),
            "{reason}"
        );
        assert!(message.contains("actor-1.log"), "{message}");
        assert_eq!(fs::read(&path).expect("read"), bytes, "nothing cut");
    }

    #[test]
    fn a_flipped_byte_in_the_final_batch_beyond_the_last_save_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        log.append(record(1, 1));
        store.save(1, &broker(&log, 0)).expect("save");
        let state = fs::read(dir.path().join("actor-1.state")).expect("state");
        log.append(record(2, 1));
        store.save(1, &broker(&log, 0)).expect("save");
        drop(store);
        fs::write(dir.path().join("actor-1.state"), state).expect("write");
        let path = dir.path().join("actor-1.log");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("write");

        let (storage, recovery) = open(dir.path()).load(1).expect("load").expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(1));
        assert!(recovery.reason.expect("cut").contains("checksum"));
    }

    /// A batch that passes its checksum but lowers the leader epoch would trip the model's
    /// assertion in `Log::append`; recovery reports it instead.
    #[test]
    fn decreasing_epochs_in_a_checksummed_batch_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        log.append(record(1, 3));
        store.save(0, &broker(&log, 0)).expect("save");
        drop(store);
        // Append a well-framed batch whose record has epoch 2 after epoch 3.
        let path = dir.path().join("actor-0.log");
        let first = fs::metadata(&path).expect("meta").len();
        let batch = Batch {
            base_offset: Offset(1),
            records: vec![record(2, 2)],
        };
        let frame = frame_batch(&batch, &path).expect("frame");
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&frame).expect("write");
        drop(file);

        let err = open(dir.path()).load(0).expect_err("corrupt");
        let (at, reason) = corrupt_reason(err);
        assert_eq!(at, path);
        assert!(reason.contains(&format!("at byte {first}")), "{reason}");
        assert!(reason.contains("leader epoch 2 after epoch 3"), "{reason}");

        // Within one batch too, and a wrong base offset, and a bad length.
        for (bytes, expected) in [
            (
                frame_batch(
                    &Batch {
                        base_offset: Offset(0),
                        records: vec![record(1, 3), record(2, 1)],
                    },
                    &path,
                )
                .expect("frame"),
                "leader epoch 1 after epoch 3",
            ),
            (
                frame_batch(
                    &Batch {
                        base_offset: Offset(5),
                        records: vec![record(1, 1)],
                    },
                    &path,
                )
                .expect("frame"),
                "starts at offset 5",
            ),
            ([0xff; 16].to_vec(), "exceeds the limit"),
        ] {
            fs::write(&path, bytes).expect("write");
            let err = open(dir.path()).load(0).expect_err("corrupt");
            let (_, reason) = corrupt_reason(err);
            assert!(reason.contains(expected), "{reason}");
        }
    }

    /// After the first save, a missing state file or segment is lost data, not a fresh start.
    #[test]
    fn a_missing_state_file_or_segment_after_a_save_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved_batches(dir.path(), 0, 2, 1);
        // Never saved: fresh.
        assert!(open(dir.path()).load(4).expect("load").is_none());

        let state = dir.path().join("actor-0.state");
        let kept = fs::read(&state).expect("read");
        fs::remove_file(&state).expect("rm");
        let err = open(dir.path()).load(0).expect_err("missing state");
        let (at, reason) = corrupt_reason(err);
        assert_eq!(at, state);
        assert!(reason.contains("missing"), "{reason}");

        fs::write(&state, kept).expect("restore");
        let segment = dir.path().join("actor-0.log");
        fs::remove_file(&segment).expect("rm");
        let err = open(dir.path()).load(0).expect_err("missing segment");
        let (at, reason) = corrupt_reason(err);
        assert_eq!(at, segment);
        assert!(reason.contains("missing"), "{reason}");
    }

    #[test]
    fn corrupt_side_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store.save(5, &NodeStorage::None).expect("save");
        fs::write(dir.path().join("actor-5.state"), b"garbage!!").expect("write");
        let err = store.load(5).expect_err("corrupt");
        assert!(matches!(err, DiskError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn identity_and_lock_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("node");
        let broker0 = Identity::new("c1", StorageNode::Broker(0)).expect("id");
        let err = DiskStorage::open(&d, &broker0, OpenMode::Formatted)
            .err()
            .expect("refused");
        assert!(matches!(err, DiskError::Unformatted { .. }), "{err}");
        assert!(!d.exists(), "an unformatted directory is not created");

        assert_eq!(
            DiskStorage::format(&d, &broker0).expect("format"),
            Formatted::Created
        );
        assert_eq!(
            DiskStorage::format(&d, &broker0).expect("again"),
            Formatted::AlreadyFormatted
        );
        let store = DiskStorage::open(&d, &broker0, OpenMode::Formatted).expect("open");
        let err = DiskStorage::open(&d, &broker0, OpenMode::Formatted)
            .err()
            .expect("locked");
        assert!(matches!(err, DiskError::Locked { .. }), "{err}");
        drop(store);

        for other in [
            Identity::new("c2", StorageNode::Broker(0)).expect("id"),
            Identity::new("c1", StorageNode::Broker(1)).expect("id"),
            Identity::new("c1", StorageNode::InProcess).expect("id"),
        ] {
            let err = DiskStorage::open(&d, &other, OpenMode::FormatIfEmpty)
                .err()
                .expect("foreign");
            assert!(matches!(err, DiskError::Foreign { .. }), "{err}");
            let err = DiskStorage::format(&d, &other).expect_err("foreign");
            assert!(matches!(err, DiskError::Foreign { .. }), "{err}");
        }

        let stray = dir.path().join("stray");
        fs::create_dir_all(&stray).expect("mkdir");
        fs::write(stray.join("actor-0.log"), b"old").expect("write");
        let err = DiskStorage::format(&stray, &broker0).expect_err("not empty");
        assert!(matches!(err, DiskError::NotEmpty { .. }), "{err}");
        // A meta.json of another layout version, or not JSON, is refused with its reason.
        let d3 = dir.path().join("v2");
        DiskStorage::format(&d3, &broker0).expect("format");
        let meta = fs::read_to_string(d3.join(META_FILE)).expect("meta");
        fs::write(
            d3.join(META_FILE),
            meta.replace("\"version\": 1", "\"version\": 2"),
        )
        .expect("write");
        let err = DiskStorage::open(&d3, &broker0, OpenMode::Formatted)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("layout version 2"), "{err}");
        fs::write(d3.join(META_FILE), "{").expect("write");
        let err = DiskStorage::open(&d3, &broker0, OpenMode::Formatted)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(Identity::new("", StorageNode::Controller).is_err());
        assert!(Identity::new("a b", StorageNode::Controller).is_err());
    }

    /// A failed fsync is never retried: every later save and load fails, and the failure is
    /// announced for the process to stop.
    #[test]
    fn a_failed_fsync_stops_the_storage_for_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut failures = store.failures();
        let mut log = Log::new();
        log.append(record(1, 1));
        store.save(0, &broker(&log, 0)).expect("save");
        store
            .fail_syncs
            .store(true, std::sync::atomic::Ordering::SeqCst);
        log.append(record(2, 1));
        let err = store.save(0, &broker(&log, 0)).expect_err("fsync fails");
        assert!(err.to_string().contains("injected fsync failure"), "{err}");
        store
            .fail_syncs
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let err = store.save(0, &broker(&log, 0)).expect_err("stays failed");
        assert!(matches!(err, DiskError::Failed(_)), "{err}");
        assert!(matches!(store.load(0), Err(DiskError::Failed(_))));
        assert!(failures.has_changed().expect("sender alive"));
        assert!(failures
            .borrow_and_update()
            .as_deref()
            .is_some_and(|r| r.contains("injected")));
    }

    #[test]
    fn a_large_append_is_split_into_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut log = Log::new();
        let big = Value::Bytes(vec![7u8; 1024 * 1024].into());
        for _ in 0..20 {
            log.append(Record {
                value: big.clone(),
                leader_epoch: Epoch(1),
                producer: None,
            });
        }
        store.save(0, &broker(&log, 0)).expect("save");
        drop(store);
        let (storage, recovery) = open(dir.path()).load(0).expect("load").expect("saved");
        assert_eq!(log_of(&storage), log);
        assert!(recovery.batches >= 3, "{recovery:?}");
    }
}
