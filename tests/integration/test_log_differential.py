"""Our log line against the one Debian's msmtp 1.8.23 writes to its log file.

Each case runs the real /usr/bin/msmtp against a tiny SMTP server started here (on
127.0.0.1 or a unix socket) with ``logfile FILE`` and a literal time format, then
requires that :func:`msmtp_twisted.log.format_log_line`, given the same situation
(the account, the server's replies, msmtp's error text and exit status), produces
exactly the line msmtp wrote.  1.8.23 predates ``logfile_time_format none``
(1.8.28), so the format is the literal ``STAMP`` and that prefix is stripped.
"""

from __future__ import annotations

import contextlib
import os
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from msmtp_twisted.log import format_log_line, log_to_file
from msmtp_twisted.sysexits import EX_DATAERR, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE
from tests.servers.ports import free_port

MAIL = b"Subject: log test\nTo: ok@example.org\n\nbody\n.leading dot\r\nend\n"
PASSWORD = "hunter2-S3cr3t"


@dataclass
class Behaviour:
    rcpt_reject: list[str] = field(default_factory=list)  # reply lines for RCPT TO:<bad...>
    end_reply: list[str] = field(default_factory=lambda: ["250 2.0.0 Ok: queued as 4F2A"])
    received: list[bytes] = field(default_factory=list)  # DATA lines as sent, CRLF included


class _Handler(socketserver.StreamRequestHandler):
    server: _TCPServer | _UnixServer

    def send(self, lines: list[str]) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

    def handle(self) -> None:
        behaviour = self.server.behaviour
        self.send(["220 localhost ESMTP test"])
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode("utf-8", "replace").strip()
            verb = cmd.upper()
            if verb.startswith("EHLO"):
                self.send(["250-localhost", "250 AUTH PLAIN"])
            elif verb.startswith("AUTH"):
                self.send(["235 2.7.0 Authentication successful"])
            elif verb.startswith("RCPT") and "<BAD" in verb and behaviour.rcpt_reject:
                self.send(behaviour.rcpt_reject)
            elif verb == "DATA":
                self.send(["354 End data with <CR><LF>.<CR><LF>"])
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    behaviour.received.append(line)
                self.send(behaviour.end_reply)
            elif verb == "QUIT":
                self.send(["221 2.0.0 Bye"])
                return
            else:  # MAIL, RCPT, RSET, NOOP
                self.send(["250 2.1.0 Ok"])


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    behaviour: Behaviour


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    behaviour: Behaviour


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@contextlib.contextmanager
def _serve(server: _TCPServer | _UnixServer, behaviour: Behaviour) -> Iterator[None]:
    server.behaviour = behaviour
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tcp_port(behaviour: Behaviour) -> Iterator[int]:
    server = _TCPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    with _serve(server, behaviour):
        yield port


@pytest.fixture
def unix_path(behaviour: Behaviour, tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "smtp.sock")
    server = _UnixServer(path, _Handler)
    with _serve(server, behaviour):
        yield path


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there


def _mailsize(received: list[bytes]) -> int:
    """msmtp's count: the mail as read, CRLF counted as one byte, no stuffing dots."""
    size = 0
    for line in received:
        body = line[:-2] if line.endswith(b"\r\n") else line
        if body.startswith(b"."):
            body = body[1:]
        size += len(body) + 1
    return size


def _run_msmtp(msmtp: str, tmp: Path, account: str, recipients: list[str]) -> tuple[int, str, str]:
    """Run msmtp; return its exit status, stderr and the line it logged (time stripped)."""
    logfile = tmp / "msmtp.log"
    rc = tmp / "msmtprc"
    rc.write_text(f"account default\n{account}logfile {logfile}\nlogfile_time_format STAMP\n")
    rc.chmod(0o600)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LC_ALL": "C"}
    proc = subprocess.run([msmtp, "-C", str(rc), *recipients], input=MAIL, env=env,
                          capture_output=True, timeout=30)
    logged = logfile.read_bytes().decode()
    assert logged.startswith("STAMP ") and logged.endswith("\n") and logged.count("\n") == 1
    assert PASSWORD not in logged
    return proc.returncode, proc.stderr.decode(), logged[len("STAMP "):-1]


TCP_ACCOUNT = "host 127.0.0.1\nport {port}\nfrom sender@example.com\ntls off\n"
AUTH = f"auth plain\nuser joe\npassword {PASSWORD}\n"


def ours(**fields: object) -> str:
    base: dict[str, object] = dict(
        host="127.0.0.1", socket=None, tls=False, auth=False, user=None,
        envelope_from="sender@example.com", mailsize=None, smtp_reply=None, errormsg=None,
    )
    return format_log_line(**{**base, **fields})  # type: ignore[arg-type]


def test_success(real_msmtp: str, tmp_path: Path, tcp_port: int, behaviour: Behaviour) -> None:
    rcpts = ["ok@example.org", "second@example.net"]
    code, _, logged = _run_msmtp(real_msmtp, tmp_path, TCP_ACCOUNT.format(port=tcp_port), rcpts)
    assert code == EX_OK
    assert logged == ours(recipients=rcpts, mailsize=_mailsize(behaviour.received),
                          smtp_reply=behaviour.end_reply, exitcode=code)


