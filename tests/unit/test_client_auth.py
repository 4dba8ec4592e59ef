"""The AUTH step of the sans-IO client (smtp/client.py ``authenticate``), driven by
scripted server replies: what goes on the wire, what a trace shows, when the
password and the channel binding data are asked for, and msmtp's errors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from msmtp_twisted import sysexits
from msmtp_twisted.auth import optional
from msmtp_twisted.auth.mechanisms import MECHANISMS as BUILTIN
from msmtp_twisted.smtp.client import (
    CHANNEL_BINDING,
    PASSWORD,
    RECEIVE,
    SEND_BODY,
    AuthRequest,
    Send,
    SendmailRequest,
    SMTPFailure,
    authenticate,
    etrn_session,
    parse_capabilities,
    sendmail_session,
)
from tests.unit.test_sasl import ScramServer
from tests.unit.test_smtp_client import R


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def caps(auth: str | None = "PLAIN LOGIN CRAM-MD5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256"):
    lines = ["250-mail.example", "250-PIPELINING"]
    if auth is not None:
        lines.append(f"250-AUTH {auth}")
    lines.append("250 8BITMIME")
    return parse_capabilities(R("\n".join(lines)))


class Drive:
    """Runs ``authenticate``; ``server(line) -> reply text`` answers each command."""

    def __init__(self, server, *, binding=None, password=None):
        self.server = server
        self.binding = binding if binding is not None else {}
        self.password = password
        self.sent: list[str] = []
        self.shown: list[str] = []
        self.asked: list[object] = []

    def run(self, gen):
        value = None
        pending: list[str] = []
        while True:
            try:
                action = gen.send(value)
            except StopIteration as stop:
                return stop.value
            value = None
            if isinstance(action, Send):
                line = action.data.decode().rstrip("\r\n")
                shown = (action.shown if action.shown is not None else action.data)
                self.sent.append(line)
                self.shown.append(shown.decode().rstrip("\r\n"))
                pending.append(line)
            elif action is RECEIVE:
                assert len(pending) == 1, pending  # AUTH is never pipelined
                value = R(self.server(pending.pop()))
            elif action is CHANNEL_BINDING:
                self.asked.append(CHANNEL_BINDING)
                value = self.binding
            elif action is PASSWORD:
                self.asked.append(PASSWORD)
                value = self.password
            else:  # pragma: no cover
                raise AssertionError(action)

    def fails(self, gen) -> SMTPFailure:
        with pytest.raises(SMTPFailure) as e:
            self.run(gen)
        return e.value


def script(*replies):
    queue = list(replies)
    return lambda line: queue.pop(0)


def test_plain_inline_and_masked():
    d = Drive(script("235 2.7.0 ok"))
    name = d.run(authenticate(caps(), AuthRequest("plain", "joe", "s3cret", tls=True)))
    assert name == "PLAIN"
    assert d.sent == ["AUTH PLAIN " + b64(b"\0joe\0s3cret")]
    assert d.shown == ["AUTH PLAIN [hidden]"]
    assert d.asked == []  # explicit non-PLUS method: no channel binding asked


def test_login_flow():
    d = Drive(script("334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 ok"))
    d.run(authenticate(caps(), AuthRequest("LOGIN", "joe", "pw", tls=True)))
    assert d.sent == ["AUTH LOGIN", b64(b"joe"), b64(b"pw")]
    assert d.shown == ["AUTH LOGIN", "[hidden]", "[hidden]"]


def test_cram_md5_flow():
    challenge = b"<1896.697170952@postoffice.example.net>"
    d = Drive(script("334 " + b64(challenge), "235 ok"))
    d.run(authenticate(caps(), AuthRequest("cram-md5", "joe", "pw", tls=True)))
    digest = hmac.new(b"pw", challenge, hashlib.md5).hexdigest()
    assert d.sent == ["AUTH CRAM-MD5", b64(f"joe {digest}".encode())]


def _scram_server(hash_name="sha256", password="pw", **kw):
    server = ScramServer(hash_name, password, **kw)
    state = {"step": 0}

    def answer(line: str) -> str:
        state["step"] += 1
        if line.startswith("AUTH "):
            return "334 "
        if state["step"] == 2:
            return "334 " + b64(server.first(base64.b64decode(line)))
        if state["step"] == 3:
            final = server.final(base64.b64decode(line))
            if not server.authenticated:  # as Dovecot: a 535, no e= attribute
                return "535 5.7.8 bad"
            return "334 " + b64(final)
        assert line == ""  # the empty response after server-final
        return "235 2.7.0 ok"
    return answer


def test_scram_flow_as_msmtp_sends_it():
    d = Drive(_scram_server())
    assert d.run(authenticate(caps(), AuthRequest("", "joe", "pw"))) == "SCRAM-SHA-256"
    assert d.sent[0] == "AUTH SCRAM-SHA-256"  # no initial response, as msmtp
    assert base64.b64decode(d.sent[1]).startswith(b"n,,n=joe,r=")
    assert d.sent[3] == ""
    assert d.shown == ["AUTH SCRAM-SHA-256", "[hidden]", "[hidden]", ""]


def test_scram_wrong_password_is_77_with_server_reply():
    d = Drive(_scram_server(password="other"))
    failure = d.fails(authenticate(caps(), AuthRequest("scram-sha-256", "joe", "pw")))
    assert failure.exitcode == sysexits.EX_NOPERM
    assert failure.message == "authentication failed (method SCRAM-SHA-256)"
    assert failure.reply is not None and failure.reply.code == 535
    assert not failure.quit


def test_scram_success_without_server_proof_is_refused():
    d = Drive(script("334 ", "334 " + b64(b"r=CLIENTNONCE"), "235 ok"))
    # the server-first above is malformed: protocol error, the session just ends
    failure = d.fails(authenticate(caps(), AuthRequest("scram-sha-1", "joe", "pw")))
    assert failure.exitcode == sysexits.EX_PROTOCOL

    state = {}

    def early_success(line: str) -> str:
        if line.startswith("AUTH"):
            return "334 "
        if "first" not in state:
            state["first"] = ScramServer("sha1", "pw")
            return "334 " + b64(state["first"].first(base64.b64decode(line)))
        return "235 2.7.0 ok"  # accepts the proof but never proves itself
    failure = Drive(early_success).fails(
        authenticate(caps(), AuthRequest("scram-sha-1", "joe", "pw")))
    assert failure.exitcode == sysexits.EX_NOPERM
    assert "did not prove" in failure.message


def test_scram_plus_uses_channel_binding_and_asks_for_it():
    binding = {"tls-exporter": b"\x01" * 32}
    server = ScramServer("sha256", "pw", plus=True,
                         channel_binding=("tls-exporter", binding["tls-exporter"]))
    steps = iter(["auth", "first", "final", "done"])

    def answer(line: str) -> str:
        step = next(steps)
        if step == "auth":
            return "334 "
        if step == "first":
            return "334 " + b64(server.first(base64.b64decode(line)))
        if step == "final":
            return "334 " + b64(server.final(base64.b64decode(line)))
        return "235 ok"
    d = Drive(answer, binding=binding)
    offered = caps("PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS")
    assert d.run(authenticate(offered, AuthRequest("", "joe", "pw", tls=True))) == (
        "SCRAM-SHA-256-PLUS")
    assert d.asked == [CHANNEL_BINDING]
    assert base64.b64decode(d.sent[1]).startswith(b"p=tls-exporter,,n=joe,")


def test_auto_choice_without_binding_data_skips_plus():
    d = Drive(script("334 "), binding={})
    gen = authenticate(caps("SCRAM-SHA-256-PLUS SCRAM-SHA-256"),
                       AuthRequest("", "joe", "pw", tls=True))
    with pytest.raises(IndexError):  # the script ends after the first 334
        d.run(gen)
    assert d.sent[0] == "AUTH SCRAM-SHA-256"


def test_explicit_plus_without_tls():
    failure = Drive(script()).fails(
        authenticate(caps("SCRAM-SHA-256-PLUS"), AuthRequest("scram-sha-256-plus", "u", "p")))
    assert failure.exitcode == sysexits.EX_UNAVAILABLE
    assert failure.message == (
        "authentication method SCRAM-SHA-256-PLUS needs TLS channel binding information")


def test_password_asked_only_when_needed():
    d = Drive(script("235 ok"), password="fromkeyring")
    d.run(authenticate(caps(), AuthRequest("plain", "joe", None, tls=True)))
    assert d.asked == [PASSWORD]
    assert d.sent == ["AUTH PLAIN " + b64(b"\0joe\0fromkeyring")]

    d = Drive(script("334 ", "235 ok"))
    d.run(authenticate(caps("EXTERNAL"), AuthRequest("external", None, None, tls=True)))
    assert d.asked == []
    assert d.sent == ["AUTH EXTERNAL", ""]  # the empty authzid is sent, not skipped


def test_no_password_anywhere():
    failure = Drive(script(), password=None).fails(
        authenticate(caps(), AuthRequest("login", "joe", None, tls=True)))
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_UNAVAILABLE, "authentication method LOGIN needs a password")


def test_no_user():
    failure = Drive(script()).fails(authenticate(caps(), AuthRequest("plain", None, "p")))
    assert (failure.exitcode, failure.message) == (
        sysexits.EX_UNAVAILABLE, "authentication method PLAIN needs a user name")


@pytest.mark.parametrize("offered, request_, exitcode, message", [
    (None, AuthRequest("plain", "u", "p"), 69, "the server does not support authentication"),
    ("PLAIN", AuthRequest("login", "u", "p"), 69,
     "the server does not support authentication method LOGIN"),
    ("PLAIN LOGIN", AuthRequest("", "u", "p"), 69, "cannot use a secure authentication method"),
    ("GSSAPI", AuthRequest("", "u", "p", tls=True), 69,
     "cannot find a usable authentication method"),
    # this installation without the optional packages
    ("GSSAPI", AuthRequest("gssapi", "u", "p", tls=True, supported=BUILTIN), 70,
     "authentication method GSSAPI is not available"),
    ("NTLM", AuthRequest("ntlm", "u", "p", tls=True, supported=BUILTIN), 70,
     "authentication method NTLM is not available"),
])
def test_choice_errors(offered, request_, exitcode, message, monkeypatch):
    # the optional packages count as installed (supported=BUILTIN leaves them out), so
    # the result does not depend on the extras this test run has
    monkeypatch.setattr(optional, "availability", lambda: dict.fromkeys(optional.PACKAGES))
    failure = Drive(script()).fails(authenticate(caps(offered), request_))
    assert (failure.exitcode, failure.message) == (exitcode, message)
    # only a server without AUTH at all gets a QUIT, as in msmtp
    assert failure.quit == (offered is None)


@pytest.mark.parametrize(("mech", "package"), [("GSSAPI", "gssapi"), ("NTLM", "pyspnego")])
def test_choice_error_names_a_missing_package(mech, package, monkeypatch):
    monkeypatch.setattr(optional, "availability", lambda: {
        m: f"needs the Python package {p[1]}" for m, p in optional.PACKAGES.items()})
    failure = Drive(script()).fails(authenticate(
        caps(mech), AuthRequest(mech.lower(), "u", "p", tls=True, supported=BUILTIN)))
    assert (failure.exitcode, failure.message) == (
        70, f"authentication method {mech} is not available "
            f"(needs the Python package {package})")


def test_optional_auth_skipped_when_not_offered():
    d = Drive(script())
    assert d.run(authenticate(caps(None), AuthRequest("", "u", "p", optional=True))) == ""
    assert d.sent == []


def test_refusal_of_the_auth_command():
    d = Drive(script("504 5.5.4 unrecognized"))
    failure = d.fails(authenticate(caps(), AuthRequest("plain", "u", "p", tls=True)))
    assert failure.exitcode == sysexits.EX_NOPERM
    assert failure.message == "authentication failed (method PLAIN)"


def test_xoauth2_json_error_is_shown():
    error = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
    d = Drive(script("334 ", "334 " + b64(error), "535 5.7.8 Username and Password not accepted"))
    failure = d.fails(authenticate(caps("XOAUTH2"), AuthRequest("xoauth2", "u", "tok")))
    assert d.sent == ["AUTH XOAUTH2", b64(b"user=u\x01auth=Bearer tok\x01\x01"), ""]
    assert failure.exitcode == sysexits.EX_NOPERM
    assert failure.details == [
        'server error: {"status": "401", "schemes": "bearer", '
        '"scope": "https://mail.google.com/"}']


def test_oauthbearer_inline_with_host_and_port():
    d = Drive(script("235 ok"))
    d.run(authenticate(caps("OAUTHBEARER"),
                       AuthRequest("oauthbearer", "u@x", "tok", host="mail.x", port=587)))
    assert d.sent == ["AUTH OAUTHBEARER " + b64(
        b"n,a=u@x,\x01host=mail.x\x01port=587\x01auth=Bearer tok\x01\x01")]


def test_malformed_challenge_ends_the_session():
    failure = Drive(script("334 !!notbase64!!")).fails(
        authenticate(caps(), AuthRequest("cram-md5", "u", "p", tls=True)))
    assert failure.exitcode == sysexits.EX_PROTOCOL
    assert "CRAM-MD5" in failure.message


def test_endless_challenges_end():
    d = Drive(lambda line: "334 " + b64(b"more?"))
    failure = d.fails(authenticate(caps(), AuthRequest("login", "u", "p", tls=True)))
    assert failure.exitcode == sysexits.EX_PROTOCOL
    assert len(d.sent) == 3


def test_passwords_never_in_reprs():
    request = AuthRequest("plain", "joe", "hunter2")
    assert "hunter2" not in repr(request)
    send = Drive(script("235 ok"))
    send.run(authenticate(caps(), AuthRequest("plain", "joe", "hunter2", tls=True)))
    assert all("hunter2" not in s and b64(b"\0joe\0hunter2") not in s for s in send.shown)


def _run_session(gen, replies):
    sent, value = [], None
    queue = list(replies)
    while True:
        try:
            action = gen.send(value)
        except StopIteration as stop:
            return sent, stop.value
        except SMTPFailure as failure:
            return sent, failure
        value = None
        if isinstance(action, Send):
            sent.append(action.data.decode().rstrip("\r\n"))
        elif action is RECEIVE:
            value = R(queue.pop(0))
        elif action is SEND_BODY:
            value = 10
        elif action is CHANNEL_BINDING:
            value = {}


def test_sendmail_authenticates_after_dsn_check_and_before_mail():
    ehlo = "250-x\n250-AUTH PLAIN\n250 PIPELINING"
    request = SendmailRequest("a@x", ("b@x",), auth=AuthRequest("plain", "u", "p", tls=True))
    sent, result = _run_session(sendmail_session(request), [
        "220 hi", ehlo, "235 ok", "250 ok", "250 ok", "354 go", "250 queued"])
    assert sent[:3] == ["EHLO localhost", "AUTH PLAIN " + b64(b"\0u\0p"), "MAIL FROM:<a@x>"]
    assert result.mailsize == 10

    # DSN missing is reported before any AUTH, with QUIT (msmtp's order)
    request = SendmailRequest("a@x", ("b@x",), dsn_notify="never",
                              auth=AuthRequest("plain", "u", "p", tls=True))
    sent, failure = _run_session(sendmail_session(request), ["220 hi", ehlo])
    assert failure.message == "the server does not support DSN" and failure.quit
    assert sent == ["EHLO localhost"]


def test_etrn_authenticates_after_etrn_check():
    ehlo = "250-x\n250-AUTH PLAIN\n250 ETRN"
    sent, result = _run_session(
        etrn_session("smtp", "localhost", "example.net", auth=AuthRequest("plain", "u", "p")),
        ["220 hi", ehlo, "235 ok", "250 queued"])
    assert sent == ["EHLO localhost", "AUTH PLAIN " + b64(b"\0u\0p"), "ETRN example.net"]
