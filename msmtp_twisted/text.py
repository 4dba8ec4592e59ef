"""Small text helpers shared by the command line and the configuration code."""

from __future__ import annotations

__all__ = ["sanitize"]


def sanitize(text: str) -> str:
    """Control characters become ``?``, as msmtp's ``sanitize_string`` does before
    printing text that came from files, commands or servers."""
    return "".join("?" if (ord(c) < 32 or ord(c) == 127) else c for c in text)
