"""The secure set-up of docs/SECURITY.md on a real cluster: SASL/SCRAM-SHA-512 on a three-node
KRaft cluster with the StandardAuthorizer (no ACL: refused), each party its own principal with the
ACLs of streams.acls, and a worker running under its own.

What an attacker on the network tries: no credentials, a wrong password, a valid principal with no
grant, and each party's principal writing or reading beyond its job (an ERP forging a command, a
reader forging a submission). Each is refused by the broker, and the worker, which writes the HTTP
API's commands under its own principal, keeps deciding.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.acls import Principals, apply, grants, upsert_scram_users
from streams.clients import Publisher
from streams.cluster import KafkaCluster
from streams.kafka import VerdictCollector, consumer
from streams.settings import KafkaSecurity, Settings

from .conftest import BrokerUnderTest, Guard, fresh_s10, require_kafka

pytestmark = [pytest.mark.broker, pytest.mark.kafka]

WORKER, ERP, READER, REVIEWER, STRANGER = "trackguard-worker", "erp-l1", "bi-reader", "platform-review", "stranger"
PASSWORDS = {user: secrets.token_urlsafe(12) for user in (WORKER, ERP, READER, REVIEWER, STRANGER)}
PRINCIPALS = Principals(worker=WORKER, submitters=(ERP,), readers=(READER,), reviewers=(REVIEWER,))
TOKEN = "token-secure-l1"
# A consumer without a grant is refused its group (FindCoordinator) before it asks for the topic.
REFUSED_READ = (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)


def as_user(settings: Settings, user: str, password: str | None = None) -> Settings:
    security = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", user, password or PASSWORDS[user])
    return settings.with_(kafka_security=security)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_kafka()
    kafka = KafkaCluster(nodes=3, workdir=tmp_path_factory.mktemp("secure-kafka"), sasl=True).start()
    upsert_scram_users(AdminClient(kafka.client_config()), PASSWORDS)
    yield kafka
    kafka.stop()


@pytest.fixture(scope="module")
def guard(cluster, tmp_path_factory):
    """A worker on the secure cluster as User:trackguard-worker, its password from the environment."""

    def grant(settings: Settings) -> None:
        apply(AdminClient(cluster.client_config()), grants(settings, PRINCIPALS))

    g = Guard(
        BrokerUnderTest("kafka", cluster.address, 3, cluster),
        tmp_path_factory.mktemp("secure-guard"),
        prepare=grant,
        kafka={"security_protocol": "SASL_PLAINTEXT", "sasl_username": WORKER, "sasl_password": PASSWORDS[WORKER]},
    )
    # The worker reads its password from the environment (the file's is what this process uses).
    g.start_worker(env={"TRACKGUARD_KAFKA_PASSWORD": PASSWORDS[WORKER], "TRACKGUARD_TOKENS": f"L1={TOKEN}"})
    # Its web server answering before any test calls it: in a shuffled run the HTTP test came
    # first once and met a worker still starting (connection refused).
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{g.worker.web_port}/live", timeout=5).close()
            break
        except urllib.error.HTTPError:
            break  # it answered
        except OSError:
            assert time.monotonic() < deadline, g.worker.log_text()[-3000:]
            time.sleep(0.5)
    yield g
    g.close()


def submission(number: str) -> dict:
    return {
        "event_id": f"sec-{uuid.uuid4().hex[:12]}",
        "license_id": "L1",
        "store_id": "S1",
        "order_id": f"O-{number}",
        "carrier_code": "CHINAPOST",
        "tracking_no": number,
        "shipped_at": "2026-11-20T08:00:00+08:00",
    }


def refused_write(settings: Settings, topic: str, record: dict) -> str:
    """Publish as `settings`' principal; the broker's refusal (as librdkafka words it)."""
    # A refusal is answered at once; the timeout only bounds a test that would otherwise hang.
    producer = Producer(settings.client_config(**{"message.timeout.ms": 15_000, "log_level": 0}))
    outcomes: list[KafkaError | None] = []
    producer.produce(topic, json.dumps(record).encode(), on_delivery=lambda err, _msg: outcomes.append(err))
    producer.flush(30)
    assert outcomes and outcomes[0] is not None, (
        f"the broker took a write to {topic} from {settings.kafka_security.username}"
    )
    return str(outcomes[0])


def read_error(settings: Settings, topic: str) -> KafkaError | None:
    """The first error a consumer of `settings`' principal meets reading `topic`, if any."""
    reader = consumer(settings, **{"log_level": 0})
    try:
        # A topic the principal may not describe is refused in the metadata already.
        refused = reader.list_topics(topic, timeout=10).topics[topic].error
        if refused is not None:
            return refused
        reader.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is not None and msg.error() and msg.error().code() != KafkaError._PARTITION_EOF:
                return msg.error()
            if msg is not None and not msg.error():
                return None
        return None
    finally:
        reader.close()


