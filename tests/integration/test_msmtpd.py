"""Our msmtpd, run as a process on 127.0.0.1, with real clients.

The pipe command is the recorder of :mod:`tests.servers.msmtpd` (a small script that
stores its argv and standard input as JSON, so every test can check exactly what
reached the command).  Recipients steer it: ``exit-N@x`` exits with N, ``sleep-N@x``
sleeps, ``kill@x`` kills itself, ``stdout@x`` writes to its standard output,
``hash@x`` records only the size and SHA-256 of a (big) mail.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ours_command, ours_env, require
from tests.servers.msmtp import REAL_MSMTP, run_msmtp, write_config
from tests.servers.msmtpd import (
    MsmtpdProcess,
    Recorder,
    body_of,
    converse,
    read_all,
    read_reply,
    run_msmtpd,
)

MAIL_8BIT = (b"From: a@example.org\r\nSubject: =?utf-8?q?t=C3=A4st?=\r\n\r\n"
             b".leading dot\r\n..two dots\r\n.\xc3\xa4 8-bit \xff\r\nlone\rCR\r\n\r\nend\r\n")
MAIL_8BIT_PIPED = (b"From: a@example.org\nSubject: =?utf-8?q?t=C3=A4st?=\n\n"
                   b".leading dot\n..two dots\n.\xc3\xa4 8-bit \xff\nlone\rCR\n\nend\n")


# --- real clients ----------------------------------------------------------------------


def test_smtplib_8bit_and_dots(ours: MsmtpdProcess, recorder: Recorder) -> None:
    with smtplib.SMTP("127.0.0.1", ours.port, timeout=10) as smtp:
        code, caps = smtp.ehlo("client.example")
        assert code == 250 and caps.split(b"\n") == [
            b"localhost", b"PIPELINING", b"SIZE 268435456", b"8BITMIME"]
        smtp.sendmail("a@example.org", ["b@example.org", "c+tag@example.org"], MAIL_8BIT,
                      mail_options=["BODY=8BITMIME"])
        smtp.sendmail("", ["d@example.org"], b"Subject: bounce\r\n\r\nx\r\n")
    mails = recorder.wait(2)
    assert [m["argv"] for m in mails] == [
        ["-f", "a@example.org", "--", "b@example.org", "c+tag@example.org"],
        ["-f", "MAILER-DAEMON", "--", "d@example.org"]]
    assert body_of(mails[0]) == MAIL_8BIT_PIPED
    head = mails[0]["data"].split(b"\r\n", 3)
    assert head[0] == b"Received: from client.example (localhost [127.0.0.1])"
    assert head[1] == b"\tby localhost [127.0.0.1] (msmtpd) with ESMTP;"


def test_raw_pipelining_two_mails_in_one_packet(ours: MsmtpdProcess, recorder: Recorder) -> None:
    wire = (b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<bad;>\r\nDATA\r\none\r\n"
            b".\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n")
    with socket.create_connection(("127.0.0.1", ours.port)) as sock:
        sock.sendall(wire)
        got = b""
        sock.settimeout(10)
        while got.count(b"\r\n") < 13:
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
        sock.sendall(b"two\r\n.\r\nQUIT\r\n")
        got += read_all(sock)
    codes = [line[:3] for line in got.split(b"\r\n") if line[3:4] == b" "]
    assert codes == [b"220", b"250", b"250", b"250", b"501", b"354", b"250", b"250", b"250",
                     b"354", b"250", b"221"]
    mails = recorder.wait(2)
    assert [body_of(m) for m in mails] == [b"one\n", b"two\n"]


def test_half_closed_client_gets_every_reply(ours: MsmtpdProcess, recorder: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", ours.port)) as sock:
        sock.sendall(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
        sock.shutdown(socket.SHUT_WR)
        got = read_all(sock)
    assert got.endswith(b"250 Ok, mail was piped\r\n221 Bye\r\n")
    assert len(recorder.wait(1)) == 1


@pytest.mark.parametrize("which", ["debian", "ours"])
def test_msmtp_clients_through_our_msmtpd(which: str, ours: MsmtpdProcess, recorder: Recorder,
                                          tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if which == "debian":
        request.getfixturevalue("real_msmtp")
        command = [REAL_MSMTP]
        env = None
    else:
        command = ours_command()
        env = ours_env(dict(os.environ))
    cfg = write_config(tmp_path, ("127.0.0.1", ours.port), from_="sender@example.org",
                       timeout=10)
    mail = MAIL_8BIT.replace(b"\r\n", b"\n")
    res = run_msmtp(command, cfg, ["r1@example.org", "r2@example.org"], input=mail, env=env)
    assert res.returncode == 0, res.stderr
    mails = recorder.wait(1)
    assert mails[0]["argv"] == ["-f", "sender@example.org", "--", "r1@example.org",
                                "r2@example.org"]
    body = body_of(mails[0])
    assert b"\nSubject: =?utf-8?q?t=C3=A4st?=\n" in body  # msmtp adds Date, Message-ID
    assert body.endswith(MAIL_8BIT_PIPED.split(b"\n\n", 1)[1])


def test_swaks_pipelining(ours: MsmtpdProcess, recorder: Recorder) -> None:
    swaks = shutil.which("swaks")
    require(swaks is not None, "swaks; apt-get install swaks")
    assert swaks is not None
    res = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(ours.port),
                          "--from", "s@example.org", "--to", "a@example.org,b@example.org",
                          "--pipeline", "--body", ".dot line\n8bit \u00e4", "--silent", "2"],
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    mails = recorder.wait(1)
    assert mails[0]["argv"][-2:] == ["a@example.org", "b@example.org"]
    assert b"\n.dot line\n" in body_of(mails[0])


# --- hostile clients -------------------------------------------------------------------------

HOSTILE = [";rm -rf /", "$(id)", "--option", "`id`", "-x@y", "a@b;id", "a@b|id", "a b@c"]


def test_hostile_recipients_are_refused_and_nothing_runs(ours: MsmtpdProcess,
                                                         recorder: Recorder) -> None:
    steps = [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n"]
    steps += [f"RCPT TO:<{h}>\r\n".encode() for h in HOSTILE]
    steps += [b"DATA\r\n", b"MAIL FROM:<--option>\r\n", b"QUIT\r\n"]
    got = converse(ours.port, steps)
    assert got[3 : 3 + len(HOSTILE)] == [b"501 Invalid address\r\n"] * len(HOSTILE)
    assert got[-3:] == [b"500 Expected RCPT TO:<addr>\r\n", b"500 Expected RCPT TO:<addr>\r\n",
                        b"221 Bye\r\n"]
    time.sleep(0.2)
    assert recorder.mails() == []


def test_hostile_argv_items_reach_the_command_literally(tmp_path: Path,
                                                        recorder: Recorder) -> None:
    """Below the address filter: whatever the recipients, no shell ever sees them."""
    script = textwrap.dedent(f"""
        import sys
        from twisted.internet import reactor
        from msmtp_twisted.daemon.command import PipeCommand
        from msmtp_twisted.daemon.delivery import Spool, start_delivery
        cmd = PipeCommand.parse({recorder.command()!r})
        spool = Spool()
        spool.write(b"mail\\n")
        argv = cmd.argv("$(id)", {HOSTILE!r} + ["%F", "'", '"', "\\\\", "*", "~"])
        d = start_delivery(reactor, argv, spool, timeout=10, devnull=1).result
        d.addCallback(lambda r: print(r.code, r.text))
        d.addBoth(lambda _: reactor.stop())
        reactor.run()
    """)
    marker = tmp_path / "pwned"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=ours_env(dict(os.environ)), cwd=tmp_path, timeout=30)
    assert res.stdout.strip() == "250 Ok, mail was piped", res.stderr
    mails = recorder.wait(1)
    assert mails[0]["argv"] == ["-f", "$(id)", "--", *HOSTILE, "%F", "'", '"', "\\", "*", "~"]
    assert not marker.exists()


def test_ten_megabyte_line(ours: MsmtpdProcess) -> None:
    with socket.create_connection(("127.0.0.1", ours.port)) as sock:
        read_reply(sock)
        sock.sendall(b"EHLO x\r\n")
        read_reply(sock)
        chunk = b"A" * (1 << 20)
        for _ in range(10):
            sock.sendall(chunk)
        sock.sendall(b"\r\nNOOP\r\nQUIT\r\n")
        got = read_all(sock)
    assert got == b"500 Line too long\r\n250 Ok\r\n221 Bye\r\n"
    assert ours.peak_rss_kib() < 80 * 1024


def test_nul_bytes_and_garbage(ours: MsmtpdProcess) -> None:
    got = converse(ours.port, [b"EHLO x\r\n", b"\x00\x00\xff\r\n", b"MAIL FROM:<a\x00@b>\r\n",
                               b"MAIL FROM:<a@b>\x00\r\n", b"NOOP\r\n"])
    assert [g[:3] for g in got] == [b"220", b"250", b"500", b"501", b"501", b"250"]


def test_thousand_idle_connections(msmtpd: Any, recorder: Recorder) -> None:
    d = msmtpd([f"--command={recorder.command()}", "--idle-timeout=8"])
    socks = []
    start = time.monotonic()
    try:
        for _ in range(1000):
            socks.append(socket.create_connection(("127.0.0.1", d.port)))
        greetings = [read_reply(s, timeout=10)[:4] for s in socks]
        assert greetings.count(b"220 ") == 16
        assert greetings.count(b"421 ") == 984
        assert time.monotonic() - start < 7.5  # else the idle timeout spoiled the count
        time.sleep(max(0.0, start + 8.5 - time.monotonic()))
        idle = [s for s, g in zip(socks, greetings, strict=True) if g == b"220 "]
        assert all(read_all(s, 5) == b"421 Timeout, closing connection\r\n" for s in idle)
    finally:
        for s in socks:
            s.close()
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as smtp:
        smtp.sendmail("a@b", ["c@d"], b"x\r\n")


def test_auth_brute_force_gets_slower(msmtpd: Any, recorder: Recorder) -> None:
    d = msmtpd([f"--command={recorder.command()}", "--auth=bob,echo s3cret"])

    def attempt(password: str) -> tuple[bytes, float]:
        token = base64.b64encode(f"\0bob\0{password}".encode()) + b"\r\n"
        start = time.monotonic()
        got = converse(d.port, [b"EHLO x\r\n", b"AUTH PLAIN " + token])
        return got[-1], time.monotonic() - start

    reply, took = attempt("guess1")
    assert reply == b"535 Authentication failed\r\n" and took < 0.9
    reply, took = attempt("guess2")
    assert reply == b"535 Authentication failed\r\n" and took >= 1.0
    reply, took = attempt("s3cret")
    assert reply == b"235 Authentication successful\r\n" and took >= 1.0
    got = converse(d.port, [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n"])
    assert got[-1] == b"530 Authentication required\r\n"
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as smtp:
        smtp.login("bob", "s3cret")  # LOGIN or PLAIN, smtplib's choice
        smtp.sendmail("a@b", ["c@d"], b"x\r\n")
    assert len(recorder.wait(1)) == 1


def test_client_vanishing_mid_data_delivers_nothing(ours: MsmtpdProcess,
                                                    recorder: Recorder) -> None:
    for how in ("close", "reset"):
        sock = socket.create_connection(("127.0.0.1", ours.port))
        sock.sendall(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        time.sleep(0.1)
        sock.sendall(b"Subject: half\r\n\r\n" + b"line\r\n" * 50000)
        if how == "reset":
            linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # on, 0 s: close sends RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.close()
    time.sleep(0.5)
    assert recorder.mails() == []
    assert ours.children() == []
    with smtplib.SMTP("127.0.0.1", ours.port, timeout=10) as smtp:
        smtp.sendmail("a@b", ["c@d"], b"whole\r\n")
    assert body_of(recorder.wait(1)[0]) == b"whole\n"


@pytest.mark.parametrize(("rcpt", "reply"), [
    ("exit-0@x", b"250 Ok, mail was piped\r\n"),
    ("exit-75@x", b"451 Pipe command reported error 75\r\n"),
    ("exit-68@x", b"451 Pipe command reported error 68\r\n"),
    ("exit-69@x", b"451 Pipe command reported error 69\r\n"),
    ("exit-71@x", b"451 Pipe command reported error 71\r\n"),
    ("exit-1@x", b"554 Pipe command reported error 1\r\n"),
    ("exit-78@x", b"554 Pipe command reported error 78\r\n"),
    ("kill@x", b"554 Pipe command reported error 137\r\n"),
    ("stdout@x", b"250 Ok, mail was piped\r\n"),
    ("stderr@x", b"250 Ok, mail was piped\r\n"),
])
def test_exit_status_replies(ours: MsmtpdProcess, rcpt: str, reply: bytes) -> None:
    got = converse(ours.port, [b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n",
                               f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n", b"x\r\n.\r\n",
                               b"NOOP\r\n"])
    assert got[-2:] == [reply, b"250 Ok\r\n"]  # and the session goes on


def test_command_timeout_and_missing_command(msmtpd: Any, recorder: Recorder) -> None:
    d = msmtpd([f"--command={recorder.command()}", "--command-timeout=1"])
    start = time.monotonic()
    got = converse(d.port, [b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<sleep-30@x>\r\n",
                            b"DATA\r\n", b"x\r\n.\r\n"])
    assert got[-1] == b"451 Pipe command timed out\r\n"
    assert time.monotonic() - start < 10
    time.sleep(0.2)
    assert d.children() == []
    d = msmtpd(["--command=/nonexistent/msmtp -f %F --"])
    got = converse(d.port, [b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n",
                            b"DATA\r\n", b"x\r\n.\r\n"])
    assert got[-1] == b"554 Pipe command reported error 127\r\n"


def test_log_file(msmtpd: Any, recorder: Recorder, tmp_path: Path) -> None:
    log = tmp_path / "msmtpd.log"
    d = msmtpd([f"--command={recorder.command()}", f"--log={log}"])
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as smtp:
        smtp.sendmail("a@b", ["c@d"], b"x\r\n")
    time.sleep(0.3)
    lines = log.read_text().splitlines()
    messages = [line.split(": ", 1)[1] for line in lines]
    assert lines[0].split(" ", 3)[2] == f"msmtpd[{d.pid}]"
    assert messages[0] == "connection from 127.0.0.1, active sessions 1 (max 16), auth_delay=no"
    assert "starting SMTP session" in messages
    assert f"pipe command is {sys.executable} {recorder.script} {recorder.dir} -f a@b -- c@d" \
        in messages
    assert "mail was piped successfully" in messages
    assert "mail from=a@b recipients=c@d size=2 reply=250 Ok, mail was piped" in messages
    assert messages[-2:] == ["client ended session", "connection closed"]


def test_hundred_megabyte_mail_in_bounded_memory(ours: MsmtpdProcess, recorder: Recorder) -> None:
    line = b"0123456789" * 7 + b"\r\n"  # 72 bytes
    block = line * 14564  # ~1 MiB
    n = 100
    expected = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", ours.port)) as sock:
        read_reply(sock)
        sock.sendall(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<hash@x>\r\nDATA\r\n")
        for _ in range(4):
            read_reply(sock)
        for _ in range(n):
            sock.sendall(block)
        sock.sendall(b".\r\n")
        assert read_reply(sock, timeout=60) == b"250 Ok, mail was piped\r\n"
    piped_block = block.replace(b"\r\n", b"\n")
    for _ in range(n):
        expected.update(piped_block)
    mail = recorder.wait(1)[0]
    assert mail["size"] - len(piped_block) * n < 200  # + the Received: header
    assert ours.peak_rss_kib() < 80 * 1024, ours.peak_rss_kib()
    assert len(block) * n >= 100_000_000
    print(f"peak RSS of msmtpd after a {len(block) * n} byte mail: {ours.peak_rss_kib()} KiB")


def test_inetd_mode(recorder: Recorder, tmp_path: Path) -> None:
    def run(wire: bytes) -> subprocess.CompletedProcess[bytes]:
        return run_msmtpd("ours", "--inetd", f"--command={recorder.command()}", input=wire,
                          cwd=tmp_path)

    mail = b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<stdout@x>\r\nDATA\r\nhi\r\n.\r\n"
    res = run(mail + b"QUIT\r\n")
    assert res.stdout == (b"220 localhost ESMTP msmtpd\r\n250-localhost\r\n250-PIPELINING\r\n"
                          b"250-SIZE 268435456\r\n250 8BITMIME\r\n250 Ok\r\n250 Ok\r\n"
                          b"354 Send data\r\n250 Ok, mail was piped\r\n221 Bye\r\n")
    assert res.returncode == 0
    assert run(mail).returncode == 0  # EOF after a mail counts as the end, as in msmtpd
    assert run(b"EHLO x\r\nFOO\r\nQUIT\r\n").returncode == 1
    assert run(b"EHLO x\r\n").returncode == 1
    mails = recorder.wait(2)
    assert mails[0]["data"].startswith(
        b"Received: from x ([])\r\n\tby [] (msmtpd) with ESMTP;\r\n\t")


def test_port_in_use(msmtpd: Any, recorder: Recorder) -> None:
    d = msmtpd([f"--command={recorder.command()}"])
    res = run_msmtpd("ours", f"--port={d.port}")
    assert res.returncode == 3
    assert res.stderr.decode().endswith(
        f": cannot bind to 127.0.0.1:{d.port}: Address already in use\n")


@pytest.mark.parametrize("kind", ["tcp", "ssl", "unix"])
def test_twistd_plugin(kind: str, msmtpd: Any, recorder: Recorder, tmp_path: Path) -> None:
    """``twistd -n msmtpd --port=ENDPOINT``: one mail, then SIGTERM."""
    import ssl

    from tests.servers.tlspki import PKI

    sock_path = tmp_path / "msmtpd.sock"
    if kind == "tcp":
        endpoint = "tcp:{port}:interface=127.0.0.1"
    elif kind == "unix":
        endpoint = f"unix:{sock_path}"
    else:
        pki = PKI(tmp_path / "pki")
        ca = pki.ca("msmtpd test CA")
        leaf = pki.leaf(ca, "localhost")
        endpoint = ("ssl:{port}:interface=127.0.0.1:"
                    f"privateKey={leaf.key}:certKey={leaf.cert}")
    d = msmtpd([f"--command={recorder.command()}"], "twistd", endpoint=endpoint)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if kind == "unix":
                    with socket.socket(socket.AF_UNIX) as sock:
                        sock.connect(str(sock_path))
                        sock.sendall(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
                                     b"via twistd\r\n.\r\nQUIT\r\n")
                        assert read_all(sock).endswith(b"250 Ok, mail was piped\r\n221 Bye\r\n")
                elif kind == "ssl":
                    ctx = ssl.create_default_context(cafile=str(ca.cert))
                    with smtplib.SMTP_SSL("localhost", d.port, timeout=10,
                                          context=ctx) as smtp:
                        smtp.sendmail("a@b", ["c@d"], b"via twistd\r\n")
                else:
                    with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as smtp:
                        smtp.sendmail("a@b", ["c@d"], b"via twistd\r\n")
                break
            except (OSError, smtplib.SMTPServerDisconnected):
                assert d.proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        mail = recorder.wait(1)[0]
        assert body_of(mail) == b"via twistd\n"
        if kind == "unix":  # no IP: msmtpd's layout for a non-IP connection
            assert mail["data"].startswith(b"Received: from x ([])\r\n\tby [] (msmtpd)")
    finally:
        out, err = d.stop(timeout=20)
    log = out + err
    assert "[msmtpd#info] mail was piped successfully" in log
    assert d.proc.returncode in (0, -15), log


def test_twistd_unix_socket_and_bare_port(tmp_path: Path) -> None:
    from msmtp_twisted.daemon.service import MsmtpdOptions, endpoint_description

    assert endpoint_description("2500", "::1") == "tcp:2500:interface=\\:\\:1"
    assert endpoint_description("unix:/run/x.sock") == "unix:/run/x.sock"
    opts = MsmtpdOptions()
    opts.parseOptions(["--port=25", "--interface=127.0.0.2", "--command=true",
                       "--max-sessions=4"])
    assert opts.description == "tcp:25:interface=127.0.0.2"
    assert opts.config.max_sessions == 4
    with pytest.raises(Exception, match="needs a shell"):
        MsmtpdOptions().parseOptions(["--command=a | b"])


def test_auth_without_password_source_fails_clearly(tmp_path: Path) -> None:
    """No passwordeval, no key ring (no D-Bus session), no terminal: exit 3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS")}
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus"
    res = run_msmtpd("ours", "--auth=bob", "--port=1", env=env)
    assert res.returncode == 3
    assert res.stderr.decode().endswith(": cannot get password for (localhost, smtp, bob): "
                               "no key ring entry, and no terminal to ask on\n")


def test_client_that_never_reads_replies_is_throttled(ours: MsmtpdProcess) -> None:
    """Commands without reading the replies: once the replies fill the socket
    buffers the server stops reading, so neither side's buffers grow without end."""
    block = b"NOOP\r\n" * (1 << 17)  # 768 KiB, as many replies of 8 bytes
    sent = 0
    with socket.create_connection(("127.0.0.1", ours.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(2)
        with pytest.raises(TimeoutError):
            while sent < 300 * len(block):
                sock.sendall(block)
                sent += len(block)
    assert sent < 100 * len(block)
    assert ours.peak_rss_kib() < 80 * 1024
