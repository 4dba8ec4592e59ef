"""Property-based fuzzing of msmtpd's session (issue 10, "How it is checked").

Random sessions — valid verbs with random arguments, AUTH dialogues, DATA with
random bodies, random bytes, over-long lines, all pipelined and cut into random
chunks, with EOF at a random point — are fed to

- the sans-IO :class:`~msmtp_twisted.smtp.server.SMTPServer`, answering its
  AuthAttempt and MessageEnd events with random verdicts, now or a chunk later;
- the Twisted driver :class:`~msmtp_twisted.daemon.protocol.MsmtpdProtocol`
  over a StringTransport and a fake clock (real spool files, a command that does
  not exist, a spool directory that sometimes cannot be written).

Asserted: no exception; exactly one reply for every complete command line read
(a model walks the bytes that were fed: command lines, the DATA body up to its
final dot, the end after 221/421); buffers stay bounded; log messages are one
line each.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address

from msmtp_twisted.daemon.checkers import StaticChecker
from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.smtp.server import (
    AuthAttempt,
    Close,
    Log,
    MessageAborted,
    MessageBegin,
    MessageData,
    MessageEnd,
    ServerLimits,
    ServerReply,
    SMTPServer,
    delivery_reply,
)
from tests.servers.msmtpd import fake_connect, fake_factory

# --- random sessions ---------------------------------------------------------------------

EOL = st.sampled_from([b"\r\n", b"\n"])
ADDRESS = st.one_of(
    st.sampled_from(["a@b", "", "MAILER-DAEMON", "-x@y", "a b@c", "x" * 300 + "@y", "a@b>x"]),
    st.from_regex(r"[A-Za-z0-9.@_+/=-]{1,40}", fullmatch=True),
    st.text(max_size=12),
)
GOOD_ADDRESS = st.from_regex(r"[a-z0-9][a-z0-9.+=_-]{0,10}@[a-z0-9.]{1,10}", fullmatch=True)
B64 = st.one_of(
    st.sampled_from([b"AGJvYgBwdw==", b"Ym9i", b"cHc=", b"=", b"*", b"!!", b""]),
    st.binary(max_size=40).map(base64.b64encode),
    st.tuples(st.sampled_from(["", "bob"]),
              st.one_of(st.sampled_from(["bob", "a\r\nb", "\u00fc\u00df", "x\ty"]),
                        st.text(max_size=8)),
              st.text(max_size=8)).map(lambda t: base64.b64encode("\0".join(t).encode())),
)


def _case(verb: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from([verb, verb.lower(), verb.capitalize()]).map(str.encode)


@st.composite
def data_block(draw: Any, eol: bytes) -> bytes:
    """DATA, a random body, and (mostly) its final dot."""
    body = draw(st.lists(st.one_of(
        st.sampled_from([b".", b"..", b".x", b"", b"\r", b"x\ry", b"\x00\xff", b"y" * 70]),
        st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))), max_size=8))
    end = draw(st.sampled_from([b".\r\n", b".\n", b".\r\n", b"", b".\r\r\n"]))
    return draw(_case("DATA")) + eol + b"".join(line + draw(EOL) for line in body) + end


@st.composite
def command(draw: Any, max_line: int) -> bytes:
    kind = draw(st.sampled_from(
        ["helo", "mail", "rcpt", "rcpt", "data", "rset", "noop", "vrfy", "help", "quit",
         "auth", "b64", "bytes", "long", "transaction", "transaction", "transaction",
         "login", "login"]))
    eol = draw(EOL)
    if kind == "transaction":  # a valid one, so that DATA is reached often
        rcpts = draw(st.lists(GOOD_ADDRESS, min_size=1, max_size=4))
        return (f"MAIL FROM:<{draw(GOOD_ADDRESS)}>".encode() + eol
                + b"".join(f"RCPT TO:<{r}>".encode() + draw(EOL) for r in rcpts)
                + draw(data_block(draw(EOL))))
    if kind == "login":
        creds = draw(st.sampled_from([("bob", "pw"), ("bob", "wrong"), ("a\nb", "pw")]))
        plain = base64.b64encode(f"\0{creds[0]}\0{creds[1]}".encode())
        user, pw = (base64.b64encode(c.encode()) for c in creds)
        return draw(st.sampled_from([
            b"AUTH PLAIN " + plain + eol, b"AUTH PLAIN" + eol + plain + eol,
            b"AUTH LOGIN" + eol + user + eol + pw + eol, b"AUTH LOGIN " + user + eol + pw + eol,
        ]))
    if kind == "helo":
        verb = draw(st.one_of(_case("EHLO"), _case("HELO")))
        return verb + b" " + draw(st.text(max_size=20)).encode() + eol
    if kind == "mail":
        params = draw(st.lists(st.one_of(
            st.integers(min_value=0, max_value=10**12).map(lambda n: f"SIZE={n}"),
            st.sampled_from(["SIZE=", "SIZE=x", "SIZE=" + "9" * 5000, "BODY=8BITMIME",
                             "BODY=7BIT", "BODY=x", "AUTH=<>", "FOO=bar"])), max_size=2))
        line = f"MAIL FROM:<{draw(ADDRESS)}>" + "".join(" " + p for p in params)
        return draw(_case("MAIL")) + line[4:].encode("utf-8", "replace") + eol
    if kind == "rcpt":
        return draw(_case("RCPT")) + f" TO:<{draw(ADDRESS)}>".encode() + eol
    if kind == "data":
        return draw(data_block(eol))
    if kind in ("rset", "noop", "help", "quit"):
        return draw(_case(kind.upper())) + eol
    if kind == "vrfy":
        return b"VRFY " + draw(st.binary(max_size=10)).replace(b"\n", b"") + eol
    if kind == "auth":
        mech = draw(st.sampled_from([b"PLAIN", b"LOGIN", b"plain", b"CRAM-MD5", b""]))
        initial = draw(st.one_of(st.just(b""), B64.map(lambda b: b" " + b)))
        return b"AUTH " + mech + initial + eol
    if kind == "b64":
        return draw(B64) + eol
    if kind == "bytes":
        return draw(st.binary(max_size=80)) + draw(st.sampled_from([b"", eol]))
    return b"X" * draw(st.integers(min_value=max_line - 3, max_value=max_line + 40)) + eol


@st.composite
def scenario(draw: Any) -> dict[str, Any]:
    max_line = draw(st.sampled_from([64, 300, 4096, 12000]))
    commands = draw(st.lists(command(max_line), min_size=1, max_size=25))
    auth = draw(st.booleans())
    if draw(st.integers(0, 4)):  # most sessions start right
        start = b"EHLO client.example\r\n"
        if auth and draw(st.integers(0, 3)):
            start += b"AUTH PLAIN " + base64.b64encode(b"\0bob\0pw") + b"\r\n"
        commands.insert(0, start)
    stream = b"".join(commands)
    cut = len(stream)
    eof = draw(st.booleans())
    if eof:
        cut = draw(st.integers(min_value=0, max_value=len(stream)))
    stream = stream[:cut]
    sizes = draw(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=40))
    chunks, pos, k = [], 0, 0
    while pos < len(stream):
        size = sizes[k % len(sizes)]
        chunks.append(stream[pos : pos + size])
        pos += size
        k += 1
    limits = ServerLimits(
        max_line=max_line,
        max_message_size=draw(st.sampled_from([40, 100_000])),
        max_recipients=draw(st.sampled_from([2, 100])),
        max_envelope=draw(st.sampled_from([None, 10_000, 100])),
        max_address=draw(st.sampled_from([None, 1000, 12])),
    )
    return {"stream": stream, "chunks": chunks, "eof": eof, "limits": limits, "auth": auth}


# --- the model: one reply per complete command line ----------------------------------------


def parse_replies(wire: bytes) -> list[int]:
    """The codes of complete replies on the wire (multi-line replies count once)."""
    assert wire == b"" or wire.endswith(b"\r\n"), wire[-80:]
    codes = []
    for line in wire.split(b"\r\n")[:-1]:
        assert len(line) >= 4 and line[:3].isdigit() and line[3:4] in (b" ", b"-"), line
        if line[3:4] == b" ":
            codes.append(int(line[:3]))
    return codes


def check_replies(stream: bytes, codes: list[int], max_line: int) -> None:
    """Walk the bytes the server was fed and take one reply per command line."""
    assert codes[:1] == [220]
    i = 1
    pos = 0
    in_data = False
    while True:
        nl = stream.find(b"\n", pos)
        if nl < 0:
            break  # an unfinished line gets no reply
        line = stream[pos : nl + 1]
        pos = nl + 1
        if in_data:
            if line in (b".\n", b".\r\n"):
                assert i < len(codes), ("no reply to the end of DATA", codes)
                assert codes[i] in (250, 451, 452, 552, 554), codes[i]
                i += 1
                in_data = False
            continue
        assert i < len(codes), ("no reply to", line[:80], codes)
        code = codes[i]
        i += 1
        if len(line) > max_line:
            assert code == 500, (line[:40], code)
        elif code == 354:
            assert line.rstrip(b"\r\n").upper() == b"DATA"
            in_data = True
        if code == 221:
            break
        if i < len(codes) and codes[i] == 421:  # three AUTH failures end the session
            assert code == 535
            i += 1
            break
    assert i == len(codes), ("replies without a command", codes[i:])


# --- the state machine ---------------------------------------------------------------------

VERDICTS = [delivery_reply(0), delivery_reply(75), delivery_reply(1), delivery_reply(None, 9),
            delivery_reply(127), delivery_reply(None, timed_out=True),
            ServerReply(452, ("Insufficient system storage",))]


class Session:
    """Feeds a SMTPServer and keeps the invariants of its events."""

    def __init__(self, data: Any, limits: ServerLimits, auth: bool) -> None:
        self.data = data
        self.server = SMTPServer(auth=auth, limits=limits)
        self.codes: list[int] = []
        self.in_mail = False
        self.size = 0
        self.pending: str | None = None
        self.take(self.server.start())

    def take(self, events: list[Any]) -> None:
        for e in events:
            assert self.pending is None, ("events while waiting", e)
            if isinstance(e, ServerReply):
                e.to_bytes()  # ASCII, or this raises
                self.codes.append(e.code)
            elif isinstance(e, Log):
                assert e.level in ("info", "error")
                assert e.message.isprintable(), e.message
            elif isinstance(e, MessageBegin):
                assert not self.in_mail
                self.in_mail, self.size = True, 0
            elif isinstance(e, MessageData):
                assert self.in_mail and e.data
                self.size += len(e.data)
            elif isinstance(e, MessageAborted):
                assert self.in_mail
                self.in_mail = False
            elif isinstance(e, MessageEnd):
                assert self.in_mail and e.size == self.size and e.recipients
                self.in_mail = False
                self.pending = "delivery"
            elif isinstance(e, AuthAttempt):
                self.pending = "auth"
            else:
                assert isinstance(e, Close)
        assert self.server.waiting == (self.pending is not None)

    def answer(self) -> None:
        while self.pending is not None:
            kind, self.pending = self.pending, None
            if kind == "auth":
                verdict = self.data.draw(st.sampled_from(["ok", "ok", "no", "temporary"]))
                self.take(self.server.auth_result(verdict == "ok",
                                                  temporary=verdict == "temporary"))
            else:
                self.take(self.server.delivery_result(self.data.draw(st.sampled_from(VERDICTS))))

    def feed(self, chunk: bytes) -> None:
        self.take(self.server.receive(chunk))
        limits = self.server.limits
        # What is held: at most a line being read, plus the one chunk read while
        # waiting (the driver pauses the transport then).
        assert len(self.server._buf) <= limits.max_line + 2 * 300


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.data())
def test_state_machine_answers_every_command(sc: dict[str, Any], data: Any) -> None:
    s = Session(data, sc["limits"], sc["auth"])
    for chunk in sc["chunks"]:
        if s.pending is not None and data.draw(st.booleans()):
            s.answer()  # else the answer comes after one more chunk, as when pipelining
        s.feed(chunk)
        if s.pending is not None and s.server._buf:
            s.answer()
    if sc["eof"]:
        s.take(s.server.receive_eof())
    s.answer()
    if sc["eof"]:
        assert s.server.state.value == "closed"
        assert not s.in_mail
    check_replies(sc["stream"], s.codes, sc["limits"].max_line)


# --- the Twisted driver ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spool_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    good = tmp_path_factory.mktemp("spool")
    bad = good / "not-a-directory"
    bad.write_text("")
    yield str(good), str(bad)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario(), st.data())
def test_driver_answers_every_command(spool_dirs: tuple[str, str], sc: dict[str, Any],
                                      data: Any) -> None:
    limits = sc["limits"]
    factory, clock = fake_factory(
        "host.example",
        command=PipeCommand.parse("/nonexistent/msmtp -f %F --"),
        checker=StaticChecker("bob", "pw") if sc["auth"] else None,
        limits=limits, spool_threshold=64,
        spool_dir=data.draw(st.sampled_from(spool_dirs)),
        # the fuzz's clock moves up to a second per chunk: over a long stream the minimum
        # data rate would rightly end the session with a 421 the one-reply-per-line model
        # does not expect (tests/integration/test_msmtpd_hardening.py covers that timeout)
        request_timeout=0)
    proto, tr = fake_connect(factory, IPv4Address("TCP", "192.0.2.1", 1000))
    for chunk in sc["chunks"]:
        for _ in range(100):  # a paused transport delivers nothing until resumed
            if tr.producerState != "paused":
                break
            clock.advance(1)
        assert tr.producerState != "paused"
        if tr.disconnecting:
            break
        proto.dataReceived(chunk)
        assert len(proto.server._buf) <= limits.max_line + 300
        clock.advance(data.draw(st.sampled_from([0, 0.5, 1])))
    if sc["eof"] and not tr.disconnecting:
        proto.readConnectionLost()
    for _ in range(100):  # the AUTH delays
        if not proto.server.waiting:
            break
        clock.advance(1)
    assert not proto.server.waiting
    wire = tr.value()
    assert b"Internal error" not in wire
    check_replies(sc["stream"], parse_replies(wire), limits.max_line)
    proto.connectionLost(None)
    assert factory.active == 0 and proto.spool is None
    factory.close()
