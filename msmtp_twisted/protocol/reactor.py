"""Running one Deferred-returning job on the global reactor, for the commands.

Library code takes a reactor as a parameter; only the command-line programs
come here, once per run, to get one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["run_until_done"]


def without_tls() -> None:
    """Keep Twisted from loading its OpenSSL support in this process.

    The reactor imports its TLS support if it can, which pulls in pyOpenSSL and
    cryptography (about a third of our start-up time).  When an account uses
    no TLS we make those imports fail, which Twisted handles as "no TLS
    available".  Call before anything imports the reactor.
    """
    import sys

    if "twisted.internet.reactor" not in sys.modules:
        # each of these is imported inside try/except ImportError by Twisted
        for name in ("twisted.internet._newtls", "twisted.protocols.tls", "twisted.internet.ssl"):
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def run_until_done(start: Callable[[Any], Any]) -> Any:
    """Run ``start(reactor)`` (which returns a Deferred) to completion.

    Returns the Deferred's result, or the exception it failed with: failures
    that the job expects (SMTPFailure, ConnectFailure) are values to report,
    not tracebacks.
    """
    from twisted.internet import defer, reactor

    outcome: list[Any] = []

    def finished(value: Any) -> None:
        outcome.append(value)
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    def failed(failure: Any) -> None:
        finished(failure.value)

    def begin() -> None:
        d = defer.maybeDeferred(start, reactor)
        d.addCallbacks(finished, failed)

    reactor.callWhenRunning(begin)  # type: ignore[attr-defined]
    reactor.run(installSignalHandlers=False)  # type: ignore[attr-defined]
    return outcome[0] if outcome else None
