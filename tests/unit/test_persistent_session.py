"""The sans-IO core of a kept connection (msmtp_twisted.smtp.persistent), driven by
a scripted driver: no reactor, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from msmtp_twisted.errors import Cause, SMTPFailure
from msmtp_twisted.smtp.client import (
    RECEIVE,
    SEND_BODY,
    START_TLS,
    AuthRequest,
    Delivered,
    Send,
)
from msmtp_twisted.smtp.persistent import (
    NEXT_JOB,
    QUIT_JOB,
    ConnectionState,
    EtrnJob,
    JobDone,
    MailJob,
    SessionSetup,
    check_dsn,
    persistent_session,
    xtext,
)
from msmtp_twisted.smtp.reply import Reply

EHLO = ["250-mx.test", "250-PIPELINING", "250-DSN", "250-ETRN", "250 AUTH PLAIN"]


def reply(text: str | list[str]) -> Reply:
    lines = tuple([text] if isinstance(text, str) else text)
    return Reply(int(lines[0][:3]), lines)


class Script:
    """Runs a persistent session: replies are consumed in order at RECEIVE, jobs
    at NEXT_JOB; records the commands sent (one list per flush) and the outcomes."""

    def __init__(self, setup: SessionSetup | None = None) -> None:
        self.state = ConnectionState()
        self.gen = persistent_session(setup or SessionSetup(), self.state)
        self.flushes: list[list[str]] = []
        self.pending: list[str] = []
        self.outcomes: list[JobDone] = []
        self.error: SMTPFailure | None = None
        self.ended = False
        self.idle = False
        self.final_dot_states: list[bool] = []

    def run(self, replies: list[Any], jobs: list[Any], body: Any = 42) -> Script:
        value: Any = None
        replies = list(replies)
        jobs = list(jobs)
        while True:
            try:
                action = self.gen.send(value)
            except StopIteration:
                self.ended = True
                return self
            except SMTPFailure as e:
                self.error = e
                return self
            value = None
            if isinstance(action, Send):
                self.pending.append(action.data.decode().rstrip("\r\n"))
            elif action is RECEIVE:
                if self.pending:
                    self.flushes.append(self.pending)
                    self.pending = []
                if not replies:
                    return self  # waiting for the server
                value = reply(replies.pop(0))
            elif action is SEND_BODY:
                self.flushes.append(self.pending + ["<body>"])
                self.pending = []
                value = body
            elif action is START_TLS:
                pass
            elif action is NEXT_JOB:
                if self.pending:
                    self.flushes.append(self.pending)
                    self.pending = []
                if not jobs:
                    self.idle = True
                    return self
                value = jobs.pop(0)
            elif isinstance(action, JobDone):
                self.outcomes.append(action)
                self.final_dot_states.append(self.state.final_dot_sent)
            else:
                raise AssertionError(action)

    @property
    def commands(self) -> list[str]:
        return [c for f in self.flushes for c in f]


GREETED = ["220 hi", EHLO]


def mail(*rcpts: str, **kw: Any) -> MailJob:
    return MailJob("me@x", tuple(rcpts) or ("a@x",), **kw)


def test_many_mails_on_one_connection_pipelined() -> None:
    s = Script().run(GREETED + ["250 ok", "250 ok", "354 go", "250 one",
                                "250 ok", "250 ok", "354 go", "250 two"],
                     [mail(), mail("b@x"), QUIT_JOB])
    assert s.ended and s.error is None
    assert s.flushes == [
        ["EHLO localhost"],
        ["MAIL FROM:<me@x>", "RCPT TO:<a@x>", "DATA"], ["<body>"], ["."],
        ["MAIL FROM:<me@x>", "RCPT TO:<b@x>", "DATA"], ["<body>"], ["."],
    ]
    results = [o.result for o in s.outcomes]
    assert all(isinstance(r, Delivered) for r in results)
    assert [r.reply.lines for r in results] == [("250 one",), ("250 two",)]
    assert results[1].recipients == (("b@x", reply("250 ok")),)
    assert s.final_dot_states == [True, True]


def test_waits_for_the_next_job_after_setup_and_after_each_mail() -> None:
    s = Script().run(GREETED, [])
    assert s.idle and s.state.ready and s.state.capabilities.pipelining
    s = Script().run(GREETED + ["250 ok", "250 ok", "354 go", "250 done"], [mail()])
    assert s.idle and len(s.outcomes) == 1 and s.state.reusable


def test_refused_recipient_fails_the_job_and_rset_comes_before_the_next_mail() -> None:
    s = Script().run(GREETED + ["250 ok", "550 no such user", "554 no valid recipients",
                                "250 reset", "250 ok", "250 ok", "354 go", "250 done"],
                     [mail("bad@x"), mail("good@x"), QUIT_JOB])
    first, second = s.outcomes
    assert first.failure is not None and first.failure.reply.code == 550
    assert first.failure.message == "recipient address bad@x not accepted by the server"
    assert first.failure.recipients == [("bad@x", reply("550 no such user"))]
    assert isinstance(second.result, Delivered)
    assert s.flushes[2:] == [["RSET"], ["MAIL FROM:<me@x>", "RCPT TO:<good@x>", "DATA"],
                             ["<body>"], ["."]]
    assert s.ended and s.error is None


def test_refused_mail_from_is_a_job_failure() -> None:
    s = Script().run(GREETED + ["553 not you", "503 need MAIL", "503 need RCPT"], [mail()])
    assert s.outcomes[0].failure.message == \
        "envelope from address me@x not accepted by the server"
    assert s.state.reusable and s.state.transaction_open and s.idle


def test_partial_recipients() -> None:
    s = Script().run(GREETED + ["250 ok", "250 ok", "550 no", "354 go", "250 done"],
                     [mail("a@x", "bad@x", partial_recipients=True)])
    result = s.outcomes[0].result
    assert isinstance(result, Delivered)
    assert result.accepted == ("a@x",)
    assert [(r, rep.code) for r, rep in result.refused] == [("bad@x", 550)]


def test_data_accepted_after_refused_recipient_closes_without_dot_or_quit() -> None:
    s = Script().run(GREETED + ["250 ok", "250 ok", "550 no", "354 go"],
                     [mail("a@x", "bad@x")])
    assert s.error is not None and s.error.quit is False
    assert s.error.message == "recipient address bad@x not accepted by the server"
    assert not s.state.reusable
    assert "." not in s.commands and "<body>" not in s.commands


def test_421_ends_the_connection() -> None:
    s = Script().run(GREETED + ["421 closing", "421 closing", "421 closing"], [mail()])
    assert s.error is not None and s.error.reply.code == 421 and not s.error.quit
    assert not s.state.reusable and not s.state.final_dot_sent
    assert s.state.replies_read == 3


def test_refused_mail_after_the_dot_keeps_the_connection() -> None:
    s = Script().run(GREETED + ["250 ok", "250 ok", "354 go", "554 spam"], [mail()])
    failure = s.outcomes[0].failure
    assert failure is not None and failure.message == "the server did not accept the mail"
    assert s.state.reusable and s.idle and not s.state.transaction_open


def test_reply_during_the_body_ends_the_connection() -> None:
    s = Script().run(GREETED + ["250 ok", "250 ok", "354 go"], [mail()],
                     body=reply("552 too big"))
    assert s.error is not None and s.error.reply.code == 552
    assert not s.state.final_dot_sent and not s.state.reusable


def test_dsn_per_mail_with_envid_as_xtext() -> None:
    s = Script().run(GREETED + ["250 ok", "250 ok", "354 go", "250 done"],
                     [mail(notify="success,failure", ret="hdrs", envid="id+1=x y")])
    assert s.flushes[1] == ["MAIL FROM:<me@x> RET=HDRS ENVID=id+2B1+3Dx+20y",
                            "RCPT TO:<a@x> NOTIFY=SUCCESS,FAILURE", "DATA"]


def test_dsn_refused_when_the_server_lacks_it_and_nothing_is_sent() -> None:
    s = Script().run(["220 hi", ["250-mx", "250 PIPELINING"]], [mail(notify="NEVER")])
    failure = s.outcomes[0].failure
    assert failure is not None and failure.cause is Cause.UNSUPPORTED
    assert failure.message == "the server does not support DSN"
    assert s.commands == ["EHLO localhost"] and s.state.reusable


def test_check_dsn() -> None:
    check_dsn("NEVER", "FULL", "abc")
    check_dsn("delay, success", None, None)
    for bad in ("NEVER,SUCCESS", "SOMETIMES", "", "DELAY,DELAY"):
        with pytest.raises(ValueError):
            check_dsn(bad, None, None)
    with pytest.raises(ValueError):
        check_dsn(None, "ALL", None)
    for bad in ("", "x" * 101, "caf\u00e9", "tab\there"):
        with pytest.raises(ValueError):
            check_dsn(None, None, bad)
    assert xtext("a+b=c d~") == "a+2Bb+3Dc+20d~"


def test_without_pipelining_one_command_at_a_time() -> None:
    s = Script().run(["220 hi", "250 mx", "250 ok", "550 no"], [mail("bad@x")])
    assert s.flushes == [["EHLO localhost"], ["MAIL FROM:<me@x>"], ["RCPT TO:<bad@x>"]]
    assert s.outcomes[0].failure.reply.code == 550 and s.state.reusable


def test_lmtp_per_recipient_replies() -> None:
    setup = SessionSetup(protocol="lmtp")
    s = Script(setup).run(["220 hi", EHLO, "250 ok", "250 ok", "250 ok", "354 go",
                           "250 a delivered", "452 b over quota"],
                          [mail("a@x", "b@x"), QUIT_JOB])
    failure = s.outcomes[0].failure
    assert failure is not None
    assert [(f.recipient, f.reply.code) for f in failure.lmtp_failures] == [("b@x", 452)]
    assert [(r, rep.code) for r, rep in failure.lmtp_replies] == [("a@x", 250), ("b@x", 452)]
    assert s.flushes[0] == ["LHLO localhost"]
    # with partial recipients a partly failed delivery is a result, with who got it
    s = Script(setup).run(["220 hi", EHLO, "250 ok", "250 ok", "250 ok", "354 go",
                           "250 a delivered", "452 b over quota"],
                          [mail("a@x", "b@x", partial_recipients=True)])
    result = s.outcomes[0].result
    assert isinstance(result, Delivered) and result.reply is None
    assert result.accepted == ("a@x",)
    assert [(r, rep.code) for r, rep in result.refused] == [("b@x", 452)]


def test_etrn_job() -> None:
    s = Script().run(GREETED + ["250 queue started", "458 cannot"],
                     [EtrnJob("example.org"), EtrnJob("@x")])
    assert s.outcomes[0].result == reply("250 queue started")
    assert s.outcomes[1].failure.message == "the server is unable to fulfill the request"
    assert s.commands[-2:] == ["ETRN example.org", "ETRN @x"]


def test_starttls_and_auth_once_before_the_jobs() -> None:
    setup = SessionSetup(starttls=True, auth=AuthRequest(mechanism="PLAIN", user="u",
                                                          password="p", tls=True))
    s = Script(setup).run(["220 hi", ["250-mx", "250 STARTTLS"], "220 go", EHLO, "235 ok",
                           "250 ok", "250 ok", "354 go", "250 done"], [mail()])
    assert s.commands[:4] == ["EHLO localhost", "STARTTLS", "EHLO localhost",
                              "AUTH PLAIN AHUAcA=="]
    assert isinstance(s.outcomes[0].result, Delivered)


def test_setup_failure_is_raised() -> None:
    s = Script().run(["554 go away"], [mail()])
    assert s.error is not None and s.error.message == "cannot get initial OK message from server"


def test_too_long_address_fails_the_job_before_anything_is_sent() -> None:
    s = Script().run(GREETED, [mail("a" * 5000 + "@x")])
    assert s.outcomes[0].failure.cause is Cause.LOCAL
    assert s.commands == ["EHLO localhost"] and s.idle
