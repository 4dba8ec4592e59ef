"""Our msmtp against hostile servers and endless local inputs, next to msmtp 1.8.23
(issue 10, items 10-12).

Each test runs the real ``/usr/bin/msmtp`` and ours (``python -m msmtp_twisted``) on the
same input, each against its own fresh server (``tests/servers/chatty.py``), and
compares exit codes and stderr; ours also gets bounds on time and on peak RSS (measured
by a small wrapper process, which also caps the address space so that a regression
fails with MemoryError instead of eating the machine).

10. A server that sends replies while the mail is sent: a refusal ends the mail at
    once with msmtp's outcome; a flood of ``250`` is an error (msmtp 1.8.23 takes the
    first flooded line as the answer to the final dot and exits 0).
11. ``timeout`` applies to each read, as in msmtp: a multi-line reply may take longer
    than the timeout at every step (greeting, EHLO, STARTTLS, AUTH, DATA, the final
    dot, QUIT); a server trickling for ever is ended by the 50-line limit.
12. ``passwordeval yes`` takes the first line; ``-C``, ``aliases``, TLS files on
    ``/dev/zero`` or ``/dev/urandom``, a netrc on ``/dev/zero``, a header block of tens
    of megabytes, a 5 MB From address: bounded, and msmtp's message where it has one
    (it loops for ever on ``/dev/zero`` configuration, aliases and netrc files).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.chatty import ChattyServer
from tests.servers.msmtp import REAL_MSMTP, etc_lock, write_config
from tests.servers.tlspki import PKI

pytestmark = pytest.mark.timeout(120)

MAIL = b"Subject: hardening\n\n" + (b"y" * 76 + b"\n") * 13000  # 1 MB
#: peak RSS ours may reach in these tests (a plain run takes about 32 MiB)
RSS_BOUND_KIB = 80 * 1024
#: address space for ours: far above a normal run, far below what a regression eats
OURS_MEMORY = 1536 << 20
#: msmtp under a cap, so that GnuTLS reading /dev/zero stops (as it would at ENOMEM)
REAL_MEMORY = 300 << 20
FAILED = "msmtp: could not send mail (account default from CFG)"

#: Runs argv[2:] with the address space capped at argv[1] bytes (0: no cap) and prints
#: its peak RSS in KiB.  Small, so that its own memory does not count.
MEASURE = (
    "import resource, subprocess, sys\n"
    "cap = int(sys.argv[1])\n"
    "def limit():\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
    "rc = subprocess.call(sys.argv[2:], preexec_fn=limit if cap else None)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc if rc >= 0 else 128 - rc)\n"
)


@dataclass
class Run:
    rc: int | None  # None: still running at the time limit (then killed)
    stderr: list[str]
    seconds: float
    rss_kib: int

    @property
    def timed_out(self) -> bool:
        return self.rc is None


def _mask(text: str) -> list[str]:
    return [re.sub(r" \(account default from /\S+\)$", " (account default from CFG)", line)
            for line in text.splitlines()]


def run(program: str, config: str | os.PathLike[str] | None, args: Sequence[str], *,
        input: bytes = MAIL, home: Path, timeout: float = 20.0,
        memory: int | None = None) -> Run:
    """Run the real msmtp (``program="real"``) or ours with ``-C config args``; a run
    still going after ``timeout`` is killed (``rc`` None)."""
    ours = program == "ours"
    command = ours_command() if ours else [REAL_MSMTP]
    cap = memory if memory is not None else (OURS_MEMORY if ours else REAL_MEMORY)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(home),
           "DBUS_SESSION_BUS_ADDRESS": f"unix:path={home}/no-bus"}
    if ours:
        env = ours_env(env)
    argv = [sys.executable, "-c", MEASURE, str(cap), *command]
    if config is not None:
        argv += ["-C", os.fspath(config)]
    argv += list(args)
    started = time.monotonic()
    # a session of its own: no terminal to prompt on, and the group can be killed
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Run(None, _mask(err.decode("utf-8", "replace")), time.monotonic() - started, 0)
    seconds = time.monotonic() - started
    text = out.decode("utf-8", "replace").split()
    return Run(proc.returncode, _mask(err.decode("utf-8", "replace")), seconds,
               int(text[-1]) if text else 0)


@pytest.fixture
def both(real_msmtp: str, tmp_path: Path) -> Callable[..., tuple[Run, Run]]:
    """``both(config_for, args, **run_options)``: run the real msmtp and ours at the
    same time; ``config_for(name)`` returns the config for one of them ("real",
    "ours"), e.g. pointing at its own server."""
    home = tmp_path / "home"
    home.mkdir()

    def go(config_for: Callable[[str], Any], args: Sequence[str] = ("r@example.org",),
           **options: Any) -> tuple[Run, Run]:
        configs = {name: config_for(name) for name in ("real", "ours")}

        def one(name: str) -> Run:
            return run(name, configs[name], args, home=home, **options)

        with etc_lock(), ThreadPoolExecutor(2) as pool:
            real, ours = pool.map(one, ("real", "ours"))
        return real, ours

    return go


def _servers(server_factory: Callable[..., Any], tmp_path: Path, **kwargs: Any
             ) -> tuple[dict[str, ChattyServer], Callable[..., Callable[[str], Path]]]:
    """One ChattyServer per program, and ``config(**settings)`` for them."""
    servers = {name: server_factory(ChattyServer, **kwargs) for name in ("real", "ours")}

    def config(host: str = "127.0.0.1", **settings: Any) -> Callable[[str], Path]:
        return lambda name: write_config(tmp_path, (host, servers[name].port),
                                         name=f"rc-{name}", **settings)

    return servers, config


def _no_server_config(tmp_path: Path, **settings: Any) -> Callable[[str], Path]:
    """A config whose server is never reached (port 1 refuses)."""
    return lambda name: write_config(tmp_path, ("127.0.0.1", 1), name=f"rc-{name}",
                                     **settings)


def assert_bounded(ours: Run, seconds: float = 8.0) -> None:
    assert not ours.timed_out and ours.seconds < seconds, ours
    assert ours.rss_kib < RSS_BOUND_KIB, ours


# -- item 10: replies while the mail is sent ---------------------------------------------

def test_reply_flood_while_the_mail_is_sent(both, server_factory, tmp_path) -> None:
    """Up to 8 MB of ``250 x`` from the 354 on, while the mail goes out slowly.  msmtp
    1.8.23 reads nothing until its final dot, then takes the first ``250 x`` as the
    answer to it and exits 0 (7.8 MB RSS); ours ends at the first one."""
    servers, config = _servers(server_factory, tmp_path, flood="BODY",
                               flood_bytes=8 << 20, flood_seconds=5,
                               body_read=(16384, 0.01))
    real, ours = both(config(timeout=5))
    assert (real.rc, real.stderr) == (0, [])  # msmtp's answer: see docs/differences.md
    assert ours.rc == 76, ours
    assert ours.stderr == ["msmtp: the server replied before the end of the mail",
                           "msmtp: server message: 250 x", FAILED]
    assert_bounded(ours, 5)
    assert not servers["ours"].eod_received


def test_refusal_while_the_mail_is_sent(both, server_factory, tmp_path) -> None:
    """A 554 right after the 354 (a server refusing a mail as it grows): msmtp sends
    all 8 MB and the dot, then reports the 554; ours reports it the same at once."""
    servers, config = _servers(server_factory, tmp_path,
                               replies={"BODY": ["554 5.3.4 message too big"], "EOD": []})
    big = b"Subject: big\n\n" + (b"z" * 999 + b"\n") * 8000
    real, ours = both(config(timeout=5), input=big)
    assert real.rc == ours.rc == 69
    assert real.stderr == ours.stderr == [
        "msmtp: the server did not accept the mail",
        "msmtp: server message: 554 5.3.4 message too big", FAILED]
    assert servers["real"].body_bytes >= len(big) and servers["real"].eod_received
    assert servers["ours"].body_bytes < 1 << 20 and not servers["ours"].eod_received
    assert_bounded(ours)


# -- item 11: the timeout applies to each read ---------------------------------------------

SLOW_STEPS = {
    "GREETING": "220", "EHLO": "250", "STARTTLS": "220", "AUTH": "235", "DATA": "354",
    "EOD": "250", "QUIT": "221",
}


@pytest.mark.parametrize("step", list(SLOW_STEPS))
def test_slow_multiline_reply_within_a_per_read_timeout(both, server_factory, tmp_path,
                                                       step) -> None:
    """7 lines, 0.3 s apart (1.8 s) with ``timeout 1``: msmtp waits for each line; so do
    we (before: "network read error: the operation timed out" after 1 s, or for QUIT
    a close in the middle of the reply)."""
    code = SLOW_STEPS[step]
    lines = [f"{code}-slow line {i}" for i in range(6)] + [f"{code} done"]
    if step == "EHLO":
        lines = ["250-mx.test", *(f"250-X-SLOW{i}" for i in range(5)), "250 AUTH PLAIN"]
    settings: dict[str, Any] = {"timeout": 1, "auth": "plain", "user": "joe",
                                "password": "secret"}
    kwargs: dict[str, Any] = {"replies": {step: lines}, "gap": {step: 0.3}}
    if step == "STARTTLS":
        pki = PKI(tmp_path / "pki")
        ca = pki.ca()
        kwargs["tls_context"] = pki.leaf(ca, "localhost").server_context()
        settings.update(tls=True, tls_starttls=True, tls_trust_file=str(ca.cert),
                        host="localhost")  # the certificate's name
    servers, config = _servers(server_factory, tmp_path, **kwargs)
    real, ours = both(config(**settings))
    assert (real.rc, real.stderr) == (0, []), real
    assert (ours.rc, ours.stderr) == (0, []), ours
    for name in ("real", "ours"):
        server = servers[name]
        assert server.eod_received and server.quit_received, name
        assert "QUIT" in server.replied, name  # the client took the whole QUIT reply
    assert servers["ours"].commands[-1] == "QUIT"
    assert_bounded(ours, 10)


def test_server_trickling_for_ever_is_ended_by_the_line_limit(both, server_factory,
                                                              tmp_path) -> None:
    """Continuation lines 0.04 s apart, without end, with ``timeout 1``: no read times
    out; msmtp's 50-line limit ends it (each line is at most 1023 bytes)."""
    lines = [f"220-line {i}" for i in range(80)] + ["220 never reached"]
    _, config = _servers(server_factory, tmp_path, replies={"GREETING": lines},
                         gap={"GREETING": 0.04})
    real, ours = both(config(timeout=1))
    expected = ["msmtp: Rejecting server reply that is longer than 50 lines. "
                "Increase SMTP_MAXLINES.", FAILED]
    assert (real.rc, real.stderr) == (ours.rc, ours.stderr) == (76, expected)
    assert_bounded(ours)


