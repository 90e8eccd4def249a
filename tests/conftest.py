"""Session-wide: say loudly when the real-Kafka tier or the browser tests did not run."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {str(r.longrepr[2]) for r in skipped if isinstance(getattr(r, "longrepr", None), tuple)}
    kafka = sorted(r for r in reasons if "KAFKA TIER SKIPPED" in r)
    if kafka:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            f"THE REAL-KAFKA TIER WAS SKIPPED ({sum('KAFKA TIER' in str(r.longrepr) for r in skipped)} "
            f"tests): {kafka[0].split(': ', 1)[-1]}",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(
            "Install OpenJDK 17+ and Maven to run it; CI requires it (TRACKGUARD_REQUIRE_KAFKA=1).", red=True, bold=True
        )
        terminalreporter.write_line(bar, red=True, bold=True)
    browser = sorted(r for r in reasons if "BROWSER TESTS SKIPPED" in r)
    if browser:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            f"THE BROWSER TESTS WERE SKIPPED: {browser[0].split(': ', 1)[-1]}", red=True, bold=True
        )
        terminalreporter.write_line(
            "They install Debian's chromium and chromium-driver themselves when run as root with apt-get; "
            "CI requires them (TRACKGUARD_REQUIRE_BROWSER=1).",
            red=True,
            bold=True,
        )
        terminalreporter.write_line(bar, red=True, bold=True)
