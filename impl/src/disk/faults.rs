//! Disk faults, injected: what disks and file systems do to a node's files, so that the
//! generated histories can check that storage detects or repairs each one (issue 12; the
//! approach of TigerBeetle's simulator, which damages its storage below the replica and
//! asserts that every damage is found).
//!
//! Each function below edits the files of a node that is **stopped** (its [`DiskStorage`] is
//! dropped, as after a crash): the damage is then in place when the node starts and recovers.
//! Each returns a one-line description of what it did, or `None` when it does not apply (no
//! file, no batch in the region): the caller skips the step, as a plan skips a step whose
//! precondition fails.
//!
//! [`DiskFaults`] is the one fault that hits a running node: a full disk.
//!
//! What each fault stands for, and what recovery must do about it:
//!
//! | fault | stands for | recovery |
//! |---|---|---|
//! | [`tear_tail`] | a crash in the middle of a save, before its fsync (a torn write) | cut it, and say so ([`super::Recovery::truncated_bytes`]) |
//! | [`lose_last_batch`] | an fsync that returned success while the write never reached the disk (the lost write behind "fsyncgate", PostgreSQL 2018; a volatile disk cache that lies) | refuse: the state file, written after that fsync, vouches for more records |
//! | [`flip_bit`] | a bit flipped at rest (latent sector error, misdirected write) on either side of the high-watermark checkpoint | refuse: every batch's CRC is checked at every start |
//! | [`remove_file`] | a file lost (an operator's mistake, a file system that dropped a directory entry) | refuse: `meta.json` lists the actors that saved |
//! | [`DiskFaults::fill`] | ENOSPC: no space left for the next write | the save fails, the storage fail-stops, the node stops; the half-written batch is a torn tail at the next start |
//!
//! Kafka's own log recovery CRC-checks only the segments after its recovery point (the flushed
//! offset in `recovery-point-offset-checkpoint`), so a bit flipped below it is found only when
//! a reader fetches that batch; insync's recovery reads every batch, so [`flip_bit`] damages
//! both sides of the checkpoint to show that it does.

use super::{
    decode_broker_meta, frame_batch, read_side_file, Batch, BrokerMeta, FRAME_HEADER_BYTES,
};
use insync_model::types::{Epoch, Offset, Record, Value};
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Faults a running [`super::DiskStorage`] meets on its writes ([`super::DiskStorage::with_faults`]).
#[derive(Debug, Default)]
pub struct DiskFaults {
    no_space: AtomicBool,
    writes_refused: AtomicU64,
}

impl DiskFaults {
    /// The disk is full: every later write fails with ENOSPC, after writing the first half of
    /// a segment batch (a file system may accept part of a write before it runs out of space).
    pub fn fill(&self) {
        self.no_space.store(true, Ordering::SeqCst);
    }

    /// Space again (an operator freed it); returns how many writes failed meanwhile.
    pub fn free(&self) -> u64 {
        self.no_space.store(false, Ordering::SeqCst);
        self.writes_refused.swap(0, Ordering::SeqCst)
    }

    /// Whether the disk is full.
    pub fn is_full(&self) -> bool {
        self.no_space.load(Ordering::SeqCst)
    }

    /// Writes refused since the last [`DiskFaults::free`].
    pub fn writes_refused(&self) -> u64 {
        self.writes_refused.load(Ordering::SeqCst)
    }

    /// Called before `bytes` are written to `to`: with a full disk, writes half of them and
    /// fails.
    pub(super) fn before_write(&self, to: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
        if !self.is_full() {
            return Ok(());
        }
        self.writes_refused.fetch_add(1, Ordering::SeqCst);
        to.write_all(&bytes[..bytes.len() / 2])?;
        Err(std::io::Error::other(
            "no space left on device (ENOSPC, injected)",
        ))
    }
}

/// Which side of the high-watermark checkpoint (the state file's recovery point: what the
/// node knew was committed at its last checkpoint) a bit flip lands on. Also the history
/// runner's plan vocabulary (`insync_checks::plan::Step::BitFlip`), saved with cases in
/// kebab-case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlipRegion {
    /// In a batch whose records all sit below the checkpoint: committed records.
    BelowRecoveryPoint,
    /// In a batch that holds records at or above it (the uncommitted suffix, and the final
    /// batch, where a failed checksum also looks like a torn write).
    AboveRecoveryPoint,
}

