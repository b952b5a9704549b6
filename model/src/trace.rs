//! One line per step, in Kafka's terms, for counterexamples, logs and history reports alike:
//! `prod -> b0 Produce [v1] acks=1 req=0`, `broker 1 crashes, losing unflushed offsets 1..2`,
//! `controller elects broker 2 leader in epoch 3 (unclean)`.

use crate::msg::{AppMsg, FetchResult, Msg, Timer};
use crate::node::{ActorKind, InsyncModel, InsyncState, NodeState};
use crate::types::{CorrelationId, Offset};
use stateright::actor::{ActorModelAction, Id};

type Action = ActorModelAction<Msg, Timer, ()>;

/// A compact rendering of a message.
pub fn format_msg(msg: &Msg) -> String {
    match msg {
        Msg::Produce {
            request,
            producer,
            acks,
            records,
        } => {
            let values: Vec<String> = records
                .iter()
                .map(|r| match producer {
                    Some(_) => format!("{} seq={}", r.value, r.sequence.0),
                    None => r.value.to_string(),
                })
                .collect();
            format!(
                "Produce [{}] acks={acks} req={}",
                values.join(", "),
                request.0
            )
        }
        Msg::ProduceResponse { request, result } => match result {
            Ok(offset) => format!("ProduceResponse req={} offset={offset}", request.0),
            Err(e) => format!("ProduceResponse req={} {}", request.0, e.name()),
        },
        Msg::Fetch {
            leader_epoch,
            fetch_offset,
            last_fetched_epoch,
            ..
        } => match last_fetched_epoch {
            Some(last) => {
                format!("Fetch epoch={leader_epoch} offset={fetch_offset} last_epoch={last}")
            }
            None => format!("Fetch epoch={leader_epoch} offset={fetch_offset}"),
        },
        Msg::FetchResponse {
            leader_epoch,
            result,
        } => match result {
            FetchResult::Records {
                base_offset,
                records,
                high_watermark,
            } => {
                let values: Vec<String> = records
                    .iter()
                    .map(|r| format!("{}@e{}", r.value, r.leader_epoch))
                    .collect();
                format!(
                    "FetchResponse epoch={leader_epoch} offset={base_offset} [{}] hw={high_watermark}",
                    values.join(" ")
                )
            }
            FetchResult::Diverging { epoch, end_offset } => format!(
                "FetchResponse epoch={leader_epoch} diverging: epoch {epoch} ends at {end_offset}"
            ),
            FetchResult::OutOfRange { log_end_offset } => format!(
                "FetchResponse epoch={leader_epoch} OFFSET_OUT_OF_RANGE log_end={log_end_offset}"
            ),
            FetchResult::Error(e) => format!("FetchResponse epoch={leader_epoch} {}", e.name()),
        },
        Msg::OffsetsForLeaderEpoch {
            current_leader_epoch,
            leader_epoch,
        } => format!(
            "OffsetsForLeaderEpoch current_epoch={current_leader_epoch} epoch={leader_epoch}"
        ),
        Msg::OffsetsForLeaderEpochResponse {
            asked,
            leader_epoch,
            result,
        } => match result {
            Ok(crate::msg::EpochEndOffset::Found { epoch, end_offset }) => format!(
                "OffsetsForLeaderEpochResponse epoch={leader_epoch} asked={asked}: epoch {epoch} ends at {end_offset}"
            ),
            Ok(crate::msg::EpochEndOffset::Undefined) => format!(
                "OffsetsForLeaderEpochResponse epoch={leader_epoch} asked={asked}: UNDEFINED_EPOCH_OFFSET"
            ),
            Err(e) => format!(
                "OffsetsForLeaderEpochResponse epoch={leader_epoch} asked={asked} {}",
                e.name()
            ),
        },
        Msg::ConsumerFetch {
            leader_epoch,
            offset,
        } => format!("ConsumerFetch epoch={leader_epoch} offset={offset}"),
        Msg::ConsumerFetchResponse {
            leader_epoch,
            result,
        } => match result {
            Ok((base, records)) => {
                let values: Vec<String> = records.iter().map(|r| r.value.to_string()).collect();
                format!(
                    "ConsumerFetchResponse epoch={leader_epoch} offset={base} [{}]",
                    values.join(" ")
                )
            }
            Err(e) => format!("ConsumerFetchResponse epoch={leader_epoch} {}", e.name()),
        },
        Msg::Metadata => "Metadata".into(),
        Msg::MetadataResponse {
            leader,
            leader_epoch,
        } => match leader {
            Some(l) => format!("MetadataResponse leader={} epoch={leader_epoch}", l.0),
            None => format!("MetadataResponse LEADER_NOT_AVAILABLE epoch={leader_epoch}"),
        },
        Msg::AlterPartition {
            leader_epoch,
            partition_epoch,
            isr,
            ..
        } => format!(
            "AlterPartition isr={isr} epoch={leader_epoch} partition_epoch={}",
            partition_epoch.0
        ),
        Msg::AlterPartitionResponse { result, .. } => match result {
            Ok(p) => format!(
                "AlterPartitionResponse isr={} partition_epoch={}",
                p.isr, p.partition_epoch.0
            ),
            Err((e, p)) => format!(
                "AlterPartitionResponse {} (isr={} partition_epoch={})",
                e.name(),
                p.isr,
                p.partition_epoch.0
            ),
        },
        Msg::LeaderAndIsr {
            partition,
            broker_incarnation,
        } => format!(
            "LeaderAndIsr leader={} epoch={} isr={}{} (incarnation {broker_incarnation})",
            partition
                .leader
                .map_or("none".to_string(), |l| l.0.to_string()),
            partition.leader_epoch,
            partition.isr,
            if partition.elr.is_empty() {
                String::new()
            } else {
                format!(" elr={}", partition.elr)
            }
        ),
        Msg::Register { incarnation } => format!("Register incarnation={incarnation}"),
        Msg::Heartbeat {
            incarnation,
            leader_epoch,
        } => format!(
            "Heartbeat incarnation={incarnation} epoch={}",
            leader_epoch.0
        ),
        Msg::App(AppMsg::Send { id, value }) => format!("Send id={id} {value}"),
        Msg::App(AppMsg::SendResult { ids, outcome }) => format!(
            "SendResult ids={} {}",
            format_ids(ids),
            describe_outcome(outcome)
        ),
        Msg::App(AppMsg::Delivered { records }) => format!("Delivered {} records", records.len()),
        Msg::App(AppMsg::Commit { offset }) => format!("Commit offset {offset}"),
        Msg::InitProducerId { request } => format!("InitProducerId #{}", request.0),
        Msg::InitProducerIdResponse { request, producer } => {
            format!("InitProducerIdResponse #{} pid={}", request.0, producer.0)
        }
    }
}

