"""Whether the server's certificate is accepted, by msmtp's (GnuTLS's) rules.

The name (``tls_host_override`` or ``host``) is checked with
``service_identity``: DNS names with RFC 6125 wildcards, IP addresses, IDN host
names through ``idna``; like GnuTLS, a certificate without DNS names in its
subjectAltName is matched on its common name, and IP addresses only match IP
subjectAltNames.  A ``tls_fingerprint`` replaces every other check.

Works on ``cryptography`` certificates; loads no pyOpenSSL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, TLSFailure
from msmtp_twisted.tls.text import (
    VERIFY_FAILED,
    fingerprint_matches,
    status_from_openssl,
    verification_message,
)

if TYPE_CHECKING:
    from msmtp_twisted.tls.options import TLSOptions

__all__ = ["check_certificate", "is_ip", "name_matches", "server_name_indication"]


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True



def server_name_indication(hostname: str | None) -> bytes | None:
    """The SNI name: the host name in ASCII (A-labels); none for IP addresses."""
    if not hostname or is_ip(hostname):
        return None
    try:
        import idna

        return idna.encode(hostname.rstrip("."), uts46=True)
    except Exception:
        try:
            return hostname.encode("ascii")
        except UnicodeError:
            return None


def name_matches(cert: Any, hostname: str | None) -> bool:
    """Whether the certificate is for ``hostname`` (None: any name), as GnuTLS checks it."""
    import service_identity
    from service_identity.cryptography import (
        verify_certificate_hostname,
        verify_certificate_ip_address,
    )

    host = hostname
    if host is None:
        return True
    try:
        if is_ip(host):
            verify_certificate_ip_address(cert, host.strip("[]"))
            return True
        host = _ascii_hostname(host)
        verify_certificate_hostname(cert, host)
        return True
    except (service_identity.VerificationError, service_identity.CertificateError,
            ValueError, UnicodeError):
        pass
    if is_ip(host):
        return False
    return _common_name_matches(cert, host)


def check_certificate(options: TLSOptions, cert: Any,
                      openssl_errors: Sequence[int]) -> TLSFailure | None:
    """msmtp's verdict on the server certificate (None: accepted); ``openssl_errors``
    are the chain problems OpenSSL reported during the handshake."""
    from cryptography.hazmat.primitives import serialization

    if not options.certcheck:
        return None
    if options.fingerprint is not None:
        der = cert.public_bytes(serialization.Encoding.DER)
        if fingerprint_matches(der, options.fingerprint):
            return None
        return TLSFailure(sysexits.EX_UNAVAILABLE,
                          f"{VERIFY_FAILED}: the certificate fingerprint does not match",
                          cause=Cause.TLS_CERTIFICATE)
    if options.trust_file is None:
        return None  # msmtp: without trust file only the fingerprint is checked
    status = status_from_openssl(openssl_errors)
    if not name_matches(cert, options.hostname):
        status.add("unexpected-owner")
    if not status:
        return None
    return TLSFailure(sysexits.EX_UNAVAILABLE, verification_message(status),
                      cause=Cause.TLS_CERTIFICATE)


def _ascii_hostname(host: str) -> str:
    """An internationalised host name in A-labels (UTS #46 mapping: case, width)."""
    if host.isascii():
        return host
    try:
        import idna

        return idna.encode(host, uts46=True).decode("ascii")
    except Exception:
        return host


def _common_name_matches(cert: Any, host: str) -> bool:
    """GnuTLS's fallback: without DNS subjectAltNames, the common name counts."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from service_identity.hazmat import DNS_ID, DNSPattern

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if san.get_values_for_type(x509.DNSName):
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        wanted = DNS_ID(host)
    except (ValueError, UnicodeError):
        return False
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
        try:
            if wanted.verify(DNSPattern.from_bytes(value.encode("utf-8"))):
                return True
        except Exception:
            continue
    return False
