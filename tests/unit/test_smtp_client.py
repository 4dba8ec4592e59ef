"""The sans-IO SMTP/LMTP client sessions, driven by scripted server replies."""

from __future__ import annotations

import pytest

from msmtp_twisted import sysexits
from msmtp_twisted.smtp.client import (
    RECEIVE,
    SEND_BODY,
    START_TLS,
    Delivered,
    Send,
    SendmailRequest,
    SMTPFailure,
    etrn_session,
    parse_capabilities,
    sendmail_session,
)
from msmtp_twisted.smtp.reply import Reply, ReplyError, ReplyReader


def R(text: str) -> Reply:
    """A reply from its wire form ("250-a\\n250 b")."""
    replies = ReplyReader().feed(text.replace("\n", "\r\n").encode() + b"\r\n")
    assert len(replies) == 1
    return replies[0]


def drive(session, replies: list[str], mailsize: int = 42):
    """Run a session; returns (flights, result-or-failure). A flight is the list of
    commands sent before one RECEIVE: pipelining shows as a flight of several."""
    flights: list[list[str]] = []
    pending: list[str] = []
    script = list(replies)
    value = None
    while True:
        try:
            action = session.send(value)
        except StopIteration as stop:
            if pending:
                flights.append(pending)
            return flights, stop.value
        except SMTPFailure as failure:
            if pending:
                flights.append(pending)
            return flights, failure
        value = None
        if isinstance(action, Send):
            pending.append(action.data.decode().rstrip("\r\n"))
        elif action is RECEIVE:
            if pending:
                flights.append(pending)
                pending = []
            value = R(script.pop(0))
        elif action is SEND_BODY:
            if pending:
                flights.append(pending)
                pending = []
            flights.append(["<body>"])
            value = mailsize
        elif action is START_TLS:
            flights.append(["<tls>"])


EHLO_PIPE = "250-mail.example\n250-PIPELINING\n250-DSN\n250 SIZE 1000"
EHLO_PLAIN = "250-mail.example\n250 8BITMIME"


def req(**kw) -> SendmailRequest:
    base = dict(envelope_from="me@example.com", recipients=("a@x", "b@x"))
    base.update(kw)
    return SendmailRequest(**base)


def test_pipelined_delivery() -> None:
    flights, result = drive(
        sendmail_session(req()),
        ["220 hi", EHLO_PIPE, "250 ok", "250 ok", "250 ok", "354 go", "250 queued", "221 bye"],
    )
    assert flights == [
        ["EHLO localhost"],
        ["MAIL FROM:<me@example.com>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA"],
        ["<body>"],
        ["."],
    ]
    assert isinstance(result, Delivered)
    assert result.reply.lines == ("250 queued",)
    assert result.mailsize == 42


def test_without_pipelining_one_command_per_round_trip() -> None:
    flights, result = drive(
        sendmail_session(req()),
        ["220 hi", EHLO_PLAIN, "250 ok", "250 ok", "250 ok", "354 go", "250 queued"],
    )
    assert flights[1:5] == [["MAIL FROM:<me@example.com>"], ["RCPT TO:<a@x>"],
                            ["RCPT TO:<b@x>"], ["DATA"]]
    assert isinstance(result, Delivered)


def test_pipelining_groups_of_100() -> None:
    rcpts = tuple(f"r{i}@x" for i in range(150))
    replies = ["220 hi", EHLO_PIPE] + ["250 ok"] * 151 + ["354 go", "250 ok"]
    flights, result = drive(sendmail_session(req(recipients=rcpts)), replies)
    assert [len(f) for f in flights[1:3]] == [100, 52]
    assert isinstance(result, Delivered)


