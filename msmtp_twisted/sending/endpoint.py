"""Account → endpoint: where and how an account connects.

A unix socket (``socket``), TCP to ``host``/``port`` the way msmtp connects
(every address in turn, ``source_ip``), through a SOCKS5 proxy
(``proxy_host``), and TLS from the first byte (``tls_starttls off``) around
any of them.  :func:`account_tls` builds the TLS side of one connection.

The account's TLS files (trust, CRL, client certificate and key) are read once
per account: :func:`account_tls_context` builds the OpenSSL context on first use
and keeps it with the account; every later connection of the account shares it,
so a file replaced on disk is not seen until the account is loaded again (or its
TLS settings change).  A running program builds it in a thread
(:func:`account_tls_in_thread`); the command reads the files in place.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account import Account

if TYPE_CHECKING:
    from twisted.internet import defer

    from msmtp_twisted.tls.account import AccountTLS
    from msmtp_twisted.tls.context import TLSContext
    from msmtp_twisted.tls.options import TLSOptions
    from msmtp_twisted.tls.text import TLSInfo

__all__ = ["account_tls", "account_tls_context", "account_tls_in_thread", "endpoint_for",
           "peer_names", "tls_warnings"]


def endpoint_for(reactor: Any, account: Account, *, tls: AccountTLS | None = None,
                 **tcp_options: Any) -> Any:
    """The client endpoint for the account: its unix socket, or TCP to host/port
    (through the SOCKS5 proxy ``proxy_host`` when set); wrapped in TLS when ``tls``
    is given and the account wants TLS from the first byte.  A ``connect`` event
    is logged once the connection stands (:mod:`msmtp_twisted.sending.events`)."""
    from msmtp_twisted.net.connect import SequentialTCPEndpoint, UNIXEndpoint

    def connected(address: str) -> None:
        from msmtp_twisted.sending.events import log_connected

        log_connected(account, None if account.socket is not None else address)

    timeout = account.timeout or None
    endpoint: Any
    if account.socket is not None:
        endpoint = UNIXEndpoint(reactor, account.socket, timeout=timeout, on_connect=connected)
    else:
        assert account.host is not None
        if account.proxy_host is not None:
            from msmtp_twisted.net.socks import DEFAULT_PORT, SOCKS5ClientEndpoint

            proxy = SequentialTCPEndpoint(
                reactor, account.proxy_host, account.proxy_port or DEFAULT_PORT,
                timeout=timeout, source_ip=account.source_ip, on_connect=connected,
                **tcp_options,
            )
            endpoint = SOCKS5ClientEndpoint(proxy, account.host, account.port, timeout,
                                            clock=reactor)
        else:
            endpoint = SequentialTCPEndpoint(
                reactor, account.host, account.port, timeout=timeout,
                source_ip=account.source_ip, on_connect=connected, **tcp_options,
            )
    if tls is not None and not account.tls_starttls:
        endpoint = tls.wrap_endpoint(endpoint)
    return endpoint


class _PerAccount:
    """The TLS context kept with each account (by identity, while the account
    lives), with the settings it was built from."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[TLSOptions, TLSContext]] = {}

    def get(self, account: Account, options: TLSOptions) -> TLSContext | None:
        kept = self._kept.get(id(account))
        if kept is not None and kept[0] == options:
            return kept[1]
        return None

    def put(self, account: Account, context: TLSContext) -> None:
        key = id(account)
        try:
            if key not in self._kept:
                weakref.finalize(account, self._kept.pop, key, None)
        except TypeError:
            return  # an account that cannot be watched is not kept (files read per send)
        self._kept[key] = (context.options, context)


_contexts = _PerAccount()


def _options(account: Account) -> TLSOptions:
    from msmtp_twisted.tls.options import TLSOptions

    return TLSOptions.from_account(account)


