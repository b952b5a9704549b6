//! Random walks through the state space, numbered so that a run can be split over machines.
//!
//! stateright 0.31's simulation checker draws each thread's next seed from that thread's
//! random number generator, so which walks a run takes depends on the thread count, and two
//! runs cannot be told to take different walks. Here walk `j` of a run with seed `s` is a pure
//! function of `(s, j)` ([`walk_seed`]): a run takes walks `0, 1, 2, ...`, and shard `I/N` takes
//! the walks `j` with `j mod N = I`. Shards of one run are disjoint by construction, and the
//! shards `0/N .. N-1/N`, each given `--walks W`, take exactly the walks of one run given
//! `--walks W` (`insync merge` then reports what that run reports).
//!
//! A walk starts at the initial state and takes a uniformly chosen action among those that
//! change the state and stay within the model's boundary (the space the exhaustive searches
//! check), until none is left, it comes back to a state it already visited (with the symmetry
//! reduction: a state of the same class), or it reaches `--max-depth`. Every property is evaluated on every state of every walk; a property's
//! discovery is the one of the lowest-numbered walk that has one, so the verdicts and the
//! counterexamples depend on which walks ran, not on the thread count or the timing.

use crate::check::{CheckReport, CutShort, PropertyReport, Strategy, Walks};
use insync_model::{InsyncModel, InsyncState};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use stateright::{Expectation, Model, Path};
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

type Action = <InsyncModel as Model>::Action;

/// One share of a run's walks: walks `j` with `j mod count = index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// From 0 (as Kubernetes' `JOB_COMPLETION_INDEX`) to `count - 1`.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole run.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The run-wide number of this shard's `k`-th walk.
    pub fn walk(self, k: u64) -> u64 {
        u64::from(self.index) + k * u64::from(self.count)
    }

    /// How many of the walks `0..total` are this shard's.
    pub fn walks_of(self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if total <= i {
            0
        } else {
            (total - i).div_ceil(n)
        }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || {
            format!(
                "`{text}` is not a shard; write I/N with 0 <= I < N, e.g. 0/4 for the first of \
                 four shards"
            )
        };
        let (i, n) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = i.trim().parse().map_err(|_| usage())?;
        let count: u32 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The seed of walk `walk` of a run seeded `seed` (SplitMix64's finaliser over both, so
/// neighbouring walks and neighbouring seeds get unrelated streams). Fixed here, not taken
/// from a library, so a walk number means the same walk in every version of insync that
/// keeps the model's action order.
pub fn walk_seed(seed: u64, walk: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(walk)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// When a run stops handing out walks (each walk that started runs to its end).
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Walks of the whole run (`--walks`): this shard takes its share of `0..walks`.
    pub walks: Option<u64>,
    /// States visited by this shard.
    pub states: Option<usize>,
    pub deadline: Option<Instant>,
    /// Stop once one of these properties has a discovery.
    pub stop_at: Option<Vec<&'static str>>,
    pub max_depth: Option<usize>,
}

/// A property's discovery: the walk that found it first (lowest number) and its path.
pub struct Discovery {
    pub walk: u64,
    pub path: Path<InsyncState, Action>,
}

pub struct SimulationOutcome {
    /// The walks this shard took: its walks `0..walks` (`Shard::walk`).
    pub walks: u64,
    pub states: usize,
    pub max_depth: usize,
    pub discoveries: BTreeMap<&'static str, Discovery>,
    /// Whether the deadline (not the walk or state budget) ended the run.
    pub timed_out: bool,
}

/// Runs `shard`'s walks of the run seeded `seed` on `threads` threads until a limit is reached.
pub fn simulate(
    model: &InsyncModel,
    seed: u64,
    shard: Shard,
    threads: usize,
    symmetry: Option<fn(&InsyncState) -> InsyncState>,
    limits: &Limits,
) -> SimulationOutcome {
    let walk_budget = limits.walks.map(|w| shard.walks_of(w));
    let next = AtomicU64::new(0);
    let states = AtomicUsize::new(0);
    let max_depth = AtomicUsize::new(0);
    let timed_out = AtomicBool::new(false);
    let found: Mutex<BTreeMap<&'static str, (u64, Vec<Action>)>> = Mutex::new(BTreeMap::new());
    let stop_found = |found: &BTreeMap<&'static str, _>| {
        limits
            .stop_at
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| found.contains_key(n)))
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                // Checked before a walk is handed out, so the walks taken are always a prefix
                // `0..k` of the shard's.
                if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out.store(true, Ordering::Relaxed);
                    return;
                }
                if limits
                    .states
                    .is_some_and(|s| states.load(Ordering::Relaxed) >= s)
                    || stop_found(&found.lock().expect("no walk panics"))
                {
                    return;
                }
                let k = next.fetch_add(1, Ordering::Relaxed);
                if walk_budget.is_some_and(|b| k >= b) {
                    next.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                let walk = shard.walk(k);
                let result = one_walk(model, walk_seed(seed, walk), symmetry, limits.max_depth);
                states.fetch_add(result.states, Ordering::Relaxed);
                max_depth.fetch_max(result.depth, Ordering::Relaxed);
                let mut found = found.lock().expect("no walk panics");
                for (name, actions) in result.discoveries {
                    let better = found.get(name).is_none_or(|(w, _)| walk < *w);
                    if better {
                        found.insert(name, (walk, actions));
                    }
                }
            });
        }
    });
    let init = model.init_states().remove(0);
    let discoveries = found
        .into_inner()
        .expect("no walk panics")
        .into_iter()
        .map(|(name, (walk, actions))| {
            let path = Path::from_actions(model, init.clone(), actions.iter())
                .expect("a walk's actions replay from the initial state");
            (name, Discovery { walk, path })
        })
        .collect();
    SimulationOutcome {
        walks: next
            .load(Ordering::Relaxed)
            .min(walk_budget.unwrap_or(u64::MAX)),
        states: states.load(Ordering::Relaxed),
        max_depth: max_depth.load(Ordering::Relaxed),
        discoveries,
        timed_out: timed_out.load(Ordering::Relaxed),
    }
}

