"""Where ``--auth=user[,passwordeval]`` gets its password, once, at start-up.

As msmtpd 1.8.23 does:

1. with ``,passwordeval``: run it with ``/bin/sh -c`` (it is the administrator's
   own shell command, like msmtp's ``passwordeval``) and take the first line of
   its output, without the line ending; no output at all is an error
   (``cannot read output of 'CMD'``);
2. otherwise the key ring, as msmtp searches it: the Secret Service item with the
   attributes ``host=localhost service=smtp user=USER`` (what ``secret-tool store
   --label=msmtpd host localhost service smtp user USER`` makes), then the
   libgnome-keyring compatible ``server=localhost protocol=smtp user=USER``, then the
   ``keyring`` package (service ``localhost``);
3. then a prompt ``password for USER at localhost: `` on ``/dev/tty``, never on
   standard input (in ``--inetd`` mode that is the SMTP client).  msmtpd falls
   back to standard input; we fail with a clear error instead.
"""

from __future__ import annotations

__all__ = ["PasswordError", "eval_password", "get_password", "keyring_password",
           "prompt_password"]


class PasswordError(Exception):
    """The message msmtpd prints after ``msmtpd: ``."""


def eval_password(command: str) -> str:
    """msmtp's ``eval()``: the first line of the command's output."""
    from msmtp_twisted.config.files import run_eval
    from msmtp_twisted.config.parser import EvalError

    try:
        return run_eval(command)
    except EvalError as e:
        raise PasswordError(f"cannot get password: {e}") from None


def keyring_password(host: str, user: str, service: str = "smtp") -> str | None:
    """The key ring look-up msmtp does (:func:`msmtp_twisted.auth.keyring.keyring_lookup`):
    the Secret Service item ``host=localhost service=smtp user=USER``, the old
    libgnome-keyring one, then the ``keyring`` package; None when nothing is found."""
    from msmtp_twisted.auth.keyring import keyring_lookup

    return keyring_lookup(host, user, service)


def prompt_password(host: str, user: str) -> str | None:
    """Ask on /dev/tty, echo off; None when there is no terminal (arguments in the
    order of :func:`msmtp_twisted.auth.password.prompt_password`)."""
    from msmtp_twisted.auth.password import prompt_password as ask

    return ask(host, user)


def get_password(spec: str) -> tuple[str, str]:
    """``user[,passwordeval]`` → ``(user, password)``; raises :class:`PasswordError`
    with msmtpd's message."""
    user, comma, command = spec.partition(",")
    if comma:
        return user, eval_password(command)
    password = keyring_password("localhost", user)
    if password is None:
        password = prompt_password("localhost", user)
    if password is None:
        from msmtp_twisted.auth.keyring import KEYRING_EXTRA_HINT, keyring_installed

        where = ("no key ring entry" if keyring_installed()
                 else f"no key ring support installed ({KEYRING_EXTRA_HINT})")
        raise PasswordError(f"cannot get password for (localhost, smtp, {user}): "
                            f"{where}, and no terminal to ask on")
    return user, password
