"""TLS for msmtp accounts: msmtp's verification rules on pyOpenSSL, through Twisted.

What msmtp 1.8.23 (built with GnuTLS, as Debian ships it) does, and what this
module does the same way:

* ``tls_trust_file``: ``system`` is the OS store (OpenSSL's default verify
  paths), otherwise a PEM file of trusted certificates.  Like GnuTLS, any
  certificate in the file is a trust anchor (an intermediate CA, or the
  server's own certificate, works; OpenSSL's ``PARTIAL_CHAIN``).
* The server's name is checked against ``tls_host_override`` or ``host`` with
  ``service_identity`` (DNS names with RFC 6125 wildcards, IP addresses, IDN
  host names through ``idna``).  Like GnuTLS, a certificate without DNS names
  in its subjectAltName is matched on its common name; IP addresses only
  match IP subjectAltNames.
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
* ``tls_priorities``: see :func:`~msmtp_twisted.net.tlspriorities.parse_priorities`.
* ``tls_min_dh_prime_bits`` is deprecated; OpenSSL has no such knob, so it is
  ignored with a warning (:meth:`TLSOptions.warnings`).

Verification happens once the handshake is complete, as msmtp does it: OpenSSL
checks the chain during the handshake and reports every problem to a callback
that only records it (so one failure does not hide the next), then the records,
the name check and the CRL are turned into GnuTLS's status text, e.g.
``TLS certificate verification failed: The certificate is NOT trusted. The
certificate issuer is unknown.`` (exit 69).  On failure the connection is
dropped before a single byte of the SMTP session is sent over TLS.

Errors are :class:`TLSFailure` (an
:class:`~msmtp_twisted.smtp.client.SMTPFailure`) with msmtp's text and exit code:
unreadable trust/CRL/key files 66, priorities 70, verification 69, handshake 76.

For library users: :class:`TLSOptions` holds the settings (build it from an
account with :meth:`TLSOptions.from_account` or by hand); :class:`ClientTLS` is
an ``IOpenSSLClientConnectionCreator`` for ``transport.startTLS`` or
:class:`TLSWrapperEndpoint` (implicit TLS); a failed verification reaches the
protocol's ``connectionLost`` as a :class:`TLSFailure`.  The command-line
modes use :class:`AccountTLS`, which also turns connection failures into
msmtp's TLS messages.

Importing this module loads pyOpenSSL: import it only when TLS is on.  The pure
parts live beside it and load no OpenSSL: :mod:`msmtp_twisted.net.tlspriorities`
(``tls_priorities``) and :mod:`msmtp_twisted.net.tlstext` (msmtp's and GnuTLS's
words, certificate information); their names are re-exported here.
"""

from __future__ import annotations

import ipaddress
import re
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from msmtp_twisted import sysexits
from msmtp_twisted.net.tlspriorities import Priorities, PriorityError, parse_priorities
from msmtp_twisted.net.tlstext import (
    VERIFY_FAILED,
    TLSInfo,
    fingerprint_matches,
    format_dn,
    format_fingerprint,
    session_description,
    signature_name,
    status_from_openssl,
    verification_message,
)
from msmtp_twisted.smtp.client import SMTPFailure

__all__ = [
    "AccountTLS",
    "ClientTLS",
    "Priorities",
    "PriorityError",
    "TLSFailure",
    "TLSInfo",
    "TLSOptions",
    "TLSState",
    "TLSEndpointParser",
    "TLSWrapperEndpoint",
    "fingerprint_matches",
    "format_dn",
    "format_fingerprint",
    "handshake_error_text",
    "parse_priorities",
    "session_description",
    "status_from_openssl",
    "tls_client_endpoint",
    "tls_options_from_fields",
    "verification_message",
]


class TLSFailure(SMTPFailure):
    """A TLS problem, with msmtp's message and exit code."""


# ---------------------------------------------------------------------------
# options and the OpenSSL context


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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@contextmanager
def _quiet_cryptography() -> Iterator[None]:
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


