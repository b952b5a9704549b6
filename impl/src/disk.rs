//! File-backed storage for the actors' `save`d state (`--data-dir`).
//!
//! A broker's log lives in an append-only segment file of record batches, each framed as
//! `[length u32][crc32 u32][payload]`. A save writes only what changed since the last one: the
//! appended records as one batch, after truncating the file back to the last batch boundary the
//! log still shares (a follower's truncation). Each save ends with an fsync: the broker saves
//! only when its flush policy says the data is on disk. Recovery reads batches until the first
//! short or corrupt one, truncates the file there and reports what it dropped.
//!
//! Small state (the high-watermark checkpoint, incarnations, a consumer's offsets) is written
//! to a side file atomically (write, fsync, rename).

use insync_model::broker::BrokerStorage;
use insync_model::log::Log;
use insync_model::node::NodeStorage;
use insync_model::types::{Offset, Record};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Largest batch a segment may hold: a longer length field is corruption, not a batch.
pub const BATCH_BYTES_MAX: u32 = 64 * 1024 * 1024;
const FRAME_HEADER_BYTES: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// What recovery found and dropped from one segment file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub batches: usize,
    pub records: usize,
    /// Bytes after the last good batch, cut off (a torn write or corruption).
    pub truncated_bytes: u64,
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Batch {
    base_offset: Offset,
    records: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
struct BrokerMeta {
    incarnation: u32,
    high_watermark: Offset,
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

/// Storage for every actor of one process, under one directory.
pub struct DiskStorage {
    dir: PathBuf,
    segments: Mutex<HashMap<usize, Segment>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DiskStorage {
    pub fn open(dir: impl Into<PathBuf>) -> Result<DiskStorage, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(DiskStorage {
            dir,
            segments: Mutex::new(HashMap::new()),
        })
    }

    fn segment_path(&self, actor: usize) -> PathBuf {
        self.dir.join(format!("actor-{actor}.log"))
    }

    fn meta_path(&self, actor: usize) -> PathBuf {
        self.dir.join(format!("actor-{actor}.state"))
    }

    /// Saves an actor's durable state; returns once it is on disk.
    pub fn save(&self, actor: usize, storage: &NodeStorage) -> Result<(), StorageError> {
        match storage {
            NodeStorage::Broker(b) => {
                self.save_log(actor, &b.log)?;
                let meta = BrokerMeta {
                    incarnation: b.incarnation,
                    high_watermark: b.high_watermark,
                };
                self.write_side_file(actor, &(true, bincode_bytes(&meta)?))
            }
            other => self.write_side_file(actor, &(false, bincode_bytes(other)?)),
        }
    }

    /// Loads an actor's durable state, recovering its segment. `None` if it never saved.
    pub fn load(&self, actor: usize) -> Result<Option<(NodeStorage, Recovery)>, StorageError> {
        let meta_path = self.meta_path(actor);
        if !meta_path.exists() {
            return Ok(None);
        }
        let (is_broker, bytes): (bool, Vec<u8>) = read_side_file(&meta_path)?;
        if !is_broker {
            let storage = bincode::deserialize(&bytes).map_err(|e| StorageError::Corrupt {
                path: meta_path.clone(),
                reason: e.to_string(),
            })?;
            return Ok(Some((storage, Recovery::default())));
        }
        let meta: BrokerMeta = bincode::deserialize(&bytes).map_err(|e| StorageError::Corrupt {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
        let (segment, recovery) = self.recover_segment(actor)?;
        let log = segment.on_disk.clone();
        let mut segments = self.segments.lock().expect("storage lock");
        segments.insert(actor, segment);
        let high_watermark = meta.high_watermark.min(log.log_end_offset());
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

    fn open_segment(&self, actor: usize) -> Result<Segment, StorageError> {
        let path = self.segment_path(actor);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(Segment {
            file,
            path,
            on_disk: Log::new(),
            batches: Vec::new(),
            len_bytes: 0,
        })
    }

    /// Reads every good batch; cuts the file at the first bad one.
    fn recover_segment(&self, actor: usize) -> Result<(Segment, Recovery), StorageError> {
        let mut segment = self.open_segment(actor)?;
        let path = segment.path.clone();
        let mut bytes = Vec::new();
        segment.file.read_to_end(&mut bytes).map_err(io(&path))?;
        let mut recovery = Recovery::default();
        let mut pos = 0usize;
        while pos < bytes.len() {
            match parse_batch(&bytes[pos..], segment.on_disk.log_end_offset()) {
                Ok((batch, used)) => {
                    segment.batches.push((batch.base_offset, pos as u64));
                    recovery.batches += 1;
                    recovery.records += batch.records.len();
                    for r in batch.records {
                        segment.on_disk.append(r);
                    }
                    pos += used;
                }
                Err(reason) => {
                    recovery.truncated_bytes = (bytes.len() - pos) as u64;
                    recovery.reason = Some(reason);
                    break;
                }
            }
        }
        segment.len_bytes = pos as u64;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                bytes = recovery.truncated_bytes,
                reason = recovery.reason.as_deref().unwrap_or(""),
                "segment tail dropped in recovery"
            );
            segment.file.set_len(segment.len_bytes).map_err(io(&path))?;
            segment.file.sync_all().map_err(io(&path))?;
        }
        Ok((segment, recovery))
    }

    fn save_log(&self, actor: usize, log: &Log) -> Result<(), StorageError> {
        let mut segments = self.segments.lock().expect("storage lock");
        if let std::collections::hash_map::Entry::Vacant(e) = segments.entry(actor) {
            let segment = self.open_segment(actor)?;
            segment.file.set_len(0).map_err(io(&segment.path))?;
            e.insert(segment);
        }
        let segment = segments.get_mut(&actor).expect("segment just inserted");
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
            segment.batches.truncate(keep);
            segment.file.set_len(pos).map_err(io(&segment.path))?;
            segment.len_bytes = pos;
            segment.on_disk.truncate(base);
        }
        let from = segment.on_disk.log_end_offset();
        let to = log.log_end_offset();
        if from < to {
            let batch = Batch {
                base_offset: from,
                records: log.slice(from, to),
            };
            let frame = frame_batch(&batch, &segment.path)?;
            segment
                .file
                .seek(SeekFrom::Start(segment.len_bytes))
                .map_err(io(&segment.path))?;
            segment.file.write_all(&frame).map_err(io(&segment.path))?;
            segment.batches.push((from, segment.len_bytes));
            segment.len_bytes += frame.len() as u64;
            for r in batch.records {
                segment.on_disk.append(r);
            }
        }
        segment.file.sync_data().map_err(io(&segment.path))?;
        Ok(())
    }

    fn write_side_file<T: Serialize>(&self, actor: usize, value: &T) -> Result<(), StorageError> {
        let path = self.meta_path(actor);
        let tmp = path.with_extension("tmp");
        let payload = bincode_bytes(value)?;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&frame).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(())
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

fn bincode_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serialize(value).map_err(|e| StorageError::Corrupt {
        path: PathBuf::new(),
        reason: format!("cannot encode: {e}"),
    })
}

fn frame_batch(batch: &Batch, path: &Path) -> Result<Vec<u8>, StorageError> {
    let payload = bincode_bytes(batch)?;
    if payload.len() as u64 > u64::from(BATCH_BYTES_MAX) {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("batch of {} bytes exceeds {BATCH_BYTES_MAX}", payload.len()),
        });
    }
    let mut frame = Vec::with_capacity(payload.len() + FRAME_HEADER_BYTES as usize);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// One batch from the front of `bytes`, checked; the number of bytes it used.
fn parse_batch(bytes: &[u8], expected_base: Offset) -> Result<(Batch, usize), String> {
    if bytes.len() < FRAME_HEADER_BYTES as usize {
        return Err(format!("torn batch header ({} bytes)", bytes.len()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > BATCH_BYTES_MAX {
        return Err(format!("batch length {len} exceeds {BATCH_BYTES_MAX}"));
    }
    let end = FRAME_HEADER_BYTES as usize + len as usize;
    if bytes.len() < end {
        return Err(format!("torn batch: {} of {len} bytes", bytes.len() - 8));
    }
    let payload = &bytes[8..end];
    if crc32fast::hash(payload) != crc {
        return Err("batch checksum mismatch".into());
    }
    let batch: Batch =
        bincode::deserialize(payload).map_err(|e| format!("undecodable batch: {e}"))?;
    if batch.base_offset != expected_base {
        return Err(format!(
            "batch starts at offset {} where {} was expected",
            batch.base_offset, expected_base
        ));
    }
    Ok((batch, end))
}

fn read_side_file<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StorageError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 8 {
        return Err(corrupt("shorter than its header".into()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let payload = bytes
        .get(8..8 + len)
        .ok_or_else(|| corrupt("torn".into()))?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    bincode::deserialize(payload).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::types::{Epoch, Value};

    fn record(v: u32, epoch: u32) -> Record {
        Record {
            value: Value::Numbered(v),
            leader_epoch: Epoch(epoch),
            producer: None,
        }
    }

    fn broker(log: &Log, hw: u64) -> NodeStorage {
        NodeStorage::Broker(BrokerStorage {
            incarnation: 2,
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

    #[test]
    fn saves_appends_and_truncations_and_recovers_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStorage::open(dir.path()).expect("open");
        let mut log = Log::new();
        for v in 1..=3 {
            log.append(record(v, 1));
            store.save(0, &broker(&log, 1)).expect("save");
        }
        // A follower truncates its divergent suffix and takes a new leader's records.
        log.truncate(Offset(1));
        log.append(record(7, 2));
        store.save(0, &broker(&log, 2)).expect("save");

        let reopened = DiskStorage::open(dir.path()).expect("reopen");
        let (storage, recovery) = reopened.load(0).expect("load").expect("saved");
        assert_eq!(log_of(&storage), log);
        assert_eq!(recovery.truncated_bytes, 0);
        match storage {
            NodeStorage::Broker(b) => {
                assert_eq!(b.incarnation, 2);
                assert_eq!(b.high_watermark, Offset(2));
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStorage::open(dir.path()).expect("open");
        let mut log = Log::new();
        log.append(record(1, 1));
        store.save(3, &broker(&log, 0)).expect("save");
        log.append(record(2, 1));
        store.save(3, &broker(&log, 0)).expect("save");
        // Tear the last batch in half, as a power loss mid-write would.
        let path = dir.path().join("actor-3.log");
        let len = fs::metadata(&path).expect("meta").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(len - 3).expect("tear");

        let reopened = DiskStorage::open(dir.path()).expect("reopen");
        let (storage, recovery) = reopened.load(3).expect("load").expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(1));
        assert!(recovery.truncated_bytes > 0);
        assert!(recovery.reason.unwrap().contains("torn"));
    }

    #[test]
    fn flipped_byte_is_a_checksum_mismatch_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStorage::open(dir.path()).expect("open");
        let mut log = Log::new();
        log.append(record(1, 1));
        store.save(1, &broker(&log, 0)).expect("save");
        let path = dir.path().join("actor-1.log");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("write");

        let (storage, recovery) = DiskStorage::open(dir.path())
            .expect("reopen")
            .load(1)
            .expect("load")
            .expect("saved");
        assert_eq!(log_of(&storage).log_end_offset(), Offset(0));
        assert_eq!(recovery.reason.as_deref(), Some("batch checksum mismatch"));
    }

    #[test]
    fn corrupt_side_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStorage::open(dir.path()).expect("open");
        store.save(5, &NodeStorage::None).expect("save");
        fs::write(dir.path().join("actor-5.state"), b"garbage!!").expect("write");
        let err = store.load(5).expect_err("corrupt");
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }
}
