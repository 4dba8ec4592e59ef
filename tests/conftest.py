"""Shared test helpers.

Tests that need a system package (the real msmtp, Postfix, ...) skip with a loud
reason on a developer machine but fail when ``CI=true``: CI installs them all.
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


def ours_command() -> list[str]:
    """How to run our msmtp: the module, from this checkout."""
    return [sys.executable, "-m", "msmtp_twisted"]


def ours_env(env: dict[str, str]) -> dict[str, str]:
    new = dict(env)
    new["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return new