struct Walk {
    states: usize,
    depth: usize,
    /// Each property discovered on this walk, with the actions up to its first such state.
    discoveries: Vec<(&'static str, Vec<Action>)>,
}

fn one_walk(
    model: &InsyncModel,
    seed: u64,
    symmetry: Option<fn(&InsyncState) -> InsyncState>,
    max_depth: Option<usize>,
) -> Walk {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let properties = model.properties();
    let mut state = {
        let mut init = model.init_states();
        let i = rng.gen_range(0..init.len());
        init.swap_remove(i)
    };
    let mut taken = Vec::new();
    let mut seen = HashSet::new();
    let mut discovered = vec![false; properties.len()];
    let mut walk = Walk {
        states: 0,
        depth: 0,
        discoveries: Vec::new(),
    };
    let mut actions = Vec::new();
    loop {
        if max_depth.is_some_and(|d| taken.len() >= d) || !model.within_boundary(&state) {
            break;
        }
        let fingerprint = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            match symmetry {
                Some(representative) => representative(&state).hash(&mut h),
                None => state.hash(&mut h),
            }
            h.finish()
        };
        if !seen.insert(fingerprint) {
            break;
        }
        walk.states += 1;
        walk.depth = taken.len();
        for (i, p) in properties.iter().enumerate() {
            if discovered[i] {
                continue;
            }
            let holds = (p.condition)(model, &state);
            let discovery = match p.expectation {
                Expectation::Always => !holds,
                Expectation::Sometimes => holds,
                // The model has none; stateright judges them at a walk's end, which a walk
                // cut by the boundary or the depth limit does not reach.
                Expectation::Eventually => false,
            };
            if discovery {
                discovered[i] = true;
                walk.discoveries.push((p.name, taken.clone()));
            }
        }
        actions.clear();
        model.actions(&state, &mut actions);
        // An action that changes nothing, or leads outside the boundary, is dropped and
        // another drawn. (stateright's walks end at a state outside the boundary; that state
        // is outside the space the exhaustive searches check, so skipping to another action
        // samples the same space and makes walks longer: with the model's bounds on crashes,
        // elections and ISR changes, most walks would otherwise end within a few steps.)
        let next = loop {
            if actions.is_empty() {
                break None;
            }
            let action = actions.swap_remove(rng.gen_range(0..actions.len()));
            match model.next_state(&state, action.clone()) {
                Some(next) if model.within_boundary(&next) => break Some((action, next)),
                _ => {}
            }
        };
        let Some((action, next)) = next else {
            break;
        };
        taken.push(action);
        state = next;
    }
    walk
}

