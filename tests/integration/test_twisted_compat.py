"""The ``twisted.mail.smtp`` drop-in behaves as Twisted 26.10's sender factories do:
partial recipients, the success value, error classes, ``retries`` and ``timeout``.

Twisted's own factory runs beside ours in the same child process, against the same
real server, as the reference; where we deliberately differ (a mail is never sent
twice) the test says so.  Sessions are told apart by their EHLO/HELO name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import CLOSE, HANG, RecordingServer

pytestmark = pytest.mark.timeout(120)

CHILD = r'''
import io, json, sys
from twisted.internet import defer, task
from twisted.mail import smtp as twisted_smtp
from twisted.python.failure import Failure
from msmtp_twisted.protocol import compat

IMPLS = {"twisted": twisted_smtp, "ours": compat}
RUNS = json.loads(sys.argv[1])


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def outcome(result):
    if isinstance(result, Failure):
        v = result.value
        out = {"class": next((c.__name__ for c in type(v).__mro__
                              if c.__module__ == "twisted.mail._except"), type(v).__name__)}
        for name in ("code", "resp", "isFatal", "retry", "exitcode", "message"):
            if hasattr(v, name):
                out[name] = text(getattr(v, name))
        if getattr(v, "addresses", None) is not None:
            out["addresses"] = [[text(a), c, text(r)] for a, c, r in v.addresses]
        return out
    number, addresses = result
    return {"ok": number, "addresses": [[text(a), c, text(r)] for a, c, r in addresses]}


def run(reactor, impl_name, spec):
    impl = IMPLS[impl_name]
    name = f"{impl_name}-{spec['name']}"
    d = defer.Deferred()
    body = io.BytesIO(spec.get("body", "Subject: t\n\nbody\n").encode())
    to = spec.get("to", ["you@example.org"])
    if spec.get("factory") == "smtp":
        factory = impl.SMTPSenderFactory("me@example.com", to, body, d, **spec.get("kw", {}))
    else:
        kw = {"requireAuthentication": False, "requireTransportSecurity": False}
        kw.update(spec.get("kw", {}))
        factory = impl.ESMTPSenderFactory(None, None, "me@example.com", to, body, d, **kw)
    factory.domain = name.encode()
    reactor.connectTCP("127.0.0.1", spec["port"], factory)
    d.addBoth(outcome)
    d.addCallback(lambda out: task.deferLater(reactor, 0.3, lambda: out))
    return d


@defer.inlineCallbacks
def main(reactor):
    results = {}
    for spec in RUNS:
        for impl_name in spec.get("impls", ["twisted", "ours"]):
            results[f"{impl_name}-{spec['name']}"] = yield run(reactor, impl_name, spec)
    print(json.dumps(results))

task.react(main)
'''


def _run(runs: list[dict], tmp_path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), json.dumps(runs)],
                          capture_output=True, text=True, timeout=100, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sessions(server: RecordingServer, client: str) -> list:
    return [s for s in server.sessions
            if s.commands and s.commands[0].split(" ", 1)[-1] == client]


def _mails(server: RecordingServer, client: str) -> list:
    return [m for s in _sessions(server, client) for m in s.messages]


# -- partial recipients and the success value -------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_refused_recipients_do_not_stop_the_mail(tmp_path, pipelining) -> None:
    """As Twisted's: the mail goes to the accepted recipients and the result lists
    every recipient with its RCPT reply, refused ones included."""
    capabilities = None if pipelining else ["SIZE 10240000", "8BITMIME"]
    with RecordingServer(capabilities=capabilities, replies={
            "RCPT:gone@x.org": "550 5.1.1 no such user",
            "RCPT:later@x.org": "450 4.2.0 try later"}) as server:
        to = ["a@x.org", "gone@x.org", "b@x.org", "later@x.org"]
        results = _run([{"name": "partial", "port": server.port, "to": to}], tmp_path)
        server.wait_idle(timeout=10)
    expected = {"ok": 2, "addresses": [
        ["a@x.org", 250, "2.1.5 Ok"], ["gone@x.org", 550, "5.1.1 no such user"],
        ["b@x.org", 250, "2.1.5 Ok"], ["later@x.org", 450, "4.2.0 try later"]]}
    assert results["twisted-partial"] == expected
    assert results["ours-partial"] == expected
    for client in ("twisted-partial", "ours-partial"):
        [mail] = _mails(server, client)
        assert mail.recipients == ["a@x.org", "b@x.org"]
        assert mail.data_bytes() == b"Subject: t\r\n\r\nbody\r\n"
    if pipelining:  # the whole envelope in one go, as msmtp sends it
        [session] = _sessions(server, "ours-partial")
        assert session.bursts[1] == ["MAIL FROM:<me@example.com>"] + [
            f"RCPT TO:<{a}>" for a in to] + ["DATA"]


def test_no_recipient_accepted(tmp_path) -> None:
    with RecordingServer(replies={"RCPT": "550 5.1.1 no"}) as server:
        results = _run([{"name": "none", "port": server.port,
                         "to": ["a@x.org", "b@x.org"]}], tmp_path)
        server.wait_idle(timeout=10)
    for impl in ("twisted", "ours"):
        result = results[f"{impl}-none"]
        assert result["class"] == "SMTPDeliveryError"
        assert (result["code"], result["resp"]) == (550, "No recipients accepted")
        assert result["addresses"] == [["a@x.org", 550, "5.1.1 no"], ["b@x.org", 550, "5.1.1 no"]]
        assert _mails(server, f"{impl}-none") == []
    assert results["ours-none"]["exitcode"] == 65
    assert results["ours-none"]["message"] == "recipient address a@x.org not accepted by the server"


def test_pipelined_data_accepted_without_recipients_gets_a_lone_dot(tmp_path) -> None:
    """DATA went out with the refused RCPTs; a server that accepts it anyway gets
    an empty mail ending (RFC 2920, 3.1), never the message."""
    with RecordingServer(replies={"RCPT": "550 5.1.1 no", "DATA": "354 go ahead"}) as server:
        results = _run([{"name": "lonedot", "port": server.port, "impls": ["ours"]}], tmp_path)
        server.wait_idle(timeout=10)
    assert results["ours-lonedot"]["class"] == "SMTPDeliveryError"
    [session] = _sessions(server, "ours-lonedot")
    assert session.commands[-3:] == ["DATA", "RSET", "QUIT"]
    assert [m.raw_bytes() for m in session.messages] == [b""]


# -- error classes -----------------------------------------------------------------------------

ERROR_CASES = [
    # (name, server arguments, factory keywords, Twisted class, code)
    ("greeting", {"greeting": "554 5.3.2 go away"}, {}, "SMTPConnectError", 554),
    ("ehlo-required", {"ehlo_refused": True}, {"requireAuthentication": True},
     "EHLORequiredError", 502),
    ("tls-required", {}, {"requireTransportSecurity": True}, "TLSRequiredError", 502),
    ("mail", {"replies": {"MAIL": "553 5.7.1 not you"}}, {}, "SMTPDeliveryError", 553),
    ("data", {"replies": {"DATA": "554 5.6.0 no data"}}, {}, "SMTPDeliveryError", 554),
    ("final-dot", {"replies": {"EOD": "552 5.3.4 too big"}}, {}, "SMTPDeliveryError", 552),
    ("garbage", {"replies": {"MAIL": b"garbage\r\n"}}, {}, "SMTPProtocolError", -1),
    ("closed", {"replies": {"MAIL": CLOSE}}, {}, "SMTPConnectError", -1),
    ("timeout", {"replies": {"MAIL": HANG}}, {"timeout": 1}, "SMTPTimeoutError", -1),
]


def test_failures_are_twisteds_classes(tmp_path) -> None:
    servers = {name: RecordingServer(**server).start() for name, server, *_ in ERROR_CASES}
    try:
        runs = [{"name": name, "port": servers[name].port, "kw": dict(kw, retries=0)}
                for name, _, kw, _, _ in ERROR_CASES]
        results = _run(runs, tmp_path)
    finally:
        for server in servers.values():
            server.stop()
    for name, _, _, cls, code in ERROR_CASES:
        twisted, ours = results[f"twisted-{name}"], results[f"ours-{name}"]
        assert twisted["class"] == cls, (name, twisted)
        assert ours["class"] == cls, (name, ours)
        for field in ("code", "isFatal", "retry"):
            assert ours[field] == twisted[field], (name, field, twisted, ours)
        assert ours["code"] == code
        if name not in ("garbage", "closed", "timeout"):  # our own texts there
            assert ours["resp"] == twisted["resp"], (name, twisted, ours)
        assert isinstance(ours["exitcode"], int) and ours["message"]


def test_authentication_failures(tmp_path) -> None:
    """AUTH refused: AUTHDeclinedError; AUTH required but not offered:
    AUTHRequiredError.  Over TLS with a context that checks nothing (ours sends no
    password in clear, Twisted's would)."""
    pytest.importorskip("OpenSSL")
    from tests.servers.tlspki import PKI

    pki = PKI(tmp_path / "pki")
    leaf = pki.leaf(pki.ca())
    with RecordingServer(tls_context=leaf.server_context(), auth={"user": "right"}) as declined, \
         RecordingServer(tls_context=leaf.server_context()) as no_auth:
        script = CHILD.replace(
            'factory = impl.ESMTPSenderFactory(None, None,',
            'kw["contextFactory"] = __import__("twisted.internet.ssl", fromlist=["x"])'
            '.ClientContextFactory()\n        factory = impl.ESMTPSenderFactory(b"user", b"wrong",')
        runs = [{"name": "declined", "port": declined.port, "kw": {"retries": 0}},
                {"name": "required", "port": no_auth.port,
                 "kw": {"retries": 0, "requireAuthentication": True}}]
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), json.dumps(runs)],
                              capture_output=True, text=True, timeout=100, cwd=ROOT,
                              env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
        assert proc.returncode == 0, proc.stderr
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    for impl in ("twisted", "ours"):
        assert results[f"{impl}-declined"]["class"] == "AUTHDeclinedError"
        assert results[f"{impl}-declined"]["code"] == 535
        assert results[f"{impl}-required"]["class"] == "AUTHRequiredError"
        assert results[f"{impl}-required"]["code"] == 502
    assert results["ours-declined"]["exitcode"] == 77


