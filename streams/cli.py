"""`trackguard` command line: broker, worker, demo, submit, import, tail. Thin on purpose."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from . import settings as settings_mod
from .core.events import REQUIRED

if TYPE_CHECKING:
    from .erp_import import ImportResult

SUBMISSION_FIELDS = (*REQUIRED, "source")  # the submit command's flags, one per field


class CliError(Exception):
    """A problem the user can fix: printed as one or two lines, exit code 2, no traceback."""


def _settings(args: argparse.Namespace, *, broker: bool = False) -> settings_mod.Settings:
    """The settings for this command; with `broker`, first check that a broker answers."""
    settings = settings_mod.load(
        args.config,
        broker=getattr(args, "broker", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        web_port=getattr(args, "web_port", None),
    )
    if broker:
        from .kafka import check_reachable, ensure_topics

        check_reachable(settings)
        ensure_topics(settings)  # a first submit before any worker ran: the topics, as the worker makes them
    return settings


def cmd_broker(args: argparse.Namespace) -> int:
    from .broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port).start()
    print(broker.address, flush=True)
    print(f"# Tansu (memory only) on {broker.address}; export TRACKGUARD_BROKER={broker.address}", file=sys.stderr)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop and broker.process and broker.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from .cluster import java_available, run_cluster

    missing = java_available()
    if missing:
        raise CliError(f"{missing}; install OpenJDK 17+ and Maven, or use `trackguard broker` (Tansu)")
    return run_cluster(nodes=args.nodes, workdir=Path(args.workdir) if args.workdir else None)


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from .app import create_app

    settings = _settings(args, broker=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()  # returns only via sys.exit
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_mod.reference_markdown())
        return 0
    current = _settings(args)
    for s in settings_mod.DECLARED:
        value = getattr(current, s.key, None) if s.section in ("kafka", "worker") else None
        shown = f" = {value}" if value is not None else f" (default {s.default!r})"
        print(f"[{s.section}] {s.key}{shown}{f'  ${s.env}' if s.env else ''}\n    {s.help}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(events=args.events, workdir=Path(args.workdir), config=args.config)


def cmd_submit(args: argparse.Namespace) -> int:
    from .clients import Publisher

    if args.json:
        event = orjson.loads(args.json)
    else:
        event = {k: getattr(args, k) for k in SUBMISSION_FIELDS if getattr(args, k) is not None}
        event.setdefault("event_id", f"cli-{time.time_ns()}")
    pub = Publisher(_settings(args, broker=True))
    pub.send(event)
    pub.flush()
    print(f"submitted {event.get('event_id')} to {pub.topic}")
    return 0


IMPORT_SHOWN_ROWS = 5  # --dry-run prints this many submissions as JSON lines


def _read_erp_file(args: argparse.Namespace, settings: settings_mod.Settings) -> ImportResult:
    """`trackguard import` and `reconcile`: the file's rows, checked, with the columns used and
    each bad row printed as FILE:LINE:."""
    import codecs
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from .clients import read_events
    from .core.events import license_id_problem
    from .erp_import import BadColumnMap, RowContext, load_column_map

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    zone_name = args.timezone or settings.import_timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ValueError, ZoneInfoNotFoundError):
        raise CliError(f"--timezone {zone_name!r} is no IANA time zone (e.g. Asia/Shanghai, Europe/Berlin)") from None
    if args.encoding:
        try:
            codecs.lookup(args.encoding)
        except LookupError:
            raise CliError(f"--encoding {args.encoding!r} is no encoding Python knows (e.g. gb18030, utf-8)") from None
    id_format = settings.limits.license_id_format
    if args.license:
        problem = license_id_problem(args.license.strip(), id_format)
        if problem is not None:
            raise CliError(f"--license: {problem.error} ([policy] license_id_format = {id_format!r})")
    try:
        columns = load_column_map(settings.import_columns, Path(args.columns) if args.columns else None)
    except BadColumnMap as exc:
        raise CliError(str(exc)) from None

    context = RowContext(zone, license_id=(args.license or "").strip() or None, license_id_format=id_format)
    result = read_events(path, columns=columns, context=context, encoding=args.encoding)
    if result.columns:
        read_as = f"read as {result.encoding}; " if result.encoding else ""
        used = ", ".join(f"{header}→{name}" for name, header in result.columns.items())
        skipped = f"; not sent: {', '.join(result.ignored)}" if result.ignored else ""
        print(f"{path}: {read_as}columns {used}{skipped}", file=sys.stderr)
    for error in result.errors:
        print(f"{path}:{error.line}: {error.message}", file=sys.stderr)
    return result


def cmd_import(args: argparse.Namespace) -> int:
    """Read the whole file and check every row first; publish all or nothing (or the good rows with
    --skip-bad); --dry-run stops before the broker."""
    from .clients import publish_events

    settings = _settings(args)
    result = _read_erp_file(args, settings)
    good, bad = len(result.events), len(result.errors)
    if bad and not args.skip_bad:
        raise CliError(
            f"{bad} of {result.rows} rows cannot be imported (listed above); nothing was published. "
            f"Fix them, or pass --skip-bad to publish the {good} good rows"
        )
    skipped_note = f" ({bad} bad rows skipped)" if bad else ""
    if args.dry_run:
        print(f"would publish {good} submissions to {settings.topics.submitted}{skipped_note}; nothing published")
        for event in result.events[:IMPORT_SHOWN_ROWS]:
            print(orjson.dumps(event).decode())
        return 0
    n = publish_events(_settings(args, broker=True), result.events)
    print(f"imported {n} submissions{skipped_note}")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from .clients import tail

    tail(_settings(args, broker=True), as_json=args.json, from_beginning=args.from_beginning, max_s=args.seconds)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit

    report = audit(_settings(args, broker=True), idle_s=args.idle)
    print(report.render())
    return 0 if report.ok else 1


def _http(args: argparse.Namespace, method: str, path: str, body: dict | None = None, timeout: float = 30) -> int:
    """Call a worker's HTTP API with a token; print the JSON answer; exit 0 on 2xx."""
    import json
    import os
    import urllib.error
    import urllib.request

    url = (args.url or os.environ.get("TRACKGUARD_URL") or "http://127.0.0.1:6066").rstrip("/")
    token = args.token or os.environ.get("TRACKGUARD_TOKEN", "")
    if not token:
        raise CliError("no API token: pass --token or set TRACKGUARD_TOKEN (a licence's token, or the admin token)")
    req = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise CliError(
            f"cannot reach the trackguard HTTP API at {url}: {reason}\n"
            f"start a worker (`trackguard worker --web-port PORT`) or set --url / TRACKGUARD_URL"
        ) from None
    try:
        print(json.dumps(json.loads(payload), indent=2, ensure_ascii=False))
    except ValueError:
        print(payload.decode(errors="replace"))
    return 0 if 200 <= status < 300 else 1


