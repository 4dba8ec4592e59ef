"""Sendmail mode: deliver the mail on stdin to the account's server.

The headers were already read (and scanned) by :mod:`msmtp_twisted.modes.prepare`;
here the generated headers are built, the rest of stdin is streamed through
the DATA encoder, the session runs on the reactor, and the outcome becomes
msmtp's messages, log line and exit code.  Exit 0 means every recipient was
accepted; anything else tells the caller to keep the mail.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account

if TYPE_CHECKING:
    from msmtp_twisted.cli import CommandLine, Output
    from msmtp_twisted.modes.prepare import ReadHeaders

__all__ = ["MailBody", "build_body_parts", "run_sendmail", "sendmail_request"]

_CHUNK = 65536


class MailBody:
    """The three parts msmtp sends, each through a fresh encoder: the generated
    headers, the header block read from stdin (with From/To/Cc/Bcc dropped as
    the policy says), and the rest of stdin, streamed."""

    def __init__(self, prepend: bytes, head: bytes | Iterable[bytes], rest: bytes,
                 stdin: BinaryIO, policy: Any):
        self._parts = self._generate(prepend, head, rest, stdin, policy)
        self._mailsize = 0

    @property
    def mailsize(self) -> int:
        return self._mailsize

    def next_chunk(self) -> bytes | None:
        for chunk in self._parts:
            if chunk:
                return chunk
        return None

    def _generate(
        self, prepend: bytes, head: bytes | Iterable[bytes], rest: bytes, stdin: BinaryIO,
        policy: Any
    ) -> Iterator[bytes]:
        from msmtp_twisted.message.encoder import DataEncoder

        encoder = DataEncoder(None)
        yield encoder.feed(prepend)
        yield encoder.finish()
        self._mailsize += encoder.mailsize
        # the header block may be large (a spool): encoded piece by piece
        encoder = DataEncoder(policy)
        for data in ((head,) if isinstance(head, bytes) else head):
            # msmtp's header reader drops every CR of the header block, bare ones too
            yield encoder.feed(data.replace(b"\r", b""))
        yield encoder.finish()
        self._mailsize += encoder.mailsize
        encoder = DataEncoder(None)
        yield encoder.feed(rest)
        read = getattr(stdin, "read1", stdin.read)
        while True:
            data = read(_CHUNK)
            if not data:
                break
            yield encoder.feed(data)
        yield encoder.finish()
        self._mailsize += encoder.mailsize


def sendmail_request(account: Account, envelope_from: str, recipients: list[str]) -> Any:
    """The envelope and protocol choices of one mail for the sans-IO session."""
    from msmtp_twisted.modes.common import auth_request
    from msmtp_twisted.smtp.client import SendmailRequest

    return SendmailRequest(
        envelope_from=envelope_from,
        recipients=tuple(recipients),
        protocol=account.protocol,
        domain=account.domain,
        dsn_notify=account.dsn_notify,
        dsn_return=account.dsn_return,
        starttls=account.tls and account.tls_starttls,
        auth=auth_request(account),
    )


def build_body_parts(
    account: Account, headers: ReadHeaders, recipients: list[str], envelope_from: str
) -> tuple[bytes, Any]:
    """The headers to prepend and the policy for the mail's own header block."""
    from msmtp_twisted.config.select import hostname
    from msmtp_twisted.message.msgid import create_msgid, rfc2822_date
    from msmtp_twisted.message.rewrite import header_policy, prepended_headers

    scanner = headers.scanner
    have_from = scanner.from_address is not None
    prepend = prepended_headers(
        envelope_from=envelope_from,
        full_name=account.from_full_name,
        set_from_header=account.set_from_header,
        have_from=have_from,
        set_to_header=account.set_to_header,
        recipients=recipients,
        set_date_header=account.set_date_header,
        have_date=scanner.have_date,
        set_msgid_header=account.set_msgid_header,
        have_msgid=scanner.have_msgid,
        msgid=lambda: create_msgid(
            envelope_from=envelope_from,
            domain=account.domain,
            server_host=account.host,
            hostname=hostname(),
        ),
        date=lambda: rfc2822_date(time.time()),
    )
    policy = header_policy(
        set_from_header=account.set_from_header,
        have_from=have_from,
        set_to_header=account.set_to_header,
        remove_bcc_headers=account.remove_bcc_headers,
    )
    return prepend, policy


def run_sendmail(
    conf: CommandLine,
    account: Account,
    recipients: list[str],
    headers: ReadHeaders,
    out: Output,
    stdin: BinaryIO,
) -> int:
    from msmtp_twisted.modes.common import (
        print_failure,
        print_outcome_failure,
        run_account_session,
        tls_printer,
        tls_warnings,
        tracer,
    )
    from msmtp_twisted.smtp.client import sendmail_session

    tls_warnings(out, account)

    prepend, policy = build_body_parts(account, headers, recipients, account.from_addr or "")
    body = MailBody(prepend, headers.iter_head(), headers.rest, stdin, policy)
    request = sendmail_request(account, account.from_addr or "", recipients)
    trace = tracer(out) if conf.debug else None
    outcome = run_account_session(account, sendmail_session(request), body=body, trace=trace,
                                  tls_info=tls_printer(out) if conf.debug else None)

    from msmtp_twisted.net.connect import ConnectFailure
    from msmtp_twisted.smtp.client import Delivered, SMTPFailure

    reply_lines: list[str] | None = None
    errormsg: str | None = None
    if isinstance(outcome, Delivered):
        code = sysexits.EX_OK
        if outcome.reply is not None:
            reply_lines = list(outcome.reply.lines)
    elif isinstance(outcome, SMTPFailure):
        code = outcome.exitcode
        print_failure(out, account, outcome)
        errormsg = outcome.message
        if outcome.reply is not None:
            reply_lines = list(outcome.reply.lines)
    else:
        assert isinstance(outcome, ConnectFailure)
        code = print_outcome_failure(out, account, outcome)
        errormsg = outcome.message
    _log(out, account, recipients, body.mailsize if code == 0 else None,
         reply_lines, errormsg, code)
    return code


def _log(out: Output, account: Account, recipients: list[str], mailsize: int | None,
         reply_lines: list[str] | None, errormsg: str | None, code: int) -> None:
    if not account.logfile and not account.syslog:
        return
    from msmtp_twisted import log

    line = log.format_log_line(
        host=account.host if account.socket is None else None,
        socket=account.socket,
        tls=account.tls,
        auth=account.auth_mech is not None,
        user=account.username,
        envelope_from=account.from_addr,
        recipients=recipients,
        mailsize=mailsize,
        smtp_reply=reply_lines if (account.protocol != "lmtp" or code != 0) else None,
        errormsg=errormsg,
        exitcode=code,
    )
    if account.logfile:
        out.stdout.flush()  # "-" logs to stdout, after everything printed before
        problem = log.log_to_file(account.logfile, account.logfile_time_format, line)
        if problem is not None:
            for message in log.log_failure_messages(account.logfile, problem, line, out.prog):
                out.stderr.write(message.encode("utf-8", "surrogateescape") + b"\n")
    if account.syslog:
        log.log_to_syslog(account.syslog, line, code != 0)
