"""A byte sink that stays in memory up to a threshold, then spills to a temp file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

#: Default spill threshold: 1 MiB.
SPILL_THRESHOLD = 1 << 20


class Spool:
    """Append-only record of bytes.

    ``getvalue()`` returns everything written; ``path`` is ``None`` while the data is
    held in memory and the temp file's path once it grew past ``threshold``.  Spilled
    files live in ``directory`` (default: the system temp dir) and are *not* removed
    by the spool -- give a per-test directory (the servers use a TemporaryDirectory
    that lives as long as the server object).
    """

    def __init__(self, threshold: int = SPILL_THRESHOLD,
                 directory: str | os.PathLike[str] | None = None, prefix: str = "spool-"
                 ) -> None:
        self.threshold = threshold
        self.directory = directory
        self.prefix = prefix
        self._buf = bytearray()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self.size += len(data)
        if self._file is None and self._path is None:
            self._buf += data
            if len(self._buf) > self.threshold:
                fd, name = tempfile.mkstemp(prefix=self.prefix, dir=self.directory)
                self._file = os.fdopen(fd, "wb")
                self._path = Path(name)
                self._file.write(self._buf)
                self._buf = bytearray()
            return
        if self._file is None:  # closed after spilling: reopen for append
            assert self._path is not None
            self._file = open(self._path, "ab")  # kept open while writing
        self._file.write(data)

    def close(self) -> None:
        """Flush and close the temp file (if any); ``getvalue``/``path`` keep working."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def path(self) -> Path | None:
        """The temp file holding the data, or ``None`` while it is in memory."""
        if self._file is not None:
            self._file.flush()
        return self._path

    @property
    def spilled(self) -> bool:
        return self._path is not None

    def getvalue(self) -> bytes:
        if self._path is None:
            return bytes(self._buf)
        if self._file is not None:
            self._file.flush()
        return self._path.read_bytes()

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.getvalue()

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "memory"
        return f"<Spool {self.size} bytes in {where}>"
