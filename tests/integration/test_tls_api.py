"""TLS through the Twisted-facing API: the ``ESMTPSenderFactory``/``sendmail``
drop-ins and ``ClientTLS``/``TLSWrapperEndpoint`` for a protocol of one's own.

Each scenario runs in a child process because a reactor runs once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import RecordingServer
from tests.servers.tlspki import PKI

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    maker = PKI(tmp_path_factory.mktemp("pki"))
    maker.root = maker.ca()
    maker.good = maker.leaf(maker.root)
    maker.untrusted = maker.leaf(maker.ca("Other CA"))
    return maker


def _run(script: str, tmp_path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


FACTORY = """
    import io, json
    from twisted.internet import defer, task
    from msmtp_twisted.protocol.compat import ESMTPSenderFactory
    from msmtp_twisted.tls.options import TLSOptions

    def main(reactor):
        d = defer.Deferred()
        f = ESMTPSenderFactory(None, None, "me@example.com", ["a@x.org"],
                               io.BytesIO(b"Subject: tls\\r\\n\\r\\nbody\\r\\n"), d,
                               contextFactory={context}, requireAuthentication=False)
        f.domain = b"localhost"
        reactor.connectTCP("127.0.0.1", {port}, f)
        d.addCallbacks(lambda r: print(json.dumps({{"ok": r[0]}})),
                       lambda f: print(json.dumps({{"exit": getattr(f.value, "exitcode", None),
                                                   "msg": f.value.message}})))
        return d
    task.react(main)