/// Which of a node's files goes missing or is damaged. Also the history runner's plan
/// vocabulary (`insync_checks::plan::Step::MissingFile`), saved with cases in kebab-case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DamagedFile {
    /// `actor-N.log`.
    Segment,
    /// `actor-N.state` (a broker's checkpoint, the controller's whole state, a consumer's
    /// offsets).
    State,
    /// The directory's `meta.json` (its identity, and the actors that saved here).
    Meta,
}

impl std::fmt::Display for DamagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DamagedFile::Segment => "segment",
            DamagedFile::State => "state file",
            DamagedFile::Meta => "meta.json",
        })
    }
}

fn path_of(dir: &Path, actor: usize, which: DamagedFile) -> PathBuf {
    match which {
        DamagedFile::Segment => segment_path(dir, actor),
        DamagedFile::State => state_path(dir, actor),
        DamagedFile::Meta => dir.join(super::META_FILE),
    }
}

fn segment_path(dir: &Path, actor: usize) -> PathBuf {
    dir.join(format!("actor-{actor}.log"))
}

fn state_path(dir: &Path, actor: usize) -> PathBuf {
    dir.join(format!("actor-{actor}.state"))
}

/// One framed batch of a segment, as far as the frames can be followed.
struct Frame {
    pos: usize,
    len: usize,
    /// The batch, when its payload decodes.
    batch: Option<Batch>,
}

/// The good frames of a segment from its start, up to the first one that does not fit the
/// file or fails its checksum (a torn tail, or damage done before).
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let header = FRAME_HEADER_BYTES as usize;
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(head) = bytes.get(pos..pos + header) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(payload) = bytes.get(pos + header..pos + header + len) else {
            break;
        };
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        out.push(Frame {
            pos,
            len: header + len,
            batch: bincode::deserialize(payload).ok(),
        });
        pos += header + len;
    }
    out
}

fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The high-watermark checkpoint in a broker's state file, if it holds one.
fn checkpoint(dir: &Path, actor: usize) -> Option<BrokerMeta> {
    let (is_broker, bytes): (bool, Vec<u8>) = read_side_file(&state_path(dir, actor)).ok()?;
    if !is_broker {
        return None;
    }
    decode_broker_meta(&bytes).ok()
}

/// What a fault did to a node's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// One line: the fault, the file, the bytes.
    pub what: String,
    /// The first record offset whose batch the fault damaged or removed (a lost fsync, a bit
    /// flip), for matching against what recovery vouched for ([`super::Recovery`]); `None`
    /// for damage that is not to a batch.
    pub first_offset: Option<Offset>,
}

