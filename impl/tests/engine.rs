//! The real engine keeps the model's promises under real faults: crashes, restarts, power loss
//! of unflushed data, partitions. Each test uses real (short) timers.

use insync::engine::{Cluster, EngineOptions};
use insync::run::{run, Fault, RunOptions};
use insync_model::config::{Config, Flush};
use insync_model::producer::Outcome;
use insync_model::types::{BrokerId, Offset};
use std::time::Duration;

fn config(f: impl FnOnce(&mut Config)) -> insync_model::ValidConfig {
    let mut c = Config {
        records: 1,
        ..Config::default()
    };
    f(&mut c);
    c.validate().expect("valid config")
}

async fn send_all(cluster: &Cluster, n: u64) -> Vec<Outcome> {
    let mut receivers = Vec::new();
    for i in 0..n {
        receivers.push(cluster.send(i.to_le_bytes().to_vec()).await);
    }
    let mut outcomes = Vec::new();
    for rx in receivers {
        let outcome = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("an outcome within 20 s")
            .outcome;
        outcomes.push(outcome);
    }
    outcomes
}

async fn log_end(cluster: &Cluster, b: u8) -> Option<Offset> {
    cluster
        .broker_log(BrokerId(b))
        .await
        .map(|(log, _)| log.log_end_offset())
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommended_configuration_loses_nothing_through_a_leader_crash() {
    let report = run(
        config(|c| {
            c.idempotence = true;
            c.retries = 5;
        }),
        RunOptions {
            records: 20_000,
            faults: vec![Fault::CrashLeader],
            seed: 3,
            ..RunOptions::default()
        },
    )
    .await
    .expect("the run completes");
    // A request caught by the crash may time out on a loaded machine: indeterminate, never
    // failed, and never lost.
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        report.acknowledged + report.indeterminate,
        20_000,
        "{report:?}"
    );
    assert!(report.acknowledged >= 19_000, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(
        report.duplicated, 0,
        "idempotence drops retried duplicates: {report:?}"
    );
    assert_eq!(report.read_uncommitted, 0, "{report:?}");
    assert_eq!(
        report.unseen, 0,
        "the consumer reads everything after the failover"
    );
    assert!(report.faults[0].starts_with("crash-leader"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_flushed_records() {
    let cluster = Cluster::start(config(|_| {}), EngineOptions::default())
        .await
        .expect("start");
    let outcomes = send_all(&cluster, 300).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Acked(_))),
        "{outcomes:?}"
    );
    assert_eq!(log_end(&cluster, 0).await, Some(Offset(300)));
    assert!(cluster.crash(BrokerId(0)).await);
    assert_eq!(
        log_end(&cluster, 0).await,
        None,
        "a crashed broker has no state"
    );
    assert!(cluster.restart(BrokerId(0)).await);
    let recovered = log_end(&cluster, 0).await.expect("restarted");
    assert!(
        recovered >= Offset(300),
        "flush=always keeps every append: {recovered:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_flush_crash_loses_only_the_unflushed_suffix() {
    let cluster = Cluster::start(config(|c| c.flush = Flush::Async), EngineOptions::default())
        .await
        .expect("start");
    send_all(&cluster, 200).await;
    // Cut follower 2 off so that, once restarted, it cannot fetch back what it lost.
    cluster.isolate(BrokerId(2));
    let more = send_all(&cluster, 50);
    let before = cluster
        .runtime()
        .inspect(cluster.topology().broker(BrokerId(2)), |s| {
            s.as_broker().map(|b| (b.log.clone(), b.flushed))
        })
        .await
        .flatten()
        .expect("follower up");
    assert!(cluster.crash(BrokerId(2)).await);
    assert!(cluster.restart(BrokerId(2)).await);
    let (log_before, flushed) = before;
    let (log_after, _) = cluster.broker_log(BrokerId(2)).await.expect("restarted");
    assert_eq!(
        log_after.log_end_offset(),
        flushed,
        "exactly the flushed prefix survives"
    );
    for o in 0..flushed.0 {
        assert_eq!(
            log_after.get(Offset(o)),
            log_before.get(Offset(o)),
            "offset {o}"
        );
    }
    cluster.heal();
    more.await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_replication_resumes() {
    let cluster = Cluster::start(config(|_| {}), EngineOptions::default())
        .await
        .expect("start");
    cluster.isolate(BrokerId(2));
    // The leader and follower 1 still make min.insync.replicas = 2 once follower 2 is out.
    let outcomes = send_all(&cluster, 500).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Acked(_))),
        "{outcomes:?}"
    );
    assert!(
        log_end(&cluster, 2).await < Some(Offset(500)),
        "the isolated follower lags"
    );
    cluster.heal();
    eventually("follower 2 catching up", async || {
        log_end(&cluster, 2).await == Some(Offset(500))
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backed_cluster_recovers_from_its_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EngineOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..EngineOptions::default()
    };
    let cluster = Cluster::start(config(|_| {}), options.clone())
        .await
        .expect("start");
    send_all(&cluster, 400).await;
    cluster.shutdown().await;
    drop(cluster);
    // The shutdown was clean: each broker's state file vouches for everything it saved, so
    // recovery leaves nothing unverified (after a crash it would report what follows the
    // last periodic checkpoint).
    {
        use insync::disk::{DiskStorage, Identity, OpenMode, StorageNode};
        let identity = Identity::new(
            insync::engine::IN_PROCESS_CLUSTER_ID,
            StorageNode::InProcess,
        )
        .expect("id");
        let disk = DiskStorage::open(dir.path(), &identity, OpenMode::Formatted).expect("open");
        for b in 0..3 {
            let (_, recovery) = disk.load(b).expect("load").expect("saved");
            assert_eq!(recovery.unverified_from, None, "broker {b}: {recovery:?}");
        }
    }
    // A new process over the same directory: every broker recovers its log from disk.
    let cluster = Cluster::start(config(|_| {}), options)
        .await
        .expect("restart");
    for b in 0..3 {
        assert!(
            log_end(&cluster, b).await >= Some(Offset(400)),
            "broker {b}"
        );
    }
    cluster.shutdown().await;
}

/// Setup: an idempotent producer on file-backed storage.
/// Steps: 50 sends, a clean shutdown; a new process over the same directory (once its
/// restarted brokers are back in the ISR), 50 more sends.
/// Expected: every send of both processes is acknowledged, the second's after the first's,
/// under two different producer ids. Each process's producer asks the controller for its
/// producer id (KIP-98 `InitProducerId`), and the controller's next id is durable, so the
/// second never reuses the first's id, whose sequence numbers the brokers remember. With the
/// topology's fixed id the brokers took the second process's records (sequences 0 to 49
/// again) for retries of the first's and acknowledged them at the first's offsets without
/// writing them: 50 acknowledged records lost (the log ends at 50).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_idempotent_process_on_the_same_directory_gets_a_producer_id_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EngineOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..EngineOptions::default()
    };
    let mut log = None;
    for run in 0..2 {
        let cluster = Cluster::start(config(|c| c.idempotence = true), options.clone())
            .await
            .expect("start");
        // A restarted broker rejoins the ISR by catching up (KIP-380); until then
        // min.insync.replicas=2 refuses sends, which is not what this test is about.
        assert!(
            cluster.wait_for_isr(3, Duration::from_secs(10)).await,
            "run {run}: the ISR is not full again within 10 s"
        );
        let outcomes = send_all(&cluster, 50).await;
        for (i, o) in outcomes.iter().enumerate() {
            assert!(
                matches!(o, Outcome::Acked(_)),
                "run {run}, send {i}: {o:?} ({outcomes:?})"
            );
        }
        log = cluster.broker_log(BrokerId(0)).await;
        cluster.shutdown().await;
    }
    let (log, _) = log.expect("broker 0 is up");
    let ids: Vec<_> = log
        .iter()
        .map(|r| r.producer.expect("idempotent").0)
        .collect();
    assert_eq!(ids.len(), 100);
    assert!(ids[..50].iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(ids[50..].iter().all(|id| *id == ids[50]), "{ids:?}");
    assert_ne!(
        ids[0], ids[50],
        "the second process reused the first's producer id"
    );
}