# -- retries ----------------------------------------------------------------------------------


def test_retries_never_send_a_mail_twice(tmp_path) -> None:
    """The server takes the whole mail and drops the connection without a verdict:
    Twisted's factory sends it again on each retry; ours reports the failure (the
    server may well have the mail) and sends it once."""
    with RecordingServer(replies={"EOD": CLOSE}) as server:
        results = _run([{"name": "eod", "port": server.port, "kw": {"retries": 2}}], tmp_path)
        server.wait_idle(timeout=10)
    assert len(_mails(server, "twisted-eod")) == 3
    assert len(_mails(server, "ours-eod")) == 1
    assert results["ours-eod"]["class"] == "SMTPConnectError"
    assert results["twisted-eod"]["class"] == "SMTPConnectError"


def test_retries_reconnect_when_the_server_cannot_have_the_mail(tmp_path) -> None:
    """A temporary refusal (421 greeting), a dropped connection and a timeout, all
    before the final dot: a new connection, as Twisted makes one, and the mail
    arrives once."""

    def flaky(kind):
        def reply(session, command):
            if session.index % 2 == 0:  # each client's first attempt
                return {"greeting": "421 4.3.2 busy", "close": CLOSE, "hang": HANG}[kind]
            return None
        return reply

    servers = {
        "greeting": RecordingServer(greeting=lambda s, c: flaky("greeting")(s, c)
                                    or "220 mx.test ESMTP"),
        "close": RecordingServer(replies={"RCPT": flaky("close")}),
        "hang": RecordingServer(replies={"DATA": flaky("hang")}),
    }
    for server in servers.values():
        server.start()
    try:
        runs = [{"name": name, "port": server.port, "kw": {"retries": 1, "timeout": 1}}
                for name, server in servers.items()]
        results = _run(runs, tmp_path)
        for server in servers.values():
            server.wait_idle(timeout=10)
    finally:
        for server in servers.values():
            server.stop()
    for name, server in servers.items():
        for impl in ("twisted", "ours"):
            client = f"{impl}-{name}"
            assert results[client] == {"ok": 1, "addresses": [["you@example.org", 250,
                                                                "2.1.5 Ok"]]}, (client,
                                                                                results[client])
            if name != "greeting":  # (a refused greeting gets no EHLO to tell them apart)
                assert len(_sessions(server, client)) == 2
            assert len(_mails(server, client)) == 1
        assert len(server.sessions) == 4


