//! `insync explore` serves stateright's Explorer: it answers its status and states endpoints,
//! and a page load in headless Chromium shows the initial state.

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

fn start_explorer() -> (Server, String) {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args([
            "explore",
            "--records",
            "1",
            "--crashes",
            "0",
            "--no-consumer",
            "--addr",
            &addr,
        ])
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
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!(
            "SKIPPED: Chromium is not installed (apt-get install chromium); .ci/run installs it"
        );
        return;
    };
    let (_server, addr) = start_explorer();
    let profile = std::env::temp_dir().join(format!("insync-chromium-{}", std::process::id()));
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
        .arg(format!("http://{addr}/#/steps/0"))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Stateright Explorer"),
        "page did not load: {dom}"
    );
    assert!(
        dom.contains("LeaderState") && dom.contains("ControllerState"),
        "the initial state is not shown: {dom}"
    );
}
