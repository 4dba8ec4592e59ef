"""Account → endpoint: where and how an account connects.

A unix socket (``socket``), TCP to ``host``/``port`` the way msmtp connects
(every address in turn, ``source_ip``), through a SOCKS5 proxy
(``proxy_host``), and TLS from the first byte (``tls_starttls off``) around
any of them.  :func:`account_tls` builds the TLS side of one connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account import Account

if TYPE_CHECKING:
    from msmtp_twisted.tls.account import AccountTLS
    from msmtp_twisted.tls.text import TLSInfo

__all__ = ["account_tls", "endpoint_for", "peer_names", "tls_warnings"]


def endpoint_for(reactor: Any, account: Account, *, tls: AccountTLS | None = None,
                 **tcp_options: Any) -> Any:
    """The client endpoint for the account: its unix socket, or TCP to host/port
    (through the SOCKS5 proxy ``proxy_host`` when set); wrapped in TLS when ``tls``
    is given and the account wants TLS from the first byte."""
    from msmtp_twisted.net.connect import SequentialTCPEndpoint, UNIXEndpoint

    timeout = account.timeout or None
    endpoint: Any
    if account.socket is not None:
        endpoint = UNIXEndpoint(reactor, account.socket, timeout=timeout)
    else:
        assert account.host is not None
        if account.proxy_host is not None:
            from msmtp_twisted.net.socks import DEFAULT_PORT, SOCKS5ClientEndpoint

            proxy = SequentialTCPEndpoint(
                reactor, account.proxy_host, account.proxy_port or DEFAULT_PORT,
                timeout=timeout, source_ip=account.source_ip, **tcp_options,
            )
            endpoint = SOCKS5ClientEndpoint(proxy, account.host, account.port, timeout,
                                            clock=reactor)
        else:
            endpoint = SequentialTCPEndpoint(
                reactor, account.host, account.port, timeout=timeout,
                source_ip=account.source_ip, **tcp_options,
            )
    if tls is not None and not account.tls_starttls:
        endpoint = tls.wrap_endpoint(endpoint)
    return endpoint


def account_tls(account: Account, *,
                on_established: Callable[[TLSInfo], None] | None = None
                ) -> AccountTLS | None:
    """The TLS side of one connection of the account, None without ``tls``.

    Reads the TLS files now; raises :class:`~msmtp_twisted.errors.TLSFailure`
    for unusable files or settings.  ``on_established(info)`` is called once the
    server certificate has been verified.
    """
    if not account.tls:
        return None
    from msmtp_twisted.tls.account import AccountTLS

    return AccountTLS.from_account(account, on_established=on_established)


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
