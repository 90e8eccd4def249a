"""Integration fixtures: real brokers (embedded Tansu, and a three-node Apache Kafka cluster) and
real worker processes.

Nothing is mocked: the tests publish to the broker, a `trackguard worker` child process decides,
and the tests read the verdict topics back. Every test that takes `broker` runs once on each:
the Kafka tier needs `java` and `mvn`; without them it is skipped, loudly (see tests/conftest.py),
unless TRACKGUARD_REQUIRE_KAFKA=1 (as `.ci/run` sets), which makes a missing tool a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams import settings as settings_mod
from streams.broker import EmbeddedBroker
from streams.clients import Publisher
from streams.cluster import KafkaCluster, java_available
from streams.core.check_digits import s10_number
from streams.kafka import VerdictCollector, ensure_topics
from streams.launch import WorkerProcess

_serials = itertools.count(int(time.time()) % 10_000_000 * 10)


KAFKA_SKIPPED = "KAFKA TIER SKIPPED"


@dataclass
class BrokerUnderTest:
    """What a test needs of a broker, whichever it is."""

    kind: str  # "tansu" or "kafka"
    address: str
    replication: int
    handle: Any  # the EmbeddedBroker or KafkaCluster, for tests that stop or kill it


def require_kafka() -> None:
    """Skip (loudly) or fail when this machine cannot run the Kafka tier."""
    missing = java_available()
    if missing:
        if os.environ.get("TRACKGUARD_REQUIRE_KAFKA") == "1":
            pytest.fail(f"the Kafka tier is required (TRACKGUARD_REQUIRE_KAFKA=1) but {missing}", pytrace=False)
        pytest.skip(f"{KAFKA_SKIPPED}: {missing}")


def start_kafka(workdir: Path, nodes: int = 3) -> KafkaCluster:
    require_kafka()
    return KafkaCluster(nodes=nodes, workdir=workdir).start()


def fresh_s10(prefix: str = "RR", country: str = "CN") -> str:
    """A valid UPU S10 number no other test uses."""
    return s10_number(next(_serials), prefix, country)


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    """A settings file (TOML) from plain values: what a user would write, read by the real loader."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]  # JSON scalars are TOML
    path.write_text("\n".join(lines) + "\n")
    return path


