"""What a Twisted program's log gets from the library: ``twisted.logger`` events
for connect/delivered/failed (never a secret), and no "Starting factory" noise.

Each scenario runs in a child process (a reactor runs once per process) that
records every event with a ``twisted.logger`` observer, formatted with
``formatEvent`` as a log file would show it, and prints them as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, ours_env
from tests.servers.recording import RecordingServer

pytestmark = pytest.mark.timeout(90)

#: the child's preamble: every event, formatted, plus its msmtp_event fields
OBSERVE = """
    import json, sys
    from twisted.logger import globalLogPublisher, formatEvent
    EVENTS = []

    def observe(event):
        fields = {k: v for k, v in event.items()
                  if not k.startswith("log_") and k not in ("time", "format")}
        EVENTS.append({"text": formatEvent(event), "namespace": event.get("log_namespace"),
                       "level": getattr(event.get("log_level"), "name", None),
                       "repr": repr(sorted(fields.items(), key=lambda kv: kv[0]))[:4000],
                       "fields": {k: v for k, v in fields.items()
                                  if isinstance(v, (str, int, float, list, tuple, type(None)))}})
    globalLogPublisher.addObserver(observe)

    def finish(result):
        print(json.dumps({"result": result, "events": EVENTS}, default=repr))
"""


def _run(script: str, tmp_path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OBSERVE) + textwrap.dedent(script)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rc(tmp_path: Path, text: str) -> Path:
    rc = tmp_path / "rc"
    rc.write_text(text)
    rc.chmod(0o600)
    return rc


def _noise(events: list[dict]) -> list[str]:
    return [e["text"] for e in events
            if "Starting factory" in e["text"] or "Stopping factory" in e["text"]]


SEND_MAIL = """
    from twisted.internet import task
    from msmtp_twisted.api import load_account, send_mail

    def main(reactor):
        account = load_account({account!r}, config_file={rc!r})
        d = send_mail(reactor, account, None, {recipients!r}, {message!r})
        d.addCallbacks(lambda r: finish("delivered"),
                       lambda f: finish(type(f.value).__name__ + ": " + str(f.value)))
        return d
    task.react(main)
