"""Client endpoints for an account: TCP the way msmtp connects, and unix sockets.

msmtp resolves the host with getaddrinfo and tries the addresses in order,
binding to ``source_ip`` first when set, and reports the last failure with the
host name as the user wrote it.  :class:`SequentialTCPEndpoint` does the same
on Twisted's TCP endpoints; its failures are
:class:`~msmtp_twisted.errors.ConnectFailure` carrying msmtp's message and exit
code, and the cause.  Names are resolved as :mod:`msmtp_twisted.net.resolve`
says for the reactor (off the reactor thread unless the reactor has no threads
or the command asked for a blocking lookup), or by the ``resolve`` given.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, error
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory
from zope.interface import implementer

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, ConnectFailure
from msmtp_twisted.net.resolve import (
    AddrInfo,
    ResolveError,
    Resolver,
    blocking_getaddrinfo,
    resolver_for,
)

if TYPE_CHECKING:
    from msmtp_twisted.net.probe import Connected

__all__ = [
    "AddrInfo",
    "ResolveError",
    "Resolver",
    "SequentialTCPEndpoint",
    "UNIXEndpoint",
    "blocking_getaddrinfo",
    "source_ip_errno",
]

class _OneShotFactory(ClientFactory):
    """Connects once and reports the outcome on a Deferred.

    Twisted's own client endpoints do the same, but importing
    ``twisted.internet.endpoints`` loads OpenSSL, which a plain connection
    must not pay for at start-up.
    """

    noisy = False  # no "Starting factory" line per connection in the program's log

    def __init__(self, wrapped: IProtocolFactory) -> None:
        self._wrapped = wrapped
        self.deferred: defer.Deferred[Any] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self._wrapped.buildProtocol(addr)
        if protocol is None:
            self.deferred.errback(error.ConnectError(string="connection refused by the factory"))
            return None
        original = protocol.makeConnection

        def makeConnection(transport: Any) -> None:
            original(transport)
            if not self.deferred.called:
                self.deferred.callback(protocol)

        protocol.makeConnection = makeConnection  # type: ignore[method-assign]
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


def source_ip_errno(source_ip: str, family: int) -> int | None:
    """The errno binding ``source_ip`` to a socket of ``family`` fails with
    before the kernel could take the address, or None when it is an address
    of that family.  msmtp takes only a numeric address in the strict form
    (``inet_pton``: no names, no ``1.2.3``) and binds it as it is: an IPv6
    address on an IPv4 socket is EAFNOSUPPORT, an IPv4 address on an IPv6
    socket EINVAL (the kernel's answers), anything else EINVAL."""
    for kind in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(kind, source_ip)
        except (OSError, ValueError):
            continue
        if kind == family:
            return None
        return errno.EAFNOSUPPORT if family == socket.AF_INET else errno.EINVAL
    return errno.EINVAL


def _errno_of(failure: BaseException) -> int:
    if isinstance(failure, error.ConnectionRefusedError):
        return errno.ECONNREFUSED
    if isinstance(failure, (error.TimeoutError, error.TCPTimedOutError)):
        return errno.ETIMEDOUT
    if isinstance(failure, error.NoRouteError):
        return errno.EHOSTUNREACH
    number = getattr(failure, "osError", None)
    if isinstance(number, int) and number > 0:
        return number
    return errno.ENETUNREACH


def _cause_of(failure: BaseException, number: int | None = None) -> Cause:
    number = _errno_of(failure) if number is None else number
    if number == errno.ECONNREFUSED:
        return Cause.REFUSED
    if number == errno.ETIMEDOUT:
        return Cause.TIMEOUT
    return Cause.UNREACHABLE


@implementer(IStreamClientEndpoint)
class SequentialTCPEndpoint:
    """Resolve ``host``, then try each address in turn, as msmtp does."""

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        *,
        timeout: float | None = None,
        source_ip: str | None = None,
        resolve: Resolver | None = None,
        on_connect: Callable[[str], None] | None = None,
        connected: Connected | None = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout
        self._source_ip = source_ip
        self._resolve = resolve
        #: a connection to this host and port made already
        #: (:func:`msmtp_twisted.net.probe.connect_first`): the first connect()
        #: adopts it instead of connecting again
        self._connected = connected
        #: called with the numeric address once a connection stands (a log event)
        self.on_connect = on_connect

    def resolver(self) -> Resolver:
        """The lookup used: the one given, else the reactor's (chosen at connect time,
        so a resolver installed after this endpoint was made is used)."""
        return self._resolve if self._resolve is not None else resolver_for(self._reactor)

    @defer.inlineCallbacks
    def connect(self, protocolFactory: IProtocolFactory) -> Any:
        if self._connected is not None:
            connected, self._connected = self._connected, None
            from msmtp_twisted.net.adopt import AdoptingConnector

            factory = _OneShotFactory(protocolFactory)
            AdoptingConnector(connected, self._port, factory, self._timeout or 30,
                              self._reactor).connect()
            try:
                protocol = yield factory.deferred
            except error.ConnectError as e:  # reset before the reactor saw it
                raise ConnectFailure(
                    sysexits.EX_TEMPFAIL,
                    f"cannot connect to {self._host}, port {self._port}: "
                    f"{os.strerror(_errno_of(e))}",
                    cause=_cause_of(e),
                ) from None
            if self.on_connect is not None:
                self.on_connect(connected.address)
            return protocol
        try:
            addresses = yield defer.maybeDeferred(self.resolver(), self._host, self._port)
        except ResolveError as e:
            raise ConnectFailure(
                sysexits.EX_NOHOST, f"cannot locate host {self._host}: {e.reason}",
                cause=Cause.DNS,
            ) from None
        last: BaseException | None = None
        for family, address in addresses:
            if self._source_ip:
                number = source_ip_errno(self._source_ip, family)
                if number is not None:
                    last = error.ConnectBindError(number, os.strerror(number))
                    continue
            factory = _OneShotFactory(protocolFactory)
            self._reactor.connectTCP(
                address,
                self._port,
                factory,
                timeout=self._timeout or 30,
                bindAddress=(self._source_ip, 0) if self._source_ip else None,
            )
            try:
                protocol = yield factory.deferred
            except error.ConnectError as e:
                last = e
                continue
            if self.on_connect is not None:
                self.on_connect(address)
            return protocol
        if last is None:
            raise ConnectFailure(
                sysexits.EX_NOHOST,
                f"cannot locate host {self._host}: No address associated with hostname",
                cause=Cause.DNS,
            )
        if isinstance(last, error.ConnectBindError):
            raise ConnectFailure(
                sysexits.EX_OSERR,
                f"cannot bind source ip {self._source_ip}: {os.strerror(_errno_of(last))}",
                cause=Cause.LOCAL,
            )
        raise ConnectFailure(
            sysexits.EX_TEMPFAIL,
            f"cannot connect to {self._host}, port {self._port}: "
            f"{os.strerror(_errno_of(last))}",
            cause=_cause_of(last),
        )


@implementer(IStreamClientEndpoint)
class UNIXEndpoint:
    """A unix domain socket, with msmtp's error messages."""

    def __init__(self, reactor: Any, path: str, *, timeout: float | None = None,
                 on_connect: Callable[[str], None] | None = None) -> None:
        self._reactor = reactor
        self._path = path
        self._timeout = timeout
        #: called with the path once the connection stands (a log event)
        self.on_connect = on_connect

    @defer.inlineCallbacks
    def connect(self, protocolFactory: IProtocolFactory) -> Any:
        if len(self._path.encode("utf-8", "surrogateescape")) + 1 > 108:
            raise ConnectFailure(
                sysexits.EX_IOERR, f"cannot connect to {self._path}: invalid argument",
                cause=Cause.LOCAL,
            )
        factory = _OneShotFactory(protocolFactory)
        self._reactor.connectUNIX(self._path, factory, timeout=self._timeout or 30)
        try:
            protocol = yield factory.deferred
        except error.ConnectError as e:
            number = _errno_of(e)
            if not isinstance(e, (error.ConnectionRefusedError, error.TimeoutError)):
                number = _unix_errno(self._path, number)
            raise ConnectFailure(
                sysexits.EX_TEMPFAIL, f"cannot connect to {self._path}: {os.strerror(number)}",
                cause=_cause_of(e, number),
            ) from None
        if self.on_connect is not None:
            self.on_connect(self._path)
        return protocol


def _unix_errno(path: str, fallback: int) -> int:
    # Twisted reports a missing socket file as a plain ConnectError; name the cause
    if not os.path.exists(path):
        return errno.ENOENT
    return fallback
