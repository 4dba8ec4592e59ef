"""A real Exim 4.96 on 127.0.0.1 for integration tests: AUTH EXTERNAL, PLAIN, LOGIN, CRAM-MD5.

Exim is here because it is the one server at hand that really does AUTH EXTERNAL
(RFC 4422 appendix A over SMTP): Postfix never offers it.  ``start.sh`` beside this
file makes a CA and server/client certificates, writes the configuration and starts
Exim under one temporary folder; ``stop.sh`` stops it by its pid file.  Its header
comment documents ports, users, the authenticators and where mail lands:

- ``smtp_port`` (STARTTLS) and ``smtps_port`` (implicit TLS);
- AUTH PLAIN / LOGIN / CRAM-MD5 for ``testuser`` / ``testpass``;
- AUTH EXTERNAL, offered only after a client certificate signed by ``ca_file`` was
  verified; the authorization identity must be empty or the certificate's CN
  (``client_cn``, "testclient");
- every recipient is delivered to one Maildir (``maildir``), except local parts
  ``unknown*``/``nosuch*`` (550 at RCPT);
- the mainlog's ``<=`` line names the authenticator and id used, e.g.
  ``A=external:testclient`` or ``A=plain:testuser``, and ``id=`` the Message-ID.

The session-scoped fixture ``exim_server`` starts it once (about 0.3 s) and yields an
:class:`EximServer`.  Register it in a conftest.py (or a test module) with
``from tests.servers.exim import exim_server  # noqa: F401``.

Exim's Debian package conflicts with postfix, so ./scripts/test unpacks exim4-daemon-light
and exim4-base into /opt/exim4-root (``$MSMTP_TEST_EXIM_ROOT`` overrides that) and
creates the system user Debian-exim; see start.sh.  Without them (or without root)
the tests skip on a developer box and fail when ``CI=true``.

Ports: ``$MSMTP_TEST_EXIM_PORT`` (and the next one) when set (they must be free),
else the first free pair from 21125 on.  ``MSMTP_TEST_KEEP_EXIM=1`` keeps the folder
(configuration, certificates, logs, Maildir) after the session and prints its path.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require
from tests.servers.ports import choose_port_block

HERE = Path(__file__).resolve().parent
START = HERE / "start.sh"
STOP = HERE / "stop.sh"

PORT_ENV = "MSMTP_TEST_EXIM_PORT"
KEEP_ENV = "MSMTP_TEST_KEEP_EXIM"
ROOT_ENV = "MSMTP_TEST_EXIM_ROOT"
DEFAULT_ROOT = "/opt/exim4-root"
DEFAULT_BASE_PORT = 21125
#: start.sh uses the ports BASE (STARTTLS) and BASE+1 (implicit TLS)
PORT_BLOCK = 2

#: how ./scripts/test (scripts/_system.sh) installs Exim (for the skip/fail messages)
INSTALL_HINT = ("run ./scripts/test as root, or by hand: apt-get install libdb5.3"
                " libgnutls-dane0 libidn12 libnsl2 libpcre2-8-0; apt-get download"
                " exim4-daemon-light exim4-base; dpkg-deb -x each into /opt/exim4-root; adduser"
                " --system --group --no-create-home --allow-bad-names Debian-exim")


@dataclass
class EximServer:
    """The running Exim: ports, certificate paths, and helpers to look at what arrived."""

    dir: Path
    host: str
    #: STARTTLS offered
    smtp_port: int
    #: implicit TLS
    smtps_port: int
    #: the CA that signed the server's and the client's certificates (trusted by Exim)
    ca_file: Path
    #: a client certificate Exim verifies (CN ``client_cn``)
    client_cert: Path
    client_key: Path
    #: a client certificate with the same CN from a CA Exim does not trust
    rogue_client_cert: Path
    rogue_client_key: Path
    client_cn: str
    maildir: Path
    mainlog_path: Path

    def port(self, implicit_tls: bool = False) -> int:
        return self.smtps_port if implicit_tls else self.smtp_port

    # ------------------------------------------------------------------ Maildir
    def mail(self, match: bytes | None = None) -> list[bytes]:
        """The mails in the Maildir's ``new/`` now (oldest first), only those containing
        ``match`` if given."""
        try:
            entries = list(os.scandir(self.maildir / "new"))
        except FileNotFoundError:
            return []
        found = []
        for entry in sorted(entries, key=lambda e: (e.stat().st_mtime, e.name)):
            try:
                data = Path(entry.path).read_bytes()
            except FileNotFoundError:  # pragma: no cover - moved away meanwhile
                continue
            if match is None or match in data:
                found.append(data)
        return found

    def wait_for_mail(self, match: bytes, timeout: float = 10.0,
                      count: int = 1) -> list[bytes]:
        """Wait until at least ``count`` mails containing ``match`` arrived; return them.

        Exim delivers in a process of its own just after its 250 to the client."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.mail(match)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"{len(found)} of {count} mail(s) matching {match!r}"
                                     f" after {timeout} s; mainlog tail:\n"
                                     f"{self.mainlog()[-3000:]}")
            time.sleep(0.05)

    # ---------------------------------------------------------------------- log
    def mainlog(self, since: int = 0) -> str:
        """Exim's mainlog (from byte offset ``since``, see :meth:`mainlog_size`)."""
        try:
            with self.mainlog_path.open("rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def mainlog_size(self) -> int:
        try:
            return self.mainlog_path.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_for_log(self, pattern: str, since: int = 0,
                     timeout: float = 10.0) -> re.Match[str]:
        """Wait until a line matching the regular expression ``pattern`` appears in the
        mainlog after offset ``since``; return the match."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.mainlog(since))
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"no line matching {pattern!r} in Exim's mainlog after"
                                     f" {timeout} s:\n{self.mainlog(since)[-3000:]}")
            time.sleep(0.05)

    def received_line(self, message_id: str, timeout: float = 10.0) -> str:
        """The mainlog's ``<=`` (reception) line of the mail with this Message-ID (without
        angle brackets)."""
        found = self.wait_for_log(rf"^.* <= .* id={re.escape(message_id)}(?: .*)?$",
                                  timeout=timeout)
        return found.group(0)


# ------------------------------------------------------------------ start / stop
def choose_base_port() -> int:
    """``$MSMTP_TEST_EXIM_PORT``, or the first free pair from 21125 on."""
    return choose_port_block(PORT_ENV, DEFAULT_BASE_PORT, PORT_BLOCK)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _script_env(exim_root: str) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "EXIM_ROOT": exim_root}


def _parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _wait_for_ports(ports: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() >= deadline:
                    pytest.fail(f"Exim: nothing listens on 127.0.0.1:{port}")
                time.sleep(0.05)


def _stop(directory: Path, exim_root: str) -> subprocess.CompletedProcess[bytes]:
    with open(directory / "stop.out", "wb") as out:
        return subprocess.run(["bash", str(STOP), str(directory)], stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT,
                              env=_script_env(exim_root), timeout=30)


@contextlib.contextmanager
def running_exim() -> Iterator[EximServer]:
    """Start Exim in a new temporary folder; stop it and remove the folder at exit."""
    exim_root = os.environ.get(ROOT_ENV, DEFAULT_ROOT)
    binary = Path(exim_root) / "usr/sbin/exim4"
    require(os.geteuid() == 0, "root (Exim is started as root and drops to nobody)")
    require(os.access(binary, os.X_OK), f"Exim 4.96 unpacked as {binary} ({INSTALL_HINT})")
    require(_user_exists("Debian-exim"), f"the system user Debian-exim ({INSTALL_HINT})")
    for program, package in (("/usr/bin/openssl", "openssl"),
                             ("/usr/sbin/runuser", "util-linux")):
        require(os.access(program, os.X_OK), f"{program} (apt-get install {package})")
    # not under pytest's basetemp (0700): user nobody must reach this folder
    directory = Path(tempfile.mkdtemp(prefix="msmtp-exim-"))
    directory.chmod(0o755)
    base = choose_base_port()
    started = time.monotonic()
    try:
        out_path, err_path = directory / "start.out", directory / "start.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.run(["bash", str(START), str(directory), str(base)],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  env=_script_env(exim_root), timeout=60)
        if proc.returncode != 0:
            pytest.fail(f"exim start.sh failed ({proc.returncode}):\n"
                        f"{err_path.read_text(errors='replace')}")
        values = _parse_env(out_path.read_text())
        server = EximServer(
            dir=Path(values["DIR"]),
            host="127.0.0.1",
            smtp_port=int(values["SMTP_PORT"]),
            smtps_port=int(values["SMTPS_PORT"]),
            ca_file=Path(values["CA_FILE"]),
            client_cert=Path(values["CLIENT_CERT"]),
            client_key=Path(values["CLIENT_KEY"]),
            rogue_client_cert=Path(values["ROGUE_CLIENT_CERT"]),
            rogue_client_key=Path(values["ROGUE_CLIENT_KEY"]),
            client_cn=values["CLIENT_CN"],
            maildir=Path(values["MAILDIR"]),
            mainlog_path=Path(values["MAINLOG"]),
        )
        _wait_for_ports([server.smtp_port, server.smtps_port])
        print(f"\nExim in {directory} (ports {base}, {base + 1}) started in"
              f" {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield server
    finally:
        stopped = _stop(directory, exim_root)
        if stopped.returncode != 0 or os.environ.get(KEEP_ENV):
            print(f"\nExim: folder kept: {directory} (stop.sh exit {stopped.returncode})",
                  file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def exim_server() -> Iterator[EximServer]:
    """Exim 4.96 on 127.0.0.1 (STARTTLS and implicit TLS), started once per session."""
    with running_exim() as server:
        yield server


__all__ = ["EximServer", "choose_base_port", "exim_server", "running_exim"]
