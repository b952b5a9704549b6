//! Kafka's reliability promises as properties, under the names PROTOCOL.md §3 gives them.
//!
//! Each `always` property is judged in every reachable state over the actors that are up
//! (stateright keeps a crashed actor's last state visible, so crashed brokers are skipped).
//! Each is paired with a `sometimes` property that shows the states it speaks about are
//! reached, so a passing check is not vacuous.

use crate::broker::BrokerState;
use crate::config::Config;
use crate::consumer::ConsumerState;
use crate::controller::ControllerState;
use crate::log::Log;
use crate::node::NodeStorage;
use crate::node::{InsyncModel, InsyncState};
use crate::producer::ProducerState;
use crate::types::{BrokerId, Offset, Record, Value};
use stateright::Expectation;

/// A property: its contract name, kind, what it means, and its condition.
pub struct PropertyDef {
    pub name: &'static str,
    pub expectation: Expectation,
    pub description: &'static str,
    pub condition: fn(&InsyncModel, &InsyncState) -> bool,
    /// For a safety property, the reachability property that shows its premise is reached
    /// (so that "holds" is not vacuous).
    pub premise: Option<&'static str>,
    /// Why the property cannot fail for a configuration, if it cannot: reported as "holds by
    /// construction", never as a plain pass.
    pub by_construction: fn(&Config) -> Option<&'static str>,
}

fn never(_: &Config) -> Option<&'static str> {
    None
}

/// Every property, safety first, in the order reports list them.
pub fn all() -> Vec<PropertyDef> {
    use Expectation::{Always, Sometimes};
    type Cond = fn(&InsyncModel, &InsyncState) -> bool;
    let safety = |name, description, condition: Cond, premise| PropertyDef {
        name,
        expectation: Always,
        description,
        condition,
        premise: Some(premise),
        by_construction: never,
    };
    let reach = |name, description, condition: Cond| PropertyDef {
        name,
        expectation: Sometimes,
        description,
        condition,
        premise: None,
        by_construction: never,
    };
    vec![
        safety("acked-writes-durable",
          "a record acknowledged to the producer is held at its offset by every later leader, and by some broker at every moment",
          acked_writes_durable, "acked-after-failover"),
        safety("committed-durable",
          "a record ever committed is held at its offset by every later leader, and by some broker (its log, or a crashed one's disk) at every moment",
          committed_durable, "committed-after-failover"),
        safety("committed-read",
          "every record a consumer read stays at its offset, unchanged, on the leader and on every replica whose high watermark passed it",
          committed_read, "consumer-read"),
        safety("log-matching",
          "two replicas hold identical records below both of their high watermarks",
          log_matching, "hw-on-two-replicas"),
        safety("isr-complete",
          "every registered member of the controller's ISR holds every committed record",
          isr_complete, "committed-after-failover"),
        safety("strong-isr",
          "every record below the high watermark of any broker acting as leader is held by every registered member of the controller's ISR (Gustafson's StrongIsr)",
          strong_isr, "record-committed"),
        PropertyDef {
            by_construction: |_| Some("the controller installs only ISRs that contain the leader, and refuses an AlterPartition that leaves the leader out"),
            ..safety("leader-in-isr",
              "a broker acting as leader is in the ISR it holds, and the controller's leader is in the controller's ISR",
              leader_in_isr, "leader-changed")
        },
        safety("no-duplicates",
          "a record sent once appears at most once in a log",
          no_duplicates, "record-retried"),
        safety("producer-order",
          "the producer's acknowledged records sit at increasing offsets in the order it sent them",
          producer_order, "two-acked"),
        PropertyDef {
            by_construction: |c| match c.consumer_commit {
                crate::config::ConsumerCommit::Before => None,
                _ => Some("the consumer commits only offsets it has processed (after) or never commits (manual)"),
            },
            ..safety("processed-before-commit",
              "every offset below the consumer's committed offset was processed (or is being processed)",
              processed_before_commit, "consumer-committed")
        },
        safety("sends-resolve",
          "every send the producer waits on can still be answered: no acks=all request is held by a leader whose high watermark already passed it",
          sends_resolve, "record-committed"),
        reach("record-committed", "a leader's high watermark passes a record", record_committed),
        reach("leader-changed", "the controller elects a new leader", leader_changed),
        reach("isr-shrunk", "the ISR loses a member", isr_shrunk),
        reach("consumer-read", "the consumer reads a record", consumer_read),
        reach("send-failed",
          "the application is told a send failed (insync's own addition: shows what retries=0 costs)",
          send_failed),
        reach("acked-after-failover",
          "an acknowledged record exists while a leader of a later epoch is active",
          acked_after_failover),
        reach("committed-after-failover",
          "a committed record exists while a leader of a later epoch is active",
          committed_after_failover),
        reach("hw-on-two-replicas", "two replicas have a positive high watermark", hw_on_two_replicas),
        reach("record-retried", "the producer sends a record a second time", record_retried),
        reach("two-acked", "two records are acknowledged", two_acked),
        reach("consumer-committed", "the consumer commits an offset", consumer_committed),
    ]
}

