"""The TLS files of an account (trust, CRL, client certificate and key) are read
once per account, never on the reactor thread of a running program.

Each scenario runs in a child process (a reactor runs once per process) against
a real STARTTLS server; the slow file is a named pipe that a writer fills
after 1.5 s, as a slow disk or network file system would, while a
``LoopingCall`` shows whether the reactor kept running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import RecordingServer
from tests.servers.tlspki import PKI

pytestmark = pytest.mark.timeout(120)

DELAY = 1.5
MAX_GAP = DELAY / 2


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    maker = PKI(tmp_path / "pki")
    maker.root = maker.ca()  # type: ignore[attr-defined]
    maker.server = maker.leaf(maker.root, "localhost")  # type: ignore[attr-defined]
    maker.client = maker.leaf(maker.root, "client.test")  # type: ignore[attr-defined]
    return maker


def _child(script: str, tmp_path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rc(tmp_path: Path, port: int, extra: str) -> Path:
    rc = tmp_path / "rc"
    rc.write_text(f"account work\nhost localhost\nport {port}\nfrom me@example.com\n"
                  f"tls on\n{extra}")
    rc.chmod(0o600)
    return rc


def test_second_send_does_not_read_the_files_again(server_factory, pki, tmp_path) -> None:
    server = server_factory(RecordingServer, tls_context=pki.server.server_context())
    files = tmp_path / "files"
    files.mkdir()
    trust, cert, key = files / "ca.pem", files / "client.pem", files / "client.key"
    trust.write_bytes(pki.root.cert.read_bytes())
    cert.write_bytes(pki.client.cert.read_bytes())
    key.write_bytes(pki.client.key.read_bytes())
    rc = _rc(tmp_path, server.port,
             f"tls_trust_file {trust}\ntls_cert_file {cert}\ntls_key_file {key}\n")
    out = _child(f"""
        import json, os
        from twisted.internet import defer, task
        from msmtp_twisted.api import load_account, send_mail

        def send(reactor, account, to):
            d = send_mail(reactor, account, None, [to], b"Subject: x\\n\\nbody\\n")
            return d.addCallbacks(lambda r: "delivered",
                                  lambda f: [f.value.exitcode, f.value.message])

        @defer.inlineCallbacks
        def main(reactor):
            account = load_account("work", config_file={str(rc)!r})
            first = yield send(reactor, account, "a@x.org")
            for name in ({str(trust)!r}, {str(cert)!r}, {str(key)!r}):
                os.remove(name)
            second = yield send(reactor, account, "b@x.org")
            # a new account reads the files (gone now) again
            again = load_account("work", config_file={str(rc)!r})
            third = yield send(reactor, again, "c@x.org")
            print(json.dumps([first, second, third]))
        task.react(main)
    """, tmp_path)
    assert out[0] == "delivered"
    assert out[1] == "delivered"
    assert out[2] == [66, f"cannot set X509 key file {key} and/or X509 cert file {cert} "
                          "for TLS session: Error while reading file."]
    server.wait_idle()
    assert [m.recipients for m in server.messages] == [["a@x.org"], ["b@x.org"]]


def test_reactor_ticks_while_a_trust_file_is_slow(server_factory, pki, tmp_path) -> None:
    """Three sends start at once on a fresh account: the trust file (a pipe that is
    written once) is read once, in a thread, while the reactor keeps ticking."""
    server = server_factory(RecordingServer, tls_context=pki.server.server_context())
    fifo = tmp_path / "slow-ca.pem"
    rc = _rc(tmp_path, server.port, f"tls_trust_file {fifo}\n")
    out = _child(f"""
        import json, os, threading, time
        from twisted.internet import defer, task
        from msmtp_twisted.api import load_account, send_mail

        os.mkfifo({str(fifo)!r})

        def write_late():
            time.sleep({DELAY})
            with open({str(fifo)!r}, "wb") as f:
                f.write({pki.root.cert.read_bytes()!r})
        threading.Thread(target=write_late, daemon=True).start()

        def main(reactor):
            ticks = []
            loop = task.LoopingCall(lambda: ticks.append(time.monotonic()))
            loop.start(0.02)
            account = load_account("work", config_file={str(rc)!r})
            began = time.monotonic()
            d = defer.gatherResults([
                send_mail(reactor, account, None, [f"r{{n}}@example.org"], b"Subject: x\\n\\nb\\n")
                for n in range(3)], consumeErrors=True)

            def done(outcome):
                ended = time.monotonic()
                loop.stop()
                during = [began] + [t for t in ticks if began <= t <= ended] + [ended]
                gaps = [b - a for a, b in zip(during, during[1:])]
                print(json.dumps({{"outcome": outcome, "elapsed": ended - began,
                                  "max_gap": max(gaps)}}), flush=True)
                os._exit(0)  # a reader still blocked on the pipe must not hold the exit
            # a second read of the pipe would wait for ever: report it, bounded
            reactor.callLater(20, done, "hung")
            d.addCallbacks(lambda r: done("delivered"),
                           lambda f: done([getattr(f.value, "exitcode", None), str(f.value)]))
            return d
        task.react(main)
    """, tmp_path)
    assert out["outcome"] == "delivered"
    assert out["elapsed"] >= DELAY * 0.8  # the file was waited for
    assert out["max_gap"] < MAX_GAP, out
    server.wait_idle()
    assert sorted(m.recipients[0] for m in server.messages) == [
        "r0@example.org", "r1@example.org", "r2@example.org"]


def test_unreadable_trust_file_fails_as_msmtp(pki, tmp_path) -> None:
    missing = tmp_path / "missing.pem"
    rc = _rc(tmp_path, 25, f"tls_trust_file {missing}\n")
    out = _child(f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.api import load_account, send_mail

        def main(reactor):
            account = load_account("work", config_file={str(rc)!r})
            d = send_mail(reactor, account, None, ["you@example.org"], b"Subject: x\\n\\nb\\n")
            d.addCallbacks(lambda r: print(json.dumps("delivered")),
                           lambda f: print(json.dumps([type(f.value).__name__, f.value.exitcode,
                                                       f.value.message])))
            return d
        task.react(main)
    """, tmp_path)
    assert out == ["TLSFailure", 66, f"cannot set X509 trust file {missing} for TLS session: "
                                     "Error while reading file."]