def account_tls_context(account: Account) -> TLSContext | None:
    """The account's TLS context (None without ``tls``): built the first time,
    reading the TLS files (blocking), then kept with the account and shared by its
    connections.  Raises :class:`~msmtp_twisted.errors.TLSFailure` for unusable
    files or settings (nothing is kept then: the next call reads again)."""
    if not account.tls:
        return None
    options = _options(account)
    context = _contexts.get(account, options)
    if context is None:
        from msmtp_twisted.tls.context import TLSContext

        context = TLSContext(options)
        _contexts.put(account, context)
    return context


def account_tls(account: Account, *,
                on_established: Callable[[TLSInfo], None] | None = None
                ) -> AccountTLS | None:
    """The TLS side of one connection of the account, None without ``tls``.

    Uses the account's TLS context (:func:`account_tls_context`: the files are
    read on first use, here, blocking); raises
    :class:`~msmtp_twisted.errors.TLSFailure` for unusable files or settings.
    ``on_established(info)`` is called once the server certificate has been
    verified.
    """
    context = account_tls_context(account)
    if context is None:
        return None
    return _connection_tls(context, on_established)


def _connection_tls(context: TLSContext,
                    on_established: Callable[[TLSInfo], None] | None) -> AccountTLS:
    from msmtp_twisted.tls.account import AccountTLS

    return AccountTLS(context.options, context=context, on_established=on_established)


#: builds running in a thread: account id -> (settings, Deferreds waiting for it)
_building: dict[int, tuple[TLSOptions, list[defer.Deferred[TLSContext]]]] = {}


def account_tls_in_thread(reactor: Any, account: Account, *,
                          on_established: Callable[[TLSInfo], None] | None = None
                          ) -> defer.Deferred[AccountTLS | None]:
    """:func:`account_tls` for a running reactor: the account's TLS files are read
    in the reactor's thread pool the first time (once, however many sends start
    meanwhile), never on the reactor thread; the Deferred fires at once when the
    context is kept already (or without ``tls``) and fails with
    :class:`~msmtp_twisted.errors.TLSFailure` as :func:`account_tls` raises it."""
    from twisted.internet import defer

    if not account.tls:
        return defer.succeed(None)
    options = _options(account)
    kept = _contexts.get(account, options)
    if kept is not None:
        return defer.succeed(_connection_tls(kept, on_established))
    waiter: defer.Deferred[TLSContext] = defer.Deferred()
    building = _building.get(id(account))
    if building is not None and building[0] == options:
        building[1].append(waiter)
    else:
        from twisted.internet.threads import deferToThreadPool
        from twisted.python.failure import Failure

        from msmtp_twisted.tls.context import TLSContext

        waiters = [waiter]
        _building[id(account)] = (options, waiters)

        def built(context: TLSContext) -> TLSContext:
            _contexts.put(account, context)
            return context

        def finished(result: Any) -> None:
            if _building.get(id(account), (None, None))[1] is waiters:
                del _building[id(account)]
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)
        d: defer.Deferred[Any] = deferToThreadPool(reactor, reactor.getThreadPool(),
                                                   TLSContext, options)
        d.addCallback(built).addBoth(finished)
    return waiter.addCallback(_connection_tls, on_established)


def tls_warnings(account: Account) -> list[str]:
    """Warnings about deprecated TLS settings (only when TLS is on)."""
    if not account.tls:
        return []
    from msmtp_twisted.tls.options import TLSOptions

    return TLSOptions.from_account(account).warnings()


def peer_names(account: Account) -> tuple[str | None, str | None]:
    """The server's reverse-resolved name and numeric address, as msmtp shows them
    (neither through a SOCKS proxy: the proxy resolves the name).  Blocking."""
    if account.socket is not None or account.host is None or account.proxy_host is not None:
        return None, None
    import socket

    try:
        infos = socket.getaddrinfo(account.host, account.port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None, None
    if not infos:
        return None, None
    sockaddr = infos[0][4]
    try:
        name = socket.getnameinfo(sockaddr, socket.NI_NAMEREQD)[0]
    except OSError:
        name = None
    try:
        address = socket.getnameinfo(sockaddr, socket.NI_NUMERICHOST)[0]
    except OSError:
        address = None
    return name, address
