//! The checker's model ([`InsyncModel`], `src/system.rs`) against stateright's own
//! `ActorModel` of the same actors: walked side by side over every reachable state within
//! the bounds, each state has the same actions, in the same order, and each action the same
//! successor (or none in both). So the faster state changes how states are stored and
//! fingerprinted, never which behaviours are explored. The configurations cover both network
//! kinds, message loss, crashes and recoveries, the consumer, asynchronous flushing, an older
//! truncation rung and KIP-966.

mod common;
use common::small;
use insync_model::config::{Config, Flush, HwRule, NetworkKind, Truncation};
use insync_model::node::{InsyncState, Node, ReferenceModel};
use insync_model::system::Net;
use insync_model::{Insync, InsyncModel};
use stateright::actor::{ActorModelState, Network};
use stateright::Model;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// The same system state in the checker's representation.
fn convert(s: &ActorModelState<Node, ()>) -> InsyncState {
    let timers: Vec<(usize, insync_model::msg::Timer)> = s
        .timers_set
        .iter()
        .enumerate()
        .flat_map(|(i, ts)| ts.iter().map(move |t| (i, t.clone())))
        .collect();
    let network = match &s.network {
        Network::Ordered(map) => Net::build(
            true,
            map.iter().flat_map(|(&(src, dst), msgs)| {
                msgs.iter().map(move |m| stateright::actor::Envelope {
                    src,
                    dst,
                    msg: m.clone(),
                })
            }),
            None,
        ),
        Network::UnorderedDuplicating(set, last) => {
            Net::build(false, set.iter().cloned(), last.clone())
        }
        Network::UnorderedNonDuplicating(_) => unreachable!("insync never uses this network"),
    };
    InsyncState::new(
        s.actor_states.clone(),
        s.crashed.clone(),
        s.actor_storages.clone(),
        timers,
        network,
    )
}

fn fingerprint(s: &InsyncState) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Walks both models breadth first (up to `limit` states) and returns how many states were
/// compared.
fn walk_side_by_side(config: Config, limit: usize) -> usize {
    let valid = config.validate().expect("valid");
    let reference: ReferenceModel = Insync::new(valid.clone()).into_reference_model();
    // `ActorModel` delivers every message; the stale-message reduction is tested against
    // the checker's own unreduced model (`tests/reductions.rs`).
    let model: InsyncModel = Insync::new(valid).into_model().keeping_stale_messages();
    let old_init = reference.init_states().remove(0);
    let new_init = model.init_states().remove(0);
    assert_eq!(convert(&old_init), new_init, "initial states differ");
    let mut seen: HashSet<InsyncState> = HashSet::new();
    seen.insert(new_init.clone());
    let mut queue = VecDeque::from([(old_init, new_init)]);
    let (mut old_actions, mut new_actions) = (Vec::new(), Vec::new());
    while let Some((old, new)) = queue.pop_front() {
        old_actions.clear();
        new_actions.clear();
        reference.actions(&old, &mut old_actions);
        model.actions(&new, &mut new_actions);
        assert_eq!(old_actions, new_actions, "actions differ at {new:?}");
        for a in &new_actions {
            let old_next = reference.next_state(&old, a.clone());
            let new_next = model.next_state(&new, a.clone());
            match (old_next, new_next) {
                (None, None) => {}
                (Some(o), Some(n)) => {
                    let converted = convert(&o);
                    assert_eq!(converted, n, "successors differ after {a:?} from {new:?}");
                    assert!(n.hashes_are_fresh(), "stale part hash after {a:?}");
                    assert_eq!(fingerprint(&converted), fingerprint(&n));
                    if model.within_boundary(&n) && seen.len() < limit && seen.insert(n.clone()) {
                        queue.push_back((o, n));
                    }
                }
                (o, n) => panic!(
                    "only one model steps on {a:?}: reference {}, checker {}",
                    o.is_some(),
                    n.is_some()
                ),
            }
        }
    }
    seen.len()
}

#[test]
fn same_steps_with_a_crash() {
    let n = walk_side_by_side(
        Config {
            crashes: 1,
            ..small()
        },
        200_000,
    );
    // The whole space without the stale-message reduction (tests/pinned.rs pins the
    // reduced count, 42,676).
    assert_eq!(n, 175_180);
}

#[test]
fn same_steps_with_a_consumer_and_three_replicas() {
    walk_side_by_side(
        Config {
            replicas: 3,
            consumer: true,
            ..small()
        },
        30_000,
    );
}

#[test]
fn same_steps_on_a_lossy_network() {
    walk_side_by_side(
        Config {
            network: NetworkKind::Lossy,
            crashes: 1,
            ..small()
        },
        30_000,
    );
}

#[test]
fn same_steps_on_the_duplicating_network() {
    walk_side_by_side(
        Config {
            network: NetworkKind::Duplicating,
            ..small()
        },
        30_000,
    );
}

#[test]
fn same_steps_with_async_flush_an_old_rung_and_elr() {
    walk_side_by_side(
        Config {
            flush: Flush::Async,
            truncation: Truncation::HighWatermark,
            crashes: 1,
            ..small()
        },
        30_000,
    );
    walk_side_by_side(
        Config {
            flush: Flush::Async,
            elr: true,
            hw_rule: HwRule::MinIsr,
            crashes: 1,
            ..small()
        },
        30_000,
    );
}
