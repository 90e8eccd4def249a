"""Check-digit algorithms for parcel tracking numbers.

Every validator in ALGORITHMS takes the WHOLE normalized number (upper-case ASCII
A-Z0-9, no separators), cuts out its own payload and check digit, and returns
False -- never raises -- on a shape it does not expect, so a loose pattern in the
carrier config can only make a number fail, not crash validation.

The algorithms follow jkeen/tracking_number_data v2.0.0 (MIT): CHECKSUM_ALGORITHMS.md
and the "validation.checksum" blocks of couriers/*.json.
"""

from __future__ import annotations

from collections.abc import Callable

_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_FEDEX_WEIGHTS = (1, 3, 7)  # FedEx Express mod 11, cycled from the right of the payload


def _is_digits(s: str) -> bool:
    # str.isdigit() alone also accepts non-ASCII digits such as "²".
    return s.isascii() and s.isdigit()


# --- UPU S10 (postal items worldwide) -------------------------------------------


def s10_check_digit(serial: str) -> int:
    """Check digit of an 8-digit S10 serial: 11 - weighted sum mod 11, 10 -> 0, 11 -> 5."""
    d = serial  # spelled out: this runs for every postal number on the hot path
    c = (
        11
        - (
            8 * int(d[0])
            + 6 * int(d[1])
            + 4 * int(d[2])
            + 2 * int(d[3])
            + 3 * int(d[4])
            + 5 * int(d[5])
            + 9 * int(d[6])
            + 7 * int(d[7])
        )
        % 11
    )
    return 0 if c == 10 else 5 if c == 11 else c


def s10_number(serial: int, prefix: str = "RR", country: str = "CN") -> str:
    """A valid S10 number for an 8-digit serial (taken mod 10^8), e.g. 12345678 -> RR123456785CN."""
    digits = f"{serial % 100_000_000:08d}"
    return f"{prefix}{digits}{s10_check_digit(digits)}{country}"


def s10(number: str) -> bool:
    """AA + 8-digit serial + check digit + AA country, e.g. RR123456785CN."""
    if len(number) != 13 or not _is_digits(number[2:11]):
        return False
    return s10_check_digit(number[2:10]) == int(number[10])


# --- GS1 mod 10 (FedEx Ground, SSCC-18, USPS) -----------------------------------


def gs1_check_digit(payload: str) -> int:
    """GS1 mod 10: weights 3,1,3,1... from the right of the payload; check = -sum mod 10."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    return -total % 10


def gs1_mod10(number: str) -> bool:
    """The whole number is payload + check digit (e.g. SSCC-18)."""
    return len(number) >= 2 and _is_digits(number) and gs1_check_digit(number[:-1]) == int(number[-1])


def _usps_payloads(number: str) -> list[str]:
    """Candidate tracking numbers inside a scanned IMpb barcode.

    A barcode may carry a "420" + ZIP (5 or 9 digits) routing prefix that the check
    digit does not cover. Both ZIP lengths are tried because the split is ambiguous
    for some lengths (the data set's own regexes are ambiguous there too).
    """
    if len(number) < 28 or not number.startswith("420"):
        return [number]
    return [p for p in (number[8:], number[12:]) if len(p) == 20 or (len(p) in (22, 26, 30) and p[0] == "9")]


def usps_mod10(number: str) -> bool:
    """USPS 20-digit and IMpb 22/26/30-digit numbers: GS1 mod 10 after the routing prefix."""
    return _is_digits(number) and any(gs1_mod10(p) for p in _usps_payloads(number))


def usps_legacy(number: str) -> bool:
    """USPS legacy Delivery/Signature Confirmation: the check covers an "91" application
    identifier even when it is not printed (20-digit form)."""
    if not _is_digits(number):
        return False
    return any(
        gs1_mod10("91" + p) if len(p) == 20 else (len(p) == 22 and p.startswith("91") and gs1_mod10(p))
        for p in _usps_payloads(number)
    )


def fedex_mod10_15(number: str) -> bool:
    """FedEx Ground: GS1 mod 10 over the last 15 digits (15-digit Ground and 22-digit "96" labels)."""
    return len(number) in (15, 22) and _is_digits(number) and gs1_mod10(number[-15:])


# --- UPS mod 10 ------------------------------------------------------------------


def ups_check_digit(payload: str) -> int:
    """Letters count as (ord - 3) mod 10; every second character (odd index) doubles."""
    total = 0
    for i, c in enumerate(payload):
        v = int(c) if _is_digits(c) else (ord(c) - 3) % 10
        total += v * 2 if i % 2 else v
    return -total % 10


def ups_1z(number: str) -> bool:
    """1Z + 15 alphanumerics (shipper, service, package) + check digit."""
    if len(number) != 18 or not number.startswith("1Z") or not number[2:].isalnum() or not number.isascii():
        return False
    return _is_digits(number[17]) and ups_check_digit(number[2:17]) == int(number[17])


def ups_waybill(number: str) -> bool:
    """Service letter + 9-digit serial + check digit; the letter is not checked."""
    if len(number) != 11 or not _is_digits(number[1:]):
        return False
    return ups_check_digit(number[1:10]) == int(number[10])


# --- FedEx Express mod 11 --------------------------------------------------------


def _fedex_mod11(payload: str, check: str) -> bool:
    total = sum(int(d) * _FEDEX_WEIGHTS[i % 3] for i, d in enumerate(reversed(payload)))
    return total % 11 % 10 == int(check)


def fedex_mod11_12(number: str) -> bool:
    """FedEx Express 12 digits: weights 3,1,7,... on the first 11, sum mod 11 mod 10."""
    return len(number) == 12 and _is_digits(number) and _fedex_mod11(number[:11], number[11])


def fedex_mod11_34(number: str) -> bool:
    """FedEx 34-digit barcodes (Express, Ground GSN): mod 11 over the last 13 digits + check."""
    return len(number) == 34 and _is_digits(number) and _fedex_mod11(number[20:33], number[33])


def fedex_astra_32(number: str) -> bool:
    """FedEx ASTRA 32 digits: an Express 12-digit number sits at positions 17-28."""
    return len(number) == 32 and _is_digits(number) and _fedex_mod11(number[16:27], number[27])


# --- DHL -------------------------------------------------------------------------


def dhl_mod7(number: str) -> bool:
    """DHL Express 10 (or 11) digits: check = all preceding digits as an integer mod 7."""
    return len(number) in (10, 11) and _is_digits(number) and int(number[:-1]) % 7 == int(number[-1])


ALGORITHMS: dict[str, Callable[[str], bool]] = {
    "s10": s10,
    "gs1_mod10": gs1_mod10,
    "usps_mod10": usps_mod10,
    "usps_legacy": usps_legacy,
    "fedex_mod10_15": fedex_mod10_15,
    "fedex_mod11_12": fedex_mod11_12,
    "fedex_mod11_34": fedex_mod11_34,
    "fedex_astra_32": fedex_astra_32,
    "ups_1z": ups_1z,
    "ups_waybill": ups_waybill,
    "dhl_mod7": dhl_mod7,
}
