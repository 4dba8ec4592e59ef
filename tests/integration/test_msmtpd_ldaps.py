"""``--auth-ldap`` over TLS on every supported Python: our certificate checks, not ldap3's.

ldap3 2.9.1 checks the server's name with ``ssl.match_hostname``, which Python
3.12 removed (ldap3 then uses an old copy that knows no IP addresses).  The
daemon tests here run the real msmtpd in a Python from which
``ssl.match_hostname`` has been deleted before ldap3 is imported, as on 3.12+,
with a tripwire in place of ldap3's name check; they talk SMTP AUTH to it,
and it binds to a real slapd over LDAPS or StartTLS with a certificate made
here (:mod:`tests.servers.tlspki`).  A refused certificate must give the
client ``454`` (a temporary failure) and the log one line that says why.

The same tests pass on the interpreters themselves (3.12, 3.13): see
docs/msmtpd.md, *Python versions*.
"""

from __future__ import annotations

import base64
import smtplib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msmtp_twisted.daemon.checkers import LDAPChecker
from tests.servers.msmtpd import MsmtpdProcess, Recorder, converse
from tests.servers.slapd import SUFFIX, Slapd, start_slapd
from tests.servers.tlspki import PKI

TEMPLATE = f"uid=%u,ou=people,{SUFFIX}"
OTHER_NAME = "ldap.example.test"  # resolves nowhere: only in the second slapd's certificate

# msmtpd as on Python 3.12+: no ssl.match_hostname when ldap3 is imported.
WITHOUT_MATCH_HOSTNAME = '''
import runpy, ssl, sys

if hasattr(ssl, "match_hostname"):  # Python 3.11; 3.12 removed it
    del ssl.match_hostname
import ldap3.core.tls


def tripwire(cert, hostname):
    sys.stderr.write("TRIPWIRE: ldap3 checked the certificate name\\n")
    sys.stderr.flush()
    raise AssertionError("ldap3's own name check ran")


ldap3.core.tls.match_hostname = tripwire
assert not hasattr(ssl, "match_hostname")
sys.argv[0] = "msmtpd"
runpy.run_module("msmtp_twisted.daemon", run_name="__main__", alter_sys=True)
'''

AUTH_OK = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0alice-pw") + b"\r\n"
TEMPORARY = b"454 Temporary authentication failure\r\n"


