"""msmtp's log line, log file and syslog output (msmtp_twisted.log) against msmtp 1.8.23's
msmtp_get_log_info(), msmtp_log_to_file() and msmtp_log_to_syslog() in msmtp.c."""

from __future__ import annotations

import inspect
import itertools
import os
import subprocess
import sys
import syslog
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted import log
from msmtp_twisted.log import (
    format_log_line,
    log_failure_messages,
    log_to_file,
    log_to_syslog,
    syslog_facility,
)
from msmtp_twisted.sysexits import (
    EX_DATAERR,
    EX_OK,
    EX_PROTOCOL,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
)

BASE = dict(
    host="mail.example.org",
    socket=None,
    tls=False,
    auth=False,
    user=None,
    envelope_from="joe@example.org",
    recipients=["a@example.com"],
    mailsize=None,
    smtp_reply=None,
    errormsg=None,
    exitcode=EX_OK,
)


def line(**changes: object) -> str:
    return format_log_line(**{**BASE, **changes})  # type: ignore[arg-type]


# --- the log line -------------------------------------------------------------------------


def test_success_line() -> None:
    assert line(
        tls=True, auth=True, user="joe", recipients=["a@example.com", "b@example.net"],
        mailsize=1234, smtp_reply=["250 2.0.0 Ok: queued as 4F2A"],
    ) == (
        "host=mail.example.org tls=on auth=on user=joe from=joe@example.org "
        "recipients=a@example.com,b@example.net mailsize=1234 smtpstatus=250 "
        "smtpmsg='250 2.0.0 Ok: queued as 4F2A' exitcode=EX_OK"
    )


def test_minimal_success_line() -> None:
    assert line(mailsize=5) == (
        "host=mail.example.org tls=off auth=off from=joe@example.org "
        "recipients=a@example.com mailsize=5 exitcode=EX_OK"
    )


def test_success_without_mailsize_counts_zero() -> None:
    assert " mailsize=0 " in line()


def test_socket_instead_of_host() -> None:
    assert line(host=None, socket="/run/smtp.sock", mailsize=1).startswith(
        "socket=/run/smtp.sock tls=off auth=off from="
    )


def test_host_wins_over_socket() -> None:
    assert line(socket="/run/smtp.sock").startswith("host=mail.example.org ")


def test_user_only_with_auth() -> None:
    assert " user=" not in line(auth=False, user="joe")
    assert " user=" not in line(auth=True, user=None)
    assert " auth=on user=joe from=" in line(auth=True, user="joe")
    # an empty user name is still a user name (msmtp tests for NULL only)
    assert " auth=on user= from=" in line(auth=True, user="")


def test_connection_refused_line() -> None:
    assert line(
        host="127.0.0.1", recipients=["x@y.example"], mailsize=99,
        errormsg="cannot connect to 127.0.0.1, port 1: Connection refused",
        exitcode=EX_TEMPFAIL,
    ) == (
        "host=127.0.0.1 tls=off auth=off from=joe@example.org recipients=x@y.example "
        "errormsg='cannot connect to 127.0.0.1, port 1: Connection refused' exitcode=EX_TEMPFAIL"
    )


def test_rejected_recipient_line() -> None:
    assert line(
        smtp_reply=["550 5.1.1 <a@example.com>: Recipient address rejected"],
        errormsg="recipient address a@example.com not accepted by the server",
        exitcode=EX_DATAERR, mailsize=10,
    ) == (
        "host=mail.example.org tls=off auth=off from=joe@example.org recipients=a@example.com "
        "smtpstatus=550 smtpmsg='550 5.1.1 <a@example.com>: Recipient address rejected' "
        "errormsg='recipient address a@example.com not accepted by the server' "
        "exitcode=EX_DATAERR"
    )


def test_multiline_reply_joined_with_backslash_n() -> None:
    got = line(smtp_reply=["452-4.3.1 first", "452-second", "452 third"],
               errormsg="x", exitcode=EX_UNAVAILABLE)
    # two characters, backslash and n; no real newline
    assert " smtpstatus=452 smtpmsg='452-4.3.1 first\\n452-second\\n452 third' " in got
    assert "\n" not in got


def test_single_quotes_become_question_marks() -> None:
    got = line(smtp_reply=["554 don't 'do' that"], errormsg="it's 'bad'",
               exitcode=EX_DATAERR)
    assert "smtpmsg='554 don?t ?do? that'" in got
    assert "errormsg='it?s ?bad?'" in got


