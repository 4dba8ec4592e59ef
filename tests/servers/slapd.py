"""A real slapd (Debian's) with one user, for msmtpd's ``--auth-ldap``.

slapd listens on 127.0.0.1 with plain LDAP (StartTLS offered) on :attr:`Slapd.port`
and LDAPS on :attr:`Slapd.tls_port`, with a certificate from the test PKI
(:mod:`tests.servers.tlspki`) whose CA is :attr:`Slapd.cafile`.  The directory holds
``uid=alice,ou=people,dc=example,dc=com`` (password ``alice-pw``); the admin is
``cn=admin,dc=example,dc=com`` (``adminpw``).

The fixture ``slapd`` (one for the whole run, certificate for localhost and 127.0.0.1)
is in :mod:`tests.servers.fixtures`; :func:`start_slapd` starts others.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers.ports import free_port
from tests.servers.tlspki import PKI

__all__ = ["SLAPD", "SUFFIX", "Slapd", "slapd", "start_slapd"]

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


def start_slapd(tmp_path_factory: pytest.TempPathFactory, name: str = "slapd", *,
                dns: list[str] | None = None,
                ips: list[str] | None = None) -> Iterator[Slapd]:
    """The body of a slapd fixture: started in a new temporary folder, stopped after."""
    require(os.access(SLAPD, os.X_OK), "slapd; apt-get install slapd")
    s = Slapd(tmp_path_factory.mktemp(name), dns=dns, ips=ips)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """Certificate for localhost and 127.0.0.1."""
    yield from start_slapd(tmp_path_factory)
