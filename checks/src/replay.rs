//! Trace conformance: replays what the engine recorded (each actor's deliveries, timer firings,
//! crashes and restarts, in the order they happened) through the model's own actors, and
//! checks that every step is one the model allows:
//!
//! - a delivered message was sent by the model's replayed sender to that receiver, and not
//!   delivered already (unless the network duplicates); on a FIFO network (reliable, lossy) it
//!   is the oldest undelivered message of its connection, or the ones before it were lost
//!   (partitions and drops lose messages, never reorder them);
//! - a timer that fired was armed by the replayed actor and not cancelled since;
//! - a restart starts from the storage the replayed actor saved last;
//! - a step whose save failed (the runtime traces `SaveFailed` next) changes nothing but the
//!   crash that follows.
//!
//! The replayed actors run the same handlers on the same inputs, so a step the model does not
//! allow means the engine's hosting (runtime, network, storage) does something the model does
//! not: exactly what the model's claims about the engine depend on.

use crate::runner::{engine_options, HistoryRunOptions};
use insync::engine::{application_id, engine_actors};
use insync::runtime::{ActorTraceLog, TraceKind};
use insync_model::config::NetworkKind;
use insync_model::msg::{Msg, Timer};
use insync_model::node::{Insync, NodeState, NodeStorage};
use insync_model::{Node, ValidConfig};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// The first step the model does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trace step {index} (at {at_ms} ms, {actor}): {why}")]
pub struct Nonconformance {
    pub index: usize,
    pub at_ms: u64,
    pub actor: String,
    pub why: String,
}

/// What a conforming replay covered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conformance {
    pub steps: usize,
    pub deliveries: usize,
    pub timers: usize,
    pub crashes: usize,
    pub restarts: usize,
    /// Deliveries that implied earlier messages of their connection were lost.
    pub implied_losses: usize,
}

struct Replica {
    state: Option<NodeState>,
    armed: BTreeSet<Timer>,
    saved: Option<NodeStorage>,
}

