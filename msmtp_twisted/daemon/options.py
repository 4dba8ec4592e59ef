"""msmtpd's options: one table for the ``msmtpd`` command and ``twistd msmtpd``.

:data:`OPTIONS` lists every option once, with its kind, default and help text.
From it come the console script's ``getopt_long`` options and ``--help`` text
(:mod:`msmtp_twisted.daemon.cli`), the ``twistd msmtpd`` options
(:mod:`msmtp_twisted.daemon.service`), and the defaults of
:class:`~msmtp_twisted.daemon.protocol.DaemonConfig`.  The defaults of the
limits the SMTP conversation enforces (line length, message size, recipients)
are those of the pure :mod:`msmtp_twisted.smtp.server`, taken from there.

Both front ends turn option values into :class:`MsmtpdSettings` with
:func:`apply_option` (the same checks and the same messages), and settings into
a ``DaemonConfig`` with :func:`build_config`.

Importing this module must stay cheap: no Twisted (the twistd plugin and
``msmtpd --help`` use it).
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from msmtp_twisted.smtp.server import (
    DEFAULT_MAX_LINE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECIPIENTS,
)

__all__ = [
    "DEFAULTS",
    "DEFAULT_COMMAND",
    "DEFAULT_INTERFACE",
    "DEFAULT_PORT",
    "OPTIONS",
    "MsmtpdSettings",
    "Option",
    "SettingsError",
    "apply_option",
    "atoi",
    "build_config",
    "default_command",
    "option",
]


def default_command() -> str:
    """Our msmtp: the ``msmtp`` script installed beside this Python, else
    ``python -m msmtp_twisted`` with this Python."""
    script = os.path.join(os.path.dirname(sys.executable), "msmtp")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return f"{shlex.quote(script)} -f %F --"
    return f"{shlex.quote(sys.executable)} -m msmtp_twisted -f %F --"


#: Built-in defaults, as in msmtpd 1.8.23 (but the command: ours).
DEFAULT_INTERFACE = "127.0.0.1"
DEFAULT_PORT = 25
DEFAULT_COMMAND = default_command()

# Kinds of option.
FLAG = "flag"  # no argument
PORT = "port"  # msmtpd reads it with atoi(); twistd also takes an endpoint string
TEXT = "text"  # a non-empty string
AUTH = "auth"  # user[,passwordeval]: the password is fetched while parsing
COUNT = "count"  # an integer >= 1
COUNT0 = "count0"  # an integer >= 0 (0: off)
SECONDS = "seconds"  # a finite number >= 0 (0: off, for timeouts)

#: The kinds whose values are DaemonConfig / ServerLimits attributes.
LIMIT_KINDS = frozenset({COUNT, COUNT0, SECONDS})


@dataclass(frozen=True)
class Option:
    """One option of msmtpd.

    ``usage`` is msmtpd 1.8.23's own ``--help`` text for its options (kept byte
    for byte, ``{default}`` filled in); our extensions get a line built from
    ``arg`` and ``help``.  ``attr`` names the :class:`MsmtpdSettings` field, or
    for a limit the ``DaemonConfig``/``ServerLimits`` attribute.  ``description``
    is the paragraph of the manual and the man page
    (:mod:`msmtp_twisted.config.reference`)."""

    name: str
    kind: str
    default: Any
    help: str
    attr: str = ""
    arg: str = ""
    usage: str = ""
    console: bool = True  # an option of the msmtpd command
    twistd: bool = True  # an option of twistd msmtpd
    #: the paragraph the manual and msmtpd(8) print (every option needs one)
    description: str = ""

    @property
    def msmtpd(self) -> bool:
        """One of msmtpd 1.8.23's options (as opposed to our extensions)."""
        return bool(self.usage)

    def default_text(self) -> str:
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)

    def help_text(self) -> str:
        """``help`` with the default in parentheses."""
        if self.default is None:
            return self.help
        return f"{self.help} (default {self.default_text()})"

    def help_lines(self) -> str:
        """This option's part of ``msmtpd --help``."""
        if self.usage:
            return self.usage.format(default=self.default_text())
        left = f"  --{self.name}={self.arg}" if self.arg else f"  --{self.name}"
        text = self.help_text()
        lines = _wrap(text, 78 - 25)
        out = left.ljust(25) + lines[0] if len(left) < 25 else left + "\n" + " " * 25 + lines[0]
        for line in lines[1:]:
            out += "\n" + " " * 25 + line
        return out + "\n"


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    lines.append(cur)
    return lines


