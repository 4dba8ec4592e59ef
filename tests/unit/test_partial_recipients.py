"""``SendmailRequest.partial_recipients``: the sans-IO session goes on past a refused
RCPT (Twisted's sender factories' behaviour), keeps every RCPT reply, and stays
correct when the envelope is pipelined.  Off (msmtp), nothing changes."""

from __future__ import annotations

from msmtp_twisted import sysexits
from msmtp_twisted.smtp.client import Delivered, SendmailRequest, SMTPFailure, sendmail_session
from tests.unit.test_smtp_client import drive

EHLO_PIPELINING = "250-mx\n250 PIPELINING"
EHLO_PLAIN = "250 mx"
RCPTS = ("a@x", "bad@x", "b@x")


def request(partial: bool = True, protocol: str = "smtp",
            recipients: tuple[str, ...] = RCPTS) -> SendmailRequest:
    return SendmailRequest(envelope_from="me@x", recipients=recipients, protocol=protocol,
                           partial_recipients=partial)


def codes(pairs) -> list[tuple[str, int]]:
    return [(rcpt, reply.code) for rcpt, reply in pairs]


def test_pipelined_refusal_goes_on() -> None:
    flights, result = drive(sendmail_session(request()), [
        "220 hi", EHLO_PIPELINING, "250 ok", "250 ok", "550 no", "250 ok", "354 go",
        "250 queued", "221 bye"])
    assert isinstance(result, Delivered)
    assert codes(result.recipients) == [("a@x", 250), ("bad@x", 550), ("b@x", 250)]
    # one flight for the whole envelope, as without the flag
    assert flights[1] == ["MAIL FROM:<me@x>", "RCPT TO:<a@x>", "RCPT TO:<bad@x>",
                          "RCPT TO:<b@x>", "DATA"]


def test_one_by_one_refusal_goes_on() -> None:
    flights, result = drive(sendmail_session(request()), [
        "220 hi", EHLO_PLAIN, "250 ok", "250 ok", "550 no", "250 ok", "354 go",
        "250 queued", "221 bye"])
    assert isinstance(result, Delivered)
    assert codes(result.recipients) == [("a@x", 250), ("bad@x", 550), ("b@x", 250)]
    assert flights[1:6] == [["MAIL FROM:<me@x>"], ["RCPT TO:<a@x>"], ["RCPT TO:<bad@x>"],
                            ["RCPT TO:<b@x>"], ["DATA"]]


def test_without_the_flag_the_first_refusal_ends_it() -> None:
    """msmtp's behaviour, unchanged: no QUIT, later pipelined replies unread."""
    flights, result = drive(sendmail_session(request(partial=False)), [
        "220 hi", EHLO_PIPELINING, "250 ok", "250 ok", "550 no", "250 ok", "503 no rcpt"])
    assert isinstance(result, SMTPFailure)
    assert result.message == "recipient address bad@x not accepted by the server"
    assert result.exitcode == sysexits.EX_DATAERR
    assert result.quit is False
    assert codes(result.recipients) == [("a@x", 250), ("bad@x", 550)]


def test_none_accepted_without_pipelining_sends_no_data() -> None:
    flights, result = drive(sendmail_session(request(recipients=("bad@x", "worse@x"))), [
        "220 hi", EHLO_PLAIN, "250 ok", "550 no", "551 never"])
    assert isinstance(result, SMTPFailure)
    assert ["DATA"] not in flights
    assert result.message == "recipient address bad@x not accepted by the server"
    assert result.quit is True  # the server is between commands: QUIT is polite
    assert codes(result.recipients) == [("bad@x", 550), ("worse@x", 551)]


def test_none_accepted_pipelined_and_data_refused() -> None:
    flights, result = drive(sendmail_session(request(recipients=("bad@x",))), [
        "220 hi", EHLO_PIPELINING, "250 ok", "550 no", "554 no valid recipients"])
    assert isinstance(result, SMTPFailure)
    assert result.quit is True
    assert codes(result.recipients) == [("bad@x", 550)]
    assert "<body>" not in sum(flights, [])


def test_none_accepted_pipelined_but_data_accepted_gets_a_lone_dot() -> None:
    """RFC 2920, 3.1: the client sends just the dot, never the mail."""
    flights, result = drive(sendmail_session(request(recipients=("bad@x",))), [
        "220 hi", EHLO_PIPELINING, "250 ok", "550 no", "354 go", "554 nothing to deliver"])
    assert isinstance(result, SMTPFailure)
    assert flights[-1] == ["."]
    assert "<body>" not in sum(flights, [])
    assert result.quit is True


def test_refused_sender_reads_the_whole_pipelined_group() -> None:
    """All replies of the group are read before the failure, so QUIT's reply is
    QUIT's, not a stale RCPT reply."""
    session = sendmail_session(request())
    flights, result = drive(session, [
        "220 hi", EHLO_PIPELINING, "553 not you", "503 need MAIL", "503 need MAIL",
        "503 need MAIL", "503 need MAIL"])
    assert isinstance(result, SMTPFailure)
    assert result.message == "envelope from address me@x not accepted by the server"
    assert result.quit is True


def test_data_refused_carries_the_recipients() -> None:
    flights, result = drive(sendmail_session(request()), [
        "220 hi", EHLO_PIPELINING, "250 ok", "250 ok", "550 no", "250 ok", "451 later"])
    assert isinstance(result, SMTPFailure)
    assert result.message == "the server does not accept mail data"
    assert codes(result.recipients) == [("a@x", 250), ("bad@x", 550), ("b@x", 250)]


def test_lmtp_reads_one_reply_per_accepted_recipient() -> None:
    flights, result = drive(sendmail_session(request(protocol="lmtp")), [
        "220 hi", "250-mx\n250 PIPELINING", "250 ok", "250 ok", "550 no", "250 ok", "354 go",
        "250 a ok", "250 b ok"])
    assert isinstance(result, Delivered)
    assert codes(result.recipients) == [("a@x", 250), ("bad@x", 550), ("b@x", 250)]


def test_delivered_carries_the_replies_without_the_flag_too() -> None:
    flights, result = drive(sendmail_session(request(partial=False, recipients=("a@x",))), [
        "220 hi", EHLO_PIPELINING, "250 ok", "251 forwarded", "354 go", "250 queued",
        "221 bye"])
    assert isinstance(result, Delivered)
    assert codes(result.recipients) == [("a@x", 251)]
