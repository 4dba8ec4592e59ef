"""Client TLS connections checked by msmtp's rules: :class:`ClientTLS`."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from msmtp_twisted.tls.options import TLSOptions
from msmtp_twisted.tls.state import TLSState

__all__ = ["ClientTLS"]


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS:
    """Creates client TLS connections checked by msmtp's rules.

    Usable with ``transport.startTLS(creator)``, Twisted's ``wrapClientTLS`` or
    :class:`TLSWrapperEndpoint`.  ``on_connection(state)`` is called with the
    :class:`TLSState` of each new connection.
    """

    def __init__(self, options: TLSOptions, *, context: SSL.Context | None = None,
                 on_connection: Callable[[TLSState], None] | None = None) -> None:
        self.options = options
        self._context = context if context is not None else options.context()
        self._states: weakref.WeakKeyDictionary[SSL.Connection, TLSState] = (
            weakref.WeakKeyDictionary())
        self.on_connection = on_connection
        self._context.set_info_callback(self._info_callback)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self._context, None)
        state = TLSState(self.options)
        self._states[conn] = state
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
        return self._states.get(conn)

    def _info_callback(self, conn: SSL.Connection, where: int, ret: int) -> None:
        state = self._states.get(conn)
        if state is None:
            return
        try:
            if where & SSL.SSL_CB_ALERT and where & SSL.SSL_CB_READ and (ret >> 8) == 2:
                state.alert = ret & 0xFF
            if where & SSL.SSL_CB_HANDSHAKE_DONE:
                state._handshake_completed(conn)
        except BaseException:  # never let an exception escape into OpenSSL
            tls_protocol = conn.get_app_data()
            if tls_protocol is not None:
                tls_protocol.failVerification(Failure())
