"""SOCKS5 (``proxy_host``/``proxy_port``) compared with msmtp 1.8.23.

Through microsocks (``mailservers`` fixture: one instance without authentication,
one that requires a user and password -- which msmtp cannot give) to Postfix: plain,
STARTTLS, implicit TLS with AUTH, ``-d`` and ``--serverinfo``.  Through the scriptable
proxy of tests/servers/socksproxy.py: what goes on the wire, every failure status,
malformed, short, reset and silent replies.  Every case runs the real msmtp and ours
with the same configuration and wants the same exit code and stderr.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, ours_command, ours_env
from tests.servers.mailservers import MailServers, msmtprc, send
from tests.servers.msmtp import REAL_MSMTP, new_token
from tests.servers.ports import free_port
from tests.servers.socksproxy import SocksProxy, Step, reply

pytestmark = pytest.mark.timeout(60)

REAL = [REAL_MSMTP]
CLIENTS = (("real", REAL), ("ours", ours_command()))


@pytest.fixture(autouse=True)
def _needs_reference(real_msmtp: str) -> None:
    """Nearly every test here runs msmtp 1.8.23 too (CLIENTS): without it, they skip."""
FAILED = "msmtp: could not send mail (account default from CFG)"


def _mail(token: str) -> bytes:
    return f"Subject: {token}\nTo: alice@example.com\n\nthrough the proxy\n".encode()


def _both(tmp_path: Path, args: list[str], mail: bytes = b"", **settings):
    """Run real msmtp and ours (one after the other) with one account: ``settings``
    as for :func:`msmtprc`.  Returns {"real": (rc, stdout, stderr), "ours": ...} with
    the configuration's path replaced by CFG."""
    out = {}
    for label, command in CLIENTS:
        directory = tmp_path / label
        directory.mkdir(parents=True, exist_ok=True)
        cfg = msmtprc(directory, **settings)
        res = send(command, cfg, args, mail, timeout=30)
        out[label] = (res.returncode, res.stdout.replace(str(cfg), "CFG"),
                      res.stderr.replace(str(cfg), "CFG"))
    return out


def _microsocks(servers: MailServers) -> int:
    if servers.socks_port is None:
        from tests.conftest import require

        require(False, "microsocks (apt-get install microsocks)")
    assert servers.socks_port is not None
    return servers.socks_port


def _normalized_debug(text: str) -> str:
    text = re.sub(r"(?m)^(--> (?:Date|Message-ID): ).*$", r"\1<masked>", text)
    text = re.sub(r"queued as [0-9A-F]+", "queued as QID", text)
    text = re.sub(r"\(ECDHE-[A-Z0-9]+\)", "(ECDHE-GROUP)", text)  # GnuTLS vs OpenSSL group
    return text


# ---------------------------------------------------------------------- microsocks


@pytest.mark.parametrize("case", ["plain", "starttls", "smtps-auth"])
def test_delivers_through_microsocks(mailservers, tmp_path, case) -> None:
    socks = _microsocks(mailservers)
    token = new_token()
    settings: dict[str, object] = {
        "plain": {"port": mailservers.smtp_notls_port},
        # the certificate is checked against the TARGET's name (localhost), not the proxy's
        "starttls": {"host": "localhost", "port": mailservers.smtp_port, "tls": True,
                     "tls_trust_file": mailservers.ca_file},
        "smtps-auth": {"host": "localhost", "port": mailservers.smtps_port, "tls": True,
                       "tls_starttls": False, "tls_trust_file": mailservers.ca_file,
                       "auth": "on", "user": "testuser", "password": "testpass"},
    }[case]
    since = (mailservers.dir / "socks" / "microsocks.log").stat().st_size
    out = _both(tmp_path, ["alice@example.com"], _mail(token), proxy_host="127.0.0.1",
                proxy_port=socks, timeout=10, **settings)
    assert out["ours"] == out["real"] == (0, "", "")
    mails = mailservers.wait_for_mail("alice", match=token.encode(), count=2)
    assert len(mails) == 2
    if case != "plain":
        for mail in mails:
            assert b"(using TLSv1.3 with cipher" in mail
    # both went through microsocks (it logs each CONNECT)
    log = (mailservers.dir / "socks" / "microsocks.log").read_text(errors="replace")[since:]
    assert len(re.findall(rf"connected to \S+:{settings['port']}\n", log)) == 2, log


