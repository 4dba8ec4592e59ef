"""The kept connection (``msmtp_twisted.protocol.connection``), the pooled
``api.Sender`` and cancellation of ``api.send_mail``, against real servers on
127.0.0.1.  Each client runs in a child process (one reactor per process); the
servers run here and say what they received."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import ROOT, ours_env
from tests.integration.test_twisted_compat_cancel import SlowDataServer
from tests.servers.recording import HANG, Close, RecordingServer

pytestmark = pytest.mark.timeout(180)

PRELUDE = """
import json, sys
from twisted.internet import defer, task
from msmtp_twisted.api import Sender, connect, load_account, send_mail
from msmtp_twisted.errors import MsmtpError

def account():
    return load_account("t", config_file={rc!r})

def mail(i=0):
    return b"Subject: test %d\\n\\nbody %d\\n" % (i, i)

def why(f):
    e = f.value
    out = {{"error": type(e).__name__}}
    if isinstance(e, MsmtpError):
        out.update(message=e.message, cause=e.cause.value)
        if getattr(e, "reply", None) is not None:
            out["code"] = e.reply.code
    return out
"""


def _run(tmp_path, server_port: int, script: str, *, extra_rc: str = "",
         protocol: str = "smtp", prefix: str = "") -> dict:
    rc = tmp_path / "rc"
    rc.write_text(f"account t\nhost 127.0.0.1\nport {server_port}\nfrom me@example.com\n"
                  f"protocol {protocol}\n{extra_rc}")
    rc.chmod(0o600)
    code = PRELUDE.format(rc=str(rc)) + prefix + textwrap.dedent(script)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=150, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_many_mails_one_connection_with_rset_after_a_refusal(tmp_path) -> None:
    with RecordingServer(replies={"RCPT:bad@x.org": "550 5.1.1 no such user"}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                out = {"esmtp": conn.capabilities.pipelining}
                r = yield conn.send(None, ["a@x.org"], mail(1))
                out["first"] = r.reply.code
                try:
                    yield conn.send(None, ["bad@x.org"], mail(2))
                except MsmtpError as e:
                    out["refused"] = [e.message, e.reply.code, conn.reusable]
                r = yield conn.send("other@example.com", ["b@x.org", "bad@x.org"], mail(3),
                                    partial_recipients=True)
                out["partial"] = [list(r.accepted), [a for a, _ in r.refused]]
                yield conn.quit()
                print(json.dumps(out))
            task.react(main)
        """)
        srv.wait_idle()
    assert out == {"esmtp": True, "first": 250,
                   "refused": ["recipient address bad@x.org not accepted by the server", 550,
                               True],
                   "partial": [["b@x.org"], ["bad@x.org"]]}
    assert len(srv.sessions) == 1
    assert [m.recipients for m in srv.messages] == [["a@x.org"], ["b@x.org"]]
    assert srv.messages[1].sender == "other@example.com"
    assert b"Subject: test 3\r\n" in srv.messages[1].data_bytes()
    # RSET ended the transaction the refusal left open, before the next MAIL
    commands = [c.split()[0] for c in srv.session.commands]
    assert commands == ["EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA",
                        "RSET", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert srv.quit_received


def test_calls_made_at_once_are_queued_in_order(tmp_path) -> None:
    with RecordingServer() as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                ds = [conn.send(None, ["a%d@x.org" % i], mail(i)) for i in range(5)]
                quit = conn.quit()
                results = yield defer.gatherResults(ds)
                yield quit
                print(json.dumps([r.reply.code for r in results]))
            task.react(main)
        """)
        srv.wait_idle()
    assert out == [250] * 5
    assert [m.recipients for m in srv.messages] == [[f"a{i}@x.org"] for i in range(5)]
    assert len(srv.sessions) == 1


def test_dsn_per_mail_and_etrn(tmp_path) -> None:
    with RecordingServer(capabilities=["PIPELINING", "DSN", "ETRN"]) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                yield conn.send(None, ["a@x.org"], mail(), notify="failure,delay", ret="hdrs",
                                envid="queue+17=a b")
                r = yield conn.etrn("example.org")
                yield conn.quit()
                print(json.dumps({"etrn": r.code}))
            task.react(main)
        """)
        srv.wait_idle()
    assert out == {"etrn": 250}
    assert srv.message.mail_from == "<me@example.com> RET=HDRS ENVID=queue+2B17+3Da+20b"
    assert srv.message.rcpt_to == ["<a@x.org> NOTIFY=FAILURE,DELAY"]
    assert "ETRN example.org" in srv.session.commands


