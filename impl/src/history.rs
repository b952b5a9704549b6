//! What clients saw, Jepsen-style: every operation's invocation and its completion.
//!
//! A history is a list of [`Op`]s in the order they happened. A client operation appears twice:
//! once as an invocation ([`OpType::Invoke`]) and once as a completion ([`OpType::Ok`],
//! [`OpType::Fail`] for a definite failure, [`OpType::Info`] for an indeterminate one). Faults
//! (the nemesis) and the final read appear once, as [`OpType::Info`].
//!
//! Values are unique per send (`1, 2, 3, ...`), so a value names its send.

use insync_model::types::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The smallest record that carries a history value: the value and the run's id.
pub const RECORD_BYTES_MIN: usize = 16;

/// A record's bytes for history value `value` of run `run`: the value and the run's id, 8
/// little-endian bytes each, then zeros up to `size` (so a shared cluster's log, which holds
/// earlier runs' records too, can be judged by one run's records only). `insync run` and the
/// history runner send their records so.
pub fn encode_value(value: u64, run: u64, size: usize) -> Vec<u8> {
    let mut v = value.to_le_bytes().to_vec();
    v.extend_from_slice(&run.to_le_bytes());
    v.resize(size.max(RECORD_BYTES_MIN), 0);
    v
}

/// The history value of a record of run `run` ([`encode_value`]); `None` for any other.
pub fn decode_value(value: &Value, run: u64) -> Option<u64> {
    match value {
        Value::Bytes(b) => decode_bytes(b, run),
        Value::Numbered(_) => None,
    }
}

/// [`decode_value`] of a record's bytes.
pub fn decode_bytes(bytes: &[u8], run: u64) -> Option<u64> {
    let value = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let of_run = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    (of_run == run).then_some(value)
}

/// Who did an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Process {
    Producer,
    Consumer,
    /// The fault injector.
    Nemesis,
    /// The checker's read of the final leader's log after every fault is healed.
    Final,
}

/// Jepsen's operation types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpType {
    Invoke,
    /// Completed, and it took effect.
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// Indeterminate: may or may not have taken effect (timeouts, errors after an append).
    Info,
}

/// One record a consumer (or the final read) saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Read {
    pub offset: u64,
    pub value: u64,
}

/// What an operation was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "f")]
pub enum Fun {
    /// Send `value`; on `Ok`, `offset` is where it was acknowledged; on `Fail`/`Info`, `error`
    /// is Kafka's name for why.
    Send {
        value: u64,
        offset: Option<u64>,
        error: Option<String>,
        /// Which of the application's producers sent it (`insync run --producers`): the
        /// order of acknowledged offsets is checked per producer. Absent means producer 0.
        #[serde(default, skip_serializing_if = "is_zero")]
        producer: u32,
    },
    /// Records the consumer handed over since the previous poll, in delivery order.
    Poll { records: Vec<Read> },
    /// The consumer's committed offset (it commits as `--consumer-commit` says; this observes
    /// the position a restarted consumer resumes from).
    Commit { offset: Option<u64> },
    /// A fault or its repair, described in one line.
    Nemesis { what: String },
    /// The final leader's log below its high watermark, as a consumer reading from offset 0
    /// after the drain would see it.
    FinalRead {
        leader: Option<u8>,
        records: Vec<Read>,
    },
    /// A disk fault injected into a broker's storage, or what that storage reported
    /// (`--disk-faults`).
    Disk { broker: u8, event: DiskEvent },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The disk faults a history injects (see `insync::disk::faults` for what each stands for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFault {
    TornWrite,
    LostFsync,
    BitFlip,
    MissingFile,
    DiskFull,
}

impl DiskFault {
    /// `torn-write`, `lost-fsync`, `bit-flip`, `missing-file`, `disk-full`.
    pub fn name(self) -> &'static str {
        match self {
            DiskFault::TornWrite => "torn-write",
            DiskFault::LostFsync => "lost-fsync",
            DiskFault::BitFlip => "bit-flip",
            DiskFault::MissingFile => "missing-file",
            DiskFault::DiskFull => "disk-full",
        }
    }

    /// What storage must report after this fault, in the words of [`DiskEvent`].
    pub fn expected_report(self) -> &'static str {
        match self {
            DiskFault::TornWrite => "a recovery that cuts a torn tail (or refuses to start)",
            DiskFault::LostFsync | DiskFault::BitFlip => {
                "a refused start (corruption), or a recovery that reports the damaged batch's \
                 offset as unverified (past a periodic checkpoint, after an unclean shutdown) \
                 or, with --elr, as damaged (the intact prefix salvaged)"
            }
            DiskFault::MissingFile => {
                "a refused start (corruption), or with --elr a missing segment salvaged \
                 (damaged from offset 0)"
            }
            DiskFault::DiskFull => "a failed write (or none attempted while the disk was full)",
        }
    }