def _trust_certificates(data: bytes) -> list[Any]:
    """The certificates of a PEM trust file, each parsed on its own: one that
    cryptography cannot read does not cost the others."""
    from cryptography import x509

    certs = []
    with _quiet_cryptography():
        for block in _PEM_CERTIFICATE.findall(data):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return certs


def _read_file(path: str) -> bytes:
    """The file's bytes; more than FILE_LIMIT is a read error (GnuTLS reads on until
    memory runs out, then says "Error while reading file.", as we do at once)."""
    import errno

    from msmtp_twisted.limits import FILE_LIMIT, read_file_at_most

    data, more = read_file_at_most(path, FILE_LIMIT)
    if more:
        raise OSError(errno.EFBIG, "File too large", path)
    return data


_PEM_CRL = b"-----BEGIN X509 CRL-----"


@dataclass(frozen=True)
class TLSOptions:
    """msmtp's TLS settings for one server; see the module docstring.

    ``hostname``: the name the certificate must be valid for (and SNI); None
    skips the name check (only for callers that cannot know the name).
    ``trust_file``: ``"system"``, a PEM file, or None (trust no CA).
    ``key_password``: a string, or a callable returning one (asked only if the
    key is encrypted).
    """

    hostname: str | None
    trust_file: str | None = "system"
    crl_file: str | None = None
    fingerprint: bytes | None = None
    certcheck: bool = True
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | Callable[[], str | None] | None = field(default=None, repr=False)
    priorities: str | None = None
    min_dh_prime_bits: int = -1

    @classmethod
    def from_account(cls, account: Any) -> TLSOptions:
        return cls(
            hostname=account.tls_host_override or account.host or "",
            trust_file=account.tls_trust_file,
            crl_file=account.tls_crl_file,
            fingerprint=account.tls_fingerprint,
            certcheck=account.tls_certcheck,
            cert_file=account.tls_cert_file,
            key_file=account.tls_key_file,
            key_password=account.password,
            priorities=account.tls_priorities,
            min_dh_prime_bits=account.tls_min_dh_prime_bits,
        )

    # -- what is checked --------------------------------------------------------

    @property
    def uses_trust(self) -> bool:
        """Whether CA trust (and the name, and the CRL) is checked: not with a
        fingerprint or with checks off; msmtp then does not even read the files."""
        return self.certcheck and self.fingerprint is None and self.trust_file is not None

    def warnings(self) -> list[str]:
        if self.min_dh_prime_bits >= 0:
            return ["warning: tls_min_dh_prime_bits is deprecated and ignored "
                    "with OpenSSL; use tls_priorities"]
        return []

    # -- building the context -----------------------------------------------------

    def context(self) -> SSL.Context:
        """An OpenSSL context with these settings, files read now.

        Raises :class:`TLSFailure` with msmtp's message and exit code, in
        msmtp's order: priorities (70), client certificate (66), trust file
        (66), CRL file (66).
        """
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
        try:
            prio = parse_priorities(self.priorities)
        except PriorityError as e:
            raise _priority_failure(str(e)) from None
        _apply_priorities(ctx, prio)
        if self.cert_file is not None and self.key_file is not None:
            self._load_client_certificate(ctx)
        if self.uses_trust:
            self._load_trust(ctx)
        return ctx

    def _load_client_certificate(self, ctx: SSL.Context) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        assert self.cert_file is not None and self.key_file is not None

        def fail(reason: str) -> TLSFailure:
            return TLSFailure(
                sysexits.EX_NOINPUT,
                f"cannot set X509 key file {self.key_file} and/or X509 cert file "
                f"{self.cert_file} for TLS session: {reason}",
            )

        if self.cert_file.startswith("pkcs11:") or self.key_file.startswith("pkcs11:"):
            raise fail("PKCS #11 URIs are not supported with OpenSSL")
        try:
            cert_data = _read_file(self.cert_file)
            key_data = _read_file(self.key_file)
        except OSError:
            raise fail("Error while reading file.") from None
        try:
            with _quiet_cryptography():
                certs = x509.load_pem_x509_certificates(cert_data)
        except ValueError:
            raise fail("Base64 decoding error.") from None
        password = self.key_password() if callable(self.key_password) else self.key_password
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
        except ValueError as e:
            if b"ENCRYPTED" in key_data:
                raise fail("Decryption has failed.") from None
            raise fail("Base64 decoding error." if "PEM" in str(e) else
                       "The requested data were not available.") from None
        except Exception:
            raise fail("Decryption has failed.") from None
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

    def _load_trust(self, ctx: SSL.Context) -> None:
        from OpenSSL import crypto

        store = ctx.get_cert_store()
        assert store is not None and self.trust_file is not None
        if self.trust_file == "system":
            ctx.set_default_verify_paths()
        else:
            try:
                data = _read_file(self.trust_file)
            except OSError:
                raise TLSFailure(
                    sysexits.EX_NOINPUT,
                    f"cannot set X509 trust file {self.trust_file} for TLS session: "
                    "Error while reading file.") from None
            certs = _trust_certificates(data)
            if not certs:
                # GnuTLS counts the certificates it found and msmtp prints the
                # text of that count (0: "Success.")
                raise TLSFailure(
                    sysexits.EX_NOINPUT,
                    f"cannot set X509 trust file {self.trust_file} for TLS session: Success.")
            for cert in certs:
                try:
                    store.add_cert(crypto.X509.from_cryptography(cert))
                except crypto.Error:
                    pass  # the same certificate twice
        flags = crypto.X509StoreFlags.PARTIAL_CHAIN
        if self.crl_file is not None:
            for crl in self._read_crls():
                store.add_crl(crl)
            flags |= crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL
        store.set_flags(flags)

    def _read_crls(self) -> list[Any]:
        from cryptography import x509

        assert self.crl_file is not None

        def fail(reason: str) -> TLSFailure:
            return TLSFailure(sysexits.EX_NOINPUT, f"cannot set X509 CRL file {self.crl_file} "
                              f"for TLS session: {reason}")
        try:
            data = _read_file(self.crl_file)
        except OSError:
            raise fail("Error while reading file.") from None
        crls = []
        blocks = data.split(_PEM_CRL)[1:]
        if not blocks and data.strip():
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

    # -- the server's identity ------------------------------------------------------

    def server_name_indication(self) -> bytes | None:
        """The SNI name: the host name in ASCII (A-labels); none for IP addresses."""
        if not self.hostname or _is_ip(self.hostname):
            return None
        try:
            import idna

            return idna.encode(self.hostname.rstrip("."), uts46=True)
        except Exception:
            try:
                return self.hostname.encode("ascii")
            except UnicodeError:
                return None

    def name_matches(self, cert: Any) -> bool:
        """Whether the certificate is for :attr:`hostname`, as GnuTLS checks it."""
        import service_identity
        from service_identity.cryptography import (
            verify_certificate_hostname,
            verify_certificate_ip_address,
        )

        host = self.hostname
        if host is None:
            return True
        try:
            if _is_ip(host):
                verify_certificate_ip_address(cert, host.strip("[]"))
                return True
            host = _ascii_hostname(host)
            verify_certificate_hostname(cert, host)
            return True
        except (service_identity.VerificationError, service_identity.CertificateError,
                ValueError, UnicodeError):
            pass
        if _is_ip(host):
            return False
        return _common_name_matches(cert, host)

    def check(self, cert: Any, openssl_errors: Sequence[int]) -> TLSFailure | None:
        """msmtp's verdict on the server certificate (None: accepted)."""
        from cryptography.hazmat.primitives import serialization

        if not self.certcheck:
            return None
        if self.fingerprint is not None:
            der = cert.public_bytes(serialization.Encoding.DER)
            if fingerprint_matches(der, self.fingerprint):
                return None
            return TLSFailure(sysexits.EX_UNAVAILABLE,
                              f"{VERIFY_FAILED}: the certificate fingerprint does not match")
        if self.trust_file is None:
            return None  # msmtp: without trust file only the fingerprint is checked
        status = status_from_openssl(openssl_errors)
        if not self.name_matches(cert):
            status.add("unexpected-owner")
        if not status:
            return None
        return TLSFailure(sysexits.EX_UNAVAILABLE, verification_message(status))

    def creator(self) -> ClientTLS:
        """A connection creator for these options (reads the files now)."""
        return ClientTLS(self)


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


