#!/usr/bin/env python3
"""Producer throughput and latency of a stock client (librdkafka, via confluent-kafka) against
`insync run --kafka-listen`.

    python3 clients/bench_producer.py BOOTSTRAP [--records N] [--size BYTES] [--acks all|1]
                                      [--idempotence] [--linger-ms MS]

Sends N records of BYTES bytes as fast as the client takes them, waits for every delivery
report, and prints one JSON object: records acknowledged, failed, seconds from the first send
to the last report, records/s, MB/s, and the send -> acknowledgement latency percentiles
(milliseconds) of the acknowledged records. The same measure as `insync run`'s "throughput"
and "send -> ack" lines, so the two can be put side by side.
"""

import json
import sys
import time


def arg(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        from confluent_kafka import Producer
    except ImportError as e:
        print(json.dumps({"skipped": str(e)}))
        return 2
    bootstrap = argv[1]
    records = int(arg(argv, "--records", "100000"))
    size = int(arg(argv, "--size", "100"))
    acks = arg(argv, "--acks", "all")
    idempotence = "--idempotence" in argv
    linger = int(arg(argv, "--linger-ms", "5"))
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "enable.idempotence": idempotence,
        "linger.ms": linger,
        "queue.buffering.max.messages": 1000000,
    })
    sent_at = [0.0] * records
    latencies = []
    failed = [0]
    errors = {}

    def on_delivery(err, msg):
        if err is None:
            i = int.from_bytes(msg.value()[:8], "little")
            latencies.append((time.perf_counter() - sent_at[i]) * 1000.0)
        else:
            failed[0] += 1
            errors[str(err)] = errors.get(str(err), 0) + 1

    padding = b"\0" * max(0, size - 8)
    start = time.perf_counter()
    for i in range(records):
        value = i.to_bytes(8, "little") + padding
        while True:
            try:
                sent_at[i] = time.perf_counter()
                p.produce("insync", value=value, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    unresolved = p.flush(120)
    seconds = time.perf_counter() - start
    latencies.sort()
    acked = len(latencies)
    import confluent_kafka
    print(json.dumps({
        "client": "confluent-kafka %s (librdkafka %s)" % (
            confluent_kafka.__version__, confluent_kafka.libversion()[0]),
        "settings": "acks=%s enable.idempotence=%s linger.ms=%d" % (
            acks, str(idempotence).lower(), linger),
        "records": records,
        "record_bytes": size,
        "acknowledged": acked,
        "failed": failed[0],
        "errors": errors,
        "unresolved": unresolved,
        "seconds": round(seconds, 3),
        "records_per_second": round(acked / seconds),
        "megabytes_per_second": round(acked * size / seconds / 1e6, 2),
        "ack_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                   "p999": percentile(latencies, 99.9)},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
