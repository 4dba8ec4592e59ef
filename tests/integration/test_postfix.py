"""Our msmtp against a real Postfix 3.7 on loopback (plain SMTP, no TLS, no AUTH),
compared with what msmtp 1.8.23 does against the same server.

The servers (``mailservers`` fixture, tests/servers/mailservers/) start once per
session.  Each test marks its mail with a unique token to find it in the Maildirs,
which fill up over the session.  Postfix delivers asynchronously, hence
``wait_for_mail``.
"""

from __future__ import annotations

import email.utils
import re
import socket
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import ours_command
from tests.servers.mailservers import (
    VOLATILE_HEADERS,
    MailServers,
    header,
    msmtprc,
    send,
    split_mail,
    without_volatile_headers,
)
from tests.servers.msmtp import new_token
from tests.servers.proxy import DelayProxy

UNKNOWN = "unknown-user@example.com"
REJECTED_550 = ("msmtp: server message: 550 5.1.1 <unknown-user@example.com>: Recipient"
                " address rejected: User unknown in virtual mailbox table")


def _names(mail: bytes) -> list[str]:
    fields, _ = split_mail(mail)
    return [f.split(b":", 1)[0].decode() for f in fields]


@pytest.fixture
def cfg(mailservers: MailServers, tmp_path):
    return msmtprc(tmp_path, port=mailservers.smtp_port)


def test_delivers_to_a_mailbox_with_the_headers_msmtp_adds(mailservers, cfg) -> None:
    tok = new_token()
    body = b"Hello Postfix,\n\nsecond paragraph\n"
    res = send(ours_command(), cfg, ["alice@example.com"],
               f"Subject: {tok}\nTo: alice@example.com\n\n".encode() + body)
    assert (res.returncode, res.stderr) == (0, "")

    [mail] = mailservers.wait_for_mail("alice", match=tok.encode())
    # Postfix: Return-Path is the envelope from
    assert header(mail, "Return-Path") == [b"<sender@example.com>"]
    assert header(mail, "Delivered-To") == [b"alice@example.com"]
    # msmtp adds From (the envelope from), Date and Message-ID before the mail's own
    # headers, after which come Postfix's
    assert _names(mail) == ["Return-Path", "X-Original-To", "Delivered-To", "Received",
                            "From", "Date", "Message-ID", "Subject", "To"]
    assert header(mail, "From") == [b"sender@example.com"]
    [date] = header(mail, "Date")
    sent = email.utils.parsedate_to_datetime(date.decode())
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 120
    [msgid] = header(mail, "Message-ID")
    assert re.fullmatch(rb"<[^<>@\s]+@[^<>@\s]+>", msgid), msgid
    assert split_mail(mail)[1] == body


def test_multiple_recipients(mailservers, cfg) -> None:
    tok = new_token()
    since = mailservers.postfix_log_size()
    rcpts = ["alice@example.com", "bob@example.com", "carol@example.com",
             "someone@example.org"]
    res = send(ours_command(), cfg, rcpts, f"Subject: {tok}\n\nto four\n".encode())
    assert (res.returncode, res.stderr) == (0, "")
    for user in ("alice", "bob", "carol"):
        [mail] = mailservers.wait_for_mail(user, match=tok.encode())
        assert header(mail, "Delivered-To") == [f"{user}@example.com".encode()]
    [mail] = mailservers.wait_for_mail("sink", match=tok.encode())
    assert header(mail, "X-Original-To") == [b"someone@example.org"]
    assert mailservers.smtpd_session(since)[-1] == (
        "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=4 data=1 quit=1 commands=8")


def test_read_recipients_from_headers(mailservers, cfg) -> None:
    tok = new_token()
    mail = (f"Subject: {tok}\n"
            "To: Alice <alice@example.com>,\n"
            "  \"Bob, B.\" <bob@example.com>\n"
            "Cc: carol@example.com (Carol)\n"
            "\nvia -t\n").encode()
    res = send(ours_command(), cfg, ["-t"], mail)
    assert (res.returncode, res.stderr) == (0, "")
    for user in ("alice", "bob", "carol"):
        [got] = mailservers.wait_for_mail(user, match=tok.encode())
        assert header(got, "Delivered-To") == [f"{user}@example.com".encode()]
        assert split_mail(got)[1] == b"via -t\n"


