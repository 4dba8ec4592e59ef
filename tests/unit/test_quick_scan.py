"""``quick_scan`` (the bytes-at-once header check of library sends) says what the
byte-at-a-time ``HeaderScanner`` says, whenever it answers at all, and answers for
the plain header blocks that programs send."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from msmtp_twisted.config.account import Account
from msmtp_twisted.message.headers import HeaderScanner, quick_scan
from msmtp_twisted.protocol.connection import PreparedMail
from tests.unit.test_prepared_mail import streamed

NAMES = [b"From", b"from", b"FROM", b"fRoM", b"Date", b"DATE", b"date", b"Message-ID",
         b"message-id", b"Message-Id", b"Resent-From", b"Resent-Date", b"RESENT-to",
         b"Subject", b"To", b"Cc", b"Bcc", b"X-Mailer", b"Fromage", b"Dat", b"Message-I",
         b"Received", b"Reply-To", b"From ", b"Date ", b"D\rate", b"Fr\rom", b"\xc3\xa9t\xc3\xa9"]
SEPARATORS = [b":", b": ", b" :", b"", b":\t", b"::"]
VALUES = [b"", b"a@b", b"J D <a@b>", b'"x, y" <a@b>', b"<>", b"(c) a@b", b"a@b (c)",
          b"a@b, c@d", b"a\\@b", b"<a@b", b"Joe <a@b> x", b"undisclosed-recipients:;",
          b'"q\\"x" <a@b>', b"  a@b  ", b"<a b@c>", b"x", b"\xff\x00", b"Mon, 1 Jan 2024",
          b"<1@x>", b"a@b\r", b"=?utf-8?q?x?= <a@b>", b"<a@b>", b" <a(b)c@d>"]
ENDINGS = [b"\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"]
CONTINUATIONS = [b" more", b"\tmore", b" <a@b>", b"", b" "]
BLANKS = [b"\n", b"\r\n", b"\r\r\n", b"\n\r\n"]


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    # half of them mostly plain (what programs send), so that the quick path is
    # taken often; the other half anything the lists hold
    plain = draw(st.booleans())
    endings = [b"\n", b"\r\n"] if plain else ENDINGS
    separators = [b": ", b":"] if plain else SEPARATORS
    out = b""
    for _ in range(draw(st.integers(0, 7))):
        if not plain and draw(st.integers(0, 9)) == 0:
            out += draw(st.binary(max_size=12))
        else:
            out += draw(st.sampled_from(NAMES)) + draw(st.sampled_from(separators)) \
                + draw(st.sampled_from(VALUES))
        out += draw(st.sampled_from(endings))
        if draw(st.integers(0, 5)) == 0:
            out += draw(st.sampled_from(CONTINUATIONS)) + draw(st.sampled_from(endings))
    if plain or draw(st.booleans()):
        out += draw(st.sampled_from(BLANKS[:2] if plain else BLANKS))
    return out + draw(st.sampled_from([b"", b"body\n", b".dot\r\n", b"\n\nFrom: x\n"]))


def scanner_verdict(data: bytes) -> tuple[int | None, bool, bool, bool]:
    scanner = HeaderScanner(want_recipients=False)
    end = scanner.feed(data)
    if end is None:
        scanner.finish()
    return end, scanner.from_address is not None, scanner.have_date, scanner.have_msgid


PLAIN = [
    b"From: a@example.com\r\nTo: b@example.org\r\nSubject: bench 1\r\n"
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1.bench@example.com>\r\n\r\nhi\r\n",
    b"Subject: x\nfrom: Joe Doe <joe@x.org>\nX-Folded: a\n b\n\n.body\n",
    b'FROM: "Doe, Joe" <joe@x.org>\n\n',
    b"To: a@b\nDate: now\n\n",
]


def test_plain_blocks_take_the_quick_path() -> None:
    for data in PLAIN:
        facts = quick_scan(data)
        assert facts is not None, data
        assert (facts.end, facts.have_from, facts.have_date, facts.have_msgid) == \
            scanner_verdict(data)


@settings(max_examples=4000, deadline=None)
@given(mails())
@example(b"From: <>\n\n")
@example(b"From:\nSubject: x\n\n")
@example(b"Resent-From: a@b\nFrom: c@d\n\n")
@example(b"From: a@b\n folded\n\n")
@example(b"Date: x\n\r\nbody")
def test_quick_scan_agrees_with_the_scanner(data: bytes) -> None:
    facts = quick_scan(data)
    if facts is None:
        return
    assert (facts.end, facts.have_from, facts.have_date, facts.have_msgid) == \
        scanner_verdict(data)


def test_the_generator_reaches_the_quick_path() -> None:
    """Not vacuous: a good share of generated mails is answered by quick_scan."""
    answered = 0
    total = 0

    @settings(max_examples=500, deadline=None, database=None, derandomize=True)
    @given(mails())
    def count(data: bytes) -> None:
        nonlocal answered, total
        total += 1
        answered += quick_scan(data) is not None

    count()
    assert answered >= total // 10, (answered, total)


@settings(max_examples=1500, deadline=None)
@given(mails(), st.booleans())
def test_prepared_mail_is_what_msmtp_sends(data: bytes, rewrite: bool) -> None:
    """Whichever path PreparedMail takes, the bytes are the streamed MailBody's."""
    account = Account("a")
    account.host, account.domain, account.from_addr = "mx.test", "client.test", "me@x"
    account.set_date_header, account.set_msgid_header = "off", "off"
    if rewrite:
        account.set_from_header, account.set_to_header = "on", "on"
    body = PreparedMail(account, "me@x", ["r@x"], data).body()
    assert (body.next_chunk() or b"", body.mailsize) == streamed(account, data)


def test_added_headers_follow_what_the_block_has() -> None:
    """Date and Message-ID are added exactly when the quick path says they are
    missing (the default account adds both)."""
    account = Account("a")
    account.host, account.domain, account.from_addr = "mx.test", "client.test", "me@x"
    full = PreparedMail(account, None, ["r@x"], PLAIN[0]).body().next_chunk() or b""
    assert full == PLAIN[0]  # nothing added, nothing dropped
    bare = PreparedMail(account, None, ["r@x"], b"Subject: x\n\nhi\n").body().next_chunk()
    assert bare is not None
    head = bare.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"From: me@x\r\nDate: ")
    assert b"\r\nMessage-ID: <" in head
