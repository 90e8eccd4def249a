"""`trackguard` command line: broker, worker, demo, submit, import, tail. Thin on purpose."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import orjson

from . import settings as settings_mod


def _settings(args: argparse.Namespace) -> settings_mod.Settings:
    return settings_mod.load(
        args.config,
        broker=getattr(args, "broker", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        web_port=getattr(args, "web_port", None),
    )


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


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from .app import create_app
    from .kafka import ensure_topics

    settings = _settings(args)
    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()  # returns only via sys.exit
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(events=args.events, workdir=Path(args.workdir), config=args.config)


def cmd_submit(args: argparse.Namespace) -> int:
    from .clients import Publisher

    if args.json:
        event = orjson.loads(args.json)
    else:
        event = {k: getattr(args, k) for k in ("event_id", "license_id", "store_id", "order_id",
                                               "carrier_code", "tracking_no", "shipped_at", "source")
                 if getattr(args, k) is not None}
        event.setdefault("event_id", f"cli-{time.time_ns()}")
    pub = Publisher(_settings(args))
    pub.send(event)
    pub.flush()
    print(f"submitted {event.get('event_id')} to {pub.topic}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .clients import import_file

    n = import_file(_settings(args), Path(args.file))
    print(f"imported {n} submissions")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from .clients import tail

    tail(_settings(args), as_json=args.json, from_beginning=args.from_beginning, max_s=args.seconds)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit

    report = audit(_settings(args), idle_s=args.idle)
    print(report.render())
    return 0 if report.ok else 1


def _http(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> int:
    """Call a worker's HTTP API with a token; print the JSON answer; exit 0 on 2xx."""
    import json
    import os
    import urllib.error
    import urllib.request

    url = (args.url or os.environ.get("TRACKGUARD_URL") or "http://127.0.0.1:6066").rstrip("/")
    token = args.token or os.environ.get("TRACKGUARD_TOKEN", "")
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    except urllib.error.URLError as exc:
        print(f"cannot reach {url}: {exc.reason}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(json.loads(payload), indent=2, ensure_ascii=False))
    except ValueError:
        print(payload.decode(errors="replace"))
    return 0 if 200 <= status < 300 else 1


def cmd_diagnose(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    return _http(args, "GET", f"/tracking/{quote(args.number)}")


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

    body = {k: getattr(args, k) for k in ("tracking_no", "license_id", "store_id", "order_id", "carrier_code",
                                          "ttl_s", "evidence_ref", "decided_by", "decision", "command_id")
            if getattr(args, k, None) is not None}
    if getattr(args, "evidence", None):
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

    w = with_broker(sub.add_parser("worker", help="run a Faust worker"))
    w.add_argument("--data-dir", help="RocksDB directory (default: TRACKGUARD_DATA_DIR, then the config file)")
    w.add_argument("--web-port", type=int, help="HTTP port (default: TRACKGUARD_WEB_PORT, then 6066)")
    w.add_argument("--loglevel", default="info")
    w.set_defaults(func=cmd_worker)

    d = sub.add_parser("demo", help="broker + worker + a realistic multi-store sample, then a summary")
    d.add_argument("--events", type=int, default=4000, help="shipments in the sample (before re-pushes)")
    d.add_argument("--workdir", default=".demo", help="where the demo keeps its data, logs and sample")
    d.set_defaults(func=cmd_demo)

    s = with_broker(sub.add_parser("submit", help="publish one submission"))
    s.add_argument("--json", help="the whole event as JSON")
    for name in ("event_id", "license_id", "store_id", "order_id", "carrier_code", "tracking_no", "shipped_at", "source"):
        s.add_argument("--" + name.replace("_", "-"), dest=name)
    s.set_defaults(func=cmd_submit)

    i = with_broker(sub.add_parser("import", help="publish a CSV (with header) or JSON Lines file"))
    i.add_argument("file")
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

    for kind, fields in (("reserve", ("store_id", "order_id", "carrier_code")), ("release", ("order_id",)),
                         ("appeal", ("evidence_ref", "decided_by"))):
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
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
