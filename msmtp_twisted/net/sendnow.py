"""Send a write at once when nothing is queued before it.

Twisted's ``write`` queues the bytes and sends them on the reactor's next turn:
one more turn, and two ``epoll_ctl`` calls to watch the socket for writing and
stop again, for every write.  That suits a protocol that writes many small pieces
per turn; an SMTP session writes once per round trip and then only waits for the
reply, so the wait buys nothing and costs about a tenth of a small mail's time
on a kept connection.  :func:`write_now` tries the socket first and hands only
what the kernel did not take (or an error) to Twisted's ordinary write, which
then behaves exactly as before: buffering, producers, and a failed connection
reported through ``connectionLost``.

A socket with input waiting gets the ordinary write too: Twisted reads before it
writes in a turn, and that order matters when the server has already hung up.
Postfix answers EHLO without a required client certificate with a 421 and
closes; msmtp's fallback HELO then finds the server's end of the connection
("the server sent an empty reply").  Written at once, our HELO would make the
server's kernel answer with a reset that overtakes the end we had not read yet.
"""

from __future__ import annotations

import select
from typing import Any

from twisted.internet.abstract import FileDescriptor
from twisted.internet.tcp import Connection

__all__ = ["write_now"]


def _input_waiting(fd: int) -> bool:
    # poll, not select: a long-running program may hold descriptors beyond
    # select's FD_SETSIZE (1024)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def write_now(transport: Any, data: bytes) -> None:
    """Write ``data`` to a transport's raw byte stream, at once if it can.

    For a Twisted TCP/unix connection the bytes go to its socket as they are,
    never through a TLS layer started on it: callers pass a plain-text
    connection, or the connection under a TLS layer with the layer's output.
    Only a connection in the plain state (nothing queued, no producer, not
    closing) tries the socket first.  Any other transport gets its ``write``.
    """
    if not isinstance(transport, Connection):
        transport.write(data)
        return
    if (type(data) is bytes and transport.connected and not transport.disconnecting
            and not getattr(transport, "_writeDisconnected", True)
            and transport.producer is None
            and not getattr(transport, "_tempDataLen", 1)
            and len(transport.dataBuffer) == transport.offset
            and not _input_waiting(transport.fileno())):
        sent = transport.writeSomeData(data)
        # an int is what the kernel took; anything else is an error, which the
        # ordinary write below meets again and reports as Twisted always does
        if type(sent) is int and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
    FileDescriptor.write(transport, data)
