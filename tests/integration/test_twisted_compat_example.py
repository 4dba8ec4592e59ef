"""docs/examples/twisted_sendmail.py runs, and a few things the drop-in promises
that the other test modules do not show: the plain ``SMTPSenderFactory`` (HELO),
a cancel before the connection is made, no per-mail factory noise in the log."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import RecordingServer

pytestmark = pytest.mark.timeout(120)

EXAMPLE = ROOT / "docs" / "examples" / "twisted_sendmail.py"


def _python(args: list[str], tmp_path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=90,
                          cwd=ROOT, env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))


def test_example_sends_and_reports_each_recipient(tmp_path) -> None:
    with RecordingServer(replies={"RCPT:nobody@example.org": "550 5.1.1 no such user"}) as srv:
        proc = _python([str(EXAMPLE), "127.0.0.1", str(srv.port), "me@example.com",
                        "you@example.org", "nobody@example.org"], tmp_path)
        srv.wait_idle(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "sent to 1 of 2 recipients",
        "  you@example.org: 250 2.1.5 Ok",
        "  nobody@example.org: 550 5.1.1 no such user",
    ]
    assert srv.message.recipients == ["you@example.org"]
    assert b"Subject: hello from a Twisted program\r\n" in srv.message.data_bytes()


def test_example_reports_a_refusal(tmp_path) -> None:
    with RecordingServer(replies={"MAIL": "553 5.7.1 not you"}) as srv:
        proc = _python([str(EXAMPLE), "127.0.0.1", str(srv.port), "me@example.com",
                        "you@example.org"], tmp_path)
        srv.wait_idle(timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "not sent: 553 5.7.1 not you",
        "  (msmtp would say: envelope from address me@example.com not accepted by the "
        "server; exit code 65)",
    ]


def test_smtp_sender_factory_says_helo_as_twisteds(tmp_path) -> None:
    with RecordingServer(replies={"RCPT:bad@x.org": "550 no"}) as srv:
        proc = _python(["-c", textwrap.dedent(f"""
            import io, json
            from twisted.internet import defer, task
            from twisted.mail import smtp
            from msmtp_twisted.protocol import compat

            @defer.inlineCallbacks
            def main(reactor):
                out = {{}}
                for name, impl in (("twisted", smtp), ("ours", compat)):
                    d = defer.Deferred()
                    f = impl.SMTPSenderFactory("me@example.com", ["a@x.org", "bad@x.org"],
                                               io.BytesIO(b"Subject: s\\n\\nb\\n"), d,
                                               retries=0)
                    f.domain = name.encode()
                    reactor.connectTCP("127.0.0.1", {srv.port}, f)
                    number, replies = yield d
                    out[name] = [number, [[a.decode(), c] for a, c, _ in replies]]
                    yield task.deferLater(reactor, 0.3, lambda: None)
                print(json.dumps(out))
            task.react(main)
        """)], tmp_path)
        srv.wait_idle(timeout=10)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ours"] == result["twisted"] == [1, [["a@x.org", 250], ["bad@x.org", 550]]]
    twisted, ours = srv.sessions
    assert ours.commands[0] == "HELO ours"
    # Twisted's sender ends with RSET then QUIT; so does ours
    assert ours.commands[-2:] == twisted.commands[-2:] == ["RSET", "QUIT"]


def test_cancel_before_the_connection_is_made(tmp_path) -> None:
    """connectTCP connects on the next reactor turn: a cancel right away stops it."""
    with RecordingServer() as srv:
        proc = _python(["-c", textwrap.dedent(f"""
            import io, json
            from twisted.internet import defer, task
            from twisted.logger import globalLogPublisher, formatEvent
            from msmtp_twisted.protocol import compat

            events = []
            globalLogPublisher.addObserver(lambda e: events.append(formatEvent(e) or ""))

            def main(reactor):
                d = defer.Deferred()
                f = compat.ESMTPSenderFactory(None, None, "me@example.com", ["a@x.org"],
                                              io.BytesIO(b"Subject: s\\n\\nb\\n"), d,
                                              requireAuthentication=False,
                                              requireTransportSecurity=False)
                reactor.connectTCP("127.0.0.1", {srv.port}, f)
                d.cancel()
                out = {{}}
                d.addErrback(lambda fail: out.setdefault("error", type(fail.value).__name__))
                s = compat.sendmail("127.0.0.1", "me@example.com", ["a@x.org"], b"x",
                                    port={srv.port}, reactor=reactor)
                s.cancel()
                s.addErrback(lambda fail: out.setdefault("sendmail", type(fail.value).__name__))

                def report():
                    out["noise"] = [e for e in events if "Starting factory" in e
                                    or "Stopping factory" in e]
                    print(json.dumps(out))
                return task.deferLater(reactor, 1.0, report)
            task.react(main)
        """)], tmp_path)
        time.sleep(0.2)
        srv.wait_idle(timeout=10)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"error": "CancelledError", "sendmail": "CancelledError", "noise": []}
    assert srv.sessions == []
