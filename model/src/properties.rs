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
use std::fmt;
use std::str::FromStr;

/// The properties of PROTOCOL.md §3. Code names a property by its variant (a typo does not
/// compile); a name typed by a user or read from a report goes through [`Property::from_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    AckedWritesDurable,
    CommittedDurable,
    CommittedRead,
    LogMatching,
    IsrComplete,
    StrongIsr,
    LeaderInIsr,
    NoDuplicates,
    ProducerOrder,
    ProcessedBeforeCommit,
    SendsResolve,
    RecordCommitted,
    LeaderChanged,
    IsrShrunk,
    ConsumerRead,
    SendFailed,
    AckedAfterFailover,
    CommittedAfterFailover,
    HwOnTwoReplicas,
    RecordRetried,
    TwoAcked,
    ConsumerCommitted,
}

impl Property {
    /// Every property, safety first, in the order reports list them.
    pub const ALL: [Property; 22] = [
        Property::AckedWritesDurable,
        Property::CommittedDurable,
        Property::CommittedRead,
        Property::LogMatching,
        Property::IsrComplete,
        Property::StrongIsr,
        Property::LeaderInIsr,
        Property::NoDuplicates,
        Property::ProducerOrder,
        Property::ProcessedBeforeCommit,
        Property::SendsResolve,
        Property::RecordCommitted,
        Property::LeaderChanged,
        Property::IsrShrunk,
        Property::ConsumerRead,
        Property::SendFailed,
        Property::AckedAfterFailover,
        Property::CommittedAfterFailover,
        Property::HwOnTwoReplicas,
        Property::RecordRetried,
        Property::TwoAcked,
        Property::ConsumerCommitted,
    ];

    /// The contract's name.
    pub fn name(self) -> &'static str {
        match self {
            Property::AckedWritesDurable => "acked-writes-durable",
            Property::CommittedDurable => "committed-durable",
            Property::CommittedRead => "committed-read",
            Property::LogMatching => "log-matching",
            Property::IsrComplete => "isr-complete",
            Property::StrongIsr => "strong-isr",
            Property::LeaderInIsr => "leader-in-isr",
            Property::NoDuplicates => "no-duplicates",
            Property::ProducerOrder => "producer-order",
            Property::ProcessedBeforeCommit => "processed-before-commit",
            Property::SendsResolve => "sends-resolve",
            Property::RecordCommitted => "record-committed",
            Property::LeaderChanged => "leader-changed",
            Property::IsrShrunk => "isr-shrunk",
            Property::ConsumerRead => "consumer-read",
            Property::SendFailed => "send-failed",
            Property::AckedAfterFailover => "acked-after-failover",
            Property::CommittedAfterFailover => "committed-after-failover",
            Property::HwOnTwoReplicas => "hw-on-two-replicas",
            Property::RecordRetried => "record-retried",
            Property::TwoAcked => "two-acked",
            Property::ConsumerCommitted => "consumer-committed",
        }
    }

    /// Its definition.
    pub fn def(self) -> PropertyDef {
        all()
            .into_iter()
            .find(|d| d.property == self)
            .expect("every property has a definition")
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is not a property's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no such property `{0}`; the properties are {names}", names = Property::ALL.map(Property::name).join(", "))]
pub struct UnknownProperty(pub String);

impl FromStr for Property {
    type Err = UnknownProperty;

    fn from_str(name: &str) -> Result<Property, UnknownProperty> {
        Property::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| UnknownProperty(name.to_string()))
    }
}

