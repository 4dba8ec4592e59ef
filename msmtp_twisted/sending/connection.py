"""Endpoint + session → one connection running one SMTP/LMTP session.

The wiring of :class:`~msmtp_twisted.protocol.session.SessionProtocol` with
TLS exists here once, for every sender (``msmtp``'s modes, :mod:`~msmtp_twisted.api`,
:mod:`~msmtp_twisted.protocol.compat`):

- :func:`session_protocol` builds the protocol for a sans-IO session, with
  STARTTLS, the TLS trace, the handshake timeout, channel binding and msmtp's
  TLS errors when given an :class:`~msmtp_twisted.tls.account.AccountTLS`, or
  plain ``transport.startTLS`` with any other connection creator;
- :func:`connect_session` connects it through an endpoint;
- :func:`start_account_session` does both for an account.

Each returns (or its protocol's ``done`` is) a Deferred that fires with the
session's result (:class:`~msmtp_twisted.smtp.client.Delivered`,
:class:`~msmtp_twisted.smtp.client.SessionStart`) or fails with a typed
:class:`~msmtp_twisted.errors.MsmtpError` (SMTPFailure, TLSFailure,
ConnectFailure).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account import Account

if TYPE_CHECKING:
    from twisted.internet import defer

    from msmtp_twisted.net.probe import Connected
    from msmtp_twisted.protocol.session import BodySource, SessionProtocol, Trace

__all__ = ["connect_session", "fail_after_connecting", "session_protocol",
           "start_account_session", "tls_wiring"]


def session_protocol(
    session: Generator[Any, Any, Any],
    *,
    clock: Any,
    timeout: float | None = None,
    body: BodySource | None = None,
    trace: Trace | None = None,
    tls: Any = None,
    password: Callable[[], Any] | None = None,
) -> SessionProtocol:
    """The protocol that runs ``session`` on one connection.

    ``tls``: None (no STARTTLS possible), an
    :class:`~msmtp_twisted.tls.account.AccountTLS` (msmtp's checks, trace held
    during the handshake, handshake timeout, channel binding, msmtp's TLS
    errors on ``done``), or anything ``transport.startTLS`` accepts (Twisted's
    ``optionsForClientTLS(...)``, a context factory) for a plain STARTTLS.
    ``timeout`` applies to every read and write (and the TLS handshake);
    ``password()`` is asked when AUTH needs a password the request lacks.
    """
    from msmtp_twisted.protocol.session import SessionProtocol

    wiring, finish = tls_wiring(tls, clock=clock, timeout=timeout, trace=trace)
    proto = SessionProtocol(session, clock=clock, timeout=timeout, body=body,
                            password=password, **wiring)
    finish(proto)
    return proto


def tls_wiring(
    tls: Any, *, clock: Any, timeout: float | None, trace: Trace | None
) -> tuple[dict[str, Any], Callable[[SessionProtocol], None]]:
    """What :func:`session_protocol` does with ``tls``, for a protocol of one's own
    (a :class:`~msmtp_twisted.protocol.session.SessionProtocol` subclass, as the
    ``twisted.mail.smtp`` drop-in builds): the keyword arguments to give
    ``SessionProtocol.__init__`` (``trace``, ``start_tls``, ``channel_binding``,
    ``on_lost``) and a function to call with the protocol once it is built."""
    ours = False
    if tls is not None:
        from msmtp_twisted.tls.account import AccountTLS

        ours = isinstance(tls, AccountTLS)
    if not ours:
        foreign = tls

        def start_tls(transport: Any) -> None:
            transport.startTLS(foreign)
        return ({"trace": trace, "start_tls": start_tls if foreign is not None else None},
                lambda proto: None)

    def finish(proto: SessionProtocol) -> None:
        tls.set_timeout(clock, timeout)
        proto.done.addErrback(tls.translate)
    return ({"trace": tls.trace(trace), "start_tls": tls.start_tls,
             "channel_binding": tls.channel_binding, "on_lost": tls.connection_lost}, finish)


def connect_session(endpoint: Any, proto: SessionProtocol) -> defer.Deferred[Any]:
    """Connect ``proto`` through ``endpoint``: its ``done``, or the connect failure."""
    from twisted.internet.protocol import Factory

    factory = Factory.forProtocol(lambda: proto)
    factory.noisy = False  # endpoints that start it would log "Starting factory"
    d: defer.Deferred[Any] = endpoint.connect(factory)
    d.addCallback(lambda _: proto.done)
    return d


def start_account_session(reactor: Any, account: Account, session: Generator[Any, Any, Any],
                          *, body: BodySource | None = None, trace: Trace | None = None,
                          tls: Any = None, password: Callable[[], Any] | None = None,
                          connected: Connected | None = None) -> defer.Deferred[Any]:
    """Connect for ``account`` on ``reactor`` and run ``session``.

    ``tls`` is the account's :class:`~msmtp_twisted.tls.account.AccountTLS`
    (:func:`~msmtp_twisted.sending.endpoint.account_tls`) when it uses TLS;
    ``password()`` is asked when AUTH needs a password the account lacks (default:
    key ring, netrc, terminal, blocking as msmtp does; a program with a running
    reactor passes :func:`~msmtp_twisted.sending.credentials.password_in_thread`).
    ``connected``: the account's TCP connection, made already
    (:func:`msmtp_twisted.net.probe.connect_first`), used instead of a new one.
    """
    from msmtp_twisted.sending.credentials import password_source
    from msmtp_twisted.sending.endpoint import endpoint_for

    proto = session_protocol(
        session, clock=reactor, timeout=account.timeout or None, body=body, trace=trace,
        tls=tls, password=password if password is not None else password_source(account),
    )
    options = {} if connected is None else {"connected": connected}
    return connect_session(endpoint_for(reactor, account, tls=tls, **options), proto)


def fail_after_connecting(reactor: Any, account: Account,
                          failure: Exception) -> defer.Deferred[Any]:
    """Connect (without TLS), close, then fail with ``failure``: msmtp's order in
    ``--serverinfo`` and ``--rmqs``, where a connection error wins over unusable
    TLS settings (so the connection's failure, if there is one, is the result)."""
    from twisted.internet.protocol import Factory, Protocol

    from msmtp_twisted.sending.endpoint import endpoint_for

    factory = Factory.forProtocol(Protocol)
    factory.noisy = False
    d: defer.Deferred[Any] = endpoint_for(reactor, account).connect(factory)

    def connected(probe: Any) -> Any:
        probe.transport.loseConnection()
        raise failure
    d.addCallback(connected)
    return d
