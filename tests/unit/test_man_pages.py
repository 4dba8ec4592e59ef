"""The generated reference (issue 13, items 2 and 3): the man pages msmtp(1) and
msmtpd(8) and the Markdown option pages, rendered from the command tables.

The committed files (docs/commands.md, docs/man/msmtp.1, docs/man/msmtpd.8)
must be what ``python -m msmtp_twisted.config.reference --write`` writes; the
roff must be well formed (man(7) macros only, ``-`` escaped, no text line
that roff would read as a request).  How ``man`` renders the installed pages is
tests/integration/test_man_install.py.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from msmtp_twisted.config.commands import COMMANDS, OPTIONS, SECTIONS
from msmtp_twisted.config.reference import (
    GENERATED_FILES,
    render_man_page,
    render_msmtp_options,
    render_msmtpd_options,
    render_reference,
    write_generated,
)
from msmtp_twisted.daemon.options import OPTIONS as MSMTPD_OPTIONS
from tests.conftest import ROOT

DOCS = ROOT / "docs"
MACROS = {".TH", ".SH", ".SS", ".TP", ".PP", ".br", '.\\"'}


@pytest.mark.parametrize("name", GENERATED_FILES)
def test_committed_generated_files_are_current(name: str, tmp_path) -> None:
    write_generated(tmp_path)
    assert (DOCS / name).read_text() == (tmp_path / name).read_text(), (
        f"docs/{name} differs from the tables: run "
        "python -m msmtp_twisted.config.reference --write"
    )


def test_write_regenerates_every_file(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "msmtp_twisted.config.reference", "--write", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    for name in GENERATED_FILES:
        assert (tmp_path / name).is_file()
    assert (tmp_path / "man" / "msmtp.1").read_text() == render_man_page("msmtp")
    # without arguments it prints docs/commands.md, as it always did
    printed = subprocess.run(
        [sys.executable, "-m", "msmtp_twisted.config.reference"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert printed.stdout == render_reference()


def _roff_text(text: str) -> str:
    """What a description becomes in roff."""
    return text.replace("\\", "\\e").replace("-", "\\-")


@pytest.mark.parametrize("program,section", [("msmtp", "1"), ("msmtpd", "8")])
def test_man_page_is_well_formed_roff(program: str, section: str) -> None:
    page = render_man_page(program)
    lines = page.splitlines()
    assert lines[1].startswith(f".TH {program.upper()} {section} ")
    headings = [line[4:] for line in lines if line.startswith(".SH ")]
    expected = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"]
    expected += ["CONFIGURATION"] if program == "msmtp" else []
    assert headings == [*expected, "EXIT STATUS", "FILES", "SEE ALSO"]
    for line in lines:
        if line.startswith((".", "'")):
            assert line.split(" ")[0] in MACROS, f"not a man(7) macro: {line!r}"
            continue
        # a "-" that is not "\-" would be a hyphen, not the minus sign of an option
        assert not re.search(r"(?<!\\)-", line), f"unescaped '-': {line!r}"
    assert page.endswith("\n") and "\n\n" not in page


def test_roff_escapes_backslashes_and_leading_dots() -> None:
    from msmtp_twisted.config.reference import _roff

    assert _roff("-f a\\b") == "\\-f a\\eb"
    assert _roff(".hidden\n'quote\nplain") == "\\&.hidden\n\\&'quote\nplain"


def test_man_page_of_an_unknown_program() -> None:
    with pytest.raises(ValueError):
        render_man_page("sendmail")


def test_msmtp_page_has_every_option_and_command() -> None:
    page = render_man_page("msmtp")
    for row in OPTIONS:
        assert f".TP\n\\fB{_roff_text(row.usage)}\\fR\n" in page, row.usage
    for cmd in COMMANDS:
        assert f".TP\n\\fB{_roff_text(cmd.name)}\\fR" in page, cmd.name
    for section in SECTIONS:
        assert f".SS {section}\n" in page
    for special in ("defaults", "account", "eval"):
        assert f".TP\n\\fB{special}\\fR" in page
    for code in ("64 EX_USAGE", "69 EX_UNAVAILABLE", "78 EX_CONFIG"):
        assert code in page


def test_msmtpd_page_has_every_option() -> None:
    page = render_man_page("msmtpd")
    for opt in MSMTPD_OPTIONS:
        assert f".TP\n\\fB\\-\\-{_roff_text(opt.name)}" in page, opt.name
        assert _roff_text(opt.description.split(" ")[0]) in page


def test_markdown_pages_have_every_option_and_command() -> None:
    commands = render_reference()
    for cmd in COMMANDS:
        assert f"### `{cmd.name}" in commands
        assert f"| `{cmd.name}`" in commands
    options = render_msmtp_options()
    for row in OPTIONS:
        assert f"### `{row.usage}`" in options
    daemon = render_msmtpd_options()
    for opt in MSMTPD_OPTIONS:
        assert f"## `--{opt.name}" in daemon


def test_renderers_need_no_twisted() -> None:
    code = (
        "import sys\n"
        "from msmtp_twisted.config import reference as r\n"
        "r.render_reference(); r.render_msmtp_options(); r.render_msmtpd_options()\n"
        "r.render_man_page('msmtp'); r.render_man_page('msmtpd')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('twisted', 'OpenSSL', 'zope')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.stdout == "[]\n", result.stderr
