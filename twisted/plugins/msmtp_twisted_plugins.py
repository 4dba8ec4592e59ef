"""twistd plugins of msmtp-twisted: ``twistd msmtpd``.

twistd imports every module in ``twisted/plugins`` to list its commands, so this
one stays cheap: anything heavy belongs inside ``makeService``.

This folder is a namespace portion: neither ``twisted/`` nor ``twisted/plugins/``
of this project may get an ``__init__.py``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

from msmtp_twisted.daemon.cli import DEFAULT_COMMAND, DEFAULT_INTERFACE, DEFAULT_PORT


class MsmtpdOptions(usage.Options):
    """Options of ``twistd msmtpd``; the same as those of the ``msmtpd`` command."""

    optParameters = [
        ["port", None, str(DEFAULT_PORT), "Listen on this port number."],
        ["interface", None, DEFAULT_INTERFACE, "Listen on this IPv6 or IPv4 address."],
        ["command", None, DEFAULT_COMMAND, "Pipe mails to this command."],
        ["log", None, "none", "Log to none, syslog, or the given file."],
        [
            "auth",
            None,
            None,
            "Require authentication: user[,passwordeval].",
        ],
    ]


@implementer(IServiceMaker, IPlugin)
class MsmtpdServiceMaker:
    tapname = "msmtpd"
    description = "SMTP server that pipes each mail to msmtp (placeholder)."
    options = MsmtpdOptions

    def makeService(self, options: Any) -> Any:
        raise SystemExit("msmtpd: not yet implemented")


msmtpdServiceMaker = MsmtpdServiceMaker()
