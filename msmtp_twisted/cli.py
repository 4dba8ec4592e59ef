"""The ``msmtp`` command line: options (section 3.2), then mode dispatch.

Parsing is pure (:func:`parse_command_line`); :func:`main` wires it to the
configuration files, stdin, stdout and the exit status.  Nothing here imports
Twisted: ``--pretend``, ``--version`` and every usage error stay fast.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import BinaryIO

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.config.commands import (
    GETOPT_ORDER,
    IGNORED,
    OPTIONS,
    Command,
    InvalidArgument,
    merge_order,
)
from msmtp_twisted.getopt import GetoptError, LongOption, getopt_long
from msmtp_twisted.modes.invocation import CommandLine, Output

__all__ = ["UsageError", "console_main", "main", "parse_command_line", "run"]

_ARG_SUFFIX = {"none": "", "required": ":", "optional": "::"}


def _build_options() -> tuple[str, list[LongOption], dict[str, Command]]:
    """getopt's short and long options, from the rows of the table."""
    shortopts = ""
    by_key: dict[str, Command] = {}
    options: dict[str, LongOption] = {}
    for row in OPTIONS:
        if row.short:
            shortopts += row.short + _ARG_SUFFIX[row.cli_arg]
        for name in row.cli:
            options[name] = LongOption(name, row.cli_arg, row.key)
        if row.name and (row.cli or row.short):
            by_key[row.key] = row
    # msmtp's getopt table order decides the order of "possibilities" in the
    # ambiguity message
    ordered = [options[name] for name in merge_order(list(options), GETOPT_ORDER)]
    return shortopts, ordered, by_key


SHORTOPTS, LONG_OPTIONS, _COMMAND_BY_KEY = _build_options()

#: Short options accepted and ignored for sendmail compatibility (-b and -v are
#: looked at before these).
_IGNORED_SHORT = {row.short for row in OPTIONS if row.section == IGNORED and row.short}


