//! Generated operation histories against the real engine, and a history checker that names
//! anomalies (issue 4).
//!
//! - [`history`]: what clients saw, Jepsen-style (invocations and completions).
//! - [`checker`]: names the anomalies a history shows (`lost-write`, `duplicate`, ...).
//! - [`plan`]: client operations, faults and pauses, with preconditions.
//! - [`runner`]: runs a plan against a fresh in-process engine and records the history.
//! - [`strategy`]: proptest strategies for plans, configurations and cases.
//! - [`replay`]: trace conformance of a recorded engine run through the model's actors.
//! - [`fuzz`]: generate, run, check, shrink and save; the library behind `insync-fuzz`.
//! - [`cases`]: fuzzer findings kept as case files that CI replays (`testdata/cases/`).
//! - [`timeline`]: a history drawn as a Jepsen-style timeline, one self-contained HTML page.

// The history and its checker live in `insync` (below `insync run`, the history runner and
// the benchmarks alike), re-exported here under their old paths.
pub use insync::{checker, history};
pub mod cases;
pub mod fuzz;
pub mod plan;
pub mod replay;
pub mod runner;
pub mod strategy;
pub mod timeline;
