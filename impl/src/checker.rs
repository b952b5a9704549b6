//! The history checker: reads a [`History`] and names every anomaly it shows, each with the
//! operations that show it.
//!
//! The anomalies, in Kafka's terms (one partition, one consumer, one producer or several
//! whose sends are told apart by `Fun::Send::producer`):
//!
//! | name | meaning |
//! |---|---|
//! | `lost-write` | an acknowledged record is not held at the end: the final leader's log lacks it, or (without a final leader) later offsets were read, or it was read itself, then vanished |
//! | `duplicate` | one sent value appears at two offsets |
//! | `inconsistent-offsets` | one offset, two values (between reads, or a read and an acknowledgement) |
//! | `aborted-read` | a send that definitely failed was read |
//! | `read-uncommitted` | the consumer read a record the final leader does not hold at that offset |
//! | `poll-skip` | the consumer jumped over offsets it never read (or committed past them) |
//! | `nonmonotonic-poll` | the consumer read an offset at or below one it had already read |
//! | `nonmonotonic-send` | a later send of the same producer was acknowledged at an offset at or below an earlier one's |
//! | `unseen` | acknowledged, never read by the consumer after the drain (and not a lost write: the final leader holds it, or no leader was found at the end) |
//! | `undetected-corruption` | a disk fault injected into a broker's storage that the storage never reported: the broker started on damaged files as if they were whole (a torn write must at least be cut and said so) |
//!
//! An indeterminate send (`info`) is neither acknowledged nor failed: it may appear or not.
//! "Held at the end" means in the final read, the final leader's log after every fault is
//! healed; a history without a final read (or whose final read found no leader) is judged on
//! the consumer's reads alone.

use crate::history::{DiskEvent, Fun, History, OpType, Process, Read};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The anomalies the checker names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    LostWrite,
    Duplicate,
    InconsistentOffsets,
    AbortedRead,
    ReadUncommitted,
    PollSkip,
    NonmonotonicPoll,
    NonmonotonicSend,
    Unseen,
    UndetectedCorruption,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 10] = [
        AnomalyKind::LostWrite,
        AnomalyKind::Duplicate,
        AnomalyKind::InconsistentOffsets,
        AnomalyKind::AbortedRead,
        AnomalyKind::ReadUncommitted,
        AnomalyKind::PollSkip,
        AnomalyKind::NonmonotonicPoll,
        AnomalyKind::NonmonotonicSend,
        AnomalyKind::Unseen,
        AnomalyKind::UndetectedCorruption,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::LostWrite => "lost-write",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::InconsistentOffsets => "inconsistent-offsets",
            AnomalyKind::AbortedRead => "aborted-read",
            AnomalyKind::ReadUncommitted => "read-uncommitted",
            AnomalyKind::PollSkip => "poll-skip",
            AnomalyKind::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyKind::NonmonotonicSend => "nonmonotonic-send",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::UndetectedCorruption => "undetected-corruption",
        }
    }

    pub fn from_name(name: &str) -> Option<AnomalyKind> {
        AnomalyKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One anomaly: what, in a sentence, and the history indices of the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub about: String,
    pub ops: Vec<usize>,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<String> = self.ops.iter().map(|i| i.to_string()).collect();
        write!(f, "{}: {} (ops {})", self.kind, self.about, ops.join(", "))
    }
}

/// What a `lost-write` says when a broker restarted without the record after an unclean
/// shutdown, its storage reporting that offset as unverified: the loss Kafka has too before
/// KIP-966, when the last ISR member comes back from a power loss without what it had
/// acknowledged and leads (the model's matrix row `async-flush-last-replica`). With
/// `--elr --hw-rule min-isr` the controller takes such a broker out of the ISR and the ELR.
pub const LAST_REPLICA_STANDING: &str = "the last-replica-standing loss Kafka also has without \
     KIP-966 (--elr --hw-rule min-isr prevents it)";

impl Anomaly {
    /// A `lost-write`, or what follows from a record gone (`read-uncommitted`,
    /// `nonmonotonic-poll`, an `unseen` the final leader does not hold), after an unclean
    /// restart of a broker that came back without that offset (see [`LAST_REPLICA_STANDING`]).
    pub fn is_last_replica_standing_loss(&self) -> bool {
        self.about.contains(LAST_REPLICA_STANDING)
    }
}

