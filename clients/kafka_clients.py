#!/usr/bin/env python3
"""Stock Kafka clients against `insync run --kafka-listen` or `insync broker --kafka-listen`.

    python3 clients/kafka_clients.py CASE BOOTSTRAP [--records N] [--seconds S] [--history FILE]

BOOTSTRAP is the listener list `insync run` prints on stderr (`kafka listeners: ...`), or
the `--kafka-listen` list every `insync broker` of a cluster of processes was given.
Each case prints one JSON object (its verdict) as the last line of stdout and exits 0 when
the verdict is what the case expects (`ok`), 1 when not, 2 when a client module is missing.

Cases:
  idempotent   confluent-kafka (librdkafka), enable.idempotence=true, acks=all: sends
               --records records paced over --seconds (so a fault scheduled meanwhile hits the
               run), then reads the partition back. ok: every acknowledged record read exactly
               once, none read twice.
  acks1        the same with acks=1 and no idempotence. Reports losses and duplicates; ok
               whatever they are (Kafka allows both), as long as something was acknowledged.
  roundtrip    kafka-python producer and consumer: 1,000 records sent and read back in order.
  commit       confluent-kafka consumer, enable.auto.commit=false, assign(): reads, commits,
               closes; a new consumer of the same group resumes at the committed offset.
  unsupported  a raw ApiVersions v99 request gets UNSUPPORTED_VERSION (35) in a v0 answer.
  subscribe-librdkafka, subscribe-kafka-python
               that client's consumer subscribe()s (JoinGroup, SyncGroup, Heartbeat) with a
               new group, reads 40 records from offset 0, commits offset 40, closes
               (LeaveGroup); a second consumer of the group subscribes and resumes at 40.
  leader       prints the partition's leader as Metadata names it ({"leader": ID}), once
               there is one (a test kills that broker's process).

With --history FILE, idempotent and acks1 also write what the clients saw as a history in
the format `insync fuzz` writes (send i is value i+1: invoked, then acknowledged at its offset
or indeterminate with librdkafka's error; the read back is a consumer poll and the final read),
which `insync fuzz check FILE` judges with the Jepsen-named checker.
"""

import json
import socket
import struct
import sys
import time

TOPIC = "insync"


def verdict(result):
    print(json.dumps(result))
    sys.exit(0 if result.get("ok") else 1)


