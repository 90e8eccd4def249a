"""The HTTP API's handlers and route declarations, apart from their wiring (streams/web.py).

Each handler takes what it needs — the caller, the request's parts, and a `Backend` (state
reads, the owner of a key's partition, the clock) — and returns a `Reply`, a `Forward` (the
owning worker must answer) or a plan the wiring completes (fan-out to other workers). No Faust,
no aiohttp: tests/test_api.py calls them with a backend of plain dicts. `ROUTES` declares every
route once; the wiring registers them and `openapi()` documents them.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol
from urllib.parse import quote, unquote

import orjson

from .core.carriers import CarrierBook
from .core.commands import KINDS
from .core.events import Limits, Rejection, parse_submission
from .core.normalize import is_clean_tracking, normalize_tracking
from .core.performance import PerformancePolicy, StoreState, store_key, view
from .core.queries import diagnose, status
from .core.reconcile import COLUMNS as RECONCILE_COLUMNS
from .core.reconcile import ErpRow, Report, invalid_row
from .core.reuse import COLUMNS as REUSE_COLUMNS
from .core.reuse import report as reuse_report
from .core.rules import State
from .erp_import import BadImportFile, ColumnMap, RowContext, content_event_id, csv_rows, decode_text, read_rows

# Headers of a request one worker forwards to another (Access.peer_headers): whoever else sends
# them without the workers' key is refused (401), and a client cannot make a worker answer "for its
# partitions only" by setting them.
PEER_CALLER, PEER_TIME, PEER_SIGNATURE = "X-Trackguard-Peer-Caller", "X-Trackguard-Peer-Time", "X-Trackguard-Peer"
MAX_CHECK = 1000
MAX_SUBMIT = 500  # submissions per POST /shipments
SUBMIT_WAIT_S = 10.0  # how long POST /shipments waits for verdicts by default (?wait= seconds)
MAX_SUBMIT_WAIT_S = 30.0
MAX_BODY = 256 * 1024
USED_COLUMNS = ["tracking_no", "carrier_code", "store_id", "order_id", "shipped_at", "fingerprint"]


@dataclass(frozen=True)
class Caller:
    license_id: str | None  # None: the admin, who sees every licence

    @property
    def admin(self) -> bool:
        return self.license_id is None


ADMIN_CALLER = ""  # the admin, as a forwarded request names its caller: no licence id is empty
PEER_WINDOW_S = 60  # a forwarded request's signature is good this long (clocks of one cluster's workers)


class Access:
    """Per-licence API tokens and an admin token, held as SHA-256 digests, compared in constant time.

    Workers forward requests to each other with a credential of their own, never the caller's
    token: an HMAC, under the workers' shared peer key, of the caller they vouch for, the request
    and the time. The key is `access.peer_secret`, or else derived from every configured token
    (the admin's included), which every worker of one deployment has and no single licence does."""

    def __init__(self, tokens: dict[str, str], admin_token: str | None, peer_secret: str | None = None) -> None:
        self._digests: list[tuple[bytes, str | None]] = [(_digest(t), lic) for lic, t in tokens.items() if t]
        if admin_token:
            self._digests.append((_digest(admin_token), None))
        self._licences = frozenset(lic for lic, t in tokens.items() if t)
        self._admin = bool(admin_token)
        material = peer_secret or "\n".join(
            sorted([*(f"{lic}={t}" for lic, t in tokens.items()), f"*={admin_token or ''}"])
        )
        self._peer_key = hmac.new(b"trackguard peer key v1", material.encode(), hashlib.sha256).digest()

    def peer_headers(self, caller: Caller, method: str, path_qs: str, now_s: int) -> dict[str, str]:
        """The headers a worker sends when it asks another worker on `caller`'s behalf."""
        who = ADMIN_CALLER if caller.admin else caller.license_id or ""
        # Percent-encoded: a licence id may be any text, a header value is Latin-1.
        return {
            PEER_CALLER: quote(who, safe=""),
            PEER_TIME: str(now_s),
            PEER_SIGNATURE: self._sign(who, method, path_qs, now_s),
        }

    def peer_caller(self, headers: Mapping[str, str], method: str, path_qs: str, now_s: int) -> Caller | None:
        """The caller a forwarded request vouches for, or None: no, a wrong or an old signature, or
        a caller this worker does not know (a licence without a token, the admin where none is set)."""
        who, at, signature = headers.get(PEER_CALLER), headers.get(PEER_TIME), headers.get(PEER_SIGNATURE)
        if who is None or at is None or signature is None or not at.isdigit():
            return None
        who = unquote(who)
        if abs(now_s - int(at)) > PEER_WINDOW_S:
            return None
        if not hmac.compare_digest(self._sign(who, method, path_qs, int(at)), signature):
            return None
        if who == ADMIN_CALLER:
            return Caller(None) if self._admin else None
        return Caller(who) if who in self._licences else None

    def _sign(self, who: str, method: str, path_qs: str, now_s: int) -> str:
        message = "\n".join((who, method.upper(), path_qs, str(now_s))).encode()
        return hmac.new(self._peer_key, message, hashlib.sha256).hexdigest()

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


class Backend(Protocol):
    """What the handlers need of a worker."""

    limits: Limits
    performance: PerformancePolicy

    def read(self, key: bytes) -> State | None: ...

    def owner(self, key: bytes) -> Any | None:
        """The URL of the worker that owns the key's partition; None when it is this one."""

    def read_store(self, key: bytes) -> StoreState | None: ...

    def store_failures(self, license_id: str, store_id: str, month: str, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` (event id, number) failures counted for the store in the month."""

    def store_owner(self, key: bytes) -> Any | None:
        """The URL of the worker that owns the store's partition (stores table); None: this one."""

    def now_ms(self) -> int: ...


@dataclass
class Reply:
    status: int
    body: Any  # JSON-ready, or str for text/csv
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Forward:
    """Ask the owning worker instead (with this body / query, or the request's own)."""

    url: Any
    body: bytes | None = None
    query: dict[str, Any] | None = None


def problem(status_code: int, message: str) -> Reply:
    return Reply(status_code, {"error": message})


def parse_body(raw: bytes) -> tuple[Any, Reply | None]:
    """(body, None), or (None, a 4xx): never a 500 for what a client sends."""
    return parse_body_of(raw, MAX_BODY)


def parse_body_of(raw: bytes, limit: int) -> tuple[Any, Reply | None]:
    if len(raw) > limit:
        return None, problem(413, f"body larger than {limit} bytes")
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, problem(400, f"body is not valid JSON: {exc}")


# Cells a spreadsheet would read as a formula (OWASP "CSV injection"): Excel runs `=HYPERLINK(...)`
# from a store id a seller typed. Such a cell is written with a leading apostrophe, shown as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV export writes it: text that starts like a formula is neutralised."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_reply(columns: list[str], rows: Any, name: str, headers: dict[str, str]) -> Reply:
    """A CSV export: every cell through `csv_cell`, offered as a file called `name`.csv."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    disposition = f"attachment; filename=\"{safe}.csv\"; filename*=UTF-8''{quote(name, safe='')}.csv"
    return Reply(200, out.getvalue(), "text/csv", {**headers, "Content-Disposition": disposition})


def number_of(raw: Any, limits: Limits) -> str | None:
    if not isinstance(raw, str):
        return None
    number = normalize_tracking(raw)
    ok = number and len(number) <= limits.max_tracking_chars and is_clean_tracking(number)
    return number if ok else None


# --- handlers ---------------------------------------------------------------------------------


def tracking(backend: Backend, caller: Caller, no: str, routed: bool) -> Reply | Forward:
    """GET /tracking/{no}: the diagnosis, from the worker that owns the number."""
    number = number_of(no, backend.limits)
    if number is None:
        return problem(400, "tracking number must hold letters and digits only")
    key = number.encode()
    url = None if routed else backend.owner(key)
    if url is not None:
        return Forward(url)
    return Reply(200, diagnose(number, backend.read(key), caller.license_id, backend.now_ms()))


@dataclass
class CheckPlan:
    """Statuses known here, and which numbers (by index) each other worker must answer."""

    license_id: str | None
    numbers: list[Any]
    results: list[dict[str, Any] | None]
    remote: dict[Any, list[int]]

    def forward_body(self, indexes: list[int]) -> bytes:
        return orjson.dumps({"tracking_numbers": [self.numbers[i] for i in indexes], "license_id": self.license_id})

    def merge(self, indexes: list[int], answer: dict[str, Any]) -> None:
        for i, result in zip(indexes, answer["results"]):
            self.results[i] = result

    def reply(self) -> Reply:
        return Reply(200, {"license_id": self.license_id, "results": self.results})


def check(backend: Backend, caller: Caller, body: Any, routed: bool) -> Reply | CheckPlan:
    """POST /tracking/check: a status per number for the caller's licence, each from its owner."""
    numbers = body.get("tracking_numbers") if isinstance(body, dict) else None
    if not isinstance(numbers, list):
        return problem(400, 'body must be {"tracking_numbers": [...]}')
    if len(numbers) > MAX_CHECK:
        return problem(413, f"at most {MAX_CHECK} numbers per check, got {len(numbers)}")
    license_id = caller.license_id if caller.license_id else body.get("license_id")
    plan = CheckPlan(license_id, numbers, [None] * len(numbers), {})
    now = backend.now_ms()
    for i, raw in enumerate(numbers):
        number = number_of(raw, backend.limits)
        if number is None:
            plan.results[i] = {"tracking_no": raw, "status": "invalid"}
            continue
        url = None if routed else backend.owner(number.encode())
        if url is None:
            plan.results[i] = {"tracking_no": number, "status": status(backend.read(number.encode()), license_id, now)}
        else:
            plan.remote.setdefault(url, []).append(i)
    return plan


@dataclass(frozen=True)
class Outgoing:
    """One submission to publish, keyed by its normalized number (decided in place, no re-keying),
    or, when the guard will refuse it, by what it holds: its dead letter comes from that partition."""

    index: int
    event_id: str
    key: bytes
    value: bytes
    license_id: str = ""

    @property
    def waiter_key(self) -> tuple[str, str]:
        """How the hot path finds who waits for this verdict: (licence, event id), as the verdict
        names them (an idempotency key is its licence's)."""
        return (self.license_id.strip(), self.event_id.strip())


@dataclass
class SubmitPlan:
    """What this worker publishes and waits for, and which submissions (by index) each other
    worker must publish: each goes to the owner of its number's partition, whose hot path decides
    it, so the verdict is awaited where it is made."""

    events: list[dict[str, Any]]
    local: list[Outgoing]
    remote: dict[Any, list[int]]
    wait_s: float
    results: list[dict[str, Any] | None]

    def forward_body(self, indexes: list[int]) -> bytes:
        return orjson.dumps({"shipments": [self.events[i] for i in indexes]})

    def merge(self, indexes: list[int], answer: dict[str, Any]) -> None:
        for i, result in zip(indexes, answer.get("results", ()), strict=False):
            self.results[i] = result

    def reply(self) -> Reply:
        """200 with every verdict; 202 when some are not decided yet: their event ids are pending
        (submitting them again, same event ids, is safe: rule 2 answers with the same verdict)."""
        pending = [self.events[i]["event_id"] for i, r in enumerate(self.results) if r is None]
        return Reply(202 if pending else 200, {"results": self.results, "pending": pending})


def submit(
    backend: Backend,
    caller: Caller,
    body: Any,
    query: dict[str, str],
    carriers: CarrierBook,
    routed: bool,
) -> Reply | SubmitPlan:
    """POST /shipments: one submission (an object) or up to 500 (`{"shipments": [...]}`), for the
    caller's licence; an event id left out is derived from the content (a retry is a replay)."""
    items = body.get("shipments", body) if isinstance(body, dict) else body
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return problem(400, 'body must be a submission object or {"shipments": [{...}, ...]}')
    if len(items) > MAX_SUBMIT:
        return problem(413, f"at most {MAX_SUBMIT} submissions per request, got {len(items)}")
    try:
        wait_s = min(max(float(query.get("wait", SUBMIT_WAIT_S)), 0.0), MAX_SUBMIT_WAIT_S)
    except ValueError:
        return problem(400, "wait must be a number of seconds")
    limits, now = backend.limits, backend.now_ms()
    events: list[dict[str, Any]] = []
    plan = SubmitPlan(events, [], {}, wait_s, [None] * len(items))
    for i, item in enumerate(items):
        event = dict(item)
        if not caller.admin:
            if event.get("license_id", caller.license_id) != caller.license_id:
                return problem(403, f"shipments[{i}]: a licence token submits only for its own licence")
            event["license_id"] = caller.license_id
        event.setdefault("source", "api")
        if event.get("event_id") is None:
            event["event_id"] = content_event_id(event, prefix="api")
        eid = event["event_id"]
        if not isinstance(eid, str) or not 0 < len(eid) <= limits.max_field_chars:
            return problem(400, f"shipments[{i}]: event_id must be text of 1 to {limits.max_field_chars} characters")
        value = orjson.dumps(event)
        parsed = parse_submission(value, now, carriers, limits)
        if isinstance(parsed, Rejection):  # published all the same: its dead letter is its verdict
            key = (number_of(event.get("tracking_no"), limits) or "").encode()
        else:
            key = parsed.tracking_no.encode()
        events.append(event)
        url = None if routed else backend.owner(key)
        if url is None:
            lic = event.get("license_id")
            plan.local.append(Outgoing(i, eid, key, value, lic if isinstance(lic, str) else ""))
        else:
            plan.remote.setdefault(url, []).append(i)
    return plan


@dataclass(frozen=True)
class UsedQuery:
    license_id: str
    after: str
    limit: int
    csv: bool


def used_query(caller: Caller, license_id: str, query: dict[str, str]) -> Reply | UsedQuery:
    """GET /licenses/{id}/used: who may ask, and the page asked for."""
    if not caller.admin and caller.license_id != license_id:
        return problem(403, "a licence token sees only its own licence")
    try:
        limit = min(max(int(query.get("limit", "500")), 1), 5000)
    except ValueError:
        return problem(400, "limit must be a whole number")
    return UsedQuery(license_id, query.get("after", ""), limit, query.get("format") == "csv")


def used_page(q: UsedQuery, rows: list[dict[str, Any]], missing: list[int] | None = None) -> Reply:
    """One page of the rows every worker found, in number order, as JSON or CSV; 503 when
    partitions went unanswered (a worker gone or rebalancing): a page without them would skip
    numbers silently, and `next_after` would page past them for good."""
    if missing:
        return problem(503, f"no worker answered for partitions {missing} (rebalancing?): try again")
    rows = sorted(rows, key=lambda r: r["tracking_no"])[: q.limit]
    next_after = rows[-1]["tracking_no"] if len(rows) == q.limit else None
    if q.csv:
        return csv_reply(USED_COLUMNS, rows, f"used-{q.license_id}", {"X-Next-After": next_after or ""})
    return Reply(200, {"license_id": q.license_id, "items": rows, "next_after": next_after})


MAX_RECONCILE_BODY = 32 * 1024 * 1024  # an ERP's month: ~100 bytes a row, some 300,000 rows
MAX_RECONCILE_ROWS = 300_000  # rows in one reconciliation: a file of more is refused (413), not read on


@dataclass(frozen=True)
class ReconcileQuery:
    license_id: str
    month: str | None
    csv: bool


def reconcile_query(caller: Caller, license_id: str, query: dict[str, str]) -> Reply | ReconcileQuery:
    """POST /licenses/{id}/reconcile: who may ask, for which month (YYYY-MM), in which format."""
    if not caller.admin and caller.license_id != license_id:
        return problem(403, "a licence token reconciles only its own licence")
    month = query.get("month") or None
    if month is not None and not _is_month(month):
        return problem(400, f"month must be YYYY-MM, got {month!r}")
    return ReconcileQuery(license_id, month, query.get("format") == "csv")


def _is_month(text: str) -> bool:
    return len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit() and 1 <= int(text[5:]) <= 12


def erp_rows(
    events: list[tuple[int, dict[str, Any]]], license_id: str, carriers: CarrierBook, limits: Limits, now_ms: int
) -> tuple[list[ErpRow], list[dict[str, Any]]]:
    """(line, submission fields) -> rows normalized as the guard would, and the rows it would
    refuse as `erp_invalid` findings (`_error`: a row the file reader already refused). A row
    without a licence is the licence's."""
    rows: list[ErpRow] = []
    invalid: list[dict[str, Any]] = []
    for line, event in events:
        fields = {"event_id": f"erp-line-{line}", **event}
        fields["license_id"] = fields.get("license_id") or license_id
        raw_no = str(fields.get("tracking_no", ""))
        if "_error" in fields:  # a row the file reader could not read (import's own per-row check)
            invalid.append(invalid_row(line, raw_no, "BAD_ROW", str(fields["_error"])))
            continue
        if fields["license_id"] != license_id:
            invalid.append(invalid_row(line, raw_no, "OTHER_LICENSE", f"a row of licence {fields['license_id']!r}"))
            continue
        parsed = parse_submission(orjson.dumps(fields), now_ms, carriers, limits)
        if isinstance(parsed, Rejection):
            invalid.append(invalid_row(line, raw_no, parsed.reason, parsed.error))
        else:
            rows.append(
                ErpRow(
                    line, parsed.tracking_no, parsed.carrier_code, parsed.shipped_ms, parsed.store_id, parsed.order_id
                )
            )
    return rows, invalid


def reconcile_body(
    raw: bytes, content_type: str, license_id: str, columns: ColumnMap, ctx: RowContext
) -> Reply | list[tuple[int, dict[str, Any]]]:
    """The request's ERP log: a CSV export (any content type but JSON; UTF-8 or GB18030, headers
    through the import column mapping, local times in `ctx.zone`), or JSON
    `{"rows": [{"line": n, ...submission fields}]}` as `trackguard reconcile` sends it."""
    if len(raw) > MAX_RECONCILE_BODY:
        return problem(413, f"body larger than {MAX_RECONCILE_BODY} bytes")
    if content_type == "application/json":
        body, bad = parse_body_of(raw, MAX_RECONCILE_BODY)
        if bad is not None:
            return bad
        items = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return problem(400, 'body must be {"rows": [{"line": 2, "tracking_no": ..., ...}, ...]}')
        if len(items) > MAX_RECONCILE_ROWS:
            return problem(413, f"at most {MAX_RECONCILE_ROWS} rows per reconciliation, got {len(items)}")
        lines = [i.get("line") if i.get("line") is not None else n + 1 for n, i in enumerate(items)]
        if not all(isinstance(line, int) and not isinstance(line, bool) and line >= 0 for line in lines):
            return problem(400, "every row's line must be a whole number")
        return [(line, {k: v for k, v in i.items() if k != "line"}) for line, i in zip(lines, items, strict=True)]
    try:
        text, _ = decode_text(raw)
        result = read_rows(
            islice(csv_rows(text), MAX_RECONCILE_ROWS + 2),  # the header, and one row too many to tell
            columns,
            RowContext(ctx.zone, license_id, ctx.license_id_format),
        )
    except BadImportFile as exc:
        return problem(400, f"the CSV: {exc}")
    if len(result.events) + len(result.errors) > MAX_RECONCILE_ROWS:
        return problem(413, f"at most {MAX_RECONCILE_ROWS} rows per reconciliation: split the file by month")
    # Rows the import would refuse (no tracking number, a time that is no time) are findings too.
    unread: list[tuple[int, dict[str, Any]]] = [(e.line, {"_error": e.message}) for e in result.errors]
    return [*zip(result.lines, result.events, strict=True), *unread]


def reconcile_reply(q: ReconcileQuery, report: Report, missing: list[int]) -> Reply:
    """The merged report; 503 when partitions went unanswered (a worker gone or rebalancing): a
    reconciliation missing numbers would report them as not accepted."""
    if missing:
        return problem(503, f"no worker answered for partitions {missing} (rebalancing?): try again")
    answer = report.as_dict(q.license_id, q.month)
    if q.csv:
        counts = orjson.dumps(answer["counts"]).decode()
        name = f"reconcile-{q.license_id}" + (f"-{q.month}" if q.month else "")
        headers = {"X-Trackguard-Counts": counts, "X-Trackguard-Findings-Total": str(answer["findings_total"])}
        return csv_reply(list(RECONCILE_COLUMNS), answer["findings"], name, headers)
    return Reply(200, answer)


@dataclass(frozen=True)
class ReuseQuery:
    month: str | None
    carrier: str | None
    csv: bool


def reuse_query(caller: Caller, query: dict[str, str], carriers: CarrierBook) -> Reply | ReuseQuery:
    """GET /reuse: admin only (it names every licence that claimed a number). The carrier may be
    named as sellers type it (燕文, yanwen): the carrier book gives its code."""
    if not caller.admin:
        return problem(403, "the cross-licence reuse report needs the admin token")
    month = query.get("month") or None
    if month is not None and not _is_month(month):
        return problem(400, f"month must be YYYY-MM, got {month!r}")
    carrier = carriers.canonical(query["carrier"]) if query.get("carrier") else None
    return ReuseQuery(month, carrier, query.get("format") == "csv")


def reuse_reply(q: ReuseQuery, rows: list[dict[str, Any]], missing: list[int]) -> Reply:
    """Every worker's rows, grouped by carrier and month; 503 when partitions went unanswered (a
    report missing some would under-count a forwarder's reuse)."""
    if missing:
        return problem(503, f"no worker answered for partitions {missing} (rebalancing?): try again")
    out = reuse_report(rows, month=q.month, carrier=q.carrier)
    if q.csv:
        shown = ({**r, "licenses": " ".join(r["licenses"])} for r in out["items"])
        name = "reuse" + "".join(f"-{part}" for part in (q.carrier, q.month) if part)
        return csv_reply(
            list(REUSE_COLUMNS), shown, name, {"X-Trackguard-Groups": orjson.dumps(out["groups"]).decode()}
        )
    return Reply(200, out)


FAILURES_LISTED = 1000  # failures listed per month by GET /stores/{id}/performance (`failed` counts all)


def performance(
    backend: Backend, caller: Caller, store_id: str, query: dict[str, str], routed: bool
) -> Reply | Forward:
    """GET /stores/{id}/performance: a store is (licence, store id); a licence sees its own stores."""
    asked = query.get("license")
    if not caller.admin:
        if asked is not None and asked != caller.license_id:
            return problem(403, "a licence token sees only its own stores")
        asked = caller.license_id
    if not asked:
        return problem(400, "name the store's licence: ?license=LICENCE (an admin token sees every licence)")
    key = store_key(asked, store_id)
    url = None if routed else backend.store_owner(key)
    if url is not None:
        return Forward(url)
    state = backend.read_store(key)
    listed = {
        month: backend.store_failures(asked, store_id, month, FAILURES_LISTED)
        for month in (state or {}).get("months", {})
    }
    return Reply(200, view(state, asked, store_id, backend.performance, listed))


@dataclass(frozen=True)
class CommandRequest:
    """A command to publish keyed by its number, once the owning worker has it."""

    key: bytes
    body: dict[str, Any]


def command(backend: Backend, caller: Caller, kind: str, body: Any, routed: bool) -> Reply | Forward | CommandRequest:
    """POST /commands/{kind}: a licence acts for itself; the owner of the number publishes it."""
    if kind not in KINDS:
        return problem(404, f"unknown command {kind!r}; one of {list(KINDS)}")
    if not isinstance(body, dict):
        return problem(400, "body must be a JSON object")
    if not caller.admin:
        if body.get("license_id", caller.license_id) != caller.license_id:
            return problem(403, "a licence token acts only for its own licence")
        body["license_id"] = caller.license_id
        if kind == "appeal":  # a licence files its appeal; only the platform decides it
            if body.get("decision", "pending") != "pending":
                return problem(
                    403, "a licence files an appeal (decision pending); only the platform's admin token decides it"
                )
            body["decision"] = "pending"
            body.pop("decided_by", None)
    body["command"] = kind
    body.setdefault("command_id", f"http-{uuid.uuid4().hex}")
    number = number_of(body.get("tracking_no"), backend.limits)
    if number is None:
        return problem(400, "tracking_no is missing or not letters and digits")
    key = number.encode()
    url = None if routed else backend.owner(key)
    if url is not None:
        return Forward(url, orjson.dumps(body))
    return CommandRequest(key, body)


def whoami(caller: Caller) -> Reply:
    """GET /whoami: whose token this is (the console signs in with it)."""
    return Reply(200, {"license_id": caller.license_id, "admin": caller.admin})


def live_counts(reasons: Mapping[tuple[str, str, str], int]) -> dict[str, dict[str, int]]:
    """One worker's verdicts so far, by verdict and by reason (from `HotPath.reasons`, which is
    keyed by verdict, reason and carrier)."""
    verdicts: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for (verdict, reason, _carrier), n in reasons.items():
        verdicts[verdict] += n
        by_reason[reason] += n
    return {"verdicts": dict(verdicts), "reasons": dict(by_reason)}


def live_reply(shares: list[dict[str, dict[str, int]]], asked: int, at_ms: int) -> Reply:
    """GET /live: every worker's counts summed (the console turns two readings into rates);
    `workers` says how many of the `asked` answered, so a rate that drops with a worker is seen as such."""
    verdicts: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for share in shares:
        verdicts.update(share["verdicts"])
        by_reason.update(share["reasons"])
    return Reply(
        200,
        {
            "at_ms": at_ms,
            "workers": len(shares),
            "workers_asked": asked,
            "verdicts": dict(sorted(verdicts.items())),
            "reasons": dict(sorted(by_reason.items())),
        },
    )


# --- the routes, declared once: wired by streams/web.py, documented by openapi() ----------------

_AUTH = {"401": "missing or unknown token", "400": "bad request, with a message"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    responses: dict[str, str]
    body: bool = False
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    auth: bool = True

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


ROUTES: tuple[Route, ...] = (
    Route(
        "post",
        "/shipments",
        "Submit one shipment or up to 500 and wait for their verdicts (?wait= seconds, default 10)",
        {
            "200": "every verdict, in request order",
            "202": "some not decided in time: their event ids under pending (resubmit: same verdict)",
            "403": "another licence",
            "413": "more than 500",
            **_AUTH,
        },
        body=True,
        query=(("wait", {"type": "number", "minimum": 0, "maximum": MAX_SUBMIT_WAIT_S}),),
    ),
    Route(
        "get",
        "/tracking/{no}",
        "Diagnosis of a tracking number, as the caller may see it",
        {"200": "diagnosis", **_AUTH},
    ),
    Route(
        "post",
        "/tracking/check",
        "Check up to 1,000 numbers before pushing them",
        {"200": "one status per number", "413": "more than 1,000 numbers", **_AUTH},
        body=True,
    ),
    Route(
        "get",
        "/licenses/{license_id}/used",
        "Numbers bound to the licence, with fingerprints (paged: after, limit; format=csv)",
        {"200": "items and next_after", "403": "another licence", "503": "partitions unanswered", **_AUTH},
        query=(
            ("after", {"type": "string"}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
            ("format", {"type": "string", "enum": ["json", "csv"]}),
        ),
    ),
    Route(
        "post",
        "/licenses/{license_id}/reconcile",
        "Reconcile an ERP log (CSV export, or JSON rows) with the licence's bound numbers, by fingerprint",
        {
            "200": "findings and counts",
            "400": "not a CSV the import reads",
            "403": "another licence",
            "413": "body over 32 MB",
            "503": "partitions unanswered",
            **_AUTH,
        },
        body=True,
        query=(
            ("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
            ("format", {"type": "string", "enum": ["json", "csv"]}),
        ),
    ),
    Route(
        "get",
        "/reuse",
        "Numbers claimed by more than one licence, by carrier and month (admin token)",
        {"200": "groups and items", "403": "not the admin token", "503": "partitions unanswered", **_AUTH},
        query=(
            ("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
            ("carrier", {"type": "string"}),
            ("format", {"type": "string", "enum": ["json", "csv"]}),
        ),
    ),
    Route(
        "get",
        "/stores/{store_id}/performance",
        "Failed shipments of a store per month, with LFR penalties and service downgrades",
        {"200": "months", "403": "another licence", **_AUTH},
        query=(("license", {"type": "string"}),),
    ),
    *(
        Route(
            "post",
            f"/commands/{kind}",
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
        for kind in KINDS
    ),
    Route("get", "/whoami", "The caller: its licence, or the admin", {"200": "license_id and admin", **_AUTH}),
    Route(
        "get",
        "/live",
        "Verdicts so far by verdict and reason, summed over every worker (the console's live view)",
        {"200": "counts, with the workers that answered", **_AUTH},
    ),
    Route("get", "/", "The web console (HTML)", {"200": "the console"}, auth=False),
    Route(
        "get",
        "/console/{name}",
        "The console's scripts, styles and zh/en catalogues",
        {"200": "the file", "404": "no such file"},
        auth=False,
    ),
    Route("get", "/metrics", "Prometheus metrics of the worker asked (text format)", {"200": "metrics"}, auth=False),
    Route("get", "/openapi.json", "This document", {"200": "OpenAPI 3.0"}, auth=False),
)


def page_patterns() -> frozenset[str]:
    """The URL patterns the worker's web server registers for `ROUTES` (the commands share one
    page, `/commands/{kind}`); streams.web serves these and nothing else."""
    return frozenset("/commands/{kind}" if r.path.startswith("/commands/") else r.path for r in ROUTES)


def openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        op: dict[str, Any] = {
            "summary": r.summary,
            "responses": {code: {"description": text} for code, text in r.responses.items()},
        }
        if r.auth:
            op["security"] = [{"bearer": []}]
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in r.path_params]
        params += [{"name": name, "in": "query", "schema": schema} for name, schema in r.query]
        if params:
            op["parameters"] = params
        if r.body:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        paths.setdefault(r.path, {})[r.method] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "trackguard", "version": "0.1.0"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def routed_rows(raw: bytes) -> list[ErpRow] | Reply:
    """Another worker's share of a reconciliation: the rows as it normalized them, checked field by
    field (a peer's body, but read as carefully as a client's): a 400, never a 500."""
    body, bad = parse_body_of(raw, MAX_RECONCILE_BODY)
    if bad is not None:
        return bad
    items = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) > MAX_RECONCILE_ROWS:
        return problem(400, 'a routed reconciliation must be {"rows": [[line, number, carrier, ms, store, order]]}')
    types = (int, str, str, int, str, str)
    rows = []
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == len(types)
            and all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(item, types, strict=True))
        ):
            return problem(
                400, f"a routed reconciliation row is not [line, number, carrier, ms, store, order]: {item!r:.100}"
            )
        rows.append(ErpRow(*item))
    return rows
