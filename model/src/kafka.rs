//! `--kafka VERSION`: the replication protocol and producer defaults of a named Kafka release,
//! so that a user can ask "is my 2.0 cluster safe?" without knowing which KIP changed what.
//!
//! Each field of [`Profile`] cites the change behind it. Explicit flags override a profile.

use crate::config::{Acks, Config, Guard, HwRule, RestartedBroker, Truncation};
use std::fmt;
use std::str::FromStr;

/// A Kafka release with its own replication and producer behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KafkaVersion {
    V0_10,
    V0_11,
    V2_0,
    V2_1,
    V2_8,
    V3_6,
    V4_0,
    V4_1,
}

impl KafkaVersion {
    pub const ALL: [KafkaVersion; 8] = [
        KafkaVersion::V0_10,
        KafkaVersion::V0_11,
        KafkaVersion::V2_0,
        KafkaVersion::V2_1,
        KafkaVersion::V2_8,
        KafkaVersion::V3_6,
        KafkaVersion::V4_0,
        KafkaVersion::V4_1,
    ];

    fn name(self) -> &'static str {
        match self {
            KafkaVersion::V0_10 => "0.10",
            KafkaVersion::V0_11 => "0.11",
            KafkaVersion::V2_0 => "2.0",
            KafkaVersion::V2_1 => "2.1",
            KafkaVersion::V2_8 => "2.8",
            KafkaVersion::V3_6 => "3.6",
            KafkaVersion::V4_0 => "4.0",
            KafkaVersion::V4_1 => "4.1",
        }
    }

    /// What this release does.
    pub fn profile(self) -> Profile {
        use KafkaVersion::*;
        Profile {
            // KIP-101 (0.11): truncation by leader epoch; KIP-279 (2.0): the epoch lookup
            // walks back through leader changes; KIP-320 (2.1): fetches carry the leader
            // epoch and are fenced by it; KIP-595's fetch-time divergence check serves
            // partition replication from inter-broker protocol 2.7 (KAFKA-10554), so from 2.8
            // here.
            truncation: match self {
                V0_10 => Truncation::HighWatermark,
                V0_11 => Truncation::Kip101,
                V2_0 => Truncation::Kip279,
                V2_1 => Truncation::Kip320,
                V2_8 | V3_6 | V4_0 | V4_1 => Truncation::LeaderEpoch,
            },
            // KIP-380 (2.2): the broker epoch fences a restarted broker's old incarnation,
            // which leaves the ISR; KRaft does the same.
            restarted_broker: if self >= V2_8 {
                RestartedBroker::LeavesIsr
            } else {
                RestartedBroker::KeepsIsr
            },
            // KIP-966 part 1 (4.0): the high watermark advances only with at least
            // min.insync.replicas in the ISR; ELR ships in 4.0 but is on by default only
            // for new clusters from 4.1 (eligible.leader.replicas.version=1).
            hw_rule: if self >= V4_0 {
                HwRule::MinIsr
            } else {
                HwRule::Isr
            },
            elr: self >= V4_1,
            // KIP-903 (3.5): the controller refuses an ISR addition with a stale broker epoch.
            stale_broker_epoch_check: self >= V3_6,
            // KIP-679 (3.0): acks=all and enable.idempotence=true become the producer's
            // defaults. Before, acks=1 and no idempotence.
            acks: if self >= V3_6 { Acks::All } else { Acks::One },
            idempotence: self >= V3_6,
            // KIP-91 (2.1): retries defaults to Integer.MAX_VALUE, bounded by
            // delivery.timeout.ms; the model bounds it at 1 retry per send. Before, 0.
            retries: if self >= V2_1 { 1 } else { 0 },
            // max.in.flight.requests.per.connection has defaulted to 5 throughout.
            max_in_flight: 5,
        }
    }
}

impl FromStr for KafkaVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        KafkaVersion::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = KafkaVersion::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "unknown Kafka version '{s}', expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for KafkaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The settings a release fixes: the broker's protocol generation and the producer's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub truncation: Truncation,
    pub restarted_broker: RestartedBroker,
    pub hw_rule: HwRule,
    pub elr: bool,
    pub stale_broker_epoch_check: bool,
    pub acks: Acks,
    pub idempotence: bool,
    pub retries: u32,
    pub max_in_flight: usize,
}

