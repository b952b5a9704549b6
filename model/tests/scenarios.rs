//! Scenario tests written like the traces in a KIP: a setup, numbered steps, the verdict.
//! Each step names an action that must be enabled in the current state (a delivery, a timer,
//! a crash); the test fails if the model does not allow it.

use insync_model::config::{Acks, Config};
use insync_model::msg::{Msg, Timer};
use insync_model::properties;
use insync_model::types::{BrokerId, Offset, Value};
use insync_model::{Insync, InsyncModel, InsyncState};
use stateright::actor::{ActorModelAction, Id};
use stateright::Model;

struct Run {
    model: InsyncModel,
    state: InsyncState,
    trace: Vec<String>,
}

impl Run {
    fn new(config: Config) -> Run {
        let model = Insync::new(config.validate().expect("valid")).into_model();
        let state = model.init_states().remove(0);
        Run {
            model,
            state,
            trace: Vec::new(),
        }
    }

    fn id(&self, name: &str) -> Id {
        let t = self.model.cfg.topology;
        match name {
            "ctl" => t.controller(),
            "prod" => t.producer(),
            "cons" => t.consumer(),
            b => t.broker(BrokerId(b.trim_start_matches('b').parse().expect("bN"))),
        }
    }

    /// Takes the first enabled action that `pick` accepts.
    fn step(&mut self, what: &str, pick: impl Fn(&ActorModelAction<Msg, Timer, ()>) -> bool) {
        let mut actions = Vec::new();
        self.model.actions(&self.state, &mut actions);
        let action = actions
            .into_iter()
            .find(|a| pick(a))
            .unwrap_or_else(|| panic!("step '{what}' is not enabled after {:#?}", self.trace));
        let next = self
            .model
            .next_state(&self.state, action.clone())
            .unwrap_or_else(|| panic!("step '{what}' changes nothing"));
        self.trace.push(insync_model::trace::describe_step(
            &self.model,
            &self.state,
            &action,
            Some(&next),
        ));
        self.state = next;
    }

    fn deliver(&mut self, from: &str, to: &str, kind: &str) {
        let (src, dst) = (self.id(from), self.id(to));
        self.step(&format!("{from} -> {to} {kind}"), |a| match a {
            ActorModelAction::Deliver {
                src: s,
                dst: d,
                msg,
            } => *s == src && *d == dst && format!("{msg:?}").starts_with(kind),
            _ => false,
        });
    }

    fn fire(&mut self, on: &str, timer: Timer) {
        let id = self.id(on);
        self.step(
            &format!("{on} timer {timer:?}"),
            |a| matches!(a, ActorModelAction::Timeout(i, t) if *i == id && *t == timer),
        );
    }

    fn holds(&self, property: &str) -> bool {
        let p = properties::all()
            .into_iter()
            .find(|p| p.name == property)
            .expect("property exists");
        (p.condition)(&self.model, &self.state)
    }

    fn broker_log_end(&self, b: u8) -> Offset {
        self.state.actor_states[b as usize]
            .as_broker()
            .expect("broker")
            .log_end_offset()
    }
}

fn small(config: Config) -> Config {
    Config {
        records: 1,
        crashes: 0,
        consumer: false,
        ..config
    }
}

/// Seed example: with acks=1 the leader acknowledges before any follower has the record; the
/// controller then suspects the leader and elects a follower that never had it.
#[test]
fn acks_1_leader_failover_loses_the_acknowledged_record() {
    let mut run = Run::new(small(Config {
        acks: Acks::One,
        ..Config::default()
    }));
    run.deliver("prod", "b0", "Produce");
    run.deliver("b0", "prod", "ProduceResponse");
    assert!(
        run.holds("acked-writes-durable"),
        "b0 still leads and has v1"
    );
    run.fire(
        "ctl",
        Timer::SessionExpired {
            broker: BrokerId(0),
            successor: Some(BrokerId(1)),
        },
    );
    run.deliver("ctl", "b1", "LeaderAndIsr");
    assert!(
        !run.holds("acked-writes-durable"),
        "broker 1 leads epoch 2 without v1: {:#?}",
        run.trace
    );
}

