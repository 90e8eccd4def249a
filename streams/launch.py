"""Start and stop worker processes (demo, tests, benchmarks): by pid, never by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .broker import free_port, stop_process


class WorkerProcess:
    """`trackguard worker` as a child process with its own data directory and web port."""

    def __init__(
        self,
        broker: str,
        data_dir: Path,
        log_path: Path,
        *,
        web_port: int | None = None,
        env: dict[str, str] | None = None,
        config: str | None = None,
    ) -> None:
        self.broker = broker
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.web_port = web_port or free_port()
        self.env = env or {}
        self.config = config
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "streams"]
        if self.config:
            cmd += ["--config", self.config]
        cmd += [
            "worker",
            "--broker",
            self.broker,
            "--data-dir",
            str(self.data_dir),
            "--web-port",
            str(self.web_port),
            "--loglevel",
            "info",
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the child's life, closed in stop()
        self.process = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash the reliability tests simulate."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait for Faust's clean shutdown; SIGKILL if it hangs."""
        if self.process is None:
            return None
        code = stop_process(self.process, timeout)
        self._log.close()
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
