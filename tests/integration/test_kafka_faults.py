"""What only a real, replicated, durable Kafka cluster can show: brokers crashing and restarting
under load, and a whole cluster restarted from its own log dirs.

Its own three-node cluster (replication 3, min ISR 2), since these tests kill brokers.
"""

from __future__ import annotations

import base64
import shutil
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streams.audit import audit

from .conftest import BrokerUnderTest, Guard, fresh_s10, start_kafka

pytestmark = [pytest.mark.broker, pytest.mark.kafka]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    kafka = start_kafka(tmp_path_factory.mktemp("own-kafka"))
    yield kafka
    kafka.stop()


@pytest.fixture
def guard(cluster, tmp_path):
    # Each test starts from a whole cluster in sync, whatever the one before did to it (a node
    # killed and restarted is still catching up; a whole-cluster restart then found partitions of
    # the transaction log that could not move on, and read_committed readers saw nothing: a
    # shuffled run, kill test first, lost all 500 verdicts of the restart test).
    cluster.wait_in_sync()
    g = Guard(BrokerUnderTest("kafka", cluster.address, 3, cluster), tmp_path)
    yield g
    g.close()
    for node in cluster.ids:  # a test that failed midway leaves the next one a whole cluster
        if node not in cluster.pids:
            cluster.start_node(node)


def event(number: str, order: str) -> dict:
    return {
        "event_id": f"{order}-{number}",
        "license_id": "L1",
        "store_id": "S1",
        "order_id": order,
        "carrier_code": "CHINAPOST",
        "tracking_no": number,
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }


def publish(guard: Guard, numbers: list[str], order: str, per_s: float | None = None) -> list[str]:
    ids = []
    for i, n in enumerate(numbers):
        e = event(n, order)
        guard.publisher.send(e)
        ids.append(e["event_id"])
        if per_s and i % 50 == 49:
            guard.publisher.flush()
            time.sleep(50 / per_s)
    guard.publisher.flush()
    return ids


def assert_first_order_wins_everywhere(guard: Guard, numbers: list[str], ids: list[str]) -> None:
    # 300 s: one CI run (of many) had verdicts still missing 180 s after a broker kill, cause not
    # yet known; the worker's log is printed if it happens again, and the time taken always.
    started = time.monotonic()
    if not guard.collector.wait_for(lambda c: all(e in c.by_event for e in ids), timeout=300):
        missing = [e for e in ids if e not in guard.collector.by_event]
        tail = guard.worker.log_text()[-6000:] if guard.worker else ""
        raise AssertionError(f"{len(missing)} missing verdicts, e.g. {missing[:5]}; the worker's log ends:\n{tail}")
    print(f"every verdict out {time.monotonic() - started:.1f} s after the last submission")
    winners = defaultdict(set)
    for v in guard.collector.verdicts:
        if v["verdict"] == "accepted" and v["reason"] == "FIRST_USE":  # a binding, or its replay (below)
            winners[v["tracking_no"]].add(v["order_id"])
    assert {n: winners[n] for n in numbers} == {n: {"O1"} for n in numbers}  # nothing lost or accepted twice
    assert all(len(orders) == 1 for orders in winners.values())
    report = audit(guard.settings, idle_s=2.0)
    assert report.ok, report.render()


def test_a_broker_killed_during_a_burst_and_restarted_later(cluster, guard):
    worker = guard.start_worker()
    numbers = [fresh_s10() for _ in range(3000)]
    first: list[str] = []
    # Paced (~10 s), so that the kill lands while the burst is still being published and decided.
    loader = threading.Thread(target=lambda: first.extend(publish(guard, numbers, "O1", per_s=300)))
    loader.start()
    assert guard.collector.wait_count(300, timeout=90)
    victim = 2
    cluster.kill_node(victim)
    decided_at_kill = len(guard.collector.verdicts)
    loader.join(120)
    assert not loader.is_alive() and len(first) == len(numbers)
    assert decided_at_kill < len(first), "the kill landed after the burst was decided"
    second = publish(guard, numbers, "O2")  # with one of three brokers down
    assert_first_order_wins_everywhere(guard, numbers, first + second)
    assert worker.alive()
    cluster.start_node(victim)
    after = guard.submit(tracking_no=numbers[0], order_id="O3")  # the O2 duplicate froze it for L1
    assert guard.verdict(after)["reason"] == "FROZEN_AFTER_DUPLICATE"
    print(f"kill landed with {decided_at_kill} of {len(first)} verdicts out")