@pytest.fixture(scope="module")
def slapd_other(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """Certificate for ldap.example.test only (no localhost, no IP address); ``slapd``
    (for localhost and 127.0.0.1) is a shared fixture."""
    yield from start_slapd(tmp_path_factory, "slapd-other", dns=[OTHER_NAME], ips=[])


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA that signed neither slapd's certificate."""
    return str(PKI(tmp_path_factory.mktemp("other-pki")).ca("Unrelated CA").cert)


def ldaps(host: str, s: Slapd, cafile: str | None) -> str:
    ext = f"????x-cafile={cafile}" if cafile else ""
    return f"ldaps://{host}:{s.tls_port}/{TEMPLATE}{ext}"


def starttls(host: str, s: Slapd, cafile: str) -> str:
    return f"ldap://{host}:{s.port}/{TEMPLATE}????starttls,x-cafile={cafile}"


class Msmtpd:
    """The real msmtpd without ssl.match_hostname, logging to a file."""

    def __init__(self, daemon: MsmtpdProcess, recorder: Recorder, log: Path) -> None:
        self.daemon, self.recorder, self.log = daemon, recorder, log

    def stop(self) -> tuple[str, str]:
        out, err = self.daemon.stop()
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return log, err


@pytest.fixture
def msmtpd_312(msmtpd: Any, recorder: Recorder, tmp_path: Path) -> Any:
    """``start(url)``: msmtpd as on Python 3.12+ (:data:`WITHOUT_MATCH_HOSTNAME`) with
    ``--auth-ldap=url``, an :class:`Msmtpd`."""
    boot = tmp_path / "msmtpd-without-match-hostname.py"
    boot.write_text(WITHOUT_MATCH_HOSTNAME)
    log = tmp_path / "msmtpd.log"

    def start(url: str) -> Msmtpd:
        d = msmtpd([f"--command={recorder.command()}", f"--log={log}", f"--auth-ldap={url}"],
                   [sys.executable, str(boot)])
        return Msmtpd(d, recorder, log)

    return start


# -- the LDAPS path without ssl.match_hostname ------------------------------------------

@pytest.mark.parametrize("kind", ["ldaps by name", "ldaps by IP address", "starttls by name",
                                  "starttls by IP address"])
def test_msmtpd_ldap_tls_without_ssl_match_hostname(slapd: Slapd, msmtpd_312: Any,
                                                    kind: str) -> None:
    host = "127.0.0.1" if "IP" in kind else "localhost"
    url = (ldaps if kind.startswith("ldaps") else starttls)(host, slapd, slapd.cafile)
    m = msmtpd_312(url)
    with smtplib.SMTP("127.0.0.1", m.daemon.port, timeout=20) as smtp:
        smtp.login("alice", "alice-pw")
        smtp.sendmail("alice@example.com", ["b@example.org"], b"over LDAP with TLS\r\n")
    assert len(m.recorder.wait(1)) == 1
    wrong = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0nope") + b"\r\n"
    assert converse(m.daemon.port, [b"EHLO x\r\n", wrong], timeout=20)[-1] == (
        b"535 Authentication failed\r\n")
    log, err = m.stop()
    assert "TRIPWIRE" not in err
    assert "cannot check credentials" not in log


# -- refused certificates: 454, and a log line that says why ------------------------------

def refused(slapd: Slapd, slapd_other: Slapd, other_ca: str) -> dict[str, tuple[str, str]]:
    """kind -> (URL, the reason msmtpd must log)."""
    o = slapd_other
    wrong = "is not valid for {host} (it is for DNS:" + OTHER_NAME + ")"
    return {
        "ldaps, wrong host name": (
            ldaps("localhost", o, o.cafile),
            f"certificate of LDAP server localhost:{o.tls_port} "
            + wrong.format(host="localhost")),
        "ldaps, wrong IP address": (
            ldaps("127.0.0.1", o, o.cafile),
            f"certificate of LDAP server 127.0.0.1:{o.tls_port} "
            + wrong.format(host="127.0.0.1")),
        "starttls, wrong host name": (
            starttls("localhost", o, o.cafile),
            f"certificate of LDAP server localhost:{o.port} " + wrong.format(host="localhost")),
        "ldaps, untrusted CA": (
            ldaps("localhost", slapd, other_ca),
            f"certificate of LDAP server localhost:{slapd.tls_port} is not trusted "
            f"(the CAs in {other_ca}): unable to get local issuer certificate"),
        "ldaps by IP address, untrusted CA": (
            ldaps("127.0.0.1", slapd, other_ca),
            f"certificate of LDAP server 127.0.0.1:{slapd.tls_port} is not trusted "
            f"(the CAs in {other_ca}): unable to get local issuer certificate"),
        "ldaps, system trust store": (
            ldaps("localhost", slapd, None),
            f"certificate of LDAP server localhost:{slapd.tls_port} is not trusted "
            "(the system's trust store): unable to get local issuer certificate"),
    }


REFUSED = ["ldaps, wrong host name", "ldaps, wrong IP address", "starttls, wrong host name",
           "ldaps, untrusted CA", "ldaps by IP address, untrusted CA",
           "ldaps, system trust store"]


@pytest.mark.parametrize("kind", REFUSED)
def test_msmtpd_refuses_certificate(slapd: Slapd, slapd_other: Slapd, other_ca: str,
                                    msmtpd_312: Any, kind: str) -> None:
    url, reason = refused(slapd, slapd_other, other_ca)[kind]
    m = msmtpd_312(url)
    assert converse(m.daemon.port, [b"EHLO x\r\n", AUTH_OK], timeout=20)[-1] == TEMPORARY
    log, err = m.stop()
    assert f"cannot check credentials: {reason}\n" in log, log
    assert "TRIPWIRE" not in err
    assert "Traceback" not in err and "Traceback" not in log


@pytest.mark.parametrize("kind", REFUSED)
def test_checker_refuses_certificate(slapd: Slapd, slapd_other: Slapd, other_ca: str,
                                     kind: str) -> None:
    """The same in this process (the interpreter's own ssl module)."""
    url, reason = refused(slapd, slapd_other, other_ca)[kind]
    with pytest.raises(OSError) as info:
        LDAPChecker(url, timeout=20).check_sync("alice", b"alice-pw")
    assert str(info.value) == reason


def test_checker_tls_to_a_plain_ldap_port(slapd: Slapd) -> None:
    """Not TLS at all: the handshake fails, and the message says so."""
    url = f"ldaps://localhost:{slapd.port}/{TEMPLATE}????x-cafile={slapd.cafile}"
    with pytest.raises(OSError) as info:
        LDAPChecker(url, timeout=20).check_sync("alice", b"alice-pw")
    assert str(info.value).startswith(f"TLS handshake with LDAP server localhost:{slapd.port} "
                                      "failed: "), str(info.value)