    /// Whether `report`, the next thing the broker's storage said after this fault, reports it.
    /// `first_offset` is the first offset of the batch the fault damaged or removed (see
    /// [`DiskEvent::Injected`]): a recovery that reports that offset as unverified reports
    /// the fault (the storage says it cannot vouch for it), one that vouches for it does not.
    pub fn is_reported_by(self, first_offset: Option<u64>, report: &DiskEvent) -> bool {
        match (self, report) {
            (DiskFault::DiskFull, DiskEvent::WriteFailed { .. }) => true,
            (DiskFault::DiskFull, DiskEvent::SpaceFreed { writes_refused }) => *writes_refused == 0,
            (DiskFault::DiskFull, _) => false,
            (_, DiskEvent::Refused { .. }) => true,
            // A salvaged segment is cut from `from` on and reported: every fault in what
            // was cut is reported with it (a torn write under a later missing segment too).
            (
                _,
                DiskEvent::Recovered {
                    damaged_from: Some(from),
                    ..
                },
            ) => first_offset.is_none_or(|o| o >= *from),
            (
                DiskFault::LostFsync | DiskFault::BitFlip,
                DiskEvent::Recovered {
                    unverified_from: Some(from),
                    ..
                },
            ) => first_offset.is_some_and(|o| o >= *from),
            (
                DiskFault::TornWrite,
                DiskEvent::Recovered {
                    truncated_bytes, ..
                },
            ) => *truncated_bytes > 0,
            _ => false,
        }
    }
}

/// One disk event of a broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum DiskEvent {
    /// The nemesis damaged the broker's files (it was down) or filled its disk (running).
    /// `first_offset`: the first offset of the batch it damaged or removed (a lost fsync, a
    /// bit flip).
    Injected {
        fault: DiskFault,
        what: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_offset: Option<u64>,
    },
    /// The broker started on its files; recovery cut `truncated_bytes` of a torn tail. After
    /// an unclean shutdown that followed a periodic checkpoint, `unverified_from` is the offset
    /// from which on the storage cannot vouch for what it saved (`insync::disk::Recovery`);
    /// `log_end_offset` is where the recovered log ends.
    Recovered {
        truncated_bytes: u64,
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unverified_from: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_end_offset: Option<u64>,
        /// With `--elr`: recovery found the segment damaged and kept the records before
        /// this offset (`insync::disk::Recovery::damaged_from`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        damaged_from: Option<u64>,
    },
    /// Storage refused to start the broker: damaged (it stays down, fail-stop).
    Refused { reason: String },
    /// A save failed: the storage takes no more writes and the broker stopped.
    WriteFailed { reason: String },
    /// The disk has space again; `writes_refused` writes failed while it was full.
    SpaceFreed { writes_refused: u64 },
}

impl fmt::Display for DiskEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskEvent::Injected { what, .. } => f.write_str(what),
            DiskEvent::Recovered {
                truncated_bytes,
                reason,
                unverified_from,
                log_end_offset,
                damaged_from,
            } => {
                if let Some(from) = damaged_from {
                    write!(
                        f,
                        "recovered a damaged segment ({}), keeping the records before offset \
                         {from}",
                        reason.as_deref().unwrap_or("no reason given")
                    )?;
                    if let Some(end) = log_end_offset {
                        write!(f, ", log end {end}")?;
                    }
                    return f.write_str(
                        "; it restarts after an unclean shutdown, out of the ISR and the ELR",
                    );
                }
                match truncated_bytes {
                    0 => write!(f, "recovered its files intact")?,
                    n => write!(
                        f,
                        "recovered, cutting a {n}-byte torn tail ({})",
                        reason.as_deref().unwrap_or("no reason given")
                    )?,
                }
                if let Some(end) = log_end_offset {
                    write!(f, ", log end {end}")?;
                }
                match unverified_from {
                    Some(from) => write!(
                        f,
                        "; unverified from offset {from} on (an unclean shutdown after a \
                         periodic checkpoint: a batch saved after it and lost is not seen)"
                    ),
                    None => Ok(()),
                }
            }
            DiskEvent::Refused { reason } => write!(f, "start refused: {reason}"),
            DiskEvent::WriteFailed { reason } => {
                write!(f, "write failed, broker stopped: {reason}")
            }
            DiskEvent::SpaceFreed { writes_refused } => {
                write!(
                    f,
                    "disk space freed ({writes_refused} writes refused while full)"
                )
            }
        }
    }
}

