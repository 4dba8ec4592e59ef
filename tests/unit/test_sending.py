"""The delivery layer (issue 11, item 1): the session/TLS wiring written once in
``msmtp_twisted.sending.connection``, the endpoint of an account, mail preparation."""

from __future__ import annotations

import io
from typing import Any

from twisted.internet import error
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import Cause
from msmtp_twisted.sending.connection import session_protocol
from msmtp_twisted.sending.mail import prepare_mail, read_headers
from msmtp_twisted.smtp.client import SendmailRequest, sendmail_session
from tests.servers.tlspki import PKI


def _session(starttls: bool = True) -> Any:
    return sendmail_session(SendmailRequest(envelope_from="a@b", recipients=("r@x",),
                                            starttls=starttls))


class TLSTransport(StringTransport):
    def startTLS(self, creator: Any) -> None:
        self.tls = creator


def _to_starttls(proto: Any) -> TLSTransport:
    transport = TLSTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"220 mx\r\n")
    proto.dataReceived(b"250-mx\r\n250 STARTTLS\r\n")
    proto.dataReceived(b"220 go ahead\r\n")
    return transport


def test_a_foreign_creator_is_handed_to_start_tls() -> None:
    creator = object()
    proto = session_protocol(_session(), clock=Clock(), timeout=5, tls=creator)
    assert _to_starttls(proto).tls is creator


def test_without_tls_starttls_is_refused() -> None:
    proto = session_protocol(_session(), clock=Clock(), timeout=5)
    outcome: list[Any] = []
    proto.done.addBoth(outcome.append)
    _to_starttls(proto)
    proto.connectionLost(Failure(error.ConnectionDone()))
    assert outcome[0].value.message == "support for TLS is not available"


def test_account_tls_is_wired_once(tmp_path) -> None:
    from msmtp_twisted.tls.account import AccountTLS
    from msmtp_twisted.tls.options import TLSOptions

    root = PKI(tmp_path).ca()
    tls = AccountTLS(TLSOptions("localhost", trust_file=str(root.cert)))
    clock = Clock()
    seen: list[tuple[str, bytes]] = []
    proto = session_protocol(_session(), clock=clock, timeout=5, tls=tls,
                             trace=lambda d, data: seen.append((d, data)))
    outcome: list[Any] = []
    proto.done.addBoth(outcome.append)
    transport = _to_starttls(proto)
    assert transport.tls is tls.creator and tls.started
    assert "connectionLost" not in vars(proto)  # observed through on_lost
    clock.advance(6)  # the handshake never completes: the TLS timer aborts it
    assert tls.timed_out
    reason = Failure(error.ConnectionLost())
    proto.connectionLost(reason)
    assert tls.lost_reason is reason
    failure = outcome[0].value
    assert (failure.exitcode, failure.message, failure.cause) == (
        76, "TLS handshake failed: the operation timed out", Cause.TIMEOUT)


def test_implicit_tls_wraps_the_account_endpoint(tmp_path) -> None:
    from msmtp_twisted.net.connect import SequentialTCPEndpoint
    from msmtp_twisted.sending.endpoint import account_tls, endpoint_for
    from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint

    account = Account("a")
    account.host, account.port = "mail.example.org", 465
    assert account_tls(account) is None
    account.tls, account.tls_starttls, account.tls_trust_file = True, False, None
    tls = account_tls(account)
    endpoint = endpoint_for(Clock(), account, tls=tls)
    assert isinstance(endpoint, TLSWrapperEndpoint)
    assert isinstance(endpoint._wrapped, SequentialTCPEndpoint)
    account.tls_starttls = True
    assert isinstance(endpoint_for(Clock(), account, tls=tls), SequentialTCPEndpoint)


def test_prepare_mail_gives_request_and_streamed_body() -> None:
    account = Account("a")
    account.host, account.domain, account.from_addr = "mx.test", "client.test", "a@b"
    stream = io.BytesIO(b"Subject: hi\nBcc: x@y\n\nline\n.dot\n")
    headers = read_headers(stream, want_recipients=False)
    request, body = prepare_mail(account, "a@b", ["r@x"], headers, stream)
    assert (request.envelope_from, request.recipients, request.domain) == (
        "a@b", ("r@x",), "client.test")
    assert request.auth is None
    data = b""
    while (chunk := body.next_chunk()) is not None:
        data += chunk
    # generated headers first, Bcc removed, CRLF and dot-stuffing
    assert data.startswith(b"From: a@b\r\n")
    assert data.endswith(b"Subject: hi\r\n\r\nline\r\n..dot\r\n")
    assert b"Bcc" not in data
    assert body.mailsize > 0
