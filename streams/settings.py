"""Settings: `config/trackguard.toml`, then environment variables, then explicit overrides.

The TOML file is the one reference of every knob; this module only loads it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .core.carriers import CarrierBook
from .core.events import Limits
from .core.rules import HOUR_MS, Policy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "trackguard.toml"

# environment variable -> (section, key, type)
ENVIRONMENT = {
    "TRACKGUARD_BROKER": ("kafka", "broker", str),
    "TRACKGUARD_APP_ID": ("kafka", "app_id", str),
    "TRACKGUARD_PARTITIONS": ("kafka", "partitions", int),
    "TRACKGUARD_DATA_DIR": ("worker", "data_dir", str),
    "TRACKGUARD_WEB_PORT": ("worker", "web_port", int),
}


@dataclass(frozen=True)
class Topics:
    submitted: str = "shipments.submitted"
    accepted: str = "shipments.accepted"
    duplicate: str = "shipments.duplicate"
    frozen: str = "shipments.frozen"
    invalid: str = "shipments.invalid"
    commands: str = "shipments.commands"
    command_results: str = "shipments.command-results"
    alerts: str = "stores.alerts"

    def for_verdict(self, verdict: str) -> str:
        return getattr(self, verdict)

    @property
    def verdicts(self) -> tuple[str, ...]:
        return (self.accepted, self.duplicate, self.frozen, self.invalid)


@dataclass(frozen=True)
class Settings:
    broker: str = "127.0.0.1:9092"
    app_id: str = "trackguard"
    partitions: int = 8
    replication: int = 1
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 0.5
    data_dir: Path = Path("./data")
    web_port: int = 6066
    batch_max: int = 5000
    fetch_max_wait_ms: int = 25
    broker_lost_after_s: float = 60.0
    topics: Topics = field(default_factory=Topics)
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    carriers: CarrierBook | None = None
    # licence -> API token, and the admin token ([access] in the file; TRACKGUARD_TOKENS and
    # TRACKGUARD_ADMIN_TOKEN add to / override it). Held hashed by streams.web.Access.
    tokens: dict = field(default_factory=dict)
    admin_token: str | None = None

    @property
    def repartition_topic(self) -> str:
        """Submissions re-keyed by normalized tracking number (named with the app id: see NOTES)."""
        return f"{self.app_id}-submitted-by-number"

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load(config_path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the TOML file, apply TRACKGUARD_* environment variables, then `overrides` (None = unset)."""
    path = Path(config_path or os.environ.get("TRACKGUARD_CONFIG") or DEFAULT_CONFIG)
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    env = os.environ if env is None else env
    for var, (section, key, kind) in ENVIRONMENT.items():
        if env.get(var):
            raw.setdefault(section, {})[key] = kind(env[var])

    kafka, worker = raw.get("kafka", {}), raw.get("worker", {})
    policy = raw.get("policy", {})
    carriers_file = path.parent / raw.get("carriers", {}).get("file", "carriers.toml")
    with open(carriers_file, "rb") as fh:
        carriers = CarrierBook.from_mapping(tomllib.load(fh))

    settings = Settings(
        broker=kafka.get("broker", Settings.broker),
        app_id=kafka.get("app_id", Settings.app_id),
        partitions=int(kafka.get("partitions", Settings.partitions)),
        replication=int(kafka.get("replication", Settings.replication)),
        session_timeout_s=float(kafka.get("session_timeout_s", Settings.session_timeout_s)),
        heartbeat_interval_s=float(kafka.get("heartbeat_interval_s", Settings.heartbeat_interval_s)),
        data_dir=Path(worker.get("data_dir", Settings.data_dir)),
        web_port=int(worker.get("web_port", Settings.web_port)),
        batch_max=int(worker.get("batch_max", Settings.batch_max)),
        fetch_max_wait_ms=int(worker.get("fetch_max_wait_ms", Settings.fetch_max_wait_ms)),
        broker_lost_after_s=float(worker.get("broker_lost_after_s", Settings.broker_lost_after_s)),
        topics=Topics(**raw.get("topics", {})),
        policy=Policy(
            freeze_ms=int(float(policy.get("freeze_hours", 72)) * HOUR_MS),
            max_judged=int(policy.get("max_judged", Policy.max_judged)),
            max_uses=int(policy.get("max_uses", Policy.max_uses)),
        ),
        limits=Limits(**raw.get("limits", {})),
        carriers=carriers,
        tokens={**raw.get("access", {}).get("tokens", {}), **_env_tokens(env)},
        admin_token=env.get("TRACKGUARD_ADMIN_TOKEN") or raw.get("access", {}).get("admin_token"),
    )
    return settings.with_(**overrides)


def _env_tokens(env) -> dict[str, str]:
    """TRACKGUARD_TOKENS="LICENSE=TOKEN,LICENSE=TOKEN"."""
    pairs = [p.split("=", 1) for p in env.get("TRACKGUARD_TOKENS", "").split(",") if "=" in p]
    return {lic.strip(): tok.strip() for lic, tok in pairs if lic.strip() and tok.strip()}