def test_debug_output_like_msmtp(mailservers, tmp_path) -> None:
    socks = _microsocks(mailservers)
    token = new_token()
    out = _both(tmp_path, ["-d", "alice@example.com"], _mail(token), host="localhost",
                port=mailservers.smtp_port, tls=True, tls_trust_file=mailservers.ca_file,
                proxy_host="127.0.0.1", proxy_port=socks)
    real, ours = out["real"], out["ours"]
    assert ours[0] == real[0] == 0
    assert f"proxy host = 127.0.0.1\nproxy port = {socks}\n" in ours[1]
    assert _normalized_debug(ours[1]) == _normalized_debug(real[1])
    assert ours[2] == real[2]


@pytest.mark.parametrize("tls", [False, True])
def test_serverinfo_through_microsocks(mailservers, tmp_path, tls) -> None:
    socks = _microsocks(mailservers)
    settings: dict[str, object] = {"port": mailservers.smtp_port}
    if tls:
        settings.update(host="localhost", tls=True, tls_trust_file=mailservers.ca_file)
    out = _both(tmp_path, ["--serverinfo"], proxy_host="127.0.0.1", proxy_port=socks,
                **settings)
    real, ours = out["real"], out["ours"]
    assert ours[0] == real[0] == 0
    # no "(name [address])": through a proxy msmtp knows neither
    host = "localhost" if tls else "127.0.0.1"
    assert ours[1].splitlines()[0] == f"SMTP server at {host}, port {mailservers.smtp_port}:"
    assert re.sub(r"\(ECDHE-[A-Z0-9]+\)", "", ours[1]) == \
        re.sub(r"\(ECDHE-[A-Z0-9]+\)", "", real[1])
    assert ours[2] == real[2]


def test_microsocks_refuses_dead_target(mailservers, tmp_path) -> None:
    socks = _microsocks(mailservers)
    out = _both(tmp_path, ["alice@example.com"], _mail(new_token()),
                port=mailservers.dead_port, proxy_host="127.0.0.1", proxy_port=socks,
                timeout=10)
    assert out["ours"] == out["real"]
    assert out["ours"][0] == 69
    assert out["ours"][2] == f"msmtp: proxy failure: connection refused\n{FAILED}\n"


def test_microsocks_with_authentication_is_unexpected(mailservers, tmp_path) -> None:
    # msmtp offers only "no authentication"; microsocks -u/-P answers 05 FF
    _microsocks(mailservers)
    out = _both(tmp_path, ["alice@example.com"], _mail(new_token()),
                port=mailservers.smtp_notls_port, proxy_host="127.0.0.1",
                proxy_port=mailservers.socks_auth_port, timeout=10)
    assert out["ours"] == out["real"]
    assert out["ours"][:1] == (69,)
    assert out["ours"][2] == f"msmtp: proxy failure: unexpected reply\n{FAILED}\n"


def test_socket_overrides_proxy(mailservers, tmp_path) -> None:
    # msmtp ignores host and proxy for an account with "socket"
    token = new_token()
    # (msmtp 1.8.23 wants a port for LMTP even with a socket)
    out = _both(tmp_path, ["testuser@example.com"], _mail(token), host=None,
                port=mailservers.lmtp_port, protocol="lmtp", socket=mailservers.lmtp_socket,
                proxy_host="127.0.0.1", proxy_port=free_port())
    assert out["ours"] == out["real"] == (0, "", "")
    mailservers.wait_for_mail("testuser", match=token.encode(), count=2, lmtp=True)


# ---------------------------------------------------------------------- the proxy itself


