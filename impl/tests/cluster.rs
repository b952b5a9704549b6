//! A cluster of separate processes on loopback: `insync controller`, three `insync broker`s
//! with segment files (formatted by `insync format`), and `insync run --connect` as the client.
//! Also: a broker refuses a data directory that is unformatted, another node's, locked, or
//! missing a file it saved.
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
const CLUSTER_ID: &str = "cluster-test";

fn insync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_insync"))
}

/// `insync format` for broker `id` (of `cluster`), which must succeed.
fn format(dir: &Path, cluster: &str, id: usize) {
    let out = insync()
        .arg("format")
        .arg("--data-dir")
        .arg(dir)
        .args(["--cluster-id", cluster, "--node-id", &id.to_string()])
        .output()
        .expect("run format");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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

fn broker_command(id: usize, layout: &[String], dir: &Path) -> Command {
    let mut command = insync();
    command
        .arg("broker")
        .args(["--id", &id.to_string()])
        .args(layout)
        .args(CONFIG)
        .arg("--data-dir")
        .arg(dir)
        .args(["--cluster-id", CLUSTER_ID]);
    command
}

/// Broker `id` on `data/broker-<id>`, formatted beforehand (formatting again is a no-op).
fn spawn_broker(id: usize, layout: &[String], data: &Path) -> Child {
    let dir = data.join(format!("broker-{id}"));
    format(&dir, CLUSTER_ID, id);
    broker_command(id, layout, &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn broker")
}

/// The controller and three brokers, all listening; with `data`, each broker on
/// `data/broker-<id>` (formatted), else in memory.
fn start_cluster(layout: &[String], addrs: &[SocketAddr], data: Option<&Path>) -> Processes {
    let controller = insync()
        .arg("controller")
        .args(layout)
        .args(CONFIG)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn controller");
    let mut cluster = Processes(vec![("controller".into(), controller)]);
    for id in 0..3 {
        let broker = match data {
            Some(data) => spawn_broker(id, layout, data),
            None => insync()
                .arg("broker")
                .args(["--id", &id.to_string()])
                .args(layout)
                .args(CONFIG)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn broker"),
        };
        cluster.0.push((format!("broker-{id}"), broker));
    }
    for addr in addrs {
        wait_listening(*addr);
    }
    cluster
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
    let mut cluster = start_cluster(&layout, &addrs, Some(data.path()));

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

/// A broker that exits at once: its exit code and stderr. Panics if it is still running
/// after 20 s (it took the directory).
fn refused(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the broker started instead of refusing its data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Setup: one broker's data directory, in four states.
/// Steps: start `insync broker --data-dir` on it (a) unformatted, (b) formatted for another
/// cluster, (c) formatted for another broker id, (d) while another broker holds it.
/// Expected: each start is refused with exit 2 and a message naming the problem and the fix;
/// the unformatted directory is not created.
#[test]
fn a_broker_refuses_a_data_dir_that_is_unformatted_foreign_or_locked() {
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);

    let dir = data.path().join("unformatted");
    let (code, stderr) = refused(broker_command(0, &layout, &dir));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("not a formatted data directory") && stderr.contains("insync format"),
        "{stderr}"
    );
    assert!(!dir.exists());

    let dir = data.path().join("other-cluster");
    format(&dir, "another-cluster", 0);
    let (code, stderr) = refused(broker_command(0, &layout, &dir));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("formatted for broker 0 of cluster \"another-cluster\"")
            && stderr.contains(&format!("not for broker 0 of cluster \"{CLUSTER_ID}\"")),
        "{stderr}"
    );

    let dir = data.path().join("broker-1");
    format(&dir, CLUSTER_ID, 1);
    let (code, stderr) = refused(broker_command(0, &layout, &dir));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("formatted for broker 1"), "{stderr}");

    // Formatting it again for another node is refused too.
    let out = insync()
        .arg("format")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--cluster-id", CLUSTER_ID, "--node-id", "0"])
        .output()
        .expect("format");
    assert_eq!(out.status.code(), Some(2));

    // Broker 1 runs on its directory; a second broker 1 on the same directory is refused
    // (before it binds its address, so the lock is what refuses it).
    let running = spawn_broker(1, &layout, data.path());
    let _cluster = Processes(vec![("broker-1".into(), running)]);
    wait_listening(addrs[1]);
    let (code, stderr) = refused(broker_command(1, &layout, &dir));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is locked by another process"), "{stderr}");
}

