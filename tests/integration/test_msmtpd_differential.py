"""The same SMTP sessions against Debian's msmtpd 1.8.23 and ours.

Sessions run in lockstep (msmtpd 1.8.23 loses replies to pipelined commands).
Up to and including msmtpd's first error reply, after which it hangs up, both
must give the same reply codes (and the same texts, except EHLO's capability
list); every mail must reach the command with the same argv and the same bytes
(the date in the Received: header aside).  The command line is compared too.

Debian's msmtpd comes from the msmtp-mta package, which conflicts with postfix,
so it is unpacked instead of installed::

    cd /tmp && apt-get download msmtp-mta && dpkg-deb -x msmtp-mta_*.deb /opt/msmtpd-root
"""

from __future__ import annotations

import base64
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.msmtpd import OURS, MsmtpdProcess, Recorder, converse, run_msmtpd


class Pair:
    """Debian's msmtpd and ours, each with a recorder of its own."""

    def __init__(self, tmp: Path, args: list[str]) -> None:
        self.recorders: dict[str, Recorder] = {}
        self.daemons: dict[str, MsmtpdProcess] = {}
        for name in ("debian", "ours"):
            d = tmp / name
            d.mkdir()
            rec = Recorder(d)
            self.recorders[name] = rec
            self.daemons[name] = MsmtpdProcess(name, [f"--command={rec.command()}", *args], d)

    def stop(self) -> None:
        for d in self.daemons.values():
            d.stop()


