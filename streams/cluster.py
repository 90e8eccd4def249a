"""A real Apache Kafka KRaft cluster on loopback, run from Maven jars (config/kafka/pom.xml).

What the embedded broker (streams/broker.py) cannot give: durable log dirs, replication, broker
crashes, isolated transactions. Each node is a combined broker+controller JVM, a child process
stopped by its pid. Needs `java` and `mvn` on PATH; the jars are fetched once into a cache outside
the work tree.
"""

from __future__ import annotations

import atexit
import base64
import collections
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .broker import stop_process
from .settings import KafkaSecurity

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = PROJECT_ROOT / "config" / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG_CONFIG = KAFKA_DIR / "log4j2.yaml"
HOST = "127.0.0.1"
SASL_MECHANISM = "SCRAM-SHA-512"
SUPER_USER = "admin"  # a sasl cluster's nodes and its operator

# Measured on 2 cores, 3 nodes: C1-only JIT (TieredStopAtLevel=1) made them ready in ~8 s instead of
# ~12.5 s and produced 116k instead of 61k records/s (C2's compiler threads starve the other JVMs);
# SerialGC adds no GC threads (G1 was no faster to start).
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")


def kafka_version() -> str:
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not found:
        raise RuntimeError(f"no <kafka.version> property in {POM}")
    return found.group(1)


def cache_dir() -> Path:
    env = os.environ.get("TRACKGUARD_KAFKA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "trackguard" / f"kafka-{kafka_version()}"


def java_available() -> str | None:
    """None when a cluster can be started here, else what is missing."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH (needed to run Apache Kafka)" if missing else None


def ensure_jars(quiet: bool = True) -> Path:
    """The directory of the broker's runtime jars, fetched by Maven on the first call."""
    cache = cache_dir()
    lib, stamp = cache / "lib", cache / "stamp"
    want = hashlib.sha256(POM.read_bytes()).hexdigest()  # a changed pom fetches again

    def fetched() -> bool:
        return lib.is_dir() and stamp.exists() and stamp.read_text() == want

    if fetched():
        return lib
    if reason := java_available():
        raise RuntimeError(reason)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the stamp
        if fetched():
            return lib
        shutil.rmtree(lib, ignore_errors=True)  # no jar of another version left on the classpath
        cmd = [
            "mvn",
            "-B",
            "-Dstyle.color=never",
            *(["-q"] if quiet else []),
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        )
        tail: collections.deque[str] = collections.deque(maxlen=25)
        for line in proc.stdout or ():
            tail.append(line)
            if not quiet:
                sys.stderr.write(line)  # stdout stays free for callers' output
        if proc.wait() != 0:
            raise RuntimeError(
                f"Maven could not fetch the Kafka jars (exit {proc.returncode}): {' '.join(cmd)}\n{''.join(tail)}"
            )
        stamp.write_text(want)
    return lib


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports: all sockets stay bound until every port is picked."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cluster_id() -> str:
    """A Kafka Uuid string: base64url of 16 random bytes (StorageTool would take a JVM start)."""
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka avoids these too: they parse as a command-line flag
            return cid


def _stored_cluster_id(meta: Path) -> str | None:
    found = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.M) if meta.exists() else None
    return found.group(1) if found else None


