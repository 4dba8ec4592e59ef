"""The account's TCP connection tried with a plain socket, before Twisted loads.

``msmtpq`` accepting a mail while the relay is down must cost no more than one
``msmtp`` send; most of that send is importing Twisted and its reactor, only
to be told "connection refused".  :func:`connect_first` makes the same
connection :class:`~msmtp_twisted.net.connect.SequentialTCPEndpoint` would
(getaddrinfo's addresses in its order, the account's ``timeout`` per address,
or 30 s) with a non-blocking socket and ``poll()``:

- every address refused, unreachable or timed out, or the name not found: the
  :class:`~msmtp_twisted.errors.ConnectFailure` the endpoint would have failed
  with, same message, exit code and cause, and Twisted never loads;
- an address accepts: :class:`Connected`, the socket and the numeric address,
  for the endpoint to adopt (``connected=``), so there is still exactly one
  connection to the server;
- anything else (a unix ``socket``, a ``proxy_host``, ``source_ip`` that cannot be
  bound, an error the endpoint would report differently): None, and the
  caller goes the usual way.

No Twisted here: that is the point.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from dataclasses import dataclass

from msmtp_twisted import sysexits
from msmtp_twisted.config.account import Account
from msmtp_twisted.errors import Cause, ConnectFailure

__all__ = ["Connected", "connect_first"]

#: the connect timeout without a ``timeout`` setting (as the endpoint's)
DEFAULT_TIMEOUT = 30.0

#: connect() errors the endpoint reports as "cannot connect": the errno its
#: message names (Twisted reports ENETUNREACH as NoRouteError, named "No route
#: to host") and the cause
_KNOWN = {
    errno.ECONNREFUSED: (errno.ECONNREFUSED, Cause.REFUSED),
    errno.ENETUNREACH: (errno.EHOSTUNREACH, Cause.UNREACHABLE),
    errno.EHOSTUNREACH: (errno.EHOSTUNREACH, Cause.UNREACHABLE),
    errno.ETIMEDOUT: (errno.ETIMEDOUT, Cause.TIMEOUT),
}


@dataclass
class Connected:
    """A TCP connection that stands: ``sock`` (non-blocking) to ``address``."""

    sock: socket.socket
    address: str

    def close(self) -> None:
        self.sock.close()


class _Unusual(Exception):
    """Something the endpoint would handle (or word) differently: go its way."""


def connect_first(account: Account) -> ConnectFailure | Connected | None:
    """Connect as the account's endpoint would, without Twisted (see the module)."""
    if account.socket is not None or account.proxy_host is not None or not account.host:
        return None
    host, port = account.host, account.port
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as e:
        return ConnectFailure(sysexits.EX_NOHOST,
                              f"cannot locate host {host}: {e.strerror or e}", cause=Cause.DNS)
    except (UnicodeError, OSError):
        return None
    addresses = [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos
                 if family in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        return None
    timeout = float(account.timeout or DEFAULT_TIMEOUT)
    last = 0
    for family, address in addresses:
        try:
            result = _connect(family, address, port, account.source_ip, timeout)
        except _Unusual:
            return None
        if isinstance(result, Connected):
            return result
        last = result
    number, cause = _KNOWN[last]
    return ConnectFailure(sysexits.EX_TEMPFAIL,
                          f"cannot connect to {host}, port {port}: {os.strerror(number)}",
                          cause=cause)


def _connect(family: int, address: str, port: int, source_ip: str | None,
             timeout: float) -> Connected | int:
    """One address: the connection, or the connect() errno (one of ``_KNOWN``)."""
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        raise _Unusual from None
    try:
        sock.setblocking(False)
        if source_ip:
            try:
                sock.bind((source_ip, 0))
            except OSError:
                raise _Unusual from None
        number = sock.connect_ex((address, port))
        if number in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not poller.poll(left * 1000):
                    if time.monotonic() >= deadline:
                        number = errno.ETIMEDOUT
                        break
                    continue
                number = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                break
        if number == 0:
            connected = Connected(sock, address)
            sock = None  # type: ignore[assignment]
            return connected
        if number not in _KNOWN:
            raise _Unusual
        return number
    except OSError:
        raise _Unusual from None
    finally:
        if sock is not None:
            sock.close()