/// Combines the reports of shards of one simulation run (`insync merge`): the walks add up,
/// each property's discovery is the lowest-numbered walk's among the shards, and the result is
/// the report the unsplit run over the same walks would have written (seconds: the longest
/// shard's, as shards run side by side). Reports of different runs (configuration, bounds,
/// seed, shard count, symmetry) or of one shard twice are refused, naming the file.
pub fn merge(reports: Vec<(String, CheckReport)>) -> Result<CheckReport, String> {
    let mut reports = reports.into_iter();
    let Some((first_file, mut merged)) = reports.next() else {
        return Err("nothing to merge: give the JSON reports of the shards".into());
    };
    let walks_of = |file: &str, r: &CheckReport| -> Result<Walks, String> {
        match (&r.strategy, &r.walks) {
            (Strategy::Simulation, Some(w)) => Ok(w.clone()),
            (s, _) => Err(format!(
                "{file}: not a report of random walks (strategy {}); only the reports of \
                 `insync check --strategy simulation --shard I/N --json` merge",
                format!("{s:?}").to_lowercase()
            )),
        }
    };
    let mut walks = walks_of(&first_file, &merged)?;
    let mut from: BTreeMap<u32, String> = walks
        .shards
        .keys()
        .map(|i| (*i, first_file.clone()))
        .collect();
    for (file, r) in reports {
        let w = walks_of(&file, &r)?;
        let differs = |what: &str, a: String, b: String| {
            Err(format!(
                "{file}: another run than {first_file}: its {what} is {b}, not {a}; merge only \
                 the shards of one run (same flags, --seed and N in --shard I/N)"
            ))
        };
        if r.config != merged.config {
            return differs("configuration", merged.config.summary(), r.config.summary());
        }
        if r.bounds != merged.bounds {
            return differs("bounds", merged.bounds.sentence(), r.bounds.sentence());
        }
        if w.seed != walks.seed {
            return differs("seed", walks.seed.to_string(), w.seed.to_string());
        }
        if w.shard_count != walks.shard_count {
            return differs(
                "shard count",
                walks.shard_count.to_string(),
                w.shard_count.to_string(),
            );
        }
        if r.symmetry != merged.symmetry {
            return differs(
                "symmetry reduction",
                merged.symmetry.to_string(),
                r.symmetry.to_string(),
            );
        }
        for (index, count) in &w.shards {
            if let Some(other) = from.get(index) {
                return Err(format!(
                    "{file}: shard {index}/{} is also in {other}; give each shard once",
                    w.shard_count
                ));
            }
            from.insert(*index, file.clone());
            walks.shards.insert(*index, *count);
        }
        merged.states += r.states;
        merged.unique_states += r.unique_states;
        merged.max_depth = merged.max_depth.max(r.max_depth);
        merged.seconds = merged.seconds.max(r.seconds);
        for (mine, theirs) in merged.properties.iter_mut().zip(r.properties) {
            if mine.name != theirs.name {
                return Err(format!(
                    "{file}: its properties are not {first_file}'s (another insync version?)"
                ));
            }
            let found = |p: &PropertyReport| p.counterexample.is_some() || p.example.is_some();
            let earlier = match (mine.walk, theirs.walk) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b < a,
            };
            if found(&theirs) && (!found(mine) || earlier) {
                *mine = theirs;
            }
        }
    }
    merged.walks = Some(walks);
    merged.complete = false;
    merged.cut_short = Some(CutShort::Simulation);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_what_is_not_one() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "0/0", "1", "a/b", "-1/3", "1/2/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
    }

    #[test]
    fn shards_split_the_walks_of_a_run_disjointly_and_completely() {
        for count in 1..6u32 {
            for total in 0..20u64 {
                let mut taken: Vec<u64> = (0..count)
                    .flat_map(|index| {
                        let shard = Shard { index, count };
                        (0..shard.walks_of(total)).map(move |k| shard.walk(k))
                    })
                    .collect();
                taken.sort_unstable();
                assert_eq!(taken, (0..total).collect::<Vec<_>>(), "{count} shards");
            }
        }
    }

    #[test]
    fn walk_seeds_differ_between_walks_and_between_runs() {
        let seeds: HashSet<u64> = (0..4)
            .flat_map(|s| (0..1000).map(move |w| walk_seed(s, w)))
            .collect();
        assert_eq!(seeds.len(), 4000);
    }
}
