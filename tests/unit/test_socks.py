"""SOCKS5 as msmtp speaks it: the sans-IO negotiator against byte scripts (every
status, malformed replies, replies split byte by byte, bound addresses of every
type, long names, fuzzing), then the Twisted endpoint on an in-memory transport."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from msmtp_twisted.net.socks import (
    GREETING,
    STATUS_TEXTS,
    BoundAddress,
    Established,
    SOCKS5Error,
    SOCKS5Negotiator,
    connect_request,
)

OK_METHOD = b"\x05\x00"


def _reply(status: int = 0, atyp: int = 1, address: bytes = b"\x7f\x00\x00\x01",
           port: int = 2525, *, version: int = 5, reserved: int = 0) -> bytes:
    if atyp == 3:
        address = bytes([len(address)]) + address
    return bytes([version, status, reserved, atyp]) + address + port.to_bytes(2, "big")


def _run(host: bytes | str, port: int, script: bytes, *, split: int | None = None):
    """Feed ``script`` (whole, or in pieces of ``split`` bytes): (sent, outcome)."""
    negotiator = SOCKS5Negotiator(host, port)
    sent = [negotiator.initiate()]
    pieces = [script] if split is None else [script[i:i + split]
                                             for i in range(0, len(script), split)]
    try:
        for i, piece in enumerate(pieces):
            out, event = negotiator.receive(piece)
            if out:
                sent.append(out)
            if event is not None:  # the rest is the target's
                rest = event.data + b"".join(pieces[i + 1:])
                return sent, Established(event.bound, rest)
    except SOCKS5Error as e:
        return sent, (e.exitcode, e.message)
    return sent, None


# ---------------------------------------------------------------------------- requests


def test_greeting_and_request_bytes() -> None:
    sent, event = _run("mail.example.org", 587, OK_METHOD + _reply())
    assert sent == [b"\x05\x01\x00",
                    b"\x05\x01\x00\x03\x10mail.example.org\x02\x4b"]
    assert event == Established(BoundAddress(1, "127.0.0.1", 2525), b"")


def test_request_for_an_address_is_still_a_name() -> None:
    # msmtp always sends ATYP 3, even for a numeric address: the proxy resolves it
    assert connect_request("127.0.0.1", 25) == b"\x05\x01\x00\x03\x09127.0.0.1\x00\x19"
    assert connect_request("::1", 65535) == b"\x05\x01\x00\x03\x03::1\xff\xff"


@pytest.mark.parametrize("length", [0, 1, 254, 255])
def test_names_up_to_255_bytes(length: int) -> None:
    name = "a" * length
    sent, event = _run(name, 25, OK_METHOD + _reply())
    assert sent[1] == b"\x05\x01\x00\x03" + bytes([length]) + name.encode() + b"\x00\x19"
    assert isinstance(event, Established)


@pytest.mark.parametrize("name", ["a" * 256, "a" * 1000, "é" * 128])
def test_too_long_name_fails_before_sending(name: str) -> None:
    negotiator = SOCKS5Negotiator(name, 25)
    with pytest.raises(SOCKS5Error) as info:
        negotiator.initiate()
    assert (info.value.exitcode, info.value.message) == (69, "proxy failure: host name too long")
    assert negotiator.failed
    with pytest.raises(SOCKS5Error):
        connect_request(name, 25)


def test_name_length_counts_bytes_not_characters() -> None:
    # 127 two-byte characters: 254 bytes, fine
    sent, event = _run("é" * 127, 25, OK_METHOD + _reply())
    assert sent[1][4] == 254 and isinstance(event, Established)


def test_non_utf8_name_goes_out_as_is() -> None:
    sent, _ = _run(b"h\xffst", 25, OK_METHOD + _reply())
    assert sent[1] == b"\x05\x01\x00\x03\x04h\xffst\x00\x19"


# ---------------------------------------------------------------------------- greeting


@pytest.mark.parametrize("answer", [b"\x05\xff", b"\x05\x02", b"\x05\x01", b"\x04\x00",
                                    b"\x00\x00", b"HT"])
def test_unexpected_method_reply(answer: bytes) -> None:
    sent, outcome = _run("h", 25, answer + _reply())
    assert outcome == (69, "proxy failure: unexpected reply")
    assert sent == [GREETING]  # no CONNECT after a bad greeting


def test_incomplete_method_reply_waits() -> None:
    sent, outcome = _run("h", 25, b"\x05")
    assert (sent, outcome) == ([GREETING], None)


# ---------------------------------------------------------------------------- replies


@pytest.mark.parametrize("status", range(1, 9))
def test_every_status_code(status: int) -> None:
    _, outcome = _run("h", 25, OK_METHOD + _reply(status))
    assert outcome == (69, f"proxy failure: {STATUS_TEXTS[status]}")


def test_status_texts_are_msmtps() -> None:
    assert STATUS_TEXTS == {
        1: "general server failure", 2: "connection not allowed", 3: "network unreachable",
        4: "host unreachable", 5: "connection refused", 6: "time-to-live expired",
        7: "command not supported", 8: "address type not supported",
    }


@pytest.mark.parametrize("status", [9, 0x0A, 0x7F, 0x80, 0xFF])
def test_unknown_status(status: int) -> None:
    _, outcome = _run("h", 25, OK_METHOD + _reply(status))
    assert outcome == (69, "proxy failure: unknown error")


@pytest.mark.parametrize("reply", [
    _reply(version=4), _reply(version=0), _reply(reserved=1), _reply(reserved=0xFF),
    _reply(atyp=0), _reply(atyp=2), _reply(atyp=5, address=b"\0" * 4), _reply(atyp=0xFF),
    b"HTTP/1.1 400 Bad Request\r\n\r\n",
])
def test_malformed_reply(reply: bytes) -> None:
    _, outcome = _run("h", 25, OK_METHOD + reply)
    assert outcome == (69, "proxy failure: unexpected reply")


def test_header_is_checked_before_the_status() -> None:
    # a failure status with a bad address type: msmtp complains about the reply
    _, outcome = _run("h", 25, OK_METHOD + _reply(5, atyp=7))
    assert outcome == (69, "proxy failure: unexpected reply")


def test_status_is_read_only_with_the_whole_address() -> None:
    # msmtp reads the bound address before it looks at the status: a reply cut
    # short is still waiting (and a close then is a read error, not "refused")
    whole = OK_METHOD + _reply(5)
    negotiator = SOCKS5Negotiator("h", 25)
    negotiator.initiate()
    assert negotiator.receive(whole[:-1]) == (connect_request("h", 25), None)
    error = negotiator.connection_lost(clean=True)
    assert (error.exitcode, error.message) == (74, "network read error")


@pytest.mark.parametrize(("atyp", "address", "expected"), [
    (1, b"\xc0\x00\x02\x01", "192.0.2.1"),
    (4, bytes.fromhex("20010db8000000000000000000000001"), "2001:db8::1"),
    (3, b"proxy.example.net", "proxy.example.net"),
    (3, b"", ""),
    (3, b"x" * 255, "x" * 255),
    (3, b"\xff\xfe", "\udcff\udcfe"),
])
def test_bound_addresses(atyp: int, address: bytes, expected: str) -> None:
    _, event = _run("h", 25, OK_METHOD + _reply(0, atyp, address, 40000))
    assert event == Established(BoundAddress(atyp, expected, 40000), b"")


def test_bytes_after_the_reply_belong_to_the_target() -> None:
    _, event = _run("h", 25, OK_METHOD + _reply(0, 4, b"\0" * 16) + b"220 hello\r\n")
    assert isinstance(event, Established) and event.data == b"220 hello\r\n"


def test_bytes_after_the_method_reply_count_toward_the_connect_reply() -> None:
    # method reply and CONNECT reply in one read (a proxy answering ahead)
    negotiator = SOCKS5Negotiator("h", 25)
    negotiator.initiate()
    out, event = negotiator.receive(OK_METHOD + _reply(0) + b"2")
    assert out == connect_request("h", 25)
    assert event == Established(BoundAddress(1, "127.0.0.1", 2525), b"2")
    assert negotiator.done


SCRIPTS = [
    OK_METHOD + _reply(0),
    OK_METHOD + _reply(0, 3, b"relay.example", 1) + b"220 x\r\n",
    OK_METHOD + _reply(0, 4, b"\1" * 16),
    *[OK_METHOD + _reply(s, a, {1: b"\0" * 4, 3: b"n", 4: b"\0" * 16}[a])
      for s, a in itertools.product(range(1, 10), (1, 3, 4))],
    b"\x05\xff",
    OK_METHOD + _reply(0, 9),
    OK_METHOD + _reply(0, version=6),
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_replies_split_byte_by_byte(script: bytes) -> None:
    # (what is left to send after a failure does not matter: the connection is dropped)
    assert _run("host", 25, script, split=1)[1] == _run("host", 25, script)[1]


def test_timeout_and_lost_connection_errors() -> None:
    negotiator = SOCKS5Negotiator("h", 25)
    negotiator.initiate()
    e = negotiator.timed_out()
    assert (e.exitcode, e.message) == (74, "network read error: the operation timed out")
    e = SOCKS5Negotiator("h", 25).connection_lost(clean=False)
    assert (e.exitcode, e.message) == (74, "network read error: Connection reset by peer")
    e = SOCKS5Negotiator("h", 25).connection_lost(clean=True)
    assert (e.exitcode, e.message) == (74, "network read error")


def test_misuse_is_refused() -> None:
    negotiator = SOCKS5Negotiator("h", 25)
    with pytest.raises(RuntimeError):
        negotiator.receive(b"\x05\x00")
    negotiator.initiate()
    with pytest.raises(RuntimeError):
        negotiator.initiate()
    with pytest.raises(SOCKS5Error):
        negotiator.receive(b"\x05\x01")
    with pytest.raises(RuntimeError):
        negotiator.receive(b"\x05\x00")  # after a failure


# ---------------------------------------------------------------------------- fuzzing


def _msmtp_model(host: bytes, port: int, stream: bytes):
    """net_socks5_connect() over a stream that delivers everything at once (each
    recv() gets what it asks for while bytes remain): (exitcode, message) or the
    bound address and the bytes left for the SMTP session, or None if it would
    still be waiting."""
    if len(host) > 255:
        return (69, "proxy failure: host name too long")
    if len(stream) < 2:
        return None
    if stream[0] != 5 or stream[1] != 0:
        return (69, "proxy failure: unexpected reply")
    buf = stream[2:]
    if len(buf) < 5:
        return None
    if buf[0] != 5 or buf[2] != 0 or buf[3] not in (1, 3, 4):
        return (69, "proxy failure: unexpected reply")
    n = {1: 3, 4: 15}.get(buf[3], buf[4]) + 2
    if len(buf) < 5 + n:
        return None
    if buf[1] != 0:
        return (69, "proxy failure: " + STATUS_TEXTS.get(buf[1], "unknown error"))
    return ("ok", bytes(buf[5 + n:]))


def _replies() -> st.SearchStrategy[bytes]:
    plausible = st.builds(
        lambda m, v, s, r, a, addr, p, tail: bytes([5, m, v, s, r, a]) + addr + p + tail,
        st.sampled_from([0, 0, 0, 1, 2, 0xFF]), st.sampled_from([5, 5, 5, 4]),
        st.integers(0, 255), st.sampled_from([0, 0, 0, 1]), st.sampled_from([1, 3, 4, 0, 2]),
        st.binary(max_size=40), st.binary(min_size=0, max_size=2), st.binary(max_size=8))
    return st.one_of(st.binary(max_size=64), plausible)


@settings(max_examples=400, deadline=None)
# the negotiation ends exactly at a cut, and SMTP bytes follow in the next piece
@example(stream=b"\x05\x00\x05\x00\x00\x01" + bytes(8), cuts=[12], host=b"h", port=25)
@given(stream=_replies(), cuts=st.lists(st.integers(0, 64), max_size=8),
       host=st.binary(max_size=300), port=st.integers(0, 65535))
def test_fuzz_only_protocol_errors_and_split_invariant(stream, cuts, host, port) -> None:
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    negotiator = SOCKS5Negotiator(host, port)
    outcome: object = None
    try:
        negotiator.initiate()
        for k, piece in enumerate(pieces):
            _, event = negotiator.receive(piece)
            if event is not None:
                # the pieces after the one that ended the negotiation belong to
                # the SMTP session too
                outcome = ("ok", event.data + b"".join(pieces[k + 1:]))
                break
    except SOCKS5Error as e:  # the only exception allowed
        outcome = (e.exitcode, e.message)
    assert outcome == _msmtp_model(host, port, stream)


# ---------------------------------------------------------------------------- the endpoint

from twisted.internet import defer, error  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from msmtp_twisted.net.connect import ConnectFailure  # noqa: E402
from msmtp_twisted.net.socks import SOCKS5ClientEndpoint  # noqa: E402


class _Transport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()


class _InnerEndpoint:
    """Connects at once over a StringTransport (or fails with ``fail``)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.transport = _Transport()
        self.protocol = None
        self.pending: defer.Deferred | None = None

    def connect(self, factory):
        if self.fail is not None:
            return defer.fail(self.fail)
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        return defer.succeed(self.protocol)


