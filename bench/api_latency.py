"""Latency of the HTTP API under concurrent load, two workers (requests hit both, half are routed).

    .venv/bin/python bench/api_latency.py [--numbers 20000] [--requests 3000] [--concurrency 16]

Fills the state with N bound numbers, then measures p50/p99 of GET /tracking/{no} and of
POST /tracking/check with 1,000 numbers, issued by `--concurrency` clients at once, alternating
between the two workers. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from streams import settings as settings_mod
from streams.broker import EmbeddedBroker
from streams.clients import Publisher
from streams.core.check_digits import s10_number
from streams.kafka import VerdictCollector, ensure_topics
from streams.launch import WorkerProcess

TOKEN = "bench-token"


def number(i: int) -> str:
    return s10_number(i)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def load(ports: list[int], make_request, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(total))
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def client(session: aiohttp.ClientSession) -> None:
        for i in counter:
            port = ports[i % len(ports)]
            method, path, body = make_request(i)
            t0 = time.perf_counter()
            async with session.request(method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers) as r:
                await r.read()
                assert r.status == 200, (r.status, path)
            latencies.append((time.perf_counter() - t0) * 1000)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--numbers", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tg-api-"))
    broker = EmbeddedBroker(log_path=work / "broker.log").start()
    env = {"TRACKGUARD_TOKENS": f"L1={TOKEN}"}
    workers = []
    try:
        settings = settings_mod.load(broker=broker.address)
        ensure_topics(settings)
        collector = VerdictCollector(settings).start()
        workers = [WorkerProcess(broker.address, work / f"d{i}", work / f"w{i}.log", env=env).start() for i in range(2)]
        pub = Publisher(settings)
        for i in range(args.numbers):
            pub.send(
                {
                    "event_id": f"b{i}",
                    "license_id": "L1",
                    "store_id": "S1",
                    "order_id": f"O{i}",
                    "carrier_code": "CHINAPOST",
                    "tracking_no": number(i),
                    "shipped_at": "2026-11-20T08:00:00Z",
                }
            )
        pub.flush()
        assert collector.wait_count(args.numbers, timeout=300)
        collector.stop()
        time.sleep(3)  # let the second worker's join settle
        ports = [w.web_port for w in workers]
        rng = random.Random(1)

        def diagnosis(i: int):
            return "GET", f"/tracking/{number(rng.randrange(args.numbers))}", None

        def check(i: int):
            return (
                "POST",
                "/tracking/check",
                {"tracking_numbers": [number(rng.randrange(args.numbers * 2)) for _ in range(1000)]},
            )

        for name, make, total in (
            ("GET /tracking/{no}", diagnosis, args.requests),
            ("POST /tracking/check (1,000 numbers)", check, max(args.requests // 10, 50)),
        ):
            t0 = time.perf_counter()
            lat = asyncio.run(load(ports, make, total, args.concurrency))
            dt = time.perf_counter() - t0
            print(
                f"{name}: {len(lat)} requests, {args.concurrency} concurrent, {len(lat) / dt:,.0f} req/s; "
                f"p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
            )
    finally:
        for w in workers:
            w.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
