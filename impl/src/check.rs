//! Runs stateright's checker on one configuration and reports the verdict of every property,
//! with counterexamples as numbered steps in Kafka's terms.

use crate::budget::Deepening;
use crate::simulate::Shard;
use insync_model::node::StopFlag;
use insync_model::properties::{self, Property};
use insync_model::trace::{describe_path, describe_state};
use insync_model::{Insync, InsyncModel, ValidConfig};
use serde::{Deserialize, Serialize};
use stateright::{Checker, Expectation, HasDiscoveries, Model, Path};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How to search the state space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Bugs first: breadth first for the first million states (a shallow violation is found
    /// in seconds), then, if that found none and did not finish, depth first to the end.
    Auto,
    /// Breadth first: shortest counterexamples, more memory.
    Bfs,
    /// Depth first: least memory.
    Dfs,
    /// Random walks, for spaces too large to exhaust.
    Simulation,
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub strategy: Strategy,
    pub threads: usize,
    pub max_depth: Option<usize>,
    /// Simulation: the seed of the random walks.
    pub seed: u64,
    /// Stop after this many generated states (simulation's budget; optional otherwise).
    pub max_states: Option<usize>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Stop as soon as one of these properties has a discovery.
    pub stop_at: Option<BTreeSet<Property>>,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Visit one state per class of states that differ only in broker names, where that is
    /// sound (`insync_model::symmetry::applies`) and the strategy supports it (depth first,
    /// simulation; stateright's breadth-first search ignores symmetry).
    pub symmetry: bool,
    /// After a breadth-first search stopped at a first violation, search again below the
    /// counterexample's length until it is a shortest one (see [`shortest`]); it costs up
    /// to another search of the same depth. Off where only the verdict matters.
    pub shortest: bool,
    /// Simulation: which share of the run's walks to take (`--shard I/N`).
    pub shard: Shard,
    /// Simulation: the run's number of walks (`--walks`); this shard takes its share.
    pub walks: Option<u64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            strategy: Strategy::Auto,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_depth: None,
            seed: 0,
            max_states: None,
            timeout: None,
            stop_at: None,
            progress: false,
            symmetry: true,
            shortest: true,
            shard: Shard::ALL,
            walks: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    #[serde(serialize_with = "property_name")]
    pub name: Property,
    pub expectation: &'static str,
    /// `always`: no counterexample found; `sometimes`: an example was found.
    pub holds: bool,
    /// The steps that break an `always` property; `null` when it holds.
    pub counterexample: Option<Vec<String>>,
    /// For a reached `sometimes` property, the steps that reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<Vec<String>>,
    /// The state the counterexample ends in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_state: Option<Vec<String>>,
    /// The (counter)example as the Explorer's action indices (`0/3/1`: the initial state, then
    /// which enabled action each step takes): `insync explore --path REPORT` opens it, and so
    /// does `http://ADDR/#/steps/0/3/1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explorer_path: Option<String>,
    /// Simulation: the run-wide number of the walk that found it (the lowest that did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk: Option<u64>,
}

fn property_name<S: serde::Serializer>(p: &Property, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// A [`PropertyReport`] as read back from JSON: its names become the model's own, so a report
/// written by an insync with other properties is refused, not misread.
#[derive(Deserialize)]
struct ReadPropertyReport {
    name: String,
    expectation: String,
    holds: bool,
    counterexample: Option<Vec<String>>,
    #[serde(default)]
    example: Option<Vec<String>>,
    #[serde(default)]
    final_state: Option<Vec<String>>,
    #[serde(default)]
    explorer_path: Option<String>,
    #[serde(default)]
    walk: Option<u64>,
}

impl<'de> Deserialize<'de> for PropertyReport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PropertyReport, D::Error> {
        PropertyReport::try_from(ReadPropertyReport::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}

impl TryFrom<ReadPropertyReport> for PropertyReport {
    type Error = String;

    fn try_from(r: ReadPropertyReport) -> Result<PropertyReport, String> {
        let name: Property = r
            .name
            .parse()
            .map_err(|e| format!("{e} (a report of another insync version?)"))?;
        let expectation = ["always", "sometimes", "eventually"]
            .into_iter()
            .find(|k| *k == r.expectation)
            .ok_or_else(|| format!("unknown property kind `{}`", r.expectation))?;
        Ok(PropertyReport {
            name,
            expectation,
            holds: r.holds,
            counterexample: r.counterexample,
            example: r.example,
            final_state: r.final_state,
            explorer_path: r.explorer_path,
            walk: r.walk,
        })
    }
}

/// Which random walks a simulation report covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Walks {
    /// The run's seed: walk `j` of the run is `simulate::walk_seed(seed, j)`.
    pub seed: u64,
    /// How many shards the run was split into (1: not split).
    pub shard_count: u32,
    /// The shards this report covers, each with the number of its walks taken (shard `I`'s
    /// `k`-th walk is the run's walk `I + k * shard_count`).
    pub shards: BTreeMap<u32, u64>,
}

impl Walks {
    pub fn total(&self) -> u64 {
        self.shards.values().sum()
    }

    /// The shards of the run this report does not cover.
    pub fn missing(&self) -> Vec<u32> {
        (0..self.shard_count)
            .filter(|i| !self.shards.contains_key(i))
            .collect()
    }
}

/// Why a search did not visit every state within the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutShort {
    /// `--timeout` passed.
    Timeout,
    /// `--max-states` was reached.
    StateLimit,
    /// `--max-depth` kept deeper states out.
    DepthLimit,
    /// Random walks sample the space; they never exhaust it.
    Simulation,
    /// `--first` (or a matrix row) stopped at the first counterexample.
    FirstViolation,
}