// ---------------------------------------------------------------- views of a state

fn controller<'a>(model: &InsyncModel, state: &'a InsyncState) -> &'a ControllerState {
    state.actor_states[usize::from(model.cfg.topology.controller())]
        .as_controller()
        .expect("the controller's slot holds the controller")
}

fn producer<'a>(model: &InsyncModel, state: &'a InsyncState) -> &'a ProducerState {
    state.actor_states[usize::from(model.cfg.topology.producer())]
        .as_producer()
        .expect("the producer's slot holds the producer")
}

/// The consumer's state, when there is a consumer and it is up.
fn consumer<'a>(model: &InsyncModel, state: &'a InsyncState) -> Option<&'a ConsumerState> {
    let t = model.cfg.topology;
    if !t.consumer || state.crashed[usize::from(t.consumer())] {
        return None;
    }
    state.actor_states[usize::from(t.consumer())].as_consumer()
}

/// Brokers that are up.
pub fn live_brokers<'a>(
    model: &InsyncModel,
    state: &'a InsyncState,
) -> impl Iterator<Item = &'a BrokerState> + 'a {
    let t = model.cfg.topology;
    t.brokers().filter_map(move |b| {
        let i = usize::from(t.broker(b));
        if state.crashed[i] {
            None
        } else {
            state.actor_states[i].as_broker()
        }
    })
}

fn live_broker<'a>(
    model: &InsyncModel,
    state: &'a InsyncState,
    b: BrokerId,
) -> Option<&'a BrokerState> {
    live_brokers(model, state).find(|s| s.id == b)
}

/// The leader the controller elected, once it is up and acting as leader in that epoch.
pub fn active_leader<'a>(model: &InsyncModel, state: &'a InsyncState) -> Option<&'a BrokerState> {
    let partition = controller(model, state).partition;
    let leader = live_broker(model, state, partition.leader?)?;
    (leader.is_leader() && leader.leader_epoch == partition.leader_epoch).then_some(leader)
}

fn holds(broker: &BrokerState, offset: Offset, value: &Value) -> bool {
    broker.log.get(offset).is_some_and(|r| &r.value == value)
}

/// Brokers the controller's ISR speaks of: up, and the incarnation the controller registered
/// (a restarted broker whose registration is on its way is not yet what the ISR names).
fn registered_isr<'a>(
    model: &InsyncModel,
    state: &'a InsyncState,
) -> impl Iterator<Item = &'a BrokerState> + 'a {
    let c = controller(model, state);
    let (isr, incarnations) = (c.partition.isr, c.incarnations);
    live_brokers(model, state)
        .filter(move |b| isr.contains(b.id) && b.incarnation == incarnations[b.id.index()])
}

/// The ghost "true high watermark": every record any broker ever committed as leader, by
/// offset. `None` when two commits disagree about an offset (itself a loss).
pub fn committed_records(model: &InsyncModel, state: &InsyncState) -> Option<Log> {
    let mut longest: Option<&Log> = None;
    for b in model.cfg.topology.brokers() {
        let Some(broker) =
            state.actor_states[usize::from(model.cfg.topology.broker(b))].as_broker()
        else {
            continue;
        };
        let ghost = &broker.committed_ghost;
        if let Some(l) = longest {
            let n = l.log_end_offset().min(ghost.log_end_offset()).as_usize();
            if !l.iter().take(n).eq(ghost.iter().take(n)) {
                return None;
            }
        }
        if longest.is_none_or(|l| ghost.log_end_offset() > l.log_end_offset()) {
            longest = Some(ghost);
        }
    }
    Some(longest.cloned().unwrap_or_default())
}

