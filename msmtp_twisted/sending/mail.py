"""Mail preparation: the header block read and scanned, the headers msmtp adds,
the body streamed through the DATA encoder, and the envelope.

:func:`read_headers` reads the mail's header block (from stdin, or any binary
stream); :func:`prepare_mail` turns it, the rest of the stream and the account
into what the session sends: a :class:`~msmtp_twisted.smtp.client.SendmailRequest`
(envelope and protocol choices) and a :class:`MailBody` (the encoded mail,
pulled chunk by chunk, so memory stays flat whatever the mail's size).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from msmtp_twisted.config.account import Account
from msmtp_twisted.message.headers import HeaderScanner

if TYPE_CHECKING:
    from msmtp_twisted.smtp.client import SendmailRequest

__all__ = [
    "MailBody",
    "ReadHeaders",
    "added_headers",
    "build_body_parts",
    "prepare_mail",
    "read_headers",
    "sendmail_request",
]

_CHUNK = 65536


class ReadHeaders:
    """The header block read from the input, and what the scanner found in it.

    The block is kept in memory up to :data:`~msmtp_twisted.limits.HEADER_SPOOL`
    bytes, beyond that in a temporary file (msmtp always writes it to one), so a
    mail with a header block of any size costs no more memory than a small one.
    """

    def __init__(self, scanner: HeaderScanner, head: bytes | BinaryIO, rest: bytes,
                 size: int | None = None) -> None:
        self.scanner = scanner
        self._head = head  # bytes up to and including the blank line (or a spool)
        self.rest = rest  # body bytes already read past the header block
        #: bytes of the header block as read (without reading a spool back)
        self.size = len(head) if isinstance(head, bytes) else size

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
    """Read the header block (and a little past it) from ``stdin``; ``want_recipients``
    collects To/Cc/Bcc addresses (``-t``)."""
    from msmtp_twisted.limits import HEADER_SPOOL

    scanner = HeaderScanner(want_recipients=want_recipients)
    head = bytearray()
    spool: BinaryIO | None = None
    rest = b""
    size = 0
    read = getattr(stdin, "read1", stdin.read)
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            scanner.finish()
            break
        end = scanner.feed(chunk)
        if end is not None:
            chunk, rest = chunk[:end], chunk[end:]
        size += len(chunk)
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
    return ReadHeaders(scanner, spool if spool is not None else bytes(head), rest, size)


class MailBody:
    """The three parts msmtp sends, each through a fresh encoder: the generated
    headers, the header block read from the input (with From/To/Cc/Bcc dropped as
    the policy says), and the rest of the input, streamed."""

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


def sendmail_request(account: Account, envelope_from: str,
                     recipients: Sequence[str]) -> SendmailRequest:
    """The envelope and protocol choices of one mail for the sans-IO session."""
    from msmtp_twisted.sending.credentials import auth_request
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
    account: Account, headers: ReadHeaders, recipients: Sequence[str], envelope_from: str
) -> tuple[bytes, Any]:
    """The headers to prepend and the policy for the mail's own header block."""
    scanner = headers.scanner
    return added_headers(account, recipients, envelope_from,
                         have_from=scanner.from_address is not None,
                         have_date=scanner.have_date, have_msgid=scanner.have_msgid)


def added_headers(account: Account, recipients: Sequence[str], envelope_from: str, *,
                  have_from: bool, have_date: bool, have_msgid: bool) -> tuple[bytes, Any]:
    """:func:`build_body_parts` from what the header block has."""
    from msmtp_twisted.message.rewrite import header_policy, prepended_headers

    prepend = prepended_headers(
        envelope_from=envelope_from,
        full_name=account.from_full_name,
        set_from_header=account.set_from_header,
        have_from=have_from,
        set_to_header=account.set_to_header,
        recipients=recipients,
        set_date_header=account.set_date_header,
        have_date=have_date,
        set_msgid_header=account.set_msgid_header,
        have_msgid=have_msgid,
        msgid=lambda: _msgid(account, envelope_from),
        date=_date,
    )
    policy = header_policy(
        set_from_header=account.set_from_header,
        have_from=have_from,
        set_to_header=account.set_to_header,
        remove_bcc_headers=account.remove_bcc_headers,
    )
    return prepend, policy


def _msgid(account: Account, envelope_from: str) -> str:
    from msmtp_twisted.config.select import hostname
    from msmtp_twisted.message.msgid import create_msgid

    return create_msgid(envelope_from=envelope_from, domain=account.domain,
                        server_host=account.host, hostname=hostname())


def _date() -> str:
    from msmtp_twisted.message.msgid import rfc2822_date

    return rfc2822_date(time.time())


def prepare_mail(account: Account, envelope_from: str, recipients: Sequence[str],
                 headers: ReadHeaders, stream: BinaryIO) -> tuple[SendmailRequest, MailBody]:
    """The request and the body of one mail: ``headers`` were read from ``stream``
    (:func:`read_headers`), whose rest is streamed as the body is sent."""
    prepend, policy = build_body_parts(account, headers, recipients, envelope_from)
    body = MailBody(prepend, headers.iter_head(), headers.rest, stream, policy)
    return sendmail_request(account, envelope_from, recipients), body
