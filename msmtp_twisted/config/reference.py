"""The reference pages, rendered from the one command table and msmtpd's option table.

Pure functions of :data:`~msmtp_twisted.config.commands.TABLE` and
:data:`~msmtp_twisted.daemon.options.OPTIONS` (no Twisted):

- :func:`render_reference`: the msmtprc commands, Markdown (``docs/commands.md``);
- :func:`render_msmtp_options`, :func:`render_msmtpd_options`: every option of
  ``msmtp`` and of ``msmtpd``, Markdown (the manual's option pages);
- :func:`render_man_page`: ``msmtp(1)`` and ``msmtpd(8)`` in roff (man(7) macros),
  committed as ``docs/man/msmtp.1`` and ``docs/man/msmtpd.8`` and installed by
  ``pip install`` under ``share/man``.

``python -m msmtp_twisted.config.reference --write`` regenerates the committed
files (docs/commands.md and docs/man/*); without arguments it prints
docs/commands.md.  Tests keep the committed files in step with the tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from msmtp_twisted import MSMTP_COMPAT_VERSION, __version__
from msmtp_twisted.config.commands import (
    COMMANDS,
    OPTIONS,
    SECTIONS,
    SETTINGS,
    Command,
    format_fingerprint,
)

if TYPE_CHECKING:
    from msmtp_twisted.daemon.options import Option

__all__ = [
    "GENERATED_FILES",
    "render_man_page",
    "render_msmtp_options",
    "render_msmtpd_options",
    "render_reference",
    "write_generated",
]

#: The committed generated files, relative to the source tree's docs/ folder.
GENERATED_FILES = ("commands.md", "man/msmtp.1", "man/msmtpd.8")

#: msmtprc commands with a syntax of their own (not rows of the table).
SPECIAL_COMMANDS = (
    ("defaults", "", "The following commands set defaults for every account defined "
     "after them in the same file. May appear several times."),
    ("account", "name [: account[,...]]", "Start the account named name, with the "
     "current defaults filled in. After a colon, the accounts listed (defined before) "
     "are inherited from, in order: the new account takes every setting they set. "
     "The account named default is used when no other is chosen."),
    ("eval", "cmd", "Replace this line by the first line the shell command cmd prints "
     "(e.g. eval gpg -d -q host.gpg), when the file is read. The command reads from "
     "/dev/null; for a password, passwordeval is better: it runs only when needed."),
)

#: msmtp's exit codes (sysexits.h) and when it uses them.
EXIT_CODES = (
    ("0", "EX_OK", "success"),
    ("64", "EX_USAGE", "bad command-line usage"),
    ("65", "EX_DATAERR", "the server refused the sender, a recipient or the mail (5xx), "
     "or the mail is malformed"),
    ("66", "EX_NOINPUT", "a TLS trust, CRL, certificate or key file cannot be read"),
    ("68", "EX_NOHOST", "the host name is not found"),
    ("69", "EX_UNAVAILABLE", "the server is unavailable: a 4xx reply, a refused final "
     "dot, a missing STARTTLS, AUTH or DSN capability, a failed certificate check or "
     "SOCKS proxy"),
    ("70", "EX_SOFTWARE", "an internal error"),
    ("71", "EX_OSERR", "an operating system error"),
    ("74", "EX_IOERR", "a network read or write error"),
    ("75", "EX_TEMPFAIL", "a temporary failure: connection refused or timed out, a "
     "temporary DNS failure"),
    ("76", "EX_PROTOCOL", "a TLS handshake failure or an SMTP protocol violation"),
    ("77", "EX_NOPERM", "authentication failed, or a configuration file holding a "
     "secret has unsafe permissions"),
    ("78", "EX_CONFIG", "a configuration error, a failed passwordeval, no envelope-from "
     "address"),
)


# --------------------------------------------------------------------------
# helpers


def _default(field: str | None) -> str:
    for setting in SETTINGS:
        if setting.field == field:
            value = setting.default
            if value is None:
                return "(not set)"
            if isinstance(value, bool):
                return "on" if value else "off"
            if isinstance(value, bytes):
                return format_fingerprint(value)
            return str(value)
    return ""


def _doc(field: str | None) -> str:
    for setting in SETTINGS:
        if setting.field == field:
            return setting.doc
    return "ignored"


def _argument(cmd: Command) -> str:
    """The command's argument as the manual writes it (``[file]``, ``[(on|off)]``):
    the row's ``argument``, else its option's, else its kind's."""
    if cmd.argument:
        return cmd.argument
    if cmd.usage:
        spelling = cmd.usage.rpartition(", ")[2]
        if "[=" in spelling:
            return "[" + spelling.partition("[=")[2]
        if "=" in spelling:
            return spelling.partition("=")[2]
        if " " in spelling:
            return spelling.partition(" ")[2]
    name = cmd.kind.name
    if not name or name.startswith("[") or cmd.kind.required:
        return name
    return f"[{name}]"