"""


def test_send_mail_logs_no_factory_noise(recording_server, tmp_path) -> None:
    rc = _rc(tmp_path, f"account work\nhost 127.0.0.1\nport {recording_server.port}\n"
                       "from me@example.com\n")
    out = _run(SEND_MAIL.format(account="work", rc=str(rc), recipients=["you@example.org"],
                                message=b"Subject: x\n\nbody\n"), tmp_path)
    assert out["result"] == "delivered"
    assert _noise(out["events"]) == []


def test_send_mail_over_implicit_tls_logs_no_factory_noise(server_factory, tmp_path) -> None:
    from tests.servers.tlspki import PKI

    pki = PKI(tmp_path / "pki")
    root = pki.ca()
    leaf = pki.leaf(root, "localhost")
    server = server_factory(RecordingServer, tls_context=leaf.server_context(),
                            implicit_tls=True)
    rc = _rc(tmp_path, f"account work\nhost localhost\nport {server.port}\n"
                       f"from me@example.com\ntls on\ntls_starttls off\n"
                       f"tls_trust_file {root.cert}\n")
    out = _run(SEND_MAIL.format(account="work", rc=str(rc), recipients=["you@example.org"],
                                message=b"Subject: x\n\nbody\n"), tmp_path)
    assert out["result"] == "delivered"
    assert _noise(out["events"]) == []


def test_compat_logs_no_factory_noise(recording_server, tmp_path) -> None:
    out = _run(f"""
        import io
        from twisted.internet import defer, task
        from msmtp_twisted.protocol.compat import ESMTPSenderFactory, sendmail

        @defer.inlineCallbacks
        def main(reactor):
            d = defer.Deferred()
            f = ESMTPSenderFactory(None, None, "me@example.com", ["a@x.org"],
                                   io.BytesIO(b"Subject: compat\\r\\n\\r\\nline\\r\\n"), d,
                                   requireAuthentication=False,
                                   requireTransportSecurity=False)
            reactor.connectTCP("127.0.0.1", {recording_server.port}, f)
            yield d
            yield sendmail("127.0.0.1", "me@example.com", ["b@x.org"], b"Subject: y\\n\\nb\\n",
                           port={recording_server.port}, reactor=reactor)
            finish("delivered")
        task.react(main)
    """, tmp_path)
    assert out["result"] == "delivered"
    assert _noise(out["events"]) == []


def _ours(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events
            if e["namespace"] == "msmtp_twisted" and e["fields"].get("msmtp_event") == kind]


def test_send_logs_connect_and_delivered(recording_server, tmp_path) -> None:
    rc = _rc(tmp_path, f"account work\nhost 127.0.0.1\nport {recording_server.port}\n"
                       "from me@example.com\n")
    out = _run(SEND_MAIL.format(account="work", rc=str(rc), recipients=["a@x.org", "b@x.org"],
                                message=b"Subject: x\n\nbody\n"), tmp_path)
    assert out["result"] == "delivered"
    [connect] = _ours(out["events"], "connect")
    assert connect["fields"]["host"] == "127.0.0.1"
    assert connect["fields"]["port"] == recording_server.port
    assert connect["fields"]["address"] == "127.0.0.1"
    assert connect["fields"]["tls"] == "off"
    assert connect["fields"]["account"] == "work"
    assert connect["level"] == "info"
    assert connect["text"] == f"connected to 127.0.0.1 port {recording_server.port}, TLS off"
    [delivered] = _ours(out["events"], "delivered")
    fields = delivered["fields"]
    assert fields["sender"] == "me@example.com"
    assert fields["recipients"] == ["a@x.org", "b@x.org"]
    assert fields["reply_code"] == 250
    assert fields["replies"] == [["a@x.org", 250], ["b@x.org", 250]]
    assert fields["size"] > len("Subject: x\n\nbody\n")
    assert delivered["text"].startswith("delivered mail from me@example.com to a@x.org, b@x.org (")
    assert "250 2.0.0 Ok: queued as" in delivered["text"]
    assert _ours(out["events"], "failed") == []


def test_failed_send_logs_message_cause_and_exit_code(tmp_path) -> None:
    from tests.servers.ports import free_port

    port = free_port()
    rc = _rc(tmp_path, f"account work\nhost 127.0.0.1\nport {port}\nfrom me@example.com\n")
    out = _run(SEND_MAIL.format(account="work", rc=str(rc), recipients=["a@x.org"],
                                message=b"Subject: x\n\nbody\n"), tmp_path)
    assert out["result"].startswith("ConnectFailure")
    assert _ours(out["events"], "connect") == []
    [failed] = _ours(out["events"], "failed")
    fields = failed["fields"]
    assert (fields["exitcode"], fields["cause"]) == (75, "refused")
    assert fields["message"] == f"cannot connect to 127.0.0.1, port {port}: Connection refused"
    assert failed["level"] == "warn"
    assert failed["text"] == (f"sending mail from me@example.com to a@x.org failed: "
                              f"{fields['message']} (exit code 75, refused)")


def test_events_never_carry_the_password_or_the_mail(server_factory, tmp_path) -> None:
    import base64

    password = "Sekr1t-Pa55w0rd"
    wrong = "Wr0ng-Pa55w0rd"
    server = server_factory(RecordingServer, auth={"joe": password},
                            replies={"RCPT:refused@x.org": "550 5.1.1 no such user"})
    rc = _rc(tmp_path, f"defaults\nhost 127.0.0.1\nport {server.port}\nfrom me@example.com\n"
                       "auth plain\nuser joe\n"
                       f"account work\npassword {password}\n"
                       f"account bad\npassword {wrong}\n")
    body = b"Subject: Secret-Subject-Marker\n\nSecret-Body-Marker\n"
    out = _run(f"""
        from twisted.internet import defer, task
        from msmtp_twisted.api import load_account, send_mail

        @defer.inlineCallbacks
        def main(reactor):
            outcomes = []
            for name, to in (("work", "a@x.org"), ("bad", "a@x.org"), ("work", "refused@x.org")):
                account = load_account(name, config_file={str(rc)!r})
                try:
                    yield send_mail(reactor, account, None, [to], {body!r})
                    outcomes.append("delivered")
                except Exception as e:
                    outcomes.append([e.exitcode, e.message])
            finish(outcomes)
        task.react(main)
    """, tmp_path)
    assert out["result"][0] == "delivered"
    assert out["result"][1][0] == 77  # authentication failed
    assert out["result"][2][0] == 65  # recipient refused
    assert len(_ours(out["events"], "delivered")) == 1
    assert len(_ours(out["events"], "failed")) == 2
    assert len(_ours(out["events"], "connect")) == 3
    refused = _ours(out["events"], "failed")[1]
    assert refused["fields"]["reply_code"] == 550
    assert refused["text"] == ("sending mail from me@example.com to refused@x.org failed: "
                               "recipient address refused@x.org not accepted by the server "
                               "(exit code 65, reply); server message: 550 5.1.1 no such user")
    server.wait_idle()
    assert [a[2] for s in server.sessions for a in s.auth] == [password, wrong, password]
    secrets = [password, wrong, "Secret-Subject-Marker", "Secret-Body-Marker"]
    for secret in (password, wrong):
        secrets.append(base64.b64encode(f"\0joe\0{secret}".encode()).decode())
        secrets.append(base64.b64encode(secret.encode()).decode())
    for event in out["events"]:
        for secret in secrets:
            assert secret not in event["text"], event
            assert secret not in event["repr"], event


def test_compat_logs_connect_delivered_and_failed(server_factory, tmp_path) -> None:
    server = server_factory(RecordingServer, replies={"RCPT:bad@x.org": "550 5.1.1 no"})
    out = _run(f"""
        import io
        from twisted.internet import defer, task
        from msmtp_twisted.protocol.compat import ESMTPSenderFactory, sendmail

        @defer.inlineCallbacks
        def main(reactor):
            d = defer.Deferred()
            f = ESMTPSenderFactory(b"joe", b"Sekr1t-Pa55w0rd", "me@example.com",
                                   ["a@x.org", "bad@x.org"],
                                   io.BytesIO(b"Subject: compat\\r\\n\\r\\nSecret-Body\\r\\n"), d,
                                   requireAuthentication=False,
                                   requireTransportSecurity=False)
            reactor.connectTCP("127.0.0.1", {server.port}, f)
            yield d
            try:
                yield sendmail("127.0.0.1", "me@example.com", ["bad@x.org"], b"S: y\\n\\nb\\n",
                               port={server.port}, reactor=reactor)
            except Exception:
                pass
            finish("done")
        task.react(main)
    """, tmp_path)
    assert out["result"] == "done"
    assert _noise(out["events"]) == []
    connects = _ours(out["events"], "connect")
    assert [(c["fields"]["host"], c["fields"]["port"], c["fields"]["tls"]) for c in connects] \
        == [("127.0.0.1", server.port, "off"),  # no contextFactory, no hostname
            ("127.0.0.1", server.port, "starttls")]  # sendmail(): STARTTLS when offered
    [delivered] = _ours(out["events"], "delivered")
    assert delivered["fields"]["recipients"] == ["a@x.org", "bad@x.org"]
    assert delivered["fields"]["replies"] == [["a@x.org", 250], ["bad@x.org", 550]]
    assert delivered["fields"]["reply_code"] == 250
    [failed] = _ours(out["events"], "failed")
    assert failed["fields"]["exitcode"] == 65
    assert failed["fields"]["recipients"] == ["bad@x.org"]
    for event in out["events"]:
        assert "Sekr1t" not in event["text"] + event["repr"]
        assert "Secret-Body" not in event["text"] + event["repr"]
