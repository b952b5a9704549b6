//! proptest strategies for plans, configurations and whole test cases.
//!
//! Client operations dominate; faults come in the proportions that make Kafka's failures
//! likely (a leader crash or a partition with the producer on the old leader's side), and
//! pauses are drawn around the engine's timers (the 1 s lag time, the 2 s session timeout, the
//! 3 s request timeout) so that ISR shrinks, elections and timeouts happen inside a plan.
//! Shrinking removes steps and lowers numbers; the runner's preconditions keep any shrunk plan
//! meaningful.

use crate::plan::{DamagedFile, FlipRegion, Plan, Step};
use insync_model::config::{Acks, Config, HwRule};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// Pauses: mostly short, sometimes past a timer.
pub fn pause() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..20).prop_map(|ms| Step::Pause { ms }),
        2 => (20u64..400).prop_map(|ms| Step::Pause { ms }),
        3 => prop::sample::select(vec![1100u64, 2100, 2600, 3200, 4000])
            .prop_map(|ms| Step::Pause { ms }),
    ]
}

/// Faults and their repairs.
pub fn fault() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => Just(Step::CrashLeader),
        2 => (0u8..4).prop_map(|rank| Step::CrashFollower { rank }),
        4 => Just(Step::RestartBroker),
        2 => Just(Step::RestartAll),
        6 => (0u8..16, 0u8..4).prop_map(|(followers, clients)| Step::Partition { followers, clients }),
        4 => Just(Step::Heal),
        2 => (1u8..40).prop_map(|percent| Step::Drop { percent }),
        2 => (1u8..40).prop_map(|percent| Step::Duplicate { percent }),
        2 => (1u64..100).prop_map(|ms| Step::Delay { ms }),
        2 => Just(Step::ClearNetwork),
        3 => (0u8..4, 1u64..1500).prop_map(|(rank, ms)| Step::SlowFollower { rank, ms }),
        1 => Just(Step::CrashConsumer),
        1 => Just(Step::RestartConsumer),
    ]
}

/// Disk faults, each on the broker the runner picks (see [`Step::TornWrite`]).
pub fn disk_fault() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u32..3000).prop_map(|written| Step::TornWrite { written }),
        2 => Just(Step::LostFsync),
        2 => (prop::bool::ANY, 0u32..100_000).prop_map(|(below, at)| Step::BitFlip {
            region: if below {
                FlipRegion::BelowRecoveryPoint
            } else {
                FlipRegion::AboveRecoveryPoint
            },
            at,
        }),
        1 => prop_oneof![
            Just(DamagedFile::Segment),
            Just(DamagedFile::State),
            Just(DamagedFile::Meta)
        ]
        .prop_map(|file| Step::MissingFile { file }),
        1 => (prop::bool::ANY, 0u32..100_000).prop_map(|(state, at)| Step::FileBitFlip {
            file: if state { DamagedFile::State } else { DamagedFile::Meta },
            at,
        }),
        2 => Just(Step::DiskFull),
    ]
}

/// One step of a plan with disk faults among the faults; crashes and restarts a little more
/// often, so that disk faults find a broker down.
pub fn step_with_disk_faults() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => Just(Step::Send),
        10 => Just(Step::Poll),
        3 => Just(Step::Commit),
        16 => pause(),
        24 => fault(),
        4 => Just(Step::CrashLeader),
        2 => (0u8..4).prop_map(|rank| Step::CrashFollower { rank }),
        10 => disk_fault(),
    ]
}

/// The controller's crash and restart (`--controller-faults`).
pub fn controller_fault() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::CrashController),
        1 => Just(Step::RestartController),
    ]
}

/// One step of a plan.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => Just(Step::Send),
        10 => Just(Step::Poll),
        3 => Just(Step::Commit),
        16 => pause(),
        28 => fault(),
    ]
}

/// A plan of `len` steps.
pub fn plan(len: std::ops::Range<usize>) -> impl Strategy<Value = Plan> {
    vec(step(), len).prop_map(|steps| Plan { steps })
}

/// Safe configurations: the recommended one and its safe variants (more replicas, KIP-966's
/// high-watermark rule, more requests in flight).
pub fn safe_config() -> impl Strategy<Value = Config> {
    (3usize..=5, 0usize..3, prop::bool::ANY, 1usize..=5).prop_map(
        |(replicas, extra_insync, min_isr, max_in_flight)| {
            let min_insync = (2 + extra_insync).min(replicas - 1);
            Config {
                replicas,
                min_insync,
                hw_rule: if min_isr { HwRule::MinIsr } else { HwRule::Isr },
                max_in_flight,
                ..recommended()
            }
        },
    )
}

/// The recommended configuration: rf=3, min.insync.replicas=2, acks=all, idempotence.
pub fn recommended() -> Config {
    Config {
        acks: Acks::All,
        idempotence: true,
        records: 1,
        ..Config::default()
    }
}

/// One generated test: a configuration, a plan and the engine's seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub config: Config,
    pub plan: Plan,
    pub seed: u64,
}

/// Cases for a fixed configuration.
pub fn case_for(config: Config, len: std::ops::Range<usize>) -> impl Strategy<Value = Case> {
    (plan(len), 0u64..1_000).prop_map(move |(plan, seed)| Case {
        config: config.clone(),
        plan,
        seed,
    })
}

/// Cases for a fixed configuration, with disk faults.
pub fn case_with_disk_faults(
    config: Config,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Case> {
    (vec(step_with_disk_faults(), len), 0u64..1_000).prop_map(move |(steps, seed)| Case {
        config: config.clone(),
        plan: Plan { steps },
        seed,
    })
}

/// Cases for a fixed configuration with the controller's crashes and restarts among the
/// steps (and disk faults with `disk_faults`). A separate generator, so that the cases of
/// `insync fuzz --seed S` without it stay what they were.
pub fn case_with_controller_faults(
    config: Config,
    len: std::ops::Range<usize>,
    disk_faults: bool,
) -> impl Strategy<Value = Case> {
    let step = if disk_faults {
        prop_oneof![12 => step_with_disk_faults(), 1 => controller_fault()].boxed()
    } else {
        prop_oneof![12 => step(), 1 => controller_fault()].boxed()
    };
    (vec(step, len), 0u64..1_000).prop_map(move |(steps, seed)| Case {
        config: config.clone(),
        plan: Plan { steps },
        seed,
    })
}

/// Cases whose configuration is generated too.
pub fn case_with_config(
    configs: impl Strategy<Value = Config>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Case> {
    (configs, plan(len), 0u64..1_000).prop_map(|(config, plan, seed)| Case { config, plan, seed })
}
