"""The header scanner (msmtp_twisted.message.headers) against the real msmtp 1.8.23 on the
same input: what /usr/bin/msmtp shows of its msmtp_read_headers() from outside.

For each mail, two runs of /usr/bin/msmtp against a recording server (tests/servers/):

- ``msmtp -C CFG [-t] cmdline@oracle.invalid`` with ``from generated-from@oracle.invalid``:
  the ``RCPT TO`` after the command-line one are the recipients read from the headers
  (with ``-t``); the headers msmtp prepends tell whether it found From, Date and
  Message-ID (it adds ``From: generated-from@...``, ``Date:`` and ``Message-ID:`` in that
  order when the mail has none);
- ``msmtp -C CFG -P --read-envelope-from ...``: the From address it extracted
  (``(null)`` when there is none).

msmtp 1.8.23 always asks msmtp_read_headers() for From, Date and Message-ID, and for the
recipients with ``-t``: those are the cases compared here; the scanner's other flags are
covered by tests/unit/test_headers.py.  Where the headers end (the offset the old C
harness printed) is not visible from outside; the end of the headers is covered by the
properties in tests/unit/test_headers.py and the byte-for-byte deliveries in
test_differential_sendmail.py.  These cases once ran against msmtp's C function compiled
from its source tree, which no machine here has.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msmtp_twisted.message.headers import HeaderScanner
from tests.servers.msmtp import run_msmtp, write_config
from tests.servers.recording import RecordingServer
from tests.unit.test_headers import (
    DATE_CASES,
    FOLDED_CASES,
    FROM_CASES,
    RECIPIENT_CASES,
    header_bytes,
)

pytestmark = pytest.mark.reference

GENERATED_FROM = "generated-from@oracle.invalid"
CMDLINE = "cmdline@oracle.invalid"
_PREPENDED = re.compile(
    rb"(?P<from>From: " + re.escape(GENERATED_FROM.encode()) + rb"\r\n)?"
    rb"(?P<date>Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z][a-z] \d{4} "
    rb"\d\d:\d\d:\d\d [+-]\d{4}\r\n)?"
    rb"(?P<msgid>Message-ID: <[0-9a-f]{32}\.[^\r\n]*>\r\n)?")


@dataclass(frozen=True)
class Seen:
    """What msmtp 1.8.23 found in a mail's headers."""

    recipients: list[str] | None  # None: not asked for (no -t)
    from_address: str | None
    have_from: bool
    have_date: bool
    have_msgid: bool


@pytest.fixture(scope="module")
def observe(real_msmtp: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Callable[[bytes, bool], Seen | None]]:
    """``observe(mail, read_recipients) -> Seen``, or None when msmtp fails on the mail."""
    directory = tmp_path_factory.mktemp("headers")
    with RecordingServer() as server:
        config = write_config(directory, server, from_=GENERATED_FROM)

        def run(mail: bytes, read_recipients: bool) -> Seen | None:
            before = len(server.sessions)
            res = run_msmtp([real_msmtp], config, [*(["-t"] if read_recipients else []),
                                                   CMDLINE], input=mail, timeout=30)
            server.wait_idle()
            if res.returncode != 0:
                return None
            session = server.sessions[before]
            rcpts = [c[len("RCPT TO:<"):-1] for c in session.commands
                     if c.startswith("RCPT TO:<")]
            assert rcpts[0] == CMDLINE, rcpts
            prepended = _PREPENDED.match(session.messages[0].data_bytes())
            assert prepended is not None
            pretend = run_msmtp([real_msmtp], config, ["-P", "--read-envelope-from", CMDLINE],
                                input=mail, timeout=30)
            prefix = "envelope from address extracted from mail: "
            lines = [line for line in pretend.stdout_bytes.split(b"\n")
                     if line.startswith(prefix.encode())]
            assert len(lines) == 1, pretend
            value = lines[0][len(prefix):].decode("utf-8", "surrogateescape")
            from_address = None if value == "(null)" else value
            return Seen(rcpts[1:] if read_recipients else None, from_address,
                        prepended["from"] is None, prepended["date"] is None,
                        prepended["msgid"] is None)

        yield run


def scan(data: bytes, read_recipients: bool) -> HeaderScanner:
    s = HeaderScanner(want_recipients=read_recipients, want_from=True, want_date_msgid=True)
    if s.feed(data) is None:
        s.finish()
    return s


def test_the_observation_works(observe) -> None:
    seen = observe(b'To: a@b, "x, y" <c@d>\nFrom: F <f@f>\nDate: x\n\nbody', True)
    assert seen == Seen(["a@b", "c@d"], "f@f", True, True, False)
    assert observe(b"Subject: s\n\nbody\n", False) == Seen(None, None, False, False, False)


@pytest.mark.parametrize(("data", "expected"), RECIPIENT_CASES + FOLDED_CASES, ids=repr)
def test_recipient_cases_agree_with_msmtp(observe, data: bytes, expected: list[str]) -> None:
    assert observe(data, True).recipients == expected


@pytest.mark.parametrize(("data", "expected"), FROM_CASES, ids=repr)
def test_from_cases_agree_with_msmtp(observe, data: bytes, expected: str | None) -> None:
    seen = observe(data, False)
    assert seen.from_address == expected
    assert seen.have_from == (expected is not None)


@pytest.mark.parametrize(("data", "date", "msgid"), DATE_CASES, ids=repr)
def test_date_cases_agree_with_msmtp(observe, data: bytes, date: bool, msgid: bool) -> None:
    seen = observe(data, False)
    assert (seen.have_date, seen.have_msgid) == (date, msgid)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header_bytes, st.booleans())
def test_same_as_msmtp_read_headers(observe, raw: bytes, read_recipients: bool) -> None:
    seen = observe(raw, read_recipients)
    if seen is None:
        return  # msmtp refuses the mail (none of the generated ones so far)
    s = scan(raw, read_recipients)
    if read_recipients:
        assert s.recipients == seen.recipients
    assert s.from_address == seen.from_address
    assert (s.from_address is not None) == seen.have_from
    assert (s.have_date, s.have_msgid) == (seen.have_date, seen.have_msgid)

