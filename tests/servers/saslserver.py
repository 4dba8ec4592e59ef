"""``SaslServer``: an SMTP server on 127.0.0.1 with real server-side SASL.

Unlike ``RecordingServer`` (which only knows PLAIN/LOGIN and trusts whatever it is
told), this server *verifies* every mechanism it offers, the way a real submission
server does:

* ``SCRAM-SHA-1``, ``SCRAM-SHA-256`` (RFC 5802, 7677) and their ``-PLUS`` variants: the
  server keeps only StoredKey/ServerKey, checks the client proof, the nonce, the GS2
  header and -- for -PLUS -- the channel binding it computes *itself* from its own side
  of the TLS connection: ``tls-exporter`` (RFC 9266, TLS 1.3:
  ``export_keying_material(b"EXPORTER-Channel-Binding", 32)``) or ``tls-unique``
  (RFC 5929, TLS 1.2: the first Finished message, i.e. the client's, which is the
  server's ``get_peer_finished()``).  TLS is therefore done with pyOpenSSL (Python's
  ``ssl`` module has no exporter), over a memory BIO so every socket wait keeps its
  timeout;
* ``PLAIN``, ``LOGIN``, ``CRAM-MD5`` (RFC 4616, draft-murchison-sasl-login, RFC 2195);
* ``EXTERNAL`` (RFC 4422 App. A): needs a verified TLS client certificate; an empty
  authzid means "the certificate's identity", a non-empty one must be allowed by
  ``external_authzids``;
* ``OAUTHBEARER`` (RFC 7628) and ``XOAUTH2``: the token must be ``tokens[user]``; a bad
  token gets the JSON error challenge as a 334, then 535 after the client's dummy
  response (``\\x01`` for OAUTHBEARER, empty for XOAUTH2).

Other names in ``mechanisms`` (``GSSAPI``, ``NTLM``, ...) are offered but always refused.

Misbehaviour switches (``misbehave=``), see ``MISBEHAVIOURS``.

Everything is recorded per connection in ``SaslSession`` (commands, every AUTH attempt
with each decoded client message and challenge, the channel binding type and data the
server verified, MAIL/DATA, the TLS version, the client certificate's CN)::

    with SaslServer(mechanisms=["SCRAM-SHA-256-PLUS"], users={"joe": "pw"},
                    tls="starttls", cert=leaf) as srv:
        run_client(...)
        srv.wait_idle()
        attempt = srv.session.auth[0]
        assert attempt.result == "success" and attempt.channel_binding[0] == "tls-exporter"
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.servers.base import DEFAULT_IO_TIMEOUT, ConnectionClosed, ThreadedServer

__all__ = ["AuthAttempt", "MISBEHAVIOURS", "SaslServer", "SaslSession", "ScramCredentials",
           "scram_credentials"]

MISBEHAVIOURS: dict[str, str] = {
    "bad-signature": "SCRAM: server-final v= carries a wrong server signature",
    "no-server-final": "SCRAM: 235 right after a valid client-final, no v= ever sent",
    "server-error": "SCRAM: server-final e=<scram_error> although the proof was right",
    "malformed-challenge": "the first challenge is not base64",
    "huge-iterations": "SCRAM: server-first with i=<huge_iterations>",
    "bad-nonce": "SCRAM: server nonce that does not extend the client's nonce",
    "endless-challenges": "every client message gets another 334 <endless_challenge> "
                          "(up to max_challenges, then 535)",
    "cb-mismatch": "SCRAM-PLUS: the binding is checked against other data (a MITM's view)",
    "silent": "after the AUTH command, never answer again (read until the client leaves)",
}

MAX_LINE = 1 << 20

_SUCCESS = "235 2.7.0 Authentication successful"
_FAILED = "535 5.7.8 Error: authentication failed"


# ------------------------------------------------------------------------------------------
# records


@dataclass
class AuthAttempt:
    """One AUTH command and the exchange that followed."""

    mechanism: str
    command: str  # the AUTH command line
    initial: bytes | None = None  # decoded initial response; b"" for "="; None: none sent
    client_messages: list[bytes] = field(default_factory=list)  # decoded, initial included
    responses: list[str] = field(default_factory=list)  # raw response lines (after 334)
    challenges: list[bytes] = field(default_factory=list)  # decoded challenges sent
    result: str | None = None  # "success", "failure", "aborted"; None: the client left
    reply: str | None = None  # the final reply line sent
    reason: str | None = None  # why the server refused
    authcid: str | None = None  # who authenticated
    authzid: str | None = None
    gs2_header: bytes | None = None  # SCRAM: as received
    channel_binding: tuple[str, bytes] | None = None  # SCRAM-PLUS: type, server's own data
    cb_verified: bool = False  # SCRAM-PLUS: the client's c= matched the server's binding
    oauth_fields: dict[str, str] = field(default_factory=dict)  # OAUTHBEARER/XOAUTH2 kv

    @property
    def succeeded(self) -> bool:
        return self.result == "success"


@dataclass
class SaslSession:
    """One client connection."""

    index: int
    transcript: bytearray = field(default_factory=bytearray)  # every byte received (clear)
    sent: bytearray = field(default_factory=bytearray)  # every byte sent (clear)
    commands: list[str] = field(default_factory=list)  # command lines (not SASL responses)
    auth: list[AuthAttempt] = field(default_factory=list)
    authenticated_as: str | None = None
    tls: bool = False
    tls_version: str | None = None  # "TLSv1.3", "TLSv1.2"
    client_cert_cn: str | None = None
    mail_from: list[str] = field(default_factory=list)
    rcpt_to: list[str] = field(default_factory=list)
    data_started: bool = False  # 354 was sent
    messages: list[bytes] = field(default_factory=list)  # completed DATA (unstuffed)
    quit_received: bool = False
    closed_by: str | None = None

    @property
    def mail_received(self) -> bool:
        """Whether the client sent MAIL at all (accepted or not)."""
        return any(c.upper().startswith("MAIL") for c in self.commands)


# ------------------------------------------------------------------------------------------
# SCRAM credentials (what a server stores)


@dataclass(frozen=True)
class ScramCredentials:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def scram_credentials(hash_name: str, password: str, salt: bytes | None = None,
                      iterations: int = 4096) -> ScramCredentials:
    """RFC 5802 §3.  ``password`` is taken as already prepared (SASLprep'ed), as a
    server stores it."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    return ScramCredentials(salt, iterations, hashlib.new(hash_name, client_key).digest(),
                            hmac.new(salted, b"Server Key", hash_name).digest())


