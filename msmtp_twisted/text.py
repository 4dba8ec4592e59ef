"""Small text helpers shared by the command line and the configuration code."""

from __future__ import annotations

import re

__all__ = ["sanitize"]

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def sanitize(text: str) -> str:
    """Control characters become ``?``, as msmtp's ``sanitize_string`` does before
    printing text that came from files, commands or servers."""
    return _CONTROL.sub("?", text)
