"""One run over the queue: clean up, pick the due entries, hand them to a
sender account by account, and record each result as soon as it is known.

The sender is the seam: ``deliver(account, claims)`` yields ``(claim, result)``
for the claimed entries of one account, in any order, each as soon as its
attempt is over.  Today the command line sends them one by one through msmtp's
own sendmail path; a sender that reuses one connection per account fits the
same signature.  Whatever the sender does, an entry is removed only after it
reported the server's acceptance, and a crash at any point leaves every mail
delivered or still queued (docs/queue.md, "At least once").
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from msmtp_twisted import sysexits
from msmtp_twisted.queue import journal
from msmtp_twisted.queue.outcome import Kind, Result
from msmtp_twisted.queue.schedule import Schedule
from msmtp_twisted.queue.spool import Claim, Spool

__all__ = ["Deliver", "FlushReport", "apply_result", "flush"]

Deliver = Callable[[str | None, list[Claim]], Iterable[tuple[Claim, Result]]]


@dataclass
class FlushReport:
    delivered: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: entries another process held (being sent or dropped there)
    busy: list[str] = field(default_factory=list)
    #: entries not due yet
    waiting: list[str] = field(default_factory=list)
    #: entries the sender left untried (their server unreachable), unchanged
    left: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def exitcode(self) -> int:
        """0 unless a mail is still queued or failed."""
        if self.deferred or self.busy or self.left:
            return sysexits.EX_TEMPFAIL
        if self.failed:
            return sysexits.EX_UNAVAILABLE
        return sysexits.EX_OK


def _first(result: Result) -> str:
    return result.messages[0] if result.messages else f"exit code {result.exitcode}"


def apply_result(spool: Spool, claim: Claim, result: Result, *, schedule: Schedule,
                 now: float, log: str | None, report: FlushReport,
                 say: Callable[[str], None]) -> None:
    """Record one attempt's result on its entry (and release the claim)."""
    entry = claim.entry
    if result.kind is Kind.DELIVERED:
        # the server has the mail: from here until the metadata is gone, a crash
        # means one duplicate (the documented window)
        spool.remove(claim)
        report.delivered.append(entry.id)
        say(f"{entry.id}: delivered")
        journal.write(log, journal.format_line("delivered", entry, exitcode=result.exitcode),
                      say)
        return
    if result.remaining is not None:
        # an LMTP server took the mail for the other recipients: they never get
        # it again, whatever happens to this entry
        entry.remaining = list(result.remaining)
        entry.recipients = list(result.remaining)
    if result.refused:
        refused = dataclasses.replace(entry, recipients=list(result.refused))
        say(f"{entry.id}: failed for {', '.join(result.refused)} (not tried again)")
        journal.write(log, journal.format_line("failed", refused, error=result.error,
                                               exitcode=result.exitcode), say)
    entry.attempts += 1
    if entry.first_attempt is None:
        entry.first_attempt = now
    entry.last_attempt = now
    entry.last_error = result.error
    entry.last_exitcode = result.exitcode
    if result.kind is Kind.TEMPORARY and not schedule.expired(entry.created, now):
        entry.next_attempt = schedule.next_attempt(entry.created, entry.attempts, now)
        spool.update(claim)
        claim.release()
        report.deferred.append(entry.id)
        wait = max(0, round(entry.next_attempt - now))
        say(f"{entry.id}: deferred, next attempt in {wait} s: {_first(result)}")
        journal.write(log, journal.format_line("deferred", entry, error=result.error,
                                               exitcode=result.exitcode), say)
        return
    event = "failed" if result.kind is Kind.PERMANENT else "expired"
    spool.move_to_failed(claim)
    report.failed.append(entry.id)
    say(f"{entry.id}: {event}, moved to {spool.failed}: {_first(result)}")
    journal.write(log, journal.format_line(event, entry, error=result.error,
                                           exitcode=result.exitcode), say)


def flush(
    spool: Spool,
    deliver: Deliver,
    *,
    schedule: Schedule | None = None,
    only: Iterable[str] | None = None,
    log: str | None = None,
    say: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.time,
    batch: int = 100,
) -> FlushReport:
    """Send what is due (or the entries ``only`` names, due or not), handing
    ``deliver`` at most ``batch`` claimed entries of one account at a time."""
    schedule = schedule or Schedule()
    report = FlushReport()
    for line in spool.clean():
        say(line)
        journal.write(log, journal.format_line("problem", None, text=line), say)
    scan = spool.scan()
    for line in scan.problems:
        report.problems.append(line)
        say(line)
    wanted = set(only) if only is not None else None
    now = clock()
    chosen = []
    for entry in scan.entries:
        if wanted is not None:
            if entry.id in wanted:
                chosen.append(entry)
        elif entry.next_attempt <= now:
            chosen.append(entry)
        else:
            report.waiting.append(entry.id)
    # one group per account of one configuration file: what one connection serves
    order: dict[tuple[str | None, str | None], list[str]] = {}
    for entry in chosen:
        order.setdefault((entry.config, entry.account), []).append(entry.id)
    for (_, account), ids in order.items():
        # claimed a batch at a time: each claim is an open file
        for start in range(0, len(ids), batch):
            claims = []
            for entry_id in ids[start:start + batch]:
                claim = spool.claim(entry_id)
                if claim is None:
                    if spool.read(entry_id) is not None:
                        report.busy.append(entry_id)
                        say(f"{entry_id}: held by another process, skipped")
                    continue
                if wanted is None and claim.entry.next_attempt > now:
                    # another run tried it since we looked: not due any more
                    claim.release()
                    report.waiting.append(entry_id)
                    continue
                claims.append(claim)
            if claims and not _deliver(spool, deliver, account, claims, schedule=schedule,
                                       log=log, report=report, say=say, clock=clock):
                # the sender gave up on this account (its server unreachable):
                # the rest of its mails wait for the next run too
                for entry_id in ids[start + batch:]:
                    report.left.append(entry_id)
                    say(f"{entry_id}: not tried (its server could not be reached)")
                break
    return report


def _deliver(spool: Spool, deliver: Deliver, account: str | None, claims: list[Claim], *,
             schedule: Schedule, log: str | None, report: FlushReport,
             say: Callable[[str], None], clock: Callable[[], float]) -> bool:
    """Hand ``claims`` to the sender and record each result; False if the
    sender left some untried."""
    tried: set[str] = set()
    try:
        results: Iterator[tuple[Claim, Result]] = iter(deliver(account, claims))
        for claim, result in results:
            tried.add(claim.entry.id)
            try:
                apply_result(spool, claim, result, schedule=schedule, now=clock(), log=log,
                             report=report, say=say)
            except OSError as e:
                # the queue could not be changed (a full or read-only disk): the
                # entry stays as it was, to be tried again
                line = f"{claim.entry.id}: cannot update the queue: {e.strerror or e}"
                report.problems.append(line)
                say(line)
    finally:
        for claim in claims:
            if claim.entry.id not in tried:
                report.left.append(claim.entry.id)
                say(f"{claim.entry.id}: not tried (its server could not be reached)")
            claim.release()
    return len(tried) == len(claims)
