"""The one table of msmtprc commands.

Every configuration command msmtp knows is one :class:`Command` row here.  The
msmtprc parser, the command-line options, ``--pretend`` and the generated docs all
read this table, so adding a setting means adding a row, nothing else.

A row names the :class:`Account` field it sets, the :class:`Kind` that turns the
text argument into a value, and the long/short command-line spellings.  Kinds are
pure functions of the argument text: they raise :class:`InvalidArgument` and never
touch the file system, so they can be fuzzed on their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUTH_METHODS",
    "COMMANDS",
    "Command",
    "InvalidArgument",
    "Kind",
    "SETTINGS",
    "Setting",
    "command_by_name",
    "expand_tilde",
    "get_pos_int",
    "parse_fingerprint",
]


class InvalidArgument(ValueError):
    """The argument text is not acceptable for this command or option."""


# --------------------------------------------------------------------------
# helpers shared by the kinds


def get_pos_int(text: str) -> int:
    """A positive int as C's ``strtol(s, &end, 0)`` reads it, or -1.

    msmtp accepts whatever strtol accepts with base 0: leading blanks, a sign,
    ``0x`` hex and ``0`` octal prefixes.  Trailing garbage, zero and negative
    numbers and values above INT_MAX are rejected (-1), exactly as msmtp does.
    """
    s = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    base = 10
    if s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        base, s = 16, s[2:]
    elif s[:1] == "0" and len(s) > 1:
        base, s = 8, s[1:]
    digits = "0123456789abcdef"[:base]
    if not s or any(c.lower() not in digits for c in s):
        return -1
    value = sign * int(s, base)
    if value <= 0 or value > 2**31 - 1:
        return -1
    return value


def home_dir() -> str:
    """``$HOME``, else the password database's home directory, else "" (as msmtp)."""
    home = os.environ.get("HOME")
    if home is not None:
        return home
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (KeyError, ImportError):
        return ""


def expand_tilde(path: str) -> str:
    """Replace a leading ``~`` by ``$HOME`` (msmtp does this textually, for ``~user`` too)."""
    if path.startswith("~"):
        return home_dir() + path[1:]
    return path


def parse_fingerprint(text: str) -> bytes | None:
    """Decode ``01:23:...`` (SHA256, SHA1 or MD5 length; ``:`` or space separators)."""
    for length in (32, 20, 16):
        if len(text) == 3 * length - 1:
            break
    else:
        return None
    out = bytearray()
    for i in range(length):
        pair = text[3 * i : 3 * i + 2]
        if any(c not in "0123456789abcdefABCDEF" for c in pair):
            return None
        if i < length - 1 and text[3 * i + 2] not in ": ":
            return None
        out.append(int(pair, 16))
    return bytes(out)


def format_fingerprint(fp: bytes) -> str:
    return ":".join(f"{b:02X}" for b in fp)


# --------------------------------------------------------------------------
# kinds of argument


@dataclass(frozen=True)
class Kind:
    """How an argument text becomes a value.

    ``parse`` gets the argument text ("" when the argument is empty or, for a
    command-line option with an optional argument, absent).  ``required`` means
    an msmtprc line with an empty argument is an error ("needs an argument").
    ``no_argument`` means the msmtprc command must have no argument at all.
    ``type`` is the type of what ``parse`` returns, as Python source text: the
    typed :class:`~msmtp_twisted.config.account.Account` attributes are generated
    from it (:mod:`msmtp_twisted.config.fieldgen`).
    """

    name: str
    parse: Callable[[str], Any]
    required: bool = False
    no_argument: bool = False
    values: tuple[str, ...] = ()
    doc: str = ""
    type: str = ""


def _onoff(on: Any, off: Any, *, empty_is_on: bool = True) -> Callable[[str], Any]:
    def parse(arg: str) -> Any:
        if arg == "on" or (arg == "" and empty_is_on):
            return on
        if arg == "off":
            return off
        raise InvalidArgument(arg)

    return parse


def _choice(mapping: dict[str, Any]) -> Callable[[str], Any]:
    def parse(arg: str) -> Any:
        try:
            return mapping[arg]
        except KeyError:
            raise InvalidArgument(arg) from None

    return parse


def _string(arg: str) -> str:
    return arg


def _optional_string(arg: str) -> str | None:
    return arg or None


def _file(arg: str) -> str | None:
    return expand_tilde(arg) if arg else None


def _port(arg: str) -> int:
    value = get_pos_int(arg)
    if not 1 <= value <= 65535:
        raise InvalidArgument(arg)
    return value


