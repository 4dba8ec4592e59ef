"""Standard streams for the console scripts, also when the process was started
without them.

cron, mail clients and init systems sometimes start a program with descriptor 0,
1 or 2 closed (``msmtp ... <&-``, ``2>&-``).  Python then sets ``sys.stdin``
(...) to None, and the next file the program opens takes the free descriptor:
a log file or a socket on descriptor 1 would receive what a child process
(``passwordeval``, msmtpd's pipe command) writes to its standard output.
msmtp 1.8.23 reads a closed standard input as an empty mail and drops what it
writes to a closed output; so do we: each missing descriptor is opened on
``/dev/null`` before anything else is opened.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ensure_standard_streams"]

_STREAMS = ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w"))


def ensure_standard_streams() -> None:
    """Give the process descriptors 0, 1 and 2 and ``sys.stdin``, ``sys.stdout``
    and ``sys.stderr``, on ``/dev/null`` where they were missing."""
    for fd, name, mode in _STREAMS:
        try:
            os.fstat(fd)
        except OSError:
            # the lowest free descriptor: fd itself, as 0..fd-1 are open by now
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False, encoding="utf-8",
                                    errors="surrogateescape"))
