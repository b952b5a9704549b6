//! The command-line contract of PROTOCOL.md §4: exit codes, errors, and the JSON object.

use std::process::Command;

fn insync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(args)
        .output()
        .expect("the insync binary runs")
}

#[test]
fn invalid_configuration_exits_2_with_kafka_wording() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["check", "--min-insync", "4"],
            "min.insync.replicas (4) exceeds replication factor (3)",
        ),
        (
            &["check", "--replicas", "0"],
            "replication factor (0) must be between 1 and 5",
        ),
        (
            &["check", "--idempotence", "--acks", "1"],
            "Must set acks to all in order to use the idempotent producer",
        ),
        (
            &["check", "--idempotence", "--retries", "0"],
            "Must set retries to non-zero when using the idempotent producer",
        ),
        (
            &["check", "--idempotence", "--max-in-flight", "6"],
            "at most 5 to use the idempotent producer",
        ),
        (
            &["check", "--records", "0"],
            "records (0) must be between 1 and 16",
        ),
    ];
    for (args, message) in cases {
        let out = insync(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("INVALID_CONFIG"), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let out = insync(&["check", "--acks", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected one of: 0, 1, all"), "{stderr}");
}

#[test]
fn json_report_has_the_documented_shape_and_exit_1_on_violation() {
    let out = insync(&[
        "check",
        "--json",
        "--acks",
        "1",
        "--records",
        "1",
        "--crashes",
        "0",
        "--no-consumer",
        "--strategy",
        "bfs",
        "--first",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "acks=1 loses an acknowledged record"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["config"]["replicas"], 3);
    assert_eq!(report["config"]["min_insync"], 2);
    assert_eq!(report["config"]["acks"], "1");
    for field in ["states", "unique_states", "max_depth", "seconds"] {
        assert!(report[field].is_number(), "{field} missing");
    }
    let names: Vec<&str> = report["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    for name in [
        "acked-writes-durable",
        "committed-read",
        "log-matching",
        "isr-complete",
        "leader-in-isr",
        "no-duplicates",
        "producer-order",
        "processed-before-commit",
        "record-committed",
        "leader-changed",
        "isr-shrunk",
        "consumer-read",
    ] {
        assert!(
            names.contains(&name),
            "property {name} missing from {names:?}"
        );
    }
    let durable = &report["properties"][0];
    assert_eq!(durable["name"], "acked-writes-durable");
    assert_eq!(durable["expectation"], "always");
    assert_eq!(durable["holds"], false);
    let steps = durable["counterexample"]
        .as_array()
        .expect("a counterexample");
    assert!(steps.iter().any(|s| s
        .as_str()
        .unwrap()
        .contains("prod -> b0 Produce [v1] acks=1")));
    assert!(steps
        .iter()
        .any(|s| s.as_str().unwrap().contains("v1 acknowledged at offset 0")));
    assert!(steps
        .iter()
        .any(|s| s.as_str().unwrap().contains("controller elects broker")));
    // Added for `insync explore --path`: the Explorer's action indices, one per step after the
    // initial state's.
    let explorer_path = durable["explorer_path"].as_str().expect("an explorer_path");
    assert_eq!(
        explorer_path.split('/').count(),
        steps.len() + 1,
        "{explorer_path}"
    );
    let holds = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "leader-in-isr")
        .unwrap();
    assert!(holds["counterexample"].is_null());
}

#[test]
fn safe_configuration_exits_0_with_human_table() {
    let out = insync(&[
        "check",
        "--replicas",
        "2",
        "--min-insync",
        "1",
        "--records",
        "1",
        "--crashes",
        "0",
        "--no-consumer",
        "--idempotence",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("acked-writes-durable       always     holds"),
        "{stdout}"
    );
    assert!(
        stdout.contains("every safety property holds for every behaviour with at most 1 record, 0 broker crashes"),
        "{stdout}"
    );
}

/// The default configuration is far too large to exhaust in a second: the deadline must end
/// the search (stateright's own timeout does not stop a one-thread DFS) and the report must
/// not claim a proof.
#[test]
fn timeout_ends_a_search_and_reports_it_incomplete() {
    let out = insync(&[
        "check",
        "--strategy",
        "dfs",
        "--threads",
        "1",
        "--timeout",
        "1",
        "--idempotence",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no violation in a cut-short search exits 3, never 0"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], false);
    assert_eq!(report["cut_short"], "timeout");
    assert_eq!(report["bounds"]["records"], 2);
    assert_eq!(report["bounds"]["crashes"], 1);
    assert!(report["unique_states"].as_u64().unwrap() > 0);

    let human = insync(&["check", "--threads", "1", "--timeout", "1", "--idempotence"]);
    assert_eq!(human.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert!(
        stdout.contains("not refuted (search incomplete)")
            && stdout.contains("cut short (the timeout passed)")
            && stdout.contains("at most 2 records, 1 broker crash"),
        "{stdout}"
    );
}

#[test]
fn simulation_runs_a_budget_of_random_walks() {
    let out = insync(&[
        "check",
        "--strategy",
        "simulation",
        "--seed",
        "7",
        "--max-states",
        "20000",
        "--json",
        "--idempotence",
    ]);
    assert_eq!(out.status.code(), Some(3), "a sample is no proof");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["cut_short"], "simulation");
    assert_eq!(
        report["complete"], false,
        "random walks never prove a property"
    );
    assert!(report["states"].as_u64().unwrap() >= 20000);
}

/// The report of `insync check --strategy simulation ... --json` with `extra` flags.
fn walks_report(config: &[&str], extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec![
        "check",
        "--strategy",
        "simulation",
        "--seed",
        "11",
        "--json",
    ];
    args.extend_from_slice(config);
    args.extend_from_slice(extra);
    let out = insync(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// What a run found, without its timing: states, depth, and each property's verdict, walk and
/// steps.
fn findings(report: &serde_json::Value) -> serde_json::Value {
    let properties: Vec<serde_json::Value> = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            serde_json::json!([
                p["name"],
                p["holds"],
                p["walk"],
                p["counterexample"],
                p["example"]
            ])
        })
        .collect();
    serde_json::json!({
        "states": report["states"],
        "max_depth": report["max_depth"],
        "walks": report["walks"]["shards"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        "properties": properties,
    })
}

const BREAKS: &[&str] = &["--acks", "1", "--records", "1"];

#[test]
fn random_walks_are_numbered_so_the_thread_count_does_not_change_the_run() {
    let (code1, one) = walks_report(BREAKS, &["--walks", "400", "--threads", "1"]);
    let (code2, two) = walks_report(BREAKS, &["--walks", "400", "--threads", "2"]);
    assert_eq!(code1, Some(1), "acks=1 loses a record within 400 walks");
    assert_eq!(code2, Some(1));
    assert_eq!(findings(&one), findings(&two));
    let lost = one["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "acked-writes-durable")
        .unwrap();
    assert!(lost["walk"].is_u64(), "{lost}");
}

#[test]
fn shards_of_a_run_merge_into_the_report_of_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    for (config, code) in [(BREAKS, 1), (&["--records", "1", "--idempotence"][..], 3)] {
        let (whole_code, whole) = walks_report(config, &["--walks", "300"]);
        assert_eq!(whole_code, Some(code), "{config:?}");
        let mut files = Vec::new();
        for i in 0..3 {
            let shard = format!("{i}/3");
            let (c, report) = walks_report(config, &["--walks", "300", "--shard", &shard]);
            assert!(c == Some(1) || c == Some(3), "{shard}: {c:?}");
            assert_eq!(report["walks"]["shards"][i.to_string()], 100, "{shard}");
            let file = dir.path().join(format!("shard-{i}.json"));
            std::fs::write(&file, report.to_string()).unwrap();
            files.push(file.display().to_string());
        }
        let mut args = vec!["merge", "--json"];
        args.extend(files.iter().map(String::as_str));
        let out = insync(&args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let merged: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(findings(&merged), findings(&whole), "{config:?}");
        assert_eq!(merged["complete"], false);

        // Two of three shards: merged, and the human report names the missing one.
        let out = insync(&["merge", &files[0], &files[2]]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("missing shards: 1 of 3"), "{stdout}");
    }
}

#[test]
fn merge_refuses_reports_that_are_not_shards_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, config: &[&str], extra: &[&str]| {
        let (_, report) = walks_report(config, extra);
        let file = dir.path().join(name);
        std::fs::write(&file, report.to_string()).unwrap();
        file.display().to_string()
    };
    let a = write("a.json", BREAKS, &["--walks", "20", "--shard", "0/2"]);
    let other_config = write(
        "b.json",
        &["--records", "1"],
        &["--walks", "20", "--shard", "1/2"],
    );
    let other_count = write("c.json", BREAKS, &["--walks", "20", "--shard", "1/3"]);
    let again = write("d.json", BREAKS, &["--walks", "20", "--shard", "0/2"]);
    let garbage = dir.path().join("e.json");
    std::fs::write(&garbage, "{\"states\": 1}").unwrap();
    let garbage = garbage.display().to_string();
    let out = insync(&[
        "check",
        "--records",
        "1",
        "--json",
        "--max-states",
        "100",
        "--strategy",
        "dfs",
    ]);
    let dfs = dir.path().join("f.json");
    std::fs::write(&dfs, &out.stdout).unwrap();
    let dfs = dfs.display().to_string();
    for (files, message) in [
        (vec![&a, &other_config], "configuration"),
        (vec![&a, &other_count], "shard count"),
        (vec![&a, &again], "shard 0/2 is also in"),
        (vec![&a, &garbage], "is not a JSON report"),
        (vec![&dfs], "not a report of random walks"),
    ] {
        let mut args = vec!["merge"];
        args.extend(files.iter().map(|f| f.as_str()));
        let out = insync(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{files:?}: {stderr}");
        assert!(stderr.contains(message), "{files:?}: {stderr}");
    }
    for args in [
        &["check", "--walks", "5"][..],
        &["check", "--shard", "1/2", "--strategy", "dfs"],
        &["check", "--strategy", "simulation", "--shard", "2/2"],
        &["check", "--strategy", "simulation", "--walks", "0"],
    ] {
        let out = insync(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn run_on_a_virtual_clock_gives_the_same_outcome_every_time() {
    let args = [
        "run",
        "--acks",
        "1",
        "--faults",
        "crash-leader",
        "--records",
        "50000",
        "--seed",
        "4",
        "--virtual-clock",
        "--json",
    ];
    let runs: Vec<(Option<i32>, serde_json::Value)> = (0..3)
        .map(|_| {
            let out = insync(&args);
            let report = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
            (out.status.code(), report)
        })
        .collect();
    let (code, first) = &runs[0];
    assert_eq!(
        *code,
        Some(1),
        "acks=1 and a leader crash lose records here: {first}"
    );
    assert_eq!(first["lost"], 500, "{first}");
    // The history checker's verdict on the run, whose lost-write count is `lost`.
    assert_eq!(first["verdict"]["counts"]["lost-write"], 500, "{first}");
    assert_eq!(first["virtual_clock"], true);
    for (c, report) in &runs[1..] {
        assert_eq!(c, code);
        // Everything, timing included: the clock is virtual.
        assert_eq!(report, first);
    }
    for (flag, value) in [("--connect", None), ("--data-dir", Some("/tmp/x"))] {
        let mut args = vec!["run", "--virtual-clock", flag];
        args.extend(value);
        let out = insync(&args);
        assert_eq!(out.status.code(), Some(2), "{flag}");
    }
}

#[test]
fn run_rejects_the_same_invalid_configurations_as_check() {
    for (args, message) in [
        (
            vec!["run", "--min-insync", "4"],
            "min.insync.replicas (4) exceeds replication factor (3)",
        ),
        (
            vec!["run", "--idempotence", "--acks", "1"],
            "Must set acks to all in order to use the idempotent producer",
        ),
        (
            vec!["run", "--records", "0"],
            "records (0) must be between 1",
        ),
    ] {
        let out = insync(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// Flags that only bound the model's search would be silently ignored by the engine; a
/// record size out of range would be silently raised or abort on allocation.
#[test]
fn run_refuses_model_only_flags_and_bounds_the_record_size() {
    for (args, message) in [
        (vec!["run", "--network", "lossy"], "--network only bounds"),
        (
            vec!["run", "--network", "duplicating"],
            "--network only bounds",
        ),
        (
            vec!["run", "--crashes", "3", "--elections", "2"],
            "--crashes, --elections only bound",
        ),
        (vec!["run", "--isr-changes", "0"], "--isr-changes"),
        (
            vec!["run", "--no-reductions", "--no-consumer"],
            "--no-consumer, --no-reductions only bound or shape",
        ),
        (
            vec!["run", "--record-size", "8"],
            "--record-size 8 must be between 16",
        ),
        (
            vec!["run", "--record-size", "100000000000"],
            "id) and 1048576 (message.max.bytes",
        ),
        (
            vec!["run", "--records", "100000000", "--record-size", "1000000"],
            "lower --records or --record-size",
        ),
        (
            vec!["run", "--connect", "--record-size", "1048577"],
            "id) and 1048576",
        ),
        (
            vec!["broker", "--id", "0", "--network", "lossy"],
            "`insync broker` runs the real engine",
        ),
    ] {
        let out = insync(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The model checker still takes them.
    let out = insync(&[
        "check",
        "--network",
        "lossy",
        "--crashes",
        "0",
        "--records",
        "1",
    ]);
    assert_ne!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `insync run --data-dir` formats an empty directory itself, warns without KIP-966, and
/// refuses a directory formatted for a broker. (Reopening its own directory is `file_backed_cluster_recovers_from_its_segments`
/// in tests/engine.rs; a second `insync run` on it is not checked here, since the controller
/// is not durable and a rerun does not always elect a leader, with or without this change.)
#[test]
fn run_formats_an_empty_data_dir_and_refuses_a_brokers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let own = dir.path().join("run");
    let own_arg = own.to_str().expect("utf-8 path");
    let out = insync(&["run", "--records", "300", "--json", "--data-dir", own_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::read_to_string(own.join("meta.json")).expect("meta.json");
    assert!(meta.contains("in-process"), "{meta}");
    // Without KIP-966 the start says, once, what a data directory cannot promise; with
    // Kafka 4.1's defaults (ELR on) it has nothing to say.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("a data directory without KIP-966").count(),
        1,
        "{stderr}"
    );
    let elr = dir.path().join("elr");
    let elr_arg = elr.to_str().expect("utf-8 path");
    let out = insync(&[
        "run",
        "--kafka",
        "4.1",
        "--records",
        "300",
        "--json",
        "--data-dir",
        elr_arg,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("without KIP-966"), "{stderr}");

    let broker = dir.path().join("broker");
    let broker_arg = broker.to_str().expect("utf-8 path");
    let out = insync(&[
        "format",
        "--data-dir",
        broker_arg,
        "--cluster-id",
        "c1",
        "--node-id",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = insync(&["run", "--records", "300", "--data-dir", broker_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is formatted for broker 0"), "{stderr}");
}

#[test]
fn run_reports_no_loss_with_default_flags_as_json() {
    let out = insync(&["run", "--records", "3000", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["acknowledged"], 3000);
    assert_eq!(report["lost"], 0);
    assert!(report["ack_latency"]["p99_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn an_unknown_command_names_itself_and_the_fix() {
    let out = insync(&["frobnicate", "--x"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown command `frobnicate`") && stderr.contains("insync-frobnicate"),
        "{stderr}"
    );
}

/// `--kafka VERSION` sets a release's protocol and producer defaults; explicit flags win, and
/// an explicit acks=1 turns off idempotence that was only the release's default (KAFKA-13598).
#[test]
fn kafka_release_profiles_set_defaults_that_flags_override() {
    let small = ["--records", "1", "--crashes", "0", "--no-consumer"];
    let run = |extra: &[&str]| {
        let mut args = vec!["check", "--strategy", "bfs", "--first", "--json"];
        args.extend_from_slice(&small);
        args.extend_from_slice(extra);
        let out = insync(&args);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report["config"].clone())
    };
    let (code, old) = run(&["--kafka", "0.10"]);
    assert_eq!(code, Some(1), "0.10's acks=1 loses an acknowledged record");
    assert_eq!(old["truncation"], "high-watermark");
    assert_eq!(old["restarted_broker"], "keeps-isr");
    assert_eq!(old["acks"], "1");
    assert_eq!(old["retries"], 0);

    let (_, overridden) = run(&[
        "--kafka",
        "0.10",
        "--truncation",
        "kip-320",
        "--acks",
        "all",
        "--max-states",
        "1000",
    ]);
    assert_eq!(overridden["truncation"], "kip-320");
    assert_eq!(overridden["acks"], "all");
    assert_eq!(overridden["restarted_broker"], "keeps-isr");

    let (_, new) = run(&["--kafka", "4.1", "--max-states", "1000"]);
    assert_eq!(new["elr"], true);
    assert_eq!(new["hw_rule"], "min-isr");
    assert_eq!(new["idempotence"], true);

    let (_, acks_1) = run(&["--kafka", "3.6", "--acks", "1", "--max-states", "1000"]);
    assert_eq!(acks_1["idempotence"], false);

    let bad = insync(&["check", "--kafka", "2.3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected one of: 0.10, 0.11, 2.0"));
}

/// With no strategy flag, a shallow violation is found breadth first before the depth-first
/// search could wander off: acks=1 exits 1 with the loss.
#[test]
fn the_default_strategy_finds_a_shallow_violation_first() {
    let out = insync(&["check", "--acks", "1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["strategy"], "auto");
    let lost = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "acked-writes-durable")
        .unwrap();
    assert_eq!(lost["holds"], false);
}

fn json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

#[test]
fn budget_deepens_to_the_asked_scope_and_exits_0_when_it_finishes() {
    let out = insync(&[
        "check",
        "--replicas",
        "2",
        "--min-insync",
        "1",
        "--records",
        "1",
        "--crashes",
        "1",
        "--no-consumer",
        "--idempotence",
        "--budget",
        "10m",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let deepening = &report["deepening"];
    assert_eq!(deepening["reached_target"], true);
    let scopes = deepening["scopes"].as_array().expect("scopes");
    // (0 elections, 0 crashes, 0 ISR changes), then one bound raised at a time.
    assert_eq!(scopes.len(), 4);
    let counts: Vec<u64> = scopes
        .iter()
        .map(|s| s["unique_states"].as_u64().expect("count"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
    // The last scope is the whole check: the pinned count of model/tests/pinned.rs.
    assert_eq!(report["unique_states"], 42676);
    assert_eq!(report["complete"], true);
    assert_eq!(deepening["largest_complete"], report["bounds"]);
}

#[test]
fn budget_stops_at_the_smallest_scope_that_breaks_a_property() {
    let out = insync(&[
        "check",
        "--acks",
        "1",
        "--no-consumer",
        "--budget",
        "10m",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let deepening = &report["deepening"];
    assert_eq!(deepening["reached_target"], false);
    let violation = &deepening["first_violation"];
    assert_eq!(violation, &report["bounds"]);
    // The smallest scope already breaks: without idempotence a request that times out on a
    // slow leader is sent again and written twice, with one record and no leader change.
    // (Losing an acknowledged record needs an election, which this scope does not have.)
    assert_eq!(violation["records"], 1);
    assert_eq!(violation["elections"], 0);
    assert_eq!(violation["crashes"], 0);
    let holds = |name: &str| {
        report["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["holds"].clone())
    };
    assert_eq!(holds("no-duplicates"), Some(serde_json::Value::Bool(false)));
    assert_eq!(
        holds("acked-writes-durable"),
        Some(serde_json::Value::Bool(true))
    );
}

#[test]
fn budget_that_ends_before_the_asked_scope_exits_3_and_names_the_largest_finished() {
    // The per-scope state limit stands in for the clock, so the test does not depend on
    // the machine's speed: the first scope (no election) finishes, the second is cut short.
    let out = insync(&[
        "check",
        "--idempotence",
        "--budget",
        "10m",
        "--max-states",
        "5000",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("scope deepening within 600s"), "{text}");
    assert!(
        text.contains("the largest scope that finished: every safety property holds for every behaviour with at most 1 record, 0 broker crashes, 0 leader elections"),
        "{text}"
    );
}

#[test]
fn durations_take_units_and_bad_ones_are_usage_errors() {
    let out = insync(&["check", "--budget", "ten", "--records", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a duration"));
    let out = insync(&["check", "--budget", "5s", "--timeout", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

/// A reader that went away (`insync run | head`, or here a pipe closed before anything is
/// written) ends the output quietly: no panic, and the exit code is still the verdict.
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(["run", "--records", "2000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("insync starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("insync ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// The model's record count (the checker's bound) is not shown as the engine's workload.
#[test]
fn the_engine_report_does_not_show_the_models_record_count() {
    let out = insync(&["run", "--records", "2000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let configuration = text.lines().next().unwrap_or_default();
    assert!(
        configuration.starts_with("configuration: ") && !configuration.contains("records="),
        "{text}"
    );
    assert!(text.contains("workload: 2000 records"), "{text}");
}