def _proxy_port(arg: str) -> int:
    return _port(arg) if arg else 0


def _timeout(arg: str) -> int:
    if arg == "off":
        return 0
    value = get_pos_int(arg)
    if value < 1:
        raise InvalidArgument(arg)
    return value


def _dh_bits(arg: str) -> int:
    if not arg:
        return -1
    value = get_pos_int(arg)
    if value < 1:
        raise InvalidArgument(arg)
    return value


#: Methods accepted by ``auth``; the -PLUS ones are in the manual but not in 1.8.23.
AUTH_METHODS = (
    "scram-sha-256-plus",
    "scram-sha-1-plus",
    "scram-sha-256",
    "scram-sha-1",
    "plain",
    "gssapi",
    "external",
    "oauthbearer",
    "cram-md5",
    "digest-md5",
    "login",
    "ntlm",
    "xoauth2",
)


def _auth(arg: str) -> str | None:
    # "" means "choose a method"; None means no authentication.
    if arg in ("", "on"):
        return ""
    if arg == "off":
        return None
    if arg in AUTH_METHODS:
        return arg.upper()
    raise InvalidArgument(arg)


def _fingerprint(arg: str) -> bytes | None:
    if not arg:
        return None
    fp = parse_fingerprint(arg)
    if fp is None:
        raise InvalidArgument(arg)
    return fp


def _dsn_notify(arg: str) -> str | None:
    if arg == "off":
        return None
    if arg == "never":
        return "NEVER"
    parts = arg.split(",")
    if not parts or any(p not in ("failure", "delay", "success") for p in parts):
        raise InvalidArgument(arg)
    if len(set(parts)) != len(parts):
        raise InvalidArgument(arg)
    return arg.upper()


def _dsn_return(aliases: dict[str, str]) -> Callable[[str], str | None]:
    def parse(arg: str) -> str | None:
        if arg == "off":
            return None
        try:
            return aliases[arg]
        except KeyError:
            raise InvalidArgument(arg) from None

    return parse


SYSLOG_FACILITIES = ("LOG_USER", "LOG_MAIL") + tuple(f"LOG_LOCAL{i}" for i in range(8))


def _syslog(arg: str) -> str | None:
    if arg in ("", "on"):
        return "LOG_USER"
    if arg == "off":
        return None
    if arg in SYSLOG_FACILITIES:
        return arg
    raise InvalidArgument(arg)


def _protocol(arg: str) -> str:
    if arg in ("smtp", "lmtp"):
        return arg
    raise InvalidArgument(arg)


def _ignored(arg: str) -> None:
    return None


ONOFF = Kind("on|off", _onoff(True, False), values=("on", "off"), type="bool")
ONOFF_INVERTED = Kind("on|off", _onoff(False, True), values=("on", "off"), type="bool")

def _literal(*values: str) -> str:
    """The type text of a choice: ``Literal["a", "b"]``."""
    return "Literal[" + ", ".join(f'"{v}"' for v in values) + "]"