def _priority_failure(reason: str) -> TLSFailure:
    return TLSFailure(sysexits.EX_SOFTWARE, f"cannot set priorities for TLS session: {reason}")


_OPENSSL_VERSIONS = {
    (1, 0): SSL.TLS1_VERSION, (1, 1): SSL.TLS1_1_VERSION,
    (1, 2): SSL.TLS1_2_VERSION, (1, 3): SSL.TLS1_3_VERSION,
}


def _apply_priorities(ctx: SSL.Context, prio: Priorities) -> None:
    if prio.legacy and prio.ciphers is None:
        prio.ciphers = "DEFAULT:@SECLEVEL=0"
    elif prio.legacy and prio.ciphers is not None and "@SECLEVEL" not in prio.ciphers:
        prio.ciphers += ":@SECLEVEL=0"
    if prio.min_version is not None:
        ctx.set_min_proto_version(_OPENSSL_VERSIONS[prio.min_version])
    if prio.max_version is not None:
        ctx.set_max_proto_version(_OPENSSL_VERSIONS[prio.max_version])
    if prio.ciphers is not None:
        try:
            ctx.set_cipher_list(prio.ciphers.encode("ascii"))
        except (SSL.Error, UnicodeError):
            if prio.max_version is None or prio.max_version < (1, 3) or not prio.ciphersuites:
                raise _priority_failure("failed to set ciphers") from None
    if prio.ciphersuites is not None:
        try:
            ctx.set_tls13_ciphersuites(prio.ciphersuites.encode("ascii"))
        except (SSL.Error, UnicodeError):
            raise _priority_failure("failed to set ciphers") from None
    if prio.groups is not None:
        _set_groups(ctx, prio.groups)


