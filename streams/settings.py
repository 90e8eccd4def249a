"""Settings, declared once: `DECLARED` names every key with its type, default, environment variable
and one line of help. The loader, the validation, the check of `config/trackguard.toml` and the
README's table (`trackguard settings --markdown`) all come from it.

Order of precedence: defaults < the TOML file (`--config`, `TRACKGUARD_CONFIG`, or
config/trackguard.toml) < `TRACKGUARD_*` environment variables < explicit overrides (CLI flags).
An unknown section or key, or a value of the wrong type, is an error that names it: a typo must
not be silently ignored.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .core.carriers import CarrierBook
from .core.events import LICENSE_ID_FORMATS, Limits
from .core.performance import PerformancePolicy
from .core.rules import HOUR_MS, Policy, Verdict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "trackguard.toml"


class SettingsError(ValueError):
    """A settings file or variable that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    type: type
    default: Any
    help: str
    env: str | None = None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


_LIMITS, _POLICY, _PERFORMANCE = Limits(), Policy(), PerformancePolicy()
GUARANTEES = ("auto", "at_least_once", "exactly_once")
NUMBERS_TABLE, STORES_TABLE = "numbers", "stores"  # the app's Faust tables (RocksDB + changelog)
TABLES = (NUMBERS_TABLE, STORES_TABLE)
DECLARED: tuple[Setting, ...] = (
    Setting(
        "kafka",
        "broker",
        str,
        "127.0.0.1:9092",
        "bootstrap servers, host:port[,host:port] (a kafka:// prefix is accepted)",
        "TRACKGUARD_BROKER",
    ),
    Setting(
        "kafka", "app_id", str, "trackguard", "consumer group and prefix of the internal topics", "TRACKGUARD_APP_ID"
    ),
    Setting(
        "kafka",
        "partitions",
        int,
        8,
        "partitions of every topic the app creates (source, repartition and changelog must match)",
        "TRACKGUARD_PARTITIONS",
    ),
    Setting(
        "kafka",
        "replication",
        int,
        1,
        "replication factor of the topics the app creates (3 on a real cluster)",
        "TRACKGUARD_REPLICATION",
    ),
    Setting(
        "kafka",
        "changelog_markers",
        str,
        "auto",
        "end each changelog batch with a marker record: needed where the broker's high watermark lags (Tansu); auto probes the broker at start, or always / never",
    ),
    Setting(
        "processing",
        "guarantee",
        str,
        "auto",
        "exactly_once (one Kafka transaction per batch: state, forwards, verdicts and offsets), at_least_once, or auto: exactly_once where the broker isolates transactions (Kafka), else at_least_once (Tansu); said at start",
        "TRACKGUARD_GUARANTEE",
    ),
    Setting(
        "processing",
        "transaction_timeout_ms",
        int,
        10_000,
        "exactly_once: a dead worker's open transaction is aborted after this long (until then read_committed consumers wait)",
    ),
    Setting(
        "kafka",
        "security_protocol",
        str,
        "PLAINTEXT",
        "PLAINTEXT, SASL_PLAINTEXT or SASL_SSL (SSL: TLS without SASL); every client the worker and the CLI open uses it",
        "TRACKGUARD_KAFKA_SECURITY_PROTOCOL",
    ),
    Setting(
        "kafka",
        "sasl_mechanism",
        str,
        "SCRAM-SHA-512",
        "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (SASL_* protocols only)",
        "TRACKGUARD_KAFKA_SASL_MECHANISM",
    ),
    Setting(
        "kafka",
        "sasl_username",
        str,
        "",
        "this process's Kafka principal (SASL_* protocols)",
        "TRACKGUARD_KAFKA_USERNAME",
    ),
    Setting(
        "kafka",
        "sasl_password",
        str,
        "",
        "its password (prefer the environment variable to the file)",
        "TRACKGUARD_KAFKA_PASSWORD",
    ),
    Setting(
        "kafka",
        "ssl_cafile",
        str,
        "",
        "PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL; empty: the system's)",
        "TRACKGUARD_KAFKA_SSL_CAFILE",
    ),
    Setting("kafka", "session_timeout_s", float, 6.0, "consumer-group session; a join waits about half of it"),
    Setting("kafka", "heartbeat_interval_s", float, 0.5, "consumer-group heartbeat"),
    Setting("topics", "submitted", str, "shipments.submitted", "submissions, keyed by anything"),
    Setting("topics", "accepted", str, "shipments.accepted", "accepted verdicts"),
    Setting("topics", "duplicate", str, "shipments.duplicate", "duplicate verdicts"),
    Setting("topics", "frozen", str, "shipments.frozen", "frozen verdicts"),
    Setting("topics", "invalid", str, "shipments.invalid", "dead letters: invalid verdicts with the raw bytes"),
    Setting("topics", "commands", str, "shipments.commands", "reserve / release / appeal commands"),
    Setting("topics", "command_results", str, "shipments.command-results", "one result per command"),
    Setting("topics", "alerts", str, "stores.alerts", "store performance alerts"),
    Setting("worker", "data_dir", Path, Path("./data"), "where RocksDB lives (one per worker)", "TRACKGUARD_DATA_DIR"),
    Setting("worker", "web_port", int, 6066, "HTTP API port", "TRACKGUARD_WEB_PORT"),
    Setting(
        "worker",
        "web_bind",
        str,
        "127.0.0.1",
        "HTTP API listen address (0.0.0.0: all interfaces, behind your gateway)",
        "TRACKGUARD_WEB_BIND",
    ),
    Setting(
        "worker",
        "web_host",
        str,
        "",
        "host name other workers use to forward requests here (empty: web_bind, or this host's name when binding all interfaces)",
        "TRACKGUARD_WEB_HOST",
    ),
    Setting(
        "worker",
        "allowed_hosts",
        str,
        "",
        "host names a request may carry in its Host header besides loopback, web_bind and web_host (a gateway's name), comma-separated; * allows any",
        "TRACKGUARD_ALLOWED_HOSTS",
    ),
    Setting(
        "worker",
        "batch_max",
        int,
        5000,
        "records per fetch, at most; a hot-path batch is one fetch, plus one more taken in while the batch before it is acknowledged",
    ),
    Setting("worker", "fetch_max_wait_ms", int, 25, "how long an empty fetch waits at the broker (Faust's own: 1500)"),
    Setting(
        "worker", "broker_lost_after_s", float, 60.0, "a worker that cannot reach the broker this long stops (exit 70)"
    ),
    Setting(
        "worker",
        "record_failures_per_minute",
        int,
        100,
        "more records than this failing within a minute (internal errors, refused by the broker) stop the worker: a systemic fault",
    ),
    Setting(
        "policy",
        "freeze_hours",
        float,
        _POLICY.freeze_ms / HOUR_MS,
        "a duplicate freezes the number for the licence this long (event time)",
    ),
    Setting("policy", "max_judged", int, _POLICY.max_judged, "event ids remembered per number (rule 2)"),
    Setting("policy", "max_uses", int, _POLICY.max_uses, "uses remembered per number (diagnosis)"),
    Setting(
        "policy",
        "license_id_format",
        str,
        "any",
        "any, or uscc: a license_id that is no valid Unified Social Credit Code (18 characters, check digit) is invalid",
    ),
    Setting(
        "performance",
        "timezone",
        str,
        _PERFORMANCE.timezone,
        "store performance counts failed shipments per calendar month in this time zone (the platform's; IANA name)",
        "TRACKGUARD_PERFORMANCE_TIMEZONE",
    ),
    Setting(
        "performance",
        "failures_for_penalty",
        int,
        _PERFORMANCE.failures_for_penalty,
        "failed shipments (duplicate, frozen) of a store in one month that cost an LFR penalty",
    ),
    Setting("performance", "penalty", float, _PERFORMANCE.penalty, "the LFR penalty of such a month"),
    Setting(
        "performance",
        "months_for_downgrade",
        int,
        _PERFORMANCE.months_for_downgrade,
        "penalised months in a row that are a service downgrade",
    ),
    Setting(
        "performance",
        "keep_months",
        int,
        _PERFORMANCE.keep_months,
        "months kept per store (with the event ids counted in them); older ones are dropped",
    ),
    Setting(
        "limits",
        "max_event_bytes",
        int,
        _LIMITS.max_event_bytes,
        "a larger submission or command is invalid (TOO_LARGE)",
    ),
    Setting("limits", "max_field_chars", int, _LIMITS.max_field_chars, "event_id, license_id, store_id, order_id"),
    Setting("limits", "max_carrier_chars", int, _LIMITS.max_carrier_chars, "carrier_code"),
    Setting("limits", "max_tracking_chars", int, _LIMITS.max_tracking_chars, "tracking_no after normalization"),
    Setting(
        "limits",
        "max_dead_letter_bytes",
        int,
        _LIMITS.max_dead_letter_bytes,
        "a dead letter keeps the raw bytes in full up to this size, else a prefix + SHA-256 + length",
    ),
    Setting(
        "limits",
        "dead_letter_prefix_bytes",
        int,
        _LIMITS.dead_letter_prefix_bytes,
        "the prefix of the raw bytes kept beyond that",
    ),
    Setting(
        "access",
        "admin_token",
        str,
        "",
        "API token that sees every licence (prefer TRACKGUARD_ADMIN_TOKEN)",
        "TRACKGUARD_ADMIN_TOKEN",
    ),
    Setting(
        "access",
        "tokens",
        dict,
        {},
        'licence -> API token table (prefer TRACKGUARD_TOKENS="LIC=TOKEN,...")',
        "TRACKGUARD_TOKENS",
    ),
    Setting(
        "access",
        "peer_secret",
        str,
        "",
        "the key workers sign requests they forward to each other with (empty: derived from every configured token; set it when tokens differ between workers)",
        "TRACKGUARD_PEER_SECRET",
    ),
    Setting("carriers", "file", str, "carriers.toml", "the carrier book, relative to the settings file"),
    Setting(
        "import",
        "timezone",
        str,
        "Asia/Shanghai",
        "trackguard import: the time zone of ship times written without an offset (IANA name; --timezone)",
    ),
    Setting(
        "import",
        "columns",
        str,
        "import_columns.toml",
        "trackguard import: the column-header mapping, relative to the settings file (--columns adds to it)",
    ),
)
_BY_SECTION: dict[str, dict[str, Setting]] = {}
for _s in DECLARED:
    _BY_SECTION.setdefault(_s.section, {})[_s.key] = _s


SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of ours authenticates: the worker's Faust consumer (aiokafka), its
    confluent-kafka producers and admin clients, and the CLI's. Declared once here so that no
    client can be left open when the cluster is not."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)  # never in a log line or a traceback's repr
    cafile: str = ""

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def librdkafka(self) -> dict[str, str]:
        """confluent-kafka's configuration keys for it (empty for PLAINTEXT: librdkafka's default)."""
        if self.protocol == "PLAINTEXT":
            return {}
        config = {"security.protocol": self.protocol.lower()}
        if self.sasl:
            config |= {"sasl.mechanism": self.mechanism, "sasl.username": self.username, "sasl.password": self.password}
        if self.tls and self.cafile:
            config["ssl.ca.location"] = self.cafile
        return config


@dataclass(frozen=True)
class Topics:
    submitted: str
    accepted: str
    duplicate: str
    frozen: str
    invalid: str
    commands: str
    command_results: str
    alerts: str

    def __post_init__(self) -> None:
        by_verdict = {
            Verdict.ACCEPTED: self.accepted,
            Verdict.DUPLICATE: self.duplicate,
            Verdict.FROZEN: self.frozen,
            Verdict.INVALID: self.invalid,
        }
        object.__setattr__(self, "_by_verdict", by_verdict)  # frozen: set once, looked up per verdict

    @property
    def by_verdict(self) -> dict[str, str]:
        """verdict (core.rules.Verdict) -> its topic (not a field: every field is a topic)."""
        return self._by_verdict  # type: ignore[attr-defined]

    def for_verdict(self, verdict: str) -> str:
        """The topic of a verdict (core.rules.Verdict)."""
        return self.by_verdict[verdict]

    @property
    def verdicts(self) -> tuple[str, ...]:
        return (self.accepted, self.duplicate, self.frozen, self.invalid)