def test_dsn_refused_when_the_server_lacks_it(tmp_path) -> None:
    with RecordingServer(capabilities=["PIPELINING"]) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                out = {}
                try:
                    yield conn.send(None, ["a@x.org"], mail(), envid="x")
                except MsmtpError as e:
                    out["dsn"] = [e.message, e.cause.value]
                r = yield conn.send(None, ["a@x.org"], mail())
                out["then"] = r.reply.code
                yield conn.quit()
                print(json.dumps(out))
            task.react(main)
        """)
        srv.wait_idle()
    assert out == {"dsn": ["the server does not support DSN", "unsupported"], "then": 250}
    assert len(srv.messages) == 1 and "ENVID" not in srv.message.mail_from


def test_lmtp_per_recipient_replies(tmp_path) -> None:
    with RecordingServer(protocol="lmtp",
                         replies={"EOD:full@x.org": "452 4.2.2 mailbox full"}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                out = {}
                try:
                    yield conn.send(None, ["a@x.org", "full@x.org"], mail(1))
                except MsmtpError as e:
                    out["strict"] = [[r, rep.code] for r, rep in e.lmtp_replies]
                r = yield conn.send(None, ["a@x.org", "full@x.org"], mail(2),
                                    partial_recipients=True)
                out["partial"] = [list(r.accepted), [[a, rep.code] for a, rep in r.refused]]
                yield conn.quit()
                print(json.dumps(out))
            task.react(main)
        """, protocol="lmtp")
        srv.wait_idle()
    assert out == {"strict": [["a@x.org", 250], ["full@x.org", 452]],
                   "partial": [["a@x.org"], [["full@x.org", 452]]]}
    assert srv.session.helo.startswith("LHLO")
    assert len(srv.sessions) == 1


SENDS = {
    "send_mail": ("def start(reactor, message):\n"
                  "    return send_mail(reactor, account(), None, ['you@x.org'], message)\n"),
    "connection": ("def start(reactor, message):\n"
                   "    d = connect(reactor, account())\n"
                   "    d.addCallback(lambda c: c.send(None, ['you@x.org'], message))\n"
                   "    return d\n"),
}


@pytest.mark.parametrize("how", sorted(SENDS))
def test_cancel_while_waiting_for_data_reply(tmp_path, how) -> None:
    """Cancelled before the final dot: the connection is cut, nothing delivered
    (the server's 354 comes after the cancel: a client that went on would send
    the mail)."""
    def slow_data(session, cmd):
        time.sleep(2.0)
        return "354 go ahead"

    with RecordingServer(replies={"DATA": slow_data}) as srv:
        out = _run(tmp_path, srv.port, prefix=SENDS[how], script="""
            def main(reactor):
                d = start(reactor, mail(1))
                out = {}
                d.addErrback(lambda f: out.update(why(f)))
                reactor.callLater(1.0, d.cancel)
                return task.deferLater(reactor, 4.0, lambda: print(json.dumps(out)))
            task.react(main)
        """)
        srv.wait_idle(timeout=10)
    assert out == {"error": "CancelledError"}
    assert srv.messages == []
    assert b"body 1" not in srv.transcript


