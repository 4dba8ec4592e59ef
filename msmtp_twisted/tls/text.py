"""msmtp's TLS words: GnuTLS's verification status texts, certificate and session
information as msmtp's mtls_print_info() prints it, fingerprints.

Pure functions on ``cryptography`` objects and numbers; nothing here loads
pyOpenSSL (only :func:`_openssl_verify_text` asks it, lazily, for an unknown
error's text).  Used by :mod:`msmtp_twisted.tls.state` and :mod:`msmtp_twisted.tls.verify`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "STATUS_TEXTS",
    "TLSInfo",
    "VERIFY_FAILED",
    "fingerprint_matches",
    "format_dn",
    "format_fingerprint",
    "session_description",
    "signature_name",
    "status_from_openssl",
    "verification_message",
]


# ---------------------------------------------------------------------------
# GnuTLS's verification status, as msmtp prints it

#: GnuTLS's certificate status bits, in the order
#: gnutls_certificate_verification_status_print() describes them.
STATUS_TEXTS: tuple[tuple[str, str], ...] = (
    ("revoked", "The certificate chain is revoked. "),
    ("superseded", "The revocation or OCSP data are old and have been superseded. "),
    ("future-revocation", "The revocation or OCSP data are issued with a future date. "),
    ("signer-not-found", "The certificate issuer is unknown. "),
    ("signer-not-ca", "The certificate issuer is not a CA. "),
    ("insecure-algorithm", "The certificate chain uses insecure algorithm. "),
    ("constraints", "The certificate chain violates the signer's constraints. "),
    ("purpose", "The certificate chain does not match the intended purpose. "),
    ("not-activated", "The certificate chain uses not yet valid certificate. "),
    ("expired", "The certificate chain uses expired certificate. "),
    ("signature", "The signature in the certificate is invalid. "),
    ("unexpected-owner", "The name in the certificate does not match the expected. "),
    ("unknown-critical", "The certificate contains an unknown critical extension. "),
)
_KNOWN_STATUS = {name for name, _ in STATUS_TEXTS}

VERIFY_FAILED = "TLS certificate verification failed"

# OpenSSL's X509_V_ERR_* numbers (stable across OpenSSL 1.1 to 4)
_X509_ERRORS: dict[int, str | None] = {
    2: "signer-not-found",  # unable to get issuer certificate
    3: None,  # unable to get CRL: GnuTLS does not mind a CA without CRL
    4: "signature",  # unable to decrypt certificate's signature
    6: "signature",  # unable to decode issuer public key
    7: "signature",  # certificate signature failure
    8: None,  # CRL signature failure: that CRL is not used
    9: "not-activated",  # certificate is not yet valid
    10: "expired",  # certificate has expired
    11: None,  # CRL is not yet valid: GnuTLS still uses it
    12: None,  # CRL has expired: GnuTLS still uses it
    13: "not-activated",  # format error in certificate's notBefore field
    14: "expired",  # format error in certificate's notAfter field
    18: "signer-not-found",  # self-signed certificate
    19: "signer-not-found",  # self-signed certificate in certificate chain
    20: "signer-not-found",  # unable to get local issuer certificate
    21: "signer-not-found",  # unable to verify the first certificate
    22: "constraints",  # certificate chain too long
    23: "revoked",
    24: "signer-not-ca",  # invalid CA certificate
    25: "constraints",  # path length constraint exceeded
    26: "purpose",  # unsupported certificate purpose
    27: "signer-not-found",  # certificate not trusted
    28: "purpose",  # certificate rejected
    32: "signer-not-ca",  # key usage does not include certificate signing
    33: None,  # unable to get CRL issuer
    34: "unknown-critical",
    35: None,  # key usage does not include CRL signing
    36: None,  # unhandled critical CRL extension
    47: "constraints",  # permitted subtree violation
    48: "constraints",  # excluded subtree violation
    49: "constraints",  # name constraints minimum and maximum not supported
    51: "constraints",  # unsupported name constraint type
    52: "constraints",  # unsupported or invalid name constraint syntax
    53: "constraints",  # unsupported or invalid name syntax
    62: "unexpected-owner",  # hostname mismatch
    64: "unexpected-owner",  # IP address mismatch
    66: "insecure-algorithm",  # EE certificate key too weak
    67: "insecure-algorithm",  # CA certificate key too weak
    68: "insecure-algorithm",  # CA signature digest algorithm too weak
}


def status_from_openssl(errors: Iterable[int]) -> set[str]:
    """GnuTLS status names for OpenSSL verification error numbers.

    Unknown numbers become ``openssl:N`` entries (printed with OpenSSL's text).
    """
    status: set[str] = set()
    for number in errors:
        if number in _X509_ERRORS:
            name = _X509_ERRORS[number]
            if name is not None:
                status.add(name)
        else:
            status.add(f"openssl:{number}")
    return status


def verification_message(status: Iterable[str]) -> str:
    """msmtp's message for a failed check: GnuTLS's status text after the prefix.

    GnuTLS only looks at revocation when the chain is otherwise fine, so
    ``revoked`` is dropped when another chain problem is present.
    """
    status = set(status)
    if "revoked" in status and status - {"revoked", "unexpected-owner"}:
        status.discard("revoked")
    text = "The certificate is NOT trusted. " if status else "The certificate is trusted. "
    text += "".join(sentence for name, sentence in STATUS_TEXTS if name in status)
    for name in sorted(status - _KNOWN_STATUS):
        if name.startswith("openssl:"):
            text += _openssl_verify_text(int(name.split(":", 1)[1])) + ". "
    return f"{VERIFY_FAILED}: {text}"


def _openssl_verify_text(number: int) -> str:
    try:
        from OpenSSL._util import ffi, lib

        text = ffi.string(lib.X509_verify_cert_error_string(number)).decode()
    except Exception:  # pragma: no cover - private bindings changed
        text = f"OpenSSL verification error {number}"
    return text[:1].upper() + text[1:]


def fingerprint_matches(der: bytes, fingerprint: bytes) -> bool:
    """Whether ``fingerprint`` (32: SHA256, 20: SHA1, 16: MD5 bytes) is that of ``der``."""
    algorithm = {32: "sha256", 20: "sha1", 16: "md5"}.get(len(fingerprint))
    if algorithm is None:
        return False
    return hashlib.new(algorithm, der, usedforsecurity=False).digest() == fingerprint


def format_fingerprint(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


# ---------------------------------------------------------------------------
# certificate and session information, in msmtp's words

#: GnuTLS's names for distinguished name attributes (others print as OID=#hex)
_DN_NAMES = {
    "2.5.4.6": "C", "2.5.4.8": "ST", "2.5.4.7": "L", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.3": "CN", "1.2.840.113549.1.9.1": "EMAIL", "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.5": "serialNumber", "0.9.2342.19200300.100.1.1": "UID", "2.5.4.42": "givenName",
    "2.5.4.4": "surName", "2.5.4.12": "title", "2.5.4.9": "street", "2.5.4.17": "postalCode",
    "2.5.4.15": "businessCategory", "2.5.4.65": "pseudonym", "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier", "2.5.4.46": "dnQualifier", "2.5.4.41": "name",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionOfIncorporationLocalityName",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionOfIncorporationStateOrProvinceName",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionOfIncorporationCountryName",
}
#: names GnuTLS knows but always prints with the raw (#hex) value
_DN_HEX_NAMES = {"1.2.643.3.131.1.1": "INN", "1.2.643.100.1": "OGRN", "1.2.643.100.3": "SNILS",
                 "1.2.643.100.5": "OGRNIP"}


def _escape_dn_value(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (i == 0 and ch in "# ") or (i == len(value) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def format_dn(name: Any) -> str:
    """A cryptography ``Name`` as GnuTLS's gnutls_x509_crt_get_dn() shows it:
    in certificate order, ``,`` between RDNs, ``+`` inside one."""
    parts = []
    for rdn in name.rdns:
        items = []
        for attr in rdn:
            oid = attr.oid.dotted_string
            label = _DN_NAMES.get(oid)
            value = attr.value
            if label is not None and isinstance(value, str):
                items.append(f"{label}={_escape_dn_value(value)}")
            else:
                raw = value if isinstance(value, bytes) else value.encode("utf-8")
                tag = getattr(getattr(attr, "_type", None), "value", 12)
                der = bytes([tag]) + _der_length(len(raw)) + raw
                items.append(f"{_DN_HEX_NAMES.get(oid, oid)}=#{der.hex()}")
        parts.append("+".join(items))
    return ",".join(parts)


def _time_text(timestamp: float) -> str:
    # msmtp: strftime("%c", localtime(t)); Python runs in the C locale here
    return time.strftime("%c", time.localtime(timestamp))


@dataclass
class TLSInfo:
    """The TLS session and server certificate, as msmtp's mtls_print_info() shows them."""

    description: str | None
    subject: str
    issuer: str
    activation: float
    expiration: float
    sha256: bytes
    sha1: bytes
    protocol: str = ""
    cipher: str = ""

    @classmethod
    def from_certificate(cls, cert: Any, description: str | None = None, *,
                         protocol: str = "", cipher: str = "") -> TLSInfo:
        # hashes, not serialization.Encoding.DER + hashlib: x509 has loaded
        # hashes already, serialization costs start-up time
        from cryptography.hazmat.primitives import hashes

        return cls(
            description=description,
            subject=format_dn(cert.subject),
            issuer=format_dn(cert.issuer),
            activation=cert.not_valid_before_utc.timestamp(),
            expiration=cert.not_valid_after_utc.timestamp(),
            sha256=cert.fingerprint(hashes.SHA256()),
            sha1=cert.fingerprint(hashes.SHA1()),
            protocol=protocol,
            cipher=cipher,
        )

    def lines(self) -> list[str]:
        return [
            "TLS session parameters:",
            f"    {self.description or 'not available'}",
            "TLS certificate information:",
            "    Subject:",
            f"        {self.subject}",
            "    Issuer:",
            f"        {self.issuer}",
            "    Validity:",
            f"        Activation time: {_time_text(self.activation)}",
            f"        Expiration time: {_time_text(self.expiration)}",
            "    Fingerprints:",
            f"        SHA256: {format_fingerprint(self.sha256)}",
            f"        SHA1 (deprecated): {format_fingerprint(self.sha1)}",
        ]


#: OpenSSL TLS 1.3 suites -> GnuTLS cipher names
_TLS13_SUITES = {
    "TLS_AES_256_GCM_SHA384": "AES-256-GCM",
    "TLS_AES_128_GCM_SHA256": "AES-128-GCM",
    "TLS_CHACHA20_POLY1305_SHA256": "CHACHA20-POLY1305",
    "TLS_AES_128_CCM_SHA256": "AES-128-CCM",
    "TLS_AES_128_CCM_8_SHA256": "AES-128-CCM-8",
}
#: the bulk cipher part of OpenSSL's TLS 1.2 names -> (GnuTLS cipher, MAC or None for AEAD)
_TLS12_CIPHERS = {
    "AES256-GCM-SHA384": ("AES-256-GCM", None),
    "AES128-GCM-SHA256": ("AES-128-GCM", None),
    "CHACHA20-POLY1305": ("CHACHA20-POLY1305", None),
    "AES256-CCM": ("AES-256-CCM", None),
    "AES128-CCM": ("AES-128-CCM", None),
    "AES256-CCM8": ("AES-256-CCM-8", None),
    "AES128-CCM8": ("AES-128-CCM-8", None),
    "AES256-SHA384": ("AES-256-CBC", "SHA384"),
    "AES128-SHA256": ("AES-128-CBC", "SHA256"),
    "AES256-SHA256": ("AES-256-CBC", "SHA256"),
    "AES256-SHA": ("AES-256-CBC", "SHA1"),
    "AES128-SHA": ("AES-128-CBC", "SHA1"),
    "DES-CBC3-SHA": ("3DES-CBC", "SHA1"),
    "CAMELLIA256-SHA": ("CAMELLIA-256-CBC", "SHA1"),
    "CAMELLIA128-SHA": ("CAMELLIA-128-CBC", "SHA1"),
}


def signature_name(cert: Any, tls13: bool) -> str | None:
    """The signature algorithm GnuTLS would name, inferred from the server's key
    (OpenSSL through pyOpenSSL does not tell which one was negotiated)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve, digest = {
            "secp256r1": ("SECP256R1", "SHA256"),
            "secp384r1": ("SECP384R1", "SHA384"),
            "secp521r1": ("SECP521R1", "SHA512"),
        }.get(key.curve.name, (key.curve.name.upper(), "SHA256"))
        # TLS 1.3 binds curve and hash; in TLS 1.2 servers take the client's first
        # ECDSA entry, SHA256
        return f"ECDSA-{curve}-{digest}" if tls13 else "ECDSA-SHA256"
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA-PSS-RSAE-SHA256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA-Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "EdDSA-Ed448"
    return None


def session_description(protocol: str, cipher: str, group: str | None,
                        signature: str | None) -> str:
    """gnutls_session_get_desc()'s ``(TLS1.3)-(ECDHE-SECP256R1)-(ECDSA-...)-(AES-256-GCM)``
    from OpenSSL's protocol and cipher names."""
    proto = protocol.replace("TLSv1.", "TLS1.").replace("TLSv1", "TLS1.0")
    tls13 = proto == "TLS1.3"
    mac: str | None = None
    if tls13:
        kx_type = "DHE" if group and group.startswith("FFDHE") else "ECDHE"
        bulk = _TLS13_SUITES.get(cipher, cipher)
    else:
        if cipher.startswith("ECDHE-"):
            kx_type = "ECDHE"
        elif cipher.startswith("DHE-"):
            kx_type = "DHE"
        else:
            kx_type = "RSA"
        rest = cipher
        for prefix in ("ECDHE-ECDSA-", "ECDHE-RSA-", "DHE-RSA-", "DHE-DSS-"):
            if rest.startswith(prefix):
                rest = rest[len(prefix):]
                break
        bulk, mac = _TLS12_CIPHERS.get(rest, (rest, None))
    if kx_type == "RSA":
        kx = "(RSA)"
    else:
        kx = f"({kx_type}-{group})" if group else f"({kx_type})"
        if signature:
            kx += f"-({signature})"
    desc = f"({proto})-{kx}-({bulk})"
    if mac:
        desc += f"-({mac})"
    return desc