impl Damage {
    fn new(what: String, first_offset: Option<Offset>) -> Option<Damage> {
        Some(Damage { what, first_offset })
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// A torn write: appends the first bytes of a batch that would have followed the segment's
/// last good one, as a save interrupted before its fsync leaves them. `written` picks how much
/// of it reached the disk: a prefix of the frame (`written % 3 == 0`), its whole length with
/// the second half never filled in (1: the size reached the disk, the data did not), or a run
/// of zeros (2: blocks allocated, never written). A torn tail already there is replaced (one
/// save is in flight at a crash; two torn tails one after the other could even add up to a
/// whole batch). Recovery must cut exactly these bytes.
pub fn tear_tail(dir: &Path, actor: usize, written: u32) -> std::io::Result<Option<Damage>> {
    let path = segment_path(dir, actor);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let all = frames(&bytes);
    let good_end = all.last().map_or(0, |f| f.pos + f.len);
    let (end, epoch) = all
        .iter()
        .rev()
        .find_map(|f| f.batch.as_ref())
        .map(|b| {
            (
                b.base_offset.plus(b.records.len()),
                b.records.last().map_or(Epoch(0), |r| r.leader_epoch),
            )
        })
        .unwrap_or((Offset::ZERO, Epoch(0)));
    let batch = Batch {
        base_offset: end,
        records: vec![Record {
            value: Value::Bytes(vec![0xa5; 8 + (written as usize % 64)].into()),
            leader_epoch: epoch,
            producer: None,
        }],
    };
    let frame = frame_batch(&batch, &path).map_err(std::io::Error::other)?;
    let (tail, how) = match written % 3 {
        0 => {
            let keep = 1 + (written as usize / 3) % (frame.len() - 1);
            (
                frame[..keep].to_vec(),
                format!("{keep} of a {}-byte batch", frame.len()),
            )
        }
        1 => {
            let mut whole = frame.clone();
            let half = whole.len() / 2;
            whole[half..].fill(0);
            (
                whole,
                format!(
                    "a {}-byte batch, its second half never written",
                    frame.len()
                ),
            )
        }
        _ => (
            vec![0; 512],
            "512 zero bytes (allocated, never written)".into(),
        ),
    };
    let mut file = OpenOptions::new().write(true).open(&path)?;
    file.set_len(good_end as u64)?;
    file.seek(SeekFrom::Start(good_end as u64))?;
    file.write_all(&tail)?;
    file.sync_all()?;
    Ok(Damage::new(
        format!(
            "torn write: {how} after byte {good_end} of {}",
            file_name(&path)
        ),
        None,
    ))
}

/// A lost fsync: the segment's last batch is gone although its fsync returned success (the
/// file is cut back to where that batch began). A torn tail after it (a later write cut
/// short) stays, moved down to where the batch began, as that later write would have left it:
/// both faults remain for recovery to find.
pub fn lose_last_batch(dir: &Path, actor: usize) -> std::io::Result<Option<Damage>> {
    let path = segment_path(dir, actor);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let Some(last) = frames(&bytes).pop() else {
        return Ok(None);
    };
    let mut kept = bytes[..last.pos].to_vec();
    kept.extend_from_slice(&bytes[last.pos + last.len..]);
    fs::write(&path, &kept)?;
    OpenOptions::new().write(true).open(&path)?.sync_all()?;
    let records = last.batch.as_ref().map_or(0, |b| b.records.len());
    Ok(Damage::new(
        format!(
            "lost fsync: the last batch ({records} records, bytes {}..{}) of {} never reached \
             the disk",
            last.pos,
            last.pos + last.len,
            file_name(&path)
        ),
        last.batch.map(|b| b.base_offset),
    ))
}

/// A bit flip at rest in a batch on the `region` side of the high-watermark checkpoint; `at`
/// picks the batch, the byte and the bit.
pub fn flip_bit(
    dir: &Path,
    actor: usize,
    region: FlipRegion,
    at: u32,
) -> std::io::Result<Option<Damage>> {
    let path = segment_path(dir, actor);
    let Some(mut bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let Some(meta) = checkpoint(dir, actor) else {
        return Ok(None);
    };
    let recovery_point = meta.high_watermark;
    let candidates: Vec<Frame> = frames(&bytes)
        .into_iter()
        .filter(|f| {
            let Some(batch) = &f.batch else { return false };
            let below = batch.base_offset.plus(batch.records.len()) <= recovery_point;
            below == (region == FlipRegion::BelowRecoveryPoint)
        })
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let at = at as usize;
    let frame = &candidates[at % candidates.len()];
    // Spread the byte over the frame independently of the batch chosen.
    let byte = frame.pos + (at.wrapping_mul(2_654_435_761) >> 7) % frame.len;
    let bit = at % 8;
    bytes[byte] ^= 1 << bit;
    fs::write(&path, &bytes)?;
    OpenOptions::new().write(true).open(&path)?.sync_all()?;
    Ok(Damage::new(
        format!(
            "bit flip: bit {bit} of byte {byte} of {} (batch at byte {}, {} the recovery point \
             {})",
            file_name(&path),
            frame.pos,
            match region {
                FlipRegion::BelowRecoveryPoint => "below",
                FlipRegion::AboveRecoveryPoint => "at or above",
            },
            recovery_point
        ),
        frame.batch.as_ref().map(|b| b.base_offset),
    ))
}

/// A missing file: removes the actor's segment or state file.
pub fn remove_file(
    dir: &Path,
    actor: usize,
    which: DamagedFile,
) -> std::io::Result<Option<Damage>> {
    let path = path_of(dir, actor, which);
    match fs::remove_file(&path) {
        Ok(()) => Ok(Damage::new(
            format!("missing file: {} removed", file_name(&path)),
            None,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A bit flipped at rest anywhere in one of a node's whole files (a state file or
/// `meta.json`; a segment's batches are [`flip_bit`]'s); `at` picks the byte and the bit.
pub fn flip_file_bit(
    dir: &Path,
    actor: usize,
    which: DamagedFile,
    at: u32,
) -> std::io::Result<Option<Damage>> {
    let path = path_of(dir, actor, which);
    let Some(mut bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    let at = at as usize;
    let byte = (at.wrapping_mul(2_654_435_761) >> 7) % bytes.len();
    let bit = at % 8;
    bytes[byte] ^= 1 << bit;
    fs::write(&path, &bytes)?;
    OpenOptions::new().write(true).open(&path)?.sync_all()?;
    Ok(Damage::new(
        format!(
            "bit flip: bit {bit} of byte {byte} of {} ({} bytes)",
            file_name(&path),
            bytes.len()
        ),
        None,
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    //! Each fault, injected into a saved broker's files, is found by the next load: refused as
    //! corruption, or (a torn write) cut and reported. Remove a check from recovery and one of
    //! these fails.
    use super::*;
    use crate::disk::{DiskError, DiskStorage, Identity, OpenMode, Recovery, StorageNode};
    use insync_model::broker::BrokerStorage;
    use insync_model::log::Log;
    use insync_model::node::NodeStorage;
    use insync_model::types::BrokerEpoch;
    use std::sync::Arc;
    use std::time::Duration;

    fn open(dir: &Path) -> DiskStorage {
        let identity = Identity::new("faults", StorageNode::InProcess).expect("id");
        DiskStorage::open(dir, &identity, OpenMode::FormatIfEmpty)
            .expect("open")
            .with_checkpoint_interval(Duration::ZERO)
    }

    fn record(v: u8, epoch: u32) -> Record {
        Record {
            value: Value::Bytes(vec![v; 8].into()),
            leader_epoch: Epoch(epoch),
            producer: None,
        }
    }

    /// Broker 0 saved `n` records, one batch per save, with the high watermark one behind the
    /// log end (so that batches lie on both sides of the checkpoint).
    fn saved(dir: &Path, n: u8) -> Log {
        let store = open(dir);
        let mut log = Log::new();
        for v in 1..=n {
            log.append(record(v, 1));
            store
                .save(
                    0,
                    &NodeStorage::Broker(BrokerStorage {
                        incarnation: BrokerEpoch(1),
                        log: log.clone(),
                        high_watermark: Offset(u64::from(v) - 1),
                        committed_ghost: Default::default(),
                    }),
                )
                .expect("save");
        }
        log
    }

    fn load(dir: &Path) -> Result<(Log, Recovery), DiskError> {
        match open(dir).load(0)?.expect("saved") {
            (NodeStorage::Broker(b), recovery) => Ok((b.log, recovery)),
            (other, _) => panic!("not a broker: {other:?}"),
        }
    }

    fn refused(dir: &Path) -> String {
        match load(dir) {
            Err(DiskError::Corrupt { reason, .. }) => reason,
            Err(other) => panic!("refused, but not as corruption: {other}"),
            Ok((log, recovery)) => panic!(
                "undetected: loaded {} records, {recovery:?}",
                log.log_end_offset()
            ),
        }
    }

    #[test]
    fn a_torn_write_is_cut_to_the_byte_and_reported() {
        for written in 0..60 {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = saved(dir.path(), 3);
            let path = segment_path(dir.path(), 0);
            let before = fs::metadata(&path).expect("meta").len();
            let what = tear_tail(dir.path(), 0, written)
                .expect("io")
                .expect("applies");
            let after = fs::metadata(&path).expect("meta").len();
            assert!(after > before, "{what}");
            let (loaded, recovery) = load(dir.path()).expect("a torn tail is repaired");
            assert_eq!(loaded, log, "{what}");
            assert_eq!(recovery.truncated_bytes, after - before, "{what}");
            assert!(recovery.reason.is_some(), "{what}");
        }
    }

    /// Found by the fuzzer: a torn prefix of 89 of 90 bytes, then a run of zeros after it,
    /// made a whole (fake) batch whenever the missing byte was a zero. A second torn write
    /// replaces the first.
    #[test]
    fn torn_writes_one_after_the_other_never_add_up_to_a_batch() {
        for (first, second) in [(0, 2), (3, 2), (1, 0), (2, 1), (0, 0)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = saved(dir.path(), 2);
            let path = segment_path(dir.path(), 0);
            let before = fs::metadata(&path).expect("meta").len();
            tear_tail(dir.path(), 0, first)
                .expect("io")
                .expect("applies");
            tear_tail(dir.path(), 0, second)
                .expect("io")
                .expect("applies");
            let after = fs::metadata(&path).expect("meta").len();
            let (loaded, recovery) = load(dir.path()).expect("repaired");
            assert_eq!(loaded, log);
            assert_eq!(recovery.truncated_bytes, after - before);
        }
        // From an empty segment, with the prefix one byte short of the whole batch.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .save(
                0,
                &NodeStorage::Broker(BrokerStorage {
                    incarnation: BrokerEpoch(1),
                    log: Log::new(),
                    high_watermark: Offset(0),
                    committed_ghost: Default::default(),
                }),
            )
            .expect("save");
        drop(store);
        for written in (0..3000).step_by(3) {
            tear_tail(dir.path(), 0, written)
                .expect("io")
                .expect("applies");
            tear_tail(dir.path(), 0, 2).expect("io").expect("applies");
            let path = segment_path(dir.path(), 0);
            assert_eq!(fs::metadata(&path).expect("meta").len(), 512, "zeros only");
        }
        let (loaded, recovery) = load(dir.path()).expect("repaired");
        assert_eq!(loaded.log_end_offset(), Offset(0));
        assert_eq!(recovery.truncated_bytes, 512);
    }

    #[test]
    fn a_lost_fsync_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        saved(dir.path(), 3);
        lose_last_batch(dir.path(), 0)
            .expect("io")
            .expect("applies");
        let reason = refused(dir.path());
        assert!(reason.contains("holds 2 records"), "{reason}");
    }

    #[test]
    fn a_bit_flip_on_either_side_of_the_recovery_point_is_refused() {
        for region in [
            FlipRegion::BelowRecoveryPoint,
            FlipRegion::AboveRecoveryPoint,
        ] {
            for at in 0..40 {
                let dir = tempfile::tempdir().expect("tempdir");
                saved(dir.path(), 4);
                let what = flip_bit(dir.path(), 0, region, at)
                    .expect("io")
                    .expect("applies");
                let reason = refused(dir.path());
                assert!(!reason.is_empty(), "{what}");
            }
        }
    }

    #[test]
    fn a_bit_flip_needs_a_batch_in_its_region() {
        let dir = tempfile::tempdir().expect("tempdir");
        // One record, high watermark 0: nothing below the recovery point.
        saved(dir.path(), 1);
        assert!(flip_bit(dir.path(), 0, FlipRegion::BelowRecoveryPoint, 3)
            .expect("io")
            .is_none());
    }

    #[test]
    fn a_missing_file_is_refused() {
        for which in [DamagedFile::Segment, DamagedFile::State] {
            let dir = tempfile::tempdir().expect("tempdir");
            saved(dir.path(), 2);
            remove_file(dir.path(), 0, which)
                .expect("io")
                .expect("applies");
            let reason = refused(dir.path());
            assert!(reason.contains("missing"), "{reason}");
            assert!(remove_file(dir.path(), 0, which).expect("io").is_none());
        }
    }

    fn controller_state() -> NodeStorage {
        use insync_model::controller::{Controller, ControllerState, FIRST_ALLOCATED_PRODUCER_ID};
        use insync_model::types::{BrokerSet, REPLICAS_MAX};
        NodeStorage::Controller(ControllerState {
            partition: Controller::initial_partition(3),
            fenced: BrokerSet::single(insync_model::types::BrokerId(1)),
            incarnations: [BrokerEpoch(7); REPLICAS_MAX],
            unclean_elections: 0,
            next_producer_id: FIRST_ALLOCATED_PRODUCER_ID + 5,
        })
    }

    /// The controller's state (what `insync controller --data-dir` saves after every step),
    /// a broker's state file and `meta.json`, each with every one of its bits flipped in turn,
    /// then removed, then cut short.
    /// Expected: the next open or load refuses every one of them (a checksum, or what
    /// `meta.json` records); none is read as a state that merely differs. Without the
    /// checksum in `meta.json`, flips that keep it valid JSON (a saved actor, the node id,
    /// the cluster id) would be believed or misreported as another node's directory.
    #[test]
    fn every_bit_flip_missing_file_or_short_file_of_the_controllers_state_and_meta_json_is_refused()
    {
        const CONTROLLER: usize = 3;
        let dir = tempfile::tempdir().expect("tempdir");
        saved(dir.path(), 2);
        let store = open(dir.path());
        store
            .save(CONTROLLER, &controller_state())
            .expect("save the controller");
        drop(store);
        let refused = |actor: usize| -> Result<(), String> {
            let store = DiskStorage::open(
                dir.path(),
                &Identity::new("faults", StorageNode::InProcess).expect("id"),
                OpenMode::Formatted,
            );
            match store.map(|s| s.load(actor)) {
                Err(_) | Ok(Err(_)) => Ok(()),
                Ok(Ok(loaded)) => Err(format!("loaded {loaded:?}")),
            }
        };
        assert!(refused(CONTROLLER).is_err(), "the intact state loads");
        assert!(refused(0).is_err(), "the intact broker loads");
        for (which, actor) in [
            (DamagedFile::State, CONTROLLER),
            (DamagedFile::State, 0),
            (DamagedFile::Meta, CONTROLLER),
            (DamagedFile::Meta, 0),
        ] {
            let path = path_of(dir.path(), actor, which);
            let pristine = fs::read(&path).expect("read");
            for byte in 0..pristine.len() {
                for bit in 0..8 {
                    let mut bytes = pristine.clone();
                    bytes[byte] ^= 1 << bit;
                    fs::write(&path, &bytes).expect("write");
                    if let Err(loaded) = refused(actor) {
                        panic!(
                            "bit {bit} of byte {byte} of {} flipped, and actor {actor} {loaded}",
                            path.display()
                        );
                    }
                }
            }
            // Cut anywhere but in trailing whitespace (a JSON file's final newline).
            let end = pristine.len()
                - pristine
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
            for len in 0..end {
                fs::write(&path, &pristine[..len]).expect("write");
                assert!(refused(actor).is_ok(), "{} cut to {len}", path.display());
            }
            fs::write(&path, &pristine).expect("restore");
            remove_file(dir.path(), actor, which)
                .expect("io")
                .expect("applies");
            assert!(refused(actor).is_ok(), "{} removed", path.display());
            fs::write(&path, &pristine).expect("restore");
            assert!(refused(actor).is_err(), "restored");
        }
        // The fault helper flips a bit the same way, and says where.
        let damage = flip_file_bit(dir.path(), CONTROLLER, DamagedFile::State, 12)
            .expect("io")
            .expect("applies");
        assert!(damage.what.contains("actor-3.state"), "{damage}");
        assert!(refused(CONTROLLER).is_ok());
    }

    #[test]
    fn a_full_disk_fails_the_save_stops_the_storage_and_leaves_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = saved(dir.path(), 2);
        let faults = Arc::new(DiskFaults::default());
        let store = open(dir.path()).with_faults(Arc::clone(&faults));
        store.load(0).expect("load").expect("saved");
        faults.fill();
        let mut longer = log.clone();
        longer.append(record(3, 1));
        let save = |log: &Log| {
            store.save(
                0,
                &NodeStorage::Broker(BrokerStorage {
                    incarnation: BrokerEpoch(1),
                    log: log.clone(),
                    high_watermark: Offset(1),
                    committed_ghost: Default::default(),
                }),
            )
        };
        let err = save(&longer).expect_err("no space");
        assert!(err.to_string().contains("ENOSPC"), "{err}");
        assert!(store.failure().is_some(), "the storage fail-stops");
        assert_eq!(faults.free(), 1);
        assert!(matches!(save(&longer), Err(DiskError::Failed(_))));
        drop(store);
        let (loaded, recovery) = load(dir.path()).expect("recovers");
        assert_eq!(loaded, log);
        assert!(recovery.truncated_bytes > 0, "{recovery:?}");
    }
}