# -- item 12: local inputs -------------------------------------------------------------------

def test_passwordeval_yes_takes_the_first_line(both, server_factory, tmp_path) -> None:
    servers, config = _servers(server_factory, tmp_path)
    real, ours = both(config(auth="plain", user="joe", passwordeval="yes"))
    assert (real.rc, real.stderr) == (ours.rc, ours.stderr) == (
        0, ["yes: standard output: Broken pipe"])
    expected = "AUTH PLAIN " + base64.b64encode(b"\0joe\0y").decode()
    for name in ("real", "ours"):
        assert expected in servers[name].commands, name
    assert_bounded(ours)


def test_passwordeval_leaving_a_process_behind(both, server_factory, tmp_path) -> None:
    """``cmd &`` keeps the pipe open after the shell has exited: msmtp's pclose()
    waits for the shell alone, and so do we (we waited for the pipe's end: 30 s)."""
    servers, config = _servers(server_factory, tmp_path)
    real, ours = both(config(auth="plain", user="joe",
                             passwordeval="echo secret; sleep 30 2>/dev/null &"))
    assert (real.rc, real.stderr) == (ours.rc, ours.stderr) == (0, [])
    expected = "AUTH PLAIN " + base64.b64encode(b"\0joe\0secret").decode()
    for name in ("real", "ours"):
        assert expected in servers[name].commands, name
    assert real.seconds < 10
    assert_bounded(ours)


