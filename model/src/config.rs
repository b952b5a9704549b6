//! One validated configuration for a partition, its clients and the bounds of a check.
//!
//! Every knob of Kafka's reliability story is a field here. [`Config::validate`] is the only way
//! to obtain a [`ValidConfig`], which is what the model and the engine accept, so an invalid
//! combination is an error with Kafka's wording, never a panic deep inside a run.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use crate::types::REPLICAS_MAX;

/// Producer `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Acks {
    /// Fire and forget: nothing is acknowledged.
    #[serde(rename = "0")]
    Zero,
    /// Acknowledged once the leader appended it.
    #[serde(rename = "1")]
    One,
    /// Acknowledged once every ISR member has it, i.e. once it is committed.
    #[serde(rename = "all")]
    All,
}

/// The protocol generation of follower truncation, with that generation's fencing,
/// high-watermark and ISR-join rules: the ladder of Gustafson's TLA+ specifications
/// (`hachikuji/kafka-specification`, one module per rung), oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Truncation {
    /// Before Kafka 0.11 (`KafkaTruncateToHighWatermark`): a new follower truncates to its
    /// local high watermark; fetches carry no epoch.
    #[serde(rename = "high-watermark")]
    HighWatermark,
    /// Kafka 0.11 (KIP-101, `Kip101`): a new follower asks the leader (`OffsetsForLeaderEpoch`)
    /// for the end of its last epoch: the leader's log end if that is the leader's latest
    /// epoch, else the start of the next newer epoch, else (unknown) the follower's HW.
    #[serde(rename = "kip-101")]
    Kip101,
    /// Kafka 2.0 (KIP-279, `Kip279`): the answer is the largest epoch not newer than the asked
    /// one with its end offset; the follower truncates to the smaller of that and its own end
    /// of that epoch, and asks again until both agree on the epoch.
    #[serde(rename = "kip-279")]
    Kip279,
    /// The first draft of KIP-320 (`Kip320FirstTry`): no truncation on becoming follower;
    /// every fetch carries the epoch of the fetcher's last record and the leader answers a
    /// divergence, but fetches are not fenced by the current leader epoch.
    #[serde(rename = "kip-320-first-try")]
    Kip320FirstTry,
    /// Kafka 2.1 (KIP-320, `Kip320`): KIP-279's truncation, with `OffsetsForLeaderEpoch` and
    /// every fetch carrying the fetcher's current leader epoch and refused across epochs.
    #[serde(rename = "kip-320")]
    Kip320,
    /// Today's Kafka: fenced fetches that carry the last fetched epoch, divergence found
    /// inside the fetch (as KIP-595 carries it; KIP-320's fencing).
    #[serde(rename = "leader-epoch")]
    LeaderEpoch,
}

impl Truncation {
    /// Every rung, oldest first.
    pub const LADDER: [Truncation; 6] = [
        Truncation::HighWatermark,
        Truncation::Kip101,
        Truncation::Kip279,
        Truncation::Kip320FirstTry,
        Truncation::Kip320,
        Truncation::LeaderEpoch,
    ];

    /// KIP-320: fetches (and `OffsetsForLeaderEpoch`) carry the fetcher's current leader
    /// epoch, and the leader refuses one from another epoch.
    pub fn fences_fetches(self) -> bool {
        matches!(self, Truncation::Kip320 | Truncation::LeaderEpoch)
    }

    /// The follower finds its truncation point with `OffsetsForLeaderEpoch` after becoming a
    /// follower, before it fetches (KIP-101, KIP-279, KIP-320).
    pub fn asks_epoch_end_offset(self) -> bool {
        matches!(
            self,
            Truncation::Kip101 | Truncation::Kip279 | Truncation::Kip320
        )
    }

    /// Every fetch carries the epoch of the fetcher's last record and the leader checks it
    /// (the first try of KIP-320, and today's Kafka).
    pub fn checks_divergence_in_fetch(self) -> bool {
        matches!(self, Truncation::Kip320FirstTry | Truncation::LeaderEpoch)
    }

    /// KAFKA-7128 (with KIP-320): a follower joins the ISR only once it has reached the
    /// start of the leader's current epoch, not only the leader's high watermark.
    pub fn isr_join_needs_epoch_start(self) -> bool {
        matches!(
            self,
            Truncation::Kip320FirstTry | Truncation::Kip320 | Truncation::LeaderEpoch
        )
    }
}

