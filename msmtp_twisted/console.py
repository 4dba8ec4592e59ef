"""How the console scripts ``msmtp``, ``msmtpq`` and ``msmtp-queue`` start and
end: standard descriptors that exist (:mod:`~msmtp_twisted.stdio`), SIGINT
that kills as it kills msmtp (:mod:`~msmtp_twisted.interrupt`), and a closed
output pipe mapped to EX_IOERR."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from msmtp_twisted import interrupt, sysexits
from msmtp_twisted.stdio import ensure_standard_streams

__all__ = ["run_console"]


def run_console(main: Callable[[], int]) -> NoReturn:
    """``sys.exit(main())`` as msmtp ends."""
    ensure_standard_streams()
    interrupt.install()
    try:
        code = main()
    except KeyboardInterrupt:  # SIGINT raised by hand (signal.raise_signal) or a test
        interrupt.die_of_sigint()
    except BrokenPipeError:
        code = sysexits.EX_IOERR
    sys.exit(code)
