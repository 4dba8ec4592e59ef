"""A prepared small mail (encoded once, for library sends) is byte for byte what
the streamed ``MailBody`` of ``msmtp`` sends, mailsize included."""

from __future__ import annotations

import io

import pytest

from msmtp_twisted.config.account import Account
from msmtp_twisted.protocol.connection import PreparedMail
from msmtp_twisted.sending.mail import prepare_mail, read_headers

MESSAGES = [
    b"Subject: hi\nBcc: hidden@x\n\n.dot\nline\n",
    b"From: a@b\r\nTo: c@d\r\nDate: x\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n.\r\n",
    b"Subject: no blank line, no LF at the end",
    b"X: y\n\rz\r\n\nbody with a lone \r CR\n",
    b"bcc: lower\n folded\nCc: c@d\n\n",
    b"",
]


def streamed(account: Account, message: bytes) -> tuple[bytes, int]:
    stream = io.BytesIO(message)
    headers = read_headers(stream, want_recipients=False)
    _, body = prepare_mail(account, "me@x", ["r@x"], headers, stream)
    chunks = []
    while (chunk := body.next_chunk()) is not None:
        chunks.append(chunk)
    return b"".join(chunks), body.mailsize


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("rewrite", [False, True])
def test_prepared_small_mail_is_what_msmtp_sends(message: bytes, rewrite: bool) -> None:
    account = Account("a")
    account.host, account.domain, account.from_addr = "mx.test", "client.test", "me@x"
    # Date and Message-ID would differ between the two preparations
    account.set_date_header, account.set_msgid_header = "off", "off"
    if rewrite:  # From added, To/Cc/From of the mail dropped
        account.set_from_header, account.set_to_header = "on", "on"
    mail = PreparedMail(account, "me@x", ["r@x"], message)
    body = mail.body()
    data = body.next_chunk() or b""
    assert body.next_chunk() is None
    assert (data, body.mailsize) == streamed(account, message)
    again = mail.body()  # another attempt sends the same bytes
    assert again.next_chunk() == (data or None) and again.mailsize == body.mailsize