/// Setup: one runtime thread, so the producer cannot take records while the test sends.
/// Steps: 3,000 sends, each polled once and dropped if the producer's mailbox (1,024) is
/// full, as a caller's timeout would drop it; then every send that was taken is awaited.
/// Expected: every taken send is answered and no waiter is left behind: a send cancelled
/// before its record was handed over takes its waiter with it (it stayed in the pending map
/// for the cluster's life before).
#[tokio::test(flavor = "current_thread")]
async fn a_send_cancelled_before_the_producer_takes_it_leaves_no_waiter() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let cluster = Cluster::start(config(|_| {}), EngineOptions::default())
        .await
        .expect("start");
    let mut taken = Vec::new();
    let mut cancelled = 0;
    for i in 0..3000u32 {
        let mut send = std::pin::pin!(cluster.send(i.to_le_bytes().to_vec()));
        match send.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(ticket) => taken.push(ticket),
            Poll::Pending => cancelled += 1,
        }
    }
    assert!(cancelled > 0, "the mailbox never filled");
    for ticket in taken {
        tokio::time::timeout(Duration::from_secs(20), ticket)
            .await
            .expect("an answer within 20 s");
    }
    assert_eq!(cluster.waiting_sends(), 0, "{cancelled} cancelled sends");
    cluster.shutdown().await;
}