impl CutShort {
    pub fn explain(self) -> &'static str {
        match self {
            CutShort::Timeout => "the timeout passed",
            CutShort::StateLimit => "the state limit (--max-states) was reached",
            CutShort::DepthLimit => "the depth limit (--max-depth) kept deeper states out",
            CutShort::Simulation => "random walks sample the space, they never exhaust it",
            CutShort::FirstViolation => "the search stopped at its first counterexample",
        }
    }
}

/// The bounds a search covered: a verdict is a claim about every behaviour within them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub records: u32,
    pub crashes: u32,
    pub elections: u32,
    pub isr_changes: u32,
    pub retries: u32,
    pub consumer: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
}

impl Bounds {
    fn of(config: &insync_model::Config, options: &CheckOptions) -> Bounds {
        Bounds {
            records: config.records,
            crashes: config.crashes,
            elections: config.elections,
            isr_changes: config.isr_changes,
            retries: config.retries,
            consumer: config.consumer,
            max_depth: options.max_depth,
        }
    }

    /// "at most 2 records, 1 crash, ..." for the human report.
    pub fn sentence(&self) -> String {
        fn n(count: impl Into<u64>, one: &str, many: &str) -> String {
            let count = count.into();
            format!("{count} {}", if count == 1 { one } else { many })
        }
        let mut parts = vec![
            n(self.records, "record", "records"),
            n(self.crashes, "broker crash", "broker crashes"),
            n(
                self.elections,
                "leader election beyond the first",
                "leader elections beyond the first",
            ),
            n(self.isr_changes, "ISR change", "ISR changes"),
            n(self.retries, "retry per send", "retries per send"),
        ];
        if let Some(d) = self.max_depth {
            parts.push(n(d as u64, "step", "steps"));
        }
        format!(
            "at most {}, {}",
            parts.join(", "),
            if self.consumer {
                "and a consumer"
            } else {
                "and no consumer"
            }
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    pub config: insync_model::Config,
    pub bounds: Bounds,
    pub strategy: Strategy,
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    /// Whether every reachable state within the bounds was visited. When false, a property
    /// that "holds" was only not refuted.
    pub complete: bool,
    /// Why `complete` is false; absent when the search was exhaustive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<CutShort>,
    pub properties: Vec<PropertyReport>,
    /// Whether states that differ only in broker names were visited once (`unique_states`
    /// then counts classes of states).
    pub symmetry: bool,
    /// With `--budget`: the scopes checked on the way to this one (not read back: only
    /// simulation reports are merged).
    #[serde(skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub deepening: Option<crate::budget::Deepening>,
    /// With `--strategy simulation`: the walks taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walks: Option<Walks>,
}

impl CheckReport {
    /// Safety properties with a counterexample.
    pub fn violations(&self) -> impl Iterator<Item = &PropertyReport> {
        self.properties
            .iter()
            .filter(|p| p.expectation == "always" && !p.holds)
    }

    pub fn property(&self, property: Property) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.name == property)
    }

    /// The process exit code of PROTOCOL.md §4: 1 a counterexample, 0 an exhaustive search
    /// without one, 3 no counterexample but the search was cut short.
    pub fn exit_code(&self) -> u8 {
        if self.violations().next().is_some() {
            1
        } else if self.complete {
            0
        } else {
            3
        }
    }
}

