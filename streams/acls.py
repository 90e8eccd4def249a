"""The Kafka ACLs a secure deployment of trackguard needs, declared once (docs/SECURITY.md).

Whoever may write `shipments.submitted` submits for any licence, whoever may write
`shipments.commands` reserves, releases and decides appeals for any licence: on a shared cluster
each party gets its own principal and only what its job needs. `bindings()` is the table;
`trackguard acls` prints it and (with --apply) creates it; the Kafka tier's test runs a worker
under exactly these ACLs on a SASL/SCRAM cluster and shows every other write refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from .settings import Settings

ANY_HOST = "*"
SCRAM_ITERATIONS = 8192  # Kafka's kafka-configs default for SCRAM-SHA-512 is 4096; NIST asks 10,000


@dataclass(frozen=True)
class Principals:
    """Kafka user names (without `User:`) of each party; an empty tuple grants nothing."""

    worker: str = "trackguard-worker"  # every worker: the HTTP API's commands are written by it too
    submitters: tuple[str, ...] = ()  # an ERP's producer, `trackguard import` / `submit`
    readers: tuple[str, ...] = ()  # downstream consumers, `trackguard tail`: verdicts, results, alerts
    auditors: tuple[str, ...] = ()  # `trackguard audit`: a reader that also reads submissions and commands
    reviewers: tuple[str, ...] = ()  # the platform's appeal reviewers: write commands


@dataclass(frozen=True)
class Grant:
    """One ACL as a person reads it; `binding()` is what the broker takes."""

    principal: str
    resource: ResourceType
    pattern: ResourcePatternType
    name: str
    operation: AclOperation

    def binding(self) -> AclBinding:
        return AclBinding(
            self.resource,
            self.name,
            self.pattern,
            f"User:{self.principal}",
            ANY_HOST,
            self.operation,
            AclPermissionType.ALLOW,
        )

    def __str__(self) -> str:
        pattern = "prefixed" if self.pattern == ResourcePatternType.PREFIXED else "literal"
        return (
            f"User:{self.principal}  {self.operation.name:<9} {self.resource.name.lower():<15} {pattern:<8} {self.name}"
        )


def grants(settings: Settings, principals: Principals) -> list[Grant]:
    """Every ACL the parties need, and nothing more (allow.everyone.if.no.acl.found=false)."""
    t = settings.topics
    app = settings.app_id
    out: list[Grant] = []

    def allow(
        user: str, resource: ResourceType, name: str, ops: Iterable[AclOperation], prefixed: bool = False
    ) -> None:
        pattern = ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL
        out.extend(Grant(user, resource, pattern, name, op) for op in ops)

    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    read, write, describe = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE

    # The worker owns its topics: the public ones by name, its internal ones (repartition,
    # changelogs, failures by store, the start-up probe) by the app id's prefix; it creates them,
    # reads their configs and offsets. Its group, its probes' groups and its transactional ids.
    worker = principals.worker
    for name in (t.submitted, *t.verdicts, t.commands, t.command_results, t.alerts):
        allow(worker, topic, name, (AclOperation.ALL,))
    allow(worker, topic, f"{app}-", (AclOperation.ALL,), prefixed=True)
    allow(worker, group, app, (AclOperation.ALL,))
    allow(worker, group, f"{app}-", (AclOperation.ALL,), prefixed=True)
    allow(worker, txn, f"{app}-", (write, describe), prefixed=True)

    for user in principals.submitters:
        allow(user, topic, t.submitted, (write, describe))
    outputs = (*t.verdicts, t.command_results, t.alerts)
    for user in principals.readers:
        for name in outputs:
            allow(user, topic, name, (read, describe))
        allow(user, group, f"{app}-reader-", (read,), prefixed=True)  # streams.kafka.consumer's groups
    for user in principals.auditors:
        for name in (t.submitted, t.commands, *outputs):
            allow(user, topic, name, (read, describe))
        allow(user, group, f"{app}-reader-", (read,), prefixed=True)
    for user in principals.reviewers:
        allow(user, topic, t.commands, (write, describe))
    return out


def apply(admin: AdminClient, to_grant: list[Grant], timeout: float = 30.0) -> None:
    """Create the ACLs (creating one that exists is a no-op); raise with the first refusal."""
    futures = admin.create_acls([g.binding() for g in to_grant], request_timeout=timeout)
    for future in futures.values():
        future.result()


def upsert_scram_users(admin: AdminClient, passwords: dict[str, str], timeout: float = 30.0) -> None:
    """Create or change SCRAM-SHA-512 credentials (what `kafka-configs --alter --add-config
    'SCRAM-SHA-512=[password=…]' --entity-type users` does): the cluster's operator's job."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    changes: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.encode()) for user, password in passwords.items()
    ]
    for user, future in admin.alter_user_scram_credentials(changes, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            raise RuntimeError(f"SCRAM credentials of {user} not stored: {exc.args[0].str()}") from None
