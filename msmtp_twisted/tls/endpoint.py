"""Implicit TLS (``tls_starttls off``) over any client endpoint."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

__all__ = ["TLSWrapperEndpoint"]


@implementer(IStreamClientEndpoint)
class TLSWrapperEndpoint:
    """TLS from the first byte (``tls_starttls off``) over another endpoint."""

    def __init__(self, creator: Any, wrapped: Any) -> None:
        self._creator = creator
        self._wrapped = wrapped

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from msmtp_twisted.tls.layer import LeanTLSProtocol

        factory = TLSMemoryBIOFactory(self._creator, True, protocolFactory)
        factory.protocol = LeanTLSProtocol
        d = self._wrapped.connect(factory)
        d.addCallback(lambda proto: proto.wrappedProtocol)
        return d