/// Replays `trace` (recorded by a run of `config` with `options`) through the model's actors.
pub fn conform(
    config: &ValidConfig,
    options: &HistoryRunOptions,
    trace: &ActorTraceLog<Node>,
) -> Result<Conformance, Nonconformance> {
    let insync = Insync::new(config.clone());
    let topology = insync.topology;
    let app = application_id(&insync);
    // The histories' clusters live in one process (their disks are theirs alone).
    let actors = engine_actors(&insync, &engine_options(options), false);
    let fifo = config.network != NetworkKind::Duplicating;
    // Messages sent and not yet delivered, per connection, in send order.
    let mut in_flight: HashMap<(Id, Id), VecDeque<Msg>> = HashMap::new();
    let mut delivered_once: HashMap<(Id, Id), Vec<Msg>> = HashMap::new();
    let mut replicas: Vec<Replica> = Vec::new();
    let mut report = Conformance::default();

    fn apply(
        id: Id,
        out: Out<Node>,
        replica: &mut Replica,
        in_flight: &mut HashMap<(Id, Id), VecDeque<Msg>>,
    ) {
        for command in out {
            match command {
                Command::Send(dst, msg) => in_flight.entry((id, dst)).or_default().push_back(msg),
                Command::SetTimer(timer, _) => {
                    replica.armed.insert(timer);
                }
                Command::CancelTimer(timer) => {
                    replica.armed.remove(&timer);
                }
                Command::Save(storage) => replica.saved = Some(storage),
                Command::ChooseRandom(..) => {}
            }
        }
    }

    for (i, actor) in actors.iter().enumerate() {
        let id = Id::from(i);
        let mut replica = Replica {
            state: None,
            armed: BTreeSet::new(),
            saved: None,
        };
        let mut out = Out::new();
        replica.state = Some(actor.on_start(id, &None, &mut out));
        apply(id, out, &mut replica, &mut in_flight);
        replicas.push(replica);
    }

    // Whether the step traced at `index` had its save fail: then the engine released none of
    // its commands (write-ahead), and the actor's next traced event says so.
    let save_failed = |index: usize| {
        let actor = trace.events[index].actor;
        trace.events[index + 1..]
            .iter()
            .find(|e| e.actor == actor)
            .is_some_and(|e| matches!(e.kind, TraceKind::SaveFailed))
    };
    for (index, event) in trace.events.iter().enumerate() {
        let i = usize::from(event.actor);
        let fail = |why: String| Nonconformance {
            index,
            at_ms: event.at.as_millis() as u64,
            actor: topology.short_name(event.actor),
            why,
        };
        let (Some(actor), Some(replica)) = (actors.get(i), replicas.get_mut(i)) else {
            return Err(fail("no such actor".into()));
        };
        report.steps += 1;
        match &event.kind {
            TraceKind::Delivered { src, msg } => {
                report.deliveries += 1;
                if *src != app {
                    let key = (*src, event.actor);
                    let queue = in_flight.entry(key).or_default();
                    match queue.iter().position(|m| m == msg) {
                        Some(at) if fifo => {
                            report.implied_losses += at;
                            queue.drain(..=at);
                        }
                        Some(at) => {
                            if let Some(m) = queue.remove(at) {
                                delivered_once.entry(key).or_default().push(m);
                            }
                        }
                        None if !fifo
                            && delivered_once.get(&key).is_some_and(|d| d.contains(msg)) => {}
                        None => {
                            return Err(fail(format!(
                                "delivered {msg:?} from {}, which the model never sent (or already delivered)",
                                topology.short_name(*src)
                            )))
                        }
                    }
                }
                let Some(state) = replica.state.take() else {
                    return Err(fail("a message was delivered to a crashed actor".into()));
                };
                let mut cow = Cow::Owned(state);
                let mut out = Out::new();
                actor.on_msg(event.actor, &mut cow, *src, msg.clone(), &mut out);
                replica.state = Some(cow.into_owned());
                if !save_failed(index) {
                    apply(event.actor, out, replica, &mut in_flight);
                }
            }
            TraceKind::TimerFired { timer } => {
                report.timers += 1;
                if !replica.armed.remove(timer) {
                    return Err(fail(format!("timer {timer:?} fired but was not armed")));
                }
                let Some(state) = replica.state.take() else {
                    return Err(fail("a timer fired in a crashed actor".into()));
                };
                let mut cow = Cow::Owned(state);
                let mut out = Out::new();
                actor.on_timeout(event.actor, &mut cow, timer, &mut out);
                replica.state = Some(cow.into_owned());
                if !save_failed(index) {
                    apply(event.actor, out, replica, &mut in_flight);
                }
            }
            TraceKind::Crashed | TraceKind::SaveFailed => {
                report.crashes += 1;
                replica.state = None;
                replica.armed.clear();
            }
            TraceKind::Restarted => {
                report.restarts += 1;
                if replica.state.is_some() {
                    return Err(fail("restarted while running".into()));
                }
                let mut out = Out::new();
                let saved = replica.saved.clone();
                replica.state = Some(actor.on_start(event.actor, &saved, &mut out));
                if !save_failed(index) {
                    apply(event.actor, out, replica, &mut in_flight);
                }
            }
            TraceKind::RandomChosen { .. } => {
                return Err(fail("the model's actors make no random choices".into()));
            }
        }
    }
    Ok(report)
}

/// The engine's trace as text, one line per step: virtual time, the actor, and what it
/// handled in Kafka's terms (`b1 <- ctl LeaderAndIsr leader=1 epoch=2 ...`). Only steps whose
/// time falls in `window` are shown. This is what to read when a history shows an anomaly
/// and the reason is not in the history.
pub fn render_trace(
    config: &ValidConfig,
    trace: &ActorTraceLog<Node>,
    window: std::ops::Range<std::time::Duration>,
) -> String {
    use std::fmt::Write as _;
    let topology = Insync::new(config.clone()).topology;
    let name = |id: Id| topology.short_name(id);
    let mut text = String::new();
    for event in trace.events.iter().filter(|e| window.contains(&e.at)) {
        let what = match &event.kind {
            TraceKind::Delivered { src, msg } => {
                format!("<- {} {}", name(*src), insync_model::trace::format_msg(msg))
            }
            TraceKind::TimerFired { timer } => format!("timer {timer:?} fires"),
            TraceKind::RandomChosen { key, .. } => format!("random choice {key}"),
            TraceKind::Crashed => "crashes".to_string(),
            TraceKind::SaveFailed => "crashes: the step's save failed".to_string(),
            TraceKind::Restarted => "restarts from its storage".to_string(),
        };
        let _ = writeln!(
            text,
            "{:>10.1}ms {:<4} {what}",
            event.at.as_secs_f64() * 1000.0,
            name(event.actor)
        );
    }
    if trace.overflowed > 0 {
        let _ = writeln!(
            text,
            "({} later steps did not fit the trace)",
            trace.overflowed
        );
    }
    text
}