class Guard:
    """A broker + worker + publisher + verdict reader, as a test sees the product.

    Each Guard has its own app id, and so its own topics, consumer group and changelog: tests on
    one shared broker cannot see or disturb each other's records, and each passes alone.
    """

    def __init__(
        self,
        broker: BrokerUnderTest,
        workdir: Path,
        prepare: Callable[[settings_mod.Settings], None] | None = None,
        **sections: dict,
    ) -> None:
        self.broker = broker
        self.workdir = workdir
        self.app_id = f"tg-{uuid.uuid4().hex[:10]}"
        defaults = settings_mod.load()
        topics = {
            name: f"{self.app_id}.{getattr(defaults.topics, name)}" for name in defaults.topics.__dataclass_fields__
        }
        config = {
            "kafka": {"app_id": self.app_id, "broker": broker.address, "replication": broker.replication},
            "topics": topics,
            "carriers": {"file": str(settings_mod.DEFAULT_CONFIG.parent / "carriers.toml")},
        }
        for name, values in sections.items():
            config[name] = {**config.get(name, {}), **values}
        self.config_path = write_config(workdir / "trackguard.toml", config)
        self.settings = settings_mod.load(self.config_path, data_dir=workdir / "data")
        if prepare is not None:  # what must exist before the topics do (a secure cluster's ACLs)
            prepare(self.settings)
        ensure_topics(self.settings)
        self.publisher = Publisher(self.settings)
        self.collector = VerdictCollector(
            self.settings, [*self.settings.topics.verdicts, self.settings.topics.command_results]
        ).start()
        self.worker: WorkerProcess | None = None
        self.workers: list[WorkerProcess] = []

    def new_worker(
        self, data_dir: Path | None = None, env: dict[str, str] | None = None, name: str = "worker"
    ) -> WorkerProcess:
        """A worker of this guard's app (same settings file), started."""
        worker = WorkerProcess(
            self.broker.address,
            data_dir or self.workdir / "data",
            self.workdir / f"{name}.log",
            env=env,
            config=str(self.config_path),
        ).start()
        self.workers.append(worker)
        return worker

    def start_worker(self, data_dir: Path | None = None, env: dict[str, str] | None = None) -> WorkerProcess:
        self.worker = self.new_worker(data_dir, env)
        return self.worker

    def submit(self, *, key: bytes | None = None, ts_ms: int | None = None, raw: bytes | None = None, **fields) -> str:
        if raw is not None:
            self.publisher.send(raw, key=key, timestamp_ms=ts_ms)
            self.publisher.flush()
            return ""
        event = {
            "event_id": f"t-{uuid.uuid4().hex[:12]}",
            "license_id": "L1",
            "store_id": "S1",
            "order_id": "O1",
            "carrier_code": "CHINAPOST",
            "shipped_at": "2026-11-20T08:00:00+08:00",
            "source": "api",
            **fields,
        }
        self.publisher.send(event, key=key, timestamp_ms=ts_ms)
        self.publisher.flush()
        return event["event_id"]

    def publish_raw(self, values: list[bytes], key: bytes | None) -> list[tuple[int, int]]:
        """Publish raw records as they are; returns where each landed (partition, offset), in order."""
        from confluent_kafka import Producer

        placed: dict[int, tuple[int, int]] = {}
        producer = Producer(self.settings.client_config(**{"enable.idempotence": True}))
        for i, value in enumerate(values):
            producer.produce(
                self.settings.topics.submitted,
                value,
                key,
                on_delivery=lambda err, msg, i=i: placed.__setitem__(i, (msg.partition(), msg.offset())),
            )
        assert producer.flush(30) == 0 and len(placed) == len(values)
        return [placed[i] for i in range(len(values))]

    def dead_letters_at(self, partition: int, offset: int) -> list[dict]:
        """The dead letters answering the submission at (partition, offset)."""
        where = {"topic": self.settings.topics.submitted, "partition": partition, "offset": offset}
        with self.collector._cond:
            return [v for v in self.collector.verdicts if v["verdict"] == "invalid" and v.get("source") == where]

    def command(self, kind: str, *, ts_ms: int | None = None, **fields) -> str:
        cmd = {"command": kind, "command_id": f"c-{uuid.uuid4().hex[:12]}", "license_id": "L1", **fields}
        self.publisher.send(cmd, timestamp_ms=ts_ms, topic=self.settings.topics.commands)
        self.publisher.flush()
        return cmd["command_id"]

    def verdict(self, event_id: str, nth: int = 0, timeout: float = 45.0) -> dict:
        try:
            return self.collector.verdict(event_id, timeout=timeout, nth=nth)
        except TimeoutError:
            log = self.worker.log_text()[-3000:] if self.worker else ""
            raise AssertionError(f"no verdict for {event_id}; worker log tail:\n{log}") from None

    def contract_violations(self) -> list[str]:
        """Every record read back, checked against its topic's schema in docs/contract."""
        from ..contract import schema_for_topic, violations

        schemas = schema_for_topic(self.settings)
        with self.collector._cond:
            records = list(self.collector.verdicts)
        found = []
        for record in records:
            body = {k: v for k, v in record.items() if not k.startswith("_")}  # the collector's own notes
            found += [f"{record['_topic']}: {v}" for v in violations(schemas[record["_topic"]], body)]
        return found

    def close(self) -> None:
        self.collector.stop()
        for worker in self.workers:
            worker.stop()


@pytest.fixture(scope="session", params=["tansu", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker(request, tmp_path_factory):
    """Each broker test runs on Tansu and on a three-node Kafka cluster (replication 3, min ISR 2).

    One instance of each for the whole session: tests keep apart by their Guard's own app id and
    topics. Tests that stop or kill the broker itself start their own.
    """
    work = tmp_path_factory.mktemp(request.param)
    if request.param == "tansu":
        tansu = EmbeddedBroker(log_path=work / "broker.log").start()
        yield BrokerUnderTest("tansu", tansu.address, 1, tansu)
        tansu.stop()
    else:
        cluster = start_kafka(work)
        yield BrokerUnderTest("kafka", cluster.address, 3, cluster)
        cluster.stop()


@pytest.fixture(scope="module")
def guard(broker, tmp_path_factory):
    """One worker for a whole module; tests keep apart by using their own tracking numbers."""
    g = Guard(broker, tmp_path_factory.mktemp("guard"))
    g.start_worker()
    yield g
    g.close()
