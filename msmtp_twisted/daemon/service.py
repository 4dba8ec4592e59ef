"""msmtpd as a Twisted service, for ``twistd msmtpd`` and for programs that embed it.

``--port`` takes a Twisted server endpoint string (``tcp:2500:interface=::1``,
``unix:/run/msmtpd.sock``, ``ssl:465:privateKey=key.pem:certKey=cert.pem``,
``systemd:domain=INET:index=0``, ...) or, as msmtpd, a bare port number, which
is then combined with ``--interface`` (default 127.0.0.1).

:func:`make_service` returns an :class:`~twisted.application.service.IService`
that listens while running; every msmtpd log line also goes to Twisted's log
(twistd's log file or syslog), and to ``--log`` when one is given.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import endpoints
from twisted.logger import Logger
from twisted.python import usage

from msmtp_twisted.daemon.cli import (
    _LIMITS,
    DEFAULT_COMMAND,
    DEFAULT_INTERFACE,
    DEFAULT_PORT,
    MsmtpdSettings,
    SettingsError,
    build_config,
)
from msmtp_twisted.daemon.log import MsmtpdLog
from msmtp_twisted.daemon.protocol import DaemonConfig, MsmtpdFactory

__all__ = ["MsmtpdOptions", "MsmtpdService", "endpoint_description", "make_service"]

_logger = Logger(namespace="msmtpd")


def _twisted_log(level: str, message: str) -> None:
    if level == "error":
        _logger.error("{message}", message=message)
    else:
        _logger.info("{message}", message=message)


def endpoint_description(port: str, interface: str = DEFAULT_INTERFACE) -> str:
    """A bare number becomes ``tcp:PORT:interface=IFACE`` (colons escaped)."""
    port = port.strip()
    if port.isdigit():
        escaped = interface.replace("\\", "\\\\").replace(":", "\\:")
        return f"tcp:{int(port)}:interface={escaped}"
    return port


class MsmtpdOptions(usage.Options):
    """Options of ``twistd msmtpd``: the console script's, with ``--port`` taking
    an endpoint string too."""

    synopsis = "[options]"
    longdesc = ("An SMTP server that pipes each mail to a command (msmtp by default), "
                "like msmtpd.  --port takes a number or a Twisted endpoint string.")

    optParameters = [
        ["port", None, str(DEFAULT_PORT),
         "Port number, or a server endpoint string (tcp:2500:interface=::1, unix:/path, "
         "ssl:...)."],
        ["interface", None, DEFAULT_INTERFACE, "Listen on this IP address (bare --port only)."],
        ["command", None, DEFAULT_COMMAND, "Pipe mails to this command."],
        ["log", None, "none", "msmtpd log: none, syslog, or a file (twistd's log gets it too)."],
        ["auth", None, None, "Require authentication: user[,passwordeval]."],
        ["auth-ldap", None, None, "Require authentication, checked by an LDAP bind to URL."],
        *([name, None, None, f"Limit (default {default})."]
          for name, (_attr, _kind, default) in _LIMITS.items()),
    ]

    def postOptions(self) -> None:
        from msmtp_twisted.daemon.cli import parse_args

        argv = ["msmtpd"]
        for name in ("command", "log", "auth", "auth-ldap", *_LIMITS):
            value = self[name]
            if value is not None:
                argv.append(f"--{name}={value}")
        try:
            settings = parse_args(argv)
            self.settings: MsmtpdSettings = settings
            self.config: DaemonConfig = build_config(settings, inetd=False)
        except SettingsError as e:
            raise usage.UsageError(str(e)) from None
        self.description = endpoint_description(self["port"], self["interface"])


class MsmtpdService(service.MultiService):
    """Listens on ``description``; closes the factory and the log when stopped."""

    def __init__(self, description: str, config: DaemonConfig, log: MsmtpdLog,
                 reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.log = log
        self.factory = MsmtpdFactory(config, log, reactor)
        self.endpoint = endpoints.serverFromString(reactor, description)
        self.listener = StreamServerEndpointService(self.endpoint, self.factory)
        self.listener._raiseSynchronously = True
        self.listener.setServiceParent(self)

    def stopService(self) -> Any:
        d = super().stopService()

        def closed(result: Any) -> Any:
            self.factory.close()
            return result

        if d is None:
            self.factory.close()
            return None
        return d.addBoth(closed)


def make_service(options: MsmtpdOptions, reactor: Any = None) -> MsmtpdService:
    log = MsmtpdLog(options["log"] or "none", extra=_twisted_log)
    return MsmtpdService(options.description, options.config, log, reactor)
