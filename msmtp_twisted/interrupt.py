"""Ctrl-C (SIGINT) in the console scripts: die of it, as msmtp does.

A program interrupted with SIGINT should die of it rather than exit with a
code: a shell loop or ``make`` running it stops only when it sees that the
child was killed by the signal.  msmtp 1.8.23 has no handler, so it dies at
once, wherever it is.  Python's own handler raises ``KeyboardInterrupt``,
which Twisted's reactor loop catches and logs ("Unexpected error in main
loop"), so the command carried on until its network timeout.

:func:`install` (console scripts only, never the library) replaces it with a
handler that undoes what must not outlive the process — the terminal's echo,
turned off while a password is typed (:func:`restoring`) — and then kills
the process with SIGINT.  A SIGINT ignored when the program started (a
background job of a non-interactive shell) stays ignored.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

__all__ = ["die_of_sigint", "install", "restoring"]

_undo: list[Callable[[], None]] = []


def die_of_sigint() -> NoReturn:
    """Undo what :func:`restoring` holds, then kill this process with SIGINT."""
    for undo in reversed(_undo):
        try:
            undo()
        except Exception:  # noqa: BLE001 - dying anyway; the rest must still run
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    # reached only while SIGINT is blocked: the shell's status for it
    raise SystemExit(128 + signal.SIGINT)


def _handler(signum: int, frame: FrameType | None) -> None:
    die_of_sigint()


def install() -> None:
    """Make SIGINT end the process as it ends msmtp (unless it is ignored)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)


@contextmanager
def restoring(undo: Callable[[], None]) -> Iterator[None]:
    """While the block runs, an interrupt calls ``undo`` before the process dies."""
    _undo.append(undo)
    try:
        yield
    finally:
        _undo.remove(undo)