fn expectation_name(e: &Expectation) -> &'static str {
    match e {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
        Expectation::Eventually => "eventually",
    }
}

/// Printed under a counterexample found on the duplicating network: the model's duplication
/// goes beyond Kafka's, so the counterexample may rest on it.
pub const DUPLICATING_CAVEAT: &str = "note: --network duplicating delivers any message again, \
including a request whose answer was already delivered; Kafka's connections are TCP and its \
clients resend a request only when its answer is lost. If the counterexample delivers one \
request twice (for example an AlterPartition rejected, then accepted), it shows a behaviour \
Kafka does not have.\n";

/// How many states `Strategy::Auto` generates breadth first before it goes depth first.
pub const AUTO_BFS_STATES: usize = 1_000_000;

/// Model-checks one configuration.
pub fn check(config: &ValidConfig, options: &CheckOptions) -> CheckReport {
    if options.strategy == Strategy::Auto {
        return check_auto(config, options);
    }
    let report = check_once(config, options);
    if options.shortest && options.strategy == Strategy::Bfs && options.stop_at.is_some() {
        shortest(config, options, report)
    } else {
        report
    }
}

/// stateright 0.31's breadth-first search records a property's discovery again on later
/// states that also violate it (`checker/bfs.rs`), so the path it reports after stopping at
/// a first violation can be longer than the shortest. A breadth-first search bounded below
/// that length finds a shorter one if there is one; repeated until none is found, the
/// counterexample reported is a shortest one. (A path of `n` steps ends at depth `n + 1`,
/// and stateright evaluates properties only on states below `target_max_depth`, so the bound
/// `n + 1` admits paths of at most `n - 1` steps.)
fn shortest(config: &ValidConfig, options: &CheckOptions, mut report: CheckReport) -> CheckReport {
    for i in 0..report.properties.len() {
        loop {
            let p = &report.properties[i];
            let Some(steps) = p.counterexample.as_ref().map(Vec::len) else {
                break;
            };
            if p.expectation != "always" || steps <= 1 {
                break;
            }
            let bounded = check_once(
                config,
                &CheckOptions {
                    strategy: Strategy::Bfs,
                    threads: 1,
                    max_depth: Some(steps + 1),
                    max_states: None,
                    stop_at: Some([p.name].into_iter().collect()),
                    progress: false,
                    ..options.clone()
                },
            );
            // The time of the search again counts in the check's.
            report.seconds += bounded.seconds;
            match bounded.property(p.name) {
                Some(q) if q.counterexample.as_ref().is_some_and(|c| c.len() < steps) => {
                    report.properties[i] = q.clone();
                }
                _ => break,
            }
        }
    }
    report
}

fn check_once(config: &ValidConfig, options: &CheckOptions) -> CheckReport {
    let insync = Insync::new(config.clone());
    let stop = insync.stop.clone();
    let model = insync.into_model();
    let mut builder = model.checker().threads(options.threads.max(1));
    if let Some(depth) = options.max_depth {
        builder = builder.target_max_depth(depth);
    }
    if let Some(states) = options.max_states {
        builder = builder.target_state_count(states);
    }
    // The deadline is kept by `finish`, not given to stateright: its DFS reports "done" at
    // the deadline while its threads search on.
    if let Some(stop_at) = &options.stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(
            stop_at.iter().map(|p| p.name()).collect(),
        ));
    }
    if symmetric(config, options) {
        builder = builder.symmetry_fn(insync_model::symmetry::representative_fingerprint);
    }
    let start = Instant::now();
    match options.strategy {
        Strategy::Bfs => finish(builder.spawn_bfs(), config, options, &stop, start),
        Strategy::Dfs => finish(builder.spawn_dfs(), config, options, &stop, start),
        Strategy::Auto => unreachable!("check_auto runs the phases"),
        Strategy::Simulation => simulation(config, options),
    }
}