/// Whether some broker still holds `record` at `offset`: in the log of a broker that is up,
/// or on the disk of one that crashed.
fn held_somewhere(
    model: &InsyncModel,
    state: &InsyncState,
    offset: Offset,
    record: &Record,
) -> bool {
    let t = model.cfg.topology;
    t.brokers().any(|b| {
        let i = usize::from(t.broker(b));
        let log = if state.crashed[i] {
            match &state.actor_storages[i] {
                Some(NodeStorage::Broker(s)) => &s.log,
                _ => return false,
            }
        } else {
            match state.actor_states[i].as_broker() {
                Some(s) => &s.log,
                None => return false,
            }
        };
        log.get(offset) == Some(record)
    })
}

fn value_held_somewhere(
    model: &InsyncModel,
    state: &InsyncState,
    offset: Offset,
    value: &Value,
) -> bool {
    let t = model.cfg.topology;
    t.brokers().any(|b| {
        let i = usize::from(t.broker(b));
        let log = if state.crashed[i] {
            match &state.actor_storages[i] {
                Some(NodeStorage::Broker(s)) => &s.log,
                _ => return false,
            }
        } else {
            match state.actor_states[i].as_broker() {
                Some(s) => &s.log,
                None => return false,
            }
        };
        log.get(offset).is_some_and(|r| &r.value == value)
    })
}

// ---------------------------------------------------------------- safety

fn acked_writes_durable(model: &InsyncModel, state: &InsyncState) -> bool {
    let leader = active_leader(model, state);
    producer(model, state).acked().all(|(n, offset)| {
        let value = Value::Numbered(n);
        leader.is_none_or(|l| holds(l, offset, &value))
            && value_held_somewhere(model, state, offset, &value)
    })
}

fn committed_durable(model: &InsyncModel, state: &InsyncState) -> bool {
    let Some(committed) = committed_records(model, state) else {
        return false;
    };
    let leader = active_leader(model, state);
    let durable = committed.iter().enumerate().all(|(i, record)| {
        let offset = Offset::from_usize(i);
        leader.is_none_or(|l| l.log.get(offset) == Some(record))
            && held_somewhere(model, state, offset, record)
    });
    durable
}

fn committed_read(model: &InsyncModel, state: &InsyncState) -> bool {
    let Some(consumer) = consumer(model, state) else {
        return true;
    };
    let leader = active_leader(model, state);
    consumer.read.iter().all(|r| {
        leader.is_none_or(|l| holds(l, r.offset, &r.value))
            && live_brokers(model, state)
                .filter(|b| b.high_watermark > r.offset)
                .all(|b| holds(b, r.offset, &r.value))
    })
}

fn log_matching(model: &InsyncModel, state: &InsyncState) -> bool {
    let brokers: Vec<&BrokerState> = live_brokers(model, state).collect();
    brokers.iter().enumerate().all(|(i, a)| {
        brokers[i + 1..].iter().all(|b| {
            let upto = a.high_watermark.min(b.high_watermark).as_usize();
            a.log.iter().take(upto).eq(b.log.iter().take(upto))
        })
    })
}

/// Judged against the ghost true high watermark, not the active leader's (a new leader's
/// high watermark lags, which would hide a bad ISR join after a failover).
fn isr_complete(model: &InsyncModel, state: &InsyncState) -> bool {
    let Some(committed) = committed_records(model, state) else {
        return false;
    };
    let n = committed.log_end_offset().as_usize();
    registered_isr(model, state).all(|member| member.log.iter().take(n).eq(committed.iter()))
}

fn strong_isr(model: &InsyncModel, state: &InsyncState) -> bool {
    live_brokers(model, state)
        .filter(|b| b.is_leader())
        .all(|leader| {
            let hw = leader.high_watermark.as_usize();
            registered_isr(model, state).all(|member| {
                member.log.log_end_offset().as_usize() >= hw
                    && member.log.iter().take(hw).eq(leader.log.iter().take(hw))
            })
        })
}