def _unsaslname(name: str) -> str | None:
    out, i = [], 0
    while i < len(name):
        if name[i] == "=":
            esc = name[i:i + 3]
            if esc == "=2C":
                out.append(",")
            elif esc == "=3D":
                out.append("=")
            else:
                return None
            i += 3
        elif name[i] == ",":
            return None
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


# ------------------------------------------------------------------------------------------
# the server


class _Abort(Exception):
    """The client answered a challenge with ``*``."""


class _BadResponse(Exception):
    """The client's response was not base64."""


class SaslServer(ThreadedServer):
    """SMTP server with verifying SASL (see the module docstring).

    mechanisms: the AUTH names offered, in this order.
    users: ``{user: password}`` for the password mechanisms (SCRAM credentials are
        derived once, per hash, with ``iterations``).
    tokens: ``{user: token}`` for OAUTHBEARER/XOAUTH2.
    tls: ``None``, ``"starttls"`` or ``"implicit"``; ``cert``: a ``tlspki.Issued`` leaf.
    tls_max_version / tls_min_version: ``"1.2"`` or ``"1.3"``.
    client_ca: a ``tlspki.Issued`` CA: ask for (``require_client_cert``: require) a client
        certificate issued by it.
    external_authzids: authzids EXTERNAL accepts besides the empty one.
    auth_before_tls: offer AUTH before STARTTLS too (default: only after, as servers do).
    require_auth: MAIL before a successful AUTH gets 530.
    misbehave: one of ``MISBEHAVIOURS``.
    scram_error_style: ``"challenge"``: a SCRAM failure is a server-final ``e=...`` in a
        334, then 535 after the client's answer; ``"535"``: a plain 535 at once.
    scram_error: the ``e=`` value for ``misbehave="server-error"``.
    huge_iterations: the iteration count for ``misbehave="huge-iterations"``.
    endless_challenge, max_challenges: for ``misbehave="endless-challenges"``.
    """

    thread_name = "sasl-server"

    def __init__(self, *, mechanisms: Sequence[str] = ("PLAIN",),
                 users: Mapping[str, str] | None = None,
                 tokens: Mapping[str, str] | None = None,
                 tls: str | None = None, cert: Any = None,
                 tls_max_version: str | None = None, tls_min_version: str | None = None,
                 client_ca: Any = None, require_client_cert: bool = False,
                 external_authzids: Iterable[str] = (),
                 auth_before_tls: bool = False, require_auth: bool = True,
                 misbehave: str | None = None, scram_error_style: str = "challenge",
                 scram_error: str = "invalid-proof", iterations: int = 4096,
                 huge_iterations: int = 2**32 - 1,
                 endless_challenge: bytes = b"Password:", max_challenges: int = 50,
                 hostname: str = "mx.test",
                 io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        super().__init__(io_timeout=io_timeout)
        if tls not in (None, "starttls", "implicit"):
            raise ValueError(f"tls must be None, 'starttls' or 'implicit', not {tls!r}")
        if tls is not None and cert is None:
            raise ValueError("tls needs cert=")
        if misbehave is not None and misbehave not in MISBEHAVIOURS:
            raise ValueError(f"unknown misbehaviour {misbehave!r}; one of {sorted(MISBEHAVIOURS)}")
        if scram_error_style not in ("challenge", "535"):
            raise ValueError(scram_error_style)
        self.mechanisms = [m.upper() for m in mechanisms]
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        self.tls = tls
        self.cert = cert
        self.tls_max_version = tls_max_version
        self.tls_min_version = tls_min_version
        self.client_ca = client_ca
        self.require_client_cert = require_client_cert
        self.external_authzids = set(external_authzids)
        self.auth_before_tls = auth_before_tls
        self.require_auth = require_auth
        self.misbehave = misbehave
        self.scram_error_style = scram_error_style
        self.scram_error = scram_error
        self.iterations = iterations
        self.huge_iterations = huge_iterations
        self.endless_challenge = endless_challenge
        self.max_challenges = max_challenges
        self.hostname = hostname
        self.sessions: list[SaslSession] = []
        self._scram = {
            h: {u: scram_credentials(h, p, iterations=iterations) for u, p in self.users.items()}
            for h in ("sha1", "sha256")
        }
        self._ssl_context = self._make_context() if tls is not None else None

    # -- records -------------------------------------------------------------------

    @property
    def session(self) -> SaslSession:
        assert self.sessions, "no client connected"
        return self.sessions[-1]

    @property
    def attempts(self) -> list[AuthAttempt]:
        return [a for s in list(self.sessions) for a in s.auth]

    @property
    def messages(self) -> list[bytes]:
        return [m for s in list(self.sessions) for m in s.messages]

    @property
    def mail_received(self) -> bool:
        return any(s.mail_received for s in list(self.sessions))

    # -- TLS -----------------------------------------------------------------------

    def _make_context(self) -> Any:
        from OpenSSL import SSL

        versions = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.use_certificate_chain_file(str(self.cert.chain))
        ctx.use_privatekey_file(str(self.cert.key))
        ctx.check_privatekey()
        ctx.set_min_proto_version(versions[self.tls_min_version or "1.2"])
        if self.tls_max_version is not None:
            ctx.set_max_proto_version(versions[self.tls_max_version])
        # one handshake per connection: no session resumption muddling tls-unique
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.set_options(SSL.OP_NO_TICKET)
        if self.client_ca is not None:
            ctx.load_verify_locations(str(self.client_ca.cert))
            ctx.add_client_ca(self.client_ca.certificate)
            mode = SSL.VERIFY_PEER
            if self.require_client_cert:
                mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
            ctx.set_verify(mode, lambda conn, cert, errnum, depth, ok: bool(ok))
        return ctx

    # -- connections ---------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        with self._lock:
            sess = SaslSession(index=len(self.sessions))
            self.sessions.append(sess)
        _SaslConn(self, sess, conn).run()


class _PlainStream:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        pass


class _TLSStream:
    """pyOpenSSL server side over a memory BIO; the socket keeps its timeout."""

    def __init__(self, sock: socket.socket, context: Any) -> None:
        from OpenSSL import SSL

        self.SSL = SSL
        self.sock = sock
        self.conn = SSL.Connection(context, None)
        self.conn.set_accept_state()

    def _pump_out(self) -> None:
        while True:
            try:
                data = self.conn.bio_read(65536)
            except self.SSL.WantReadError:
                return
            if not data:
                return
            self.sock.sendall(data)

    def _pump_in(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed
        self.conn.bio_write(data)

    def handshake(self) -> None:
        while True:
            try:
                self.conn.do_handshake()
            except self.SSL.WantReadError:
                self._pump_out()
                self._pump_in()
                continue
            except self.SSL.Error as e:
                self._pump_out()  # the alert
                raise ConnectionClosed(f"TLS handshake failed: {e}") from None
            self._pump_out()
            return

    def recv(self) -> bytes:
        while True:
            try:
                data = self.conn.recv(65536)
            except self.SSL.WantReadError:
                self._pump_out()
                try:
                    self._pump_in()
                except ConnectionClosed:
                    return b""
                continue
            except self.SSL.ZeroReturnError:
                return b""
            except self.SSL.SysCallError:
                return b""
            except self.SSL.Error as e:
                raise ConnectionClosed(f"TLS error: {e}") from None
            self._pump_out()
            return data

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self.conn.send(bytes(view[:16384]))
            except self.SSL.Error as e:
                raise ConnectionClosed(f"TLS error: {e}") from None
            view = view[n:]
            self._pump_out()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.shutdown()
            self._pump_out()

    # -- what the channel bindings are, from this side

    @property
    def version(self) -> str:
        return self.conn.get_protocol_version_name()

    def binding(self, cb_type: str) -> bytes | None:
        if cb_type == "tls-exporter":
            if self.version != "TLSv1.3":
                return None  # RFC 9266: only defined here for TLS 1.3 (as the client uses it)
            return self.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32)
        if cb_type == "tls-unique":
            if self.version == "TLSv1.3":
                return None  # RFC 9266 §3: tls-unique is not defined for TLS 1.3
            # full handshake: the client's Finished comes first (RFC 5929 §3.1)
            return self.conn.get_peer_finished()
        return None


class _SaslConn:
    def __init__(self, srv: SaslServer, sess: SaslSession, sock: socket.socket) -> None:
        self.srv = srv
        self.sess = sess
        self.sock = sock
        self.stream: _PlainStream | _TLSStream = _PlainStream(sock)
        self.buf = bytearray()
        self.helo = False

    # -- I/O -----------------------------------------------------------------------

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8") + b"\r\n"
        self.sess.sent += data
        self.stream.sendall(data)

    def read_line(self) -> str:
        while True:
            idx = self.buf.find(b"\n")
            if idx >= 0:
                raw = bytes(self.buf[:idx + 1])
                del self.buf[:idx + 1]
                return raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            if len(self.buf) > MAX_LINE:
                self.send("500 5.5.2 Error: line too long")
                raise ConnectionClosed
            data = self.stream.recv()
            if not data:
                self.sess.closed_by = self.sess.closed_by or "client"
                raise ConnectionClosed
            self.sess.transcript += data
            self.buf += data

    def start_tls(self) -> None:
        assert self.srv._ssl_context is not None
        stream = _TLSStream(self.sock, self.srv._ssl_context)
        self.stream = stream
        stream.handshake()
        self.sess.tls = True
        self.sess.tls_version = stream.version
        cert = stream.conn.get_peer_certificate(as_cryptography=True)
        if cert is not None:
            from cryptography.x509.oid import NameOID

            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            self.sess.client_cert_cn = str(names[0].value) if names else ""

    # -- main loop -----------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.srv.tls == "implicit":
                self.start_tls()
            self.send(f"220 {self.srv.hostname} ESMTP sasl test server")
            while True:
                line = self.read_line()
                self.sess.commands.append(line)
                if not self.command(line):
                    return
        except ConnectionClosed:
            self.sess.closed_by = self.sess.closed_by or "server"
        finally:
            self.stream.close()

    def command(self, line: str) -> bool:
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb in ("EHLO", "HELO"):
            self.helo = True
            if verb == "HELO":
                self.send(f"250 {self.srv.hostname}")
            else:
                self.send_ehlo()
        elif verb == "STARTTLS":
            if self.srv.tls != "starttls" or self.sess.tls:
                self.send("454 4.7.0 TLS not available")
            else:
                self.send("220 2.0.0 Ready to start TLS")
                self.buf.clear()
                self.start_tls()
                self.helo = False
        elif verb == "AUTH":
            self.auth(line, arg)
        elif verb == "MAIL":
            if not self.helo:
                self.send("503 5.5.1 Error: send HELO/EHLO first")
            elif self.srv.require_auth and self.sess.authenticated_as is None:
                self.send("530 5.7.0 Authentication required")
            else:
                self.sess.mail_from.append(arg)
                self.send("250 2.1.0 Ok")
        elif verb == "RCPT":
            if not self.sess.mail_from:
                self.send("503 5.5.1 Error: need MAIL command")
            else:
                self.sess.rcpt_to.append(arg)
                self.send("250 2.1.5 Ok")
        elif verb == "DATA":
            if not self.sess.rcpt_to:
                self.send("554 5.5.1 Error: no valid recipients")
            else:
                self.sess.data_started = True
                self.send("354 End data with <CR><LF>.<CR><LF>")
                self.data()
        elif verb in ("RSET", "NOOP"):
            self.send("250 2.0.0 Ok")
        elif verb == "QUIT":
            self.sess.quit_received = True
            self.sess.closed_by = "server"
            self.send("221 2.0.0 Bye")
            return False
        else:
            self.send("502 5.5.2 Error: command not recognized")
        return True

    def send_ehlo(self) -> None:
        lines = [self.srv.hostname, "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.srv.tls == "starttls" and not self.sess.tls:
            lines.append("STARTTLS")
        if self.srv.mechanisms and (self.sess.tls or self.srv.tls != "starttls"
                                    or self.srv.auth_before_tls):
            lines.append("AUTH " + " ".join(self.srv.mechanisms))
        self.send("\r\n".join([f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"]))

    def data(self) -> None:
        out = bytearray()
        while True:
            line = self.read_line()
            if line == ".":
                break
            if line.startswith("."):
                line = line[1:]
            out += line.encode("utf-8", "surrogateescape") + b"\n"
        self.sess.messages.append(bytes(out))
        self.send(f"250 2.0.0 Ok: queued as SASL{len(self.srv.messages):04d}")

    # -- SASL plumbing -------------------------------------------------------------

    def challenge(self, attempt: AuthAttempt, data: bytes | None, raw: str | None = None) -> bytes:
        """Send ``334 base64(data)`` (or ``334 raw``), return the decoded response."""
        if raw is None:
            assert data is not None
            attempt.challenges.append(data)
            self.send("334 " + base64.b64encode(data).decode("ascii"))
        else:
            attempt.challenges.append(raw.encode())
            self.send("334 " + raw)
        line = self.read_line()
        attempt.responses.append(line)
        if line.strip() == "*":
            raise _Abort
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _BadResponse from None
        attempt.client_messages.append(decoded)
        return decoded

    def first_message(self, attempt: AuthAttempt) -> bytes:
        if attempt.initial is not None:
            return attempt.initial
        return self.challenge(attempt, b"")

    def auth(self, line: str, arg: str) -> None:
        mech, _, initial_text = arg.partition(" ")
        mech = mech.upper()
        if self.sess.authenticated_as is not None:
            self.send("503 5.5.1 Error: already authenticated")
            return
        if not mech or mech not in self.srv.mechanisms:
            self.send("504 5.5.4 Unrecognized authentication type")
            return
        attempt = AuthAttempt(mechanism=mech, command=line)
        self.sess.auth.append(attempt)
        initial_text = initial_text.strip()
        if initial_text:
            if initial_text == "=":
                attempt.initial = b""
            else:
                try:
                    attempt.initial = base64.b64decode(initial_text, validate=True)
                except (binascii.Error, ValueError):
                    self.finish(attempt, "failure", "501 5.5.2 Cannot decode response",
                                "initial response is not base64")
                    return
            attempt.client_messages.append(attempt.initial)
        try:
            reply = self.mechanism(attempt)
        except _Abort:
            self.finish(attempt, "aborted", "501 5.7.0 Authentication aborted", "client sent *")
            return
        except _BadResponse:
            self.finish(attempt, "failure", "501 5.5.2 Cannot decode response",
                        "response is not base64")
            return
        self.send(reply)
        attempt.reply = reply

    def finish(self, attempt: AuthAttempt, result: str, reply: str, reason: str | None) -> None:
        attempt.result = result
        attempt.reason = reason
        attempt.reply = reply
        self.send(reply)

    def fail(self, attempt: AuthAttempt, reason: str, reply: str = _FAILED) -> str:
        attempt.result = "failure"
        attempt.reason = reason
        return reply

    def succeed(self, attempt: AuthAttempt, who: str) -> str:
        attempt.result = "success"
        attempt.authcid = who
        self.sess.authenticated_as = who
        return _SUCCESS

    def mechanism(self, attempt: AuthAttempt) -> str:
        mb = self.srv.misbehave
        if mb == "silent":
            while True:  # ends with ConnectionClosed (client gone) or a socket timeout
                attempt.responses.append(self.read_line())
        if mb == "endless-challenges":
            return self.endless(attempt)
        if mb == "malformed-challenge" and not attempt.mechanism.startswith("SCRAM-"):
            attempt.result = "failure"
            self.challenge(attempt, None, raw="%%% not base64 %%%")
            return self.fail(attempt, "client answered a malformed challenge")
        name = attempt.mechanism
        if name.startswith("SCRAM-SHA-"):
            return self.scram(attempt)
        handler = {
            "PLAIN": self.plain, "LOGIN": self.login, "CRAM-MD5": self.cram_md5,
            "EXTERNAL": self.external, "OAUTHBEARER": self.oauthbearer,
            "XOAUTH2": self.xoauth2,
        }.get(name)
        if handler is None:  # GSSAPI, NTLM, ...: offered, never implemented
            return self.fail(attempt, f"{name} is not implemented here",
                             "504 5.5.4 Mechanism not available")
        return handler(attempt)

    def endless(self, attempt: AuthAttempt) -> str:
        for _ in range(self.srv.max_challenges):
            self.challenge(attempt, self.srv.endless_challenge)
        return self.fail(attempt, "challenge limit reached")

    # -- mechanisms ----------------------------------------------------------------

    def plain(self, attempt: AuthAttempt) -> str:
        parts = self.first_message(attempt).split(b"\0")
        if len(parts) != 3:
            return self.fail(attempt, "malformed PLAIN message")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        attempt.authzid = authzid
        if authzid and authzid != authcid:
            return self.fail(attempt, "authzid not allowed")
        if self.srv.users.get(authcid) != password:
            return self.fail(attempt, "wrong user or password")
        return self.succeed(attempt, authcid)

    def login(self, attempt: AuthAttempt) -> str:
        if attempt.initial is not None:
            user = attempt.initial
        else:
            user = self.challenge(attempt, b"Username:")
        password = self.challenge(attempt, b"Password:")
        name = user.decode("utf-8", "replace")
        if self.srv.users.get(name) != password.decode("utf-8", "replace"):
            return self.fail(attempt, "wrong user or password")
        return self.succeed(attempt, name)

    def cram_md5(self, attempt: AuthAttempt) -> str:
        if attempt.initial is not None:
            return self.fail(attempt, "CRAM-MD5 takes no initial response",
                             "501 5.5.2 Unexpected initial response")
        stamp = f"{int.from_bytes(os.urandom(6), 'big')}.{int(time.time())}"
        challenge = f"<{stamp}@{self.srv.hostname}>"
        response = self.challenge(attempt, challenge.encode())
        user, _, digest = response.decode("utf-8", "replace").rpartition(" ")
        password = self.srv.users.get(user)
        if password is None:
            return self.fail(attempt, "unknown user")
        want = hmac.new(password.encode(), challenge.encode(), "md5").hexdigest()
        if not hmac.compare_digest(want, digest):
            return self.fail(attempt, "wrong digest")
        return self.succeed(attempt, user)

    def external(self, attempt: AuthAttempt) -> str:
        if not self.sess.tls or self.sess.client_cert_cn is None:
            return self.fail(attempt, "no client certificate",
                             "535 5.7.1 No client certificate")
        authzid = self.first_message(attempt).decode("utf-8", "replace")
        attempt.authzid = authzid
        if authzid and authzid != self.sess.client_cert_cn \
                and authzid not in self.srv.external_authzids:
            return self.fail(attempt, f"certificate {self.sess.client_cert_cn} may not act "
                                      f"as {authzid}")
        return self.succeed(attempt, authzid or self.sess.client_cert_cn)

    def _oauth_error(self, attempt: AuthAttempt, error: dict[str, str]) -> str:
        self.challenge(attempt, json.dumps(error).encode())
        return self.fail(attempt, "invalid token", "535 5.7.8 Username and Password not accepted")

    def oauthbearer(self, attempt: AuthAttempt) -> str:
        msg = self.first_message(attempt).decode("utf-8", "replace")
        gs2, sep, rest = msg.partition("\x01")
        parts = gs2.split(",")
        if not sep or len(parts) != 3 or parts[0] != "n" or not rest.endswith("\x01\x01"):
            return self.fail(attempt, "malformed OAUTHBEARER message",
                             "501 5.5.2 Malformed message")
        user = _unsaslname(parts[1][2:]) if parts[1].startswith("a=") else None
        attempt.authzid = user
        for kv in rest[:-2].split("\x01"):
            key, _, value = kv.partition("=")
            attempt.oauth_fields[key] = value
        token = attempt.oauth_fields.get("auth", "")
        if user is None or not token.startswith("Bearer ") \
                or self.srv.tokens.get(user) != token[len("Bearer "):]:
            return self._oauth_error(attempt, {
                "status": "invalid_token", "schemes": "bearer",
                "scope": "https://mail.example.com/"})
        return self.succeed(attempt, user)

    def xoauth2(self, attempt: AuthAttempt) -> str:
        msg = self.first_message(attempt).decode("utf-8", "replace")
        if not msg.endswith("\x01\x01"):
            return self.fail(attempt, "malformed XOAUTH2 message", "501 5.5.2 Malformed message")
        for kv in msg[:-2].split("\x01"):
            key, _, value = kv.partition("=")
            attempt.oauth_fields[key] = value
        user = attempt.oauth_fields.get("user")
        token = attempt.oauth_fields.get("auth", "")
        if user is None or not token.startswith("Bearer ") \
                or self.srv.tokens.get(user) != token[len("Bearer "):]:
            return self._oauth_error(attempt, {
                "status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        return self.succeed(attempt, user)

    # -- SCRAM ---------------------------------------------------------------------

    def _scram_fail(self, attempt: AuthAttempt, error: str) -> str:
        attempt.result = "failure"
        attempt.reason = f"e={error}"
        if self.srv.scram_error_style == "challenge":
            with contextlib.suppress(_Abort, _BadResponse):
                self.challenge(attempt, f"e={error}".encode())
        return _FAILED

    def scram(self, attempt: AuthAttempt) -> str:
        name = attempt.mechanism
        plus = name.endswith("-PLUS")
        hash_name = "sha1" if name.startswith("SCRAM-SHA-1") else "sha256"
        mb = self.srv.misbehave
        client_first = self.first_message(attempt)
        try:
            flag, authz, bare = client_first.split(b",", 2)
        except ValueError:
            return self._scram_fail(attempt, "other-error")
        attempt.gs2_header = flag + b"," + authz + b","
        cb_type = None
        if plus:
            if not flag.startswith(b"p="):
                return self._scram_fail(attempt, "server-does-support-channel-binding"
                                        if flag == b"y" else "channel-binding-not-supported")
            cb_type = flag[2:].decode("ascii", "replace")
        elif flag == b"y":
            offers_plus = any(m.endswith("-PLUS") for m in self.srv.mechanisms)
            if offers_plus and self.sess.tls:
                return self._scram_fail(attempt, "server-does-support-channel-binding")
        elif flag != b"n":
            return self._scram_fail(attempt, "channel-binding-not-supported")
        if authz:
            attempt.authzid = _unsaslname(authz.decode("utf-8", "replace")[2:]) or ""
        attrs = bare.decode("utf-8", "replace").split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            return self._scram_fail(attempt, "other-error")
        user = _unsaslname(attrs[0][2:])
        client_nonce = attrs[1][2:]
        if user is None or not client_nonce:
            return self._scram_fail(attempt, "invalid-username-encoding")
        creds = self.srv._scram[hash_name].get(user)
        known = creds is not None
        if creds is None:  # go on with fake credentials: no user enumeration
            creds = scram_credentials(hash_name, os.urandom(8).hex(),
                                      iterations=self.srv.iterations)
        server_nonce = base64.b64encode(os.urandom(18)).decode("ascii")
        nonce = server_nonce if mb == "bad-nonce" else client_nonce + server_nonce
        iterations = self.srv.huge_iterations if mb == "huge-iterations" else creds.iterations
        server_first = (f"r={nonce},s={base64.b64encode(creds.salt).decode()},"
                        f"i={iterations}").encode()
        if mb == "malformed-challenge":
            attempt.result = "failure"
            self.challenge(attempt, None, raw="%%% r=not,s=base64 %%%")
            return self.fail(attempt, "client answered a malformed challenge")
        if mb in ("bad-nonce", "huge-iterations"):
            attempt.result = "failure"
        client_final = self.challenge(attempt, server_first)
        if mb in ("bad-nonce", "huge-iterations"):
            return self.fail(attempt, f"client went on after {mb}")
        try:
            without_proof, proof_b64 = client_final.rsplit(b",p=", 1)
            fields = dict(a.split(b"=", 1) for a in without_proof.split(b","))
            cbind_input = base64.b64decode(fields[b"c"], validate=True)
            proof = base64.b64decode(proof_b64, validate=True)
        except (ValueError, KeyError, binascii.Error):
            return self._scram_fail(attempt, "other-error")
        # channel binding: the server's own view of the TLS connection
        cb_data = b""
        if plus:
            assert cb_type is not None
            own = None
            if isinstance(self.stream, _TLSStream):
                own = self.stream.binding(cb_type)
            if own is None:
                return self._scram_fail(attempt, "unsupported-channel-binding-type")
            if mb == "cb-mismatch":  # what a TLS-terminating man in the middle would see
                own = hashlib.sha256(b"MITM" + own).digest()[:len(own)]
            attempt.channel_binding = (cb_type, own)
            cb_data = own
        if cbind_input != attempt.gs2_header + cb_data:
            return self._scram_fail(attempt, "channel-bindings-dont-match")
        attempt.cb_verified = plus
        if fields.get(b"r") != nonce.encode():
            return self._scram_fail(attempt, "other-error")
        auth_message = bare + b"," + server_first + b"," + without_proof
        signature = hmac.new(creds.stored_key, auth_message, hash_name).digest()
        if len(proof) != len(signature):
            return self._scram_fail(attempt, "invalid-proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not known:
            return self._scram_fail(attempt, "unknown-user")
        if not hmac.compare_digest(hashlib.new(hash_name, client_key).digest(),
                                   creds.stored_key):
            return self._scram_fail(attempt, "invalid-proof")
        if mb == "server-error":
            return self._scram_fail(attempt, self.srv.scram_error)
        if mb == "no-server-final":
            return self.succeed(attempt, user)
        server_signature = hmac.new(creds.server_key, auth_message, hash_name).digest()
        if mb == "bad-signature":
            server_signature = bytes([server_signature[0] ^ 0x55]) + server_signature[1:]
        final = self.challenge(attempt, b"v=" + base64.b64encode(server_signature))
        if final != b"":
            return self.fail(attempt, "non-empty answer to server-final")
        return self.succeed(attempt, user)