/// `--strategy simulation`: numbered random walks ([`crate::simulate`]), so that a run can be
/// split into shards and their reports merged.
fn simulation(config: &ValidConfig, options: &CheckOptions) -> CheckReport {
    let model = Insync::new(config.clone()).into_model();
    let start = Instant::now();
    let limits = crate::simulate::Limits {
        walks: options.walks,
        states: options.max_states,
        deadline: options.timeout.map(|t| start + t),
        stop_at: options
            .stop_at
            .as_ref()
            .map(|names| names.iter().map(|p| p.name()).collect()),
        max_depth: options.max_depth,
    };
    let representative: fn(&insync_model::InsyncState) -> insync_model::InsyncState =
        insync_model::symmetry::representative_fingerprint;
    let outcome = crate::simulate::simulate(
        &model,
        options.seed,
        options.shard,
        options.threads,
        symmetric(config, options).then_some(representative),
        &limits,
    );
    let mut walks = BTreeMap::new();
    let mut found = BTreeMap::new();
    for (name, d) in outcome.discoveries {
        walks.insert(name, d.walk);
        found.insert(name, d.path);
    }
    let mut report = assemble(
        &model,
        &found,
        Counts {
            states: outcome.states,
            unique_states: outcome.states,
            max_depth: outcome.max_depth,
        },
        config,
        options,
        start.elapsed().as_secs_f64(),
        Some(CutShort::Simulation),
    );
    for p in &mut report.properties {
        p.walk = walks.get(p.name.name()).copied();
    }
    report.walks = Some(Walks {
        seed: options.seed,
        shard_count: options.shard.count,
        shards: [(options.shard.index, outcome.walks)].into_iter().collect(),
    });
    report
}

/// Whether a search with `options` merges states that differ only in broker names.
pub fn symmetric(config: &ValidConfig, options: &CheckOptions) -> bool {
    options.symmetry
        && matches!(options.strategy, Strategy::Dfs | Strategy::Simulation)
        && insync_model::symmetry::applies(config)
}

/// Breadth first while that is cheap, so a shallow violation is reported at once (depth first
/// can spend minutes in one deep corner first), then depth first, which needs little memory,
/// for the exhaustive search. The report is the phase that decided the verdict.
fn check_auto(config: &ValidConfig, options: &CheckOptions) -> CheckReport {
    let start = Instant::now();
    let phase_states = options
        .max_states
        .map_or(AUTO_BFS_STATES, |m| m.min(AUTO_BFS_STATES));
    let bfs = check(
        config,
        &CheckOptions {
            strategy: Strategy::Bfs,
            max_states: Some(phase_states),
            ..options.clone()
        },
    );
    let user_limit_reached = options.max_states.is_some_and(|m| m <= AUTO_BFS_STATES);
    let timed_out = bfs.cut_short == Some(CutShort::Timeout);
    if bfs.complete || bfs.violations().next().is_some() || user_limit_reached || timed_out {
        let cut_short = match bfs.cut_short {
            // The phase's own limit is not the user's: a breadth-first phase that stopped
            // there but found a violation still exits 1.
            Some(CutShort::StateLimit) if !user_limit_reached => Some(CutShort::FirstViolation),
            other => other,
        };
        return CheckReport {
            strategy: Strategy::Auto,
            cut_short,
            complete: cut_short.is_none(),
            ..bfs
        };
    }
    let dfs = check(
        config,
        &CheckOptions {
            strategy: Strategy::Dfs,
            timeout: options.timeout.map(|t| t.saturating_sub(start.elapsed())),
            ..options.clone()
        },
    );
    CheckReport {
        strategy: Strategy::Auto,
        seconds: start.elapsed().as_secs_f64(),
        ..dfs
    }
}

fn finish<C: Checker<InsyncModel>>(
    checker: C,
    config: &ValidConfig,
    options: &CheckOptions,
    stop: &StopFlag,
    start: Instant,
) -> CheckReport {
    // stateright looks at its timeout only between work batches, and one thread's batch can
    // be the whole remaining search; so the deadline is kept here: past it, the model's stop
    // flag puts every further state outside the boundary and the report says the check is
    // incomplete. Only `always` and `sometimes` properties exist, so states visited while
    // the queues drain cannot fake a discovery.
    let deadline = options.timeout.map(|t| start + t);
    let tty = std::io::stderr().is_terminal();
    let mut last_print = Instant::now();
    let mut timed_out = false;
    while !checker.is_done() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if options.progress && (tty || last_print.elapsed() >= Duration::from_secs(10)) {
            let line = progress_line(&checker, start.elapsed().as_secs_f64());
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            last_print = Instant::now();
        }
    }
    if options.progress && tty {
        eprint!("\r{}\r", " ".repeat(90));
    }
    if !timed_out {
        return report(&checker.join(), config, options, start, false);
    }
    // Past the deadline the threads are told to stop, but they still drain the states
    // already queued (a whole BFS level can be), so the report is taken without waiting and
    // the checker is not dropped (dropping joins): the threads end with the drain or the
    // process, whichever comes first.
    stop.raise();
    let report = report(&checker, config, options, start, true);
    std::mem::forget(checker);
    report
}

