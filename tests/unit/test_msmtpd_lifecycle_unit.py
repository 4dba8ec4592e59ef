"""msmtpd's option table, the server's shutdown and data-rate rules, and the
session's close grace, without processes (pure state machine, fake clock)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage

from msmtp_twisted.daemon import cli, options
from msmtp_twisted.daemon.command import PipeCommand
from msmtp_twisted.daemon.protocol import CLOSE_GRACE, DaemonConfig, MsmtpdFactory
from msmtp_twisted.daemon.service import MsmtpdOptions
from msmtp_twisted.smtp.server import (
    Close,
    MessageAborted,
    MessageEnd,
    ServerLimits,
    ServerReply,
    SMTPServer,
    State,
    delivery_reply,
)
from tests.servers.msmtpd import fake_connect, fake_factory

# --- one option table -----------------------------------------------------------------


def test_every_option_is_in_both_front_ends_with_its_default() -> None:
    console = {o.name for o in cli._LONGOPTS}
    twistd = {p[0]: p for p in MsmtpdOptions.optParameters}
    help_text = cli.help_text()
    for o in options.OPTIONS:
        assert (o.name in console) == o.console
        assert (o.name in twistd) == o.twistd
        if o.console:
            assert f"--{o.name}" in help_text
        if o.twistd and o.default is not None:
            assert twistd[o.name][2] == o.default_text()
            if not o.msmtpd:
                assert f"--{o.name}=" in help_text
                assert f"(default {o.default_text()})" in help_text.split(f"--{o.name}=")[1]


def test_defaults_come_from_one_place() -> None:
    config = DaemonConfig(command=PipeCommand.parse("true"))
    limits = ServerLimits()
    for o in options.OPTIONS:
        if o.kind in options.LIMIT_KINDS:
            holder = limits if hasattr(limits, o.attr) else config
            assert getattr(holder, o.attr) == o.default, o.name
    assert options.build_config(cli.parse_args(["msmtpd", "--command=true"])) == config


def test_msmtpd_help_keeps_msmtpd_text() -> None:
    text = cli.help_text()
    assert text.startswith(
        "Usage: msmtpd [option...]\nOptions:\n"
        "  --version       print version\n"
        "  --help          print help\n"
        "  --inetd         start single SMTP session on stdin/stdout\n"
        "  --interface=ip  listen on ip instead of 127.0.0.1\n"
        "  --port=number   listen on port number instead of 25\n"
        "  --log=none|syslog|FILE  do not log anything (default)\n"
        "                  or log to syslog or log to the given file\n"
        f"  --command=cmd   pipe mails to cmd instead of {options.DEFAULT_COMMAND}\n"
        "  --auth=user[,passwordeval] require authentication with this user name;\n"
        "                  the password will be retrieved from the given\n"
        "                  passwordeval command or, if none is given, from\n"
        "                  the key ring or, if that fails, from a prompt.\n"
        "Extensions of msmtp-twisted:\n")
    assert max(len(line) for line in text.splitlines() if "--command=cmd" not in line) <= 80


ARGS = ["--command=true -f %F --", "--log=none", "--max-sessions=3", "--idle-timeout=1.5",
        "--request-timeout=7", "--min-data-rate=0", "--shutdown-timeout=0",
        "--max-line-length=100", "--command-timeout=9"]


def test_console_and_twistd_build_the_same_config() -> None:
    from_console = options.build_config(cli.parse_args(["msmtpd", *ARGS]), inetd=False)
    twistd = MsmtpdOptions()
    twistd.parseOptions(ARGS)
    assert twistd.config == from_console
    assert from_console.max_sessions == 3 and from_console.limits.max_line == 100
    assert from_console.shutdown_timeout == 0 and from_console.min_data_rate == 0


@pytest.mark.parametrize(("arg", "message"), [
    ("--max-sessions=0", "invalid argument for option '--max-sessions'"),
    ("--min-data-rate=-1", "invalid argument for option '--min-data-rate'"),
    ("--idle-timeout=nan", "invalid argument for option '--idle-timeout'"),
    ("--shutdown-timeout=inf", "invalid argument for option '--shutdown-timeout'"),
    ("--request-timeout=x", "invalid argument for option '--request-timeout'"),
    ("--log=", "option '--log' requires non-empty argument"),
])
def test_console_and_twistd_refuse_alike(arg: str, message: str) -> None:
    with pytest.raises(cli.SettingsError, match=re.escape(message)):
        cli.parse_args(["msmtpd", arg])
    with pytest.raises(usage.UsageError, match=re.escape(message)):
        MsmtpdOptions().parseOptions([arg])


def test_importing_the_cli_imports_no_twisted() -> None:
    import subprocess
    import sys

    code = ("import sys, msmtp_twisted.daemon.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


# --- the pure server: shutdown and "receiving" -----------------------------------------------


def replies(events: list[object]) -> list[bytes]:
    return [e.to_bytes() for e in events if isinstance(e, ServerReply)]


SHUTDOWN = b"421 Server shutting down, closing connection\r\n"


def test_shutdown_between_commands() -> None:
    s = SMTPServer()
    s.start()
    s.receive(b"EHLO x\r\n")
    events = s.shutdown()
    assert replies(events) == [SHUTDOWN]
    assert isinstance(events[-1], Close) and s.state is State.CLOSED
    assert s.shutdown() == [] and s.receive(b"NOOP\r\n") == []


def test_shutdown_mid_data_aborts_the_mail() -> None:
    s = SMTPServer()
    s.start()
    s.receive(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhalf a mail\r\n")
    assert s.receiving
    events = s.shutdown()
    assert isinstance(events[0], MessageAborted)
    assert replies(events) == [SHUTDOWN]
    assert not any(isinstance(e, MessageEnd) for e in events)


def test_shutdown_while_piping_answers_first_and_ignores_what_follows() -> None:
    s = SMTPServer()
    s.start()
    events = s.receive(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n"
                       b"MAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\ny\r\n.\r\n")
    assert sum(isinstance(e, MessageEnd) for e in events) == 1
    assert s.waiting and not s.receiving
    assert s.shutdown() == []
    events = s.delivery_result(delivery_reply(0))
    assert replies(events) == [b"250 Ok, mail was piped\r\n", SHUTDOWN]
    assert not any(isinstance(e, MessageEnd) for e in events)
    assert isinstance(events[-1], Close)


def test_shutdown_while_checking_auth() -> None:
    s = SMTPServer(auth=True)
    s.start()
    s.receive(b"EHLO x\r\nAUTH PLAIN AGJvYgBwdw==\r\n")
    assert s.waiting and s.shutdown() == []
    assert replies(s.auth_result(True)) == [b"235 Authentication successful\r\n", SHUTDOWN]


def test_interrupted_delivery_is_a_temporary_failure() -> None:
    assert delivery_reply(None, interrupted=True).code == 451


def test_receiving_is_true_only_for_an_unfinished_line_or_mail() -> None:
    s = SMTPServer()
    s.start()
    assert not s.receiving
    s.receive(b"EHLO x\r\nNO")
    assert s.receiving
    s.receive(b"OP\r\n")
    assert not s.receiving
    s.receive(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert s.receiving  # the mail is the client's to send
    s.receive(b"x\r\n.\r\n")
    assert not s.receiving  # waiting for the command
    s.receive(b"NOOP")
    assert not s.receiving  # buffered behind the delivery: not the client's fault
    s.delivery_result(delivery_reply(0))
    assert s.receiving


# --- the session: close grace and minimum data rate, on a fake clock ---------------------------


def session(**kw: Any) -> tuple[Any, StringTransport, MemoryReactorClock, MsmtpdFactory]:
    factory, clock = fake_factory(**kw)
    proto, tr = fake_connect(factory)
    return proto, tr, clock, factory


def test_timeout_aborts_a_connection_that_does_not_close() -> None:
    proto, tr, clock, _ = session(idle_timeout=10)
    clock.advance(10)
    assert tr.value().endswith(b"421 Timeout, closing connection\r\n")
    assert tr.disconnecting and not tr.disconnected  # the client reads nothing
    clock.advance(CLOSE_GRACE)
    assert tr.disconnected  # aborted


@pytest.mark.parametrize(("rate", "seconds_alive"), [(500, 2 + 100 / 500), (0, 0.99 + 30)])
def test_minimum_data_rate(rate: int, seconds_alive: float) -> None:
    proto, tr, clock, _ = session(request_timeout=2, min_data_rate=rate, idle_timeout=30)
    proto.dataReceived(b"EHLO x\r\n")  # type: ignore[attr-defined]
    tr.clear()
    # A byte every 0.01 s moves the deadline by 0.002 s; with no minimum rate,
    # only the idle timeout after the last byte counts.
    for _ in range(100):
        proto.dataReceived(b"x")  # type: ignore[attr-defined]
        clock.advance(0.01)
    clock.advance(seconds_alive - 1 - 0.05)
    assert tr.value() == b""
    clock.advance(0.1)
    assert tr.value() == b"421 Timeout, closing connection\r\n"


def test_a_complete_line_stops_the_rate_clock() -> None:
    proto, tr, clock, _ = session(request_timeout=2, min_data_rate=500, idle_timeout=30)
    proto.dataReceived(b"NO")  # type: ignore[attr-defined]
    clock.advance(1.9)
    proto.dataReceived(b"OP\r\n")  # type: ignore[attr-defined]
    clock.advance(20)
    assert tr.value().endswith(b"250 Ok\r\n") and not tr.disconnecting


def test_factory_shutdown() -> None:
    proto, tr, clock, factory = session(shutdown_timeout=5)
    proto.dataReceived(b"EHLO x\r\n")  # type: ignore[attr-defined]
    done = factory.shutdown()
    assert tr.value().endswith(b"421 Server shutting down, closing connection\r\n")
    assert tr.disconnecting and not done.called
    assert factory.buildProtocol(None).__class__.__name__ == "_ShuttingDown"
    proto.connectionLost(None)  # type: ignore[attr-defined]
    assert done.called
    assert factory.shutdown().called  # a second call: the same outcome


def test_factory_shutdown_cuts_off_what_is_left_after_the_grace() -> None:
    proto, tr, clock, factory = session(shutdown_timeout=5)
    done = factory.shutdown()
    clock.advance(4.9)
    assert not tr.disconnected
    clock.advance(0.2)
    assert tr.disconnected and not done.called  # StringTransport: no connectionLost
    clock.advance(60)
    assert done.called  # the last bound
    assert factory.sessions == set()


def test_config_fields_are_the_table() -> None:
    names = {f.name for f in dataclasses.fields(DaemonConfig)}
    for o in options.OPTIONS:
        if o.kind in options.LIMIT_KINDS and o.attr not in ("max_line", "max_message_size",
                                                             "max_recipients"):
            assert o.attr in names


def test_every_option_is_documented() -> None:
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "msmtpd.md").read_text()
    for o in options.OPTIONS:
        assert f"`--{o.name}" in text, o.name
        if o.kind in options.LIMIT_KINDS:
            assert f"| `--{o.name}={o.arg}` | {o.default_text()} |" in text, o.name


def test_a_service_started_again_accepts_sessions_again() -> None:
    from msmtp_twisted.daemon.log import MsmtpdLog
    from msmtp_twisted.daemon.service import MsmtpdService

    clock = MemoryReactorClock()
    svc = MsmtpdService("tcp:2525:interface=127.0.0.1",
                        DaemonConfig(command=PipeCommand.parse("true")), MsmtpdLog("none"),
                        reactor=clock)
    svc.startService()
    assert clock.tcpServers[0][0] == 2525
    stopped = svc.stopService()
    assert stopped.called  # no sessions: nothing to wait for
    assert svc.factory.buildProtocol(None).__class__.__name__ == "_ShuttingDown"
    svc.startService()
    assert svc.factory.buildProtocol(None).__class__.__name__ == "MsmtpdProtocol"
