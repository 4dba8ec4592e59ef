"""msmtpd's session limits from issue 10 (items 4-9) at unit level: the state
machine, the spool, the log cap, the argv budget (checked against the kernel's
execve()), and the per-client AUTH delay with a fake clock.  The same behaviour
against a real msmtpd process: tests/integration/test_msmtpd_hardening.py."""

from __future__ import annotations

import base64
import errno
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from msmtp_twisted.daemon.checkers import StaticChecker
from msmtp_twisted.daemon.command import MAX_ARG_STRLEN, PipeCommand, exec_budget
from msmtp_twisted.daemon.delivery import Spool
from msmtp_twisted.daemon.log import MAX_LOG_MESSAGE, MsmtpdLog, cap_message
from msmtp_twisted.daemon.protocol import DaemonConfig, MsmtpdFactory, client_key
from msmtp_twisted.smtp.server import (
    AuthAttempt,
    Log,
    ServerLimits,
    ServerReply,
    SMTPServer,
    State,
    _exceeds,
    delivery_reply,
    envelope_cost,
)
from tests.servers.msmtpd import fake_connect, fake_factory


def ready(auth: bool = False, **limits: int | None) -> SMTPServer:
    s = SMTPServer(auth=auth, limits=ServerLimits(**limits))  # type: ignore[arg-type]
    s.start()
    s.receive(b"EHLO client.example\r\n")
    return s


def replies(events: list[object]) -> list[bytes]:
    return [e.to_bytes() for e in events if isinstance(e, ServerReply)]


def logs(events: list[object]) -> list[str]:
    return [e.message for e in events if isinstance(e, Log)]


# --- item 5: the log line of a failed command ----------------------------------------------


@pytest.mark.parametrize(("reply", "line"), [
    (delivery_reply(1), "pipe command reported error 1"),
    (delivery_reply(75), "pipe command reported error 75"),
    (delivery_reply(None, 9), "pipe command reported error 137"),
    (delivery_reply(127), "pipe command reported error 127"),
    (delivery_reply(None, timed_out=True), "pipe command timed out"),
    (delivery_reply(None), "pipe command failed to execute"),
    (ServerReply(452, ("Insufficient system storage",)), "insufficient system storage"),
])
def test_failed_delivery_log_line(reply: ServerReply, line: str) -> None:
    s = ready()
    s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n")
    assert s.waiting
    events = s.delivery_result(reply)
    assert replies(events) == [reply.to_bytes()]
    assert logs(events) == [line]


# --- item 6: an over-long line inside AUTH -------------------------------------------------

CANCELLED = b"500 Authentication exchange line is too long\r\n"


@pytest.mark.parametrize("start", [
    b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"AUTH LOGIN\r\n" + base64.b64encode(b"bob") + b"\r\n",
    b"AUTH LOGIN " + base64.b64encode(b"bob") + b"\r\n"])
@pytest.mark.parametrize("chunks", [
    [b"A" * 200 + b"\r\n"],  # a whole line, too long
    [b"A" * 100, b"A" * 100, b"A" * 100, b"\r\n"],  # dropped while it arrives
])
def test_long_line_cancels_the_auth_exchange(start: bytes, chunks: list[bytes]) -> None:
    s = ready(auth=True, max_line=80)
    assert replies(s.receive(start))[-1].startswith(b"334 ")
    events = []
    for chunk in chunks:
        events += s.receive(chunk)
    assert replies(events) == [CANCELLED]
    assert logs(events) == ["authentication exchange line too long, authentication cancelled"]
    assert s.state is State.READY and not s.waiting
    events = s.receive(b"MAIL FROM:<a@b>\r\n")  # a command, not credentials
    assert replies(events) == [b"530 Authentication required\r\n"]
    assert not any(isinstance(e, AuthAttempt) for e in events)
    assert s.auth_failures == 0
    s.receive(b"AUTH PLAIN " + base64.b64encode(b"\0bob\0pw") + b"\r\n")
    assert replies(s.auth_result(True)) == [b"235 Authentication successful\r\n"]


def test_authenticated_user_is_logged_on_one_line() -> None:
    s = ready(auth=True)
    s.receive(b"AUTH PLAIN " + base64.b64encode(b"\0a\nb\0pw") + b"\r\n")
    assert logs(s.auth_result(True)) == ["authenticated user a\\nb"]


def test_long_line_outside_auth_is_still_line_too_long() -> None:
    s = ready(auth=True, max_line=80)
    assert replies(s.receive(b"X" * 100 + b"\r\n")) == [b"500 Line too long\r\n"]


# --- item 7: the envelope must fit in the command's argument list ---------------------------


