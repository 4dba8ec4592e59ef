"""Whether the server's certificate is accepted, by msmtp's (GnuTLS's) rules.

The name (``tls_host_override`` or ``host``) is checked with
``service_identity``: DNS names with RFC 6125 wildcards, IP addresses, IDN host
names through ``idna``; like GnuTLS, a certificate without DNS names in its
subjectAltName is matched on its common name, and IP addresses only match IP
subjectAltNames.  A ``tls_fingerprint`` replaces every other check.

Works on ``cryptography`` certificates; loads no pyOpenSSL.

The common cases (an ASCII host name or an IP address that a subjectAltName of
a plain certificate names) are decided here without importing
``service_identity`` and ``idna`` (start-up time of the command): the fast
paths only ever accept what ``service_identity`` accepts and hand everything
else to it.
"""

from __future__ import annotations

import ipaddress
import re
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



# an ASCII host name that IDNA (UTS #46) passes through unchanged, but for case
_LDH_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LDH_NAME = re.compile(rf"{_LDH_LABEL}(?:\.{_LDH_LABEL})*")


def _plain_ascii_name(hostname: str) -> str | None:
    """``hostname`` in lower case if ``idna.encode(hostname, uts46=True)`` would give
    just that (letters, digits, inner hyphens, no A-label prefix), else None."""
    low = hostname.lower()
    if (len(low) <= 253 and low.isascii() and _LDH_NAME.fullmatch(low)
            and not any(label[2:4] == "--" for label in low.split("."))):
        return low
    return None


def server_name_indication(hostname: str | None) -> bytes | None:
    """The SNI name: the host name in ASCII (A-labels); none for IP addresses."""
    if not hostname or is_ip(hostname):
        return None
    plain = _plain_ascii_name(hostname.rstrip("."))
    if plain is not None:
        return plain.encode("ascii")
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
    if hostname is None or _san_names(cert, hostname):
        return True
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
    if not options.certcheck:
        return None
    if options.fingerprint is not None:
        from cryptography.hazmat.primitives import serialization

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


def _service_id(host: str) -> bytes | ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """What service_identity checks ``host`` as: an IP address, or (``DNS_ID``) a
    lower-case ASCII name; None where it would refuse the name or needs ``idna``."""
    if is_ip(host):
        return ipaddress.ip_address(host.strip("[]"))
    name = host.strip()
    if not name or not name.isascii() or _ip_like(name):
        return None
    low = name.lower()
    if re.fullmatch(r"[a-z0-9\-_.]+", low) is None:
        return None
    return low.encode("ascii")


def _ip_like(text: str) -> bool:
    """service_identity's ``_is_ip_address``: what could be or match an IP address."""
    try:
        int(text)
        return True
    except ValueError:
        pass
    try:
        ipaddress.ip_address(text.replace("*", "1"))
    except ValueError:
        return False
    return True


def _san_names(cert: Any, host: str) -> bool:
    """True if a subjectAltName of ``cert`` names ``host`` by service_identity's rules
    (RFC 6125 wildcards, IP addresses), decided without importing it.

    Only certificates whose subjectAltNames are all DNS names service_identity reads
    without complaint, or IP addresses, are judged here; False means "not decided
    here": service_identity and the common name fallback then have their say.
    """
    from cryptography import x509

    wanted = _service_id(host)
    if wanted is None:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # none, or unreadable: the full path decides (and reports)
        return False
    found = False
    for name in san:
        if isinstance(name, x509.IPAddress):
            found = found or (not isinstance(wanted, bytes) and name.value == wanted)
        elif isinstance(name, x509.DNSName):
            raw = name.value
            if not isinstance(raw, str) or not raw.isascii():
                return False
            pattern = raw.encode("ascii").strip()
            if not pattern or b"\0" in pattern or _ip_like(pattern.decode("ascii")):
                return False  # service_identity refuses the whole certificate
            pattern = pattern.lower()
            if b"*" in pattern and not _valid_wildcard(pattern):
                return False
            found = found or (isinstance(wanted, bytes) and _dns_matches(pattern, wanted))
        else:
            return False  # URIs, SRV names, ...: service_identity's own rules
    return found


def _valid_wildcard(pattern: bytes) -> bool:
    """service_identity's ``_validate_pattern``."""
    parts = pattern.split(b".")
    return (pattern.count(b"*") == 1 and len(parts) >= 3 and b"*" in parts[0]
            and all(parts))


def _dns_matches(pattern: bytes, host: bytes) -> bool:
    """service_identity's ``_hostname_matches`` (both in lower case)."""
    if b"*" in pattern:
        if b"." not in host:
            return False
        pattern_head, pattern_tail = pattern.split(b".", 1)
        host_head, host_tail = host.split(b".", 1)
        if pattern_tail != host_tail or host_head.startswith(b"xn--"):
            return False
        return pattern_head in (b"*", host_head)
    return pattern == host


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
