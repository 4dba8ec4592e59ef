"""msmtpd's daemon parts: command splitting, argv, options, checkers, log, and the
Protocol/Factory limits driven by a fake clock."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from msmtp_twisted.daemon import cli
from msmtp_twisted.daemon.checkers import LDAPChecker, StaticChecker, parse_ldap_url
from msmtp_twisted.daemon.command import CommandError, PipeCommand, split_command
from msmtp_twisted.daemon.delivery import Spool, resolve_executable
from msmtp_twisted.daemon.log import MsmtpdLog, format_file_line
from msmtp_twisted.daemon.password import PasswordError, eval_password, get_password
from tests.servers.msmtpd import fake_connect, fake_factory

# --- the command ---------------------------------------------------------------------


@pytest.mark.parametrize(("command", "words"), [
    ("msmtp -f %F --", ["msmtp", "-f", "%F", "--"]),
    ("  /usr/bin/msmtp   -a 'my account' -f %F -- ", ["/usr/bin/msmtp", "-a", "my account",
                                                       "-f", "%F", "--"]),
    ('prog "a b" c\\ d \'e"f\' "g\\"h" "i\\j"', ["prog", "a b", "c d", 'e"f', 'g"h', "i\\j"]),
    ("prog '' \"\"", ["prog", "", ""]),
    ("prog a\\\nb", ["prog", "ab"]),
    ("prog 'a|b' \"c;d\" e\\>f '$HOME'", ["prog", "a|b", "c;d", "e>f", "$HOME"]),
    ("prog x=1", ["prog", "x=1"]),
])
def test_split_like_sh(command: str, words: list[str]) -> None:
    assert split_command(command) == words


def test_tilde_expanded_like_sh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    assert split_command("~/bin/msmtp '~/x' a~b") == ["/home/u/bin/msmtp", "~/x", "a~b"]


@pytest.mark.parametrize("command", [
    "", "   ", "cat > /dev/null", "msmtp -f %F -- | tee x", "a; b", "a && b", "a & b",
    "echo $HOME", "echo `id`", "echo \"$HOME\"", "ls *", "a ? b", "x [ab]", "FOO=bar msmtp",
    "'unterminated", "\"unterminated", "# comment", "a (b)", "a <b",
])
def test_shell_syntax_refused(command: str) -> None:
    with pytest.raises(CommandError):
        split_command(command)


def test_argv_first_percent_f_and_one_item_per_recipient() -> None:
    cmd = PipeCommand.parse("msmtp -f %F --from=%F -- ")
    hostile = [";rm -rf /", "$(id)", "--option", "`id`", "a b", "'", "%F", "-", ""]
    assert cmd.argv("s@x", hostile) == ["msmtp", "-f", "s@x", "--from=%F", "--", *hostile]
    assert PipeCommand.parse("x -f%F").argv("MAILER-DAEMON", ["r"]) == [
        "x", "-fMAILER-DAEMON", "r"]
    assert PipeCommand.parse("x").argv("s", []) == ["x"]


def test_resolve_executable(tmp_path: Path) -> None:
    assert resolve_executable("sh")[0] is not None
    assert resolve_executable("/nonexistent/x") == (None, 127)
    assert resolve_executable("no-such-program-here") == (None, 127)
    f = tmp_path / "noexec"
    f.write_text("")
    assert resolve_executable(str(f)) == (None, 126)
    assert resolve_executable(str(tmp_path)) == (None, 126)


def test_spool_rolls_over_to_a_file() -> None:
    s = Spool(threshold=10)
    s.write(b"12345")
    assert not s.on_disk and s.memory() == b"12345"
    s.write(b"678901")
    assert s.on_disk and s.size == 11
    fd = s.fileno_rewound()
    assert os.read(fd, 100) == b"12345678901"
    s.close()


# --- options -------------------------------------------------------------------------


def parse(*args: str) -> cli.MsmtpdSettings:
    return cli.parse_args(["msmtpd", *args], get_password=lambda spec: (spec, "pw"))


def test_defaults_are_msmtpds() -> None:
    s = parse()
    assert (s.interface, s.port, s.log, s.inetd) == ("127.0.0.1", 25, "none", False)
    assert s.command.endswith("-f %F --")
    assert "msmtp" in s.command


def test_options() -> None:
    s = parse("--inetd", "--interface=::1", "--port", "2500", "--log=syslog", "--command=x %F",
              "--auth=bob", "--max-sessions=3", "--idle-timeout=1.5")
    assert (s.inetd, s.interface, s.port, s.log, s.command) == (True, "::1", 2500, "syslog",
                                                                "x %F")
    assert (s.user, s.password) == ("bob", "pw")
    assert s.limits == {"max_sessions": 3, "idle_timeout": 1.5}
    assert parse("--port=12abc").port == 12  # atoi, as msmtpd
    assert parse("--port=abc").port == 0
    assert parse("--ver").print_version


@pytest.mark.parametrize(("text", "port"), [
    # what Debian's msmtpd 1.8.23 listened on for each (glibc atoi, then htons)
    ("4294969296", 2000), (" 2001x", 2001), ("1099511629777", 2001), ("9" * 5000, 65535),
    ("0" * 5000 + "25", 25), ("-1", 65535), ("-" + "9" * 30, 0),
])
def test_port_is_read_as_glibc_atoi_reads_it(text: str, port: int) -> None:
    assert parse(f"--port={text}").port & 0xFFFF == port


@pytest.mark.parametrize(("args", "message"), [
    (["--foo"], "unrecognized option '--foo'"),
    (["--port"], "option '--port' requires an argument"),
    (["--port="], "option '--port' requires non-empty argument"),
    (["--help=x"], "option '--help' doesn't allow an argument"),
    (["x"], "too many arguments"),
    (["--max-sessions=x"], "invalid argument for option '--max-sessions'"),
])
def test_bad_options(args: list[str], message: str) -> None:
    with pytest.raises(cli.SettingsError, match=re.escape(message)):
        parse(*args)


def test_main_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["msmtpd", "--foo"]) == 3
    assert capsys.readouterr().err == "msmtpd: unrecognized option '--foo'\n"
    assert cli.main(["msmtpd", "--interface=localhost", "--port=1"]) == 3
    assert capsys.readouterr().err == "msmtpd: invalid interface\n"
    assert cli.main(["msmtpd", "--command=cat > /dev/null"]) == 3
    assert "needs a shell" in capsys.readouterr().err
    assert cli.main(["msmtpd", "--version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("msmtpd version 1.8.23 (msmtp-twisted ")
    assert len(out) == 5
    assert cli.main(["msmtpd", "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage: msmtpd [option...]\nOptions:\n")


def test_passwordeval_first_line_and_errors() -> None:
    assert eval_password("printf 'secret\\r\\nsecond\\n'") == "secret"
    assert eval_password("printf 'nonl'") == "nonl"
    with pytest.raises(PasswordError, match="cannot read output of 'true'"):
        eval_password("true")
    assert get_password("bob,echo pw") == ("bob", "pw")


def test_no_password_source_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from msmtp_twisted.daemon import password

    monkeypatch.setattr(password, "keyring_password", lambda host, user: None)
    monkeypatch.setattr(password, "prompt_password", lambda host, user: None)
    with pytest.raises(PasswordError, match=r"cannot get password for \(localhost, smtp, bob\)"):
        get_password("bob")
    monkeypatch.setattr(password, "keyring_password", lambda host, user: "from-keyring")
    assert get_password("bob") == ("bob", "from-keyring")


# --- checkers ------------------------------------------------------------------------


def test_static_checker() -> None:
    c = StaticChecker("bob", "s3cret")
    assert c.check("bob", b"s3cret")
    assert not c.check("bob", b"s3cre")
    assert not c.check("bob", b"s3cret\0")
    assert not c.check("Bob", b"s3cret")
    assert not c.check("", b"")


def test_ldap_url_forms() -> None:
    c = parse_ldap_url("ldap://ldap.example:3389/uid=%u,ou=people,dc=example,dc=com")
    assert (c.host, c.port, c.use_ssl, c.starttls) == ("ldap.example", 3389, False, False)
    assert c.dn_template == "uid=%u,ou=people,dc=example,dc=com"
    c = parse_ldap_url("ldaps://h/uid=%25u,dc=x")
    assert (c.port, c.use_ssl, c.dn_template) == (636, True, "uid=%u,dc=x")
    c = parse_ldap_url("ldap://h/ou=people,dc=x??one?(uid=%u)?starttls,"
                       "bindname=cn=reader%2cdc=x,x-cafile=/ca.pem")
    assert (c.base, c.scope, c.filter, c.starttls) == ("ou=people,dc=x", "one", "(uid=%u)", True)
    assert (c.bind_dn, c.cafile) == ("cn=reader,dc=x", "/ca.pem")
    for bad in ("http://h/uid=%u", "ldap:///uid=%u", "ldap://h/", "ldap://h/dc=x",
                "ldap://h/dc=x??sub?(uid=x)", "ldaps://h/uid=%u????starttls",
                "ldap://h/uid=%u????x-what", "ldap://h/dc=x??deep?(uid=%u)"):
        with pytest.raises(ValueError):
            parse_ldap_url(bad)


def test_ldap_checker_refuses_empty_password_without_asking() -> None:
    c = LDAPChecker("ldap://192.0.2.1/uid=%u,dc=x")  # never contacted
    assert c.check_sync("bob", b"") is False
    assert c.check_sync("", b"x") is False


# --- log -----------------------------------------------------------------------------


def test_log_file_line_format(tmp_path: Path) -> None:
    line = format_file_line("info", "starting SMTP session", now=0, pid=42)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d msmtpd\[42\] info: "
                        r"starting SMTP session\n", line)
    path = tmp_path / "log"
    log = MsmtpdLog(str(path))
    log.info("a")
    log.error("b")
    log.close()
    lines = path.read_text().splitlines()
    assert lines[0].endswith(f"msmtpd[{os.getpid()}] info: a")
    assert lines[1].endswith(f"msmtpd[{os.getpid()}] error: b")


def test_syslog_and_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import syslog

    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *a: calls.append(("open", *a)))
    monkeypatch.setattr(syslog, "syslog", lambda *a: calls.append(("log", *a)))
    monkeypatch.setattr(syslog, "closelog", lambda: calls.append(("close",)))
    log = MsmtpdLog("syslog")
    log.info("hello")
    log.error("bad")
    log.close()
    assert calls == [("open", "msmtpd", syslog.LOG_PID, syslog.LOG_MAIL),
                     ("log", syslog.LOG_INFO, "hello"), ("log", syslog.LOG_ERR, "bad"),
                     ("close",)]
    calls.clear()
    MsmtpdLog(str(tmp_path / "no" / "such" / "dir" / "log"))
    assert calls[1] == ("log", syslog.LOG_ERR, "cannot open log file, using syslog instead")


# --- Protocol and Factory with a fake clock ---------------------------------------------------


def test_session_cap_gives_421() -> None:
    factory, _ = fake_factory("localhost", max_sessions=2)
    conns = [fake_connect(factory) for _ in range(3)]
    assert conns[0][1].value() == b"220 localhost ESMTP msmtpd\r\n"
    assert conns[2][1].value().startswith(b"421 ")
    assert conns[2][1].disconnecting
    assert factory.active == 2
    conns[0][0].connectionLost(None)  # type: ignore[attr-defined]
    assert factory.active == 1
    assert fake_connect(factory)[1].value().startswith(b"220 ")


def test_idle_and_session_timeouts() -> None:
    factory, clock = fake_factory("localhost", idle_timeout=10, session_timeout=25)
    proto, tr = fake_connect(factory)
    clock.advance(9)
    proto.dataReceived(b"NOOP\r\n")  # type: ignore[attr-defined]
    clock.advance(9)
    assert not tr.disconnecting
    clock.advance(2)
    assert tr.disconnecting and tr.value().endswith(b"421 Timeout, closing connection\r\n")

    proto, tr = fake_connect(factory)
    for _ in range(5):
        clock.advance(5)
        proto.dataReceived(b"NOOP\r\n")  # type: ignore[attr-defined]
    assert tr.disconnecting  # 25 s total


def test_auth_answers_are_delayed_after_a_failure() -> None:
    factory, clock = fake_factory("localhost", checker=StaticChecker("bob", "pw"))
    proto, tr = fake_connect(factory)
    proto.dataReceived(b"EHLO x\r\n")  # type: ignore[attr-defined]
    tr.clear()
    wrong = b"AUTH PLAIN " + base64.b64encode(b"\0bob\0nope") + b"\r\n"
    right = b"AUTH PLAIN " + base64.b64encode(b"\0bob\0pw") + b"\r\n"
    proto.dataReceived(wrong)  # type: ignore[attr-defined]
    assert tr.value() == b"535 Authentication failed\r\n"  # no delay before any failure
    tr.clear()
    proto2, tr2 = fake_connect(factory)
    proto2.dataReceived(b"EHLO x\r\n" + right)  # type: ignore[attr-defined]
    assert b"235" not in tr2.value()
    clock.advance(1)
    assert tr2.value().endswith(b"235 Authentication successful\r\n")
    clock.advance(61)
    proto3, tr3 = fake_connect(factory)
    proto3.dataReceived(b"EHLO x\r\n" + right)  # type: ignore[attr-defined]
    assert tr3.value().endswith(b"235 Authentication successful\r\n")  # delay expired


def test_inetd_mode_always_delays_auth() -> None:
    factory, clock = fake_factory("localhost", checker=StaticChecker("bob", "pw"),
                                  always_delay_auth=True)
    proto, tr = fake_connect(factory)
    proto.dataReceived(b"EHLO x\r\nAUTH PLAIN " + base64.b64encode(b"\0bob\0pw") + b"\r\n")  # type: ignore[attr-defined]
    assert b"235" not in tr.value()
    clock.advance(1)
    assert b"235" in tr.value()