def test_recipient_that_would_overflow_the_argv_gets_452() -> None:
    budget = envelope_cost("a@b") + 3 * envelope_cost("r0@example.org") + envelope_cost("x@y")
    s = ready(max_envelope=budget)
    ev = s.receive(b"MAIL FROM:<a@b>\r\n" + b"".join(
        f"RCPT TO:<r{i}@example.org>\r\n".encode() for i in range(4)))
    assert replies(ev) == [b"250 Ok\r\n"] * 4 + [b"452 Too many recipients\r\n"]
    assert logs(ev) == ["too many recipients for the pipe command's argument list"]
    assert s.recipients == ["r0@example.org", "r1@example.org", "r2@example.org"]
    ev = s.receive(b"RCPT TO:<x@y>\r\nDATA\r\n")  # a shorter one still fits
    assert replies(ev) == [b"250 Ok\r\n", b"354 Send data\r\n"]
    s.receive(b".\r\n")
    s.delivery_result(delivery_reply(0))
    # The next transaction starts from nothing.
    ev = s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<r3@example.org>\r\nRCPT TO:<r4@example.org>\r\n")
    assert replies(ev) == [b"250 Ok\r\n"] * 3


def test_address_too_long_for_one_argument_gets_501() -> None:
    s = ready(max_address=10, max_line=1000)
    assert replies(s.receive(b"MAIL FROM:<" + b"a" * 9 + b"@>\r\n")) == [b"250 Ok\r\n"]
    assert replies(s.receive(b"RCPT TO:<" + b"b" * 10 + b"@>\r\n")) == [
        b"501 Path too long\r\n"]
    s.receive(b"RSET\r\n")
    assert replies(s.receive(b"MAIL FROM:<" + b"a" * 10 + b"@>\r\n")) == [
        b"501 Path too long\r\n"]
    assert s.state is State.READY


def test_budget_against_the_kernel(tmp_path: Path) -> None:
    """Fill the budget envelope_limits() computes and run a real program with it:
    it starts.  The kernel's real limit is only a little higher."""
    true = "/bin/true"
    cmd = PipeCommand.parse(f"{true} -f %F --")
    envelope, longest = cmd.envelope_limits()
    assert longest == MAX_ARG_STRLEN - 1  # "%F" is a word of its own
    assert PipeCommand.parse("x --from=%F").envelope_limits()[1] == MAX_ARG_STRLEN - 1 - 7
    rcpt_len = 4000
    n = (envelope - envelope_cost("a@b")) // envelope_cost("r" * rcpt_len)
    rcpts = [f"{i:06d}" + "r" * (rcpt_len - 6) for i in range(n + 40)]
    subprocess.run(cmd.argv("a@b", rcpts[:n]), check=True, timeout=30)
    # 40 more of 4 KB (160 KB) is past the real limit: our budget is not loose.
    with pytest.raises(OSError) as info:
        subprocess.run(cmd.argv("a@b", rcpts), check=True, timeout=30)
    assert info.value.errno == errno.E2BIG
    # One argument: the longest address fits, one more byte does not.
    subprocess.run([true, "x" * longest], check=True, timeout=30)
    with pytest.raises(OSError):
        subprocess.run([true, "x" * (longest + 1)], check=True, timeout=30)


def test_exec_budget_counts_the_environment() -> None:
    small = exec_budget({b"A": b"1"})
    assert exec_budget({b"A": b"1", b"B": b"x" * 100_000}) < small - 100_000
    assert 0 < exec_budget() < small


def test_factory_gives_sessions_the_argv_budget() -> None:
    factory = MsmtpdFactory(DaemonConfig(command=PipeCommand.parse("/bin/true -f %F --")),
                            reactor=MemoryReactorClock())
    limits = factory.server_limits
    assert limits.max_envelope is not None and limits.max_address is not None
    assert 100_000 < limits.max_envelope < 6 * 1024 * 1024
    explicit = ServerLimits(max_envelope=5, max_address=5)
    factory = MsmtpdFactory(DaemonConfig(command=PipeCommand.parse("x"), limits=explicit),
                            reactor=MemoryReactorClock())
    assert factory.server_limits is explicit


def test_log_messages_are_capped(tmp_path: Path) -> None:
    assert cap_message("x" * MAX_LOG_MESSAGE) == "x" * MAX_LOG_MESSAGE
    capped = cap_message("y" * 4_000_000)
    assert len(capped) <= MAX_LOG_MESSAGE
    kept = len(capped) - len(capped.rsplit(" [", 1)[1]) - 2
    assert capped.endswith(f" [... {4_000_000 - kept} more characters]")
    assert cap_message("user a\nb\x1b[2J") == "user a\\nb\\x1b[2J"  # one line, no escapes
    assert len(cap_message("\n" * 10_000)) <= MAX_LOG_MESSAGE
    path = tmp_path / "log"
    seen: list[str] = []
    log = MsmtpdLog(str(path), extra=lambda level, message: seen.append(message))
    log.info("pipe command is " + "r" * 100_000)
    log.error("pipe command: a\rforged line\n")
    log.close()
    assert len(path.read_text().splitlines()) == 2
    line = path.read_text().splitlines()[0]
    assert len(line.split(": ", 1)[1]) <= MAX_LOG_MESSAGE
    assert len(seen[0]) <= MAX_LOG_MESSAGE