def test_helo_fallback_and_failure() -> None:
    flights, result = drive(
        sendmail_session(req(recipients=("a@x",))),
        ["220 hi", "502 no EHLO", "250 hello", "250 ok", "250 ok", "354 go", "250 ok"],
    )
    assert flights[:2] == [["EHLO localhost"], ["HELO localhost"]]
    assert isinstance(result, Delivered)
    flights, failure = drive(sendmail_session(req()), ["220 hi", "502 no", "502 no"])
    assert failure.exitcode == sysexits.EX_PROTOCOL
    assert failure.message == "SMTP server does not accept EHLO or HELO commands"
    assert failure.reply.lines == ("502 no",)
    assert not failure.quit


@pytest.mark.parametrize(
    ("replies", "exitcode", "message"),
    [
        (["554 go away"], sysexits.EX_PROTOCOL, "cannot get initial OK message from server"),
        (["220 hi", EHLO_PLAIN, "451 later"], sysexits.EX_UNAVAILABLE,
         "envelope from address me@example.com not accepted by the server"),
        (["220 hi", EHLO_PLAIN, "553 bad sender"], sysexits.EX_DATAERR,
         "envelope from address me@example.com not accepted by the server"),
        (["220 hi", EHLO_PLAIN, "250 ok", "550 no user"], sysexits.EX_DATAERR,
         "recipient address a@x not accepted by the server"),
        (["220 hi", EHLO_PLAIN, "250 ok", "250 ok", "450 busy"], sysexits.EX_UNAVAILABLE,
         "recipient address b@x not accepted by the server"),
        (["220 hi", EHLO_PLAIN, "250 ok", "250 ok", "251 forwarded", "554 no data"],
         sysexits.EX_DATAERR, "the server does not accept mail data"),
        (["220 hi", EHLO_PLAIN, "250 ok", "250 ok", "250 ok", "354 go", "452 full"],
         sysexits.EX_UNAVAILABLE, "the server did not accept the mail"),
    ],
)
def test_refusals(replies, exitcode, message) -> None:
    _, failure = drive(sendmail_session(req()), replies)
    assert isinstance(failure, SMTPFailure)
    assert (failure.exitcode, failure.message) == (exitcode, message)
    assert failure.reply.lines == (replies[-1],)
    assert not failure.quit  # msmtp just closes after a refusal


def test_pipelined_refusal_stops_reading() -> None:
    # RCPT a@x refused: msmtp stops at once, the DATA reply is never read
    flights, failure = drive(sendmail_session(req()),
                             ["220 hi", EHLO_PIPE, "250 ok", "550 no", "250 ok", "354 go"])
    assert failure.message == "recipient address a@x not accepted by the server"


def test_dsn_parameters_and_missing_dsn() -> None:
    flights, result = drive(
        sendmail_session(req(recipients=("a@x",), dsn_notify="SUCCESS,DELAY", dsn_return="HDRS")),
        ["220 hi", EHLO_PIPE, "250 ok", "250 ok", "354 go", "250 ok"],
    )
    assert flights[1][:2] == ["MAIL FROM:<me@example.com> RET=HDRS",
                              "RCPT TO:<a@x> NOTIFY=SUCCESS,DELAY"]
    _, failure = drive(sendmail_session(req(dsn_notify="NEVER")), ["220 hi", EHLO_PLAIN])
    assert (failure.exitcode, failure.message, failure.quit) == (
        sysexits.EX_UNAVAILABLE, "the server does not support DSN", True)


def test_null_sender_spellings() -> None:
    for sender in ("", "MAILER-DAEMON", "mailer-daemon"):
        flights, _ = drive(sendmail_session(req(envelope_from=sender, recipients=("a@x",))),
                           ["220 hi", EHLO_PLAIN, "250 ok", "250 ok", "354 go", "250 ok"])
        assert flights[1] == ["MAIL FROM:<>"]


