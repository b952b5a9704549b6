//! A cluster of separate processes on loopback: `insync controller`, three `insync broker`s
//! with segment files, and `insync run --connect` as the client.
//!
//! Setup: rf=3, min.insync=2, acks=all, idempotence, flush=always.
//! Steps: the client sends 30,000 records; partway, broker 0 (the first leader) is killed
//! with SIGKILL; later it is started again on its data directory and a second client sends
//! more. A peer that sends garbage is cut off without harm.
//! Expected: no acknowledged record lost or unseen, in either run; the killed broker's
//! restart recovers its segment files; every process survives the bad frame.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &[&str] = &["--idempotence", "--max-in-flight", "5", "--retries", "5"];

/// Kills every process of the cluster when the test ends, however it ends.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    fn kill(&mut self, name: &str) {
        let (_, child) = self
            .0
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("known process");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    fn assert_all_alive(&mut self) {
        for (name, child) in &mut self.0 {
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "{name} exited"
            );
        }
    }
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    // Bound together so no two are the same; released just before the processes bind them.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect()
}

fn layout(addrs: &[SocketAddr]) -> Vec<String> {
    let brokers: Vec<String> = addrs[..3].iter().map(|a| a.to_string()).collect();
    vec![
        "--brokers".into(),
        brokers.join(","),
        "--controller".into(),
        addrs[3].to_string(),
    ]
}

fn spawn_broker(id: usize, layout: &[String], data: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_insync"))
        .arg("broker")
        .args(["--id", &id.to_string()])
        .args(layout)
        .args(CONFIG)
        .arg("--data-dir")
        .arg(data.join(format!("broker-{id}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn broker")
}

fn client(layout: &[String], records: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_insync"))
        .args([
            "run",
            "--connect",
            "--json",
            "--records",
            &records.to_string(),
        ])
        .args(layout)
        .args(CONFIG)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client")
}

fn verdict(out: Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["unseen"], 0, "{report}");
    assert_eq!(report["read_uncommitted"], 0, "{report}");
    assert_eq!(report["duplicated"], 0, "idempotence: {report}");
    assert!(
        report["acknowledged"].as_u64().expect("count") > 0,
        "{report}"
    );
    report
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_broker_processes_survive_a_killed_leader_and_lose_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let controller = Command::new(env!("CARGO_BIN_EXE_insync"))
        .arg("controller")
        .args(&layout)
        .args(CONFIG)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn controller");
    let mut cluster = Processes(vec![("controller".into(), controller)]);
    for id in 0..3 {
        cluster.0.push((
            format!("broker-{id}"),
            spawn_broker(id, &layout, data.path()),
        ));
    }
    for addr in &addrs {
        wait_listening(*addr);
    }

    // The first leader dies mid-run: once its segment files hold about a tenth of the
    // records (100 B each), well before the client is done.
    let records = 100_000;
    let run = client(&layout, records);
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir_bytes(&data.path().join("broker-0")) < records * 10 {
        assert!(Instant::now() < deadline, "broker 0 stored nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.kill("broker-0");
    let first = verdict(run.wait_with_output().expect("client"));

    // It comes back on its segment files and rejoins; a second client loses nothing.
    let restarted = spawn_broker(0, &layout, data.path());
    cluster.0.retain(|(n, _)| n != "broker-0");
    cluster.0.push(("broker-0".into(), restarted));
    wait_listening(addrs[0]);
    let second = verdict(client(&layout, 2_000).wait_with_output().expect("client"));

    // A peer that speaks garbage is cut off, and nobody falls over.
    for addr in &addrs {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(&u32::MAX.to_le_bytes()).expect("write");
        s.write_all(&[0xff; 64]).expect("write");
        let mut sink = Vec::new();
        // The hello, then the end of the stream: the server closed the connection.
        let _ = s.read_to_end(&mut sink);
    }
    std::thread::sleep(Duration::from_millis(200));
    cluster.assert_all_alive();
    assert_eq!(first["acknowledged"], records, "{first}");
    eprintln!(
        "killed leader: {} acknowledged in {:.1}s; after restart: {} acknowledged",
        first["acknowledged"], first["seconds"], second["acknowledged"]
    );
}

#[test]
fn cluster_layout_errors_are_reported_not_panics() {
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let out = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(["broker", "--id", "7"])
        .args(&layout)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INVALID_CONFIG") && stderr.contains("broker 7"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(["broker", "--id", "0", "--brokers", &addrs[0].to_string()])
        .args(["--controller", &addrs[3].to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--brokers lists 1 addresses but --replicas is 3"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_insync"))
        .args(["run", "--connect", "--faults", "crash-leader"])
        .args(&layout)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--faults act on an in-process cluster"));
}
