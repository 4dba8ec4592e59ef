"""``--pretend`` / ``--debug``: print the settings that would be used, as msmtp does.

The labels, their order and which are sendmail-only come from the settings
table in :mod:`msmtp_twisted.config.commands`; this module only formats values.
The password itself is never printed, only ``*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msmtp_twisted.config.account import Account
from msmtp_twisted.config.commands import SETTINGS, format_fingerprint

if TYPE_CHECKING:
    from msmtp_twisted.modes.invocation import CommandLine, Output

__all__ = ["format_settings", "print_conf"]

NOT_SET = "(not set)"


def _str(value: Any, conf: CommandLine) -> str:
    return NOT_SET if value is None else str(value)


def _timeout(value: int, conf: CommandLine) -> str:
    if value <= 0:
        return "off"
    return "1 second" if value == 1 else f"{value} seconds"


def _auth(value: str | None, conf: CommandLine) -> str:
    if value is None:
        return "none"
    return value or "choose"


def _from(value: str | None, conf: CommandLine) -> str:
    if value is not None:
        return value
    return "(read from mail)" if conf.read_envelope_from else NOT_SET


_FORMATTERS: dict[str, Callable[[Any, CommandLine], str]] = {
    "str": _str,
    "int": lambda v, c: str(v),
    "onoff": lambda v, c: "on" if v else "off",
    "timeout": _timeout,
    "auth": _auth,
    "secret": lambda v, c: NOT_SET if v is None else "*",
    "fingerprint": lambda v, c: NOT_SET if v is None else format_fingerprint(v),
    "dh": lambda v, c: str(v) if v >= 0 else NOT_SET,
    "from": _from,
    # 1.8.23 shows set_to_header as its older on/off undisclosed_recipients switch
    "undisclosed": lambda v, c: "on" if v == "undisclosed_recipients" else "off",
}


def format_settings(account: Account, conf: CommandLine) -> list[str]:
    lines = []
    for setting in SETTINGS:
        if setting.label is None:
            continue
        if setting.sendmail_only and not conf.sendmail:
            continue
        value = getattr(account, setting.field)
        if setting.extra and value == setting.default:
            continue
        lines.append(f"{setting.label} = {_FORMATTERS[setting.show](value, conf)}")
        if setting.field == "set_to_header" and value == "on":
            # newer than 1.8.23: no on/off equivalent, so say it plainly
            lines.append("set_to_header = on")
    return lines


def print_conf(out: Output, account: Account, conf: CommandLine) -> None:
    if account.id and account.conffile:
        out.out(f"using account {account.id} from {account.conffile}")
    for line in format_settings(account, conf):
        out.out(line)
    if conf.sendmail:
        if conf.read_recipients:
            out.out("reading recipients from the command line and the mail")
        else:
            out.out("reading recipients from the command line")
    if conf.rmqs is not None:
        out.out(f"RMQS argument = {conf.rmqs}")
