"""Self-check of the test servers in tests/servers/, driven by smtplib and by the real
msmtp 1.8.23.  The msmtp tables below are what tests/servers/MSMTP_OBSERVED.md
documents: if msmtp's behaviour (or a server) changes, these fail first."""

from __future__ import annotations

import re
import smtplib
import socket
import time

import pytest

from tests.servers import Close, RecordingServer
from tests.servers.hostile import CLIENT_MUST_FAIL, HOSTILE_MODES, HostileServer
from tests.servers.proxy import DelayProxy
from tests.servers.spool import Spool

pytest_plugins = ["tests.servers.fixtures"]

SEND_FAILED = "msmtp: could not send mail (account default from CFG)"
MAIL = b"Subject: x\n\nbody\n.leading dot\n..two dots\n"


def _stderr(res, cfg_dir) -> list[str]:
    """msmtp's stderr lines with the config file's path replaced by CFG."""
    return [re.sub(r" from /\S+\)$", " from CFG)", line) for line in res.stderr.splitlines()]


def _recv_reply(sock: socket.socket, buf: bytearray) -> list[str]:
    """Read one (possibly multi-line) reply from a raw socket."""
    out = []
    while True:
        while b"\n" not in buf:
            data = sock.recv(65536)
            assert data, f"connection closed, got {out}"
            buf += data
        idx = buf.index(b"\n")
        line = bytes(buf[:idx + 1]).decode()
        del buf[:idx + 1]
        out.append(line.rstrip("\r\n"))
        if line[3:4] != "-":
            return out


def _raw_client(server: RecordingServer) -> tuple[socket.socket, bytearray]:
    sock = socket.create_connection(server.address, timeout=5)
    buf = bytearray()
    assert _recv_reply(sock, buf)[-1].startswith("220 ")
    return sock, buf


# -- RecordingServer driven by smtplib / raw sockets -------------------------------------

