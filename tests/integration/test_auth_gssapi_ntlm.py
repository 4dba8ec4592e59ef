"""AUTH GSSAPI and NTLM (msmtp_twisted.auth.optional) against a real Kerberos realm and real
servers, compared with msmtp 1.8.23 (GNU SASL).

The ``kerberos_servers`` fixture (tests/servers/kerberos.py) runs an MIT KDC (realm
MSMTP.TEST, ``testuser``/``testpass``, service ``smtp/127.0.0.1``), Postfix with Cyrus SASL
(AUTH NTLM GSSAPI; its log names the method and user of each mail) and Dovecot's submission
server (AUTH GSSAPI, relaying to a recording sink).

Three layers:

- the mechanism classes on their own: NTLM against pyspnego's acceptor, GSSAPI against an
  in-process python-gssapi acceptor holding the service key (protocol corner cases);
- the mechanism classes driven by a tiny SMTP AUTH client of this file against Postfix and
  Dovecot;
- our ``msmtp`` and Debian's ``/usr/bin/msmtp`` with the same configuration: exit codes,
  messages and (through a recording TCP proxy) what went over the wire.

Differences from 1.8.23 asserted as such: without a ticket both exit 70 before sending AUTH,
but 1.8.23 says "GNU SASL: GSSAPI error in client while negotiating security context ..."
where we give Kerberos's own words ("No Kerberos credentials available (default cache:
...)"); our GSSAPI answers the security layer offer with maximum size 0 (RFC 4752; GNU SASL
echoes the server's size); our NTLM sends NTLMv2 responses (pyspnego), GNU SASL's libntlm
NTLMv1, and without ``ntlmdomain`` we send an empty domain where libntlm copies the
server's target name.

Without the Python packages (simulated: a ``sys.meta_path`` finder that refuses them),
``--version`` lists gssapi and ntlm as unavailable and ``auth gssapi``/``auth ntlm`` exit 70
("authentication method GSSAPI is not available ...") before any AUTH command.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import re
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from msmtp_twisted.auth.mechanisms import (
    Mechanism,
    SASLAuthError,
    SASLError,
    SASLProtocolError,
    decode_challenge,
    encode_response,
)
from msmtp_twisted.auth.optional import GSSAPI, NTLM, availability, create_optional
from msmtp_twisted.sysexits import EX_NOPERM, EX_PROTOCOL, EX_SOFTWARE, EX_UNAVAILABLE
from tests.conftest import ROOT, ours_command, ours_env, require
from tests.servers.kerberos import KerberosServers, kerberos_servers  # noqa: F401
from tests.servers.msmtp import MsmtpResult, run_msmtp
from tests.servers.proxy import DelayProxy
from tests.servers.recording import DEFAULT_CAPABILITIES, RecordingServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.extras]

REAL = ["/usr/bin/msmtp"]
RUN_TIMEOUT = 20.0
IO_TIMEOUT = 10.0
FAILED = "msmtp: could not send mail (account default from CFG)"
NTLM_535 = "msmtp: server message: 535 5.7.8 Error: authentication failed: authentication failure"
GNU_SASL_GSSAPI = (
    "msmtp: GNU SASL: GSSAPI error in client while negotiating security context in "
    "gss_init_sec_context() in SASL library.  This is most likely due insufficient "
    "credentials or malicious interactions.")


def _need_gssapi() -> None:
    require(importlib.util.find_spec("gssapi") is not None,
            "Python package gssapi (pip install 'msmtp-twisted[gssapi]'; builds from source "
            "with libkrb5-dev, gcc, python3-dev)")


def _need_spnego() -> None:
    require(importlib.util.find_spec("spnego") is not None,
            "Python package pyspnego (pip install 'msmtp-twisted[ntlm]')")


@pytest.fixture
def krb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> KerberosServers:
    """The servers, with this process's Kerberos environment pointing at them (ticket)."""
    _need_gssapi()
    _need_spnego()
    servers: KerberosServers = request.getfixturevalue("kerberos_servers")
    for key, value in servers.env().items():
        monkeypatch.setenv(key, value)
    return servers


# --------------------------------------------------------------------------------------
# a tiny SMTP AUTH client for the mechanism classes


@dataclass
class Exchange:
    reply: str            # the final reply line (235 ..., 535 ...)
    sent: list[str]       # every line the client sent
    received: list[str]   # every line the server sent