/// The checker's verdict on a history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub anomalies: Vec<Anomaly>,
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub read: usize,
    /// How many anomalies of each kind the history shows, all of them (`anomalies` lists at
    /// most [`ANOMALIES_PER_KIND_MAX`] of a kind). `insync run`'s `lost` is the `lost-write`
    /// count.
    #[serde(default)]
    pub counts: BTreeMap<AnomalyKind, usize>,
}

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    pub fn kinds(&self) -> BTreeSet<AnomalyKind> {
        self.anomalies.iter().map(|a| a.kind).collect()
    }

    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies.iter().any(|a| a.kind == kind)
    }

    /// The first anomaly of `kind`.
    pub fn first(&self, kind: AnomalyKind) -> Option<&Anomaly> {
        self.anomalies.iter().find(|a| a.kind == kind)
    }

    /// How many anomalies of `kind` the history shows (all of them, not only those listed).
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }
}

/// Most anomalies of one kind reported: one history can show thousands of the same.
pub const ANOMALIES_PER_KIND_MAX: usize = 20;

/// A send as the history tells it.
#[derive(Clone, Debug, Default)]
struct SendSeen {
    /// The application's producer that sent it.
    producer: u32,
    invoke: Option<usize>,
    /// The completion's index, type and (when acknowledged) offset.
    completion: Option<(usize, OpType, Option<u64>)>,
}

impl SendSeen {
    fn acked_at(&self) -> Option<u64> {
        match self.completion {
            Some((_, OpType::Ok, offset)) => offset,
            _ => None,
        }
    }

    fn ops(&self) -> Vec<usize> {
        self.invoke
            .into_iter()
            .chain(self.completion.map(|(i, _, _)| i))
            .collect()
    }
}

/// A read with the operation it came from.
#[derive(Clone, Copy, Debug)]
struct ReadAt {
    op: usize,
    read: Read,
}

struct Facts {
    /// By value.
    sends: BTreeMap<u64, SendSeen>,
    /// The consumer's reads, in delivery order.
    consumer: Vec<ReadAt>,
    /// The final read, with its operation.
    last: Option<(usize, Vec<Read>)>,
    /// Committed offsets the consumer reported.
    commits: Vec<(usize, u64)>,
    /// Recoveries after an unclean shutdown that vouched for less than the broker saved:
    /// (operation, broker, unverified from, log end).
    unverified: Vec<(usize, u8, u64, u64)>,
}

impl Facts {
    /// Why a record acknowledged at `offset` may be gone in a way Kafka allows too: a broker
    /// came back without it from an unclean shutdown, its storage unable to vouch for it.
    fn unclean_restart_without(&self, offset: u64) -> Option<String> {
        let &(op, broker, from, end) = self
            .unverified
            .iter()
            .find(|&&(_, _, from, end)| from <= offset && end <= offset)?;
        Some(format!(
            "; broker {broker} restarted after an unclean shutdown without it (op {op}: log end \
             {end}, unverified from offset {from} on): {LAST_REPLICA_STANDING}"
        ))
    }
}

fn facts(history: &History) -> Facts {
    let mut sends: BTreeMap<u64, SendSeen> = BTreeMap::new();
    let mut consumer = Vec::new();
    let mut last = None;
    let mut commits = Vec::new();
    let mut unverified = Vec::new();
    for op in &history.ops {
        match &op.fun {
            Fun::Disk {
                broker,
                event:
                    DiskEvent::Recovered {
                        unverified_from: Some(from),
                        log_end_offset: Some(end),
                        ..
                    },
            } => unverified.push((op.index, *broker, *from, *end)),
            Fun::Send {
                value,
                offset,
                producer,
                ..
            } => {
                let seen = sends.entry(*value).or_default();
                seen.producer = *producer;
                match op.op_type {
                    OpType::Invoke => seen.invoke = Some(op.index),
                    t => seen.completion = Some((op.index, t, *offset)),
                }
            }
            Fun::Poll { records } if op.op_type == OpType::Ok => {
                consumer.extend(records.iter().map(|&read| ReadAt { op: op.index, read }));
            }
            Fun::Commit { offset: Some(c) } if op.op_type == OpType::Ok => {
                commits.push((op.index, *c));
            }
            // With no leader at the end (the partition stayed offline), nothing can be judged
            // against the final log: the consumer's reads are all there is.
            Fun::FinalRead {
                leader: Some(_),
                records,
            } if op.process == Process::Final => {
                last = Some((op.index, records.clone()));
            }
            _ => {}
        }
    }
    Facts {
        sends,
        consumer,
        last,
        commits,
        unverified,
    }
}

