"""What one Kafka transaction costs, by the number of partitions it writes, with the client the
worker uses (confluent-kafka / librdkafka) and the Java client beside it, on the same broker in the
same run.

    .venv/bin/python bench/txn_cycle.py [--cycles 150] [--records 8] [--spread 1 2 4 8]

One fresh one-node Apache Kafka (KRaft, the Maven jars); five output topics (a trackguard batch
writes its changelog and up to four verdict topics) and a one-partition source topic whose offset
each transaction commits under a real consumer group's metadata. A cycle is what
`TransactionalHotPath.finish` does per batch: begin; `--records` records to each output topic,
spread over N of its partitions; flush; send the offset; commit. For each N in `--spread`, the
median of the flush (begin + produce + acks) and of the whole cycle, and the p99 of the cycle,
after a fifth as many untimed cycles. The first row (one partition per topic) is the floor.

Why: exactly once, the worker's submission-to-verdict latency is a few commit cycles, and a
cycle grows with the partitions a batch touches. librdkafka sends one produce request per
partition (confluentinc/librdkafka#1700) and the broker serves one request per connection at a
time; the Java client puts every partition bound for a broker in one request. The Java side is
bench/kstreams-peer's TxnCycle class (built with Maven on the first run).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kstreams_peer import JVM_FLAGS, LIB, ensure_kstreams_peer

from streams.cluster import KafkaCluster, kafka_version

SOURCE, OUTPUTS, MAX_SPREAD = "txn-source", [f"txn-out-{i}" for i in range(5)], 8


def python_cycles(broker: str, records: int, cycles: int, spreads: list[int]) -> list[tuple[int, float, float, float]]:
    """The cycle with confluent-kafka, configured as the worker's producer (linger 2 ms, acks=all)."""
    producer = Producer(
        {
            "bootstrap.servers": broker,
            "transactional.id": f"txn-cycle-{uuid.uuid4()}",
            "linger.ms": 2,
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "txn-cycle-python", "enable.auto.commit": False})
    consumer.subscribe([SOURCE])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    group = consumer.consumer_group_metadata()
    value, offset, rows = b"v" * 200, 0, []
    for spread in spreads:
        flush, total = [], []
        for i in range(-(cycles // 5), cycles):  # the first fifth untimed, as the Java side
            t0 = time.perf_counter()
            producer.begin_transaction()
            for k in range(records):
                key = str(k).encode()
                for topic in OUTPUTS:
                    producer.produce(topic, value, key, partition=k % spread)
            producer.flush(30)
            t1 = time.perf_counter()
            offset += 1
            producer.send_offsets_to_transaction([TopicPartition(SOURCE, 0, offset)], group, 30)
            producer.commit_transaction(30)
            t2 = time.perf_counter()
            if i >= 0:
                flush.append((t1 - t0) * 1000)
                total.append((t2 - t0) * 1000)
        total.sort()
        written = min(spread, records) * len(OUTPUTS)
        rows.append((written, statistics.median(flush), statistics.median(total), total[-(-cycles * 99 // 100) - 1]))
    consumer.close()
    return rows


def java_cycles(broker: str, records: int, cycles: int, spreads: list[int]) -> list[tuple[int, float, float, float]]:
    jar = ensure_kstreams_peer()
    cmd = ["java", *JVM_FLAGS, "-cp", f"{jar}:{LIB}/*", "trackguard.bench.TxnCycle", broker, SOURCE]
    cmd += [",".join(OUTPUTS), str(records), str(cycles), *map(str, spreads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    rows = []
    for line in out.splitlines():
        written, *times = line.split()
        rows.append((int(written), *map(float, times)))
    return rows  # type: ignore[return-value]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=150)
    ap.add_argument("--records", type=int, default=8, help="records per output topic per transaction")
    ap.add_argument("--spread", type=int, nargs="+", default=[1, 2, 4, 8], help="partitions written per topic")
    args = ap.parse_args()
    if max(args.spread) > MAX_SPREAD:
        ap.error(f"--spread: at most {MAX_SPREAD} (the topics' partitions)")
    ensure_kstreams_peer(quiet=False)  # before the broker starts: Maven must not compete with it
    with KafkaCluster(1) as cluster:
        cluster.start()
        admin = AdminClient({"bootstrap.servers": cluster.address})
        topics = [NewTopic(SOURCE, 1, 1)] + [NewTopic(t, MAX_SPREAD, 1) for t in OUTPUTS]
        for future in admin.create_topics(topics).values():
            future.result()
        print(f"Apache Kafka {kafka_version()} (KRaft, 1 node); {args.cycles} cycles per row", flush=True)
        # Alternated, each client twice: the broker warms up and the machine drifts meanwhile.
        results: dict[str, list[list]] = {"confluent-kafka": [], "java": []}
        for _ in range(2):
            results["confluent-kafka"].append(python_cycles(cluster.address, args.records, args.cycles, args.spread))
            results["java"].append(java_cycles(cluster.address, args.records, args.cycles, args.spread))
    print("partitions written | client          | flush p50 ms | cycle p50 ms | cycle p99 ms   (run 1 / run 2)")
    for i, _spread in enumerate(args.spread):
        for client, runs in results.items():
            a, b = runs[0][i], runs[1][i]
            print(
                f"{a[0]:>18} | {client:<15} | {a[1]:5.1f} / {b[1]:5.1f} | {a[2]:5.1f} / {b[2]:5.1f} "
                f"| {a[3]:5.1f} / {b[3]:5.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
