"""The streaming header scanner (msmtp_twisted.message.headers), as msmtp 1.8.23's
msmtp_read_headers(): recipients, From, Date, Message-ID and the end of the headers.
The case tables here are checked against the real msmtp 1.8.23 by
tests/integration/test_headers_reference.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted.message.headers import HeaderScanner, addresses_from_arguments, scan_headers


def rcpts(data: bytes) -> list[str]:
    return scan_headers(data).recipients


def sender(data: bytes) -> str | None:
    return scan_headers(data).from_address


# --------------------------------------------------------------------------
# recipients


RECIPIENT_CASES = [
    (b"To: a@b\n\n", ["a@b"]),
    (b"To: a@b, c@d\n\n", ["a@b", "c@d"]),
    (b"To: a@b,c@d;e@f\n\n", ["a@b", "c@d", "e@f"]),
    (b"To: a@b\nCc: c@d\nBcc: e@f\n\n", ["a@b", "c@d", "e@f"]),
    (b"TO: a@b\ncC: c@d\nbcc: e@f\nbCC: g@h\n\n", ["a@b", "c@d", "e@f", "g@h"]),
    (b"To:a@b\n\n", ["a@b"]),
    (b"To:\ta@b\t\n\n", ["a@b"]),
    # display names
    (b"To: Joe Bloggs <joe@x>\n\n", ["joe@x"]),
    (b"To: Joe <joe@x>, Ann <ann@y>\n\n", ["joe@x", "ann@y"]),
    (b'To: "Doe, John" <j@x>, k@y\n\n', ["j@x", "k@y"]),
    (b'To: "a <b@c>, d" <e@f>\n\n', ["e@f"]),
    (b'To: "a@b"\n\n', []),  # a quoted string alone is no address
    (b"To: <>\n\n", []),
    (b"To: <a@b>\n\n", ["a@b"]),
    (b"To: < a@b >\n\n", ["_a@b_"]),  # white space inside <> is kept, sanitized
    (b"To: <a\tb@c>\n\n", ["a_b@c"]),
    (b"To: <a\x01b@c>\n\n", ["a_b@c"]),
    (b"To: <a\x7fb@c>\n\n", ["a_b@c"]),
    (b"To: <\xc3\xa4@c>\n\n", ["\u00e4@c"]),
    # comments
    (b"To: a@b (Comment, with comma)\n\n", ["a@b"]),
    (b"To: (c)a@b\n\n", ["a@b"]),
    (b"To: (a@b)\n\n", []),
    (b"To: x(y)z@w\n\n", ["xz@w"]),
    (b"To: a@b (x (y, z) w), c@d\n\n", ["a@b", "c@d"]),
    (b"To: <a(comment)@b>\n\n", ["a@b"]),
    (b"To: a@b ()\n\n", ["a@b"]),
    (b"To: a@b (x\\) still comment), c@d\n\n", ["a@b", "c@d"]),
    # right after "(" a backslash is an ordinary comment character (as in msmtp)
    (b"To: a@b (\\) not comment), c@d\n\n", ["comment)", "c@d"]),
    # groups
    (b"To: undisclosed-recipients:;\n\n", []),
    (b"To: grp: a@b, c@d;\n\n", ["a@b", "c@d"]),
    (b"To: My Group: a@b;, e@f\n\n", ["a@b", "e@f"]),
    (b"To: grp:;, x@y\n\n", ["x@y"]),
    # backslash escapes
    (b'To: "a\\"b, c" <x@y>\n\n', ["x@y"]),
    (b"To: a\\,b@c\n\n", ["a,b@c"]),
    (b"To: <a\\>b@c>\n\n", ["a>b@c"]),
    # without commas, a second bare word replaces the first one (msmtp's way)
    (b"To: a@b c@d\n\n", ["c@d"]),
    # not recipient headers
    (b"Tox: a@b\nTo : c@d\nCcc: e@f\nBc: g@h\nB: i@j\n\n", []),
    (b"Content-Type: text/plain; a@b\nReply-To: r@x\nX-To: y@z\n\n", []),
    (b"Subject: x\n\nTo: body@x\n", []),
    (b"", []),
    (b"\n", []),
]


@pytest.mark.parametrize(("data", "expected"), RECIPIENT_CASES)
def test_recipients(data: bytes, expected: list[str]) -> None:
    assert rcpts(data) == expected


FOLDED_CASES = [
    (b"To: a@b,\n c@d\n\n", ["a@b", "c@d"]),
    (b"To: a@b,\n\tc@d,\n e@f\nSubject: s\n\n", ["a@b", "c@d", "e@f"]),
    (b"To:\n a@b\n\n", ["a@b"]),
    (b'To: "John\n Doe" <j@x>\n\n', ["j@x"]),
    (b"To: <j\n @x>\n\n", ["j@x"]),  # the folding blank is not part of the address
    (b"To: a@b (comment\n continued), c@d\n\n", ["a@b", "c@d"]),
    (b"To: a@b\nSubject: s\n\n", ["a@b"]),
    (b"To: a@b\n\n", ["a@b"]),
    # a folded line without comma: the bare word on the next line replaces it
    (b"To: a@b\n c@d\n\n", ["c@d"]),
    (b"To: a\\\n b@c\n\n", ["b@c"]),
]


@pytest.mark.parametrize(("data", "expected"), FOLDED_CASES)
def test_folded_headers(data: bytes, expected: list[str]) -> None:
    assert rcpts(data) == expected


def test_crlf_input() -> None:
    lf = b"To: A <a@b>,\n c@d\nFrom: f@g\nDate: x\nMessage-ID: <m@x>\n\nbody\n"
    crlf = lf.replace(b"\n", b"\r\n")
    a, b = scan_headers(lf), scan_headers(crlf)
    assert a.recipients == b.recipients == ["a@b", "c@d"]
    assert a.from_address == b.from_address == "f@g"
    assert (b.have_date, b.have_msgid) == (True, True)


def test_cr_anywhere_is_ignored() -> None:
    assert rcpts(b"T\ro: <a\r@b>\r\n\r\n") == ["a@b"]


def test_address_at_end_of_input_without_newline() -> None:
    assert rcpts(b"To: a@b") == ["a@b"]
    assert rcpts(b"To: <a@b") == ["a@b"]
    assert rcpts(b"To: a@b,") == ["a@b"]


# --------------------------------------------------------------------------
# Resent- blocks


def test_first_resent_block_only() -> None:
    data = (
        b"To: a@b\n"
        b"Resent-To: r1@x\n"
        b"Resent-Cc: r2@x\n"
        b"Resent-From: z@z\n"
        b"Resent-Date: today\n"
        b"RESENT-BCC: r3@x\n"
        b"Subject: s\n"
        b"Resent-To: r4@x\n"
        b"Cc: c@d\n"
        b"\n"
    )
    assert rcpts(data) == ["r1@x", "r2@x", "r3@x"]


def test_resent_block_ends_at_a_recipient_header() -> None:
    data = b"Resent-To: r1@x\nCc: c@d\nResent-Cc: r2@x\n\n"
    assert rcpts(data) == ["r1@x"]


def test_resent_block_without_recipients_gives_none() -> None:
    # msmtp uses the Resent- list as soon as a Resent- header was seen
    assert rcpts(b"To: a@b\nResent-From: z@z\n\n") == []


def test_headers_starting_with_r_are_not_resent() -> None:
    assert rcpts(b"Received: x\nReply-To: r@x\nReturn-Path: <p@x>\nTo: a@b\n\n") == ["a@b"]
    assert rcpts(b"Resent: x\nResentTo: y@z\nTo: a@b\n\n") == ["a@b"]


def test_resent_without_want_recipients() -> None:
    s = scan_headers(b"Resent-To: r@x\nTo: a@b\n\n", want_recipients=False)
    assert s.recipients == []


# --------------------------------------------------------------------------
# From, Date, Message-ID


FROM_CASES = [
    (b"From: a@b\n\n", "a@b"),
    (b"From: Name <a@b>\n\n", "a@b"),
    (b'From: "Doe, J" <a@b>\n\n', "a@b"),
    (b"FROM:a@b\n\n", "a@b"),
    (b"From: A <a@b>\nFrom: c@d\n\n", "a@b"),  # the first From only
    (b"From: a@b, c@d\n\n", "a@b"),
    (b"To: t@x\nFrom: a@b (x)\n\n", "a@b"),
    (b"From: a@b", "a@b"),
    # an empty From at the end of the input gives the empty address
    (b"From:", ""),
    (b"From: ", ""),
    (b"From: <>\n", ""),
    # an empty From header followed by more input: as if absent
    (b"From: \n\n", None),
    (b"From: <>\n\n", None),
    (b"From: (c)\n\n", None),
    (b"From:\nFrom: a@b\n\n", "a@b"),
    (b"Resent-From: r@r\nFrom: f@f\n\n", "f@f"),
    (b"From x@y Mon Jan  1\nFrom: a@b\n\n", "a@b"),  # mbox "From " line
    (b"Fromage: x@y\n\n", None),
    (b"Subject: s\n\nFrom: a@b\n", None),
    (b"", None),
]


@pytest.mark.parametrize(("data", "expected"), FROM_CASES)
def test_from(data: bytes, expected: str | None) -> None:
    assert sender(data) == expected


def test_from_extra_addresses_count_as_recipients() -> None:
    # msmtp 1.8.23 puts everything after the first From address into the normal list
    assert rcpts(b"From: a@b, c@d\nTo: e@f\n\n") == ["c@d", "e@f"]


def test_from_not_wanted() -> None:
    s = scan_headers(b"From: a@b\nTo: c@d\n\n", want_from=False)
    assert (s.from_address, s.recipients) == (None, ["c@d"])


DATE_CASES = [
    (b"Date: x\n\n", True, False),
    (b"DATE:x\n\n", True, False),
    (b"date: x\n\n", True, False),
    (b"Message-ID: <x@y>\n\n", False, True),
    (b"message-id: <x@y>\n\n", False, True),
    (b"MESSAGE-Id:\n\n", False, True),
    (b"Date: x\nMessage-Id: y\n\n", True, True),
    (b"To: a@b\nDate: x\n\n", True, False),
    (b"To: a@b,\n c@d\nMessage-ID: m\n\n", False, True),
    (b"Dates: x\nDate : y\nDat: z\nX-Date: w\n\n", False, False),
    (b"Message-IDs: x\nMessage-I: x\nMessage ID: x\n\n", False, False),
    (b"Subject: s\n\nDate: x\nMessage-ID: y\n", False, False),
    (b"Date:", True, False),
]


@pytest.mark.parametrize(("data", "date", "msgid"), DATE_CASES)
def test_date_and_message_id(data: bytes, date: bool, msgid: bool) -> None:
    s = scan_headers(data)
    assert (s.have_date, s.have_msgid) == (date, msgid)


def test_date_not_wanted() -> None:
    s = scan_headers(b"Date: x\nMessage-ID: y\nDelivered-To: d@x\n\n", want_date_msgid=False)
    assert (s.have_date, s.have_msgid) == (False, False)


# --------------------------------------------------------------------------
# feeding and the end of the headers


def test_feed_returns_offset_after_blank_line() -> None:
    s = HeaderScanner()
    data = b"To: a@b\n\nbody\n"
    assert s.feed(data) == 9
    assert data[9:] == b"body\n"
    assert s.done


def test_feed_offset_with_crlf() -> None:
    data = b"To: a@b\r\n\r\nbody"
    assert HeaderScanner().feed(data) == len(b"To: a@b\r\n\r\n")


def test_feed_offset_is_relative_to_the_chunk() -> None:
    s = HeaderScanner()
    assert s.feed(b"To: a@b\n") is None
    assert s.feed(b"\nbody") == 1
    assert s.feed(b"more") == 0  # already done
    assert s.recipients == ["a@b"]


def test_empty_first_line_ends_headers_at_once() -> None:
    s = HeaderScanner()
    assert s.feed(b"\nTo: a@b\n") == 1
    assert s.recipients == []


def test_finish_without_end_of_headers() -> None:
    s = HeaderScanner()
    assert s.feed(b"To: a@b, c") is None
    s.finish()
    assert s.recipients == ["a@b", "c"]
    s.finish()  # idempotent
    assert s.recipients == ["a@b", "c"]


def test_recipients_property_returns_a_copy() -> None:
    s = scan_headers(b"To: a@b\n\n")
    s.recipients.append("x")
    assert s.recipients == ["a@b"]


# --------------------------------------------------------------------------
# recipients from command-line arguments


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], []),
        (["a@b"], ["a@b"]),
        (["a@b", "c@d"], ["a@b", "c@d"]),
        (["Joe <j@x>, k@y"], ["j@x", "k@y"]),
        (["root"], ["root"]),
        (["undisclosed-recipients:;"], []),
        (['"x, y" <z@w>'], ["z@w"]),
        (["a@b\nBcc: c@d"], ["a@b", "c@d"]),  # the argument becomes header text
        (["a@b\n\nx@y"], ["a@b"]),  # a blank line ends the generated header
        (["From: f@x"], ["f@x"]),
        ([""], []),
        (["(comment only)"], []),
    ],
)
def test_addresses_from_arguments(args: list[str], expected: list[str]) -> None:
    assert addresses_from_arguments(args) == expected


def test_addresses_from_arguments_keeps_undecodable_bytes() -> None:
    arg = b"\xff@x".decode("utf-8", "surrogateescape")
    assert addresses_from_arguments([arg]) == [arg]


# --------------------------------------------------------------------------
# properties: chunking does not matter


FRAGMENTS = [
    b"To:", b"Cc:", b"Bcc:", b"From:", b"Resent-To:", b"Resent-Cc:", b"Resent-From:",
    b"Date:", b"Message-ID:", b"Subject:", b"Received:", b"X:", b"To", b"Fro",
    b" ", b"\t", b"\n", b"\r\n", b"\n ", b'"', b"<", b">", b"(", b")", b"\\", b",", b";",
    b":", b"a@b", b"x", b"c@d.example", b"\x00", b"\xff", b"\x7f", b"\n\n",
]

header_bytes = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join),
    st.binary(max_size=200),
)


def outcome(s: HeaderScanner) -> tuple:
    return (s.recipients, s.from_address, s.have_date, s.have_msgid, s.done)


def scan_in_chunks(data: bytes, cuts: list[int], **kw) -> tuple[tuple, int | None]:
    s = HeaderScanner(**kw)
    end = None
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        chunk = data[start:cut]
        if end is None:
            at = s.feed(chunk)
            if at is not None:
                end = start + at
        start = cut
    if end is None:
        s.finish()
    return outcome(s), end


@settings(max_examples=300, deadline=None)
@given(
    st.data(),
    header_bytes,
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_chunking_does_not_matter(data, raw: bytes, rc: bool, fr: bool, dm: bool) -> None:
    kw = {"want_recipients": rc, "want_from": fr, "want_date_msgid": dm}
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    whole = scan_in_chunks(raw, [], **kw)
    assert scan_in_chunks(raw, cuts, **kw) == whole
    # byte by byte
    assert scan_in_chunks(raw, list(range(len(raw))), **kw) == whole


@settings(max_examples=200, deadline=None)
@given(header_bytes, st.binary(max_size=20))
def test_end_offset_is_just_after_the_blank_line(raw: bytes, body: bytes) -> None:
    s = HeaderScanner()
    end = s.feed(raw)
    if end is None:
        return
    head = raw[:end]
    assert head.replace(b"\r", b"").endswith(b"\n")
    without_cr = head.replace(b"\r", b"")
    assert without_cr == b"\n" or without_cr.endswith(b"\n\n")
    # the same headers with something else after them end at the same place
    assert HeaderScanner().feed(head + body) == end
