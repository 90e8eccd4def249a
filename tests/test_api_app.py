"""The worker's web app serves exactly the routes tests/test_api.py's handlers declare.

Apart from tests/test_api.py because it builds the Faust app: test_api.py runs without Faust
(in mutmut's venv, for instance).
"""

from __future__ import annotations

from streams import api
from streams import settings as settings_mod
from streams.app import create_app


def test_the_openapi_document_is_the_routes_and_the_worker_serves_exactly_those():
    doc = api.openapi()
    assert {(r.path, r.method) for r in api.ROUTES} == {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert doc["paths"]["/licenses/{license_id}/used"]["get"]["parameters"][0]["name"] == "license_id"
    # No broker needed to build the app: markers and guarantee forced, so nothing probes one.
    app = create_app(
        settings_mod.load().with_(changelog_markers="always", guarantee="at_least_once", broker="127.0.0.1:9")
    )
    served = {r.canonical for r in app.web.web_app.router.resources()}
    declared = {"/commands/{kind}" if r.path.startswith("/commands/") else r.path for r in api.ROUTES}
    assert served == declared == api.page_patterns()
