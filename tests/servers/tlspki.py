"""A small PKI for TLS tests: CAs, server and client certificates, CRLs (``cryptography``).

::

    pki = PKI(tmp_path)
    ca = pki.ca("Test Root CA")
    leaf = pki.leaf(ca, "localhost")                      # valid, localhost + 127.0.0.1
    expired = pki.leaf(ca, "localhost", days=(-10, -1))   # not valid any more
    crl = pki.crl(ca, revoked=[leaf])                     # PEM CRL revoking ``leaf``
    ctx = leaf.server_context()                           # ssl.SSLContext for a server

Every object knows its files: ``ca.cert`` (PEM, a trust file), ``leaf.cert``,
``leaf.key``, ``leaf.chain`` (leaf then intermediates), ``leaf.fingerprint("sha256")``
in msmtp's ``AA:BB:...`` form.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import os
import ssl
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PKI", "Issued"]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Issued:
    """A certificate with its key, written to files."""

    name: str
    certificate: Any  # cryptography.x509.Certificate
    private_key: Any
    cert: Path  # PEM certificate
    key: Path  # PEM private key (unencrypted)
    chain: Path  # PEM: this certificate, then its issuers up to (not including) the root
    issuer: Issued | None = None
    intermediates: list[Issued] = field(default_factory=list)

    @property
    def serial(self) -> int:
        return int(self.certificate.serial_number)

    def fingerprint(self, algorithm: str = "sha256") -> str:
        from cryptography.hazmat.primitives import hashes

        algo = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1(), "md5": hashes.MD5()}[algorithm]
        return ":".join(f"{b:02X}" for b in self.certificate.fingerprint(algo))

    def der(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.certificate.public_bytes(serialization.Encoding.DER)

    def server_context(
        self,
        *,
        minimum: ssl.TLSVersion | None = None,
        maximum: ssl.TLSVersion | None = None,
        client_ca: Issued | None = None,
        require_client_cert: bool = False,
        ciphers: str | None = None,
    ) -> ssl.SSLContext:
        """A server context presenting this certificate (and its chain).

        ``client_ca``: ask for a client certificate issued by it (required when
        ``require_client_cert``).  ``minimum``/``maximum``: protocol versions.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():  # TLS 1.0/1.1 servers are the point of some tests
            warnings.simplefilter("ignore", DeprecationWarning)
            if minimum is not None:
                if minimum < ssl.TLSVersion.TLSv1_2:
                    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = minimum
            if maximum is not None:
                ctx.maximum_version = maximum
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
        ctx.load_cert_chain(self.chain, self.key)
        if client_ca is not None:
            ctx.load_verify_locations(client_ca.cert)
            ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        return ctx


class PKI:
    """Makes CAs, leaves and CRLs under ``directory`` (EC P-256 keys, SHA256)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        stem = f"{next(self._counter):02d}-" + "".join(
            c if c.isalnum() or c in "-." else "_" for c in name)
        return (self.directory / f"{stem}-cert.pem", self.directory / f"{stem}-key.pem",
                self.directory / f"{stem}-chain.pem")

    def _write(self, name: str, cert: Any, key: Any, issuer: Issued | None) -> Issued:
        from cryptography.hazmat.primitives import serialization

        cert_path, key_path, chain_path = self._paths(name)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path.write_bytes(pem)
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        intermediates: list[Issued] = []
        walk = issuer
        while walk is not None and walk.issuer is not None:  # stop before the root
            intermediates.append(walk)
            walk = walk.issuer
        chain_path.write_bytes(pem + b"".join(i.cert.read_bytes() for i in intermediates))
        return Issued(name, cert, key, cert_path, key_path, chain_path, issuer, intermediates)

    @staticmethod
    def _key(kind: str = "ec") -> Any:
        """A new key: ``ec`` (P-256), ``ec384``, ``rsa`` (2048 bits) or ``ed25519``."""
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        if kind == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "ec384":
            return ec.generate_private_key(ec.SECP384R1())
        if kind == "ed25519":
            return ed25519.Ed25519PrivateKey.generate()
        return ec.generate_private_key(ec.SECP256R1())

    def ca(self, name: str = "msmtp-twisted Test Root CA", *, issuer: Issued | None = None,
           days: tuple[int, int] = (-1, 30)) -> Issued:
        """A CA certificate: self-signed root, or an intermediate under ``issuer``."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        key = self._key()
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "msmtp-twisted tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer.certificate.subject if issuer else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now + datetime.timedelta(days=days[0]))
                   .not_valid_after(now + datetime.timedelta(days=days[1]))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(ski, critical=False))
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer.private_key.public_key()), critical=False)
        cert = builder.sign(issuer.private_key if issuer else key, hashes.SHA256())
        return self._write(name, cert, key, issuer)

    def leaf(self, issuer: Issued | None, name: str = "localhost", *,
             dns: Sequence[str] | None = None, ips: Sequence[str] | None = None,
             days: tuple[int, int] = (-1, 30), client: bool = False,
             common_name: str | None = None, key: str = "ec") -> Issued:
        """A server (or ``client``) certificate signed by ``issuer`` (self-signed if None).

        Default names: DNS ``name`` (and ``localhost``) and IP 127.0.0.1.  ``days``:
        validity relative to now, e.g. ``(-10, -1)`` for an expired one.  ``key``: see
        :meth:`_key`.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        kind, key = key, self._key(key)
        if dns is None:
            dns = [name] if name == "localhost" else [name, "localhost"]
        if ips is None:
            ips = [] if client else ["127.0.0.1"]
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "msmtp-twisted tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name or name)])
        now = _now()
        names: list[Any] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer.certificate.subject if issuer else subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now + datetime.timedelta(days=days[0]))
                   .not_valid_after(now + datetime.timedelta(days=days[1]))
                   .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer.private_key.public_key()), critical=False)
        signer = issuer.private_key if issuer else key
        cert = builder.sign(signer, None if (issuer is None and kind == "ed25519")
                            else hashes.SHA256())
        return self._write(name, cert, key, issuer)

    def crl(self, issuer: Issued, revoked: Iterable[Issued] = (), *,
            name: str = "crl") -> Path:
        """A PEM CRL from ``issuer`` listing ``revoked``."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        now = _now()
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(issuer.certificate.subject)
                   .last_update(now - datetime.timedelta(hours=1))
                   .next_update(now + datetime.timedelta(days=7))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer.private_key.public_key()), critical=False)
                   .add_extension(x509.CRLNumber(1), critical=False))
        for item in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(item.serial)
                .revocation_date(now - datetime.timedelta(minutes=5)).build())
        crl = builder.sign(issuer.private_key, hashes.SHA256())
        path = self.directory / f"{next(self._counter):02d}-{name}.pem"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path

    def encrypted_key(self, issued: Issued, passphrase: str) -> Path:
        """``issued``'s key as an encrypted PEM (PKCS#8, AES)."""
        from cryptography.hazmat.primitives import serialization

        path = issued.key.with_name(issued.key.name.replace("-key", "-key-encrypted"))
        path.write_bytes(issued.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode())))
        path.chmod(0o600)
        return path
