"""Client TLS connections checked by msmtp's rules: :class:`ClientTLS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from msmtp_twisted.tls.context import TLSContext
from msmtp_twisted.tls.options import TLSOptions
from msmtp_twisted.tls.state import TLSState

__all__ = ["ClientTLS"]


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS:
    """Creates client TLS connections checked by msmtp's rules.

    Usable with ``transport.startTLS(creator)``, Twisted's ``wrapClientTLS`` or
    :class:`TLSWrapperEndpoint`.  ``on_connection(state)`` is called with the
    :class:`TLSState` of each new connection.

    ``context``: a :class:`~msmtp_twisted.tls.context.TLSContext` to share (its
    files already read), an OpenSSL context, or None to build one now (reading
    the files).
    """

    def __init__(self, options: TLSOptions, *,
                 context: TLSContext | SSL.Context | None = None,
                 on_connection: Callable[[TLSState], None] | None = None) -> None:
        self.options = options
        if not isinstance(context, TLSContext):
            context = TLSContext(options, context)
        self.tls_context = context
        self.on_connection = on_connection

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self.tls_context.context, None)
        state = TLSState(self.options)
        self.tls_context.track(conn, state)
        conn.set_app_data(tlsProtocol)
        sni = self.options.server_name_indication()
        if sni:
            conn.set_tlsext_host_name(sni)
        if self.options.uses_trust:
            conn.set_verify(SSL.VERIFY_PEER, state._verify_callback)
        else:
            conn.set_verify(SSL.VERIFY_NONE)
        conn.set_connect_state()
        original = tlsProtocol.connectionLost

        def connectionLost(reason: Any = None) -> None:
            if state.transport_reason is None:
                state.transport_reason = reason
            original(reason)
        tlsProtocol.connectionLost = connectionLost
        if self.on_connection is not None:
            self.on_connection(state)
        return conn

    def state_of(self, conn: SSL.Connection) -> TLSState | None:
        return self.tls_context.state_of(conn)