/// One entry of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history.
    pub index: usize,
    /// Virtual time since the cluster started, in milliseconds.
    pub at_ms: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub op_type: OpType,
    #[serde(flatten)]
    pub fun: Fun,
}

/// A whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Appends an operation, numbering it.
    pub fn push(&mut self, at_ms: u64, process: Process, op_type: OpType, fun: Fun) -> usize {
        let index = self.ops.len();
        self.ops.push(Op {
            index,
            at_ms,
            process,
            op_type,
            fun,
        });
        index
    }

    /// How many client operations (invocations) and faults it holds: the size a reader cares
    /// about.
    pub fn operation_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| o.op_type == OpType::Invoke || o.process == Process::Nemesis)
            .count()
    }
}

impl Process {
    /// `producer`, `consumer`, `nemesis`, `final`: as the history's lines name it.
    pub fn name(self) -> &'static str {
        match self {
            Process::Producer => "producer",
            Process::Consumer => "consumer",
            Process::Nemesis => "nemesis",
            Process::Final => "final",
        }
    }
}

impl OpType {
    /// `invoke`, `ok`, `fail`, `info`.
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

impl Op {
    /// What the operation was, the end of its line: `send 3 @ offset 2`, `poll [0:1 1:2]`,
    /// `crash broker 1 (the leader)`.
    pub fn describe(&self) -> String {
        match &self.fun {
            Fun::Send {
                value,
                offset,
                error,
                ..
            } => {
                let mut s = format!("send {value}");
                if let Some(o) = offset {
                    s.push_str(&format!(" @ offset {o}"));
                }
                if let Some(e) = error {
                    s.push_str(&format!(" ({e})"));
                }
                s
            }
            Fun::Poll { .. } if self.op_type == OpType::Invoke => "poll".to_string(),
            Fun::Poll { records } => format!("poll {}", render_reads(records)),
            Fun::Commit { offset: Some(o) } => format!("commit (committed offset {o})"),
            Fun::Commit { offset: None } => "commit".to_string(),
            Fun::Nemesis { what } => what.clone(),
            Fun::Disk { broker, event } => format!("disk of broker {broker}: {event}"),
            Fun::FinalRead { leader, records } => match leader {
                Some(b) => format!("final read of broker {b}: {}", render_reads(records)),
                None => format!("final read: no leader {}", render_reads(records)),
            },
        }
    }
}

impl fmt::Display for Op {
    /// One line per operation: `  12   350ms producer  ok      send 3 @ offset 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>4} {:>7}ms {:<8} {:<6} {}",
            self.index,
            self.at_ms,
            self.process.name(),
            self.op_type.name(),
            self.describe()
        )
    }
}