/// An actor's short name in a step line: `b0`, `ctl`, `prod`, `cons`.
pub fn short_name(model: &InsyncModel, id: Id) -> String {
    model.cfg.topology.short_name(id)
}

/// An actor's name in prose: `broker 0`, `controller`, `producer`, `consumer`.
pub fn actor_name(model: &InsyncModel, id: Id) -> String {
    match model.cfg.topology.kind(id) {
        ActorKind::Broker(b) => b.to_string(),
        ActorKind::Controller => "controller".into(),
        ActorKind::Producer => "producer".into(),
        ActorKind::Consumer => "consumer".into(),
    }
}

/// A message in flight: `b0 -> prod ProduceResponse req=0 offset=0`.
pub fn describe_envelope(model: &InsyncModel, src: Id, dst: Id, msg: &Msg) -> String {
    format!(
        "{} -> {} {}",
        short_name(model, src),
        short_name(model, dst),
        format_msg(msg)
    )
}

/// Describes one step: what happened, then what it changed that matters.
pub fn describe_step(
    model: &InsyncModel,
    before: &InsyncState,
    action: &Action,
    after: Option<&InsyncState>,
) -> String {
    let mut line = describe_action(model, Some(before), action);
    if let Some(after) = after {
        for effect in effects(model, before, after) {
            line.push_str("; ");
            line.push_str(&effect);
        }
    }
    line
}

/// What an action does, in the words of [`describe_step`] without its effects. Without the
/// state it is taken in, a flush or a crash cannot say which offsets it concerns and is told
/// without them.
pub fn describe_action(
    model: &InsyncModel,
    before: Option<&InsyncState>,
    action: &Action,
) -> String {
    match action {
        ActorModelAction::Deliver { src, dst, msg } => describe_envelope(model, *src, *dst, msg),
        ActorModelAction::Drop(env) => format!(
            "network drops {}",
            describe_envelope(model, env.src, env.dst, &env.msg)
        ),
        ActorModelAction::Timeout(id, timer) => describe_timer(model, before, *id, timer),
        ActorModelAction::Crash(id) => describe_crash(model, before, *id),
        ActorModelAction::Recover(id) => format!("{} restarts", actor_name(model, *id)),
        ActorModelAction::SelectRandom { actor, .. } => {
            format!("{} chooses", actor_name(model, *actor))
        }
    }
}

