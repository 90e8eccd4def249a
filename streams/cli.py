"""`trackguard` command line: broker, worker, demo, submit, import, tail. Thin on purpose.

People get tables, panels and progress bars (rich, drawn by streams/render.py) in Chinese or
English (`--lang`, else TRACKGUARD_LANG, else the locale); machines get `--json`. Progress bars and
errors go to stderr, and bars only when stderr is a terminal: piped or captured output holds no
control codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console, RenderableType
from rich.text import Text

from . import settings as settings_mod
from . import stops
from .core.events import REQUIRED
from .i18n import LANGUAGES, language, t

if TYPE_CHECKING:
    from rich.progress import Progress

    from .erp_import import ImportResult

SUBMISSION_FIELDS = (*REQUIRED, "source")  # the submit command's flags, one per field


class CliError(Exception):
    """A problem the user can fix: one or two lines in the user's language (a `cli.error.*` entry
    of streams/i18n/cli.json), exit code 2, no traceback."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key, self.values = key, values

    def message(self, lang: str) -> str:
        return t(f"cli.error.{self.key}", lang, **self.values)


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _say(console: Console, line: str | Text) -> None:
    """A line as it is: no markup (a path may hold [brackets]), no wrapping (one line stays one)."""
    console.print(line if isinstance(line, Text) else Text(line), soft_wrap=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@contextmanager
def _progress() -> Iterator[Progress]:
    """Progress bars on stderr, drawn only when it is a terminal, gone when done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = _err()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bars:
        yield bars


def _counter(bars: Progress, description: str, total: int | None = None) -> Callable[[int], None]:
    """A task on `bars` and the callback that moves it: called with how many are done so far."""
    task = bars.add_task(description, total=total)
    return lambda done: bars.update(task, completed=done)


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
        raise CliError("no_java", missing=missing)
    return run_cluster(nodes=args.nodes, workdir=Path(args.workdir) if args.workdir else None)


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from .app import create_app

    settings = _settings(args, broker=True)
    stops.watch(settings.data_dir)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    try:
        worker.execute_from_commandline()  # returns only via sys.exit
    except SystemExit as exc:
        if exc.code in (0, None):
            stops.clean()
            raise
        # Faust's own crash (its recovery, a service) ends in a trace and "We experienced a crash!":
        # one line says what it was, and whether it is the same as at the last starts.
        reason = stops.explain(worker.crash_reason) if worker.crash_reason else f"the worker exited with {exc.code}"
        repeats = stops.fatal(reason)
        loop = f" [crash loop: the same failure ended the last {repeats} starts]" if repeats > 1 else ""
        logging.getLogger("trackguard.worker").critical("FATAL: %s%s", reason, loop)
        raise SystemExit(stops.EX_WORKER_FAILED) from None
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_mod.reference_markdown())
        return 0
    current = _settings(args)
    rows = [
        {
            "section": s.section,
            "key": s.key,
            # the value in force where this command reads it (kafka, worker); else only the default
            "value": getattr(current, s.key, None) if s.section in ("kafka", "worker") else None,
            "default": s.default,
            "env": s.env,
            "help": s.help,
        }
        for s in settings_mod.DECLARED
    ]
    if args.json:
        _print_json(rows)
        return 0
    from .render import settings_table

    _out().print(settings_table(rows, args.lang))
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
    print(t("cli.submitted", args.lang, event_id=event.get("event_id"), topic=pub.topic))
    return 0


IMPORT_SHOWN_ROWS = 5  # --dry-run prints this many submissions as JSON lines


def _read_erp_file(args: argparse.Namespace, settings: settings_mod.Settings) -> ImportResult:
    """`trackguard import` and `reconcile`: the file's rows, checked, with the columns used and
    each bad row printed as FILE:LINE:."""
    import codecs
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from .clients import read_events
    from .core.events import license_id_problem
    from .erp_import import RowContext, load_column_map

    lang = args.lang
    path = Path(args.file)
    if not path.is_file():
        raise CliError("no_such_file", path=path)
    zone_name = args.timezone or settings.import_timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ValueError, ZoneInfoNotFoundError):
        raise CliError("bad_timezone", zone=zone_name) from None
    if args.encoding:
        try:
            codecs.lookup(args.encoding)
        except LookupError:
            raise CliError("bad_encoding", encoding=args.encoding) from None
    id_format = settings.limits.license_id_format
    if args.license:
        problem = license_id_problem(args.license.strip(), id_format)
        if problem is not None:
            raise CliError("bad_license", problem=problem.error, format=id_format)
    columns = load_column_map(settings.import_columns, Path(args.columns) if args.columns else None)

    context = RowContext(zone, license_id=(args.license or "").strip() or None, license_id_format=id_format)
    with _progress() as bars:
        rows_read = _counter(bars, t("cli.progress.reading", lang, file=path.name))
        result = read_events(path, columns=columns, context=context, encoding=args.encoding, on_rows=rows_read)
    err = _err()
    if result.columns:
        read_as = t("cli.import.read_as", lang, encoding=result.encoding) if result.encoding else ""
        used = ", ".join(f"{header}→{name}" for name, header in result.columns.items())
        not_sent = t("cli.import.not_sent", lang, headers=", ".join(result.ignored)) if result.ignored else ""
        _say(err, t("cli.import.columns", lang, path=path, read_as=read_as, used=used, not_sent=not_sent))
    for error in result.errors:
        _say(err, f"{path}:{error.line}: {error.message}")
    return result


def cmd_import(args: argparse.Namespace) -> int:
    """Read the whole file and check every row first; publish all or nothing (or the good rows with
    --skip-bad); --dry-run stops before the broker. --json: one summary object on stdout."""
    from .clients import publish_events

    lang = args.lang
    settings = _settings(args)
    result = _read_erp_file(args, settings)
    good, bad = len(result.events), len(result.errors)
    summary: dict[str, Any] = {
        "file": args.file,
        "encoding": result.encoding,
        "columns": result.columns,
        "not_sent": result.ignored,
        "rows": result.rows,
        "good": good,
        "bad": bad,
        "errors": [{"line": e.line, "message": e.message} for e in result.errors],
        "topic": settings.topics.submitted,
        "dry_run": args.dry_run,
        "published": 0,
    }
    if bad and not args.skip_bad:
        if args.json:
            _print_json(summary)
        raise CliError("bad_rows", bad=bad, rows=result.rows, good=good)
    skipped = t("cli.import.skipped", lang, bad=bad) if bad else ""
    if args.dry_run:
        if args.json:
            _print_json({**summary, "first_events": result.events[:IMPORT_SHOWN_ROWS]})
            return 0
        print(t("cli.import.would_publish", lang, good=good, topic=settings.topics.submitted, skipped=skipped))
        for event in result.events[:IMPORT_SHOWN_ROWS]:
            print(orjson.dumps(event).decode())
        return 0
    broker_settings = _settings(args, broker=True)
    with _progress() as bars:
        n = publish_events(
            broker_settings, result.events, on_sent=_counter(bars, t("cli.progress.publishing", lang), good)
        )
    if args.json:
        _print_json({**summary, "published": n})
    else:
        print(t("cli.import.imported", lang, count=n, skipped=skipped))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from .clients import tail

    show: Callable[[bytes], None]
    if args.json:

        def show(value: bytes) -> None:
            sys.stdout.write(value.decode() + "\n")
            sys.stdout.flush()  # a pipe reader (jq, a log shipper) sees each verdict as it comes

    else:
        from .render import verdict_line

        out = _out()

        def show(value: bytes) -> None:
            _say(out, verdict_line(orjson.loads(value), args.lang))

    tail(_settings(args, broker=True), show=show, from_beginning=args.from_beginning, max_s=args.seconds)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit

    settings = _settings(args, broker=True)
    with _progress() as bars:
        report = audit(settings, idle_s=args.idle, on_records=_counter(bars, t("cli.progress.audit", args.lang)))
    if args.json:
        _print_json(report.as_dict())
    else:
        from .render import audit_report

        _out().print(audit_report(report.as_dict(), args.lang))
    return 0 if report.ok else 1


def _call_api(
    args: argparse.Namespace, method: str, path: str, body: dict | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """Call a worker's HTTP API with a token: the status and the answer's bytes."""
    import os
    import urllib.error
    import urllib.request

    url = (args.url or os.environ.get("TRACKGUARD_URL") or "http://127.0.0.1:6066").rstrip("/")
    token = args.token or os.environ.get("TRACKGUARD_TOKEN", "")
    if not token:
        raise CliError("no_token")
    req = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise CliError("api_unreachable", url=url, reason=reason) from None


Renderer = Callable[[Any, str], RenderableType]


def _show_answer(args: argparse.Namespace, status: int, payload: bytes, render: Renderer) -> int:
    """Print the API's answer: for people through `render`, a refusal as an error line on stderr;
    with --json (or --format) exactly the API's JSON, or its text. Exit 0 on 2xx, else 1."""
    ok = 200 <= status < 300
    try:
        answer = json.loads(payload)
    except ValueError:  # CSV, or a proxy's error page: as it came
        print(payload.decode(errors="replace"))
        return 0 if ok else 1
    machine = args.json or getattr(args, "format", None) is not None
    if machine:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    elif not ok and not (isinstance(answer, dict) and "ok" in answer):  # a refusal; a command's result has "ok"
        said = answer["error"] if isinstance(answer, dict) and "error" in answer else payload.decode(errors="replace")
        error = t("cli.error.api_refused", args.lang, status=status, error=said)
        _say(_err(), t("cli.error", args.lang, command=args.command, error=error))
    else:
        _out().print(render(answer, args.lang))
    return 0 if ok else 1


def cmd_diagnose(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from .render import diagnosis

    return _show_answer(args, *_call_api(args, "GET", f"/tracking/{quote(args.number)}"), diagnosis)


def cmd_performance(args: argparse.Namespace) -> int:
    from urllib.parse import quote, urlencode

    from .render import performance

    query = f"?{urlencode({'license': args.license})}" if args.license else ""
    return _show_answer(
        args, *_call_api(args, "GET", f"/stores/{quote(args.store, safe='')}/performance{query}"), performance
    )


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Read the ERP file as `import` does (rows it cannot read go along as findings), then
    POST /licenses/{id}/reconcile with the rows as JSON; prints the report (people, JSON or CSV)."""
    from urllib.parse import quote, urlencode

    from .render import reconcile

    result = _read_erp_file(args, _settings(args))
    rows = [{"line": line, **event} for line, event in zip(result.lines, result.events, strict=True)]
    rows += [{"line": e.line, "_error": e.message} for e in result.errors]
    query = urlencode({k: v for k, v in (("month", args.month), ("format", args.format)) if v})
    path = f"/licenses/{quote(args.license, safe='')}/reconcile{'?' + query if query else ''}"
    with _progress() as bars:
        bars.add_task(t("cli.progress.waiting", args.lang), total=None)  # a spinner: the report comes whole
        answer = _call_api(args, "POST", path, {"rows": rows}, timeout=300)
    return _show_answer(args, *answer, reconcile)


def cmd_reuse(args: argparse.Namespace) -> int:
    """GET /reuse (admin token): numbers claimed by more than one licence, by carrier and month."""
    from urllib.parse import urlencode

    from .render import reuse

    query = urlencode(
        {k: v for k, v in (("month", args.month), ("carrier", args.carrier), ("format", args.format)) if v}
    )
    return _show_answer(args, *_call_api(args, "GET", f"/reuse{'?' + query if query else ''}", timeout=300), reuse)


def cmd_check(args: argparse.Namespace) -> int:
    from .render import check

    numbers: list[str] = []
    for item in args.items:
        path = Path(item)
        if path.is_file():  # one number per line (a CSV's first column)
            numbers += [line.split(",")[0].strip() for line in path.read_text().splitlines() if line.strip()]
        else:
            numbers.append(item)
    return _show_answer(args, *_call_api(args, "POST", "/tracking/check", {"tracking_numbers": numbers}), check)


def cmd_command(args: argparse.Namespace) -> int:
    import hashlib

    from .render import command_result

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
            raise CliError("no_evidence", path=args.evidence)
        body["evidence_sha256"] = hashlib.sha256(Path(args.evidence).read_bytes()).hexdigest()
    return _show_answer(args, *_call_api(args, "POST", f"/commands/{args.command}", body), command_result)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trackguard", description="Tracking-number guard on Kafka + Faust + RocksDB")
    p.add_argument("--config", help="settings file (default config/trackguard.toml, or TRACKGUARD_CONFIG)")
    lang_help = "language of the output: zh or en (default: TRACKGUARD_LANG, then the locale)"
    p.add_argument("--lang", choices=LANGUAGES, help=lang_help)
    # --lang also after the command; SUPPRESS keeps one given before it when not repeated
    with_lang = argparse.ArgumentParser(add_help=False)
    with_lang.add_argument("--lang", choices=LANGUAGES, default=argparse.SUPPRESS, help=lang_help)
    sub = p.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return add_parser(name, parents=[with_lang], **kwargs)

    def with_json(sp: argparse.ArgumentParser, what: str = "the API's answer as JSON") -> argparse.ArgumentParser:
        sp.add_argument("--json", action="store_true", help=f"print {what} (for machines)")
        return sp

    def with_broker(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--broker", help="host:port (default: TRACKGUARD_BROKER, then the config file)")
        return sp

    b = command("broker", help="run the embedded Tansu broker on a loopback port and print its address")
    b.add_argument("--port", type=int, help="port (default: a free one)")
    b.set_defaults(func=cmd_broker)

    k = command("kafka", help="run Apache Kafka (KRaft, from Maven jars) on loopback and print its bootstrap servers")
    k.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="1, or 3 (replication 3, min ISR 2)")
    k.add_argument("--workdir", help="log dirs and node logs (default: a new temporary directory)")
    k.set_defaults(func=cmd_kafka)

    w = with_broker(command("worker", help="run a Faust worker"))
    w.add_argument("--data-dir", help="RocksDB directory (default: TRACKGUARD_DATA_DIR, then the config file)")
    w.add_argument("--web-port", type=int, help="HTTP port (default: TRACKGUARD_WEB_PORT, then 6066)")
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=cmd_worker)

    st = with_json(
        command("settings", help="every setting: its value now, environment variable and meaning"),
        "the settings as JSON",
    )
    st.add_argument("--markdown", action="store_true", help="the README's table")
    st.set_defaults(func=cmd_settings)

    d = command("demo", help="broker + worker + a realistic multi-store sample, then a summary")
    d.add_argument("--events", type=int, default=4000, help="shipments in the sample (before re-pushes)")
    d.add_argument("--workdir", default=".demo", help="where the demo keeps its data, logs and sample")
    d.set_defaults(func=cmd_demo)

    s = with_broker(command("submit", help="publish one submission"))
    s.add_argument("--json", help="the whole event as JSON")
    for name in SUBMISSION_FIELDS:
        s.add_argument("--" + name.replace("_", "-"), dest=name)
    s.set_defaults(func=cmd_submit)

    i = with_json(
        with_broker(
            command(
                "import",
                help="publish an ERP export (CSV in UTF-8 or GB18030/GBK, .xlsx; Chinese headers) or a JSON Lines file",
            )
        ),
        "a summary as JSON (with --dry-run: and the first rows)",
    )
    i.add_argument("file", help=".csv / .tsv / .txt with a header row, .xlsx, or JSON Lines (any other name)")
    i.add_argument("--encoding", help="the CSV's encoding (default: UTF-8 with or without BOM, else GB18030)")
    i.add_argument("--timezone", help="zone of ship times without an offset (default: [import] timezone)")
    i.add_argument("--license", help="licence id for rows without one (a file with no licence column)")
    i.add_argument("--columns", help="a TOML file of header spellings added to config/import_columns.toml")
    i.add_argument("--skip-bad", action="store_true", help="publish the good rows even if some are bad (listed)")
    i.add_argument("--dry-run", action="store_true", help="check every row, print what would be sent, send nothing")
    i.set_defaults(func=cmd_import)

    tl = with_json(with_broker(command("tail", help="follow the verdict topics")), "the verdicts as JSON lines")
    tl.add_argument("--from-beginning", action="store_true")
    tl.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    tl.set_defaults(func=cmd_tail)
    a = with_json(
        with_broker(command("audit", help="check every verdict against the topics and the pure core")),
        "the report as JSON",
    )
    a.add_argument("--idle", type=float, default=3.0, help="stop reading a topic after this many idle seconds")
    a.set_defaults(func=cmd_audit)

    def with_api(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--url", help="a worker's HTTP address (default: TRACKGUARD_URL, then http://127.0.0.1:6066)")
        sp.add_argument("--token", help="API token (default: TRACKGUARD_TOKEN)")
        return with_json(sp)

    dg = with_api(command("diagnose", help="what is known about a tracking number (HTTP API)"))
    dg.add_argument("number")
    dg.set_defaults(func=cmd_diagnose)

    ck = with_api(command("check", help="check numbers before pushing them (HTTP API)"))
    ck.add_argument("items", nargs="+", help="tracking numbers, or files with one number per line")
    ck.set_defaults(func=cmd_check)

    pf = with_api(command("performance", help="a store's failed shipments per month, penalties (HTTP API)"))
    pf.add_argument("store", help="the store id")
    pf.add_argument("--license", help="the store's licence (with the admin token; a licence token uses its own)")
    pf.set_defaults(func=cmd_performance)

    rc = with_api(command("reconcile", help="compare an ERP export with the licence's accepted numbers (HTTP API)"))
    rc.add_argument("file", help="the ERP's shipment log: .csv / .tsv / .txt, .xlsx, or JSON Lines, as for import")
    rc.add_argument("--license", required=True, help="the licence to reconcile (rows without a licence are its)")
    rc.add_argument("--month", help="YYYY-MM: only shipments of that month (ship time, [performance] timezone)")
    rc.add_argument("--format", choices=("json", "csv"), help="the API's report as JSON or CSV (default: tables)")
    rc.add_argument("--encoding", help="the CSV's encoding (default: UTF-8 with or without BOM, else GB18030)")
    rc.add_argument("--timezone", help="zone of ship times without an offset (default: [import] timezone)")
    rc.add_argument("--columns", help="a TOML file of header spellings added to config/import_columns.toml")
    rc.set_defaults(func=cmd_reconcile)

    ru = with_api(
        command("reuse", help="numbers claimed by more than one licence, by carrier and month (admin, HTTP API)")
    )
    ru.add_argument("--month", help="YYYY-MM: reuses that happened that month ([performance] timezone)")
    ru.add_argument("--carrier", help="one carrier, by code or as sellers name it (燕文, yanwen)")
    ru.add_argument("--format", choices=("json", "csv"), help="the API's report as JSON or CSV (default: tables)")
    ru.set_defaults(func=cmd_reuse)

    for kind, fields in (
        ("reserve", ("store_id", "order_id", "carrier_code")),
        ("release", ("order_id",)),
        ("appeal", ("evidence_ref",)),
    ):
        c = with_api(command(kind, help=f"{kind} a tracking number (HTTP API)"))
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
            # A licence files (pending, the default); the platform's admin token decides.
            c.add_argument("--decision", choices=["pending", "approved", "rejected"], default="pending")
            c.add_argument("--decided-by", dest="decided_by", help="who decided (admin token: with a decision)")
    return p


def main(argv: list[str] | None = None) -> int:
    from .clients import BadImportFile, DeliveryFailed
    from .erp_import import BadColumnMap
    from .kafka import BrokerUnreachable

    args = build_parser().parse_args(argv)
    args.lang = language(args.lang)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        error = exc.message(args.lang)
    except (settings_mod.SettingsError, BrokerUnreachable, BadImportFile, BadColumnMap, DeliveryFailed) as exc:
        error = str(exc)  # their modules' words (English): they name a file, key or broker
    except OSError as exc:  # a file that cannot be read or written
        error = _os_error(exc, args.lang)
    _say(_err(), t("cli.error", args.lang, command=args.command, error=error))
    return 2


def _os_error(exc: OSError, lang: str) -> str:
    """The system's reason in `lang` where the catalogue has it (the common ones), and the file."""
    import errno

    try:
        reason = t(f"cli.error.os.{errno.errorcode[exc.errno or 0]}", lang)
    except KeyError:
        reason = exc.strerror or str(exc)
    return t("cli.error.os", lang, reason=reason, filename=exc.filename or "").rstrip("：: ")


if __name__ == "__main__":
    sys.exit(main())
