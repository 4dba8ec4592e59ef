"""Running one Deferred-returning job on the global reactor, for the commands.

Library code takes a reactor as a parameter; only the command-line programs
come here, once per run, to get one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["reactor_is_shared", "run_in_background", "run_until_done", "stop_background"]


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


_shared = False


def reactor_is_shared() -> bool:
    """Whether jobs have been handed to a reactor running in another thread:
    a job must then not change the reactor for everyone (a blocking name
    resolver would stall a daemon's other connections)."""
    return _shared


def _in_reactor_thread() -> bool:
    from twisted.python import threadable

    return bool(threadable.isInIOThread())


def run_until_done(start: Callable[[Any], Any]) -> Any:
    """Run ``start(reactor)`` (which returns a Deferred) to completion.

    Returns the Deferred's result, or the exception it failed with: failures
    that the job expects (SMTPFailure, ConnectFailure) are values to report,
    not tracebacks.

    Called from a thread while the reactor runs in another one, the job runs
    there and this thread blocks until it is done; so a program can send many
    mails through the one-shot code of the command line
    (:func:`run_in_background` starts such a reactor).
    """
    from twisted.internet import defer, reactor

    if reactor.running and not _in_reactor_thread():  # type: ignore[attr-defined]
        # The reactor runs in another thread (msmtpq flushing many mails, the
        # daemon's worker threads): it cannot be run again, so the job goes to it
        # and this thread waits, as the single-run path does.
        from twisted.internet import threads

        global _shared
        _shared = True

        try:
            return threads.blockingCallFromThread(
                reactor, lambda: defer.maybeDeferred(start, reactor))
        except Exception as e:  # noqa: BLE001 - failures are values, as below
            return e

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


def run_in_background() -> Any:
    """Start the global reactor in a daemon thread; returns the thread.

    For a command that makes many :func:`run_until_done` calls in one process
    (the reactor cannot be restarted); end with :func:`stop_background`.
    """
    import threading

    from twisted.internet import reactor

    ready = threading.Event()
    reactor.callWhenRunning(ready.set)  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False},  # type: ignore[attr-defined]
        name="reactor", daemon=True)
    thread.start()
    ready.wait(30)
    return thread


def stop_background(thread: Any, timeout: float = 30) -> None:
    """Stop the reactor :func:`run_in_background` started and wait for its thread."""
    from twisted.internet import reactor

    if reactor.running:  # type: ignore[attr-defined]
        reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]
    thread.join(timeout)
