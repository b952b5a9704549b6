//! The errors a command reports to its user, and the one place they become exit codes
//! (PROTOCOL.md §4).
//!
//! Each layer has its own `thiserror` enum: [`UsageError`] here for flags, files and
//! configurations a command cannot run with; [`crate::disk::DiskError`] for a data directory;
//! [`crate::runtime::StorageError`] for the runtime's storage backends (a disk error converts
//! into it). They travel to `main` as `anyhow::Error`s, and [`exit_code`] finds them by type.

use insync_model::config::ConfigError;

/// Bad usage: flags, files or a configuration a command cannot run with (exit code 2). Its text
/// starts with `INVALID_CONFIG`, PROTOCOL.md's name for it, which users and tests look for.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Refused for the reason given (printed as `INVALID_CONFIG: <reason>`).
    #[error("INVALID_CONFIG: {0}")]
    InvalidConfig(String),
    /// A configuration the model refuses; the reason is the source, so `{:#}` (as `main`
    /// prints errors) reads `INVALID_CONFIG: <reason>`.
    #[error("INVALID_CONFIG")]
    Config(#[source] ConfigError),
}

/// Exit code of bad usage or an invalid configuration (PROTOCOL.md §4).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of any other failure that ends a command (an I/O error, storage that refuses to
/// start, a lost cluster): PROTOCOL.md gives it no code of its own, so it shares 2 with bad
/// usage, as it always has.
pub const EXIT_FAILED: u8 = 2;

/// The exit code of a command that ended with `error`. Commands that finish return their own
/// code (a verdict); this is the one place an error becomes one.
#[must_use]
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<UsageError>()) {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_keep_their_text_and_exit_2() {
        let e = anyhow::Error::from(UsageError::InvalidConfig("--walks 0 takes no walk".into()));
        assert_eq!(format!("{e:#}"), "INVALID_CONFIG: --walks 0 takes no walk");
        assert_eq!(exit_code(&e), EXIT_USAGE);
        let refused = insync_model::Config {
            min_insync: 4,
            ..insync_model::Config::default()
        }
        .validate()
        .map_err(UsageError::Config)
        .unwrap_err();
        let e = anyhow::Error::from(refused).context("scenario x");
        assert_eq!(
            format!("{e:#}"),
            "scenario x: INVALID_CONFIG: min.insync.replicas (4) exceeds replication factor (3); \
             lower --min-insync or raise --replicas"
        );
        assert_eq!(exit_code(&e), EXIT_USAGE);
    }
}
