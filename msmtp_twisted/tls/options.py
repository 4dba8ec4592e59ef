"""msmtp's TLS settings for one server: :class:`TLSOptions`.

Pure: building options (by hand, from an account or from an endpoint string)
loads no OpenSSL.  What the settings mean is in :mod:`msmtp_twisted.tls`; the
methods that need OpenSSL hand over to :mod:`~msmtp_twisted.tls.context` (the
OpenSSL context), :mod:`~msmtp_twisted.tls.verify` (the server's identity) and
:mod:`~msmtp_twisted.tls.creator` (connections), imported when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from OpenSSL import SSL

    from msmtp_twisted.errors import TLSFailure
    from msmtp_twisted.tls.creator import ClientTLS

__all__ = ["TLSOptions"]


@dataclass(frozen=True)
class TLSOptions:
    """msmtp's TLS settings for one server; see :mod:`msmtp_twisted.tls`.

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

    # -- with OpenSSL -------------------------------------------------------------

    def context(self) -> SSL.Context:
        """An OpenSSL context with these settings, files read now (see
        :func:`msmtp_twisted.tls.context.build_context`)."""
        from msmtp_twisted.tls.context import build_context

        return build_context(self)

    def server_name_indication(self) -> bytes | None:
        """The SNI name: the host name in ASCII (A-labels); none for IP addresses."""
        from msmtp_twisted.tls.verify import server_name_indication

        return server_name_indication(self.hostname)

    def name_matches(self, cert: Any) -> bool:
        """Whether the certificate is for :attr:`hostname`, as GnuTLS checks it."""
        from msmtp_twisted.tls.verify import name_matches

        return name_matches(cert, self.hostname)

    def check(self, cert: Any, openssl_errors: Sequence[int]) -> TLSFailure | None:
        """msmtp's verdict on the server certificate (None: accepted)."""
        from msmtp_twisted.tls.verify import check_certificate

        return check_certificate(self, cert, openssl_errors)

    def creator(self) -> ClientTLS:
        """A connection creator for these options (reads the files now)."""
        from msmtp_twisted.tls.creator import ClientTLS

        return ClientTLS(self)