/// Setup: consumer commit `manual` (enable.auto.commit=false).
/// Steps: send 10 records; read them all; commit offset 6; commit 2 (backwards) and 99 (past
/// what was read); crash the consumer and restart it.
/// Expected: the committed offset is 6, then 6, then 10; the restarted consumer re-reads only
/// from its committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_commit_is_where_a_restarted_consumer_resumes() {
    use insync_model::config::ConsumerCommit;
    let cluster = Cluster::start(
        config(|c| c.consumer_commit = ConsumerCommit::Manual),
        EngineOptions::default(),
    )
    .await
    .expect("start");
    send_all(&cluster, 10).await;
    let mut read = Vec::new();
    while read.len() < 10 {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(
            !batch.is_empty(),
            "the consumer reads the acknowledged records"
        );
        read.extend(batch);
    }
    assert_eq!(
        cluster.committed().await,
        Some(Offset::ZERO),
        "manual: nothing is committed until the application says so"
    );
    assert_eq!(cluster.commit(Offset(6)).await, Some(Offset(6)));
    assert_eq!(cluster.committed().await, Some(Offset(6)));
    assert_eq!(cluster.commit(Offset(2)).await, Some(Offset(6)));
    assert_eq!(
        cluster.committed().await,
        Some(Offset(6)),
        "never backwards"
    );
    // Crash before committing the rest: offsets 6..10 are read again.
    assert!(cluster.crash_consumer().await);
    assert!(cluster.restart_consumer().await);
    let mut again = Vec::new();
    while again.len() < 4 {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(!batch.is_empty(), "the restarted consumer reads again");
        again.extend(batch);
    }
    let offsets: Vec<u64> = again.iter().map(|r| r.offset.0).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    assert_eq!(cluster.commit(Offset(99)).await, Some(Offset(10)));
    assert_eq!(
        cluster.committed().await,
        Some(Offset(10)),
        "clamped to the position"
    );
    cluster.shutdown().await;
}

/// Setup: three producers (three producer ids, one connection each), idempotence.
/// Steps: 9,000 records sent through them in turn; the leader crashes partway.
/// Expected: nothing lost or duplicated; every producer's records are acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_producers_through_a_leader_crash_lose_and_duplicate_nothing() {
    let report = run(
        config(|c| {
            c.idempotence = true;
            c.retries = 5;
        }),
        RunOptions {
            records: 9_000,
            faults: vec![Fault::CrashLeader],
            seed: 5,
            engine: EngineOptions {
                producers: 3,
                ..EngineOptions::default()
            },
            ..RunOptions::default()
        },
    )
    .await
    .expect("the run completes");
    assert_eq!(report.producers, 3);
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.duplicated, 0, "{report:?}");
    assert_eq!(report.unseen, 0, "{report:?}");
    assert_eq!(report.acknowledged + report.indeterminate, 9_000);
}

