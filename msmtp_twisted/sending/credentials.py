"""Account → what AUTH needs: the settings and where a missing password comes from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msmtp_twisted.config.account import Account
from msmtp_twisted.smtp.client import AuthRequest

__all__ = ["auth_host", "auth_request", "password_in_thread", "password_source"]


def auth_host(account: Account) -> str:
    """The server name AUTH uses (DIGEST-MD5's digest-uri, OAUTHBEARER, the key ring,
    netrc, the prompt): msmtp names a unix socket's path there."""
    return account.host if account.host is not None else (account.socket or "localhost")


def auth_request(account: Account) -> AuthRequest | None:
    """The AUTH step's settings for the account, or None without ``auth``."""
    if account.auth_mech is None:
        return None
    return AuthRequest(
        mechanism=account.auth_mech or "",
        user=account.username,
        password=account.password,
        host=auth_host(account),
        port=account.effective_port(),
        tls=bool(account.tls),
        ntlmdomain=account.ntlmdomain,
    )


def password_source(account: Account, *, prompt: bool = True) -> Callable[[], str | None]:
    """For the session's PASSWORD action: key ring, netrc, then (``prompt``) the
    terminal.  Blocking, as msmtp is: the command line calls it as it is."""
    def lookup() -> str | None:
        from msmtp_twisted.auth.password import lookup_password

        if account.username is None:
            return None
        return lookup_password(auth_host(account), account.username, prompt=prompt)
    return lookup


def password_in_thread(reactor: Any, account: Account) -> Callable[[], Any]:
    """Key ring and netrc, off the reactor thread (a Deferred); never a terminal
    prompt.  For programs whose reactor must keep running."""
    from twisted.internet import threads

    lookup = password_source(account, prompt=False)
    return lambda: threads.deferToThreadPool(reactor, reactor.getThreadPool(), lookup)
