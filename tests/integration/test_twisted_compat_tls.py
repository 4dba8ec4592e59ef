"""Security of the ``twisted.mail.smtp`` drop-in: whom the mail and the password go to.

Twisted 26.10's own ``ESMTPSenderFactory``/``sendmail`` run side by side with
ours, in the same child process, against the same real TLS servers (certificates
from tests/servers/tlspki.py; the test CA is the only trusted one, through
``SSL_CERT_FILE``, which both Twisted's ``platformTrust`` and OpenSSL read).  For
each combination of ``contextFactory``, ``hostname`` and
``requireTransportSecurity`` the server records, per client, whether STARTTLS
happened, which passwords it received and which mails.  Ours must refuse exactly
where Twisted's refuses (same error class), and never hand over a password or a
mail that Twisted's would not.

Each session is told apart by its EHLO name (``factory.domain``), ``<impl>-<case>``.
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

pytestmark = pytest.mark.timeout(180)

USER, PASSWORD = "user", "secret"

CHILD = r'''
import io, json, sys
from twisted.internet import defer, ssl, task
from twisted.mail import smtp as twisted_smtp
from twisted.python.failure import Failure
from msmtp_twisted.protocol import compat

IMPLS = {"twisted": twisted_smtp, "ours": compat}
CASES = json.loads(sys.argv[1])


def context(spec):
    if spec is None:
        return None
    kind, _, name = spec.partition(":")
    if kind == "options":
        return ssl.optionsForClientTLS(name)
    return ssl.ClientContextFactory()  # "noverify": an old context factory, no checks


def outcome(result):
    if isinstance(result, Failure):
        value = result.value
        twisted_class = next((c.__name__ for c in type(value).__mro__
                              if c.__module__ == "twisted.mail._except"), type(value).__name__)
        return {"error": twisted_class, "text": str(value)[:300]}
    return {"ok": result[0]}


def run(reactor, impl_name, case):
    impl = IMPLS[impl_name]
    name = f"{impl_name}-{case['name']}"
    if case.get("sendmail"):
        d = impl.sendmail("127.0.0.1", "me@example.com", ["you@example.org"],
                          b"Subject: t\n\nbody\n", senderDomainName=name, port=case["port"],
                          reactor=reactor, username=b"user", password=b"secret",
                          requireTransportSecurity=case.get("rts", False))
    else:
        d = defer.Deferred()
        factory = impl.ESMTPSenderFactory(
            b"user", b"secret", "me@example.com", ["you@example.org"],
            io.BytesIO(b"Subject: t\n\nbody\n"), d, retries=0, timeout=20,
            contextFactory=context(case.get("context")),
            requireAuthentication=case.get("rauth", True),
            requireTransportSecurity=case.get("rts", True),
            hostname=case.get("hostname"))
        factory.domain = name.encode()
        if case.get("implicit"):  # as Buildbot's useSmtps: connectSSL, no checks
            reactor.connectSSL("127.0.0.1", case["port"], factory, ssl.ClientContextFactory())
        else:
            reactor.connectTCP("127.0.0.1", case["port"], factory)
    d.addBoth(outcome)
    # let the QUIT/close finish before the next client, so sessions do not overlap
    d.addCallback(lambda out: task.deferLater(reactor, 0.2, lambda: out))
    return d


@defer.inlineCallbacks
def main(reactor):
    results = {}
    for case in CASES:
        for impl_name in ("twisted", "ours"):
            results[f"{impl_name}-{case['name']}"] = yield run(reactor, impl_name, case)
    print(json.dumps(results))

task.react(main)
'''


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    maker = PKI(tmp_path_factory.mktemp("pki"))
    maker.root = maker.ca()
    # a certificate issued (by the trusted CA) for another host only
    maker.wrong = maker.leaf(maker.root, "wrong.example", dns=["wrong.example"], ips=[])
    # the right one: mail.test and 127.0.0.1
    maker.right = maker.leaf(maker.root, "mail.test", dns=["mail.test"], ips=["127.0.0.1"])
    return maker


def _run_child(cases: list[dict], pki: PKI, tmp_path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), json.dumps(cases)],
        capture_output=True, text=True, timeout=150, cwd=ROOT,
        env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                      "SSL_CERT_FILE": str(pki.root.cert)}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _seen(server: RecordingServer, client: str) -> dict:
    """What the server saw from the client with this EHLO/HELO name."""
    sessions = [s for s in server.sessions
                if s.commands and s.commands[0].split(" ", 1)[-1] == client]
    return {
        "sessions": len(sessions),
        "starttls": any("STARTTLS" in s.commands for s in sessions),
        "passwords": [password for s in sessions for _, _, password in s.auth],
        "mails": sum(len(s.messages) for s in sessions),
    }


# (case, what Twisted's factory does, what ours does); "=" means the same as Twisted.
# Columns of the outcomes: the result (accepted recipients, or the Twisted error
# class), then what the server received.
WRONG_NAME_CASES = [
    # neither contextFactory nor hostname: nothing to start TLS with
    ({"name": "bare-required"},
     {"error": "TLSRequiredError", "starttls": False, "passwords": [], "mails": 0}, "="),
    # ... and TLS not required: clear text (Twisted then sends the password in
    # clear with LOGIN; ours never sends a password in clear)
    ({"name": "bare-optional", "rts": False, "rauth": False},
     {"ok": 1, "starttls": False, "passwords": [PASSWORD], "mails": 1},
     {"ok": 1, "starttls": False, "passwords": [], "mails": 1}),
    ({"name": "bare-optional-auth", "rts": False, "rauth": True},
     {"ok": 1, "starttls": False, "passwords": [PASSWORD], "mails": 1},
     {"error": "AUTHRequiredError", "starttls": False, "passwords": [], "mails": 0}),
    # hostname= is the name the certificate must carry (Buildbot passes the relay)
    ({"name": "hostname-required", "hostname": "mail.test"},
     {"error": "SMTPConnectError", "starttls": True, "passwords": [], "mails": 0}, "="),
    ({"name": "hostname-optional", "hostname": "mail.test", "rts": False, "rauth": False},
     {"error": "SMTPConnectError", "starttls": True, "passwords": [], "mails": 0}, "="),
    ({"name": "context-options", "context": "options:mail.test"},
     {"error": "SMTPConnectError", "starttls": True, "passwords": [], "mails": 0}, "="),
    # a contextFactory that checks nothing is the caller's explicit choice
    ({"name": "context-noverify", "context": "noverify", "hostname": "mail.test"},
     {"ok": 1, "starttls": True, "passwords": [PASSWORD], "mails": 1}, "="),
    # the name the certificate does carry: accepted
    ({"name": "hostname-matches", "hostname": "wrong.example"},
     {"ok": 1, "starttls": True, "passwords": [PASSWORD], "mails": 1}, "="),
]


def _check(server: RecordingServer, cases, results: dict) -> None:
    for case, twisted, ours in cases:
        ours = twisted if ours == "=" else ours
        for impl, expected in (("twisted", twisted), ("ours", ours)):
            client = f"{impl}-{case['name']}"
            result = results[client]
            seen = _seen(server, client)
            got = {k: v for k, v in result.items() if k != "text"}
            got.update({k: seen[k] for k in ("starttls", "passwords", "mails")})
            want = dict(expected)
            sessions = want.pop("sessions", 1)
            assert got == want, (client, result, seen)
            assert seen["sessions"] == sessions, (client, seen)
        # never more than Twisted gives away
        ours_seen = _seen(server, f"ours-{case['name']}")
        twisted_seen = _seen(server, f"twisted-{case['name']}")
        assert set(ours_seen["passwords"]) <= set(twisted_seen["passwords"])
        assert ours_seen["mails"] <= twisted_seen["mails"]


def test_factory_with_a_wrong_name_certificate(pki, tmp_path) -> None:
    """STARTTLS to a server whose certificate (from a trusted CA) names another
    host: refused wherever Twisted's factory refuses, no password, no mail."""
    with RecordingServer(tls_context=pki.wrong.server_context(),
                         auth={USER: PASSWORD}) as server:
        cases = [dict(case, port=server.port) for case, _, _ in WRONG_NAME_CASES]
        results = _run_child(cases, pki, tmp_path)
        server.wait_idle(timeout=20)
        _check(server, WRONG_NAME_CASES, results)
        wrong = [r for k, r in results.items() if r.get("error") == "SMTPConnectError"]
        # Twisted's message names the failed check; ours carries it the same way
        assert all("VerificationError" in r["text"] or "DNSMismatch" in r["text"]
                   for r in wrong), wrong


