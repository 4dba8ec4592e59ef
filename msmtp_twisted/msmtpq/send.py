"""``msmtpq ARGS < mail``: send now, or queue on a temporary failure.

The mail is streamed from stdin into the queue's ``tmp/`` first; the attempt
reads it from there, so stdin is consumed once whatever happens.  Then:

- accepted: the temporary file goes, exit 0;
- a permanent failure (:mod:`msmtp_twisted.queue.outcome`): msmtp's messages
  and exit code, nothing queued;
- a temporary failure, or ``--q-only``: the entry is committed (fsync,
  rename, fsync of the directory) and only then does msmtpq exit 0.

If the mail cannot be written to the queue (a full disk), msmtpq exits 75
(EX_TEMPFAIL) and leaves nothing behind: the caller still has the mail.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from typing import BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.msmtpq.deliver import BoundedBuffer, error_lines, send_once
from msmtp_twisted.queue import journal
from msmtp_twisted.queue.entry import Entry
from msmtp_twisted.queue.outcome import Kind, classify, recipients_left
from msmtp_twisted.queue.spool import InputError, Spool

__all__ = ["send_or_queue"]


class _Tee:
    """stderr for the attempt: passed through, and its start kept for the entry."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.kept = BoundedBuffer()

    def write(self, data: bytes) -> int:
        self.kept.write(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()


def _say(stderr: BinaryIO, prog: str, text: str) -> None:
    stderr.write(f"{prog}: {text}\n".encode("utf-8", "surrogateescape"))
    stderr.flush()


def _from_headers(entry: Entry, incoming: object, recipients: bool, sender: bool) -> None:
    """For ``--list`` only (the flush reads the headers again, as msmtp does):
    ``-t`` recipients and the ``--read-envelope-from`` address of a mail queued
    without an attempt."""
    from msmtp_twisted.sending.mail import read_headers

    try:
        with incoming.reader() as mail:  # type: ignore[attr-defined]
            headers = read_headers(mail, want_recipients=recipients)
    except (OSError, ValueError):
        return
    if recipients:
        entry.recipients += headers.scanner.recipients
    if sender:
        entry.envelope_from = headers.scanner.sender_address


def send_or_queue(
    prog: str,
    args: list[str],
    *,
    queue_dir: str,
    queue_only: bool,
    log: str | None,
    quiet: bool,
    stdin: BinaryIO,
    stdout: BinaryIO,
    stderr: BinaryIO,
    env: Mapping[str, str],
) -> int:
    from msmtp_twisted.cli import UsageError, parse_command_line

    try:
        conf = parse_command_line(list(args), posixly_correct="POSIXLY_CORRECT" in env)
    except UsageError:
        conf = None
    if conf is None or not conf.sendmail or conf.pretend or conf.print_version \
            or conf.print_help or conf.configure is not None:
        # not a mail to send (usage error, --version, -P, --serverinfo, ...):
        # exactly what msmtp does, with stdin untouched
        code, _, _ = send_once(args, stdin, prog=prog, stdout=stdout, stderr=stderr, env=env)
        return code

    spool = Spool(queue_dir)
    try:
        spool.ensure()
        incoming = spool.incoming()
    except OSError as e:
        if queue_only:
            _say(stderr, prog, f"cannot use the queue {queue_dir}: {e.strerror}")
            return sysexits.EX_TEMPFAIL
        # without a queue, at least try to send (the caller keeps the mail on failure)
        _say(stderr, prog, f"cannot use the queue {queue_dir}: {e.strerror}; "
                           "sending without it")
        code, _, _ = send_once(args, stdin, prog=prog, stdout=stdout, stderr=stderr, env=env)
        return code
    try:
        incoming.write_from(stdin)
    except InputError:
        incoming.discard()
        _say(stderr, prog, "input error while reading the mail")
        return sysexits.EX_IOERR
    except OSError as e:
        incoming.discard()
        _say(stderr, prog, f"cannot write the mail to the queue {queue_dir}: {e.strerror}")
        return sysexits.EX_TEMPFAIL

    now = time.time()
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    entry = Entry(id=incoming.id, argv=list(args), cwd=cwd, size=incoming.size, created=now,
                  next_attempt=now)
    refused: list[str] = []
    if queue_only:
        from msmtp_twisted.message.headers import addresses_from_arguments

        entry.account = conf.account_id
        entry.config = conf.user_conffile
        entry.envelope_from = conf.account.from_addr
        entry.recipients = addresses_from_arguments(conf.recipients_args)
        if conf.read_recipients or conf.read_envelope_from:
            _from_headers(entry, incoming, conf.read_recipients, conf.read_envelope_from)
    else:
        tee = _Tee(stderr)
        try:
            with incoming.reader() as mail:
                code, outcome, attempt = send_once(
                    args, mail, prog=prog, stdout=stdout, stderr=tee,  # type: ignore[arg-type]
                    env=env, connect_first=True)
        except BaseException:
            incoming.discard()
            raise
        kind = classify(code, outcome)
        if kind is not Kind.TEMPORARY:
            incoming.discard()
            return code
        if attempt is not None:
            account = attempt.account  # type: ignore[attr-defined]
            entry.account = account.id or None
            entry.config = account.conffile or None
            entry.envelope_from = account.from_addr
            entry.recipients = list(attempt.recipients)  # type: ignore[attr-defined]
        remaining, refused = recipients_left(kind, outcome)
        if remaining is not None:
            # an LMTP server took the mail for the others: queued for these only
            entry.remaining = remaining
            entry.recipients = list(remaining)
        entry.attempts = 1
        entry.first_attempt = entry.last_attempt = now
        lines = error_lines(bytes(tee.kept.data), prog)
        entry.last_error = "\n".join(lines) if lines else None
        entry.last_exitcode = code
    try:
        spool.commit(incoming, entry)
    except OSError as e:
        _say(stderr, prog, f"cannot queue the mail in {queue_dir}: {e.strerror}")
        return sysexits.EX_TEMPFAIL
    warn = lambda text: _say(stderr, prog, text)  # noqa: E731
    if not queue_only and refused:
        # refused for good beside the queued ones: never tried again
        journal.write(log, journal.format_line(
            "failed", dataclasses.replace(entry, recipients=refused), error=entry.last_error,
            exitcode=entry.last_exitcode), warn)
    journal.write(log, journal.format_line("queued", entry, error=entry.last_error,
                                           exitcode=entry.last_exitcode), warn)
    if not quiet:
        _say(stderr, prog, f"mail queued as {entry.id} in {queue_dir}")
    return sysexits.EX_OK
