"""Choosing ports on 127.0.0.1 for the servers the tests start (Postfix + Dovecot, Exim,
the Kerberos setup): a block of consecutive free ports, or the one an environment
variable names; or one free port for a server started in another process (msmtpd)."""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["choose_port_block", "free_port", "port_free"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server started in another
    process, which binds it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int, *, reuse: bool = True, udp: bool = False) -> bool:
    """Whether 127.0.0.1:port can be bound (TCP; also UDP with ``udp``).  ``reuse``
    binds with SO_REUSEADDR, as the mail servers themselves do."""
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _xdist_worker() -> tuple[int, int]:
    """This process's pytest-xdist worker number and the number of workers
    ((0, 1) without xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and worker[2:].isdigit() and count.isdigit():
        return int(worker[2:]), max(int(count), 1)
    return 0, 1


def choose_port_block(env_var: str, default_base: int, size: int, *, attempts: int = 50,
                      reuse: bool = True, udp: bool = False) -> int:
    """``$env_var`` (its block must be free), else the first free block of ``size``
    ports from ``default_base`` on, in steps of ``size``.

    Under pytest-xdist each worker starts its own servers (``./scripts/test`` runs
    two): worker N of C takes the blocks N, N + C, N + 2C, ... (and ``$env_var`` + N
    blocks), so two workers starting at the same moment never choose the same one."""
    def free(base: int) -> bool:
        return all(port_free(p, reuse=reuse, udp=udp) for p in range(base, base + size))

    worker, workers = _xdist_worker()
    wanted = os.environ.get(env_var)
    if wanted:
        base = int(wanted) + worker * size
        if not free(base):
            pytest.fail(f"${env_var}={wanted} (+{worker} blocks for xdist worker {worker}): "
                        f"a port in {base}..{base + size - 1} is in use")
        return base
    for i in range(attempts):
        base = default_base + (i * workers + worker) * size
        if free(base):
            return base
    pytest.fail(f"no free block of {size} ports from {default_base} on; set ${env_var}")
