"""Running one Deferred-returning job on the global reactor, for the commands.

Library code takes a reactor as a parameter; only the command-line programs
come here, once per run, to get one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["run_until_done"]


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
