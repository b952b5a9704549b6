//! Generated operation histories against the real engine, and a history checker that names
//! anomalies (issue 4).
//!
//! - [`history`]: what clients saw, Jepsen-style (invocations and completions).
//! - [`checker`]: names the anomalies a history shows (`lost-write`, `duplicate`, ...).

pub mod checker;
pub mod history;