/// What the controller does with a broker that restarts (registers as a new incarnation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartedBroker {
    /// KRaft, and ZooKeeper since KIP-380 (Kafka 2.2): the old incarnation is fenced, which
    /// removes it from the ISR unless it is the last member; it rejoins by catching up.
    LeavesIsr,
    /// ZooKeeper before Kafka 2.2: a broker back within its session keeps its ISR membership.
    KeepsIsr,
}

/// When the leader may advance the high watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HwRule {
    /// Over whatever the ISR is (Kafka before 3.7).
    Isr,
    /// Only while the ISR has at least `min.insync.replicas` members (KIP-966, Kafka 3.7+).
    MinIsr,
}

/// When a broker's log reaches its disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flush {
    /// Every append is flushed before it is acknowledged or replicated.
    Always,
    /// The log reaches disk only when a flush timer fires; a crash loses the unflushed suffix.
    Async,
}

/// What the network may do to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    /// Per-connection FIFO, no loss (Kafka runs on TCP).
    Reliable,
    /// Per-connection FIFO, any message may be lost.
    Lossy,
    /// Unordered, and any message may be delivered again.
    Duplicating,
}

/// When the consumer commits its offset relative to processing a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerCommit {
    /// Process, then commit: at-least-once.
    After,
    /// Commit, then process: at-most-once.
    Before,
    /// The application commits the offsets it chooses (`enable.auto.commit=false` and
    /// `commitSync`). The model's application never commits, so a restarted consumer reads
    /// everything again; the engine's client API commits with `Cluster::commit`.
    Manual,
}

macro_rules! cli_enum {
    ($ty:ident { $($text:literal => $variant:ident),+ $(,)? }) => {
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown value '{s}', expected one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
        impl $ty {
            /// Every value, in the order the command line lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($ty::$variant => $text,)+ })
            }
        }
    };
}

cli_enum!(Acks { "0" => Zero, "1" => One, "all" => All });
cli_enum!(Truncation {
    "high-watermark" => HighWatermark,
    "kip-101" => Kip101,
    "kip-279" => Kip279,
    "kip-320-first-try" => Kip320FirstTry,
    "kip-320" => Kip320,
    "leader-epoch" => LeaderEpoch,
});
cli_enum!(RestartedBroker { "leaves-isr" => LeavesIsr, "keeps-isr" => KeepsIsr });
cli_enum!(HwRule { "isr" => Isr, "min-isr" => MinIsr });
cli_enum!(Flush { "always" => Always, "async" => Async });
cli_enum!(NetworkKind { "reliable" => Reliable, "lossy" => Lossy, "duplicating" => Duplicating });
cli_enum!(ConsumerCommit { "after" => After, "before" => Before, "manual" => Manual });