fn leader_in_isr(model: &InsyncModel, state: &InsyncState) -> bool {
    let p = controller(model, state).partition;
    p.leader.is_none_or(|l| p.isr.contains(l))
        && live_brokers(model, state).all(|b| {
            b.leader_state()
                .is_none_or(|l| l.isr.contains(b.id) || l.maximal_isr().contains(b.id))
        })
}

fn no_duplicates(model: &InsyncModel, state: &InsyncState) -> bool {
    live_brokers(model, state).all(|b| {
        let mut seen: Vec<&Value> = b.log.iter().map(|r| &r.value).collect();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        seen.len() == n
    })
}

fn producer_order(model: &InsyncModel, state: &InsyncState) -> bool {
    let offsets: Vec<Offset> = producer(model, state).acked().map(|(_, o)| o).collect();
    offsets.windows(2).all(|w| w[0] < w[1])
}

/// A batch committed and about to be processed (at-most-once, between its two steps) counts as
/// processed: only a crash in that window loses it.
fn processed_before_commit(model: &InsyncModel, state: &InsyncState) -> bool {
    consumer(model, state).is_none_or(|c| {
        let about_to = match &c.pending {
            Some(crate::consumer::PendingStep::Process(offsets)) => offsets.as_slice(),
            _ => &[],
        };
        (0..c.committed.0).all(|o| {
            c.processed.binary_search(&Offset(o)).is_ok()
                || about_to.iter().any(|r| r.offset == Offset(o))
        })
    })
}

/// No request is stranded: an `acks=all` request held by a broker acting as leader whose
/// high watermark already covers it would never be answered, since only an advance of the
/// high watermark completes a held request (the committed-retry hang). Requests lost in
/// the network are the request timeout's business, which the producer arms whenever an
/// answer can be lost (`producer::timeouts_matter`). (Scanning the network for the request
/// is not possible: stateright 0.31's `Network::iter_all` never ends on an ordered network.)
fn sends_resolve(model: &InsyncModel, state: &InsyncState) -> bool {
    let me = model.cfg.topology.producer();
    !live_brokers(model, state).any(|b| {
        b.leader_state().is_some_and(|l| {
            l.pending_produce
                .iter()
                .any(|pp| pp.client == me && pp.end_offset <= b.high_watermark)
        })
    })
}

// ---------------------------------------------------------------- reachability

fn record_committed(model: &InsyncModel, state: &InsyncState) -> bool {
    live_brokers(model, state).any(|b| b.is_leader() && b.high_watermark > Offset::ZERO)
}

fn leader_changed(model: &InsyncModel, state: &InsyncState) -> bool {
    controller(model, state).partition.leader_epoch > crate::types::Epoch::INITIAL
}

fn isr_shrunk(model: &InsyncModel, state: &InsyncState) -> bool {
    controller(model, state).partition.isr.len() < model.cfg.topology.replicas
}

fn consumer_read(model: &InsyncModel, state: &InsyncState) -> bool {
    consumer(model, state).is_some_and(|c| !c.read.is_empty())
}

fn send_failed(model: &InsyncModel, state: &InsyncState) -> bool {
    producer(model, state).any_failed()
}

fn after_failover(model: &InsyncModel, state: &InsyncState) -> bool {
    active_leader(model, state).is_some_and(|l| l.leader_epoch > crate::types::Epoch::INITIAL)
}

fn acked_after_failover(model: &InsyncModel, state: &InsyncState) -> bool {
    producer(model, state).acked().next().is_some() && after_failover(model, state)
}

fn committed_after_failover(model: &InsyncModel, state: &InsyncState) -> bool {
    committed_records(model, state).is_some_and(|c| !c.is_empty()) && after_failover(model, state)
}

fn hw_on_two_replicas(model: &InsyncModel, state: &InsyncState) -> bool {
    live_brokers(model, state)
        .filter(|b| b.high_watermark > Offset::ZERO)
        .count()
        >= 2
}

fn record_retried(model: &InsyncModel, state: &InsyncState) -> bool {
    producer(model, state).attempts.iter().any(|&a| a >= 2)
}

fn two_acked(model: &InsyncModel, state: &InsyncState) -> bool {
    producer(model, state).acked().nth(1).is_some()
}

fn consumer_committed(model: &InsyncModel, state: &InsyncState) -> bool {
    consumer(model, state).is_some_and(|c| c.committed > Offset::ZERO)
}
