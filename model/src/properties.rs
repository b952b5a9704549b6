//! Kafka's reliability promises as properties, under the names PROTOCOL.md §3 gives them.
//!
//! Each `always` property is judged in every reachable state over the actors that are up
//! (stateright keeps a crashed actor's last state visible, so crashed brokers are skipped).
//! Each is paired with a `sometimes` property that shows the states it speaks about are
//! reached, so a passing check is not vacuous.

use crate::broker::BrokerState;
use crate::consumer::ConsumerState;
use crate::controller::ControllerState;
use crate::node::{InsyncModel, InsyncState};
use crate::producer::{Producer, ProducerState};
use crate::types::{BrokerId, Offset, Value};
use stateright::Expectation;

/// A property: its contract name, kind, what it means, and its condition.
pub struct PropertyDef {
    pub name: &'static str,
    pub expectation: Expectation,
    pub description: &'static str,
    pub condition: fn(&InsyncModel, &InsyncState) -> bool,
}

/// Every property, safety first, in the order reports list them.
pub fn all() -> Vec<PropertyDef> {
    use Expectation::{Always, Sometimes};
    let p = |name, expectation, description, condition| PropertyDef {
        name,
        expectation,
        description,
        condition,
    };
    vec![
        p("acked-writes-durable", Always,
          "a record acknowledged to the producer is held at its offset by every later leader",
          acked_writes_durable as fn(&InsyncModel, &InsyncState) -> bool),
        p("committed-read", Always,
          "every record a consumer read stays at its offset, unchanged, on the leader and on every replica whose high watermark passed it",
          committed_read),
        p("log-matching", Always,
          "two replicas hold identical records below both of their high watermarks",
          log_matching),
        p("isr-complete", Always,
          "every ISR member holds every record below the leader's high watermark",
          isr_complete),
        p("leader-in-isr", Always,
          "the controller's leader is in the ISR",
          leader_in_isr),
        p("no-duplicates", Always,
          "a record sent once appears at most once in a log",
          no_duplicates),
        p("producer-order", Always,
          "the producer's acknowledged records appear in the leader's log in send order",
          producer_order),
        p("processed-before-commit", Always,
          "every offset below the consumer's committed offset was processed (or is being processed)",
          processed_before_commit),
        p("record-committed", Sometimes,
          "a leader's high watermark passes a record",
          record_committed),
        p("leader-changed", Sometimes,
          "the controller elects a new leader",
          leader_changed),
        p("isr-shrunk", Sometimes,
          "the ISR loses a member",
          isr_shrunk),
        p("consumer-read", Sometimes,
          "the consumer reads a record",
          consumer_read),
        p("send-failed", Sometimes,
          "the application is told a send failed (insync's own addition: shows what retries=0 costs)",
          send_failed),
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

// ---------------------------------------------------------------- safety

fn acked_writes_durable(model: &InsyncModel, state: &InsyncState) -> bool {
    let Some(leader) = active_leader(model, state) else {
        return true;
    };
    producer(model, state)
        .acked()
        .all(|(n, offset)| holds(leader, offset, &Value::Numbered(n)))
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

fn isr_complete(model: &InsyncModel, state: &InsyncState) -> bool {
    let Some(leader) = active_leader(model, state) else {
        return true;
    };
    let hw = leader.high_watermark.as_usize();
    controller(model, state).partition.isr.iter().all(|b| {
        live_broker(model, state, b).is_none_or(|member| {
            member.log.log_end_offset().as_usize() >= hw
                && member.log.iter().take(hw).eq(leader.log.iter().take(hw))
        })
    })
}

fn leader_in_isr(model: &InsyncModel, state: &InsyncState) -> bool {
    let p = controller(model, state).partition;
    p.leader.is_none_or(|l| p.isr.contains(l))
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
    let Some(leader) = active_leader(model, state) else {
        return true;
    };
    let first_offset = |n: u32| {
        let value = Producer::value_of(n - 1);
        leader.log.iter().position(|r| r.value == value)
    };
    let positions: Vec<usize> = producer(model, state)
        .acked()
        .filter_map(|(n, _)| first_offset(n))
        .collect();
    positions.windows(2).all(|w| w[0] < w[1])
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
