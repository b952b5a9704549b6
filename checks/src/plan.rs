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
        }
    }
}

/// A plan: the steps, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "{:>3}. {s}", i + 1)?;
        }
        Ok(())
    }
}
