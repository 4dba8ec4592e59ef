"""The Twisted-facing API: ``send_mail`` with an msmtprc account, and the
``ESMTPSenderFactory``/``sendmail`` drop-ins, against a recording server.

Each scenario runs in a child process because a reactor runs once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, ours_env


def _run(script: str, tmp_path) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_send_mail_with_account(recording_server, tmp_path) -> None:
    rc = tmp_path / "rc"
    rc.write_text(f"account work\nhost 127.0.0.1\nport {recording_server.port}\n"
                  "from me@example.com\n")
    rc.chmod(0o600)
    result = _run(f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.api import load_account, send_mail

        def main(reactor):
            account = load_account("work", config_file={str(rc)!r})
            d = send_mail(reactor, account, None, ["you@example.org"],
                          b"Subject: api\\nBcc: hidden@x\\n\\n.dot\\n")
            d.addCallback(lambda r: print(json.dumps({{"code": r.reply.code}})))
            return d
        task.react(main)
    """, tmp_path)
    assert result == {"code": 250}
    recording_server.wait_idle()
    message = recording_server.message
    assert message.sender == "me@example.com"
    assert message.recipients == ["you@example.org"]
    data = message.data_bytes()
    assert b"Bcc" not in data
    assert b"\r\n..dot\r\n" in message.raw_bytes()
    assert b"From: me@example.com\r\n" in data


def test_esmtp_sender_factory_dropin(recording_server, tmp_path) -> None:
    result = _run(f"""
        import io, json
        from twisted.internet import defer, task
        from msmtp_twisted.protocol.compat import ESMTPSenderFactory

        def main(reactor):
            d = defer.Deferred()
            f = ESMTPSenderFactory(None, None, "me@example.com", ["a@x.org", "b@x.org"],
                                   io.BytesIO(b"Subject: compat\\r\\n\\r\\nline\\r\\n.\\r\\n"),
                                   d, requireAuthentication=False,
                                   requireTransportSecurity=False)
            reactor.connectTCP("127.0.0.1", {recording_server.port}, f)
            d.addCallback(lambda r: print(json.dumps([r[0], [x[1] for x in r[1]]])))
            return d
        task.react(main)
    """, tmp_path)
    assert result == [2, [250, 250]]
    recording_server.wait_idle()
    # CRLF input stays CRLF (Twisted's own encoder doubles the CR) and the
    # lone "." line is stuffed
    assert recording_server.message.raw_bytes() == b"Subject: compat\r\n\r\nline\r\n..\r\n"


def test_sendmail_reports_refusal(server_factory, tmp_path) -> None:
    from tests.servers.recording import RecordingServer

    server = server_factory(RecordingServer, replies={"RCPT:bad@x.org": "550 5.1.1 no"})
    result = _run(f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.protocol.compat import sendmail

        def main(reactor):
            d = sendmail("127.0.0.1", "me@example.com", ["bad@x.org"], b"Subject: x\\n\\nb\\n",
                         port={server.port}, reactor=reactor)
            def failed(f):
                print(json.dumps({{"exit": f.value.exitcode, "msg": f.value.message}}))
            d.addCallbacks(lambda r: print(json.dumps({{"ok": r[0]}})), failed)
            return d
        task.react(main)
    """, tmp_path)
    assert result == {"exit": 65, "msg": "recipient address bad@x.org not accepted by the server"}


def test_factory_refuses_to_send_in_clear_when_tls_is_required(recording_server,
                                                                tmp_path) -> None:
    result = _run(f"""
        import io, json
        from twisted.internet import defer, task
        from msmtp_twisted.protocol.compat import ESMTPSenderFactory

        def main(reactor):
            d = defer.Deferred()
            f = ESMTPSenderFactory("u", "p", "me@example.com", "a@x.org",
                                   io.BytesIO(b"Subject: x\\n\\nb\\n"), d)
            reactor.connectTCP("127.0.0.1", {recording_server.port}, f)
            d.addErrback(lambda f: print(json.dumps({{"exit": f.value.exitcode}})))
            return d
        task.react(main)
    """, tmp_path)
    assert result == {"exit": 69}
    recording_server.wait_idle()
    assert recording_server.messages == []
