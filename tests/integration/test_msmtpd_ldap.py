"""``--auth-ldap``: a real slapd (Debian's), started here with one user
(``slapd`` fixture, :mod:`tests.servers.slapd`).

slapd listens on 127.0.0.1 with plain LDAP (StartTLS offered) and LDAPS, with a
certificate from the test PKI; the checker must verify it (``x-cafile``).
"""

from __future__ import annotations

import base64
import shutil
import smtplib
from typing import Any

import pytest

from msmtp_twisted.daemon.checkers import LDAPChecker
from tests.conftest import require
from tests.servers.msmtpd import Recorder, converse
from tests.servers.ports import free_port
from tests.servers.slapd import SUFFIX, Slapd


def urls(s: Slapd) -> dict[str, str]:
    tmpl = f"uid=%u,ou=people,{SUFFIX}"
    return {
        "template": f"ldap://127.0.0.1:{s.port}/{tmpl}",
        "search": f"ldap://127.0.0.1:{s.port}/ou=people,{SUFFIX}??sub?(uid=%u)",
        "search as admin": f"ldap://127.0.0.1:{s.port}/ou=people,{SUFFIX}??one?(uid=%u)?"
                           f"bindname=cn=admin%2c{SUFFIX.replace(',', '%2c')}",
        "ldaps": f"ldaps://localhost:{s.tls_port}/{tmpl}????x-cafile={s.cafile}",
        "starttls": f"ldap://localhost:{s.port}/{tmpl}????starttls,x-cafile={s.cafile}",
    }


@pytest.mark.parametrize("kind", ["template", "search", "search as admin", "ldaps",
                                  "starttls"])
def test_checker_right_and_wrong_passwords(slapd: Slapd, kind: str) -> None:
    checker = LDAPChecker(urls(slapd)[kind], bind_password="adminpw")
    assert checker.check_sync("alice", b"alice-pw") is True
    assert checker.check_sync("alice", b"wrong") is False
    assert checker.check_sync("alice", b"") is False
    assert checker.check_sync("mallory", b"alice-pw") is False
    assert checker.check_sync("*", b"alice-pw") is False
    assert checker.check_sync("alice,ou=people", b"alice-pw") is False


def test_tls_certificate_is_verified(slapd: Slapd) -> None:
    checker = LDAPChecker(f"ldaps://localhost:{slapd.tls_port}/uid=%u,ou=people,{SUFFIX}")
    with pytest.raises(Exception):  # noqa: B017 - the system trust store knows no test CA
        checker.check_sync("alice", b"alice-pw")


def test_msmtpd_with_ldap(slapd: Slapd, msmtpd: Any, recorder: Recorder) -> None:
    d = msmtpd([f"--command={recorder.command()}", f"--auth-ldap={urls(slapd)['template']}"])
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as smtp:
        smtp.login("alice", "alice-pw")
        smtp.sendmail("alice@example.com", ["b@example.org"], b"via ldap\r\n")
    assert len(recorder.wait(1)) == 1
    wrong = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0nope") + b"\r\n"
    assert converse(d.port, [b"EHLO x\r\n", wrong])[-1] == b"535 Authentication failed\r\n"


def test_ldap_server_down_is_a_temporary_failure(msmtpd: Any, recorder: Recorder) -> None:
    port = free_port()  # nobody listens there
    d = msmtpd([f"--command={recorder.command()}",
                f"--auth-ldap=ldap://127.0.0.1:{port}/uid=%u,dc=x"])
    token = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0pw") + b"\r\n"
    assert converse(d.port, [b"EHLO x\r\n", token])[-1] == (
        b"454 Temporary authentication failure\r\n")


def test_slapd_is_debians() -> None:
    require(shutil.which("slapd", path="/usr/sbin") is not None, "slapd; apt-get install slapd")
