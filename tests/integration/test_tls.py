"""TLS against test servers on 127.0.0.1, side by side with Debian's msmtp 1.8.23.

Every case runs our msmtp and the real one, each against a fresh server with the
same certificate (a PKI the tests generate: tests/servers/tlspki.py), and requires
the same exit code, the same stderr and the same commands at the server.  Every
negative case must fail without sending a byte of the mail: the server saw no MAIL
command, and after STARTTLS nothing at all (``EHLO``, ``STARTTLS`` and no more).

Cases only we run: what we do differently on purpose (TLS 1.0 needs to be asked
for, PKCS #11, the ``tls_min_dh_prime_bits`` warning, libtls priorities, IDN) and
the details msmtp does not show (which protocol version was used).
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.base import ThreadedServer
from tests.servers.recording import RecordingServer
from tests.servers.tlspki import PKI

pytestmark = pytest.mark.timeout(120)

REAL = ["/usr/bin/msmtp"]
MAIL = b"Subject: tls\n\nbody\n"
RUN_TIMEOUT = 20.0
STARTTLS_ONLY = ["EHLO localhost", "STARTTLS"]
DELIVERED = ["EHLO localhost", "STARTTLS", "EHLO localhost", "MAIL FROM:<a@example.com>",
             "RCPT TO:<r@example.org>", "DATA", "QUIT"]
DELIVERED_IMPLICIT = ["EHLO localhost", "MAIL FROM:<a@example.com>", "RCPT TO:<r@example.org>",
                      "DATA", "QUIT"]
FAILED = "msmtp: could not send mail (account default from CFG)"
NOT_TRUSTED = "msmtp: TLS certificate verification failed: The certificate is NOT trusted. "


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> SimpleNamespace:
    maker = PKI(tmp_path_factory.mktemp("pki"))
    ca = maker.ca()
    other = maker.ca("Other CA")
    inter = maker.ca("Intermediate CA", issuer=ca)
    old_inter = maker.ca("Expired Intermediate CA", issuer=ca, days=(-20, -1))
    p = SimpleNamespace(
        maker=maker, ca=ca, other=other, inter=inter,
        good=maker.leaf(ca),
        rsa=maker.leaf(ca, key="rsa"),
        expired=maker.leaf(ca, days=(-20, -1)),
        future=maker.leaf(ca, days=(3, 30)),
        wrong=maker.leaf(ca, "wrong.example", dns=["wrong.example"], ips=[]),
        revoked=maker.leaf(ca),
        untrusted=maker.leaf(other),
        selfsigned=maker.leaf(None),
        expired_untrusted=maker.leaf(other, days=(-20, -1)),
        expired_wrong=maker.leaf(ca, "wrong.example", dns=["wrong.example"], ips=[],
                                 days=(-20, -1)),
        chained=maker.leaf(inter),
        old_chain=maker.leaf(old_inter),
        cn_only=maker.leaf(ca, dns=[], ips=[]),
        idn=maker.leaf(ca, "xn--bcher-kva.example", dns=["xn--bcher-kva.example"], ips=[]),
        client=maker.leaf(ca, "client", client=True),
    )
    p.crl = maker.crl(ca, [p.revoked])
    p.crl_other = maker.crl(ca, [p.expired])
    p.client_encrypted = maker.encrypted_key(p.client, "sekrit")
    p.empty = maker.directory / "empty.pem"
    p.empty.write_text("no certificates in here\n")
    # a PEM block whose base64 is broken (a character no base64 has), and one
    # cut off before its END line
    cert_lines = Path(p.client.cert).read_text().splitlines(keepends=True)
    p.broken_cert = maker.directory / "broken-cert.pem"
    p.broken_cert.write_text("".join(cert_lines[:2] + ["#" + cert_lines[2][1:]]
                                     + cert_lines[3:]))
    p.broken_trust = maker.directory / "broken-trust.pem"  # a broken block, then the CA
    p.broken_trust.write_text(p.broken_cert.read_text() + Path(p.ca.cert).read_text())
    p.empty_file = maker.directory / "empty-file.pem"
    p.empty_file.write_text("")
    p.cut_cert = maker.directory / "cut-cert.pem"
    p.cut_cert.write_text("".join(cert_lines[:4]))
    key_lines = Path(p.client.key).read_text().splitlines(keepends=True)
    p.broken_key = maker.directory / "broken-key.pem"
    p.broken_key.write_text("".join(key_lines[:2] + ["#" + key_lines[2][1:]] + key_lines[3:]))
    return p


# -- running both programs ------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: list[str]
    commands: list[str]
    mails: int
    transcript: bytes = b""


def write_rc(directory: Path, name: str, port: int, settings: dict[str, Any]) -> Path:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "from": "a@example.com",
                              "tls": "on"}
    values.update(settings)
    lines = ["account default"] + [f"{k} {v}" for k, v in values.items() if v is not None]
    rc = directory / f"rc-{name}"
    rc.write_text("\n".join(lines) + "\n")
    rc.chmod(0o600)
    return rc


def run_program(command: list[str], env: dict[str, str], rc: Path, args: list[str]
                ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*command, "-C", str(rc), *args], input=MAIL, capture_output=True, timeout=RUN_TIMEOUT,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(rc.parent), **env})


def normalise(text: str, rc: Path, port: int | None) -> str:
    text = text.replace(str(rc), "CFG")
    if port is not None:
        text = re.sub(rf"\b{port}\b", "PORT", text)
    return text


def run_against(server: Any, command: list[str], env: dict[str, str], directory: Path,
                name: str, settings: dict[str, Any], args: list[str]) -> Outcome:
    with server:
        port = server.port
        rc = write_rc(directory, name, port, settings)
        proc = run_program(command, env, rc, args)
        server.wait_idle(timeout=10)
    sessions = getattr(server, "sessions", [])
    return Outcome(
        proc.returncode,
        normalise(proc.stdout.decode("utf-8", "replace"), rc, port),
        normalise(proc.stderr.decode("utf-8", "replace"), rc, port).splitlines(),
        list(getattr(server, "commands", [])),
        len(getattr(server, "messages", [])),
        b"".join(s.transcript.getvalue() for s in sessions),
    )


def both(make_server: Callable[[], Any], tmp_path: Path, name: str, settings: dict[str, Any],
         args: list[str] = ("r@example.org",)) -> tuple[Outcome, Outcome]:
    """(real, ours), run concurrently, each against its own server."""
    real_dir, ours_dir = tmp_path / "real", tmp_path / "ours"
    real_dir.mkdir(exist_ok=True)
    ours_dir.mkdir(exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        real = pool.submit(run_against, make_server(), REAL, {}, real_dir, name, dict(settings),
                           list(args))
        ours = pool.submit(run_against, make_server(), ours_command(), ours_env({}), ours_dir,
                           name, dict(settings), list(args))
        return real.result(), ours.result()


def ours_only(make_server: Callable[[], Any], tmp_path: Path, name: str,
              settings: dict[str, Any], args: list[str] = ("r@example.org",)) -> Outcome:
    return run_against(make_server(), ours_command(), ours_env({}), tmp_path, name,
                       dict(settings), list(args))


# -- servers -------------------------------------------------------------------------------


def tls_server(leaf: Any, *, implicit: bool = False, **context: Any) -> Callable[[], Any]:
    return lambda: RecordingServer(tls_context=leaf.server_context(**context),
                                   implicit_tls=implicit)


class BrokenTLSServer(ThreadedServer):
    """Offers STARTTLS, says 220 (or, ``implicit``, says nothing), then breaks the
    handshake in answer to the client's first TLS bytes: ``close`` (a clean end of
    the stream), ``reset`` (a TCP RST), ``garbage``, ``smtp`` (an SMTP reply); or
    ``hang`` (silence until the client gives up).  Records what it received."""

    thread_name = "broken-tls"

    def __init__(self, mode: str, *, implicit: bool = False) -> None:
        super().__init__()
        self.mode = mode
        self.implicit = implicit
        self.received = bytearray()

    def handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        if not self.implicit:
            conn.sendall(b"220 broken.test ESMTP\r\n")
            self.received += reader.readline()
            conn.sendall(b"250-broken.test\r\n250 STARTTLS\r\n")
            self.received += reader.readline()
            conn.sendall(b"220 2.0.0 go ahead\r\n")
        if self.mode != "hang":
            self.received += conn.recv(65536)  # the ClientHello
        if self.mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        if self.mode == "close":
            conn.shutdown(socket.SHUT_WR)
        elif self.mode == "garbage":
            conn.sendall(b"this is not TLS at all\r\n" * 10)
        elif self.mode == "smtp":
            conn.sendall(b"250 hello, this is no TLS\r\n")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.received += data


# -- the side-by-side table ------------------------------------------------------------


@dataclass
class Case:
    leaf: str | None  # attribute of the pki fixture; None: no TLS at the server
    settings: Callable[[SimpleNamespace], dict[str, Any]]
    code: int
    implicit: bool = False
    context: Callable[[SimpleNamespace], dict[str, Any]] = field(default=lambda p: {})
    replies: dict[str, Any] = field(default_factory=dict)


def trust(p: SimpleNamespace, **more: Any) -> dict[str, Any]:
    return {"tls_trust_file": p.ca.cert, **more}


def implicit(p: SimpleNamespace, **more: Any) -> dict[str, Any]:
    return {"tls_trust_file": p.ca.cert, "tls_starttls": "off", **more}


CASES: dict[str, Case] = {
    # verified and delivered
    "starttls": Case("good", trust, 0),
    "implicit-tls": Case("good", implicit, 0, implicit=True),
    "rsa-server-key": Case("rsa", trust, 0),
    "tls1.2-server": Case("good", trust, 0,
                          context=lambda p: {"maximum": ssl.TLSVersion.TLSv1_2}),
    "tls1.3-server": Case("good", trust, 0,
                          context=lambda p: {"minimum": ssl.TLSVersion.TLSv1_3}),
    "intermediate-chain": Case("chained", trust, 0),
    "intermediate-as-anchor": Case("chained", lambda p: {"tls_trust_file": p.inter.cert}, 0),
    "server-cert-as-anchor": Case("selfsigned", lambda p: {"tls_trust_file": p.selfsigned.cert},
                                  0),
    "ip-address-host": Case("good", trust, 0),
    "localhost-host": Case("good", lambda p: trust(p, host="localhost"), 0),
    "common-name-only": Case("cn_only", lambda p: trust(p, host="localhost"), 0),
    "host-override": Case("wrong", lambda p: trust(p, tls_host_override="wrong.example"), 0),
    "crl-not-revoked": Case("good", lambda p: trust(p, tls_crl_file=p.crl), 0),
    "revoked-without-crl": Case("revoked", trust, 0),
    "fingerprint-sha256-unknown-ca": Case(
        "untrusted", lambda p: {"tls_fingerprint": p.untrusted.fingerprint("sha256")}, 0),
    "fingerprint-sha1-expired": Case(
        "expired", lambda p: {"tls_fingerprint": p.expired.fingerprint("sha1")}, 0),
    "fingerprint-md5-wrong-name": Case(
        "wrong", lambda p: {"tls_fingerprint": p.wrong.fingerprint("md5").lower()}, 0),
    "fingerprint-beats-bad-trust-file": Case(
        "good", lambda p: {"tls_fingerprint": p.good.fingerprint(),
                           "tls_trust_file": "/nonexistent"}, 0),
    "fingerprint-implicit": Case(
        "untrusted", lambda p: {"tls_fingerprint": p.untrusted.fingerprint(),
                                "tls_starttls": "off"}, 0, implicit=True),
    "certcheck-off": Case("untrusted", lambda p: {"tls_certcheck": "off"}, 0),
    "certcheck-off-expired-wrong": Case(
        "expired_wrong", lambda p: {"tls_certcheck": "off", "tls_fingerprint": "00:" * 31 + "00"},
        0),
    "priorities-no-tls1.3": Case("good", lambda p: trust(p, tls_priorities="NORMAL:-VERS-TLS1.3"),
                                 0),
    "client-certificate": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file=p.client.key), 0,
        context=lambda p: {"client_ca": p.ca, "require_client_cert": True}),
    "client-certificate-implicit": Case(
        "good", lambda p: implicit(p, tls_cert_file=p.client.cert, tls_key_file=p.client.key), 0,
        implicit=True, context=lambda p: {"client_ca": p.ca, "require_client_cert": True}),
    "client-key-encrypted": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert,
                                tls_key_file=p.client_encrypted, password="sekrit"), 0,
        context=lambda p: {"client_ca": p.ca, "require_client_cert": True}),
    "client-certificate-not-asked-for": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file=p.client.key), 0),
    "client-certificate-optional-none-given": Case(
        "good", trust, 0, context=lambda p: {"client_ca": p.ca}),
    # verification failures: 69, nothing sent after STARTTLS
    "expired": Case("expired", trust, 69),
    "not-yet-valid": Case("future", trust, 69),
    "wrong-name": Case("wrong", trust, 69),
    "wrong-ip-override": Case("good", lambda p: trust(p, tls_host_override="127.0.0.2"), 69),
    "unknown-ca": Case("untrusted", trust, 69),
    "self-signed": Case("selfsigned", trust, 69),
    "revoked": Case("revoked", lambda p: trust(p, tls_crl_file=p.crl), 69),
    "revoked-and-expired": Case("expired", lambda p: trust(p, tls_crl_file=p.crl_other), 69),
    "expired-unknown-ca": Case("expired_untrusted", trust, 69),
    "expired-wrong-name": Case("expired_wrong", trust, 69),
    "expired-intermediate": Case("old_chain", trust, 69),
    "wrong-fingerprint": Case("good", lambda p: {"tls_fingerprint": p.untrusted.fingerprint()},
                              69),
    "implicit-expired": Case("expired", implicit, 69, implicit=True),
    "implicit-unknown-ca": Case("untrusted", implicit, 69, implicit=True),
    "implicit-wrong-fingerprint": Case(
        "good", lambda p: {"tls_fingerprint": p.untrusted.fingerprint("sha1"),
                           "tls_starttls": "off"}, 69, implicit=True),
    # local files: 66 before a byte is sent
    "missing-trust-file": Case("good", lambda p: {"tls_trust_file": "/nonexistent/ca.pem"}, 66),
    "trust-file-without-certificates": Case("good", lambda p: {"tls_trust_file": p.empty}, 66),
    "trust-file-broken-base64": Case(
        "good", lambda p: {"tls_trust_file": p.broken_trust}, 66),
    "trust-file-cut-short": Case("good", lambda p: {"tls_trust_file": p.cut_cert}, 66),
    "crl-file-empty": Case("good", lambda p: trust(p, tls_crl_file=p.empty_file), 66),
    "missing-crl-file": Case("good", lambda p: trust(p, tls_crl_file="/nonexistent/crl.pem"), 66),
    "crl-file-not-a-crl": Case("good", lambda p: trust(p, tls_crl_file=p.client.key), 66),
    "missing-key-file": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file="/nonexistent"), 66),
    "missing-cert-file": Case(
        "good", lambda p: trust(p, tls_cert_file="/nonexistent", tls_key_file=p.client.key), 66),
    # GnuTLS reads the key first: its words for each kind of wrong file
    "key-file-without-a-key": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file=p.empty), 66),
    "key-file-holds-a-certificate": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.key, tls_key_file=p.client.cert), 66),
    "key-file-broken-base64": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file=p.broken_key), 66),
    "cert-file-without-a-certificate": Case(
        "good", lambda p: trust(p, tls_cert_file=p.empty, tls_key_file=p.client.key), 66),
    "cert-file-broken-base64": Case(
        "good", lambda p: trust(p, tls_cert_file=p.broken_cert, tls_key_file=p.client.key), 66),
    "cert-file-cut-short": Case(
        "good", lambda p: trust(p, tls_cert_file=p.cut_cert, tls_key_file=p.client.key), 66),
    "key-does-not-match": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file=p.good.key), 66),
    "encrypted-key-wrong-password": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert,
                                tls_key_file=p.client_encrypted, password="wrong"), 66),
    "encrypted-key-no-password": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert,
                                tls_key_file=p.client_encrypted), 66),
    # no TLS, no mail
    "starttls-not-offered": Case(None, trust, 69),
    "starttls-refused": Case("good", trust, 76,
                             replies={"STARTTLS": "454 4.7.0 TLS not available now"}),
    "bad-priorities": Case("good", lambda p: trust(p, tls_priorities="NORMAL:+NOPE"), 70),
    "tls1.0-server-tls1.0-forbidden": Case(
        "good", lambda p: trust(p, tls_priorities="NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"), 76,
        context=lambda p: {"minimum": ssl.TLSVersion.TLSv1, "maximum": ssl.TLSVersion.TLSv1}),
    "tls1.2-server-tls1.3-required": Case(
        "good", lambda p: trust(p, tls_priorities="NORMAL:-VERS-ALL:+VERS-TLS1.3"), 76,
        context=lambda p: {"maximum": ssl.TLSVersion.TLSv1_2}),
    "implicit-tls1.2-server-tls1.3-required": Case(
        "good", lambda p: implicit(p, tls_priorities="NORMAL:-VERS-ALL:+VERS-TLS1.3"), 76,
        implicit=True, context=lambda p: {"maximum": ssl.TLSVersion.TLSv1_2}),
    "client-certificate-required-none-given": Case(
        "good", trust, 74, context=lambda p: {"client_ca": p.ca, "require_client_cert": True}),
    "client-certificate-from-unknown-ca": Case(
        "good", lambda p: trust(p, tls_cert_file=p.client.cert, tls_key_file=p.client.key), 74,
        context=lambda p: {"client_ca": p.other, "require_client_cert": True}),
}


def _server_for(case: Case, p: SimpleNamespace) -> Callable[[], Any]:
    if case.leaf is None:
        return lambda: RecordingServer()
    leaf = getattr(p, case.leaf)
    context = case.context(p)
    return lambda: RecordingServer(tls_context=leaf.server_context(**context),
                                   implicit_tls=case.implicit, replies=case.replies)


@pytest.mark.parametrize("name", list(CASES))
def test_same_as_msmtp(name, pki, tmp_path, real_msmtp) -> None:
    case = CASES[name]
    settings = case.settings(pki)
    real, ours = both(_server_for(case, pki), tmp_path, name, settings)
    assert ours.code == case.code, ours.stderr
    assert (ours.code, ours.stderr, ours.commands, ours.mails) == (
        real.code, real.stderr, real.commands, real.mails)
    if case.code == 0:
        assert ours.mails == 1
        assert ours.commands == (DELIVERED_IMPLICIT if case.implicit else DELIVERED)
        return
    # nothing of the mail went out; after STARTTLS nothing at all
    assert ours.mails == 0
    assert not any(c.startswith("MAIL") for c in ours.commands)
    if case.leaf is not None and case.code in (69, 74, 76) and name != "starttls-refused":
        if case.implicit:
            assert ours.commands == [] and ours.transcript == b""
        else:
            assert ours.commands == STARTTLS_ONLY
            assert ours.transcript == b"EHLO localhost\r\nSTARTTLS\r\n"
    if case.code == 69 and case.leaf is not None and name != "starttls-refused":
        assert ours.stderr[0].startswith("msmtp: TLS certificate verification failed: ")
    assert ours.stderr[-1] == FAILED


def test_verification_texts(pki, tmp_path) -> None:
    """The texts msmtp 1.8.23 prints, spelled out (they also come out of the
    side-by-side table when the real msmtp is installed)."""
    expected = {
        "expired": NOT_TRUSTED + "The certificate chain uses expired certificate. ",
        "not-yet-valid": NOT_TRUSTED + "The certificate chain uses not yet valid certificate. ",
        "wrong-name": NOT_TRUSTED + "The name in the certificate does not match the expected. ",
        "unknown-ca": NOT_TRUSTED + "The certificate issuer is unknown. ",
        "revoked": NOT_TRUSTED + "The certificate chain is revoked. ",
        "expired-unknown-ca": NOT_TRUSTED + "The certificate issuer is unknown. "
                                            "The certificate chain uses expired certificate. ",
        "wrong-fingerprint": "msmtp: TLS certificate verification failed: "
                             "the certificate fingerprint does not match",
        "missing-trust-file": "msmtp: cannot set X509 trust file /nonexistent/ca.pem for TLS "
                              "session: Error while reading file.",
        "bad-priorities": "msmtp: cannot set priorities for TLS session: error in priority "
                          "string at position 8",
        "tls1.2-server-tls1.3-required": "msmtp: TLS handshake failed: A TLS fatal alert has "
                                         "been received.",
        "client-certificate-required-none-given": "msmtp: cannot read from TLS connection: "
                                                  "A TLS fatal alert has been received.",
    }
    for name, text in expected.items():
        case = CASES[name]
        outcome = ours_only(_server_for(case, pki), tmp_path, name, case.settings(pki))
        assert (outcome.code, outcome.stderr) == (case.code, [text, FAILED]), name


# -- servers that break the handshake --------------------------------------------------


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "implicit"])
@pytest.mark.parametrize(("mode", "text"), [
    ("close", "The TLS connection was non-properly terminated."),
    ("reset", "Error in the pull function."),
    ("garbage", "An unexpected TLS packet was received."),
    ("smtp", "An unexpected TLS packet was received."),
])
def test_broken_handshake(mode, text, implicit_tls, pki, tmp_path, real_msmtp) -> None:
    settings = {"tls_trust_file": pki.ca.cert, "timeout": 2}
    if implicit_tls:
        settings["tls_starttls"] = "off"
    servers: list[BrokenTLSServer] = []

    def make() -> BrokenTLSServer:
        servers.append(BrokenTLSServer(mode, implicit=implicit_tls))
        return servers[-1]
    real, ours = both(make, tmp_path, f"broken-{mode}", settings)
    assert ours.code == 76
    assert ours.stderr == [f"msmtp: TLS handshake failed: {text}", FAILED]
    assert (ours.code, ours.stderr) == (real.code, real.stderr)
    # what the server got after STARTTLS was (an attempt at) a TLS handshake, no SMTP
    received = bytes(servers[-1].received)
    assert b"MAIL" not in received and b"EHLO localhost\r\nEHLO" not in received


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "implicit"])
def test_handshake_timeout(implicit_tls, tmp_path, pki) -> None:
    """A server silent during the handshake: we give up after ``timeout`` (msmtp
    1.8.23 retries the GnuTLS handshake past it and waits for the server)."""
    settings = {"tls_trust_file": pki.ca.cert, "timeout": 1}
    if implicit_tls:
        settings["tls_starttls"] = "off"
    server = BrokenTLSServer("hang", implicit=implicit_tls)
    start = time.monotonic()
    outcome = ours_only(lambda: server, tmp_path, "hang", settings)
    assert time.monotonic() - start < 6
    assert outcome.code == 76
    assert outcome.stderr == ["msmtp: TLS handshake failed: the operation timed out", FAILED]
    assert b"MAIL" not in server.received


def test_bytes_after_the_starttls_reply_are_refused(pki, tmp_path) -> None:
    """Bytes the server sends with its 220 would be read as if they came over TLS:
    the session refuses to start TLS on them (msmtp hands them to GnuTLS)."""
    server = RecordingServer(tls_context=pki.good.server_context(),
                             replies={"STARTTLS": b"220 go ahead\r\n250 injected\r\n"})
    outcome = ours_only(lambda: server, tmp_path, "inject", trust(pki))
    assert outcome.code == 76 and outcome.mails == 0
    assert outcome.commands == STARTTLS_ONLY


# -- -d and --serverinfo ----------------------------------------------------------------


def _mask(text: str) -> str:
    text = re.sub(r"^(--> (?:Date|Message-ID): ).*$", r"\1X", text, flags=re.M)
    # the key exchange group differs: OpenSSL offers X25519 first, GnuTLS 3.7 SECP256R1
    return re.sub(r"\(ECDHE-[A-Z0-9]+\)", "(ECDHE-GROUP)", text)


@pytest.mark.parametrize(("label", "leaf", "settings", "args", "implicit_tls", "caps"), [
    ("debug-starttls", "good", trust, ["-d", "r@example.org"], False, None),
    ("debug-implicit", "good", implicit, ["-d", "r@example.org"], True, None),
    ("debug-fingerprint", "untrusted",
     lambda p: {"tls_fingerprint": p.untrusted.fingerprint()}, ["-d", "r@example.org"], False,
     None),
    ("debug-expired", "expired", trust, ["-d", "r@example.org"], False, None),
    ("serverinfo", "good", trust, ["--serverinfo"], False, None),
    ("serverinfo-implicit", "good", implicit, ["--serverinfo"], True, None),
    ("serverinfo-certcheck-off", "untrusted", lambda p: {"tls_certcheck": "off"},
     ["--serverinfo"], False, None),
    ("serverinfo-expired", "expired", trust, ["--serverinfo"], False, None),
    ("debug-serverinfo", "good", trust, ["-d", "--serverinfo"], False, None),
    ("rmqs-debug", "good", trust, ["-d", "--rmqs=@example.org"], False,
     ["ETRN", "PIPELINING"]),
    ("rmqs-implicit", "good", implicit, ["--rmqs=@example.org"], True, ["ETRN"]),
])
def test_output_same_as_msmtp(label, leaf, settings, args, implicit_tls, caps, pki, tmp_path,
                              real_msmtp) -> None:
    cert = getattr(pki, leaf)

    def make() -> RecordingServer:
        return RecordingServer(tls_context=cert.server_context(), implicit_tls=implicit_tls,
                               capabilities=caps)
    real, ours = both(make, tmp_path, label, settings(pki), args)
    assert (ours.code, _mask(ours.stdout), ours.stderr, ours.commands) == (
        real.code, _mask(real.stdout), real.stderr, real.commands)
    if ours.code == 0 and "--rmqs=@example.org" not in args:
        assert "TLS certificate information:" in ours.stdout


def test_debug_output_order(pki, tmp_path) -> None:
    """With -d the TLS information comes right after the 220 to STARTTLS, before
    the second EHLO, as msmtp prints it."""
    outcome = ours_only(tls_server(pki.good), tmp_path, "order", trust(pki),
                        ["-d", "r@example.org"])
    lines = outcome.stdout.splitlines()
    at = lines.index("<-- 220 2.0.0 Ready to start TLS")
    assert lines[at + 1] == "TLS session parameters:"
    assert re.fullmatch(r"    \(TLS1\.3\)-\(ECDHE-[A-Z0-9]+\)-\(ECDSA-SECP256R1-SHA256\)-"
                        r"\(AES-256-GCM\)", lines[at + 2])
    assert lines[at + 12] == f"        SHA256: {pki.good.fingerprint('sha256')}"
    assert lines[at + 13] == f"        SHA1 (deprecated): {pki.good.fingerprint('sha1')}"
    assert lines[at + 14] == "--> EHLO localhost"


# -- what only we do (or do differently) ----------------------------------------------


TLS10_SERVER = {"minimum": ssl.TLSVersion.TLSv1, "maximum": ssl.TLSVersion.TLSv1}


def test_tls1_0_only_when_asked_for(pki, tmp_path) -> None:
    """msmtp 1.8.23's GnuTLS talks TLS 1.0 by default; we (OpenSSL) only when the
    priorities ask for it -- docs/tls.md, differences."""
    refused = ours_only(tls_server(pki.good, **TLS10_SERVER), tmp_path, "tls10", trust(pki))
    assert refused.code == 76 and refused.mails == 0 and refused.commands == STARTTLS_ONLY
    assert refused.stderr[0].startswith("msmtp: TLS handshake failed: ")
    for prio in ("NORMAL:+VERS-TLS1.0", "PROTOCOLS=tlsv1.0,tlsv1.1,tlsv1.2,tlsv1.3"):
        ok = ours_only(tls_server(pki.good, **TLS10_SERVER), tmp_path, "tls10-ok",
                       trust(pki, tls_priorities=prio), ["-d", "r@example.org"])
        assert ok.code == 0 and ok.mails == 1, ok.stderr
        assert "    (TLS1.0)-(ECDHE-X25519)-(AES-256-CBC)-(SHA1)" in ok.stdout.splitlines()


@pytest.mark.parametrize(("prio", "server", "code", "used"), [
    ("PROTOCOLS=TLSv1.3", {"maximum": ssl.TLSVersion.TLSv1_2}, 76, None),
    ("PROTOCOLS=TLSv1.3", {}, 0, "(TLS1.3)-"),
    ("PROTOCOLS=TLSv1.2", {}, 0, "(TLS1.2)-"),
    ("PROTOCOLS=TLSv1.2 CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256 ECDHECURVES=P-256,P-384", {}, 0,
     "(TLS1.2)-(ECDHE-SECP256R1)-(ECDSA-SHA256)-(AES-128-GCM)"),
    ("PROTOCOLS=TLSv1.3 CIPHERS=TLS_CHACHA20_POLY1305_SHA256 ECDHECURVES=P-384", {}, 0,
     "(TLS1.3)-(ECDHE-SECP384R1)-(ECDSA-SECP256R1-SHA256)-(CHACHA20-POLY1305)"),
    ("NORMAL:-VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305", {}, 0,
     "(TLS1.2)-(ECDHE-X25519)-(ECDSA-SHA256)-(CHACHA20-POLY1305)"),
    ("NORMAL:-GROUP-ALL:+GROUP-SECP384R1", {}, 0, "(TLS1.3)-(ECDHE-SECP384R1)-"),
    ("SECURE256:-VERS-TLS1.3", {"ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"}, 76, None),
])
def test_priorities_are_applied(prio, server, code, used, pki, tmp_path) -> None:
    outcome = ours_only(tls_server(pki.good, **server), tmp_path, "prio",
                        trust(pki, tls_priorities=prio), ["-d", "r@example.org"])
    assert outcome.code == code, outcome.stderr
    assert outcome.mails == (1 if code == 0 else 0)
    if used is not None:
        assert any(line.startswith(f"    {used}") for line in outcome.stdout.splitlines())


def test_system_trust_store(pki, tmp_path) -> None:
    """``tls_trust_file system`` (the default) is OpenSSL's store, which honours
    SSL_CERT_FILE; our test CA is in no real system store."""
    unknown = ours_only(tls_server(pki.good), tmp_path, "system", {})
    assert unknown.code == 69
    assert unknown.stderr[0] == NOT_TRUSTED + "The certificate issuer is unknown. "
    known = run_against(tls_server(pki.good)(), ours_command(),
                        ours_env({"SSL_CERT_FILE": str(pki.ca.cert)}), tmp_path, "system-env",
                        {}, ["r@example.org"])
    assert known.code == 0 and known.mails == 1, known.stderr


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "implicit"])
def test_tls_over_a_unix_socket(implicit_tls, pki, tmp_path, real_msmtp) -> None:
    """``socket`` with ``tls``: the name checked is ``host`` (localhost)."""
    outcomes = []
    for label, command, env in (("real", REAL, {}), ("ours", ours_command(), ours_env({}))):
        path = tmp_path / f"{label}.sock"
        server = RecordingServer(tls_context=pki.good.server_context(),
                                 implicit_tls=implicit_tls, unix_path=path)
        settings = {"host": "localhost", "socket": path, "port": None,
                    "tls_trust_file": pki.ca.cert, "tls_starttls": "off" if implicit_tls else "on"}
        with server:
            rc = write_rc(tmp_path, label, 0, settings)
            proc = run_program(command, env, rc, ["r@example.org"])
            server.wait_idle()
        outcomes.append((proc.returncode, proc.stderr, len(server.messages), server.commands))
    real, ours = outcomes
    assert ours == real
    assert ours[0] == 0 and ours[2] == 1


def test_pkcs11_is_refused_clearly(pki, tmp_path) -> None:
    outcome = ours_only(tls_server(pki.good), tmp_path, "pkcs11", trust(
        pki, tls_cert_file="pkcs11:token=t;object=c", tls_key_file="pkcs11:token=t;object=k"))
    assert outcome.code == 66 and outcome.commands == []
    assert outcome.stderr == [
        "msmtp: cannot set X509 key file pkcs11:token=t;object=k and/or X509 cert file "
        "pkcs11:token=t;object=c for TLS session: PKCS #11 URIs are not supported with OpenSSL",
        FAILED]


def test_min_dh_prime_bits_warns_and_is_ignored(pki, tmp_path) -> None:
    outcome = ours_only(tls_server(pki.good), tmp_path, "dh",
                        trust(pki, tls_min_dh_prime_bits=4096))
    assert outcome.code == 0 and outcome.mails == 1
    assert outcome.stderr == ["msmtp: warning: tls_min_dh_prime_bits is deprecated and ignored "
                              "with OpenSSL; use tls_priorities"]


def test_internationalised_host_name(pki, tmp_path) -> None:
    """msmtp 1.8.23 is built without IDN; we match U-labels to A-labels."""
    outcome = ours_only(tls_server(pki.idn), tmp_path, "idn",
                        trust(pki, tls_host_override="BÜCHER.example"))
    assert outcome.code == 0 and outcome.mails == 1, outcome.stderr
    wrong = ours_only(tls_server(pki.idn), tmp_path, "idn-wrong",
                      trust(pki, tls_host_override="bucher.example"))
    assert wrong.code == 69 and wrong.commands == STARTTLS_ONLY


def test_log_line_says_tls_on(pki, tmp_path) -> None:
    log = tmp_path / "log"
    outcome = ours_only(tls_server(pki.good), tmp_path, "log", trust(pki, logfile=log))
    assert outcome.code == 0
    assert " tls=on " in log.read_text()
    failed = ours_only(tls_server(pki.expired), tmp_path, "log2", trust(pki, logfile=log))
    assert failed.code == 69
    line = log.read_text().splitlines()[-1]
    assert " tls=on " in line and "exitcode=EX_UNAVAILABLE" in line
    assert "errormsg='TLS certificate verification failed: The certificate is NOT trusted." \
        in line


def test_serverinfo_reports_connection_failure_before_tls_files(tmp_path) -> None:
    """--serverinfo connects before reading the TLS files (msmtp's order): a dead
    server is reported as such; sendmail mode reads the files first."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    rc = write_rc(tmp_path, "dead", port, {"tls_trust_file": "/nonexistent"})
    info = run_program(ours_command(), ours_env({}), rc, ["--serverinfo"])
    assert info.returncode == 75
    assert info.stderr.decode().startswith(f"msmtp: cannot connect to 127.0.0.1, port {port}")
    send = run_program(ours_command(), ours_env({}), rc, ["r@example.org"])
    assert send.returncode == 66
    assert b"cannot set X509 trust file /nonexistent" in send.stderr


def test_no_openssl_without_tls(tmp_path) -> None:
    """A plain session never loads pyOpenSSL (start-up cost)."""
    with RecordingServer() as server:
        rc = write_rc(tmp_path, "plain", server.port, {"tls": "off"})
        script = (
            "import sys, runpy\n"
            f"sys.argv = ['msmtp', '-C', {str(rc)!r}, 'r@example.org']\n"
            "try:\n    runpy.run_module('msmtp_twisted', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "sys.stderr.write(f'OPENSSL={\"OpenSSL\" in sys.modules} "
            "TLS={\"msmtp_twisted.tls\" in sys.modules}\\n')\n")
        proc = subprocess.run([*ours_command()[:1], "-c", script], input=MAIL,
                              capture_output=True, timeout=RUN_TIMEOUT,
                              env=ours_env({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}))
        server.wait_idle()
    assert b"OPENSSL=False TLS=False" in proc.stderr, proc.stderr
    assert len(server.messages) == 1


def test_concurrent_library_connections_keep_their_state(pki) -> None:
    """One ClientTLS for several connections: each has its own verdict."""
    from msmtp_twisted.tls.creator import ClientTLS
    from msmtp_twisted.tls.options import TLSOptions

    creator = ClientTLS(TLSOptions("localhost", trust_file=str(pki.ca.cert)))
    states = []
    creator.on_connection = states.append

    class FakeTLSProtocol:
        def failVerification(self, reason: Any) -> None:
            self.failed = reason

        def connectionLost(self, reason: Any) -> None:
            pass

    conns = [creator.clientConnectionForTLS(FakeTLSProtocol()) for _ in range(3)]
    assert len(states) == 3 and len({id(s) for s in states}) == 3
    assert all(creator.state_of(c) is s for c, s in zip(conns, states, strict=True))


def test_threads_left_behind() -> None:
    # the servers of this module must all be gone (each test stops its own)
    assert not [t for t in threading.enumerate() if t.name.startswith("broken-tls")
                and t.is_alive() and not t.daemon]
