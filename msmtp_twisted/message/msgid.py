"""Message-ID and Date values for the headers msmtp adds in sendmail mode.

Pure functions apart from reading clocks, the process id and random bytes.

``create_msgid`` follows the current msmtp (``msgid.c`` after 1.8.23, as the
manual documents it): ``<HASH@DOMAIN>``.  1.8.23 itself produced
``<HASH.ENVELOPE-FROM>``.

``rfc2822_date`` formats like msmtp's ``print_time_rfc2822``: English names
whatever the locale, local time, numeric zone.  1.8.23 computed the zone from
the difference of the broken-down local and UTC times and got it wrong in the
hours around New Year (``-9900``/``+9900``); the zone here is ``tm_gmtoff``, as
the newer ``strftime("%z")`` code gives.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
import time

__all__ = ["create_msgid", "msgid_domain", "rfc2822_date"]

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # tm_wday 0 = Monday
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_counter = itertools.count()


def _boot_ns() -> int:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is not None:
        try:
            return time.clock_gettime_ns(clock)
        except OSError:  # pragma: no cover - kernel without CLOCK_BOOTTIME
            pass
    return time.monotonic_ns()  # pragma: no cover - non-Linux


def msgid_domain(*, envelope_from: str, domain: str, server_host: str | None,
                 hostname: str) -> str:
    """The part after ``@`` in a generated Message-ID.

    The ``domain`` setting unless it is the default ``localhost``; else the domain
    part of the envelope-from; else the SMTP server's host name; else (no host,
    e.g. a ``socket`` account) the local host name.  Unlike msmtp, empty values
    are skipped instead of giving ``<HASH@>``, and the domain part is taken after
    the last ``@`` (msmtp: the first), which is right for a quoted local part.
    """
    if domain and domain != "localhost":
        return domain
    _, at, dom = envelope_from.rpartition("@")
    if at and dom:
        return dom
    if server_host:
        return server_host
    return hostname


def create_msgid(*, envelope_from: str, domain: str, server_host: str | None,
                 hostname: str, now: float | None = None) -> str:
    """A new ``<HASH@DOMAIN>`` Message-ID (angle brackets included).

    HASH is 32 hex digits of a SHA-256 over the real time (ns), boot time, pid,
    host name, envelope-from, a per-process counter and 16 random bytes, so two
    calls never give the same value.  ``now`` (seconds) replaces the real time,
    for tests; uniqueness does not depend on it.
    """
    real_ns = time.time_ns() if now is None else int(now * 1_000_000_000)
    data = b"".join((
        struct.pack("<qqqQ", real_ns, _boot_ns(), os.getpid(), next(_counter)),
        hostname.encode("utf-8", "surrogateescape"),
        b"\0",
        envelope_from.encode("utf-8", "surrogateescape"),
        b"\0",
        os.urandom(16),
    ))
    digest = hashlib.sha256(data).hexdigest()[:32]
    dom = msgid_domain(envelope_from=envelope_from, domain=domain,
                       server_host=server_host, hostname=hostname)
    return f"<{digest}@{dom}>"


def rfc2822_date(t: float) -> str:
    """``t`` (seconds since the epoch) as ``Thu, 01 Jan 2026 00:30:00 +0100``
    in the local time zone, like msmtp's ``print_time_rfc2822``."""
    lt = time.localtime(t)
    offset = lt.tm_gmtoff or 0
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    hours = min(minutes // 60, 99)
    return (f"{_WEEKDAYS[lt.tm_wday]}, {lt.tm_mday:02d} {_MONTHS[lt.tm_mon - 1]} "
            f"{lt.tm_year:04d} {lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} "
            f"{sign}{hours:02d}{minutes % 60:02d}")