/// Setup: one producer, four application tasks sending at once.
/// Steps: each task sends 2,000 records of its own; the consumer reads them all.
/// Expected: every send has a correlation id no other send has, resolves with it, and the
/// offset it was acknowledged at holds that send's record. (Numbering a record and handing it
/// to the producer under separate locks let two senders swap places, so outcomes resolved
/// each other's waiters; the ids now travel with the records, so no numbering has to agree.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_each_learn_the_offset_of_their_own_record() {
    use insync_model::types::Value;
    use std::collections::HashMap;
    use std::sync::Arc;
    const TASKS: u64 = 4;
    const EACH: u64 = 2_000;
    let cluster = Arc::new(
        Cluster::start(config(|_| {}), EngineOptions::default())
            .await
            .expect("start"),
    );
    let senders: Vec<_> = (0..TASKS)
        .map(|task| {
            let cluster = Arc::clone(&cluster);
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..EACH {
                    let value = (task * EACH + i).to_le_bytes().to_vec();
                    sent.push((value.clone(), cluster.send(value).await));
                    if i % 64 == 0 {
                        tokio::task::yield_now().await; // interleave with the other tasks
                    }
                }
                let mut acked = Vec::new();
                for (value, rx) in sent {
                    let sent_as = rx.id();
                    let resolved = tokio::time::timeout(Duration::from_secs(20), rx)
                        .await
                        .expect("an outcome within 20 s");
                    assert_eq!(resolved.id, sent_as, "resolved as another send");
                    match resolved.outcome {
                        Outcome::Acked(offset) => acked.push((sent_as, offset, value)),
                        other => panic!("no fault, yet {other:?}"),
                    }
                }
                acked
            })
        })
        .collect();
    let mut expected: HashMap<Offset, Vec<u8>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for sender in senders {
        for (id, offset, value) in sender.await.expect("sender task") {
            assert!(ids.insert(id), "two sends carry {id:?}");
            assert!(
                expected.insert(offset, value).is_none(),
                "two sends acknowledged at {offset:?}"
            );
        }
    }
    assert_eq!(expected.len() as u64, TASKS * EACH);
    let mut read = 0;
    while read < TASKS * EACH {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(!batch.is_empty(), "the consumer reads every record");
        for record in batch {
            let Value::Bytes(bytes) = &record.value else {
                panic!("the engine carries bytes, got {:?}", record.value);
            };
            assert_eq!(
                expected.get(&record.offset).map(Vec::as_slice),
                Some(&bytes[..]),
                "offset {:?} holds another send's record",
                record.offset
            );
            read += 1;
        }
    }
    Arc::try_unwrap(cluster)
        .unwrap_or_else(|_| panic!("the cluster is still shared"))
        .shutdown()
        .await;
}

/// Setup: idempotence, `message.max.bytes` 64 KiB (fetch limits 16 KiB), records of 8 KiB.
/// Steps: send 40 records, the 11th and 30th of them 100 KiB; read everything back.
/// Expected: the two large records fail at once with RECORD_TOO_LARGE (not retried, never
/// appended); the other 38 are acknowledged at consecutive offsets (the refused ones leave no
/// sequence gap) and read back, unchanged, though a fetch carries two of them at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_message_max_bytes_is_refused_and_the_rest_arrive() {
    use insync_model::limits::SizeLimits;
    use insync_model::msg::ErrorCode;
    let cluster = Cluster::start(
        config(|c| {
            c.idempotence = true;
            c.retries = 5;
            c.max_in_flight = 5;
        }),
        EngineOptions {
            limits: SizeLimits {
                message_bytes_max: 64 * 1024,
                replica_fetch_bytes_max: 16 * 1024,
                fetch_bytes_max: 16 * 1024,
            },
            ..EngineOptions::default()
        },
    )
    .await
    .expect("start");
    let value = |i: usize| {
        let size = if i == 10 || i == 29 {
            100 * 1024
        } else {
            8 * 1024
        };
        vec![i as u8; size]
    };
    let mut receivers = Vec::new();
    for i in 0..40 {
        receivers.push(cluster.send(value(i)).await);
    }
    let mut acked = Vec::new();
    for (i, rx) in receivers.into_iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("an outcome within 20 s")
            .outcome;
        if i == 10 || i == 29 {
            assert_eq!(
                outcome,
                Outcome::Failed(ErrorCode::RecordTooLarge),
                "record {i}"
            );
        } else {
            match outcome {
                Outcome::Acked(offset) => acked.push((offset, i)),
                other => panic!("record {i}: {other:?}"),
            }
        }
    }
    let offsets: Vec<u64> = acked.iter().map(|(o, _)| o.0).collect();
    assert_eq!(offsets, (0..38).collect::<Vec<_>>());
    let mut read = Vec::new();
    while read.len() < 38 {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(
            !batch.is_empty(),
            "the consumer reads the acknowledged records"
        );
        read.extend(batch);
    }
    for ((offset, i), record) in acked.iter().zip(&read) {
        assert_eq!(record.offset, *offset);
        match &record.value {
            insync_model::types::Value::Bytes(b) => assert_eq!(&b[..], &value(*i)[..]),
            other => panic!("{other:?}"),
        }
    }
    cluster.shutdown().await;
}

