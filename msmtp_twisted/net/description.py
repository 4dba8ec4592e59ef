"""Twisted's endpoint description grammar, for our endpoint string parsers
(``msmtp-tls:`` and ``socks5:``).  Pure."""

from __future__ import annotations

__all__ = ["split_description"]


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Twisted's endpoint string grammar: ``:`` between fields, ``\\`` escapes,
    ``key=value`` keyword fields."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(description)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if sep:
            kwargs[key] = value
        else:
            args.append(item)
    return args, kwargs