/// A rule Kafka added after a bug. `--without-guard` removes one, to show what it protects:
/// each removal makes the checker report a violation at the bounds its test names
/// (`impl/tests/guards.rs`, or a counterexample in `model/testdata/guards/`), or that test
/// shows why the model cannot break without it. A protocol mutant, never a Kafka
/// configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guard {
    /// KIP-320: a leader refuses a follower's fetch from another leader epoch.
    FetchEpochFencing,
    /// KIP-320: a follower ignores a fetch response from another leader epoch.
    FetchResponseFencing,
    /// A follower joins the ISR only once it has reached the leader's high watermark.
    IsrJoinHighWatermark,
    /// KAFKA-7128 (with KIP-320): a follower joins the ISR only once it has reached the start
    /// of the leader's current epoch.
    IsrJoinEpochStart,
    /// KIP-497: the high watermark counts the maximal ISR (pending additions included), not
    /// only the confirmed one.
    MaximalIsr,
    /// KIP-380: a `LeaderAndIsr` addressed to an earlier incarnation of a broker is ignored.
    Incarnation,
    /// A `LeaderAndIsr` for an older leader epoch is ignored.
    LeaderAndIsrEpoch,
    /// `NOT_ENOUGH_REPLICAS`: acks=all is refused before the append while the ISR is below
    /// min.insync.replicas.
    NotEnoughReplicas,
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`: an acks=all request whose records the high watermark
    /// has passed is answered with success only if the ISR still has min.insync.replicas
    /// members (Kafka's `Partition.checkEnoughReplicasReachOffset`).
    NotEnoughReplicasAfterAppend,
    /// KIP-903 (Kafka 3.5): the controller refuses an ISR addition whose broker epoch is not the
    /// broker's registered one, so a fetch sent before a restart cannot re-admit the broker.
    StaleBrokerEpoch,
}

cli_enum!(Guard {
    "fetch-epoch-fencing" => FetchEpochFencing,
    "fetch-response-fencing" => FetchResponseFencing,
    "isr-join-high-watermark" => IsrJoinHighWatermark,
    "isr-join-epoch-start" => IsrJoinEpochStart,
    "maximal-isr" => MaximalIsr,
    "incarnation" => Incarnation,
    "leader-and-isr-epoch" => LeaderAndIsrEpoch,
    "not-enough-replicas" => NotEnoughReplicas,
    "not-enough-replicas-after-append" => NotEnoughReplicasAfterAppend,
    "stale-broker-epoch" => StaleBrokerEpoch,
});

/// Most records the model's producer may send: values are small integers, and the state space
/// grows quickly with every record anyway.
pub const MODEL_RECORDS_MAX: u32 = 16;

/// The help heading of the flags that only bound or shape the model checker's search: the
/// engine's crashes, elections and network are real, so its commands refuse these flags.
pub const MODEL_BOUNDS: &str = "Model bounds";

/// A partition, its producer and consumer, and the bounds of a model check.
///
/// The one declaration of every knob: each field is a command-line flag (its doc comment is
/// the flag's help, its [`Default`] the flag's default), a key of the JSON reports, and what
/// the actors read (they hold the whole configuration, [`crate::node::ActorParams`] apart).
/// A new Kafka knob is a field here, its default, and the rule that reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::Args)]
// A field missing from a saved configuration (a case file, a report written before the
// field existed) has its default: the behaviour the file was written with.
#[serde(default)]
pub struct Config {
    /// replication.factor (1..=5).
    #[arg(long)]
    pub replicas: usize,
    /// min.insync.replicas.
    #[arg(long)]
    pub min_insync: usize,
    /// Producer acks: 0, 1 or all.
    #[arg(long)]
    pub acks: Acks,
    /// unclean.leader.election.enable.
    #[arg(long)]
    pub unclean_election: bool,
    /// The protocol generation of follower truncation, oldest first: high-watermark (before
    /// 0.11), kip-101 (0.11), kip-279 (2.0), kip-320-first-try, kip-320 (2.1), leader-epoch
    /// (today's Kafka).
    #[arg(long)]
    pub truncation: Truncation,
    /// What a broker restart does to its ISR membership: leaves-isr (KRaft, ZooKeeper since
    /// 2.2, KIP-380) or keeps-isr (ZooKeeper before 2.2).
    #[arg(long)]
    pub restarted_broker: RestartedBroker,
    /// KIP-966 eligible leader replicas (needs --hw-rule min-isr); `--elr false` turns off a
    /// --kafka release's.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub elr: bool,
    /// High-watermark rule: isr or min-isr (KIP-966).
    #[arg(long)]
    pub hw_rule: HwRule,
    /// Log flush policy: always or async.
    #[arg(long)]
    pub flush: Flush,
    /// Records the producer sends (`insync run`: 20000 unless given).
    #[arg(long)]
    pub records: u32,
    /// Crashes of brokers and the consumer over a whole run (the controller and the producer
    /// do not crash; the engine injects crashes with `insync run --faults`).
    #[arg(long, help_heading = MODEL_BOUNDS)]
    pub crashes: u32,
    /// Producer retries.
    #[arg(long)]
    pub retries: u32,
    /// enable.idempotence; `--idempotence false` turns off a --kafka release's.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// max.in.flight.requests.per.connection.
    #[arg(long)]
    pub max_in_flight: usize,
    /// The model's network: reliable (per-connection FIFO), lossy, or duplicating (the
    /// engine's network is real; `insync run --faults` disturbs it).
    #[arg(long, help_heading = MODEL_BOUNDS)]
    pub network: NetworkKind,
    /// Consumer commits its offset after or before processing a batch, or manual.
    #[arg(long)]
    pub consumer_commit: ConsumerCommit,
    /// Leader elections after the initial one (a bound on the leader epoch).
    #[arg(long, help_heading = MODEL_BOUNDS)]
    pub elections: u32,
    /// ISR changes (shrinks and expansions) beyond those elections make (a bound on the
    /// partition epoch).
    #[arg(long, help_heading = MODEL_BOUNDS)]
    pub isr_changes: u32,
    /// Leave the consumer out (a smaller state space).
    #[arg(long = "no-consumer", action = clap::ArgAction::SetFalse, help_heading = MODEL_BOUNDS)]
    pub consumer: bool,
    /// Explore without the checker's state-space reductions (to compare verdicts; slower).
    #[arg(long = "no-reductions", action = clap::ArgAction::SetFalse, help_heading = MODEL_BOUNDS)]
    pub reductions: bool,
    /// Remove one of Kafka's protocol rules, to see what it protects (a mutant, not a Kafka
    /// configuration): fetch-epoch-fencing, fetch-response-fencing, isr-join-high-watermark,
    /// isr-join-epoch-start, maximal-isr, incarnation, leader-and-isr-epoch,
    /// not-enough-replicas, not-enough-replicas-after-append, stale-broker-epoch.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_guard: Option<Guard>,
}

impl Default for Config {
    /// The defaults of `insync check` (PROTOCOL.md §4).
    fn default() -> Config {
        Config {
            replicas: 3,
            min_insync: 2,
            acks: Acks::All,
            unclean_election: false,
            truncation: Truncation::LeaderEpoch,
            hw_rule: HwRule::Isr,
            flush: Flush::Always,
            restarted_broker: RestartedBroker::LeavesIsr,
            elr: false,
            records: 2,
            crashes: 1,
            retries: 1,
            idempotence: false,
            max_in_flight: 1,
            network: NetworkKind::Reliable,
            consumer_commit: ConsumerCommit::After,
            elections: 1,
            isr_changes: 1,
            consumer: true,
            reductions: true,
            without_guard: None,
        }
    }
}

/// Why a configuration is refused. Each message names the problem in Kafka's words where Kafka
/// has them, and says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("replication factor ({0}) must be between 1 and {REPLICAS_MAX}; set --replicas in that range")]
    ReplicationFactor(usize),
    #[error("min.insync.replicas ({min_insync}) exceeds replication factor ({replicas}); lower --min-insync or raise --replicas")]
    MinInsyncAboveReplicas { min_insync: usize, replicas: usize },
    #[error("min.insync.replicas must be at least 1; set --min-insync 1 or more")]
    MinInsyncZero,
    #[error("Must set acks to all in order to use the idempotent producer; use --acks all or drop --idempotence")]
    IdempotenceNeedsAcksAll,
    #[error(
        "Must set retries to non-zero when using the idempotent producer; use --retries 1 or more"
    )]
    IdempotenceNeedsRetries,
    #[error("Must set max.in.flight.requests.per.connection to at most 5 to use the idempotent producer (got {0}); use --max-in-flight 5 or less")]
    IdempotenceInFlight(usize),
    #[error(
        "max.in.flight.requests.per.connection must be at least 1; set --max-in-flight 1 or more"
    )]
    MaxInFlightZero,
    #[error("records ({records}) must be between 1 and {max}; set --records in that range")]
    Records { records: u32, max: u32 },
    #[error("eligible leader replicas (KIP-966) need the min-isr high-watermark rule, which keeps every ELR member complete up to the high watermark; add --hw-rule min-isr or drop --elr")]
    ElrNeedsMinIsr,
}

/// A configuration that passed [`Config::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ValidConfig(Config);

