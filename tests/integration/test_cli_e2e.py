"""The CLI against a real broker: the forms a user types are accepted."""

from __future__ import annotations

import pytest

from ..test_cli import trackguard

pytestmark = pytest.mark.broker


def test_the_url_form_works_against_a_real_broker(broker):
    code, err, _ = trackguard(
        "submit",
        "--broker",
        f"kafka://{broker.address}",
        "--event-id",
        "cli-url",
        "--license-id",
        "L1",
        "--store-id",
        "S1",
        "--order-id",
        "O1",
        "--carrier-code",
        "CHINAPOST",
        "--tracking-no",
        "RR123456785CN",
        "--shipped-at",
        "2026-11-20T08:00:00+08:00",
        env={"TRACKGUARD_APP_ID": "cli-errors"},
    )
    assert code == 0, err
