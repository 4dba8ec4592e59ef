"""Twisted plugins of msmtp-twisted: ``twistd msmtpd``, ``msmtp-tls:`` and ``msmtp-socks5:``
client endpoints.

    twistd -n msmtpd --port=tcp:2500:interface=::1 --command='msmtp -f %F --'
    twistd --pidfile=/run/msmtpd.pid --logfile=/var/log/msmtpd.log \
        msmtpd --port=unix:/run/msmtpd.sock
    twistd -n msmtpd --port=2500 --interface=127.0.0.1

twistd imports every module in ``twisted/plugins`` to list its commands, so this
one stays cheap: the options and the service live in
:mod:`msmtp_twisted.daemon.service`, imported only when ``twistd msmtpd`` runs.

This folder is a namespace portion: neither ``twisted/`` nor ``twisted/plugins/``
of this project may get an ``__init__.py``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet.interfaces import IStreamClientEndpointStringParserWithReactor
from twisted.plugin import IPlugin
from zope.interface import implementer


class _LazyOptions:
    """Builds :class:`msmtp_twisted.daemon.service.MsmtpdOptions` when twistd asks."""

    def __call__(self) -> Any:
        from msmtp_twisted.daemon.service import MsmtpdOptions

        return MsmtpdOptions()


@implementer(IServiceMaker, IPlugin)
class MsmtpdServiceMaker:
    tapname = "msmtpd"
    description = "SMTP server that pipes each mail to a command (msmtpd)."
    options = _LazyOptions()

    def makeService(self, options: Any) -> Any:
        from msmtp_twisted.daemon.service import make_service

        return make_service(options)


msmtpdServiceMaker = MsmtpdServiceMaker()


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class MsmtpTLSEndpointParser:
    """``clientFromString(reactor, "msmtp-tls:mail.example.org:465:trust_file=...")``:
    implicit TLS with msmtp's certificate checks (see msmtp_twisted.tls)."""

    prefix = "msmtp-tls"

    def parseStreamClient(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:
        from msmtp_twisted.tls.strings import TLSEndpointParser

        return TLSEndpointParser().parseStreamClient(reactor, *args, **kwargs)


msmtpTLSEndpointParser = MsmtpTLSEndpointParser()


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class MsmtpSOCKS5EndpointParser:
    """``clientFromString(reactor, "msmtp-socks5:mail.example.org:25:proxy_host=...")``:
    a connection through a SOCKS5 proxy as msmtp makes it (see msmtp_twisted.net.socks)."""

    prefix = "msmtp-socks5"

    def parseStreamClient(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:
        from msmtp_twisted.net.socks import SOCKS5EndpointParser

        return SOCKS5EndpointParser().parseStreamClient(reactor, *args, **kwargs)


msmtpSOCKS5EndpointParser = MsmtpSOCKS5EndpointParser()
