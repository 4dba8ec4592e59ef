"""TLS for msmtp accounts: msmtp's verification rules on pyOpenSSL, through Twisted.

What msmtp 1.8.23 (built with GnuTLS, as Debian ships it) does, and what this
package does the same way:

* ``tls_trust_file``: ``system`` is the OS store (OpenSSL's default verify
  paths), otherwise a PEM file of trusted certificates.  Like GnuTLS, any
  certificate in the file is a trust anchor (an intermediate CA, or the
  server's own certificate, works; OpenSSL's ``PARTIAL_CHAIN``).
* The server's name is checked against ``tls_host_override`` or ``host``
  (:mod:`~msmtp_twisted.tls.verify`).
* ``tls_crl_file``: a revoked certificate fails.  Like GnuTLS, a CA without a
  CRL in the file is not an error, and an outdated CRL is still used.
* ``tls_fingerprint`` (SHA256, SHA1 or MD5 of the server certificate) replaces
  all other checks: a pinned certificate is trusted even when expired, from an
  unknown CA or for another name.
* ``tls_certcheck off`` turns every check off (msmtp 1.8.23 prints no warning
  for it, so neither do we).
* ``tls_cert_file``/``tls_key_file``: a client certificate (PEM, the file may
  hold the chain); an encrypted key is decrypted with the account's password,
  as GnuTLS does through msmtp's PIN callback.  ``pkcs11:`` URIs are refused.
* ``tls_priorities``: see :func:`~msmtp_twisted.tls.priorities.parse_priorities`.
* ``tls_min_dh_prime_bits`` is deprecated; OpenSSL has no such knob, so it is
  ignored with a warning (:meth:`TLSOptions.warnings`).

Verification happens once the handshake is complete, as msmtp does it: OpenSSL
checks the chain during the handshake and reports every problem to a callback
that only records it (so one failure does not hide the next), then the records,
the name check and the CRL are turned into GnuTLS's status text, e.g.
``TLS certificate verification failed: The certificate is NOT trusted. The
certificate issuer is unknown.`` (exit 69).  On failure the connection is
dropped before a single byte of the SMTP session is sent over TLS.

Errors are :class:`~msmtp_twisted.errors.TLSFailure` (an
:class:`~msmtp_twisted.errors.SMTPFailure`) with msmtp's text, exit code and
cause: unreadable trust/CRL/key files 66, priorities 70, verification 69,
handshake 76.

One module per concern:

=================  ==========================================================
``options``        :class:`TLSOptions`, the settings (pure: no OpenSSL)
``priorities``     ``tls_priorities`` parsed (pure)
``files``          trust anchors, CRLs, client certificate and key, read once
``context``        the OpenSSL context of a :class:`TLSOptions`
``verify``         name matching and msmtp's verdict on a certificate
``text``           msmtp's and GnuTLS's words, certificate information (pure)
``reasons``        GnuTLS's words for a failed handshake or connection
``state``          :class:`TLSState`: what happened on one connection
``creator``        :class:`ClientTLS`, the connection creator
``endpoint``       :class:`TLSWrapperEndpoint`, implicit TLS over an endpoint
``account``        :class:`AccountTLS`: one connection of an account, as the
                   senders use it (STARTTLS, trace, timeout, msmtp's errors)
``strings``        ``msmtp-tls:`` endpoint strings
=================  ==========================================================

For library users: :class:`TLSOptions` holds the settings (build it from an
account with :meth:`TLSOptions.from_account` or by hand); :class:`ClientTLS` is
an ``IOpenSSLClientConnectionCreator`` for ``transport.startTLS`` or
:class:`TLSWrapperEndpoint` (implicit TLS); a failed verification reaches the
protocol's ``connectionLost`` as a :class:`~msmtp_twisted.errors.TLSFailure`.
The senders use :class:`AccountTLS`, which also turns connection failures into
msmtp's TLS messages.  The names below are importable from this package; each
is loaded (with pyOpenSSL, where it needs it) when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msmtp_twisted.lazy import lazy_exports

if TYPE_CHECKING:
    from msmtp_twisted.tls.account import AccountTLS
    from msmtp_twisted.tls.creator import ClientTLS
    from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint
    from msmtp_twisted.tls.options import TLSOptions
    from msmtp_twisted.tls.priorities import Priorities, PriorityError, parse_priorities
    from msmtp_twisted.tls.reasons import handshake_error_text
    from msmtp_twisted.tls.state import TLSState
    from msmtp_twisted.tls.strings import (
        TLSEndpointParser,
        tls_client_endpoint,
        tls_options_from_fields,
    )
    from msmtp_twisted.tls.text import TLSInfo

__all__ = [
    "AccountTLS",
    "ClientTLS",
    "Priorities",
    "PriorityError",
    "TLSEndpointParser",
    "TLSInfo",
    "TLSOptions",
    "TLSState",
    "TLSWrapperEndpoint",
    "handshake_error_text",
    "parse_priorities",
    "tls_client_endpoint",
    "tls_options_from_fields",
]

_WHERE = {
    "AccountTLS": "account",
    "ClientTLS": "creator",
    "Priorities": "priorities",
    "PriorityError": "priorities",
    "TLSEndpointParser": "strings",
    "TLSInfo": "text",
    "TLSOptions": "options",
    "TLSState": "state",
    "TLSWrapperEndpoint": "endpoint",
    "handshake_error_text": "reasons",
    "parse_priorities": "priorities",
    "tls_client_endpoint": "strings",
    "tls_options_from_fields": "strings",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
