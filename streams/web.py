"""HTTP API on the Faust web server: diagnosis, check-before-push, used list, commands.

Thin: access control, routing to the worker that owns a number's partition, and JSON/CSV; the
answers come from `core.queries` over the RocksDB state. A request for a number another worker
owns is forwarded to it (with its body, which Faust's own `table_route` would drop); fan-out
queries (the used list) ask every worker for its own partitions.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import hashlib
import hmac
import io
import time
import uuid
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiohttp import ClientError, ClientTimeout
from yarl import URL

from .core import state as state_codec
from .core.commands import KINDS
from .core.normalize import is_clean_tracking, normalize_tracking
from .core.queries import diagnose, status, used_entry
from .core.rules import State
from .hotpath import HotPath
from .partitioning import partition_for
from .settings import Settings

ROUTED = "X-Trackguard-Routed"  # set on forwarded requests: answer locally, never forward again
SERVED_BY = "X-Trackguard-Served-By"
MAX_CHECK = 1000
MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Caller:
    license_id: str | None  # None: the admin, who sees every licence

    @property
    def admin(self) -> bool:
        return self.license_id is None


class Access:
    """Per-licence API tokens and an admin token, held as SHA-256 digests, compared in constant time."""

    def __init__(self, tokens: dict[str, str], admin_token: str | None) -> None:
        self._digests: list[tuple[bytes, str | None]] = [(_digest(t), lic) for lic, t in tokens.items() if t]
        if admin_token:
            self._digests.append((_digest(admin_token), None))

    def caller(self, authorization: str | None) -> Caller | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        presented = _digest(authorization[7:].strip())
        found: Caller | None = None
        for digest, lic in self._digests:  # no early exit: the time does not depend on which matched
            if hmac.compare_digest(digest, presented):
                found = Caller(lic)
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def register(app: faust.App, settings: Settings, hot: HotPath, table: Any, access: Access) -> None:
    store = hot.store

    def now_ms() -> int:
        return int(time.time() * 1000)

    def owner(key: bytes) -> URL | None:
        """The owning worker's URL, or None when it is this one (or nobody knows yet)."""
        try:
            url = app.router.key_store(table.name, key)
        except KeyError:
            return None
        mine = app.conf.canonical_url
        return None if (url.host, url.port) == (mine.host, mine.port) else url

    def read(key: bytes) -> State | None:
        raw = store.read(partition_for(key, settings.partitions), key)
        return state_codec.decode(raw) if raw is not None else None

    async def forward(request: Any, url: URL, body: bytes | None = None, query: dict | None = None) -> Any:
        target = url.with_path(request.path).with_query(request.query if query is None else query)
        headers = {
            "Authorization": request.headers.get("Authorization", ""),
            ROUTED: "1",
            "Content-Type": request.headers.get("Content-Type", "application/json"),
        }
        try:
            async with app.http_client.request(
                request.method, target, headers=headers, data=body, timeout=ClientTimeout(total=10)
            ) as resp:
                payload = await resp.read()
                return app.web.bytes(
                    payload,
                    status=resp.status,
                    content_type=resp.content_type,
                    headers={SERVED_BY: resp.headers.get(SERVED_BY, str(url))},
                )
        except (TimeoutError, ClientError) as exc:
            # The owner is gone or slow (e.g. mid-rebalance): say so; the caller may retry.
            return app.web.bytes(
                orjson.dumps({"error": f"worker {url} did not answer: {exc!r}"}),
                status=502,
                content_type="application/json",
            )

    def reply(view: faust.web.View, body: Any, status_code: int = 200) -> Any:
        return view.bytes(
            orjson.dumps(body),
            status=status_code,
            content_type="application/json",
            headers={SERVED_BY: str(app.conf.canonical_url)},
        )

    def problem(view: faust.web.View, status_code: int, message: str) -> Any:
        return reply(view, {"error": message}, status_code)

    async def read_json(view: faust.web.View, request: Any) -> tuple[Any, Any]:
        """(body, None) or (None, error response): 4xx with a message, never a 500."""
        if (request.content_length or 0) > MAX_BODY:
            return None, problem(view, 413, f"body larger than {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return None, problem(view, 413, f"body larger than {MAX_BODY} bytes")
        try:
            return orjson.loads(raw), None
        except orjson.JSONDecodeError as exc:
            return None, problem(view, 400, f"body is not valid JSON: {exc}")

    def authorized(method: Any) -> Any:
        """Answer 401 without a known token; otherwise call the view with the caller."""

        @functools.wraps(method)
        async def with_caller(view: faust.web.View, request: Any, **kwargs: Any) -> Any:
            caller = access.caller(request.headers.get("Authorization"))
            if caller is None:
                return problem(view, 401, "missing or unknown API token (Authorization: Bearer TOKEN)")
            return await method(view, request, caller, **kwargs)

        return with_caller

    def number_of(raw: Any) -> str | None:
        if not isinstance(raw, str):
            return None
        number = normalize_tracking(raw)
        ok = number and len(number) <= settings.limits.max_tracking_chars and is_clean_tracking(number)
        return number if ok else None

    @app.page("/tracking/{no}")
    class Tracking(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller, no: str) -> Any:
            number = number_of(no)
            if number is None:
                return problem(self, 400, "tracking number must hold letters and digits only")
            key = number.encode()
            url = None if request.headers.get(ROUTED) else owner(key)
            if url is not None:
                return await forward(request, url)
            return reply(self, diagnose(number, read(key), caller.license_id, now_ms()))

    @app.page("/tracking/check")
    class Check(faust.web.View):
        @authorized
        async def post(self, request: Any, caller: Caller) -> Any:
            body, bad = await read_json(self, request)
            if bad:
                return bad
            numbers = body.get("tracking_numbers") if isinstance(body, dict) else None
            if not isinstance(numbers, list):
                return problem(self, 400, 'body must be {"tracking_numbers": [...]}')
            if len(numbers) > MAX_CHECK:
                return problem(self, 413, f"at most {MAX_CHECK} numbers per check, got {len(numbers)}")
            license_id = caller.license_id if caller.license_id else body.get("license_id")
            results: list[dict | None] = [None] * len(numbers)
            remote: dict[URL, list[int]] = {}
            routed = bool(request.headers.get(ROUTED))
            now = now_ms()
            for i, raw in enumerate(numbers):
                number = number_of(raw)
                if number is None:
                    results[i] = {"tracking_no": raw, "status": "invalid"}
                    continue
                url = None if routed else owner(number.encode())
                if url is None:
                    results[i] = {"tracking_no": number, "status": status(read(number.encode()), license_id, now)}
                else:
                    remote.setdefault(url, []).append(i)

            async def ask(url: URL, idx: list[int]) -> None:
                sub_body = orjson.dumps({"tracking_numbers": [numbers[i] for i in idx], "license_id": license_id})
                resp = await forward(request, url, sub_body)
                for i, r in zip(idx, orjson.loads(resp.body)["results"]):
                    results[i] = r

            await asyncio.gather(*(ask(url, idx) for url, idx in remote.items()))
            return reply(self, {"license_id": license_id, "results": results})

    @app.page("/licenses/{license_id}/used")
    class Used(faust.web.View):
        @authorized
        async def get(self, request: Any, caller: Caller, license_id: str) -> Any:
            if not caller.admin and caller.license_id != license_id:
                return problem(self, 403, "a licence token sees only its own licence")
            try:
                limit = min(max(int(request.query.get("limit", "500")), 1), 5000)
            except ValueError:
                return problem(self, 400, "limit must be a whole number")
            after = request.query.get("after", "")
            rows = local_used(license_id, after, limit)
            if not request.headers.get(ROUTED):
                for url in other_workers():
                    resp = await forward(request, url, query={"after": after, "limit": limit, "format": "json"})
                    if resp.status == 200:
                        rows.extend(orjson.loads(resp.body)["items"])
            rows.sort(key=lambda r: r["tracking_no"])
            rows = rows[:limit]
            next_after = rows[-1]["tracking_no"] if len(rows) == limit else None
            if request.query.get("format") == "csv":
                out = io.StringIO()
                writer = csv.DictWriter(
                    out, fieldnames=["tracking_no", "carrier_code", "store_id", "order_id", "shipped_at", "fingerprint"]
                )
                writer.writeheader()
                writer.writerows(rows)
                return self.bytes(
                    out.getvalue().encode(), content_type="text/csv", headers={"X-Next-After": next_after or ""}
                )
            return reply(self, {"license_id": license_id, "items": rows, "next_after": next_after})

    def local_used(license_id: str, after: str, limit: int) -> list[dict]:
        rows: list[dict] = []
        changelog = store.changelog_topic
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog}
        for partition in sorted(mine):
            for key, raw in store.scan(partition, after.encode() if after else None):
                number = key.decode()
                if number <= after:
                    continue
                row = used_entry(number, state_codec.decode(raw), license_id)
                if row is not None:
                    rows.append(row)
        rows.sort(key=lambda r: r["tracking_no"])
        return rows[:limit]

    def other_workers() -> list[URL]:
        mine = app.conf.canonical_url
        return [
            URL(str(host))
            for host in app.router.table_metadata(table.name)
            if (URL(str(host)).host, URL(str(host)).port) != (mine.host, mine.port)
        ]

    @app.page("/commands/{kind}")
    class Commands(faust.web.View):
        @authorized
        async def post(self, request: Any, caller: Caller, kind: str) -> Any:
            if kind not in KINDS:
                return problem(self, 404, f"unknown command {kind!r}; one of {list(KINDS)}")
            body, bad = await read_json(self, request)
            if bad:
                return bad
            if not isinstance(body, dict):
                return problem(self, 400, "body must be a JSON object")
            if not caller.admin:
                if body.get("license_id", caller.license_id) != caller.license_id:
                    return problem(self, 403, "a licence token acts only for its own licence")
                body["license_id"] = caller.license_id
            body["command"] = kind
            body.setdefault("command_id", f"http-{uuid.uuid4().hex}")
            number = number_of(body.get("tracking_no"))
            if number is None:
                return problem(self, 400, "tracking_no is missing or not letters and digits")
            key = number.encode()
            url = None if request.headers.get(ROUTED) else owner(key)
            if url is not None:
                return await forward(request, url, orjson.dumps(body))
            # The owner publishes it and waits for its own hot path to decide it.
            waiter = asyncio.get_running_loop().create_future()
            hot.command_waiters[body["command_id"]] = waiter
            hot.producer.produce(
                settings.topics.commands, orjson.dumps(body), key, partition=partition_for(key, settings.partitions)
            )
            try:
                result = await asyncio.wait_for(waiter, 10.0)
            except TimeoutError:
                hot.command_waiters.pop(body["command_id"], None)
                return problem(self, 504, f"no result for command {body['command_id']} within 10 s")
            return reply(self, result, 200 if result["ok"] else 409)

    @app.page("/openapi.json")
    class OpenAPI(faust.web.View):
        async def get(self, request: Any) -> Any:
            return reply(self, OPENAPI)