def test_proxy_down_names_the_proxy(tmp_path) -> None:
    port = free_port()
    out = _both(tmp_path, ["alice@example.com"], _mail(new_token()), host="mail.example.org",
                port=25, proxy_host="127.0.0.1", proxy_port=port, timeout=5)
    assert out["ours"] == out["real"]
    assert out["ours"][0] == 75
    assert out["ours"][2] == (f"msmtp: cannot connect to 127.0.0.1, port {port}: "
                              f"Connection refused\n{FAILED}\n")


def test_default_proxy_port_is_1080(tmp_path) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 1080)) == 0:
            pytest.skip("something listens on 127.0.0.1:1080")
    out = _both(tmp_path, ["--proxy-host=127.0.0.1", "alice@example.com"], _mail(new_token()),
                host="mail.example.org", port=25, timeout=5)
    assert out["ours"] == out["real"]
    assert out["ours"][2].startswith("msmtp: cannot connect to 127.0.0.1, port 1080: ")


def test_request_is_the_name_as_written(mailservers, tmp_path) -> None:
    token = new_token()
    with SocksProxy(names={"Mail.Example.ORG": ("127.0.0.1", mailservers.smtp_notls_port)}
                    ) as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(token), host="Mail.Example.ORG",
                    port=2525, proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=10)
        proxy.wait_idle(timeout=10)
    assert out["ours"] == out["real"] == (0, "", "")
    assert len(proxy.connections) == 2
    for conn in proxy.connections:
        assert conn.greeting == b"\x05\x01\x00"
        assert conn.request == b"\x05\x01\x00\x03\x10Mail.Example.ORG\x09\xdd"
        assert conn.ended in ("client closed", "target closed")
    mailservers.wait_for_mail("alice", match=token.encode(), count=2)


def test_implicit_tls_checks_the_target_name(mailservers, tmp_path) -> None:
    # the proxy maps mail.example.org to Postfix, whose certificate is for localhost:
    # verification is against the target name, as msmtp does it
    names = {"mail.example.org": ("127.0.0.1", mailservers.smtps_port)}
    with SocksProxy(names=names) as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(new_token()), host="mail.example.org",
                    port=465, tls=True, tls_starttls=False,
                    tls_trust_file=mailservers.ca_file, proxy_host="localhost",
                    proxy_port=proxy.port, timeout=10)
    assert out["ours"] == out["real"]
    assert out["ours"][0] == 69
    assert out["ours"][2].startswith("msmtp: TLS certificate verification failed: ")


#: net.c's texts for the reply codes
MSMTP_TEXTS = {1: "general server failure", 2: "connection not allowed",
               3: "network unreachable", 4: "host unreachable", 5: "connection refused",
               6: "time-to-live expired", 7: "command not supported",
               8: "address type not supported", 9: "unknown error", 0x7F: "unknown error",
               0xFF: "unknown error"}


@pytest.mark.parametrize("status", list(MSMTP_TEXTS))
def test_failure_status_like_msmtp(tmp_path, status) -> None:
    with SocksProxy(connect=reply(status)) as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(new_token()), host="mail.example.org",
                    port=25, proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=5)
    assert out["ours"] == out["real"]
    assert out["ours"] == (69, "", f"msmtp: proxy failure: {MSMTP_TEXTS[status]}\n{FAILED}\n")


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.parametrize("script", ["refused", "silent"])
def test_proxy_failure_with_tls_like_msmtp(tmp_path, tls, script) -> None:
    # a proxy failure stays one (not a TLS error), with either kind of TLS
    step = {"refused": reply(2), "silent": Step(b"", "hang")}[script]
    with SocksProxy(connect=step) as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(new_token()), host="mail.example.org",
                    port=25, tls=True, tls_starttls=tls == "starttls", tls_trust_file="system",
                    proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=1)
    message = {"refused": "proxy failure: connection not allowed",
               "silent": "network read error: the operation timed out"}[script]
    assert out["ours"] == out["real"]
    assert out["ours"] == (69 if script == "refused" else 74, "",
                           f"msmtp: {message}\n{FAILED}\n")


