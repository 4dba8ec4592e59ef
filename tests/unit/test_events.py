"""The log events of the delivery layer (msmtp_twisted.sending.events)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import Cause, SMTPFailure
from msmtp_twisted.sending.events import observe_delivery
from msmtp_twisted.smtp.client import AuthRequest, Delivered, SendmailRequest
from msmtp_twisted.smtp.reply import Reply


def _events(run: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "msmtp_twisted":
            seen.append(dict(event, text=formatEvent(event)))
    globalLogPublisher.addObserver(observe)
    try:
        run()
    finally:
        globalLogPublisher.removeObserver(observe)
    return seen


def _setup() -> tuple[Account, SendmailRequest]:
    account = Account("work")
    account.host = "mx.test"
    request = SendmailRequest(
        "me@example.org", ("a@x.org",),
        auth=AuthRequest(mechanism="PLAIN", user="joe", password="Sekr1t", host="mx.test",
                         port=25, tls=False, ntlmdomain=None))
    return account, request


def test_cancelled_send_is_a_failed_event_and_the_failure_passes_through() -> None:
    account, request = _setup()
    d: defer.Deferred[Any] = defer.Deferred()
    outcome: list[Any] = []

    def run() -> None:
        observe_delivery(d, account, request).addErrback(outcome.append)
        d.cancel()
    [event] = _events(run)
    assert event["msmtp_event"] == "failed" and event["cause"] == "cancelled"
    assert outcome[0].check(defer.CancelledError)
    assert "Sekr1t" not in repr(event)


def test_lmtp_delivery_names_each_recipients_reply() -> None:
    account, request = _setup()
    delivered = Delivered(reply=None, mailsize=42,
                          recipients=(("a@x.org", Reply(250, ("250 2.1.5 Ok",))),))
    out: list[Any] = []
    [event] = _events(lambda: observe_delivery(defer.succeed(delivered), account,
                                               request).addCallback(out.append))
    assert out == [delivered]
    assert event["text"] == "delivered mail from me@example.org to a@x.org (42 bytes): a@x.org: 250"
    assert "Sekr1t" not in repr(event)


def test_failed_event_sanitizes_the_servers_words() -> None:
    account, request = _setup()
    failure = SMTPFailure(65, "recipient address a@x.org not accepted by the server",
                          reply=Reply(550, ("550 no\x1b[31m",)), cause=Cause.REPLY)
    [event] = _events(lambda: observe_delivery(defer.fail(failure), account,
                                               request).addErrback(lambda f: None))
    assert event["reply"] == "550 no?[31m"
    assert event["exitcode"] == 65 and event["cause"] == "reply"