def _set_groups(ctx: SSL.Context, groups: str) -> None:
    try:
        from OpenSSL._util import lib

        setter = lib.SSL_CTX_set1_curves_list
    except Exception:  # pragma: no cover - private bindings changed
        raise _priority_failure("key exchange groups cannot be set with this pyOpenSSL") from None
    if setter(ctx._context, groups.encode("ascii")) != 1:  # type: ignore[attr-defined]
        for name in groups.split(":"):
            if setter(ctx._context, name.encode("ascii")) != 1:  # type: ignore[attr-defined]
                raise _priority_failure(f"invalid ecdhe curve '{name}'")
        raise _priority_failure(f"invalid ecdhe curve '{groups}'")


# ---------------------------------------------------------------------------
# one TLS connection


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
                                 f"{VERIFY_FAILED}: no certificate was found")
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
            failure = TLSFailure(sysexits.EX_SOFTWARE, f"{VERIFY_FAILED}: {e}")
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


@implementer(IStreamClientEndpoint)
class TLSWrapperEndpoint:
    """TLS from the first byte (``tls_starttls off``) over another endpoint."""

    def __init__(self, creator: Any, wrapped: Any) -> None:
        self._creator = creator
        self._wrapped = wrapped

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(self._creator, True, protocolFactory)
        d = self._wrapped.connect(factory)
        d.addCallback(lambda proto: proto.wrappedProtocol)
        return d


# ---------------------------------------------------------------------------
# the command-line glue: one connection of an account


