"""`trackguard demo`: broker + worker + a realistic sample through Kafka, then a summary.

Everything it starts it stops again (by pid), also on Ctrl-C or an error.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import orjson

from . import settings as settings_mod
from .audit import alerts_called_for
from .broker import EmbeddedBroker
from .clients import Publisher
from .kafka import VerdictCollector, ensure_topics, read_topics
from .launch import WorkerProcess
from .sample import LICENSES, generate


def _table(title: str, counter: Counter, total: int, limit: int = 20) -> str:
    rows = counter.most_common(limit)
    width = max([len(str(k)) for k, _ in rows] + [len(title)])
    lines = [f"{title:<{width}}  {'count':>7}  {'share':>6}", f"{'-' * width}  {'-' * 7}  {'-' * 6}"]
    lines += [f"{str(k):<{width}}  {n:>7}  {100 * n / max(total, 1):5.1f}%" for k, n in rows]
    return "\n".join(lines)


def _show_alerts(settings: settings_mod.Settings, verdicts: list[dict]) -> None:
    """The store alerts the failures called for, as published on stores.alerts (the store path
    runs a hop behind the verdicts: waits up to 30 s for them)."""
    expected, _ = alerts_called_for(verdicts, settings.performance)
    deadline = time.monotonic() + 30
    while True:
        records = read_topics(settings, [settings.topics.alerts], until_idle_s=1.0, max_s=10)
        alerts = {a["alert_id"]: a for a in (orjson.loads(r.value()) for r in records if not r.error())}
        if expected <= set(alerts) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    print(f"Store alerts on {settings.topics.alerts}: {len(alerts)} (the pure core counts {len(expected)} called for)")
    kinds = Counter((a["month"], a["kind"]) for a in alerts.values())
    for (month, kind), n in sorted(kinds.items()):
        print(f"  {month}  {kind:<17}  {n} stores")
    for a in sorted(alerts.values(), key=lambda a: (-a["count"], a["alert_id"]))[:3]:
        print(f"  e.g. {a['alert_id']}: {a['count']} failed shipments ({', '.join(a['event_ids'][:2])}, ...)")
    print("  (trackguard performance STORE --license LICENCE: a store's months, penalties and downgrade)")


def _show_reconciliation(web_port: int, token: str, sample: list) -> None:
    """One licence's ERP log (what it pushed) reconciled with what the guard accepted for it."""
    license_id = next(iter(LICENSES))
    rows = []
    for line, e in enumerate(sample, 2):
        try:
            event = orjson.loads(e.value)
        except orjson.JSONDecodeError:
            continue  # the sample's malformed records: no ERP would log them
        if isinstance(event, dict) and event.get("license_id") == license_id:
            rows.append({"line": line, **event})
    req = urllib.request.Request(
        f"http://127.0.0.1:{web_port}/licenses/{license_id}/reconcile",
        method="POST",
        data=orjson.dumps({"rows": rows}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        report = orjson.loads(resp.read())
    counts = ", ".join(f"{kind} {n}" for kind, n in report["counts"].items() if n)
    print(f"Reconciliation of licence {license_id}: its ERP log ({len(rows)} rows, the lines it pushed)")
    print(f"  against the numbers bound to it: {counts}")
    by_reason = Counter(f"{f['kind']} / {f['reason'] or f['differs_in']}" for f in report["findings"])
    for what, n in by_reason.most_common(6):
        print(f"  {n:>5}  {what}")
    print(f"  (trackguard reconcile ERP.csv --license {license_id} [--month YYYY-MM] [--format csv])")


def run_demo(events: int = 4000, workdir: Path = Path(".demo"), config: str | None = None) -> int:
    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"trackguard demo: working in {workdir}")
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    worker = None
    collector = None
    try:
        broker.start()
        print(f"  embedded broker (Tansu, memory only) on {broker.address}")
        settings = settings_mod.load(config, broker=broker.address, data_dir=workdir / "data")
        ensure_topics(settings)
        collector = VerdictCollector(settings).start()

        now_ms = int(time.time() * 1000)
        sample = generate(events, settings.carriers, end_ms=now_ms)
        (workdir / "sample.jsonl").write_bytes(b"\n".join(e.value for e in sample) + b"\n")
        causes = Counter(e.cause for e in sample)
        print(
            f"  sample: {len(sample)} submissions from {len({e.store_id for e in sample})} stores "
            f"of 3 licences over 4 days ({sum(e.by_store for e in sample)} keyed by store id) -> sample.jsonl"
        )

        # The worker starts first and decides one warm-up submission (so the group join is over),
        # then the sample goes out in one burst: burst start to last verdict is its throughput.
        t0 = time.monotonic()
        admin_token = f"demo-{uuid.uuid4().hex[:12]}"  # the HTTP API's, for the reconciliation below
        worker = WorkerProcess(
            broker.address,
            workdir / "data",
            workdir / "worker.log",
            config=config,
            env={"TRACKGUARD_ADMIN_TOKEN": admin_token},
        ).start()
        print(f"  worker pid {worker.pid}, web port {worker.web_port}, log {workdir / 'worker.log'}")
        pub = Publisher(settings)
        warmup = {
            "event_id": "demo-warm-up",
            "license_id": "DEMO",
            "store_id": "demo",
            "order_id": "warm-up",
            "carrier_code": "LOCAL",
            "tracking_no": f"WARMUP{now_ms}",
            "shipped_at": "2026-01-01T00:00:00Z",
        }
        pub.send(warmup)
        pub.flush()
        collector.verdict("demo-warm-up", timeout=60)
        first_verdict_s = time.monotonic() - t0
        print(f"  worker ready: first verdict {first_verdict_s:.1f} s after start (mostly the consumer-group join)")

        burst_start_ms = int(time.time() * 1000)
        for e in sample:
            pub.send(e.value, key=e.store_id.encode() if e.by_store else None, timestamp_ms=e.ts_ms)
        pub.flush()
        print(
            f"  published {len(sample)} submissions in {(time.time() * 1000 - burst_start_ms) / 1000:.2f} s; "
            f"waiting for the verdicts ..."
        )
        if not collector.wait_count(len(sample) + 1, timeout=120):
            print(
                f"  only {len(collector.verdicts) - 1} of {len(sample)} verdicts after 120 s; see {workdir / 'worker.log'}"
            )
            return 1
        verdicts = [v for v in collector.verdicts if v.get("event_id") != "demo-warm-up"]
        busy_s = max(((collector.last_ts_ms or burst_start_ms) - burst_start_ms) / 1000, 0.001)
        print()
        print(_table("sample cause", causes, len(sample)))
        print()
        print(_table("verdict", Counter(v["verdict"] for v in verdicts), len(verdicts)))
        print()
        print(
            _table(
                "verdict / reason",
                Counter(f"{v['verdict']} / {v['reason']}" + (" (replay)" if v.get("replay") else "") for v in verdicts),
                len(verdicts),
            )
        )
        print()
        failed = Counter(v.get("store_id") for v in verdicts if v["verdict"] in ("duplicate", "frozen"))
        print(_table("store: duplicates + frozen", failed, sum(failed.values()), limit=12))
        print()
        print(_table("carrier", Counter(v.get("carrier_code") for v in verdicts), len(verdicts), limit=12))
        print()
        _show_alerts(settings, verdicts)
        print()
        _show_reconciliation(worker.web_port, admin_token, sample)
        print()
        print(f"Worker start to first verdict: {first_verdict_s:.1f} s (mostly the consumer-group join).")
        print(
            f"Throughput: {len(verdicts)} submissions published in one burst and all decided in {busy_s:.2f} s: "
            f"{len(verdicts) / busy_s:,.0f} events/s (one worker; to the last verdict's timestamp)."
        )
        print()
        print("Where to look next:")
        print(f"  {workdir / 'sample.jsonl'}   the submissions as published")
        print(f"  {workdir / 'worker.log'}     what the worker did")
        print("  Try it yourself (in two terminals):")
        print("    .venv/bin/trackguard broker                      # prints HOST:PORT")
        print("    export TRACKGUARD_BROKER=HOST:PORT")
        print("    .venv/bin/trackguard worker --data-dir ./data")
        print("    .venv/bin/trackguard import .demo/sample.jsonl   # or: trackguard submit --tracking-no ...")
        print("    .venv/bin/trackguard tail --from-beginning")
        print("    .venv/bin/trackguard audit                       # every verdict replayed through the pure core")
        print("  The HTTP API (start the worker with TRACKGUARD_ADMIN_TOKEN=secret, --web-port 6066):")
        print("    .venv/bin/trackguard diagnose --token secret RR123456785CN")
        print(
            "    open http://127.0.0.1:6066/ in a browser     # the web console (中文 / English), sign in with: secret"
        )
        print("    curl http://127.0.0.1:6066/openapi.json")
        print("    curl http://127.0.0.1:6066/metrics           # Prometheus; dashboard: docs/grafana/trackguard.json")
        print("  Docs: README.md, docs/DESIGN.md, docs/OPERATIONS.md, docs/BENCHMARKS.md, docs/RELIABILITY.md")
        return 0
    finally:
        if collector is not None:
            collector.stop()
        if worker is not None:
            worker.stop()
        broker.stop()