class _NeverEndpoint:
    def __init__(self) -> None:
        self.cancelled = False

    def connect(self, factory):
        def cancel(d):
            self.cancelled = True
        return defer.Deferred(cancel)


class _App(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost: Failure | None = None
        self.made = False

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=None) -> None:
        self.lost = reason


def _endpoint(timeout=None, host="mail.example.org", port=25, inner=None):
    from twisted.internet.task import Clock

    clock = Clock()
    inner = inner or _InnerEndpoint()
    return SOCKS5ClientEndpoint(inner, host, port, timeout, clock=clock), inner, clock


_SEEN: dict[int, tuple[defer.Deferred, list]] = {}


def _outcome(d: defer.Deferred):
    """The Deferred's result so far (None while it waits); may be asked again."""
    if id(d) not in _SEEN:
        result: list = []
        _SEEN[id(d)] = (d, result)
        d.addBoth(result.append)
    result = _SEEN[id(d)][1]
    return result[0] if result else None


def test_endpoint_provides_the_interface() -> None:
    from twisted.internet.interfaces import IStreamClientEndpoint
    from zope.interface.verify import verifyObject

    endpoint, _, _ = _endpoint()
    assert verifyObject(IStreamClientEndpoint, endpoint)


def test_endpoint_success_hands_over_the_connection() -> None:
    endpoint, inner, _ = _endpoint()
    apps: list[_App] = []
    d = endpoint.connect(Factory.forProtocol(lambda: apps.append(_App()) or apps[-1]))
    assert inner.transport.value() == GREETING
    inner.transport.clear()
    inner.protocol.dataReceived(OK_METHOD)
    assert inner.transport.value() == connect_request("mail.example.org", 25)
    assert _outcome(d) is None
    inner.protocol.dataReceived(_reply(0) + b"220 ready")
    [app] = apps
    assert _outcome(d) is app and app.made
    assert app.transport is inner.transport
    assert app.received == b"220 ready"
    inner.protocol.dataReceived(b"\r\n")
    assert app.received == b"220 ready\r\n"
    inner.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert app.lost is not None and app.lost.check(error.ConnectionDone)


