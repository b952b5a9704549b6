//! `insync-fuzz replay CASE --html OUT.html` writes a history as a timeline that headless
//! Chromium draws: a lane per process, a bar per operation, the anomaly the case was saved for
//! marked on its operations and listed, and no Debug dump in plain view.

use std::path::{Path, PathBuf};
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

fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        eprintln!(
            "SKIPPED: Chromium is not installed (apt-get install chromium); .ci/run installs it"
        );
    }
    found
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
fn headless(chromium: &str, dir: &Path, extra: &[String], url: &str) -> String {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A saved lost-write case: acks=1 fuzzed until it loses an acknowledged write.
fn lost_write_case(dir: &Path) -> PathBuf {
    let out = dir.join("fuzz");
    let (code, stdout, stderr) = fuzz(&[
        "--acks",
        "1",
        "--cases",
        "30",
        "--seed",
        "0",
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    assert_eq!(code, 1, "anomalies found: {stdout}{stderr}");
    let timeline = stdout
        .lines()
        .find(|l| l.starts_with("lost-write"))
        .and_then(|row| row.split_whitespace().last())
        .filter(|p| p.ends_with(".timeline.txt"))
        .unwrap_or_else(|| panic!("no lost-write case saved: {stdout}"));
    PathBuf::from(timeline.replace(".timeline.txt", ".case.json"))
}

/// The page's text outside folded `<details>` and `<style>`, without tags.
fn visible_text(dom: &str) -> String {
    let mut text = dom.to_string();
    for (open, close) in [("<details", "</details>"), ("<style", "</style>")] {
        while let Some(start) = text.find(open) {
            let Some(len) = text[start..].find(close) else {
                break;
            };
            text.replace_range(start..start + len + close.len(), " ");
        }
    }
    let mut shown = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                shown.push(' ');
            }
            c if !in_tag => shown.push(c),
            _ => {}
        }
    }
    shown
}

#[test]
fn a_replayed_case_draws_as_a_timeline_in_chromium() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let case = lost_write_case(dir.path());
    let html = dir.path().join("lost-write.html");
    let (code, stdout, stderr) = fuzz(&[
        "replay",
        case.to_str().expect("UTF-8"),
        "--times",
        "1",
        "--html",
        html.to_str().expect("UTF-8"),
    ]);
    assert_eq!(code, 1, "the replay shows its anomaly: {stdout}{stderr}");
    assert!(
        stdout.contains(&format!("timeline: {}", html.display())),
        "{stdout}"
    );
    // The history the replay printed, entry by entry.
    let history: Vec<&str> = stdout
        .split("history:\n")
        .nth(1)
        .and_then(|rest| rest.split("anomalies:").next())
        .expect("the history is printed")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!history.is_empty(), "{stdout}");
    let page = std::fs::read_to_string(&html).expect("the page is written");
    assert!(
        !page.contains("<script") && !page.contains("src="),
        "not self-contained"
    );

    let Some(chromium) = chromium() else { return };
    let url = format!("file://{}", html.display());
    let dom = headless(chromium, dir.path(), &["--dump-dom".to_string()], &url);
    assert!(
        dom.contains("<h1>lost-write: rf=3"),
        "the page did not load: {dom}"
    );
    // A lane for each process of the history: the clients and the nemesis.
    for lane in ["producer", "consumer", "nemesis"] {
        let in_history = history.iter().any(|l| l.contains(&format!(" {lane} ")));
        assert_eq!(
            dom.contains(&format!("data-lane=\"{lane}\"")),
            in_history,
            "the {lane} lane should be drawn exactly when the history has {lane} entries: {dom}"
        );
    }
    // Every entry of the history is in some bar, and every completed operation's words show.
    let mut drawn: Vec<usize> = dom
        .split("data-ops=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .flat_map(|(ops, _)| ops.split(' ').filter_map(|o| o.parse().ok()))
        .collect();
    drawn.sort_unstable();
    assert_eq!(drawn, (0..history.len()).collect::<Vec<_>>(), "{dom}");
    // Every fault and repair is in the nemesis lane; faults shade every lane.
    let nemesis = history.iter().filter(|l| l.contains(" nemesis ")).count();
    let fault_bars = dom.matches("<div class=\"bar fault").count();
    let repair_bars = dom.matches("<div class=\"bar repair").count();
    assert_eq!(fault_bars + repair_bars, nemesis, "{dom}");
    assert_eq!(
        dom.matches("<div class=\"band\"").count(),
        fault_bars,
        "{dom}"
    );
    // The lost write is listed, numbered, and its bars carry the number.
    let listed = dom
        .split("<li class=\"anomaly\"")
        .skip(1)
        .find(|li| li.contains("<b>lost-write</b>"))
        .unwrap_or_else(|| panic!("lost-write is not in the legend: {dom}"));
    let mark = listed
        .split("<span class=\"mark\">")
        .nth(1)
        .and_then(|m| m.split_once("</span>"))
        .map(|(m, _)| m.to_string())
        .expect("a numbered mark");
    let marked_bars = dom
        .split("<div class=\"bar ")
        .skip(1)
        .filter(|bar| bar.contains(&format!("<span class=\"mark\">{mark}</span>")))
        .count();
    assert!(marked_bars >= 2, "{mark} marks {marked_bars} bars: {dom}");
    assert!(dom.contains(" anomalous"), "{dom}");
    // The text a reader sees: the history's own words, no Debug dump.
    let shown = visible_text(&dom);
    assert!(shown.contains("lost-write"), "{shown}");
    assert!(shown.contains("send 1"), "{shown}");
    for debug in ["Id(", "Some(", "{ ", "Send {", "Offset("] {
        assert!(!shown.contains(debug), "`{debug}` in plain view: {shown}");
    }
    // Kept for a reader under target/tmp; a stale one must not pass for this run's.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline-lost-write.png");
    let _ = std::fs::remove_file(&png);
    headless(
        chromium,
        dir.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1300,1000".to_string(),
        ],
        &url,
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{}",
        png.display()
    );
    eprintln!("screenshot: {}", png.display());
}

