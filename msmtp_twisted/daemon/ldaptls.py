"""TLS for ``--auth-ldap`` (``ldaps://`` and StartTLS): ldap3's ``Tls`` with our checks.

ldap3 2.9.1 checks the server's name in ``ldap3.core.tls.check_hostname``,
which calls ``ssl.match_hostname``.  Python 3.12 removed that function; ldap3
then falls back to its own copy of Python 3.4's, which knows no IP addresses
(``ldaps://127.0.0.1/...`` is refused even for a certificate that names
127.0.0.1) and accepts partial wildcards.  :class:`CheckedTls` therefore
replaces ldap3's ``Tls.wrap_socket`` (the one place where ldap3 2.9.1 starts
TLS, for ldaps and StartTLS alike) so that ldap3's check never runs:

* the chain: OpenSSL verifies it during the handshake against the URL's
  ``x-cafile`` or else the system's trust store (``CERT_REQUIRED``);
* the name: after the handshake, the certificate must be valid for the URL's
  host, checked as msmtp's own TLS checks names
  (:func:`msmtp_twisted.tls.verify.name_matches`: service-identity's
  RFC 6125 rules for DNS names and IP addresses, the common name only when
  the certificate has no DNS names);
* SNI carries the host name (not an IP address).

A refusal raises :class:`LDAPTLSError` with a message for the log; ldap3 wraps
whatever ``wrap_socket`` raises into its own exceptions, so the error is also
kept in :attr:`CheckedTls.failure` for the caller to raise instead.

Importing this module imports ldap3: do it only when LDAP is used.
"""

from __future__ import annotations

import ssl
from typing import Any

from ldap3 import Tls

__all__ = ["CheckedTls", "LDAPTLSError", "certificate_names"]


class LDAPTLSError(OSError):
    """TLS with the LDAP server failed, or its certificate was refused."""


def certificate_names(cert: Any) -> list[str]:
    """The names a certificate is for, for messages: ``DNS:x``, ``IP:y``, or ``CN=z``."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [f"DNS:{d}" for d in san.get_values_for_type(x509.DNSName)]
        names += [f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)]
    except (x509.ExtensionNotFound, ValueError):
        pass
    if not names:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
            names.append(f"CN={value}")
    return names


class CheckedTls(Tls):  # type: ignore[misc]  # ldap3 has no type hints
    """An ldap3 ``Tls`` that verifies the chain and checks the name itself.

    ``host``: the host of the LDAP URL, which the certificate must name.
    ``cafile``: trust only the CAs in this PEM file; None for the system's.
    One object per check (it records that check's :attr:`failure`).
    """

    def __init__(self, host: str, cafile: str | None = None) -> None:
        # validate is only for ldap3's own code and repr; ours never relaxes it
        super().__init__(validate=ssl.CERT_REQUIRED)
        self.host = host
        self.cafile = cafile
        self.failure: LDAPTLSError | None = None

    def trust_store(self) -> str:
        return f"the CAs in {self.cafile}" if self.cafile else "the system's trust store"

    def context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        except (OSError, ssl.SSLError) as e:
            raise LDAPTLSError(f"cannot read x-cafile {self.cafile}: {e}") from None
        # The name is checked after the handshake, by name_matches(): one rule for
        # DNS names and IP addresses on every Python version.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _server_name(self) -> str | None:
        from msmtp_twisted.tls.verify import server_name_indication

        sni = server_name_indication(self.host)
        return sni.decode("ascii") if sni else None

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        """ldap3's hook (ldaps on connect, StartTLS after the extended operation).

        The handshake and the checks happen here whatever ``do_handshake`` says:
        the connection is never handed back unverified.
        """
        self.failure = None
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        where = f"LDAP server {host}:{connection.server.port}"
        try:
            ctx = self.context()
            sock = ctx.wrap_socket(connection.socket, server_side=False,
                                   do_handshake_on_connect=False,
                                   server_hostname=self._server_name())
        except LDAPTLSError as e:
            self.failure = e
            raise
        except (OSError, ValueError, UnicodeError) as e:
            self.failure = LDAPTLSError(f"TLS with {where} failed: {e}")
            raise self.failure from None
        try:
            sock.do_handshake()
            self._check_name(sock, where)
        except ssl.SSLCertVerificationError as e:
            self.failure = LDAPTLSError(
                f"certificate of {where} is not trusted ({self.trust_store()}): "
                f"{e.verify_message or e.reason or e}")
        except LDAPTLSError as e:
            self.failure = e
        except (OSError, ValueError) as e:
            self.failure = LDAPTLSError(f"TLS handshake with {where} failed: {e}")
        if self.failure is not None:
            sock.close()
            raise self.failure
        connection.socket = sock

    def _check_name(self, sock: ssl.SSLSocket, where: str) -> None:
        from cryptography import x509

        from msmtp_twisted.tls.verify import name_matches

        der = sock.getpeercert(binary_form=True)
        if not der:
            raise LDAPTLSError(f"{where} sent no certificate")
        cert = x509.load_der_x509_certificate(der)
        if not name_matches(cert, self.host):
            names = ", ".join(certificate_names(cert)) or "no names"
            raise LDAPTLSError(f"certificate of {where} is not valid for {self.host} "
                               f"(it is for {names})")