#: OpenSSL error reasons that mean "this is not TLS"
_NOT_TLS = ("wrong version number", "packet length too long", "record layer failure",
            "unexpected message", "http request", "https proxy request", "bad record type",
            "record length mismatch", "bad packet length", "unknown protocol",
            "length too short", "excessive message size")
_VERSION_PROBLEMS = ("unsupported protocol", "no protocols available", "version too low",
                     "tlsv1 alert protocol version", "wrong ssl version",
                     "unknown ssl version")


def _openssl_reasons(reason: Failure | None) -> list[str]:
    if reason is None or not isinstance(reason.value, SSL.Error):
        return []
    out = []
    for item in reason.value.args[0] if reason.value.args else ():
        if isinstance(item, tuple) and item:
            out.append(str(item[-1]))
        else:
            out.append(str(item))
    return out


def _closed_text(transport_reason: Failure | None) -> str:
    """GnuTLS's words for a connection that ended without a TLS close: a clean
    end of the stream (the server closed) or a reset."""
    if transport_reason is not None and transport_reason.check(error.ConnectionDone):
        return "The TLS connection was non-properly terminated."
    return "Error in the pull function."


def handshake_error_text(reason: Failure | None, alert: int | None,
                         transport_reason: Failure | None = None) -> str:
    """GnuTLS's words (as msmtp prints them after ``TLS handshake failed: ``)
    for why a handshake broke off."""
    reasons = _openssl_reasons(reason)
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
        return _closed_text(transport_reason)
    return reasons[-1]