/// Collects anomalies, at most [`ANOMALIES_PER_KIND_MAX`] of each kind.
#[derive(Default)]
struct Found {
    anomalies: Vec<Anomaly>,
    per_kind: BTreeMap<AnomalyKind, usize>,
}

impl Found {
    fn add(&mut self, kind: AnomalyKind, about: String, mut ops: Vec<usize>) {
        let n = self.per_kind.entry(kind).or_default();
        *n += 1;
        if *n > ANOMALIES_PER_KIND_MAX {
            return;
        }
        ops.sort_unstable();
        ops.dedup();
        self.anomalies.push(Anomaly { kind, about, ops });
    }
}

/// Checks a history and names its anomalies.
pub fn check_history(history: &History) -> Verdict {
    let facts = facts(history);
    let mut found = Found::default();
    check_sends(&facts, &mut found);
    check_values(&facts, &mut found);
    check_polls(&facts, &mut found);
    check_uncommitted(&facts, &mut found);
    check_disk(history, &mut found);
    let count = |t: OpType| {
        facts
            .sends
            .values()
            .filter(|s| s.completion.is_some_and(|(_, ct, _)| ct == t))
            .count()
    };
    let mut anomalies = std::mem::take(&mut found.anomalies);
    anomalies.sort_by_key(|a| (a.kind, a.ops.first().copied()));
    Verdict {
        anomalies,
        acknowledged: count(OpType::Ok),
        failed: count(OpType::Fail),
        indeterminate: count(OpType::Info)
            + facts
                .sends
                .values()
                .filter(|s| s.completion.is_none())
                .count(),
        read: facts.consumer.len(),
        counts: found.per_kind,
    }
}

/// `undetected-corruption`: every disk fault injected into a broker is reported by the next
/// thing that broker's storage says (see [`crate::history::DiskFault::is_reported_by`]); a fault
/// after which the storage never spoke again is unreported too.
fn check_disk(history: &History, found: &mut Found) {
    for op in &history.ops {
        let Fun::Disk {
            broker,
            event:
                DiskEvent::Injected {
                    fault,
                    what,
                    first_offset,
                },
        } = &op.fun
        else {
            continue;
        };
        let report = history.ops[op.index + 1..]
            .iter()
            .find_map(|o| match &o.fun {
                Fun::Disk { broker: b, event } if b == broker => {
                    (!matches!(event, DiskEvent::Injected { .. })).then_some((o.index, event))
                }
                _ => None,
            });
        match report {
            Some((_, event)) if fault.is_reported_by(*first_offset, event) => {}
            Some((at, event)) => found.add(
                AnomalyKind::UndetectedCorruption,
                format!(
                    "broker {broker}: {what}; expected {}, but its storage reported: {event}",
                    fault.expected_report()
                ),
                vec![op.index, at],
            ),
            None => found.add(
                AnomalyKind::UndetectedCorruption,
                format!(
                    "broker {broker}: {what}; expected {}, but its storage never reported \
                     anything after it",
                    fault.expected_report()
                ),
                vec![op.index],
            ),
        }
    }
}