/// What repairs each fault the runner injects, in the runner's own words.
fn repair_of(fault: &str) -> Option<&'static str> {
    if fault.starts_with("crash broker ") {
        Some("restart broker ")
    } else if fault.starts_with("partition ") {
        Some("heal the partition")
    } else if fault.starts_with("drop ")
        || fault.starts_with("duplicate ")
        || fault.ends_with("(reordering)")
    {
        Some("clear drops and duplicates")
    } else if fault.starts_with("slow broker ") {
        Some("drain")
    } else if fault == "crash the consumer" {
        Some("restart the consumer")
    } else {
        None
    }
}

#[test]
fn the_faults_of_an_engine_run_last_until_their_repairs() {
    use insync_checks::fuzz::run_case;
    use insync_checks::history::{Fun, Process};
    use insync_checks::plan::{Plan, Step, APPLICATION_BIT};
    use insync_checks::runner::HistoryRunOptions;
    use insync_checks::strategy::{recommended, Case};
    use insync_model::config::NetworkKind;
    let case = Case {
        config: insync_model::Config {
            network: NetworkKind::Duplicating,
            ..recommended()
        },
        plan: Plan {
            steps: vec![
                Step::Send,
                Step::CrashFollower { rank: 0 },
                Step::Pause { ms: 50 },
                Step::RestartBroker,
                Step::Partition {
                    followers: 1,
                    clients: APPLICATION_BIT,
                },
                Step::Pause { ms: 50 },
                Step::Heal,
                Step::Drop { percent: 10 },
                Step::Duplicate { percent: 10 },
                Step::Delay { ms: 20 },
                Step::ClearNetwork,
                Step::SlowFollower { rank: 0, ms: 30 },
                Step::CrashConsumer,
                Step::RestartConsumer,
                Step::Send,
            ],
        },
        seed: 0,
    };
    let (history, verdict) =
        run_case(&case, &HistoryRunOptions::default()).expect("the run completes");
    let page = insync_checks::timeline::render_timeline(&history, &verdict, "faults", &[], &[]);
    let mut faults = 0;
    for op in history.ops.iter().filter(|o| o.process == Process::Nemesis) {
        let Fun::Nemesis { what } = &op.fun else {
            panic!("a nemesis entry that is not a fault: {op}");
        };
        let bar = page
            .split("<div class=\"bar ")
            .skip(1)
            .find(|b| b.contains(&format!("data-ops=\"{}\"", op.index)))
            .unwrap_or_else(|| panic!("no bar for {op}"));
        match repair_of(what) {
            Some(repair) => {
                faults += 1;
                assert!(bar.starts_with("fault"), "{what}: {bar}");
                let title = bar
                    .split_once("title=\"")
                    .and_then(|(_, t)| t.split_once('"'))
                    .map(|(t, _)| t)
                    .expect("a title");
                let until = title
                    .split("\nuntil ")
                    .nth(1)
                    .unwrap_or_else(|| panic!("{what} never ends: {title}"));
                assert!(
                    until.contains(repair),
                    "{what} ends at {until}, not {repair}"
                );
            }
            None => assert!(bar.starts_with("repair"), "{what}: {bar}"),
        }
    }
    // Crash, partition, drop, duplicate, reordering delay, slow link, consumer crash.
    assert_eq!(faults, 7, "{history}");
}