def test_control_characters_become_question_marks_in_messages() -> None:
    got = line(smtp_reply=["550 a\tb\x1bc\x7fd\re"], errormsg="x\ty\x00z\n",
               exitcode=EX_DATAERR)
    assert "smtpmsg='550 a?b?c?d?e'" in got
    assert "errormsg='x?y?z?'" in got


def test_non_ascii_is_kept() -> None:
    got = line(smtp_reply=["550 Empfänger ungültig"], errormsg="Zeichen \u00e9",
               exitcode=EX_DATAERR)
    assert "smtpmsg='550 Empfänger ungültig'" in got
    assert "errormsg='Zeichen \u00e9'" in got


def test_other_fields_are_not_rewritten() -> None:
    # msmtp writes host, user, from and recipients as they are
    got = line(auth=True, user="o'neil", envelope_from="o'neil@example.org",
               recipients=["it's@example.com"], mailsize=1)
    assert "user=o'neil from=o'neil@example.org recipients=it's@example.com " in got


def test_smtp_reply_known_on_success_and_failure() -> None:
    assert "smtpstatus=250 smtpmsg='250 ok'" in line(smtp_reply=["250 ok"], mailsize=3)
    got = line(smtp_reply=["554 no"], exitcode=EX_PROTOCOL, errormsg="greeting")
    assert got.endswith("smtpstatus=554 smtpmsg='554 no' errormsg='greeting' exitcode=EX_PROTOCOL")


def test_no_reply_fields_without_a_reply() -> None:
    assert "smtp" not in line(smtp_reply=None)
    assert "smtp" not in line(smtp_reply=[])


def test_status_is_atoi_of_the_first_line() -> None:
    assert "smtpstatus=451 " in line(smtp_reply=["451-x", "452 y"], exitcode=EX_TEMPFAIL)


def test_mailsize_only_on_success() -> None:
    assert "mailsize" not in line(mailsize=100, exitcode=EX_DATAERR, errormsg="e")
    assert " mailsize=100 " in line(mailsize=100)


def test_errormsg_only_on_failure_and_when_non_empty() -> None:
    assert "errormsg" not in line(errormsg="ignored on success")
    assert "errormsg" not in line(errormsg="", exitcode=EX_DATAERR)
    assert "errormsg" not in line(errormsg=None, exitcode=EX_DATAERR)
    assert "errormsg='e'" in line(errormsg="e", exitcode=EX_DATAERR)


def test_no_recipients_quirk() -> None:
    # msmtp overwrites the last ',' with a space; without recipients that is the '='
    assert " from=joe@example.org recipients mailsize=0 exitcode=EX_OK" in line(recipients=[])


@pytest.mark.parametrize(
    ("code", "name"),
    [(0, "EX_OK"), (64, "EX_USAGE"), (65, "EX_DATAERR"), (69, "EX_UNAVAILABLE"),
     (70, "EX_SOFTWARE"), (71, "EX_OSERR"), (74, "EX_IOERR"), (75, "EX_TEMPFAIL"),
     (76, "EX_PROTOCOL"), (77, "EX_NOPERM"), (78, "EX_CONFIG"), (1, "BUG:UNKNOWN")],
)
def test_exitcode_names(code: int, name: str) -> None:
    assert line(exitcode=code, errormsg="e").endswith(f" exitcode={name}")


@pytest.mark.parametrize(
    ("use_host", "tls", "auth", "user", "ok", "reply", "errormsg"),
    list(itertools.product([True, False], [True, False], [True, False], [None, "u"],
                           [True, False], [None, ["250 a", "250 b"]], [None, "", "err"])),
)
def test_every_field_combination(use_host: bool, tls: bool, auth: bool, user: str | None,
                                 ok: bool, reply: list[str] | None,
                                 errormsg: str | None) -> None:
    got = line(host="h" if use_host else None, socket=None if use_host else "/s", tls=tls,
               auth=auth, user=user, recipients=["r1", "r2"], mailsize=42,
               smtp_reply=reply, errormsg=errormsg,
               exitcode=EX_OK if ok else EX_UNAVAILABLE)
    expected = ["host=h" if use_host else "socket=/s", "tls=on" if tls else "tls=off",
                "auth=on" if auth else "auth=off"]
    if auth and user:
        expected.append("user=u")
    expected += ["from=joe@example.org", "recipients=r1,r2"]
    if ok:
        expected.append("mailsize=42")
    if reply:
        expected += ["smtpstatus=250", "smtpmsg='250 a\\n250 b'"]
    if not ok and errormsg:
        expected.append("errormsg='err'")
    expected.append("exitcode=EX_OK" if ok else "exitcode=EX_UNAVAILABLE")
    assert got == " ".join(expected)