/// Setup: a three-broker cluster with segment files; a client's records are acknowledged.
/// Steps: stop broker 0, delete its state file (`actor-0.state`), start it again.
/// Expected: broker 0 refuses to start (exit 2), naming the missing file, instead of
/// starting fresh as an empty leader of epoch 1 that its followers would truncate to.
#[test]
fn a_broker_whose_state_file_was_deleted_refuses_to_start() {
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let mut cluster = start_cluster(&layout, &addrs, Some(data.path()));
    verdict(client(&layout, 3_000).wait_with_output().expect("client"));
    cluster.kill("broker-0");

    let state = data.path().join("broker-0").join("actor-0.state");
    std::fs::remove_file(&state).expect("delete the state file");
    let (code, stderr) = refused(broker_command(0, &layout, &data.path().join("broker-0")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("actor-0.state") && stderr.contains("the state file is missing"),
        "{stderr}"
    );
}

/// The controller on its own data directory, formatted for it; its log goes to `log`.
fn spawn_controller(layout: &[String], data: &Path, log: &Path) -> Child {
    let dir = data.join("controller");
    let out = insync()
        .arg("format")
        .arg("--data-dir")
        .arg(&dir)
        .args(["--cluster-id", CLUSTER_ID, "--controller"])
        .output()
        .expect("run format");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insync()
        .arg("controller")
        .args(layout)
        .args(CONFIG)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--cluster-id", CLUSTER_ID])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn controller")
}

/// Setup: the cluster above, the controller on a data directory.
/// Steps: a client runs while the first leader (broker 0) is killed, so the controller elects
/// a new leader in epoch 2; broker 0 comes back; then the controller is killed and started
/// again on its directory, and a second client runs.
/// Expected: the restarted controller remembers the partition (leader epoch 2 or later, the
/// ISR, each broker's incarnation), so the brokers accept what it says and the second client
/// loses nothing and reads everything. A controller that forgot would start over at epoch 1
/// with broker 0 as leader, and the brokers, which know epoch 2, would fence it.
#[test]
fn a_restarted_controller_remembers_the_partition() {
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let mut cluster = Processes(vec![(
        "controller".into(),
        spawn_controller(&layout, data.path(), &data.path().join("controller-1.log")),
    )]);
    for id in 0..3 {
        cluster.0.push((
            format!("broker-{id}"),
            spawn_broker(id, &layout, data.path()),
        ));
    }
    for addr in &addrs {
        wait_listening(*addr);
    }
    let records = 50_000;
    let run = client(&layout, records);
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir_bytes(&data.path().join("broker-0")) < records * 10 {
        assert!(Instant::now() < deadline, "broker 0 stored nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.kill("broker-0");
    verdict(run.wait_with_output().expect("client"));
    let restarted = spawn_broker(0, &layout, data.path());
    cluster.0.retain(|(n, _)| n != "broker-0");
    cluster.0.push(("broker-0".into(), restarted));
    wait_listening(addrs[0]);
    // Let broker 0 register and catch up before the controller goes.
    std::thread::sleep(Duration::from_secs(3));

    cluster.kill("controller");
    let log = data.path().join("controller-2.log");
    let restarted = spawn_controller(&layout, data.path(), &log);
    cluster.0.retain(|(n, _)| n != "controller");
    cluster.0.push(("controller".into(), restarted));
    wait_listening(addrs[3]);
    verdict(client(&layout, 2_000).wait_with_output().expect("client"));
    cluster.assert_all_alive();
    let log = std::fs::read_to_string(&log).expect("controller log");
    let recovered = log
        .lines()
        .find(|l| l.contains("the controller takes up its saved state"))
        .unwrap_or_else(|| panic!("the restarted controller started over:\n{log}"));
    let epoch: u32 = recovered
        .split("leader_epoch=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no leader epoch in {recovered}"));
    assert!(
        epoch >= 2,
        "the killed leader's successor leads epoch 2 or later: {recovered}"
    );
}

/// A secret file readable only by its owner.
fn secret_file(dir: &Path, name: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, secret).expect("write secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path
}

fn read_frame(s: &mut TcpStream) -> Option<insync::wire::Frame> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).ok()?;
    let mut payload = vec![0u8; u32::from_le_bytes(header) as usize];
    s.read_exact(&mut payload).ok()?;
    insync::wire::decode(&payload).ok()
}

