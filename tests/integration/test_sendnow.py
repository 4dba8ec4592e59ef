"""net/sendnow.py: a write reaches the socket before the reactor turns again, and
what the kernel does not take keeps its order behind it (real TCP sockets)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, ours_env

SCRIPT = r"""
import hashlib, json, os, resource, socket
from twisted.internet import defer, protocol, task, endpoints
from msmtp_twisted.net.sendnow import write_now

# a long-running program's descriptors: ours must work beyond select's 1024
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
FILLERS = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]

def main(reactor):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = defer.Deferred()
    out = {}

    class Writer(protocol.Protocol):
        def connectionMade(self):
            peer, _ = listener.accept()
            peer.settimeout(0.5)
            # the reactor cannot turn while we are here: only a write that
            # went to the socket at once can be read now
            write_now(self.transport, b"now")
            try:
                out["now"] = peer.recv(10).decode()
            except socket.timeout:
                out["now"] = ""
            out["high_fd"] = self.transport.fileno() > 1024
            self.transport.write(b"-queued")       # Twisted's ordinary write
            write_now(self.transport, b"-after")   # must not overtake it
            try:
                out["overtook"] = peer.recv(100).decode()
            except socket.timeout:
                out["overtook"] = ""
            # far more than a socket buffer: part goes now, the rest in order later
            big = bytes(range(256)) * (8 * 4096)
            write_now(self.transport, big)
            write_now(self.transport, b"END")
            expected = b"-queued-after" + big + b"END"
            def drain():
                peer.settimeout(10)
                got = bytearray()
                while len(got) < len(expected):
                    chunk = peer.recv(1 << 20)
                    if not chunk:
                        break
                    got += chunk
                out["rest_in_order"] = hashlib.sha256(got).hexdigest() == \
                    hashlib.sha256(expected).hexdigest()
                peer.close()
                self.transport.loseConnection()
                done.callback(None)
            reactor.callInThread(drain)

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    endpoint.connect(protocol.Factory.forProtocol(Writer))
    d = done.addCallback(lambda _: print(json.dumps(out)))
    return d

task.react(main)
"""


def test_write_now_sends_at_once_and_keeps_order(tmp_path) -> None:
    script = tmp_path / "w.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=ours_env({"HOME": str(tmp_path)}))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # "-after" is held behind the queued write, so nothing more arrives yet
    assert out == {"now": "now", "overtook": "", "rest_in_order": True, "high_fd": True}


READABLE = r"""
import json, socket, time
from twisted.internet import defer, protocol, task, endpoints
from msmtp_twisted.net.sendnow import write_now

def main(reactor):
    listener = socket.create_server(("127.0.0.1", 0))
    done = defer.Deferred()
    out = {}

    class Writer(protocol.Protocol):
        def connectionMade(self):
            peer, _ = listener.accept()
            peer.settimeout(0.3)
            # the server said something (and hung up) that we have not read yet
            peer.sendall(b"421 bye\r\n")
            peer.shutdown(socket.SHUT_WR)
            time.sleep(0.1)
            write_now(self.transport, b"HELO x\r\n")
            try:
                out["written_at_once"] = peer.recv(100).decode()
            except socket.timeout:
                out["written_at_once"] = ""
            self.peer = peer

        def dataReceived(self, data):
            # Twisted reads first on its next turn, as it always did
            out["read_first"] = data.decode()
            out["later"] = self.peer.recv(100).decode()

        def connectionLost(self, reason):
            if not done.called:
                done.callback(None)

    endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", listener.getsockname()[1]).connect(
        protocol.Factory.forProtocol(Writer))
    reactor.callLater(5, lambda: done.called or done.callback(None))
    return done.addCallback(lambda _: print(json.dumps(out)))

task.react(main)
"""


def test_write_now_waits_when_input_is_pending(tmp_path) -> None:
    script = tmp_path / "r.py"
    script.write_text(textwrap.dedent(READABLE))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=ours_env({"HOME": str(tmp_path)}))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["written_at_once"] == ""
    assert out["read_first"] == "421 bye\r\n"
