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
