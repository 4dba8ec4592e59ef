"""Real mail servers on loopback for integration tests: Postfix and Dovecot.

``start.sh`` beside this file writes the configurations and starts Postfix (SMTP on
several ports), Dovecot (SASL for Postfix; LMTP on TCP and on a unix socket) and
microsocks under one temporary folder; ``stop.sh`` stops them by their pid files.  Its
header comment documents ports, users and where mail lands.

The session-scoped fixture ``mailservers`` starts them once (about 0.6 s; stopping
takes about 1.1 s, Dovecot's shutdown) and yields a :class:`MailServers`.
tests/integration/conftest.py registers it; elsewhere, import it into a conftest.py
(``from tests.servers.mailservers import mailservers  # noqa: F401``).  Then::

    def test_x(mailservers, tmp_path):
        cfg = msmtprc(tmp_path, port=mailservers.smtp_port)     # mode 0600
        res = send(ours_command(), cfg, ["alice@example.com"], b"Subject: t1\\n\\nbody\\n")
        assert (res.returncode, res.stderr) == (0, "")
        [mail] = mailservers.wait_for_mail("alice", match=b"Subject: t1")

It needs root and the Debian packages postfix, dovecot-core, dovecot-lmtpd and openssl
(``./scripts/test`` installs them as root): without them tests skip on a developer box and fail when
``CI=true`` (see ``tests.conftest.require``).

The base port is ``$MSMTP_TEST_MAILSERVERS_PORT`` when set (it must be free), else the
first free block of ``PORT_BLOCK`` ports from 20025 on, in steps of ``PORT_BLOCK``.
``MSMTP_TEST_KEEP_MAILSERVERS=1`` keeps the folder (configs, logs, Maildirs) after the
session and prints its path.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ours_env, require
from tests.servers.ports import choose_port_block

HERE = Path(__file__).resolve().parent
START = HERE / "start.sh"
STOP = HERE / "stop.sh"

PORT_ENV = "MSMTP_TEST_MAILSERVERS_PORT"
KEEP_ENV = "MSMTP_TEST_KEEP_MAILSERVERS"
DEFAULT_BASE_PORT = 20025
#: start.sh uses the ports BASE .. BASE+10
PORT_BLOCK = 11

#: Postfix delivers these to DIR/mail/smtp/example.com/<name>/, all other addresses
#: to DIR/mail/smtp/sink/
POSTFIX_MAILBOXES = ("sender", "alice", "bob", "carol", "testuser")
#: Dovecot LMTP users with a Maildir (full and tempfail fail after DATA)
LMTP_USERS = ("testuser", "alice")

#: system programs start.sh needs, and the package providing each
_PROGRAMS = {
    "/usr/sbin/postfix": "postfix",
    "/usr/sbin/dovecot": "dovecot-core",
    "/usr/lib/dovecot/lmtp": "dovecot-lmtpd",
    "/usr/bin/openssl": "openssl",
    "/usr/sbin/runuser": "util-linux",
}

#: header lines that differ between two deliveries of the same input
VOLATILE_HEADERS = ("received", "date", "message-id", "delivered-to", "x-original-to",
                    "return-path")


@dataclass
class MailServers:
    """The running servers: ports, paths and helpers to look at what arrived."""

    dir: Path
    host: str
    #: Postfix: STARTTLS offered, AUTH after STARTTLS only, no auth needed (also [::1])
    smtp_port: int
    #: Postfix without TLS, AUTH offered in clear (optional)
    smtp_notls_port: int
    #: Postfix implicit TLS, AUTH required
    smtps_port: int
    #: Postfix submission: STARTTLS and AUTH required
    submission_port: int
    #: Postfix: STARTTLS and a client certificate signed by ``ca_file`` required
    ccert_required_port: int
    #: Postfix: client certificate optional; RCPT needs a trusted cert or AUTH
    ccert_optional_port: int
    #: Postfix without PIPELINING in EHLO, rejecting clients that pipeline anyway
    nopipelining_port: int
    #: Dovecot LMTP over TCP (also [::1])
    lmtp_port: int
    #: Dovecot LMTP over a unix socket
    lmtp_socket: Path
    #: microsocks SOCKS5 without / with user+password (None: microsocks not installed)
    socks_port: int | None
    socks_auth_port: int | None
    #: nothing listens here (next hop of example.net: its mail stays deferred)
    dead_port: int
    ipv6: bool
    ca_file: Path
    client_cert: Path
    client_key: Path
    rogue_client_cert: Path
    rogue_client_key: Path
    smtp_maildir_base: Path
    lmtp_maildir_base: Path
    postfix_log_path: Path
    dovecot_log_path: Path

    # ------------------------------------------------------------------ Maildirs
    def maildir(self, user: str, *, lmtp: bool = False) -> Path:
        """The Maildir of ``user``.

        Postfix (default): one of :data:`POSTFIX_MAILBOXES` (``alice`` or
        ``alice@example.com``), or ``sink`` for every other address.  LMTP
        (``lmtp=True``): one of :data:`LMTP_USERS`.
        """
        name = user.partition("@")[0] if user.endswith("@example.com") else user
        if lmtp:
            if name not in LMTP_USERS:
                raise ValueError(f"no LMTP Maildir for {user!r}; known: {LMTP_USERS}")
            return self.lmtp_maildir_base / name / "Maildir"
        if name == "sink":
            return self.smtp_maildir_base / "sink"
        if name not in POSTFIX_MAILBOXES:
            raise ValueError(f"no Postfix Maildir for {user!r}: it goes to 'sink'")
        return self.smtp_maildir_base / "example.com" / name

    def mail(self, user: str, *, match: bytes | None = None,
             lmtp: bool = False) -> list[bytes]:
        """The mails in ``user``'s ``new/`` now (oldest first), only those containing
        ``match`` if given."""
        new = self.maildir(user, lmtp=lmtp) / "new"
        try:
            entries = list(os.scandir(new))
        except FileNotFoundError:
            return []
        found = []
        for entry in sorted(entries, key=_delivery_order):
            try:
                data = Path(entry.path).read_bytes()
            except FileNotFoundError:  # pragma: no cover - moved away meanwhile
                continue
            if match is None or match in data:
                found.append(data)
        return found

    def wait_for_mail(self, user: str, timeout: float = 10.0, *, match: bytes | None = None,
                      count: int = 1, lmtp: bool = False) -> list[bytes]:
        """Wait until ``user``'s Maildir holds at least ``count`` mails (containing
        ``match``, if given) and return them all, oldest first.

        Postfix delivers asynchronously, a few ms to ~1 s after the client got its
        250; Dovecot LMTP has delivered before it answers.  Mails accumulate over
        the session, so tests should put a unique ``match`` token into their mail.
        Raises AssertionError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.mail(user, match=match, lmtp=lmtp)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(found)} of {count} mail(s) for {user!r}"
                    f"{' (lmtp)' if lmtp else ''} matching {match!r} after {timeout} s;"
                    f" Postfix log tail:\n{self.postfix_log()[-3000:]}")
            time.sleep(0.05)

    # ---------------------------------------------------------------------- logs
    def postfix_log(self, since: int = 0) -> str:
        """Postfix's log (from byte offset ``since``, see :meth:`postfix_log_size`)."""
        return _read_from(self.postfix_log_path, since)

    def postfix_log_size(self) -> int:
        """The current size of Postfix's log: remember it before a test's session to
        read only what came after with ``postfix_log(since=...)``."""
        return _size(self.postfix_log_path)

    def dovecot_log(self, since: int = 0) -> str:
        return _read_from(self.dovecot_log_path, since)

    def dovecot_log_size(self) -> int:
        return _size(self.dovecot_log_path)

    def wait_for_postfix_log(self, pattern: str, since: int = 0,
                             timeout: float = 10.0) -> re.Match[str]:
        """Wait until a line matching the regular expression ``pattern`` appears in
        Postfix's log after offset ``since``; return the match."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.postfix_log(since))
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"no line matching {pattern!r} in postfix.log after"
                                     f" {timeout} s:\n{self.postfix_log(since)[-3000:]}")
            time.sleep(0.05)

    def smtpd_session(self, since: int, timeout: float = 10.0) -> list[str]:
        """The lines smtpd logged for the first SMTP session after offset ``since``
        that sent at least one command, once it has ended ("disconnect from ..."),
        without time stamp, process id and queue ids (``QID``), e.g.::

            ["connect from unknown[127.0.0.1]", "QID: client=unknown[127.0.0.1]",
             "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1"
             " commands=5"]

        Two clients that talk alike give equal lists.  Tests run one at a time, so
        that session is the test's own; connections without any command (the port
        probes at start-up) are skipped, and lines are grouped by smtpd process.
        """
        deadline = time.monotonic() + timeout
        while True:
            per_process: dict[str, list[str]] = {}
            for line in self.postfix_log(since).splitlines():
                found = _SMTPD_LINE.match(line)
                if not found:
                    continue
                pid, text = found.groups()
                lines = per_process.setdefault(pid, [])
                lines.append(_QUEUE_ID.sub("QID:", text))
                if text.startswith("disconnect from "):
                    if not text.endswith(" commands=0/0"):
                        return lines
                    del per_process[pid]
            if time.monotonic() >= deadline:
                raise AssertionError(f"no finished SMTP session in postfix.log after"
                                     f" {timeout} s:\n{self.postfix_log(since)[-3000:]}")
            time.sleep(0.05)


_SMTPD_LINE = re.compile(
    r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix/smtpd\[(\d+)\]: (.*)$")
_QUEUE_ID = re.compile(r"\b[0-9A-F]{6,}:")


def _delivery_order(entry: os.DirEntry[str]) -> tuple[float, str]:
    return (entry.stat().st_mtime, entry.name)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# ------------------------------------------------------------------ mail helpers
def split_mail(data: bytes) -> tuple[list[bytes], bytes]:
    """A delivered mail's header fields (continuation lines joined to their field,
    each field with its line ends) and its body."""
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        head, body = data, b""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, body


def header(data: bytes, name: str) -> list[bytes]:
    """The values of the header fields called ``name`` (unfolded, stripped)."""
    fields, _ = split_mail(data)
    prefix = name.lower().encode() + b":"
    return [re.sub(rb"\r?\n[ \t]", b" ", f[len(prefix):]).strip()
            for f in fields if f.lower().startswith(prefix)]


def without_volatile_headers(data: bytes,
                             names: Sequence[str] = VOLATILE_HEADERS) -> bytes:
    """The mail without the header fields that differ between two deliveries of the
    same input (Received, Date, Message-ID, Delivered-To, X-Original-To, Return-Path)."""
    fields, body = split_mail(data)
    drop = tuple(n.lower().encode() + b":" for n in names)
    kept = [f for f in fields if not f.lower().startswith(drop)]
    return b"".join(kept) + b"\n" + body


# ------------------------------------------------------------------ msmtp helpers
def msmtprc(directory: str | os.PathLike[str], *, name: str = "msmtprc",
            host: str | None = "127.0.0.1", port: int | None = None,
            from_: str = "sender@example.com", account: str = "default",
            **settings: object) -> Path:
    """Write an msmtp configuration with one account (mode 0600) and return its path.

    ``settings``: further msmtp commands (``protocol="lmtp"``, ``socket=PATH``,
    ``logfile=PATH``...; ``True``/``False`` become ``on``/``off``; ``None`` leaves a
    default out).  Defaults: ``tls off``, ``auth off``.  ``host=None`` leaves ``host``
    out (for ``socket`` accounts).
    """
    values: dict[str, object] = {"host": host, "port": port, "from": from_,
                                 "tls": False, "auth": False}
    values.update({k.rstrip("_"): v for k, v in settings.items()})
    lines = [f"account {account}"]
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "on" if value else "off"
        lines.append(f"{key} {value}")
    if account != "default":
        lines.append(f"account default : {account}")
    path = Path(directory) / name
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@dataclass
class Sent:
    """What one msmtp run gave."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def stderr_lines(self, config: str | os.PathLike[str] | None = None) -> list[str]:
        """stderr's lines, with the configuration file's path replaced by ``FILE``."""
        text = self.stderr
        if config is not None:
            text = text.replace(os.fspath(config), "FILE")
        return text.splitlines()