@pytest.mark.parametrize("how", ["-t", "command line"])
def test_bcc_header_removed(mailservers, cfg, how) -> None:
    tok = new_token()
    mail = (f"Subject: {tok}\nTo: alice@example.com\n"
            "Bcc: bob@example.com,\n carol@example.com\nX-After: kept\n\nbcc body\n").encode()
    args = ["-t"] if how == "-t" else ["alice@example.com", "bob@example.com",
                                       "carol@example.com"]
    res = send(ours_command(), cfg, args, mail)
    assert (res.returncode, res.stderr) == (0, "")
    for user in ("alice", "bob", "carol"):
        [got] = mailservers.wait_for_mail(user, match=tok.encode())
        fields, _ = split_mail(got)
        own = fields[_names(got).index("From"):]  # msmtp's and the mail's own headers
        assert [f.split(b":")[0] for f in own] == [b"From", b"Date", b"Message-ID",
                                                   b"Subject", b"To", b"X-After"]
        assert not [f for f in own if b"bob@" in f or b"carol@" in f]
        assert split_mail(got)[1] == b"bcc body\n"


@pytest.mark.parametrize("rcpts", [[UNKNOWN], ["alice@example.com", UNKNOWN]],
                         ids=["unknown", "known+unknown"])
def test_rejected_recipient(mailservers, cfg, real_msmtp, rcpts) -> None:
    expected = [f"msmtp: recipient address {UNKNOWN} not accepted by the server",
                REJECTED_550,
                "msmtp: could not send mail (account default from FILE)"]
    sessions = {}
    for name, command in (("real", [real_msmtp]), ("ours", ours_command())):
        since = mailservers.postfix_log_size()
        res = send(command, cfg, rcpts, b"Subject: rejected\n\nnot delivered\n")
        assert (name, res.returncode, res.stderr_lines(cfg)) == (name, 65, expected)
        sessions[name] = mailservers.smtpd_session(since)
    # msmtp pipelines MAIL, RCPT..., DATA; after the 550 it hangs up, even after a 354
    assert sessions["ours"] == sessions["real"]
    assert sessions["ours"][-1].startswith("disconnect from unknown[127.0.0.1] ehlo=1"
                                           " mail=1 rcpt=")
    assert " data=0/1 " in sessions["ours"][-1]


def test_dsn_success_report(mailservers, cfg) -> None:
    tok = new_token()
    res = send(ours_command(), cfg,
               ["--dsn-notify=success", "--dsn-return=hdrs", "-f", "sender@example.com",
                "bob@example.com"],
               f"Subject: {tok}\n\nplease confirm\n".encode())
    assert (res.returncode, res.stderr) == (0, "")
    mailservers.wait_for_mail("bob", match=tok.encode())
    # the report quotes the headers (RET=HDRS), so it carries the token too
    [report] = mailservers.wait_for_mail("sender", match=tok.encode())
    assert b"report-type=delivery-status" in report
    assert b"Final-Recipient: rfc822; bob@example.com" in report
    assert b"Action: delivered" in report
    assert b"Content-Type: text/rfc822-headers" in report
    assert b"please confirm" not in report  # RET=HDRS: headers only


