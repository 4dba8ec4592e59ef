"""Where a password comes from when the account has neither ``password`` nor
``passwordeval`` (msmtp's ``password_get()``), in msmtp's order:

1. the system key ring (:mod:`msmtp_twisted.auth.keyring`: the Secret Service items
   C msmtp finds, then the ``keyring`` package);
2. ``~/.netrc``, then ``SYSCONFDIR/netrc``;
3. a prompt ``password for USER at HOST:`` on the terminal, without echo — only on
   ``/dev/tty``, never on standard input, which carries the mail.  Without a
   terminal the answer is None and the caller reports that the method "needs a
   password": nothing ever waits for input that cannot come.

``passwordeval`` itself runs earlier, when the account is completed
(:func:`msmtp_twisted.config.select.complete_account`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from msmtp_twisted.interrupt import restoring

__all__ = ["lookup_password", "netrc_password", "prompt_password"]


def netrc_password(host: str, user: str) -> str | None:
    from msmtp_twisted.config.commands import home_dir
    from msmtp_twisted.config.files import sysconfdir
    from msmtp_twisted.config.netrc import find_password

    return find_password(host, user, sysconfdir(), home_dir())


def _tty_read_line(fd: int) -> tuple[bytes, bool]:
    """Read one line from the terminal, as getpass(3): the text and whether it ended
    with a newline (end of file, ^D on an empty line, gives an empty password)."""
    data = bytearray()
    while True:
        chunk = os.read(fd, 1)
        if not chunk:
            return bytes(data), False
        if chunk == b"\n":
            return bytes(data), True
        data += chunk
        if len(data) > 65536:  # nobody types that much: refuse to grow without bound
            return bytes(data), False


def prompt_password(host: str, user: str, tty: str = "/dev/tty") -> str | None:
    """Ask on the terminal with echo off, as getpass(3) does; None without a terminal."""
    try:
        fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        import termios

        try:
            old = termios.tcgetattr(fd)
        except termios.error:
            old = None
        def restore() -> None:
            if old is not None:
                termios.tcsetattr(fd, termios.TCSAFLUSH, old)

        # a SIGINT from elsewhere kills the command line at once
        # (msmtp_twisted.interrupt): the echo comes back first
        with restoring(restore):
            try:
                if old is not None:
                    new = list(old)
                    # as glibc's getpass (msmtp's prompt): no echo, and Ctrl-C
                    # is a character of the password, not an interrupt
                    new[3] &= ~(termios.ECHO | termios.ISIG)
                    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
                os.write(fd, f"password for {user} at {host}: "
                         .encode("utf-8", "surrogateescape"))
                line, newline = _tty_read_line(fd)
            finally:
                restore()
        if newline and old is not None:
            os.write(fd, b"\n")  # the newline the user typed was not echoed
    except (OSError, KeyboardInterrupt):
        return None
    finally:
        os.close(fd)
    return line.decode("utf-8", "surrogateescape")


def _keyring(host: str, user: str, service: str) -> str | None:
    try:
        from msmtp_twisted.auth.keyring import keyring_lookup
    except ImportError:
        return None
    try:
        return keyring_lookup(host, user, service)
    except Exception:  # a broken key ring must not break sending
        return None


def lookup_password(
    host: str,
    user: str,
    service: str = "smtp",
    *,
    netrc: bool = True,
    prompt: bool = True,
    keyring: Callable[[str, str, str], str | None] = _keyring,
) -> str | None:
    """The first password found for ``user`` at ``host``, or None."""
    password = keyring(host, user, service)
    if password is None and netrc:
        password = netrc_password(host, user)
    if password is None and prompt:
        password = prompt_password(host, user)
    return password
