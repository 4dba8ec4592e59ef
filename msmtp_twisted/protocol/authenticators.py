"""Our SASL mechanisms for Twisted's own SMTP client.

``twisted.mail.smtp.ESMTPClient`` authenticates with objects providing
:class:`twisted.mail.interfaces.IClientAuthentication` (``getName()`` and
``challengeResponse(secret, challenge)``); Twisted ships CRAM-MD5, LOGIN and PLAIN.
:class:`SASLAuthenticator` adapts any mechanism of :mod:`msmtp_twisted.auth.mechanisms`
— SCRAM-SHA-256/SHA-1 (with the server's signature checked), DIGEST-MD5, OAUTHBEARER,
XOAUTH2, EXTERNAL, ... — to that interface::

    from twisted.mail import smtp
    from msmtp_twisted.protocol.authenticators import SASLAuthenticator

    class Sender(smtp.ESMTPSender):
        def _registerAuthenticators(self):
            self.registerAuthenticator(SASLAuthenticator("SCRAM-SHA-256", b"joe"))

    factory = smtp.ESMTPSenderFactory(b"joe", b"secret", ...)
    factory.protocol = Sender

The secret is the one given to the factory.  A server that fails to prove it knows
the password (a wrong SCRAM signature) makes ``challengeResponse`` raise
:class:`~msmtp_twisted.auth.mechanisms.SASLError`, which ends the connection before
any mail is sent.  (Our own sender, :mod:`msmtp_twisted.protocol.compat`, also
checks the final ``235`` and chooses the method as msmtp does.)
"""

from __future__ import annotations

from typing import Any

from twisted.mail.interfaces import IClientAuthentication
from zope.interface import implementer

from msmtp_twisted.auth.mechanisms import Mechanism, create

__all__ = ["SASLAuthenticator"]


def _text(value: str | bytes | None) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@implementer(IClientAuthentication)
class SASLAuthenticator:
    """``name``: the SASL mechanism; ``user``: the authentication identity (for
    EXTERNAL, the optional authorization identity).  ``host``/``port`` feed
    DIGEST-MD5's digest-uri and OAUTHBEARER; ``channel_binding`` is ``(type, data)``
    for the -PLUS methods."""

    def __init__(self, name: str, user: str | bytes | None, *, host: str | None = None,
                 port: int | None = None,
                 channel_binding: tuple[str, bytes] | None = None) -> None:
        self.name = name.upper()
        self._user = _text(user)
        self._host = host
        self._port = port
        self._binding = channel_binding
        self._mech: Mechanism | None = None

    def __repr__(self) -> str:
        return f"<SASLAuthenticator {self.name}>"

    def getName(self) -> bytes:
        # Twisted asks for the name when it picks this authenticator: a new exchange
        self._mech = None
        return self.name.encode("ascii")

    def _mechanism(self, secret: Any) -> Mechanism:
        if self._mech is None:
            self._mech = create(self.name, user=self._user, password=_text(secret),
                                host=self._host, port=self._port,
                                channel_binding=self._binding)
        return self._mech

    def challengeResponse(self, secret: bytes | str | None, challenge: Any) -> bytes:
        mech = self._mechanism(secret)
        if isinstance(challenge, int):
            # Twisted's AUTH PLAIN with an initial response asks with 1 (then 2 if
            # the server refused it)
            return mech.initial_response() or b""
        return mech.respond(challenge)