/// `lost-write`, `unseen`, `aborted-read`, `nonmonotonic-send`.
fn check_sends(facts: &Facts, found: &mut Found) {
    let consumer_values: BTreeSet<u64> = facts.consumer.iter().map(|r| r.read.value).collect();
    let final_values: Option<BTreeSet<u64>> = facts
        .last
        .as_ref()
        .map(|(_, records)| records.iter().map(|r| r.value).collect());
    // Every read, consumer's and final, to find what was seen beyond an offset.
    let all_reads: Vec<ReadAt> =
        facts
            .consumer
            .iter()
            .copied()
            .chain(facts.last.iter().flat_map(|(op, records)| {
                records.iter().map(move |&read| ReadAt { op: *op, read })
            }))
            .collect();
    // The first read of each value, among all reads and among the consumer's.
    let mut first_read: BTreeMap<u64, ReadAt> = BTreeMap::new();
    for r in &all_reads {
        first_read.entry(r.read.value).or_insert(*r);
    }
    let mut first_consumer_read: BTreeMap<u64, ReadAt> = BTreeMap::new();
    for r in &facts.consumer {
        first_consumer_read.entry(r.read.value).or_insert(*r);
    }
    // Per producer: (offset, value) of the highest acknowledgement so far.
    let mut highest_acked: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for (&value, send) in &facts.sends {
        match send.completion {
            Some((fail, OpType::Fail, _)) => {
                if let Some(r) = first_read.get(&value) {
                    found.add(
                        AnomalyKind::AbortedRead,
                        format!(
                            "send {value} failed for certain, yet it was read at offset {}",
                            r.read.offset
                        ),
                        vec![send.invoke.unwrap_or(fail), fail, r.op],
                    );
                }
            }
            Some((_, OpType::Ok, Some(offset))) => {
                let held = match &final_values {
                    Some(values) => values.contains(&value),
                    None => consumer_values.contains(&value),
                };
                // Looked for only when the record is not held: each is a scan of every read.
                let later = (!held)
                    .then(|| {
                        all_reads.iter().find(|r| {
                            r.read.offset > offset
                                || (r.read.offset == offset && r.read.value != value)
                        })
                    })
                    .flatten();
                // Read once, and not held at the end: it was there and vanished.
                let vanished = final_values.as_ref().and(first_consumer_read.get(&value));
                let why = || facts.unclean_restart_without(offset).unwrap_or_default();
                match (held, later, vanished) {
                    (false, Some(r), _) => found.add(
                        AnomalyKind::LostWrite,
                        format!(
                            "send {value} was acknowledged at offset {offset}, but is gone while offset {} holds {}{}",
                            r.read.offset, r.read.value, why()
                        ),
                        [send.ops(), vec![r.op]].concat(),
                    ),
                    (false, None, Some(r)) => found.add(
                        AnomalyKind::LostWrite,
                        format!(
                            "send {value} was acknowledged at offset {offset} and read, but the final leader does not hold it{}",
                            why()
                        ),
                        [send.ops(), vec![r.op], facts.last.iter().map(|(op, _)| *op).collect()].concat(),
                    ),
                    // Never read, and the final leader's whole log, read after every fault
                    // healed, does not hold it: its followers will truncate to that log, so
                    // the record is gone even though nothing after it was read.
                    (false, None, None) if final_values.is_some() => found.add(
                        AnomalyKind::LostWrite,
                        format!(
                            "send {value} was acknowledged at offset {offset}, but the final leader's log does not hold it{}",
                            why()
                        ),
                        [send.ops(), facts.last.iter().map(|(op, _)| *op).collect()].concat(),
                    ),
                    _ if !consumer_values.contains(&value) => found.add(
                        AnomalyKind::Unseen,
                        format!(
                            "send {value} was acknowledged at offset {offset}, but the consumer never read it{}",
                            // Gone from a final leader, not just unread while none leads.
                            if held || final_values.is_none() { String::new() } else { why() }
                        ),
                        send.ops(),
                    ),
                    _ => {}
                }
                // Sends are numbered in invocation order: a producer's acknowledged offsets must
                // grow with it (two producers' records interleave in any order).
                let highest = highest_acked.get(&send.producer).copied();
                if let Some((earlier_offset, earlier_value)) = highest {
                    if offset <= earlier_offset {
                        let mut ops = send.ops();
                        if let Some(earlier) = facts.sends.get(&earlier_value) {
                            ops.extend(earlier.ops());
                        }
                        found.add(
                            AnomalyKind::NonmonotonicSend,
                            format!(
                                "send {value} was acknowledged at offset {offset}, not after send {earlier_value} at offset {earlier_offset}"
                            ),
                            ops,
                        );
                    }
                }
                if !matches!(highest, Some((o, _)) if offset <= o) {
                    highest_acked.insert(send.producer, (offset, value));
                }
            }
            _ => {}
        }
    }
}