/// Setup: consumer commit `manual`, one tokio thread (so nothing runs between two awaits
/// unless the caller waits for it).
/// Steps: read 10 records; commit 6 and crash the consumer at once; restart it, let it read
/// again, commit 10 and crash it at once; restart it.
/// Expected: each restarted consumer starts from the offset committed just before the crash:
/// `commit` returned after the consumer saved it, as `commitSync` does. (When `commit` only
/// queued the request, the crash dropped it and the consumer restarted at 0.)
#[tokio::test]
async fn commit_returns_after_the_offset_is_saved() {
    use insync_model::config::ConsumerCommit;
    let cluster = Cluster::start(
        config(|c| c.consumer_commit = ConsumerCommit::Manual),
        EngineOptions::default(),
    )
    .await
    .expect("start");
    send_all(&cluster, 10).await;
    let mut read = 0;
    while read < 10 {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(!batch.is_empty(), "the consumer reads");
        read += batch.len();
    }
    assert_eq!(cluster.commit(Offset(6)).await, Some(Offset(6)));
    assert!(cluster.crash_consumer().await);
    assert!(cluster.restart_consumer().await);
    assert_eq!(cluster.committed().await, Some(Offset(6)));
    let mut again = 0;
    while again < 4 {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(!batch.is_empty(), "the restarted consumer reads from 6");
        again += batch.len();
    }
    assert_eq!(cluster.commit(Offset(10)).await, Some(Offset(10)));
    assert!(cluster.crash_consumer().await);
    assert!(cluster.restart_consumer().await);
    assert_eq!(cluster.committed().await, Some(Offset(10)));
    cluster.shutdown().await;
}

/// Setup: two producers.
/// Steps: send three records through producer 0 and two through producer 1.
/// Expected: each ticket carries its producer and a correlation id numbered across the
/// cluster in send order, resolves with the same id, and the offset it was acknowledged at
/// holds its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_send_carries_its_correlation_id_to_its_outcome() {
    use insync::engine::SendId;
    use insync_model::types::{CorrelationId, Value};
    let cluster = Cluster::start(
        config(|_| {}),
        EngineOptions {
            producers: 2,
            ..EngineOptions::default()
        },
    )
    .await
    .expect("start");
    let mut tickets = Vec::new();
    for (i, producer) in [0, 0, 1, 0, 1].into_iter().enumerate() {
        let value = vec![i as u8; 16];
        tickets.push((value.clone(), cluster.send_via(producer, value).await));
    }
    let ids: Vec<SendId> = tickets.iter().map(|(_, t)| t.id()).collect();
    let id = |producer, n| SendId {
        producer,
        correlation: CorrelationId(n),
    };
    assert_eq!(ids, [id(0, 0), id(0, 1), id(1, 2), id(0, 3), id(1, 4)]);
    let mut acked = Vec::new();
    for (value, ticket) in tickets {
        let sent_as = ticket.id();
        let resolved = tokio::time::timeout(Duration::from_secs(20), ticket)
            .await
            .expect("an outcome within 20 s");
        assert_eq!(resolved.id, sent_as);
        match resolved.outcome {
            Outcome::Acked(offset) => acked.push((offset, value)),
            other => panic!("no fault, yet {other:?}"),
        }
    }
    let mut read = std::collections::HashMap::new();
    while read.len() < acked.len() {
        let batch = cluster.poll(Duration::from_secs(10)).await;
        assert!(!batch.is_empty(), "the consumer reads every record");
        for r in batch {
            read.insert(r.offset, r.value);
        }
    }
    for (offset, value) in acked {
        assert_eq!(read.get(&offset), Some(&Value::Bytes(value.into())));
    }
    assert_eq!(cluster.read_count(), 5);
    cluster.shutdown().await;
}

