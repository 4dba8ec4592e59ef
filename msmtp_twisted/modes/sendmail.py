"""Sendmail mode: deliver the mail on stdin to the account's server.

The headers were already read (and scanned) by :mod:`msmtp_twisted.modes.prepare`;
the delivery layer (:mod:`msmtp_twisted.sending`) builds the generated headers,
streams the rest of stdin through the DATA encoder and runs the session; here
its outcome becomes msmtp's messages, log line and exit code.  Exit 0 means every recipient was
accepted; anything else tells the caller to keep the mail.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import CommandLine, Output
    from msmtp_twisted.protocol.kept import KeptConnections
    from msmtp_twisted.sending.mail import MailBody, ReadHeaders
    from msmtp_twisted.smtp.client import SendmailRequest

__all__ = ["run_sendmail"]


def run_sendmail(
    conf: CommandLine,
    account: Account,
    recipients: list[str],
    headers: ReadHeaders,
    out: Output,
    stdin: BinaryIO,
) -> int:
    from msmtp_twisted.errors import ConnectFailure, SMTPFailure
    from msmtp_twisted.modes.common import (
        first_attempt,
        print_failure,
        print_outcome_failure,
        tls_warnings,
    )

    tls_warnings(out, account)

    # the headers are built for the recipients of the invocation; the envelope
    # may name fewer (msmtpq: those a partial LMTP delivery left)
    envelope = recipients if out.envelope_recipients is None else list(out.envelope_recipients)
    kept = out.kept
    early = None
    if out.connect_first and kept is None and not conf.debug:
        early = first_attempt(account)
    body: MailBody | None = None
    if isinstance(early, ConnectFailure):
        # the server cannot be reached: said exactly as the send below would say
        # it, without loading Twisted (msmtpq queues the mail at once)
        outcome: object = early
    else:
        from msmtp_twisted.modes.common import run_account_session, tls_printer, tracer
        from msmtp_twisted.sending.mail import prepare_mail
        from msmtp_twisted.smtp.client import sendmail_session

        request, body = prepare_mail(account, account.from_addr or "", recipients, headers,
                                     stdin)
        if envelope is not recipients:
            request = dataclasses.replace(request, recipients=tuple(envelope))
        if kept is not None and not conf.debug:
            outcome = _send_kept(kept, account, request, body, headers, stdin, recipients)
        else:
            trace = tracer(out) if conf.debug else None
            outcome = run_account_session(account, sendmail_session(request), body=body,
                                          trace=trace,
                                          tls_info=tls_printer(out) if conf.debug else None,
                                          connected=early)

    from msmtp_twisted.modes.invocation import Attempt

    out.attempt = Attempt(account, list(envelope), outcome)

    reply_lines: list[str] | None = None
    errormsg: str | None = None
    if body is not None and not isinstance(outcome, (SMTPFailure, ConnectFailure)):
        from msmtp_twisted.smtp.client import Delivered

        assert isinstance(outcome, Delivered)
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
    _log(out, account, envelope, body.mailsize if body is not None and code == 0 else None,
         reply_lines, errormsg, code)
    return code


def _send_kept(kept: KeptConnections, account: Account, request: SendmailRequest,
               body: MailBody, headers: ReadHeaders, stdin: BinaryIO,
               recipients: list[str]) -> object:
    """The mail over a connection kept for this account's settings (msmtpq's flush
    sends many mails): its outcome as :func:`run_account_session` gives it.  A
    second attempt (the kept connection was found closed) reads the mail again
    from the start; stdin that cannot be rewound gets no second attempt."""
    from msmtp_twisted.protocol.kept import StreamedMail
    from msmtp_twisted.protocol.reactor import run_until_done
    from msmtp_twisted.sending.mail import prepare_mail, read_headers
    from msmtp_twisted.smtp.persistent import MailJob

    try:
        # the header block was read from the start of a file: it can be read again
        retryable = stdin.seekable() and headers.size is not None and \
            stdin.tell() - len(headers.rest) - headers.size == 0
    except (OSError, ValueError, AttributeError):
        retryable = False
    first: list[MailBody] = [body]

    def bodies() -> MailBody:
        if first:
            return first.pop()
        stdin.seek(0)
        again = read_headers(stdin, want_recipients=False)
        return prepare_mail(account, request.envelope_from, recipients, again, stdin)[1]

    job = MailJob(request.envelope_from, request.recipients, notify=request.dsn_notify,
                  ret=request.dsn_return)
    mail = StreamedMail(job, bodies, retryable=retryable)
    return run_until_done(lambda reactor: kept.send_prepared(account, mail))


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