HOSTILE = {
    "method-ff": ({"method": b"\x05\xff"}, 69, "proxy failure: unexpected reply"),
    "method-socks4": ({"method": b"\x00\x5a"}, 69, "proxy failure: unexpected reply"),
    "http-proxy": ({"method": Step(b"HTTP/1.1 400 Bad Request\r\n\r\n", "close")}, 69,
                   "proxy failure: unexpected reply"),
    "bad-version": ({"connect": reply(0, version=4)}, 69, "proxy failure: unexpected reply"),
    "bad-reserved": ({"connect": reply(5, reserved=1)}, 69, "proxy failure: unexpected reply"),
    "bad-atyp": ({"connect": reply(5, atyp=2, address=b"\0\0\0\0")}, 69,
                 "proxy failure: unexpected reply"),
    "close-at-once": ({"method": Step(b"", "close")}, 74, "network read error"),
    "close-after-method": ({"connect": Step(b"", "close")}, 74, "network read error"),
    "close-mid-reply": ({"connect": Step(reply(5)[:7], "close")}, 74, "network read error"),
    "reset-at-once": ({"method": Step(b"", "reset")}, 74,
                      "network read error: Connection reset by peer"),
    "reset-after-method": ({"connect": Step(b"", "reset")}, 74,
                           "network read error: Connection reset by peer"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_proxy_like_msmtp(tmp_path, case) -> None:
    script, code, message = HOSTILE[case]
    with SocksProxy(**script) as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(new_token()), host="mail.example.org",
                    port=25, proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=5)
    assert out["ours"] == out["real"]
    assert out["ours"] == (code, "", f"msmtp: {message}\n{FAILED}\n")


def test_host_name_too_long(tmp_path) -> None:
    with SocksProxy() as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(new_token()), host="h" * 256,
                    port=25, proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=5)
        proxy.wait_idle(timeout=10)
    assert out["ours"] == out["real"]
    assert out["ours"] == (69, "", f"msmtp: proxy failure: host name too long\n{FAILED}\n")
    # both connected to the proxy (a dead proxy would be reported instead), sent nothing
    assert [c.greeting for c in proxy.connections] == [b"", b""]


@pytest.mark.parametrize("where", ["method", "connect"])
def test_silent_proxy_times_out(tmp_path, where) -> None:
    with SocksProxy(**{where: Step(b"", "hang")}) as proxy:
        times = {}
        out = {}
        for label, command in CLIENTS:
            directory = tmp_path / label
            directory.mkdir()
            cfg = msmtprc(directory, host="mail.example.org", port=25,
                          proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=1)
            res = send(command, cfg, ["alice@example.com"], _mail(new_token()), timeout=20)
            times[label] = res.seconds
            out[label] = (res.returncode, res.stderr.replace(str(cfg), "CFG"))
    assert out["ours"] == out["real"] == (
        74, f"msmtp: network read error: the operation timed out\n{FAILED}\n")
    assert 0.9 < times["real"] < 5
    assert 0.9 < times["ours"] < 5


def test_bound_address_types_and_coalesced_greeting(mailservers, tmp_path) -> None:
    # success replies with an IPv6 and a name as bound address, and the target's
    # greeting in the same segment as the reply: all fine for both
    target = {"mail.example.org": ("127.0.0.1", mailservers.smtp_notls_port)}
    for relay_reply in (reply(0, 4, "::1", 1), reply(0, 3, "relay.example", 65535)):
        token = new_token()
        with SocksProxy(names=target, relay_reply=relay_reply) as proxy:
            out = _both(tmp_path / token, ["alice@example.com"], _mail(token),
                        host="mail.example.org", port=25, proxy_host="127.0.0.1",
                        proxy_port=proxy.port, timeout=10)
        assert out["ours"] == out["real"] == (0, "", "")
        mailservers.wait_for_mail("alice", match=token.encode(), count=2)


def test_reply_and_greeting_in_one_segment(tmp_path) -> None:
    # a proxy that answers ahead: the reply, the target's greeting and (early) its
    # EHLO reply in one write; what follows the reply belongs to the SMTP session
    data = reply(0) + b"220 fake ESMTP\r\n250 hi\r\n"
    with SocksProxy(connect=Step(data, "close")) as proxy:
        out = _both(tmp_path, ["--serverinfo"], host="mail.example.org", port=25,
                    proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=5)
    assert out["ours"] == out["real"] == (
        0, "SMTP server at mail.example.org, port 25:\n    fake ESMTP\n"
           "No special capabilities.\n", "")


