"""``pip install`` puts msmtp(1) and msmtpd(8) where ``man`` finds them, and
``man`` shows every option and every msmtprc command (issue 13, item 3).

A real, non-editable ``pip install --no-deps`` of a copy of the source tree (so
that the build leaves nothing in the worktree) into a new virtual environment:
never ``--prefix`` from the test's own environment, where pip would first
uninstall the project from it.  Then ``man -w`` must resolve both pages, with
the venv's bin/ on PATH (man-db looks beside each PATH entry) and with
``MANPATH=PREFIX/share/man``, and ``man -l`` must render them with every option
(msmtp and msmtpd) and every configuration command as a tag line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from msmtp_twisted.config.commands import COMMANDS, OPTIONS
from msmtp_twisted.config.reference import SPECIAL_COMMANDS
from msmtp_twisted.daemon.options import OPTIONS as MSMTPD_OPTIONS
from tests.conftest import ROOT, require

pytestmark = [pytest.mark.timeout(600), pytest.mark.system]

_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".hypothesis", ".ruff_cache", ".mypy_cache", ".tox", "dropin.cache",
)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(shutil.which("man") is not None, "man (apt-get install man-db groff-base)")
    base = tmp_path_factory.mktemp("maninstall")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED)
    target = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, timeout=240)
    result = subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-input", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return target


def _man(*args: str, manpath: Path | None = None,
         path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "MANWIDTH": "200", "MANPAGER": "cat",
           "PAGER": "cat"}
    env.pop("MANOPT", None)
    env.pop("MANPATH", None)
    if manpath is not None:
        env["MANPATH"] = str(manpath)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["man", *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize("program,section", [("msmtp", "1"), ("msmtpd", "8")])
def test_man_finds_the_installed_page(prefix: Path, program: str, section: str) -> None:
    manpath = prefix / "share" / "man"
    installed = manpath / f"man{section}" / f"{program}.{section}"
    assert installed.is_file()
    assert installed.read_bytes() == (ROOT / "docs" / "man" / installed.name).read_bytes()
    found = _man("-w", section, program, manpath=manpath)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve() == installed.resolve()
    # an activated venv: its bin/ first on PATH, no MANPATH
    path = f"{prefix / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    found = _man("-w", section, program, path=path)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve() == installed.resolve()


def _rendered(path: Path) -> list[str]:
    result = _man("-l", str(path))
    assert result.returncode == 0, result.stderr
    text = re.sub(".\b", "", result.stdout)  # overstrike, should a man-db keep it
    return [line.strip() for line in text.splitlines()]


def _has_tag(lines: list[str], tag: str) -> bool:
    # a short tag shares its line with the start of the paragraph
    return any(line == tag or line.startswith(tag + " ") for line in lines)


def test_msmtp_page_shows_every_option_and_command(prefix: Path) -> None:
    lines = _rendered(prefix / "share" / "man" / "man1" / "msmtp.1")
    assert lines[0].startswith("MSMTP(1)")
    missing = [row.usage for row in OPTIONS if not _has_tag(lines, row.usage)]
    assert missing == []
    for cmd in COMMANDS:
        assert any(line.split(" ")[0] == cmd.name for line in lines), cmd.name
    for name, _, _ in SPECIAL_COMMANDS:
        assert _has_tag(lines, name)
    for heading in ("OPTIONS", "CONFIGURATION", "EXIT STATUS", "FILES", "SEE ALSO"):
        assert heading in lines


def test_msmtpd_page_shows_every_option(prefix: Path) -> None:
    lines = _rendered(prefix / "share" / "man" / "man8" / "msmtpd.8")
    assert lines[0].startswith("MSMTPD(8)")
    for opt in MSMTPD_OPTIONS:
        assert any(line.startswith(f"--{opt.name}=") or line.split(" ")[0] == f"--{opt.name}"
                   for line in lines), opt.name
