"""The protocol cores and the message code are pure: importing them must not
import Twisted (or anything doing I/O at import time)."""

import subprocess
import sys

from tests.conftest import ROOT, ours_env

PURE = [
    "msmtp_twisted.smtp.reply",
    "msmtp_twisted.smtp.client",
    "msmtp_twisted.smtp.persistent",
    "msmtp_twisted.smtp.server",
    "msmtp_twisted.config.parser",
    "msmtp_twisted.config.select",
    "msmtp_twisted.message.headers",
    "msmtp_twisted.message.aliases",
    "msmtp_twisted.auth.mechanisms",
    "msmtp_twisted.auth.choose",
    "msmtp_twisted.net.socks",
]


def test_pure_modules_do_not_import_twisted() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {PURE!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'twisted' or m.startswith('twisted.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=ours_env({"PATH": "/usr/bin:/bin"}), cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
