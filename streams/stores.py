"""Store performance in the worker: failed verdicts -> one re-keying hop by store -> the `stores`
table -> `stores.alerts`. The counting is streams/core/performance.py.

Failures are few next to submissions, so this path uses Faust's own per-message agents and table
(changelog, recovery, standbys) rather than the hot path. It is at least once in both processing
guarantees: a failure delivered again is counted once (each counted failure is remembered by its
mark, a small key of its own beside the store's summary, read in one lookup),
and an alert is published — and acknowledged by the broker — before the state that remembers it,
so a crash in between re-sends it with the same `alert_id`, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import faust
import orjson

from .core.performance import (
    StoreState,
    count,
    failure_of,
    mark_of,
    month_prefix,
    outdated,
    readable_failure,
    store_key,
    upgrade,
)
from .hotpath import die
from .partitioning import partition_for
from .settings import STORES_TABLE, Settings
from .store import PartitionStore

log = logging.getLogger("trackguard.stores")


def wire(app: faust.App, settings: Settings) -> Any:
    """Declare the agents and the table on `app`; returns the table (read by the HTTP view)."""
    policy = settings.performance
    stores = app.Table(
        STORES_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes, help="failures per store"
    )
    failed = app.topic(settings.topics.duplicate, settings.topics.frozen, key_type=bytes, value_type=bytes)
    by_store = app.topic(settings.stores_topic, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    alerts = app.topic(settings.topics.alerts, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    marks_of = PartitionStore(stores)  # the marks: one lookup in the store's own partition
    alerts_published: Counter[str] = Counter()  # alert kind -> alerts this worker published (streams.metrics)
    app.trackguard_alerts_published = alerts_published  # type: ignore[attr-defined]
    foreign: Counter[str] = Counter()  # topic -> records skipped as unreadable (streams.metrics)
    app.trackguard_foreign_records = foreign  # type: ignore[attr-defined]

    def skip(event: Any, what: str) -> None:
        """A record nobody of ours wrote (the topics are open to whoever may write them): counted,
        logged with where it is, skipped. Never raised: the restarted worker would meet it again."""
        msg = event.message
        foreign[msg.topic] += 1
        log.warning(
            "skipped %s at %s[%d]@%d: %r", what, msg.topic, msg.partition, msg.offset, (event.value or b"")[:200]
        )

    @app.agent(failed, name="failures-by-store")
    async def rekey(stream: faust.StreamT) -> None:
        """The verdict topics are keyed by number; a store's failures must meet in one partition."""
        async with _fatal("failures-by-store"):
            await _rekey(stream)

    async def _rekey(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                verdict = orjson.loads(event.value)
            except (orjson.JSONDecodeError, TypeError):
                verdict = None
            failure = failure_of(verdict)
            if failure is None:
                if not (isinstance(verdict, dict) and verdict.get("verdict") in ("accepted", "invalid")):
                    skip(event, "a record that is no failed verdict")
                continue
            key = store_key(failure.license_id, failure.store_id)
            await by_store.send(
                key=key, value=orjson.dumps(list(failure)), partition=partition_for(key, settings.partitions)
            )

    @app.agent(by_store, name="store-performance")
    async def perform(stream: faust.StreamT) -> None:
        async with _fatal("store-performance"):
            await _perform(stream)

    async def _perform(stream: faust.StreamT) -> None:
        async for event in stream.events():
            key = event.key
            try:
                failure = readable_failure(orjson.loads(event.value))
            except (orjson.JSONDecodeError, TypeError):
                failure = None
            if failure is None:
                skip(event, "a record that is no failure")
                continue
            partition = event.message.partition
            raw = stores.get(key)
            state: StoreState | None = orjson.loads(raw) if raw is not None else None
            if state is not None and outdated(state):  # written by a version that kept every id inside
                state, marks = upgrade(state, policy)
                for mark in marks:
                    stores[mark] = b"-1"  # counted before any position the summary knows
                stores[key] = orjson.dumps(state)
            last = state.get("last", "").encode() if state is not None else b""
            if last and marks_of.read(partition, last) is None:  # a crash kept it from being written
                stores[last] = str(state.get("at", -1)).encode()  # type: ignore[union-attr]
            mark_at = marks_of.read(partition, mark_of(failure, policy))
            counted = count(state, failure, policy, event.message.offset, int(mark_at) if mark_at else None)
            for alert in counted.alerts:
                sent = await alerts.send(key=key, value=orjson.dumps(alert), partition=partition)
                await sent  # acknowledged before the state that says it was sent
                alerts_published[alert["kind"]] += 1
                log.info("store alert %s (%d failures)", alert["alert_id"], alert["count"])
            if counted.mark is not None:
                stores[key] = orjson.dumps(counted.state)  # names the mark as `last`: written first
                stores[counted.mark] = str(event.message.offset).encode()  # where it was counted
            for month in counted.forget:  # a month out of those kept: its marks go, once
                for old in list(
                    marks_of.keys_from(partition, month_prefix(failure.license_id, failure.store_id, month))
                ):
                    del stores[old]

    return stores


@asynccontextmanager
async def _fatal(agent: str) -> AsyncIterator[None]:
    """An agent that raises stops the worker, loudly. Faust's supervisor would restart it, and a
    fault that is the worker's (a table whose changelog it cannot see) then repeats every few
    seconds forever while the worker looks alive: failures stop being counted, silently. Bad
    records never raise here (they are skipped with a warning), so a raise is worker-wide."""
    try:
        yield
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        die(f"the {agent} agent raised", exc, trace=True)
