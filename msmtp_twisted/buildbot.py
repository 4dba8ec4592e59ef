"""Buildbot: a ``MailNotifier`` that sends through an msmtprc account.

In ``master.cfg``::

    from msmtp_twisted.buildbot import MsmtpMailNotifier

    c['services'].append(MsmtpMailNotifier(
        fromaddr="buildbot@example.com",
        account="work",                  # an account of ~/.msmtprc (or of msmtprc=)
        extraRecipients=["dev-team@example.com"],
        lookup="example.com",
    ))

Everything Buildbot's :class:`buildbot.reporters.mail.MailNotifier` does is
kept (generators, message formatting, blamelists, ``lookup``,
``extraRecipients``, ``extraHeaders``, ``dumpMailsToLog``, ...) except *how*
the mail leaves: where the stock notifier configures SMTP itself
(``relayhost``, ``smtpPort``, ``useTls``, ``useSmtps``, ``smtpUser``,
``smtpPassword``), this one sends with :func:`msmtp_twisted.api.send_mail` and
the msmtprc account: host, port, TLS (STARTTLS or implicit, with msmtp's
certificate checks), AUTH, SOCKS proxy, timeouts, DSN, as msmtp would.  The
stock options that configure SMTP are refused with a configuration error
rather than silently ignored.

The account is read when ``master.cfg`` is loaded (start, ``buildbot
checkconfig``, ``buildbot reconfig``): a missing account, an unreadable file or
a failing ``passwordeval`` is a configuration error there, not a lost mail
later.  Buildbot loads ``master.cfg`` in a thread, so ``passwordeval`` does
not block the reactor.

See docs/buildbot.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message
from email.utils import parseaddr
from typing import Any

from buildbot import config
from buildbot.reporters.mail import MailNotifier
from buildbot.util import unicode2bytes
from twisted.internet import defer
from twisted.python import log as twlog

from msmtp_twisted.config.account import Account

__all__ = ["DEFAULT_TIMEOUT", "SMTP_OPTIONS", "MsmtpMailNotifier"]

#: seconds: the network timeout when neither ``timeout=`` nor the account sets
#: one (msmtp's default is no timeout, which would let a silent server hold a
#: notifier, and Buildbot's shutdown that waits for it, forever).
DEFAULT_TIMEOUT = 60

#: MailNotifier's options that configure SMTP themselves; the account does that here.
SMTP_OPTIONS: dict[str, str] = {
    "relayhost": "host",
    "smtpPort": "port",
    "useTls": "tls, tls_starttls",
    "useSmtps": "tls, tls_starttls off",
    "smtpUser": "user",
    "smtpPassword": "password, passwordeval",
}


def _load(name: str, msmtprc: str | None) -> Account:
    """The account as :func:`msmtp_twisted.api.load_account` completes it;
    raises its exceptions (all of them carry msmtp's message)."""
    from msmtp_twisted.api import load_account

    return load_account(name, config_file=msmtprc)


def _with_timeout(loaded: Account, timeout: float | None) -> Account:
    account = loaded.copy()
    if timeout is not None:
        account.timeout = timeout
    elif not account.timeout:
        account.timeout = DEFAULT_TIMEOUT
    return account


def _delivery_errors() -> tuple[type[Exception], ...]:
    """How :func:`msmtp_twisted.api.send_mail` says a mail was not delivered."""
    from msmtp_twisted.errors import ConnectFailure, SMTPFailure

    return (SMTPFailure, ConnectFailure)


class MsmtpMailNotifier(MailNotifier):  # type: ignore[misc]  # Buildbot has no types
    """Buildbot's ``MailNotifier``, sending through msmtprc account ``account``.

    ``fromaddr``: the ``From:`` header and envelope sender, as for
    ``MailNotifier``; ``None`` takes the account's ``from``.
    ``account``: the msmtprc account's name (msmtp's default account is
    ``default``).  ``msmtprc``: the user configuration file to read instead of
    ``~/.msmtprc`` (msmtp's ``-C``); the system file is read as msmtp reads it.
    ``timeout``: network timeout in seconds, overriding the account's
    ``timeout``; when neither sets one, :data:`DEFAULT_TIMEOUT`.
    Every other keyword is ``MailNotifier``'s, except those in
    :data:`SMTP_OPTIONS`, which are a configuration error.
    """

    #: the account as read from msmtprc by checkConfig
    _loaded: Account | None = None
    #: what is sent with: ``_loaded`` with the timeout applied
    _account: Account | None = None
    account_name: str = "default"

    def checkConfig(
        self,
        fromaddr: str | None = None,
        *,
        account: str = "default",
        msmtprc: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        where = self.__class__.__name__
        refused = [name for name in SMTP_OPTIONS if name in kwargs]
        for name in refused:
            config.error(
                f"{where}: {name}= is not used: msmtprc account {account!r} says how to "
                f"send (msmtprc: {SMTP_OPTIONS[name]}); remove {name}= from master.cfg")
        for name in refused:
            del kwargs[name]
        if not isinstance(account, str) or not account:
            config.error(f"{where}: account must be the name of an msmtprc account")
            return
        if msmtprc is not None and not isinstance(msmtprc, str):
            config.error(f"{where}: msmtprc must be a file name")
            return
        if timeout is not None and (
                isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not timeout > 0):
            config.error(f"{where}: timeout must be a positive number of seconds")
        loaded = self._load_for_config(account, msmtprc)
        if loaded is not None:
            if fromaddr is None and loaded.from_addr is None:
                config.error(
                    f"{where}: no fromaddr= and msmtprc account {account!r} has no 'from'")
            self._loaded = loaded
        super().checkConfig(fromaddr if fromaddr is not None else "", **kwargs)

    def _load_for_config(self, account: str, msmtprc: str | None) -> Account | None:
        from msmtp_twisted.api import AccountNotFound
        from msmtp_twisted.config.parser import ConfigError
        from msmtp_twisted.config.select import SelectError

        where = self.__class__.__name__
        try:
            return _load(account, msmtprc)
        except AccountNotFound:
            files = msmtprc if msmtprc is not None else "the msmtp configuration files"
            config.error(f"{where}: msmtprc account {account!r} not found in {files}")
        except (ConfigError, SelectError) as e:
            config.error(f"{where}: msmtprc account {account!r}: {e.message}")
        except OSError as e:  # a file msmtp would also fail on, named by the error
            config.error(f"{where}: msmtprc account {account!r}: {e}")
        return None

    def reconfigServiceWithSibling(self, sibling: Any) -> Any:
        # The account was loaded when master.cfg was (sibling's checkConfig): take it
        # on every reconfig, also when master.cfg itself did not change, so that
        # `buildbot reconfig` picks up an edited msmtprc.
        if sibling._loaded is not None:
            self._loaded = sibling._loaded
            self._account = _with_timeout(self._loaded, sibling._config_kwargs.get("timeout"))
        return super().reconfigServiceWithSibling(sibling)

    @defer.inlineCallbacks
    def reconfigService(
        self,
        fromaddr: str | None = None,
        *,
        account: str = "default",
        msmtprc: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        if self._loaded is None:  # reconfigured without a checkConfig of ours before
            self._loaded = _load(account, msmtprc)
        self._account = _with_timeout(self._loaded, timeout)
        self.account_name = account
        if fromaddr is None:
            fromaddr = self._loaded.from_addr
        yield super().reconfigService(fromaddr, **kwargs)

    def sendMail(self, m: Message, recipients: Sequence[str]) -> defer.Deferred[Any]:
        """Send ``m`` to the envelope ``recipients`` (addresses as ``MailNotifier``
        gathered them, display names allowed).

        Fires as Twisted's ``ESMTPSenderFactory`` result that the stock notifier
        returns: ``(number of recipients, [(address, code, reply text), ...])``;
        fails with msmtp's error (``SMTPFailure``, ``ConnectFailure``).
        """
        text = m.as_string()
        twlog.msg(f"sending mail ({len(text)} bytes) to", recipients,
                  f"through msmtp account {self.account_name}")
        if self.dumpMailsToLog:  # pragma: no cover - Buildbot's own debugging aid
            twlog.msg(f"mail data:\n{text}")
        addresses = [parseaddr(r)[1] for r in recipients]
        addresses = [a for a in addresses if a]
        if not addresses:
            # Twisted's factory fails such a mail at the server ("no recipients");
            # there is nobody to tell, so say so and send nothing.
            twlog.msg(f"{self.__class__.__name__}: no recipients, mail not sent")
            return defer.succeed((0, []))
        sender = parseaddr(self.fromaddr)[1]
        d = self._deliver(sender, addresses, unicode2bytes(text))
        where = f"{self.__class__.__name__}: mail to {', '.join(addresses)}"

        def sent(delivered: Any) -> tuple[int, list[tuple[str, int, bytes]]]:
            reply = getattr(delivered, "reply", None)
            code = reply.code if reply is not None else 250
            said = reply.text if reply is not None else ""
            # As Twisted's factory reports it: every RCPT reply, accepted or not; the
            # mail went to the accepted ones (partial_recipients).
            per_rcpt = [(a, r.code, r.text.encode("utf-8", "surrogateescape"))
                        for a, r in delivered.recipients] or \
                [(a, code, said.encode("utf-8", "surrogateescape")) for a in addresses]
            refused = [f"{a}: " + " | ".join(r.text.splitlines())
                       for a, r in delivered.recipients if r.code not in (250, 251)]
            twlog.msg(f"{where} sent through msmtp account {self.account_name}: "
                      + " | ".join(said.splitlines())
                      + (f" (refused: {'; '.join(refused)})" if refused else ""))
            return sum(c in (250, 251) for _, c, _ in per_rcpt), per_rcpt

        def failed(failure: Any) -> Any:
            if failure.check(*_delivery_errors()):
                error = failure.value
                reply = getattr(error, "reply", None)
                server = "" if reply is None else \
                    " (server: " + " | ".join(reply.text.splitlines()) + ")"
                twlog.msg(f"{where} NOT sent through msmtp account {self.account_name}: "
                          f"{error.message}{server}")
            return failure

        d.addCallbacks(sent, failed)
        return d

    @defer.inlineCallbacks
    def sendMessage(self, reports: Any) -> Any:
        # sendMail logged a delivery failure in one line already: Buildbot would add
        # a traceback for an expected condition (server down, refused, bad certificate).
        # Anything else (a bug) still reaches Buildbot's own error log.
        try:
            yield super().sendMessage(reports)
        except _delivery_errors():
            pass

    def _deliver(self, sender: str, recipients: list[str],
                 message: bytes) -> defer.Deferred[Any]:
        """One mail through the account: the only place that sends."""
        from msmtp_twisted.api import send_mail

        assert self._account is not None, "not configured"
        reactor = getattr(self.master, "reactor", None)
        if reactor is None:  # pragma: no cover - masters before Buildbot 3 had none
            from twisted.internet import reactor
        # A refused address on the blamelist must not keep the mail from the others
        # (Twisted's factory, which the stock notifier uses, goes on too).
        return send_mail(reactor, self._account, sender, recipients, message,
                         partial_recipients=True)