def _option_names(cmd: Command) -> list[str]:
    names = [f"-{cmd.short}"] if cmd.short else []
    return names + [f"--{name}" for name in cmd.cli]


def _sections(options: tuple[Command, ...]) -> list[tuple[str, list[Command]]]:
    return [(section, [row for row in options if row.section == section])
            for section in SECTIONS]


def _msmtpd_options() -> tuple[Option, ...]:
    from msmtp_twisted.daemon.options import OPTIONS as MSMTPD_OPTIONS

    return MSMTPD_OPTIONS


def _msmtpd_usage(opt: Option) -> str:
    if opt.kind == "flag":
        return f"--{opt.name}"
    arg = opt.arg or {
        "interface": "ip", "port": "number", "log": "none|syslog|FILE", "command": "cmd",
        "auth": "user[,passwordeval]",
    }.get(opt.name, "VALUE")
    return f"--{opt.name}={arg}"


def _msmtpd_where(opt: Option) -> str:
    if opt.console and opt.twistd:
        return ""
    if opt.console:
        return "Only for the msmtpd command, not twistd msmtpd."
    return "Only for twistd msmtpd."


# --------------------------------------------------------------------------
# Markdown


def _md(text: str) -> str:
    # the descriptions are plain text; keep Markdown from reading * or _ as emphasis
    return text.replace("*", "\\*").replace("_", "\\_").replace("<", "&lt;")