def smtp_auth(port: int, mech: Mechanism) -> Exchange:
    """EHLO, then ``AUTH <name>`` driven by ``mech``'s step protocol until a reply other
    than 334; calls ``mech.finish()`` on 235. Every socket operation is bounded."""
    sent: list[str] = []
    received: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        f = sock.makefile("rwb")

        def reply() -> str:
            while True:
                line = f.readline(65536).decode("ascii", "replace").rstrip("\r\n")
                if not line:
                    raise AssertionError(f"connection closed; received: {received}")
                received.append(line)
                if line[3:4] != "-":
                    return line

        def send(line: str) -> None:
            sent.append(line)
            f.write(line.encode("ascii") + b"\r\n")
            f.flush()

        reply()
        send("EHLO client.test")
        reply()
        name = mech.name
        initial = mech.initial_response()
        assert initial is None, "GSSAPI and NTLM wait for the server's first 334"
        send(f"AUTH {name}")
        while True:
            line = reply()
            if not line.startswith("334"):
                if line.startswith("235"):
                    mech.finish()
                send("QUIT")
                with contextlib.suppress(OSError):
                    f.readline(65536)  # 221
                return Exchange(line, sent, received)
            challenge = decode_challenge(line[4:], name)
            send(encode_response(mech.respond(challenge)))


def _unique() -> str:
    return uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------------------
# NTLM message fields (MS-NLMP 2.2.1.3)


def ntlm_type3_fields(message: bytes) -> dict[str, bytes]:
    assert message[:8] == b"NTLMSSP\x00", message[:8]
    assert struct.unpack_from("<I", message, 8)[0] == 3
    names = ("lm", "nt", "domain", "user", "workstation")
    fields = {}
    for i, name in enumerate(names):
        length, _max, offset = struct.unpack_from("<HHI", message, 12 + 8 * i)
        fields[name] = message[offset:offset + length]
    return fields


def ntlm_type1_fields(message: bytes) -> dict[str, bytes]:
    assert message[:8] == b"NTLMSSP\x00", message[:8]
    assert struct.unpack_from("<I", message, 8)[0] == 1
    fields = {}
    for i, name in enumerate(("domain", "workstation")):
        length, _max, offset = struct.unpack_from("<HHI", message, 16 + 8 * i)
        fields[name] = message[offset:offset + length]
    return fields


def _text(field: bytes) -> str:
    return field.decode("utf-16-le")


def client_auth_lines(raw: bytes) -> list[bytes]:
    """The base64 lines a client sent after ``AUTH NTLM``/``AUTH GSSAPI`` (proxy capture)."""
    lines = raw.split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"AUTH "))
    out = []
    for line in lines[start + 1:]:
        if line.split(b" ", 1)[0].upper() in (b"MAIL", b"QUIT", b"RSET"):
            break
        out.append(line)
    return out


# ======================================================================================
# 1. the mechanism classes on their own


def test_availability_with_both_packages() -> None:
    _need_gssapi()
    _need_spnego()
    assert availability() == {"GSSAPI": None, "NTLM": None}


def test_availability_without_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name == "gssapi":
            return None                       # not installed
        if name == "spnego":
            raise ModuleNotFoundError(name)   # a finder that refuses it
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert availability() == {"GSSAPI": "needs the Python package gssapi",
                              "NTLM": "needs the Python package pyspnego"}
    for name, package in (("gssapi", "gssapi"), ("ntlm", "pyspnego")):
        with pytest.raises(SASLError) as err:
            create_optional(name, user="u", password="p", host="h")
        assert err.value.exitcode == EX_SOFTWARE
        assert str(err.value) == (f"authentication method {name.upper()} is not available "
                                  f"(needs the Python package {package})")


def test_create_optional_errors() -> None:
    _need_spnego()
    with pytest.raises(SASLError) as err:
        create_optional("PLAIN", user="u", password="p", host="h")
    assert (str(err.value), err.value.exitcode) == (
        "authentication method PLAIN not supported", EX_SOFTWARE)
    with pytest.raises(SASLError) as err:
        create_optional("NTLM", user=None, password="p", host="h")
    assert (str(err.value), err.value.exitcode) == (
        "authentication method NTLM needs a user name", EX_UNAVAILABLE)
    with pytest.raises(SASLError) as err:
        create_optional("ntlm", user="u", password=None, host="h")
    assert (str(err.value), err.value.exitcode) == (
        "authentication method NTLM needs a password", EX_UNAVAILABLE)
    assert isinstance(create_optional("ntlm", user="u", password="p", host="h"), NTLM)