def read_back(bootstrap, expected_offsets, deadline_s=30.0, group="reader"):
    """Reads partition 0 from offset 0 until `expected_offsets` is reached; returns
    (offset, value) pairs."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.assign([TopicPartition(TOPIC, 0, 0)])
    values = []
    last = -1
    deadline = time.time() + deadline_s
    while last + 1 < expected_offsets and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        values.append((m.offset(), m.value()))
        last = m.offset()
    c.close()
    return values


def produce_confluent(bootstrap, records, seconds, idempotent):
    from confluent_kafka import Producer

    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all" if idempotent else "1",
        "enable.idempotence": idempotent,
        "linger.ms": 5,
        "message.timeout.ms": 60000,
        "retries": 1000000 if idempotent else 5,
    }
    p = Producer(config)
    acked, failed = {}, {}
    start = time.time()
    # (ms since start, what, send index, offset or error), in the order the client saw them.
    events = []

    def ms():
        return int((time.time() - start) * 1000)

    def on_delivery(err, msg):
        key = msg.value()
        index = int(key.split(b"-")[-1])
        if err is None:
            acked[key] = msg.offset()
            events.append((ms(), "ok", index, msg.offset()))
        else:
            failed[key] = str(err)
            events.append((ms(), "info", index, str(err)))

    run = "%x" % int(time.time() * 1000)
    for i in range(records):
        value = ("%s-%07d" % (run, i)).encode()
        while True:
            try:
                p.produce(TOPIC, value=value, partition=0, on_delivery=on_delivery)
                events.append((ms(), "invoke", i, None))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        # Pace: record i goes out at i/records of the way through `seconds`.
        ahead = start + seconds * (i + 1) / records - time.time()
        if ahead > 0:
            time.sleep(ahead)
    remaining = p.flush(60)
    produce_confluent.events = events
    produce_confluent.start = start
    return run, acked, failed, remaining


def judge(bootstrap, run, acked, failed, remaining, records):
    ends = [o for o in acked.values() if o >= 0]
    expected = max(ends) + 1 if ends else 0
    read = read_back(bootstrap, expected)
    ours_at = [(o, v) for o, v in read if v.startswith(run.encode() + b"-")]
    ours = [v for _, v in ours_at]
    if HISTORY_FILE:
        write_history(HISTORY_FILE, ours_at)
    counts = {}
    for v in ours:
        counts[v] = counts.get(v, 0) + 1
    lost = [v.decode() for v in acked if v not in counts]
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    return {
        "records": records,
        "acknowledged": len(acked),
        "failed": len(failed),
        "unresolved": remaining,
        "read": len(ours),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "duplicated": duplicated,
        "failure_examples": list(failed.values())[:3],
    }


HISTORY_FILE = None


def write_history(path, read):
    """The producer's sends and the read back, as a history `insync fuzz check` judges.

    A delivery error is indeterminate (`info`): librdkafka reports a timeout or a retriable
    error after its retries without knowing whether an attempt was appended. A send with no
    delivery report (still queued at the end) has no completion, which is indeterminate too.
    """
    ops = []

    def op(at_ms, process, kind, fun):
        fun = dict(fun)
        fun.update(index=len(ops), at_ms=at_ms, process=process, type=kind)
        ops.append(fun)

    for at_ms, what, index, detail in produce_confluent.events:
        value = index + 1
        if what == "invoke":
            op(at_ms, "producer", "invoke", {"f": "send", "value": value, "offset": None, "error": None})
        elif what == "ok":
            op(at_ms, "producer", "ok", {"f": "send", "value": value, "offset": detail, "error": None})
        else:
            op(at_ms, "producer", "info", {"f": "send", "value": value, "offset": None, "error": detail})
    records = [{"offset": o, "value": int(v.split(b"-")[-1]) + 1} for o, v in read]
    end_ms = int((time.time() - produce_confluent.start) * 1000)
    op(end_ms, "consumer", "invoke", {"f": "poll", "records": []})
    op(end_ms, "consumer", "ok", {"f": "poll", "records": records})
    op(end_ms, "final", "info", {"f": "final-read", "leader": None, "records": records})
    with open(path, "w") as f:
        json.dump({"ops": ops}, f)


def case_idempotent(bootstrap, records, seconds):
    run, acked, failed, remaining = produce_confluent(bootstrap, records, seconds, True)
    result = judge(bootstrap, run, acked, failed, remaining, records)
    result.update(case="idempotent", client="confluent-kafka", settings="enable.idempotence=true acks=all")
    result["ok"] = (result["acknowledged"] > 0 and result["lost"] == 0
                    and result["duplicated"] == 0)
    verdict(result)


def case_acks1(bootstrap, records, seconds):
    run, acked, failed, remaining = produce_confluent(bootstrap, records, seconds, False)
    result = judge(bootstrap, run, acked, failed, remaining, records)
    result.update(case="acks1", client="confluent-kafka", settings="acks=1 enable.idempotence=false")
    result["ok"] = result["acknowledged"] > 0
    verdict(result)


def case_roundtrip(bootstrap, records):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    servers = bootstrap.split(",")
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", retries=5)
    run = "rt%x" % int(time.time() * 1000)
    futures = [producer.send(TOPIC, value=("%s-%05d" % (run, i)).encode(), partition=0)
               for i in range(records)]
    producer.flush(30)
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek(tp, min(offsets))
    got = []
    for m in consumer:
        if m.value.startswith(run.encode()):
            got.append(m.value.decode())
        if len(got) == records:
            break
    consumer.close()
    expected = ["%s-%05d" % (run, i) for i in range(records)]
    verdict({
        "case": "roundtrip", "client": "kafka-python", "records": records,
        "acknowledged": len(offsets), "read": len(got),
        "in_order": got == expected, "ok": got == expected,
    })


def case_commit(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_STORED

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(TOPIC, value=b"c-%03d" % i, partition=0)
    p.flush(30)
    group = "g-%x" % int(time.time() * 1000)
    conf = {"bootstrap.servers": bootstrap, "group.id": group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    c = Consumer(conf)
    c.assign([TopicPartition(TOPIC, 0, 0)])
    read = []
    deadline = time.time() + 20
    while len(read) < 40 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            read.append(m.offset())
    committed_at = read[-1] + 1 if read else -1
    c.commit(offsets=[TopicPartition(TOPIC, 0, committed_at)], asynchronous=False)
    c.close()
    c = Consumer(conf)
    c.assign([TopicPartition(TOPIC, 0, OFFSET_STORED)])
    committed = c.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset
    resumed = None
    deadline = time.time() + 20
    while resumed is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            resumed = m.offset()
    c.close()
    verdict({
        "case": "commit", "client": "confluent-kafka", "committed_at": committed_at,
        "committed_fetched": committed, "resumed_at": resumed,
        "ok": committed_at > 0 and committed == committed_at and resumed == committed_at,
    })


def case_unsupported(bootstrap):
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    # ApiVersions (18) v99, correlation id 7, null client id, no tagged fields.
    body = struct.pack(">hhih", 18, 99, 7, -1) + b"\x00"
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    answer = s.recv(size, socket.MSG_WAITALL)
    correlation, error = struct.unpack(">ih", answer[:6])
    s.close()
    verdict({"case": "unsupported", "correlation_id": correlation, "error_code": error,
             "ok": correlation == 7 and error == 35})


def subscribe_librdkafka(bootstrap, group, records):
    """One consumer's life with librdkafka: subscribe, read `records` records, commit what it
    read, close (LeaveGroup). Returns (first offset read, committed offset fetched before
    reading, offset committed)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": 10000})
    c.subscribe([TOPIC])
    read = []
    deadline = time.time() + 30
    while len(read) < records and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            read.append(m.offset())
    committed_before = c.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset
    committed_at = read[-1] + 1 if read else -1
    if read:
        c.commit(offsets=[TopicPartition(TOPIC, 0, committed_at)], asynchronous=False)
    c.close()
    return (read[0] if read else None), committed_before, committed_at


