"""The client's reading path under hostile and unbounded input (issue 10, items 10 and 11).

Property-based: :class:`ReplyReader` fed arbitrary bytes in arbitrary pieces, and
without end, and a real :class:`SessionProtocol` (msmtp's sendmail session) on a
``StringTransport`` whose "server" sends arbitrary and endless bytes at any moment --
also while the mail is being sent or a password looked up.  Never an exception other
than :class:`ReplyError` from the reader, never one out of the protocol, the stored
bytes stay bounded, and the session never succeeds unless a reply came after the final
dot.  Then the same paths one by one: replies during the body, a flood while the
password is looked up, the timeout applying to each read (msmtp's semantics), and a
server trickling for ever ended by msmtp's 50-line limit.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.protocol.session import HARD_LIMIT, HIGH_WATER, SessionProtocol
from msmtp_twisted.smtp.client import (
    RECEIVE,
    SEND_BODY,
    AuthRequest,
    Delivered,
    Send,
    SendmailRequest,
    SMTPFailure,
    sendmail_session,
)
from msmtp_twisted.smtp.reply import MAX_LINE, MAX_LINES, Reply, ReplyError, ReplyReader

#: what one read of a real transport delivers at most (Twisted reads 64 KiB)
READ_SIZE = 65536

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the reader alone -------------------------------------------------------------------

def _reference(data: bytes) -> tuple[list[Reply], bool]:
    """msmtp's rules written plainly: the replies in ``data`` and whether an invalid
    reply followed them."""
    replies: list[Reply] = []
    lines: list[str] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return replies, len(data) - pos >= MAX_LINE
        raw = data[pos:nl + 1]
        pos = nl + 1
        if (len(raw) > MAX_LINE or len(raw) < 4 or not raw[:3].isdigit()
                or raw[3:4] not in (b" ", b"-")):
            return replies, True
        if len(lines) == MAX_LINES:
            return replies, True
        lines.append(raw.rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "surrogateescape"))
        if raw[3:4] == b" ":
            replies.append(Reply(int(lines[0][:3]), tuple(lines)))
            lines = []


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def _read_all(reader: ReplyReader, pieces: list[bytes]) -> tuple[list[Reply], bool]:
    """Feed ``pieces`` one by one through receive()/next_reply(), as the protocol does;
    check the bound after every piece."""
    replies: list[Reply] = []
    for piece in pieces:
        reader.receive(piece)
        try:
            while (reply := reader.next_reply()) is not None:
                replies.append(reply)
        except ReplyError:
            return replies, True
        # what is left is at most one unterminated line and one reply's lines
        assert reader.buffered < MAX_LINE
        assert reader.lines_pending <= MAX_LINES
    return replies, False


LINES = st.sampled_from([
    b"220 mx ESMTP\r\n", b"250 ok\r\n", b"250-PIPELINING\r\n", b"250 x\n", b"354 go\r\n",
    b"554 5.3.4 too big\r\n", b"221 bye\r\n", b"250-" + b"y" * 1017 + b"\r\n",
    b"250 " + b"z" * 1018 + b"\r\n", b"25", b"0 ok\r\n", b"\r\n", b"\x00\xff\r\n",
])
STREAMS = st.one_of(
    st.binary(max_size=3000),
    st.lists(LINES, max_size=80).map(b"".join),
    st.lists(st.one_of(LINES, st.binary(max_size=20)), max_size=60).map(b"".join),
)


@FUZZ
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_reader_any_bytes_in_any_pieces(data: bytes, cuts: list[int]) -> None:
    expected, invalid = _reference(data)
    got, error = _read_all(ReplyReader(), _pieces(data, cuts))
    assert got == expected[:len(got)]
    if error:
        assert invalid and len(got) == len(expected)
    else:
        assert len(got) == len(expected)
    # feed() (everything at once) agrees
    reader = ReplyReader()
    try:
        assert reader.feed(data) == expected
        assert not invalid
    except ReplyError:
        assert invalid


@settings(FUZZ, max_examples=40)
@given(pattern=st.one_of(LINES, st.binary(min_size=1, max_size=40),
                         st.lists(LINES, min_size=1, max_size=5).map(b"".join)),
       size=st.integers(min_value=1, max_value=READ_SIZE + 7),
       total=st.integers(min_value=READ_SIZE, max_value=1 << 20))
def test_reader_endless_input_stays_bounded(pattern: bytes, size: int, total: int) -> None:
    """A server that never stops (here: up to 1 MB in pieces of any size): every piece
    is parsed away or is an error at once."""
    reader = ReplyReader()
    block = pattern * (size // len(pattern) + 1)
    sent = 0
    while sent < total:
        start = sent % len(pattern)
        piece = block[start:start + size]
        sent += len(piece)
        reader.receive(piece)
        try:
            while reader.next_reply() is not None:
                pass
        except ReplyError:
            return
        assert reader.buffered < MAX_LINE
        assert reader.lines_pending <= MAX_LINES


@given(st.lists(st.tuples(st.integers(100, 599), st.lists(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    min_size=1, max_size=MAX_LINES)), max_size=10), st.booleans())
def test_reader_round_trip(replies: list[tuple[int, list[str]]], crlf: bool) -> None:
    end = "\r\n" if crlf else "\n"
    wire = "".join(f"{code}{'-' if i < len(texts) - 1 else ' '}{t}{end}"
                   for code, texts in replies for i, t in enumerate(texts)).encode()
    expected = [Reply(code, tuple(f"{code}{'-' if i < len(texts) - 1 else ' '}{t}"
                                  for i, t in enumerate(texts))) for code, texts in replies]
    assert _read_all(ReplyReader(), [wire[i:i + 7] for i in range(0, len(wire), 7)]) == (
        expected, False)


def test_reader_error_sticks() -> None:
    reader = ReplyReader()
    reader.receive(b"250 ok\r\nnot a reply\r\n250 ok\r\n")
    assert reader.next_reply() == Reply(250, ("250 ok",))
    for _ in range(2):
        with pytest.raises(ReplyError, match="invalid reply"):
            reader.next_reply()


# -- a real SessionProtocol on a StringTransport ----------------------------------------

class Body:
    """The mail: ``chunks`` lines of 1000 bytes (no dots, so the final dot is easy to see)."""

    CHUNK = b"x" * 998 + b"\r\n"

    def __init__(self, chunks: int) -> None:
        self.left = chunks
        self.sent = 0

    def next_chunk(self) -> bytes | None:
        if self.left == 0:
            return None
        self.left -= 1
        self.sent += 1
        return self.CHUNK

    @property
    def mailsize(self) -> int:
        return self.sent * len(self.CHUNK)


class NoPauseTransport(StringTransport):
    """A transport that cannot stop reading (the hard limit must then hold)."""

    pauseProducing = None  # type: ignore[assignment]


class Wire:
    """A SessionProtocol on a StringTransport, driven like a connection: what the server
    sends waits in a "kernel buffer" and reaches the protocol in reads of at most
    ``READ_SIZE`` bytes only while the transport reads (it stops when the protocol
    pauses it); the body is pulled when the test says; timers run on a Clock."""

    def __init__(self, session: Any, *, timeout: float | None = 5, body: Body | None = None,
                 password: Any = None, transport: StringTransport | None = None) -> None:
        self.clock = Clock()
        self.transport = transport if transport is not None else StringTransport()
        self.body = body
        self.proto = SessionProtocol(session, clock=self.clock, timeout=timeout, body=body,
                                     password=password)
        self.outcome: list[Any] = []
        self.proto.done.addBoth(self.outcome.append)
        self.backlog = bytearray()
        self.lost = False
        self.max_buffered = 0
        self.dot_written = False
        self.after_dot = bytearray()  # what reached the protocol after the final dot
        self.proto.makeConnection(self.transport)
        self._settle()

    @property
    def reading(self) -> bool:
        return not self.lost and self.transport.producerState == "producing"

    def send(self, data: bytes) -> None:
        self.backlog += data
        self.pump()

    def pump(self) -> None:
        while self.backlog and self.reading:
            piece = bytes(self.backlog[:READ_SIZE])
            del self.backlog[:READ_SIZE]
            if self.dot_written:
                self.after_dot += piece
            self.proto.dataReceived(piece)
            self.max_buffered = max(self.max_buffered, self.proto._reader.buffered)
            self._settle()

    def pull(self, times: int = 1) -> None:
        for _ in range(times):
            producer = self.transport.producer
            if producer is None or self.lost:
                break
            producer.resumeProducing()
            self._settle()

    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._settle()

    def eof(self) -> None:
        if not self.lost:
            self.lost = True
            self.proto.connectionLost(Failure(ConnectionDone()))

    def finish(self) -> Any:
        """End of the script: the server closes; the outcome."""
        self.eof()
        self.clock.advance(1000)
        assert len(self.outcome) == 1, self.outcome
        return self.outcome[0]

    def settle(self) -> None:
        """See what the protocol did to the transport (after a Deferred fired)."""
        self._settle()
        self.pump()

    def _settle(self) -> None:
        if self.transport.value().endswith(b"\r\n.\r\n"):
            self.dot_written = True
        if self.transport.disconnecting and not self.lost:
            self.lost = True
            self.proto.connectionLost(Failure(ConnectionDone()))

    @property
    def result(self) -> Any:
        assert self.outcome, "the session has not ended"
        outcome = self.outcome[0]
        return outcome.value if isinstance(outcome, Failure) else outcome

    def commands(self) -> list[bytes]:
        return self.transport.value().split(b"\r\n")


def sendmail(**kwargs: Any) -> Any:
    return sendmail_session(SendmailRequest(envelope_from="a@example.com",
                                            recipients=("r@example.org",), **kwargs))


GREETING = b"220 mx ESMTP\r\n"
EHLO = b"250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"
ENVELOPE = b"250 ok\r\n250 ok\r\n354 go ahead\r\n"
COOPERATIVE = [GREETING, EHLO, b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n",
               b"250 queued\r\n", b"221 bye\r\n"]

SERVER_BYTES = st.one_of(
    LINES,
    st.binary(max_size=100),
    st.tuples(st.sampled_from([b"250 x\r\n", b"250-x\r\n", b"354 go\r\n", b"x", b"2",
                               b"250 ok\r\n" * 3]),
              st.integers(1, 400_000)).map(lambda t: t[0] * t[1]),
)
EVENTS = st.lists(st.one_of(
    st.tuples(st.just("send"), SERVER_BYTES),
    st.tuples(st.just("pull"), st.integers(1, 40)),
    st.tuples(st.just("tick"), st.floats(0, 12)),
), max_size=25)


@FUZZ
@given(cooperative=st.integers(0, len(COOPERATIVE)), events=EVENTS,
       chunks=st.integers(0, 30), interleave=st.booleans())
def test_session_protocol_under_any_server(cooperative: int, events: list[tuple[str, Any]],
                                           chunks: int, interleave: bool) -> None:
    wire = Wire(sendmail(), body=Body(chunks))
    script: list[tuple[str, Any]] = [("send", line) for line in COOPERATIVE[:cooperative]]
    if interleave and cooperative >= 5:
        script.insert(5, ("pull", chunks + 1))
    for kind, arg in script + events:
        if kind == "send":
            wire.send(arg)
        elif kind == "pull":
            wire.pull(arg)
        else:
            wire.tick(arg)
        # bounded: one read beyond the high-water mark at most (then reading stops)
        assert wire.proto._reader.buffered <= HIGH_WATER + READ_SIZE
    outcome = wire.finish()
    assert wire.max_buffered <= HIGH_WATER + READ_SIZE
    if isinstance(outcome, Failure):
        assert isinstance(outcome.value, SMTPFailure), outcome
        event(outcome.value.message)  # --hypothesis-show-statistics: how far examples get
        assert outcome.value.exitcode in (sysexits.EX_PROTOCOL, sysexits.EX_IOERR,
                                          sysexits.EX_DATAERR, sysexits.EX_UNAVAILABLE)
    else:
        assert isinstance(outcome, Delivered)
        event("delivered")
        # never a success unless the server replied after the whole mail and the dot
        assert wire.dot_written and b"\n" in wire.after_dot, (outcome, bytes(wire.after_dot))
        assert wire.body is not None and wire.body.left == 0


# -- item 10: replies while the mail is sent ---------------------------------------------

def _at_body(chunks: int = 50) -> Wire:
    wire = Wire(sendmail(), body=Body(chunks))
    wire.send(GREETING + EHLO + ENVELOPE)
    assert wire.transport.producer is not None  # the body is being sent
    wire.pull(3)
    return wire


def test_flood_of_250_during_the_body_is_no_acceptance() -> None:
    """msmtp 1.8.23 reads nothing while it sends the mail, then takes the first flooded
    ``250`` as the reply to the final dot and exits 0.  We stop at the first one."""
    wire = _at_body()
    wire.send(b"250 x\r\n" * 1_000_000)  # 7 MB
    failure = wire.result
    assert isinstance(failure, SMTPFailure)
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_PROTOCOL, "the server replied before the end of the mail")
    assert failure.reply == Reply(250, ("250 x",))
    assert wire.transport.producer is None and wire.body is not None and wire.body.left > 0
    assert not wire.dot_written and wire.lost
    assert wire.max_buffered <= READ_SIZE  # nothing piled up
    assert wire.backlog  # the rest was never even read


def test_refusal_during_the_body_stops_it() -> None:
    """A server refusing the mail as it grows (552/554) gets msmtp's answer to a refusal
    after the dot -- at once, without the rest of the mail."""
    wire = _at_body()
    wire.send(b"554 5.3.4 message too big\r\n")
    failure = wire.result
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_UNAVAILABLE, "the server did not accept the mail")
    assert failure.reply.lines == ("554 5.3.4 message too big",)
    assert wire.body is not None and wire.body.left == 47 and not wire.dot_written


def test_reply_sent_with_the_354_is_no_acceptance() -> None:
    wire = Wire(sendmail(), body=Body(5))
    wire.send(GREETING + EHLO + b"250 ok\r\n250 ok\r\n354 go ahead\r\n250 queued\r\n")
    failure = wire.result
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_PROTOCOL, "the server replied before the end of the mail")
    assert wire.body is not None and wire.body.sent == 0


def test_partial_reply_during_body_completed_after_the_dot() -> None:
    """Bytes of a reply that is not complete before the dot are just early bytes."""
    wire = _at_body(5)
    wire.send(b"25")
    wire.pull(10)
    assert wire.dot_written
    wire.send(b"0 queued\r\n221 bye\r\n")
    assert isinstance(wire.result, Delivered)


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_sans_io_session_judges_an_early_reply(protocol: str) -> None:
    for reply, exitcode in ((Reply(250, ("250 x",)), sysexits.EX_PROTOCOL),
                            (Reply(354, ("354 again",)), sysexits.EX_PROTOCOL),
                            (Reply(452, ("452 full",)), sysexits.EX_UNAVAILABLE),
                            (Reply(554, ("554 no",)), sysexits.EX_UNAVAILABLE)):
        session = sendmail(protocol=protocol)
        replies = iter([Reply(220, ("220 x",)), Reply(250, ("250 x",)), Reply(250, ("250 a",)),
                        Reply(250, ("250 b",)), Reply(354, ("354 go",))])
        value = None
        while True:
            action = session.send(value)
            value = None
            if action is RECEIVE:
                value = next(replies)
            elif action is SEND_BODY:
                break
            else:
                assert isinstance(action, Send)
        with pytest.raises(SMTPFailure) as info:
            session.send(reply)
        assert info.value.exitcode == exitcode and info.value.reply == reply


# -- item 10: a flood while the session does not read ------------------------------------

def _waiting_for_password(transport: StringTransport | None = None
                          ) -> tuple[Wire, defer.Deferred[str]]:
    password: defer.Deferred[str] = defer.Deferred()
    wire = Wire(sendmail(auth=AuthRequest(mechanism="PLAIN", user="joe")),
                body=Body(1), password=lambda: password, transport=transport)
    wire.send(GREETING + EHLO)
    assert b"AUTH" not in wire.transport.value()  # asking for the password
    return wire, password


def test_flood_while_the_password_is_looked_up_stops_reading() -> None:
    wire, password = _waiting_for_password()
    wire.send(b"250 x\r\n" * 600_000)  # 4.2 MB
    assert wire.transport.producerState == "paused"
    assert HIGH_WATER < wire.proto._reader.buffered <= HIGH_WATER + READ_SIZE
    assert len(wire.backlog) > 3_000_000  # left in the "kernel buffers"
    assert not wire.outcome
    password.callback("secret")
    wire.settle()
    # AUTH went out, reading resumed, and the next reply (a flooded 250) is its answer
    assert b"AUTH PLAIN " in wire.transport.value()
    failure = wire.result
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_NOPERM, "authentication failed (method PLAIN)")


def test_flood_on_a_transport_that_cannot_pause_hits_the_hard_limit() -> None:
    wire, _ = _waiting_for_password(NoPauseTransport())
    wire.send(b"250 x\r\n" * 300_000)
    failure = wire.result
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_PROTOCOL, "the server sent more data than expected")
    assert wire.max_buffered <= HARD_LIMIT + READ_SIZE
    assert wire.transport.disconnected  # aborted


# -- item 11: the timeout applies to each read --------------------------------------------

def test_slow_multiline_greeting_is_waited_for_line_by_line() -> None:
    """msmtp's timeout bounds each read: an 11-line greeting, one line every 4 s, with
    ``timeout 5`` is fine (44 s in all)."""
    wire = Wire(sendmail(), timeout=5, body=Body(1))
    for i in range(10):
        wire.send(b"220-line %d\r\n" % i)
        wire.tick(4)
    assert not wire.outcome
    wire.send(b"220 last\r\n")
    assert wire.commands()[0] == b"EHLO localhost"


@pytest.mark.parametrize("step", ["EHLO", "AUTH", "DATA", "EOD", "QUIT"])
def test_each_reply_may_take_longer_than_the_timeout(step: str) -> None:
    password = "pw"
    wire = Wire(sendmail(auth=AuthRequest(mechanism="PLAIN", user="joe", password=password)),
                timeout=5, body=Body(2))
    slow = {"EHLO": EHLO, "AUTH": b"235-a\r\n235-b\r\n235-c\r\n235 ok\r\n",
            "DATA": b"250 ok\r\n250 ok\r\n354-a\r\n354-b\r\n354 go ahead\r\n",
            "EOD": b"250-a\r\n250-b\r\n250-c\r\n250 queued\r\n",
            "QUIT": b"221-a\r\n221-b\r\n221-c\r\n221 bye\r\n"}
    wire.send(GREETING)
    for name in ("EHLO", "AUTH", "DATA", "EOD", "QUIT"):
        if name == "EOD":
            wire.pull(3)
        data = slow[name]
        if name != step:
            wire.send(data)
            continue
        for line in data.splitlines(keepends=True):
            assert not wire.lost, name  # still waiting: no timeout
            wire.send(line)
            wire.tick(4)
    assert isinstance(wire.result, Delivered)
    assert wire.commands()[-2] == b"QUIT"


def test_silence_still_times_out_after_one_timeout() -> None:
    wire = Wire(sendmail(), timeout=5, body=Body(1))
    wire.send(b"220-first\r\n22")
    wire.tick(4.9)
    assert not wire.outcome
    wire.tick(0.2)
    failure = wire.result
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_IOERR, "network read error: the operation timed out")


def test_server_trickling_for_ever_is_ended_by_the_line_limit() -> None:
    """One continuation line every 4 s with ``timeout 5``: no read times out, and msmtp's
    limit of 50 lines per reply ends it (each line is at most 1023 bytes)."""
    wire = Wire(sendmail(), timeout=5, body=Body(1))
    for i in range(60):
        if wire.outcome:
            break
        wire.send(b"220-still greeting %d\r\n" % i)
        wire.tick(4)
    failure = wire.result
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_PROTOCOL,
        "Rejecting server reply that is longer than 50 lines. Increase SMTP_MAXLINES.")
    assert i == MAX_LINES + 1  # lines sent: the 51st was refused