@dataclass(frozen=True)
class Settings:
    broker: str
    app_id: str
    partitions: int
    replication: int
    changelog_markers: str
    guarantee: str  # auto | at_least_once | exactly_once, as configured (the worker resolves auto)
    transaction_timeout_ms: int
    session_timeout_s: float
    heartbeat_interval_s: float
    data_dir: Path
    web_port: int
    web_bind: str
    web_host: str
    allowed_hosts: str
    batch_max: int
    fetch_max_wait_ms: int
    broker_lost_after_s: float
    record_failures_per_minute: int
    topics: Topics
    policy: Policy
    limits: Limits
    carriers: CarrierBook
    tokens: dict[str, str]  # licence -> API token; held hashed by streams.api.Access
    admin_token: str | None
    peer_secret: str | None = None
    kafka_security: KafkaSecurity = KafkaSecurity()
    performance: PerformancePolicy = PerformancePolicy()
    import_timezone: str = "Asia/Shanghai"  # [import]: read by `trackguard import` only
    import_columns: Path | None = None

    @property
    def repartition_topic(self) -> str:
        """Submissions re-keyed by normalized tracking number (named with the app id: see NOTES)."""
        return f"{self.app_id}-submitted-by-number"

    @property
    def changelog_topics(self) -> list[str]:
        """The tables' changelog topics (Faust's names), created compacted with the others."""
        return [f"{self.app_id}-{table}-changelog" for table in TABLES]

    @property
    def stores_topic(self) -> str:
        """Failed verdicts re-keyed by store, feeding the stores table (store performance)."""
        return f"{self.app_id}-failures-by-store"

    def client_config(self, **extra: Any) -> dict[str, Any]:
        """A confluent-kafka client's configuration: the brokers, how to authenticate, then `extra`."""
        return {"bootstrap.servers": self.broker, **self.kafka_security.librdkafka(), **extra}

    @property
    def advertised_web_host(self) -> str:
        if self.web_host:
            return self.web_host
        if self.web_bind in ("0.0.0.0", "::", ""):
            import socket

            return socket.gethostname()
        return self.web_bind

    def with_(self, **changes: Any) -> Settings:
        changes = {k: v for k, v in changes.items() if v is not None}
        if "broker" in changes:
            changes["broker"] = normalize_broker(changes["broker"])
        return replace(self, **changes)