def _op(summary: str, responses: dict[str, str], body: bool = False, params: tuple[str, ...] = ()) -> dict:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {code: {"description": text} for code, text in responses.items()},
    }
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    return op


_AUTH = {"401": "missing or unknown token", "400": "bad request, with a message"}
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "trackguard", "version": "0.1.0"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/tracking/{no}": {
            "get": _op(
                "Diagnosis of a tracking number, as the caller may see it",
                {"200": "diagnosis", **_AUTH},
                params=("no",),
            )
        },
        "/tracking/check": {
            "post": _op(
                "Check up to 1,000 numbers before pushing them",
                {"200": "one status per number", "413": "more than 1,000 numbers", **_AUTH},
                body=True,
            )
        },
        "/licenses/{license_id}/used": {
            "get": {
                **_op(
                    "Numbers bound to the licence, with fingerprints (paged: after, limit; format=csv)",
                    {"200": "items and next_after", "403": "another licence", **_AUTH},
                    params=("license_id",),
                ),
                "parameters": [
                    {"name": "license_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
                ],
            }
        },
        **{
            f"/commands/{kind}": {
                "post": _op(
                    f"{kind} a tracking number; answers with the command's result",
                    {
                        "200": "ok",
                        "409": "refused, with an error code",
                        "403": "another licence",
                        "504": "no result in time",
                        **_AUTH,
                    },
                    body=True,
                )
            }
            for kind in KINDS
        },
    },
}