OPTIONS: tuple[Option, ...] = (
    # msmtpd 1.8.23's options, in the order of its --help.
    Option("version", FLAG, None, "print version", attr="print_version", twistd=False,
           description="Print the version (msmtpd 1.8.23 compatible, and ours) and exit.",
           usage="  --version       print version\n"),
    Option("help", FLAG, None, "print help", attr="print_help", twistd=False,
           description="Print a summary of the options, msmtpd's and then ours, and exit.",
           usage="  --help          print help\n"),
    Option("inetd", FLAG, None, "start single SMTP session on stdin/stdout", attr="inetd",
           twistd=False,
           description=(
               "Handle one SMTP session on standard input and output (for inetd, "
               "xinetd or systemd socket activation) instead of listening; exit 0, or 1 "
               "after an error reply or an unfinished session. Not with --queue; twistd "
               "has no equivalent."),
           usage="  --inetd         start single SMTP session on stdin/stdout\n"),
    Option("interface", TEXT, DEFAULT_INTERFACE,
           "listen on this IP address (with a bare port number)", attr="interface",
           description=(
               "The IPv4 or IPv6 address to listen on (default 127.0.0.1); anything "
               "that is not an address is 'invalid interface', exit 3."),
           usage="  --interface=ip  listen on ip instead of {default}\n"),
    Option("port", PORT, DEFAULT_PORT,
           "listen on this port number, or on a Twisted server endpoint "
           "(tcp:2500:interface=::1, unix:/path, ssl:...)", attr="port",
           description=(
               "The port to listen on (default 25), read with atoi() and taken modulo "
               "65536 as msmtpd does. For twistd msmtpd it may also be any Twisted "
               "server endpoint: tcp:2500:interface=::1, unix:/run/msmtpd.sock, "
               "ssl:465:privateKey=...; a bare number is combined with --interface."),
           usage="  --port=number   listen on port number instead of {default}\n"),
    Option("log", TEXT, "none", "log to none, syslog or a file "
           "(twistd's log gets every line too)", attr="log",
           description=(
               "none (the default) logs nothing, syslog logs to syslog (facility "
               "LOG_MAIL), anything else names a file to append to: one line per "
               "session event and mail, as msmtpd. Under twistd every line also goes to "
               "twistd's log."),
           usage="  --log=none|syslog|FILE  do not log anything (default)\n"
                 "                  or log to syslog or log to the given file\n"),
    Option("command", TEXT, DEFAULT_COMMAND, "pipe mails to this command", attr="command",
           description=(
               "The command each mail is piped to (default: our msmtp, 'msmtp -f %F "
               "--'). It is split into words once, at start-up, with the shell's "
               "quoting rules, and run without a shell (a command that needs one is "
               "refused); the first %F is replaced by the envelope-from address and each "
               "recipient is appended as an argument. End it with '--'. The command gets "
               "the whole mail in a file on its standard input and runs in a process "
               "group of its own; exit 0 is answered 250, 68, 69, 71 or 75 (EX_TEMPFAIL) "
               "451, anything else 554."),
           usage="  --command=cmd   pipe mails to cmd instead of {default}\n"),
    Option("auth", AUTH, None, "require authentication: user[,passwordeval]", attr="auth",
           description=(
               "Require AUTH (PLAIN or LOGIN) with this user name. The password comes "
               "from the passwordeval command, run once at start-up (as msmtp's "
               "passwordeval), else from the key ring (host localhost, service smtp), "
               "else from a prompt on the terminal. EHLO then offers AUTH PLAIN LOGIN; "
               "after a failure every AUTH answer is delayed by a second for a minute."),
           usage="  --auth=user[,passwordeval] require authentication with this user name;\n"
                 "                  the password will be retrieved from the given\n"
                 "                  passwordeval command or, if none is given, from\n"
                 "                  the key ring or, if that fails, from a prompt.\n"),
    # Our extensions.
    Option("auth-ldap", TEXT, None,
           "require authentication, checked by an LDAP bind "
           "(ldap[s]://host/uid=%u,dc=example,dc=com, or "
           "ldap://host/BASE??sub?(uid=%u) to search first)", attr="auth_ldap", arg="URL",
           description=(
               "Require AUTH and check the user name and password with an LDAP simple "
               "bind: ldap[s]://host/uid=%u,dc=example,dc=com binds as that DN (%u is "
               "the user name, escaped), ldap://host/BASE??sub?(uid=%u) first searches "
               "for the entry. Wins over --auth. Needs the ldap3 package.")),
    Option("max-sessions", COUNT, 16, "concurrent sessions", attr="max_sessions", arg="N",
           description=(
               "The most concurrent SMTP sessions (default 16); one more client gets 421 "
               "and is disconnected.")),
    Option("max-message-size", COUNT, DEFAULT_MAX_MESSAGE_SIZE,
           "bytes, advertised as SIZE", attr="max_message_size", arg="N",
           description=(
               "The largest mail in bytes (default 256 MiB), advertised with EHLO as "
               "SIZE; a bigger mail gets 552.")),
    Option("max-recipients", COUNT, DEFAULT_MAX_RECIPIENTS, "per mail",
           attr="max_recipients", arg="N",
           description=(
               "The most recipients of one mail (default 1000); more get 452 Too many "
               "recipients.")),
    Option("max-line-length", COUNT, DEFAULT_MAX_LINE, "command line bytes",
           attr="max_line", arg="N",
           description=(
               "The longest command line in bytes, CRLF included (default 4096); a longer "
               "one gets 500 Line too long.")),
    Option("idle-timeout", SECONDS, 300.0, "seconds without input",
           attr="idle_timeout", arg="S",
           description=(
               "Seconds a session may wait for input (not counting a running command) "
               "before it gets 421 and is closed (default 300).")),
    Option("session-timeout", SECONDS, 3600.0, "seconds for a whole session",
           attr="session_timeout", arg="S",
           description=(
               "Seconds a whole session may last (default 3600); then 421.")),
    Option("request-timeout", SECONDS, 60.0,
           "seconds for a command line or mail that has begun to arrive, "
           "plus 1 s per --min-data-rate bytes received", attr="request_timeout", arg="S",
           description=(
               "Seconds within which a command line or a mail that has begun to arrive "
               "must be complete, plus one second per --min-data-rate bytes received "
               "(default 60; 0: no limit); then 421. Stops clients that trickle.")),
    Option("min-data-rate", COUNT0, 500, "bytes per second, 0 for none",
           attr="min_data_rate", arg="N",
           description=(
               "The data rate, in bytes per second, that --request-timeout allows for "
               "(default 500, as Postfix's smtpd_min_data_rate; 0: no limit).")),
    Option("command-timeout", SECONDS, 300.0, "seconds for the pipe command",
           attr="command_timeout", arg="S",
           description=(
               "Seconds the pipe command may run (default 300); then its process group "
               "gets TERM, 5 s later KILL, and the client 451 Pipe command timed out.")),
    Option("shutdown-timeout", SECONDS, 30.0,
           "seconds for mails being piped at SIGTERM/SIGINT",
           attr="shutdown_timeout", arg="S",
           description=(
               "After SIGTERM or SIGINT, the seconds a mail being piped may still take "
               "before its command is stopped and the client gets 451 (default 30; 0: "
               "at once). msmtpd stops taking connections and answers other sessions "
               "421.")),
    Option("queue", TEXT, None,
           "answer 250 once the mail is safely stored in this queue directory, "
           "run the command in the background and retry it after a temporary "
           "failure (docs/queue.md)", attr="queue", arg="DIR",
           description=(
               "Store each mail in this queue directory and answer 250 once it is safely "
               "there; the command then runs in the background and is retried after a "
               "temporary failure (exit 68, 69, 71, 74, 75, 76 or a signal), with a "
               "back-off, "
               "until --queue-max-age. Not with --inetd.")),
    Option("queue-interval", SECONDS, 30.0,
           "seconds between two runs over the queue (0: only at start-up and "
           "for each new mail)", attr="queue_interval", arg="S",
           description=(
               "With --queue: seconds between two runs over the queue (default 30; 0: "
               "only at start-up and for each new mail).")),
    Option("queue-backoff", SECONDS, 60.0,
           "seconds to wait after a mail's second failed attempt, doubled after "
           "each further one", attr="queue_backoff", arg="S",
           description=(
               "With --queue: the wait after a mail's second failed attempt (default 60 "
               "seconds), doubled after each further one.")),
    Option("queue-backoff-max", SECONDS, 3600.0, "the longest wait between two attempts",
           attr="queue_backoff_max", arg="S",
           description=(
               "With --queue: the longest wait between two attempts (default 3600 "
               "seconds).")),
    Option("queue-max-age", SECONDS, 5 * 24 * 3600.0,
           "seconds after which a failed attempt moves the mail to failed/",
           attr="queue_max_age", arg="S",
           description=(
               "With --queue: a mail older than this many seconds (default 432000, 5 "
               "days) is moved to DIR/failed/ at its next failed attempt.")),
)