def _md_code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def render_reference() -> str:
    """``docs/commands.md``: every msmtprc command, with its description."""
    lines = [
        "# msmtprc commands",
        "",
        "Generated from `msmtp_twisted/config/commands.py` by",
        "`python -m msmtp_twisted.config.reference --write`; do not edit by hand.",
        "",
        "A configuration file holds one command per line, optionally followed by its",
        "argument (which may be enclosed in double quotes); empty lines and lines whose",
        "first non-blank character is `#` are ignored. A file name starting with `~`",
        "has it replaced by `$HOME`. An empty argument counts as `on` wherever `on` is",
        "accepted. Obsolete commands are still read and map onto the newer setting",
        "named in the last column. The same reference is in the man page msmtp(1)",
        "(`man msmtp` once the project is installed with pip).",
        "",
        "| command | argument | default | command-line option | sets |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cmd in COMMANDS:
        options = [f"`{name}`" for name in _option_names(cmd)]
        name = f"`{cmd.name}`" + "".join(f", `{a}`" for a in cmd.aliases)
        if cmd.obsolete:
            name += " (obsolete)"
        argument = _argument(cmd).replace("|", "\\|") or "(none)"
        sets = f"{cmd.field}: {_doc(cmd.field)}" if cmd.field else "ignored"
        lines.append(
            f"| {name} | {argument} | {_default(cmd.field)} | {', '.join(options) or '-'} "
            f"| {sets} |"
        )
    lines += [
        "",
        "## Commands with a syntax of their own",
        "",
    ]
    for name, argument, description in SPECIAL_COMMANDS:
        lines += [f"### {_md_code((name + ' ' + argument).strip())}", "", _md(description), ""]
    lines += ["## Every command", ""]
    for cmd in COMMANDS:
        lines += [f"### {_md_code((cmd.name + ' ' + _argument(cmd)).strip())}", ""]
        lines += [_md(cmd.description), ""]
        facts = []
        if cmd.aliases:
            facts.append("Also spelt " + ", ".join(_md_code(a) for a in cmd.aliases) + ".")
        names = _option_names(cmd)
        if names:
            facts.append("Command line: " + ", ".join(_md_code(n) for n in names) + ".")
        if facts:
            lines += [" ".join(facts), ""]
    return "\n".join(lines)


def render_msmtp_options() -> str:
    """Every command-line option of ``msmtp``, in the sections of ``msmtp --help``."""
    lines = [
        "# msmtp command-line options",
        "",
        "Generated from `msmtp_twisted/config/commands.py`; do not edit by hand.",
        "",
        "```",
        "msmtp [option...] [--] recipient...",
        "msmtp [option...] -t [--] [recipient...]",
        "msmtp --configure=mailaddress",
        "msmtp [option...] --serverinfo",
        "msmtp [option...] --rmqs=host|@domain|#queue",
        "```",
        "",
        "Options override the settings of the configuration file; most correspond to a",
        "configuration command (named after each option's description). A long option",
        "may be abbreviated to any unambiguous prefix.",
        "",
    ]
    for section, rows in _sections(OPTIONS):
        lines += [f"## {section}", ""]
        for row in rows:
            lines += [f"### {_md_code(row.usage)}", "", _md(row.description), ""]
            others = [f"`--{name}`" for name in row.cli[1:]]
            if others:
                lines += [f"Also spelled {', '.join(others)}.", ""]
            if row.name:
                lines += [f"msmtprc: {_md_code(row.name)}.", ""]
    return "\n".join(lines)


def render_msmtpd_options() -> str:
    """Every option of ``msmtpd`` and ``twistd msmtpd``."""
    lines = [
        "# msmtpd options",
        "",
        "Generated from `msmtp_twisted/daemon/options.py`; do not edit by hand.",
        "",
        "```",
        "msmtpd [option...]",
        "twistd [twistd-option...] msmtpd [option...]",
        "```",
        "",
        "The first eight are msmtpd 1.8.23's options; the rest are ours. `twistd msmtpd`",
        "takes the same options (but `--version`, `--help` and `--inetd`, which twistd",
        "has in its own way or not at all).",
        "",
    ]
    for opt in _msmtpd_options():
        lines += [f"## {_md_code(_msmtpd_usage(opt))}", "", _md(opt.description), ""]
        if _msmtpd_where(opt):
            lines += [_msmtpd_where(opt), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# roff


def _roff(text: str) -> str:
    """Text for a man page line: backslashes, hyphens and line-leading dots escaped."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _bold(text: str) -> str:
    return f"\\fB{_roff(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{_roff(text)}\\fR"


def _th(program: str, section: str, title: str) -> list[str]:
    return [
        '.\\" Generated by python -m msmtp_twisted.config.reference --write; do not edit.',
        f'.TH {program.upper()} {section} "" "msmtp-twisted {__version__}" "{title}"',
    ]


def _msmtp_man() -> str:
    out = _th("msmtp", "1", "User Commands")
    out += [
        ".SH NAME",
        f"msmtp \\- send mail to an SMTP server (msmtp {MSMTP_COMPAT_VERSION} in Python "
        "on Twisted)",
        ".SH SYNOPSIS",
        f"{_bold('msmtp')} [{_italic('option')}...] [{_bold('--')}] {_italic('recipient')}...",
        ".br",
        f"{_bold('msmtp')} [{_italic('option')}...] {_bold('-t')} [{_bold('--')}] "
        f"[{_italic('recipient')}...]",
        ".br",
        f"{_bold('msmtp --configure=')}{_italic('mailaddress')}",
        ".br",
        f"{_bold('msmtp')} [{_italic('option')}...] {_bold('--serverinfo')}",
        ".br",
        f"{_bold('msmtp')} [{_italic('option')}...] {_bold('--rmqs=')}"
        f"{_italic('host|@domain|#queue')}",
        ".SH DESCRIPTION",
        _roff(
            "msmtp reads a mail from standard input and sends it to an SMTP (or LMTP) "
            "server, which delivers it (sendmail mode, the default). It can also print "
            "what a server offers (--serverinfo), send a Remote Message Queue Starting "
            "request (--rmqs) and generate a configuration for an address (--configure)."
        ),
        ".PP",
        _roff(
            f"This is msmtp-twisted, a drop-in for msmtp {MSMTP_COMPAT_VERSION}: the same "
            "configuration files, options, messages and exit codes, except for the "
            "differences listed in docs/differences.md (and noted below). Installed as "
            "sendmail it behaves as msmtp."
        ),
        ".PP",
        _roff(
            "The servers are described by accounts in the configuration files (see "
            "CONFIGURATION). The account is chosen with --account, or by the "
            "envelope-from address (--from, --read-envelope-from), else the account "
            "named default is used; --host uses no configuration file at all."
        ),
        ".SH OPTIONS",
        _roff(
            "Options override the settings of the configuration file. A long option may "
            "be abbreviated to any unambiguous prefix."
        ),
    ]
    for section, rows in _sections(OPTIONS):
        out.append(f".SS {_roff(section)}")
        for row in rows:
            out += [".TP", _bold(row.usage), _roff(row.description)]
            if row.name:
                out.append(_roff(f"(msmtprc: {row.name})"))
    out += [
        ".SH CONFIGURATION",
        _roff(
            "msmtp reads the system configuration file and then the user configuration "
            "file (see FILES); accounts of the user file replace those of the same name. "
            "Each line holds a command and, optionally, its argument (which may be "
            "enclosed in double quotes); empty lines and lines starting with # are "
            "ignored. A file name starting with ~ has it replaced by $HOME. Wherever on "
            "is accepted, an empty argument means on."
        ),
    ]
    for name, argument, description in SPECIAL_COMMANDS:
        out += [".TP", _bold(name) + (" " + _italic(argument) if argument else ""),
                _roff(description)]
    for cmd in COMMANDS:
        argument = _argument(cmd)
        out += [".TP", _bold(cmd.name) + (" " + _italic(argument) if argument else "")]
        text = cmd.description
        facts = []
        if cmd.aliases:
            facts.append("Also spelt " + ", ".join(cmd.aliases) + ".")
        names = _option_names(cmd)
        if names:
            facts.append("Command line: " + ", ".join(names) + ".")
        out.append(_roff(" ".join([text, *facts])))
    out += [".SH EXIT STATUS", _roff("The exit codes of sysexits.h:")]
    for code, name, meaning in EXIT_CODES:
        out += [".TP", _bold(f"{code} {name}"), _roff(meaning[0].upper() + meaning[1:] + ".")]
    out += [
        ".SH FILES",
        ".TP",
        _bold("/etc/msmtprc"),
        _roff(
            "The system configuration file (SYSCONFDIR/msmtprc; the environment "
            "variable MSMTP_SYSCONFDIR names another SYSCONFDIR)."
        ),
        ".TP",
        _bold("~/.msmtprc") + " or " + _bold("$XDG_CONFIG_HOME/msmtp/config"),
        _roff("The user configuration file (see -C)."),
        ".TP",
        _bold("~/.netrc") + ", " + _bold("/etc/netrc"),
        _roff("Passwords, when the account gives none."),
        ".TP",
        _bold("/etc/mailname"),
        _roff("The host's mail name, for %M in from and domain."),
        ".SH SEE ALSO",
        f"{_bold('msmtpd')}(8), {_bold('msmtpq')}(1), {_bold('sendmail')}(8)",
        ".PP",
        _roff(
            "The msmtp manual; the msmtp-twisted documentation (docs/ in its source, "
            "notably docs/differences.md)."
        ),
    ]
    return "\n".join(out) + "\n"


def _msmtpd_man() -> str:
    out = _th("msmtpd", "8", "System Administration")
    out += [
        ".SH NAME",
        "msmtpd \\- a minimal SMTP server that pipes mails to msmtp",
        ".SH SYNOPSIS",
        f"{_bold('msmtpd')} [{_italic('option')}...]",
        ".br",
        f"{_bold('twistd')} [{_italic('twistd-option')}...] {_bold('msmtpd')} "
        f"[{_italic('option')}...]",
        ".SH DESCRIPTION",
        _roff(
            "msmtpd accepts mail over SMTP and pipes each mail to a command, by default "
            "msmtp, which sends it on. It listens on 127.0.0.1 port 25 unless told "
            "otherwise, or handles a single session on standard input and output "
            "(--inetd). It is a drop-in for Debian's msmtpd 1.8.23 (same options, "
            "replies and log lines), with limits and timeouts against abuse, an "
            "optional queue, LDAP authentication and a twistd plugin."
        ),
        ".PP",
        _roff(
            "The mail reaches the command whole, on its standard input, after msmtpd's "
            "Received header; the command's exit status decides the reply: 0 is 250, "
            "68, 69, 71 or 75 are 451 (try again later), anything else 554. SIGTERM or "
            "SIGINT stop msmtpd gracefully: a mail being piped is finished (within "
            "--shutdown-timeout)."
        ),
        ".SH OPTIONS",
    ]
    for opt in _msmtpd_options():
        out += [".TP", _bold(_msmtpd_usage(opt))]
        out.append(_roff(" ".join(filter(None, [opt.description, _msmtpd_where(opt)]))))
    out += [
        ".SH EXIT STATUS",
        ".TP",
        _bold("0"),
        _roff("Stopped (by SIGTERM or SIGINT); with --inetd: the session ended well."),
        ".TP",
        _bold("1"),
        _roff("With --inetd: the session ended after an error reply, or unfinished."),
        ".TP",
        _bold("3"),
        _roff(
            "A start-up error: a bad option or argument, an unusable command, queue or "
            "LDAP URL, no password, a port that cannot be listened on."
        ),
        ".SH FILES",
        _roff(
            "msmtpd reads no configuration file; the command it runs (msmtp) reads its "
            "own (see msmtp(1)). With --queue, DIR holds the queued mails and DIR/failed/ "
            "those given up."
        ),
        ".SH SEE ALSO",
        f"{_bold('msmtp')}(1), {_bold('twistd')}(1)",
        ".PP",
        _roff(
            "The msmtp manual (chapter msmtpd); the msmtp-twisted documentation "
            "(docs/msmtpd.md, docs/queue.md)."
        ),
    ]
    return "\n".join(out) + "\n"


def render_man_page(program: str) -> str:
    """The man page of ``program``: ``"msmtp"`` (section 1) or ``"msmtpd"`` (section 8)."""
    if program == "msmtp":
        return _msmtp_man()
    if program == "msmtpd":
        return _msmtpd_man()
    raise ValueError(f"no man page for {program!r}")


def _rendered(name: str) -> str:
    if name == "commands.md":
        return render_reference()
    return render_man_page(Path(name).stem)


def write_generated(docs: Path) -> list[Path]:
    """Write every file of :data:`GENERATED_FILES` under ``docs``; return their paths."""
    written = []
    for name in GENERATED_FILES:
        path = docs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_rendered(name))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if not argv:
        sys.stdout.write(render_reference())
        return 0
    if argv[0] == "--write" and len(argv) <= 2:
        docs = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parents[2] / "docs"
        for path in write_generated(docs):
            print(f"wrote {path}")
        return 0
    print("usage: python -m msmtp_twisted.config.reference [--write [DOCS_DIR]]",
          file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