def test_pipelining_one_round_trip_for_the_envelope(mailservers, tmp_path,
                                                    real_msmtp) -> None:
    """Postfix advertises PIPELINING: msmtp sends MAIL, all RCPTs and DATA without
    waiting for replies.  Seen through a proxy that counts client->server bursts
    (runs of data with no server reply in between)."""
    rcpts = ["alice@example.com", "bob@example.com", "carol@example.com"]
    envelope = (b"MAIL FROM:<sender@example.com>\r\n"
                + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) + b"DATA\r\n")
    seen = {}
    for name, command in (("real", [real_msmtp]), ("ours", ours_command())):
        with DelayProxy((mailservers.host, mailservers.smtp_port), delay=0.05) as proxy:
            cfg = msmtprc(tmp_path, port=proxy.port)
            since = mailservers.postfix_log_size()
            res = send(command, cfg, rcpts, b"Subject: pipelining\n\nbody\n")
            assert (name, res.returncode, res.stderr) == (name, 0, "")
            session = mailservers.smtpd_session(since)
            proxy.wait_idle()
        bursts = proxy.connection.bursts
        assert b"".join(bursts).startswith(b"EHLO localhost\r\n" + envelope), name
        seen[name] = (session, bursts)
    session, bursts = seen["ours"]
    assert session == seen["real"][0]
    assert session[-1] == ("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=3 data=1"
                           " quit=1 commands=7")
    # (no "improper command pipelining after ..." in between)
    assert len(session) == 3
    # The real msmtp's envelope may come in two bursts: it writes MAIL FROM first and,
    # without TCP_NODELAY, Nagle holds the RCPTs back until MAIL FROM is acknowledged.
    assert [b[:4] for b in bursts] == [b"EHLO", b"MAIL", b"From", b"QUIT"]
    assert bursts[1] == envelope


def test_no_pipelining_when_not_advertised(mailservers, tmp_path, real_msmtp) -> None:
    """The port without PIPELINING in its EHLO reply: one command per round trip."""
    seen = {}
    for name, command in (("real", [real_msmtp]), ("ours", ours_command())):
        tok = new_token()
        with DelayProxy((mailservers.host, mailservers.nopipelining_port),
                        delay=0.01) as proxy:
            cfg = msmtprc(tmp_path, port=proxy.port)
            since = mailservers.postfix_log_size()
            res = send(command, cfg, ["alice@example.com", "bob@example.com"],
                       f"Subject: {tok}\n\nbody\n".encode())
            assert (name, res.returncode, res.stderr) == (name, 0, "")
            session = mailservers.smtpd_session(since)
            proxy.wait_idle()
        mailservers.wait_for_mail("bob", match=tok.encode())
        seen[name] = (session, [b.split(b"\r\n")[0] for b in proxy.connection.bursts])
    assert seen["ours"] == seen["real"]
    session, bursts = seen["ours"]
    assert "discarding EHLO keywords: PIPELINING" in session
    assert not [line for line in session if "improper" in line]
    assert bursts == [b"EHLO localhost", b"MAIL FROM:<sender@example.com>",
                      b"RCPT TO:<alice@example.com>", b"RCPT TO:<bob@example.com>", b"DATA",
                      b"From: sender@example.com", b"QUIT"]


