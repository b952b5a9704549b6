//! The `insync` command line and the code behind it: model checking a configuration
//! ([`check`]), the matrix of built-in scenarios, and the Explorer.

pub mod auth;
pub mod budget;
pub mod check;
pub mod checker;
pub mod cli;
pub mod disk;
pub mod engine;
pub mod error;
pub mod explore;
pub mod history;
pub mod kafka;
pub mod matrix;
pub mod run;
pub mod runtime;
pub mod simulate;
pub mod tcp;
pub mod wire;