def subscribe_kafka_python(bootstrap, group, records):
    """subscribe_librdkafka with kafka-python's KafkaConsumer."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    tp = TopicPartition(TOPIC, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=10000)
    c.subscribe([TOPIC])
    read = []
    deadline = time.time() + 30
    while len(read) < records and time.time() < deadline:
        for batch in c.poll(timeout_ms=500, max_records=records - len(read)).values():
            read.extend(m.offset for m in batch)
    committed_before = c.committed(tp)
    committed_at = read[-1] + 1 if read else -1
    if read:
        c.commit({tp: OffsetAndMetadata(committed_at, "", -1)})
    c.close()
    return (read[0] if read else None), committed_before, committed_at


def case_subscribe(bootstrap, client):
    """Two consumers of one group, one after the other, each subscribe()d: the second resumes
    where the first committed."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(TOPIC, value=b"s-%03d" % i, partition=0)
    p.flush(30)
    group = "sub-%s-%x" % (client, int(time.time() * 1000))
    life = subscribe_librdkafka if client == "librdkafka" else subscribe_kafka_python
    try:
        first_read, first_committed, committed_at = life(bootstrap, group, 40)
        resumed_at, committed_seen, _ = life(bootstrap, group, 10)
    except Exception as e:  # the client gave up (a refused join, a commit it could not make)
        verdict({"case": "subscribe-" + client, "group": group, "error": repr(e), "ok": False})
    verdict({
        "case": "subscribe-" + client, "group": group,
        "first_read_at": first_read, "committed_before_first": first_committed,
        "committed_at": committed_at, "committed_seen_by_second": committed_seen,
        "resumed_at": resumed_at,
        "ok": (first_read == 0 and committed_at == 40 and committed_seen == 40
               and resumed_at == 40),
    })


def case_leader(bootstrap):
    """The partition's leader, as Metadata names it (waits up to 20 s for one)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap})
    deadline = time.time() + 20
    leader = -1
    while leader < 0 and time.time() < deadline:
        try:
            leader = p.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions[0].leader
        except Exception:  # not answered yet: the cluster is starting
            time.sleep(0.2)
    verdict({"case": "leader", "leader": leader, "ok": leader >= 0})


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    case, bootstrap = argv[1], argv[2]
    records = int(argv[argv.index("--records") + 1]) if "--records" in argv else 10000
    seconds = float(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 20.0
    global HISTORY_FILE
    HISTORY_FILE = argv[argv.index("--history") + 1] if "--history" in argv else None
    try:
        if case in ("idempotent", "acks1", "commit", "leader") or case.startswith("subscribe"):
            import confluent_kafka  # noqa: F401
        if case in ("roundtrip", "subscribe-kafka-python"):
            import kafka  # noqa: F401
    except ImportError as e:
        print(json.dumps({"case": case, "skipped": str(e)}))
        return 2
    if case == "idempotent":
        case_idempotent(bootstrap, records, seconds)
    elif case == "acks1":
        case_acks1(bootstrap, records, seconds)
    elif case == "roundtrip":
        case_roundtrip(bootstrap, min(records, 1000))
    elif case == "commit":
        case_commit(bootstrap)
    elif case == "unsupported":
        case_unsupported(bootstrap)
    elif case == "leader":
        case_leader(bootstrap)
    elif case == "subscribe-librdkafka":
        case_subscribe(bootstrap, "librdkafka")
    elif case == "subscribe-kafka-python":
        case_subscribe(bootstrap, "kafka-python")
    else:
        print("unknown case %r" % case, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
