"""A small tmpfs mounted for one test: a full disk on demand (root only)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require


@contextlib.contextmanager
def tmpfs(where: Path, size: str, mode: str = "0700") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (mount's syntax: ``"1m"``, ``"256k"``) with
    ``mode`` on the new directory ``where``; unmounted (lazily) on exit.
    Skips on a developer box, fails under CI, where it cannot be mounted."""
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs",
                          str(where)], capture_output=True, text=True, timeout=30)
    require(res.returncode == 0,
            f"mounting a tmpfs (root and CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)
