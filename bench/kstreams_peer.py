"""The Kafka Streams peer (bench/kstreams-peer, Java) as a child process, like benchlib.QuixPeer.

`ensure_kstreams_peer()` builds it once with Maven (needs `java` and `mvn`; the first build fetches
kafka-streams 4.2.2 and its jars into ~/.m2, later builds and every run need no network);
`KStreamsPeer` runs the JVM and stops it by its pid.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from benchlib import PeerProcess, peer_args

PEER_DIR = Path(__file__).resolve().parent / "kstreams-peer"
POM = PEER_DIR / "pom.xml"
TARGET = PEER_DIR / "target"  # build output, to be git-ignored ("kstreams-peer/target/" in bench/.gitignore)
JAR = TARGET / "kstreams-peer.jar"
LIB = TARGET / "lib"  # the runtime classpath, copied there by `package` (maven-dependency-plugin)
MAIN = "trackguard.bench.DedupPeer"
# Measured on 2 cores (64 warm-ups, then a burst keyed by number; single runs, noisy): C1 only
# (TieredStopAtLevel=1) decided as fast as the default C2 JIT on 40,000 (~22,000/s either) and
# 150,000 events (~33,000/s either), with 30-45% less CPU, since C2's compiler threads compete with
# the stream thread and the broker and do not pay off within a burst this short; it also reaches
# its first verdict ~0.3 s sooner. SerialGC vs G1 made no measurable difference; it starts no
# parallel GC threads. The heap is small: the state lives in RocksDB, off heap. Pass `jvm_flags`
# without TieredStopAtLevel for much longer runs, where C2 should pull ahead.
JVM_FLAGS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def _sources_hash() -> str:
    h = hashlib.sha256(POM.read_bytes())
    for src in sorted((PEER_DIR / "src").rglob("*")):
        if src.is_file():
            h.update(str(src.relative_to(PEER_DIR)).encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def ensure_kstreams_peer(quiet: bool = True) -> Path:
    """The peer's jar, built by Maven on the first call (or after the pom or a source changed)."""
    want = _sources_hash()
    stamp = TARGET / "stamp"
    if stamp.exists() and stamp.read_text() == want and JAR.exists():
        return JAR
    TARGET.mkdir(parents=True, exist_ok=True)
    with open(TARGET / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second caller waits here, then finds the stamp
        if stamp.exists() and stamp.read_text() == want and JAR.exists():
            return JAR
        stamp.unlink(missing_ok=True)
        shutil.rmtree(LIB, ignore_errors=True)  # no jar of an older dependency set left on the classpath
        # (not `mvn clean`: it would delete the lock file under a waiting caller)
        cmd = ["mvn", "-B", "-Dstyle.color=never", *(["-q"] if quiet else []), "-f", str(POM), "package"]
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        )
        if proc.returncode != 0:
            tail = "".join(collections.deque(proc.stdout.splitlines(True), maxlen=30))
            raise RuntimeError(
                f"building the Kafka Streams peer failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}"
            )
        stamp.write_text(want)
    return JAR


class KStreamsPeer(PeerProcess):
    """bench/kstreams-peer as a child JVM (`process` is its Popen: the pid is the JVM's own)."""

    def __init__(
        self,
        broker: str,
        input_topic: str,
        output_topic: str,
        state_dir: Path,
        log_path: Path,
        group_by: bool,
        app_id: str = "kstreams-peer",
        jvm_flags: tuple[str, ...] = JVM_FLAGS,
    ) -> None:
        jar = ensure_kstreams_peer()
        cmd = [
            "java",
            *jvm_flags,
            "-cp",
            f"{jar}:{LIB}/*",
            MAIN,
            "--app-id",
            app_id,
            *peer_args(broker, input_topic, output_topic, state_dir, group_by),
        ]
        super().__init__(cmd, log_path)

    def wait_running(self, timeout: float = 60.0) -> bool:
        """Until the peer printed "STATE RUNNING" (Kafka Streams' state listener); False if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                if b"STATE RUNNING" in fh.read():
                    return True
            time.sleep(0.1)
        return False