fn describe_timer(
    model: &InsyncModel,
    before: Option<&InsyncState>,
    id: Id,
    timer: &Timer,
) -> String {
    let who = actor_name(model, id);
    let actor = before.map(|s| &*s.actor_states[usize::from(id)]);
    match timer {
        Timer::SessionExpired { broker, .. } => {
            format!("controller: session of {broker} expires")
        }
        Timer::ElectLeader(b) => {
            format!("controller: preferred-leader election or controlled shutdown moves leadership to {b}")
        }
        Timer::HeartbeatResumed(b) => format!("controller: heartbeats of {b} resume"),
        Timer::IsrLag => format!("{who}: replica.lag.time.max.ms passes with followers behind"),
        Timer::Flush => {
            let flushed = actor
                .and_then(NodeState::as_broker)
                .map(|b| (b.flushed, b.log_end_offset()));
            match flushed {
                Some((from, to)) => format!("{who} flushes offsets {from}..{to}"),
                None => format!("{who} flushes"),
            }
        }
        Timer::FetchBackoff => format!("{who}: fetch backoff passes"),
        Timer::RequestTimeout => {
            format!("{who}: request.timeout.ms passes with requests in flight")
        }
        Timer::MetadataBackoff => format!("{who}: retry backoff passes"),
        Timer::MetadataTimeout => format!("{who}: no answer to its Metadata request"),
        Timer::Heartbeat => format!("{who} sends a heartbeat"),
        Timer::ConsumerStep => match actor
            .and_then(NodeState::as_consumer)
            .and_then(|c| c.pending.clone())
        {
            Some(crate::consumer::PendingStep::Process(offsets)) => {
                format!("{who} processes offsets {offsets:?}")
            }
            None => format!("{who} steps"),
        },
    }
}

fn describe_crash(model: &InsyncModel, before: Option<&InsyncState>, id: Id) -> String {
    let who = actor_name(model, id);
    match before.map(|s| &*s.actor_states[usize::from(id)]) {
        Some(NodeState::Broker(b)) if b.flushed < b.log_end_offset() => format!(
            "{who} crashes, losing unflushed offsets {}..{}",
            b.flushed,
            b.log_end_offset()
        ),
        Some(NodeState::Broker(_)) => format!("{who} crashes (its log is flushed)"),
        _ => format!("{who} crashes"),
    }
}

/// What a step changed that a reader of the trace needs: elections, ISR changes, truncations,
/// acknowledgements, reads.
fn effects(model: &InsyncModel, before: &InsyncState, after: &InsyncState) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (b, a)) in before
        .actor_states
        .iter()
        .zip(&after.actor_states)
        .enumerate()
    {
        if b == a {
            continue;
        }
        let id = Id::from(i);
        match (&**b, &**a) {
            (NodeState::Controller(b), NodeState::Controller(a)) => {
                let (pb, pa) = (b.partition, a.partition);
                if pa.leader_epoch != pb.leader_epoch {
                    match pa.leader {
                        Some(l) => {
                            let unclean = if a.unclean_elections > b.unclean_elections {
                                " (unclean)"
                            } else {
                                ""
                            };
                            out.push(format!(
                                "controller elects {l} leader in epoch {}{unclean}, isr={}",
                                pa.leader_epoch, pa.isr
                            ))
                        }
                        None => out.push(format!(
                            "partition offline in epoch {} (no eligible replica)",
                            pa.leader_epoch
                        )),
                    }
                } else if pa.isr != pb.isr {
                    out.push(format!("controller sets isr={}", pa.isr));
                }
                if pa.elr != pb.elr {
                    out.push(format!("elr={}", pa.elr));
                }
                for broker in a.fenced.minus(b.fenced).iter() {
                    out.push(format!("{broker} fenced"));
                }
                for broker in b.fenced.minus(a.fenced).iter() {
                    out.push(format!("{broker} unfenced"));
                }
            }
            (NodeState::Broker(b), NodeState::Broker(a)) => {
                let who = actor_name(model, id);
                if a.log_end_offset() < b.log_end_offset() && a.incarnation == b.incarnation {
                    out.push(format!("{who} truncates to offset {}", a.log_end_offset()));
                }
                if a.is_leader() && (!b.is_leader() || a.leader_epoch != b.leader_epoch) {
                    out.push(format!("{who} becomes leader in epoch {}", a.leader_epoch));
                }
                if a.high_watermark > b.high_watermark && a.is_leader() {
                    out.push(format!("{who} hw={}", a.high_watermark));
                }
                if a.incarnation != b.incarnation {
                    out.push(format!(
                        "{who} recovers log {} hw={}",
                        a.log, a.high_watermark
                    ));
                }
            }
            (NodeState::Producer(b), NodeState::Producer(a)) => {
                for (n, (ob, oa)) in b.outcomes.iter().zip(&a.outcomes).enumerate() {
                    if ob != oa {
                        if let Some(o) = oa {
                            out.push(format!("v{} {}", n + 1, describe_outcome(o)));
                        }
                    }
                }
            }
            (NodeState::Consumer(b), NodeState::Consumer(a)) => {
                let new: Vec<String> = a
                    .read
                    .iter()
                    .filter(|r| !b.read.contains(r))
                    .map(|r| format!("{}@{}", r.value, r.offset))
                    .collect();
                if !new.is_empty() {
                    out.push(format!("consumer reads {}", new.join(" ")));
                }
                if a.committed != b.committed && a.incarnation == b.incarnation {
                    out.push(format!("consumer committed offset {}", a.committed));
                }
            }
            _ => {}
        }
    }
    out
}