fn write_frame(s: &mut TcpStream, frame: &insync::wire::Frame) {
    // The server may already have closed the connection; what matters is what it delivers.
    let _ = s.write_all(&insync::wire::encode(frame).expect("encode"));
}

/// The hello a process greets every connection with: its configuration, hosts, cluster id.
fn server_hello(addr: SocketAddr) -> (String, Vec<usize>, Option<String>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    match read_frame(&mut s) {
        Some(insync::wire::Frame::Hello {
            config,
            hosts,
            cluster_id,
            nonce,
        }) => {
            assert!(nonce.is_some(), "an authenticating server sends a nonce");
            (config, hosts, cluster_id)
        }
        other => panic!("expected a hello, got {other:?}"),
    }
}

/// Whether the server closed the connection (rather than leaving it open) within 5 s: the
/// end of the stream, or a reset (it closed with our unread frames still queued).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Setup: controller and three brokers on loopback, each with the same `--secret-file`.
/// Steps: forged peers connect to broker 0 and the controller posing as the controller (to
/// the broker) or broker 0 (to the controller): one with no proof at all, one with a made-up
/// proof, each followed by a message; then a client with the secret runs.
/// Expected: every forger's connection is closed by the server and nothing it sent is
/// delivered; the client's records are acknowledged and none is lost; nobody falls over.
#[test]
fn an_authenticated_cluster_serves_members_and_cuts_off_forgers() {
    use insync::wire::{Envelope, Frame};
    use insync_model::msg::{Msg, RequestId};
    use insync_model::types::Offset;

    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), "secret", "a-test-secret-of-enough-bytes\n");
    let addrs = free_addrs(4);
    let mut layout = layout(&addrs);
    layout.push("--secret-file".into());
    layout.push(secret.display().to_string());
    let mut cluster = start_cluster(&layout, &addrs, None);

    let (config, broker_hosts, cluster_id) = server_hello(addrs[0]);
    let (_, controller_hosts, _) = server_hello(addrs[3]);
    // Pose as the controller to broker 0, and as broker 0 to the controller.
    for (target, posing_as, victim) in [
        (addrs[0], &controller_hosts, &broker_hosts),
        (addrs[3], &broker_hosts, &controller_hosts),
    ] {
        for with_proof in [false, true] {
            let mut s = TcpStream::connect(target).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            assert!(matches!(read_frame(&mut s), Some(Frame::Hello { .. })));
            write_frame(
                &mut s,
                &Frame::Hello {
                    config: config.clone(),
                    hosts: posing_as.clone(),
                    cluster_id: cluster_id.clone(),
                    nonce: with_proof.then_some([9; 32]),
                },
            );
            if with_proof {
                write_frame(&mut s, &Frame::Proof { mac: vec![0; 32] });
            }
            write_frame(
                &mut s,
                &Frame::Message(Envelope {
                    src: posing_as[0],
                    dst: victim[0],
                    msg: Msg::ProduceResponse {
                        request: RequestId(1),
                        result: Ok(Offset(0)),
                    },
                }),
            );
            assert!(
                closed_by_server(&mut s),
                "{target}: a forger (proof: {with_proof}) was not cut off"
            );
        }
    }

    let out = insync()
        .args(["run", "--connect", "--json", "--records", "3000"])
        .args(&layout)
        .args(CONFIG)
        .output()
        .expect("client");
    let report = verdict(out);
    assert_eq!(report["acknowledged"], 3000, "{report}");
    cluster.assert_all_alive();
}

/// Setup: a layout with an address that is not loopback.
/// Steps: start a broker, the controller and a client on it without `--secret-file`; then a
/// broker with an empty secret file and one readable by others.
/// Expected: each refuses to start, exit 2, naming the fix.
#[test]
fn a_layout_off_loopback_needs_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = [
        "--brokers",
        "10.1.2.3:9100,10.1.2.4:9100,10.1.2.5:9100",
        "--controller",
        "10.1.2.6:9200",
    ];
    for command in [
        &["broker", "--id", "0"][..],
        &["controller"][..],
        &["run", "--connect", "--records", "10"][..],
    ] {
        let out = insync().args(command).args(layout).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("not a loopback address") && stderr.contains("pass --secret-file"),
            "{command:?}: {stderr}"
        );
    }
    let empty = secret_file(dir.path(), "empty", "");
    let open = dir.path().join("open");
    std::fs::write(&open, "a-test-secret-of-enough-bytes").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    for (file, why) in [(&empty, "is empty"), (&open, "chmod 600")] {
        let out = insync()
            .args(["broker", "--id", "0"])
            .args(layout)
            .arg("--secret-file")
            .arg(file)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
}