@pytest.fixture
def ntlm_acceptor_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_spnego()
    users = tmp_path / "ntlm-users"
    users.write_text("MYDOMAIN:testuser:testpass\n:other:otherpass\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))


def _ntlm_acceptor() -> object:
    import spnego

    return spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm)


@pytest.mark.usefixtures("ntlm_acceptor_users")
@pytest.mark.parametrize(("user", "domain", "principal"), [
    ("testuser", "MYDOMAIN", "MYDOMAIN\\testuser"),
    ("MYDOMAIN\\testuser", None, "MYDOMAIN\\testuser"),
    ("other", None, "other"),
])
def test_ntlm_against_pyspnego_acceptor(user: str, domain: str | None, principal: str) -> None:
    password = "testpass" if "testuser" in user else "otherpass"
    mech = NTLM(user, password, domain)
    server = _ntlm_acceptor()
    assert mech.initial_response() is None
    negotiate = mech.respond(b"")                  # the empty 334
    challenge = server.step(negotiate)             # type: ignore[attr-defined]
    authenticate = mech.respond(challenge)
    assert server.step(authenticate) is None       # type: ignore[attr-defined]
    assert server.complete                         # type: ignore[attr-defined]
    assert server.client_principal == principal    # type: ignore[attr-defined]
    mech.finish()
    fields = ntlm_type3_fields(authenticate)
    assert len(fields["nt"]) > 24                  # NTLMv2
    assert _text(fields["domain"]) == (domain or ("MYDOMAIN" if "\\" in user else ""))
    with pytest.raises(SASLProtocolError):         # nothing more to say
        mech.respond(b"x")


@pytest.mark.usefixtures("ntlm_acceptor_users")
def test_ntlm_wrong_password_refused_by_acceptor() -> None:
    from spnego.exceptions import SpnegoError

    mech = NTLM("testuser", "wrong", "MYDOMAIN")
    server = _ntlm_acceptor()
    challenge = server.step(mech.respond(b""))     # type: ignore[attr-defined]
    with pytest.raises(SpnegoError):
        server.step(mech.respond(challenge))       # type: ignore[attr-defined]


def test_ntlm_protocol_errors() -> None:
    _need_spnego()
    mech = NTLM("u", "p")
    with pytest.raises(SASLProtocolError) as err:
        mech.respond(b"not empty")                 # the first 334 must be empty
    assert (str(err.value), err.value.exitcode) == (
        "authentication method NTLM: unexpected server challenge", EX_PROTOCOL)
    mech = NTLM("u", "p")
    mech.respond(b"")
    with pytest.raises(SASLProtocolError) as err:
        mech.respond(b"no NTLMSSP here")
    assert str(err.value) == "authentication method NTLM: server sent invalid challenge"
    mech = NTLM("u", "p")
    mech.respond(b"")
    with pytest.raises(SASLProtocolError):
        mech.respond(b"NTLMSSP\x00\x02\x00\x00\x00truncated")
    mech = NTLM("u", "p")
    mech.respond(b"")
    with pytest.raises(SASLProtocolError) as err:
        mech.finish()                              # 235 before the AUTHENTICATE message
    assert str(err.value) == (
        "authentication method NTLM: server accepted before receiving the response")
    assert "p" not in repr(NTLM("u", "p"))


# --- GSSAPI against an in-process acceptor holding the service key


def _gss_acceptor(krb: KerberosServers) -> object:
    import gssapi

    creds = gssapi.Credentials(usage="accept", store={"keytab": str(krb.keytab)})
    return gssapi.SecurityContext(usage="accept", creds=creds)


def _layer_offer(server: object, offer: bytes) -> bytes:
    return server.wrap(offer, False).message  # type: ignore[attr-defined]


def _establish(krb: KerberosServers, user: str | None = None) -> tuple[GSSAPI, object]:
    mech = GSSAPI(krb.host, user=user)
    server = _gss_acceptor(krb)
    assert mech.initial_response() is None
    reply = server.step(mech.respond(b""))  # type: ignore[attr-defined]
    assert server.complete  # type: ignore[attr-defined]
    assert mech.respond(reply) == b""       # context up: the empty response
    return mech, server