@pytest.fixture(scope="module")
def pair(debian_msmtpd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    p = Pair(tmp_path_factory.mktemp("plain"), [])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def auth_pair(debian_msmtpd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    p = Pair(tmp_path_factory.mktemp("auth"), ["--auth=bob,echo s3cret"])
    yield p
    p.stop()


def lines(*cmds: str) -> list[bytes]:
    return [c.encode("latin-1") + b"\r\n" for c in cmds]


MAIL = ["EHLO client.example", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>",
        "RCPT TO:<c.d-e+f/g=h_i@example.org>", "DATA"]
BODY = (b"From: a@example.org\r\nSubject: x\r\n\r\n.one dot\r\n..two\r\n...\r\n"
        b"8-bit \xc3\xa4\xff\r\nlone\rCR\r\ncrcrlf\r\r\n\r\n" + b"y" * 5000 + b"\r\nend\r\n.\r\n")

SESSIONS: dict[str, list[bytes]] = {
    "mail": [*lines(*MAIL), BODY, *lines("QUIT")],
    "two mails, helo, null sender": [*lines("HELO h", "MAIL FROM:<>", "RCPT TO:<x@y>", "DATA"),
                                     b".\r\n", *lines("MAIL FROM:<p@q>", "RCPT TO:<r@s>",
                                                      "DATA"), b"second\r\n.\r\n",
                                     *lines("QUIT")],
    "bare LF": [b"EHLO lf\n", b"MAIL FROM:<a@b>\n", b"RCPT TO:<c@d>\n", b"DATA\n",
                b"line one\nline two\r\n..\n.\n", b"QUIT\n"],
    "lower case, spaces": [*lines("ehlo x", "mail from: <a@b>", "rcpt to:  <c@d>", "data"),
                           b"x\r\n.\r\n", *lines("quit")],
    "empty helo name": [*lines("EHLO ", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"),
                        b"x\r\n.\r\n"],
    "bracketed helo": [*lines("EHLO [127.0.0.1]", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"),
                       b"x\r\n.\r\n"],
    "invalid helo": [*lines("HELO bad_name here", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"),
                     b"x\r\n.\r\n"],
    "ehlo without name": lines("EHLO"),
    "mail first": lines("MAIL FROM:<a@b>"),
    "rcpt before mail": lines("EHLO x", "RCPT TO:<a@b>"),
    "data before rcpt": lines("EHLO x", "MAIL FROM:<a@b>", "DATA"),
    "mail twice": lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "MAIL FROM:<a@b>"),
    "unknown command": lines("EHLO x", "BLAH"),
    "empty recipient": lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<>"),
    "no brackets": lines("EHLO x", "MAIL FROM:a@b"),
    "text after address": lines("EHLO x", "MAIL FROM:<a@b>x"),
    "tempfail": [*lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<exit-75@x>", "DATA"),
                 b"x\r\n.\r\n"],
    "permfail": [*lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<exit-1@x>", "DATA"),
                 b"x\r\n.\r\n"],
    "killed": [*lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<kill@x>", "DATA"), b"x\r\n.\r\n"],
    "exit 69": [*lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<exit-69@x>", "DATA"),
                b"x\r\n.\r\n"],
}
# commands msmtpd 1.8.23 refuses, each answered the same way by ours (2026-12-04)
SESSIONS.update({
    "helo without name": lines("HELO"),
    "expn": lines("EHLO x", "EXPN a"),
    "etrn": lines("EHLO x", "ETRN a"),
    "starttls": lines("EHLO x", "STARTTLS"),
    "auth without --auth": lines("EHLO x", "AUTH PLAIN AGJvYgBz"),
    "bdat": lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "BDAT 3 LAST"),
    "blanks in brackets": lines("EHLO x", "MAIL FROM:< a@b >"),
    "blank, no brackets": lines("EHLO x", "MAIL FROM: a@b"),
    "source route": lines("EHLO x", "MAIL FROM:<@r:a@b>"),
    "recipient source route": lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<@r:c@d>"),
    "no closing bracket": lines("EHLO x", "MAIL FROM:<a@b"),
    "two blanks after MAIL": lines("EHLO x", "MAIL  FROM:<a@b>"),
    "blank before colon": lines("EHLO x", "MAIL FROM :<a@b>"),
    "8-bit helo": lines("EHLO \xe4x"),
    "tab after EHLO": lines("EHLO\tx"),
    "MAIL FROM: and nothing": lines("EHLO x", "MAIL FROM:"),
    "RCPT TO: and nothing": lines("EHLO x", "MAIL FROM:<a@b>", "RCPT TO:"),
    "quoted local part": lines("EHLO x", 'MAIL FROM:<"a b"@c>'),
})
for i, bad in enumerate([";rm -rf /", "$(id)", "--option", "-a@b", "a b", "a\"b", "\xe4@b",
                         "a@b>", "`id`", "a|b", "a&b", "a'b", "a\\b", "a%b"]):
    SESSIONS[f"invalid address {i}"] = lines("EHLO x", f"MAIL FROM:<{bad}>")
    SESSIONS[f"invalid recipient {i}"] = lines("EHLO x", "MAIL FROM:<a@b>", f"RCPT TO:<{bad}>")

# Deliberate differences (docs/msmtpd.md): (steps, Debian's codes, our codes), whole sessions.
DIFFERENT: dict[str, tuple[list[bytes], list[int], list[int]]] = {
    "NOOP before EHLO": (lines("NOOP", "EHLO x"), [220, 500, 0], [220, 250, 250]),
    "session goes on after an error": (lines("EHLO x", "BLAH", "NOOP"), [220, 250, 500, 0],
                                       [220, 250, 500, 250]),
    "RSET": (lines("EHLO x", "MAIL FROM:<a@b>", "RSET", "RCPT TO:<c@d>"),
             [220, 250, 250, 500, 0], [220, 250, 250, 250, 500]),
    "MAIL parameters": (lines("EHLO x", "MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME"),
                        [220, 250, 501], [220, 250, 250]),
    "second EHLO": (lines("EHLO x", "EHLO y"), [220, 250, 500], [220, 250, 250]),
}

GOOD = base64.b64encode(b"\0bob\0s3cret").decode()
AUTH_SESSIONS: dict[str, list[bytes]] = {
    "auth prompt": [*lines("EHLO x", "AUTH PLAIN", GOOD, "MAIL FROM:<a@b>", "RCPT TO:<c@d>",
                           "DATA"), b"x\r\n.\r\n", *lines("QUIT")],
    "auth initial response": [*lines("EHLO x", f"AUTH PLAIN {GOOD}", "MAIL FROM:<a@b>",
                                     "RCPT TO:<c@d>", "DATA"), b"x\r\n.\r\n", *lines("QUIT")],
    "auth after helo": lines("HELO x", f"AUTH PLAIN {GOOD}", "QUIT"),
    "mail before auth": lines("EHLO x", "MAIL FROM:<a@b>"),
    "quit before auth": lines("EHLO x", "QUIT"),
    # last: a failure makes both delay AUTH answers for a minute
    "wrong password": lines("EHLO x", "AUTH PLAIN " +
                            base64.b64encode(b"\0bob\0wrong").decode()),
}


def first_error_cut(replies: list[bytes]) -> list[bytes]:
    out = []
    for r in replies:
        out.append(r)
        if r[:1] in (b"4", b"5"):
            break
    return out


def compare(pair: Pair, name: str, steps: list[bytes]) -> None:
    theirs = first_error_cut(converse(pair.daemons["debian"].port, steps))
    ours = converse(pair.daemons["ours"].port, steps)[: len(theirs)]
    assert [r[:3] for r in ours] == [r[:3] for r in theirs], name
    for step, a, b in zip([b"", *steps], theirs, ours, strict=False):
        if step[:4].upper() == b"EHLO" and a.startswith(b"250"):
            continue  # ours lists PIPELINING, SIZE, 8BITMIME too
        assert b == a, (name, step)


def normalised(rec: Recorder, n: int) -> list[tuple[list[str], bytes]]:
    mails = rec.wait(n)
    assert len(mails) == n
    out = []
    for m in sorted(mails, key=lambda m: m["argv"]):
        head = m["data"].split(b"\r\n", 3)
        assert re.fullmatch(rb"\t\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", head[2])
        out.append((m["argv"], b"\r\n".join([head[0], head[1], b"\tDATE", head[3]])))
    return out


def test_sessions(pair: Pair) -> None:
    for name, steps in SESSIONS.items():
        compare(pair, name, steps)
    time.sleep(0.3)
    expected = len(pair.recorders["debian"].mails())
    assert expected == 11  # "killed" records nothing
    assert normalised(pair.recorders["ours"], expected) == normalised(
        pair.recorders["debian"], expected)


def test_deliberate_differences(pair: Pair) -> None:
    for name, (steps, theirs, ours) in DIFFERENT.items():
        got_d = [int(r[:3] or b"0") for r in converse(pair.daemons["debian"].port, steps)]
        got_o = [int(r[:3] or b"0") for r in converse(pair.daemons["ours"].port, steps)]
        assert (got_d, got_o) == (theirs, ours), name


def test_auth_sessions(auth_pair: Pair) -> None:
    for name, steps in AUTH_SESSIONS.items():
        compare(auth_pair, name, steps)
    time.sleep(0.3)
    assert normalised(auth_pair.recorders["ours"], 2) == normalised(
        auth_pair.recorders["debian"], 2)


def run(program: list[str], *args: str) -> tuple[int, str, str]:
    res = run_msmtpd(program, *args)
    return res.returncode, res.stdout.decode(), res.stderr.decode()


@pytest.mark.parametrize("args", [
    ["--foo"], ["--port"], ["--port="], ["x"], ["--help=x"], ["--interface=foo", "--port=1"],
    ["--interface=localhost", "--port=1"], ["--auth=bob,true"], ["--auth=bob,exit 1"],
    ["--command="], ["--log="], ["--inetd=1"],
])
def test_command_line_errors(debian_msmtpd: str, args: list[str]) -> None:
    code_d, out_d, err_d = run([debian_msmtpd], *args)
    code_o, out_o, err_o = run([*OURS], *args)
    assert (code_o, out_o) == (code_d, out_d) == (3, "")
    prog_o = OURS[-1]  # our argv[0] under "python -m" is the module's path
    assert err_o.split(": ", 1)[1] == err_d.split(": ", 1)[1]
    assert prog_o


def test_help_and_version_layout(debian_msmtpd: str) -> None:
    _, help_d, _ = run([debian_msmtpd], "--help")
    _, help_o, _ = run([*OURS], "--help")
    d_lines, o_lines = help_d.splitlines(), help_o.splitlines()
    assert len(o_lines) > len(d_lines)
    for a, b in zip(d_lines, o_lines, strict=False):
        if a.startswith("  --command=cmd"):
            assert b.startswith("  --command=cmd   pipe mails to cmd instead of ")
            assert b.endswith(" -f %F --")
        else:
            assert a == b
    _, ver_d, _ = run([debian_msmtpd], "--version")
    _, ver_o, _ = run([*OURS], "--version")
    assert len(ver_o.splitlines()) == len(ver_d.splitlines())
    assert ver_o.startswith("msmtpd version 1.8.23 ")
    assert ver_o.splitlines()[2:] == ver_d.splitlines()[2:]


def test_port_in_use_message(debian_msmtpd: str, pair: Pair) -> None:
    port = str(pair.daemons["ours"].port)
    code_d, _, err_d = run([debian_msmtpd], f"--port={port}")
    code_o, _, err_o = run([*OURS], f"--port={port}")
    assert code_o == code_d == 3
    assert err_o.split(": ", 1)[1] == err_d.split(": ", 1)[1]


def test_inetd_same_bytes(debian_msmtpd: str, tmp_path: Path) -> None:
    results: dict[str, Any] = {}
    wire = b"".join([*lines("HELO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"),
                     b"x\r\n..y\r\n.\r\n", *lines("QUIT")])
    for name, program in (("debian", [debian_msmtpd]), ("ours", OURS)):
        d = tmp_path / name
        d.mkdir()
        rec = Recorder(d)
        res = run_msmtpd(program, "--inetd", f"--command={rec.command()}", input=wire)
        results[name] = (res.returncode, res.stdout, normalised(rec, 1))
    assert results["ours"] == results["debian"]
    assert sys.executable
