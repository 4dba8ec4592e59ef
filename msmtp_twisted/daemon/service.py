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
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.python import usage

from msmtp_twisted.daemon.log import MsmtpdLog
from msmtp_twisted.daemon.options import (
    DEFAULT_INTERFACE,
    OPTIONS,
    PORT,
    MsmtpdSettings,
    SettingsError,
    apply_option,
    build_config,
)
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
    """Options of ``twistd msmtpd``: the console script's (the same table, the
    same checks), with ``--port`` taking an endpoint string too."""

    synopsis = "[options]"
    longdesc = ("An SMTP server that pipes each mail to a command (msmtp by default), "
                "like msmtpd.  --port takes a number or a Twisted endpoint string.")

    optParameters = [
        [o.name, None, None if o.default is None else o.default_text(),
         o.help]
        for o in OPTIONS if o.twistd
    ]

    def postOptions(self) -> None:
        settings = MsmtpdSettings()
        try:
            for o in OPTIONS:
                if o.twistd and o.kind != PORT and self[o.name] is not None:
                    apply_option(settings, o.name, self[o.name])
            self.settings: MsmtpdSettings = settings
            self.config: DaemonConfig = build_config(settings, inetd=False)
        except SettingsError as e:
            raise usage.UsageError(str(e)) from None
        self.description = endpoint_description(self["port"], self["interface"])


class MsmtpdService(service.MultiService):
    """Listens on ``endpoint`` (a server endpoint string or object) while running.

    Stopping it (twistd and the ``msmtpd`` command do so on SIGTERM/SIGINT)
    stops listening and shuts the sessions down gracefully: a mail being piped
    is finished and answered, within ``config.shutdown_timeout`` seconds
    (after which the command is killed and the client told to try again
    later); every other session gets ``421`` and is closed.  The Deferred
    returned by :meth:`stopService` fires when every session has ended."""

    def __init__(self, endpoint: Any, config: DaemonConfig, log: MsmtpdLog,
                 reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.log = log
        self.factory = MsmtpdFactory(config, log, reactor)
        if isinstance(endpoint, str):
            endpoint = endpoints.serverFromString(reactor, endpoint)
        self.endpoint = endpoint
        self.listener = StreamServerEndpointService(self.endpoint, self.factory)
        self.listener._raiseSynchronously = True
        self.listener.setServiceParent(self)

    def startService(self) -> None:
        self.factory.reopen()
        super().startService()
        if self.factory.queue is not None:
            self.factory.queue.start()

    def stopService(self) -> defer.Deferred[None]:
        listening = defer.maybeDeferred(super().stopService)
        drained = self.factory.shutdown()
        waits = [listening, drained]
        if self.factory.queue is not None:
            waits.append(self.factory.queue.stop(self.factory.config.shutdown_timeout))
        done = defer.gatherResults(waits, consumeErrors=True)

        def closed(_: Any) -> None:
            self.factory.close()

        return done.addBoth(closed)


def make_service(options: MsmtpdOptions, reactor: Any = None) -> MsmtpdService:
    """The :class:`MsmtpdService` for parsed ``twistd msmtpd`` options."""
    log = MsmtpdLog(options["log"] or "none", extra=_twisted_log)
    return MsmtpdService(options.description, options.config, log, reactor)