def test_retries_run_out(tmp_path) -> None:
    with RecordingServer(greeting="421 4.3.2 busy") as server:
        results = _run([{"name": "busy", "port": server.port, "kw": {"retries": 2}}], tmp_path)
        server.wait_idle(timeout=10)
    for impl in ("twisted", "ours"):
        assert results[f"{impl}-busy"]["class"] == "SMTPConnectError"
        assert results[f"{impl}-busy"]["code"] == 421
        assert len(server.sessions) == 6  # 3 each


# -- timeout -------------------------------------------------------------------------------------


def test_timeout_after_the_final_dot_is_reported_not_retried(tmp_path) -> None:
    with RecordingServer(replies={"EOD": HANG}) as server:
        results = _run([{"name": "slow", "port": server.port, "impls": ["ours"],
                         "kw": {"retries": 3, "timeout": 1}}], tmp_path)
        server.wait_idle(timeout=10)
    assert results["ours-slow"]["class"] == "SMTPTimeoutError"
    assert len(_sessions(server, "ours-slow")) == 1


def test_sendmail_has_a_timeout(tmp_path) -> None:
    """Twisted's sendmail() waits for ever on a silent server; ours takes
    ``timeout=`` (default DEFAULT_TIMEOUT) and closes the connection."""
    with RecordingServer(greeting=HANG) as server:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import json, time
            from twisted.internet import task
            from msmtp_twisted.protocol import compat

            def main(reactor):
                start = time.monotonic()
                d = compat.sendmail("127.0.0.1", "me@example.com", ["you@example.org"],
                                    b"Subject: x\\n\\nb\\n", port={server.port},
                                    reactor=reactor, timeout=1)
                d.addErrback(lambda f: print(json.dumps(
                    {{"class": [c.__name__ for c in type(f.value).__mro__
                               if c.__module__ == "twisted.mail._except"][0],
                      "elapsed": time.monotonic() - start,
                      "default": compat.DEFAULT_TIMEOUT}})))
                return d
            task.react(main)
        """)], capture_output=True, text=True, timeout=100, cwd=ROOT,
            env=ours_env({"PATH": "/usr/bin:/bin"}))
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        server.wait_idle(timeout=10)
    assert result["class"] == "SMTPTimeoutError"
    # sendmail() retries 5 times, as Twisted's: the mail never left
    assert 5 < result["elapsed"] < 30
    assert len(server.sessions) == 6
    assert result["default"] == 600.0
