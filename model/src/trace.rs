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
    use crate::broker::BrokerState;
    use crate::config::Config;
    use crate::consumer::ReadRecord;
    use crate::controller::ControllerState;
    use crate::node::Insync;
    use crate::producer::Outcome;
    use crate::types::{BrokerId, BrokerSet, Epoch, Record, Value};
    use std::sync::Arc;

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

    /// RF 3, a consumer, two records: broker 0 leads epoch 1 with every broker in sync.
    fn start() -> (InsyncModel, InsyncState) {
        let config = Config {
            records: 2,
            consumer: true,
            ..Config::default()
        };
        let model = Insync::new(config.validate().expect("valid")).into_model();
        let state = stateright::Model::init_states(&model).remove(0);
        (model, state)
    }

    fn slot(state: &mut InsyncState, i: usize) -> &mut NodeState {
        Arc::make_mut(&mut state.actor_states[i])
    }

    fn broker(state: &mut InsyncState, b: u8) -> &mut BrokerState {
        match slot(state, usize::from(b)) {
            NodeState::Broker(s) => s,
            _ => panic!("slot {b} is a broker"),
        }
    }

    fn ctl<'a>(model: &InsyncModel, state: &'a mut InsyncState) -> &'a mut ControllerState {
        match slot(state, usize::from(model.cfg.topology.controller())) {
            NodeState::Controller(s) => s,
            _ => panic!("the controller"),
        }
    }

    fn append(state: &mut InsyncState, b: u8, value: u32) {
        broker(state, b).log.append(Record {
            value: Value::Numbered(value),
            leader_epoch: Epoch(1),
            producer: None,
        });
    }

    /// The effects `describe_step` appends to a step's line, in order.
    fn effects_of(model: &InsyncModel, before: &InsyncState, after: &InsyncState) -> String {
        effects(model, before, after).join("; ")
    }

    /// A step that changes nothing a reader needs adds nothing to its line.
    #[test]
    fn an_unchanged_state_has_no_effects() {
        let (model, s) = start();
        assert_eq!(effects_of(&model, &s, &s.clone()), "");
    }

    /// The controller's changes as a counterexample tells them: an election (unclean when
    /// the unclean count grew), an offline partition, an ISR change without an election, the
    /// ELR, and fencing.
    #[test]
    fn controller_changes_read_as_elections_and_isr_changes() {
        let (model, before) = start();
        let mut after = before.clone();
        let p = &mut ctl(&model, &mut after).partition;
        p.leader = Some(BrokerId(1));
        p.leader_epoch = Epoch(2);
        p.isr = BrokerSet::single(BrokerId(1));
        assert_eq!(
            effects_of(&model, &before, &after),
            "controller elects broker 1 leader in epoch 2, isr={1}"
        );
        ctl(&model, &mut after).unclean_elections += 1;
        assert_eq!(
            effects_of(&model, &before, &after),
            "controller elects broker 1 leader in epoch 2 (unclean), isr={1}"
        );
        ctl(&model, &mut after).partition.leader = None;
        assert_eq!(
            effects_of(&model, &before, &after),
            "partition offline in epoch 2 (no eligible replica)"
        );

        let mut shrunk = before.clone();
        let c = ctl(&model, &mut shrunk);
        c.partition.isr = c.partition.isr.without(BrokerId(2));
        c.partition.elr = BrokerSet::single(BrokerId(2));
        c.fenced = BrokerSet::single(BrokerId(2));
        assert_eq!(
            effects_of(&model, &before, &shrunk),
            "controller sets isr={0,1}; elr={2}; broker 2 fenced"
        );
        assert_eq!(
            effects_of(&model, &shrunk, &before),
            "controller sets isr={0,1,2}; elr={}; broker 2 unfenced"
        );
    }

    /// A broker's changes: a truncation (not a restart's recovery, which is told as such),
    /// becoming leader (or leading a new epoch), and a leader's high watermark; a follower's
    /// high watermark is not news.
    #[test]
    fn broker_changes_read_as_truncations_leadership_and_high_watermarks() {
        let (model, mut before) = start();
        append(&mut before, 1, 1);
        append(&mut before, 1, 2);
        let mut after = before.clone();
        broker(&mut after, 1).log.truncate(Offset(1));
        assert_eq!(
            effects_of(&model, &before, &after),
            "broker 1 truncates to offset 1"
        );
        broker(&mut after, 1).incarnation = broker(&mut after, 1).incarnation.next();
        assert_eq!(
            effects_of(&model, &before, &after),
            "broker 1 recovers log [v1@e1] hw=0"
        );
        let mut grown = before.clone();
        append(&mut grown, 1, 3);
        broker(&mut grown, 1).high_watermark = Offset(1);
        assert_eq!(
            effects_of(&model, &before, &grown),
            "",
            "a follower appends"
        );

        let mut led = before.clone();
        broker(&mut led, 0).leader_epoch = Epoch(2);
        assert_eq!(
            effects_of(&model, &before, &led),
            "broker 0 becomes leader in epoch 2"
        );
        let mut follower = before.clone();
        let role = broker(&mut follower, 1).role.clone();
        broker(&mut follower, 0).role = role;
        assert_eq!(
            effects_of(&model, &follower, &before),
            "broker 0 becomes leader in epoch 1"
        );
        let mut hw = before.clone();
        append(&mut hw, 0, 1);
        broker(&mut hw, 0).high_watermark = Offset(1);
        assert_eq!(effects_of(&model, &before, &hw), "broker 0 hw=1");
    }

    /// The clients' changes: a send's outcome by its value, the consumer's new reads, and a
    /// commit (not the reset of a restarted consumer's memory).
    #[test]
    fn client_changes_read_as_outcomes_reads_and_commits() {
        let (model, before) = start();
        let t = model.cfg.topology;
        let mut after = before.clone();
        match slot(&mut after, usize::from(t.producer())) {
            NodeState::Producer(p) => p.outcomes[1] = Some(Outcome::Acked(Offset(1))),
            _ => panic!("the producer"),
        }
        assert_eq!(
            effects_of(&model, &before, &after),
            "v2 acknowledged at offset 1"
        );
        let mut read = before.clone();
        let consumer = |s: &mut InsyncState| match slot(s, usize::from(t.consumer())) {
            NodeState::Consumer(c) => c.clone(),
            _ => panic!("the consumer"),
        };
        let mut c = consumer(&mut read);
        c.read.push(ReadRecord {
            offset: Offset(0),
            value: Value::Numbered(1),
        });
        c.committed = Offset(1);
        *slot(&mut read, usize::from(t.consumer())) = NodeState::Consumer(c.clone());
        assert_eq!(
            effects_of(&model, &before, &read),
            "consumer reads v1@0; consumer committed offset 1"
        );
        let mut again = read.clone();
        c.read.push(ReadRecord {
            offset: Offset(1),
            value: Value::Numbered(2),
        });
        c.committed = Offset::ZERO;
        c.incarnation += 1;
        *slot(&mut again, usize::from(t.consumer())) = NodeState::Consumer(c);
        assert_eq!(effects_of(&model, &read, &again), "consumer reads v2@1");
    }

    /// A crash says what the broker loses: its unflushed offsets, or nothing; a flush says
    /// which offsets reach the disk.
    #[test]
    fn crashes_and_flushes_name_their_offsets() {
        let (model, mut s) = start();
        let b0 = model.cfg.topology.broker(BrokerId(0));
        let crash = ActorModelAction::Crash(b0);
        assert_eq!(
            describe_action(&model, Some(&s), &crash),
            "broker 0 crashes (its log is flushed)"
        );
        append(&mut s, 0, 1);
        append(&mut s, 0, 2);
        broker(&mut s, 0).flushed = Offset(1);
        assert_eq!(
            describe_action(&model, Some(&s), &crash),
            "broker 0 crashes, losing unflushed offsets 1..2"
        );
        assert_eq!(describe_action(&model, None, &crash), "broker 0 crashes");
        let consumer = ActorModelAction::Crash(model.cfg.topology.consumer());
        assert_eq!(
            describe_action(&model, Some(&s), &consumer),
            "consumer crashes"
        );
        let flush = ActorModelAction::Timeout(b0, Timer::Flush);
        assert_eq!(
            describe_action(&model, Some(&s), &flush),
            "broker 0 flushes offsets 1..2"
        );
    }

    /// A message line names both ends by their short names, and a step's line is its action
    /// then its effects, numbered along a path.
    #[test]
    fn a_path_is_numbered_step_lines() {
        let (model, s) = start();
        let t = model.cfg.topology;
        let msg = Msg::Metadata;
        assert_eq!(
            describe_envelope(&model, t.producer(), t.broker(BrokerId(0)), &msg),
            "prod -> b0 Metadata"
        );
        assert_eq!(actor_name(&model, t.controller()), "controller");
        let crash = ActorModelAction::Crash(t.broker(BrokerId(2)));
        let after = stateright::Model::next_state(&model, &s, crash.clone()).expect("a crash");
        let mut changed = after.clone();
        broker(&mut changed, 2).leader_epoch = Epoch(2);
        broker(&mut changed, 2).role = broker(&mut changed, 0).role.clone();
        assert_eq!(
            describe_step(&model, &s, &crash, Some(&changed)),
            "broker 2 crashes (its log is flushed); broker 2 becomes leader in epoch 2"
        );
        assert_eq!(
            describe_path(&model, &[(s, Some(crash)), (after, None)]),
            ["1. broker 2 crashes (its log is flushed)"]
        );
    }

    /// The end of a counterexample: the controller's view, each broker (a crashed one by what
    /// its disk holds), what the producer had acknowledged and what the consumer read.
    #[test]
    fn the_final_state_reads_broker_by_broker() {
        let (model, s) = start();
        let lines = describe_state(&model, &s);
        assert_eq!(lines[0], "controller: leader=0 epoch=1 isr={0,1,2}");
        assert_eq!(lines[1], "broker 0: leader epoch=1 log=[] hw=0");
        assert_eq!(lines[2], "broker 1: follower epoch=1 log=[] hw=0");
        assert_eq!(lines[4], "producer: acknowledged []");
        assert_eq!(lines[5], "consumer: read [] committed=0");
        let crash = ActorModelAction::Crash(model.cfg.topology.broker(BrokerId(2)));
        let crashed = stateright::Model::next_state(&model, &s, crash).expect("a crash");
        assert_eq!(
            describe_state(&model, &crashed)[3],
            "broker 2: crashed, on disk log=[] hw=0"
        );
    }
}