# --- no passwords ---------------------------------------------------------------------------

SECRET = "S3cr3t!pw"


def test_no_password_parameter() -> None:
    params = inspect.signature(format_log_line).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert not any(word in name for name in params for word in ("pass", "secret", "token"))


_text = st.text(st.characters(codec="utf-8"), max_size=30).filter(lambda s: SECRET not in s)


@settings(max_examples=200, deadline=None)
@given(
    host=st.one_of(st.none(), _text), socket=_text, tls=st.booleans(), auth=st.booleans(),
    user=st.one_of(st.none(), _text), envelope_from=_text, recipients=st.lists(_text, max_size=3),
    mailsize=st.one_of(st.none(), st.integers(0, 10**9)),
    smtp_reply=st.one_of(st.none(), st.lists(_text, min_size=1, max_size=3)),
    errormsg=st.one_of(st.none(), _text), exitcode=st.sampled_from([0, 65, 69, 75, 76]),
)
def test_password_never_appears(**fields: object) -> None:
    # An account's password (or one typed at a prompt) has no field in the log line:
    # whatever the other values are, it cannot come out unless it was in one of them.
    account = {**fields, "password": SECRET, "passwordeval": f"echo {SECRET}"}
    accepted = {k: v for k, v in account.items() if k in inspect.signature(format_log_line)
                .parameters}
    with pytest.raises(TypeError):
        format_log_line(**account)  # type: ignore[arg-type]
    assert SECRET not in format_log_line(**accepted)  # type: ignore[arg-type]


# --- log files ------------------------------------------------------------------------------

NOW = time.mktime((2024, 3, 5, 7, 8, 9, 0, 0, -1))  # Mar 05 07:08:09, local time


def test_default_time_format(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), None, "host=h exitcode=EX_OK", now=NOW) is None
    assert path.read_bytes() == b"Mar 05 07:08:09 host=h exitcode=EX_OK\n"


def test_empty_time_format_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), "", "x", now=NOW) is None
    assert path.read_text() == "Mar 05 07:08:09 x\n"


def test_custom_time_format_and_struct_time(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), "%Y-%m-%dT%H:%M:%S", "x", now=time.localtime(NOW)) is None
    assert log_to_file(str(path), "[%d/%m]", "y", now=NOW) is None
    assert path.read_text() == "2024-03-05T07:08:09 x\n[05/03] y\n"


def test_literal_time_format(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), "LOG:", "x") is None
    assert path.read_text() == "LOG: x\n"


def test_time_format_none_writes_the_bare_line(tmp_path: Path) -> None:
    # msmtp >= 1.8.28 (1.8.23 would write the literal "none ")
    path = tmp_path / "log"
    assert log_to_file(str(path), "none", "host=h exitcode=EX_OK", now=NOW) is None
    assert path.read_bytes() == b"host=h exitcode=EX_OK\n"


def test_current_time_by_default(tmp_path: Path) -> None:
    path = tmp_path / "log"
    before = time.time()
    assert log_to_file(str(path), "%s", "x") is None
    stamp = int(path.read_text().split()[0])
    assert int(before) <= stamp <= time.time() + 1


@pytest.mark.parametrize("fmt", ["x" * 128, "%Y" * 40])
def test_time_stamp_too_long_for_msmtps_buffer(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), fmt, "x", now=NOW) == "invalid logfile_time_format"
    assert not path.exists()


def test_time_stamp_just_fits(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), "x" * 127, "l", now=NOW) is None
    assert path.read_text() == "x" * 127 + " l\n"


def test_appends_and_creates(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"old line\n")
    assert log_to_file(str(path), "none", "one") is None
    assert log_to_file(str(path), "none", "two") is None
    assert path.read_bytes() == b"old line\none\ntwo\n"
    fresh = tmp_path / "fresh"
    old_umask = os.umask(0o022)
    try:
        assert log_to_file(str(fresh), "none", "x") is None
    finally:
        os.umask(old_umask)
    assert fresh.stat().st_mode & 0o777 == 0o644  # fopen(..., "a"): 0666 & ~umask