/// `duplicate` (one value, two offsets) and `inconsistent-offsets` (one offset, two values).
fn check_values(facts: &Facts, found: &mut Found) {
    // value -> offset -> first op that showed it
    let mut offsets_of: BTreeMap<u64, BTreeMap<u64, usize>> = BTreeMap::new();
    let reads = facts.consumer.iter().copied().chain(
        facts
            .last
            .iter()
            .flat_map(|(op, records)| records.iter().map(move |&read| ReadAt { op: *op, read })),
    );
    for r in reads {
        offsets_of
            .entry(r.read.value)
            .or_default()
            .entry(r.read.offset)
            .or_insert(r.op);
    }
    for (value, offsets) in &offsets_of {
        if offsets.len() > 1 {
            let at: Vec<String> = offsets.keys().map(|o| o.to_string()).collect();
            found.add(
                AnomalyKind::Duplicate,
                format!("value {value} appears at offsets {}", at.join(" and ")),
                offsets.values().copied().collect(),
            );
        }
    }
    // offset -> value -> first op that showed it (acknowledgements and consumer reads)
    let mut values_at: BTreeMap<u64, BTreeMap<u64, usize>> = BTreeMap::new();
    for (&value, send) in &facts.sends {
        if let (Some(offset), Some((op, _, _))) = (send.acked_at(), send.completion) {
            values_at
                .entry(offset)
                .or_default()
                .entry(value)
                .or_insert(op);
        }
    }
    for r in &facts.consumer {
        values_at
            .entry(r.read.offset)
            .or_default()
            .entry(r.read.value)
            .or_insert(r.op);
    }
    for (offset, values) in &values_at {
        if values.len() > 1 {
            let vs: Vec<String> = values.keys().map(|v| v.to_string()).collect();
            found.add(
                AnomalyKind::InconsistentOffsets,
                format!(
                    "offset {offset} was seen holding values {}",
                    vs.join(" and ")
                ),
                values.values().copied().collect(),
            );
        }
    }
}

/// `poll-skip` and `nonmonotonic-poll`, over the consumer's reads in delivery order, and
/// committed offsets past records the consumer never got.
fn check_polls(facts: &Facts, found: &mut Found) {
    let mut previous: Option<ReadAt> = None;
    for r in &facts.consumer {
        let expected = previous.map_or(0, |p| p.read.offset + 1);
        match previous {
            Some(p) if r.read.offset <= p.read.offset => found.add(
                AnomalyKind::NonmonotonicPoll,
                format!(
                    "the consumer read offset {} after offset {}{}",
                    r.read.offset,
                    p.read.offset,
                    facts
                        .unclean_restart_without(p.read.offset)
                        .unwrap_or_default()
                ),
                vec![p.op, r.op],
            ),
            _ if r.read.offset > expected => found.add(
                AnomalyKind::PollSkip,
                format!(
                    "the consumer read offset {} next, skipping {}..{}",
                    r.read.offset,
                    expected,
                    r.read.offset - 1
                ),
                previous.map(|p| p.op).into_iter().chain([r.op]).collect(),
            ),
            _ => {}
        }
        previous = Some(*r);
    }
    let read_offsets: BTreeSet<u64> = facts.consumer.iter().map(|r| r.read.offset).collect();
    let log_end = facts
        .last
        .as_ref()
        .map(|(_, records)| records.iter().map(|r| r.offset + 1).max().unwrap_or(0));
    for &(op, committed) in &facts.commits {
        // Offsets the final log no longer holds cannot be read by anyone; judge the rest.
        let upto = log_end.map_or(committed, |end| committed.min(end));
        if let Some(missing) = (0..upto).find(|o| !read_offsets.contains(o)) {
            found.add(
                AnomalyKind::PollSkip,
                format!(
                    "the consumer committed offset {committed}, but never read offset {missing}"
                ),
                vec![op],
            );
        }
    }
}

/// `read-uncommitted`: a consumer read that the final leader does not hold.
fn check_uncommitted(facts: &Facts, found: &mut Found) {
    let Some((final_op, records)) = &facts.last else {
        return;
    };
    let held: BTreeMap<u64, u64> = records.iter().map(|r| (r.offset, r.value)).collect();
    let mut reported = BTreeSet::new();
    for r in &facts.consumer {
        if held.get(&r.read.offset) != Some(&r.read.value) && reported.insert(r.read) {
            let now = match held.get(&r.read.offset) {
                Some(v) => format!("holds {v} there"),
                None => "has no such offset".to_string(),
            };
            found.add(
                AnomalyKind::ReadUncommitted,
                format!(
                    "the consumer read {} at offset {}, but the final leader {now}{}",
                    r.read.value,
                    r.read.offset,
                    facts
                        .unclean_restart_without(r.read.offset)
                        .unwrap_or_default()
                ),
                vec![r.op, *final_op],
            );
        }
    }
}