KINDS = {
    "host": Kind("hostname", _string, required=True, type="str"),
    "port": Kind("number", _port, required=True, type="int"),
    # float: a program may give a fraction of a second; msmtprc gives whole seconds
    "timeout": Kind("off|seconds", _timeout, required=True, type="float"),
    "protocol": Kind(
        "smtp|lmtp", _protocol, required=True, values=("smtp", "lmtp"),
        type=_literal("smtp", "lmtp"),
    ),
    "string": Kind("text", _string, type="str"),
    "optional_string": Kind("[text]", _optional_string, type="str | None"),
    "file": Kind("[file]", _file, type="str | None"),
    "auth": Kind(
        "[on|off|method]", _auth, values=("on", "off") + AUTH_METHODS,
        type=_literal("", *(m.upper() for m in AUTH_METHODS)) + " | None",
    ),
    "fingerprint": Kind("[fingerprint]", _fingerprint, type="bytes | None"),
    "dh_bits": Kind("[bits]", _dh_bits, type="int"),
    "dsn_notify": Kind(
        "off|never|failure,delay,success", _dsn_notify, required=True, type="str | None"
    ),
    "dsn_return": Kind(
        "off|headers|full",
        _dsn_return({"headers": "HDRS", "full": "FULL"}),
        required=True,
        values=("off", "headers", "full"),
        type=_literal("HDRS", "FULL") + " | None",
    ),
    "syslog": Kind(
        "[on|off|facility]", _syslog, values=("on", "off") + SYSLOG_FACILITIES,
        type=_literal(*SYSLOG_FACILITIES) + " | None",
    ),
    "proxy_port": Kind("[number]", _proxy_port, type="int"),
    "set_from_header": Kind(
        "[auto|on|off]",
        _choice({"": "auto", "auto": "auto", "on": "on", "off": "off"}),
        values=("auto", "on", "off"),
        type=_literal("auto", "on", "off"),
    ),
    "set_auto_off": Kind(
        "[auto|off]", _choice({"": "auto", "auto": "auto", "off": "off"}), values=("auto", "off"),
        type=_literal("auto", "off"),
    ),
    "set_to_header": Kind(
        "[on|off|undisclosed_recipients]",
        _choice(
            {
                "": "on",
                "on": "on",
                "off": "off",
                "undisclosed_recipients": "undisclosed_recipients",
            }
        ),
        values=("on", "off", "undisclosed_recipients"),
        type=_literal("on", "off", "undisclosed_recipients"),
    ),
    # obsolete spellings that map onto the newer settings
    "missing_header": Kind(
        "[on|off]", _onoff("auto", "off"), values=("on", "off"), type=_literal("auto", "off")
    ),
    "undisclosed": Kind(
        "[on|off]", _onoff("undisclosed_recipients", "off"), values=("on", "off"),
        type=_literal("undisclosed_recipients", "off"),
    ),
    "noarg_false": Kind("", lambda arg: False, no_argument=True, type="bool"),
    "ignored": Kind("", _ignored, type="None"),
}


# --------------------------------------------------------------------------
# settings (account fields) and commands


@dataclass(frozen=True)
class Setting:
    """One field of an account: its default and how ``--pretend`` shows it.

    ``label`` is the name ``--pretend`` prints and ``show`` the formatter (see
    :mod:`msmtp_twisted.modes.pretend`).  ``sendmail_only`` settings are printed
    only in sendmail mode.  ``extra`` settings are newer than msmtp 1.8.23 and are
    printed only when they differ from their default, so that ``--pretend`` output
    stays identical to 1.8.23's for every configuration 1.8.23 understands.
    """

    field: str
    default: Any
    label: str | None
    show: str = "str"
    sendmail_only: bool = False
    extra: bool = False
    doc: str = ""


# Ordered as msmtp prints them with --pretend.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", None, "host", doc="SMTP server host name or address"),
    Setting("port", 0, "port", "int", doc="server port (0: 25, or 465 for TLS without STARTTLS)"),
    Setting("source_ip", None, "source ip", doc="local address to bind to"),
    Setting("proxy_host", None, "proxy host", doc="SOCKS5 proxy host"),
    Setting("proxy_port", 0, "proxy port", "int", doc="SOCKS5 proxy port (0: 1080)"),
    Setting("socket", None, "socket", doc="unix domain socket to connect to"),
    Setting("timeout", 0, "timeout", "timeout", doc="network timeout in seconds (0: off)"),
    Setting("protocol", "smtp", "protocol", doc="smtp or lmtp"),
    Setting("domain", "localhost", "domain", doc="EHLO/LHLO argument and Message-ID domain"),
    Setting("auth_mech", None, "auth", "auth", doc="None: no auth; '': choose; else the method"),
    Setting("username", None, "user", doc="user name for authentication"),
    Setting("password", None, "password", "secret", doc="password (never printed)"),
    Setting("passwordeval", None, "passwordeval", doc="command printing the password"),
    Setting("ntlmdomain", None, "ntlmdomain", doc="NTLM domain (obsolete)"),
    Setting("tls", False, "tls", "onoff", doc="use TLS"),
    Setting("tls_starttls", True, "tls_starttls", "onoff", doc="STARTTLS, or TLS from the start"),
    Setting("tls_trust_file", None, "tls_trust_file", doc="CA file, 'system', or None"),
    Setting("tls_crl_file", None, "tls_crl_file", doc="CRL file"),
    Setting("tls_fingerprint", None, "tls_fingerprint", "fingerprint", doc="pinned certificate"),
    Setting("tls_key_file", None, "tls_key_file", doc="client key"),
    Setting("tls_cert_file", None, "tls_cert_file", doc="client certificate"),
    Setting("tls_certcheck", True, "tls_certcheck", "onoff", doc="verify the server certificate"),
    Setting("tls_min_dh_prime_bits", -1, "tls_min_dh_prime_bits", "dh", doc="deprecated"),
    Setting("tls_priorities", None, "tls_priorities", doc="TLS priority string"),
    Setting("tls_host_override", None, "tls_host_override", doc="host name for verification"),
    Setting("auto_from", False, "auto_from", "onoff", True, doc="obsolete automatic envelope-from"),
    Setting("maildomain", None, "maildomain", sendmail_only=True, doc="obsolete auto_from domain"),
    Setting("from_addr", None, "from", "from", True, doc="envelope-from address (or pattern)"),
    Setting(
        "from_full_name", None, "from_full_name", sendmail_only=True, extra=True,
        doc="full name for a generated From header",
    ),
    Setting("allow_from_override", True, "allow_from_override", "onoff", True,
            doc="let -f override 'from'"),
    Setting("set_from_header", "auto", "set_from_header", sendmail_only=True,
            doc="auto, on or off"),
    Setting("set_date_header", "auto", "set_date_header", sendmail_only=True, doc="auto or off"),
    Setting("set_msgid_header", "auto", "set_msgid_header", sendmail_only=True, extra=True,
            doc="auto or off"),
    Setting("remove_bcc_headers", True, "remove_bcc_headers", "onoff", True,
            doc="remove Bcc headers"),
    Setting("set_to_header", "off", "undisclosed_recipients", "undisclosed", True,
            doc="off, on or undisclosed_recipients"),
    Setting("dsn_notify", None, "dsn_notify", sendmail_only=True, doc="DSN NOTIFY value"),
    Setting("dsn_return", None, "dsn_return", sendmail_only=True, doc="DSN RET value"),
    Setting("logfile", None, "logfile", sendmail_only=True, doc="log file, '-' for stdout"),
    Setting("logfile_time_format", None, "logfile_time_format", sendmail_only=True,
            doc="strftime format, 'none' for no time"),
    Setting("syslog", None, "syslog", sendmail_only=True, doc="syslog facility"),
    Setting("aliases", None, "aliases", sendmail_only=True, doc="aliases file"),
)

