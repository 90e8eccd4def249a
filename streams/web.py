"""The HTTP API's wiring on the Faust web server: requests to the handlers of streams/api.py.

Only what needs the running worker lives here: tokens from headers, bodies read with a size cap,
forwarding a request (with its body, which Faust's own `table_route` would drop) to the worker
that owns a number's partition, fan-out of the used list to every worker, and publishing a
command then waiting for its result. The answers themselves come from `api`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import faust
import orjson
from aiohttp import ClientError, ClientTimeout
from aiohttp import web as aiohttp_web
from yarl import URL

from . import api, console
from .api import Access, Caller, Forward, Reply
from .core import state as state_codec
from .core.performance import StoreState, marked, month_prefix, store_key
from .core.queries import used_entry
from .core.reconcile import ErpRow, Report, merge, reconcile
from .core.reuse import reuse_entry
from .core.rules import State
from .erp_import import BadColumnMap, RowContext, load_column_map
from .hotpath import HotPath
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .partitioning import partition_for
from .settings import Settings
from .store import PartitionStore

SERVED_BY = "X-Trackguard-Served-By"
# What `authorized` found out about a request, kept on it for the handlers and `forward`.
CALLER, ROUTED = "trackguard.caller", "trackguard.routed"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
COMMAND_TIMEOUT_S = 10.0
RECONCILE_TIMEOUT_S = 120.0  # another worker's share of a reconciliation (its rows and index)
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

log = logging.getLogger("trackguard.web")


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names a request may name in its Host header (None: any, `worker.allowed_hosts = "*"`).

    A page on another site can make a browser on the worker's machine send requests to it (DNS
    rebinding: evil.example resolving to 127.0.0.1); such a request still names evil.example as
    its Host, and is refused. Allowed: loopback names, the bind address, the name other workers
    use (`worker.web_host`), and whatever `worker.allowed_hosts` adds (a gateway's name)."""
    extra = [h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()]
    if "*" in extra:
        return None
    names = {*LOCAL_HOSTS, settings.advertised_web_host.lower(), *extra}
    if settings.web_bind not in ("0.0.0.0", "::", ""):
        names.add(settings.web_bind.lower())
    return frozenset(names)