def test_the_worker_decides_under_its_own_principal_for_an_erp_and_a_reader(guard):
    number = fresh_s10()
    erp = Publisher(as_user(guard.settings, ERP))
    event = submission(number)
    erp.send(event)
    erp.flush()
    assert guard.verdict(event["event_id"], timeout=90)["verdict"] == "accepted"

    reader = VerdictCollector(as_user(guard.settings, READER), list(guard.settings.topics.verdicts)).start(
        create_topics=False
    )
    try:
        assert reader.verdict(event["event_id"], timeout=45)["verdict"] == "accepted"
    finally:
        reader.stop()
    log = guard.worker.log_text()
    assert "processing guarantee: exactly_once" in log  # transactions under the worker's grants too
    assert "AUTHORIZATION_FAILED" not in log and "Authorization failed" not in log, log[-3000:]


def test_the_http_api_writes_commands_under_the_workers_principal(guard):
    number = fresh_s10()
    body = {
        "tracking_no": number,
        "store_id": "S1",
        "order_id": "O-reserved",
        "carrier_code": "CHINAPOST",
        "ttl_s": 600,
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{guard.worker.web_port}/commands/reserve",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        result = json.loads(answer.read())
    assert answer.status == 200 and result["ok"] is True, result


def test_an_erp_may_submit_but_not_forge_a_command_or_read_verdicts(guard):
    erp = as_user(guard.settings, ERP)
    appeal = {"command": "appeal", "command_id": "forged", "license_id": "L1", "tracking_no": fresh_s10()}
    refusal = refused_write(erp, guard.settings.topics.commands, appeal)
    assert "TOPIC_AUTHORIZATION_FAILED" in refusal or "authorization failed" in refusal.lower(), refusal
    error = read_error(erp, guard.settings.topics.accepted)
    assert error is not None and error.code() in REFUSED_READ, error


def test_a_reader_may_not_write_submissions_or_commands(guard):
    reader = as_user(guard.settings, READER)
    for topic in (guard.settings.topics.submitted, guard.settings.topics.commands):
        refusal = refused_write(reader, topic, submission(fresh_s10()))
        assert "authorization" in refusal.lower(), refusal
    # Its group is granted, so what refuses it here is the topic: submissions are not its to read.
    error = read_error(reader, guard.settings.topics.submitted)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_the_platforms_reviewer_writes_commands_and_the_worker_acts_on_them(guard):
    command_id = f"review-{uuid.uuid4().hex[:8]}"
    reviewer = Publisher(as_user(guard.settings, REVIEWER))
    reviewer.send(
        {
            "command": "reserve",
            "command_id": command_id,
            "license_id": "L1",
            "tracking_no": fresh_s10(),
            "store_id": "S1",
            "order_id": "O-review",
            "carrier_code": "CHINAPOST",
            "ttl_s": 600,
        },
        topic=guard.settings.topics.commands,
    )
    reviewer.flush()
    assert guard.verdict(command_id, timeout=60)["ok"] is True


def test_no_credentials_a_wrong_password_or_a_principal_without_grants_get_nothing(guard):
    settings = guard.settings
    for config in (
        {"bootstrap.servers": settings.broker},  # PLAINTEXT on a SASL listener
        as_user(settings, ERP, password="not-the-password").client_config(),
    ):
        with pytest.raises(KafkaException):
            AdminClient({**config, "log_level": 0}).list_topics(timeout=5)
    stranger = as_user(settings, STRANGER)
    assert "authorization" in refused_write(stranger, settings.topics.submitted, submission(fresh_s10())).lower()
    error = read_error(stranger, settings.topics.accepted)
    assert error is not None and error.code() in REFUSED_READ, error
    # Without a grant, the topics do not even show: the metadata lists none of the app's.
    visible = AdminClient(stranger.client_config(log_level=0)).list_topics(timeout=10).topics
    assert not [t for t in visible if t.startswith(settings.app_id)], sorted(visible)


def test_the_cli_submits_under_an_erps_principal_from_the_environment(guard):
    """`trackguard submit` as a seller's ERP team runs it: its own principal in the environment
    (over the file's), and no topic it may not see is created or complained about."""
    import subprocess
    import sys

    event = submission(fresh_s10())
    done = subprocess.run(
        [sys.executable, "-m", "streams", "--config", str(guard.config_path), "submit", "--json", json.dumps(event)],
        env={**os.environ, "TRACKGUARD_KAFKA_USERNAME": ERP, "TRACKGUARD_KAFKA_PASSWORD": PASSWORDS[ERP]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert guard.verdict(event["event_id"], timeout=60)["verdict"] == "accepted"
