"""From a parsed command line to a chosen, completed account (msmtp's ``main``).

In sendmail mode the header block is read from stdin first (recipients for
``-t``, the From address for ``--read-envelope-from`` and ``%F``), exactly as
msmtp does, even with ``--pretend``.  The headers read are kept in a spool so
that sending can replay them before streaming the rest of stdin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.config.files import load_accounts
from msmtp_twisted.config.parser import ConfigError
from msmtp_twisted.config.select import SelectError, choose_account, complete_account
from msmtp_twisted.message.headers import HeaderScanner
from msmtp_twisted.text import sanitize

if TYPE_CHECKING:
    from msmtp_twisted.cli import CommandLine, Output

__all__ = ["ReadHeaders", "prepare", "read_headers"]

_CHUNK = 65536


class ReadHeaders:
    """The header block read from stdin, and what the scanner found in it.

    The block is kept in memory up to :data:`~msmtp_twisted.limits.HEADER_SPOOL`
    bytes, beyond that in a temporary file (msmtp always writes it to one), so a
    mail with a header block of any size costs no more memory than a small one.
    """

    def __init__(self, scanner: HeaderScanner, head: bytes | BinaryIO, rest: bytes) -> None:
        self.scanner = scanner
        self._head = head  # bytes up to and including the blank line (or a spool)
        self.rest = rest  # body bytes already read past the header block

    @property
    def head(self) -> bytes:
        """The whole header block (read back from the spool: for small blocks)."""
        return b"".join(self.iter_head())

    def iter_head(self) -> Iterator[bytes]:
        """The header block in chunks, read back as it is needed."""
        if isinstance(self._head, bytes):
            yield self._head
            return
        spool = self._head
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            yield chunk
        spool.close()


def read_headers(stdin: BinaryIO, *, want_recipients: bool) -> ReadHeaders:
    from msmtp_twisted.limits import HEADER_SPOOL

    scanner = HeaderScanner(want_recipients=want_recipients)
    head = bytearray()
    spool: BinaryIO | None = None
    rest = b""
    read = getattr(stdin, "read1", stdin.read)
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            scanner.finish()
            break
        end = scanner.feed(chunk)
        if end is not None:
            chunk, rest = chunk[:end], chunk[end:]
        if spool is not None:
            spool.write(chunk)
        else:
            head += chunk
            if len(head) > HEADER_SPOOL:
                import tempfile

                spool = tempfile.TemporaryFile()  # noqa: SIM115 - ReadHeaders closes it
                spool.write(head)
                head = bytearray()
        if end is not None:
            break
    return ReadHeaders(scanner, spool if spool is not None else bytes(head), rest)


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
