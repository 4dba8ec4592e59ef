"""msmtprc lexer and parser.

Pure code: the parser gets the file's bytes and a function that runs ``eval``
commands, and returns accounts or raises :class:`ConfigError`.  It follows msmtp
1.8.23 line by line: lines of at most 500 bytes, ``#`` comments, blanks are
spaces and tabs, an argument wrapped in double quotes loses them (no escapes),
commands before any ``account`` line go into an implicit account ``default``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.config.commands import InvalidArgument, command_by_name
from msmtp_twisted.errors import ConfigError

__all__ = [
    "ConfigError",
    "ParsedFile",
    "iter_lines",
    "parse_config",
    "split_line",
    "trim_argument",
]

#: msmtp reads lines with a 501-byte buffer: 500 bytes including the newline.
MAX_LINE = 500

BLANKS = " \t"


class EvalError(Exception):
    """An ``eval`` command could not run or printed nothing."""


@dataclass
class ParsedFile:
    accounts: list[Account] = field(default_factory=list)
    #: True when a ``password`` command (not produced by ``eval``) appears.
    contains_secrets: bool = False

    def find(self, name: str) -> Account | None:
        for acc in self.accounts:
            if acc.id == name:
                return acc
        return None


def iter_lines(data: bytes) -> Iterator[str]:
    """Yield the lines as C's ``fgets`` with a 501-byte buffer would see them.

    A line (with its newline) longer than 500 bytes raises :class:`ConfigError`.
    Text after a NUL byte is invisible to msmtp, so it is dropped here too.
    Bytes that are not UTF-8 survive as surrogates and are written back unchanged.
    """
    pos = 0
    end = len(data)
    while pos < end:
        nl = data.find(b"\n", pos, pos + MAX_LINE)
        chunk = data[pos : nl + 1] if nl >= 0 else data[pos : pos + MAX_LINE]
        pos += len(chunk)
        nul = chunk.find(b"\0")
        visible = chunk if nul < 0 else chunk[:nul]
        if len(visible) == MAX_LINE and not visible.endswith(b"\n"):
            raise ConfigError(f"line longer than {MAX_LINE} characters")
        yield visible.decode("utf-8", "surrogateescape")


def trim_argument(text: str) -> str:
    """Strip blanks, then one pair of enclosing double quotes (msmtp's ``trim_string``)."""
    s = text.strip(BLANKS)
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1]
    return s


def split_line(line: str) -> tuple[str, str] | None:
    """Split a config line into (command, argument); None for blank and comment lines."""
    nl = line.find("\n")
    if nl >= 0:
        line = line[:nl]
        if line.endswith("\r"):
            line = line[:-1]
    s = line.lstrip(BLANKS)
    if not s or s[0] == "#":
        return None
    n = 0
    while n < len(s) and s[n] not in BLANKS:
        n += 1
    return s[:n], trim_argument(s[n:])


def parse_config(
    data: bytes,
    conffile: str,
    evaluate: Callable[[str], str] | None = None,
) -> ParsedFile:
    """Parse one configuration file's content into its accounts.

    ``evaluate(cmd)`` returns the first line of the command's output or raises
    :class:`EvalError`; without it, ``eval`` lines are an error.
    """
    result = ParsedFile()
    defaults = Account()
    current: Account | None = None
    lines = iter_lines(data)
    lineno = 0
    while True:
        try:
            line = next(lines)
        except StopIteration:
            break
        lineno += 1
        parts = split_line(line)
        if parts is None:
            continue
        cmd, arg = parts
        from_eval = False
        if cmd == "eval":
            if not arg:
                raise ConfigError(f"line {lineno}: command eval needs an argument")
            if evaluate is None:
                raise ConfigError(f"line {lineno}: eval is not allowed here")
            try:
                output = evaluate(arg)
            except EvalError as e:
                raise ConfigError(str(e), sysexits.EX_IOERR) from None
            parts = split_line(output)
            if parts is None:
                continue
            cmd, arg = parts
            from_eval = True

        if current is None and cmd not in ("account", "defaults"):
            current = defaults.copy()
            current.id, current.conffile, current.mask = "default", conffile, set()
            result.accounts.append(current)

        if cmd == "defaults":
            if arg:
                raise ConfigError(f"line {lineno}: command defaults does not take an argument")
            current = defaults
            continue
        if cmd == "account":
            current = _new_account(result, defaults, arg, lineno, conffile)
            continue

        assert current is not None
        command = command_by_name(cmd)
        if command is None:
            raise ConfigError(f"line {lineno}: unknown command {cmd}")
        kind = command.kind
        if kind.no_argument and arg:
            raise ConfigError(f"line {lineno}: command {cmd} does not take an argument")
        if kind.required and not arg:
            raise ConfigError(f"line {lineno}: command {cmd} needs an argument")
        try:
            value = kind.parse(arg)
        except InvalidArgument:
            raise ConfigError(
                f"line {lineno}: invalid argument {arg} for command {cmd}"
            ) from None
        if command.secret and not from_eval:
            result.contains_secrets = True
        if command.field is not None:
            current.set(command.field, value)
    return result


def _new_account(
    result: ParsedFile, defaults: Account, arg: str, lineno: int, conffile: str
) -> Account:
    parents: list[Account] = []
    name = arg
    if ":" in arg:
        name_part, _, parent_list = arg.partition(":")
        for parent_name in parent_list.split(","):
            parent_name = trim_argument(parent_name)
            if not parent_name:
                raise ConfigError(f"line {lineno}: missing account name")
            parent = result.find(parent_name)
            if parent is None:
                raise ConfigError(f"line {lineno}: account {parent_name} not (yet) defined")
            parents.append(parent)
        name = trim_argument(name_part)
    if not name:
        raise ConfigError(f"line {lineno}: missing account name")
    if ":" in name or "," in name:
        raise ConfigError(f"line {lineno}: an account name must not contain colons or commas")
    if result.find(name) is not None:
        raise ConfigError(f"line {lineno}: account {name} was already defined")
    acc = defaults.copy()
    acc.id, acc.conffile, acc.mask = name, conffile, set()
    for parent in parents:
        acc.override(parent)
    result.accounts.append(acc)
    return acc
