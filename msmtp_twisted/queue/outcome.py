"""Temporary or permanent: what a send's typed failure means for the queue.

==========================================  =========  ==============
what happened                               exit code  queue
==========================================  =========  ==============
accepted (250 after the final dot)          0          done
4xx reply (greeting, EHLO, AUTH, MAIL,      69         temporary
RCPT, DATA, after the final dot)
connection refused                          75         temporary
connect timeout, server silent past the     75 / 74    temporary
timeout
host not found (DNS)                        68         temporary
network unreachable, no route               75         temporary
connection reset or closed by the server    74         temporary
SOCKS proxy failure                         69         temporary
5xx reply                                   65 / 69    permanent
LMTP: some recipients refused after DATA    69         temporary for the 4xx
                                                       ones, permanent for
                                                       the 5xx ones [1]
authentication failed, no usable mechanism  77         permanent
TLS handshake or certificate refused        76 / 69    permanent
server lacks STARTTLS/AUTH/DSN              69         permanent
protocol violation                          76         permanent
configuration, usage, input errors          64, 78..   permanent
==========================================  =========  ==============

[1] the recipients that accepted have the mail and never get it again: the
entry is kept for exactly the recipients refused with a 4xx reply
(:func:`lmtp_split`, ``Result.remaining``); when every refusal is a 5xx, it
fails, naming only those recipients.

msmtp's exit codes cannot tell these apart (69 is both a 4xx reply and a
refused certificate), so the decision is made from the failure's
:class:`~msmtp_twisted.errors.Cause` and the server's reply code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from msmtp_twisted import sysexits
from msmtp_twisted.errors import Cause, MsmtpError, SMTPFailure

__all__ = ["TEMPORARY_CAUSES", "Kind", "Result", "classify", "lmtp_split", "recipients_left"]


class Kind(enum.Enum):
    """What a send attempt means for the queued mail."""

    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


#: failures of the network or of the server's availability: worth another try
TEMPORARY_CAUSES = frozenset({
    Cause.REFUSED, Cause.TIMEOUT, Cause.RESET, Cause.CLOSED, Cause.UNREACHABLE,
    Cause.DNS, Cause.PROXY,
})


def classify(exitcode: int, outcome: object) -> Kind:
    """``exitcode``: msmtp's; ``outcome``: what the session ended with, or None
    when msmtp stopped before trying (configuration, usage, input)."""
    if exitcode == sysexits.EX_OK:
        return Kind.DELIVERED
    if outcome is None:
        return Kind.PERMANENT
    if not isinstance(outcome, MsmtpError):
        # a failure of our own making: keep the mail rather than drop it
        return Kind.TEMPORARY
    if isinstance(outcome, SMTPFailure):
        if outcome.lmtp_failures:
            temporary, _ = lmtp_split(outcome)  # type: ignore[misc]
            return Kind.TEMPORARY if temporary else Kind.PERMANENT
        if outcome.reply is not None and outcome.cause is Cause.REPLY:
            return Kind.TEMPORARY if 400 <= outcome.reply.code < 500 else Kind.PERMANENT
    return Kind.TEMPORARY if outcome.cause in TEMPORARY_CAUSES else Kind.PERMANENT


def lmtp_split(outcome: object) -> tuple[list[str], list[str]] | None:
    """For an LMTP delivery refused after the final dot for some recipients:
    (the recipients refused temporarily (4xx), those refused for good), in the
    envelope's order; the others have the mail.  None for any other outcome."""
    if not isinstance(outcome, SMTPFailure) or not outcome.lmtp_failures:
        return None
    temporary = [f.recipient for f in outcome.lmtp_failures if 400 <= f.reply.code < 500]
    permanent = [f.recipient for f in outcome.lmtp_failures
                 if not 400 <= f.reply.code < 500]
    return temporary, permanent


def recipients_left(kind: Kind, outcome: object) -> tuple[list[str] | None, list[str]]:
    """``(Result.remaining, Result.refused)`` for an attempt classified ``kind``."""
    split = lmtp_split(outcome)
    if split is None or kind is Kind.DELIVERED:
        return None, []
    temporary, permanent = split
    if kind is Kind.TEMPORARY:
        return temporary, permanent
    return permanent, []


@dataclass
class Result:
    """One attempt at one queued mail."""

    kind: Kind
    exitcode: int
    #: msmtp's error lines (without the program name), for the entry and the log
    messages: list[str] = field(default_factory=list)
    #: False when no connection could be made at all: the account's other
    #: mails would fail the same way, a sender may leave them for the next run
    connected: bool = True
    #: an LMTP delivery that reached some recipients: the recipients the entry
    #: is kept for (the 4xx ones of a temporary result, the 5xx ones of a
    #: permanent one); None: all of the entry's recipients, as before
    remaining: list[str] | None = None
    #: recipients refused for good while others are still to be tried (5xx
    #: beside 4xx): reported as failed, never tried again
    refused: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "\n".join(self.messages) if self.messages else None