/// `[0:1 1:2 2:5]` (offset:value), shortened in the middle when long.
pub fn render_reads(records: &[Read]) -> String {
    const SHOWN_MAX: usize = 24;
    let show = |r: &Read| format!("{}:{}", r.offset, r.value);
    let parts: Vec<String> = if records.len() <= SHOWN_MAX {
        records.iter().map(show).collect()
    } else {
        let head = records[..SHOWN_MAX / 2].iter().map(show);
        let tail = records[records.len() - SHOWN_MAX / 2..].iter().map(show);
        head.chain(std::iter::once(format!(
            "... {} more ...",
            records.len() - SHOWN_MAX
        )))
        .chain(tail)
        .collect()
    };
    format!("[{}]", parts.join(" "))
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// Writes histories by hand (tests, examples): each call appends the operations of one client
/// call, one millisecond apart.
#[derive(Default)]
pub struct Builder {
    history: History,
    now_ms: u64,
    /// The producer of the sends written next.
    producer: u32,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    fn push(&mut self, process: Process, op_type: OpType, fun: Fun) -> usize {
        self.now_ms += 1;
        self.history.push(self.now_ms, process, op_type, fun)
    }

    fn send(&self, value: u64, offset: Option<u64>, error: Option<&str>) -> Fun {
        Fun::Send {
            value,
            offset,
            error: error.map(str::to_string),
            producer: self.producer,
        }
    }

    /// The sends written next are producer `producer`'s (0 until said otherwise).
    pub fn producer(&mut self, producer: u32) -> &mut Builder {
        self.producer = producer;
        self
    }

    /// Invokes a send of `value` without completing it.
    pub fn send_invoke(&mut self, value: u64) -> &mut Builder {
        self.push(
            Process::Producer,
            OpType::Invoke,
            self.send(value, None, None),
        );
        self
    }

    /// Completes an invoked send as acknowledged at `offset`.
    pub fn send_acked(&mut self, value: u64, offset: u64) -> &mut Builder {
        self.push(
            Process::Producer,
            OpType::Ok,
            self.send(value, Some(offset), None),
        );
        self
    }

    /// A send, acknowledged at `offset`.
    pub fn send_ok(&mut self, value: u64, offset: u64) -> &mut Builder {
        self.send_invoke(value).send_acked(value, offset)
    }

    /// A send that definitely failed.
    pub fn send_fail(&mut self, value: u64, error: &str) -> &mut Builder {
        self.send_invoke(value);
        self.push(
            Process::Producer,
            OpType::Fail,
            self.send(value, None, Some(error)),
        );
        self
    }

    /// A send whose outcome is unknown.
    pub fn send_info(&mut self, value: u64, error: &str) -> &mut Builder {
        self.send_invoke(value);
        self.push(
            Process::Producer,
            OpType::Info,
            self.send(value, None, Some(error)),
        );
        self
    }

    /// A poll that returned `(offset, value)` records.
    pub fn poll(&mut self, records: &[(u64, u64)]) -> &mut Builder {
        let records = reads(records);
        self.push(
            Process::Consumer,
            OpType::Invoke,
            Fun::Poll {
                records: Vec::new(),
            },
        );
        self.push(Process::Consumer, OpType::Ok, Fun::Poll { records });
        self
    }

    /// The consumer reported committed offset `offset`.
    pub fn commit(&mut self, offset: u64) -> &mut Builder {
        self.push(
            Process::Consumer,
            OpType::Invoke,
            Fun::Commit { offset: None },
        );
        self.push(
            Process::Consumer,
            OpType::Ok,
            Fun::Commit {
                offset: Some(offset),
            },
        );
        self
    }

    pub fn nemesis(&mut self, what: &str) -> &mut Builder {
        self.push(
            Process::Nemesis,
            OpType::Info,
            Fun::Nemesis {
                what: what.to_string(),
            },
        );
        self
    }

    /// The final leader's log.
    pub fn final_read(&mut self, leader: u8, records: &[(u64, u64)]) -> &mut Builder {
        let records = reads(records);
        self.push(
            Process::Final,
            OpType::Ok,
            Fun::FinalRead {
                leader: Some(leader),
                records,
            },
        );
        self
    }

    pub fn build(&self) -> History {
        self.history.clone()
    }
}

fn reads(records: &[(u64, u64)]) -> Vec<Read> {
    records
        .iter()
        .map(|&(offset, value)| Read { offset, value })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salvaged(from: u64) -> DiskEvent {
        DiskEvent::Recovered {
            truncated_bytes: 0,
            reason: Some("the segment is missing".into()),
            unverified_from: None,
            log_end_offset: Some(from),
            damaged_from: Some(from),
        }
    }

    /// A salvaged segment reports every fault in what it cut, and none below it.
    #[test]
    fn a_salvaged_segment_reports_the_faults_in_what_it_cut() {
        for fault in [
            DiskFault::TornWrite,
            DiskFault::LostFsync,
            DiskFault::BitFlip,
            DiskFault::MissingFile,
        ] {
            assert!(fault.is_reported_by(Some(3), &salvaged(3)), "{fault:?}");
            assert!(fault.is_reported_by(None, &salvaged(0)), "{fault:?}");
            assert!(!fault.is_reported_by(Some(2), &salvaged(3)), "{fault:?}");
        }
        assert!(!DiskFault::DiskFull.is_reported_by(None, &salvaged(0)));
    }
}