class UsageError(Exception):
    """A command-line error: msmtp prints the message and exits with EX_USAGE."""

    def __init__(self, message: str, *, from_getopt: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.from_getopt = from_getopt


def parse_command_line(args: Sequence[str], *, posixly_correct: bool = False) -> CommandLine:
    """Parse ``argv[1:]``; raise :class:`UsageError` exactly where msmtp stops."""
    conf = CommandLine()
    acc = conf.account
    try:
        for key, value in getopt_long(
            args, SHORTOPTS, LONG_OPTIONS, posixly_correct=posixly_correct
        ):
            if key is None:
                assert isinstance(value, list)
                conf.recipients_args = value
                break
            assert value is None or isinstance(value, str)
            _apply_option(conf, acc, key, value)
    except GetoptError as e:
        raise UsageError(e.message, from_getopt=True) from None
    return conf


def _apply_option(conf: CommandLine, acc: Account, key: str, value: str | None) -> None:
    if key == "version":
        conf.print_version, conf.sendmail, conf.serverinfo = True, False, False
    elif key == "help":
        conf.print_help, conf.sendmail, conf.serverinfo = True, False, False
    elif key == "configure":
        conf.configure, conf.sendmail, conf.serverinfo = value, False, False
    elif key == "P":
        conf.print_conf = conf.pretend = True
    elif key in ("d", "v"):
        conf.print_conf = conf.debug = True
        if value == "0.1":  # sendmail's documented "print version" debug level
            conf.print_version = True
    elif key == "S":
        if conf.rmqs is not None:
            raise UsageError("cannot use both --serverinfo and --rmqs")
        conf.serverinfo, conf.sendmail = True, False
    elif key == "rmqs":
        if conf.serverinfo:
            raise UsageError("cannot use both --serverinfo and --rmqs")
        conf.rmqs, conf.sendmail, conf.serverinfo = value or "", False, False
    elif key == "C":
        conf.user_conffile = value
    elif key == "a":
        if acc.host is not None:
            raise UsageError("cannot use both --host and --account")
        conf.account_id = value
    elif key == "cmd:host":
        if conf.account_id is not None:
            raise UsageError("cannot use both --host and --account")
        acc.set("host", value)
    elif key == "f":
        if conf.read_envelope_from:
            raise UsageError("cannot use both --from and --read-envelope-from")
        # "<>" means the empty (null) sender (Debian bug 612679)
        acc.set("from_addr", "" if value == "<>" else value)
    elif key == "read-envelope-from":
        if acc.from_addr is not None:
            raise UsageError("cannot use both --from and --read-envelope-from")
        conf.read_envelope_from = True
        acc.mask.add("from_addr")
    elif key == "t":
        conf.read_recipients = True
    elif key == "b":
        if value != "m":
            raise UsageError(f"unsupported operation mode b{value}")
    elif key == "F":
        acc.set("from_full_name", value)
    elif key in _IGNORED_SHORT:
        pass
    else:
        command = _COMMAND_BY_KEY[key]
        _apply_setting(acc, command, value)


def _apply_setting(acc: Account, command: Command, value: str | None) -> None:
    kind = command.option_kind
    if value is None:  # optional argument left out: the "on" (or "auto") form
        text = kind.values[0] if kind.values and kind.values[0] == "auto" else "on"
    else:
        text = value
        if command.cli_arg == "optional" and text == "" and command.field not in (
            "auth_mech",
            None,
        ):
            raise UsageError(f"invalid argument {text} for --{command.cli[0]}")
    try:
        parsed = kind.parse(text)
    except InvalidArgument:
        raise UsageError(f"invalid argument {text} for --{command.cli[0]}") from None
    if command.field is not None:
        acc.set(command.field, parsed)


# --------------------------------------------------------------------------
# running


def main(
    argv: Sequence[str],
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run msmtp with ``argv``; return the exit status (sysexits)."""
    argv0 = argv[0] if argv else "msmtp"
    prog = os.path.basename(argv0) or "msmtp"
    if stdout is None:
        stdout = sys.stdout.buffer
        if isinstance(stdout, io.RawIOBase):  # python -u / PYTHONUNBUFFERED
            stdout = io.BufferedWriter(stdout)
    out = Output(prog, stdout, stderr or sys.stderr.buffer)
    environ = dict(os.environ) if env is None else env
    try:
        return run(argv, out, stdin or sys.stdin.buffer, environ)
    finally:
        try:
            out.stdout.flush()
        except OSError:
            pass


def run(argv: Sequence[str], out: Output, stdin: BinaryIO, env: dict) -> int:
    """Run msmtp with ``argv`` printing to ``out``; return the exit status.

    For programs on top of msmtp (``msmtpq``): after a send, ``out.attempt``
    holds the outcome.
    """
    from msmtp_twisted.modes import info

    argv0 = argv[0] if argv else "msmtp"

    try:
        conf = parse_command_line(
            list(argv[1:]), posixly_correct="POSIXLY_CORRECT" in env
        )
    except UsageError as e:
        if e.from_getopt:
            # glibc prints argv[0] as given, not its base name
            out.stderr.write(f"{argv0}: {e.message}\n".encode("utf-8", "surrogateescape"))
        else:
            out.err(e.message)
        return sysexits.EX_USAGE

    if conf.print_version:
        info.print_version(out)
    if conf.print_help:
        info.print_help(out)
    if conf.configure is not None:
        from msmtp_twisted.modes.configure import run_configure

        return run_configure(conf, out)
    if conf.print_help or conf.print_version or (
        not conf.sendmail and not conf.serverinfo and conf.rmqs is None and not conf.print_conf
    ):
        return sysexits.EX_OK

    from msmtp_twisted.message.headers import addresses_from_arguments

    recipients = addresses_from_arguments(conf.recipients_args)
    if (conf.serverinfo or conf.rmqs is not None) and recipients:
        out.err("too many arguments")
        return sysexits.EX_USAGE

    from msmtp_twisted.modes.prepare import prepare

    return prepare(conf, recipients, out, stdin, env)


def console_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``msmtp`` console script (and ``python -m msmtp_twisted``)."""
    from msmtp_twisted.console import run_console

    run_console(lambda: main(sys.argv if argv is None else argv))
