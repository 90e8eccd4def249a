"""What a caller may see of a number's state: the diagnosis, check-before-push, the used list.

Pure: the caller's licence (None = admin) and "now" are passed in. Nothing of another licence is
revealed to a licence caller: no store, order or time, only that the number is used elsewhere.
"""

from __future__ import annotations

from typing import Any, Final

from .normalize import fingerprint, format_ms
from .rules import OTHER_LICENSE, Binding, State, Use


class Status:
    """A number's status for a licence (check before push): not a verdict."""

    AVAILABLE: Final = "available"
    BOUND: Final = "bound"
    RESERVED: Final = "reserved"
    FROZEN: Final = "frozen"
    BLACKLISTED: Final = "blacklisted"


def status(state: State | None, license_id: str | None, now_ms: int) -> str:
    """check-before-push: what pushing this number now would meet, for this licence."""
    if not state:
        return Status.AVAILABLE
    if license_id is not None:
        if state.get("frozen", {}).get(license_id, 0) > now_ms:
            return Status.FROZEN
        if license_id in state.get("blacklist", ()):
            return Status.BLACKLISTED
    if state.get("binding") is not None:
        return Status.BOUND
    reservation = state.get("reservation")
    if reservation is not None and reservation["expires_ms"] > now_ms:
        return Status.RESERVED
    return Status.AVAILABLE


def _binding_view(binding: Binding, license_id: str | None) -> Any:
    if license_id is not None and binding["license"] != license_id:
        return OTHER_LICENSE
    return {
        "license_id": binding["license"],
        "store_id": binding["store"],
        "order_id": binding["order"],
        "carrier_code": binding["carrier"],
        "shipped_at": format_ms(binding["shipped_ms"]),
    }


def diagnose(number: str, state: State | None, license_id: str | None, now_ms: int) -> dict[str, Any]:
    """GET /tracking/{no}: binding, reservation, freeze, blacklist and the uses the caller may see."""
    state = state or {}
    out: dict[str, Any] = {"tracking_no": number, "status": status(state, license_id, now_ms)}
    binding = state.get("binding")
    if binding is None:
        out["binding"] = None
    else:
        view = _binding_view(binding, license_id)
        if isinstance(view, dict):
            view["fingerprint"] = fingerprint(binding["carrier"], number, binding["shipped_ms"])
        out["binding"] = view
    reservation = state.get("reservation")
    if reservation is None or reservation["expires_ms"] <= now_ms:
        out["reservation"] = None
    elif license_id is not None and reservation["license"] != license_id:
        out["reservation"] = OTHER_LICENSE
    else:
        out["reservation"] = {
            "license_id": reservation["license"],
            "store_id": reservation["store"],
            "order_id": reservation["order"],
            "expires_at": format_ms(reservation["expires_ms"]),
        }
    frozen = state.get("frozen", {})
    blacklist = state.get("blacklist", [])
    visible = [license_id] if license_id is not None else sorted(set(frozen) | set(blacklist))
    out["freezes"] = [
        {"license_id": lic, "frozen_until": format_ms(frozen[lic]), "active": frozen[lic] > now_ms}
        for lic in visible
        if lic in frozen
    ]
    out["blacklisted_for"] = [lic for lic in visible if lic in blacklist]
    uses = [Use(*row) for row in state.get("uses", [])]
    out["uses"] = [
        {
            "license_id": u.license,
            "store_id": u.store,
            "order_id": u.order,
            "at": format_ms(u.at_ms),
            "verdict": u.verdict,
            "reason": u.reason,
        }
        for u in uses
        if license_id is None or u.license == license_id
    ]
    if license_id is not None:
        out["uses_by_other_licenses"] = sum(1 for u in uses if u.license != license_id)
    return out


def used_entry(number: str, state: State, license_id: str) -> dict[str, Any] | None:
    """One row of GET /licenses/{id}/used: a number bound to the licence, with its fingerprint."""
    binding = state.get("binding")
    if binding is None or binding["license"] != license_id:
        return None
    return {
        "tracking_no": number,
        "carrier_code": binding["carrier"],
        "store_id": binding["store"],
        "order_id": binding["order"],
        "shipped_at": format_ms(binding["shipped_ms"]),
        "fingerprint": fingerprint(binding["carrier"], number, binding["shipped_ms"]),
    }
