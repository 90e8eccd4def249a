"""Schemathesis against a real worker: every request the OpenAPI document allows (as generated
from streams/api.py's routes) gets an answer, never a 500, and JSON where JSON is promised."""

from __future__ import annotations

import time
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

from streams import api

from .conftest import Guard

pytestmark = pytest.mark.broker
TOKEN = "schema-token"
schema = schemathesis.openapi.from_dict(api.openapi())


@pytest.fixture(scope="module")
def worker_url(broker, tmp_path_factory):
    guard = Guard(broker, tmp_path_factory.mktemp("schemathesis"))
    worker = guard.start_worker(env={"TRACKGUARD_TOKENS": f"L1={TOKEN}", "TRACKGUARD_ADMIN_TOKEN": "schema-admin"})
    url = f"http://127.0.0.1:{worker.web_port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # ready when it serves its API and owns its partitions
        try:
            with urllib.request.urlopen(f"{url}/tracking/RR123456785CN?x=1", timeout=5) as _:
                break
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                break
        except OSError:
            pass
        time.sleep(0.5)
    assert guard.verdict(guard.submit(tracking_no="RR123456785CN"))["verdict"] == "accepted"
    yield url
    guard.close()


@schema.parametrize()
@hsettings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_gets_a_server_error(case, worker_url):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
    response = case.call(base_url=worker_url, timeout=15)
    # 504: a command whose result did not come in time (said, not a crash)
    assert response.status_code < 500 or response.status_code == 504, (response.status_code, response.text)
    if response.headers.get("Content-Type", "").startswith("application/json"):
        response.json()  # well-formed
