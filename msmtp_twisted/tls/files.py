"""The files of msmtp's TLS settings: trust anchors, CRLs, the client certificate and key.

Each file is read at most :data:`~msmtp_twisted.limits.FILE_LIMIT` bytes long and
its problems are reported as msmtp (with GnuTLS) reports them, as a
:class:`~msmtp_twisted.errors.TLSFailure` with exit code 66 (EX_NOINPUT).
Used by :func:`msmtp_twisted.tls.context.build_context`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, TLSFailure

if TYPE_CHECKING:
    from msmtp_twisted.tls.options import TLSOptions

__all__ = ["BrokenPEM", "load_client_certificate", "load_trust", "read_crls", "read_file",
           "trust_certificates"]


@contextmanager
def quiet_cryptography() -> Iterator[None]:
    """cryptography warns (on stderr, where msmtp prints nothing) about
    certificates it will refuse one day, such as CAs with a negative serial
    number that system bundles still carry; OpenSSL takes them."""
    import warnings

    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN (?:X509 )?CERTIFICATE-----.*?-----END (?:X509 )?CERTIFICATE-----", re.DOTALL)


_PEM_CERTIFICATE_BEGIN = re.compile(rb"-----BEGIN (?:X509 )?CERTIFICATE-----")


class BrokenPEM(ValueError):
    """A certificate block whose base64 is broken or that has no END line: GnuTLS
    refuses the whole file ("Base64 unexpected header error.")."""


def trust_certificates(data: bytes) -> list[Any]:
    """The certificates of a PEM trust file, each parsed on its own: one that
    cryptography cannot read does not cost the others (OpenSSL and GnuTLS take
    some that cryptography refuses).  A block that is not even base64 raises
    :class:`BrokenPEM`, as GnuTLS refuses such a file."""
    return [cert for _, cert in _trust_blocks(data)]


def _trust_blocks(data: bytes) -> list[tuple[bytes, Any]]:
    """(PEM block, certificate) of each certificate of a trust file that
    cryptography reads."""
    import base64
    import binascii

    from cryptography import x509

    blocks = _PEM_CERTIFICATE.findall(data)
    if len(blocks) != len(_PEM_CERTIFICATE_BEGIN.findall(data)):
        raise BrokenPEM("a certificate block without its END line")
    certs = []
    with quiet_cryptography():
        for block in blocks:
            body = block.split(b"-----", 3)[2]
            try:
                base64.b64decode(b"".join(body.split()), validate=True)
            except binascii.Error:
                raise BrokenPEM("a certificate block that is not base64") from None
            try:
                certs.append((block, x509.load_pem_x509_certificate(block)))
            except ValueError:
                continue
    return certs


def read_file(path: str) -> bytes:
    """The file's bytes; more than FILE_LIMIT is a read error (GnuTLS reads on until
    memory runs out, then says "Error while reading file.", as we do at once)."""
    import errno

    from msmtp_twisted.limits import FILE_LIMIT, read_file_at_most

    data, more = read_file_at_most(path, FILE_LIMIT)
    if more:
        raise OSError(errno.EFBIG, "File too large", path)
    return data


_PEM_CRL = b"-----BEGIN X509 CRL-----"
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def load_client_certificate(ctx: SSL.Context, options: TLSOptions) -> None:
    """The client certificate and key (``tls_cert_file``/``tls_key_file``) into ``ctx``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    assert options.cert_file is not None and options.key_file is not None

    def fail(reason: str) -> TLSFailure:
        return TLSFailure(
            sysexits.EX_NOINPUT,
            f"cannot set X509 key file {options.key_file} and/or X509 cert file "
            f"{options.cert_file} for TLS session: {reason}",
            cause=Cause.LOCAL,
        )

    if options.cert_file.startswith("pkcs11:") or options.key_file.startswith("pkcs11:"):
        raise fail("PKCS #11 URIs are not supported with OpenSSL")
    try:
        cert_data = read_file(options.cert_file)
        key_data = read_file(options.key_file)
    except OSError:
        raise fail("Error while reading file.") from None
    # GnuTLS reads the key first, then the certificates, each with its own
    # words for a file without the PEM block it needs and for a broken one
    if not _PEM_PRIVATE_KEY.search(key_data):
        raise fail("The requested data were not available.")
    password = options.key_password() if callable(options.key_password) else options.key_password
    try:
        key = serialization.load_pem_private_key(
            key_data, password.encode("utf-8") if password else None)
    except TypeError:
        if password:  # a password for a key that has none: GnuTLS ignores it
            try:
                key = serialization.load_pem_private_key(key_data, None)
            except (TypeError, ValueError):
                raise fail("Decryption has failed.") from None
        else:
            raise fail("Decryption has failed.") from None
    except ValueError:
        if b"ENCRYPTED" in key_data:
            raise fail("Decryption has failed.") from None
        raise fail("Base64 decoding error.") from None
    except Exception:
        raise fail("Decryption has failed.") from None
    if not _PEM_CERTIFICATE_BEGIN.search(cert_data):
        raise fail("Base64 decoding error.")
    try:
        with quiet_cryptography():
            certs = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise fail("Base64 unexpected header error.") from None
    try:
        ctx.use_certificate(certs[0])
        for extra in certs[1:]:
            ctx.add_extra_chain_cert(extra)
        ctx.use_privatekey(key)  # type: ignore[arg-type]
        ctx.check_privatekey()
    except SSL.Error:
        raise fail("The certificate and the given key do not match.") from None
    except (TypeError, ValueError):
        raise fail("The certificate and the given key do not match.") from None