def test_nopipelining_port_rejects_a_pipelining_client(mailservers) -> None:
    """Self-check of the port above: Postfix 3.7 notices pipelining only after commands
    that end a group (EHLO, DATA...), then rejects DATA (reject_unauth_pipelining)."""
    since = mailservers.postfix_log_size()
    with socket.create_connection((mailservers.host, mailservers.nopipelining_port),
                                  timeout=5) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        sock.sendall(b"EHLO x\r\nMAIL FROM:<sender@example.com>\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        assert f.readline().startswith(b"250 ")
        sock.sendall(b"RCPT TO:<alice@example.com>\r\n")
        assert f.readline().startswith(b"250 ")
        sock.sendall(b"DATA\r\n")
        reply = f.readline()
        sock.sendall(b"QUIT\r\n")
        f.readline()
    assert reply.startswith(b"503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP"
                            b" command pipelining")
    assert mailservers.smtpd_session(since)[1].startswith("improper command pipelining"
                                                          " after EHLO")


BYTE_EXACT = {
    "8bit": b"Subject: @TOK@ \xc3\xa4\nContent-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 8bit\n\n"
            b"Gr\xc3\xbc\xc3\x9fe \xe2\x82\xac \xf0\x9f\x93\xa8\nlatin-1 \xe9\xff\x80\n"
            b"controls \x01\x07\x1b\x7f\n",
    "dot lines": b"Subject: @TOK@\n\n.\n..\n...three\n.leading dot\nmiddle . dot\n"
                 b"\n.\n\n.. \n.",
    "crlf": b"Subject: @TOK@\r\nX-Mixed: yes\r\n\r\nline one\r\n.\r\nbare\rcr\nlf only\n",
    "no final newline": b"Subject: @TOK@\n\nlast line without newline",
    "headers only": b"Subject: @TOK@\nX-Empty:\n",
    "long lines": b"Subject: @TOK@\n\n" + b"x" * 1500 + b"\n" + b".y" * 1500 + b"\n",
    "dot header": b"Subject: @TOK@\nX-Dots: .\n\n.\r\n.\n",
    "own headers": b"From: Someone Else <else@example.org>\nDate: Mon, 1 Jan 2024 00:00:00"
                   b" +0000\nMessage-ID: <@TOK@@example.org>\nSubject: x\n\nkept\n",
    "lowercase names": b"from: else@example.org\ndate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                       b"message-id: <@TOK@@example.org>\nSUBJECT: x\n\nb\n",
    "folded headers": b"Subject: @TOK@\n  folded\n\tagain\nX-Long: a\n b\n\nbody\n",
    "no headers": b"@TOK@ is not a header line\n\nbody\n",
    # -t: the recipient comes from To:; @RCPT@ is bob (real) or carol (ours)
    "-t with Bcc": b"To: @RCPT@\nBcc: bcc-@TOK@@example.org,\n other@example.org\n"
                   b"Subject: @TOK@\n\nbody\n",
    "-t with Resent": b"Resent-To: @RCPT@\nTo: nobody-@TOK@@example.org\nSubject: @TOK@\n\nb\n",
}


@pytest.mark.parametrize("case", list(BYTE_EXACT))
def test_delivered_byte_exact_as_real_msmtp(mailservers, cfg, real_msmtp, case) -> None:
    """The same input sent by msmtp 1.8.23 (to bob) and by ours (to carol) arrives
    equal, apart from the header lines that differ between any two deliveries."""
    tok = new_token()
    template = BYTE_EXACT[case].replace(b"@TOK@", tok.encode())
    sessions = []
    for command, rcpt in (([real_msmtp], "bob@example.com"),
                          (ours_command(), "carol@example.com")):
        mail = template.replace(b"@RCPT@", rcpt.encode())
        args = ["-t"] if case.startswith("-t") else [rcpt]
        since = mailservers.postfix_log_size()
        res = send(command, cfg, args, mail)
        assert (rcpt, res.returncode, res.stderr) == (rcpt, 0, "")
        sessions.append(mailservers.smtpd_session(since))
    assert sessions[0] == sessions[1]  # e.g. the same number of RCPTs
    [real] = mailservers.wait_for_mail("bob", match=tok.encode())
    [ours] = mailservers.wait_for_mail("carol", match=tok.encode())
    real = real.replace(b"bob@example.com", b"carol@example.com")
    # Postfix adds Resent-Date/Resent-Message-Id to a mail with Resent- headers
    volatile = (*VOLATILE_HEADERS, "resent-date", "resent-message-id")
    assert without_volatile_headers(ours, volatile) == without_volatile_headers(real, volatile)


def test_five_megabytes(mailservers, cfg) -> None:
    tok = new_token()
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?\n"
    body = b"".join(b"%07d " % i + (b"." if i % 50 == 0 else b"") + line
                    for i in range(5 * 1024 * 1024 // (len(line) + 8)))
    assert len(body) >= 5 * 1024 * 1024 - 100
    started = time.monotonic()
    res = send(ours_command(), cfg, ["alice@example.com"],
               f"Subject: {tok}\n\n".encode() + body, timeout=60)
    assert (res.returncode, res.stderr) == (0, "")
    assert time.monotonic() - started < 15
    [mail] = mailservers.wait_for_mail("alice", match=tok.encode(), timeout=20)
    assert split_mail(mail)[1] == body


def test_over_the_size_limit(mailservers, cfg, real_msmtp) -> None:
    """Postfix's message_size_limit is 10240000: after the mail it answers 552, and
    msmtp hangs up without QUIT."""
    mail = b"Subject: too big\n\n" + (b"y" * 99 + b"\n") * 103_000
    expected = ["msmtp: the server did not accept the mail",
                "msmtp: server message: 552 5.3.4 Error: message file too big",
                "msmtp: could not send mail (account default from FILE)"]
    got = {}
    for name, command in (("real", [real_msmtp]), ("ours", ours_command())):
        since = mailservers.postfix_log_size()
        res = send(command, cfg, ["alice@example.com"], mail, timeout=60)
        got[name] = (res.returncode, res.stderr_lines(cfg), mailservers.smtpd_session(since))
    assert got["real"][:2] == (69, expected)
    assert got["ours"] == got["real"]


LOG_LINE = re.compile(
    r"^(?P<date>\w{3} [ \d]\d \d\d:\d\d:\d\d) host=127\.0\.0\.1 tls=off auth=off"
    r" from=sender@example\.com recipients=(?P<rcpts>\S+) mailsize=(?P<size>\d+)"
    r" smtpstatus=250 smtpmsg='250 2\.0\.0 Ok: queued as (?P<qid>[0-9A-F]+)'"
    r" exitcode=EX_OK$")


def test_logfile_line(mailservers, tmp_path, real_msmtp) -> None:
    tok = new_token()
    mail = f"Subject: {tok}\n\nlogged\n".encode()
    found = {}
    for name, command, rcpt in (("real", [real_msmtp], "bob@example.com"),
                                ("ours", ours_command(), "carol@example.com")):
        log = tmp_path / f"{name}.log"
        cfg = msmtprc(tmp_path, name=f"{name}rc", port=mailservers.smtp_port, logfile=log)
        res = send(command, cfg, [rcpt, "someone@example.org"], mail)
        assert (name, res.returncode, res.stderr) == (name, 0, "")
        [line] = log.read_text().splitlines()
        match = LOG_LINE.match(line)
        assert match, line
        assert match["rcpts"] == f"{rcpt},someone@example.org"
        # the queue id msmtp logs is the mail Postfix took
        mailservers.wait_for_postfix_log(rf"{match['qid']}: message-id=")
        found[name] = match
    # mailsize: the bytes msmtp sent; ours and the real Message-ID differ in length
    [real_msgid] = header(mailservers.wait_for_mail("bob", match=tok.encode())[0],
                          "Message-ID")
    [ours_msgid] = header(mailservers.wait_for_mail("carol", match=tok.encode())[0],
                          "Message-ID")
    assert (int(found["real"]["size"]) - int(found["ours"]["size"])
            == len(real_msgid) - len(ours_msgid))


def test_ipv6(mailservers, tmp_path) -> None:
    if not mailservers.ipv6:
        pytest.skip("no ::1 on this host")
    tok = new_token()
    cfg = msmtprc(tmp_path, host="::1", port=mailservers.smtp_port)
    res = send(ours_command(), cfg, ["alice@example.com"], f"Subject: {tok}\n\nv6\n".encode())
    assert (res.returncode, res.stderr) == (0, "")
    [mail] = mailservers.wait_for_mail("alice", match=tok.encode())
    assert b"[IPv6:::1])\n\tby mail.example.test (Postfix)" in mail


ETRN = [
    ("example.net", 0, [], "ehlo=1 etrn=1 quit=1 commands=3"),
    ("example.org", 69, ["msmtp: the server is unable to fulfill the request",
                         "msmtp: server message: 459 <example.org>: service unavailable"],
     "ehlo=1 etrn=0/1 commands=1/2"),
]


@pytest.mark.parametrize(("domain", "status", "stderr", "counts"), ETRN)
def test_etrn(mailservers, cfg, real_msmtp, domain, status, stderr, counts) -> None:
    """--rmqs sends ETRN: example.net is a relay domain (250), example.org is not (459;
    msmtp then hangs up without QUIT)."""
    for name, command in (("real", [real_msmtp]), ("ours", ours_command())):
        since = mailservers.postfix_log_size()
        res = send(command, cfg, [f"--rmqs={domain}"], b"")
        assert (name, res.returncode, res.stderr_lines(cfg)) == (name, status, stderr)
        assert mailservers.smtpd_session(since)[-1] == (
            f"disconnect from unknown[127.0.0.1] {counts}")