/// A value from `/proc/<pid>/status`, in KiB.
#[cfg(target_os = "linux")]
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// Setup: one broker process (no other member needed: it listens whatever happens).
/// Steps: 8 connections send a frame header declaring 16 MiB; 64 connections each send a
/// header declaring the most a handshake frame may hold and 10 bytes of it, then stall; then
/// more connections than the listener's cap open; then one peer sends a 64 KiB frame of
/// garbage.
/// Expected: the broker's resident and data memory grow by a few MB (64 connections that
/// declared 16 MiB each once cost it 130 MB resident and 1 GiB of address space); the 16 MiB
/// declarations are refused at once, the stalled connections closed after the handshake
/// timeout; connections beyond the cap are closed without a hello; the garbage is logged in
/// one short line showing its start in hex; the broker survives all of it.
#[cfg(target_os = "linux")]
#[test]
fn stalled_and_oversized_peers_cost_little_and_are_cut_off() {
    use insync::tcp::{CONNECTIONS_MAX, HANDSHAKE_TIMEOUT};
    use insync::wire::{FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX};
    const STALLED: usize = 64;
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let dir = data.path().join("broker-0");
    format(&dir, CLUSTER_ID, 0);
    let log = data.path().join("broker-0.log");
    let broker = broker_command(0, &layout, &dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn broker");
    let pid = broker.id();
    let mut cluster = Processes(vec![("broker-0".into(), broker)]);
    wait_listening(addrs[0]);
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = status_kib(pid, "VmRSS:");
    let data_before = status_kib(pid, "VmData:");

    let declaring = |len: u32| {
        let mut s = TcpStream::connect(addrs[0]).expect("connect");
        s.write_all(&len.to_le_bytes()).expect("header");
        s.write_all(&[7; 10]).expect("10 bytes");
        s
    };
    let oversized: Vec<TcpStream> = (0..8).map(|_| declaring(FRAME_BYTES_MAX)).collect();
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| declaring(HANDSHAKE_FRAME_BYTES_MAX))
        .collect();
    for mut s in oversized {
        assert!(closed_by_server(&mut s), "a 16 MiB hello is refused");
    }
    assert!(
        opened.elapsed() < HANDSHAKE_TIMEOUT,
        "refused at once, not timed out"
    );
    std::thread::sleep(Duration::from_secs(1));
    let rss_grown = status_kib(pid, "VmRSS:").saturating_sub(rss_before);
    let data_grown = status_kib(pid, "VmData:").saturating_sub(data_before);
    eprintln!("{STALLED} stalled connections: RSS +{rss_grown} KiB, data +{data_grown} KiB");
    assert!(rss_grown < 8 * 1024, "RSS grew by {rss_grown} KiB");
    assert!(
        data_grown < 64 * 1024,
        "data memory grew by {data_grown} KiB"
    );

    // Beyond the cap, connections are closed without a hello.
    let mut greeted = 0;
    let mut refused = 0;
    // Every one stays open until all are read, so no slot frees up in between.
    let mut extra: Vec<TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| TcpStream::connect(addrs[0]).expect("connect"))
        .collect();
    for s in &mut extra {
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut header = [0u8; 4];
        match s.read_exact(&mut header) {
            Ok(()) => greeted += 1,
            Err(_) => refused += 1,
        }
    }
    assert_eq!(
        (greeted, refused),
        (CONNECTIONS_MAX - STALLED, STALLED),
        "greeted and refused beyond the {STALLED} stalled"
    );
    drop(extra);

    // The stalled ones are cut off once their handshake time is up.
    for s in &mut stalled {
        let left = (HANDSHAKE_TIMEOUT + Duration::from_secs(3)).saturating_sub(opened.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(100))))
            .expect("timeout");
        let mut sink = Vec::new();
        let closed = match s.read_to_end(&mut sink) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        assert!(
            closed,
            "a stalled connection outlived the handshake timeout"
        );
    }

    // A large garbage frame: one short log line.
    let mut s = TcpStream::connect(addrs[0]).expect("connect");
    // As large as a hello may be, so the broker reads and decodes all of it.
    let garbage = vec![0xabu8; HANDSHAKE_FRAME_BYTES_MAX as usize];
    let _ = s.write_all(&(garbage.len() as u32).to_le_bytes());
    let _ = s.write_all(&garbage);
    assert!(
        closed_by_server(&mut s),
        "the garbage's connection stays open"
    );
    std::thread::sleep(Duration::from_millis(200));
    cluster.assert_all_alive();
    let text = std::fs::read_to_string(&log).expect("broker log");
    let line = text
        .lines()
        .find(|l| l.contains("abababab"))
        .unwrap_or_else(|| panic!("the garbage is not shown:\n{text}"));
    assert!(line.len() < 1000, "{} bytes: {line}", line.len());
    assert!(
        text.lines().all(|l| l.len() < 2000),
        "a long log line:\n{text}"
    );
}