class AccountTLS:
    """TLS for one connection of an account, as the msmtp commands use it.

    Build it before connecting (it reads the files and may raise
    :class:`TLSFailure`); then ``start_tls`` is the STARTTLS callable for
    :class:`~msmtp_twisted.protocol.session.SessionProtocol`,
    :meth:`wrap_endpoint` gives implicit TLS, :meth:`trace` holds the protocol
    trace while the handshake runs (msmtp prints the TLS information before the
    second EHLO), :meth:`watch` records why the connection ended and
    :meth:`translate` turns a failed session into msmtp's TLS error.
    ``on_established(info)`` is called after a successful verification.
    """

    def __init__(self, options: TLSOptions, *,
                 on_established: Callable[[TLSInfo], None] | None = None) -> None:
        self.options = options
        self.creator = ClientTLS(options, on_connection=self._connection)
        self.state: TLSState | None = None
        self.started = False
        self.lost_reason: Failure | None = None
        self._on_established = on_established
        self._held: list[tuple[str, bytes]] | None = None
        self._trace: Callable[[str, bytes], None] | None = None
        self._clock: Any = None
        self._timeout: float | None = None
        self._timer: Any = None
        self.timed_out = False

    @classmethod
    def from_account(cls, account: Any, **kwargs: Any) -> AccountTLS:
        return cls(TLSOptions.from_account(account), **kwargs)

    # -- wiring ---------------------------------------------------------------------

    def _connection(self, state: TLSState) -> None:
        self.state = state
        state.on_established(self._established)
        state.on_verification_failed(lambda _state: self._drop_held())

    def set_timeout(self, clock: Any, timeout: float | None) -> None:
        """Give up on a STARTTLS handshake after ``timeout`` seconds.

        Closing a connection gracefully waits for the handshake to finish (the
        second EHLO is already queued in the TLS layer), so a silent server
        would hold it open: this aborts it instead.
        """
        self._clock, self._timeout = clock, timeout

    def start_tls(self, transport: Any) -> None:
        self.started = True
        if self._trace is not None:
            self._held = []
        transport.startTLS(self.creator)
        if self._clock is not None and self._timeout:
            self._timer = self._clock.callLater(self._timeout, self._handshake_timed_out,
                                                transport)

    def _handshake_timed_out(self, transport: Any) -> None:
        self._timer = None
        if self.state is None or not self.state.handshake_done:
            self.timed_out = True
            transport.abortConnection()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def channel_binding(self) -> dict[str, bytes]:
        """The established connection's channel binding data (SCRAM -PLUS)."""
        state = self.state
        if state is None or not state.handshake_done or state.failure is not None:
            return {}
        return dict(state.channel_binding)

    def wrap_endpoint(self, endpoint: Any) -> TLSWrapperEndpoint:
        self.started = True
        return TLSWrapperEndpoint(self.creator, endpoint)

    def trace(self, trace: Callable[[str, bytes], None] | None
              ) -> Callable[[str, bytes], None] | None:
        if trace is None:
            return None
        self._trace = trace

        def held_trace(direction: str, data: bytes) -> None:
            if self._held is not None:
                self._held.append((direction, data))
            else:
                trace(direction, data)
        return held_trace

    def watch(self, protocol: Any) -> None:
        """Record the reason the connection of ``protocol`` was lost."""
        original = protocol.connectionLost

        def connectionLost(reason: Failure | None = None) -> None:
            self._cancel_timer()
            if self.lost_reason is None:
                self.lost_reason = reason
            original(reason)
        protocol.connectionLost = connectionLost

    def _established(self, state: TLSState) -> None:
        self._cancel_timer()
        if self._on_established is not None and state.info is not None:
            self._on_established(state.info)
        held, self._held = self._held, None
        if held and self._trace is not None:
            for direction, data in held:
                self._trace(direction, data)

    def _drop_held(self) -> None:
        self._held = None

    # -- outcome -----------------------------------------------------------------------

    def translate(self, failure: Failure) -> Any:
        """Errback: a session failure as msmtp reports TLS trouble."""
        tls = self.failure_for(failure.value)
        if tls is not None:
            return Failure(tls)
        return failure

    def failure_for(self, value: BaseException) -> SMTPFailure | None:
        state = self.state
        if state is not None and state.failure is not None:
            return state.failure
        if not self.started:
            return None
        if state is None or not state.handshake_done:
            if not isinstance(value, SMTPFailure) or value.reply is not None:
                return None
            if self.timed_out or "timed out" in value.message:
                # (msmtp 1.8.23 retries the GnuTLS handshake past its timeout)
                return TLSFailure(sysexits.EX_PROTOCOL,
                                  "TLS handshake failed: the operation timed out")
            alert = state.alert if state is not None else None
            transport_reason = state.transport_reason if state is not None else None
            return TLSFailure(sysexits.EX_PROTOCOL, "TLS handshake failed: "
                              + handshake_error_text(self.lost_reason, alert, transport_reason))
        if not isinstance(value, SMTPFailure) or value.reply is not None:
            return None
        message = value.message
        if state.alert is not None or "alert" in " ".join(
                _openssl_reasons(self.lost_reason)).lower():
            if message.startswith("network write error"):
                return SMTPFailure(sysexits.EX_IOERR, "cannot write to TLS connection: "
                                   "A TLS fatal alert has been received.")
            return SMTPFailure(sysexits.EX_IOERR, "cannot read from TLS connection: "
                               "A TLS fatal alert has been received.")
        if message == "network read error: Connection reset by peer":
            return SMTPFailure(sysexits.EX_IOERR, "cannot read from TLS connection: "
                               + _closed_text(state.transport_reason))
        if message.startswith("network write error: ") and "timed out" not in message:
            return SMTPFailure(sysexits.EX_IOERR,
                               "cannot write to TLS connection: Error in the push function.")
        return None


# ---------------------------------------------------------------------------
# endpoint strings


def _endpoint_fields(args: Sequence[str], kwargs: dict[str, str],
                     default_port: int) -> tuple[str, int, float | None, str | None]:
    """Host and port (positional or keyword), ``timeout`` and ``bindAddress`` of
    an endpoint string, taken out of ``kwargs``."""
    host = kwargs.pop("host", None) or (args[0] if args else None)
    port_text = kwargs.pop("port", None) or (args[1] if len(args) > 1 else str(default_port))
    if not host:
        raise ValueError("no host given")
    timeout = float(kwargs.pop("timeout")) if "timeout" in kwargs else None
    return host, int(port_text), timeout, kwargs.pop("bindAddress", None)