def host_name(host: str | None) -> str:
    """`Host` without its port: `[::1]:6066` -> `::1`, `Example.com:80` -> `example.com`."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard_middleware(settings: Settings) -> Any:
    """Every request, before any view: an unexpected Host is refused (421), a path that is not one
    of `api.ROUTES` is not found (Faust's own pages are switched off in streams.app; this keeps
    anything else a library might mount from being served), and every answer says nosniff."""
    hosts = allowed_hosts(settings)
    ours = api.page_patterns()

    @aiohttp_web.middleware
    async def guard(request: Any, handler: Any) -> Any:
        if hosts is not None and host_name(request.host) not in hosts:
            response = _json_response(421, f"this worker does not answer for host {host_name(request.host)!r}")
        else:
            resource = request.match_info.route.resource
            if resource is None or resource.canonical not in ours:
                response = _json_response(404, f"no such page: {request.path}")
            else:
                response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return guard


def _json_response(status: int, message: str) -> Any:
    return aiohttp_web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")


class WorkerBackend:
    """`api.Backend` over this worker: its RocksDB partitions and Faust's router."""

    def __init__(self, app: faust.App, settings: Settings, hot: HotPath, table: Any, stores: Any) -> None:
        self.app, self.settings, self.store, self.table, self.stores = app, settings, hot.store, table, stores
        self.limits, self.performance = settings.limits, settings.performance
        self.store_marks = PartitionStore(stores)  # the failures each store's summary counted

    def read(self, key: bytes) -> State | None:
        raw = self.store.read(partition_for(key, self.settings.partitions), key)
        return state_codec.decode(raw) if raw is not None else None

    def owner(self, key: bytes) -> URL | None:
        return self._owner(self.table.name, key)

    def read_store(self, key: bytes) -> StoreState | None:
        raw = self.stores.get(key)  # Faust's table: its RocksDB partitions on this worker
        return orjson.loads(raw) if raw is not None else None

    def store_failures(self, license_id: str, store_id: str, month: str, limit: int) -> list[tuple[str, str]]:
        partition = partition_for(store_key(license_id, store_id), self.settings.partitions)
        prefix = month_prefix(license_id, store_id, month)
        return [marked(key) for key in islice(self.store_marks.keys_from(partition, prefix), limit)]

    def store_owner(self, key: bytes) -> URL | None:
        return self._owner(self.stores.name, key)

    def _owner(self, table: str, key: bytes) -> URL | None:
        try:
            url = self.app.router.key_store(table, key)
        except KeyError:  # nobody known yet (starting, rebalancing): answer here
            return None
        return None if self._is_me(url) else url

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def local_used(self, license_id: str, after: str, limit: int) -> tuple[list[int], list[dict[str, Any]]]:
        """Rows of the partitions this worker owns (the used list fans out to every worker), with
        the partitions it answered for."""
        mine = self.active_partitions()
        return mine, used_rows(self.store, mine, license_id, after, limit)

    def active_partitions(self) -> list[int]:
        changelog = self.store.changelog_topic
        return sorted({tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog})

    def local_reconcile(self, license_id: str, rows: list[ErpRow], month: str | None) -> tuple[list[int], Report]:
        """The rows of this worker's active partitions against their part of the licence's index,
        with the partitions it answered for."""
        mine = self.active_partitions()
        report = reconcile_partitions(
            self.store,
            mine,
            self.settings.partitions,
            license_id,
            rows,
            month,
            self.performance.timezone,
            self.now_ms(),
        )
        return mine, report

    def local_reuse(self) -> tuple[list[int], list[dict[str, Any]]]:
        """The reused numbers of this worker's active partitions, with the partitions it answered for."""
        mine = self.active_partitions()
        return mine, reused_rows(self.store, mine, self.performance.timezone)

    def other_workers(self) -> list[URL]:
        return [URL(str(h)) for h in self.app.router.table_metadata(self.table.name) if not self._is_me(URL(str(h)))]

    def _is_me(self, url: URL) -> bool:
        mine = self.app.conf.canonical_url
        return (url.host, url.port) == (mine.host, mine.port)


def used_rows(store: PartitionStore, partitions: list[int], license_id: str, after: str, limit: int) -> list[dict]:
    """A page of the licence's used list from these partitions, through the licence's index: the
    cost is the licence's numbers (at most `limit` a partition), not the table's."""
    rows: list[dict[str, Any]] = []
    for partition in partitions:
        taken = 0
        for key in store.used_numbers(partition, license_id, after.encode()):
            raw = store.read(partition, key)
            row = used_entry(key.decode(), state_codec.decode(raw), license_id) if raw is not None else None
            if row is not None:
                rows.append(row)
                taken += 1
                if taken >= limit:  # a page needs at most `limit` from any one partition
                    break
    rows.sort(key=lambda r: r["tracking_no"])
    return rows[:limit]


def reused_rows(store: PartitionStore, partitions: list[int], timezone: str) -> list[dict[str, Any]]:
    """The reuse report's rows from these partitions, through the reuse index: the cost is the
    numbers claimed by more than one licence, not the table."""
    rows: list[dict[str, Any]] = []
    for partition in partitions:
        for key in store.reused_numbers(partition):
            raw = store.read(partition, key)
            row = reuse_entry(key.decode(), state_codec.decode(raw), timezone) if raw is not None else None
            if row is not None:
                rows.append(row)
    return rows


def reconcile_partitions(
    store: PartitionStore,
    partitions: list[int],
    n_partitions: int,
    license_id: str,
    rows: list[ErpRow],
    month: str | None,
    timezone: str,
    now_ms: int,
) -> Report:
    """The ERP rows whose numbers live in these partitions, against the licence's index there."""
    mine = set(partitions)
    here = [r for r in rows if partition_for(r.tracking_no.encode(), n_partitions) in mine]
    states: dict[str, State | None] = {}
    for r in here:
        key = r.tracking_no.encode()
        raw = store.read(partition_for(key, n_partitions), key)
        states[r.tracking_no] = state_codec.decode(raw) if raw is not None else None

    def used() -> Iterator[tuple[str, State]]:
        for partition in partitions:
            for key in store.used_numbers(partition, license_id):
                raw = store.read(partition, key)
                if raw is not None:
                    yield key.decode(), state_codec.decode(raw)

    return reconcile(license_id, here, states, used(), month=month, timezone=timezone, now_ms=now_ms)


