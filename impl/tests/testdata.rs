//! Replays every scenario file in `model/testdata` (see `common/testdata.rs` for the format):
//! KIP traces in `scenarios/`, and the shortest counterexample of each breaking matrix row in
//! `matrix/` (written by `tests/matrix.rs`). `INSYNC_REGEN=1` rewrites them from the model.

mod common;

use common::testdata::{check_file, root, ScenarioFile};
use insync_model::scenarios::catalogue;

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("model/testdata/{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_kip_scenario_replays_as_written() {
    let files = files("scenarios");
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        check_file(&file);
    }
}

#[test]
fn every_matrix_counterexample_replays_as_written() {
    let files = files("matrix");
    let breaking = catalogue()
        .into_iter()
        .filter(|s| matches!(s.expect, insync_model::scenarios::Expect::Breaks(_)))
        .count();
    assert_eq!(
        files.len(),
        breaking,
        "one file per breaking row: {files:?}"
    );
    for file in files {
        check_file(&file);
    }
}

#[test]
fn a_file_the_model_does_not_reproduce_fails_with_the_enabled_steps() {
    let text = std::fs::read_to_string(
        root().join("scenarios/acks-1-failover-loses-an-acknowledged-record.txt"),
    )
    .unwrap();
    // A step that is not enabled (broker 2 is elected, not 1) is named with what is.
    let wrong = text.replacen("elects broker 1 leader", "elects broker 7 leader", 1);
    let err = ScenarioFile::parse(&wrong)
        .unwrap()
        .replay(false)
        .unwrap_err();
    assert!(err.contains("step 3: no enabled step is"), "{err}");
    assert!(err.contains("elects broker 2 leader"), "{err}");
    // A wrong verdict is rewritten, so the file no longer matches.
    let file =
        ScenarioFile::parse(&text.replace("violated: acked-writes-durable", "violated: none"))
            .unwrap();
    assert_ne!(file.replay(false).unwrap(), file);
    // Malformed lines are named.
    for (bad, message) in [
        (
            "1. prod -> b0 Produce [v1] acks=1 req=0\n",
            "no `config:` line",
        ),
        ("config: --records 1\nprod -> b0\n", "line 2"),
        ("config: --records 1\nx. prod\n", "not a step number"),
        ("config: --acks 7\n1. a\n", "config:"),
    ] {
        let err = ScenarioFile::parse(bad).and_then(|f| f.replay(false).map(|_| ()));
        let err = err.unwrap_err();
        assert!(err.contains(message), "{bad:?}: {err}");
    }
}

/// Each field of the configuration, changed alone (from its default to another value),
/// comes back from the flags `Config::flags` writes for it. Read from the flags'
/// declarations, so a new field is covered without a change here: a number is raised by
/// one, a switch flipped, and a named value replaced by another of those the flag's parser
/// names when given a wrong one.
#[test]
fn flags_give_back_a_configuration_with_any_field_changed() {
    use clap::{Args, Parser};
    use insync_model::Config;
    use serde_json::Value;
    let d = Config::default();
    assert!(d.flags().is_empty(), "the defaults' flags: none");
    let defaults = serde_json::to_value(&d).expect("serializes");
    let command = Config::augment_args(clap::Command::new("config"));
    let mut covered = 0;
    for arg in command.get_arguments() {
        let (field, long) = (arg.get_id().as_str(), arg.get_long().expect("a long flag"));
        let changed = match &defaults[field] {
            Value::Bool(b) => Value::Bool(!b),
            Value::Number(n) => Value::from(n.as_u64().expect("a count") + 1),
            default => {
                let wrong = ["insync", "check", &format!("--{long}"), "no-such-value"];
                let err = insync::cli::Cli::try_parse_from(wrong).expect_err("refused");
                let text = err.to_string();
                let (_, names) = text
                    .split_once("expected one of: ")
                    .unwrap_or_else(|| panic!("--{long} names no values: {text}"));
                let other = names
                    .split([',', '\n'])
                    .map(str::trim)
                    .find(|v| !v.is_empty() && Some(*v) != default.as_str())
                    .expect("another value");
                Value::from(other)
            }
        };
        let mut json = defaults.clone();
        json[field] = changed;
        let config: Config = serde_json::from_value(json).expect("a configuration");
        assert_ne!(config, d, "{field}");
        let file = ScenarioFile {
            flags: config.flags(),
            lines: Vec::new(),
        };
        assert_eq!(file.config(), Ok(config), "{field}: {:?}", file.flags);
        covered += 1;
    }
    assert!(covered >= 20, "only {covered} fields");
}

#[test]
fn flags_give_back_every_catalogue_configuration() {
    for s in catalogue() {
        let flags = s.config.flags();
        let file = ScenarioFile {
            flags: flags.clone(),
            lines: Vec::new(),
        };
        assert_eq!(
            file.config().as_ref(),
            Ok(&s.config),
            "{}: {flags:?}",
            s.name
        );
    }
}