def _split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Twisted's endpoint string grammar: ``:`` between fields, ``\\`` escapes,
    ``key=value`` keyword fields."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if sep:
            kwargs[key] = value
        else:
            args.append(item)
    return args, kwargs


def _onoff(value: str) -> bool:
    if value.lower() in ("on", "yes", "true", "1", ""):
        return True
    if value.lower() in ("off", "no", "false", "0"):
        return False
    raise ValueError(f"invalid on/off value {value!r}")


def tls_options_from_fields(host: str, fields: dict[str, str]) -> TLSOptions:
    """:class:`TLSOptions` from msmtp-style names (``trust_file``, ``crl_file``,
    ``fingerprint``, ``certcheck``, ``cert_file``, ``key_file``, ``key_password``,
    ``priorities``, ``host_override``); the ``tls_`` prefix is optional."""
    from msmtp_twisted.config.commands import parse_fingerprint

    values = {k[4:] if k.startswith("tls_") else k: v for k, v in fields.items()}
    known = {"trust_file", "crl_file", "fingerprint", "certcheck", "cert_file", "key_file",
             "key_password", "priorities", "host_override"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown TLS option(s): {', '.join(sorted(unknown))}")
    fingerprint = None
    if values.get("fingerprint"):
        text = values["fingerprint"]
        if ":" not in text and " " not in text:  # plain hex: colons need escaping here
            text = ":".join(text[i:i + 2] for i in range(0, len(text), 2))
        fingerprint = parse_fingerprint(text)
        if fingerprint is None:
            raise ValueError(f"invalid fingerprint {values['fingerprint']!r}")
    trust = values.get("trust_file", "system")
    return TLSOptions(
        hostname=values.get("host_override") or host,
        trust_file=trust or None,
        crl_file=values.get("crl_file") or None,
        fingerprint=fingerprint,
        certcheck=_onoff(values.get("certcheck", "on")),
        cert_file=values.get("cert_file") or None,
        key_file=values.get("key_file") or None,
        key_password=values.get("key_password") or None,
        priorities=values.get("priorities") or None,
    )


def tls_client_endpoint(reactor: Any, description: str) -> TLSWrapperEndpoint:
    """An implicit-TLS client endpoint from a string, with msmtp's checks::

        msmtp-tls:mail.example.org:465:trust_file=/etc/ssl/my-ca.pem
        msmtp-tls:host=127.0.0.1:port=465:fingerprint=AB01...(hex, no colons)
        tls:mail.example.org:465:certcheck=off

    Fields: host and port (positional or by name), ``timeout``, ``bindAddress``,
    and the :func:`tls_options_from_fields` names.  The prefix is not checked.
    """
    args, kwargs = _split_description(description)
    if args and args[0] in ("tls", "msmtp-tls"):
        args = args[1:]
    return TLSEndpointParser().parseStreamClient(reactor, *args, **kwargs)


class TLSEndpointParser:
    """``IStreamClientEndpointStringParserWithReactor`` for ``msmtp-tls:`` strings
    (register it from a ``twisted/plugins`` module to use it with
    ``clientFromString``; Twisted's own ``tls:`` prefix is taken)."""

    prefix = "msmtp-tls"

    def parseStreamClient(self, reactor: Any, *args: str, **kwargs: str) -> TLSWrapperEndpoint:
        from msmtp_twisted.net.connect import SequentialTCPEndpoint

        host, port, timeout, bind = _endpoint_fields(args, kwargs, 465)
        options = tls_options_from_fields(host, kwargs)
        wrapped = SequentialTCPEndpoint(reactor, host, port, timeout=timeout, source_ip=bind)
        return TLSWrapperEndpoint(options.creator(), wrapped)
