"""Shared test helpers.

Tests that need a system package (the real msmtp, Postfix, ...) skip with a loud
reason on a developer machine but fail when ``CI=true``: CI installs them all.

Markers (registered in setup.cfg): ``reference`` (compares with msmtp 1.8.23 or Debian's
msmtpd), ``cc`` (builds C code), ``root``, ``extras`` (the optional
[gssapi]/[ntlm]/[bench]/[buildbot] packages) and ``system`` (Debian packages such as
Postfix). Tests that use the fixtures in ``_FIXTURE_MARKERS`` get those markers here;
the others carry them explicitly. Such tests live in tests/integration: tests/unit runs
with ``pip install .[test]`` alone, and a marked test there is a collection error. At
the end of a run every skipped test is listed with its reason
(``pytest_terminal_summary``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# recording/hostile SMTP servers, delay proxy, msmtp runners
pytest_plugins = ["tests.servers.fixtures"]
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (developer box) or fail (CI) when a system dependency is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI: {reason}")
    pytest.skip(f"MISSING SYSTEM DEPENDENCY: {reason}")


@pytest.fixture(scope="session")
def real_msmtp() -> str:
    path = shutil.which("msmtp", path="/usr/bin:/usr/local/bin")
    require(path is not None and path.startswith("/usr/bin"),
            "Debian's msmtp 1.8.23 (/usr/bin/msmtp); apt-get install msmtp")
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    require("1.8.23" in out.splitlines()[0], f"msmtp 1.8.23, found: {out.splitlines()[:1]}")
    return path


#: fixtures whose tests need what the markers say (see the module docstring)
_FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "real_msmtp": ("reference",),
    "debian_msmtpd": ("reference",),
    "mailservers": ("root", "system"),
    "exim_server": ("root", "system"),
    "kerberos_servers": ("root", "system", "extras"),
    "krb": ("root", "system", "extras"),  # test_auth_gssapi_ntlm.py: kerberos_servers
    "slapd": ("system",),
    "secret_service": ("system",),
    "private_bus": ("system",),  # test_keyring.py: dbus-daemon
}
#: markers a test in tests/unit must not carry
_NOT_UNIT = ("reference", "cc", "root", "extras", "system")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit = ROOT / "tests" / "unit"
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for name in _FIXTURE_MARKERS.get(fixture, ()):
                item.add_marker(name)
        if Path(item.path).is_relative_to(unit):
            bad = [m for m in _NOT_UNIT if item.get_closest_marker(m)]
            if bad:
                raise pytest.UsageError(
                    f"{item.nodeid} is marked {bad}: such tests live in tests/integration "
                    "(tests/unit must pass with `pip install .[test]` alone)")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Name every skipped test, grouped by reason (``-ra`` only counts them by line)."""
    by_reason: dict[str, dict[str, list[str]]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        path, _, name = report.nodeid.partition("::")
        by_reason.setdefault(reason, {}).setdefault(path, []).append(name)
    if not by_reason:
        return
    total = sum(len(n) for tests in by_reason.values() for n in tests.values())
    terminalreporter.section(f"{total} skipped tests, by reason")
    for reason, modules in sorted(by_reason.items(), key=lambda kv: kv[0]):
        count = sum(len(names) for names in modules.values())
        terminalreporter.write_line(f"{reason} ({count}):")
        for path, names in sorted(modules.items()):
            functions: dict[str, int] = {}
            for name in names:
                base = name.partition("[")[0]
                functions[base] = functions.get(base, 0) + 1
            listed = ", ".join(f"{f} x{n}" if n > 1 else f for f, n in functions.items())
            terminalreporter.write_line(f"    {path}: {listed}")


def ours_command() -> list[str]:
    """How to run our msmtp: the module, from this checkout."""
    return [sys.executable, "-m", "msmtp_twisted"]


def ours_env(env: dict[str, str]) -> dict[str, str]:
    new = dict(env)
    new["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return new
