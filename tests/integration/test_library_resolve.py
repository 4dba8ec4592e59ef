"""Names are resolved off the reactor thread: while a slow DNS answer is awaited,
the reactor keeps running (a ``LoopingCall`` keeps ticking) and the mail still
arrives.  The command line keeps msmtp's blocking lookup.

Each scenario runs in a child process (a reactor runs once per process).  The
slow answers come from (a) a resolver installed on the reactor
(``IReactorPluggableNameResolver``) whose getaddrinfo takes 1.5 s in the
reactor's thread pool, and (b) a real DNS server on 127.53.0.1:53 that answers
after 1.5 s, which a child process with its own ``resolv.conf`` (bind-mounted in
a private mount namespace, ``unshare -m``) asks through glibc's getaddrinfo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, ours_env

pytestmark = pytest.mark.timeout(120)

DELAY = 1.5
#: a reactor blocked by the lookup shows a gap of DELAY between ticks; a free
#: one ticks every 20 ms (generous: the machine is loaded)
MAX_GAP = DELAY / 2

SEND = """
    import json, socket, time
    from twisted.internet import task
    from msmtp_twisted.api import load_account, send_mail

    def main(reactor):
        {install}
        ticks = []
        loop = task.LoopingCall(lambda: ticks.append(time.monotonic()))
        loop.start(0.02)
        account = load_account("work", config_file={rc!r})
        began = time.monotonic()
        d = send_mail(reactor, account, None, ["you@example.org"], b"Subject: dns\\n\\nbody\\n")

        def done(outcome):
            ended = time.monotonic()
            loop.stop()
            during = [began] + [t for t in ticks if began <= t <= ended] + [ended]
            gaps = [b - a for a, b in zip(during, during[1:])]
            print(json.dumps({{"outcome": outcome, "elapsed": ended - began,
                              "ticks": len(during) - 2, "max_gap": max(gaps)}}))
        d.addCallbacks(lambda r: done("delivered"),
                       lambda f: done([getattr(f.value, "exitcode", None), str(f.value)]))
        return d
    task.react(main)
"""

SLOW_GETADDRINFO = """
        from twisted.internet._resolver import GAIResolver

        def slow_getaddrinfo(host, port, family=0, socktype=0, proto=0, flags=0):
            time.sleep({delay})  # a slow DNS answer, in the reactor's thread pool
            if host != "slow.test":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        reactor.installNameResolver(GAIResolver(reactor, reactor.getThreadPool,
                                                slow_getaddrinfo))
"""


def _child(script: str, tmp_path: Path, prefix: list[str] | None = None) -> dict:
    proc = subprocess.run([*(prefix or []), sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rc(tmp_path: Path, host: str, port: int) -> Path:
    rc = tmp_path / "rc"
    rc.write_text(f"account work\nhost {host}\nport {port}\nfrom me@example.com\n")
    rc.chmod(0o600)
    return rc


def test_reactor_ticks_while_the_installed_resolver_is_slow(recording_server, tmp_path) -> None:
    rc = _rc(tmp_path, "slow.test", recording_server.port)
    install = textwrap.indent(textwrap.dedent(SLOW_GETADDRINFO.format(delay=DELAY)), " " * 8)
    out = _child(SEND.format(rc=str(rc), install=install.strip()), tmp_path)
    assert out["outcome"] == "delivered"
    assert out["elapsed"] >= DELAY * 0.9  # the slow resolver was used
    assert out["max_gap"] < MAX_GAP, out
    assert out["ticks"] >= 10
    recording_server.wait_idle()
    assert recording_server.message.recipients == ["you@example.org"]


@pytest.fixture
def slow_dns(tmp_path: Path):
    """A DNS server answering after DELAY, and the command prefix that makes a child
    process ask it (its own resolv.conf in a private mount namespace)."""
    from tests.servers.slowdns import SlowDNSServer

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private resolv.conf")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not allowed here: {probe.stderr.decode().strip()}")
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.53.0.1\noptions timeout:5 attempts:1\n")
    with SlowDNSServer({"slow.test": "127.0.0.1"}, host="127.53.0.1", delay=DELAY) as dns:
        prefix = ["unshare", "-m", "sh", "-c",
                  f'mount --bind "{conf}" /etc/resolv.conf && exec "$0" "$@"']
        yield dns, prefix


def test_reactor_ticks_while_dns_is_slow(slow_dns, recording_server, tmp_path) -> None:
    dns, prefix = slow_dns
    rc = _rc(tmp_path, "slow.test", recording_server.port)
    out = _child(SEND.format(rc=str(rc), install="pass"), tmp_path, prefix)
    assert ("slow.test", 1) in dns.queries  # glibc asked our server
    assert out["outcome"] == "delivered"
    assert out["elapsed"] >= DELAY * 0.9
    assert out["max_gap"] < MAX_GAP, out
    recording_server.wait_idle()
    assert recording_server.message.recipients == ["you@example.org"]


def test_unknown_host_keeps_msmtps_message_off_the_reactor(slow_dns, tmp_path) -> None:
    _dns, prefix = slow_dns
    rc = _rc(tmp_path, "nowhere.test", 25)
    out = _child(SEND.format(rc=str(rc), install="pass"), tmp_path, prefix)
    assert out["outcome"] == [68, "cannot locate host nowhere.test: Name or service not known"]
    assert out["max_gap"] < MAX_GAP, out


def test_command_line_resolves_through_slow_dns_as_msmtp(slow_dns, recording_server,
                                                        tmp_path) -> None:
    from tests.conftest import ours_command

    _dns, prefix = slow_dns
    rc = _rc(tmp_path, "slow.test", recording_server.port)
    proc = subprocess.run([*prefix, *ours_command(), "-C", str(rc), "-a", "work",
                           "you@example.org"],
                          input=b"Subject: cli\n\nbody\n", capture_output=True, timeout=60,
                          cwd=ROOT, env=ours_env({"HOME": str(tmp_path),
                                                  "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    recording_server.wait_idle()
    assert recording_server.message.recipients == ["you@example.org"]
