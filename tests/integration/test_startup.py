"""msmtp runs once per mail: --pretend must not pay for Twisted's mail code,
OpenSSL, ldap3 or keyring (checked with ``python -X importtime``)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, ours_env

HEAVY = ("twisted.mail", "twisted.internet.reactor", "ldap3", "keyring", "OpenSSL",
         "cryptography", "twisted.names")


def _imported_modules(args: list[str], rc_text: str, tmp_path) -> set[str]:
    rc = tmp_path / "rc"
    rc.write_text(rc_text)
    rc.chmod(0o600)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "msmtp_twisted", "-C", str(rc), *args],
        input=b"From: a@b\nSubject: x\n\nbody\n",
        capture_output=True,
        env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}),
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    names = set()
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


TYPICAL = """\
defaults
tls on
tls_trust_file /etc/ssl/certs/ca-certificates.crt
logfile ~/.msmtp.log

account personal
host smtp.example.com
port 587
from joe@example.com
auth on
user joe
passwordeval echo secret

account default : personal
"""


def test_pretend_imports_nothing_heavy(tmp_path) -> None:
    names = _imported_modules(["-P", "rcpt@example.org"], TYPICAL, tmp_path)
    assert "msmtp_twisted.cli" in names  # the measurement works
    heavy = sorted(n for n in names if n.startswith(HEAVY))
    assert heavy == []


def test_usage_error_imports_nothing_heavy(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "msmtp_twisted", "--bogus"],
        capture_output=True, env=ours_env({"PATH": "/usr/bin:/bin"}), cwd=ROOT, timeout=30,
    )
    assert proc.returncode == 64
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "msmtp_twisted.cli" in names
    assert not [n for n in names if n.startswith(("twisted", "OpenSSL", "ldap3", "keyring"))]
