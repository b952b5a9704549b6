//! The catalogue `insync check --matrix` runs: the seed chapter's examples and the safe
//! recommended configuration, each with the verdict it must reach.
//!
//! Bounds are chosen per scenario so that each one finishes in seconds on a 2-core machine
//! (see the README for the figures); a scenario meant to break a property stops at its first
//! counterexample.

use crate::config::{Acks, Config, ConsumerCommit, Flush, HwRule, RestartedBroker, Truncation};
use crate::properties::Property;

/// What a scenario must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every safety property holds and every listed `sometimes` property is reached.
    Safe { reached: &'static [Property] },
    /// The named safety property has a counterexample.
    Breaks(Property),
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// What the scenario shows, in one sentence.
    pub about: &'static str,
    pub config: Config,
    pub expect: Expect,
}

/// The built-in catalogue.
pub fn catalogue() -> Vec<Scenario> {
    let base = Config::default();
    // The smallest bounds that show a breaking scenario's loss: one record, no consumer, no
    // crash unless the loss needs one.
    let small = Config {
        records: 1,
        crashes: 0,
        consumer: false,
        ..base.clone()
    };
    let recommended = Config {
        idempotence: true,
        ..base.clone()
    };
    let rf2 = Config {
        replicas: 2,
        ..recommended.clone()
    };
    vec![
        Scenario {
            name: "recommended",
            about: "RF 3, min.insync 2, acks=all, idempotence, unclean off: leadership moves and failovers lose nothing",
            config: Config {
                records: 1,
                crashes: 0,
                consumer: false,
                isr_changes: 0,
                ..recommended.clone()
            },
            expect: Expect::Safe {
                reached: &[
                    Property::RecordCommitted,
                    Property::LeaderChanged,
                    Property::IsrShrunk,
                    Property::AckedAfterFailover,
                    Property::CommittedAfterFailover,
                ],
            },
        },
        Scenario {
            name: "recommended-crash",
            about: "the recommended settings (RF 2 to keep the search short) with a leader crash and restart",
            config: Config {
                records: 1,
                crashes: 1,
                consumer: false,
                ..rf2.clone()
            },
            expect: Expect::Safe {
                reached: &[Property::RecordCommitted, Property::LeaderChanged, Property::IsrShrunk, Property::AckedAfterFailover],
            },
        },
        Scenario {
            name: "recommended-consumer",
            about: "the recommended settings (RF 2) with a consumer committing after processing",
            config: Config {
                records: 1,
                crashes: 0,
                consumer: true,
                ..rf2
            },
            expect: Expect::Safe {
                reached: &[Property::RecordCommitted, Property::LeaderChanged, Property::ConsumerRead, Property::ConsumerCommitted],
            },
        },
        Scenario {
            name: "acks-1",
            about: "acks=1: the leader acknowledges, then fails before a follower copies the record",
            config: Config {
                acks: Acks::One,
                ..small.clone()
            },
            expect: Expect::Breaks(Property::AckedWritesDurable),
        },
        Scenario {
            name: "unclean-election",
            about: "unclean.leader.election.enable: an out-of-sync replica leads and committed records vanish",
            config: Config {
                unclean_election: true,
                min_insync: 1,
                ..small.clone()
            },
            expect: Expect::Breaks(Property::CommittedDurable),
        },
        Scenario {
            name: "no-retries",
            about: "acks=all, retries=0: a failover becomes a failed send the application must handle",
            config: Config {
                retries: 0,
                records: 1,
                crashes: 0,
                consumer: false,
                isr_changes: 0,
                ..base.clone()
            },
            expect: Expect::Safe {
                reached: &[Property::RecordCommitted, Property::LeaderChanged, Property::SendFailed],
            },
        },
        Scenario {
            name: "retries-no-idempotence",
            about: "retries without idempotence: a retried append is written twice",
            config: small.clone(),
            expect: Expect::Breaks(Property::NoDuplicates),
        },
        Scenario {
            name: "legacy-hw-truncation",
            about: "pre-0.11 truncation to the local high watermark (the KIP-101 data loss): a new follower cuts a committed record, then joins the ISR without it",
            config: Config {
                truncation: Truncation::HighWatermark,
                idempotence: true,
                elections: 2,
                ..small.clone()
            },
            expect: Expect::Breaks(Property::StrongIsr),
        },
        Scenario {
            name: "async-flush-zookeeper",
            about: "flush=async, ZooKeeper before 2.2 (a restarted broker keeps its ISR seat): an ISR member comes back without its unflushed, committed suffix",
            config: Config {
                flush: Flush::Async,
                restarted_broker: RestartedBroker::KeepsIsr,
                crashes: 1,
                ..small.clone()
            },
            expect: Expect::Breaks(Property::IsrComplete),
        },
        Scenario {
            name: "async-flush-last-replica",
            about: "flush=async, KRaft: the ISR shrinks to the leader, which commits, loses its unflushed suffix in a power loss, and leads again as the last ISR member",
            config: Config {
                flush: Flush::Async,
                crashes: 1,
                ..small.clone()
            },
            expect: Expect::Breaks(Property::CommittedDurable),
        },
        Scenario {
            name: "async-flush-elr",
            about: "flush=async with KIP-966 (ELR, min-isr high watermark), RF 2 and min.insync 2: nothing is committed below min.insync, and a restarted broker leaves the ISR and the ELR",
            // RF 2 and one election keep the exhaustive search to seconds (2.2 M states in
            // release); at RF 3 it does not finish in five minutes.
            config: Config {
                flush: Flush::Async,
                crashes: 1,
                elr: true,
                hw_rule: HwRule::MinIsr,
                isr_changes: 0,
                elections: 1,
                records: 1,
                consumer: false,
                ..rf2.clone()
            },
            expect: Expect::Safe {
                reached: &[Property::RecordCommitted, Property::LeaderChanged, Property::IsrShrunk],
            },
        },
        Scenario {
            name: "commit-before-processing",
            about: "the consumer commits, then crashes before processing: at-most-once",
            config: Config {
                consumer_commit: ConsumerCommit::Before,
                records: 1,
                isr_changes: 0,
                ..base
            },
            expect: Expect::Breaks(Property::ProcessedBeforeCommit),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> Scenario {
        catalogue()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no scenario {name}"))
    }

    /// Every row of `insync check --matrix` is a valid configuration under a name of its own
    /// (the name selects the row in `impl/tests/matrix.rs` and the scenario files), and the
    /// matrix holds both the safe recommendation and the seed examples that break.
    #[test]
    fn every_row_is_valid_and_named_once() {
        let rows = catalogue();
        let mut names: Vec<&str> = rows.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rows.len(), "a name is used twice");
        for s in &rows {
            assert!(s.config.clone().validate().is_ok(), "{}", s.name);
        }
        assert!(matches!(row("recommended").expect, Expect::Safe { .. }));
        assert_eq!(
            row("acks-1").expect,
            Expect::Breaks(Property::AckedWritesDurable)
        );
    }

    /// The recommended rows are the README's recommendation: acks=all with idempotence, and
    /// the two "same at rf=2" rows at replication factor 2 (which keeps their search short).
    #[test]
    fn recommended_rows_are_the_recommendation() {
        for name in ["recommended", "recommended-crash", "recommended-consumer"] {
            let c = row(name).config;
            assert!(c.acks == Acks::All && c.idempotence, "{name}");
        }
        assert_eq!(row("recommended").config.replicas, 3);
        assert_eq!(row("recommended-crash").config.replicas, 2);
        assert_eq!(row("recommended-consumer").config.replicas, 2);
    }

    /// A breaking row stops at its first counterexample, found at the smallest bounds that
    /// show the loss: one record, a consumer only when the property is about the consumer,
    /// a crash only when the loss needs one (an unflushed suffix, a consumer restart).
    #[test]
    fn breaking_rows_use_the_smallest_bounds() {
        for s in catalogue() {
            let Expect::Breaks(property) = s.expect else {
                continue;
            };
            let about_consumer = property == Property::ProcessedBeforeCommit;
            let needs_crash = s.config.flush == Flush::Async || about_consumer;
            assert_eq!(s.config.records, 1, "{}", s.name);
            assert_eq!(s.config.consumer, about_consumer, "{}", s.name);
            assert_eq!(s.config.crashes, u32::from(needs_crash), "{}", s.name);
        }
    }
}