"""


def test_factory_with_tls_options(pki, tmp_path) -> None:
    with RecordingServer(tls_context=pki.good.server_context()) as server:
        context = f"TLSOptions('localhost', trust_file={str(pki.root.cert)!r})"
        result = _run(FACTORY.format(context=context, port=server.port), tmp_path)
        server.wait_idle()
    assert result == {"ok": 1}
    assert server.session.tls
    assert server.commands[:3] == ["EHLO localhost", "STARTTLS", "EHLO localhost"]
    assert server.message.recipients == ["a@x.org"]


def test_factory_refuses_an_untrusted_server(pki, tmp_path) -> None:
    with RecordingServer(tls_context=pki.untrusted.server_context()) as server:
        context = f"TLSOptions('localhost', trust_file={str(pki.root.cert)!r})"
        result = _run(FACTORY.format(context=context, port=server.port), tmp_path)
        server.wait_idle()
    assert result == {"exit": 69, "msg": "TLS certificate verification failed: The certificate "
                                         "is NOT trusted. The certificate issuer is unknown. "}
    # retries=5, as Twisted's factory: six tries (the mail never left)
    assert server.commands == ["EHLO localhost", "STARTTLS"] * 6
    assert server.messages == []


def test_factory_with_twisted_options_for_client_tls(pki, tmp_path) -> None:
    with RecordingServer(tls_context=pki.good.server_context()) as server:
        context = ("__import__('twisted.internet.ssl', fromlist=['x']).optionsForClientTLS("
                   "'localhost', trustRoot=__import__('twisted.internet.ssl', fromlist=['x'])"
                   f".Certificate.loadPEM(open({str(pki.root.cert)!r}, 'rb').read()))")
        result = _run(FACTORY.format(context=context, port=server.port), tmp_path)
        server.wait_idle()
    assert result == {"ok": 1}
    assert server.session.tls


def test_factory_requires_tls_by_default(pki, tmp_path) -> None:
    """Twisted's default requireTransportSecurity=True: no STARTTLS, no mail (and
    without contextFactory or hostname the factory could not start TLS anyway)."""
    with RecordingServer() as server:
        result = _run(FACTORY.format(context="None", port=server.port), tmp_path)
        server.wait_idle()
    assert result == {"exit": 69, "msg": "TLS is required, but the factory has no "
                                         "contextFactory and no hostname"}
    assert server.messages == []


def test_sendmail_verifies_against_the_system_store(pki, tmp_path) -> None:
    """sendmail() checks the certificate against the system trust store (which
    does not know our test CA) and the host name, as Twisted's does; it tries six
    times (five retries, as Twisted's): the mail was never sent."""
    with RecordingServer(tls_context=pki.good.server_context()) as server:
        result = _run(f"""
            import json
            from twisted.internet import task
            from msmtp_twisted.protocol.compat import sendmail

            def main(reactor):
                d = sendmail("127.0.0.1", "me@example.com", ["a@x.org"], b"Subject: x\\n\\nb\\n",
                             port={server.port}, reactor=reactor,
                             requireTransportSecurity=True, senderDomainName="localhost")
                d.addCallbacks(lambda r: print(json.dumps({{"ok": r[0]}})),
                               lambda f: print(json.dumps({{"exit": f.value.exitcode}})))
                return d
            task.react(main)
        """, tmp_path)
        server.wait_idle()
    assert result == {"exit": 69}
    assert server.commands == ["EHLO localhost", "STARTTLS"] * 6
    assert server.messages == []


ENDPOINT = """
    import json
    from twisted.internet import defer, task
    from twisted.internet.protocol import Factory, Protocol
    from msmtp_twisted.net.connect import SequentialTCPEndpoint
    from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint
    from msmtp_twisted.tls.options import TLSOptions

    class Greeting(Protocol):
        def connectionMade(self):
            self.done = defer.Deferred()
        def dataReceived(self, data):
            self.transport.loseConnection()
            if not self.done.called:
                self.done.callback(data.decode())
        def connectionLost(self, reason):
            if not self.done.called:
                self.done.errback(reason)

    def main(reactor):
        creator = TLSOptions("localhost", trust_file={trust!r}).creator()
        endpoint = TLSWrapperEndpoint(creator, SequentialTCPEndpoint(reactor, "127.0.0.1",
                                                                     {port}))
        d = endpoint.connect(Factory.forProtocol(Greeting))
        d.addCallback(lambda proto: proto.done)
        d.addCallbacks(lambda text: print(json.dumps({{"greeting": text}})),
                       lambda f: print(json.dumps({{"type": type(f.value).__name__,
                                                   "exit": getattr(f.value, "exitcode", None),
                                                   "msg": str(f.value)}})))
        return d
    task.react(main)
"""


def test_endpoint_for_a_protocol_of_ones_own(pki, tmp_path) -> None:
    with RecordingServer(tls_context=pki.good.server_context(), implicit_tls=True) as server:
        result = _run(ENDPOINT.format(trust=str(pki.root.cert), port=server.port), tmp_path)
    assert result == {"greeting": "220 mx.test ESMTP msmtp-twisted test server\r\n"}


def test_endpoint_failure_reaches_connection_lost(pki, tmp_path) -> None:
    with RecordingServer(tls_context=pki.untrusted.server_context(),
                         implicit_tls=True) as server:
        result = _run(ENDPOINT.format(trust=str(pki.root.cert), port=server.port), tmp_path)
    assert result == {"type": "TLSFailure", "exit": 69,
                      "msg": "TLS certificate verification failed: The certificate is NOT "
                             "trusted. The certificate issuer is unknown. "}


def test_endpoint_string(pki, tmp_path) -> None:
    """``msmtp-tls:`` strings: a pinned certificate (hex, no colons to escape)."""
    with RecordingServer(tls_context=pki.untrusted.server_context(), implicit_tls=True) as server:
        fingerprint = pki.untrusted.fingerprint().replace(":", "")
        result = _run(f"""
            import json
            from twisted.internet import task
            from twisted.internet.protocol import Factory, Protocol
            from msmtp_twisted.tls.strings import tls_client_endpoint

            class Greeting(Protocol):
                def dataReceived(self, data):
                    print(json.dumps({{"greeting": data.decode()}}))
                    self.transport.loseConnection()

            def main(reactor):
                endpoint = tls_client_endpoint(
                    reactor, "msmtp-tls:127.0.0.1:{server.port}:fingerprint={fingerprint}")
                d = endpoint.connect(Factory.forProtocol(Greeting))
                d.addCallback(lambda proto: task.deferLater(reactor, 0.5, lambda: None))
                return d
            task.react(main)
        """, tmp_path)
    assert result == {"greeting": "220 mx.test ESMTP msmtp-twisted test server\r\n"}


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit"])
def test_send_mail_api_uses_the_accounts_tls(pki, tmp_path, implicit) -> None:
    with RecordingServer(tls_context=pki.good.server_context(), implicit_tls=implicit) as server:
        rc = tmp_path / "rc"
        rc.write_text(f"account tlsacct\nhost 127.0.0.1\nport {server.port}\nfrom me@example.com\n"
                      f"tls on\ntls_starttls {'off' if implicit else 'on'}\n"
                      f"tls_trust_file {pki.root.cert}\ntls_host_override localhost\n")
        rc.chmod(0o600)
        result = _run(f"""
            import json
            from twisted.internet import task
            from msmtp_twisted.api import load_account, send_mail

            def main(reactor):
                account = load_account("tlsacct", config_file={str(rc)!r})
                d = send_mail(reactor, account, None, ["you@example.org"], b"Subject: t\\n\\nb\\n")
                d.addCallback(lambda r: print(json.dumps({{"code": r.reply.code}})))
                return d
            task.react(main)
        """, tmp_path)
        server.wait_idle()
        assert result == {"code": 250}
        assert server.session.tls
        assert server.message.recipients == ["you@example.org"]


def test_msmtp_tls_endpoint_string_via_plugin(pki, tmp_path) -> None:
    """clientFromString finds our parser through the twisted/plugins module."""
    with RecordingServer(tls_context=pki.good.server_context(), implicit_tls=True) as server:
        result = _run(f"""
            import json
            from twisted.internet import task
            from twisted.internet.endpoints import clientFromString
            from twisted.internet.protocol import Factory, Protocol

            class Greeting(Protocol):
                def dataReceived(self, data):
                    self.factory.done.callback(data)
                    self.transport.loseConnection()

            def main(reactor):
                from twisted.internet import defer
                endpoint = clientFromString(
                    reactor, "msmtp-tls:127.0.0.1:{server.port}:trust_file={pki.root.cert}"
                             ":host_override=localhost")
                f = Factory.forProtocol(Greeting)
                f.done = defer.Deferred()
                d = endpoint.connect(f)
                d.addCallback(lambda _: f.done)
                d.addCallback(lambda data: print(json.dumps({{"greeting": data[:3].decode()}})))
                return d
            task.react(main)
        """, tmp_path)
    assert result == {"greeting": "220"}