_BY_NAME = {o.name: o for o in OPTIONS}

#: The default of every limit, by DaemonConfig / ServerLimits attribute.
DEFAULTS: dict[str, Any] = {o.attr: o.default for o in OPTIONS if o.kind in LIMIT_KINDS}


def option(name: str) -> Option:
    return _BY_NAME[name]


class SettingsError(Exception):
    """A start-up error; the message follows ``argv[0]: ``."""


@dataclass
class MsmtpdSettings:
    print_version: bool = False
    print_help: bool = False
    inetd: bool = False
    interface: str = DEFAULT_INTERFACE
    port: int = DEFAULT_PORT
    log: str = "none"
    command: str = ""
    user: str | None = None
    password: str | None = None
    auth_ldap: str | None = None
    queue: str | None = None
    #: The limits given, by DaemonConfig / ServerLimits attribute.
    limits: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.command:
            self.command = DEFAULT_COMMAND


def atoi(text: str) -> int:
    """C's ``atoi()`` on glibc, as msmtpd reads ``--port``: ``strtol()``, which
    clamps to the range of a 64-bit ``long``, cut to a 32-bit ``int``."""
    s = text.lstrip(" \t\n\v\f\r")
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    end = 0
    while end < len(s) and s[end].isascii() and s[end].isdigit():
        end += 1
    digits = s[:end].lstrip("0")
    # more than 19 digits is past LONG_MAX whatever they are (and int() of
    # thousands of digits is refused by Python)
    value = int(digits) if digits and len(digits) <= 19 else (1 << 63 if digits else 0)
    value = max(-(1 << 63), min(-value if negative else value, (1 << 63) - 1))
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