def test_split_replies_ours_waits_msmtp_does_not(mailservers, tmp_path) -> None:
    """A difference on purpose: msmtp reads each part of the negotiation with one
    recv() and fails on a short read; we wait for the rest (bounded by timeout)."""
    token = new_token()
    target = {"mail.example.org": ("127.0.0.1", mailservers.smtp_notls_port)}
    with SocksProxy(names=target, method=Step(b"\x05\x00", chunk=1, gap=0.2),
                    relay_reply=Step(reply(0, 1, "127.0.0.1", 25), chunk=1, gap=0.05)) as proxy:
        out = _both(tmp_path, ["alice@example.com"], _mail(token), host="mail.example.org",
                    port=25, proxy_host="127.0.0.1", proxy_port=proxy.port, timeout=10)
    assert out["ours"] == (0, "", "")
    assert out["real"] == (74, "", f"msmtp: network read error\n{FAILED}\n")
    mailservers.wait_for_mail("alice", match=token.encode(), count=1)


# ---------------------------------------------------------------------- Twisted API


def test_api_send_mail_through_proxy(mailservers, tmp_path) -> None:
    token = new_token()
    script = f"""
import sys
from twisted.internet import reactor
from msmtp_twisted.api import load_account, send_mail
account = load_account(config_file=sys.argv[1])
d = send_mail(reactor, account, None, ["alice@example.com"], {_mail(token)!r})
result = []
d.addBoth(result.append)
d.addBoth(lambda _: reactor.stop())
reactor.run()
print(type(result[0]).__name__, getattr(result[0], "value", result[0]))
"""
    target = {"mail.example.org": ("127.0.0.1", mailservers.smtp_notls_port)}
    with SocksProxy(names=target) as proxy:
        cfg = msmtprc(tmp_path, host="mail.example.org", port=25, proxy_host="127.0.0.1",
                      proxy_port=proxy.port, timeout=10)
        proc = subprocess.run([sys.executable, "-c", script, str(cfg)], capture_output=True,
                              text=True, timeout=30, cwd=ROOT,
                              env=ours_env({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}))
        assert proc.stdout.startswith("Delivered"), proc.stdout + proc.stderr
        assert proxy.connection.request_host == b"mail.example.org"
    mailservers.wait_for_mail("alice", match=token.encode())


def test_endpoint_string_with_tls_through_proxy(mailservers, tmp_path) -> None:
    """``msmtp-socks5:`` from Twisted's clientFromString, wrapped in implicit TLS."""
    script = f"""
from twisted.internet import reactor
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory, Protocol
from msmtp_twisted.tls.endpoint import TLSWrapperEndpoint
from msmtp_twisted.tls.strings import tls_options_from_fields

class Greeting(Protocol):
    def dataReceived(self, data):
        print(data.decode().strip())
        self.transport.loseConnection()
    def connectionLost(self, reason):
        reactor.stop()

socks = clientFromString(reactor, "msmtp-socks5:localhost:{mailservers.smtps_port}"
                                  ":proxy_host=127.0.0.1:proxy_port=PROXY:timeout=10")
options = tls_options_from_fields("localhost", {{"trust_file": "{mailservers.ca_file}"}})
d = TLSWrapperEndpoint(options.creator(), socks).connect(Factory.forProtocol(Greeting))
d.addErrback(lambda f: (print("FAILED", f.value), reactor.stop()))
reactor.callLater(20, reactor.stop)
reactor.run()
"""
    with SocksProxy() as proxy:
        proc = subprocess.run(
            [sys.executable, "-c", script.replace("PROXY", str(proxy.port))],
            capture_output=True, text=True, timeout=30, cwd=ROOT,
            env=ours_env({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}))
    assert proc.stdout.startswith("220 "), proc.stdout + proc.stderr
    assert proxy.connection.request_host == b"localhost"