@pytest.mark.parametrize(("user", "authzid"), [(None, b""), ("testuser", b"testuser")])
def test_gssapi_against_acceptor(krb: KerberosServers, user: str | None,
                                 authzid: bytes) -> None:
    mech, server = _establish(krb, user)
    assert str(server.initiator_name) == "testuser@MSMTP.TEST"  # type: ignore[attr-defined]
    assert str(server.target_name) == "smtp/127.0.0.1@MSMTP.TEST"  # type: ignore[attr-defined]
    # Dovecot offers every layer, buffer 0xFFFFFF; we still choose "none", size 0
    answer = mech.respond(_layer_offer(server, b"\x07\xff\xff\xff"))
    unwrapped = server.unwrap(answer)  # type: ignore[attr-defined]
    assert unwrapped.message == b"\x01\x00\x00\x00" + authzid
    assert not unwrapped.encrypted
    mech.finish()
    with pytest.raises(SASLProtocolError):
        mech.respond(b"more")


def test_gssapi_server_requires_a_security_layer(krb: KerberosServers) -> None:
    mech, server = _establish(krb)
    with pytest.raises(SASLProtocolError) as err:
        mech.respond(_layer_offer(server, b"\x04\x00\x10\x00"))  # confidentiality only
    assert (str(err.value), err.value.exitcode) == (
        "authentication method GSSAPI: the server requires a security layer", EX_PROTOCOL)


@pytest.mark.parametrize("offer", [b"\x01\x00\x00", b"\x01\x00\x00\x00\x00"])
def test_gssapi_bad_layer_offer_length(krb: KerberosServers, offer: bytes) -> None:
    mech, server = _establish(krb)
    with pytest.raises(SASLProtocolError) as err:
        mech.respond(_layer_offer(server, offer))
    assert str(err.value) == "authentication method GSSAPI: server sent invalid challenge"


def test_gssapi_layer_offer_not_wrapped(krb: KerberosServers) -> None:
    mech, _server = _establish(krb)
    with pytest.raises(SASLProtocolError) as err:
        mech.respond(b"\x01\x00\x00\x00")   # in clear: not a wrap token
    assert err.value.exitcode == EX_PROTOCOL


def test_gssapi_bad_server_token(krb: KerberosServers) -> None:
    mech = GSSAPI(krb.host)
    mech.respond(b"")
    with pytest.raises(SASLAuthError) as err:
        mech.respond(b"\x60\x03\x06\x01\x00")  # no AP-REP
    assert err.value.exitcode == EX_NOPERM
    assert str(err.value).startswith("authentication failed: ")
    assert str(err.value).endswith(" (method GSSAPI)")


def test_gssapi_success_before_server_proved_itself(krb: KerberosServers) -> None:
    mech = GSSAPI(krb.host)
    mech.respond(b"")                     # the AP-REQ went out, no AP-REP came back
    with pytest.raises(SASLAuthError) as err:
        mech.finish()
    assert (str(err.value), err.value.exitcode) == (
        "authentication failed: the server did not prove its identity (method GSSAPI)",
        EX_NOPERM)


