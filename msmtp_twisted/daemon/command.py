"""The pipe command: split once at start-up, then filled in for each mail.

msmtpd 1.8.23 builds a string (the first ``%F`` replaced by the envelope-from,
the recipients appended with spaces) and hands it to ``popen()``, i.e. to
``/bin/sh -c``.  We never run a shell: the command is split into words once, at
start-up, with the shell's quoting rules (single quotes, double quotes,
backslashes, a leading ``~``), and each mail gets an argv list in which every
recipient is one item of its own.  Shell syntax that would need a shell to mean
anything (``|``, ``;``, ``>``, ``$VAR``, ``*``, backquotes, ...) outside quotes
is refused at start-up with a clear message instead of being passed on literally.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_ARG_STRLEN", "CommandError", "PipeCommand", "exec_budget", "split_command"]

#: Linux's limit for one argument, its NUL included (``MAX_ARG_STRLEN``, 32 pages).
MAX_ARG_STRLEN = 32 * 4096
#: Linux never allows the strings and pointers of argv and the environment more
#: than 3/4 of 8 MiB (``_STK_LIM / 4 * 3``), nor less than 32 pages.
_ARG_MAX_CEILING = 6 * 1024 * 1024
_ARG_MAX_FLOOR = 32 * 4096
_POINTER = 8
#: Kept free for what we do not count exactly: the executable's path as the
#: kernel copies it, the auxiliary vector, alignment.
_SLACK = 16 * 1024

# Characters that mean something to sh outside quotes and that we cannot honour.
_OPERATORS = set("|&;<>()")
_EXPANSIONS = set("$`*?[")


class CommandError(ValueError):
    """The command cannot be run without a shell (or is empty, or badly quoted)."""


def split_command(command: str) -> list[str]:
    """Split ``command`` into words as ``sh`` would, without expanding anything.

    Raises :class:`CommandError` for unbalanced quotes, an empty command, and
    unquoted shell operators or expansions (``| & ; < > ( ) $ ` * ? [``, a ``#``
    comment, a ``NAME=value`` assignment before the command).  A leading ``~``
    of an unquoted word is expanded like the shell does.
    """
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    tilde_ok = False  # the current word started with an unquoted '~'
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c in " \t\n":
            if in_word:
                words.append(_finish(cur, tilde_ok))
                cur, in_word, tilde_ok = [], False, False
            i += 1
            continue
        if not in_word:
            in_word = True
            tilde_ok = c == "~"
            if c == "#":
                raise CommandError("a '#' comment needs a shell")
        if c == "'":
            end = command.find("'", i + 1)
            if end < 0:
                raise CommandError("unterminated single quote")
            cur.append(command[i + 1 : end])
            i = end + 1
            continue
        if c == '"':
            i += 1
            while True:
                if i >= n:
                    raise CommandError("unterminated double quote")
                d = command[i]
                if d == '"':
                    i += 1
                    break
                if d in "$`":
                    raise CommandError(f"'{d}' inside double quotes needs a shell")
                if d == "\\" and i + 1 < n and command[i + 1] in '$`"\\\n':
                    if command[i + 1] != "\n":
                        cur.append(command[i + 1])
                    i += 2
                    continue
                cur.append(d)
                i += 1
            continue
        if c == "\\":
            if i + 1 >= n:
                cur.append("\\")  # sh keeps a trailing backslash
                i += 1
            elif command[i + 1] == "\n":
                i += 2  # line continuation
            else:
                cur.append(command[i + 1])
                i += 2
            continue
        if c in _OPERATORS or c in _EXPANSIONS:
            raise CommandError(f"'{c}' needs a shell; msmtpd runs the command without one")
        cur.append(c)
        i += 1
    if in_word:
        words.append(_finish(cur, tilde_ok))
    if not words:
        raise CommandError("empty command")
    first = words[0]
    name, eq, _ = first.partition("=")
    if eq and name and (name[0].isalpha() or name[0] == "_") and all(
        ch.isalnum() or ch == "_" for ch in name
    ) and command.lstrip().startswith(name + "="):
        raise CommandError("a variable assignment before the command needs a shell")
    return words


def exec_budget(environ: dict[bytes, bytes] | None = None) -> int:
    """Bytes left for argv strings and pointers by ``execve()`` once ``environ``
    (default: ours, which the command inherits) is counted: ``ARG_MAX`` (a quarter
    of the stack limit, as the kernel computes it) minus the environment."""
    try:
        arg_max = os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        arg_max = _ARG_MAX_FLOOR
    arg_max = max(_ARG_MAX_FLOOR, min(arg_max if arg_max > 0 else 0, _ARG_MAX_CEILING))
    env = os.environb if environ is None else environ
    used = sum(len(k) + len(v) + 2 + _POINTER for k, v in env.items()) + _POINTER
    return arg_max - used - _SLACK


def _finish(chars: list[str], tilde: bool) -> str:
    word = "".join(chars)
    if tilde:
        head, sep, tail = word.partition("/")
        expanded = os.path.expanduser(head)
        if expanded != head:
            word = expanded + sep + tail
    return word


@dataclass(frozen=True)
class PipeCommand:
    """The split command; :meth:`argv` fills it in for one mail."""

    words: tuple[str, ...]
    text: str

    @classmethod
    def parse(cls, command: str) -> PipeCommand:
        return cls(tuple(split_command(command)), command)

    def argv(self, sender: str, recipients: Sequence[str]) -> list[str]:
        """The first ``%F`` (in any word) replaced by ``sender``, then one item per
        recipient.  Nothing is ever interpreted: an address is always one item."""
        out = list(self.words)
        for k, word in enumerate(out):
            pos = word.find("%F")
            if pos >= 0:
                out[k] = word[:pos] + sender + word[pos + 2 :]
                break
        out.extend(recipients)
        return out

    def envelope_limits(self, budget: int | None = None) -> tuple[int, int]:
        """``(max_envelope, max_address)`` for
        :class:`~msmtp_twisted.smtp.server.ServerLimits`: what the sender and the
        recipients may take of the argument list once the command's own words
        are counted (``budget`` defaults to :func:`exec_budget`), and the longest
        address that still fits in one argument (the word holding ``%F`` counts)."""
        if budget is None:
            budget = exec_budget()
        fixed = sum(len(w.encode("utf-8", "surrogateescape")) + 1 + _POINTER
                    for w in self.words) + _POINTER
        longest = MAX_ARG_STRLEN - 1
        for word in self.words:
            if "%F" in word:
                longest -= len(word.encode("utf-8", "surrogateescape")) - 2
                break
        return max(0, budget - fixed), max(0, longest)
