"""SASL end to end: our msmtp CLI against an SMTP server that really verifies SASL.

The server (tests/servers/saslserver.py) keeps SCRAM StoredKey/ServerKey, checks client
proofs, computes the TLS channel binding from *its own* side of the connection
(pyOpenSSL: ``tls-exporter`` on TLS 1.3, ``tls-unique`` = the client's Finished on TLS
1.2), checks OAuth tokens and TLS client certificates, and can misbehave on purpose
(wrong server signature, 235 without ``v=``, ``e=`` errors, malformed challenges,
absurd iteration counts, foreign nonces, endless challenges, a man-in-the-middle's
channel binding).

Where Debian's msmtp 1.8.23 can do the same thing (it has no SCRAM -PLUS), it runs
against the same kind of server, to compare the wire (or, where it differs, to record
what it does).  Every config is mode 0600, trusts the test CA only, ``timeout 5``;
every server lives on 127.0.0.1 with a 5 s I/O bound.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import ours_command, ours_env
from tests.servers.base import ThreadedServer
from tests.servers.msmtp import MsmtpResult, run_msmtp, write_config
from tests.servers.saslserver import AuthAttempt, SaslServer, SaslSession
from tests.servers.tlspki import PKI

pytestmark = pytest.mark.timeout(60)

USER = "joe@example.com"
PASSWORD = "Pa55-w0rd-S3cr3t!xyz"
TOKEN = "ya29.A0ARrdaM-t0k3n_Value.4242"
RCPT = "rcpt@example.org"
RUN_TIMEOUT = 15.0
#: anything a refused SASL exchange may take (it should take well under a second)
QUICK = 5.0

DELIVERED_STARTTLS = ["EHLO localhost", "STARTTLS", "EHLO localhost"]
ENVELOPE = ["MAIL FROM:<a@example.com>", f"RCPT TO:<{RCPT}>", "DATA", "QUIT"]



# ------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    maker = PKI(tmp_path_factory.mktemp("sasl-pki"))
    ca = maker.ca("SASL Test CA")
    return SimpleNamespace(ca=ca, leaf=maker.leaf(ca, "localhost"),
                           client=maker.leaf(ca, "client", client=True))


@pytest.fixture
def sasl(server_factory: Callable[..., Any], pki: SimpleNamespace) -> Callable[..., SaslServer]:
    """``sasl(**kwargs)``: a started SaslServer knowing USER/PASSWORD and USER/TOKEN."""
    def make(**kwargs: Any) -> SaslServer:
        kwargs.setdefault("users", {USER: PASSWORD})
        kwargs.setdefault("tokens", {USER: TOKEN})
        kwargs.setdefault("cert", pki.leaf)
        kwargs.setdefault("io_timeout", 5.0)
        return server_factory(SaslServer, **kwargs)
    return make


@dataclass
class Run(MsmtpResult):
    session: SaslSession | None = None

    @property
    def lines(self) -> list[str]:
        return self.stderr_lines

    @property
    def attempt(self) -> AuthAttempt:
        assert self.session is not None and self.session.auth, "no AUTH attempt recorded"
        return self.session.auth[-1]

    @property
    def commands(self) -> list[str]:
        return self.session.commands if self.session is not None else []


@pytest.fixture
def run(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Run]:
    """``run(server, who="ours"|"real", args=(RCPT,), via=None, **settings)``: one msmtp
    run; ``settings`` are msmtprc settings, ``via`` a proxy in front of ``server`` to
    connect to instead.  Returns what happened, with the server's record of this
    connection (the server is left idle)."""
    counter = iter(range(1_000_000))
    home = tmp_path / "home"
    home.mkdir()

    def go(server: SaslServer, who: str = "ours", args: Sequence[str] = (RCPT,),
           via: ThreadedServer | None = None, **settings: Any) -> Run:
        settings.setdefault("timeout", 5)
        config = write_config(tmp_path, via or server, name=f"msmtprc-{next(counter)}",
                              **settings)
        assert config.stat().st_mode & 0o777 == 0o600
        if who == "ours":
            command, env = ours_command(), ours_env({})
        else:  # skips (fails under CI=true) without msmtp 1.8.23
            command, env = [request.getfixturevalue("real_msmtp")], None
        before = len(server.sessions)
        res = run_msmtp(command, config, args, timeout=RUN_TIMEOUT, env=env, home=home)
        for srv in (via, server):
            if srv is not None:
                srv.wait_idle(timeout=5)
                srv.raise_errors()
        session = server.sessions[before] if len(server.sessions) > before else None
        text = res.stderr.replace(str(config), "CFG")
        assert "Traceback" not in text and "Traceback" not in res.stdout, text
        return Run(res.returncode, res.stdout, text, res.seconds, session=session)

    return go


def tls(pki: SimpleNamespace, implicit: bool = False, **more: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"tls": True, "tls_trust_file": pki.ca.cert}
    if implicit:
        settings["tls_starttls"] = False
    settings.update(more)
    return settings


def creds(method: str, secret: str = PASSWORD, user: str | None = USER) -> dict[str, Any]:
    return {"auth": method, "user": user, "password": secret}


def assert_no_mail(r: Run) -> None:
    assert r.session is not None
    assert not r.session.mail_received, r.commands
    assert not r.session.messages
    assert not any(c.upper().startswith(("RCPT", "DATA")) for c in r.commands), r.commands


def assert_delivered(r: Run, starttls: bool = True) -> None:
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.session is not None and len(r.session.messages) == 1
    assert r.commands[-4:] == ENVELOPE
    if starttls:
        assert r.commands[:3] == DELIVERED_STARTTLS


def scram_fields(message: bytes) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.decode().split(","))


# ------------------------------------------------------------------------------------------
# SCRAM -PLUS: channel binding verified by the server


TLS_VERSIONS = {
    # name: (server kwargs, client settings, expected protocol, binding type, binding length)
    "tls1.3": ({}, {}, "TLSv1.3", "tls-exporter", 32),
    "tls1.2-server-max": ({"tls_max_version": "1.2"}, {}, "TLSv1.2", "tls-unique", 12),
    "tls1.2-client-priorities": ({}, {"tls_priorities": "NORMAL:-VERS-TLS1.3"}, "TLSv1.2",
                                 "tls-unique", 12),
}


@pytest.mark.parametrize("version", list(TLS_VERSIONS))
@pytest.mark.parametrize("transport", ["starttls", "implicit"])
@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_scram_plus_channel_binding(sasl, run, pki, mech, transport, version):
    server_kw, client_kw, protocol, cb_type, cb_len = TLS_VERSIONS[version]
    srv = sasl(mechanisms=[mech], tls=transport, **server_kw)
    r = run(srv, **tls(pki, implicit=transport == "implicit", **client_kw),
            **creds(mech.lower()))
    assert_delivered(r, starttls=transport == "starttls")
    assert r.session.tls_version == protocol
    a = r.attempt
    assert a.command == f"AUTH {mech}"  # SCRAM waits for the server's first 334
    assert a.result == "success" and a.authcid == USER
    assert a.gs2_header == f"p={cb_type},,".encode()
    assert a.channel_binding is not None
    assert a.channel_binding[0] == cb_type and len(a.channel_binding[1]) == cb_len
    assert a.cb_verified
    # the client's c= is exactly the GS2 header plus the binding the server computed
    c = base64.b64decode(scram_fields(a.client_messages[1])["c"])
    assert c == a.gs2_header + a.channel_binding[1]
    assert a.client_messages[2] == b""  # the empty answer to the server-final v=


@pytest.mark.parametrize("offered, server_kw, expect, cb_type", [
    (["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN"], {},
     "SCRAM-SHA-256-PLUS", "tls-exporter"),
    (["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "LOGIN"], {},
     "SCRAM-SHA-1-PLUS", "tls-exporter"),
    (["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"], {"tls_max_version": "1.2"},
     "SCRAM-SHA-256-PLUS", "tls-unique"),
    (["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"], {"tls": "implicit", "tls_max_version": "1.2"},
     "SCRAM-SHA-256-PLUS", "tls-unique"),
])
def test_auth_on_with_tls_picks_plus(sasl, run, pki, offered, server_kw, expect, cb_type):
    server_kw = {"tls": "starttls", **server_kw}
    srv = sasl(mechanisms=offered, **server_kw)
    implicit = server_kw["tls"] == "implicit"
    r = run(srv, **tls(pki, implicit=implicit), **creds("on"))
    assert_delivered(r, starttls=not implicit)
    assert r.attempt.mechanism == expect
    assert r.attempt.channel_binding[0] == cb_type and r.attempt.cb_verified


def test_auth_on_with_tls_without_plus_offered(sasl, run, pki, real_msmtp):
    """Only non-PLUS SCRAM offered: ours uses SCRAM-SHA-256 (the manual's order).

    Our GS2 flag is ``n`` (RFC 5802 would allow ``y``: "I could bind, you don't offer
    it"; GNU SASL sends ``n`` too).  Debian's 1.8.23 picks PLAIN here instead: with TLS
    it prefers PLAIN to non-PLUS SCRAM (recorded, not required of us)."""
    srv = sasl(mechanisms=["SCRAM-SHA-256", "PLAIN"], tls="starttls")
    ours = run(srv, **tls(pki), **creds("on"))
    assert_delivered(ours)
    assert ours.attempt.mechanism == "SCRAM-SHA-256"
    assert ours.attempt.gs2_header in (b"n,,", b"y,,")  # today: n
    real = run(srv, "real", **tls(pki), **creds("on"))
    assert_delivered(real)
    assert real.attempt.mechanism == "PLAIN"


def test_explicit_non_plus_next_to_plus_is_not_a_downgrade(sasl, run, pki):
    """``auth scram-sha-256`` while the server offers -PLUS too: the ``y`` flag would make
    the server refuse (it must suspect a downgrade), so the client sends ``n``."""
    srv = sasl(mechanisms=["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], tls="starttls")
    r = run(srv, **tls(pki), **creds("scram-sha-256"))
    assert_delivered(r)
    assert r.attempt.mechanism == "SCRAM-SHA-256" and r.attempt.gs2_header == b"n,,"


@pytest.mark.parametrize("style", ["challenge", "535"])
@pytest.mark.parametrize("version", ["tls1.3", "tls1.2-server-max"])
def test_channel_binding_mismatch(sasl, run, pki, version, style):
    """A TLS-terminating man in the middle sees other binding data: the server refuses
    (``e=channel-bindings-dont-match`` in a 334, or a plain 535) and nothing is sent."""
    server_kw, _, _, cb_type, _ = TLS_VERSIONS[version]
    srv = sasl(mechanisms=["SCRAM-SHA-256-PLUS"], tls="starttls", misbehave="cb-mismatch",
               scram_error_style=style, **server_kw)
    r = run(srv, **tls(pki), **creds("scram-sha-256-plus"))
    assert r.returncode == 77, r.stderr
    assert_no_mail(r)
    a = r.attempt
    assert a.channel_binding[0] == cb_type and not a.cb_verified
    assert a.result == "failure" and a.reason == "e=channel-bindings-dont-match"
    if style == "challenge":
        assert r.lines[0] == ("msmtp: authentication failed: server reported error: "
                              "channel-bindings-dont-match (method SCRAM-SHA-256-PLUS)")
    else:
        assert r.lines[:2] == ["msmtp: authentication failed (method SCRAM-SHA-256-PLUS)",
                               "msmtp: server message: 535 5.7.8 Error: authentication failed"]
    assert r.lines[-1] == "msmtp: could not send mail (account default from CFG)"


class TLSTerminatingProxy(ThreadedServer):
    """A man in the middle the client trusts (its certificate comes from the client's
    CA): TLS from the client ends here, a second TLS connection goes on to ``target``
    (implicit TLS both ways) and the plain text is relayed.  Each leg has its own
    channel binding."""

    thread_name = "tls-mitm"

    def __init__(self, target: SaslServer, pki: SimpleNamespace,
                 max_version: ssl.TLSVersion | None = None) -> None:
        # generous: a relay that times out ends both legs, and the client then sees a
        # broken TLS connection (74) instead of the server's refusal (77) -- seen once
        # with 5 s on a loaded two-core machine
        super().__init__(io_timeout=15.0)
        self.target = target
        self.front = pki.leaf.server_context(maximum=max_version)
        self.back = ssl.create_default_context(cafile=str(pki.ca.cert))
        if max_version is not None:  # same protocol on both legs: same binding type
            self.back.maximum_version = max_version
        self.relayed = 0

    def handle(self, conn: socket.socket) -> None:
        client = self.front.wrap_socket(conn, server_side=True)
        self.register_socket(client)
        raw = socket.create_connection(self.target.address, timeout=self.io_timeout)
        upstream = self.back.wrap_socket(raw, server_hostname="localhost")
        self.register_socket(upstream)

        # One thread relays both ways: an SSL object must not be read in one thread
        # while another writes to it (OpenSSL may process a TLS 1.3 ticket or key
        # update in the read); two pump threads lost a QUIT once in a few thousand runs.
        other = {client: upstream, upstream: client}
        for sock in other:
            sock.settimeout(self.io_timeout)
        open_ = set(other)
        try:
            while open_:
                ready = [s for s in open_ if s.pending()] or \
                    select.select(list(open_), [], [], self.io_timeout)[0]
                if not ready:
                    break
                for src in ready:
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        self.relayed += len(data)
                        with contextlib.suppress(OSError):
                            other[src].sendall(data)
                        continue
                    open_.discard(src)
                    with contextlib.suppress(OSError):
                        other[src].shutdown(socket.SHUT_RDWR)
        finally:
            for sock in (client, upstream):
                self.unregister_socket(sock)
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2],
                         ids=["tls1.3", "tls1.2"])
@pytest.mark.parametrize("mech, ok", [("scram-sha-256-plus", False), ("scram-sha-256", True),
                                      ("scram-sha-1-plus", False)])
def test_real_tls_mitm(sasl, run, pki, server_factory, mech, ok, max_version):
    """Through a trusted TLS-terminating proxy: -PLUS fails (the server's binding is of
    the proxy's connection), the same exchange without binding goes through."""
    srv = sasl(mechanisms=[mech.upper()], tls="implicit")
    proxy = server_factory(TLSTerminatingProxy, srv, pki, max_version)
    r = run(srv, via=proxy, **tls(pki, implicit=True), **creds(mech))
    assert proxy.relayed > 0
    if ok:
        assert_delivered(r, starttls=False)
        return
    assert r.returncode == 77, r.stderr
    assert r.lines[0] == ("msmtp: authentication failed: server reported error: "
                          f"channel-bindings-dont-match (method {mech.upper()})")
    assert r.attempt.result == "failure" and not r.attempt.cb_verified
    assert r.attempt.channel_binding[0] == ("tls-unique" if max_version else "tls-exporter")
    assert_no_mail(r)


def test_plus_without_tls_is_refused_before_auth(sasl, run):
    srv = sasl(mechanisms=["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    r = run(srv, **creds("scram-sha-256-plus"))
    assert r.returncode == 69
    assert r.lines[0] == ("msmtp: authentication method SCRAM-SHA-256-PLUS needs TLS "
                          "channel binding information")
    assert not any(c.startswith("AUTH") for c in r.commands)
    assert_no_mail(r)


# ------------------------------------------------------------------------------------------
# SCRAM servers that misbehave (or refuse)

SCRAM_FAILURES = {
    # id: (server kwargs, client password, exit code, expected stderr first line)
    "bad-signature": ({"misbehave": "bad-signature"}, PASSWORD, 77,
                      "msmtp: authentication failed: server signature mismatch "
                      "(method SCRAM-SHA-256)"),
    "235-without-v": ({"misbehave": "no-server-final"}, PASSWORD, 77,
                      "msmtp: authentication failed: server did not prove it knows the "
                      "password (method SCRAM-SHA-256)"),
    "e=invalid-proof-wrong-password": ({}, "wrong-password", 77,
                                       "msmtp: authentication failed: server reported error: "
                                       "invalid-proof (method SCRAM-SHA-256)"),
    "e=invalid-proof-misbehaving": ({"misbehave": "server-error"}, PASSWORD, 77,
                                    "msmtp: authentication failed: server reported error: "
                                    "invalid-proof (method SCRAM-SHA-256)"),
    "e=other-error": ({"misbehave": "server-error", "scram_error": "other-error"}, PASSWORD,
                      77, "msmtp: authentication failed: server reported error: other-error "
                          "(method SCRAM-SHA-256)"),
    "535-wrong-password": ({"scram_error_style": "535"}, "wrong-password", 77,
                           "msmtp: authentication failed (method SCRAM-SHA-256)"),
    "malformed-challenge": ({"misbehave": "malformed-challenge"}, PASSWORD, 76,
                            "msmtp: authentication method SCRAM-SHA-256: server sent invalid "
                            "challenge"),
    "foreign-nonce": ({"misbehave": "bad-nonce"}, PASSWORD, 76,
                      "msmtp: authentication method SCRAM-SHA-256: server sent invalid nonce"),
    "iterations-2**32-1": ({"misbehave": "huge-iterations"}, PASSWORD, 76,
                           "msmtp: authentication method SCRAM-SHA-256: server sent excessive "
                           "iteration count"),
    "iterations-10**20": ({"misbehave": "huge-iterations", "huge_iterations": 10**20},
                          PASSWORD, 76, "msmtp: authentication method SCRAM-SHA-256: server "
                                        "sent excessive iteration count"),
}


@pytest.mark.parametrize("case", list(SCRAM_FAILURES))
def test_scram_failures(sasl, run, case):
    server_kw, password, code, first = SCRAM_FAILURES[case]
    srv = sasl(mechanisms=["SCRAM-SHA-256"], **server_kw)
    r = run(srv, **creds("scram-sha-256", password))
    assert r.returncode == code, r.stderr
    assert r.lines[0] == first
    assert r.lines[-1] == "msmtp: could not send mail (account default from CFG)"
    assert r.seconds < QUICK
    assert_no_mail(r)
    assert r.commands == ["EHLO localhost", "AUTH SCRAM-SHA-256"]


@pytest.mark.parametrize("misbehave, first", [
    ("bad-signature", "server signature mismatch"),
    ("no-server-final", "server did not prove it knows the password"),
])
def test_scram_plus_server_must_prove_itself(sasl, run, pki, misbehave, first):
    srv = sasl(mechanisms=["SCRAM-SHA-1-PLUS"], tls="implicit", misbehave=misbehave)
    r = run(srv, **tls(pki, implicit=True), **creds("scram-sha-1-plus"))
    assert r.returncode == 77, r.stderr
    assert r.lines[0] == f"msmtp: authentication failed: {first} (method SCRAM-SHA-1-PLUS)"
    assert r.attempt.cb_verified  # the binding was right: only the server's proof is missing
    assert_no_mail(r)


@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_scram_wrong_signature_vs_real_msmtp(sasl, run):
    """Debian's 1.8.23 also refuses, but through GNU SASL: exit 70 (EX_SOFTWARE) and
    "GNU SASL: Error authenticating user"; ours: 77 with the method named."""
    srv = sasl(mechanisms=["SCRAM-SHA-256"], misbehave="bad-signature")
    ours = run(srv, **creds("scram-sha-256"))
    real = run(srv, "real", **creds("scram-sha-256"))
    for r in (ours, real):
        assert_no_mail(r)
        assert r.commands == ["EHLO localhost", "AUTH SCRAM-SHA-256"]
    assert ours.returncode == 77
    assert real.returncode != 0
    assert real.lines == ["msmtp: GNU SASL: Error authenticating user",
                          "msmtp: could not send mail (account default from CFG)"]
    assert real.returncode == 70  # recorded: 1.8.23 reports SASL library errors as 70


ENDLESS = {
    # mechanism: client settings
    "LOGIN": creds("login"),
    "PLAIN": creds("plain"),
    "CRAM-MD5": creds("cram-md5"),
    "SCRAM-SHA-256": creds("scram-sha-256"),
    "XOAUTH2": creds("xoauth2", TOKEN),
    "OAUTHBEARER": creds("oauthbearer", TOKEN),
}


@pytest.mark.parametrize("mech", list(ENDLESS))
def test_endless_challenges_are_bounded(sasl, run, mech):
    """The server answers every client message with yet another 334 (up to 50): the
    client must give up by itself, at once, after at most as many answers as its
    mechanism has steps."""
    srv = sasl(mechanisms=[mech], misbehave="endless-challenges", max_challenges=50)
    r = run(srv, **ENDLESS[mech])
    assert r.returncode in (76, 77), r.stderr
    assert r.lines[0].startswith(f"msmtp: authentication method {mech}: ") \
        or f"(method {mech})" in r.lines[0], r.lines
    assert r.seconds < QUICK
    assert len(r.attempt.responses) <= 2
    assert len(r.attempt.challenges) <= 3
    assert_no_mail(r)


def test_cram_md5_empty_challenge_fails_fast(sasl, run):
    """``334 `` (nothing to digest) answers AUTH CRAM-MD5: refuse at once.  Recorded:
    Debian's 1.8.23 spins at 100% CPU forever here, ``timeout`` does not stop it (so it
    is not run)."""
    srv = sasl(mechanisms=["CRAM-MD5"], misbehave="endless-challenges", endless_challenge=b"")
    r = run(srv, **creds("cram-md5"))
    assert r.returncode == 76, r.stderr
    assert r.lines[0] == "msmtp: authentication method CRAM-MD5: server sent invalid challenge"
    assert r.seconds < QUICK
    assert r.attempt.responses == []
    assert_no_mail(r)


@pytest.mark.parametrize("mech, settings", [
    ("LOGIN", creds("login")), ("CRAM-MD5", creds("cram-md5")),
    ("XOAUTH2", creds("xoauth2", TOKEN)), ("OAUTHBEARER", creds("oauthbearer", TOKEN)),
])
def test_malformed_challenge_other_mechanisms(sasl, run, mech, settings):
    srv = sasl(mechanisms=[mech], misbehave="malformed-challenge")
    r = run(srv, **settings)
    assert r.returncode == 76, r.stderr
    assert r.lines[0] == f"msmtp: authentication method {mech}: server sent invalid challenge"
    assert r.seconds < QUICK
    assert_no_mail(r)


# ------------------------------------------------------------------------------------------
# OAUTHBEARER and XOAUTH2


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.mark.parametrize("source", ["password", "passwordeval"])
@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
def test_oauth_success(sasl, run, pki, token_file, mech, source):
    srv = sasl(mechanisms=["PLAIN", mech], tls="starttls")
    settings = {"auth": mech.lower(), "user": USER}
    if source == "password":
        settings["password"] = TOKEN
    else:
        settings["passwordeval"] = f"cat {token_file}"
    r = run(srv, **tls(pki), **settings)
    assert_delivered(r)
    a = r.attempt
    assert a.mechanism == mech and a.result == "success" and a.authcid == USER
    assert a.oauth_fields["auth"] == f"Bearer {TOKEN}"
    if mech == "OAUTHBEARER":
        # msmtp's form: initial response inline, with host and port (RFC 7628 §3.1)
        assert a.initial is not None and a.command.startswith("AUTH OAUTHBEARER ")
        assert a.initial == (f"n,a={USER},\x01host=127.0.0.1\x01port={srv.port}\x01"
                             f"auth=Bearer {TOKEN}\x01\x01").encode()
        assert a.challenges == []
    else:
        # msmtp's form: AUTH XOAUTH2 alone, the message after the empty 334
        assert a.command == "AUTH XOAUTH2" and a.initial is None
        assert a.client_messages == [f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode()]


OAUTH_ERRORS = {
    "OAUTHBEARER": ({"status": "invalid_token", "schemes": "bearer",
                     "scope": "https://mail.example.com/"}, b"\x01"),
    "XOAUTH2": ({"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"},
                b""),
}


@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
def test_oauth_bad_token(sasl, run, pki, mech):
    """The JSON error challenge, the dummy response (RFC 7628 §3.2.3: ``%x01``; XOAUTH2:
    empty), then 535: exit 77 with msmtp's message, the server's reply and its error."""
    error, dummy = OAUTH_ERRORS[mech]
    srv = sasl(mechanisms=[mech], tls="starttls")
    r = run(srv, **tls(pki), **creds(mech.lower(), "expired-token"))
    assert r.returncode == 77, r.stderr
    assert r.lines[0] == f"msmtp: authentication failed (method {mech})"
    assert r.lines[1] == "msmtp: server message: 535 5.7.8 Username and Password not accepted"
    json_lines = [line for line in r.lines if "{" in line]
    assert len(json_lines) == 1, r.lines
    assert json.loads(json_lines[0][json_lines[0].index("{"):]) == error
    assert r.lines[-1] == "msmtp: could not send mail (account default from CFG)"
    a = r.attempt
    assert a.challenges[-1] == json.dumps(error).encode()
    assert a.client_messages[-1] == dummy
    assert a.responses[-1] == base64.b64encode(dummy).decode()
    assert_no_mail(r)


@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_oauth_wire_matches_real_msmtp(sasl, run, pki, mech):
    """Same server (so the same port in OAUTHBEARER's message): same commands, same
    decoded client messages, same challenges."""
    srv = sasl(mechanisms=[mech], tls="starttls")
    ours = run(srv, **tls(pki), **creds(mech.lower(), TOKEN))
    real = run(srv, "real", **tls(pki), **creds(mech.lower(), TOKEN))
    assert_delivered(ours)
    assert_delivered(real)
    assert ours.commands == real.commands
    assert ours.attempt.command == real.attempt.command
    assert ours.attempt.client_messages == real.attempt.client_messages
    assert ours.attempt.responses == real.attempt.responses
    assert ours.attempt.challenges == real.attempt.challenges


@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_oauth_bad_token_vs_real_msmtp(sasl, run, pki, mech):
    """Recorded differences: 1.8.23 does not show the server's JSON error, and answers
    OAUTHBEARER's error challenge with an empty line instead of RFC 7628's ``%x01``."""
    srv = sasl(mechanisms=[mech], tls="starttls")
    ours = run(srv, **tls(pki), **creds(mech.lower(), "expired-token"))
    real = run(srv, "real", **tls(pki), **creds(mech.lower(), "expired-token"))
    assert ours.returncode == real.returncode == 77
    assert ours.commands == real.commands
    assert ours.attempt.client_messages[0] == real.attempt.client_messages[0]
    assert real.lines == [f"msmtp: authentication failed (method {mech})",
                          "msmtp: server message: 535 5.7.8 Username and Password not accepted",
                          "msmtp: could not send mail (account default from CFG)"]
    assert [line for line in ours.lines if "{" not in line] == real.lines
    assert real.attempt.client_messages[-1] == b""  # 1.8.23, also for OAUTHBEARER


# ------------------------------------------------------------------------------------------
# EXTERNAL with a TLS client certificate


def _external_server(sasl: Callable[..., SaslServer], pki: SimpleNamespace) -> SaslServer:
    return sasl(mechanisms=["EXTERNAL", "PLAIN"], tls="starttls", client_ca=pki.ca,
                external_authzids=[USER])


def _cert(pki: SimpleNamespace) -> dict[str, Any]:
    return {"tls_cert_file": pki.client.cert, "tls_key_file": pki.client.key}


@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_external_with_user_is_the_authzid(sasl, run, pki):
    srv = _external_server(sasl, pki)
    r = run(srv, **tls(pki), **_cert(pki), auth="external", user=USER)
    assert_delivered(r)
    assert r.session.client_cert_cn == "client"
    a = r.attempt
    assert a.command == "AUTH EXTERNAL"
    assert a.client_messages == [USER.encode()] and a.authzid == USER
    assert a.result == "success" and a.authcid == USER
    real = run(srv, "real", **tls(pki), **_cert(pki), auth="external", user=USER)
    assert_delivered(real)
    assert (real.commands, real.attempt.command, real.attempt.responses) == \
        (r.commands, a.command, a.responses)


def test_external_without_user_sends_the_empty_response(sasl, run, pki):
    """RFC 4422 App. A / RFC 4954: the empty authzid is an empty response line (after
    ``334 ``), and the client then waits for 235 -- it does not send MAIL as if the
    334 were a success."""
    srv = _external_server(sasl, pki)
    r = run(srv, **tls(pki), **_cert(pki), auth="external")
    assert_delivered(r)
    a = r.attempt
    assert a.command == "AUTH EXTERNAL" and a.challenges == [b""]
    assert a.responses == [""] and a.client_messages == [b""]
    assert a.result == "success" and a.authcid == "client"  # the certificate's identity
    assert r.session.sent.count(b"235 ") == 1
    assert r.commands == [*DELIVERED_STARTTLS, "AUTH EXTERNAL", *ENVELOPE]


@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_external_without_user_real_msmtp(sasl, run, pki):
    """Recorded: Debian's 1.8.23 sends ``AUTH EXTERNAL``, gets ``334 `` and never sends
    the empty response: its next line is ``MAIL FROM:...``, which the server takes as the
    (undecodable) SASL response.  Not required to succeed."""
    srv = _external_server(sasl, pki)
    real = run(srv, "real", **tls(pki), **_cert(pki), auth="external")
    assert real.commands[:4] == [*DELIVERED_STARTTLS, "AUTH EXTERNAL"]
    a = real.attempt
    assert a.challenges == [b""]
    assert a.responses and a.responses[0] != ""  # no empty response line
    assert a.responses[0].startswith("MAIL FROM:")
    assert a.result != "success"
    assert real.returncode != 0


def test_external_without_certificate_is_refused(sasl, run, pki):
    srv = _external_server(sasl, pki)
    r = run(srv, **tls(pki), auth="external", user=USER)
    assert r.returncode == 77, r.stderr
    assert r.lines[:2] == ["msmtp: authentication failed (method EXTERNAL)",
                           "msmtp: server message: 535 5.7.1 No client certificate"]
    assert_no_mail(r)


# ------------------------------------------------------------------------------------------
# mechanisms we cannot run, mechanisms the server lacks, no secure mechanism


# GSSAPI and NTLM, with their packages missing and present: test_auth_gssapi_ntlm.py


REFUSALS = {
    # id: (offered, client settings, exit code, stderr)
    "explicit-not-offered": (["PLAIN", "LOGIN"], creds("cram-md5"), 69,
                             ["msmtp: the server does not support authentication method "
                              "CRAM-MD5",
                              "msmtp: could not send mail (account default from CFG)"]),
    "auth-on-no-tls-plain-login-only": (["PLAIN", "LOGIN"], creds("on"), 69,
                                        ["msmtp: cannot use a secure authentication method",
                                         "msmtp: could not send mail (account default from "
                                         "CFG)"]),
    "no-auth-offered": ([], creds("on"), 69,
                        ["msmtp: the server does not support authentication",
                         "msmtp: could not send mail (account default from CFG)"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_refusals_match_real_msmtp(sasl, run, case):
    offered, settings, code, stderr = REFUSALS[case]
    srv = sasl(mechanisms=offered)
    ours = run(srv, **settings)
    real = run(srv, "real", **settings)
    assert (ours.returncode, ours.lines) == (code, stderr)
    assert (real.returncode, real.lines) == (code, stderr)
    assert ours.commands == real.commands
    assert_no_mail(ours)


@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_auth_on_without_tls_only_plus_offered(sasl, run):
    """Without TLS a -PLUS mechanism cannot be used: 69, no AUTH.  Recorded: 1.8.23 finds
    "SCRAM-SHA-256" inside "SCRAM-SHA-256-PLUS" (substring test), sends
    ``AUTH SCRAM-SHA-256``, gets 504 and exits 77."""
    srv = sasl(mechanisms=["SCRAM-SHA-256-PLUS"])
    ours = run(srv, **creds("on"))
    assert ours.returncode == 69
    assert ours.lines[0] == "msmtp: cannot use a secure authentication method"
    assert not any(c.startswith("AUTH") for c in ours.commands)
    real = run(srv, "real", **creds("on"))
    assert real.returncode == 77
    assert real.commands == ["EHLO localhost", "AUTH SCRAM-SHA-256"]


# ------------------------------------------------------------------------------------------
# password mechanisms: ours and GNU SASL (via the real msmtp) against the same server


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"])
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_password_mechanisms_match_real_msmtp(sasl, run, pki, mech):
    srv = sasl(mechanisms=[mech], tls="starttls")
    ours = run(srv, **tls(pki), **creds(mech.lower()))
    real = run(srv, "real", **tls(pki), **creds(mech.lower()))
    for r in (ours, real):
        assert_delivered(r)
        assert r.attempt.result == "success" and r.attempt.authcid == USER
    assert ours.commands == real.commands
    assert len(ours.attempt.client_messages) == len(real.attempt.client_messages)
    if mech in ("PLAIN", "LOGIN"):
        assert ours.attempt.client_messages == real.attempt.client_messages
    elif mech == "CRAM-MD5":  # the digest depends on the server's random challenge
        assert ours.attempt.client_messages[0].split()[0] == USER.encode()
    else:  # SCRAM: everything but the random nonces and the proof
        o, rl = ours.attempt.client_messages, real.attempt.client_messages
        assert o[0].rsplit(b",r=", 1)[0] == rl[0].rsplit(b",r=", 1)[0] == f"n,,n={USER}".encode()
        assert scram_fields(o[1])["c"] == scram_fields(rl[1])["c"] == "biws"
        assert o[2] == rl[2] == b""


WEIRD_USER = "we=ird,user@example.com"


@pytest.mark.parametrize("mech, secret", [("SCRAM-SHA-256", PASSWORD), ("SCRAM-SHA-1", PASSWORD),
                                          ("OAUTHBEARER", TOKEN)])
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_user_name_escaping(sasl, run, mech, secret):
    """RFC 5802 §5.1 / RFC 7628 §3.1 (GS2 ``saslname``): ``=`` and ``,`` in the name go as
    ``=3D``/``=2C``; the server unescapes them and finds the user.

    Recorded: 1.8.23 (GNU SASL) escapes for SCRAM, but its built-in OAUTHBEARER puts
    the name in ``a=`` unescaped, which breaks the GS2 header (our server: 501, exit 77)."""
    srv = sasl(mechanisms=[mech], users={WEIRD_USER: PASSWORD}, tokens={WEIRD_USER: TOKEN})
    ours = run(srv, **creds(mech.lower(), secret, WEIRD_USER))
    real = run(srv, "real", **creds(mech.lower(), secret, WEIRD_USER))
    assert_delivered(ours, starttls=False)
    assert ours.attempt.authcid == WEIRD_USER
    escaped = b"we=3Dird=2Cuser@example.com"
    if mech == "OAUTHBEARER":
        assert ours.attempt.client_messages[0].startswith(b"n,a=" + escaped + b",\x01")
        assert real.returncode == 77
        assert real.attempt.client_messages[0].startswith(
            b"n,a=" + WEIRD_USER.encode() + b",\x01")
        assert_no_mail(real)
    else:
        assert_delivered(real, starttls=False)
        assert real.attempt.authcid == WEIRD_USER
        assert ours.attempt.client_messages[0].startswith(b"n,,n=" + escaped + b",r=")
        assert real.attempt.client_messages[0].startswith(b"n,,n=" + escaped + b",r=")


def test_scram_high_but_sane_iteration_count(sasl, run):
    """A server asking for 200000 iterations (more than RFC 7677's minimum of 4096) is
    served, not refused."""
    srv = sasl(mechanisms=["SCRAM-SHA-256"], iterations=200_000)
    r = run(srv, **creds("scram-sha-256"))
    assert_delivered(r, starttls=False)
    assert b",i=200000" in r.attempt.challenges[1]


@pytest.mark.parametrize("configured, stored", [
    ("I\u00adX-pw", "IX-pw"),  # soft hyphen: mapped to nothing (RFC 4013 §2.1)
    ("a\u00a0b", "a b"),  # no-break space: mapped to SPACE
    ("p\u00e4ssw\u00f6rd", "p\u00e4ssw\u00f6rd"),  # non-ASCII, already normalized
], ids=["soft-hyphen", "nbsp", "umlauts"])
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_scram_saslprep_matches_real_msmtp(sasl, run, configured, stored):
    """The server stores the SASLprep'ed password; both clients must prepare theirs."""
    srv = sasl(mechanisms=["SCRAM-SHA-256"], users={USER: stored})
    for who in ("ours", "real"):
        r = run(srv, who, **creds("scram-sha-256", configured))
        assert_delivered(r, starttls=False)


@pytest.mark.parametrize("mech, secret", [("SCRAM-SHA-256", PASSWORD), ("PLAIN", PASSWORD),
                                          ("XOAUTH2", TOKEN)])
@pytest.mark.reference  # runs msmtp 1.8.23 too (run(..., "real"))
def test_silent_server_during_auth_times_out_like_real_msmtp(sasl, run, mech, secret):
    """The server never answers after the AUTH command: ``timeout 1`` ends it.  (Both
    programs run at the same time, each against its own server.)"""
    servers = [sasl(mechanisms=[mech], misbehave="silent") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        ours, real = pool.map(lambda i: run(servers[i], ("ours", "real")[i],
                                            **creds(mech.lower(), secret), timeout=1),
                              range(2))
    assert ours.returncode == real.returncode == 74
    assert ours.lines == real.lines == ["msmtp: network read error: the operation timed out",
                                        "msmtp: could not send mail (account default from CFG)"]
    assert ours.commands == real.commands
    assert 0.9 < ours.seconds < QUICK
    assert_no_mail(ours)


def test_auth_offered_before_starttls_waits_for_tls(sasl, run, pki):
    """AUTH offered in the clear too: the client still authenticates only after
    STARTTLS (with the second EHLO's list), so the binding is that of the TLS session."""
    srv = sasl(mechanisms=["SCRAM-SHA-256-PLUS", "PLAIN"], tls="starttls", auth_before_tls=True)
    r = run(srv, **tls(pki), **creds("on"))
    assert_delivered(r)
    assert r.commands[3] == "AUTH SCRAM-SHA-256-PLUS" and r.attempt.cb_verified


# ------------------------------------------------------------------------------------------
# -d never shows a password or a token


def secret_forms(secret: str) -> set[str]:
    """The secret as it could appear: raw, hex, and every base64 fragment that depends
    only on the secret, whatever its offset in a longer encoded message (3 alignments),
    in standard and URL-safe alphabets."""
    raw = secret.encode()
    forms = {secret, raw.hex(), raw.hex().upper()}
    for offset in range(3):
        tail = raw[offset:]
        whole = len(tail) // 3 * 3
        fragment = base64.b64encode(tail[:whole]).decode()
        assert len(fragment) >= 16
        forms |= {fragment, base64.urlsafe_b64encode(tail[:whole]).decode()}
    return forms


def test_secret_forms_find_embedded_base64():
    for prefix in (b"", b"\0", b"\0u", b"user=joe\x01auth=Bearer "):
        encoded = base64.b64encode(prefix + PASSWORD.encode() + b"\x01\x01").decode()
        assert any(form in encoded for form in secret_forms(PASSWORD)), prefix


DEBUG_CASES = {
    # id: (offered, tls?, client settings, secret, exit code)
    "plain": (["PLAIN"], False, creds("plain"), PASSWORD, 0),
    "login": (["LOGIN"], False, creds("login"), PASSWORD, 0),
    "cram-md5": (["CRAM-MD5"], False, creds("cram-md5"), PASSWORD, 0),
    "scram-sha-256": (["SCRAM-SHA-256"], False, creds("scram-sha-256"), PASSWORD, 0),
    "scram-sha-256-plus": (["SCRAM-SHA-256-PLUS"], True, creds("on"), PASSWORD, 0),
    "oauthbearer": (["OAUTHBEARER"], True, creds("oauthbearer", TOKEN), TOKEN, 0),
    "xoauth2": (["XOAUTH2"], True, creds("xoauth2", TOKEN), TOKEN, 0),
    "plain-wrong-password": (["PLAIN"], False, creds("plain", "Wr0ng-Pa55word-99"),
                             "Wr0ng-Pa55word-99", 77),
    "login-wrong-password": (["LOGIN"], False, creds("login", "Wr0ng-Pa55word-99"),
                             "Wr0ng-Pa55word-99", 77),
    "oauthbearer-bad-token": (["OAUTHBEARER"], True, creds("oauthbearer", "Bad-T0ken-123456"),
                              "Bad-T0ken-123456", 77),
    "xoauth2-bad-token": (["XOAUTH2"], True, creds("xoauth2", "Bad-T0ken-123456"),
                          "Bad-T0ken-123456", 77),
    # the token comes from passwordeval (the command does not contain it)
    "oauthbearer-passwordeval": (["OAUTHBEARER"], True, {"auth": "oauthbearer", "user": USER,
                                                         "passwordeval": "cat TOKEN_FILE"},
                                 TOKEN, 0),
    "plain-passwordeval-wrong": (["PLAIN"], False, {"auth": "plain", "user": USER,
                                                    "passwordeval": "cat TOKEN_FILE"},
                                 TOKEN, 77),
}


@pytest.mark.parametrize("case", list(DEBUG_CASES))
def test_debug_output_hides_secrets(sasl, run, pki, token_file, case):
    offered, use_tls, settings, secret, code = DEBUG_CASES[case]
    if "passwordeval" in settings:
        settings = {**settings,
                    "passwordeval": settings["passwordeval"].replace("TOKEN_FILE",
                                                                     str(token_file))}
    srv = sasl(mechanisms=offered, tls="starttls" if use_tls else None)
    extra = tls(pki) if use_tls else {}
    r = run(srv, args=("-d", RCPT), **extra, **settings)
    assert r.returncode == code, r.stderr
    assert "--> AUTH " in r.stdout  # the trace is there...
    output = r.stdout + r.stderr
    for form in secret_forms(secret):
        assert form not in output, f"-d output shows {form!r}"
    # ...and the secret did go over the wire (not a vacuous check), except for the
    # mechanisms that never send it
    wire = b"".join(r.session.auth[-1].client_messages)
    if case.split("-")[0] in ("plain", "login", "oauthbearer", "xoauth2"):
        assert secret.encode() in wire
    else:
        assert secret.encode() not in wire