/// Setup: one producer.
/// Steps: send a record and await it; crash the producer; send a record; restart the
/// producer; send another.
/// Expected: the record sent while the producer was down fails at once
/// (`LEADER_NOT_AVAILABLE`); the last send, the restarted producer's first record, learns the
/// offset of its own record. (Named by the producer's count, the result of handing a record
/// to a down producer was dropped and the application's count ran ahead of the producer's;
/// and a restarted producer counts from 0 again, so its first result named the record sent
/// before the crash and the last send never learned its outcome.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_the_producer_does_not_take_fails_at_once_and_a_restart_confuses_no_outcome() {
    use insync::engine::SendId;
    use insync_model::msg::ErrorCode;
    use insync_model::types::{CorrelationId, Value};
    let cluster = Cluster::start(config(|_| {}), EngineOptions::default())
        .await
        .expect("start");
    let id = |n| SendId {
        producer: 0,
        correlation: CorrelationId(n),
    };
    let first = cluster.send(vec![1; 16]).await;
    assert_eq!(first.id(), id(0));
    let first = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("an outcome within 20 s");
    assert!(matches!(first.outcome, Outcome::Acked(_)), "{first:?}");
    let producer = cluster.topology().producer();
    assert!(cluster.runtime().crash(producer).await);
    let refused = cluster.send(vec![2; 16]).await;
    assert_eq!(refused.id(), id(1));
    let refused = tokio::time::timeout(Duration::from_secs(1), refused)
        .await
        .expect("known at once");
    assert_eq!(
        refused.outcome,
        Outcome::Failed(ErrorCode::LeaderNotAvailable)
    );
    assert_eq!(cluster.runtime().restart(producer).await.ok(), Some(true));
    let ticket = cluster.send(vec![3; 16]).await;
    assert_eq!(ticket.id(), id(2));
    let resolved = tokio::time::timeout(Duration::from_secs(20), ticket)
        .await
        .expect("an outcome within 20 s");
    assert_eq!(resolved.id, id(2));
    let Outcome::Acked(offset) = resolved.outcome else {
        panic!("no fault, yet {:?}", resolved.outcome);
    };
    let (log, _) = cluster
        .broker_log(cluster.leader().await.expect("a leader"))
        .await
        .expect("the leader's log");
    assert_eq!(
        log.get(offset).map(|r| r.value.clone()),
        Some(Value::Bytes(vec![3u8; 16].into()))
    );
    cluster.shutdown().await;
}

/// Setup: `insync run --acks 1 --faults crash-leader --records 50000 --seed 4
/// --virtual-clock`, which loses one batch of 500 acknowledged records (README).
/// Steps: run it, keeping its history.
/// Expected: the report's `lost` is the history checker's `lost-write` count on that history,
/// and also what "acknowledged, yet not held at its offset by the final leader" counts on it:
/// `insync run` and `insync fuzz` mean one thing by lost.
#[test]
fn insync_run_and_the_history_checker_agree_on_lost() {
    use insync::checker::{check_history, AnomalyKind};
    use insync::history::{Fun, OpType};
    let tokio = insync::engine::paused_runtime().expect("tokio");
    let report = tokio
        .block_on(run(
            config(|c| c.acks = insync_model::config::Acks::One),
            RunOptions {
                records: 50_000,
                faults: vec![Fault::CrashLeader],
                seed: 4,
                engine: EngineOptions {
                    seed: 4,
                    ..EngineOptions::default()
                },
                virtual_clock: true,
                keep_history: true,
                ..RunOptions::default()
            },
        ))
        .expect("the run completes");
    let history = report.history.clone().expect("kept");
    let verdict = check_history(&history);
    assert_eq!(verdict, report.verdict);
    assert_eq!(report.lost, verdict.count(AnomalyKind::LostWrite) as u64);
    let final_log: std::collections::HashMap<u64, u64> = history
        .ops
        .iter()
        .find_map(|op| match &op.fun {
            Fun::FinalRead { records, .. } => {
                Some(records.iter().map(|r| (r.offset, r.value)).collect())
            }
            _ => None,
        })
        .expect("a final read");
    let not_held = history
        .ops
        .iter()
        .filter(|op| op.op_type == OpType::Ok)
        .filter(|op| {
            matches!(&op.fun, Fun::Send { value, offset: Some(o), .. }
                if final_log.get(o) != Some(value))
        })
        .count() as u64;
    assert_eq!(report.lost, 500, "{:?}", report.lost_examples);
    assert_eq!(not_held, report.lost);
    assert_eq!(report.acknowledged, verdict.acknowledged as u64);
}