def test_sendmail_checks_the_host_it_connects_to(pki, tmp_path) -> None:
    """``sendmail(host)`` does STARTTLS when offered, checked against ``host``: a
    certificate without 127.0.0.1 is refused on every attempt (Twisted's
    ``sendmail`` makes 6: 5 retries; so do we, the mail was never sent)."""
    with RecordingServer(tls_context=pki.wrong.server_context(),
                         auth={USER: PASSWORD}) as wrong, \
         RecordingServer(tls_context=pki.right.server_context(),
                         auth={USER: PASSWORD}) as right:
        cases = [
            ({"name": "sendmail-wrong", "sendmail": True, "port": wrong.port},
             {"error": "SMTPConnectError", "starttls": True, "passwords": [], "mails": 0,
              "sessions": 6}, "="),
            ({"name": "sendmail-right", "sendmail": True, "port": right.port},
             {"ok": 1, "starttls": True, "passwords": [PASSWORD], "mails": 1}, "="),
        ]
        results = _run_child([c for c, _, _ in cases], pki, tmp_path)
        wrong.wait_idle(timeout=20)
        right.wait_idle(timeout=20)
        _check(wrong, cases[:1], results)
        _check(right, cases[1:], results)


def test_factory_against_a_server_without_starttls(pki, tmp_path) -> None:
    with RecordingServer(auth={USER: PASSWORD}) as server:
        cases = [
            ({"name": "notls-required", "hostname": "mail.test", "port": server.port},
             {"error": "TLSRequiredError", "starttls": False, "passwords": [], "mails": 0},
             "="),
            # TLS optional and not offered: clear text, as Twisted; the password
            # only goes in clear with Twisted's
            ({"name": "notls-optional", "hostname": "mail.test", "rts": False,
              "rauth": False, "port": server.port},
             {"ok": 1, "starttls": False, "passwords": [PASSWORD], "mails": 1},
             {"ok": 1, "starttls": False, "passwords": [], "mails": 1}),
        ]
        results = _run_child([c for c, _, _ in cases], pki, tmp_path)
        server.wait_idle(timeout=20)
        _check(server, cases, results)


def test_factory_over_implicit_tls(pki, tmp_path) -> None:
    """``connectSSL`` (Buildbot's ``useSmtps``): the connection is TLS already, so
    no STARTTLS, and ``requireTransportSecurity`` is met; the password goes over it."""
    with RecordingServer(tls_context=pki.right.server_context(), implicit_tls=True,
                         auth={USER: PASSWORD}) as server:
        cases = [({"name": "smtps", "implicit": True, "hostname": "mail.test",
                   "port": server.port},
                  {"ok": 1, "starttls": False, "passwords": [PASSWORD], "mails": 1}, "=")]
        results = _run_child([c for c, _, _ in cases], pki, tmp_path)
        server.wait_idle(timeout=20)
        _check(server, cases, results)
        assert all(s.tls for s in server.sessions)
