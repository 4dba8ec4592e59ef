"""Running one Deferred-returning job on the global reactor, for the commands.

Library code takes a reactor as a parameter; only the command-line programs
come here, once per run, to get one.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["defer_unused_modules", "reactor_is_shared", "run_in_background",
           "run_until_done", "stop_background", "without_twisted_ssl"]

#: Standard modules that Twisted's (and the standard library's own) imports bind
#: and a command sending a mail never uses: ``twisted.python.compat`` binds
#: ``http.cookiejar`` for old code's sake, which loads urllib.request,
#: http.client, email parsing, tempfile and shutil (about 6 % of a command's
#: start-up); ``asyncio`` binds its TLS protocol, ``calendar`` ``locale``,
#: ``twisted.python.reflect`` ``pickle`` and ``traceback`` ``textwrap``
#: (together about 1.5 %).  Each loads on first use.
_UNUSED_BY_COMMANDS = ("http.cookiejar", "asyncio.sslproto", "locale", "pickle", "textwrap")


class _LoadOnUse(types.ModuleType):
    """Stands in for a module until one of its attributes is used; then the real
    module is imported (and replaces this one in ``sys.modules``) and the
    attribute comes from it."""

    def __getattr__(self, name: str) -> Any:
        import importlib

        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def defer_unused_modules() -> None:
    """Keep the modules of ``_UNUSED_BY_COMMANDS`` from loading until something
    uses them.  For the command-line programs only, before they import Twisted."""
    import importlib
    from importlib.machinery import ModuleSpec

    stubs = []
    for name in _UNUSED_BY_COMMANDS:
        if name not in sys.modules:
            stub = _LoadOnUse(name)
            stub.__spec__ = ModuleSpec(name, None)  # importlib looks at it: no load
            sys.modules[name] = stub
            stubs.append(stub)
    for stub in stubs:
        parent, _, child = stub.__name__.rpartition(".")
        if parent:
            # what the import system does for a submodule, so that
            # ``import http.cookiejar; http.cookiejar.X`` works (the package is
            # imported anyway: Twisted needs it)
            package = importlib.import_module(parent)
            if not hasattr(package, child):
                setattr(package, child, stub)


def without_tls() -> None:
    """Keep Twisted from loading its OpenSSL support in this process.

    The reactor imports its TLS support if it can, which pulls in pyOpenSSL and
    cryptography (about a third of our start-up time).  When an account uses
    no TLS we make those imports fail, which Twisted handles as "no TLS
    available".  Call before anything imports the reactor.
    """
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


def without_twisted_ssl() -> None:
    """Import the reactor without ``twisted.internet.ssl``.

    Our TLS needs the reactor's ``twisted.protocols.tls`` (STARTTLS, TLS
    wrappers) and our own OpenSSL wiring (:mod:`msmtp_twisted.tls`), but not
    ``twisted.internet.ssl``, which the reactor imports only for its old
    ``connectSSL`` path and which loads ``_sslverify``, ``service_identity``,
    ``idna`` and cryptography's serialization (about 30 ms of a command's
    start-up).  The module is kept out only while the reactor is imported: a
    later ``from twisted.internet import ssl`` works as usual.
    """
    if "twisted.internet.reactor" in sys.modules or "twisted.internet.ssl" in sys.modules:
        return
    sys.modules["twisted.internet.ssl"] = None  # type: ignore[assignment]
    try:
        # posixbase imports it inside try/except ImportError: "no old-style SSL"
        from twisted.internet import reactor  # noqa: F401
    finally:
        if sys.modules.get("twisted.internet.ssl", False) is None:
            del sys.modules["twisted.internet.ssl"]


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
