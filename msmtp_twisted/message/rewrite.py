"""Which headers msmtp adds to a mail in sendmail mode and which it removes.

Mirrors the "do the work" part of msmtp's ``main()`` (the newest msmtp, which
the manual documents: ``set_to_header``, ``from_full_name`` with RFC 2047
encoding).  The lines built here are LF-terminated like msmtp's temporary
file; :class:`msmtp_twisted.message.encoder.DataEncoder` turns them into CRLF.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "HeaderPolicy",
    "KEEP_ALL",
    "encode_for_header",
    "header_policy",
    "prepended_headers",
    "prepends_from",
]

_SET_FROM = ("auto", "on", "off")
_SET_TO = ("off", "on", "undisclosed_recipients")
_AUTO_OFF = ("auto", "off")


@dataclass(frozen=True)
class HeaderPolicy:
    """Which of the mail's own From/To/Cc/Bcc headers survive (msmtp's
    ``keep_from``, ``keep_to``, ``keep_cc``, ``keep_bcc``)."""

    keep_from: bool = True
    keep_to: bool = True
    keep_cc: bool = True
    keep_bcc: bool = True

    @property
    def keeps_all(self) -> bool:
        return self.keep_from and self.keep_to and self.keep_cc and self.keep_bcc


KEEP_ALL = HeaderPolicy()


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def prepends_from(*, set_from_header: str, have_from: bool) -> bool:
    """Whether msmtp adds a From header: ``on``, or ``auto`` without a From."""
    _check("set_from_header", set_from_header, _SET_FROM)
    return set_from_header == "on" or (set_from_header == "auto" and not have_from)


@functools.lru_cache(maxsize=64)  # a few distinct settings; every library send asks
def header_policy(*, set_from_header: str, have_from: bool, set_to_header: str,
                  remove_bcc_headers: bool) -> HeaderPolicy:
    """The headers to keep from the mail itself.

    The From header goes exactly when a new one is prepended; To and Cc go when
    ``set_to_header`` is not ``off``; Bcc goes then too, or with
    ``remove_bcc_headers`` (the default).
    """
    _check("set_to_header", set_to_header, _SET_TO)
    keep_recipients = set_to_header == "off"
    return HeaderPolicy(
        keep_from=not prepends_from(set_from_header=set_from_header, have_from=have_from),
        keep_to=keep_recipients,
        keep_cc=keep_recipients,
        keep_bcc=keep_recipients and not remove_bcc_headers,
    )


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def encode_for_header(name: str) -> bytes:
    """msmtp's ``encode_for_header``: a name with any byte below 32 or from 127 up
    becomes one RFC 2047 word ``=?utf-8?B?BASE64?=`` over the whole name (charset
    in lower case, no splitting into 75-character words); anything else is used
    as it is, without quoting."""
    raw = _encode(name)
    if any(b < 32 or b >= 127 for b in raw):
        return b"=?utf-8?B?" + base64.b64encode(raw) + b"?="
    return raw


def prepended_headers(
    *,
    envelope_from: str,
    full_name: str | None,
    set_from_header: str,
    have_from: bool,
    set_to_header: str,
    recipients: Sequence[str],
    set_date_header: str,
    have_date: bool,
    set_msgid_header: str,
    have_msgid: bool,
    msgid: Callable[[], str],
    date: Callable[[], str],
) -> bytes:
    """The header lines msmtp puts before the mail, LF-terminated, in its order:
    From, To, Date, Message-ID.  ``msgid`` and ``date`` are called only when that
    header is added.  ``recipients`` are the envelope recipients (for
    ``set_to_header on``)."""
    _check("set_to_header", set_to_header, _SET_TO)
    _check("set_date_header", set_date_header, _AUTO_OFF)
    _check("set_msgid_header", set_msgid_header, _AUTO_OFF)
    lines: list[bytes] = []
    if prepends_from(set_from_header=set_from_header, have_from=have_from):
        if full_name is not None:  # as msmtp: "" gives "From:  <ADDR>"
            lines.append(b"From: " + encode_for_header(full_name)
                         + b" <" + _encode(envelope_from) + b">\n")
        else:
            lines.append(b"From: " + _encode(envelope_from) + b"\n")
    if set_to_header == "undisclosed_recipients":
        lines.append(b"To: undisclosed-recipients:;\n")
    elif set_to_header == "on":
        lines.append(b"To: " + b", ".join(_encode(r) for r in recipients) + b"\n")
    if not have_date and set_date_header == "auto":
        lines.append(b"Date: " + _encode(date()) + b"\n")
    if not have_msgid and set_msgid_header == "auto":
        lines.append(b"Message-ID: " + _encode(msgid()) + b"\n")
    return b"".join(lines)
