"""``--auth-ldap``: a real slapd (Debian's), started here with one user.

slapd listens on 127.0.0.1 with plain LDAP (StartTLS offered) and LDAPS, with a
certificate from the test PKI; the checker must verify it (``x-cafile``).
"""

from __future__ import annotations

import base64
import os
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msmtp_twisted.daemon.checkers import LDAPChecker
from tests.conftest import require
from tests.integration.test_msmtpd import OURS, Daemon, Recorder, converse
from tests.servers.ports import free_port
from tests.servers.tlspki import PKI

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=com"


class Slapd:
    """``dns``/``ips``: the names in slapd's certificate (default localhost, 127.0.0.1)."""

    def __init__(self, tmp: Path, *, dns: list[str] | None = None,
                 ips: list[str] | None = None) -> None:
        pki = PKI(tmp / "pki")
        self.pki = pki
        ca = pki.ca("LDAP Test CA")
        leaf = pki.leaf(ca, dns[0] if dns else "localhost", dns=dns, ips=ips)
        self.cafile = str(ca.cert)
        db = tmp / "db"
        db.mkdir()
        # slapd (often running as root here) must read the key
        os.chmod(leaf.key, 0o644)
        conf = tmp / "slapd.conf"
        conf.write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {tmp}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile {leaf.cert}
TLSCertificateKeyFile {leaf.key}
database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw adminpw
directory {db}
""")
        self.port = free_port()
        self.tls_port = free_port()
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(conf), "-d", "0",
             "-h", f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        from ldap3 import Connection, Server

        deadline = time.monotonic() + 15
        while True:
            try:
                conn = Connection(Server("127.0.0.1", port=self.port),
                                  f"cn=admin,{SUFFIX}", "adminpw", auto_bind=True)
                break
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.proc.stderr.read().decode()  # type: ignore[union-attr]
                                       if self.proc.poll() is not None
                                       else "slapd timeout") from None
                time.sleep(0.1)
        conn.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
        conn.add(f"ou=people,{SUFFIX}", ["organizationalUnit"], {"ou": "people"})
        conn.add(f"uid=alice,ou=people,{SUFFIX}", ["inetOrgPerson"],
                 {"cn": "Alice", "sn": "A", "uid": "alice", "mail": "alice@example.com",
                  "userPassword": "alice-pw"})
        assert conn.result["result"] == 0, conn.result
        conn.unbind()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require(os.access(SLAPD, os.X_OK), "slapd; apt-get install slapd")
    s = Slapd(tmp_path_factory.mktemp("slapd"))
    yield s
    s.stop()


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


@pytest.fixture
def ours_with(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []
    recorder = Recorder(tmp_path)

    def start(*args: str) -> tuple[Daemon, Recorder]:
        d = Daemon(OURS, [f"--command={recorder.command()}", *args], tmp_path)
        started.append(d)
        return d, recorder

    yield start
    for d in started:
        d.stop()


def test_msmtpd_with_ldap(slapd: Slapd, ours_with: Any) -> None:
    d, recorder = ours_with(f"--auth-ldap={urls(slapd)['template']}")
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as smtp:
        smtp.login("alice", "alice-pw")
        smtp.sendmail("alice@example.com", ["b@example.org"], b"via ldap\r\n")
    assert len(recorder.wait(1)) == 1
    wrong = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0nope") + b"\r\n"
    assert converse(d.port, [b"EHLO x\r\n", wrong])[-1] == b"535 Authentication failed\r\n"


def test_ldap_server_down_is_a_temporary_failure(ours_with: Any) -> None:
    port = free_port()  # nobody listens there
    d, _ = ours_with(f"--auth-ldap=ldap://127.0.0.1:{port}/uid=%u,dc=x")
    token = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0pw") + b"\r\n"
    assert converse(d.port, [b"EHLO x\r\n", token])[-1] == (
        b"454 Temporary authentication failure\r\n")


def test_slapd_is_debians() -> None:
    require(shutil.which("slapd", path="/usr/sbin") is not None, "slapd; apt-get install slapd")