def test_success_with_auth_user(real_msmtp: str, tmp_path: Path, tcp_port: int,
                                behaviour: Behaviour) -> None:
    account = TCP_ACCOUNT.format(port=tcp_port) + AUTH
    code, _, logged = _run_msmtp(real_msmtp, tmp_path, account, ["ok@example.org"])
    assert code == EX_OK
    assert logged == ours(auth=True, user="joe", recipients=["ok@example.org"],
                          mailsize=_mailsize(behaviour.received),
                          smtp_reply=behaviour.end_reply, exitcode=code)


def test_rejected_recipient(real_msmtp: str, tmp_path: Path, tcp_port: int,
                            behaviour: Behaviour) -> None:
    behaviour.rcpt_reject = ["550 5.1.1 <bad@example.org>: it's unknown"]
    rcpts = ["ok@example.org", "bad@example.org"]
    account = TCP_ACCOUNT.format(port=tcp_port) + AUTH
    code, stderr, logged = _run_msmtp(real_msmtp, tmp_path, account, rcpts)
    errormsg = "recipient address bad@example.org not accepted by the server"
    assert code == EX_DATAERR
    assert f"msmtp: {errormsg}\n" in stderr
    assert logged == ours(auth=True, user="joe", recipients=rcpts, mailsize=1234,
                          smtp_reply=behaviour.rcpt_reject, errormsg=errormsg, exitcode=code)


def test_rejected_mail_multiline(real_msmtp: str, tmp_path: Path, tcp_port: int,
                                 behaviour: Behaviour) -> None:
    behaviour.end_reply = ["452-4.3.1 Insufficient system storage, it's 'full'",
                           "452-4.3.1 try\tlater", "452 4.3.1 bye"]
    code, stderr, logged = _run_msmtp(real_msmtp, tmp_path, TCP_ACCOUNT.format(port=tcp_port),
                                      ["ok@example.org"])
    errormsg = "the server did not accept the mail"
    assert code == EX_UNAVAILABLE
    assert f"msmtp: {errormsg}\n" in stderr
    assert "smtpmsg='452-4.3.1 Insufficient system storage, it?s ?full?\\n452-4.3.1 try?later" \
        "\\n452 4.3.1 bye'" in logged
    assert logged == ours(recipients=["ok@example.org"], smtp_reply=behaviour.end_reply,
                          errormsg=errormsg, exitcode=code)


def test_connection_refused(real_msmtp: str, tmp_path: Path, closed_port: int) -> None:
    code, stderr, logged = _run_msmtp(real_msmtp, tmp_path,
                                      TCP_ACCOUNT.format(port=closed_port) + AUTH,
                                      ["ok@example.org", "it's@example.org"])
    errormsg = f"cannot connect to 127.0.0.1, port {closed_port}: Connection refused"
    assert code == EX_TEMPFAIL
    assert f"msmtp: {errormsg}\n" in stderr
    assert logged == ours(auth=True, user="joe", recipients=["ok@example.org", "it's@example.org"],
                          errormsg=errormsg, exitcode=code)


def test_unix_socket(real_msmtp: str, tmp_path: Path, unix_path: str,
                     behaviour: Behaviour) -> None:
    account = f"socket {unix_path}\nfrom sender@example.com\ntls off\n"
    code, _, logged = _run_msmtp(real_msmtp, tmp_path, account, ["ok@example.org"])
    assert code == EX_OK
    assert logged == ours(host=None, socket=unix_path, recipients=["ok@example.org"],
                          mailsize=_mailsize(behaviour.received),
                          smtp_reply=behaviour.end_reply, exitcode=code)


def test_our_file_matches_msmtps_file(real_msmtp: str, tmp_path: Path, tcp_port: int,
                                      behaviour: Behaviour) -> None:
    """Same time format, same file bytes (apart from the line itself, compared above)."""
    code, _, logged = _run_msmtp(real_msmtp, tmp_path, TCP_ACCOUNT.format(port=tcp_port),
                                 ["ok@example.org"])
    assert code == EX_OK
    ours_file = tmp_path / "ours.log"
    assert log_to_file(str(ours_file), "STAMP", logged) is None
    assert ours_file.read_bytes() == (tmp_path / "msmtp.log").read_bytes()


def test_unwritable_log_messages(real_msmtp: str, tmp_path: Path, closed_port: int) -> None:
    from msmtp_twisted.log import log_failure_messages

    missing = tmp_path / "no" / "such" / "log"
    rc = tmp_path / "msmtprc"
    rc.write_text(f"account default\n{TCP_ACCOUNT.format(port=closed_port)}logfile {missing}\n")
    rc.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C"}
    proc = subprocess.run([real_msmtp, "-C", str(rc), "ok@example.org"], input=MAIL, env=env,
                          capture_output=True, timeout=30)
    stderr_lines = proc.stderr.decode().splitlines()
    errormsg = f"cannot connect to 127.0.0.1, port {closed_port}: Connection refused"
    line = ours(recipients=["ok@example.org"], errormsg=errormsg, exitcode=proc.returncode)
    reason = log_to_file(str(missing), None, line)
    assert reason == "cannot open: No such file or directory"
    assert stderr_lines[-2:] == log_failure_messages(str(missing), reason, line)