def test_gssapi_without_ticket_fails_when_built(krb: KerberosServers,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRB5CCNAME", krb.empty_ccache)
    with pytest.raises(SASLError) as err:
        GSSAPI(krb.host)
    assert err.value.exitcode == EX_SOFTWARE
    assert str(err.value) == ("authentication method GSSAPI: No Kerberos credentials available "
                              f"(default cache: {krb.empty_ccache})")


def test_gssapi_unknown_service(krb: KerberosServers) -> None:
    with pytest.raises(SASLError) as err:
        GSSAPI("no-such-host.msmtp.test")
    assert err.value.exitcode == EX_SOFTWARE
    assert "not found in Kerberos database" in str(err.value), str(err.value)


# ======================================================================================
# 2. the mechanism classes against the real servers


@pytest.mark.parametrize("server", ["postfix", "dovecot"])
def test_gssapi_mechanism_with_server(krb: KerberosServers, server: str) -> None:
    port = krb.postfix_port if server == "postfix" else krb.dovecot_port
    since = krb.postfix_log_size() if server == "postfix" else krb.dovecot_log_size()
    ex = smtp_auth(port, create_optional("GSSAPI", user="testuser", password=None,
                                         host=krb.host, ntlmdomain=None))
    assert ex.reply.startswith("235 "), ex
    assert ex.sent[1:2] == ["AUTH GSSAPI"] and ex.sent[3] == ""  # empty answer to AP-REP
    if server == "dovecot":
        krb.wait_for_log("dovecot", r"Login: user=<testuser@msmtp\.test>, method=GSSAPI", since)


@pytest.mark.parametrize(("password", "reply"), [("testpass", "235 "), ("wrong", "535 ")])
def test_ntlm_mechanism_with_postfix(krb: KerberosServers, password: str, reply: str) -> None:
    ex = smtp_auth(krb.postfix_port, create_optional(
        "NTLM", user="testuser", password=password, host=krb.host, ntlmdomain="MYDOMAIN"))
    assert ex.reply.startswith(reply), ex
    fields = ntlm_type3_fields(base64.b64decode(ex.sent[3]))
    assert (_text(fields["user"]), _text(fields["domain"])) == ("testuser", "MYDOMAIN")


# ======================================================================================
# 3. our msmtp and msmtp 1.8.23


@dataclass
class Run(MsmtpResult):
    sent: bytes = b""  # what the client sent (through the recording proxy)

    @property
    def lines(self) -> list[str]:
        return self.stderr_lines


def _config(directory: Path, port: int, **settings: str) -> Path:
    lines = ["account default", "host 127.0.0.1", f"port {port}",
             "from testuser@example.com", "tls off", "user testuser"]
    lines += [f"{k} {v}" for k, v in settings.items()]
    directory.mkdir(parents=True, exist_ok=True)
    cfg = directory / "msmtprc"
    cfg.write_text("\n".join(lines) + "\n")
    cfg.chmod(0o600)
    return cfg


def run_client(command: Sequence[str], directory: Path, port: int, *,
               env: Mapping[str, str] | None = None, message_id: str | None = None,
               args: Sequence[str] = ("rcpt@example.org",), **settings: str) -> Run:
    """``command -C DIR/msmtprc args`` through a recording proxy to ``port``; new session
    (no terminal: never a password prompt), bounded."""
    with DelayProxy(("127.0.0.1", port)) as proxy:
        cfg = _config(directory, proxy.port, **settings)  # type: ignore[arg-type]
        mail = (f"Message-ID: <{message_id or _unique()}@example.com>\n"
                "Subject: kerberos test\n\nbody\n").encode()
        res = run_msmtp(command, cfg, args, input=mail, timeout=RUN_TIMEOUT,
                        env=ours_env(dict(env or {})), home=directory, new_session=True)
        proxy.wait_idle(timeout=5)
        sent = b"".join(b for c in proxy.connections for b in c.bursts)
    res = res.replaced((str(cfg), "CFG"))
    return Run(res.returncode, res.stdout, res.stderr, res.seconds, sent=sent)


@pytest.fixture
def real(real_msmtp: str) -> list[str]:
    return [real_msmtp]


@pytest.mark.parametrize("server", ["postfix", "dovecot"])
def test_cli_gssapi_with_ticket(krb: KerberosServers, real: list[str], tmp_path: Path,
                                server: str) -> None:
    port = krb.postfix_port if server == "postfix" else krb.dovecot_port
    for label, command in (("real", real), ("ours", ours_command())):
        since = krb.postfix_log_size()
        mid = f"{label}-{_unique()}"
        run = run_client(command, tmp_path / label, port, env=krb.env(), message_id=mid,
                         auth="gssapi")
        assert (run.returncode, run.stderr) == (0, ""), label
        assert b"AUTH GSSAPI\r\n" in run.sent
        if server == "postfix":
            assert krb.postfix_auth(f"{mid}@example.com", since) == (
                "GSSAPI", "testuser@msmtp.test"), label
        else:
            deadline = time.monotonic() + 5
            while not any(mid.encode() in m.data.getvalue() for m in krb.sink.messages):
                assert time.monotonic() < deadline, f"{label}: no mail at the sink"
                time.sleep(0.05)
        # the wrapped answer to the security layer offer: 16-byte wrap token header
        # (RFC 4121, no confidentiality), then "no layer" and the maximum size
        answer = base64.b64decode(client_auth_lines(run.sent)[2])
        assert answer[16] == 0x01, label
        if label == "ours":
            assert answer[16:20] == b"\x01\x00\x00\x00"  # RFC 4752: size 0 without a layer


def test_cli_gssapi_without_ticket(krb: KerberosServers, real: list[str],
                                   tmp_path: Path) -> None:
    real_run = run_client(real, tmp_path / "real", krb.postfix_port,
                          env=krb.env(ticket=False), auth="gssapi")
    ours_run = run_client(ours_command(), tmp_path / "ours", krb.postfix_port,
                          env=krb.env(ticket=False), auth="gssapi")
    assert real_run.returncode == ours_run.returncode == EX_SOFTWARE
    assert real_run.lines == [GNU_SASL_GSSAPI, FAILED]
    assert ours_run.lines == [
        "msmtp: authentication method GSSAPI: No Kerberos credentials available "
        f"(default cache: {krb.empty_ccache})", FAILED]
    # neither sends AUTH (nor QUIT): the first token cannot be made
    assert real_run.sent == ours_run.sent == b"EHLO localhost\r\n"


def test_cli_gssapi_without_user(krb: KerberosServers, real: list[str],
                                 tmp_path: Path) -> None:
    """msmtp wants a user name for every method but EXTERNAL, though GSSAPI sends none
    (it needs no password either: the other GSSAPI tests have none and no terminal)."""
    runs = {}
    for label, command in (("real", real), ("ours", ours_command())):
        # "user" without a value unsets it
        runs[label] = run_client(command, tmp_path / label, krb.postfix_port, env=krb.env(),
                                 auth="gssapi", user="")
    assert runs["real"].returncode == runs["ours"].returncode == EX_UNAVAILABLE
    assert runs["real"].lines == runs["ours"].lines == [
        "msmtp: authentication method GSSAPI needs a user name", FAILED]


@pytest.mark.parametrize(("password", "code"), [("testpass", 0), ("wrong", EX_NOPERM)])
def test_cli_ntlm_password(krb: KerberosServers, real: list[str], tmp_path: Path,
                           password: str, code: int) -> None:
    runs = {}
    for label, command in (("real", real), ("ours", ours_command())):
        since = krb.postfix_log_size()
        mid = f"{label}-{_unique()}"
        run = run_client(command, tmp_path / label, krb.postfix_port, message_id=mid,
                         auth="ntlm", password=password)
        runs[label] = run
        assert run.returncode == code, (label, run.stderr)
        if code == 0:
            assert run.stderr == ""
            assert krb.postfix_auth(f"{mid}@example.com", since) == (
                "NTLM", "testuser@msmtp.test"), label
        else:
            assert run.lines == ["msmtp: authentication failed (method NTLM)", NTLM_535,
                                 FAILED], label
        lines = client_auth_lines(run.sent)
        assert base64.b64decode(lines[0])[8:9] == b"\x01"  # NEGOTIATE after the empty 334
        nt = ntlm_type3_fields(base64.b64decode(lines[1]))["nt"]
        # GNU SASL's libntlm: NTLMv1 (24 bytes); pyspnego: NTLMv2
        assert (len(nt) == 24) == (label == "real"), (label, len(nt))


def test_cli_ntlmdomain(krb: KerberosServers, real: list[str], tmp_path: Path) -> None:
    """Ours puts ``ntlmdomain`` into the AUTHENTICATE message's domain (where the NTLMv2
    hash uses it), or no domain at all.  1.8.23 (GNU SASL 2.2 + libntlm) puts it into the
    NEGOTIATE message's workstation slot (and the user name into its domain slot), and
    always copies the server's target name into AUTHENTICATE."""
    for label, command in (("real", real), ("ours", ours_command())):
        for domain in ("MYDOMAIN", None):
            settings = {"auth": "ntlm", "password": "testpass"}
            if domain:
                settings["ntlmdomain"] = domain
            run = run_client(command, tmp_path / f"{label}-{domain}", krb.postfix_port,
                             **settings)
            assert (run.returncode, run.stderr) == (0, ""), (label, domain)
            negotiate_b64, authenticate_b64 = client_auth_lines(run.sent)[:2]
            negotiate = ntlm_type1_fields(base64.b64decode(negotiate_b64))
            fields = ntlm_type3_fields(base64.b64decode(authenticate_b64))
            assert _text(fields["user"]) == "testuser", label
            if label == "ours":
                assert _text(fields["domain"]) == (domain or ""), domain
                assert negotiate == {"domain": b"", "workstation": b""}
            else:
                assert _text(fields["domain"]) == "MAIL.MSMTP.TEST", domain
                assert negotiate == {"domain": b"testuser",
                                     "workstation": (domain or "").encode()}


def test_cli_version_lists_both(real: list[str]) -> None:
    _need_gssapi()
    _need_spnego()
    env = ours_env({"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent"})
    outs = [subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=env,
                           timeout=RUN_TIMEOUT).stdout.splitlines()
            for cmd in (real, ours_command())]
    methods = [out[out.index("Supported authentication methods:") + 1].split() for out in outs]
    assert "gssapi" in methods[0] and "ntlm" in methods[0]
    assert [m for m in methods[1] if not m.endswith("-plus")] == methods[0]
    assert not any(line.startswith("Unavailable authentication methods") for line in outs[1])