def test_endpoint_address_given_to_the_factory() -> None:
    from twisted.internet.address import HostnameAddress

    endpoint, inner, _ = _endpoint(host="smtp.example.net", port=587)
    seen = []

    class F(Factory):
        def buildProtocol(self, addr):
            seen.append(addr)
            return _App()

    endpoint.connect(F())
    inner.protocol.dataReceived(OK_METHOD + _reply(0))
    assert seen == [HostnameAddress(b"smtp.example.net", 587)]


@pytest.mark.parametrize("status", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_endpoint_status_failures(status: int) -> None:
    endpoint, inner, _ = _endpoint()
    d = endpoint.connect(Factory.forProtocol(_App))
    inner.protocol.dataReceived(OK_METHOD + _reply(status))
    failure = _outcome(d)
    assert isinstance(failure, Failure) and failure.check(ConnectFailure)
    text = STATUS_TEXTS.get(status, "unknown error")
    assert (failure.value.exitcode, failure.value.message) == (69, f"proxy failure: {text}")
    assert inner.transport.aborted


def test_endpoint_too_long_name_after_connecting() -> None:
    endpoint, inner, _ = _endpoint(host="x" * 256)
    d = endpoint.connect(Factory.forProtocol(_App))
    failure = _outcome(d)
    assert failure.value.message == "proxy failure: host name too long"
    assert failure.value.exitcode == 69
    assert inner.transport.value() == b"" and inner.transport.aborted


@pytest.mark.parametrize(("reason", "message"), [
    (error.ConnectionDone(), "network read error"),
    (error.ConnectionLost(), "network read error: Connection reset by peer"),
])
def test_endpoint_proxy_goes_away(reason, message) -> None:
    endpoint, inner, _ = _endpoint()
    d = endpoint.connect(Factory.forProtocol(_App))
    inner.protocol.dataReceived(OK_METHOD + b"\x05\x00")
    inner.protocol.connectionLost(Failure(reason))
    failure = _outcome(d)
    assert (failure.value.exitcode, failure.value.message) == (74, message)


def test_endpoint_timeout_per_read() -> None:
    endpoint, inner, clock = _endpoint(timeout=10)
    d = endpoint.connect(Factory.forProtocol(_App))
    clock.advance(9)
    inner.protocol.dataReceived(b"\x05")  # each read gets the full timeout again
    clock.advance(9)
    inner.protocol.dataReceived(b"\x00\x05")
    clock.advance(9)
    assert _outcome(d) is None
    clock.advance(1)
    failure = _outcome(d)
    assert (failure.value.exitcode, failure.value.message) == (
        74, "network read error: the operation timed out")
    assert inner.transport.aborted
    assert not clock.getDelayedCalls()


def test_endpoint_no_timer_after_success() -> None:
    endpoint, inner, clock = _endpoint(timeout=10)
    d = endpoint.connect(Factory.forProtocol(_App))
    inner.protocol.dataReceived(OK_METHOD + _reply(0))
    assert isinstance(_outcome(d), _App)
    assert not clock.getDelayedCalls()


def test_endpoint_without_timeout_waits() -> None:
    endpoint, inner, clock = _endpoint(timeout=None)
    d = endpoint.connect(Factory.forProtocol(_App))
    assert not clock.getDelayedCalls()
    assert _outcome(d) is None


def test_endpoint_inner_failure_passes_through() -> None:
    failure_in = ConnectFailure(75, "cannot connect to proxy.lan, port 1080: Connection refused")
    endpoint, _, _ = _endpoint(inner=_InnerEndpoint(fail=failure_in))
    failure = _outcome(endpoint.connect(Factory.forProtocol(_App)))
    assert failure.value is failure_in


def test_endpoint_cancel_while_connecting_to_the_proxy() -> None:
    inner = _NeverEndpoint()
    endpoint, _, _ = _endpoint(inner=inner)
    d = endpoint.connect(Factory.forProtocol(_App))
    d.cancel()
    assert inner.cancelled
    assert _outcome(d).check(defer.CancelledError)


def test_endpoint_cancel_while_negotiating() -> None:
    endpoint, inner, clock = _endpoint(timeout=5)
    d = endpoint.connect(Factory.forProtocol(_App))
    d.cancel()
    assert _outcome(d).check(defer.CancelledError)
    assert inner.transport.aborted
    assert not clock.getDelayedCalls()


def test_endpoint_factory_refusing_the_connection() -> None:
    endpoint, inner, _ = _endpoint()

    class F(Factory):
        def buildProtocol(self, addr):
            return None

    d = endpoint.connect(F())
    inner.protocol.dataReceived(OK_METHOD + _reply(0))
    assert _outcome(d).check(error.ConnectError)
    assert inner.transport.aborted
    inner.protocol.dataReceived(b"220 late\r\n")  # ignored while the connection goes
    inner.protocol.connectionLost(Failure(error.ConnectionDone()))


def test_endpoint_string_plugin() -> None:
    from twisted.internet.endpoints import clientFromString
    from twisted.internet.task import Clock

    from msmtp_twisted.net.connect import SequentialTCPEndpoint
    from msmtp_twisted.net.socks import socks5_client_endpoint

    reactor = Clock()
    endpoint = clientFromString(
        reactor, "msmtp-socks5:mail.example.org:587:proxy_host=127.0.0.1:timeout=7")
    assert isinstance(endpoint, SOCKS5ClientEndpoint)
    assert (endpoint.host, endpoint.port, endpoint.timeout) == ("mail.example.org", 587, 7.0)
    assert isinstance(endpoint.proxy_endpoint, SequentialTCPEndpoint)
    assert endpoint.proxy_endpoint._port == 1080
    endpoint = socks5_client_endpoint(reactor, "host=h:proxy_host=p:proxy_port=9050")
    assert (endpoint.host, endpoint.port, endpoint.proxy_endpoint._host,
            endpoint.proxy_endpoint._port) == ("h", 25, "p", 9050)
    with pytest.raises(ValueError):
        socks5_client_endpoint(reactor, "msmtp-socks5:h:25")
    with pytest.raises(ValueError):
        socks5_client_endpoint(reactor, "msmtp-socks5:h:25:proxy_host=p:bogus=1")


def test_account_endpoint_goes_through_the_proxy() -> None:
    from twisted.internet.task import Clock

    from msmtp_twisted.config.account import Account
    from msmtp_twisted.net.connect import SequentialTCPEndpoint, UNIXEndpoint
    from msmtp_twisted.sending.endpoint import endpoint_for

    account = Account("a")
    account.host, account.port, account.timeout = "mail.example.org", 465, 12
    account.proxy_host, account.proxy_port = "proxy.lan", 0
    account.source_ip = "127.0.0.2"
    endpoint = endpoint_for(Clock(), account)
    assert isinstance(endpoint, SOCKS5ClientEndpoint)
    assert (endpoint.host, endpoint.port, endpoint.timeout) == ("mail.example.org", 465, 12)
    proxy = endpoint.proxy_endpoint
    assert isinstance(proxy, SequentialTCPEndpoint)
    assert (proxy._host, proxy._port, proxy._timeout, proxy._source_ip) == (
        "proxy.lan", 1080, 12, "127.0.0.2")
    account.socket = "/run/smtp.sock"  # socket overrides host and proxy, as in msmtp
    assert isinstance(endpoint_for(Clock(), account), UNIXEndpoint)