def test_lmtp_per_recipient_replies() -> None:
    flights, failure = drive(
        sendmail_session(req(protocol="lmtp", recipients=("a@x", "full@x", "c@x"))),
        ["220 lmtp", "250-x\n250 PIPELINING", "250 ok", "250 ok", "250 ok", "250 ok",
         "354 go", "250 saved", "552 5.2.2 quota", "250 saved"],
    )
    assert flights[0] == ["LHLO localhost"]
    assert failure.exitcode == sysexits.EX_UNAVAILABLE
    assert [(f.recipient, f.reply.lines) for f in failure.lmtp_failures] == [
        ("full@x", ("552 5.2.2 quota",))]
    assert failure.lmtp_failures[0].message == "the server refuses to send the mail to full@x"
    flights, result = drive(
        sendmail_session(req(protocol="lmtp", recipients=("a@x",))),
        ["220 lmtp", "250 x", "250 ok", "250 ok", "354 go", "250 saved"],
    )
    assert isinstance(result, Delivered) and result.reply is None
    _, failure = drive(sendmail_session(req(protocol="lmtp")), ["220 lmtp", "500 what"])
    assert failure.message == "command LHLO failed"


def test_starttls_flow_and_refusals() -> None:
    ehlo_tls = "250-x\n250 STARTTLS"
    flights, result = drive(
        sendmail_session(req(recipients=("a@x",), starttls=True)),
        ["220 hi", ehlo_tls, "220 go ahead", EHLO_PLAIN, "250 ok", "250 ok", "354 go", "250 ok"],
    )
    assert flights[:4] == [["EHLO localhost"], ["STARTTLS"], ["<tls>"], ["EHLO localhost"]]
    assert isinstance(result, Delivered)
    _, failure = drive(sendmail_session(req(starttls=True)), ["220 hi", EHLO_PLAIN])
    assert failure.message == "the server does not support TLS via the STARTTLS command"
    assert failure.quit and failure.exitcode == sysexits.EX_UNAVAILABLE
    _, failure = drive(sendmail_session(req(starttls=True)), ["220 hi", ehlo_tls, "454 no"])
    assert (failure.message, failure.exitcode) == ("command STARTTLS failed",
                                                   sysexits.EX_PROTOCOL)


def test_too_long_command_is_refused_before_sending() -> None:
    _, failure = drive(sendmail_session(req(recipients=("x" * 5000,))),
                       ["220 hi", EHLO_PLAIN])
    assert failure.exitcode == sysexits.EX_DATAERR
    assert failure.message.startswith("Cannot send command because it is longer than 4094")


@pytest.mark.parametrize("request_", [
    req(envelope_from="a@b>\r\nRCPT TO:<evil@z"),
    req(envelope_from="a@b>\nRCPT TO:<evil@z"),
    req(recipients=("x@y", "x@y>\rRCPT TO:<evil@z")),
    req(recipients=("x@y>\r\nDATA\r\nFrom: forged",)),
], ids=["sender CRLF", "sender LF", "recipient CR", "recipient CRLF"])
def test_line_break_in_a_command_is_refused_before_sending(request_: SendmailRequest) -> None:
    # msmtp 1.8.23 sends it, which makes one address a second command
    flights, failure = drive(sendmail_session(request_), ["220 hi", EHLO_PIPE, "250 ok"])
    assert isinstance(failure, SMTPFailure)
    assert failure.exitcode == sysexits.EX_DATAERR
    assert failure.message == ("Cannot send command because it contains a line break "
                               "(CR or LF).")
    sent = [c for flight in flights for c in flight]
    assert not any("evil" in c or "DATA" in c for c in sent)


@pytest.mark.parametrize(
    ("reply", "exitcode", "message"),
    [
        ("250 Queuing started", 0, None),
        ("459 not allowed", sysexits.EX_UNAVAILABLE,
         "the server is unable to fulfill the request"),
        ("501 syntax", sysexits.EX_DATAERR,
         "invalid argument for Remote Message Queue Starting"),
        ("421 closing", sysexits.EX_PROTOCOL, "command ETRN failed"),
    ],
)
def test_etrn(reply, exitcode, message) -> None:
    flights, result = drive(etrn_session("smtp", "localhost", "@example.net"),
                            ["220 hi", "250-x\n250 ETRN", reply])
    assert flights[1] == ["ETRN @example.net"]
    if exitcode == 0:
        assert isinstance(result, Delivered)
    else:
        assert (result.exitcode, result.message) == (exitcode, message)