def test_passwordeval_without_a_line_end(both, tmp_path) -> None:
    """``cat /dev/zero``: msmtp grows its buffer until memory runs out (here: a 300 MB
    cap, "FATAL: Cannot allocate memory", 71); ours stops after 64 KiB."""
    command = "cat /dev/zero"
    real, ours = both(_no_server_config(tmp_path, auth="plain", user="joe",
                                        passwordeval=command))
    assert real.rc == 71 and "msmtp: FATAL: Cannot allocate memory" in real.stderr
    assert ours.rc == 78
    assert ours.stderr == ["cat: write error: Broken pipe",
                           f"msmtp: cannot evaluate '{command}': output line longer than "
                           "65536 bytes"]
    assert_bounded(ours)


def test_config_file_dev_zero(both, tmp_path) -> None:
    """msmtp reads /dev/zero line by line for ever (flat memory; killed after 3 s
    here); ours stops after 16 MiB."""
    real, ours = both(lambda name: "/dev/zero", timeout=3)
    assert real.timed_out
    assert (ours.rc, ours.stderr) == (78, ["msmtp: /dev/zero: file is longer than "
                                           "16777216 bytes"])
    assert_bounded(ours, 3)


def test_config_file_dev_urandom(both, tmp_path) -> None:
    real, ours = both(lambda name: "/dev/urandom")
    assert real.rc == ours.rc == 78
    for result in (real, ours):
        assert result.stderr[0].startswith("msmtp: /dev/urandom: line "), result
    assert_bounded(ours)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_aliases_file_on_a_device(both, tmp_path, device) -> None:
    real, ours = both(_no_server_config(tmp_path, aliases=device), ["joe"], timeout=3)
    if device == "/dev/zero":
        assert real.timed_out  # msmtp reads on for ever
        assert (ours.rc, ours.stderr) == (78, [f"msmtp: {device}: file is longer than "
                                               "16777216 bytes"])
    else:
        assert real.rc == ours.rc == 78
        for result in (real, ours):
            assert result.stderr[0].startswith(f"msmtp: {device}: line "), result
    assert_bounded(ours, 3)


