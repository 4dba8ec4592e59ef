"""msmtp runs once per mail: --pretend must not pay for Twisted's mail code,
OpenSSL, ldap3 or keyring, and a mail over STARTTLS with AUTH PLAIN not for what
only other paths need (checked with ``python -X importtime``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, ours_env

HEAVY = ("twisted.mail", "twisted.internet.reactor", "ldap3", "keyring", "OpenSSL",
         "cryptography", "twisted.names")


def _imported_modules(args: list[str], rc_text: str, tmp_path) -> set[str]:
    """Modules imported (or whose import was tried) by one msmtp run."""
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


# What the STARTTLS + AUTH PLAIN path does not need (docs/performance.md,
# "Start-up"): Twisted's old SSL API and its name checks, which the bare
# `from twisted.internet import reactor, ssl` loads (our tls/verify.py decides
# plain names and IP addresses itself), cryptography's serialization (the trust
# file goes in as PEM), and what only other paths use: Twisted's mail and DNS
# code, endpoints, ldap3, keyring, mail composing, netrc, SOCKS, the drop-in,
# and http.cookiejar's imports and the other modules that Twisted or the standard
# library bind and nothing here uses (protocol/reactor.py).
NOT_ON_STARTTLS_PATH = (
    "twisted.internet._sslverify", "twisted.internet._service_identity",
    "service_identity", "idna", "cryptography.hazmat.primitives.serialization",
    "twisted.mail", "twisted.names", "twisted.internet.endpoints", "ldap3", "keyring",
    "email.mime", "email.generator", "netrc", "secrets",
    "msmtp_twisted.protocol.compat", "msmtp_twisted.auth.keyring", "msmtp_twisted.net.socks",
    # what twisted.python.compat's http.cookiejar loads (protocol/reactor.py)
    "urllib.request", "http.client", "email.parser", "asyncio.sslproto", "locale", "pickle",
    "textwrap",
)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls_auth_plain_imports_only_what_it_needs(tmp_path, host) -> None:
    from tests.servers.recording import RecordingServer
    from tests.servers.tlspki import PKI

    pki = PKI(tmp_path / "pki")
    ca = pki.ca()
    leaf = pki.leaf(ca)  # DNS localhost, IP 127.0.0.1
    with RecordingServer(tls_context=leaf.server_context(),
                         auth={"user": "secret"}) as server:
        rc = (f"account default\nhost {host}\nport {server.port}\nfrom a@example.com\n"
              f"tls on\ntls_starttls on\ntls_trust_file {ca.cert}\n"
              "auth plain\nuser user\npassword secret\n")
        names = _imported_modules(["rcpt@example.org"], rc, tmp_path)
        assert server.session.auth == [("PLAIN", "user", "secret")]
        assert len(server.messages) == 1
    assert "msmtp_twisted.tls.verify" in names  # the certificate was checked
    assert "twisted.protocols.tls" in names
    unneeded = sorted(n for n in names if n.startswith(NOT_ON_STARTTLS_PATH))
    assert unneeded == []


def test_plain_mail_does_not_load_cookiejar(tmp_path) -> None:
    from tests.servers.recording import RecordingServer

    with RecordingServer() as server:
        rc = f"account default\nhost 127.0.0.1\nport {server.port}\nfrom a@example.com\n"
        names = _imported_modules(["rcpt@example.org"], rc, tmp_path)
        assert len(server.messages) == 1
    assert "twisted.internet.reactor" in names
    assert not [n for n in names if n.startswith(("urllib.request", "http.client", "OpenSSL"))]


def test_deferred_and_blocked_modules_still_work(tmp_path) -> None:
    """The reactor is imported without twisted.internet.ssl, which stays importable;
    http.cookiejar loads when it is used."""
    code = ("from msmtp_twisted.protocol.reactor import defer_unused_modules, "
            "without_twisted_ssl\n"
            "import sys\n"
            "defer_unused_modules()\n"
            "without_twisted_ssl()\n"
            "assert 'urllib.request' not in sys.modules\n"
            "from twisted.python.compat import cookielib\n"
            "from http.cookiejar import CookieJar\n"
            "assert 'urllib.request' in sys.modules\n"
            "assert cookielib.CookieJar is CookieJar\n"
            "assert cookielib.DefaultCookiePolicy is sys.modules['http.cookiejar']"
            ".DefaultCookiePolicy\n"
            "CookieJar()\n"
            "import asyncio.sslproto, http.cookiejar, locale, pickle, textwrap\n"
            "assert http.cookiejar.CookieJar is CookieJar\n"
            "assert 'pickle' in sys.modules and '__file__' not in vars(pickle)\n"
            "assert pickle.loads(pickle.dumps([1])) == [1]\n"
            "assert sys.modules['pickle'] is not pickle and vars(pickle)['__file__']\n"
            "assert isinstance(locale.getpreferredencoding(False), str)\n"
            "assert textwrap.dedent('  x') == 'x'\n"
            "assert asyncio.sslproto.SSLProtocol\n"
            "assert 'twisted.internet.reactor' in sys.modules\n"
            "assert 'twisted.internet._sslverify' not in sys.modules\n"
            "from twisted.internet import reactor, ssl\n"
            "assert ssl.optionsForClientTLS\n"
            "from twisted.internet.interfaces import IReactorSSL\n"
            "assert IReactorSSL.providedBy(reactor)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}),
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
