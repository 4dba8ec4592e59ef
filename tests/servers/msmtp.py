"""Run an msmtp binary (the real one or ours) against a test server.

::

    cfg = write_config(tmp_path, srv, timeout=2)          # mode 0600
    res = run_msmtp(["/usr/bin/msmtp"], cfg, ["rcpt@example.org"])
    assert res.returncode == 0, res.stderr
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
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


@dataclass
class MsmtpResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def run_msmtp(command: Sequence[str], config: str | os.PathLike[str],
              args: Sequence[str] = ("rcpt@example.org",), *, input: bytes = DEFAULT_MAIL,
              timeout: float = 15.0, env: Mapping[str, str] | None = None,
              home: str | os.PathLike[str] | None = None) -> MsmtpResult:
    """Run ``command -C config args...`` with the mail on stdin.

    The environment is minimal: ``PATH=/usr/bin:/bin``, ``LC_ALL=C`` (untranslated
    messages), ``HOME`` next to the config (so no user config leaks in), plus ``env``
    (e.g. ``ours_env({})`` from tests/conftest.py for our implementation).
    """
    full_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C",
                "HOME": os.fspath(home if home is not None else Path(config).parent)}
    full_env.update(env or {})
    start = time.monotonic()
    proc = subprocess.run([*command, "-C", os.fspath(config), *args], input=input,
                          capture_output=True, timeout=timeout, env=full_env)
    return MsmtpResult(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                       proc.stderr.decode("utf-8", "replace"), time.monotonic() - start)


__all__ = ["DEFAULT_MAIL", "REAL_MSMTP", "MsmtpResult", "config_text", "run_msmtp",
           "write_config"]