@pytest.mark.parametrize("which", ["tls_trust_file", "tls_crl_file", "tls_cert_file"])
def test_tls_file_dev_zero(both, tmp_path, which) -> None:
    """GnuTLS reads on until memory runs out, then: "Error while reading file." (66);
    ours says so after 16 MiB.  (msmtp 1.8.23 crashes for a cert/key file there.)"""
    pki = PKI(tmp_path / "pki")
    settings: dict[str, Any] = {"tls": True, "tls_trust_file": str(pki.ca().cert),
                                which: "/dev/zero"}
    name = {"tls_trust_file": "trust", "tls_crl_file": "CRL"}.get(which)
    if which == "tls_cert_file":
        settings["tls_key_file"] = "/dev/zero"
        text = "key file /dev/zero and/or X509 cert file /dev/zero"
    else:
        text = f"{name} file /dev/zero"
    real, ours = both(_no_server_config(tmp_path, **settings))
    expected = [f"msmtp: cannot set X509 {text} for TLS session: Error while reading file.",
                FAILED]
    assert (ours.rc, ours.stderr) == (66, expected)
    if which != "tls_cert_file":
        assert (real.rc, real.stderr) == (66, expected)
    assert_bounded(ours)


def test_netrc_dev_zero(both, server_factory, tmp_path) -> None:
    """msmtp reads ~/.netrc line by line for ever; ours reads 16 MiB, finds no
    password, and has no terminal to ask on."""
    _, config = _servers(server_factory, tmp_path)
    (tmp_path / "home" / ".netrc").symlink_to("/dev/zero")
    real, ours = both(config(auth="plain", user="joe"), timeout=4)
    assert real.timed_out
    assert ours.rc == 69
    assert ours.stderr == ["msmtp: authentication method PLAIN needs a password", FAILED]
    assert_bounded(ours, 4)


def test_header_block_of_thirty_megabytes(both, server_factory, tmp_path) -> None:
    """msmtp keeps the header block in a temporary file; so do we (it was in memory, and
    scanned a byte at a time: minutes)."""
    servers, config = _servers(server_factory, tmp_path)
    mail = b"To: r@example.org\nX-Big: " + b"b" * (30 << 20) + b"\nSubject: s\n\nbody\n"
    real, ours = both(config(timeout=10), ["-t"], input=mail, timeout=40)
    assert (real.rc, real.stderr) == (ours.rc, ours.stderr) == (0, [])
    # the same mail arrived (only Date and Message-ID differ)
    assert abs(servers["real"].body_bytes - servers["ours"].body_bytes) < 100
    assert servers["ours"].body_bytes > 30 << 20
    assert_bounded(ours, 15)


def test_five_megabyte_from_address(both, server_factory, tmp_path) -> None:
    """``--read-envelope-from`` with a From address no command can carry: the same
    refusal as msmtp's, without holding (or slowly scanning) the address."""
    _, config = _servers(server_factory, tmp_path)
    mail = b"From: " + b"f" * (5 << 20) + b"@example.org\nSubject: s\n\nbody\n"
    real, ours = both(config(timeout=5), ["--read-envelope-from", "r@example.org"],
                      input=mail)
    assert real.rc == ours.rc == 65
    assert real.stderr == ours.stderr == [
        "msmtp: Cannot send command because it is longer than 4094 characters. "
        "Increase SMTP_MAXCMDLEN.", FAILED]
    assert_bounded(ours)


def test_more_than_100000_recipients_in_the_headers(both, server_factory, tmp_path) -> None:
    """msmtp has no limit (it would send all of them, here to a server that takes
    them); ours refuses past 100 000."""
    _, config = _servers(server_factory, tmp_path)
    mail = (b"To: " + b",".join(b"r%d@example.org" % i for i in range(100_001))
            + b"\nSubject: s\n\nbody\n")
    real, ours = both(config(timeout=10), ["-t"], input=mail, timeout=60)
    assert real.rc == 0
    assert (ours.rc, ours.stderr) == (65, ["msmtp: more than 100000 recipients in the "
                                           "mail headers"])
    assert_bounded(ours)