class KafkaCluster:
    """`nodes` combined broker+controller KRaft nodes, numbered 1..nodes (their node.id)."""

    def __init__(
        self,
        nodes: int = 1,
        workdir: Path | None = None,
        heap: str = "384m",
        log_dir: Path | None = None,
        sasl: bool = False,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.nodes = nodes
        self.heap = heap
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="trackguard-kafka-"))
        # sasl: clients authenticate with SCRAM-SHA-512 and the StandardAuthorizer allows only what
        # an ACL grants (docs/SECURITY.md). The super user `admin` (the nodes' own principal) has a
        # password kept in the workdir, so a cluster started again on it keeps its credentials.
        self.sasl = sasl
        self.admin_password = self._admin_password() if sasl else ""
        self.log_dir = Path(log_dir) if log_dir else self.workdir
        ports = _free_ports(2 * nodes)  # fixed for the cluster's life: the voters list names them
        self.broker_ports = dict(zip(self.ids, ports[:nodes]))
        self.controller_ports = dict(zip(self.ids, ports[nodes:]))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lib: Path | None = None
        self._formatted = False

    @property
    def ids(self) -> range:
        return range(1, self.nodes + 1)

    @property
    def address(self) -> str:
        return ",".join(f"{HOST}:{self.broker_ports[i]}" for i in self.ids)

    @property
    def security_protocol(self) -> str:
        return "SASL_PLAINTEXT" if self.sasl else "PLAINTEXT"

    def client_config(self, **extra: object) -> dict:
        """A confluent-kafka client of this cluster's operator (the super user when sasl)."""
        security = (
            KafkaSecurity(self.security_protocol, SASL_MECHANISM, SUPER_USER, self.admin_password)
            if self.sasl
            else KafkaSecurity()
        )
        return {"bootstrap.servers": self.address, **security.librdkafka(), **extra}

    @property
    def pids(self) -> dict[int, int]:
        """node id -> pid of each JVM of this cluster that is running."""
        return {i: p.pid for i, p in self._procs.items() if p.poll() is None}

    def node_dir(self, i: int) -> Path:
        return self.workdir / f"node-{i}"

    def log_path(self, i: int) -> Path:
        return self.log_dir / f"node-{i}.log"

    def log_tail(self, i: int, chars: int = 3000) -> str:
        path = self.log_path(i)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> KafkaCluster:
        """Start every node that is not running; return when all are brokers and a controller leads."""
        try:
            self._lib = ensure_jars()
            if not self._formatted:
                self._format()
            for i in self.ids:
                if i not in self._procs:
                    self._spawn(i)
            self._wait_ready(set(self.ids), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every node at once (they shut down in parallel), SIGKILL any left after 15 s."""
        procs, self._procs = self._procs, {}
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            stop_process(proc, 15.0)
        atexit.unregister(self._kill_all)

    def restart(self, timeout: float = 90.0) -> KafkaCluster:
        """Stop every node and start them again on the same log dirs."""
        self.stop()
        return self.start(timeout)

    def kill_node(self, i: int) -> None:
        """SIGKILL node i: a crash, no controlled shutdown."""
        proc = self._procs.pop(i)
        proc.kill()
        proc.wait()

    def stop_node(self, i: int) -> None:
        stop_process(self._procs.pop(i), 15.0)

    def start_node(self, i: int, wait: bool = True, timeout: float = 90.0) -> None:
        """Start node i again from its own log dir and (by default) wait until it serves."""
        if i in self._procs:
            raise RuntimeError(f"node {i} is running")
        self._spawn(i)
        if wait:
            self._wait_ready({i}, timeout)

    def wait_in_sync(self, timeout: float = 120.0) -> None:
        """Wait until every partition (internal topics included: transactions, offsets) has a
        leader and all its replicas in sync: a node restarted after a crash serves at once but
        catches up later, and a cluster stopped before then comes back with partitions (say, of
        `__transaction_state`) that cannot move on."""
        admin = AdminClient(self.client_config(log_level=0))
        deadline = time.monotonic() + timeout
        lagging: list[str] = []
        while time.monotonic() < deadline:
            try:
                topics = admin.list_topics(timeout=5).topics
            except KafkaException:
                time.sleep(0.5)
                continue
            lagging = [
                f"{name}[{p.id}]"
                for name, topic in topics.items()
                for p in topic.partitions.values()
                if p.leader < 0 or set(p.isrs) != set(p.replicas)
            ]
            if not lagging:
                return
            time.sleep(0.5)
        raise RuntimeError(f"partitions still out of sync after {timeout:.0f} s: {lagging[:10]}")

    def close(self) -> None:
        """Stop, and delete the workdir if the cluster made it (a temporary directory)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _properties(self, i: int) -> str:
        many = self.nodes >= 3  # 3+ nodes: survive one node down with acks=all
        rf, isr = (3, 2) if many else (1, 1)
        voters = ",".join(f"{n}@{HOST}:{self.controller_ports[n]}" for n in self.ids)
        props = {
            "process.roles": "broker,controller",
            "node.id": i,
            "controller.quorum.voters": voters,
            "listeners": (f"BROKER://{HOST}:{self.broker_ports[i]},CONTROLLER://{HOST}:{self.controller_ports[i]}"),
            "advertised.listeners": f"BROKER://{HOST}:{self.broker_ports[i]}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "BROKER",
            "listener.security.protocol.map": (
                "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
                if self.sasl
                else "BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            **(self._sasl_properties() if self.sasl else {}),
            "log.dirs": self.node_dir(i) / "data",
            # a 2-core machine running several nodes: few threads, little heap
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.dedupe.buffer.size": 2097152,  # the default takes 128 MiB of heap
            "group.initial.rebalance.delay.ms": 0,
            # a SIGKILLed node is fenced (its partitions fail over, and it may register again)
            # only when its session expires: 6 s instead of 9 s, heartbeats every second
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "offsets.topic.num.partitions": 4,
            "transaction.state.log.num.partitions": 4,
            "share.coordinator.state.topic.num.partitions": 4,
            "num.partitions": 1,
            "auto.create.topics.enable": "false",
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _sasl_properties(self) -> dict[str, str]:
        """Clients and brokers: SCRAM-SHA-512 (credentials in the cluster's metadata, the super
        user's added at format time, KIP-900); controllers: PLAIN with the super user's password
        in the JAAS line (KRaft cannot read SCRAM credentials before its metadata is loaded)."""
        password = self.admin_password
        return {
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "listener.name.broker.sasl.enabled.mechanisms": SASL_MECHANISM,
            "listener.name.broker.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{SUPER_USER}" password="{password}";'
            ),
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{SUPER_USER}" password="{password}" user_{SUPER_USER}="{password}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{SUPER_USER}",
            "allow.everyone.if.no.acl.found": "false",  # no ACL: refused
        }

    def _admin_password(self) -> str:
        path = self.workdir / "admin.password"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(18))
            path.chmod(0o600)
        return path.read_text().strip()

    def _java(self, main: str, *args: str | Path, heap: str | None = None) -> list[str]:
        heap = heap or self.heap
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            "-cp",
            f"{self._lib}/*",
            main,
            *map(str, args),
        ]

    def _format(self) -> None:
        """Write each node's config and format the log dirs not yet formatted, in parallel.

        All nodes share one cluster id: the one already in a reused workdir (StorageTool refuses
        another, even with --ignore-formatted), else a new one. Static voters
        (controller.quorum.voters) take none of --standalone/--initial-controllers.
        """
        metas = {i: self.node_dir(i) / "data" / "meta.properties" for i in self.ids}
        cid = next(filter(None, map(_stored_cluster_id, metas.values())), None) or _cluster_id()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        procs: dict[int, subprocess.Popen[str]] = {}
        for i in self.ids:
            self.node_dir(i).mkdir(parents=True, exist_ok=True)
            conf = self.node_dir(i) / "server.properties"
            conf.write_text(self._properties(i))  # ports are new on each KafkaCluster
            if not metas[i].exists():
                procs[i] = subprocess.Popen(
                    self._java(
                        "kafka.tools.StorageTool",
                        "format",
                        "-t",
                        cid,
                        "-c",
                        conf,
                        *(
                            ["--add-scram", f"{SASL_MECHANISM}=[name={SUPER_USER},password={self.admin_password}]"]
                            if self.sasl
                            else []
                        ),
                        heap="128m",
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
        for i, proc in procs.items():
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"formatting node {i} failed (exit {proc.returncode}):\n{out[-3000:]}")
        self._formatted = True

    def _spawn(self, i: int) -> None:
        with open(self.log_path(i), "ab") as log:  # the child keeps its own descriptor
            self._procs[i] = subprocess.Popen(
                self._java("kafka.Kafka", self.node_dir(i) / "server.properties"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.node_dir(i),
                start_new_session=True,
            )  # a terminal's Ctrl-C reaches us; we stop the JVMs ourselves
        atexit.unregister(self._kill_all)  # one registration however often nodes start
        atexit.register(self._kill_all)

    def _wait_ready(self, want: set[int], timeout: float) -> None:
        """Until each node in `want` lists itself as a broker when asked directly (so a killed
        node's stale registration does not count), and the controller takes a CreateTopics."""
        deadline = time.monotonic() + timeout
        admins = {
            i: AdminClient(
                self.client_config(**{"bootstrap.servers": f"{HOST}:{self.broker_ports[i]}", "log_level": 0})
            )  # refused connections are expected here
            for i in want
        }
        waiting = set(want)
        while True:
            for i, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"Kafka node {i} exited with {proc.returncode}; {self.log_path(i)} ends:\n{self.log_tail(i)}"
                    )
            for i in sorted(waiting):
                try:
                    if i in admins[i].list_topics(timeout=1).brokers:
                        waiting.discard(i)
                except KafkaException:
                    pass
            if not waiting and self._controller_ready(admins[min(want)]):
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- node {i}:\n{self.log_tail(i, 1500)}" for i in sorted(want))
                raise RuntimeError(
                    f"Kafka nodes {sorted(waiting) or sorted(want)} not ready after {timeout:.0f} s; logs end:\n{tails}"
                )
            time.sleep(0.2)

    def _controller_ready(self, admin: AdminClient) -> bool:
        """A validate-only CreateTopics with full replication: answered by the active controller
        only once every node is registered, and it leaves no topic behind."""
        topic = NewTopic("trackguard-ready-probe", num_partitions=1, replication_factor=len(self._procs))
        try:
            future = admin.create_topics([topic], validate_only=True, operation_timeout=5)[topic.topic]
            future.result(timeout=10)
            return True
        except (KafkaException, TimeoutError):
            return False

    def _kill_all(self) -> None:
        """At interpreter exit: SIGKILL any JVM of this cluster still running, by its pid."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_cluster(nodes: int = 1, workdir: Path | None = None) -> int:
    """Run a cluster until SIGTERM/SIGINT: the bootstrap servers are the only line on stdout."""
    cluster = KafkaCluster(nodes, workdir)
    previous = {
        sig: signal.signal(sig, signal.default_int_handler)  # SIGTERM acts as Ctrl-C
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        print(f"starting {nodes} Kafka node(s) in {cluster.workdir} (first run fetches the jars)", file=sys.stderr)
        ensure_jars(quiet=False)
        cluster.start()
        print(cluster.address, flush=True)
        print(f"ready; node logs in {cluster.log_dir}; stop with Ctrl-C or SIGTERM", file=sys.stderr)
        while len(cluster.pids) == nodes:
            time.sleep(1)
        dead = min(set(cluster.ids) - set(cluster.pids))
        print(f"Kafka node {dead} exited; its log ends:\n{cluster.log_tail(dead)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        cluster.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