pub fn describe_outcome(o: &crate::producer::Outcome) -> String {
    use crate::producer::Outcome;
    match o {
        Outcome::Acked(offset) => format!("acknowledged at offset {offset}"),
        Outcome::Failed(e) => format!("send failed ({})", e.name()),
        Outcome::Indeterminate(e) => format!("send failed, indeterminate ({})", e.name()),
        Outcome::Sent => "sent (acks=0)".into(),
    }
}

/// Correlation ids as runs, in their order: `7-9,12`. The engine numbers its sends in order,
/// so a batch's ids are mostly one run, and a line stays short however large the batch.
fn format_ids(ids: &[CorrelationId]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for id in ids {
        match runs.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(id.0) => *last = id.0,
            _ => runs.push((id.0, id.0)),
        }
    }
    let runs: Vec<String> = runs
        .into_iter()
        .map(|(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect();
    runs.join(",")
}

/// The final state in a few lines: the controller's view, then each broker.
pub fn describe_state(model: &InsyncModel, state: &InsyncState) -> Vec<String> {
    let t = model.cfg.topology;
    let mut lines = Vec::new();
    if let Some(c) = state.actor_states[usize::from(t.controller())].as_controller() {
        let p = c.partition;
        lines.push(format!(
            "controller: leader={} epoch={} isr={}",
            p.leader.map_or("none".to_string(), |l| l.0.to_string()),
            p.leader_epoch,
            p.isr
        ));
    }
    for b in t.brokers() {
        let i = usize::from(t.broker(b));
        // A crashed broker's memory is gone (stateright still shows its last state): what
        // it has is its disk, which is what a restart recovers and what properties read.
        if state.crashed[i] {
            match state.actor_storages[i].as_deref() {
                Some(crate::node::NodeStorage::Broker(disk)) => lines.push(format!(
                    "{b}: crashed, on disk log={} hw={}",
                    disk.log, disk.high_watermark
                )),
                _ => lines.push(format!("{b}: crashed, nothing on disk")),
            }
            continue;
        }
        if let Some(s) = state.actor_states[i].as_broker() {
            let role = if s.is_leader() { "leader" } else { "follower" };
            lines.push(format!(
                "{b}: {role} epoch={} log={} hw={}",
                s.leader_epoch, s.log, s.high_watermark
            ));
        }
    }
    if let Some(p) = state.actor_states[usize::from(t.producer())].as_producer() {
        let acked: Vec<String> = p
            .acked()
            .map(|(n, o): (u32, Offset)| format!("v{n}@{o}"))
            .collect();
        lines.push(format!("producer: acknowledged [{}]", acked.join(" ")));
    }
    if t.consumer {
        if let Some(c) = state.actor_states[usize::from(t.consumer())].as_consumer() {
            let read: Vec<String> = c
                .read
                .iter()
                .map(|r| format!("{}@{}", r.value, r.offset))
                .collect();
            lines.push(format!(
                "consumer: read [{}] committed={}",
                read.join(" "),
                c.committed
            ));
        }
    }
    lines
}

/// A whole path as numbered lines.
pub fn describe_path(model: &InsyncModel, steps: &[(InsyncState, Option<Action>)]) -> Vec<String> {
    use stateright::Model;
    let mut lines = Vec::new();
    for (state, action) in steps {
        if let Some(action) = action {
            let next = model.next_state(state, action.clone());
            lines.push(format!(
                "{}. {}",
                lines.len() + 1,
                describe_step(model, state, action, next.as_ref())
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::Outcome;
    use crate::types::Value;

    /// The engine's application messages name their records by correlation id, runs folded.
    #[test]
    fn app_messages_print_their_correlation_ids() {
        let send = Msg::App(AppMsg::Send {
            id: CorrelationId(7),
            value: Value::Bytes(vec![0; 16].into()),
        });
        assert_eq!(format_msg(&send), "Send id=7 16B");
        let ids = [3, 4, 5, 9, 11, 12].map(CorrelationId);
        let result = Msg::App(AppMsg::SendResult {
            ids: ids.into(),
            outcome: Outcome::Acked(Offset(2)),
        });
        assert_eq!(
            format_msg(&result),
            "SendResult ids=3-5,9,11-12 acknowledged at offset 2"
        );
        assert_eq!(format_ids(&[]), "");
        assert_eq!(
            format_ids(&[CorrelationId(u64::MAX), CorrelationId(0)]),
            format!("{},0", u64::MAX)
        );
    }
}
