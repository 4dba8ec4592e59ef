"""Cancelling a send of the ``twisted.mail.smtp`` drop-in, against real servers.

``d.cancel()`` before the final dot closes the connection at once and the server
has no mail; after the final dot the server's verdict stands (the connection is
not cut) and is logged.  Each client runs in a child process (one reactor per
process); the servers run here.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import HANG, RecordingServer

pytestmark = pytest.mark.timeout(120)

#: ``tcpi_state`` (the first byte of Linux's ``struct tcp_info``) of an open connection
TCP_ESTABLISHED = 1


def _run(script: str, tmp_path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=90, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


class SlowDataServer(threading.Thread):
    """Accepts the envelope and DATA, reads ``first`` bytes of the mail, then stops
    reading for up to ``pause`` seconds (the client's writes back up: it is stuck in
    the middle of the mail) while watching, without reading, whether the client is
    still there; then reads what is left.  Records whether the final dot came."""

    def __init__(self, *, first: int = 256 * 1024, pause: float = 15.0) -> None:
        super().__init__(daemon=True, name="slow-data-server")
        self.first = first
        self.pause = pause
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.paused = threading.Event()
        self.finished = threading.Event()
        self.gone_after: float | None = None  # seconds into the pause the client left
        self.final_dot = False
        self.data = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._serve()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.finished.set()
            self.listener.close()

    def _serve(self) -> None:
        self.listener.settimeout(60)
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(30)
            conn.sendall(b"220 slow ESMTP\r\n")
            buf = b""
            while True:
                while b"\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\r\n", 1)
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    break
                conn.sendall(b"250 slow\r\n" if verb == b"EHLO" else b"250 ok\r\n")
            tail = buf
            while len(tail) < self.first:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                tail += chunk
            self.data = len(tail)
            self.paused.set()
            start = time.monotonic()
            while time.monotonic() - start < self.pause:
                # the kernel's view of the connection, without reading: a reset or
                # a FIN from the client ends ESTABLISHED
                state = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
                if state != TCP_ESTABLISHED:
                    self.gone_after = time.monotonic() - start
                    break
                time.sleep(0.05)
            conn.settimeout(5)
            last = tail[-5:]
            while True:
                try:
                    chunk = conn.recv(1 << 20)
                except OSError:
                    break
                if not chunk:
                    break
                self.data += len(chunk)
                last = (last + chunk)[-5:]
                if last == b"\r\n.\r\n":
                    self.final_dot = True
                    conn.sendall(b"250 accepted\r\n")
            if tail.endswith(b"\r\n.\r\n"):
                self.final_dot = True


MID_BODY = """
    import io, json
    from twisted.internet import defer, task
    from msmtp_twisted.protocol import compat

    def main(reactor):
        body = io.BytesIO((b"x" * 998 + b"\\n") * 40000)  # 40 MB: more than the buffers
        {make}
        outcome = {{}}
        d.addErrback(lambda f: outcome.setdefault("error", type(f.value).__name__))

        def watch():
            proto = factory.currentProtocol
            if proto is not None and proto.state.in_body and "in_body" not in outcome:
                outcome["in_body"] = True
                reactor.callLater(1.0, cancel)

        def cancel():
            outcome["final_dot_sent"] = factory.currentProtocol.state.final_dot_sent
            d.cancel()

        poll = task.LoopingCall(watch)
        poll.start(0.02)
        done = defer.Deferred()

        def finish():
            poll.stop()
            print(json.dumps(outcome))
            done.callback(None)
        reactor.callLater(4.0, finish)
        return done
    task.react(main)
