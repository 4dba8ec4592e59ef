"""SASL authentication: mechanisms (:mod:`.mechanisms`), msmtp's choice among them
(:mod:`.choose`) and the places a password comes from (:mod:`.password`, :mod:`.keyring`).

``METHODS`` lists the mechanisms this build can use, in the order ``--version`` prints
them; ``UNAVAILABLE`` the ones msmtp knows that need something this installation lacks.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = (
    "plain",
    "scram-sha-1",
    "scram-sha-1-plus",
    "scram-sha-256",
    "scram-sha-256-plus",
    "external",
    "cram-md5",
    "digest-md5",
    "login",
    "oauthbearer",
    "xoauth2",
)

#: msmtp's methods that this build cannot run, and why.
UNAVAILABLE: dict[str, str] = {
    "gssapi": "not implemented",
    "ntlm": "not implemented",
}


def keyring_support() -> str:
    """What ``--version`` says about the key ring."""
    try:
        from msmtp_twisted.auth.keyring import keyring_backend
    except ImportError:
        return "none"
    return keyring_backend() or "none"
