"""From a parsed command line to a chosen, completed account (msmtp's ``main``).

In sendmail mode the header block is read from stdin first (recipients for
``-t``, the From address for ``--read-envelope-from`` and ``%F``), exactly as
msmtp does, even with ``--pretend``
(:func:`msmtp_twisted.sending.mail.read_headers`).  The headers read are kept in
a spool so that sending can replay them before streaming the rest of stdin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.config.files import load_accounts
from msmtp_twisted.config.parser import ConfigError
from msmtp_twisted.config.select import SelectError, choose_account, complete_account
from msmtp_twisted.text import sanitize

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import CommandLine, Output
    from msmtp_twisted.sending.mail import ReadHeaders

__all__ = ["prepare"]


def prepare(
    conf: CommandLine,
    recipients: list[str],
    out: Output,
    stdin: BinaryIO,
    env: dict[str, str],
) -> int:
    verbose = conf.pretend or conf.debug
    headers: ReadHeaders | None = None
    header_from: str | None = None
    if conf.sendmail:
        from msmtp_twisted.sending.mail import read_headers

        try:
            headers = read_headers(stdin, want_recipients=conf.read_recipients)
        except OSError:
            out.err("input error while reading the mail")
            return sysexits.EX_IOERR
        header_from = headers.scanner.sender_address
        if conf.read_recipients:
            if headers.scanner.too_many_recipients:
                from msmtp_twisted.limits import RECIPIENTS

                out.err(f"more than {RECIPIENTS} recipients in the mail headers")
                return sysexits.EX_DATAERR
            recipients = recipients + headers.scanner.recipients
        if conf.read_envelope_from:
            conf.account.from_addr = header_from
            if verbose:
                shown = header_from if header_from is not None else "(null)"
                out.out(f"envelope from address extracted from mail: {shown}")

    if conf.sendmail and not recipients and not conf.pretend:
        out.err("no recipients found")
        return sysexits.EX_USAGE

    loaded = None
    if not conf.host_given:
        file_info: list[str] = []
        try:
            loaded = load_accounts(conf.user_conffile, file_info)
        except ConfigError as e:
            if verbose:
                for line in file_info:
                    out.out(line)
            out.err(sanitize(e.message))
            return e.exitcode
        if verbose:
            for line in file_info:
                out.out(line)
    try:
        selection = choose_account(
            cmdline=conf.account,
            account_id=conf.account_id,
            loaded=loaded,
            sendmail=conf.sendmail,
            env=env,
        )
        if verbose:
            for line in selection.info:
                out.out(line)
        account = selection.account
        complete_account(
            account, sendmail=conf.sendmail, pretend=conf.pretend, header_from=header_from
        )
    except SelectError as e:
        if verbose:
            for line in e.info:
                out.out(line)
        out.err(sanitize(e.message))
        return e.exitcode

    if conf.print_conf:
        from msmtp_twisted.modes.pretend import print_conf

        print_conf(out, account, conf)

    if conf.sendmail and account.aliases is not None:
        from msmtp_twisted.message.aliases import AliasesError, expand_aliases_file

        try:
            recipients = expand_aliases_file(account.aliases, recipients)
        except AliasesError as e:
            out.err(f"{account.aliases}: {sanitize(str(e))}")
            return sysexits.EX_CONFIG

    if conf.pretend:
        return sysexits.EX_OK

    if conf.sendmail:
        from msmtp_twisted.modes.sendmail import run_sendmail

        assert headers is not None
        return run_sendmail(conf, account, recipients, headers, out, stdin)
    from msmtp_twisted.modes.serverinfo import run_rmqs, run_serverinfo

    if conf.serverinfo:
        return run_serverinfo(conf, account, out)
    return run_rmqs(conf, account, out)