"""


@pytest.mark.parametrize("how", ["sendmail", "factory"])
def test_cancel_in_the_middle_of_the_mail(tmp_path, how) -> None:
    server = SlowDataServer()
    server.start()
    if how == "sendmail":
        # sendmail() keeps its factory to itself: catch it on its way to connectTCP
        make = ("connect, made = reactor.connectTCP, []\n"
                "        reactor.connectTCP = lambda *a, **k: "
                "made.append(a[2]) or connect(*a, **k)\n"
                f"        d = compat.sendmail('127.0.0.1', 'me@example.com', ['you@example.org'], "
                f"body, port={server.port}, reactor=reactor)\n"
                "        reactor.connectTCP = connect\n"
                "        factory = made[0]")
    else:
        make = ("d = defer.Deferred()\n"
                "        factory = compat.ESMTPSenderFactory(None, None, 'me@example.com', "
                "['you@example.org'], body, d, requireAuthentication=False, "
                "requireTransportSecurity=False)\n"
                f"        reactor.connectTCP('127.0.0.1', {server.port}, factory)")
    result = _run(MID_BODY.format(make=make), tmp_path)
    assert server.finished.wait(30)
    assert server.error is None, server.error
    assert result == {"in_body": True, "final_dot_sent": False, "error": "CancelledError"}
    assert server.paused.is_set()
    # the connection was cut at the cancel (1 s into the pause), not when the
    # server went on reading; and the mail never ended
    assert server.gone_after is not None and server.gone_after < 8, server.gone_after
    assert not server.final_dot
    assert server.data < 40_000_000


NEVER_GREETS = """
    import io, json
    from twisted.internet import defer, protocol, stdio, task
    from msmtp_twisted.protocol import compat

    class UntilEOF(protocol.Protocol):
        def __init__(self, done):
            self.done = done

        def connectionLost(self, reason):
            if not self.done.called:
                self.done.callback(None)

    def main(reactor):
        {make}
        outcome = {{}}
        d.addErrback(lambda f: outcome.setdefault("error", type(f.value).__name__))
        reactor.callLater(0.5, d.cancel)
        # stay alive past the cancel until the test has seen the connection closed
        # (it closes our stdin then; 30 s at most): the connection must close at the
        # cancel, not when this process ends
        done = defer.Deferred()
        stdio.StandardIO(UntilEOF(done), reactor=reactor)
        reactor.callLater(30.0, lambda: done.called or done.callback(None))
        return done.addCallback(lambda _: print(json.dumps(outcome)))
    task.react(main)
"""


@pytest.mark.parametrize("how", ["sendmail", "factory"])
def test_cancel_against_a_server_that_never_greets(tmp_path, how) -> None:
    with RecordingServer(greeting=HANG) as server:
        if how == "sendmail":
            make = (f"d = compat.sendmail('127.0.0.1', 'me@example.com', ['you@example.org'], "
                    f"b'Subject: x\\n\\nbody\\n', port={server.port}, reactor=reactor)")
        else:
            make = ("d = defer.Deferred()\n"
                    "        factory = compat.ESMTPSenderFactory(None, None, 'me@example.com', "
                    "['you@example.org'], io.BytesIO(b'Subject: x\\n\\nbody\\n'), d, "
                    "requireAuthentication=False, requireTransportSecurity=False)\n"
                    f"        reactor.connectTCP('127.0.0.1', {server.port}, factory)")
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(NEVER_GREETS.format(make=make))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT,
            env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
        try:
            deadline = time.monotonic() + 6.0
            closed = False
            while time.monotonic() < deadline and child.poll() is None:
                if server.sessions and server.session.closed_by is not None:
                    closed = True
                    break
                time.sleep(0.05)
            assert closed, "the connection stayed open after the cancel"
            assert child.poll() is None  # closed by the cancel, not by the exit
            out, err = child.communicate(timeout=60)  # closes its stdin: it may end
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"error": "CancelledError"}
        assert server.session.closed_by == "client"
        assert server.session.commands == []


def test_cancel_after_the_final_dot_keeps_the_verdict(tmp_path) -> None:
    """The server has the whole mail: the connection is not cut, the Deferred fails
    with CancelledError (as a cancelled Deferred must) and the verdict is logged."""

    def slow_accept(session, command):
        time.sleep(1.5)
        return "250 2.0.0 accepted after all"

    with RecordingServer(replies={"EOD": slow_accept}) as server:
        result = _run(f"""
            import io, json
            from twisted.internet import defer, task
            from twisted.logger import globalLogPublisher, formatEvent
            from msmtp_twisted.protocol import compat

            events = []
            globalLogPublisher.addObserver(lambda e: events.append(formatEvent(e)))

            def main(reactor):
                d = defer.Deferred()
                factory = compat.ESMTPSenderFactory(
                    None, None, "me@example.com", ["you@example.org"],
                    io.BytesIO(b"Subject: late\\n\\nbody\\n"), d,
                    requireAuthentication=False, requireTransportSecurity=False)
                reactor.connectTCP("127.0.0.1", {server.port}, factory)
                outcome = {{}}
                d.addErrback(lambda f: outcome.setdefault("error", type(f.value).__name__))

                def watch():
                    proto = factory.currentProtocol
                    if proto is not None and proto.state.final_dot_sent and poll.running:
                        poll.stop()
                        d.cancel()
                poll = task.LoopingCall(watch)
                poll.start(0.01)

                def report():
                    outcome["log"] = [e for e in events if "final dot" in e]
                    print(json.dumps(outcome))
                return task.deferLater(reactor, 6.0, report)
            task.react(main)
        """, tmp_path)
        server.wait_idle(timeout=10)
    assert result["error"] == "CancelledError"
    assert server.message.complete
    assert server.quit_received
    assert any("then accepted by the server" in line for line in result["log"]), result
