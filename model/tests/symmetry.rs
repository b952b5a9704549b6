//! Symmetry over brokers (`insync_model::symmetry`) is sound only if renaming brokers
//! commutes with everything the checker asks of the model. These tests check that directly
//! on random walks, then compare verdicts with and without the reduction.

use insync_model::config::{Acks, Config, Flush, NetworkKind, Truncation};
use insync_model::symmetry::{self, Renaming};
use insync_model::types::BrokerId;
use insync_model::{Insync, InsyncModel, InsyncState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::{Checker, Model};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

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
/// network (the duplicating one builds it), for states whose canonical renaming is the
/// identity and for the others.
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
    let rows: Vec<(&str, Config)> = insync_model::scenarios::catalogue()
        .into_iter()
        .map(|s| {
            let c = s.config;
            let elections = if c.consumer && c.crashes > 0 {
                0
            } else {
                c.elections.min(1)
            };
            let small = Config {
                records: 1,
                elections,
                isr_changes: 0,
                ..c
            };
            (s.name, small)
        })
        .collect();
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
