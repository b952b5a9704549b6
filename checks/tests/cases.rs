//! Fuzzer findings and regressions kept as case files (`checks/testdata/cases/*.json`, see
//! `src/cases.rs`): every file replays, twice, to the verdict it expects.
//!
//! A file whose replay shows something else fails, named, with what changed. If the change
//! is intended (a fix, or a new behaviour of the engine), rewrite the expectations with
//! `INSYNC_REGEN=1 cargo test -p insync-checks --test cases` and review the diff.

use insync_checks::cases::{files, CaseFile, ABOUT_TODO};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases")
}

/// Whether this run rewrites the expectations (`INSYNC_REGEN=1`).
fn regenerating() -> bool {
    std::env::var_os("INSYNC_REGEN").is_some_and(|v| v != "0")
}

const REGEN: &str = "INSYNC_REGEN=1 cargo test -p insync-checks --test cases";

/// The directory holds case files, and each parses, says what it caught, has an expectation,
/// and is written as `INSYNC_REGEN=1` writes it (so a rewrite's diff shows only what changed).
/// A renamed or emptied directory fails here rather than replaying nothing.
#[test]
fn the_case_directory_holds_case_files_that_parse() {
    let paths = files(&dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        paths.len() >= 10,
        "{} holds only {} case files",
        dir().display(),
        paths.len()
    );
    if regenerating() {
        return;
    }
    for path in &paths {
        let name = path.display();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = CaseFile::parse(&text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(
            !file.about.is_empty() && !file.about.iter().any(|l| l.contains("TODO")),
            "{name}: `about` must say what the case caught (it says {:?})",
            file.about
        );
        assert!(
            file.expect.is_some(),
            "{name} has no `expect`; write it with {REGEN}"
        );
        assert!(
            text == file.render(),
            "{name} is not written as a rewrite writes it; rewrite it with {REGEN}"
        );
    }
}

/// Every case replays (twice, with identical histories) to what its file expects.
#[test]
fn every_case_file_replays_to_its_expected_verdict() {
    let paths = files(&dir()).unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = Vec::new();
    for path in &paths {
        let name = path.display();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut file = CaseFile::parse(&text).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let replayed = file
            .replay()
            .unwrap_or_else(|e| panic!("{name}: the replay failed: {e:#}"));
        if file.expect.as_ref() == Some(&replayed.shown) {
            // Written again even so: a new configuration field changes every file's text.
            if regenerating() && text != file.render() {
                std::fs::write(path, file.render()).unwrap_or_else(|e| panic!("{name}: {e}"));
                eprintln!("rewrote {name} (its expectation holds)");
            }
            continue;
        }
        if regenerating() {
            file.expect = Some(replayed.shown);
            if file.about.is_empty() {
                file.about.push(ABOUT_TODO.to_string());
            }
            std::fs::write(path, file.render()).unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!("rewrote {name}");
            continue;
        }
        wrong.push(format!(
            "{name}:\n  expected: {}\n  replayed: {}{}\nhistory:\n{}anomalies:\n{}",
            file.expect
                .as_ref()
                .map_or("nothing (no `expect`)".to_string(), |e| format!("{e:?}")),
            format_args!("{:?}", replayed.shown),
            replayed
                .nonconformance
                .map(|e| format!("\n  trace conformance: {e}"))
                .unwrap_or_default(),
            replayed.history,
            replayed
                .verdict
                .anomalies
                .iter()
                .map(|a| format!("  {a}\n"))
                .collect::<String>(),
        ));
    }
    assert!(
        wrong.is_empty(),
        "{} of {} case files replay to something else than they expect:\n\n{}\n\
         If the change is intended, rewrite the expectations with {REGEN} and review the diff \
         (and say why in the commit message).",
        wrong.len(),
        paths.len(),
        wrong.join("\n\n")
    );
}
