"""Sending queued mails in this process, through msmtp's own sendmail path.

Each entry is run as ``msmtp ARGS < ID.eml`` would run (same configuration,
messages, account log line), but by :func:`msmtp_twisted.cli.run` in this
process: the reactor runs in a background thread and every send is handed to
it (:func:`msmtp_twisted.protocol.reactor.run_until_done`).  :func:`deliver`
is the flush's sender for one account: its mails go over one kept connection
(:mod:`msmtp_twisted.protocol.kept`), each still run as msmtp's command line.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO, cast

from msmtp_twisted import sysexits
from msmtp_twisted.queue.outcome import Kind, Result, classify, recipients_left
from msmtp_twisted.queue.spool import Claim

if TYPE_CHECKING:
    from msmtp_twisted.protocol.kept import KeptConnections

__all__ = ["BoundedBuffer", "deliver", "error_lines", "send_once"]

#: msmtp's stderr kept per attempt (the rest is dropped, never buffered)
STDERR_LIMIT = 16 * 1024


class BoundedBuffer(io.RawIOBase):
    """A write-only byte sink that keeps the first ``limit`` bytes."""

    def __init__(self, limit: int = STDERR_LIMIT) -> None:
        self.limit = limit
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        room = self.limit - len(self.data)
        if room > 0:
            self.data += bytes(b[:room])
        return len(b)


def error_lines(stderr: bytes, prog: str) -> list[str]:
    """msmtp's error lines without the ``PROG: `` in front."""
    lines = []
    prefix = prog + ": "
    for raw in stderr.decode("utf-8", "replace").splitlines():
        lines.append(raw[len(prefix):] if raw.startswith(prefix) else raw)
    return lines


def send_once(argv: list[str], stdin: BinaryIO, *, prog: str, stdout: BinaryIO,
              stderr: BinaryIO, env: Mapping[str, str], kept: KeptConnections | None = None,
              connect_first: bool = False, envelope_recipients: list[str] | None = None
              ) -> tuple[int, object, object]:
    """Run msmtp's command line once; returns (exit code, outcome, attempt).
    ``kept``: send over these kept connections instead of a new one;
    ``connect_first``: try the server's TCP connection before loading Twisted
    (an unreachable server costs no reactor); ``envelope_recipients``: send
    to these instead of the recipients of ``argv`` and the headers, which
    still shape the headers."""
    from msmtp_twisted.cli import run
    from msmtp_twisted.modes.invocation import Output

    out = Output(prog, stdout, stderr)
    out.kept = kept
    out.connect_first = connect_first
    out.envelope_recipients = envelope_recipients
    try:
        code = run([prog, *argv], out, stdin, dict(env))
    finally:
        try:
            out.stdout.flush()
        except OSError:
            pass
    attempt = out.attempt
    return code, (attempt.outcome if attempt is not None else None), attempt


def _send_entry(claim: Claim, env: Mapping[str, str], kept: KeptConnections | None) -> Result:
    entry = claim.entry
    captured = BoundedBuffer()
    cwd = os.getcwd()
    try:
        if entry.cwd and os.path.isdir(entry.cwd):
            os.chdir(entry.cwd)  # relative -C/--logfile paths mean what they meant
        with claim.message() as message:
            code, outcome, _ = send_once(entry.argv, message, prog="msmtp",
                                         stdout=sys.stdout.buffer,
                                         stderr=cast(BinaryIO, captured), env=env,
                                         kept=kept, envelope_recipients=entry.remaining)
    except OSError as e:
        return Result(Kind.TEMPORARY, sysexits.EX_IOERR,
                      [f"cannot read the queued mail: {e.strerror}"])
    except Exception as e:  # noqa: BLE001 - a bug of ours must not end the flush
        return Result(Kind.TEMPORARY, sysexits.EX_SOFTWARE, [f"internal error: {e!r}"])
    finally:
        os.chdir(cwd)
    from msmtp_twisted.errors import ConnectFailure

    kind = classify(code, outcome)
    remaining, refused = recipients_left(kind, outcome)
    return Result(kind, code, error_lines(bytes(captured.data), "msmtp"),
                  connected=not isinstance(outcome, ConnectFailure), remaining=remaining,
                  refused=refused)


def deliver(account: str | None, claims: list[Claim], *, env: Mapping[str, str] | None = None,
            kept: KeptConnections | None = None) -> Iterator[tuple[Claim, Result]]:
    """The flush's sender: the claimed mails of one account, one after the other.

    When the account's server cannot be reached at all, the account's other
    mails are left as they are for the next run (released unchanged by the
    flush) instead of each waiting for the same failure.
    """
    environ = os.environ if env is None else env
    own = kept is None
    if kept is None:
        kept = kept_connections()
    try:
        for claim in claims:
            if "command" in claim.entry.extra:
                # written by msmtpd --queue with its own --command: not msmtp's
                # arguments; that msmtpd delivers it (left as it is here)
                continue
            result = _send_entry(claim, environ, kept)
            yield claim, result
            if result.kind is Kind.TEMPORARY and not result.connected:
                return
    finally:
        if own:
            close_kept(kept)


def kept_connections() -> KeptConnections:
    """Connections kept for the flush: one per account (connection settings), used
    for all its mails, on the reactor that runs in the background.  A password
    that must be typed is asked once per connection."""
    from twisted.internet import reactor

    from msmtp_twisted.protocol.kept import KeptConnections
    from msmtp_twisted.sending.credentials import password_source

    return KeptConnections(reactor, password=password_source)


def close_kept(kept: KeptConnections) -> None:
    """QUIT on the kept connections (errors are no concern of the mails: they are
    accepted or not already)."""
    from msmtp_twisted.protocol.reactor import run_until_done

    run_until_done(lambda reactor: kept.close())
