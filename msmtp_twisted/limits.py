"""How much we read from local inputs, and reading within those bounds.

msmtp 1.8.23 reads its local files line by line with fixed buffers (configuration,
aliases, netrc) or grows a buffer until memory runs out (``eval`` output, TLS
files); given ``/dev/zero`` it either loops for ever or dies.  We read at most
these many bytes from each, and treat more as an error (or, for netrc, as a file
we cannot use).  See docs/differences.md.
"""

from __future__ import annotations

import os
from typing import BinaryIO

__all__ = [
    "EVAL_DRAIN",
    "EVAL_LINE",
    "FILE_LIMIT",
    "HEADER_ADDRESS",
    "HEADER_SPOOL",
    "RECIPIENTS",
    "read_at_most",
    "read_file_at_most",
]

#: configuration files, the aliases file, netrc files, TLS certificates, keys and CRLs
FILE_LIMIT = 16 * 1024 * 1024
#: the first line of an ``eval``/``passwordeval`` command's output
EVAL_LINE = 64 * 1024
#: what we read (and drop) after that line to let a ``passwordeval`` command finish
#: and report its exit status; a command that writes more is cut off, as msmtp's
#: ``pclose()`` cuts it off
EVAL_DRAIN = 1024 * 1024
#: header bytes kept in memory before the header block goes to a temporary file
#: (msmtp always writes it to one)
HEADER_SPOOL = 1024 * 1024
#: the longest address taken from a header: longer ones cannot be sent anyway
#: (``MAIL FROM:<...>``/``RCPT TO:<...>`` would exceed msmtp's 4094 characters)
HEADER_ADDRESS = 4096
#: recipients taken from the headers (``-t``), and recipients an alias expands to
RECIPIENTS = 100_000


def read_at_most(f: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of ``f`` and whether there was more."""
    data = f.read(limit)  # reads until ``limit`` bytes or the end, whatever the file
    return data, len(data) == limit and bool(f.read(1))


def read_file_at_most(path: str | os.PathLike[str], limit: int = FILE_LIMIT
                      ) -> tuple[bytes, bool]:
    """:func:`read_at_most` on the file at ``path`` (raises ``OSError``)."""
    with open(path, "rb") as f:
        return read_at_most(f, limit)
