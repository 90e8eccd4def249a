"""The compiled build of the decision path (mypyc), and the way back to its Python reference.

`make native` (run by `make install`; `streams.native.main(["build"])`) compiles MODULES in place with mypyc:
next to each source a C extension, which Python imports before the .py, and one shared library,
`streams/_native__mypyc*.so`. The sources stay plain typed Python and the reference: the package
works unchanged where no compiler (or no mypy) is present, only slower.

At import (`streams/__init__.py` calls `select()`) the compiled build is used only when it is
whole (for this interpreter), was built from the sources as they are now (SHA-256 recorded at
build time), and TRACKGUARD_PURE is not "1"; otherwise every module of MODULES loads from its
.py. All or none: compiled modules call each other natively, past sys.modules, so a compiled
processor would keep calling a stale compiled `decide` even if rules.py were loaded from source.

`reference(name)` imports a module's Python source under the package alias `trackguard_reference`
beside the compiled one, so a differential test can run both builds on the same input in one
process (tests/test_native.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
# The pure core and the processor: what one event's decision runs through.
MODULES = (
    "streams.core.carriers",
    "streams.core.check_digits",
    "streams.core.commands",
    "streams.core.deadletters",
    "streams.core.events",
    "streams.core.normalize",
    "streams.core.performance",
    "streams.core.queries",
    "streams.core.reconcile",
    "streams.core.reuse",
    "streams.core.rules",
    "streams.core.state",
    "streams.partitioning",
    "streams.processor",
)
GROUP = "streams._native"  # the shared library: streams/_native__mypyc.<abi>.so, inside the package
BUILT_FROM = PACKAGE_DIR / "_native_sources.json"  # module -> SHA-256 of the source compiled
REFERENCE = "trackguard_reference"  # alias package of the Python sources, for differential tests

# What select() found: "compiled", "python", or "python (...why...)"; logged by the worker at start.
build = "python"


def _source(module: str) -> Path:
    return PROJECT_DIR.joinpath(*module.split(".")).with_suffix(".py")


def _digests() -> dict[str, str]:
    return {m: hashlib.sha256(_source(m).read_bytes()).hexdigest() for m in MODULES}


def _compiled_parts() -> list[bool]:
    """Whether each part of a build for this interpreter (its ABI suffix) is there: the shared
    library, then every module's extension."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    parts = [
        PACKAGE_DIR / f"_native__mypyc{suffix}",
        *(_source(m).with_name(_source(m).stem + suffix) for m in MODULES),
    ]
    return [part.exists() for part in parts]


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the listed `streams` modules, and everything under the alias package, from .py files."""

    def __init__(self, pure: frozenset[str]) -> None:
        self.pure = pure

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.pure:
            return importlib.util.spec_from_file_location(fullname, _source(fullname))
        if fullname != REFERENCE and not fullname.startswith(REFERENCE + "."):
            return None
        real = "streams" + fullname[len(REFERENCE) :]
        package_dir = PROJECT_DIR.joinpath(*real.split("."))
        if package_dir.is_dir():
            return importlib.util.spec_from_file_location(
                fullname, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
            )
        source = _source(real)
        return importlib.util.spec_from_file_location(fullname, source) if source.exists() else None


def choose(pure_asked: bool, parts: list[bool], built_from: object, sources: dict[str, str]) -> tuple[bool, str]:
    """(use the compiled build, why not when it is not and a reason is worth telling)."""
    if pure_asked:
        return False, "TRACKGUARD_PURE=1"
    if not any(parts):
        return False, ""  # never built here: the plain Python package
    if not all(parts):
        return False, "the compiled build is incomplete: make native"
    if built_from != sources:
        return False, "the compiled build is older than its sources: make native"
    return True, ""


def select() -> str:
    """Choose the build before any module of MODULES is imported; returns what was chosen."""
    global build
    parts = _compiled_parts()
    built_from: object = None
    sources: dict[str, str] = {}
    if all(parts):  # only then is there something to hash the sources against (every CLI start)
        try:
            built_from = json.loads(BUILT_FROM.read_text())
        except (OSError, ValueError):
            pass
        sources = _digests()
    use_compiled, reason = choose(os.environ.get("TRACKGUARD_PURE") == "1", parts, built_from, sources)
    build = "compiled" if use_compiled else f"python ({reason})" if reason else "python"
    sys.meta_path.insert(0, _SourceFinder(frozenset() if use_compiled else frozenset(MODULES)))
    return build


def is_compiled(module: ModuleType) -> bool:
    return not (module.__file__ or "").endswith(".py")


def reference(name: str) -> ModuleType:
    """The Python source of `streams.<name>` as `trackguard_reference.<name>`, whatever the build."""
    return importlib.import_module(f"{REFERENCE}.{name}")


def compile_in_place() -> None:
    """Compile MODULES with mypyc next to their sources and record what they were built from."""
    # mypyc comes with mypy (the lint extra); setuptools drives the C compiler.
    script = (
        "import sys\n"
        "from mypyc.build import mypycify\n"
        "from setuptools import setup\n"
        f"setup(name='trackguard-native', ext_modules=mypycify(sys.argv[1:], group_name={GROUP!r},"
        " target_dir='build/mypyc'), script_args=['build_ext', '--inplace', '--build-temp', 'build/mypyc/temp'])\n"
    )
    paths = [str(_source(m).relative_to(PROJECT_DIR)) for m in MODULES]
    BUILT_FROM.unlink(missing_ok=True)  # half a build must not look current
    done = subprocess.run([sys.executable, "-c", script, *paths], cwd=PROJECT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"mypyc failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-1500:]}")
    BUILT_FROM.write_text(json.dumps(_digests(), indent=1, sort_keys=True) + "\n")


def clean() -> None:
    for path in [*PACKAGE_DIR.rglob("*" + importlib.machinery.EXTENSION_SUFFIXES[0]), BUILT_FROM]:
        path.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    """`make native`: ["build"], or ["build", "--optional"] to go on without a compiler."""
    if argv[:1] != ["build"]:
        print("usage: main(['build']) or main(['build', '--optional'])", file=sys.stderr)
        return 2
    try:
        compile_in_place()
    except OSError as exc:
        clean()
        print(f"trackguard: no compiled build ({exc}); the Python reference runs, slower", file=sys.stderr)
        return 0 if "--optional" in argv else 1
    print("trackguard: decision path compiled with mypyc (TRACKGUARD_PURE=1 runs the Python reference)")
    return 0