impl Profile {
    /// `config` with this profile's settings.
    pub fn apply(&self, config: Config) -> Config {
        Config {
            truncation: self.truncation,
            restarted_broker: self.restarted_broker,
            hw_rule: self.hw_rule,
            elr: self.elr,
            without_guard: if self.stale_broker_epoch_check {
                config.without_guard
            } else {
                Some(Guard::StaleBrokerEpoch)
            },
            acks: self.acks,
            idempotence: self.idempotence,
            retries: self.retries,
            max_in_flight: self.max_in_flight,
            ..config
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_a_valid_configuration() {
        for v in KafkaVersion::ALL {
            let config = v.profile().apply(Config::default());
            assert!(config.clone().validate().is_ok(), "{v}: {config:?}");
            assert_eq!(v.to_string().parse::<KafkaVersion>(), Ok(v));
        }
    }

    /// Each release's profile is the README's `--kafka` table row (truncation rung, restarted
    /// broker, high-watermark rule, ELR, KIP-903's check, then the producer's acks,
    /// idempotence, retries, max.in.flight), so the table and `--kafka` cannot drift apart.
    #[test]
    fn profiles_match_the_readme_table() {
        use KafkaVersion::*;
        use RestartedBroker::{KeepsIsr, LeavesIsr};
        use Truncation::*;
        let row =
            |truncation, restarted_broker, hw_rule, elr, kip_903, acks, idem, retries| Profile {
                truncation,
                restarted_broker,
                hw_rule,
                elr,
                stale_broker_epoch_check: kip_903,
                acks,
                idempotence: idem,
                retries,
                max_in_flight: 5,
            };
        let (isr, min_isr) = (HwRule::Isr, HwRule::MinIsr);
        let (one, all) = (Acks::One, Acks::All);
        let table = [
            (
                V0_10,
                row(HighWatermark, KeepsIsr, isr, false, false, one, false, 0),
            ),
            (
                V0_11,
                row(Kip101, KeepsIsr, isr, false, false, one, false, 0),
            ),
            (
                V2_0,
                row(Kip279, KeepsIsr, isr, false, false, one, false, 0),
            ),
            (
                V2_1,
                row(Kip320, KeepsIsr, isr, false, false, one, false, 1),
            ),
            (
                V2_8,
                row(LeaderEpoch, LeavesIsr, isr, false, false, one, false, 1),
            ),
            (
                V3_6,
                row(LeaderEpoch, LeavesIsr, isr, false, true, all, true, 1),
            ),
            (
                V4_0,
                row(LeaderEpoch, LeavesIsr, min_isr, false, true, all, true, 1),
            ),
            (
                V4_1,
                row(LeaderEpoch, LeavesIsr, min_isr, true, true, all, true, 1),
            ),
        ];
        assert_eq!(table.map(|(v, _)| v), KafkaVersion::ALL);
        for (v, expected) in table {
            assert_eq!(v.profile(), expected, "--kafka {v}");
        }
    }

    /// `apply` (the release layer of `--kafka`, over the contract's defaults) sets every
    /// setting the release fixes, leaves the bounds and the partition's shape as given, and
    /// removes KIP-903's check for a release before 3.5, as `--without-guard
    /// stale-broker-epoch` does.
    #[test]
    fn apply_sets_the_release_and_keeps_the_rest() {
        let given = Config {
            replicas: 2,
            min_insync: 1,
            records: 3,
            crashes: 0,
            ..Config::default()
        };
        for v in KafkaVersion::ALL {
            let p = v.profile();
            let c = p.apply(given.clone());
            assert_eq!(
                (c.truncation, c.restarted_broker, c.hw_rule, c.elr),
                (p.truncation, p.restarted_broker, p.hw_rule, p.elr),
                "--kafka {v}"
            );
            assert_eq!(
                (c.acks, c.idempotence, c.retries, c.max_in_flight),
                (p.acks, p.idempotence, p.retries, p.max_in_flight),
                "--kafka {v}"
            );
            assert_eq!(
                c.guards(Guard::StaleBrokerEpoch),
                p.stale_broker_epoch_check,
                "--kafka {v}"
            );
            assert_eq!(
                (c.replicas, c.min_insync, c.records, c.crashes),
                (2, 1, 3, 0),
                "--kafka {v}"
            );
        }
        let guarded = Config {
            without_guard: Some(Guard::Incarnation),
            ..Config::default()
        };
        assert_eq!(
            KafkaVersion::V4_1.profile().apply(guarded).without_guard,
            Some(Guard::Incarnation)
        );
    }

    #[test]
    fn an_unknown_version_names_the_known_ones() {
        let err = "2.3".parse::<KafkaVersion>().unwrap_err();
        assert!(
            err.contains("0.10, 0.11, 2.0, 2.1, 2.8, 3.6, 4.0, 4.1"),
            "{err}"
        );
    }
}