/// A property: its contract name, kind, what it means, and its condition.
pub struct PropertyDef {
    pub property: Property,
    /// `property.name()`.
    pub name: &'static str,
    pub expectation: Expectation,
    pub description: &'static str,
    pub condition: fn(&InsyncModel, &InsyncState) -> bool,
    /// For a safety property, the reachability property that shows its premise is reached
    /// (so that "holds" is not vacuous).
    pub premise: Option<Property>,
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
    let safety = |property: Property, description, condition: Cond, premise| PropertyDef {
        property,
        name: property.name(),
        expectation: Always,
        description,
        condition,
        premise: Some(premise),
        by_construction: never,
    };
    let reach = |property: Property, description, condition: Cond| PropertyDef {
        property,
        name: property.name(),
        expectation: Sometimes,
        description,
        condition,
        premise: None,
        by_construction: never,
    };
    vec![
        safety(Property::AckedWritesDurable,
          "a record acknowledged to the producer is held at its offset by every later leader, and by some broker at every moment",
          acked_writes_durable, Property::AckedAfterFailover),
        safety(Property::CommittedDurable,
          "a record ever committed is held at its offset by every later leader, and by some broker (its log, or a crashed one's disk) at every moment",
          committed_durable, Property::CommittedAfterFailover),
        safety(Property::CommittedRead,
          "every record a consumer read stays at its offset, unchanged, on the leader and on every replica whose high watermark passed it",
          committed_read, Property::ConsumerRead),
        safety(Property::LogMatching,
          "two replicas hold identical records below both of their high watermarks",
          log_matching, Property::HwOnTwoReplicas),
        safety(Property::IsrComplete,
          "every registered member of the controller's ISR holds every committed record",
          isr_complete, Property::CommittedAfterFailover),
        safety(Property::StrongIsr,
          "every record below the high watermark of any broker acting as leader is held by every registered member of the controller's ISR (Gustafson's StrongIsr)",
          strong_isr, Property::RecordCommitted),
        PropertyDef {
            by_construction: |_| Some("the controller installs only ISRs that contain the leader, and refuses an AlterPartition that leaves the leader out"),
            ..safety(Property::LeaderInIsr,
              "a broker acting as leader is in the ISR it holds, and the controller's leader is in the controller's ISR",
              leader_in_isr, Property::LeaderChanged)
        },
        safety(Property::NoDuplicates,
          "a record sent once appears at most once in a log",
          no_duplicates, Property::RecordRetried),
        safety(Property::ProducerOrder,
          "the producer's acknowledged records sit at increasing offsets in the order it sent them",
          producer_order, Property::TwoAcked),
        PropertyDef {
            by_construction: |c| match c.consumer_commit {
                crate::config::ConsumerCommit::Before => None,
                _ => Some("the consumer commits only offsets it has processed (after) or never commits (manual)"),
            },
            ..safety(Property::ProcessedBeforeCommit,
              "every offset below the consumer's committed offset was processed (or is being processed)",
              processed_before_commit, Property::ConsumerCommitted)
        },
        safety(Property::SendsResolve,
          "every send the producer waits on can still be answered: no acks=all request is held by a leader whose high watermark already passed it",
          sends_resolve, Property::RecordCommitted),
        reach(Property::RecordCommitted, "a leader's high watermark passes a record", record_committed),
        reach(Property::LeaderChanged, "the controller elects a new leader", leader_changed),
        reach(Property::IsrShrunk, "the ISR loses a member", isr_shrunk),
        reach(Property::ConsumerRead, "the consumer reads a record", consumer_read),
        reach(Property::SendFailed,
          "the application is told a send failed (insync's own addition: shows what retries=0 costs)",
          send_failed),
        reach(Property::AckedAfterFailover,
          "an acknowledged record exists while a leader of a later epoch is active",
          acked_after_failover),
        reach(Property::CommittedAfterFailover,
          "a committed record exists while a leader of a later epoch is active",
          committed_after_failover),
        reach(Property::HwOnTwoReplicas, "two replicas have a positive high watermark", hw_on_two_replicas),
        reach(Property::RecordRetried, "the producer sends a record a second time", record_retried),
        reach(Property::TwoAcked, "two records are acknowledged", two_acked),
        reach(Property::ConsumerCommitted, "the consumer commits an offset", consumer_committed),
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
            match state.actor_storages[i].as_deref() {
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
            match state.actor_storages[i].as_deref() {
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
/// the network are the request timeout's business, which the producer arms whenever a
/// request is in flight (`Producer::arm_timeout`). (Scanning the network for the request
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

/// Each property judged on hand-built states: one in which it must fail and a close one in
/// which it must hold, at the boundaries the conditions draw (crashed actors, offsets at the
/// high watermark, equal epochs, stale incarnations).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BrokerStorage, LeaderState, PendingProduce, Role};
    use crate::config::ConsumerCommit;
    use crate::consumer::{PendingStep, ReadRecord};
    use crate::msg::RequestId;
    use crate::node::{Insync, NodeState};
    use crate::producer::Outcome;
    use crate::types::BrokerEpoch;
    use crate::types::{BrokerSet, Epoch};
    use std::sync::Arc;

    /// RF 3, two records, a consumer: broker 0 leads epoch 1 with every broker in sync, and
    /// nothing has happened yet.
    fn start() -> (InsyncModel, InsyncState) {
        start_with(ConsumerCommit::After)
    }

    fn start_with(commit: ConsumerCommit) -> (InsyncModel, InsyncState) {
        let config = Config {
            records: 2,
            consumer: true,
            consumer_commit: commit,
            ..Config::default()
        };
        let model = Insync::new(config.validate().expect("valid")).into_model();
        let state = stateright::Model::init_states(&model).remove(0);
        (model, state)
    }

    fn rec(value: u32, epoch: u32) -> Record {
        Record {
            value: Value::Numbered(value),
            leader_epoch: Epoch(epoch),
            producer: None,
        }
    }

    /// A log of `(value, epoch)` records.
    fn log(records: &[(u32, u32)]) -> Log {
        let mut log = Log::new();
        for &(v, e) in records {
            log.append(rec(v, e));
        }
        log
    }

    fn broker(state: &mut InsyncState, b: u8) -> &mut BrokerState {
        match Arc::make_mut(&mut state.actor_states[usize::from(b)]) {
            NodeState::Broker(s) => s,
            _ => panic!("slot {b} is a broker"),
        }
    }

    fn ctl<'a>(model: &InsyncModel, state: &'a mut InsyncState) -> &'a mut ControllerState {
        let i = usize::from(model.cfg.topology.controller());
        match Arc::make_mut(&mut state.actor_states[i]) {
            NodeState::Controller(s) => s,
            _ => panic!("the controller"),
        }
    }

    fn prod<'a>(model: &InsyncModel, state: &'a mut InsyncState) -> &'a mut ProducerState {
        let i = usize::from(model.cfg.topology.producer());
        match Arc::make_mut(&mut state.actor_states[i]) {
            NodeState::Producer(s) => s,
            _ => panic!("the producer"),
        }
    }

    fn cons<'a>(model: &InsyncModel, state: &'a mut InsyncState) -> &'a mut ConsumerState {
        let i = usize::from(model.cfg.topology.consumer());
        match Arc::make_mut(&mut state.actor_states[i]) {
            NodeState::Consumer(s) => s,
            _ => panic!("the consumer"),
        }
    }

    /// Broker `b` crashes: its last state stays visible, its disk holds `disk`.
    fn crash(state: &mut InsyncState, b: u8, disk: Log) {
        let i = usize::from(b);
        state.crashed[i] = true;
        state.actor_storages[i] = Some(std::sync::Arc::new(NodeStorage::Broker(BrokerStorage {
            incarnation: BrokerEpoch(0),
            log: disk,
            high_watermark: Offset::ZERO,
            committed_ghost: Log::new(),
        })));
    }

    fn make_follower(state: &mut InsyncState, b: u8) {
        broker(state, b).role = Role::Follower {
            leader: None,
            truncating: false,
        };
    }

    fn leader_state(state: &mut InsyncState, b: u8) -> &mut LeaderState {
        match &mut broker(state, b).role {
            Role::Leader(l) => l,
            Role::Follower { .. } => panic!("broker {b} leads"),
        }
    }

    /// Every broker holds `records`.
    fn all_hold(state: &mut InsyncState, records: &[(u32, u32)]) {
        for b in 0..3 {
            broker(state, b).log = log(records);
        }
    }

    fn acked(model: &InsyncModel, state: &mut InsyncState, outcomes: &[Option<Outcome>]) {
        prod(model, state).outcomes = outcomes.to_vec();
    }

    fn ghost(state: &mut InsyncState, b: u8, records: &[(u32, u32)]) {
        broker(state, b).committed_ghost = log(records);
    }

    // ------------------------------------------------------------ views

    #[test]
    fn the_active_leader_is_the_controllers_leader_acting_in_its_epoch() {
        let (model, mut state) = start();
        assert_eq!(
            active_leader(&model, &state).map(|b| b.id),
            Some(BrokerId(0))
        );
        // The controller moved on to epoch 2; broker 0 has not heard yet.
        ctl(&model, &mut state).partition.leader_epoch = Epoch(2);
        assert!(active_leader(&model, &state).is_none());
        broker(&mut state, 0).leader_epoch = Epoch(2);
        assert_eq!(
            active_leader(&model, &state).map(|b| b.id),
            Some(BrokerId(0))
        );
        // Elected, but not yet acting as leader.
        make_follower(&mut state, 0);
        assert!(active_leader(&model, &state).is_none());
        let (model, mut state) = start();
        crash(&mut state, 0, Log::new());
        assert!(
            active_leader(&model, &state).is_none(),
            "a crashed leader is not active"
        );
        let (model, mut state) = start();
        ctl(&model, &mut state).partition.leader = None;
        assert!(active_leader(&model, &state).is_none(), "offline");
    }

    #[test]
    fn live_brokers_skip_crashed_ones() {
        let (model, mut state) = start();
        let ids = |s: &InsyncState| live_brokers(&model, s).map(|b| b.id.0).collect::<Vec<_>>();
        assert_eq!(ids(&state), vec![0, 1, 2]);
        crash(&mut state, 1, Log::new());
        assert_eq!(ids(&state), vec![0, 2]);
    }

    #[test]
    fn committed_records_is_the_longest_ghost_and_none_on_disagreement() {
        let (model, mut state) = start();
        assert_eq!(committed_records(&model, &state), Some(Log::new()));
        ghost(&mut state, 0, &[(1, 1)]);
        ghost(&mut state, 1, &[(1, 1), (2, 2)]);
        ghost(&mut state, 2, &[(1, 1)]);
        assert_eq!(
            committed_records(&model, &state),
            Some(log(&[(1, 1), (2, 2)]))
        );
        // The longest first, shorter ones after: still the longest.
        ghost(&mut state, 0, &[(1, 1), (2, 2), (3, 2)]);
        assert_eq!(
            committed_records(&model, &state),
            Some(log(&[(1, 1), (2, 2), (3, 2)]))
        );
        // A crashed broker's ghost still counts: what it committed was committed.
        crash(&mut state, 0, Log::new());
        assert_eq!(
            committed_records(&model, &state),
            Some(log(&[(1, 1), (2, 2), (3, 2)]))
        );
        // Two commits of offset 1 that disagree (even only in the epoch).
        ghost(&mut state, 2, &[(1, 1), (2, 3)]);
        assert_eq!(committed_records(&model, &state), None);
        assert!(!committed_durable(&model, &state));
        assert!(!isr_complete(&model, &state));
    }

    // ------------------------------------------------------------ acked-writes-durable

    #[test]
    fn acked_writes_durable_needs_the_leader_and_some_broker_to_hold_the_value() {
        let (model, mut state) = start();
        assert!(acked_writes_durable(&model, &state), "nothing acknowledged");
        acked(&model, &mut state, &[Some(Outcome::Acked(Offset(0))), None]);
        assert!(!acked_writes_durable(&model, &state), "acked, held nowhere");
        all_hold(&mut state, &[(1, 1)]);
        assert!(acked_writes_durable(&model, &state));
        // The leader lacks it: a follower holding it is not enough.
        broker(&mut state, 0).log = Log::new();
        assert!(!acked_writes_durable(&model, &state));
        // No active leader (its epoch is behind the controller's): some broker suffices.
        ctl(&model, &mut state).partition.leader_epoch = Epoch(2);
        assert!(acked_writes_durable(&model, &state));
        // The same value at another offset does not count.
        let (model, mut state) = start();
        all_hold(&mut state, &[(2, 1), (1, 1)]);
        acked(&model, &mut state, &[Some(Outcome::Acked(Offset(0))), None]);
        assert!(!acked_writes_durable(&model, &state));
        // The value is what was acknowledged: a record rewritten in a later epoch holds it.
        all_hold(&mut state, &[(1, 2)]);
        assert!(acked_writes_durable(&model, &state));
        // The second record, acknowledged at offset 1, is v2.
        acked(
            &model,
            &mut state,
            &[
                Some(Outcome::Failed(crate::msg::ErrorCode::NotEnoughReplicas)),
                Some(Outcome::Acked(Offset(1))),
            ],
        );
        assert!(!acked_writes_durable(&model, &state));
        all_hold(&mut state, &[(1, 1), (2, 1)]);
        assert!(acked_writes_durable(&model, &state));
    }

    #[test]
    fn acked_writes_durable_reads_a_crashed_broker_from_its_disk() {
        let (model, mut state) = start();
        acked(&model, &mut state, &[Some(Outcome::Acked(Offset(0))), None]);
        ctl(&model, &mut state).partition.leader = None;
        // Broker 1's last state had it, but its disk did not: lost.
        broker(&mut state, 1).log = log(&[(1, 1)]);
        crash(&mut state, 1, Log::new());
        assert!(!acked_writes_durable(&model, &state));
        // On its disk: held.
        crash(&mut state, 1, log(&[(1, 1)]));
        assert!(acked_writes_durable(&model, &state));
    }

    // ------------------------------------------------------------ committed-durable

    #[test]
    fn committed_durable_needs_the_exact_record_on_the_leader_and_somewhere() {
        let (model, mut state) = start();
        assert!(committed_durable(&model, &state), "nothing committed");
        ghost(&mut state, 1, &[(1, 1), (2, 1)]);
        assert!(!committed_durable(&model, &state), "held nowhere");
        all_hold(&mut state, &[(1, 1), (2, 1)]);
        assert!(committed_durable(&model, &state));
        // The leader lost offset 1.
        broker(&mut state, 0).log = log(&[(1, 1)]);
        assert!(!committed_durable(&model, &state));
        // The leader holds the value at offset 1 but from another epoch: another record.
        broker(&mut state, 0).log = log(&[(1, 1), (2, 2)]);
        assert!(!committed_durable(&model, &state));
        // No active leader: broker 1 still holds both.
        make_follower(&mut state, 0);
        assert!(committed_durable(&model, &state));
        // Only a crashed broker's disk holds offset 1.
        all_hold(&mut state, &[(1, 1)]);
        broker(&mut state, 2).log = log(&[(1, 1), (2, 1)]);
        crash(&mut state, 2, log(&[(1, 1), (2, 1)]));
        assert!(committed_durable(&model, &state));
        crash(&mut state, 2, log(&[(1, 1)]));
        assert!(
            !committed_durable(&model, &state),
            "its last state is not its disk"
        );
    }

    // ------------------------------------------------------------ committed-read

    #[test]
    fn committed_read_judges_the_leader_and_replicas_past_the_offset() {
        let (model, mut state) = start();
        assert!(committed_read(&model, &state), "nothing read");
        cons(&model, &mut state).read = vec![ReadRecord {
            offset: Offset(1),
            value: Value::Numbered(2),
        }];
        assert!(!committed_read(&model, &state), "the leader lacks it");
        broker(&mut state, 0).log = log(&[(1, 1), (2, 1)]);
        assert!(
            committed_read(&model, &state),
            "followers below it are not judged"
        );
        // Broker 1's high watermark at the offset itself: not past it.
        broker(&mut state, 1).log = log(&[(1, 1)]);
        broker(&mut state, 1).high_watermark = Offset(1);
        assert!(committed_read(&model, &state));
        // Past it, without the record.
        broker(&mut state, 1).high_watermark = Offset(2);
        assert!(!committed_read(&model, &state));
        // ... with another value there.
        broker(&mut state, 1).log = log(&[(1, 1), (3, 1)]);
        assert!(!committed_read(&model, &state));
        // ... with the value from another epoch: the same record as read.
        broker(&mut state, 1).log = log(&[(1, 1), (2, 2)]);
        assert!(committed_read(&model, &state));
        // A crashed replica is not judged.
        broker(&mut state, 1).log = Log::new();
        crash(&mut state, 1, Log::new());
        assert!(committed_read(&model, &state));
        // Nor the leader once it is not active.
        broker(&mut state, 0).log = Log::new();
        assert!(!committed_read(&model, &state));
        ctl(&model, &mut state).partition.leader = Some(BrokerId(2));
        assert!(committed_read(&model, &state));
    }

    #[test]
    fn committed_read_has_nothing_to_judge_without_a_live_consumer() {
        let (model, mut state) = start();
        cons(&model, &mut state).read = vec![ReadRecord {
            offset: Offset(0),
            value: Value::Numbered(1),
        }];
        assert!(!committed_read(&model, &state));
        let i = usize::from(model.cfg.topology.consumer());
        state.crashed[i] = true;
        assert!(committed_read(&model, &state));
        // No consumer at all.
        let config = Config {
            consumer: false,
            ..Config::default()
        };
        let model = Insync::new(config.validate().expect("valid")).into_model();
        let state = stateright::Model::init_states(&model).remove(0);
        assert!(committed_read(&model, &state));
        assert!(!consumer_read(&model, &state));
        assert!(!consumer_committed(&model, &state));
    }

    // ------------------------------------------------------------ log-matching

    #[test]
    fn log_matching_compares_below_both_high_watermarks() {
        let (model, mut state) = start();
        assert!(log_matching(&model, &state));
        broker(&mut state, 0).log = log(&[(1, 1), (2, 1)]);
        broker(&mut state, 0).high_watermark = Offset(2);
        broker(&mut state, 2).log = log(&[(1, 1), (3, 2)]);
        broker(&mut state, 2).high_watermark = Offset(1);
        assert!(
            log_matching(&model, &state),
            "they differ only above broker 2's hw"
        );
        broker(&mut state, 2).high_watermark = Offset(2);
        assert!(!log_matching(&model, &state));
        // A crashed replica is not compared.
        crash(&mut state, 2, Log::new());
        assert!(log_matching(&model, &state));
        // The first two differ below both: found whatever the third says.
        let (model, mut state) = start();
        broker(&mut state, 0).log = log(&[(1, 1)]);
        broker(&mut state, 0).high_watermark = Offset(1);
        broker(&mut state, 1).log = log(&[(2, 1)]);
        broker(&mut state, 1).high_watermark = Offset(1);
        assert!(!log_matching(&model, &state));
        // Only the last two differ.
        broker(&mut state, 0).high_watermark = Offset(0);
        broker(&mut state, 2).log = log(&[(1, 1)]);
        broker(&mut state, 2).high_watermark = Offset(1);
        assert!(!log_matching(&model, &state));
        broker(&mut state, 2).log = log(&[(2, 1)]);
        assert!(log_matching(&model, &state));
    }

    // ------------------------------------------------------------ isr-complete

    #[test]
    fn isr_complete_judges_registered_live_members_against_the_ghost() {
        let (model, mut state) = start();
        assert!(isr_complete(&model, &state));
        ghost(&mut state, 0, &[(1, 1), (2, 1)]);
        all_hold(&mut state, &[(1, 1), (2, 1)]);
        assert!(isr_complete(&model, &state));
        // A longer log is fine.
        broker(&mut state, 1).log = log(&[(1, 1), (2, 1), (3, 1)]);
        assert!(isr_complete(&model, &state));
        broker(&mut state, 1).log = log(&[(1, 1)]);
        assert!(!isr_complete(&model, &state), "a member lacks offset 1");
        // Out of the ISR, it is not judged.
        let isr = ctl(&model, &mut state).partition.isr;
        ctl(&model, &mut state).partition.isr = isr.without(BrokerId(1));
        assert!(isr_complete(&model, &state));
        ctl(&model, &mut state).partition.isr = isr;
        // A restarted incarnation the controller has not registered yet is not judged.
        broker(&mut state, 1).incarnation = BrokerEpoch(1);
        assert!(isr_complete(&model, &state));
        ctl(&model, &mut state).incarnations[1] = BrokerEpoch(1);
        assert!(!isr_complete(&model, &state));
        // Nor a crashed member.
        crash(&mut state, 1, Log::new());
        assert!(isr_complete(&model, &state));
        // A member holding another record at offset 1.
        broker(&mut state, 2).log = log(&[(1, 1), (2, 2)]);
        assert!(!isr_complete(&model, &state));
    }

    // ------------------------------------------------------------ strong-isr

    #[test]
    fn strong_isr_judges_members_below_every_acting_leaders_high_watermark() {
        let (model, mut state) = start();
        assert!(strong_isr(&model, &state));
        all_hold(&mut state, &[(1, 1), (2, 1)]);
        broker(&mut state, 0).high_watermark = Offset(2);
        assert!(strong_isr(&model, &state), "every member holds both");
        broker(&mut state, 2).log = log(&[(1, 1)]);
        assert!(!strong_isr(&model, &state), "broker 2 ends below the hw");
        // At the high watermark exactly.
        broker(&mut state, 0).high_watermark = Offset(1);
        assert!(strong_isr(&model, &state));
        // A different record below it.
        broker(&mut state, 2).log = log(&[(3, 1), (2, 1)]);
        assert!(!strong_isr(&model, &state));
        // A follower's high watermark is no leader's.
        broker(&mut state, 2).log = log(&[(1, 1)]);
        broker(&mut state, 1).high_watermark = Offset(2);
        assert!(strong_isr(&model, &state));
        // A zombie still acting as leader counts (epochs aside).
        let (model, mut state) = start();
        all_hold(&mut state, &[(1, 1)]);
        broker(&mut state, 1).high_watermark = Offset(1);
        broker(&mut state, 1).role = Role::Leader(leader_state(&mut state, 0).clone());
        broker(&mut state, 0).log = Log::new();
        assert!(!strong_isr(&model, &state));
        // Out of the controller's ISR, broker 0 is not judged; crashed, neither.
        let isr = ctl(&model, &mut state).partition.isr;
        ctl(&model, &mut state).partition.isr = isr.without(BrokerId(0));
        assert!(strong_isr(&model, &state));
        ctl(&model, &mut state).partition.isr = isr;
        crash(&mut state, 0, Log::new());
        assert!(strong_isr(&model, &state));
        // A crashed leader's high watermark is not judged.
        let (model, mut state) = start();
        broker(&mut state, 0).log = log(&[(1, 1)]);
        broker(&mut state, 0).high_watermark = Offset(1);
        assert!(!strong_isr(&model, &state));
        crash(&mut state, 0, Log::new());
        assert!(strong_isr(&model, &state));
    }

    // ------------------------------------------------------------ leader-in-isr

    #[test]
    fn leader_in_isr_holds_for_the_controller_and_every_acting_leader() {
        let (model, mut state) = start();
        assert!(leader_in_isr(&model, &state));
        ctl(&model, &mut state).partition.isr = BrokerSet::all(3).without(BrokerId(0));
        assert!(
            !leader_in_isr(&model, &state),
            "the controller's leader is out"
        );
        ctl(&model, &mut state).partition.leader = None;
        assert!(leader_in_isr(&model, &state), "offline");
        // Broker 0 acts on an ISR without itself.
        let (model, mut state) = start();
        leader_state(&mut state, 0).isr = BrokerSet::single(BrokerId(1));
        assert!(!leader_in_isr(&model, &state));
        // ... unless a pending change adds it back (the maximal ISR).
        leader_state(&mut state, 0).pending_isr = Some(BrokerSet::single(BrokerId(0)));
        assert!(leader_in_isr(&model, &state));
        leader_state(&mut state, 0).pending_isr = Some(BrokerSet::single(BrokerId(2)));
        assert!(!leader_in_isr(&model, &state));
        crash(&mut state, 0, Log::new());
        assert!(
            leader_in_isr(&model, &state),
            "a crashed broker is not judged"
        );
    }

    // ------------------------------------------------------------ no-duplicates

    #[test]
    fn no_duplicates_finds_a_value_twice_in_a_live_log() {
        let (model, mut state) = start();
        assert!(no_duplicates(&model, &state));
        broker(&mut state, 1).log = log(&[(1, 1), (2, 1)]);
        assert!(no_duplicates(&model, &state));
        // Twice, though in two epochs and not side by side.
        broker(&mut state, 1).log = log(&[(1, 1), (2, 1), (1, 2)]);
        assert!(!no_duplicates(&model, &state));
        crash(&mut state, 1, Log::new());
        assert!(no_duplicates(&model, &state));
    }

    // ------------------------------------------------------------ producer-order

    #[test]
    fn producer_order_wants_strictly_increasing_offsets() {
        let (model, mut state) = start();
        let at = |o| Some(Outcome::Acked(Offset(o)));
        acked(&model, &mut state, &[at(0), at(1)]);
        assert!(producer_order(&model, &state));
        assert!(two_acked(&model, &state));
        acked(&model, &mut state, &[at(1), at(0)]);
        assert!(!producer_order(&model, &state));
        acked(&model, &mut state, &[at(3), at(3)]);
        assert!(!producer_order(&model, &state));
        acked(&model, &mut state, &[at(3), None]);
        assert!(producer_order(&model, &state));
        assert!(!two_acked(&model, &state));
    }

    // ------------------------------------------------------------ processed-before-commit

    #[test]
    fn processed_before_commit_wants_every_offset_below_the_commit_processed() {
        let (model, mut state) = start_with(ConsumerCommit::Before);
        assert!(processed_before_commit(&model, &state));
        cons(&model, &mut state).committed = Offset(2);
        assert!(!processed_before_commit(&model, &state));
        cons(&model, &mut state).processed = vec![Offset(0)];
        assert!(
            !processed_before_commit(&model, &state),
            "offset 1 not processed"
        );
        cons(&model, &mut state).processed = vec![Offset(0), Offset(1)];
        assert!(processed_before_commit(&model, &state));
        // Offset 1 about to be processed (at-most-once, between its two steps).
        cons(&model, &mut state).processed = vec![Offset(0)];
        cons(&model, &mut state).pending = Some(PendingStep::Process(vec![ReadRecord {
            offset: Offset(1),
            value: Value::Numbered(2),
        }]));
        assert!(processed_before_commit(&model, &state));
        cons(&model, &mut state).pending = Some(PendingStep::Process(vec![ReadRecord {
            offset: Offset(2),
            value: Value::Numbered(3),
        }]));
        assert!(!processed_before_commit(&model, &state));
        // The offset at the commit itself need not be processed.
        cons(&model, &mut state).committed = Offset(1);
        assert!(processed_before_commit(&model, &state));
        // A crashed consumer is judged by its next incarnation, not its last state.
        cons(&model, &mut state).committed = Offset(2);
        let i = usize::from(model.cfg.topology.consumer());
        state.crashed[i] = true;
        assert!(processed_before_commit(&model, &state));
    }

    // ------------------------------------------------------------ sends-resolve

    #[test]
    fn sends_resolve_finds_a_held_request_the_high_watermark_passed() {
        let (model, mut state) = start();
        assert!(sends_resolve(&model, &state));
        let me = model.cfg.topology.producer();
        all_hold(&mut state, &[(1, 1), (2, 1)]);
        broker(&mut state, 0).high_watermark = Offset(1);
        let pending = |end| PendingProduce {
            client: me,
            request: RequestId(0),
            base_offset: Offset(0),
            end_offset: Offset(end),
        };
        leader_state(&mut state, 0).pending_produce = vec![pending(2)];
        assert!(sends_resolve(&model, &state), "above the hw: still waiting");
        leader_state(&mut state, 0).pending_produce = vec![pending(2), pending(1)];
        assert!(!sends_resolve(&model, &state), "at the hw: stranded");
        leader_state(&mut state, 0).pending_produce = vec![pending(0)];
        assert!(!sends_resolve(&model, &state), "below it");
        // Another client's request is not the producer's.
        leader_state(&mut state, 0).pending_produce[0].client = model.cfg.topology.consumer();
        assert!(sends_resolve(&model, &state));
        leader_state(&mut state, 0).pending_produce = vec![pending(1)];
        crash(&mut state, 0, Log::new());
        assert!(
            sends_resolve(&model, &state),
            "a crashed leader answers nobody anyway"
        );
    }

    // ------------------------------------------------------------ reachability

    #[test]
    fn reachability_properties_mark_exactly_their_states() {
        let (model, mut state) = start();
        let none = [
            record_committed,
            leader_changed,
            isr_shrunk,
            consumer_read,
            send_failed,
            acked_after_failover,
            committed_after_failover,
            hw_on_two_replicas,
            record_retried,
            two_acked,
            consumer_committed,
        ];
        for (i, p) in none.iter().enumerate() {
            assert!(
                !p(&model, &state),
                "reachability property {i} in the initial state"
            );
        }

        // record-committed: a leader's hw, not a follower's.
        all_hold(&mut state, &[(1, 1)]);
        broker(&mut state, 1).high_watermark = Offset(1);
        assert!(!record_committed(&model, &state));
        assert!(!hw_on_two_replicas(&model, &state), "one replica");
        broker(&mut state, 0).high_watermark = Offset(1);
        assert!(record_committed(&model, &state));
        assert!(hw_on_two_replicas(&model, &state), "two replicas");
        crash(&mut state, 0, log(&[(1, 1)]));
        assert!(!record_committed(&model, &state));
        assert!(
            !hw_on_two_replicas(&model, &state),
            "a crashed one does not count"
        );

        // leader-changed, isr-shrunk.
        let (model, mut state) = start();
        ctl(&model, &mut state).partition.leader_epoch = Epoch(2);
        assert!(leader_changed(&model, &state));
        ctl(&model, &mut state).partition.isr = BrokerSet::all(3).without(BrokerId(2));
        assert!(isr_shrunk(&model, &state));

        // acked-after-failover, committed-after-failover: a leader active in a later epoch.
        let (model, mut state) = start();
        acked(&model, &mut state, &[None, Some(Outcome::Acked(Offset(0)))]);
        ghost(&mut state, 2, &[(2, 1)]);
        assert!(!acked_after_failover(&model, &state), "epoch 1 still");
        assert!(!committed_after_failover(&model, &state), "epoch 1 still");
        ctl(&model, &mut state).partition.leader_epoch = Epoch(2);
        assert!(!acked_after_failover(&model, &state), "not yet acting");
        broker(&mut state, 0).leader_epoch = Epoch(2);
        assert!(acked_after_failover(&model, &state));
        assert!(committed_after_failover(&model, &state));
        acked(&model, &mut state, &[None, None]);
        ghost(&mut state, 2, &[]);
        assert!(!acked_after_failover(&model, &state));
        assert!(!committed_after_failover(&model, &state));

        // send-failed: failed or indeterminate, not sent or acked.
        use crate::msg::ErrorCode;
        let (model, mut state) = start();
        acked(
            &model,
            &mut state,
            &[Some(Outcome::Sent), Some(Outcome::Acked(Offset(0)))],
        );
        assert!(!send_failed(&model, &state));
        acked(
            &model,
            &mut state,
            &[
                Some(Outcome::Indeterminate(ErrorCode::RequestTimedOut)),
                None,
            ],
        );
        assert!(send_failed(&model, &state));
        acked(
            &model,
            &mut state,
            &[None, Some(Outcome::Failed(ErrorCode::NotEnoughReplicas))],
        );
        assert!(send_failed(&model, &state));

        // record-retried: a second attempt.
        prod(&model, &mut state).attempts = vec![1, 1];
        assert!(!record_retried(&model, &state));
        prod(&model, &mut state).attempts = vec![1, 2];
        assert!(record_retried(&model, &state));

        // consumer-read, consumer-committed.
        let (model, mut state) = start();
        cons(&model, &mut state).read = vec![ReadRecord {
            offset: Offset(0),
            value: Value::Numbered(1),
        }];
        cons(&model, &mut state).committed = Offset(1);
        assert!(consumer_read(&model, &state));
        assert!(consumer_committed(&model, &state));
        let i = usize::from(model.cfg.topology.consumer());
        state.crashed[i] = true;
        assert!(
            !consumer_read(&model, &state),
            "a crashed consumer reads nothing"
        );
        assert!(!consumer_committed(&model, &state));
    }

    // ------------------------------------------------------------ the catalogue of properties

    #[test]
    fn every_safety_property_names_a_reachability_premise() {
        let all = all();
        let names: Vec<&str> = all.iter().map(|p| p.name).collect();
        for p in &all {
            assert_eq!(
                names.iter().filter(|&&n| n == p.name).count(),
                1,
                "{}",
                p.name
            );
            match p.expectation {
                Expectation::Always => {
                    let premise = p.premise.expect("a safety property has a premise");
                    let q = all
                        .iter()
                        .find(|q| q.property == premise)
                        .expect("premise exists");
                    assert_eq!(q.expectation, Expectation::Sometimes, "{premise}");
                }
                _ => assert!(p.premise.is_none(), "{}", p.name),
            }
        }
        assert_eq!(
            all.iter()
                .filter(|p| p.expectation == Expectation::Always)
                .count(),
            11
        );
        assert_eq!(all.len(), 22);
    }

    #[test]
    fn the_enum_lists_every_definition_in_order_and_parses_its_names() {
        let defs: Vec<Property> = all().iter().map(|d| d.property).collect();
        assert_eq!(defs, Property::ALL.to_vec());
        for p in Property::ALL {
            assert_eq!(p.def().name, p.name());
            assert_eq!(p.name().parse::<Property>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        let err = "acked-write-durable"
            .parse::<Property>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such property `acked-write-durable`")
                && err.contains("acked-writes-durable, committed-durable"),
            "{err}"
        );
    }

    /// Only two properties may be reported as holding by construction, and
    /// processed-before-commit only when the consumer does not commit first.
    #[test]
    fn only_leader_in_isr_and_processed_before_commit_hold_by_construction() {
        for commit in [
            ConsumerCommit::After,
            ConsumerCommit::Before,
            ConsumerCommit::Manual,
        ] {
            let config = Config {
                consumer_commit: commit,
                ..Config::default()
            };
            for p in all() {
                let by_construction = (p.by_construction)(&config).is_some();
                let expected = match p.name {
                    "leader-in-isr" => true,
                    "processed-before-commit" => commit != ConsumerCommit::Before,
                    _ => false,
                };
                assert_eq!(by_construction, expected, "{} with {commit}", p.name);
            }
        }
    }

    /// The conditions `all` hands the checker are the ones named (a swapped pair would judge
    /// the wrong promise under the right name).
    #[test]
    fn each_name_judges_its_own_condition() {
        let (model, mut state) = start();
        // A state breaking no-duplicates alone: broker 1 holds v1 twice.
        broker(&mut state, 1).log = log(&[(1, 1), (1, 1)]);
        let failing: Vec<&str> = all()
            .into_iter()
            .filter(|p| p.expectation == Expectation::Always)
            .filter(|p| !(p.condition)(&model, &state))
            .map(|p| p.name)
            .collect();
        assert_eq!(failing, vec!["no-duplicates"]);
        // One reaching record-retried alone.
        let (model, mut state) = start();
        prod(&model, &mut state).attempts = vec![2, 0];
        let reached: Vec<&str> = all()
            .into_iter()
            .filter(|p| p.expectation == Expectation::Sometimes)
            .filter(|p| (p.condition)(&model, &state))
            .map(|p| p.name)
            .collect();
        assert_eq!(reached, vec!["record-retried"]);
    }
}