def cmd_diagnose(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    return _http(args, "GET", f"/tracking/{quote(args.number)}")


def cmd_performance(args: argparse.Namespace) -> int:
    from urllib.parse import quote, urlencode

    query = f"?{urlencode({'license': args.license})}" if args.license else ""
    return _http(args, "GET", f"/stores/{quote(args.store, safe='')}/performance{query}")


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Read the ERP file as `import` does (rows it cannot read go along as findings), then
    POST /licenses/{id}/reconcile with the rows as JSON; prints the report (JSON or CSV)."""
    from urllib.parse import quote, urlencode

    result = _read_erp_file(args, _settings(args))
    rows = [{"line": line, **event} for line, event in zip(result.lines, result.events, strict=True)]
    rows += [{"line": e.line, "_error": e.message} for e in result.errors]
    query = urlencode({k: v for k, v in (("month", args.month), ("format", args.format)) if v})
    path = f"/licenses/{quote(args.license, safe='')}/reconcile{'?' + query if query else ''}"
    return _http(args, "POST", path, {"rows": rows}, timeout=300)


def cmd_reuse(args: argparse.Namespace) -> int:
    """GET /reuse (admin token): numbers claimed by more than one licence, by carrier and month."""
    from urllib.parse import urlencode

    query = urlencode(
        {k: v for k, v in (("month", args.month), ("carrier", args.carrier), ("format", args.format)) if v}
    )
    return _http(args, "GET", f"/reuse{'?' + query if query else ''}", timeout=300)


def cmd_check(args: argparse.Namespace) -> int:
    numbers: list[str] = []
    for item in args.items:
        path = Path(item)
        if path.is_file():  # one number per line (a CSV's first column)
            numbers += [line.split(",")[0].strip() for line in path.read_text().splitlines() if line.strip()]
        else:
            numbers.append(item)
    return _http(args, "POST", "/tracking/check", {"tracking_numbers": numbers})


def cmd_command(args: argparse.Namespace) -> int:
    import hashlib

    body = {
        k: getattr(args, k)
        for k in (
            "tracking_no",
            "license_id",
            "store_id",
            "order_id",
            "carrier_code",
            "ttl_s",
            "evidence_ref",
            "decided_by",
            "decision",
            "command_id",
        )
        if getattr(args, k, None) is not None
    }
    if getattr(args, "evidence", None):
        if not Path(args.evidence).is_file():
            raise CliError(f"{args.evidence}: no such evidence file")
        body["evidence_sha256"] = hashlib.sha256(Path(args.evidence).read_bytes()).hexdigest()
    return _http(args, "POST", f"/commands/{args.command}", body)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trackguard", description="Tracking-number guard on Kafka + Faust + RocksDB")
    p.add_argument("--config", help="settings file (default config/trackguard.toml, or TRACKGUARD_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    def with_broker(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--broker", help="host:port (default: TRACKGUARD_BROKER, then the config file)")
        return sp

    b = sub.add_parser("broker", help="run the embedded Tansu broker on a loopback port and print its address")
    b.add_argument("--port", type=int, help="port (default: a free one)")
    b.set_defaults(func=cmd_broker)

    k = sub.add_parser(
        "kafka", help="run Apache Kafka (KRaft, from Maven jars) on loopback and print its bootstrap servers"
    )
    k.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="1, or 3 (replication 3, min ISR 2)")
    k.add_argument("--workdir", help="log dirs and node logs (default: a new temporary directory)")
    k.set_defaults(func=cmd_kafka)

    w = with_broker(sub.add_parser("worker", help="run a Faust worker"))
    w.add_argument("--data-dir", help="RocksDB directory (default: TRACKGUARD_DATA_DIR, then the config file)")
    w.add_argument("--web-port", type=int, help="HTTP port (default: TRACKGUARD_WEB_PORT, then 6066)")
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=cmd_worker)

    st = sub.add_parser("settings", help="every setting: its value now, environment variable and meaning")
    st.add_argument("--markdown", action="store_true", help="the README's table")
    st.set_defaults(func=cmd_settings)

    d = sub.add_parser("demo", help="broker + worker + a realistic multi-store sample, then a summary")
    d.add_argument("--events", type=int, default=4000, help="shipments in the sample (before re-pushes)")
    d.add_argument("--workdir", default=".demo", help="where the demo keeps its data, logs and sample")
    d.set_defaults(func=cmd_demo)

    s = with_broker(sub.add_parser("submit", help="publish one submission"))
    s.add_argument("--json", help="the whole event as JSON")
    for name in SUBMISSION_FIELDS:
        s.add_argument("--" + name.replace("_", "-"), dest=name)
    s.set_defaults(func=cmd_submit)

    i = with_broker(
        sub.add_parser(
            "import",
            help="publish an ERP export (CSV in UTF-8 or GB18030/GBK, .xlsx; Chinese headers) or a JSON Lines file",
        )
    )
    i.add_argument("file", help=".csv / .tsv / .txt with a header row, .xlsx, or JSON Lines (any other name)")
    i.add_argument("--encoding", help="the CSV's encoding (default: UTF-8 with or without BOM, else GB18030)")
    i.add_argument("--timezone", help="zone of ship times without an offset (default: [import] timezone)")
    i.add_argument("--license", help="licence id for rows without one (a file with no licence column)")
    i.add_argument("--columns", help="a TOML file of header spellings added to config/import_columns.toml")
    i.add_argument("--skip-bad", action="store_true", help="publish the good rows even if some are bad (listed)")
    i.add_argument("--dry-run", action="store_true", help="check every row, print what would be sent, send nothing")
    i.set_defaults(func=cmd_import)

    t = with_broker(sub.add_parser("tail", help="follow the verdict topics"))
    t.add_argument("--json", action="store_true", help="print the verdicts as JSON lines")
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    t.set_defaults(func=cmd_tail)
    a = with_broker(sub.add_parser("audit", help="check every verdict against the topics and the pure core"))
    a.add_argument("--idle", type=float, default=3.0, help="stop reading a topic after this many idle seconds")
    a.set_defaults(func=cmd_audit)

    def with_api(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--url", help="a worker's HTTP address (default: TRACKGUARD_URL, then http://127.0.0.1:6066)")
        sp.add_argument("--token", help="API token (default: TRACKGUARD_TOKEN)")
        return sp

    dg = with_api(sub.add_parser("diagnose", help="what is known about a tracking number (HTTP API)"))
    dg.add_argument("number")
    dg.set_defaults(func=cmd_diagnose)

    ck = with_api(sub.add_parser("check", help="check numbers before pushing them (HTTP API)"))
    ck.add_argument("items", nargs="+", help="tracking numbers, or files with one number per line")
    ck.set_defaults(func=cmd_check)

    pf = with_api(sub.add_parser("performance", help="a store's failed shipments per month, penalties (HTTP API)"))
    pf.add_argument("store", help="the store id")
    pf.add_argument("--license", help="the store's licence (with the admin token; a licence token uses its own)")
    pf.set_defaults(func=cmd_performance)

    rc = with_api(
        sub.add_parser("reconcile", help="compare an ERP export with the licence's accepted numbers (HTTP API)")
    )
    rc.add_argument("file", help="the ERP's shipment log: .csv / .tsv / .txt, .xlsx, or JSON Lines, as for import")
    rc.add_argument("--license", required=True, help="the licence to reconcile (rows without a licence are its)")
    rc.add_argument("--month", help="YYYY-MM: only shipments of that month (ship time, [performance] timezone)")
    rc.add_argument("--format", choices=("json", "csv"), default="json", help="the report's format")
    rc.add_argument("--encoding", help="the CSV's encoding (default: UTF-8 with or without BOM, else GB18030)")
    rc.add_argument("--timezone", help="zone of ship times without an offset (default: [import] timezone)")
    rc.add_argument("--columns", help="a TOML file of header spellings added to config/import_columns.toml")
    rc.set_defaults(func=cmd_reconcile)

    ru = with_api(
        sub.add_parser("reuse", help="numbers claimed by more than one licence, by carrier and month (admin, HTTP API)")
    )
    ru.add_argument("--month", help="YYYY-MM: reuses that happened that month ([performance] timezone)")
    ru.add_argument("--carrier", help="one carrier, by code or as sellers name it (燕文, yanwen)")
    ru.add_argument("--format", choices=("json", "csv"), default="json", help="the report's format")
    ru.set_defaults(func=cmd_reuse)

    for kind, fields in (
        ("reserve", ("store_id", "order_id", "carrier_code")),
        ("release", ("order_id",)),
        ("appeal", ("evidence_ref", "decided_by")),
    ):
        c = with_api(sub.add_parser(kind, help=f"{kind} a tracking number (HTTP API)"))
        c.set_defaults(func=cmd_command, command=kind)
        c.add_argument("--tracking-no", required=True)
        c.add_argument("--license-id", help="only with the admin token")
        c.add_argument("--command-id", help="idempotency key (default: generated)")
        for f in fields:
            c.add_argument("--" + f.replace("_", "-"), dest=f, required=True)
        if kind == "reserve":
            c.add_argument("--ttl-s", type=int, required=True)
        if kind == "appeal":
            c.add_argument("--evidence", required=True, help="the evidence file; its SHA-256 is sent")
            c.add_argument("--decision", choices=["approved", "rejected"], required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    from .clients import BadImportFile, DeliveryFailed
    from .kafka import BrokerUnreachable

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (CliError, settings_mod.SettingsError, BrokerUnreachable, BadImportFile, DeliveryFailed) as exc:
        print(f"trackguard {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written
        print(f"trackguard {args.command}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