@pytest.mark.parametrize("how", sorted(SENDS))
def test_cancel_in_the_middle_of_the_mail(tmp_path, how) -> None:
    server = SlowDataServer()
    server.start()
    out = _run(tmp_path, server.port, prefix=SENDS[how], script="""
        def main(reactor):
            d = start(reactor, (b"x" * 998 + b"\\n") * 40000)
            out = {}
            d.addErrback(lambda f: out.update(why(f)))
            reactor.callLater(2.0, d.cancel)
            return task.deferLater(reactor, 5.0, lambda: print(json.dumps(out)))
        task.react(main)
    """)
    assert server.finished.wait(30)
    assert server.error is None, server.error
    assert out == {"error": "CancelledError"}
    assert server.paused.is_set()
    assert server.gone_after is not None and server.gone_after < 8, server.gone_after
    assert not server.final_dot


@pytest.mark.parametrize("how", sorted(SENDS))
def test_cancel_before_the_greeting_closes_the_connection(tmp_path, how) -> None:
    """The greeting comes 2 s after the connect, 1.5 s after the cancel: nothing more
    may be sent then (a client still connected answers it with EHLO at once; the
    script lives 2.5 s past the greeting)."""
    with RecordingServer(delay=2.0) as srv:
        out = _run(tmp_path, srv.port, prefix=SENDS[how], script="""
            def main(reactor):
                d = start(reactor, mail(1))
                out = {}
                d.addErrback(lambda f: out.update(why(f)))
                reactor.callLater(0.5, d.cancel)
                return task.deferLater(reactor, 4.5, lambda: print(json.dumps(out)))
            task.react(main)
        """)
        srv.wait_idle(timeout=10)
        assert srv.session.commands == []
        assert srv.session.closed_by == "client"
    assert out == {"error": "CancelledError"}
    assert srv.messages == []


def test_cancel_after_the_final_dot_keeps_the_verdict(tmp_path) -> None:
    def slow_eod(session, cmd):
        time.sleep(1.5)
        return "250 2.0.0 queued late"

    with RecordingServer(replies={"EOD": slow_eod}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                d = conn.send(None, ["you@x.org"], mail(1))
                out = {}
                d.addErrback(lambda f: out.update(why(f)))
                yield task.deferLater(reactor, 0.5, d.cancel)
                # the connection stays usable after the verdict
                r = yield conn.send(None, ["you@x.org"], mail(2))
                out["next"] = r.reply.code
                yield conn.quit()
                print(json.dumps(out))
            task.react(main)
        """)
        srv.wait_idle(timeout=10)
    assert out == {"error": "CancelledError", "next": 250}
    assert len(srv.messages) == 2 and len(srv.sessions) == 1


def test_per_call_timeout_on_a_silent_server(tmp_path) -> None:
    with RecordingServer(replies={"MAIL": HANG}) as srv:
        start = time.monotonic()
        out = _run(tmp_path, srv.port, """
            def main(reactor):
                d = send_mail(reactor, account(), None, ["you@x.org"], mail(1), timeout=1.5)
                out = {}
                d.addErrback(lambda f: out.update(why(f)))
                d.addCallback(lambda _: print(json.dumps(out)))
                return d
            task.react(main)
        """)
        srv.wait_idle(timeout=10)
    assert out == {"error": "SMTPFailure", "message": "the send timed out", "cause": "timeout"}
    assert time.monotonic() - start < 30
    assert srv.messages == []


# -- the Sender -----------------------------------------------------------------------------

def test_sender_200_concurrent_sends_on_at_most_two_connections(tmp_path) -> None:
    with RecordingServer() as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                sender = Sender(reactor, account(), connections=2)
                ds = [sender.send(None, ["r%d@x.org" % i], mail(i)) for i in range(200)]
                results = yield defer.gatherResults(ds)
                yield sender.close()
                print(json.dumps({"ok": sum(r.reply.code == 250 for r in results),
                                  "opened": sender.connections_opened}))
            task.react(main)
        """)
        srv.wait_idle(timeout=20)
    assert out == {"ok": 200, "opened": 2}
    assert len(srv.sessions) == 2
    assert sorted(r for m in srv.messages for r in m.recipients) == \
        sorted(f"r{i}@x.org" for i in range(200))
    assert all(s.quit_received for s in srv.sessions)


