"""Added and removed headers (msmtp_twisted.message.rewrite) and the Message-ID
and Date values (msmtp_twisted.message.msgid), against msmtp's main()."""

from __future__ import annotations

import base64
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.header import decode_header
from email.utils import format_datetime, localtime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted.message.encoder import DataEncoder, encode_mail
from msmtp_twisted.message.msgid import create_msgid, msgid_domain, rfc2822_date
from msmtp_twisted.message.rewrite import (
    KEEP_ALL,
    HeaderPolicy,
    encode_for_header,
    header_policy,
    prepended_headers,
    prepends_from,
)

# --------------------------------------------------------------------------
# header_policy


@pytest.mark.parametrize(
    ("set_from", "have_from", "set_to", "remove_bcc", "expect"),
    [
        ("auto", True, "off", True, HeaderPolicy(True, True, True, False)),
        ("auto", True, "off", False, KEEP_ALL),
        ("auto", False, "off", True, HeaderPolicy(False, True, True, False)),
        ("on", True, "off", True, HeaderPolicy(False, True, True, False)),
        ("on", False, "off", False, HeaderPolicy(False, True, True, True)),
        ("off", False, "off", False, KEEP_ALL),
        ("off", True, "off", True, HeaderPolicy(True, True, True, False)),
        ("auto", True, "on", False, HeaderPolicy(True, False, False, False)),
        ("auto", True, "undisclosed_recipients", False, HeaderPolicy(True, False, False, False)),
        ("on", True, "undisclosed_recipients", True, HeaderPolicy(False, False, False, False)),
        ("off", False, "on", True, HeaderPolicy(True, False, False, False)),
    ],
)
def test_header_policy(set_from: str, have_from: bool, set_to: str, remove_bcc: bool,
                       expect: HeaderPolicy) -> None:
    assert header_policy(set_from_header=set_from, have_from=have_from, set_to_header=set_to,
                         remove_bcc_headers=remove_bcc) == expect


def test_header_policy_rejects_unknown_values() -> None:
    with pytest.raises(ValueError):
        header_policy(set_from_header="yes", have_from=True, set_to_header="off",
                      remove_bcc_headers=True)
    with pytest.raises(ValueError):
        header_policy(set_from_header="auto", have_from=True, set_to_header="undisclosed",
                      remove_bcc_headers=True)


def test_policy_is_frozen_and_defaults_keep_all() -> None:
    assert HeaderPolicy().keeps_all
    assert not HeaderPolicy(keep_bcc=False).keeps_all
    with pytest.raises(AttributeError):
        HeaderPolicy().keep_from = False  # type: ignore[misc]


# --------------------------------------------------------------------------
# prepended_headers


def calls() -> tuple[list[str], dict[str, object]]:
    called: list[str] = []

    def msgid() -> str:
        called.append("msgid")
        return "<0123456789abcdef0123456789abcdef@example.org>"

    def date() -> str:
        called.append("date")
        return "Thu, 01 Jan 2026 00:30:00 +0100"

    return called, {"msgid": msgid, "date": date}


def prepend(**kw: object) -> bytes:
    args: dict[str, object] = {
        "envelope_from": "me@example.org", "full_name": None,
        "set_from_header": "auto", "have_from": True,
        "set_to_header": "off", "recipients": ["a@x", "b@y"],
        "set_date_header": "auto", "have_date": True,
        "set_msgid_header": "auto", "have_msgid": True,
    }
    args.update(calls()[1])
    args.update(kw)
    return prepended_headers(**args)  # type: ignore[arg-type]


FROM = b"From: me@example.org\n"
DATE = b"Date: Thu, 01 Jan 2026 00:30:00 +0100\n"
MSGID = b"Message-ID: <0123456789abcdef0123456789abcdef@example.org>\n"
UNDISCLOSED = b"To: undisclosed-recipients:;\n"


@pytest.mark.parametrize(
    ("kw", "expect"),
    [
        ({}, b""),
        ({"have_from": False}, FROM),
        ({"have_from": False, "set_from_header": "off"}, b""),
        ({"set_from_header": "on"}, FROM),
        ({"have_date": False}, DATE),
        ({"have_date": False, "set_date_header": "off"}, b""),
        ({"have_msgid": False}, MSGID),
        ({"have_msgid": False, "set_msgid_header": "off"}, b""),
        ({"set_to_header": "undisclosed_recipients"}, UNDISCLOSED),
        ({"set_to_header": "on"}, b"To: a@x, b@y\n"),
        ({"set_to_header": "on", "recipients": ["only@x"]}, b"To: only@x\n"),
        ({"have_from": False, "have_date": False, "have_msgid": False,
          "set_to_header": "undisclosed_recipients"}, FROM + UNDISCLOSED + DATE + MSGID),
        ({"set_from_header": "on", "have_date": False, "have_msgid": False,
          "set_to_header": "on"}, FROM + b"To: a@x, b@y\n" + DATE + MSGID),
        ({"have_from": False, "have_msgid": False}, FROM + MSGID),
        ({"have_from": False, "full_name": "Joe Bloggs"},
         b"From: Joe Bloggs <me@example.org>\n"),
        ({"have_from": False, "full_name": ""}, b"From:  <me@example.org>\n"),
    ],
)
def test_prepended_headers(kw: dict[str, object], expect: bytes) -> None:
    assert prepend(**kw) == expect


