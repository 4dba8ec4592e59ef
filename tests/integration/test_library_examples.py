"""The runnable examples of docs/library.md (docs/examples/library_*.py) run
against a local recording server, and do what the page says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import RecordingServer

pytestmark = pytest.mark.timeout(120)

EXAMPLES = ROOT / "docs" / "examples"


def _example(name: str, rc, *args: str, tmp_path) -> list[str]:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), str(rc), "work", *args],
                          capture_output=True, text=True, timeout=90, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _rc(tmp_path, port: int):
    rc = tmp_path / "msmtprc"
    rc.write_text(f"account work\nhost 127.0.0.1\nport {port}\nfrom me@example.com\n")
    rc.chmod(0o600)
    return rc


def test_send_mail_example(tmp_path) -> None:
    with RecordingServer() as srv:
        out = _example("library_send_mail.py", _rc(tmp_path, srv.port), "you@example.org",
                       tmp_path=tmp_path)
        srv.wait_idle()
    assert out == ["accepted: 250 2.0.0 Ok: queued as TEST0001"]
    assert srv.message.recipients == ["you@example.org"]
    data = srv.message.data_bytes()
    assert b"Subject: hello from msmtp-twisted\r\n" in data
    assert b"From: me@example.com\r\n" in data and b"Message-ID: <" in data


def test_send_mail_example_reports_a_refusal(tmp_path) -> None:
    with RecordingServer(replies={"MAIL": "553 5.7.1 not you"}) as srv:
        out = _example("library_send_mail.py", _rc(tmp_path, srv.port), "you@example.org",
                       tmp_path=tmp_path)
    assert out == ["not sent: envelope from address me@example.com not accepted by the "
                   "server (exit code 65, reply)"]


def test_sender_example_uses_at_most_two_connections(tmp_path) -> None:
    with RecordingServer() as srv:
        out = _example("library_sender.py", _rc(tmp_path, srv.port), "20", "you@example.org",
                       tmp_path=tmp_path)
        srv.wait_idle(timeout=10)
    assert out == ["20 of 20 sent on 2 connection(s)"]
    assert len(srv.messages) == 20 and len(srv.sessions) == 2
    assert all(s.quit_received for s in srv.sessions)


def test_connection_example(tmp_path) -> None:
    with RecordingServer(capabilities=["PIPELINING", "DSN", "ETRN"],
                         replies={"RCPT:nobody@example.org": "550 5.1.1 no such user"}) as srv:
        out = _example("library_connection.py", _rc(tmp_path, srv.port), "you@example.org",
                       "nobody@example.org", tmp_path=tmp_path)
        srv.wait_idle()
    assert out == ["sent to: you@example.org",
                   "refused: nobody@example.org: 550 5.1.1 no such user",
                   "second mail sent with DSN",
                   "ETRN: 250"]
    assert len(srv.sessions) == 1 and srv.quit_received
    second = srv.messages[1]
    assert second.mail_from == "<me@example.com> RET=HDRS ENVID=report-2"
    assert second.rcpt_to == ["<you@example.org> NOTIFY=FAILURE,DELAY"]


def test_connection_example_without_dsn(tmp_path) -> None:
    with RecordingServer(capabilities=["PIPELINING"]) as srv:
        out = _example("library_connection.py", _rc(tmp_path, srv.port), "you@example.org",
                       tmp_path=tmp_path)
        srv.wait_idle()
    assert out == ["sent to: you@example.org", "the server offers no DSN: second mail not sent"]
    assert len(srv.messages) == 1
