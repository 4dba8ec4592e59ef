"""Typed failures (issue 11, item 1): every failure carries a ``cause`` set where it
is made, the TLS layer translates failures on that cause (not on their text), and it
observes the connection's end through the session protocol's ``on_lost`` hook
instead of patching ``connectionLost``."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from msmtp_twisted.errors import (
    AccountNotFound,
    Cause,
    ConnectFailure,
    MsmtpError,
    SMTPFailure,
    TLSFailure,
)
from tests.conftest import ROOT, ours_env


class Body:
    def __init__(self, chunks: int = 3) -> None:
        self.left = chunks

    def next_chunk(self) -> bytes | None:
        if self.left == 0:
            return None
        self.left -= 1
        return b"x" * 998 + b"\r\n"

    @property
    def mailsize(self) -> int:
        return 0


def _session(**kwargs: Any) -> tuple[Any, list[Any], StringTransport, Clock]:
    from msmtp_twisted.protocol.session import SessionProtocol
    from msmtp_twisted.smtp.client import SendmailRequest, sendmail_session

    request = SendmailRequest(envelope_from="a@example.com", recipients=("r@example.org",))
    clock = Clock()
    proto = SessionProtocol(sendmail_session(request), clock=clock, timeout=5, body=Body(),
                            **kwargs)
    outcome: list[Any] = []
    proto.done.addBoth(outcome.append)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, outcome, transport, clock


def _failure(outcome: list[Any]) -> SMTPFailure:
    assert len(outcome) == 1 and isinstance(outcome[0], Failure), outcome
    value = outcome[0].value
    assert isinstance(value, SMTPFailure)
    return value


def _to_body(proto: Any, transport: StringTransport) -> None:
    proto.dataReceived(b"220 mx\r\n")
    proto.dataReceived(b"250-mx\r\n250 PIPELINING\r\n")
    proto.dataReceived(b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert transport.producer is not None  # the body is being written


def test_read_timeout_is_a_timeout_while_reading() -> None:
    proto, outcome, transport, clock = _session()
    clock.advance(6)
    proto.connectionLost(Failure(error.ConnectionLost()))
    failure = _failure(outcome)
    assert (failure.cause, failure.writing) == (Cause.TIMEOUT, False)
    assert failure.message == "network read error: the operation timed out"


def test_write_timeout_is_a_timeout_while_writing() -> None:
    proto, outcome, transport, clock = _session()
    _to_body(proto, transport)
    clock.advance(6)
    proto.connectionLost(Failure(error.ConnectionLost()))
    failure = _failure(outcome)
    assert (failure.cause, failure.writing) == (Cause.TIMEOUT, True)


@pytest.mark.parametrize(("reason", "cause"), [
    (error.ConnectionDone(), Cause.CLOSED),
    (error.ConnectionLost(), Cause.RESET),
])
def test_connection_lost_while_waiting(reason: Exception, cause: Cause) -> None:
    proto, outcome, _, _ = _session()
    proto.connectionLost(Failure(reason))
    failure = _failure(outcome)
    assert (failure.cause, failure.writing) == (cause, False)


@pytest.mark.parametrize(("reason", "cause"), [
    (error.ConnectionDone(), Cause.CLOSED),
    (error.ConnectionLost(), Cause.RESET),
])
def test_connection_lost_while_writing(reason: Exception, cause: Cause) -> None:
    proto, outcome, transport, _ = _session()
    _to_body(proto, transport)
    proto.connectionLost(Failure(reason))
    failure = _failure(outcome)
    assert (failure.cause, failure.writing) == (cause, True)


def test_invalid_reply_is_a_protocol_violation_and_refusal_a_reply() -> None:
    proto, outcome, _, _ = _session()
    proto.dataReceived(b"hello\r\n")
    proto.connectionLost(Failure(error.ConnectionDone()))
    assert _failure(outcome).cause is Cause.PROTOCOL
    proto, outcome, _, _ = _session()
    proto.dataReceived(b"554 go away\r\n")
    proto.connectionLost(Failure(error.ConnectionDone()))
    failure = _failure(outcome)
    assert failure.cause is Cause.REPLY and failure.reply is not None


def test_on_lost_is_told_before_done_fires() -> None:
    seen: list[Any] = []
    proto, outcome, _, _ = _session(on_lost=lambda reason: seen.append((reason, list(outcome))))
    reason = Failure(error.ConnectionLost())
    proto.connectionLost(reason)
    assert seen == [(reason, [])]
    assert len(outcome) == 1


def test_sans_io_failures_have_causes() -> None:
    from msmtp_twisted.smtp.client import (
        RECEIVE,
        SendmailRequest,
        early_reply_failure,
        sendmail_session,
    )
    from msmtp_twisted.smtp.reply import Reply

    def run(*replies: Reply, **request: Any) -> SMTPFailure:
        session = sendmail_session(SendmailRequest(
            envelope_from="a@b", recipients=("r@x",), **request))
        action = next(session)
        feed = iter(replies)
        with pytest.raises(SMTPFailure) as info:
            while True:
                action = session.send(next(feed) if action is RECEIVE else None)
        return info.value

    hello = Reply(250, ("250 mx",))
    assert run(Reply(220, ("220 mx",)), hello, starttls=True).cause is Cause.UNSUPPORTED
    assert run(Reply(220, ("220 mx",)), hello, dsn_notify="FAILURE").cause is Cause.UNSUPPORTED
    assert run(Reply(421, ("421 busy",))).cause is Cause.REPLY
    assert early_reply_failure(Reply(250, ("250 ok",))).cause is Cause.PROTOCOL
    assert early_reply_failure(Reply(552, ("552 big",))).cause is Cause.REPLY


# -- the TLS layer decides on causes --------------------------------------------------


@pytest.fixture(scope="module")
def account_tls(tmp_path_factory) -> Any:
    from tests.servers.tlspki import PKI

    pki = PKI(tmp_path_factory.mktemp("pki"))
    root = pki.ca()

    def make() -> Any:
        from msmtp_twisted.tls.account import AccountTLS
        from msmtp_twisted.tls.options import TLSOptions
        from msmtp_twisted.tls.state import TLSState

        tls = AccountTLS(TLSOptions("localhost", trust_file=str(root.cert)))
        tls.started = True
        tls.state = TLSState(tls.options)
        tls.state.handshake_done = True
        return tls
    return make


def test_tls_translation_reads_the_cause_not_the_text(account_tls) -> None:
    tls = account_tls()
    tls.state.transport_reason = Failure(error.ConnectionLost())
    # any wording: what counts is that the connection was reset while we read
    got = tls.failure_for(SMTPFailure(74, "some other words", cause=Cause.RESET))
    assert got.message == "cannot read from TLS connection: Error in the pull function."
    assert got.cause is Cause.RESET
    got = tls.failure_for(SMTPFailure(74, "more words", cause=Cause.CLOSED, writing=True))
    assert got.message == "cannot write to TLS connection: Error in the push function."
    # the old texts with another cause are left alone
    assert tls.failure_for(SMTPFailure(74, "network read error: Connection reset by peer",
                                       cause=Cause.PROTOCOL)) is None
    tls.state.alert = 40
    got = tls.failure_for(SMTPFailure(74, "x", cause=Cause.TIMEOUT, writing=True))
    assert got.message == "cannot write to TLS connection: A TLS fatal alert has been received."
    assert got.cause is Cause.TLS_ALERT


def test_tls_handshake_timeout_is_typed(account_tls) -> None:
    tls = account_tls()
    tls.state.handshake_done = False
    got = tls.failure_for(SMTPFailure(74, "whatever", cause=Cause.TIMEOUT))
    assert isinstance(got, TLSFailure)
    assert (got.message, got.cause) == ("TLS handshake failed: the operation timed out",
                                        Cause.TIMEOUT)
    got = tls.failure_for(SMTPFailure(74, "network read error: the operation timed out",
                                      cause=Cause.RESET))
    assert got.message != "TLS handshake failed: the operation timed out"
    assert got.cause is Cause.TLS_HANDSHAKE


def test_the_session_protocol_is_not_patched(tmp_path) -> None:
    """The TLS glue observes the end of the connection through ``on_lost``; the
    protocol's own ``connectionLost`` stays the class's method."""
    from twisted.internet import defer

    from msmtp_twisted.protocol.compat import ESMTPSenderFactory
    from msmtp_twisted.protocol.session import SessionProtocol

    factory = ESMTPSenderFactory(None, None, "a@b", ["r@x"], io.BytesIO(b"x"), defer.Deferred(),
                                 requireAuthentication=False, requireTransportSecurity=True)
    factory._clock = Clock()
    proto = factory.buildProtocol(None)
    assert isinstance(proto, SessionProtocol)
    assert "connectionLost" not in vars(proto)


# -- connecting ---------------------------------------------------------------------------


def _connect(endpoint: Any, reactor: MemoryReactorClock, reason: Exception) -> ConnectFailure:
    from twisted.internet.protocol import Factory, Protocol

    d = endpoint.connect(Factory.forProtocol(Protocol))
    connector = reactor.connectors[-1] if reactor.connectors else None
    factory = (reactor.tcpClients or reactor.unixClients)[-1][2 if reactor.tcpClients else 1]
    factory.clientConnectionFailed(connector, Failure(reason))
    got: list[Any] = []
    d.addErrback(got.append)
    assert got and isinstance(got[0].value, ConnectFailure), got
    return got[0].value


@pytest.mark.parametrize(("reason", "cause"), [
    (error.ConnectionRefusedError(), Cause.REFUSED),
    (error.TCPTimedOutError(), Cause.TIMEOUT),
    (error.NoRouteError(), Cause.UNREACHABLE),
])
def test_connect_failures_have_causes(reason: Exception, cause: Cause) -> None:
    from msmtp_twisted.net.connect import SequentialTCPEndpoint

    reactor = MemoryReactorClock()
    endpoint = SequentialTCPEndpoint(reactor, "mx.test", 25,
                                     resolve=lambda host, port: [(2, "192.0.2.1")])
    assert _connect(endpoint, reactor, reason).cause is cause


def test_name_lookup_failure_is_dns() -> None:
    from twisted.internet.protocol import Factory, Protocol

    from msmtp_twisted.net.connect import ResolveError, SequentialTCPEndpoint

    def resolve(host: str, port: int) -> Any:
        raise ResolveError("Name or service not known")
    endpoint = SequentialTCPEndpoint(MemoryReactorClock(), "nowhere.test", 25, resolve=resolve)
    got: list[Any] = []
    endpoint.connect(Factory.forProtocol(Protocol)).addErrback(got.append)
    assert got[0].value.cause is Cause.DNS
    assert got[0].value.message == "cannot locate host nowhere.test: Name or service not known"


def test_socks_failures_have_causes() -> None:
    from msmtp_twisted.net.socks import SOCKS5Negotiator

    negotiator = SOCKS5Negotiator("mx.test", 25)
    negotiator.initiate()
    assert negotiator.timed_out().cause is Cause.TIMEOUT
    negotiator = SOCKS5Negotiator("mx.test", 25)
    negotiator.initiate()
    assert negotiator.connection_lost(clean=False).cause is Cause.RESET
    negotiator = SOCKS5Negotiator("mx.test", 25)
    negotiator.initiate()
    with pytest.raises(MsmtpError) as info:
        negotiator.receive(b"\x05\xff")
    assert info.value.cause is Cause.PROXY


# -- one family ---------------------------------------------------------------------------


def test_every_public_failure_is_an_msmtp_error() -> None:
    from msmtp_twisted.config.parser import ConfigError
    from msmtp_twisted.config.select import SelectError

    for cls in (ConnectFailure, SMTPFailure, TLSFailure, ConfigError, SelectError,
                AccountNotFound):
        assert issubclass(cls, MsmtpError)
    assert issubclass(TLSFailure, SMTPFailure)  # errbacks trapping SMTPFailure still match
    assert ConfigError("x").cause is Cause.CONFIG
    assert (ConfigError("x", 74).exitcode, str(ConfigError("x"))) == (74, "x")
    assert issubclass(AccountNotFound, LookupError)


def test_errors_module_is_pure() -> None:
    code = ("import sys, msmtp_twisted.errors\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('twisted', 'OpenSSL', 'cryptography')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=ours_env({"PATH": "/usr/bin:/bin"}), cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
