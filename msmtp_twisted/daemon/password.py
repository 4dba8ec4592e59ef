"""Where ``--auth=user[,passwordeval]`` gets its password, once, at start-up.

As msmtpd 1.8.23 does:

1. with ``,passwordeval``: run it with ``/bin/sh -c`` (it is the administrator's
   own shell command, like msmtp's ``passwordeval``) and take the first line of
   its output, without the line ending; no output at all is an error
   (``cannot read output of 'CMD'``);
2. otherwise the key ring: the Secret Service item with the attributes
   ``host=localhost service=smtp user=USER`` (what ``secret-tool store --label=msmtpd
   host localhost service smtp user USER`` makes), then the libgnome-keyring
   compatible ``server=localhost protocol=smtp user=USER``;
3. then a prompt ``password for USER at localhost: `` on ``/dev/tty``, never on
   standard input (in ``--inetd`` mode that is the SMTP client).  msmtpd falls
   back to standard input; we fail with a clear error instead.
"""

from __future__ import annotations

import os
import subprocess

__all__ = ["PasswordError", "eval_password", "get_password", "keyring_password",
           "prompt_password"]


class PasswordError(Exception):
    """The message msmtpd prints after ``msmtpd: ``."""


def eval_password(command: str) -> str:
    """msmtp's ``eval()``: the first line of the command's output."""
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE)
    except OSError as e:
        raise PasswordError(f"cannot get password: cannot evaluate '{command}': "
                            f"{os.strerror(e.errno or 0)}") from None
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    proc.wait()
    if not line:
        raise PasswordError(f"cannot get password: cannot read output of '{command}'")
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line.decode("utf-8", "surrogateescape")


def keyring_password(user: str, host: str = "localhost", service: str = "smtp") -> str | None:
    """The Secret Service look-up of libsecret's ``secret_password_lookup_sync``
    with msmtp's attributes; None when there is no key ring or no such item."""
    try:
        import secretstorage
    except ImportError:
        return None
    try:
        conn = secretstorage.dbus_init()
    except Exception:
        return None
    try:
        for attrs in (
            {"host": host, "service": service, "user": user},
            {"user": user, "protocol": service, "server": host},
        ):
            for item in secretstorage.search_items(conn, attrs):
                if item.is_locked():
                    item.unlock()
                secret = item.get_secret()
                return secret.decode("utf-8", "surrogateescape")
    except Exception:
        return None
    finally:
        try:
            conn.close()
        except Exception:
            pass
    return None


def prompt_password(user: str, host: str = "localhost") -> str | None:
    """Ask on /dev/tty; None when there is no terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    os.close(fd)
    import getpass

    try:
        return getpass.getpass(f"password for {user} at {host}: ")
    except (EOFError, OSError, KeyboardInterrupt):
        return None


def get_password(spec: str) -> tuple[str, str]:
    """``user[,passwordeval]`` → ``(user, password)``; raises :class:`PasswordError`
    with msmtpd's message."""
    user, comma, command = spec.partition(",")
    if comma:
        return user, eval_password(command)
    password = keyring_password(user)
    if password is None:
        password = prompt_password(user)
    if password is None:
        raise PasswordError(f"cannot get password for (localhost, smtp, {user}): "
                            "no key ring entry, and no terminal to ask on")
    return user, password