def test_smtplib_envelope_and_data(recording_server):
    srv = recording_server
    with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:
        s.ehlo("client.test")
        s.sendmail("a@example.com", ["b@example.org", "c@example.org"],
                   b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n",
                   mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"])
    srv.wait_idle()
    msg = srv.message
    assert msg.mail_from == "<a@example.com> size=34 BODY=8BITMIME"
    assert msg.sender == "a@example.com"
    assert msg.rcpt_to == ["<b@example.org> NOTIFY=FAILURE", "<c@example.org> NOTIFY=FAILURE"]
    assert msg.recipients == ["b@example.org", "c@example.org"]
    assert msg.raw_bytes() == b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n"
    assert msg.data_bytes() == b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n"
    assert msg.raw_path is None and msg.eod_replies[0].startswith("250 2.0.0 Ok")
    assert srv.quit_received and srv.session.closed_by == "server"
    assert srv.session.helo == "ehlo client.test"
    assert srv.commands[0] == "ehlo client.test" and srv.commands[-1] == "QUIT"
    # smtplib writes "mail FROM:" up to Python 3.12, "mail from:" from 3.13 on
    assert srv.transcript.lower().startswith(
        b"ehlo client.test\r\nmail from:<a@example.com> size=34")
    assert srv.transcript.endswith(b"body\r\n.\r\nQUIT\r\n")
    assert b"250-PIPELINING\r\n250-SIZE 10240000\r\n" in srv.session.sent.getvalue()


def test_pipelined_commands_in_one_packet(server_factory):
    srv = server_factory(replies={"RCPT:bad@x": "550 5.1.1 no such user"})
    sock, buf = _raw_client(srv)
    with sock:
        sock.sendall(b"EHLO c\r\nMAIL FROM:<a@x> SIZE=5\r\nRCPT TO:<bad@x>\r\n"
                     b"RCPT TO:<B@x> NOTIFY=NEVER\r\nDATA\r\n")
        assert _recv_reply(sock, buf)[-1] == "250 ENHANCEDSTATUSCODES"
        assert _recv_reply(sock, buf) == ["250 2.1.0 Ok"]
        assert _recv_reply(sock, buf) == ["550 5.1.1 no such user"]
        assert _recv_reply(sock, buf) == ["250 2.1.5 Ok"]
        assert _recv_reply(sock, buf)[0].startswith("354 ")
        # data, terminator and the next commands split at every possible place
        wire = b"a\r\n..b\r\n.\r\nRSET\r\nNOOP\r\nFOO bar\r\nSTARTTLS\r\nETRN x\r\nQUIT\r\n"
        for i in range(len(wire)):
            sock.sendall(wire[i:i + 1])
            time.sleep(0.0005)
        replies = [_recv_reply(sock, buf) for _ in range(7)]
        assert sock.recv(100) == b""
    assert [r[0][:3] for r in replies] == ["250", "250", "250", "500", "454", "250", "221"]
    srv.wait_idle()
    assert srv.session.bursts[0] == ["EHLO c", "MAIL FROM:<a@x> SIZE=5", "RCPT TO:<bad@x>",
                                     "RCPT TO:<B@x> NOTIFY=NEVER", "DATA"]
    msg = srv.message
    assert msg.mail_from == "<a@x> SIZE=5"
    assert msg.rcpt_to == ["<B@x> NOTIFY=NEVER"] and msg.rejected_rcpt_to == ["<bad@x>"]
    assert (msg.raw_bytes(), msg.data_bytes()) == (b"a\r\n..b\r\n", b"a\r\n.b\r\n")
    assert srv.commands[-6:] == ["RSET", "NOOP", "FOO bar", "STARTTLS", "ETRN x", "QUIT"]


def test_reply_value_kinds(server_factory):
    calls = []

    def rcpt(session, cmd):
        calls.append((session.index, cmd.verb, cmd.address))
        return "451 4.7.1 later" if cmd.address == "grey@x" else None

    srv = server_factory(greeting=["220-first", "220 second"], replies={
        "NOOP": ["250-a", "250 b"], "VRFY": b"252 raw\n", "RCPT": rcpt,
        "EOD": "250 done", "HELP": Close("421 4.3.0 bye")})
    sock, buf = _raw_client(srv)
    with sock:
        sock.sendall(b"NOOP\r\nVRFY x\r\nHELO c\r\nMAIL FROM:<>\r\nRCPT TO:<grey@x>\r\n"
                     b"RCPT TO:<ok@x>\r\nDATA\r\n")
        got = [_recv_reply(sock, buf) for _ in range(7)]
        sock.sendall(b".\r\nHELP\r\n")
        got += [_recv_reply(sock, buf) for _ in range(2)]
        assert sock.recv(10) == b""
    assert got == [["250-a", "250 b"], ["252 raw"], ["250 mx.test"], ["250 2.1.0 Ok"],
                   ["451 4.7.1 later"], ["250 2.1.5 Ok"],
                   ["354 End data with <CR><LF>.<CR><LF>"], ["250 done"],
                   ["421 4.3.0 bye"]]
    assert calls == [(0, "RCPT", "grey@x"), (0, "RCPT", "ok@x")]
    srv.wait_idle()
    assert srv.message.data_bytes() == b"" and srv.message.mail_from == "<>"
    assert srv.session.closed_by == "server" and not srv.quit_received


def test_large_data_is_spooled_to_a_file(server_factory):
    srv = server_factory(spill_threshold=1 << 20)
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * 3000 + b".dot\r\n"
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        s.sendmail("a@example.com", ["b@example.org"], body)
    srv.wait_idle()
    msg = srv.message
    assert msg.data_path is not None and msg.data_path.stat().st_size == len(body)
    assert msg.data_bytes() == body
    assert msg.raw_bytes() == body[:-6] + b"..dot\r\n"
    assert srv.session.transcript.spilled


def test_spool_roundtrip(tmp_path):
    sp = Spool(threshold=10, directory=tmp_path)
    sp.write(b"12345")
    assert sp.path is None and sp.getvalue() == b"12345"
    sp.write(b"678901")
    sp.write(b"xyz")
    assert sp.path is not None and sp.path.parent == tmp_path
    sp.close()
    sp.write(b"!")
    assert sp.getvalue() == b"12345678901xyz!" and len(sp) == 15


def test_lmtp_per_recipient_replies_smtplib(server_factory):
    srv = server_factory(protocol="lmtp", replies={"EOD:b@x": "452 4.2.2 mailbox full"})
    with smtplib.LMTP(srv.host, srv.port, timeout=5) as s:
        assert s.ehlo("c")[0] == 250  # smtplib.LMTP sends LHLO
        assert s.mail("a@x")[0] == 250
        assert s.rcpt("a@x")[0] == 250 and s.rcpt("b@x")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(b"Subject: y\r\n\r\nhi\r\n.\r\n")
        assert s.getreply() == (250, b"2.1.5 <a@x> Ok")
        assert s.getreply() == (452, b"4.2.2 mailbox full")
        assert s.docmd("HELO", "c")[0] == 500  # LMTP has no HELO/EHLO
    srv.wait_idle()
    assert srv.message.eod_replies == ["250 2.1.5 <a@x> Ok", "452 4.2.2 mailbox full"]
    assert srv.session.helo == "lhlo c"


def test_unix_socket_smtplib(server_factory, tmp_path):
    srv = server_factory(protocol="lmtp", unix_path=tmp_path / "lmtp.sock")
    with smtplib.LMTP(str(tmp_path / "lmtp.sock"), timeout=5) as s:
        s.sendmail("a@x", ["b@x"], b"Subject: z\r\n\r\nunix\r\n")
    srv.wait_idle()
    assert srv.message.data_bytes().endswith(b"unix\r\n")
    assert srv.address == str(tmp_path / "lmtp.sock")


def test_ehlo_refused_smtplib_falls_back_to_helo(server_factory):
    srv = server_factory(ehlo_refused=True)
    with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:
        s.sendmail("a@x", ["b@x"], b"x\r\n")
    srv.wait_idle()
    assert [c.split()[0] for c in srv.commands] == ["ehlo", "helo", "mail", "rcpt", "data",
                                                    "QUIT"]


def test_delay_applies_before_each_reply_batch(server_factory):
    srv = server_factory(delay=0.2)
    start = time.monotonic()
    with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:  # greeting
        s.noop()
    assert time.monotonic() - start >= 0.2 * 3  # greeting, NOOP, QUIT


def test_stop_is_bounded_with_clients_still_connected(server_factory):
    srv = RecordingServer().start()
    hang = HostileServer("silent").start()
    clients = [socket.create_connection(s.address, timeout=5) for s in (srv, hang)]
    clients[0].recv(100)
    time.sleep(0.05)
    start = time.monotonic()
    srv.stop()
    hang.stop()
    assert time.monotonic() - start < 1.0
    for c in clients:
        assert c.recv(10) == b""
        c.close()
    for server in (srv, hang):
        assert not any(t.is_alive() for t in [server._accept_thread, *server._threads])
        assert server.connections_accepted == 1 and not server.errors


# -- hostile servers driven by smtplib ----------------------------------------------------

@pytest.mark.parametrize(("mode", "exc"), [
    ("garbage", smtplib.SMTPConnectError),
    ("huge_reply", smtplib.SMTPResponseException),  # smtplib: "Line too long."
    ("silent", smtplib.SMTPServerDisconnected),  # "... unexpectedly closed: timed out"
    ("drop_on_connect", smtplib.SMTPServerDisconnected),
    ("invalid_code", smtplib.SMTPConnectError),
])
def test_hostile_smtplib_connect_fails(hostile_server, mode, exc):
    srv = hostile_server(mode)
    start = time.monotonic()
    with pytest.raises(exc):
        smtplib.SMTP(srv.host, srv.port, timeout=0.5)
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("mode", ["trickle", "lone_lf", "too_many_lines"])
def test_hostile_smtplib_tolerated(hostile_server, mode):
    srv = hostile_server(mode)
    with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:
        s.sendmail("a@x", ["b@x"], b"Subject: t\r\n\r\nok\r\n")
    srv.wait_idle()
    assert srv.message.data_bytes() == b"Subject: t\r\n\r\nok\r\n"


@pytest.mark.parametrize("mode", ["drop_after_mail", "drop_after_eod", "drop_mid_data"])
def test_hostile_smtplib_drops(hostile_server, mode):
    srv = hostile_server(mode, data_bytes=10)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:
            s.sendmail("a@x", ["b@x"], b"Subject: t\r\n\r\n" + b"z" * 100000 + b"\r\n")
    srv.wait_idle()
    assert srv.session.closed_by == "server"


# -- the real msmtp -----------------------------------------------------------------------

def test_msmtp_envelope_data_and_quit(recording_server, run_real_msmtp):
    res = run_real_msmtp(recording_server, ["r1@example.org", "r2@example.org"], input=MAIL)
    assert (res.returncode, res.stderr) == (0, "")
    recording_server.wait_idle()
    msg = recording_server.message
    assert msg.mail_from == "<a@example.com>"
    assert msg.rcpt_to == ["<r1@example.org>", "<r2@example.org>"]
    data = msg.data_bytes()
    assert data.startswith(b"From: a@example.com\r\nDate: ")  # msmtp adds From/Date/Msg-ID
    assert data.endswith(b"Subject: x\r\n\r\nbody\r\n.leading dot\r\n..two dots\r\n")
    assert msg.raw_bytes().endswith(b"\r\n..leading dot\r\n...two dots\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert recording_server.quit_received
    assert recording_server.session.helo == "EHLO localhost"


def test_msmtp_pipelines_mail_rcpt_data_in_one_burst(server_factory, run_real_msmtp):
    srv = server_factory(pipeline_hold=2.0)
    res = run_real_msmtp(srv, ["r1@example.org", "r2@example.org"])
    assert res.returncode == 0, res.stderr
    assert res.seconds < 1.5  # msmtp pipelined, so the hold was never waited out
    srv.wait_idle()
    assert srv.bursts == [["EHLO localhost"],
                          ["MAIL FROM:<a@example.com>", "RCPT TO:<r1@example.org>",
                           "RCPT TO:<r2@example.org>", "DATA"],
                          ["QUIT"]]


def test_msmtp_without_pipelining_waits_for_each_reply(server_factory, run_real_msmtp):
    srv = server_factory(capabilities=["8BITMIME"])
    res = run_real_msmtp(srv, ["r1@example.org"])
    assert res.returncode == 0, res.stderr
    srv.wait_idle()
    assert srv.bursts == [["EHLO localhost"], ["MAIL FROM:<a@example.com>"],
                          ["RCPT TO:<r1@example.org>"], ["DATA"], ["QUIT"]]


def test_msmtp_dsn_parameters(recording_server, run_real_msmtp):
    res = run_real_msmtp(recording_server, ["r@example.org"], dsn_notify="failure,delay",
                         dsn_return="headers")
    assert res.returncode == 0, res.stderr
    recording_server.wait_idle()
    assert recording_server.message.mail_from == "<a@example.com> RET=HDRS"
    assert recording_server.message.rcpt_to == ["<r@example.org> NOTIFY=FAILURE,DELAY"]


def test_msmtp_large_mail_spools(server_factory, run_real_msmtp):
    srv = server_factory()
    body = b"Subject: big\n\n" + (b"y" * 76 + b"\n") * 30000
    res = run_real_msmtp(srv, ["r@example.org"], input=body)
    assert res.returncode == 0, res.stderr
    srv.wait_idle()
    msg = srv.message
    assert msg.data_path is not None
    assert msg.data_bytes().endswith((b"y" * 76 + b"\r\n") * 30000)


def test_msmtp_lmtp_one_recipient_fails_after_data(server_factory, run_real_msmtp, tmp_path):
    srv = server_factory(protocol="lmtp", replies={"EOD:r2@example.org": "552 5.2.2 quota"})
    res = run_real_msmtp(srv, ["r1@example.org", "r2@example.org"], protocol="lmtp")
    assert res.returncode == 69
    assert _stderr(res, tmp_path) == [
        "msmtp: the server refuses to send the mail to r2@example.org",
        "msmtp: LMTP server message: 552 5.2.2 quota",
        "msmtp: could not send mail to all recipients (account default from CFG)"]
    srv.wait_idle()
    assert srv.message.eod_replies == ["250 2.1.5 <r1@example.org> Ok", "552 5.2.2 quota"]
    assert srv.commands[0] == "LHLO localhost"


def test_msmtp_unix_socket(server_factory, run_real_msmtp, tmp_path):
    for protocol in ("smtp", "lmtp"):
        srv = server_factory(protocol=protocol, unix_path=tmp_path / f"{protocol}.sock")
        res = run_real_msmtp(srv, ["r@example.org"], protocol=protocol)
        assert res.returncode == 0, res.stderr
        srv.wait_idle()
        assert srv.message.recipients == ["r@example.org"]
    # LMTP wants a port even over a unix socket (config_text adds "port 24" by default)
    res = run_real_msmtp(srv, ["r@example.org"], protocol="lmtp", port=None)
    assert res.returncode == 78 and res.stderr.endswith(": port not set\n")


def test_msmtp_etrn(server_factory, run_real_msmtp, tmp_path):
    srv = server_factory(capabilities=["ETRN"], replies={"ETRN:@example.org": "458 4.0.0 no",
                                                         "ETRN:example.com": "558 5.0.0 no"})
    ok = run_real_msmtp(srv, ["--rmqs=example.net"])
    bad = run_real_msmtp(srv, ["--rmqs=@example.org"])
    worse = run_real_msmtp(srv, ["--rmqs=example.com"])
    assert (ok.returncode, ok.stderr) == (0, "")
    assert (bad.returncode, _stderr(bad, tmp_path)) == (69, [
        "msmtp: the server is unable to fulfill the request",
        "msmtp: server message: 458 4.0.0 no"])
    assert (worse.returncode, _stderr(worse, tmp_path)) == (76, [
        "msmtp: command ETRN failed", "msmtp: server message: 558 5.0.0 no"])
    srv.wait_idle()
    assert [c for c in srv.commands if c.startswith("ETRN")] == [
        "ETRN example.net", "ETRN @example.org", "ETRN example.com"]
    plain = server_factory()
    res = run_real_msmtp(plain, ["--rmqs=example.net"])
    assert (res.returncode, res.stderr) == (
        69, "msmtp: the server does not support Remote Message Queue Starting\n")
    plain.wait_idle()
    assert plain.commands == ["EHLO localhost", "QUIT"]


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_msmtp_tls_and_auth(server_factory, run_real_msmtp, tmp_path, implicit):
    pytest.importorskip("cryptography")
    from tests.servers.tlsutil import make_cert

    cert = make_cert(tmp_path)
    srv = server_factory(tls_context=cert.server_context(), implicit_tls=implicit,
                         auth={"joe": "secret"})
    res = run_real_msmtp(srv, ["r@example.org"], tls=True, tls_starttls=not implicit,
                         tls_trust_file=cert.cert, auth="login", user="joe",
                         password="secret")
    assert res.returncode == 0, res.stderr
    srv.wait_idle()
    assert srv.session.tls and srv.session.auth == [("LOGIN", "joe", "secret")]
    verbs = [c.split()[0] for c in srv.commands]
    assert verbs[:4] == (["EHLO", "AUTH", "MAIL", "RCPT"] if implicit
                         else ["EHLO", "STARTTLS", "EHLO", "AUTH"])


TLS_ON = {"tls": True, "tls_trust_file": "/etc/ssl/certs/ca-certificates.crt"}
#: the cases where msmtp still sends QUIT although it failed
QUITS_ANYWAY = {"starttls-not-offered", "auth-not-offered"}
AUTH_LOGIN = {"auth": "login", "user": "joe", "password": "bad"}

# What msmtp 1.8.23 does for each reply override (see MSMTP_OBSERVED.md).
# (id, RecordingServer kwargs, msmtp settings, exit code, stderr lines)
OVERRIDE_CASES = [
    ("mail-451", {"replies": {"MAIL": "451 4.3.0 try later"}}, {}, 69,
     ["msmtp: envelope from address a@example.com not accepted by the server",
      "msmtp: server message: 451 4.3.0 try later", SEND_FAILED]),
    ("mail-553", {"replies": {"MAIL": "553 5.7.1 sender rejected"}}, {}, 65,
     ["msmtp: envelope from address a@example.com not accepted by the server",
      "msmtp: server message: 553 5.7.1 sender rejected", SEND_FAILED]),
    ("mail-550-multiline", {"replies": {"MAIL": ["550-5.7.1 first", "550 5.7.1 second"]}}, {},
     65, ["msmtp: envelope from address a@example.com not accepted by the server",
          "msmtp: server message: 550-5.7.1 first",
          "msmtp: server message: 550 5.7.1 second", SEND_FAILED]),
    ("rcpt-550", {"replies": {"RCPT:r2@example.org": "550 5.1.1 no such user"}}, {}, 65,
     ["msmtp: recipient address r2@example.org not accepted by the server",
      "msmtp: server message: 550 5.1.1 no such user", SEND_FAILED]),
    ("rcpt-450", {"replies": {"RCPT": "450 4.2.0 greylisted"}}, {}, 69,
     ["msmtp: recipient address r1@example.org not accepted by the server",
      "msmtp: server message: 450 4.2.0 greylisted", SEND_FAILED]),
    ("data-554", {"replies": {"DATA": "554 5.5.1 no"}}, {}, 65,
     ["msmtp: the server does not accept mail data",
      "msmtp: server message: 554 5.5.1 no", SEND_FAILED]),
    ("data-451", {"replies": {"DATA": "451 4.3.0 later"}}, {}, 69,
     ["msmtp: the server does not accept mail data",
      "msmtp: server message: 451 4.3.0 later", SEND_FAILED]),
    ("eod-452", {"replies": {"EOD": "452 4.3.1 full"}}, {}, 69,
     ["msmtp: the server did not accept the mail",
      "msmtp: server message: 452 4.3.1 full", SEND_FAILED]),
    ("eod-552", {"replies": {"EOD": "552 5.3.4 too big"}}, {}, 69,
     ["msmtp: the server did not accept the mail",
      "msmtp: server message: 552 5.3.4 too big", SEND_FAILED]),
    ("greeting-554", {"greeting": "554 5.3.2 go away"}, {}, 76,
     ["msmtp: cannot get initial OK message from server",
      "msmtp: server message: 554 5.3.2 go away", SEND_FAILED]),
    ("greeting-421", {"greeting": "421 4.3.2 busy"}, {}, 76,
     ["msmtp: cannot get initial OK message from server",
      "msmtp: server message: 421 4.3.2 busy", SEND_FAILED]),
    ("ehlo-refused-helo-ok", {"ehlo_refused": True}, {}, 0, []),
    ("ehlo-and-helo-refused",
     {"ehlo_refused": True, "replies": {"HELO": "502 5.5.2 no HELO either"}}, {}, 76,
     ["msmtp: SMTP server does not accept EHLO or HELO commands",
      "msmtp: server message: 502 5.5.2 no HELO either", SEND_FAILED]),
    ("lhlo-refused", {"protocol": "lmtp", "replies": {"LHLO": "500 5.5.1 no"}},
     {"protocol": "lmtp"}, 76,
     ["msmtp: command LHLO failed", "msmtp: server message: 500 5.5.1 no", SEND_FAILED]),
    ("starttls-454", {"capabilities": ["PIPELINING", "STARTTLS"]}, TLS_ON, 76,
     ["msmtp: command STARTTLS failed",
      "msmtp: server message: 454 4.7.0 TLS not available", SEND_FAILED]),
    ("starttls-not-offered", {}, TLS_ON, 69,
     ["msmtp: the server does not support TLS via the STARTTLS command", SEND_FAILED]),
    ("quit-500", {"replies": {"QUIT": "500 5.5.1 what"}}, {}, 0, []),
    ("auth-login-535", {"auth": {"joe": "secret"}}, AUTH_LOGIN, 77,
     ["msmtp: authentication failed (method LOGIN)",
      "msmtp: server message: 535 5.7.8 Error: authentication failed", SEND_FAILED]),
    ("auth-plain-454", {"capabilities": ["AUTH PLAIN"], "replies": {"AUTH": "454 4.7.0 temp"}},
     {**AUTH_LOGIN, "auth": "plain"}, 77,
     ["msmtp: authentication failed (method PLAIN)",
      "msmtp: server message: 454 4.7.0 temp", SEND_FAILED]),
    ("auth-not-offered", {}, AUTH_LOGIN, 69,
     ["msmtp: the server does not support authentication", SEND_FAILED]),
    ("auth-on-without-tls", {"auth": {"joe": "secret"}}, {**AUTH_LOGIN, "auth": True}, 69,
     ["msmtp: cannot use a secure authentication method", SEND_FAILED]),
]


@pytest.mark.parametrize(("case", "kwargs", "settings", "rc", "stderr"), OVERRIDE_CASES,
                         ids=[c[0] for c in OVERRIDE_CASES])
def test_msmtp_reply_overrides(server_factory, run_real_msmtp, tmp_path, case, kwargs, settings,
                               rc, stderr):
    srv = server_factory(**kwargs)
    res = run_real_msmtp(srv, ["r1@example.org", "r2@example.org"], **settings)
    assert (res.returncode, _stderr(res, tmp_path)) == (rc, stderr)
    assert res.seconds < 2
    srv.wait_idle()
    # msmtp does not say QUIT after an error (with one exception)
    assert srv.quit_received == (rc == 0 or case in QUITS_ANYWAY)
    if rc == 0:
        assert len(srv.messages) == 1
    if "ehlo_refused" in kwargs:
        assert srv.commands[:2] == ["EHLO localhost", "HELO localhost"]


# (mode, HostileServer options, exit code, first stderr line, input)
BIG = b"Subject: big\n\n" + (b"x" * 76 + b"\n") * 60000  # 4.6 MB: more than socket buffers
INVALID = "msmtp: the server sent an invalid reply"
EMPTY = "msmtp: the server sent an empty reply"
TIMED_OUT = "msmtp: network read error: the operation timed out"
EPIPE = "msmtp: network write error: Broken pipe"
TOO_LONG = "msmtp: Rejecting server reply that is longer than 50 lines. Increase SMTP_MAXLINES."
HOSTILE_CASES = [
    ("garbage", {}, 76, INVALID),
    ("garbage", {"at": "MAIL"}, 76, INVALID),
    ("huge_reply", {}, 76, INVALID),
    ("huge_reply", {"at": "EHLO"}, 76, INVALID),
    ("silent", {}, 74, TIMED_OUT),
    ("silent_after_greeting", {}, 74, TIMED_OUT),
    ("invalid_code", {}, 76, INVALID),
    ("invalid_code", {"at": "EOD"}, 76, INVALID),
    ("no_separator", {}, 76, INVALID),
    ("empty_line", {}, 76, INVALID),
    ("no_crlf_then_close", {}, 76, INVALID),
    ("no_crlf_then_hang", {}, 74, TIMED_OUT),
    ("long_line", {}, 76, INVALID),
    ("too_many_lines", {}, 76, TOO_LONG),
    ("too_many_lines", {"lines": 49}, 0, None),  # 50 lines: the most msmtp accepts
    ("too_many_lines", {"lines": 50}, 76, TOO_LONG),
    ("too_many_lines_greeting", {}, 76, TOO_LONG),
    ("lone_lf", {}, 0, None),
    ("trickle", {}, 0, None),
    ("drop_on_connect", {}, 76, EMPTY),
    ("drop_after_greeting", {}, 76, EMPTY),
    ("drop_after_ehlo", {}, 76, EMPTY),
    ("drop_after_mail", {}, 76, EMPTY),
    # msmtp sometimes writes DATA after the RST (a race, as in test_sendmail_failures'
    # RACES; seen once in a full run): either way it saw the reset
    ("drop_after_mail", {"reset": True}, 74,
     ("msmtp: network read error: Connection reset by peer",
      "msmtp: network write error: Connection reset by peer")),
    ("drop_after_rcpt", {}, 76, EMPTY),
    ("drop_after_data", {}, 74, EPIPE),  # with a big mail; a small one: see below
    ("drop_after_data", {"reset": True}, 74,
     "msmtp: network write error: Connection reset by peer"),
    ("drop_mid_data", {}, 74, EPIPE),
    ("drop_mid_data", {"reset": True}, 74, "msmtp: network write error: Connection reset by peer"),
    ("drop_after_eod", {}, 76, EMPTY),
    ("drop_after_eod", {"reset": True}, 74, "msmtp: network read error: Connection reset by peer"),
    ("drop_on_quit", {}, 0, None),
]


def test_hostile_cases_cover_every_mode():
    assert {c[0] for c in HOSTILE_CASES} == set(HOSTILE_MODES)
    assert {c[0] for c in HOSTILE_CASES if c[2]} == CLIENT_MUST_FAIL


@pytest.mark.parametrize(("mode", "options", "rc", "first_line"),
                         [c[:4] for c in HOSTILE_CASES],
                         ids=[c[0] + "".join(f"-{k}={v}" for k, v in c[1].items())
                              for c in HOSTILE_CASES])
def test_msmtp_against_hostile_server(hostile_server, run_real_msmtp, tmp_path, mode,
                                      options, rc, first_line):
    srv = hostile_server(mode, **options)
    big = mode in ("drop_after_data", "drop_mid_data")
    res = run_real_msmtp(srv, ["r1@example.org"], input=BIG if big else MAIL, timeout=2,
                         run_timeout=10)
    lines = _stderr(res, tmp_path)
    assert res.returncode == rc, res.stderr
    assert res.seconds < 3.5
    if isinstance(first_line, tuple):  # a race in msmtp: one of these
        assert len(lines) == 2 and lines[0] in first_line and lines[1] == SEND_FAILED, lines
    elif rc:
        assert lines == [first_line, SEND_FAILED]
    else:
        assert lines == []
        srv.wait_idle()
        assert len(srv.messages) == 1


def test_drop_after_354_with_a_small_mail_is_a_race(hostile_server, run_real_msmtp, tmp_path):
    """Whether msmtp's write of a small mail or its read of the reply notices the closed
    connection first depends on scheduling (nearly always the write)."""
    srv = hostile_server("drop_after_data")
    res = run_real_msmtp(srv, ["r1@example.org"], input=MAIL)
    assert (res.returncode, _stderr(res, tmp_path)[0]) in {(74, EPIPE), (76, EMPTY)}


def test_mid_data_drop_really_is_mid_data(hostile_server, run_real_msmtp):
    srv = hostile_server("drop_mid_data", data_bytes=5000)
    res = run_real_msmtp(srv, ["r@example.org"], input=BIG)
    assert res.returncode == 74
    srv.wait_idle()
    (msg,) = srv.transactions
    assert 5000 <= msg.raw.size < len(BIG) and not msg.complete


# -- the delaying proxy --------------------------------------------------------------------

@pytest.mark.parametrize(("caps", "round_trips"), [
    (["PIPELINING"], 4),  # EHLO | MAIL RCPT RCPT DATA | data + "." | QUIT
    ([], 7),  # EHLO | MAIL | RCPT | RCPT | DATA | data + "." | QUIT
])
def test_proxy_counts_round_trips(server_factory, delay_proxy, run_real_msmtp, caps,
                                  round_trips):
    srv = server_factory(capabilities=caps)
    proxy = delay_proxy(srv, delay=0.03)
    res = run_real_msmtp(proxy, ["r1@example.org", "r2@example.org"])
    assert res.returncode == 0, res.stderr
    proxy.wait_idle()
    srv.wait_idle()
    assert proxy.round_trips == round_trips
    conn = proxy.connection
    assert conn.bursts[0] == b"EHLO localhost\r\n"
    assert conn.bursts[-1] == b"QUIT\r\n"
    # each round trip crosses the proxy twice; the greeting once more
    assert res.seconds >= (2 * round_trips + 1) * 0.03
    assert srv.message.recipients == ["r1@example.org", "r2@example.org"]


def test_proxy_over_unix_socket_and_smtplib(server_factory, tmp_path):
    srv = server_factory(unix_path=tmp_path / "s.sock")
    with DelayProxy(srv, delay=0.01) as proxy:
        with smtplib.SMTP(proxy.host, proxy.port, timeout=5) as s:
            s.sendmail("a@x", ["b@x"], b"Subject: p\r\n\r\nproxied\r\n")
        proxy.wait_idle()
    srv.wait_idle()
    assert srv.message.data_bytes().endswith(b"proxied\r\n")
    assert proxy.connection.bytes_up == len(srv.transcript)
