//! Symmetry over brokers (`insync_model::symmetry`) is sound only if renaming brokers
//! commutes with everything the checker asks of the model. These tests check that directly
//! on random walks, then compare verdicts with and without the reduction.

mod common;

use insync_model::broker::{BrokerState, LeaderState, Role};
use insync_model::config::{Acks, Config, Flush, NetworkKind, Truncation};
use insync_model::controller::ControllerState;
use insync_model::msg::{Msg, Timer};
use insync_model::node::{NodeState, NodeStorage};
use insync_model::symmetry::{self, Renaming};
use insync_model::system::Net;
use insync_model::types::{BrokerEpoch, BrokerId, BrokerSet, Offset};
use insync_model::{Insync, InsyncModel, InsyncState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::actor::{Envelope, Id};
use stateright::{Checker, Model};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

fn fingerprint(s: &InsyncState) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn inside(m: &InsyncModel, s: &InsyncState) -> bool {
    Model::within_boundary(m, s)
}

fn model(config: Config) -> InsyncModel {
    Insync::new(config.validate().expect("valid")).into_model()
}

/// Every permutation of `0..n`, as new ids per old broker.
fn permutations(n: usize) -> Vec<Vec<BrokerId>> {
    fn go(prefix: &mut Vec<BrokerId>, n: usize, out: &mut Vec<Vec<BrokerId>>) {
        if prefix.len() == n {
            out.push(prefix.clone());
            return;
        }
        for b in 0..n as u8 {
            if !prefix.contains(&BrokerId(b)) {
                prefix.push(BrokerId(b));
                go(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(&mut Vec::new(), n, &mut out);
    out
}

fn successors(m: &InsyncModel, s: &InsyncState) -> Vec<InsyncState> {
    let mut actions = Vec::new();
    m.actions(s, &mut actions);
    actions
        .into_iter()
        .filter_map(|a| m.next_state(s, a))
        .collect()
}

/// A successor of `state` inside the boundary, chosen at random; `None` at a dead end.
fn random_step(m: &InsyncModel, state: &InsyncState, rng: &mut StdRng) -> Option<InsyncState> {
    let mut next: Vec<InsyncState> = successors(m, state)
        .into_iter()
        .filter(|s| inside(m, s))
        .collect();
    (!next.is_empty()).then(|| next.swap_remove(rng.gen_range(0..next.len())))
}

/// What differs between `state` and its renaming `r`, if anything: the boundary, a
/// property's verdict, or the successors.
fn asymmetry(m: &InsyncModel, state: &InsyncState, r: &Renaming) -> Option<String> {
    let renamed = r.apply(state);
    if inside(m, state) != inside(m, &renamed) {
        return Some("the boundary".into());
    }
    for p in m.properties() {
        if (p.condition)(m, state) != (p.condition)(m, &renamed) {
            return Some(format!("property {}", p.name));
        }
    }
    let expected: BTreeSet<u64> = successors(m, state)
        .iter()
        .map(|t| fingerprint(&r.apply(t)))
        .collect();
    let actual: BTreeSet<u64> = successors(m, &renamed).iter().map(fingerprint).collect();
    (expected != actual).then(|| {
        format!(
            "the successors ({} renamed successors, {} successors of the renamed state, {} in common)",
            expected.len(),
            actual.len(),
            expected.intersection(&actual).count()
        )
    })
}

/// Walks `walks` random paths of up to `depth` steps and checks every state on them against
/// every renaming: the first asymmetry found, or the number of states checked.
fn walk(config: Config, walks: usize, depth: usize, seed: u64) -> Result<usize, String> {
    let replicas = config.replicas;
    let m = model(config);
    let renamings: Vec<Renaming> = permutations(replicas)
        .iter()
        .map(|p| Renaming::new(p))
        .filter(|r| !r.is_identity())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut checked = 0;
    for _ in 0..walks {
        let mut state = m.init_states().remove(0);
        for _ in 0..depth {
            for r in &renamings {
                if let Some(what) = asymmetry(&m, &state, r) {
                    return Err(format!(
                        "renaming {r:?} changes {what} of state\n{state:#?}"
                    ));
                }
            }
            checked += 1;
            match random_step(&m, &state, &mut rng) {
                Some(next) => state = next,
                None => break,
            }
        }
    }
    Ok(checked)
}

fn check_walks(name: &str, config: Config, walks: usize, depth: usize, seed: u64) -> usize {
    walk(config, walks, depth, seed).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rf3() -> Config {
    Config {
        replicas: 3,
        min_insync: 2,
        records: 2,
        crashes: 0,
        consumer: false,
        idempotence: true,
        elections: 2,
        isr_changes: 2,
        ..Config::default()
    }
}

#[test]
fn renaming_commutes_with_the_recommended_configuration() {
    assert!(check_walks("recommended", rf3(), 40, 30, 1) > 500);
}

#[test]
fn renaming_commutes_with_crashes_under_the_crash_reduction() {
    let c = Config {
        crashes: 1,
        consumer: true,
        ..rf3()
    };
    assert!(symmetry::applies(&c.clone().validate().unwrap()));
    assert!(!symmetry::applies(
        &Config {
            replicas: 2,
            min_insync: 1,
            ..c.clone()
        }
        .validate()
        .unwrap()
    ));
    assert!(check_walks("crash", c, 40, 30, 2) > 500);
}

#[test]
fn renaming_commutes_with_unclean_elections_elr_and_legacy_rungs() {
    let configs = [
        Config {
            unclean_election: true,
            min_insync: 1,
            acks: Acks::One,
            idempotence: false,
            ..rf3()
        },
        Config {
            elr: true,
            hw_rule: insync_model::config::HwRule::MinIsr,
            flush: Flush::Async,
            ..rf3()
        },
        Config {
            truncation: Truncation::HighWatermark,
            min_insync: 1,
            ..rf3()
        },
        Config {
            truncation: Truncation::Kip279,
            min_insync: 1,
            ..rf3()
        },
    ];
    for (i, c) in configs.into_iter().enumerate() {
        assert!(check_walks(&format!("config {i}"), c, 25, 30, 10 + i as u64) > 300);
    }
}

#[test]
fn renaming_commutes_on_lossy_and_duplicating_networks() {
    for (i, network) in [NetworkKind::Lossy, NetworkKind::Duplicating]
        .into_iter()
        .enumerate()
    {
        let c = Config {
            network,
            records: 1,
            ..rf3()
        };
        assert!(check_walks(&format!("{network:?}"), c, 25, 30, 20 + i as u64) > 300);
    }
}

/// The summaries the representative sorts by name no broker: a state and its renaming get
/// the same representative whenever the summaries do not tie.
#[test]
fn renamed_states_share_their_representative_unless_summaries_tie() {
    let m = model(rf3());
    let renamings: Vec<Renaming> = permutations(3).iter().map(|p| Renaming::new(p)).collect();
    let mut rng = StdRng::seed_from_u64(7);
    let (mut merged, mut states) = (0, 0);
    for _ in 0..30 {
        let mut state = m.init_states().remove(0);
        for _ in 0..30 {
            let rep = fingerprint(&symmetry::representative(&state));
            for r in &renamings {
                states += 1;
                merged +=
                    usize::from(fingerprint(&symmetry::representative(&r.apply(&state))) == rep);
            }
            match random_step(&m, &state, &mut rng) {
                Some(next) => state = next,
                None => break,
            }
        }
    }
    // Ties are rare; most renamed copies must meet at one representative.
    assert!(
        merged * 10 >= states * 9,
        "only {merged} of {states} renamed states share their representative"
    );
}

/// The test above can fail: where an unfenced leader may crash, its restart hands leadership
/// to the first live ISR member in id order, so renaming does not commute, and
/// `symmetry::applies` must keep the reduction off.
#[test]
fn renaming_does_not_commute_where_an_unfenced_leader_may_crash() {
    let c = Config {
        flush: Flush::Async,
        crashes: 1,
        min_insync: 1,
        ..rf3()
    };
    assert!(!symmetry::sound(&c.clone().validate().unwrap()));
    let found = (0..20).find_map(|seed| walk(c.clone(), 40, 40, 100 + seed).err());
    let what = found.expect("some walk shows the asymmetry of a restarted unfenced leader");
    assert!(what.contains("successors"), "{what}");
}

/// The checker hashes a stand-in for each representative rather than the representative
/// itself: the stand-in's word must be exactly the built representative's hash, on every
/// network (the duplicating one builds it), at every replication factor from 3 to the
/// largest, for states whose canonical renaming is the identity and for the others.
#[test]
fn the_checkers_stand_in_hashes_as_the_built_representative() {
    let configs = [
        rf3(),
        Config {
            network: NetworkKind::Duplicating,
            ..rf3()
        },
        Config {
            replicas: 4,
            ..rf3()
        },
        // At the largest replication factor every slot of a renaming is a broker's, so an id
        // past the brokers (the controller's) must not be looked up in it.
        Config {
            replicas: 5,
            ..rf3()
        },
    ];
    let mut renamed = 0;
    for (k, c) in configs.into_iter().enumerate() {
        let m = model(c);
        let mut rng = StdRng::seed_from_u64(11 + k as u64);
        for _ in 0..20 {
            let mut state = m.init_states().remove(0);
            for _ in 0..30 {
                let rep = symmetry::representative(&state);
                let stand_in = symmetry::representative_fingerprint(&state);
                assert_eq!(
                    stand_in,
                    InsyncState::fingerprint_only(rep.stable_hash()),
                    "the stand-in of\n{state:#?}"
                );
                renamed += usize::from(!symmetry::canonical_renaming(&state).is_identity());
                match random_step(&m, &state, &mut rng) {
                    Some(next) => state = next,
                    None => break,
                }
            }
        }
    }
    assert!(renamed > 100, "only {renamed} states needed a renaming");
}

/// `representative` keeps a state as it is when its renaming is the identity, so exactly one
/// permutation may claim to be it, at every replication factor (the largest included, where
/// every slot of a renaming is a broker's).
#[test]
fn only_the_identity_renaming_is_the_identity() {
    for n in 1..=5 {
        let identities: Vec<Vec<BrokerId>> = permutations(n)
            .into_iter()
            .filter(|p| Renaming::new(p).is_identity())
            .collect();
        let identity: Vec<BrokerId> = (0..n as u8).map(BrokerId).collect();
        assert_eq!(identities, vec![identity], "at {n} replicas");
    }
}

/// The model's controller saves nothing, but the engine's durable controller saves its whole
/// state, brokers named: a renaming renames the saved state as it renames the live one, and
/// the stand-in hashes it alike.
#[test]
fn a_renaming_renames_a_durable_controllers_saved_state() {
    let m = model(rf3());
    let mut state = m.init_states().remove(0);
    let controller = state.actor_states[3]
        .as_controller()
        .expect("the controller")
        .clone();
    state.actor_storages[3] = Some(Arc::new(NodeStorage::Controller(controller)));
    state.rehash();
    let mut checked = 0;
    for p in permutations(3) {
        let r = Renaming::new(&p);
        let renamed = r.apply(&state);
        let live = renamed.actor_states[3]
            .as_controller()
            .expect("the controller");
        assert_eq!(
            renamed.actor_storages[3].as_deref(),
            Some(&NodeStorage::Controller(live.clone())),
            "{r:?}"
        );
        checked += usize::from(live.partition.leader != Some(BrokerId(0)));
    }
    assert_eq!(checked, 4, "renamings that move the leader");
    let stand_in = symmetry::representative_fingerprint(&state);
    let built = symmetry::representative(&state);
    assert_eq!(stand_in, InsyncState::fingerprint_only(built.stable_hash()));
}

fn broker_mut(state: &mut InsyncState, b: usize) -> &mut BrokerState {
    match Arc::make_mut(&mut state.actor_states[b]) {
        NodeState::Broker(s) => s,
        other => panic!("actor {b} is no broker: {other:?}"),
    }
}

fn controller_mut(state: &mut InsyncState) -> &mut ControllerState {
    match Arc::make_mut(&mut state.actor_states[3]) {
        NodeState::Controller(c) => c,
        other => panic!("actor 3 is no controller: {other:?}"),
    }
}

fn leader_mut(state: &mut InsyncState, b: usize) -> &mut LeaderState {
    match &mut broker_mut(state, b).role {
        Role::Leader(l) => l,
        role => panic!("broker {b} does not lead: {role:?}"),
    }
}

/// The messages in flight (on the ordered network) but those `drop` picks, and `add`.
fn edit_messages(
    state: &mut InsyncState,
    drop: fn(&Envelope<Msg>) -> bool,
    add: &[(usize, usize, Msg)],
) {
    let kept: Vec<Envelope<Msg>> = state
        .network
        .iter_all()
        .map(|e| e.to_cloned_msg())
        .filter(|e| !drop(e))
        .collect();
    let added = add.iter().map(|(src, dst, msg)| Envelope {
        src: Id::from(*src),
        dst: Id::from(*dst),
        msg: msg.clone(),
    });
    state.network = Net::build(true, kept.into_iter().chain(added), None);
}

fn edit_timers(state: &mut InsyncState, drop: Option<(u8, Timer)>, add: Option<(u8, Timer)>) {
    if let Some(t) = drop {
        let before = state.timers.len();
        state.timers.retain(|x| *x != t);
        assert_eq!(state.timers.len() + 1, before, "no timer {t:?} to drop");
    }
    if let Some(t) = add {
        state.timers.push(t);
        state.timers.sort();
    }
}

fn metadata_to(src: usize, dst: usize) -> (usize, usize, Msg) {
    (src, dst, Msg::Metadata)
}

/// A named edit of a state.
type Edit = (&'static str, fn(&mut InsyncState));

/// Each edit of the recommended configuration's initial state, in which brokers 1 and 2 are
/// alike (swapping them changes nothing), makes broker 2 differ from broker 1 in one respect.
fn one_respect_edits() -> Vec<Edit> {
    vec![
        ("broker 2 crashed", |s| s.crashed[2] = true),
        ("broker 2's high watermark", |s| {
            broker_mut(s, 2).high_watermark = Offset(1)
        }),
        ("broker 2 truncating", |s| {
            broker_mut(s, 2).role = Role::Follower {
                leader: Some(BrokerId(0)),
                truncating: true,
            }
        }),
        ("broker 2's disk", |s| {
            match Arc::make_mut(s.actor_storages[2].as_mut().expect("a disk")) {
                NodeStorage::Broker(d) => d.incarnation = BrokerEpoch(1),
                other => panic!("no broker's disk: {other:?}"),
            }
        }),
        ("broker 2's own timer", |s| {
            edit_timers(s, None, Some((2, Timer::FetchBackoff)))
        }),
        ("the controller fenced broker 2", |s| {
            controller_mut(s).fenced = BrokerSet::EMPTY.with(BrokerId(2))
        }),
        ("the controller's ISR without broker 2", |s| {
            let p = &mut controller_mut(s).partition;
            p.isr = p.isr.without(BrokerId(2));
        }),
        ("the controller's ELR holds broker 2", |s| {
            controller_mut(s).partition.elr = BrokerSet::EMPTY.with(BrokerId(2))
        }),
        ("the controller's last known ELR holds broker 2", |s| {
            controller_mut(s).partition.last_known_elr = BrokerSet::EMPTY.with(BrokerId(2))
        }),
        ("the controller's incarnation of broker 2", |s| {
            controller_mut(s).incarnations[2] = BrokerEpoch(1)
        }),
        ("a session timer for broker 2 only", |s| {
            let t = Timer::SessionExpired {
                broker: BrokerId(1),
                successor: None,
            };
            edit_timers(s, Some((3, t)), None)
        }),
        ("broker 2 the only successor", |s| {
            let t = Timer::SessionExpired {
                broker: BrokerId(0),
                successor: Some(BrokerId(1)),
            };
            edit_timers(s, Some((3, t)), None)
        }),
        ("broker 2 the only one an operator may elect", |s| {
            edit_timers(s, Some((3, Timer::ElectLeader(BrokerId(1)))), None)
        }),
        ("broker 2's heartbeat resuming", |s| {
            edit_timers(s, None, Some((3, Timer::HeartbeatResumed(BrokerId(2)))))
        }),
        ("the leader's view of broker 2's log end", |s| {
            leader_mut(s, 0).followers[2].end = Offset(1)
        }),
        ("the leader parked broker 2's fetch", |s| {
            leader_mut(s, 0).followers[2].parked = true
        }),
        ("the leader's ISR without broker 2", |s| {
            let l = leader_mut(s, 0);
            l.isr = l.isr.without(BrokerId(2));
        }),
        ("only broker 2 fetching", |s| {
            edit_messages(s, |e| usize::from(e.src) == 1, &[])
        }),
        ("the controller telling broker 2 its partition state", |s| {
            let partition = controller_mut(s).partition;
            let msg = Msg::LeaderAndIsr {
                partition,
                broker_incarnation: BrokerEpoch(0),
            };
            edit_messages(s, |_| false, &[(3, 2, msg)])
        }),
        (
            "the controller telling brokers 1 and 2 different incarnations",
            |s| {
                let partition = controller_mut(s).partition;
                let to = |b: usize, i: u32| {
                    let msg = Msg::LeaderAndIsr {
                        partition,
                        broker_incarnation: BrokerEpoch(i),
                    };
                    (3, b, msg)
                };
                edit_messages(s, |_| false, &[to(1, 0), to(2, 1)])
            },
        ),
        ("broker 2 registering with the controller", |s| {
            let msg = Msg::Register {
                incarnation: BrokerEpoch(0),
            };
            edit_messages(s, |_| false, &[(2, 3, msg)])
        }),
        (
            "one message from the controller to 1, from the producer to 2",
            |s| edit_messages(s, |_| false, &[metadata_to(3, 1), metadata_to(4, 2)]),
        ),
        (
            "one message from a broker to 1, from the producer to 2",
            |s| edit_messages(s, |_| false, &[metadata_to(0, 1), metadata_to(4, 2)]),
        ),
        (
            "one message from a broker to 1, from the controller to 2",
            |s| edit_messages(s, |_| false, &[metadata_to(0, 1), metadata_to(3, 2)]),
        ),
        (
            "brokers 1 and 2 both leading, broker 2 having heard from broker 0",
            |s| {
                for b in [1, 2] {
                    let role = broker_mut(s, 0).role.clone();
                    broker_mut(s, b).role = role;
                }
                leader_mut(s, 2).followers[0].end = Offset(1);
            },
        ),
    ]
}

/// Where two brokers differ in only one of the things the state says about them (their own
/// state or disk or timers, the controller's record or timers, the leader's view of them,
/// the messages they exchange and with whom), their summaries still tell them apart, so
/// every renamed copy meets at one representative. (States the model may never reach: the
/// representative is a function of any state.)
#[test]
fn renamed_copies_meet_where_two_brokers_differ_in_one_respect_only() {
    let m = model(rf3());
    let init = m.init_states().remove(0);
    let swap = Renaming::new(&[BrokerId(0), BrokerId(2), BrokerId(1)]);
    assert_eq!(fingerprint(&swap.apply(&init)), fingerprint(&init));
    let renamings: Vec<Renaming> = permutations(3).iter().map(|p| Renaming::new(p)).collect();
    for (what, edit) in one_respect_edits() {
        let mut state = init.clone();
        edit(&mut state);
        state.rehash();
        assert_ne!(
            fingerprint(&swap.apply(&state)),
            fingerprint(&state),
            "{what}: brokers 1 and 2 are still alike"
        );
        let rep = fingerprint(&symmetry::representative(&state));
        for r in &renamings {
            assert_eq!(
                fingerprint(&symmetry::representative(&r.apply(&state))),
                rep,
                "{what}: renamed by {r:?}, the state has another representative"
            );
        }
    }
}

/// Every property's verdict (`true`: an `always` holds, a `sometimes` is reached) and the
/// unique state count of an exhaustive depth-first search, with or without the reduction.
fn verdicts(config: &Config, symmetric: bool) -> (Vec<(&'static str, bool)>, usize) {
    let m = model(config.clone());
    let mut builder = m.checker().threads(1);
    if symmetric {
        builder = builder.symmetry_fn(symmetry::representative_fingerprint);
    }
    let checker = builder.spawn_dfs().join();
    let discoveries = checker.discoveries();
    let verdicts = insync_model::properties::all()
        .into_iter()
        .map(|p| {
            let found = discoveries.contains_key(p.name);
            (
                p.name,
                (p.expectation == stateright::Expectation::Always) != found,
            )
        })
        .collect();
    (verdicts, checker.unique_state_count())
}

/// The differential test the reduction owes: on every matrix row, at bounds small enough
/// to search exhaustively both ways (1 record, at most 1 election, no ISR change beyond
/// elections; no election where a consumer and a crash are both in play), the verdict of
/// every property is the same with and without symmetry, and the reduced search is smaller.
/// Rows where the reduction is unsound (an unfenced leader may crash) must have it off.
/// The rows run side by side (about 4 M states in all).
#[test]
fn verdicts_are_equal_with_and_without_symmetry_on_every_matrix_row() {
    let rows = common::small_matrix_rows(usize::MAX);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .iter()
            .map(|(name, config)| {
                scope.spawn(move || {
                    let valid = config.clone().validate().unwrap();
                    if !symmetry::sound(&valid) {
                        assert!(config.crashes > 0, "{name}: off without a crash to explore");
                        return None;
                    }
                    let (full, full_states) = verdicts(config, false);
                    let (reduced, reduced_states) = verdicts(config, true);
                    Some((
                        *name,
                        config.replicas,
                        full,
                        full_states,
                        reduced,
                        reduced_states,
                    ))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("row"))
            .collect()
    });
    let mut broken = 0;
    let mut checked = 0;
    for (name, replicas, full, full_states, reduced, reduced_states) in
        results.into_iter().flatten()
    {
        assert_eq!(
            reduced, full,
            "{name}: symmetry changes a verdict ({reduced_states} states against {full_states})"
        );
        // At two replicas no renamed state is reachable (broker 0 leads first, so a state in
        // which broker 1 led epoch 1 never occurs): every class is a single state.
        let smaller = if replicas >= 3 {
            reduced_states < full_states
        } else {
            reduced_states == full_states
        };
        assert!(
            smaller,
            "{name}: {reduced_states} states with symmetry, {full_states} without"
        );
        broken += full.iter().filter(|(_, ok)| !ok).count();
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} rows compared");
    assert!(
        broken > 0,
        "no row breaks or misses a property: equal verdicts would say little"
    );
}
