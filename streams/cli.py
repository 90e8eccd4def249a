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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