fn report<C: Checker<InsyncModel>>(
    checker: &C,
    config: &ValidConfig,
    options: &CheckOptions,
    start: Instant,
    timed_out: bool,
) -> CheckReport {
    let seconds = start.elapsed().as_secs_f64();
    let out_of_time = timed_out || options.timeout.is_some_and(|t| start.elapsed() >= t);
    let cut_short = if out_of_time {
        Some(CutShort::Timeout)
    } else if options
        .max_states
        .is_some_and(|m| checker.state_count() >= m)
    {
        Some(CutShort::StateLimit)
    } else if options.max_depth.is_some() {
        Some(CutShort::DepthLimit)
    } else {
        None
    };
    let found: BTreeMap<&'static str, _> = checker.discoveries().into_iter().collect();
    assemble(
        checker.model(),
        &found,
        Counts {
            states: checker.state_count(),
            unique_states: checker.unique_state_count(),
            max_depth: checker.max_depth(),
        },
        config,
        options,
        seconds,
        cut_short,
    )
}

struct Counts {
    states: usize,
    unique_states: usize,
    max_depth: usize,
}

/// The report of a search, from the paths it found.
#[allow(clippy::too_many_arguments)]
fn assemble(
    model: &InsyncModel,
    found: &BTreeMap<&'static str, Path<insync_model::InsyncState, <InsyncModel as Model>::Action>>,
    counts: Counts,
    config: &ValidConfig,
    options: &CheckOptions,
    seconds: f64,
    mut cut_short: Option<CutShort>,
) -> CheckReport {
    let mut properties = Vec::new();
    for p in properties::all() {
        let found = found.get(p.name);
        let explorer_path = found.map(|path| path.encode(model));
        let steps = found.map(|path| {
            let steps = path.clone().into_vec();
            (
                describe_path(model, &steps),
                describe_state(model, path.last_state()),
            )
        });
        let (holds, counterexample, example, final_state) = match (&p.expectation, steps) {
            (Expectation::Always, Some((trace, last))) => (false, Some(trace), None, Some(last)),
            (Expectation::Always, None) => (true, None, None, None),
            (_, Some((trace, _))) => (true, None, Some(trace), None),
            (_, None) => (false, None, None, None),
        };
        properties.push(PropertyReport {
            name: p.property,
            expectation: expectation_name(&p.expectation),
            holds,
            counterexample,
            example,
            final_state,
            explorer_path,
            walk: None,
        });
    }
    // A search stopped early at a wanted discovery did not visit everything.
    if options.stop_at.is_some()
        && properties
            .iter()
            .any(|p| p.expectation == "always" && !p.holds)
    {
        cut_short = cut_short.or(Some(CutShort::FirstViolation));
    }
    let symmetry = symmetric(config, options);
    let config = config.clone().into_inner();
    CheckReport {
        symmetry,
        bounds: Bounds::of(&config, options),
        config,
        strategy: options.strategy,
        states: counts.states,
        unique_states: counts.unique_states,
        max_depth: counts.max_depth,
        seconds,
        complete: cut_short.is_none(),
        cut_short,
        properties,
        deepening: None,
        walks: None,
    }
}

fn progress_line<C: Checker<InsyncModel>>(checker: &C, elapsed: f64) -> String {
    let unique = checker.unique_state_count();
    format!(
        "checking: {} states, {} unique, {:.0} unique/s, depth {}, {:.0}s",
        checker.state_count(),
        unique,
        unique as f64 / elapsed.max(1e-9),
        checker.max_depth(),
        elapsed
    )
}