def test_rolling_restart_of_every_broker_under_load(cluster, guard):
    worker = guard.start_worker()
    # Ready first: a worker's first start creates its changelog with replication 3, which Kafka
    # refuses while a broker is down (the worker stops: InvalidReplicationFactorError).
    assert guard.verdict(guard.submit(tracking_no=fresh_s10()))["verdict"] == "accepted"
    # The load runs until every broker has been restarted, then a little longer: a fixed-size load
    # once ended before the third restart on a slow CI machine.
    numbers: list[str] = []
    published: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set() and len(numbers) < 20_000:
            batch = [fresh_s10() for _ in range(50)]
            published.extend(publish(guard, batch, "O1"))
            numbers.extend(batch)
            stop.wait(1.0)  # ~50 a second

    loader = threading.Thread(target=load)
    loader.start()
    rolled = []
    for node in cluster.ids:
        time.sleep(2)
        rolled.append((node, len(guard.collector.verdicts)))  # verdicts out when this broker went down
        cluster.stop_node(node)
        cluster.start_node(node)
    assert loader.is_alive(), f"the load ended before the last broker went down: {rolled}"
    time.sleep(2)
    stop.set()
    loader.join(60)
    assert not loader.is_alive()
    print(f"rolled with {rolled} verdicts out; {len(numbers)} submissions in the load")
    second = publish(guard, numbers, "O2")
    assert_first_order_wins_everywhere(guard, numbers, published + second)
    assert worker.alive()


def test_a_worker_after_the_whole_cluster_restarted_from_its_log_dirs(cluster, guard, tmp_path):
    worker = guard.start_worker()
    numbers = [fresh_s10() for _ in range(500)]
    first = publish(guard, numbers, "O1")
    assert guard.collector.wait_for(lambda c: all(e in c.by_event for e in first), timeout=90)
    worker.stop()
    cluster.restart()  # every broker from its own log dir: topics, offsets and changelogs survive
    guard.start_worker()  # same data dir: local state and the topics must still agree
    second = publish(guard, numbers[:250], "O2")
    guard.worker.stop()
    shutil.rmtree(tmp_path / "data")
    guard.start_worker()  # wiped: everything back from the changelog of the restarted cluster
    third = publish(guard, numbers[250:], "O2")
    assert_first_order_wins_everywhere(guard, numbers, first + second + third)


def test_a_verdict_the_broker_refuses_is_dead_lettered_and_the_worker_goes_on(cluster, guard):
    """The accepted topic takes records of at most 1,000 bytes: one long-fielded verdict is refused
    by the broker (asynchronously, in a delivery report) and dead-lettered in its place."""
    admin = AdminClient({"bootstrap.servers": cluster.address})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        guard.settings.topics.accepted,
        incremental_configs=[ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET)],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    worker = guard.start_worker()
    small = guard.submit(tracking_no=fresh_s10())
    assert guard.verdict(small)["verdict"] == "accepted"
    # ~1,030 bytes of verdict (every field at its 128-character limit) plus the batch's own overhead
    big = guard.submit(tracking_no=fresh_s10(), event_id="big-" + "E" * 124, store_id="S" * 128, order_id="O" * 128)
    assert guard.collector.wait_for(
        lambda c: any(v.get("reason") == "PRODUCE_FAILED:MSG_SIZE_TOO_LARGE" for v in c.verdicts), 60
    ), guard.worker.log_text()[-3000:]
    (dead,) = [v for v in guard.collector.verdicts if v.get("reason", "").startswith("PRODUCE_FAILED")]
    assert guard.settings.topics.accepted in dead["error"] and big.encode() in base64.b64decode(dead["raw"])
    after = guard.submit(tracking_no=fresh_s10())
    assert guard.verdict(after)["verdict"] == "accepted"
    assert worker.alive()