def register(app: faust.App, settings: Settings, hot: HotPath, table: Any, stores: Any, access: Access) -> None:
    backend = WorkerBackend(app, settings, hot, table, stores)
    metrics = Metrics(hot, backend.active_partitions, settings.data_dir)

    def respond(view: faust.web.View, reply: Reply) -> Any:
        metrics.http.labels(type(view).__name__, str(reply.status)).inc()
        content = reply.body.encode() if isinstance(reply.body, str) else orjson.dumps(reply.body)
        headers = {SERVED_BY: str(app.conf.canonical_url), **reply.headers}
        return view.bytes(content, status=reply.status, content_type=reply.content_type, headers=headers)

    def peer_headers(request: Any, target: URL) -> dict[str, str]:
        """Our own credential for asking another worker on the caller's behalf: never the
        caller's token (which the other worker, or whoever answers at its URL, could keep)."""
        return access.peer_headers(request[CALLER], request.method, target.raw_path_qs, int(time.time()))

    async def forward(request: Any, to: Forward) -> Any:
        target = to.url.with_path(request.path).with_query(request.query if to.query is None else to.query)
        headers = {
            **peer_headers(request, target),
            "Content-Type": request.headers.get("Content-Type", "application/json"),
        }
        try:
            async with app.http_client.request(
                request.method, target, headers=headers, data=to.body, timeout=ClientTimeout(total=10)
            ) as resp:
                payload = await resp.read()
                return app.web.bytes(
                    payload,
                    status=resp.status,
                    content_type=resp.content_type,
                    headers={SERVED_BY: resp.headers.get(SERVED_BY, str(to.url))},
                )
        except (TimeoutError, ClientError) as exc:
            # The owner is gone or slow (e.g. mid-rebalance): say so; the caller may retry.
            return app.web.bytes(
                orjson.dumps({"error": f"worker {to.url} did not answer: {exc!r}"}),
                status=502,
                content_type="application/json",
            )

    async def ask_worker(
        request: Any, url: URL, what: str, *, query: dict, data: bytes | None, timeout: float, ok: tuple = (200,)
    ) -> Any | None:
        """This request's path on another worker, routed (answered there, for its partitions):
        its JSON answer, or None (logged) when it did not answer or answered otherwise."""
        target = url.with_path(request.path).with_query(query)
        headers = peer_headers(request, target)
        try:
            async with app.http_client.request(
                request.method, target, data=data, headers=headers, timeout=ClientTimeout(total=timeout)
            ) as resp:
                if resp.status in ok:
                    return orjson.loads(await resp.read())
                log.warning("%s: worker %s answered %s", what, url, resp.status)
        except (TimeoutError, ClientError) as exc:
            log.warning("%s: worker %s did not answer: %r", what, url, exc)
        return None

    async def answer(view: faust.web.View, request: Any, result: Reply | Forward) -> Any:
        return await forward(request, result) if isinstance(result, Forward) else respond(view, result)

    async def read_capped(request: Any, limit: int) -> bytes | None:
        """The whole body, read as it streams in; None past `limit` bytes (the rest unread).
        (aiohttp's `content.read(n)` returns what has arrived so far, not n bytes.)"""
        if (request.content_length or 0) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_body(request: Any) -> tuple[Any, Reply | None]:
        raw = await read_capped(request, api.MAX_BODY)
        if raw is None:
            return None, api.problem(413, f"body larger than {api.MAX_BODY} bytes")
        return api.parse_body(raw)

    Handler = Callable[..., Awaitable[Any]]

    def authorized(method: Handler) -> Handler:
        """Answer 401 without a known token (or a valid peer credential: a request another worker
        forwarded, answered here for our own partitions); otherwise call the view with the caller."""

        @functools.wraps(method)
        async def with_caller(view: faust.web.View, request: Any, **kwargs: Any) -> Any:
            if api.PEER_SIGNATURE in request.headers:
                caller = access.peer_caller(request.headers, request.method, request.raw_path, int(time.time()))
                if caller is None:
                    return respond(view, api.problem(401, "a forwarded request without a valid worker credential"))
                request[ROUTED] = True
            else:
                caller = access.caller(request.headers.get("Authorization"))
                if caller is None:
                    return respond(view, api.problem(401, "missing or unknown API token (Authorization: Bearer TOKEN)"))
                request[ROUTED] = False
            request[CALLER] = caller
            return await method(view, request, caller, **kwargs)

        return with_caller

    def routed(request: Any) -> bool:
        """Forwarded by another worker (peer credential checked): answer for our partitions only."""
        return bool(request.get(ROUTED))

    @app.page("/tracking/{no}")
    class Tracking(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller, no: str) -> Any:
            return await answer(self, request, api.tracking(backend, caller, no, routed(request)))

    @app.page("/tracking/check")
    class Check(faust.web.View):
        @authorized
        async def post(self, request: Any, caller: Caller) -> Any:
            body, bad = await read_body(request)
            if bad is not None:
                return respond(self, bad)
            plan = api.check(backend, caller, body, routed(request))
            if isinstance(plan, Reply):
                return respond(self, plan)

            async def ask(url: URL, indexes: list[int]) -> None:
                resp = await forward(request, Forward(url, plan.forward_body(indexes)))
                plan.merge(indexes, orjson.loads(resp.body))

            await asyncio.gather(*(ask(url, idx) for url, idx in plan.remote.items()))
            return respond(self, plan.reply())

    @app.page("/licenses/{license_id}/used")
    class Used(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller, license_id: str) -> Any:
            q = api.used_query(caller, license_id, dict(request.query))
            if isinstance(q, Reply):
                return respond(self, q)
            partitions, rows = backend.local_used(q.license_id, q.after, q.limit)
            if routed(request):  # another worker's share: its rows and the partitions they come from
                return respond(self, Reply(200, {"partitions": partitions, "items": rows}))
            covered = set(partitions)

            async def ask(url: URL) -> None:
                query = {"after": q.after, "limit": q.limit, "format": "json"}
                body = await ask_worker(request, url, "used list", query=query, data=None, timeout=30.0)
                if body is not None:
                    covered.update(body["partitions"])
                    rows.extend(body["items"])

            await asyncio.gather(*(ask(url) for url in backend.other_workers()))
            missing = sorted(set(range(settings.partitions)) - covered)
            return respond(self, api.used_page(q, rows, missing))

    @app.page("/licenses/{license_id}/reconcile")
    class Reconcile(faust.web.View):
        @authorized
        async def post(self, request: Any, caller: Caller, license_id: str) -> Any:
            q = api.reconcile_query(caller, license_id, dict(request.query))
            if isinstance(q, Reply):
                return respond(self, q)
            raw = await read_capped(request, api.MAX_RECONCILE_BODY)
            if raw is None:
                return respond(self, api.problem(413, f"body larger than {api.MAX_RECONCILE_BODY} bytes"))
            # Reading a file of up to 300,000 rows and comparing it takes seconds of CPU: off the
            # event loop (a thread), so the hot path and every other request go on meanwhile.
            loop = asyncio.get_running_loop()
            if routed(request):  # another worker's share: the rows as lists, answered for our partitions
                shared = await loop.run_in_executor(None, api.routed_rows, raw)
                if isinstance(shared, Reply):
                    return respond(self, shared)
                partitions, report = await loop.run_in_executor(
                    None, backend.local_reconcile, q.license_id, shared, q.month
                )
                return respond(self, Reply(200, {"partitions": partitions, **report.as_dict(q.license_id, q.month)}))
            try:
                columns = load_column_map(settings.import_columns)
            except BadColumnMap as exc:
                return respond(self, api.problem(500, f"the worker's column mapping: {exc}"))
            ctx = RowContext(ZoneInfo(settings.import_timezone), license_id, settings.limits.license_id_format)

            def read_and_compare() -> Reply | tuple[list[ErpRow], list[dict], list[int], Report]:
                events = api.reconcile_body(raw, request.content_type, q.license_id, columns, ctx)
                if isinstance(events, Reply):
                    return events
                rows, invalid = api.erp_rows(events, q.license_id, settings.carriers, settings.limits, backend.now_ms())
                return (rows, invalid, *backend.local_reconcile(q.license_id, rows, q.month))

            done = await loop.run_in_executor(None, read_and_compare)
            if isinstance(done, Reply):
                return respond(self, done)
            rows, invalid, partitions, local = done
            reports, covered = [local], set(partitions)
            share = orjson.dumps(
                {"rows": [list(r) for r in rows]}
            )  # every worker gets every row, answers for its partitions

            async def ask(url: URL) -> None:
                query = {"month": q.month or "", "format": "json"}
                body = await ask_worker(request, url, "reconcile", query=query, data=share, timeout=RECONCILE_TIMEOUT_S)
                if body is not None:
                    covered.update(body["partitions"])
                    listed = body["findings"]
                    reports.append(Report(listed, Counter(body["counts"]), body["findings_total"] - len(listed)))

            await asyncio.gather(*(ask(url) for url in backend.other_workers()))
            merged = await loop.run_in_executor(
                None, merge, [*reports, Report(invalid, Counter(erp_invalid=len(invalid)))]
            )
            missing = sorted(set(range(settings.partitions)) - covered)
            return respond(self, api.reconcile_reply(q, merged, missing))

    @app.page("/reuse")
    class Reuse(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller) -> Any:
            q = api.reuse_query(caller, dict(request.query), settings.carriers)
            if isinstance(q, Reply):
                return respond(self, q)
            partitions, rows = backend.local_reuse()
            if routed(request):  # another worker's share: its rows, unfiltered, and its partitions
                return respond(self, Reply(200, {"partitions": partitions, "items": rows}))
            covered = set(partitions)

            async def ask(url: URL) -> None:
                body = await ask_worker(request, url, "reuse report", query={}, data=None, timeout=RECONCILE_TIMEOUT_S)
                if body is not None:
                    covered.update(body["partitions"])
                    rows.extend(body["items"])

            await asyncio.gather(*(ask(url) for url in backend.other_workers()))
            missing = sorted(set(range(settings.partitions)) - covered)
            return respond(self, api.reuse_reply(q, rows, missing))

    @app.page("/stores/{store_id}/performance")
    class Performance(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller, store_id: str) -> Any:
            return await answer(
                self, request, api.performance(backend, caller, store_id, dict(request.query), routed(request))
            )

    @app.page("/shipments")
    class Shipments(faust.web.View):
        @authorized
        async def post(self, request: Any, caller: Caller) -> Any:
            body, bad = await read_body(request)
            if bad is not None:
                return respond(self, bad)
            plan = api.submit(backend, caller, body, dict(request.query), settings.carriers, routed(request))
            if isinstance(plan, Reply):
                return respond(self, plan)
            # Ours: publish to the number's partition and wait for our own hot path's verdict.
            loop = asyncio.get_running_loop()
            waiting: list[tuple[int, tuple[str, str], asyncio.Future]] = []
            for out in plan.local:
                waiter = loop.create_future()
                hot.verdict_waiters.setdefault(out.waiter_key, []).append(waiter)
                waiting.append((out.index, out.waiter_key, waiter))
                partition = partition_for(out.key, settings.partitions)
                hot.client_producer.produce(settings.topics.submitted, out.value, out.key, partition=partition)
            hot.client_producer.poll(0)

            async def ask(url: URL, indexes: list[int]) -> None:  # theirs stay pending if unanswered
                body = await ask_worker(
                    request,
                    url,
                    "shipments",
                    query={"wait": plan.wait_s},
                    data=plan.forward_body(indexes),
                    timeout=plan.wait_s + 10,
                    ok=(200, 202),
                )
                if body is not None:
                    plan.merge(indexes, body)

            futures = [w for _, _, w in waiting]
            await asyncio.gather(
                asyncio.wait(futures, timeout=plan.wait_s) if futures else asyncio.sleep(0),
                *(ask(url, idx) for url, idx in plan.remote.items()),
            )
            for index, key, waiter in waiting:
                if waiter.done():
                    plan.results[index] = waiter.result()
                else:  # not decided in time: stop waiting for it here
                    waiter.cancel()
                    _forget(hot.verdict_waiters, key, waiter)
            return respond(self, plan.reply())

    @app.page("/commands/{kind}")
    class Commands(faust.web.View):
        @authorized
        async def post(self, request: Any, caller: Caller, kind: str) -> Any:
            body, bad = await read_body(request)
            if bad is not None:
                return respond(self, bad)
            result = api.command(backend, caller, kind, body, routed(request))
            if not isinstance(result, api.CommandRequest):
                return await answer(self, request, result)
            # The owner publishes it and waits for its own hot path to decide it.
            command_id = result.body["command_id"]
            key = (str(result.body.get("license_id") or "").strip(), str(command_id).strip())
            waiter = asyncio.get_running_loop().create_future()
            hot.command_waiters.setdefault(key, []).append(waiter)
            partition = partition_for(result.key, settings.partitions)
            hot.client_producer.produce(
                settings.topics.commands, orjson.dumps(result.body), result.key, partition=partition
            )
            try:
                out = await asyncio.wait_for(waiter, COMMAND_TIMEOUT_S)
            except TimeoutError:
                _forget(hot.command_waiters, key, waiter)
                return respond(
                    self, api.problem(504, f"no result for command {command_id} within {COMMAND_TIMEOUT_S:.0f} s")
                )
            return respond(self, Reply(200 if out["ok"] else 409, out))

    @app.page("/whoami")
    class WhoAmI(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller) -> Any:
            return respond(self, api.whoami(caller))

    @app.page("/live")
    class Live(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller) -> Any:
            local = api.live_counts(hot.reasons)
            if routed(request):
                return respond(self, Reply(200, local))
            others = backend.other_workers()
            answers = await asyncio.gather(
                *(ask_worker(request, url, "live counts", query={}, data=None, timeout=2.0) for url in others)
            )
            shares = [local, *(a for a in answers if a is not None)]
            return respond(self, api.live_reply(shares, 1 + len(others), backend.now_ms()))

    @app.page("/")
    class ConsoleIndex(faust.web.View):
        async def get(self, request: Any) -> Any:
            return serve_console(self, "index.html")

    @app.page("/console/{name}")
    class ConsoleFile(faust.web.View):
        async def get(self, request: Any, name: str) -> Any:
            return serve_console(self, name)

    def serve_console(view: faust.web.View, name: str) -> Any:
        found = console.asset(name)
        if found is None:
            return respond(view, api.problem(404, f"no console file {name!r}"))
        content, content_type = found
        metrics.http.labels(type(view).__name__, "200").inc()
        headers = {
            "Content-Type": content_type,  # in the header, not content_type=: aiohttp refuses a charset there
            "Cache-Control": "no-cache",
            # Only this worker's own scripts, styles and API: a value that slipped into the page
            # as HTML still could not load or send anything elsewhere.
            "Content-Security-Policy": CONSOLE_CSP,
            "X-Content-Type-Options": "nosniff",
        }
        return view.bytes(content, headers=headers)

    @app.page("/metrics")
    class MetricsPage(faust.web.View):
        async def get(self, request: Any) -> Any:  # unauthenticated, as Prometheus scrapes: counts only
            return self.bytes(metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    document = api.openapi()

    @app.page("/openapi.json")
    class OpenAPI(faust.web.View):
        async def get(self, request: Any) -> Any:
            return respond(self, Reply(200, document))


def _forget(waiters: dict[Any, list[asyncio.Future]], key: Any, waiter: asyncio.Future) -> None:
    """Stop waiting with this one caller; others waiting on the same key go on waiting."""
    left = [w for w in waiters.get(key, ()) if w is not waiter]
    if left:
        waiters[key] = left
    else:
        waiters.pop(key, None)