/// The human report: a table of properties, each failure's trace under it, and the figures.
pub fn render_human(report: &CheckReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("configuration: {}\n\n", report.config.summary()));
    s.push_str(&format!("{:<26} {:<10} verdict\n", "property", "kind"));
    for p in &report.properties {
        let verdict = match (p.expectation, p.holds) {
            ("always", true) if report.complete => "holds",
            ("always", true) => "not refuted (search incomplete)",
            ("always", false) => "VIOLATED",
            (_, true) => "reached",
            (_, false) => "not reached",
        };
        s.push_str(&format!("{:<26} {:<10} {verdict}\n", p.name, p.expectation));
    }
    for p in report.violations() {
        match p.walk {
            Some(walk) => s.push_str(&format!("\n{} is violated (random walk {walk}):\n", p.name)),
            None => s.push_str(&format!("\n{} is violated:\n", p.name)),
        }
        for line in p.counterexample.iter().flatten() {
            s.push_str(&format!("  {line}\n"));
        }
        s.push_str("  final state:\n");
        for line in p.final_state.iter().flatten() {
            s.push_str(&format!("    {line}\n"));
        }
    }
    if let Some(d) = &report.deepening {
        s.push_str(&render_deepening(d));
    }
    let rate = report.unique_states as f64 / report.seconds.max(1e-9);
    let symmetry = if report.symmetry {
        " up to broker renaming"
    } else {
        ""
    };
    let strategy = format!("{:?}", report.strategy).to_lowercase();
    let complete = if report.complete {
        ", complete"
    } else {
        ", incomplete"
    };
    match &report.walks {
        // Walks visit a state again when another walk passes it: no unique count.
        Some(w) => {
            s.push_str(&format!(
                "\n{} states visited ({:.0}/s), max depth {}, {:.2}s, {strategy}{complete}\n",
                report.states,
                report.states as f64 / report.seconds.max(1e-9),
                report.max_depth,
                report.seconds,
            ));
            s.push_str(&render_walks(w));
        }
        None => s.push_str(&format!(
            "\n{} states ({} unique{symmetry}, {rate:.0} unique/s), max depth {}, {:.2}s, {strategy}{complete}\n",
            report.states, report.unique_states, report.max_depth, report.seconds,
        )),
    }
    let bounds = report.bounds.sentence();
    match (report.violations().next(), report.cut_short) {
        (Some(_), _) if report.config.network == insync_model::config::NetworkKind::Duplicating => {
            s.push_str(DUPLICATING_CAVEAT);
        }
        (Some(_), _) => {}
        (None, None) => s.push_str(&format!(
            "every safety property holds for every behaviour with {bounds}\n"
        )),
        (None, Some(why)) => s.push_str(&format!(
            "no violation found, but the search was cut short ({}): this is not a proof for {bounds} (exit 3)\n",
            why.explain()
        )),
    }
    let deepened = match &report.deepening {
        Some(Deepening {
            largest_complete: Some(largest),
            reached_target: false,
            ..
        }) if report.violations().next().is_none() => Some(largest),
        _ => None,
    };
    if let Some(largest) = deepened {
        s.push_str(&format!(
            "the largest scope that finished: every safety property holds for every behaviour with {}\n",
            largest.sentence()
        ));
    }
    s
}

/// Which random walks a simulation report covers, and the shards still missing from a merge.
fn render_walks(w: &Walks) -> String {
    let shards: Vec<String> = w.shards.keys().map(u32::to_string).collect();
    let mut s = format!("{} random walks of the run seeded {}", w.total(), w.seed);
    if w.shard_count > 1 {
        s.push_str(&format!(
            ", shard{} {} of {}",
            if shards.len() == 1 { "" } else { "s" },
            shards.join(","),
            w.shard_count
        ));
    }
    s.push('\n');
    let missing = w.missing();
    if !missing.is_empty() && w.shards.len() > 1 {
        let missing: Vec<String> = missing.iter().map(u32::to_string).collect();
        s.push_str(&format!(
            "missing shards: {} of {} (run them with the same flags and merge again)\n",
            missing.join(","),
            w.shard_count
        ));
    }
    s
}

/// The scopes of a `--budget` run, one line each.
fn render_deepening(d: &Deepening) -> String {
    let mut s = format!(
        "\nscope deepening within {:.0}s ({} scopes):\n",
        d.budget_seconds,
        d.scopes.len()
    );
    s.push_str("  records crashes elections isr-changes  unique states  seconds  verdict\n");
    for run in &d.scopes {
        let verdict = match (run.violated.is_empty(), run.cut_short) {
            (false, _) => format!("VIOLATED {}", run.violated.join(", ")),
            (true, None) => "holds".to_string(),
            (true, Some(why)) => format!("cut short ({})", why.explain()),
        };
        s.push_str(&format!(
            "  {:>7} {:>7} {:>9} {:>11}  {:>13}  {:>7.2}  {verdict}\n",
            run.bounds.records,
            run.bounds.crashes,
            run.bounds.elections,
            run.bounds.isr_changes,
            run.unique_states,
            run.seconds
        ));
    }
    s
}