def test_etrn_not_offered() -> None:
    _, failure = drive(etrn_session("smtp", "localhost", "x"), ["220 hi", EHLO_PLAIN])
    assert failure.message == "the server does not support Remote Message Queue Starting"
    assert failure.quit


def test_capabilities() -> None:
    caps = parse_capabilities(R(
        "250-mail\n250-pipelining\n250-SIZE 1000\n250-AUTH=LOGIN\n250-AUTH PLAIN CRAM-MD5\n"
        "250-DSN\n250-ETRN\n250 STARTTLS"))
    assert caps.pipelining and caps.dsn and caps.etrn and caps.starttls and caps.auth
    assert caps.size == 1000
    assert caps.auth_mechanisms == ["LOGIN", "PLAIN", "CRAM-MD5"]
    assert parse_capabilities(R("250-x\n250 SIZE")).size is None


class TestReplyReader:
    def test_multiline_and_split_feeds(self) -> None:
        reader = ReplyReader()
        assert reader.feed(b"250-a\r\n25") == []
        assert reader.pending
        (reply,) = reader.feed(b"0 b\n")
        assert reply == Reply(250, ("250-a", "250 b"))
        assert not reader.pending

    def test_status_from_first_line(self) -> None:
        (reply,) = ReplyReader().feed(b"451-a\r\n250 b\r\n")
        assert reply.code == 451

    @pytest.mark.parametrize("data", [b"25 x\r\n", b"abc ok\r\n", b"250x\r\n", b"250\r\n",
                                      b"x" * 1023, b"250 " + b"x" * 1020 + b"\r\n"])
    def test_invalid(self, data: bytes) -> None:
        with pytest.raises(ReplyError, match="the server sent an invalid reply"):
            ReplyReader().feed(data)

    def test_longest_line_accepted(self) -> None:
        # 1023 bytes with CRLF: what fits in msmtp's 1024-byte buffer
        (reply,) = ReplyReader().feed(b"250 " + b"x" * 1017 + b"\r\n")
        assert reply.code == 250

    def test_fifty_lines_max(self) -> None:
        assert ReplyReader().feed(b"250-x\r\n" * 49 + b"250 y\r\n")[0].code == 250
        with pytest.raises(ReplyError, match="longer than 50 lines"):
            ReplyReader().feed(b"250-x\r\n" * 50 + b"250 y\r\n")

    def test_eof_errors(self) -> None:
        assert str(ReplyReader().eof_error()) == "the server sent an empty reply"
        reader = ReplyReader()
        reader.feed(b"250-partial\r\n")
        assert str(reader.eof_error()) == "the server sent an invalid reply"


@pytest.mark.parametrize(("line", "size"), [
    ("SIZE 1000", 1000), ("SIZE 0", 0), ("SIZE -0", 0), ("SIZE +7", 7), ("SIZE  7", 7),
    ("SIZE\t7", 7), ("SIZE7", 7), ("SIZE 007", 7), ("SIZE 9223372036854775807", 2**63 - 1),
    ("SIZE", None), ("SIZE -5", None), ("SIZE 7 ", None), ("SIZE 7 x", None),
    ("SIZE 0x10", None), ("SIZE=7", None), ("SIZE 9223372036854775808", None),
    ("SIZE \u0667", None),  # a digit to Python, not to C
])
def test_size_is_read_as_strtol_reads_it(line: str, size: int | None) -> None:
    # msmtp 1.8.23 takes the number as strtol() gives it (tests/integration/
    # test_serverinfo_capabilities.py compares --serverinfo with it)
    assert parse_capabilities(R(f"250-mx\n250 {line}")).size == size
