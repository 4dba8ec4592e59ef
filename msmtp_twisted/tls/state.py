"""What happened on one TLS connection: :class:`TLSState`.

Filled in by :class:`~msmtp_twisted.tls.creator.ClientTLS` from OpenSSL's
callbacks: the chain problems OpenSSL reported, a fatal alert from the server,
and, once the handshake is complete, the session and certificate information,
msmtp's verdict on the certificate and the channel binding data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL
from twisted.python.failure import Failure

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, TLSFailure
from msmtp_twisted.tls.text import VERIFY_FAILED, TLSInfo, session_description, signature_name

if TYPE_CHECKING:
    from msmtp_twisted.tls.options import TLSOptions

__all__ = ["TLSState"]


def _group_name(conn: SSL.Connection) -> str | None:
    try:
        from OpenSSL._util import ffi, lib

        raw = lib.SSL_get0_group_name(conn._ssl)  # type: ignore[attr-defined]
        if raw == ffi.NULL:
            return None
        name = ffi.string(raw).decode()
    except Exception:
        return None
    aliases = {"secp256r1": "SECP256R1", "prime256v1": "SECP256R1", "secp384r1": "SECP384R1",
               "secp521r1": "SECP521R1", "x25519": "X25519", "x448": "X448"}
    return aliases.get(name.lower(), name.upper())


class TLSState:
    """What happened on one TLS connection.

    ``errors``: OpenSSL's verification error numbers, as reported during the
    handshake; ``info``: the session once the handshake is complete;
    ``failure``: the verification failure, if any; ``alert``: a fatal alert
    the server sent (its number).
    """

    def __init__(self, options: TLSOptions) -> None:
        self.options = options
        self.errors: list[int] = []
        self.handshake_done = False
        self.info: TLSInfo | None = None
        self.failure: TLSFailure | None = None
        self.alert: int | None = None
        self.peer_certificate: Any = None
        self.channel_binding: dict[str, bytes] = {}
        #: why the connection under TLS ended (before TLS turned it into its own reason)
        self.transport_reason: Failure | None = None
        self._established: list[Callable[[TLSState], None]] = []
        self._failed: list[Callable[[TLSState], None]] = []

    def on_established(self, callback: Callable[[TLSState], None]) -> None:
        self._established.append(callback)

    def on_verification_failed(self, callback: Callable[[TLSState], None]) -> None:
        self._failed.append(callback)

    def _verify_callback(self, conn: Any, cert: Any, errnum: int, depth: int, ok: int) -> bool:
        if not ok:
            self.errors.append(errnum)
        return True  # decide after the handshake, with every problem known

    def _handshake_completed(self, conn: SSL.Connection) -> None:
        if self.handshake_done:
            return
        self.handshake_done = True
        try:
            cert = conn.get_peer_certificate(as_cryptography=True)
            if cert is None:
                raise TLSFailure(sysexits.EX_UNAVAILABLE,
                                 f"{VERIFY_FAILED}: no certificate was found",
                                 cause=Cause.TLS_CERTIFICATE)
            self.peer_certificate = cert
            protocol = conn.get_protocol_version_name()
            cipher = conn.get_cipher_name() or ""
            # TLS 1.0/1.1 negotiate no signature algorithm: GnuTLS names none
            signature = (signature_name(cert, protocol == "TLSv1.3")
                         if protocol in ("TLSv1.2", "TLSv1.3") else None)
            description = session_description(protocol, cipher, _group_name(conn), signature)
            self.info = TLSInfo.from_certificate(cert, description, protocol=protocol,
                                                 cipher=cipher)
            self._channel_binding(conn, protocol)
            failure = self.options.check(cert, self.errors)
        except TLSFailure as e:
            failure = e
        except Exception as e:  # a bug must not let the session go on unverified
            failure = TLSFailure(sysexits.EX_SOFTWARE, f"{VERIFY_FAILED}: {e}",
                                 cause=Cause.TLS_CERTIFICATE)
        if failure is not None:
            self.failure = failure
            for callback in self._failed:
                callback(self)
            tls_protocol = conn.get_app_data()
            if tls_protocol is not None:
                tls_protocol.failVerification(Failure(failure))
            return
        for callback in self._established:
            callback(self)

    def _channel_binding(self, conn: SSL.Connection, protocol: str) -> None:
        """``tls-exporter`` (TLS 1.3) or ``tls-unique`` (below), for SCRAM-*-PLUS."""
        try:
            if protocol == "TLSv1.3":
                self.channel_binding["tls-exporter"] = conn.export_keying_material(
                    b"EXPORTER-Channel-Binding", 32)
            else:
                finished = conn.get_finished()
                if finished:
                    self.channel_binding["tls-unique"] = finished
        except Exception:
            pass