/// The same failover with acks=all: the record is not acknowledged until every ISR member has
/// it, so the new leader holds it.
#[test]
fn acks_all_failover_keeps_the_acknowledged_record() {
    let mut run = Run::new(small(Config::default()));
    run.deliver("b1", "b0", "Fetch"); // parked: nothing to fetch yet
    run.deliver("b2", "b0", "Fetch");
    run.deliver("prod", "b0", "Produce"); // wakes both parked fetches
    run.deliver("b0", "b1", "FetchResponse");
    run.deliver("b0", "b2", "FetchResponse");
    run.deliver("b1", "b0", "Fetch"); // offset 1: broker 1 has v1
    assert!(
        !run.trace.iter().any(|l| l.contains("acknowledged")),
        "not yet: b2 lags"
    );
    run.deliver("b2", "b0", "Fetch"); // offset 1: hw=1, v1 committed
    run.deliver("b0", "prod", "ProduceResponse");
    assert!(run
        .trace
        .last()
        .unwrap()
        .contains("v1 acknowledged at offset 0"));
    run.fire(
        "ctl",
        Timer::SessionExpired {
            broker: BrokerId(0),
            successor: Some(BrokerId(1)),
        },
    );
    run.deliver("ctl", "b1", "LeaderAndIsr");
    assert!(run.holds("acked-writes-durable"), "{:#?}", run.trace);
    assert!(run.holds("isr-complete"));
}

/// KIP-101 with leader epochs: a zombie leader appends a record in epoch 1 that nobody copies;
/// after the election it fetches from the new leader, learns epoch 1 ends at offset 0 there,
/// and truncates its divergent record before taking the new one.
#[test]
fn zombie_truncates_its_divergent_suffix_by_leader_epoch() {
    let mut run = Run::new(small(Config {
        acks: Acks::One,
        ..Config::default()
    }));
    run.fire(
        "ctl",
        Timer::SessionExpired {
            broker: BrokerId(0),
            successor: Some(BrokerId(1)),
        },
    );
    run.deliver("prod", "b0", "Produce"); // the zombie still appends v1 in epoch 1
    assert_eq!(run.broker_log_end(0), Offset(1));
    run.deliver("ctl", "b1", "LeaderAndIsr");
    run.deliver("ctl", "b0", "LeaderAndIsr"); // b0 becomes a follower of b1
    run.deliver("b1", "b0", "Fetch"); // b1's old fetch from epoch 1: fenced
    run.deliver("b0", "b1", "Fetch"); // last_epoch=1 at offset 1: diverging
    run.deliver("b1", "b0", "FetchResponse");
    assert_eq!(run.broker_log_end(0), Offset(0), "{:#?}", run.trace);
    assert!(run
        .trace
        .iter()
        .any(|l| l.contains("broker 0 truncates to offset 0")));
    assert!(run.holds("log-matching"));
}

/// min.insync.replicas after the append: the leader appends v1, its followers fall behind and
/// leave the ISR, and the leader alone commits v1; the answer is
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND, and v1 stays in the log.
#[test]
fn isr_shrinking_below_min_insync_after_append_is_reported() {
    let mut run = Run::new(small(Config::default()));
    run.deliver("prod", "b0", "Produce");
    run.fire("b0", Timer::IsrLag);
    run.deliver("b0", "ctl", "AlterPartition");
    run.deliver("ctl", "b0", "AlterPartitionResponse");
    // The pending acks=all request completes with NOT_ENOUGH_REPLICAS_AFTER_APPEND: the leader
    // alone commits it, but the ISR is below min.insync.replicas.
    run.deliver("b0", "prod", "ProduceResponse");
    assert!(
        run.trace
            .last()
            .unwrap()
            .contains("NOT_ENOUGH_REPLICAS_AFTER_APPEND"),
        "{:#?}",
        run.trace
    );
    let leader = run.state.actor_states[0].as_broker().unwrap();
    assert_eq!(
        leader.log.get(Offset(0)).map(|r| r.value.clone()),
        Some(Value::Numbered(1))
    );
}
