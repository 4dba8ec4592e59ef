"""Run an msmtp binary (the real one or ours) against a test server.

::

    cfg = write_config(tmp_path, srv, timeout=2)          # mode 0600
    res = run_msmtp(["/usr/bin/msmtp"], cfg, ["rcpt@example.org"])
    assert res.returncode == 0, res.stderr

This is the one runner the integration tests use for both programs (the reference with
``[REAL_MSMTP]``, ours with ``ours_command()`` and ``env=ours_env(...)`` from
tests/conftest.py), with :func:`new_token` for unique mail markers and :func:`etc_lock`
around anything that reads or writes ``/etc/msmtprc``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REAL_MSMTP = "/usr/bin/msmtp"
DEFAULT_MAIL = b"Subject: test\n\nbody\n"


def config_text(server: Any, *, account: str = "default", from_: str = "a@example.com",
                **settings: Any) -> str:
    """An msmtp config with one account pointing at ``server``.

    ``server``: a started server object, ``(host, port)`` or a unix socket path.
    ``settings``: extra msmtp settings (``protocol="lmtp"``, ``timeout=2``,
    ``dsn_notify="failure"``...); ``True``/``False`` become ``on``/``off``, ``None``
    drops a default (e.g. ``auth=None``).  Defaults: ``tls off``, ``auth off``.
    """
    address = server.address if hasattr(server, "address") else server
    lines = [f"account {account}"]
    if isinstance(address, tuple):
        lines += [f"host {address[0]}", f"port {address[1]}"]
    else:
        lines += ["host localhost", f"socket {os.fspath(address)}"]
        if settings.get("protocol") == "lmtp" and "port" not in settings:
            lines.append("port 24")  # msmtp insists on a port for LMTP, even via a socket
    values: dict[str, Any] = {"from": from_, "tls": False, "auth": False}
    values.update({k.rstrip("_"): v for k, v in settings.items()})
    for key, value in values.items():
        if value is None:
            continue
        if value is True or value is False:
            value = "on" if value else "off"
        lines.append(f"{key} {value}")
    if account != "default":
        lines.append(f"account default : {account}")
    return "\n".join(lines) + "\n"


def write_config(directory: str | os.PathLike[str], server: Any, *, name: str = "msmtprc",
                 **settings: Any) -> Path:
    """Write ``config_text(server, **settings)`` to ``directory/name``, mode 0600."""
    path = Path(directory) / name
    path.write_text(config_text(server, **settings))
    path.chmod(0o600)
    return path


#: Both programs read /etc/msmtprc.  tests/integration/test_differential_config.py
#: once wrote it while holding this lock exclusively; it now gives each such case an
#: overlay on /etc in a private mount namespace, so nothing here writes /etc (under
#: pytest-xdist a reference test in the other worker holds no lock).  Runs of a client
#: still hold the lock shared (run_msmtp does), against older checkouts' runs on the
#: same machine that write the file.
ETC_LOCK = "/tmp/msmtp-twisted-etc.lock"


@contextlib.contextmanager
def etc_lock(*, exclusive: bool = False) -> Iterator[None]:
    """Hold :data:`ETC_LOCK` (shared, or ``exclusive`` to write /etc/msmtprc)."""
    try:
        # read-only: a lock file another user (root) made must still do for us
        fd = os.open(ETC_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(ETC_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def new_token() -> str:
    """A unique marker for a mail (to find it again in a mailbox or a log)."""
    return uuid.uuid4().hex


@dataclass
class MsmtpResult:
    """One run: exit code (None: killed after the timeout), decoded output, duration."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    #: stdout as written (``stdout`` is decoded, lossy); keyword-only, so that subclasses
    #: adding fields can still be built positionally
    stdout_bytes: bytes = dataclasses.field(default=b"", kw_only=True)

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def result(self) -> tuple[int | None, str, str]:
        return self.returncode, self.stdout, self.stderr

    def replaced(self, *pairs: tuple[str, str]) -> MsmtpResult:
        """The same result with each ``(old, new)`` replaced in stdout and stderr (a
        temporary path by a fixed word, say)."""
        out, err = self.stdout, self.stderr
        for old, new in pairs:
            out, err = out.replace(old, new), err.replace(old, new)
        return dataclasses.replace(self, stdout=out, stderr=err)


def run_msmtp(command: Sequence[str], config: str | os.PathLike[str] | None,
              args: Sequence[str] = ("rcpt@example.org",), *, input: bytes = DEFAULT_MAIL,
              timeout: float = 15.0, env: Mapping[str, str] | None = None,
              home: str | os.PathLike[str] | None = None, new_session: bool = False,
              cwd: str | os.PathLike[str] | None = None,
              hang_ok: bool = False) -> MsmtpResult:
    """Run ``command -C config args...`` (no ``-C`` when ``config`` is None) with the
    mail on stdin, holding :func:`etc_lock` shared.

    The environment is minimal: ``PATH=/usr/bin:/bin``, ``LC_ALL=C`` (untranslated
    messages), ``HOME`` next to the config (so no user config leaks in), plus ``env``
    (e.g. ``ours_env({})`` from tests/conftest.py for our implementation).
    ``new_session``: no controlling terminal (a missing password can never become a
    prompt).  ``hang_ok``: a run still going after ``timeout`` is killed and gives
    ``returncode=None`` and ``[HUNG: ...]`` before its stderr, instead of raising.
    """
    if home is None:
        home = Path(config).parent if config is not None else cwd
    full_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    if home is not None:
        full_env["HOME"] = os.fspath(home)
    full_env.update(env or {})
    argv = [*command, *(["-C", os.fspath(config)] if config is not None else []), *args]
    start = time.monotonic()
    with etc_lock():
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                                  env=full_env, cwd=cwd, start_new_session=new_session)
        except subprocess.TimeoutExpired as e:
            if not hang_ok:
                raise
            stderr = (e.stderr or b"").decode("utf-8", "replace")
            return MsmtpResult(None, (e.stdout or b"").decode("utf-8", "replace"),
                               f"[HUNG: killed after {timeout} s]\n{stderr}", timeout)
    return MsmtpResult(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                       proc.stderr.decode("utf-8", "replace"), time.monotonic() - start,
                       stdout_bytes=proc.stdout)


__all__ = ["DEFAULT_MAIL", "ETC_LOCK", "REAL_MSMTP", "MsmtpResult", "config_text",
           "etc_lock", "new_token", "run_msmtp", "write_config"]
