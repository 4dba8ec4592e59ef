"""SASL authentication: mechanisms (:mod:`.mechanisms`), msmtp's choice among them
(:mod:`.choose`) and the places a password comes from (:mod:`.password`, :mod:`.keyring`).

``METHODS`` lists the mechanisms this build can use, in the order ``--version`` prints
them; ``UNAVAILABLE`` the ones msmtp knows that need something this installation lacks.
"""

from __future__ import annotations

#: every method msmtp knows, in the order ``--version`` prints them
_ALL_METHODS: tuple[str, ...] = (
    "plain",
    "scram-sha-1",
    "scram-sha-1-plus",
    "scram-sha-256",
    "scram-sha-256-plus",
    "external",
    "gssapi",
    "cram-md5",
    "digest-md5",
    "login",
    "ntlm",
    "oauthbearer",
    "xoauth2",
)


def __getattr__(name: str) -> object:
    # computed on first use (--version), so that importing the package stays cheap
    if name not in ("METHODS", "UNAVAILABLE"):
        raise AttributeError(name)
    from msmtp_twisted.auth.optional import availability

    why = availability()
    if name == "METHODS":
        return tuple(m for m in _ALL_METHODS if why.get(m.upper()) is None)
    return {m.lower(): reason for m, reason in why.items() if reason}


def keyring_support() -> str:
    """What ``--version`` says about the key ring."""
    try:
        from msmtp_twisted.auth.keyring import keyring_backend
    except ImportError:
        return "none"
    return keyring_backend() or "none"