# --- item 8: SIZE= of any length -----------------------------------------------------------


def test_size_with_thousands_of_digits() -> None:
    s = ready(max_line=30000)
    assert replies(s.receive(b"MAIL FROM:<a@b> SIZE=" + b"9" * 5000 + b"\r\n")) == [
        b"552 Message size exceeds fixed maximum message size\r\n"]
    assert replies(s.receive(b"MAIL FROM:<a@b> SIZE=" + b"0" * 20000 + b"7\r\n")) == [
        b"250 Ok\r\n"]


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=10**20),
       st.integers(min_value=0, max_value=5))
def test_exceeds_equals_int_comparison(value: int, limit: int, zeros: int) -> None:
    assert _exceeds("0" * zeros + str(value), limit) == (value > limit)


# --- item 4: the spool survives a failing temporary file -----------------------------------


def test_spool_keeps_the_error_instead_of_raising(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    s = Spool(threshold=10, directory=str(not_a_dir))
    s.write(b"12345")
    assert s.error is None  # in memory
    s.write(b"6789012345")
    assert s.error is not None and s.error.startswith(
        f"cannot write mail to a temporary file in {not_a_dir}: ")
    s.write(b"more")
    assert s.size == 19 and not s.finish() and s.memory() == b"" and not s.on_disk
    s.close()
    ok = Spool(threshold=10, directory=str(tmp_path))
    ok.write(b"x" * 100)
    assert ok.finish() and ok.on_disk
    ok.close()


def test_spool_on_a_full_file_system(tmp_path: Path) -> None:
    """/dev/full: every write fails with ENOSPC, as on a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    s = Spool(threshold=4)
    full = open("/dev/full", "r+b", buffering=0)  # noqa: SIM115
    s._file = full  # the temporary file, as if it had been created on a full disk
    s.write(b"x" * 10)
    assert s.error is not None and "No space left on device" in s.error
    assert full.closed and not s.finish()


# --- item 9: AUTH answers per client address --------------------------------------------------


@pytest.mark.parametrize(("ip", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("", ""),
    ("not-an-ip", "not-an-ip"),
])
def test_client_key(ip: str, key: str) -> None:
    assert client_key(ip) == key


def test_auth_answers_to_one_address_are_spaced() -> None:
    clock = MemoryReactorClock()
    factory = MsmtpdFactory(DaemonConfig(command=PipeCommand.parse("true")), reactor=clock)
    assert [factory.auth_answer_delay("a") for _ in range(3)] == [1.0, 2.0, 3.0]
    assert factory.auth_answer_delay("b") == 1.0
    clock.advance(2.5)
    assert factory.auth_answer_delay("a") == pytest.approx(1.5)  # after the one at 3.0
    clock.advance(10)
    assert factory.auth_answer_delay("c") == 1.0
    assert set(factory._auth_slots) == {"c"}  # the past is forgotten: bounded memory


def _session(factory: MsmtpdFactory, peer: object) -> StringTransport:
    proto, tr = fake_connect(factory, peer)
    tr.protocol = proto  # type: ignore[attr-defined]
    proto.dataReceived(b"EHLO x\r\n")  # type: ignore[attr-defined]
    tr.clear()
    return tr


def test_parallel_sessions_of_one_client_get_one_answer_a_second() -> None:
    factory, clock = fake_factory(checker=StaticChecker("bob", "pw"))
    wrong = b"AUTH PLAIN " + base64.b64encode(b"\0bob\0nope") + b"\r\n"
    first = _session(factory, IPv4Address("TCP", "192.0.2.1", 1000))
    first.protocol.dataReceived(wrong)  # type: ignore[attr-defined]
    assert first.value() == b"535 Authentication failed\r\n"  # the first is not delayed
    same = [_session(factory, IPv4Address("TCP", "192.0.2.1", 1001 + i)) for i in range(4)]
    same += [_session(factory, IPv6Address("TCP", "2001:db8::1", 2000)),
             _session(factory, IPv6Address("TCP", "2001:db8::2", 2001))]  # one /64
    other = _session(factory, IPv4Address("TCP", "192.0.2.2", 1000))
    for tr in [*same, other]:
        tr.protocol.dataReceived(wrong)  # type: ignore[attr-defined]
    answered = []
    for second in range(1, 6):
        clock.advance(1)
        answered.append(sum(tr.value() != b"" for tr in same[:4]))
        if second == 1:
            assert other.value() == b"535 Authentication failed\r\n"
            assert [tr.value() != b"" for tr in same[4:]] == [True, False]
    assert answered == [1, 2, 3, 4, 4]
    assert same[5].value() == b"535 Authentication failed\r\n"