def test_prepended_headers_full_matrix() -> None:
    for set_from, have_from, set_to, set_date, have_date, set_msgid, have_msgid in (
        itertools.product(("auto", "on", "off"), (True, False),
                          ("off", "on", "undisclosed_recipients"), ("auto", "off"),
                          (True, False), ("auto", "off"), (True, False))):
        called, funcs = calls()
        out = prepended_headers(
            envelope_from="me@example.org", full_name=None, set_from_header=set_from,
            have_from=have_from, set_to_header=set_to, recipients=["a@x"],
            set_date_header=set_date, have_date=have_date, set_msgid_header=set_msgid,
            have_msgid=have_msgid, **funcs)  # type: ignore[arg-type]
        names = [line.split(b":")[0] for line in out.splitlines()]
        assert out == b"" or out.endswith(b"\n")
        # the order From, To, Date, Message-ID; each at most once
        assert names == [n for n in (b"From", b"To", b"Date", b"Message-ID") if n in names]
        adds_from = set_from == "on" or (set_from == "auto" and not have_from)
        assert (b"From" in names) == adds_from
        assert (b"To" in names) == (set_to != "off")
        assert (b"Date" in names) == (set_date == "auto" and not have_date)
        assert (b"Message-ID" in names) == (set_msgid == "auto" and not have_msgid)
        # the callables are used only for headers that are added
        assert ("date" in called) == (b"Date" in names)
        assert ("msgid" in called) == (b"Message-ID" in names)
        # the From header goes from the mail exactly when one is added
        policy = header_policy(set_from_header=set_from, have_from=have_from,
                               set_to_header=set_to, remove_bcc_headers=True)
        assert policy.keep_from == (not adds_from)
        assert prepends_from(set_from_header=set_from, have_from=have_from) == adds_from


def test_prepended_and_removed_together() -> None:
    """A whole mail as msmtp sends it with set_from_header on and
    set_to_header on."""
    mail_head = b"from: Old <old@x>\nTo: a@x\n  (folded)\nCc: b@y\nBcc: c@z\nSubject: s\n\n"
    policy = header_policy(set_from_header="on", have_from=True, set_to_header="on",
                           remove_bcc_headers=True)
    pre = prepend(set_from_header="on", set_to_header="on", recipients=["a@x", "b@y", "c@z"])
    enc = DataEncoder()
    wire = b"".join(encode_mail(pre, mail_head, [b"body\n"], policy, encoder=enc))
    assert wire == (b"From: me@example.org\r\nTo: a@x, b@y, c@z\r\nSubject: s\r\n\r\n"
                    b"body\r\n")
    assert enc.mailsize == len(wire) - wire.count(b"\r\n")


# --------------------------------------------------------------------------
# RFC 2047 names


def b64(raw: bytes) -> bytes:
    return b"=?utf-8?B?" + base64.b64encode(raw) + b"?="


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("Joe Bloggs", b"Joe Bloggs"),
        # like msmtp: specials are not quoted
        ("Doe, John", b"Doe, John"),
        ('a "b" <c@d>; (e)', b'a "b" <c@d>; (e)'),
        ("J\u00f6rg M\u00fcller", b"=?utf-8?B?SsO2cmcgTcO8bGxlcg==?="),
        ("\u5f20\u4f1f", b64("\u5f20\u4f1f".encode())),
        ("tab\there", b64(b"tab\there")),  # control characters are encoded too
        ("new\nline", b64(b"new\nline")),
        ("del\x7f", b64(b"del\x7f")),
        ("bad \udcff byte", b64(b"bad \xff byte")),  # surrogate-escaped bytes
        ("", b""),
    ],
)
def test_encode_for_header(name: str, encoded: bytes) -> None:
    assert encode_for_header(name) == encoded


