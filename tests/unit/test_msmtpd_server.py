"""The msmtpd conversation as a pure state machine (msmtp_twisted.smtp.server)."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted.smtp.server import (
    AuthAttempt,
    Close,
    DataDecoder,
    Log,
    MessageAborted,
    MessageBegin,
    MessageData,
    MessageEnd,
    ServerLimits,
    ServerReply,
    SMTPServer,
    State,
    delivery_reply,
    parse_address,
    received_header,
    sanitize_helo_name,
)
from tests.conftest import ROOT, ours_env


def replies(events: list[object]) -> list[str]:
    return [r.to_bytes().decode() for r in events if isinstance(r, ServerReply)]


def codes(events: list[object]) -> list[int]:
    return [r.code for r in events if isinstance(r, ServerReply)]


def data_of(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, MessageData))


def session(auth: bool = False, **limits: int) -> SMTPServer:
    s = SMTPServer(auth=auth, limits=ServerLimits(**limits))
    s.start()
    return s


def ready(auth: bool = False, **limits: int) -> SMTPServer:
    s = session(auth, **limits)
    s.receive(b"EHLO client.example\r\n")
    return s


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


# --- replies as msmtpd 1.8.23 gives them ---------------------------------------


def test_greeting_and_ehlo() -> None:
    s = SMTPServer()
    assert replies(s.start()) == ["220 localhost ESMTP msmtpd\r\n"]
    assert replies(s.receive(b"EHLO x\r\n")) == [
        "250-localhost\r\n250-PIPELINING\r\n250-SIZE 268435456\r\n250 8BITMIME\r\n"]


def test_helo_is_one_line_and_ehlo_with_auth_offers_plain_login() -> None:
    s = session()
    assert replies(s.receive(b"HELO x\r\n")) == ["250 localhost\r\n"]
    s = session(auth=True, max_message_size=1000)
    assert replies(s.receive(b"ehlo x\r\n")) == [
        "250-localhost\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
        "250 AUTH PLAIN LOGIN\r\n"]


@pytest.mark.parametrize("line", [b"MAIL FROM:<a@b>", b"EHLO", b"HELO", b"FOO", b"DATA",
                                  b"RCPT TO:<a@b>", b"VRFY x", b"AUTH PLAIN"])
def test_first_command_must_be_ehlo_or_helo(line: bytes) -> None:
    s = session()
    assert replies(s.receive(line + b"\r\n")) == ["500 Expected EHLO or HELO\r\n"]
    # the session goes on (msmtpd 1.8.23 would hang up)
    assert codes(s.receive(b"EHLO x\r\n")) == [250]


def test_a_full_mail() -> None:
    s = ready()
    ev = s.receive(b"MAIL FROM:<a@example.org>\r\n")
    assert replies(ev) == ["250 Ok\r\n"]
    assert replies(s.receive(b"RCPT TO:<b@example.org>\r\n")) == ["250 Ok\r\n"]
    assert replies(s.receive(b"RCPT TO: <c@example.org>\r\n")) == ["250 Ok\r\n"]
    ev = s.receive(b"DATA\r\n")
    assert ev[0] == MessageBegin("a@example.org", ("b@example.org", "c@example.org"),
                                 "client.example", True)
    assert replies(ev) == ["354 Send data\r\n"]
    ev = s.receive(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    assert data_of(ev) == b"Subject: x\n\nbody\n"
    assert ev[-1] == MessageEnd("a@example.org", ("b@example.org", "c@example.org"), 17)
    assert s.waiting
    ev = s.delivery_result(delivery_reply(0))
    assert replies(ev) == ["250 Ok, mail was piped\r\n"]
    assert s.state is State.READY
    ev = s.receive(b"QUIT\r\n")
    assert replies(ev) == ["221 Bye\r\n"]
    assert isinstance(ev[-1], Close)
    assert s.clean


@pytest.mark.parametrize(("state_cmds", "cmd", "reply"), [
    ([], b"RCPT TO:<a@b>", "500 Expected MAIL FROM:<addr> or QUIT"),
    ([], b"DATA", "500 Expected MAIL FROM:<addr> or QUIT"),
    ([], b"FOO", "500 Expected MAIL FROM:<addr> or QUIT"),
    ([], b"AUTH PLAIN", "500 Expected MAIL FROM:<addr> or QUIT"),  # auth off
    ([b"MAIL FROM:<a@b>"], b"DATA", "500 Expected RCPT TO:<addr>"),
    ([b"MAIL FROM:<a@b>"], b"MAIL FROM:<a@b>", "500 Expected RCPT TO:<addr>"),
    ([b"MAIL FROM:<a@b>", b"RCPT TO:<c@d>"], b"MAIL FROM:<a@b>",
     "500 Expected RCPT TO:<addr> or DATA"),
])
def test_out_of_sequence_replies_are_msmtpds(state_cmds: list[bytes], cmd: bytes,
                                              reply: str) -> None:
    s = ready()
    for c in state_cmds:
        assert codes(s.receive(c + b"\r\n")) == [250]
    assert replies(s.receive(cmd + b"\r\n")) == [reply + "\r\n"]
    assert not s.clean


def test_noop_rset_vrfy_help_and_session_survives_errors() -> None:
    s = ready()
    assert replies(s.receive(b"NOOP\r\n")) == ["250 Ok\r\n"]
    assert codes(s.receive(b"HELP\r\n")) == [214]
    assert codes(s.receive(b"VRFY postmaster\r\n")) == [252]
    assert codes(s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<;rm>\r\nRCPT TO:<c@d>\r\n")) == [
        250, 501, 250]
    assert replies(s.receive(b"RSET\r\n")) == ["250 Ok\r\n"]
    assert codes(s.receive(b"DATA\r\n")) == [500]
    assert codes(s.receive(b"NOOP\r\nRSET\r\nQUIT\r\n")) == [250, 250, 221]


# --- addresses ---------------------------------------------------------------------

GOOD = ["a@b", "A.b-c+d/e=f_g@x.example", "x--option@example.org", "0@0", "a-"]
BAD = ["-a@b", "--option", ";rm -rf /", "$(id)", "`id`", "a b@c", "a\"b@c", "a'b@c",
       "a|b@c", "a&b@c", "a>b", "a<b", "a\\b@c", "ä@b", "a\x00b", "a@b\r", "%F", "a*b",
       "a,b", "a;b", "(a)", "a:b", "a!b", "a#b", "a~b", "a?b"]


@pytest.mark.parametrize("addr", GOOD)
def test_valid_addresses(addr: str) -> None:
    assert parse_address(f"<{addr}>", False) == (addr, "")


@pytest.mark.parametrize("addr", BAD)
def test_invalid_addresses_get_501(addr: str) -> None:
    assert parse_address(f"<{addr}>", False) is None
    s = ready()
    line = f"MAIL FROM:<{addr}>\r\n".encode()
    assert replies(s.receive(line)) == ["501 Invalid address\r\n"]
    s.receive(b"MAIL FROM:<a@b>\r\n")
    assert replies(s.receive(f"RCPT TO:<{addr}>\r\n".encode())) == ["501 Invalid address\r\n"]


@pytest.mark.parametrize("arg", ["a@b", "<a@b", "a@b>", "<a@b>x", "<a@b>>", "", " ",
                                 "<a@b> <c@d>x"])
def test_malformed_address_syntax(arg: str) -> None:
    assert parse_address(arg, True) in (None, ("a@b", "<c@d>x"))
    s = ready()
    ev = s.receive(f"MAIL FROM:{arg}\r\n".encode())
    assert codes(ev)[0] in (501, 555)


def test_empty_sender_is_mailer_daemon_and_empty_recipient_is_refused() -> None:
    s = ready()
    s.receive(b"MAIL FROM:<>\r\n")
    assert s.sender == "MAILER-DAEMON"
    assert replies(s.receive(b"RCPT TO:<>\r\n")) == ["501 Invalid address\r\n"]


def test_mail_parameters() -> None:
    s = ready(max_message_size=100)
    assert codes(s.receive(b"MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME AUTH=<>\r\n")) == [250]
    s.receive(b"RSET\r\n")
    assert replies(s.receive(b"MAIL FROM:<a@b> SIZE=101\r\n")) == [
        "552 Message size exceeds fixed maximum message size\r\n"]
    assert codes(s.receive(b"MAIL FROM:<a@b> SIZE=x\r\n")) == [501]
    assert codes(s.receive(b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n")) == [501]
    assert codes(s.receive(b"MAIL FROM:<a@b> SMTPUTF8\r\n")) == [555]
    assert codes(s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\n")) == [250, 555]


def test_recipient_cap() -> None:
    s = ready(max_recipients=3)
    s.receive(b"MAIL FROM:<a@b>\r\n")
    ev = s.receive(b"RCPT TO:<1@x>\r\nRCPT TO:<2@x>\r\nRCPT TO:<3@x>\r\nRCPT TO:<4@x>\r\n")
    assert codes(ev) == [250, 250, 250, 452]
    ev = s.receive(b"DATA\r\n")
    assert ev[0].recipients == ("1@x", "2@x", "3@x")  # type: ignore[union-attr]


# --- line handling, hostile input ------------------------------------------------------


def test_bare_lf_and_crlf_commands() -> None:
    s = session()
    assert codes(s.receive(b"EHLO x\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\nDATA\n")) == [
        250, 250, 250, 354]
    ev = s.receive(b"a\nb\r\n.\n")
    assert data_of(ev) == b"a\nb\n"


def test_ten_megabyte_line_is_refused_without_buffering_it() -> None:
    s = ready()
    chunk = b"x" * 65536
    for _ in range(160):  # 10 MiB, no newline
        assert s.receive(chunk) == []
        assert len(s._buf) <= s.limits.max_line
    assert replies(s.receive(b"\r\nNOOP\r\n")) == ["500 Line too long\r\n", "250 Ok\r\n"]
    assert replies(s.receive(b"MAIL FROM:<" + b"a" * 5000 + b"@b>\r\n")) == [
        "500 Line too long\r\n"]


def test_longest_line_accepted() -> None:
    s = ready(max_line=64)
    line = b"NOOP " + b"x" * (64 - 7) + b"\r\n"
    assert len(line) == 64
    assert codes(s.receive(line)) == [250]
    assert codes(s.receive(b"NOOP " + b"x" * 58 + b"\r\n")) == [500]


def test_nul_bytes_and_binary_garbage() -> None:
    s = ready()
    assert codes(s.receive(b"MAIL FROM:<a@b>\x00junk\r\n")) == [501]
    assert codes(s.receive(b"\x00\x01\xff\xfe\r\n")) == [500]
    assert codes(s.receive(b"MAIL FROM:<a\x00b@c>\r\n")) == [501]
    assert codes(s.receive(b"NOOP\r\n")) == [250]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_no_crash_on_any_input(data: bytes) -> None:
    for auth in (False, True):
        s = session(auth, max_line=80)
        s.receive(data)
        if s.waiting:
            if isinstance(s._waiting, str) and s._waiting == "auth":
                s.auth_result(False)
            else:
                s.delivery_result(delivery_reply(75))
        s.receive(data)
        s.receive_eof()


# --- pipelining ----------------------------------------------------------------------


def test_pipelined_session_in_one_chunk_answers_in_order() -> None:
    s = session()
    wire = (b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<bad;>\r\n"
            b"RCPT TO:<e@f>\r\nDATA\r\nhello\r\n.\r\nMAIL FROM:<g@h>\r\nRCPT TO:<i@j>\r\n"
            b"DATA\r\n")
    ev = s.receive(wire)
    assert codes(ev) == [250, 250, 250, 501, 250, 354]
    assert isinstance(ev[-1], MessageEnd)
    assert s.receive(b"second\r\n.\r\nQUIT\r\n") == []  # buffered while waiting
    ev = s.delivery_result(delivery_reply(0))
    assert codes(ev) == [250, 250, 250, 354]
    assert data_of(ev) == b"second\n"
    ev = s.delivery_result(delivery_reply(75))
    assert replies(ev) == ["451 Pipe command reported error 75\r\n", "221 Bye\r\n"]


def test_byte_at_a_time_equals_one_chunk() -> None:
    wire = (b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
            b".hello\r\n..\r\n.\r\r\nx\r.\r\n\r\n.\r\nQUIT\r\n")
    one = session()
    ev1 = one.receive(wire)
    ev1 += one.delivery_result(delivery_reply(0))
    many = session()
    ev2: list[object] = []
    for i in range(len(wire)):
        ev2 += many.receive(wire[i : i + 1])
        if many.waiting:
            ev2 += many.delivery_result(delivery_reply(0))
    assert codes(ev1) == codes(ev2) == [250, 250, 250, 354, 250, 221]
    assert data_of(ev1) == data_of(ev2) == b"hello\n.\n\r\nx\r.\n\n"


def test_eof_mid_data_aborts_the_mail() -> None:
    s = ready()
    s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npartial mail\r\n")
    ev = s.receive_eof()
    assert any(isinstance(e, MessageAborted) for e in ev)
    assert not any(isinstance(e, MessageEnd) for e in ev)
    assert s.state is State.CLOSED and not s.clean


def test_eof_after_pipelined_end_still_delivers_and_answers() -> None:
    s = ready()
    ev = s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
    assert isinstance(ev[-1], MessageEnd)
    assert s.receive_eof() == []
    ev = s.delivery_result(delivery_reply(0))
    assert codes(ev) == [250, 221]
    assert s.state is State.CLOSED and s.clean


def test_eof_after_delivery_without_quit_is_clean_as_in_msmtpd() -> None:
    s = ready()
    s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
    s.delivery_result(delivery_reply(0))
    ev = s.receive_eof()
    assert Log("info", "client ended session without sending QUIT") in ev
    assert s.clean


def test_message_size_limit() -> None:
    s = ready(max_message_size=10)
    ev = s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n0123456789A\r\n")
    assert any(isinstance(e, MessageAborted) for e in ev)
    ev = s.receive(b"more\r\n.\r\nNOOP\r\n")
    assert replies(ev) == ["552 Message size exceeds fixed maximum message size\r\n",
                           "250 Ok\r\n"]
    assert not s.waiting


# --- AUTH --------------------------------------------------------------------------


def test_auth_required_before_mail() -> None:
    s = ready(auth=True)
    for cmd in (b"MAIL FROM:<a@b>", b"RCPT TO:<a@b>", b"DATA", b"VRFY x", b"FOO"):
        assert replies(s.receive(cmd + b"\r\n")) == ["530 Authentication required\r\n"]
    assert codes(s.receive(b"NOOP\r\nRSET\r\nHELP\r\n")) == [250, 250, 214]
    assert replies(s.receive(b"QUIT\r\n")) == ["221 Bye\r\n"]


def test_auth_plain_with_prompt_and_initial_response() -> None:
    s = ready(auth=True)
    assert replies(s.receive(b"AUTH PLAIN\r\n")) == ["334 \r\n"]
    ev = s.receive(b64(b"\0bob\0secret") + b"\r\nMAIL FROM:<a@b>\r\n")
    assert ev == [AuthAttempt("PLAIN", "bob", b"secret")]
    ev = s.auth_result(True)
    assert replies(ev) == ["235 Authentication successful\r\n", "250 Ok\r\n"]
    assert Log("info", "authenticated user bob") in ev
    assert codes(s.receive(b"RSET\r\nAUTH PLAIN x\r\n")) == [250, 503]

    s = ready(auth=True)
    ev = s.receive(b"AUTH PLAIN " + b64(b"bob\0bob\0pw") + b"\r\n")
    assert ev == [AuthAttempt("PLAIN", "bob", b"pw")]
    assert replies(s.auth_result(False)) == ["535 Authentication failed\r\n"]


def test_auth_login() -> None:
    s = ready(auth=True)
    assert replies(s.receive(b"AUTH LOGIN\r\n")) == ["334 VXNlcm5hbWU6\r\n"]
    assert replies(s.receive(b64(b"bob") + b"\r\n")) == ["334 UGFzc3dvcmQ6\r\n"]
    assert s.receive(b64(b"pw") + b"\r\n") == [AuthAttempt("LOGIN", "bob", b"pw")]
    s = ready(auth=True)
    assert replies(s.receive(b"AUTH LOGIN " + b64(b"bob") + b"\r\n")) == [
        "334 UGFzc3dvcmQ6\r\n"]


def test_auth_cancel_malformed_and_unknown_mechanism() -> None:
    s = ready(auth=True)
    s.receive(b"AUTH PLAIN\r\n")
    assert replies(s.receive(b"*\r\n")) == ["501 Authentication cancelled\r\n"]
    assert codes(s.receive(b"AUTH CRAM-MD5\r\n")) == [504]
    for bad in (b"AUTH PLAIN !!!\r\n", b"AUTH PLAIN " + b64(b"no-nuls") + b"\r\n",
                b"AUTH PLAIN " + b64(b"other\0bob\0pw") + b"\r\n", b"AUTH PLAIN =\r\n"):
        ev = s.receive(bad)
        assert len(ev) == 1 and isinstance(ev[0], AuthAttempt) and ev[0].malformed
        s.auth_result(False)
        s = ready(auth=True)


def test_three_auth_failures_close_the_session() -> None:
    s = ready(auth=True)
    for _ in range(2):
        s.receive(b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n")
        assert codes(s.auth_result(False)) == [535]
    s.receive(b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n")
    ev = s.auth_result(False)
    assert codes(ev) == [535, 421]
    assert isinstance(ev[-1], Close)
    assert s.receive(b"NOOP\r\n") == []


def test_auth_temporary_failure() -> None:
    s = ready(auth=True)
    s.receive(b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n")
    assert replies(s.auth_result(False, temporary=True)) == [
        "454 Temporary authentication failure\r\n"]
    assert s.auth_failures == 0


def test_auth_not_in_transaction() -> None:
    s = ready(auth=True)
    s.receive(b"AUTH PLAIN " + b64(b"\0u\0p") + b"\r\n")
    s.auth_result(True)
    s.receive(b"MAIL FROM:<a@b>\r\n")
    assert codes(s.receive(b"AUTH PLAIN x\r\n")) == [503]


# --- helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "out"), [
    ("", "unknown"), ("x", "x"), ("mail.example.org", "mail.example.org"),
    ("[192.0.2.1]", "[192.0.2.1]"), ("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"),
    ("[::1]", "[::1]"), ("a]", "a]"), ("]a", "invalid"), ("a[", "invalid"),
    ("a b", "invalid"), ("a_b", "invalid"), (" x", "invalid"), ("x;id", "invalid"),
])
def test_helo_name_sanitised_like_msmtpd(name: str, out: str) -> None:
    assert sanitize_helo_name(name) == out


def test_received_header_layout() -> None:
    assert received_header("x", "127.0.0.1", "localhost", "127.0.0.1", "localhost",
                           "Thu, 01 Jan 2026 00:00:00 +0000") == (
        b"Received: from x (localhost [127.0.0.1])\r\n\tby localhost [127.0.0.1] (msmtpd) "
        b"with ESMTP;\r\n\tThu, 01 Jan 2026 00:00:00 +0000\r\n")
    assert received_header("x", "", "", "", "", "D") == (
        b"Received: from x ([])\r\n\tby [] (msmtpd) with ESMTP;\r\n\tD\r\n")


@pytest.mark.parametrize(("status", "reply"), [
    ((0, None), "250 Ok, mail was piped"),
    ((68, None), "451 Pipe command reported error 68"),
    ((69, None), "451 Pipe command reported error 69"),
    ((71, None), "451 Pipe command reported error 71"),
    ((75, None), "451 Pipe command reported error 75"),
    ((1, None), "554 Pipe command reported error 1"),
    ((64, None), "554 Pipe command reported error 64"),
    ((78, None), "554 Pipe command reported error 78"),
    ((127, None), "554 Pipe command reported error 127"),
    ((None, 9), "554 Pipe command reported error 137"),
    ((None, 15), "554 Pipe command reported error 143"),
])
def test_delivery_reply_mapping(status: tuple[int | None, int | None], reply: str) -> None:
    r = delivery_reply(*status)
    assert f"{r.code} {r.text}" == reply
    assert delivery_reply(None, timed_out=True).code == 451


def msmtpd_smtp_pipe(data: bytes) -> tuple[bytes, bytes] | None:
    """msmtpd 1.8.23's line loop (with lines of any length), for comparison."""
    out = bytearray()
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return None
        line = data[pos:nl]
        pos = nl + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == b".":
            return bytes(out), data[pos:]
        if line.startswith(b"."):
            line = line[1:]
        out += line + b"\n"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\xff", b"\x00",
                                 b".\r\n", b"\n.\n"]), max_size=40),
       st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20))
def test_data_decoder_equals_msmtpd_on_any_chunking(parts: list[bytes], sizes: list[int]) -> None:
    data = b"".join(parts) + b"\r\n.\r\nTAIL"
    expected = msmtpd_smtp_pipe(data)
    assert expected is not None
    dec = DataDecoder()
    out = bytearray()
    pos, k = 0, 0
    rest = None
    while rest is None:
        n = sizes[k % len(sizes)]
        k += 1
        o, rest = dec.feed(data[pos : pos + n])
        pos += n
        out += o
    assert (bytes(out), rest + data[pos:]) == expected


def test_state_machine_does_not_import_twisted() -> None:
    code = ("import sys, msmtp_twisted.smtp.server\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=ours_env({"PATH": "/usr/bin:/bin"}), cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