def test_non_ascii_line_is_utf8(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert log_to_file(str(path), "none", "from=jörg@example.org") is None
    assert path.read_bytes() == "from=jörg@example.org\n".encode()


def test_dash_is_stdout(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert log_to_file("-", None, "host=h exitcode=EX_OK", now=NOW) is None
    assert log_to_file("-", "none", "second") is None
    out, err = capfd.readouterr()
    assert out == "Mar 05 07:08:09 host=h exitcode=EX_OK\nsecond\n"
    assert err == ""
    assert not (tmp_path / "-").exists()


def test_dash_keeps_order_with_other_stdout_output(capfd: pytest.CaptureFixture[str]) -> None:
    print("before", end="")
    print("!")
    assert log_to_file("-", "none", "logged") is None
    print("after")
    assert capfd.readouterr().out == "before!\nlogged\nafter\n"


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_waits_for_a_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("")
    proc = _hold_lock(path, 0.5)
    try:
        start = time.monotonic()
        assert log_to_file(str(path), "none", "after the lock") is None
        assert time.monotonic() - start >= 0.3
    finally:
        proc.wait()
    assert path.read_text() == "after the lock\n"


def test_gives_up_when_the_lock_is_held_too_long(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("")
    proc = _hold_lock(path, 2)
    try:
        start = time.monotonic()
        reason = log_to_file(str(path), "none", "x", lock_timeout=0.3)
        assert 0.25 <= time.monotonic() - start < 1.5
    finally:
        proc.kill()
        proc.wait()
    assert reason in ("cannot lock (tried for 0.3 seconds): Resource temporarily unavailable",
                      "cannot lock (tried for 0.3 seconds): Permission denied")
    assert path.read_text() == ""


def test_default_lock_timeout_message() -> None:
    assert log.LOCK_TIMEOUT == 10
    assert f"{log.LOCK_TIMEOUT:g}" == "10"  # "cannot lock (tried for 10 seconds): ..."


def test_unwritable_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "no" / "such" / "log")
    assert log_to_file(missing, None, "x") == "cannot open: No such file or directory"
    assert log_to_file(str(tmp_path), None, "x") == "cannot open: Is a directory"


def test_failure_messages_texts() -> None:
    assert log_failure_messages("/no/log", "cannot open: No such file or directory",
                                "host=h exitcode=EX_OK") == [
        "msmtp: cannot log to /no/log: cannot open: No such file or directory",
        "msmtp: log info was: host=h exitcode=EX_OK",
    ]
    assert log_failure_messages("f", "output error", "l", prgname="sendmail")[0] == (
        "sendmail: cannot log to f: output error")


@pytest.mark.skipif(not os.access("/dev/full", os.W_OK), reason="no writable /dev/full")
def test_full_device() -> None:
    # short lines only reach the device in fclose(): msmtp reports strerror(errno)
    assert log_to_file("/dev/full", "none", "x") == "No space left on device"
    # lines longer than the stdio buffer fail in fputs(): "output error"
    assert log_to_file("/dev/full", "none", "x" * 70000) == "output error"


# --- syslog ---------------------------------------------------------------------------------


def test_facility_mapping_matches_the_syslog_module() -> None:
    assert syslog_facility("LOG_USER") == syslog.LOG_USER
    assert syslog_facility("LOG_MAIL") == syslog.LOG_MAIL
    for n in range(8):
        assert syslog_facility(f"LOG_LOCAL{n}") == getattr(syslog, f"LOG_LOCAL{n}")
    assert sorted(log.SYSLOG_FACILITIES) == sorted(
        ["LOG_USER", "LOG_MAIL"] + [f"LOG_LOCAL{n}" for n in range(8)])


@pytest.mark.parametrize("name", ["LOG_DAEMON", "log_mail", "on", "", "LOG_LOCAL8"])
def test_invalid_facility(name: str) -> None:
    with pytest.raises(ValueError):
        syslog_facility(name)


@pytest.mark.parametrize(
    ("facility", "failed", "priority"),
    [("LOG_USER", False, syslog.LOG_INFO), ("LOG_MAIL", True, syslog.LOG_ERR),
     ("LOG_LOCAL3", False, syslog.LOG_INFO), ("LOG_LOCAL7", True, syslog.LOG_ERR)],
)
def test_syslog_calls(monkeypatch: pytest.MonkeyPatch, facility: str, failed: bool,
                      priority: int) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *a, **k: calls.append(("open", a, k)))
    monkeypatch.setattr(syslog, "syslog", lambda *a: calls.append(("log", a)))
    log_to_syslog(facility, "host=h 100% exitcode=EX_OK", failed)
    assert calls == [
        ("open", ("msmtp", 0, getattr(syslog, facility)), {}),
        ("log", (priority, "host=h 100% exitcode=EX_OK")),
    ]


# --- cheap imports --------------------------------------------------------------------------


def test_import_is_cheap() -> None:
    code = ("import sys, msmtp_twisted.log; "
            "print(sorted(m for m in ('twisted', 'syslog', 'fcntl') if m in sys.modules))")
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": root}, check=True).stdout
    assert "twisted" not in out and "syslog" not in out
