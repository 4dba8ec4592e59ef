"""GNU ``getopt_long`` semantics, messages included, as a pure function.

msmtp parses its command line with glibc's getopt_long: options and operands
may be mixed (operands are collected, scanning goes on) unless
``POSIXLY_CORRECT`` is set; ``--`` ends the options; long options may be
abbreviated to any unambiguous prefix; a long option's optional argument must
be attached with ``=``; short options cluster (``-tPi``) and take a required
argument attached or from the next word.  Errors carry glibc's message text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["GetoptError", "LongOption", "getopt_long"]

NO_ARGUMENT = "none"
REQUIRED = "required"
OPTIONAL = "optional"


@dataclass(frozen=True)
class LongOption:
    name: str
    has_arg: str  # "none", "required" or "optional"
    key: str  # what getopt_long reports; options sharing a key are not ambiguous


class GetoptError(Exception):
    """A usage error; ``message`` is glibc's text without the ``argv[0]: `` prefix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse_shortopts(spec: str) -> dict[str, str]:
    result: dict[str, str] = {}
    i = 0
    while i < len(spec):
        c = spec[i]
        kind = NO_ARGUMENT
        if spec[i + 1 : i + 3] == "::":
            kind, i = OPTIONAL, i + 2
        elif spec[i + 1 : i + 2] == ":":
            kind, i = REQUIRED, i + 1
        result[c] = kind
        i += 1
    return result


def getopt_long(
    args: Sequence[str],
    shortopts: str,
    longopts: Sequence[LongOption],
    *,
    posixly_correct: bool = False,
) -> Iterator[tuple[str, str | None] | tuple[None, list[str]]]:
    """Yield ``(key, argument)`` for each option in order, then ``(None, operands)``.

    ``key`` is the short option letter or the long option's ``key``.  Raises
    :class:`GetoptError` at the first bad option, after yielding the good ones
    before it (msmtp acts on options as it reads them).
    """
    short = _parse_shortopts(shortopts)
    operands: list[str] = []
    i = 0
    n = len(args)
    while i < n:
        arg = args[i]
        i += 1
        if arg == "--":
            operands.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            if posixly_correct:
                operands.extend(args[i:])
                break
            continue
        if arg.startswith("--"):
            body = arg[2:]
            name, eq, value = body.partition("=")
            option = _find_long(name, body, longopts)
            if option.has_arg == NO_ARGUMENT:
                if eq:
                    raise GetoptError(f"option '--{option.name}' doesn't allow an argument")
                yield option.key, None
            elif option.has_arg == OPTIONAL:
                yield option.key, (value if eq else None)
            else:
                if eq:
                    yield option.key, value
                elif i < n:
                    yield option.key, args[i]
                    i += 1
                else:
                    raise GetoptError(f"option '--{option.name}' requires an argument")
            continue
        # a cluster of short options
        j = 1
        while j < len(arg):
            c = arg[j]
            j += 1
            kind = short.get(c)
            if kind is None or c == ":":
                raise GetoptError(f"invalid option -- '{c}'")
            if kind == NO_ARGUMENT:
                yield c, None
                continue
            rest = arg[j:]
            if kind == OPTIONAL:
                yield c, (rest or None)
            elif rest:
                yield c, rest
            elif i < n:
                yield c, args[i]
                i += 1
            else:
                raise GetoptError(f"option requires an argument -- '{c}'")
            break
    yield None, operands


def _find_long(name: str, body: str, longopts: Sequence[LongOption]) -> LongOption:
    for option in longopts:
        if option.name == name:
            return option
    # "--=x" has an empty name, which glibc treats as a prefix of every option
    matches = [o for o in longopts if o.name.startswith(name)] if (name or "=" in body) else []
    if not matches:
        raise GetoptError(f"unrecognized option '--{body}'")
    first = matches[0]
    differing = [o for o in matches[1:] if (o.has_arg, o.key) != (first.has_arg, first.key)]
    if differing:
        # glibc lists the first match and those that differ from it, in table order
        listed = " ".join(f"'--{o.name}'" for o in [first, *differing])
        raise GetoptError(f"option '--{body}' is ambiguous; possibilities: {listed}")
    return first