/// Setup: the cluster of processes, records of 64 KiB (Kafka's defaults: 1 MiB
/// `message.max.bytes`, `replica.fetch.max.bytes` and `fetch.max.bytes`).
/// Steps: a client sends 1,500 of them (about 94 MiB).
/// Expected: every one is acknowledged and read back, none lost. Fetches are sized in bytes
/// (16 such records to a follower's fetch), so any record up to `message.max.bytes` crosses
/// the network; when fetches were sized by count (2,000 records in a 16 MiB frame), records
/// over 8,324 bytes were refused with --connect.
#[test]
fn large_records_replicate_between_processes() {
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let mut cluster = start_cluster(&layout, &addrs, Some(data.path()));
    let records = 1_500u64;
    let run = insync()
        .args([
            "run",
            "--connect",
            "--json",
            "--records",
            &records.to_string(),
            "--record-size",
            &(64 * 1024).to_string(),
        ])
        .args(&layout)
        .args(CONFIG)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let report = verdict(run.wait_with_output().expect("client"));
    assert_eq!(report["acknowledged"], records, "{report}");
    assert_eq!(report["read"], records, "{report}");
    cluster.assert_all_alive();
}

/// Setup: three broker processes with segment files; a client's records are acknowledged.
/// Steps: stop broker 0 with SIGTERM, start it again, run a client; then kill it with SIGKILL
/// and start it again.
/// Expected: SIGTERM ends it with exit 0 after marking its state file clean, so its restart
/// verifies every record and is no unclean shutdown (with `--elr` it would otherwise leave
/// the ISR and the ELR, KIP-966); the restart after SIGKILL is an unclean one and says so.
#[test]
fn a_broker_stopped_by_sigterm_shuts_down_cleanly() {
    let data = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let layout = layout(&addrs);
    let mut cluster = start_cluster(&layout, &addrs, Some(data.path()));
    verdict(client(&layout, 3_000).wait_with_output().expect("client"));

    let (_, broker) = cluster
        .0
        .iter_mut()
        .find(|(n, _)| n == "broker-0")
        .expect("broker 0");
    let sent = Command::new("kill")
        .args(["-TERM", &broker.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = broker.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "broker 0 ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop: {status}");

    // Starts broker 0 again with its log in `log`, and returns that log once a client ran.
    let dir = data.path().join("broker-0");
    let restart = |cluster: &mut Processes, log: &Path| -> String {
        let child = broker_command(0, &layout, &dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn broker");
        cluster.0.retain(|(n, _)| n != "broker-0");
        cluster.0.push(("broker-0".into(), child));
        wait_listening(addrs[0]);
        // Listening is not yet ready: once, under load, a client started right here had
        // every send end indeterminate within 22 ms and exited 3 ("no record was
        // acknowledged"; suspected: the client gives up at once on a broker that is not
        // ready, an open problem of `run --connect`, not of the shutdown tested here). A
        // client that acknowledges nothing is therefore tried again, a few times.
        let mut out = client(&layout, 2_000).wait_with_output().expect("client");
        for _ in 0..3 {
            if out.status.code() != Some(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            out = client(&layout, 2_000).wait_with_output().expect("client");
        }
        verdict(out);
        std::fs::read_to_string(log).expect("read log")
    };
    let after_term = restart(&mut cluster, &data.path().join("after-term.log"));
    assert!(
        !after_term.contains("unclean shutdown"),
        "a restart after SIGTERM is clean:\n{after_term}"
    );
    cluster.kill("broker-0");
    let after_kill = restart(&mut cluster, &data.path().join("after-kill.log"));
    assert!(
        after_kill.contains("unclean shutdown"),
        "a restart after SIGKILL is unclean and says so:\n{after_kill}"
    );
}
