"""The ACL table of a secure deployment (streams.acls): who may write what. No broker needed; the
Kafka tier (tests/integration/test_kafka_security.py) runs a worker under exactly these grants."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from streams.acls import Principals, grants
from streams.settings import load

WRITES = {AclOperation.WRITE, AclOperation.ALL}


def _writers(table, topic: str) -> set[str]:
    return {
        g.principal
        for g in table
        if g.resource == ResourceType.TOPIC
        and g.operation in WRITES
        and (g.name == topic or (g.pattern == ResourcePatternType.PREFIXED and topic.startswith(g.name)))
    }


def test_only_the_worker_and_the_reviewers_write_commands_and_only_the_worker_writes_verdicts():
    settings = load()
    table = grants(settings, Principals("w", submitters=("erp",), readers=("bi",), auditors=("au",), reviewers=("rv",)))
    t = settings.topics
    assert _writers(table, t.commands) == {"w", "rv"}
    assert _writers(table, t.submitted) == {"w", "erp"}
    for topic in (*t.verdicts, t.command_results, t.alerts, settings.repartition_topic, *settings.changelog_topics):
        assert _writers(table, topic) == {"w"}, topic
    assert {g.principal for g in table if g.resource == ResourceType.TRANSACTIONAL_ID} == {"w"}


def test_a_submitter_may_write_submissions_and_nothing_else():
    table = grants(load(), Principals("w", submitters=("erp",)))
    mine = {(g.resource, g.name, g.operation) for g in table if g.principal == "erp"}
    submitted = load().topics.submitted
    assert mine == {
        (ResourceType.TOPIC, submitted, AclOperation.WRITE),
        (ResourceType.TOPIC, submitted, AclOperation.DESCRIBE),
    }


def test_readers_read_outputs_only_auditors_also_inputs():
    settings = load()
    table = grants(settings, Principals("w", readers=("bi",), auditors=("au",)))
    read = {
        (g.principal, g.name) for g in table if g.operation == AclOperation.READ and g.resource == ResourceType.TOPIC
    }
    assert ("bi", settings.topics.submitted) not in read and ("bi", settings.topics.commands) not in read
    assert ("au", settings.topics.submitted) in read and ("au", settings.topics.commands) in read
    assert ("bi", settings.topics.accepted) in read
    assert all("User:" + g.principal == g.binding().principal for g in table)