def normalize_broker(value: str) -> str:
    """`host:port[,host:port]`, also from Faust's URL form (`kafka://h1:9092;h2:9092`)."""
    servers = []
    for part in value.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        part = part.rstrip("/")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError(f"broker address {part!r} is not host:port (e.g. 127.0.0.1:9092)")
        servers.append(part)
    if not servers:
        raise SettingsError("no broker address given (e.g. 127.0.0.1:9092)")
    return ",".join(servers)


def load(config_path: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, the TOML file, TRACKGUARD_* variables, then `overrides` (None = unset)."""
    path = Path(config_path or os.environ.get("TRACKGUARD_CONFIG") or DEFAULT_CONFIG)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"settings file {path} cannot be read: {exc}") from None
    env = os.environ if env is None else env
    values = {s.name: s.default for s in DECLARED}
    for section, table in raw.items():
        known = _BY_SECTION.get(section)
        if known is None:
            raise SettingsError(f"{path}: unknown section [{section}]{_did_you_mean(section, _BY_SECTION)}")
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: [{section}] must be a table")
        for key, value in table.items():
            setting = known.get(key)
            if setting is None:
                raise SettingsError(f"{path}: unknown key '{key}' in [{section}]{_did_you_mean(key, known)}")
            values[setting.name] = _typed(setting, value, f"{path}: [{section}] {key}")
    for setting in DECLARED:
        if setting.env and env.get(setting.env):
            text = env[setting.env]
            values[setting.name] = (
                _env_tokens(text)
                if setting.type is dict
                else _typed(setting, _from_text(setting, text), f"environment variable {setting.env}")
            )
    if env.get("TRACKGUARD_TOKENS"):  # the environment adds to the file's tokens
        values["access.tokens"] = {**raw.get("access", {}).get("tokens", {}), **values["access.tokens"]}

    carriers_file = path.parent / values["carriers.file"]
    try:
        with open(carriers_file, "rb") as fh:
            carriers = CarrierBook.from_mapping(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"carrier book {carriers_file} cannot be read: {exc}") from None

    def section_values(name: str) -> dict[str, Any]:
        return {s.key: values[s.name] for s in DECLARED if s.section == name}

    kafka, worker, policy = section_values("kafka"), section_values("worker"), section_values("policy")
    settings = Settings(
        **{
            k: kafka[k]
            for k in (
                "app_id",
                "partitions",
                "replication",
                "changelog_markers",
                "session_timeout_s",
                "heartbeat_interval_s",
            )
        },
        broker=normalize_broker(kafka["broker"]),
        kafka_security=KafkaSecurity(
            protocol=kafka["security_protocol"],
            mechanism=kafka["sasl_mechanism"],
            username=kafka["sasl_username"],
            password=kafka["sasl_password"],
            cafile=kafka["ssl_cafile"],
        ),
        **section_values("processing"),
        **worker,
        topics=Topics(**section_values("topics")),
        policy=Policy(
            freeze_ms=int(policy["freeze_hours"] * HOUR_MS),
            max_judged=policy["max_judged"],
            max_uses=policy["max_uses"],
        ),
        limits=Limits(**section_values("limits"), license_id_format=policy["license_id_format"]),
        performance=PerformancePolicy(**section_values("performance")),
        carriers=carriers,
        tokens=dict(values["access.tokens"]),
        admin_token=values["access.admin_token"] or None,
        peer_secret=values["access.peer_secret"] or None,
        import_timezone=values["import.timezone"],
        import_columns=path.parent / values["import.columns"],
    )
    _check(settings)
    return settings.with_(**overrides)


def _typed(setting: Setting, value: Any, where: str) -> Any:
    kind = setting.type
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind is dict and isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SettingsError(f'{where}: every entry must be "LICENCE" = "TOKEN" (strings)')
        return value
    if isinstance(value, bool) or not isinstance(value, kind):
        shown = "path" if kind is Path else "table" if kind is dict else kind.__name__
        raise SettingsError(f"{where} must be a {shown}, got {type(value).__name__} {value!r}")
    return value


def _from_text(setting: Setting, text: str) -> Any:
    if setting.type in (int, float):
        try:
            return setting.type(text)
        except ValueError:
            raise SettingsError(f"environment variable {setting.env}={text!r} must be a number") from None
    return text


def _check(settings: Settings) -> None:
    if settings.partitions < 1 or settings.replication < 1:
        raise SettingsError("[kafka] partitions and replication must be at least 1")
    if settings.changelog_markers not in ("auto", "always", "never"):
        raise SettingsError(
            f"[kafka] changelog_markers must be auto, always or never, not {settings.changelog_markers!r}"
        )
    security = settings.kafka_security
    if security.protocol not in SECURITY_PROTOCOLS:
        raise SettingsError(
            f"[kafka] security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, not {security.protocol!r}"
        )
    if security.mechanism not in SASL_MECHANISMS:
        raise SettingsError(
            f"[kafka] sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, not {security.mechanism!r}"
        )
    if security.sasl and not (security.username and security.password):
        raise SettingsError(
            f"[kafka] security_protocol {security.protocol} needs sasl_username and sasl_password "
            "(TRACKGUARD_KAFKA_USERNAME, TRACKGUARD_KAFKA_PASSWORD)"
        )
    if settings.guarantee not in GUARANTEES:
        raise SettingsError(
            f"[processing] guarantee must be one of {', '.join(GUARANTEES)}, not {settings.guarantee!r}"
        )
    if settings.limits.license_id_format not in LICENSE_ID_FORMATS:
        raise SettingsError(
            f"[policy] license_id_format must be {' or '.join(LICENSE_ID_FORMATS)}, "
            f"not {settings.limits.license_id_format!r}"
        )
    for section, zone in (("import", settings.import_timezone), ("performance", settings.performance.timezone)):
        try:
            ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError):
            raise SettingsError(f"[{section}] timezone {zone!r} is no IANA time zone (e.g. Asia/Shanghai)") from None
    perf = settings.performance
    if perf.failures_for_penalty < 1 or perf.months_for_downgrade < 1 or perf.keep_months < perf.months_for_downgrade:
        raise SettingsError(
            "[performance] failures_for_penalty and months_for_downgrade must be at least 1, "
            "and keep_months at least months_for_downgrade"
        )
    _check_tokens(settings.tokens, settings.admin_token)
    if settings.limits.max_dead_letter_bytes < 4 * settings.limits.dead_letter_prefix_bytes + 4096:
        raise SettingsError(
            "[limits] max_dead_letter_bytes must leave room for the prefix (4 x "
            "dead_letter_prefix_bytes + 4096 bytes for the verdict's fields)"
        )


def _check_tokens(tokens: Mapping[str, str], admin_token: str | None) -> None:
    """One token, one caller: a token given to two licences would sign in as whichever the worker
    tries last, and a licence holding the admin token would see every licence."""
    holders: dict[str, list[str]] = {}
    for licence, token in tokens.items():
        holders.setdefault(token, []).append(licence)
    for token, licences in holders.items():
        if len(licences) > 1:
            raise SettingsError(f"[access] tokens: licences {', '.join(sorted(licences))} have the same token")
        if admin_token and token == admin_token:
            raise SettingsError(f"[access] licence {licences[0]} has the admin token as its own: give it another")


def _did_you_mean(word: str, choices: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(choices)})"


def _env_tokens(text: str) -> dict[str, str]:
    """TRACKGUARD_TOKENS="LICENSE=TOKEN,LICENSE=TOKEN"."""
    pairs = [p.split("=", 1) for p in text.split(",") if "=" in p]
    return {lic.strip(): tok.strip() for lic, tok in pairs if lic.strip() and tok.strip()}


def reference_markdown() -> str:
    """The README's settings table, from the declarations."""
    rows = ["| setting | default | environment | meaning |", "|---|---|---|---|"]
    for s in DECLARED:
        default = "" if s.default in ("", {}) else str(s.default)
        rows.append(
            f"| `{s.name}` | {f'`{default}`' if default else 'none'} | {f'`{s.env}`' if s.env else ''} | {s.help} |"
        )
    return "\n".join(rows)
