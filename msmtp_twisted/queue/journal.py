"""The queue log: one line per event, in msmtp's log-line style
(``key=value`` fields, messages in single quotes with quotes made ``?``),
after msmtp's time stamp, appended and write-locked as msmtp's log is::

    Dec 03 16:30:00 msmtpq id=20261203-163000-4f3a9c0d12ab event=deferred \
account=work from=a@example.org recipients=b@example.org size=812 attempts=2 \
next=2026-12-03T16:31:00Z errormsg='cannot connect to ...' exitcode=EX_TEMPFAIL

Events: ``queued``, ``delivered``, ``deferred``, ``failed`` (permanent
failure), ``expired`` (past the maximum age), ``dropped``, ``retry``,
``problem`` (a file in the queue that is not an entry).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from msmtp_twisted import log
from msmtp_twisted.queue.entry import Entry
from msmtp_twisted.sysexits import exitcode_name
from msmtp_twisted.text import sanitize

__all__ = ["format_line", "write"]


def _quote(text: str) -> str:
    return "'" + sanitize(text.replace("\n", "\\n")).replace("'", "?") + "'"


def format_line(event: str, entry: Entry | None, *, error: str | None = None,
                exitcode: int | None = None, text: str | None = None) -> str:
    fields = ["msmtpq"]
    if entry is not None:
        fields.append(f"id={entry.id}")
    fields.append(f"event={event}")
    if entry is not None:
        fields.append(f"account={entry.account or 'default'}")
        fields.append(f"from={entry.envelope_from or ''}")
        fields.append("recipients=" + ",".join(entry.recipients))
        fields.append(f"size={entry.size}")
        fields.append(f"attempts={entry.attempts}")
        if event == "deferred":
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.next_attempt))
            fields.append(f"next={stamp}")
    if text is not None:
        fields.append(f"msg={_quote(text)}")
    if error is not None:
        fields.append(f"errormsg={_quote(error)}")
    if exitcode is not None:
        fields.append(f"exitcode={exitcode_name(exitcode)}")
    return " ".join(fields)


def write(path: str | None, line: str,
          warn: Callable[[str], None] | None = None) -> str | None:
    """Append ``line`` to the queue log ``path`` (None: no log); returns the
    reason it could not be written (also given to ``warn``), or None.  A log
    that cannot be written never stops the queue."""
    if path is None:
        return None
    reason = log.log_to_file(path, None, line)
    if reason is not None and warn is not None:
        warn(f"cannot log to {path}: {reason}")
    return reason