def load_trust(ctx: SSL.Context, options: TLSOptions) -> None:
    """The trust anchors (``tls_trust_file``) and the CRLs (``tls_crl_file``) into ``ctx``."""
    from OpenSSL import crypto

    store = ctx.get_cert_store()
    assert store is not None and options.trust_file is not None
    if options.trust_file == "system":
        ctx.set_default_verify_paths()
    else:
        def fail(reason: str) -> TLSFailure:
            return TLSFailure(sysexits.EX_NOINPUT, f"cannot set X509 trust file "
                              f"{options.trust_file} for TLS session: {reason}",
                              cause=Cause.LOCAL)
        try:
            certs = _trust_blocks(read_file(options.trust_file))
        except OSError:
            raise fail("Error while reading file.") from None
        except BrokenPEM:
            raise fail("Base64 unexpected header error.") from None
        if not certs:
            # GnuTLS counts the certificates it found and msmtp prints the
            # text of that count (0: "Success.")
            raise fail("Success.")
        for block, cert in certs:
            try:
                # from the PEM block: X509.from_cryptography would import
                # cryptography's serialization package (start-up time)
                x509 = crypto.load_certificate(crypto.FILETYPE_PEM, block)
            except crypto.Error:
                x509 = crypto.X509.from_cryptography(cert)
            try:
                store.add_cert(x509)
            except crypto.Error:
                pass  # the same certificate twice
    flags = crypto.X509StoreFlags.PARTIAL_CHAIN
    if options.crl_file is not None:
        for crl in read_crls(options):
            store.add_crl(crl)
        flags |= crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL
    store.set_flags(flags)


def read_crls(options: TLSOptions) -> list[Any]:
    """The CRLs of ``tls_crl_file``, with GnuTLS's words for what is wrong with it."""
    from cryptography import x509

    assert options.crl_file is not None

    def fail(reason: str) -> TLSFailure:
        return TLSFailure(sysexits.EX_NOINPUT, f"cannot set X509 CRL file {options.crl_file} "
                          f"for TLS session: {reason}", cause=Cause.LOCAL)
    try:
        data = read_file(options.crl_file)
    except OSError:
        raise fail("Error while reading file.") from None
    crls = []
    blocks = data.split(_PEM_CRL)[1:]
    if not blocks:  # an empty file too
        raise fail("Base64 decoding error.")
    for block in blocks:
        end = block.find(b"-----END X509 CRL-----")
        if end < 0:
            raise fail("Base64 decoding error.")
        pem = _PEM_CRL + block[: end + len(b"-----END X509 CRL-----")] + b"\n"
        try:
            crls.append(x509.load_pem_x509_crl(pem))
        except ValueError:
            raise fail("Base64 decoding error.") from None
    return crls