def test_sender_retries_once_when_a_reused_connection_was_closed(tmp_path) -> None:
    """The server says 421 and closes when MAIL comes on a connection that already
    carried a mail (an idle timeout on its side): nothing of that mail was taken,
    so it goes again on a new connection, once."""
    def idle_closed(session, cmd):
        return Close("421 4.4.2 idle too long") if session.messages else None

    with RecordingServer(replies={"MAIL": idle_closed}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                sender = Sender(reactor, account(), connections=1)
                codes = []
                for i in range(3):
                    r = yield sender.send(None, ["r%d@x.org" % i], mail(i))
                    codes.append(r.reply.code)
                yield sender.close()
                print(json.dumps({"codes": codes, "opened": sender.connections_opened}))
            task.react(main)
        """)
        srv.wait_idle(timeout=20)
    assert out == {"codes": [250, 250, 250], "opened": 3}
    assert [m.recipients for m in srv.messages] == [["r0@x.org"], ["r1@x.org"], ["r2@x.org"]]


def test_sender_never_sends_twice_when_the_server_drops_after_the_final_dot(tmp_path) -> None:
    with RecordingServer(replies={"EOD": Close()}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                sender = Sender(reactor, account(), connections=1)
                out = {}
                r = yield sender.send(None, ["warm@x.org"], mail(0)).addErrback(why)
                try:
                    yield sender.send(None, ["once@x.org"], mail(1))
                except MsmtpError as e:
                    out["second"] = e.cause.value
                yield sender.close()
                out["opened"] = sender.connections_opened
                print(json.dumps(out))
            task.react(main)
        """)
        srv.wait_idle(timeout=20)
    assert out["second"] == "closed"
    assert [m.recipients for m in srv.messages].count(["once@x.org"]) == 1


def test_sender_reconnects_after_the_server_closed_an_idle_connection(tmp_path) -> None:
    def close_after_mail(session, cmd):
        return Close("250 2.0.0 ok, and goodbye")

    with RecordingServer(replies={"EOD": close_after_mail}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                sender = Sender(reactor, account(), connections=1)
                codes = []
                for i in range(3):
                    r = yield sender.send(None, ["r%d@x.org" % i], mail(i))
                    codes.append(r.reply.code)
                    yield task.deferLater(reactor, 0.3, lambda: None)
                yield sender.close()
                print(json.dumps({"codes": codes, "opened": sender.connections_opened}))
            task.react(main)
        """)
        srv.wait_idle(timeout=20)
    assert out == {"codes": [250, 250, 250], "opened": 3}
    assert len(srv.messages) == 3


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
def test_sender_over_tls_with_auth(tmp_path, implicit) -> None:
    from tests.servers.tlspki import PKI

    pki = PKI(tmp_path / "pki")
    ca = pki.ca("test CA")
    leaf = pki.leaf(ca, "localhost")
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(leaf.chain), str(leaf.key))
    with RecordingServer(tls_context=ctx, implicit_tls=implicit, auth={"u": "secret"}) as srv:
        out = _run(tmp_path, srv.port, """
            @defer.inlineCallbacks
            def main(reactor):
                sender = Sender(reactor, account(), connections=1)
                for i in range(3):
                    yield sender.send(None, ["r%d@x.org" % i], mail(i))
                yield sender.close()
                print(json.dumps({"opened": sender.connections_opened}))
            task.react(main)
        """, extra_rc=f"tls on\ntls_starttls {'off' if implicit else 'on'}\n"
                      f"tls_trust_file {ca.cert}\n"
                      "tls_host_override localhost\nauth plain\nuser u\npassword secret\n")
        srv.wait_idle(timeout=20)
    assert out == {"opened": 1}
    assert len(srv.sessions) == 1 and srv.session.tls
    assert srv.session.auth == [("PLAIN", "u", "secret")]
    assert len(srv.messages) == 3
