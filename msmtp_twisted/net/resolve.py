"""Host names to addresses for :class:`~msmtp_twisted.net.connect.SequentialTCPEndpoint`,
without blocking a running reactor.

msmtp asks ``getaddrinfo(host, port)`` for stream sockets (any family, no
flags) and tries the addresses in the order it gets them; a failed lookup is
``cannot locate host H: <gai_strerror text>``.  Where that lookup runs is the
reactor's choice (:func:`resolver_for`):

- the reactor's name resolver (``reactor.nameResolver``,
  ``IReactorPluggableNameResolver``) when a program installed one of its own
  (``twisted.names``, a cache, a test double): its addresses, in its order;
- Twisted's default resolver (``getaddrinfo`` in the reactor's thread pool) is
  replaced by the same call in the same pool that keeps getaddrinfo's error
  text for msmtp's message;
- :class:`GetaddrinfoResolver` ``(blocking=True)`` installed on the reactor: the
  lookup in the calling thread.  The ``msmtp`` command installs it: it has
  nothing else to do while it waits, and a thread pool would cost start-up time;
- an IP address is never looked up (no thread, no delay), as getaddrinfo
  returns it unchanged;
- a reactor without a name resolver or threads (``task.Clock``, test doubles):
  the lookup in the calling thread.

Imports stay cheap (no ``twisted.names``): the command loads this module.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IHostnameResolver, IHostResolution, IResolutionReceiver
from zope.interface import implementer

__all__ = [
    "AddrInfo",
    "NOT_FOUND",
    "GetaddrinfoResolver",
    "ResolveError",
    "Resolver",
    "blocking_getaddrinfo",
    "numeric_address",
    "resolver_for",
]

AddrInfo = tuple[int, str]  # (family, numeric address)
Resolver = Callable[[str, int], "list[AddrInfo] | defer.Deferred[list[AddrInfo]]"]

#: glibc's gai_strerror(EAI_NONAME): what a resolver that found nothing means
NOT_FOUND = "Name or service not known"


class ResolveError(Exception):
    """The name could not be resolved; ``reason`` is getaddrinfo's text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def blocking_getaddrinfo(host: str, port: int) -> list[AddrInfo]:
    """All stream addresses for ``host``, in getaddrinfo's order (blocking)."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ResolveError(e.strerror or str(e)) from None
    except UnicodeError as e:
        raise ResolveError(str(e)) from None
    return [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos
            if family in (socket.AF_INET, socket.AF_INET6)]


def numeric_address(host: str) -> list[AddrInfo] | None:
    """``[(family, host)]`` when ``host`` is an IPv4/IPv6 address (what getaddrinfo
    returns for it), else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return [(family, host)]
    return None


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass  # getaddrinfo cannot be interrupted; its answer is dropped by the caller


@implementer(IHostnameResolver)
class GetaddrinfoResolver:
    """msmtp's lookup as an ``IHostnameResolver``: getaddrinfo in the reactor's
    thread pool, or (``blocking=True``) in the calling thread.

    :meth:`lookup` keeps getaddrinfo's error text (:class:`ResolveError`);
    :meth:`resolveHostName` serves whatever else resolves through the reactor.
    """

    def __init__(self, reactor: Any = None, *, blocking: bool = False) -> None:
        self._reactor = reactor
        self.blocking = blocking

    def lookup(self, host: str, port: int) -> defer.Deferred[list[AddrInfo]]:
        numeric = numeric_address(host)
        if numeric is not None:
            return defer.succeed(numeric)
        if self.blocking or self._reactor is None:
            return defer.maybeDeferred(blocking_getaddrinfo, host, port)
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                 blocking_getaddrinfo, host, port)

    def resolveHostName(self, resolutionReceiver: Any, hostName: str,
                        portNumber: int = 0, addressTypes: Sequence[type] | None = None,
                        transportSemantics: str = "TCP") -> Any:
        """See ``IHostnameResolver``: the addresses of :meth:`lookup`, none when it
        fails."""
        from twisted.internet.address import IPv4Address, IPv6Address

        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        wanted = tuple(addressTypes) if addressTypes else (IPv4Address, IPv6Address)

        def deliver(addresses: list[AddrInfo]) -> None:
            for family, address in addresses:
                kind = IPv4Address if family == socket.AF_INET else IPv6Address
                if kind in wanted:
                    resolutionReceiver.addressResolved(
                        kind(transportSemantics, address, portNumber))  # type: ignore[arg-type]
            resolutionReceiver.resolutionComplete()

        d = self.lookup(hostName, portNumber)
        d.addCallbacks(deliver, lambda _failure: resolutionReceiver.resolutionComplete())
        return resolution


@implementer(IResolutionReceiver)
class _Collect:
    """Gathers one resolution's addresses, in the order the resolver gives them."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.addresses: list[AddrInfo] = []
        self.done: defer.Deferred[list[AddrInfo]] = defer.Deferred()

    def resolutionBegan(self, resolutionInProgress: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        from twisted.internet.address import IPv4Address, IPv6Address

        if isinstance(address, IPv4Address):
            self.addresses.append((socket.AF_INET, address.host))
        elif isinstance(address, IPv6Address):
            self.addresses.append((socket.AF_INET6, address.host))

    def resolutionComplete(self) -> None:
        if self.addresses:
            self.done.callback(self.addresses)
        else:
            self.done.errback(ResolveError(NOT_FOUND))


def _through(name_resolver: Any) -> Resolver:
    def resolve(host: str, port: int) -> defer.Deferred[list[AddrInfo]]:
        numeric = numeric_address(host)
        if numeric is not None:
            return defer.succeed(numeric)
        receiver = _Collect(host)
        name_resolver.resolveHostName(receiver, host, port)
        return receiver.done
    return resolve


def _is_twisted_default(name_resolver: Any) -> bool:
    """Twisted's own getaddrinfo-in-a-thread resolver, calling the real getaddrinfo
    (it drops getaddrinfo's error text, so it is replaced by the same call)."""
    try:
        from twisted.internet._resolver import GAIResolver
    except ImportError:  # pragma: no cover - Twisted moved it
        return False
    return (isinstance(name_resolver, GAIResolver)
            and getattr(name_resolver, "_getaddrinfo", None) is socket.getaddrinfo)


def resolver_for(reactor: Any) -> Resolver:
    """How :class:`~msmtp_twisted.net.connect.SequentialTCPEndpoint` resolves on
    ``reactor`` (see the module docstring)."""
    installed = getattr(reactor, "nameResolver", None)
    if isinstance(installed, GetaddrinfoResolver):
        return installed.lookup
    if installed is None or _is_twisted_default(installed):
        if installed is not None and hasattr(reactor, "getThreadPool"):
            return GetaddrinfoResolver(reactor).lookup
        return GetaddrinfoResolver(blocking=True).lookup
    return _through(installed)
