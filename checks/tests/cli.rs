//! The `insync-fuzz` binary: clear errors for bad input, a summary table, saved cases that
//! replay.

use std::process::Command;

fn fuzz(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_insync-fuzz"))
        .args(args)
        .output()
        .expect("insync-fuzz runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_invalid_configuration_is_one_clear_line_and_exit_code_2() {
    let (code, stdout, stderr) = fuzz(&["--min-insync", "4", "--cases", "1"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("INVALID_CONFIG: min.insync.replicas (4) exceeds replication factor (3)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, _, stderr) = fuzz(&["--cases", "0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("set --cases"), "{stderr}");
    let (code, _, stderr) = fuzz(&["--acks", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("acks"), "{stderr}");
    let (code, _, stderr) = fuzz(&["replay", "/nonexistent/case.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/case.json"), "{stderr}");
}

/// The help says what the command does, under the name a user types (`insync fuzz`), not
/// the configuration type's documentation.
#[test]
fn the_help_describes_the_command() {
    let (code, stdout, _) = fuzz(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("Run generated histories"), "{stdout}");
    assert!(stdout.contains("Usage: insync fuzz [OPTIONS]"), "{stdout}");
    assert!(!stdout.contains("declaration of every knob"), "{stdout}");
}

#[test]
fn acks_1_finds_a_lost_write_saves_it_and_replays_it() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("insync-fuzz-cli");
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().expect("a UTF-8 path");
    let (code, stdout, stderr) =
        fuzz(&["--acks", "1", "--cases", "30", "--seed", "0", "--out", out]);
    assert_eq!(code, 1, "anomalies found: {stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("lost-write"))
        .expect("a lost-write row");
    // The row names the first case that showed the anomaly; its replayable case sits next to
    // its timeline.
    let timeline = row
        .split_whitespace()
        .last()
        .filter(|p| p.ends_with(".timeline.txt"))
        .unwrap_or_else(|| panic!("a timeline path in {row}"));
    let case = std::path::PathBuf::from(timeline.replace(".timeline.txt", ".case.json"));
    assert!(case.starts_with(&dir), "{row}");
    // The one command that keeps the finding as a case file CI replays.
    let stem = case
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".case.json"))
        .and_then(|n| n.split_once("-case"))
        .map(|(kind, index)| format!("{kind}-seed0-case{index}"))
        .expect("a case file name");
    let keep = format!(
        "cp {} checks/testdata/cases/{stem}.json && INSYNC_REGEN=1 cargo test -p insync-checks --test cases",
        case.display()
    );
    assert!(stdout.contains(&keep), "no `{keep}` in:\n{stdout}");
    let (code, stdout, _) = fuzz(&["replay", case.to_str().expect("UTF-8")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("run 2: lost-write reproduced"), "{stdout}");
    assert!(
        stdout.contains("trace conformance: the engine's"),
        "{stdout}"
    );
    // The engine's own steps, for when the history does not say why.
    let (_, stdout, _) = fuzz(&[
        "replay",
        case.to_str().expect("UTF-8"),
        "--times",
        "1",
        "--trace",
        "--to-ms",
        "5000",
    ]);
    let trace = stdout
        .split("engine trace")
        .nth(1)
        .unwrap_or_else(|| panic!("no trace printed:\n{stdout}"));
    assert!(trace.contains("<- prod Produce"), "{trace}");
    assert!(trace.contains("<- app Send"), "{trace}");
    let last_ms = trace
        .lines()
        .filter_map(|l| l.trim().split("ms").next()?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    assert!(last_ms <= 5000.0, "--to-ms bounds the trace: {trace}");
    let (code, _, stderr) = fuzz(&["replay", case.to_str().expect("UTF-8"), "--to-ms", "5"]);
    assert_eq!(
        code, 2,
        "a window without --trace is a usage error: {stderr}"
    );
}

/// A case file of `checks/testdata/cases` is a saved case too: `replay` runs it as it is.
#[test]
fn a_case_file_replays_as_a_saved_case() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/cases/lost-write-unclean-election.json");
    let (code, stdout, stderr) = fuzz(&["replay", file.to_str().expect("UTF-8")]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("run 2: lost-write reproduced"), "{stdout}");
}
