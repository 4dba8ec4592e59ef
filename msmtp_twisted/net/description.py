"""Twisted's endpoint description grammar, for our endpoint string parsers
(``msmtp-tls:`` and ``msmtp-socks5:``).  Pure."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["endpoint_fields", "split_description"]


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


def endpoint_fields(args: Sequence[str], kwargs: dict[str, str],
                    default_port: int) -> tuple[str, int, float | None, str | None]:
    """Host and port (positional or keyword), ``timeout`` and ``bindAddress`` of
    an endpoint string, taken out of ``kwargs``."""
    host = kwargs.pop("host", None) or (args[0] if args else None)
    port_text = kwargs.pop("port", None) or (args[1] if len(args) > 1 else str(default_port))
    if not host:
        raise ValueError("no host given")
    timeout = float(kwargs.pop("timeout")) if "timeout" in kwargs else None
    return host, int(port_text), timeout, kwargs.pop("bindAddress", None)
