//! `insync explore` serves stateright's Explorer behind insync's page: it answers the status and
//! states endpoints; in headless Chromium the page shows the initial state, the partition's
//! picture (broker rows, log cells, the ISR as `{0,1,2}`) and steps in the counterexample
//! format; `--path REPORT` opens at the last state of a counterexample; a `--path` that does
//! not fit is refused with exit 2.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").to_string()
}

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}

const SMALL: [&str; 5] = ["--records", "1", "--crashes", "0", "--no-consumer"];

fn start_explorer() -> (Server, String) {
    start_explorer_with(&SMALL)
}

fn start_explorer_with(args: &[&str]) -> (Server, String) {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_insync"))
        .arg("explore")
        .args(args)
        .args(["--addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start insync explore");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = get(&addr, "/.status") {
            return (server, addr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the Explorer did not answer on {addr}");
}

fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        eprintln!(
            "SKIPPED: Chromium is not installed (apt-get install chromium); .ci/run installs it"
        );
    }
    found
}

/// The page's DOM after its scripts ran, from headless Chromium.
fn dump_dom(chromium: &str, url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "insync-chromium-{}-{}",
        std::process::id(),
        url.len()
    ));
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How the DOM spells a text: `->` is `-&gt;` there.
fn in_dom(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A configuration with a short counterexample: acks=1 loses an acknowledged write when
/// leadership moves before the followers fetched it.
const LOSSY: [&str; 5] = ["--acks", "1", "--records", "1", "--no-consumer"];

/// `insync check --json` of [`LOSSY`], written to a file.
fn lossy_report(dir: &std::path::Path) -> (std::path::PathBuf, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_insync"))
        .arg("check")
        .args(LOSSY)
        .args(["--strategy", "bfs", "--first", "--json"])
        .output()
        .expect("run insync check");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let file = dir.join("report.json");
    std::fs::write(&file, &out.stdout).expect("write the report");
    let report = serde_json::from_slice(&out.stdout).expect("the report is JSON");
    (file, report)
}

#[test]
fn explorer_answers_status_and_states() {
    let (_server, addr) = start_explorer();
    let (code, status) = get(&addr, "/.status").expect("status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    let names: Vec<&str> = status["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .filter_map(|p| p[1].as_str())
        .collect();
    assert!(names.contains(&"acked-writes-durable"), "{names:?}");
    let (code, states) = get(&addr, "/.states").expect("states");
    assert_eq!(code, 200);
    let states: serde_json::Value = serde_json::from_str(&states).expect("states are JSON");
    let initial = states[0]["state"].as_str().expect("an initial state");
    assert!(
        initial.contains("LeaderState"),
        "broker 0 leads initially: {initial}"
    );
}

#[test]
fn explorer_page_shows_the_initial_state_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let (_server, addr) = start_explorer();
    let dom = dump_dom(chromium, &format!("http://{addr}/#/steps/0"));
    assert!(
        dom.contains("Stateright Explorer"),
        "page did not load: {dom}"
    );
    // The raw state, one click away.
    assert!(
        dom.contains("<details") && dom.contains("LeaderState") && dom.contains("ControllerState"),
        "the initial state is not shown: {dom}"
    );
    // The picture: a row per broker, the controller's ISR as a set.
    for b in 0..3 {
        assert!(
            dom.contains(&format!("<th class=\"who\" rowspan=\"2\">broker {b}")),
            "no row for broker {b}: {dom}"
        );
    }
    assert!(dom.contains("<b class=\"isr\">{0,1,2}</b>"), "{dom}");
    let shown = dom
        .split_once("<pre id=\"state\">")
        .map_or(dom.as_str(), |(before, _)| before);
    assert!(
        !shown.contains("BrokerSet("),
        "a set is shown as Debug outside the raw state: {shown}"
    );
    // Next steps in the counterexample format.
    assert!(
        dom.contains(&in_dom("prod -> b0 Produce [v1] acks=all req=0")),
        "no step in the one-line format: {dom}"
    );
}

#[test]
fn explorer_opens_a_counterexample_at_its_last_state() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (file, report) = lossy_report(dir.path());
    let durable = report["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .find(|p| p["name"] == "acked-writes-durable")
        .expect("acked-writes-durable");
    let steps: Vec<String> = durable["counterexample"]
        .as_array()
        .expect("a counterexample")
        .iter()
        .map(|s| {
            let s = s.as_str().expect("a step");
            s.split_once(". ").map_or(s, |(_, line)| line).to_string()
        })
        .collect();
    let mut args = LOSSY.to_vec();
    args.extend(["--path", file.to_str().expect("a UTF-8 path")]);
    let (_server, addr) = start_explorer_with(&args);
    // No fragment: the page goes to the --path by itself.
    let dom = dump_dom(chromium, &format!("http://{addr}/"));
    assert!(
        dom.contains(&format!("State after step {}", steps.len())),
        "not at the counterexample's last state: {dom}"
    );
    assert!(
        dom.contains("the counterexample of acked-writes-durable"),
        "{dom}"
    );
    // Every step listed, as a link, in the counterexample's words.
    for step in &steps {
        assert!(
            dom.contains(&in_dom(step)),
            "step `{step}` is not listed: {dom}"
        );
    }
    let last = steps.last().expect("a step");
    assert!(
        dom.contains(&format!(
            "<li class=\"current\"><a href=\"#/steps/{}\">{}</a>",
            durable["explorer_path"].as_str().expect("explorer_path"),
            in_dom(last)
        )),
        "the last step is not the selected one: {dom}"
    );
    // The picture of that state: the broken property, a log cell holding the lost write.
    assert!(
        dom.contains("violated in this state: <code class=\"broken\">acked-writes-durable</code>"),
        "{dom}"
    );
    assert!(
        dom.contains("class=\"cell\"") && dom.contains("v1<small>e1</small>"),
        "no log cell: {dom}"
    );
    assert!(dom.contains("acknowledged at offset 0"), "{dom}");
}

fn explore_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_insync"))
        .arg("explore")
        .args(args)
        .args(["--addr", &free_addr()])
        .output()
        .expect("run insync explore");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_path_that_does_not_fit_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let garbage = dir.path().join("garbage.txt");
    std::fs::write(&garbage, "not a path at all").unwrap();
    let err = explore_fails(&["--path", garbage.to_str().unwrap()]);
    assert!(err.contains("path of action indices like 0/3/1"), "{err}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"properties\": [").unwrap();
    let err = explore_fails(&["--path", broken.to_str().unwrap()]);
    assert!(err.contains("is not JSON"), "{err}");

    let missing = dir.path().join("missing.json");
    let err = explore_fails(&["--path", missing.to_str().unwrap()]);
    assert!(err.contains("cannot read --path"), "{err}");

    let far = dir.path().join("far.txt");
    std::fs::write(&far, "0/999").unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--path", far.to_str().unwrap()]);
    let err = explore_fails(&args);
    assert!(err.contains("step 1 takes action 999"), "{err}");

    // A report of another configuration names what differs.
    let (report, _) = lossy_report(dir.path());
    let err = explore_fails(&["--records", "2", "--path", report.to_str().unwrap()]);
    assert!(err.contains("another configuration"), "{err}");
    assert!(err.contains("acks: 1 in the report"), "{err}");
}
