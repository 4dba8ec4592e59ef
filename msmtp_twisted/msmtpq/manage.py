"""``msmtp-queue`` (or ``msmtpq --q-mgmt``): list, drop, retry and flush."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from msmtp_twisted import sysexits
from msmtp_twisted.queue import journal
from msmtp_twisted.queue.entry import valid_id
from msmtp_twisted.queue.flush import FlushReport, flush
from msmtp_twisted.queue.schedule import Schedule
from msmtp_twisted.queue.spool import Claim, Spool

__all__ = ["drop", "drop_all", "list_queue", "retry", "run"]

Say = Callable[[str], None]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _first_line(text: str | None, width: int = 60) -> str:
    if not text:
        return "-"
    line = text.splitlines()[0] if text.splitlines() else text
    return line if len(line) <= width else line[: width - 3] + "..."


def list_queue(spool: Spool, out: Say, err: Say, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    scan = spool.scan()
    for line in scan.problems:
        err(line)
    for orphan in scan.orphans:
        err(f"{spool.path}/{orphan}.eml: message without metadata (a crashed run's), skipped")
    if not scan.entries:
        out(f"no mails in the queue {spool.path}")
    for entry in scan.entries:
        due = "due" if entry.next_attempt <= now else f"in {_age(entry.next_attempt - now)}"
        out(f"{entry.id}  age {_age(now - entry.created)}  account {entry.account or 'default'}"
            f"  size {entry.size}  attempts {entry.attempts}  next {due}")
        out(f"  from: {entry.envelope_from or '-'}")
        out(f"  to: {', '.join(entry.recipients) or '-'}")
        out(f"  last error: {_first_line(entry.last_error)}")
    try:
        failed = sum(1 for name in os.listdir(spool.failed) if name.endswith(".json"))
    except OSError:
        failed = 0
    if failed:
        out(f"{failed} failed mail(s) in {spool.failed}")
    return sysexits.EX_OK


def _held(spool: Spool, entry_id: str, err: Say) -> int:
    if spool.read(entry_id) is not None:
        err(f"mail {entry_id} is being sent by another process; try again later")
        return sysexits.EX_TEMPFAIL
    err(f"no mail {entry_id} in the queue {spool.path}")
    return sysexits.EX_NOINPUT


class _Claims:
    """The claims of the entries ``ids``, one at a time, for -p and --retry;
    ``code`` ends as the exit code (the last failure's, else EX_OK)."""

    def __init__(self, spool: Spool, ids: list[str], err: Say) -> None:
        self.spool, self.ids, self.err = spool, ids, err
        self.code = sysexits.EX_OK

    def __iter__(self) -> Iterator[Claim]:
        for entry_id in self.ids:
            if not valid_id(entry_id):
                self.err(f"invalid mail id {entry_id!r}")
                self.code = sysexits.EX_USAGE
                continue
            claim = self.spool.claim(entry_id)
            if claim is None:
                self.code = _held(self.spool, entry_id, self.err)
                continue
            yield claim


def drop(spool: Spool, ids: list[str], out: Say, err: Say, log: str | None) -> int:
    claims = _Claims(spool, ids, err)
    for claim in claims:
        entry = claim.entry
        spool.remove(claim)
        out(f"{entry.id}: dropped")
        journal.write(log, journal.format_line("dropped", entry), err)
    return claims.code


def drop_all(spool: Spool, out: Say, err: Say, log: str | None, *, yes: bool,
             tty: TextIO | None) -> int:
    entries = spool.scan().entries
    if not entries:
        out(f"no mails in the queue {spool.path}")
        return sysexits.EX_OK
    if not yes:
        if tty is None:
            err("refusing to drop all mails without --yes (no terminal to ask)")
            return sysexits.EX_USAGE
        tty.write(f"drop all {len(entries)} mails in {spool.path}? [y/N] ")
        tty.flush()
        answer = tty.readline().strip().lower()
        if answer not in ("y", "yes"):
            out("nothing dropped")
            return sysexits.EX_OK
    return drop(spool, [e.id for e in entries], out, err, log)


def retry(spool: Spool, ids: list[str], out: Say, err: Say, log: str | None) -> int:
    claims = _Claims(spool, ids, err)
    for claim in claims:
        try:
            claim.entry.next_attempt = time.time()
            spool.update(claim)
        finally:
            claim.release()
        out(f"{claim.entry.id}: due now")
        journal.write(log, journal.format_line("retry", claim.entry), err)
    return claims.code


def run(spool: Spool, out: Say, log: str | None, *, schedule: Schedule,
        only: list[str] | None = None) -> FlushReport:
    """Flush (everything due, or the ``only`` entries now) in this process."""
    from functools import partial

    from msmtp_twisted.msmtpq.deliver import close_kept, deliver, kept_connections
    from msmtp_twisted.protocol.reactor import run_in_background, stop_background

    thread = run_in_background()
    try:
        # one kept connection per account for the whole run, whatever groups
        # the flush makes
        kept = kept_connections()
        try:
            return flush(spool, partial(deliver, kept=kept), schedule=schedule, only=only,
                         log=log, say=out)
        finally:
            close_kept(kept)
    finally:
        stop_background(thread)