impl Deref for ValidConfig {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.0
    }
}

impl ValidConfig {
    pub fn into_inner(self) -> Config {
        self.0
    }
}

impl Config {
    /// Whether Kafka's rule `g` is in force (it is, unless `--without-guard` removed it).
    pub fn guards(&self, g: Guard) -> bool {
        self.without_guard != Some(g)
    }

    /// Checks the combination, as Kafka checks topic and producer configs at creation.
    pub fn validate(self) -> Result<ValidConfig, ConfigError> {
        self.validate_with_records_max(MODEL_RECORDS_MAX)
    }

    /// As [`Config::validate`], for a runtime that allows more records than the model.
    pub fn validate_with_records_max(self, records_max: u32) -> Result<ValidConfig, ConfigError> {
        if self.replicas == 0 || self.replicas > REPLICAS_MAX {
            return Err(ConfigError::ReplicationFactor(self.replicas));
        }
        if self.min_insync == 0 {
            return Err(ConfigError::MinInsyncZero);
        }
        if self.min_insync > self.replicas {
            return Err(ConfigError::MinInsyncAboveReplicas {
                min_insync: self.min_insync,
                replicas: self.replicas,
            });
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::MaxInFlightZero);
        }
        if self.idempotence {
            if self.acks != Acks::All {
                return Err(ConfigError::IdempotenceNeedsAcksAll);
            }
            if self.retries == 0 {
                return Err(ConfigError::IdempotenceNeedsRetries);
            }
            if self.max_in_flight > 5 {
                return Err(ConfigError::IdempotenceInFlight(self.max_in_flight));
            }
        }
        if self.records == 0 || self.records > records_max {
            return Err(ConfigError::Records {
                records: self.records,
                max: records_max,
            });
        }
        if self.elr && self.hw_rule != HwRule::MinIsr {
            return Err(ConfigError::ElrNeedsMinIsr);
        }
        Ok(ValidConfig(self))
    }

    /// One line, as in the matrix: `rf=3 min.insync=2 acks=all`, then every other setting
    /// that differs from the defaults in the words of its flag (`flush=async`,
    /// `no-consumer`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "rf={} min.insync={} acks={}",
            self.replicas, self.min_insync, self.acks
        );
        for (flag, value) in self.differences() {
            if matches!(flag.as_str(), "replicas" | "min-insync" | "acks") {
                continue;
            }
            s.push(' ');
            s.push_str(&flag);
            if let Some(v) = value {
                s.push('=');
                s.push_str(&v);
            }
        }
        s
    }

    /// The `insync check` flags that give this configuration (those that differ from the
    /// defaults, in the order of `--help`): `insync check $(config.flags())` checks exactly
    /// it. Scenario files (`model/testdata`) write their configuration this way, so it can be
    /// pasted into a shell.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, value) in self.differences() {
            flags.push(format!("--{flag}"));
            flags.extend(value);
        }
        flags
    }

    /// Each setting that differs from [`Config::default`], as its flag's long name and, unless
    /// the flag alone says it (`--unclean-election`, `--no-consumer`, `--elr`), its value.
    /// Read from the flags' declarations, so a new field needs nothing here.
    fn differences(&self) -> Vec<(String, Option<String>)> {
        use clap::{ArgAction, Args};
        let json = |c: &Config| serde_json::to_value(c).expect("a configuration serializes");
        let (given, defaults) = (json(self), json(&Config::default()));
        let command = Config::augment_args(clap::Command::new("config"));
        let mut out = Vec::new();
        for arg in command.get_arguments() {
            let (Some(long), field) = (arg.get_long(), arg.get_id().as_str()) else {
                continue;
            };
            let value = &given[field];
            if value.is_null() || *value == defaults[field] {
                continue;
            }
            let shown = match (arg.get_action(), value) {
                (ArgAction::SetTrue | ArgAction::SetFalse, _) => None,
                (_, serde_json::Value::Bool(true)) => None,
                (_, serde_json::Value::String(s)) => Some(s.clone()),
                (_, other) => Some(other.to_string()),
            };
            out.push((long.to_string(), shown));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn min_insync_above_replicas_names_both() {
        let err = Config {
            min_insync: 4,
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("min.insync.replicas (4) exceeds replication factor (3)"));
    }

    #[test]
    fn idempotence_rules_follow_kafka() {
        let idem = Config {
            idempotence: true,
            ..Config::default()
        };
        assert!(idem.clone().validate().is_ok());
        let cases = [
            (
                Config {
                    acks: Acks::One,
                    ..idem.clone()
                },
                ConfigError::IdempotenceNeedsAcksAll,
            ),
            (
                Config {
                    retries: 0,
                    ..idem.clone()
                },
                ConfigError::IdempotenceNeedsRetries,
            ),
            (
                Config {
                    max_in_flight: 6,
                    ..idem.clone()
                },
                ConfigError::IdempotenceInFlight(6),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate().unwrap_err(), expected);
        }
    }

    /// A configuration saved before a field existed reads back with that field's default.
    #[test]
    fn a_saved_configuration_without_a_field_takes_its_default() {
        let mut json = serde_json::to_value(Config {
            replicas: 2,
            ..Config::default()
        })
        .expect("serializes");
        json.as_object_mut().expect("an object").remove("flush");
        let read: Config = serde_json::from_value(json).expect("reads");
        assert_eq!(read.flush, Config::default().flush);
        assert_eq!(read.replicas, 2);
    }

    /// The replication factor's range is Kafka's 1 up to the model's bit-set width
    /// (`REPLICAS_MAX`), both ends included, and a factor outside it is reported as such, not
    /// as a min.insync.replicas error that would send the user to the wrong flag.
    #[test]
    fn replication_factor_range_includes_both_ends() {
        let rf = |replicas| {
            Config {
                replicas,
                min_insync: 1,
                ..Config::default()
            }
            .validate()
        };
        assert!(rf(1).is_ok());
        assert!(rf(REPLICAS_MAX).is_ok());
        assert_eq!(rf(0).unwrap_err(), ConfigError::ReplicationFactor(0));
        assert_eq!(
            rf(REPLICAS_MAX + 1).unwrap_err(),
            ConfigError::ReplicationFactor(REPLICAS_MAX + 1)
        );
        assert_eq!(
            rf(0).unwrap_err().to_string(),
            "replication factor (0) must be between 1 and 5; set --replicas in that range"
        );
    }

    /// min.insync.replicas equal to the replication factor is a valid (if fragile) Kafka
    /// setting: every replica must be in sync. Only above it is refused.
    #[test]
    fn min_insync_may_equal_the_replication_factor() {
        let config = Config {
            min_insync: 3,
            ..Config::default()
        };
        assert!(config.validate().is_ok());
    }

    /// The model's record bound: 1 up to `MODEL_RECORDS_MAX` (both included), and the engine's
    /// larger bound through `validate_with_records_max`.
    #[test]
    fn records_range_includes_both_ends() {
        let records = |records| {
            Config {
                records,
                ..Config::default()
            }
            .validate()
        };
        assert!(records(1).is_ok());
        assert!(records(MODEL_RECORDS_MAX).is_ok());
        for n in [0, MODEL_RECORDS_MAX + 1] {
            assert_eq!(
                records(n).unwrap_err(),
                ConfigError::Records {
                    records: n,
                    max: MODEL_RECORDS_MAX
                }
            );
        }
        let many = Config {
            records: 20_000,
            ..Config::default()
        };
        assert!(many.clone().validate_with_records_max(20_000).is_ok());
        assert!(many.validate().is_err());
    }

    /// What a `ValidConfig` hands back (`into_inner`, as the engine's reports and case files
    /// save it) is the configuration that was validated, not a default.
    #[test]
    fn a_valid_configuration_gives_back_what_was_validated() {
        let config = Config {
            replicas: 2,
            min_insync: 1,
            flush: Flush::Async,
            ..Config::default()
        };
        let valid = config.clone().validate().expect("valid");
        assert_eq!(*valid, config);
        assert_eq!(valid.into_inner(), config);
    }

    /// The defaults need no flags and summarize as the matrix's plain
    /// `rf=3 min.insync=2 acks=all`; a setting at its default is never shown.
    #[test]
    fn the_defaults_need_no_flags() {
        let config = Config::default();
        assert!(config.flags().is_empty(), "{:?}", config.flags());
        assert_eq!(config.summary(), "rf=3 min.insync=2 acks=all");
    }

    /// `flags` is what scenario files (`model/testdata`) print as `config:` and what
    /// `insync check` accepts back: long names in `--help` order, a value unless the flag alone
    /// says it (`--unclean-election`, `--elr`, `--no-consumer`). `summary` is the matrix's
    /// one-line form of the same differences.
    #[test]
    fn flags_and_summary_show_the_differences_in_flag_words() {
        let config = Config {
            replicas: 2,
            min_insync: 1,
            acks: Acks::One,
            unclean_election: true,
            hw_rule: HwRule::MinIsr,
            elr: true,
            flush: Flush::Async,
            records: 3,
            consumer: false,
            without_guard: Some(Guard::MaximalIsr),
            ..Config::default()
        };
        assert_eq!(
            config.flags().join(" "),
            "--replicas 2 --min-insync 1 --acks 1 --unclean-election --elr --hw-rule min-isr \
             --flush async --records 3 --no-consumer --without-guard maximal-isr"
        );
        assert_eq!(
            config.summary(),
            "rf=2 min.insync=1 acks=1 unclean-election elr hw-rule=min-isr flush=async \
             records=3 no-consumer without-guard=maximal-isr"
        );
    }

    #[test]
    fn parse_cli_words() {
        assert_eq!("all".parse::<Acks>(), Ok(Acks::All));
        assert_eq!(
            "high-watermark".parse::<Truncation>(),
            Ok(Truncation::HighWatermark)
        );
        assert!("sometimes"
            .parse::<Flush>()
            .unwrap_err()
            .contains("always, async"));
    }
}
