"""Time in the kept connection and the Sender goes through the reactor passed in:
driven here by ``twisted.internet.task.Clock`` over an in-memory transport, so
the timeouts are exact and the test takes no time."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure

from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import Cause, SMTPFailure
from msmtp_twisted.protocol.connection import DEFAULT_TIMEOUT, connect
from msmtp_twisted.protocol.pool import Sender

EHLO = b"250-mx.test\r\n250 PIPELINING\r\n"


class Server:
    """One in-memory connection: what the client wrote, and a way to answer."""

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = proto
        proto.makeConnection(self.transport)

    def said(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def reply(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    @property
    def open(self) -> bool:
        return bool(self.transport.connected)


class Endpoint:
    """Connects each protocol to a new in-memory :class:`Server`."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        proto = factory.buildProtocol(None)
        self.servers.append(Server(proto))
        return defer.succeed(proto)


def account(timeout: int = 0) -> Account:
    acc = Account("t")
    acc.host, acc.port, acc.from_addr, acc.domain = "mx.test", 25, "me@x", "client.test"
    acc.timeout = timeout
    return acc


def outcome(d: defer.Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def ready(clock: Clock, endpoint: Endpoint, acc: Account | None = None, **kw: Any) -> Any:
    got = outcome(connect(clock, acc or account(), endpoint=endpoint, **kw))
    server = endpoint.servers[-1]
    server.reply(b"220 hi\r\n")
    assert server.said() == b"EHLO client.test\r\n"
    server.reply(EHLO)
    assert len(got) == 1 and not isinstance(got[0], Failure), got
    return got[0], server


def failure_of(got: list[Any]) -> SMTPFailure:
    assert len(got) == 1 and isinstance(got[0], Failure), got
    value = got[0].value
    assert isinstance(value, SMTPFailure)
    return value


def test_a_silent_server_times_out_with_the_default_timeout() -> None:
    clock, endpoint = Clock(), Endpoint()
    got = outcome(connect(clock, account(), endpoint=endpoint))
    server = endpoint.servers[0]
    clock.advance(DEFAULT_TIMEOUT - 1)
    assert got == [] and server.open
    clock.advance(1)
    assert failure_of(got).cause is Cause.TIMEOUT
    assert not server.open


def test_the_accounts_timeout_applies_to_each_wait() -> None:
    clock, endpoint = Clock(), Endpoint()
    conn, server = ready(clock, endpoint, account(timeout=5))
    got = outcome(conn.send(None, ["a@x"], b"Subject: s\n\nb\n"))
    assert server.said().startswith(b"MAIL FROM:<me@x>\r\nRCPT TO:<a@x>\r\nDATA\r\n")
    clock.advance(4.9)
    server.reply(b"250 ok\r\n")  # data keeps the wait alive
    clock.advance(4.9)
    assert got == []
    clock.advance(0.2)
    failure = failure_of(got)
    assert failure.cause is Cause.TIMEOUT and not server.open


def test_a_per_call_timeout_bounds_the_whole_send() -> None:
    clock, endpoint = Clock(), Endpoint()
    conn, server = ready(clock, endpoint)
    got = outcome(conn.send(None, ["a@x"], b"Subject: s\n\nb\n", timeout=3))
    for _ in range(5):  # a server that trickles keeps the per-read timer alive...
        clock.advance(0.5)
        server.reply(b"2")
    clock.advance(0.6)  # ...but not the call
    failure = failure_of(got)
    assert (failure.cause, failure.message) == (Cause.TIMEOUT, "the send timed out")
    assert not server.open


def test_timeout_after_the_final_dot_says_the_mail_may_be_delivered() -> None:
    clock, endpoint = Clock(), Endpoint()
    conn, server = ready(clock, endpoint)
    got = outcome(conn.send(None, ["a@x"], b"Subject: s\n\nb\n", timeout=10))
    server.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert server.said().endswith(b"\r\n.\r\n")
    clock.advance(10)
    failure = failure_of(got)
    assert failure.cause is Cause.TIMEOUT
    assert "may have been delivered" in failure.message


def test_cancel_before_the_final_dot_aborts_and_after_it_keeps_the_connection() -> None:
    clock, endpoint = Clock(), Endpoint()
    conn, server = ready(clock, endpoint)
    d = conn.send(None, ["a@x"], b"Subject: s\n\nb\n")
    got = outcome(d)
    server.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert server.said().endswith(b"\r\n.\r\n")
    d.cancel()  # after the dot: the connection stays, the verdict is awaited
    assert isinstance(got[0], Failure) and got[0].check(defer.CancelledError)
    assert server.open
    server.reply(b"250 queued\r\n")
    got2 = outcome(conn.send(None, ["b@x"], b"Subject: s\n\nb\n"))
    assert server.said().startswith(b"MAIL FROM:<me@x>\r\nRCPT TO:<b@x>")
    d2 = conn.send(None, ["c@x"], b"x\n")  # queued behind the running one
    got3 = outcome(d2)
    d2.cancel()  # not started: leaves the queue, the connection is untouched
    assert got3[0].check(defer.CancelledError) and server.open
    server.reply(b"250 ok\r\n250 ok\r\n")
    assert got2 == []
    outcome_running = got2
    # cancel the running one before its dot (waiting for DATA's reply): aborted
    running = conn._current
    assert running is not None
    running.deferred.cancel()
    assert outcome_running[0].check(defer.CancelledError)
    assert not server.open and not conn.reusable


def test_sender_idle_timeout_closes_with_quit_and_reconnects() -> None:
    clock, endpoint = Clock(), Endpoint()
    sender = Sender(clock, account(), connections=1, idle_timeout=30, endpoint=endpoint)
    got = outcome(sender.send(None, ["a@x"], b"Subject: s\n\nb\n"))
    server = endpoint.servers[0]
    server.reply(b"220 hi\r\n" + EHLO)
    server.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    server.reply(b"250 queued\r\n")
    assert len(got) == 1 and not isinstance(got[0], Failure)
    server.said()
    clock.advance(29)
    assert server.said() == b""
    clock.advance(1)
    assert server.said() == b"QUIT\r\n"
    server.reply(b"221 bye\r\n")
    clock.advance(5)
    assert not server.open
    got = outcome(sender.send(None, ["b@x"], b"Subject: s\n\nb\n"))
    assert len(endpoint.servers) == 2
    closed = outcome(sender.close())
    second = endpoint.servers[1]
    second.reply(b"220 hi\r\n" + EHLO)
    second.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    second.reply(b"250 queued\r\n")
    assert len(got) == 1 and not isinstance(got[0], Failure)
    assert second.said().endswith(b"QUIT\r\n")
    second.reply(b"221 bye\r\n")
    clock.advance(5)
    assert closed == [None]


def test_sender_queue_timeout_counts_from_the_call() -> None:
    clock, endpoint = Clock(), Endpoint()
    sender = Sender(clock, account(), connections=1, endpoint=endpoint)
    first = outcome(sender.send(None, ["a@x"], b"x\n"))
    second = outcome(sender.send(None, ["b@x"], b"x\n", timeout=5))
    clock.advance(5)
    assert failure_of(second).cause is Cause.TIMEOUT
    assert first == []


def test_sender_retries_when_an_idle_connection_said_421_without_closing() -> None:
    """A 421 that arrived while the connection was idle belongs to no command: the
    next send gives the connection up before sending anything and goes again on a
    new one (nothing of it reached the old server)."""
    clock, endpoint = Clock(), Endpoint()
    sender = Sender(clock, account(), connections=1, endpoint=endpoint)
    first = outcome(sender.send(None, ["a@x"], b"Subject: s\n\nb\n"))
    old = endpoint.servers[0]
    old.reply(b"220 hi\r\n" + EHLO)
    old.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    old.reply(b"250 queued\r\n")
    assert len(first) == 1 and not isinstance(first[0], Failure)
    old.said()
    old.reply(b"421 4.4.2 idle too long\r\n")  # and the server does not close
    second = outcome(sender.send(None, ["b@x"], b"Subject: s\n\nb\n"))
    assert old.said() == b"" and not old.open
    assert len(endpoint.servers) == 2
    new = endpoint.servers[1]
    new.reply(b"220 hi\r\n" + EHLO)
    assert new.said() == b"EHLO client.test\r\nMAIL FROM:<me@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"
    new.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    new.reply(b"250 queued\r\n")
    assert len(second) == 1 and not isinstance(second[0], Failure), second


def test_connection_fails_a_job_when_the_server_spoke_out_of_turn() -> None:
    clock, endpoint = Clock(), Endpoint()
    conn, server = ready(clock, endpoint)
    server.reply(b"250 surprise\r\n")
    got = outcome(conn.send(None, ["a@x"], b"x\n"))
    failure = failure_of(got)
    assert (failure.cause, failure.message) == (Cause.PROTOCOL,
                                                "the server sent data out of turn")
    assert server.said() == b"" and not server.open


def test_sender_idle_timeout_counts_from_the_last_mail() -> None:
    clock, endpoint = Clock(), Endpoint()
    sender = Sender(clock, account(), connections=1, idle_timeout=30, endpoint=endpoint)

    def one(to: bytes) -> None:
        got = outcome(sender.send(None, [to.decode()], b"Subject: s\n\nb\n"))
        server.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
        server.reply(b"250 queued\r\n")
        assert len(got) == 1 and not isinstance(got[0], Failure)

    got = outcome(sender.send(None, ["a@x"], b"Subject: s\n\nb\n"))
    server = endpoint.servers[0]
    server.reply(b"220 hi\r\n" + EHLO)
    server.reply(b"250 ok\r\n250 ok\r\n354 go\r\n")
    server.reply(b"250 queued\r\n")
    assert len(got) == 1
    clock.advance(20)
    one(b"b@x")  # reused at 20 s: idle again from here
    server.said()
    clock.advance(20)  # 40 s: the first timer fires, 20 s idle only
    assert server.said() == b"" and server.open
    clock.advance(10)  # 50 s: 30 s since the last mail
    assert server.said() == b"QUIT\r\n"
    assert len(endpoint.servers) == 1
