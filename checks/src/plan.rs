//! What a generated test does: client operations interleaved with faults and pauses.
//!
//! A [`Step`] names its target by role where Kafka's failures do (the leader, the n-th
//! follower), so a step keeps its meaning whichever broker leads when it runs. Each step has a
//! precondition that the runner checks when the step comes up: a step
//! whose precondition does not hold is skipped and leaves no trace in the history, so every
//! history is meaningful (no restart of a running broker, no heal without a partition), and a
//! shrunk plan stays a valid plan.

use serde::{Deserialize, Serialize};
use std::fmt;

// The disk faults' vocabulary is the engine's own (`insync::disk::faults`), re-exported here
// because [`Step`]'s variants name it.
pub use insync::disk::faults::{DamagedFile, FlipRegion};

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Hand the producer the next value (`1, 2, 3, ...`); its outcome arrives later.
    Send,
    /// Take what the consumer delivered since the last poll.
    Poll,
    /// Observe the consumer's committed offset.
    Commit,
    /// Let virtual time pass.
    Pause {
        ms: u64,
    },
    /// Crash the broker the controller names leader.
    CrashLeader,
    /// Crash the `rank`-th follower (modulo their number) of the current leader.
    CrashFollower {
        rank: u8,
    },
    /// Restart the broker that has been down longest.
    RestartBroker,
    /// Restart every broker that is down.
    RestartAll,
    /// Two sides: the leader with the followers whose rank bit is set in `followers`, and the
    /// clients whose bit is set in `clients` (1 = the controller, 2 = the application, which
    /// hosts the producer and the consumer); everyone else on the other side. Replaces any
    /// partition.
    Partition {
        followers: u8,
        clients: u8,
    },
    /// Heal every partition.
    Heal,
    /// Lose `percent` of messages (lossy and duplicating networks).
    Drop {
        percent: u8,
    },
    /// Deliver `percent` of messages twice (duplicating network).
    Duplicate {
        percent: u8,
    },
    /// Delay every message: a fixed amount on a FIFO network, up to `ms` (reordering) on a
    /// duplicating one.
    Delay {
        ms: u64,
    },
    /// Back to a clean network (partitions stay until `Heal`).
    ClearNetwork,
    /// Slow every message to and from the `rank`-th follower by `ms`.
    SlowFollower {
        rank: u8,
        ms: u64,
    },
    CrashConsumer,
    RestartConsumer,
    /// Crash the controller (`--controller-faults`). The engine's controller is durable: it
    /// recovers its state when it restarts, so its epochs never go backwards (the model's
    /// controller never crashes; this checks the engine's persistence of it).
    CrashController,
    RestartController,
    /// Disk faults (`--disk-faults`; the runner then keeps brokers' state in files). They
    /// all hit one broker per history, the first one they hit (the damaged broker), so that
    /// every acknowledged record keeps an undamaged replica at rf=3, min.insync.replicas=2
    /// (unless the ISR had shrunk to the damaged broker alone when the high watermark passed
    /// the record, as `--hw-rule isr` allows).
    /// The file faults hit the damaged broker while it is down (before any is, the broker
    /// down longest); see `insync::disk::faults` for what each stands for.
    ///
    /// A save interrupted before its fsync: `written` picks how much of the next batch
    /// reached the disk.
    TornWrite {
        written: u32,
    },
    /// The segment's last batch never reached the disk, though its fsync returned success.
    LostFsync,
    /// One bit flipped at rest on one side of the high-watermark checkpoint; `at` picks the
    /// batch, byte and bit.
    BitFlip {
        region: FlipRegion,
        at: u32,
    },
    /// A file of the broker's is gone.
    MissingFile {
        file: DamagedFile,
    },
    /// One bit flipped at rest anywhere in a whole file of the broker's: its state file or its
    /// directory's `meta.json`; `at` picks the byte and the bit.
    FileBitFlip {
        file: DamagedFile,
        at: u32,
    },
    /// The damaged broker's disk fills up while it runs (before any is damaged, the
    /// leader's): its next write fails with ENOSPC.
    DiskFull,
}

/// Client bits of [`Step::Partition`].
pub const CONTROLLER_BIT: u8 = 1;
pub const APPLICATION_BIT: u8 = 2;

impl Step {
    /// Whether this step is a fault or a repair (the nemesis), as opposed to a client operation
    /// or a pause.
    pub fn is_fault(&self) -> bool {
        !matches!(
            self,
            Step::Send | Step::Poll | Step::Commit | Step::Pause { .. }
        )
    }

    /// Whether this step damages a broker's storage (the runner then keeps state in files).
    pub fn is_disk_fault(&self) -> bool {
        matches!(
            self,
            Step::TornWrite { .. }
                | Step::LostFsync
                | Step::BitFlip { .. }
                | Step::MissingFile { .. }
                | Step::FileBitFlip { .. }
                | Step::DiskFull
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Send => write!(f, "send"),
            Step::Poll => write!(f, "poll"),
            Step::Commit => write!(f, "commit"),
            Step::Pause { ms } => write!(f, "pause {ms}ms"),
            Step::CrashLeader => write!(f, "crash the leader"),
            Step::CrashFollower { rank } => write!(f, "crash follower #{rank}"),
            Step::RestartBroker => write!(f, "restart a broker"),
            Step::RestartAll => write!(f, "restart every broker"),
            Step::Partition { followers, clients } => {
                write!(
                    f,
                    "partition (leader with followers {followers:#b}, clients {clients:#b})"
                )
            }
            Step::Heal => write!(f, "heal"),
            Step::Drop { percent } => write!(f, "drop {percent}% of messages"),
            Step::Duplicate { percent } => write!(f, "duplicate {percent}% of messages"),
            Step::Delay { ms } => write!(f, "delay messages {ms}ms"),
            Step::ClearNetwork => write!(f, "clear drops and duplicates"),
            Step::SlowFollower { rank, ms } => write!(f, "slow follower #{rank} by {ms}ms"),
            Step::CrashConsumer => write!(f, "crash the consumer"),
            Step::RestartConsumer => write!(f, "restart the consumer"),
            Step::CrashController => write!(f, "crash the controller"),
            Step::RestartController => write!(f, "restart the controller"),
            Step::TornWrite { written } => write!(f, "torn write on a down broker ({written})"),
            Step::LostFsync => write!(f, "lost fsync on a down broker"),
            Step::BitFlip { region, at } => {
                let side = match region {
                    FlipRegion::BelowRecoveryPoint => "below",
                    FlipRegion::AboveRecoveryPoint => "above",
                };
                write!(
                    f,
                    "bit flip {side} the recovery point on a down broker ({at})"
                )
            }
            Step::MissingFile { file } => write!(f, "missing {file} on a down broker"),
            Step::FileBitFlip { file, at } => {
                write!(f, "bit flip in the {file} of a down broker ({at})")
            }
            Step::DiskFull => write!(f, "fill a running broker's disk"),
        }
    }
}

/// A plan: the steps, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether any step is a disk fault.
    pub fn has_disk_faults(&self) -> bool {
        self.steps.iter().any(Step::is_disk_fault)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "{:>3}. {s}", i + 1)?;
        }
        Ok(())
    }
}
