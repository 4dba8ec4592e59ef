"""bench/library_bench.py still runs: 8 mails per contender (twice the concurrency of
the x4 contenders), plain and STARTTLS+AUTH, one start-up run per command.  It
measures nothing here; it keeps the harness from rotting (every contender that can
run sends every mail, and the sink counts them)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT, require

SECTIONS = ("plain", "starttls")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "library_bench.py"), "--mails", "8",
         "--rounds", "1", "--startup-runs", "1", "--timeout", "60", "--json", str(out)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mails/s" in proc.stdout and "start-up" in proc.stdout, proc.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_every_contender_sends_every_mail(bench: dict[str, Any]) -> None:
    for section in SECTIONS:
        rows = bench["throughput"][section]
        for name in ("raw", "smtplib", "ours-send_mail", "ours-send_mail-x4"):
            assert rows[name]["mails_per_s"] > 0, (section, rows[name])
            assert 0 < rows[name]["peak_rss_mib"] < 200, (section, rows[name])
        for name, row in rows.items():
            assert "error" not in row, (section, name, row)
            # skipped only for a missing package or an API that does not exist yet
            assert "mails_per_s" in row or "skipped" in row, (section, name, row)


@pytest.mark.extras
def test_aiosmtplib(bench: dict[str, Any]) -> None:
    require(importlib.util.find_spec("aiosmtplib") is not None,
            "aiosmtplib (pip install .[bench])")
    for section in SECTIONS:
        assert bench["throughput"][section]["aiosmtplib"]["mails_per_s"] > 0


def test_startup(bench: dict[str, Any]) -> None:
    for section in SECTIONS:
        rows = bench["startup"][section]
        for name in ("floor", "module", "script"):
            assert rows[name]["median_ms"] > 0, (section, rows[name])
        assert rows["floor"]["ratio_to_floor"] == 1


def test_startup_reference(bench: dict[str, Any], real_msmtp: str) -> None:
    for section in SECTIONS:
        assert bench["startup"][section]["real"]["median_ms"] > 0
