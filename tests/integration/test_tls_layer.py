"""Our lighter TLS layer (msmtp_twisted/tls/layer.py) under hostile TCP framing.

The layer stops reading when OpenSSL says nothing is left instead of reading
until ``WantReadError``: a mistake there shows as a reply left unread (a hang
until the timeout) or a reply read twice.  So the bytes between the server and
our client go through a proxy that cuts the TLS stream at random places (records
split over many reads) and joins what arrives (several records, and the end of
one with the start of the next, in one read), while the server writes each reply
in several small TLS records.  Mails of many sizes (beyond one 16 KiB record and
beyond the 32 KiB read buffer) go over one kept connection, with STARTTLS and
implicit TLS, TLS 1.2 and 1.3; every mail must arrive once, byte for byte, and
the client must report the layer in use (so the test cannot pass on Twisted's
own layer by accident).
"""

from __future__ import annotations

import json
import random
import select
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import RecordingServer
from tests.servers.tlspki import PKI

MAILS = 40


class RechunkProxy:
    """One-connection TCP proxy; server->client bytes are re-cut at random."""

    def __init__(self, target_port: int, seed: int) -> None:
        self._target = target_port
        self._rng = random.Random(seed)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.chunks = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RechunkProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(timeout=10)
        self._listener.close()

    def _run(self) -> None:
        self._listener.settimeout(60)
        client, _ = self._listener.accept()
        server = socket.create_connection(("127.0.0.1", self._target), timeout=60)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        deadline = time.monotonic() + 120
        with client, server:
            while not self._stop and time.monotonic() < deadline:
                ready, _, _ = select.select([client, server], [], [], 0.002)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    server.sendall(data)
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        if pending:
                            client.sendall(pending)
                        break
                    pending += data
                # hold a little now and then, so that records pile up and reach the
                # client together; otherwise send a random slice (split records)
                if pending and (not ready or self._rng.random() < 0.5):
                    cut = self._rng.choice([1, 2, 5, 7, 40, 300, len(pending)])
                    client.sendall(pending[:cut])
                    pending = pending[cut:]
                    self.chunks += 1


def _server_context(tmp_path, version: ssl.TLSVersion) -> tuple[ssl.SSLContext, str]:
    pki = PKI(tmp_path / "pki")
    ca = pki.ca("layer CA")
    leaf = pki.leaf(ca, "localhost")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(leaf.chain), str(leaf.key))
    ctx.minimum_version = ctx.maximum_version = version
    return ctx, str(ca.cert)


MAIL = """
def mail(i):
    size = [10, 200, 5000, 16383, 16385, 40000, 70000, 3][i % 8]
    body = "".join("line %d of mail %d %s\\n" % (n, i, "x" * (n % 70))
                   for n in range(size // 40 + 1))
    return ("Subject: mail %d\\n\\n" % i + body).encode()
"""
_space: dict = {}
exec(MAIL, _space)

CLIENT = MAIL + """
import json, sys
from twisted.internet import defer, task
from msmtp_twisted.api import connect, load_account

def layer_of(conn):
    transport = conn._proto.transport
    tls = getattr(transport, "protocol", None) if getattr(transport, "TLS", False) \\
        else transport
    names = [k.__name__ for k in type(tls).__mro__]
    return "LeanTLSProtocol" in names and bool(tls._lean)


@defer.inlineCallbacks
def main(reactor):
    account = load_account("t", config_file=sys.argv[1])
    conn = yield connect(reactor, account, timeout=20)
    lean = layer_of(conn)
    codes = []
    for i in range(int(sys.argv[2])):
        r = yield conn.send(None, ["r%d@x.org" % i, "s%d@x.org" % i], mail(i))
        codes.append(r.reply.code)
    yield conn.quit()
    print(json.dumps({"codes": codes, "lean": lean}))

task.react(main)
"""


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit"])
def test_kept_connection_over_recut_tls_stream(tmp_path, implicit, version) -> None:
    ctx, ca = _server_context(tmp_path, version)
    # each reply written 9 bytes at a time: many small TLS records per reply
    with RecordingServer(tls_context=ctx, implicit_tls=implicit, write_chunk=9) as srv, \
            RechunkProxy(srv.port, seed=version.value * 2 + implicit) as proxy:
        rc = tmp_path / "rc"
        rc.write_text(
            f"account t\nhost 127.0.0.1\nport {proxy.port}\nfrom me@example.com\n"
            f"tls on\ntls_starttls {'off' if implicit else 'on'}\ntls_trust_file {ca}\n"
            "tls_host_override localhost\ntimeout 20\n")
        rc.chmod(0o600)
        script = tmp_path / "client.py"
        script.write_text(textwrap.dedent(CLIENT))
        proc = subprocess.run([sys.executable, str(script), str(rc), str(MAILS)],
                              capture_output=True, text=True, timeout=150, cwd=ROOT,
                              env=ours_env({"HOME": str(tmp_path)}))
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        srv.wait_idle(timeout=20)
        assert out == {"codes": [250] * MAILS, "lean": True}
        assert proxy.chunks > 100  # the stream really was re-cut
        assert len(srv.sessions) == 1 and srv.session.tls
        assert len(srv.messages) == MAILS
        for i, message in enumerate(srv.messages):
            assert message.recipients == [f"r{i}@x.org", f"s{i}@x.org"]
            sent = _space["mail"](i).replace(b"\n", b"\r\n")
            assert message.data_bytes().endswith(sent)


def test_lighten_leaves_other_protocols_alone() -> None:
    # another reactor's TLS, or a future Twisted, keeps its own layer
    from msmtp_twisted.tls.layer import lighten, usable

    class Transport:
        protocol = object()

    transport = Transport()
    before = transport.protocol
    lighten(transport)
    assert transport.protocol is before
    lighten(object())  # no protocol at all
    assert not usable(object())