def send(command: Sequence[str], config: str | os.PathLike[str], args: Sequence[str],
         mail: bytes, *, timeout: float = 30.0,
         env: Mapping[str, str] | None = None) -> Sent:
    """Run ``command -C config args...`` with ``mail`` on stdin.

    The environment is minimal (``LC_ALL=C``; ``HOME`` is the config's folder so no
    user configuration leaks in) and includes the PYTHONPATH our msmtp needs.
    """
    if env is None:
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(Path(config).parent)}
    start = time.monotonic()
    proc = subprocess.run([*command, "-C", os.fspath(config), *args], input=mail,
                          capture_output=True, timeout=timeout, env=ours_env(dict(env)))
    return Sent(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                proc.stderr.decode("utf-8", "replace"), time.monotonic() - start)


# ------------------------------------------------------------------ start / stop
def choose_base_port() -> int:
    """``$MSMTP_TEST_MAILSERVERS_PORT``, or the first free block from 20025 on."""
    return choose_port_block(PORT_ENV, DEFAULT_BASE_PORT, PORT_BLOCK, attempts=40)


def _wait_for_ports(servers: MailServers, timeout: float = 10.0) -> None:
    """Bounded wait until every TCP port accepts and the LMTP socket exists."""
    ports = [servers.smtp_port, servers.smtp_notls_port, servers.smtps_port,
             servers.submission_port, servers.ccert_required_port,
             servers.ccert_optional_port, servers.nopipelining_port, servers.lmtp_port]
    ports += [p for p in (servers.socks_port, servers.socks_auth_port) if p is not None]
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection((servers.host, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() >= deadline:
                    pytest.fail(f"mail servers: nothing listens on port {port}")
                time.sleep(0.05)
    while not servers.lmtp_socket.is_socket():
        if time.monotonic() >= deadline:
            pytest.fail(f"mail servers: no LMTP socket {servers.lmtp_socket}")
        time.sleep(0.05)


def _parse_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _servers_from(values: dict[str, str]) -> MailServers:
    socks = values["SOCKS"] == "yes"
    return MailServers(
        dir=Path(values["DIR"]),
        host="127.0.0.1",
        smtp_port=int(values["SMTP_PORT"]),
        smtp_notls_port=int(values["SMTP_NOTLS_PORT"]),
        smtps_port=int(values["SMTPS_PORT"]),
        submission_port=int(values["SUBMISSION_PORT"]),
        ccert_required_port=int(values["CCERT_REQUIRED_PORT"]),
        ccert_optional_port=int(values["CCERT_OPTIONAL_PORT"]),
        nopipelining_port=int(values["NOPIPELINING_PORT"]),
        lmtp_port=int(values["LMTP_PORT"]),
        lmtp_socket=Path(values["LMTP_SOCKET"]),
        socks_port=int(values["SOCKS_PORT"]) if socks else None,
        socks_auth_port=int(values["SOCKS_AUTH_PORT"]) if socks else None,
        dead_port=int(values["DEAD_PORT"]),
        ipv6=values["IPV6"] == "yes",
        ca_file=Path(values["CA_FILE"]),
        client_cert=Path(values["CLIENT_CERT"]),
        client_key=Path(values["CLIENT_KEY"]),
        rogue_client_cert=Path(values["ROGUE_CLIENT_CERT"]),
        rogue_client_key=Path(values["ROGUE_CLIENT_KEY"]),
        smtp_maildir_base=Path(values["SMTP_MAILDIR_BASE"]),
        lmtp_maildir_base=Path(values["LMTP_MAILDIR_BASE"]),
        postfix_log_path=Path(values["POSTFIX_LOG"]),
        dovecot_log_path=Path(values["DOVECOT_LOG"]),
    )


def _script_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def _stop(directory: Path) -> subprocess.CompletedProcess[bytes]:
    # stdin/stdout/stderr never the caller's: see start.sh about Dovecot
    with open(directory / "stop.out", "wb") as out:
        return subprocess.run(["bash", str(STOP), str(directory)], stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT, env=_script_env(),
                              timeout=30)


@contextlib.contextmanager
def running_mailservers() -> Iterator[MailServers]:
    """Start the servers in a new temporary folder; stop them and remove it at exit."""
    require(os.geteuid() == 0, "root (Postfix and Dovecot run their masters as root)")
    for path, package in _PROGRAMS.items():
        require(os.access(path, os.X_OK), f"{path} (apt-get install {package})")
    # not under pytest's basetemp: its folders are 0700, and the users postfix and
    # nobody must reach this one
    directory = Path(tempfile.mkdtemp(prefix="msmtp-mailservers-"))
    directory.chmod(0o755)
    base = choose_base_port()
    started = time.monotonic()
    try:
        out_path, err_path = directory / "start.out", directory / "start.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.run(["bash", str(START), str(directory), str(base)],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  env=_script_env(), timeout=60)
        if proc.returncode != 0:
            pytest.fail(f"start.sh failed ({proc.returncode}):\n"
                        f"{err_path.read_text(errors='replace')}")
        servers = _servers_from(_parse_env(out_path.read_text()))
        _wait_for_ports(servers)
        print(f"\nmail servers in {directory} (ports {base}..{base + PORT_BLOCK - 1})"
              f" started in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield servers
    finally:
        stopped = _stop(directory)
        if stopped.returncode != 0 or os.environ.get(KEEP_ENV):
            print(f"\nmail servers: folder kept: {directory} (stop.sh exit"
                  f" {stopped.returncode})", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def mailservers() -> Iterator[MailServers]:
    """Postfix + Dovecot (+ microsocks), started once per test session."""
    with running_mailservers() as servers:
        yield servers


__all__ = [
    "VOLATILE_HEADERS",
    "LMTP_USERS", "POSTFIX_MAILBOXES", "MailServers", "Sent", "header", "mailservers",
    "msmtprc", "running_mailservers", "send", "split_mail", "without_volatile_headers",
]