SETTING_DEFAULTS: dict[str, Any] = {s.field: s.default for s in SETTINGS}


@dataclass(frozen=True)
class Command:
    """One msmtprc command and the command-line option(s) that set the same field.

    ``cli`` lists long option names (first one is used in error messages);
    ``cli_arg`` is "required" or "optional" as in getopt_long.  ``cli_kind``
    overrides the kind for the command line where msmtp parses differently
    (``-R hdrs``, ``--maildomain=`` unsetting).  ``secret`` marks commands whose
    presence makes a config file subject to the permission check.
    """

    name: str
    field: str | None
    kind: Kind
    cli: tuple[str, ...] = ()
    short: str | None = None
    cli_arg: str = "required"
    cli_kind: Kind | None = None
    secret: bool = False
    obsolete: bool = False
    doc: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def option_kind(self) -> Kind:
        return self.cli_kind or self.kind


K = KINDS

COMMANDS: tuple[Command, ...] = (
    Command("host", "host", K["host"], ("host",), doc="The SMTP server."),
    Command("port", "port", K["port"], ("port",)),
    Command("source_ip", "source_ip", K["optional_string"], ("source-ip",)),
    Command("proxy_host", "proxy_host", K["optional_string"], ("proxy-host",)),
    Command("proxy_port", "proxy_port", K["proxy_port"], ("proxy-port",)),
    Command("socket", "socket", K["optional_string"], ("socket",)),
    Command(
        "timeout", "timeout", K["timeout"], ("timeout", "connect-timeout"),
        aliases=("connect_timeout",),
    ),
    Command("protocol", "protocol", K["protocol"], ("protocol",)),
    Command("domain", "domain", K["string"], ("domain",)),
    Command("auth", "auth_mech", K["auth"], ("auth",), cli_arg="optional"),
    Command("user", "username", K["optional_string"], ("user",)),
    Command("password", "password", K["optional_string"], secret=True),
    Command("passwordeval", "passwordeval", K["optional_string"], ("passwordeval",)),
    Command("ntlmdomain", "ntlmdomain", K["optional_string"], obsolete=True),
    Command("tls", "tls", ONOFF, ("tls",), cli_arg="optional"),
    Command("tls_starttls", "tls_starttls", ONOFF, ("tls-starttls",), cli_arg="optional"),
    Command("tls_trust_file", "tls_trust_file", K["file"], ("tls-trust-file",)),
    Command("tls_crl_file", "tls_crl_file", K["file"], ("tls-crl-file",)),
    Command("tls_fingerprint", "tls_fingerprint", K["fingerprint"], ("tls-fingerprint",)),
    Command("tls_key_file", "tls_key_file", K["file"], ("tls-key-file",)),
    Command("tls_cert_file", "tls_cert_file", K["file"], ("tls-cert-file",)),
    Command("tls_certcheck", "tls_certcheck", ONOFF, ("tls-certcheck",), cli_arg="optional"),
    Command(
        "tls_min_dh_prime_bits", "tls_min_dh_prime_bits", K["dh_bits"],
        ("tls-min-dh-prime-bits",), obsolete=True,
    ),
    Command("tls_priorities", "tls_priorities", K["optional_string"], ("tls-priorities",)),
    Command(
        "tls_host_override", "tls_host_override", K["optional_string"], ("tls-host-override",)
    ),
    Command("from", "from_addr", K["string"], ("from",), short="f"),
    Command("from_full_name", "from_full_name", K["optional_string"]),
    # on|off only, no empty form: the manual's "(on|off)" and msmtp 1.8.23 agree
    Command(
        "allow_from_override", "allow_from_override",
        Kind("on|off", _onoff(True, False, empty_is_on=False), values=("on", "off"),
             type="bool"),
    ),
    Command("dsn_notify", "dsn_notify", K["dsn_notify"], ("dsn-notify",), short="N"),
    Command(
        "dsn_return", "dsn_return", K["dsn_return"], ("dsn-return",), short="R",
        cli_kind=Kind(
            "off|hdrs|headers|full",
            _dsn_return({"hdrs": "HDRS", "headers": "HDRS", "full": "FULL"}),
            type=_literal("HDRS", "FULL") + " | None",
        ),
    ),
    Command(
        "set_from_header", "set_from_header", K["set_from_header"], ("set-from-header",),
        cli_arg="optional",
    ),
    Command(
        "set_date_header", "set_date_header", K["set_auto_off"], ("set-date-header",),
        cli_arg="optional",
    ),
    Command(
        "set_msgid_header", "set_msgid_header", K["set_auto_off"], ("set-msgid-header",),
        cli_arg="optional",
    ),
    Command(
        "set_to_header", "set_to_header", K["set_to_header"], ("set-to-header",),
        cli_arg="optional",
    ),
    Command(
        "remove_bcc_headers", "remove_bcc_headers", ONOFF, ("remove-bcc-headers",),
        cli_arg="optional",
    ),
    Command("logfile", "logfile", K["file"], ("logfile",), short="X"),
    Command(
        "logfile_time_format", "logfile_time_format", K["optional_string"],
        ("logfile-time-format",),
    ),
    Command("syslog", "syslog", K["syslog"], ("syslog",), cli_arg="optional"),
    Command("aliases", "aliases", K["file"], ("aliases",)),
    # obsolete commands, still parsed
    Command(
        "auto_from", "auto_from", ONOFF, ("auto-from",), cli_arg="optional", obsolete=True
    ),
    Command(
        "maildomain", "maildomain", K["string"], ("maildomain",), obsolete=True,
        cli_kind=K["optional_string"],
    ),
    Command(
        "add_missing_from_header", "set_from_header", K["missing_header"],
        ("add-missing-from-header",), cli_arg="optional", obsolete=True,
    ),
    Command(
        "add_missing_date_header", "set_date_header", K["missing_header"],
        ("add-missing-date-header",), cli_arg="optional", obsolete=True,
    ),
    Command(
        "undisclosed_recipients", "set_to_header", K["undisclosed"],
        ("undisclosed-recipients",), cli_arg="optional", obsolete=True,
    ),
    Command(
        "keepbcc", "remove_bcc_headers", ONOFF_INVERTED, ("keepbcc",), cli_arg="optional",
        obsolete=True,
    ),
    Command("tls_nocertcheck", "tls_certcheck", K["noarg_false"], obsolete=True),
    Command("tls_nostarttls", "tls_starttls", K["noarg_false"], obsolete=True),
    Command(
        "tls_force_sslv3", None, K["ignored"], ("tls-force-sslv3",), cli_arg="optional",
        obsolete=True,
    ),
)

_BY_NAME: dict[str, Command] = {}
for _cmd in COMMANDS:
    _BY_NAME[_cmd.name] = _cmd
    for _alias in _cmd.aliases:
        _BY_NAME[_alias] = _cmd


def command_by_name(name: str) -> Command | None:
    """The command for an msmtprc keyword (``defaults``, ``account`` and ``eval`` excepted)."""
    return _BY_NAME.get(name)