/// Setup: a cluster in memory, and one asked for broker disks and a data directory at once.
/// Expected: damaging files without broker disks, and a cluster with two storages, are
/// errors that say why, not panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_faults_without_broker_disks_are_refused_with_a_reason() {
    use insync::engine::FileDamage;
    let cluster = Cluster::start(config(|_| {}), EngineOptions::default())
        .await
        .expect("start");
    let refused = cluster
        .damage_files(BrokerId(0), FileDamage::LostFsync)
        .expect_err("no broker disks");
    assert!(refused.to_string().contains("no broker disks"), "{refused}");
    cluster.shutdown().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let refused = Cluster::builder(config(|_| {}))
        .options(EngineOptions {
            data_dir: Some(dir.path().to_path_buf()),
            ..EngineOptions::default()
        })
        .broker_disks(Duration::ZERO)
        .start()
        .await
        .err()
        .expect("two storages are refused");
    assert!(refused.to_string().contains("INVALID_CONFIG"), "{refused}");
}

/// Setup: three brokers on broker disks (files, with fault switches).
/// Steps: send records; crash a follower; lose its last fsynced batch; restart it.
/// Expected: the crash let the files be damaged, and the broker's storage reports its
/// restart (a recovery or a refused start) among the disks' events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_disks_take_damage_while_a_broker_is_down_and_report_its_restart() {
    use insync::engine::FileDamage;
    use insync::history::DiskEvent;
    let cluster = Cluster::builder(config(|_| {}))
        .broker_disks(Duration::ZERO)
        .start()
        .await
        .expect("start");
    let outcomes = send_all(&cluster, 20).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Acked(_))));
    let disks = cluster.broker_disks().expect("broker disks").clone();
    let follower = cluster.crash_follower(0).await.expect("a follower crashed");
    disks.take_events();
    let damage = cluster
        .damage_files(follower, FileDamage::LostFsync)
        .expect("the files are there");
    assert!(damage.is_some(), "a batch to lose");
    // It recovers or refuses to start (then the restart fails): the events below say which.
    let _ = cluster.restart(follower).await;
    let events = disks.take_events();
    assert!(
        events.iter().any(|(b, e)| *b == follower.0
            && matches!(e, DiskEvent::Recovered { .. } | DiskEvent::Refused { .. })),
        "{events:?}"
    );
    cluster.shutdown().await;
}

/// Setup: `insync run --producers 3 --virtual-clock`, no faults.
/// Expected: the checker's verdict is valid: the producers' records interleave in the log in
/// any order, and the checker compares acknowledged offsets within one producer only.
#[test]
fn a_run_with_several_producers_has_a_valid_verdict() {
    let tokio = insync::engine::paused_runtime().expect("tokio");
    let report = tokio
        .block_on(run(
            config(|_| {}),
            RunOptions {
                records: 3_000,
                seed: 1,
                engine: EngineOptions {
                    seed: 1,
                    producers: 3,
                    ..EngineOptions::default()
                },
                virtual_clock: true,
                ..RunOptions::default()
            },
        ))
        .expect("the run completes");
    assert_eq!(report.acknowledged, 3_000, "{report:?}");
    assert!(report.verdict.is_valid(), "{:?}", report.verdict.anomalies);
}
