"""Why a TLS connection failed, in GnuTLS's words (as msmtp prints them).

OpenSSL reports its reasons as short texts in ``SSL.Error``; these are mapped
onto the GnuTLS error texts msmtp 1.8.23 prints after ``TLS handshake failed: ``
or ``cannot read from TLS connection: ``.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import error
from twisted.python.failure import Failure

__all__ = ["closed_text", "handshake_error_text", "openssl_reasons"]


#: OpenSSL error reasons that mean "this is not TLS"
_NOT_TLS = ("wrong version number", "packet length too long", "record layer failure",
            "unexpected message", "http request", "https proxy request", "bad record type",
            "record length mismatch", "bad packet length", "unknown protocol",
            "length too short", "excessive message size")
_VERSION_PROBLEMS = ("unsupported protocol", "no protocols available", "version too low",
                     "tlsv1 alert protocol version", "wrong ssl version",
                     "unknown ssl version")


def openssl_reasons(reason: Failure | None) -> list[str]:
    if reason is None or not isinstance(reason.value, SSL.Error):
        return []
    out = []
    for item in reason.value.args[0] if reason.value.args else ():
        if isinstance(item, tuple) and item:
            out.append(str(item[-1]))
        else:
            out.append(str(item))
    return out


def closed_text(transport_reason: Failure | None) -> str:
    """GnuTLS's words for a connection that ended without a TLS close: a clean
    end of the stream (the server closed) or a reset."""
    if transport_reason is not None and transport_reason.check(error.ConnectionDone):
        return "The TLS connection was non-properly terminated."
    return "Error in the pull function."


def handshake_error_text(reason: Failure | None, alert: int | None,
                         transport_reason: Failure | None = None) -> str:
    """GnuTLS's words (as msmtp prints them after ``TLS handshake failed: ``)
    for why a handshake broke off."""
    reasons = openssl_reasons(reason)
    joined = " ".join(reasons).lower()
    if alert is not None or "alert" in joined:
        if any(p in joined for p in _VERSION_PROBLEMS if "alert" not in p):
            return "A packet with illegal or unsupported version was received."
        return "A TLS fatal alert has been received."
    if any(p in joined for p in _NOT_TLS):
        return "An unexpected TLS packet was received."
    if any(p in joined for p in _VERSION_PROBLEMS):
        return "A packet with illegal or unsupported version was received."
    if "no shared cipher" in joined or "no ciphers available" in joined:
        return "Could not negotiate a supported cipher suite."
    if not reasons or "unexpected eof" in joined:
        return closed_text(transport_reason)
    return reasons[-1]
