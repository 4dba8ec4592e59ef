"""One run of ``msmtp``, as the modes see it: what the command line asked for
(:class:`CommandLine`, filled in by :func:`msmtp_twisted.cli.parse_command_line`)
and where to print (:class:`Output`).

Both live here, with the modes, so that :mod:`msmtp_twisted.cli` imports the
modes and no mode imports the command line.  Pure, no Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from msmtp_twisted.config.account import Account

if TYPE_CHECKING:
    from msmtp_twisted.protocol.kept import KeptConnections

__all__ = ["Attempt", "CommandLine", "Output"]


@dataclass
class CommandLine:
    """Everything the command line asked for."""

    print_version: bool = False
    print_help: bool = False
    print_conf: bool = False
    debug: bool = False
    pretend: bool = False
    read_recipients: bool = False
    read_envelope_from: bool = False
    sendmail: bool = True
    configure: str | None = None
    serverinfo: bool = False
    rmqs: str | None = None
    account: Account = field(default_factory=Account)
    account_id: str | None = None
    user_conffile: str | None = None
    recipients_args: list[str] = field(default_factory=list)

    @property
    def host_given(self) -> bool:
        return self.account.host is not None


@dataclass
class Attempt:
    """What a sendmail run tried: the account, the envelope and the outcome
    (``Delivered``, or the :class:`~msmtp_twisted.errors.MsmtpError` it failed
    with), for a program on top of the command line (``msmtpq``) that must tell
    a temporary failure from a permanent one without reading messages."""

    account: Account
    recipients: list[str]
    outcome: object


class Output:
    """stdout/stderr writers that pass undecodable bytes through unchanged."""

    #: set by sendmail mode once it has tried to send (None: it stopped before)
    attempt: Attempt | None = None
    #: connections kept between runs in one process (msmtpq's flush sets it):
    #: sendmail mode sends over them instead of a connection of its own
    kept: KeptConnections | None = None
    #: try the account's TCP connection before loading Twisted
    #: (:func:`msmtp_twisted.modes.common.first_attempt`); msmtpq sets it
    connect_first: bool = False
    #: the envelope recipients to send to instead of those of the command line
    #: and headers, which still shape the headers (msmtpq: a queued mail an
    #: LMTP server took for some recipients already)
    envelope_recipients: list[str] | None = None

    def __init__(self, prog: str, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.prog = prog
        self.stdout = stdout
        self.stderr = stderr
        # C's stdio buffers stdout fully unless it is a terminal, so msmtp's error
        # lines come before its informational lines in a combined pipe; keep that.
        try:
            self._line_buffered = stdout.isatty()
        except (AttributeError, ValueError, OSError):
            self._line_buffered = False

    def out(self, text: str) -> None:
        self.stdout.write((text + "\n").encode("utf-8", "surrogateescape"))

    def err(self, text: str) -> None:
        if self._line_buffered:
            self.stdout.flush()
        self.stderr.write(f"{self.prog}: {text}\n".encode("utf-8", "surrogateescape"))
        self.stderr.flush()
