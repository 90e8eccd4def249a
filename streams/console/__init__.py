"""The web console: static files in this package, served by every worker at `/` and `/console/*`.

Plain HTML, CSS and JavaScript with no build step and nothing fetched from elsewhere: a worker
serves it on a network without internet access. It signs in with an API token, calls the same
HTTP API as the CLI (any worker answers: requests are routed to the owner) and reads its
Simplified Chinese and English words from `streams/i18n` (served here as `/console/<name>.json`).
"""

from __future__ import annotations

from importlib import resources

from .. import i18n

FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
JSON = "application/json; charset=utf-8"


def asset(name: str) -> tuple[bytes, str] | None:
    """A file of the console and its content type, or None: only the files named here are served."""
    if name in FILES:
        return resources.files(__package__).joinpath(name).read_bytes(), FILES[name]
    stem, _, ext = name.partition(".")
    if ext == "json" and stem in i18n.CATALOGUES:
        return i18n.raw(stem), JSON
    return None
