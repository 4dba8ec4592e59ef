"""Which lookup an endpoint uses on which reactor (msmtp_twisted.net.resolve)."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock

from msmtp_twisted.net.resolve import (
    GetaddrinfoResolver,
    ResolveError,
    numeric_address,
    resolver_for,
)


class _Installed:
    """A program's own IHostnameResolver: answers in the order it likes."""

    def __init__(self, answer: list[Any]) -> None:
        self.answer = answer
        self.asked: list[tuple[str, int]] = []

    def resolveHostName(self, receiver: Any, host: str, port: int = 0, *args: Any) -> Any:
        self.asked.append((host, port))
        receiver.resolutionBegan(None)
        for address in self.answer:
            receiver.addressResolved(address)
        receiver.resolutionComplete()
        return None


class _Reactor(Clock):
    def __init__(self, resolver: Any) -> None:
        super().__init__()
        self.nameResolver = resolver


def _result(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    return out[0]


def test_installed_resolver_is_used_in_its_order() -> None:
    installed = _Installed([IPv6Address("TCP", "::1", 25), IPv4Address("TCP", "127.0.0.1", 25)])
    resolve = resolver_for(_Reactor(installed))
    assert _result(resolve("mx.test", 25)) == [(socket.AF_INET6, "::1"),
                                               (socket.AF_INET, "127.0.0.1")]
    assert installed.asked == [("mx.test", 25)]


def test_installed_resolver_finding_nothing_is_a_dns_failure() -> None:
    failure = _result(resolver_for(_Reactor(_Installed([])))("mx.test", 25))
    assert isinstance(failure.value, ResolveError)
    assert failure.value.reason == "Name or service not known"


def test_ip_addresses_are_never_looked_up() -> None:
    installed = _Installed([])
    resolve = resolver_for(_Reactor(installed))
    assert _result(resolve("192.0.2.1", 25)) == [(socket.AF_INET, "192.0.2.1")]
    assert _result(resolve("2001:db8::1", 25)) == [(socket.AF_INET6, "2001:db8::1")]
    assert installed.asked == []
    assert numeric_address("mx.test") is None


def test_reactor_without_threads_looks_up_in_place() -> None:
    resolve = resolver_for(Clock())
    assert _result(resolve("127.0.0.1", 25)) == [(socket.AF_INET, "127.0.0.1")]


def test_blocking_resolver_installed_by_the_command_is_used_as_it_is() -> None:
    blocking = GetaddrinfoResolver(blocking=True)
    resolve = resolver_for(_Reactor(blocking))
    assert resolve == blocking.lookup
    assert _result(resolve("localhost", 25))  # answered at once, in this thread


def test_getaddrinfo_resolver_serves_the_interface() -> None:
    seen: list[Any] = []

    class Receiver:
        def resolutionBegan(self, resolution: Any) -> None:
            seen.append(("began", resolution.name))

        def addressResolved(self, address: Any) -> None:
            seen.append(address)

        def resolutionComplete(self) -> None:
            seen.append("complete")

    GetaddrinfoResolver(blocking=True).resolveHostName(Receiver(), "127.0.0.1", 25)
    assert seen == [("began", "127.0.0.1"), IPv4Address("TCP", "127.0.0.1", 25), "complete"]


def test_twisteds_default_resolver_is_replaced_by_a_threaded_lookup() -> None:
    # a fresh reactor object (not installed, never run): its default nameResolver
    from twisted.internet.selectreactor import SelectReactor

    reactor = SelectReactor()
    try:
        resolve = resolver_for(reactor)
        owner = getattr(resolve, "__self__", None)
        assert isinstance(owner, GetaddrinfoResolver) and not owner.blocking
    finally:
        reactor.removeAll()
        reactor.waker.connectionLost(None)  # type: ignore[attr-defined]