def test_encoded_name_in_from_header_decodes() -> None:
    name = "Ren\u00e9e O\u2019Brien \U0001f600" * 5  # long: still one encoded word
    out = prepend(have_from=False, full_name=name)
    assert out.startswith(b"From: =?utf-8?B?") and out.endswith(b"?= <me@example.org>\n")
    assert out.count(b"?=") == 1
    word = out[len(b"From: "):out.index(b" <")].decode("ascii")
    [(raw, charset)] = decode_header(word)
    assert charset == "utf-8"
    assert raw.decode("utf-8") == name


@given(st.text())
def test_encode_for_header_roundtrip(name: str) -> None:
    enc = encode_for_header(name)
    assert all(32 <= b < 127 for b in enc)  # no line break can be smuggled in
    if enc.startswith(b"=?utf-8?B?") and enc != name.encode("utf-8", "surrogateescape"):
        raw = base64.b64decode(enc[len(b"=?utf-8?B?"):-2])
        assert raw == name.encode("utf-8", "surrogateescape")
    else:
        assert enc.decode("ascii") == name


# --------------------------------------------------------------------------
# Message-ID


MSGID_RE = re.compile(r"<([0-9a-f]{32})@([^<>@]+)>")


@pytest.mark.parametrize(
    ("envelope_from", "domain", "server_host", "expect"),
    [
        ("me@example.org", "localhost", "smtp.example.net", "example.org"),
        ("me@example.org", "mydomain.test", "smtp.example.net", "mydomain.test"),
        ("me", "localhost", "smtp.example.net", "smtp.example.net"),
        ("me", "localhost", None, "myhost"),
        ("me", "localhost", "", "myhost"),
        ("me@", "localhost", "smtp.example.net", "smtp.example.net"),
        ("me", "", "smtp.example.net", "smtp.example.net"),
        ('"a@b"@example.org', "localhost", None, "example.org"),
        ("", "localhost", "smtp.example.net", "smtp.example.net"),
    ],
)
def test_msgid_domain(envelope_from: str, domain: str, server_host: str | None,
                      expect: str) -> None:
    assert msgid_domain(envelope_from=envelope_from, domain=domain,
                        server_host=server_host, hostname="myhost") == expect
    msgid = create_msgid(envelope_from=envelope_from, domain=domain,
                         server_host=server_host, hostname="myhost")
    m = MSGID_RE.fullmatch(msgid)
    assert m is not None, msgid
    assert m.group(2) == expect


def test_msgid_never_repeats() -> None:
    kw = {"envelope_from": "me@example.org", "domain": "localhost",
          "server_host": "smtp.example.net", "hostname": "myhost"}
    ids = {create_msgid(now=1767223800.0, **kw) for _ in range(2000)}  # type: ignore[arg-type]
    assert len(ids) == 2000
    ids |= {create_msgid(**kw) for _ in range(100)}  # type: ignore[arg-type]
    assert len(ids) == 2100
    assert all(MSGID_RE.fullmatch(i) for i in ids)


# --------------------------------------------------------------------------
# Date


@pytest.fixture
def tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def set_tz(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


NEW_YEAR = 1767223800  # 2025-12-31 23:30:00 UTC


@pytest.mark.parametrize(
    ("zone", "t", "expect"),
    [
        ("UTC", 0, "Thu, 01 Jan 1970 00:00:00 +0000"),
        ("UTC", NEW_YEAR, "Wed, 31 Dec 2025 23:30:00 +0000"),
        # msmtp 1.8.23 printed -9900 and +9900 for these two
        ("Europe/Berlin", NEW_YEAR, "Thu, 01 Jan 2026 00:30:00 +0100"),
        ("America/New_York", NEW_YEAR + 3600, "Wed, 31 Dec 2025 19:30:00 -0500"),
        ("Europe/Berlin", 1751364245, "Tue, 01 Jul 2025 12:04:05 +0200"),
        ("Asia/Kolkata", 1751364245, "Tue, 01 Jul 2025 15:34:05 +0530"),
        ("America/St_Johns", 1767225600, "Wed, 31 Dec 2025 20:30:00 -0330"),
        ("Pacific/Kiritimati", 1767225600, "Thu, 01 Jan 2026 14:00:00 +1400"),
        ("UTC", 1767225600.999, "Thu, 01 Jan 2026 00:00:00 +0000"),
    ],
)
def test_rfc2822_date(tz: Callable[[str], None], zone: str, t: float, expect: str) -> None:
    if not os.path.exists(f"/usr/share/zoneinfo/{zone}"):
        pytest.skip(f"no tzdata for {zone}")
    tz(zone)
    assert rfc2822_date(t) == expect


@settings(max_examples=200)
@given(st.integers(0, 4102444800))
def test_rfc2822_date_matches_email_utils(t: int) -> None:
    local = localtime(datetime.fromtimestamp(t, UTC))
    assert rfc2822_date(t) == format_datetime(local)
