//! insync's model: Kafka-style replication of one partition as stateright actors.
//!
//! Brokers ([`broker`]), the controller ([`controller`]), a producer ([`producer`]) and a
//! consumer ([`consumer`]) are plain state machines: data in, commands out, no I/O. The same
//! actors run in the model checker ([`node::Insync::into_model`]) and in the real engine.
//! [`properties`] states Kafka's promises; [`config`] holds every knob.

pub mod broker;
pub mod config;
pub mod consumer;
pub mod controller;
pub mod kafka;
pub mod limits;
pub mod log;
pub mod msg;
pub mod node;
pub mod producer;
pub mod properties;
pub mod rules;
pub mod types;

pub use config::{Config, ConfigError, ValidConfig};
pub use node::{Insync, InsyncModel, InsyncState, Node};
pub mod scenarios;
pub mod symmetry;
pub mod system;
#[cfg(test)]
mod testkit;
pub mod trace;