def _number(opt: Option, value: str) -> int | float:
    invalid = SettingsError(f"invalid argument for option '--{opt.name}'")
    try:
        number: int | float = float(value) if opt.kind == SECONDS else int(value)
    except ValueError:
        raise invalid from None
    if not math.isfinite(number) or number < 0 or (opt.kind == COUNT and number == 0):
        raise invalid
    return number


def apply_option(settings: MsmtpdSettings, name: str, value: str | None, *,
                 get_password: Callable[[str | None], tuple[str, str]] | None = None) -> None:
    """Set option ``name`` (``value`` None for a flag) in ``settings``; raises
    :class:`SettingsError` with msmtpd's message."""
    opt = _BY_NAME[name]
    if opt.kind == FLAG:
        setattr(settings, opt.attr, True)
        return
    if value is None or value == "":
        raise SettingsError(f"option '--{name}' requires non-empty argument")
    if opt.kind == PORT:
        settings.port = atoi(value)
    elif opt.kind == TEXT:
        setattr(settings, opt.attr, value)
    elif opt.kind == AUTH:
        from msmtp_twisted.daemon.password import PasswordError

        if get_password is None:
            from msmtp_twisted.daemon.password import get_password
        try:
            settings.user, settings.password = get_password(value)
        except PasswordError as e:
            raise SettingsError(str(e)) from None
    else:
        settings.limits[opt.attr] = _number(opt, value)


def build_config(settings: MsmtpdSettings, *, inetd: bool | None = None) -> Any:
    """The :class:`~msmtp_twisted.daemon.protocol.DaemonConfig` for ``settings``;
    raises :class:`SettingsError` for a command or LDAP URL we cannot use."""
    from msmtp_twisted.daemon.checkers import LDAPChecker, StaticChecker
    from msmtp_twisted.daemon.command import CommandError, PipeCommand
    from msmtp_twisted.daemon.protocol import DaemonConfig
    from msmtp_twisted.smtp.server import ServerLimits

    try:
        command = PipeCommand.parse(settings.command)
    except CommandError as e:
        raise SettingsError(f"cannot use command '{settings.command}': {e}") from None
    checker: Any = None
    if settings.auth_ldap is not None:
        try:
            checker = LDAPChecker(settings.auth_ldap)
        except ValueError as e:
            raise SettingsError(str(e)) from None
    elif settings.user is not None:
        checker = StaticChecker(settings.user, settings.password or "")
    queue_dir = None
    if settings.queue is not None:
        if settings.inetd if inetd is None else inetd:
            raise SettingsError("option '--queue' cannot be used with '--inetd'")
        from msmtp_twisted.queue.spool import Spool

        queue_dir = os.path.abspath(os.path.expanduser(settings.queue))
        try:
            Spool(queue_dir).ensure()
        except OSError as e:
            raise SettingsError(f"cannot use queue {queue_dir}: "
                                f"{e.strerror or e}") from None
    values = {**DEFAULTS, **settings.limits}
    limits = ServerLimits(**{k: values.pop(k) for k in
                             ("max_line", "max_message_size", "max_recipients")})
    return DaemonConfig(command=command, checker=checker, limits=limits,
                        always_delay_auth=bool(settings.inetd if inetd is None else inetd),
                        queue_dir=queue_dir, **values)