# --- without the Python packages

#: Runs our msmtp with a meta path finder that refuses gssapi and spnego, as if they
#: were not installed.
BLOCKED = textwrap.dedent("""\
    import importlib.abc, runpy, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("gssapi", "spnego"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    sys.argv[0] = "msmtp"
    runpy.run_module("msmtp_twisted", run_name="__main__", alter_sys=True)
""")


def blocked_command() -> list[str]:
    return [sys.executable, "-c", BLOCKED]


def test_blocked_wrapper_really_blocks() -> None:
    env = ours_env({"PATH": "/usr/bin:/bin"})
    code = BLOCKED.split("sys.argv[0]")[0] + textwrap.dedent("""\
        from msmtp_twisted.auth.optional import availability
        print(availability())
        import gssapi
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=RUN_TIMEOUT, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stdout.strip() == ("{'GSSAPI': 'needs the Python package gssapi', "
                                   "'NTLM': 'needs the Python package pyspnego'}")
    assert "ModuleNotFoundError: No module named 'gssapi'" in proc.stderr


def test_version_without_packages() -> None:
    env = ours_env({"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent"})
    out = subprocess.run([*blocked_command(), "--version"], capture_output=True, text=True,
                         env=env, timeout=RUN_TIMEOUT).stdout.splitlines()
    methods = out[out.index("Supported authentication methods:") + 1].split()
    assert "gssapi" not in methods and "ntlm" not in methods
    assert "Unavailable authentication methods: gssapi (needs the Python package gssapi), "\
           "ntlm (needs the Python package pyspnego)" in out


@pytest.mark.parametrize(("method", "package"), [("gssapi", "gssapi"), ("ntlm", "pyspnego")])
def test_method_without_package(tmp_path: Path, method: str, package: str) -> None:
    caps = [*DEFAULT_CAPABILITIES, "AUTH GSSAPI NTLM"]
    with RecordingServer(capabilities=caps) as srv:
        cfg = _config(tmp_path, srv.port, auth=method, password="testpass")  # type: ignore[arg-type]
        proc = subprocess.run([*blocked_command(), "-C", str(cfg), "rcpt@example.org"],
                              input=b"Subject: x\n\nbody\n", capture_output=True,
                              timeout=RUN_TIMEOUT, start_new_session=True,
                              env=ours_env({"PATH": "/usr/bin:/bin", "LC_ALL": "C",
                                            "HOME": str(tmp_path)}))
        srv.wait_idle()
        commands = [c for s in srv.sessions for c in s.commands]
    lines = proc.stderr.decode().replace(str(cfg), "CFG").splitlines()
    assert proc.returncode == EX_SOFTWARE, lines
    # choose.py's message; with the reason when the wiring passes it on
    assert re.fullmatch(rf"msmtp: authentication method {method.upper()} is not available"
                        rf"( \(needs the Python package {package}\))?", lines[0]), lines
    assert lines[1:] == [FAILED]
    assert not any(c.upper().startswith("AUTH") for c in commands), commands


def test_method_without_package_not_offered(tmp_path: Path) -> None:
    """msmtp's order: the server's offer is checked first (69)."""
    with RecordingServer(capabilities=[*DEFAULT_CAPABILITIES, "AUTH PLAIN"]) as srv:
        cfg = _config(tmp_path, srv.port, auth="gssapi")  # type: ignore[arg-type]
        proc = subprocess.run([*blocked_command(), "-C", str(cfg), "rcpt@example.org"],
                              input=b"Subject: x\n\nbody\n", capture_output=True,
                              timeout=RUN_TIMEOUT, start_new_session=True,
                              env=ours_env({"PATH": "/usr/bin:/bin", "LC_ALL": "C",
                                            "HOME": str(tmp_path)}))
    lines = proc.stderr.decode().replace(str(cfg), "CFG").splitlines()
    assert proc.returncode == EX_UNAVAILABLE
    assert lines == ["msmtp: the server does not support authentication method GSSAPI", FAILED]
