"""The manual builds with warnings as errors (issue 13 item 2): every page, the
generated command and option references, and the API reference autodoc makes from
the docstrings, without a reactor installed by the imports."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, require

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("sphinx", "myst_parser"):
        require(importlib.util.find_spec(module) is not None,
                f"{module}: the [docs] extra (./scripts/test installs it)")
    out = tmp_path_factory.mktemp("html")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
                           "-d", str(out / ".doctrees"), "-b", "html", "docs", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    problems = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not problems, proc.stderr
    assert took < 120, f"the manual took {took:.0f} s to build"
    return out


def _text(page: Path) -> str:
    return re.sub(r"<[^>]+>", "", page.read_text())


def test_every_page_is_in_the_manual(html: Path) -> None:
    sources = {p.relative_to(ROOT / "docs").with_suffix("").as_posix()
               for p in (ROOT / "docs").glob("*.md") if p.name != "commands.md"}
    built = {p.relative_to(html).with_suffix("").as_posix() for p in html.glob("*.html")}
    assert sources <= built, sources - built
    index = (html / "index.html").read_text()
    for page in sorted(sources - {"index"}) + ["_generated/commands"]:
        assert f'href="{page}.html"' in index, f"{page} is not in the index's toctree"


def test_command_reference_is_generated_from_the_table(html: Path) -> None:
    from msmtp_twisted.config.commands import COMMANDS

    text = _text(html / "_generated" / "commands.html")
    for command in COMMANDS:
        assert command.name in text, command.name
    for program in ("msmtp", "msmtpd"):
        assert (html / "_generated" / f"{program}-options.html").is_file()


def test_api_reference_documents_the_public_modules(html: Path) -> None:
    api = (html / "api.html").read_text()
    for name in ("msmtp_twisted.api.send_mail", "msmtp_twisted.api.load_account",
                 "msmtp_twisted.errors.MsmtpError", "msmtp_twisted.errors.Cause",
                 "msmtp_twisted.config.account.Account",
                 "msmtp_twisted.protocol.connection.Connection.send",
                 "msmtp_twisted.protocol.pool.Sender.send",
                 "msmtp_twisted.protocol.compat.ESMTPSenderFactory",
                 "msmtp_twisted.sending.prepare_mail",
                 "msmtp_twisted.queue.spool.Spool",
                 "msmtp_twisted.buildbot.MsmtpMailNotifier",
                 "msmtp_twisted.daemon.service.MsmtpdService"):
        assert f'id="{name}"' in api, name


def test_documented_imports_install_no_reactor() -> None:
    """conf.py stands in for twisted.internet.reactor while autodoc imports (the
    drop-in imports twisted.mail.smtp, which installs one); everything else imports
    without it."""
    code = ("import sys\n"
            "import msmtp_twisted.api, msmtp_twisted.errors, msmtp_twisted.sending\n"
            "import msmtp_twisted.config.account, msmtp_twisted.protocol.pool\n"
            "import msmtp_twisted.protocol.connection, msmtp_twisted.queue.spool\n"
            "import msmtp_twisted.queue.flush, msmtp_twisted.daemon.service\n"
            "assert 'twisted.internet.reactor' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_option_references_name_every_option(html: Path) -> None:
    """The built manual names every long option of msmtp and msmtpd."""
    from msmtp_twisted.cli import LONG_OPTIONS
    from msmtp_twisted.daemon.cli import _LONGOPTS

    for program, options in (("msmtp", LONG_OPTIONS), ("msmtpd", _LONGOPTS)):
        text = _text(html / "_generated" / f"{program}-options.html")
        missing = [o.name for o in options if f"--{o.name}" not in text]
        assert not missing, f"{program} options missing from the manual: {missing}"
