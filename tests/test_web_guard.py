"""The worker's request guard (streams.web.guard_middleware), on a real aiohttp server without a
broker: the Host check against DNS rebinding, only the declared pages, nosniff on every answer."""

from __future__ import annotations

import asyncio
import http.client

import pytest
from aiohttp import web as aiohttp_web

from streams import settings as settings_mod
from streams import web
from streams.settings import SettingsError


def serve_and_ask(settings, requests: list[tuple[str, str]]) -> list[tuple[int, dict[str, str], bytes]]:
    """Start an aiohttp app with the guard, one declared page and one undeclared, on a free
    loopback port; send each (path, Host) as raw HTTP; stop it."""
    answers: list[tuple[int, dict[str, str], bytes]] = []

    async def page(request):
        return aiohttp_web.json_response({"ok": True})

    async def main() -> None:
        app = aiohttp_web.Application(middlewares=[web.guard_middleware(settings)])
        app.router.add_get("/tracking/{no}", page)
        app.router.add_get("/table/{name}/", page)  # as Faust's tables blueprint would mount it
        runner = aiohttp_web.AppRunner(app)
        await runner.setup()
        site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        try:
            for path, host in requests:
                answers.append(await loop.run_in_executor(None, _get, port, path, host))
        finally:
            await runner.cleanup()

    asyncio.run(main())
    return answers


def _get(port: int, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host)
    conn.endheaders()
    resp = conn.getresponse()
    out = (resp.status, dict(resp.getheaders()), resp.read())
    conn.close()
    return out


def test_only_expected_hosts_and_declared_pages_are_answered():
    settings = settings_mod.load().with_(web_host="worker-3.internal", allowed_hosts="gw.example.com")
    answers = serve_and_ask(
        settings,
        [
            ("/tracking/RR1", "127.0.0.1:6066"),
            ("/tracking/RR1", "localhost"),
            ("/tracking/RR1", "[::1]:6066"),
            ("/tracking/RR1", "Worker-3.internal:6066"),
            ("/tracking/RR1", "gw.example.com"),
            ("/tracking/RR1", "evil.example:6066"),  # DNS rebinding: a page of evil.example, resolved to us
            ("/table/numbers/", "127.0.0.1:6066"),
            ("/nowhere", "127.0.0.1:6066"),
        ],
    )
    assert [status for status, _, _ in answers] == [200, 200, 200, 200, 200, 421, 404, 404]
    assert b"evil.example" in answers[5][2]
    assert all(headers.get("X-Content-Type-Options") == "nosniff" for _, headers, _ in answers)


def test_any_host_only_when_asked_for():
    settings = settings_mod.load().with_(allowed_hosts="*")
    assert web.allowed_hosts(settings) is None
    assert [s for s, _, _ in serve_and_ask(settings, [("/tracking/RR1", "anything.example")])] == [200]
    assert web.host_name("Example.COM:80") == "example.com" and web.host_name("[::1]:1") == "::1"


def test_a_token_is_one_callers():
    with pytest.raises(SettingsError, match="L1, L2 have the same token"):
        settings_mod.load(env={"TRACKGUARD_TOKENS": "L1=same,L2=same"})
    with pytest.raises(SettingsError, match="licence L1 has the admin token"):
        settings_mod.load(env={"TRACKGUARD_TOKENS": "L1=root", "TRACKGUARD_ADMIN_TOKEN": "root"})
    assert settings_mod.load(env={"TRACKGUARD_TOKENS": "L1=a,L2=b", "TRACKGUARD_ADMIN_TOKEN": "c"}).tokens == {
        "L1": "a",
        "L2": "b",
    }
