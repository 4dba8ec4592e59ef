"""msmtp's choice of SASL mechanism (smtp.c ``smtp_auth``, GNU SASL build; manual chapter 5).

No I/O: given what the server offered, whether TLS is active and whether TLS channel binding
data is available, return the mechanism name or raise :class:`AuthChoiceError` with msmtp's
message and exit code.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from msmtp_twisted.auth.mechanisms import MECHANISMS
from msmtp_twisted.sysexits import EX_SOFTWARE, EX_UNAVAILABLE

__all__ = [
    "AuthChoiceError",
    "TLS_ORDER",
    "PLAIN_TEXT_ORDER",
    "choose_mechanism",
    "parse_auth_capability",
]

#: Automatic choice with TLS active. The -PLUS ones only when channel binding data exists.
TLS_ORDER = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "LOGIN",
    "NTLM",
)

#: Automatic choice without TLS: only methods that neither reveal the password nor need TLS.
PLAIN_TEXT_ORDER = ("SCRAM-SHA-256", "SCRAM-SHA-1")


class AuthChoiceError(Exception):
    """No mechanism can be used. ``str(err)`` is msmtp's message; ``exitcode`` its exit code."""

    def __init__(self, message: str, exitcode: int = EX_UNAVAILABLE) -> None:
        super().__init__(message)
        self.message = message
        self.exitcode = exitcode


def parse_auth_capability(text: str) -> frozenset[str]:
    """The mechanism names from an EHLO ``AUTH ...`` (or ``AUTH=...``) line's parameters."""
    return frozenset(word.upper() for word in text.replace("=", " ").split() if word)


def choose_mechanism(
    offered: Iterable[str],
    *,
    tls: bool,
    channel_binding: bool,
    requested: str | None = "",
    supported: Collection[str] = MECHANISMS,
) -> str:
    """Return the SASL mechanism to use.

    ``offered``: the server's AUTH mechanisms (any case). ``requested``: the account's ``auth``
    value — ``""``/None/``"on"`` for automatic, otherwise a mechanism name (any case).
    ``supported``: the mechanisms this client can run (default: everything in
    :data:`msmtp_twisted.auth.mechanisms.MECHANISMS`; add ``"GSSAPI"``/``"NTLM"`` when their
    optional dependency is present).

    Errors, as msmtp (exit 69 unless noted):

    - "the server does not support authentication method X";
    - "authentication method X not supported" (70: not built into this client);
    - "authentication method X needs TLS channel binding information";
    - "cannot use a secure authentication method" (automatic, no TLS);
    - "cannot find a usable authentication method" (automatic, with TLS).
    """
    server = {m.upper() for m in offered}
    client = {m.upper() for m in supported}
    want = (requested or "").upper()
    if want == "ON":
        want = ""
    if want:
        if want not in server:
            raise AuthChoiceError(f"the server does not support authentication method {want}")
        if want not in client:
            raise AuthChoiceError(f"authentication method {want} is not available", EX_SOFTWARE)
        if want.endswith("-PLUS") and not (tls and channel_binding):
            raise AuthChoiceError(
                f"authentication method {want} needs TLS channel binding information"
            )
        return want
    order = TLS_ORDER if tls else PLAIN_TEXT_ORDER
    for mech in order:
        if mech.endswith("-PLUS") and not channel_binding:
            continue
        if mech in server and mech in client:
            return mech
    if not tls:
        raise AuthChoiceError("cannot use a secure authentication method")
    raise AuthChoiceError("cannot find a usable authentication method")
