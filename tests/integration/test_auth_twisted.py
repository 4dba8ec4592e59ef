"""Authentication from Twisted programs, against Postfix + Dovecot SASL:

- Twisted's own ``ESMTPSenderFactory`` with our :class:`SASLAuthenticator` (SCRAM,
  DIGEST-MD5: methods Twisted does not have);
- our ``ESMTPSenderFactory`` drop-in with a user name and password (msmtp's choice);
- ``api.send_mail`` with an msmtprc account whose password is in ``~/.netrc``.

Each scenario runs in a child process (one reactor per process); the Postfix log
proves the mechanism used.
"""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_twisted_api import _run


def _sasl_lines(mailservers, since: int) -> list[str]:
    return [line for line in mailservers.postfix_log(since).splitlines()
            if "sasl_method=" in line]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", "DIGEST-MD5"])
def test_twisted_sender_with_our_authenticator(mailservers, tmp_path, mechanism) -> None:
    token = uuid.uuid4().hex
    since = mailservers.postfix_log_size()
    result = _run(f"""
        import io, json
        from twisted.internet import defer, task
        from twisted.mail import smtp
        from msmtp_twisted.protocol.authenticators import SASLAuthenticator

        class Sender(smtp.ESMTPSender):
            def _registerAuthenticators(self):
                self.registerAuthenticator(
                    SASLAuthenticator({mechanism!r}, b"testuser", host="127.0.0.1"))

        def main(reactor):
            d = defer.Deferred()
            f = smtp.ESMTPSenderFactory(
                b"testuser", b"testpass", "sender@example.com", "alice@example.com",
                io.BytesIO(b"Subject: {token}\\r\\n\\r\\nvia twisted\\r\\n"), d,
                requireTransportSecurity=False, retries=0)
            f.protocol = Sender
            reactor.connectTCP("127.0.0.1", {mailservers.smtp_notls_port}, f)
            d.addCallback(lambda r: print(json.dumps({{"accepted": r[0]}})))
            return d
        task.react(main)
    """, tmp_path)
    assert result == {"accepted": 1}
    mailservers.wait_for_mail("alice", match=token.encode())
    assert any(f"sasl_method={mechanism}," in line for line in _sasl_lines(mailservers, since))


def test_our_factory_chooses_like_msmtp_and_reports_refusal(mailservers, tmp_path) -> None:
    token = uuid.uuid4().hex
    since = mailservers.postfix_log_size()
    result = _run(f"""
        import io, json
        from twisted.internet import defer, task
        from msmtp_twisted.protocol.compat import ESMTPSenderFactory

        def send(reactor, password):
            d = defer.Deferred()
            f = ESMTPSenderFactory("testuser", password, "sender@example.com",
                                   "alice@example.com",
                                   io.BytesIO(b"Subject: {token}\\n\\nours\\n"), d,
                                   requireTransportSecurity=False)
            # from an address of its own: Dovecot slows down logins from an address
            # after a failure, which would slow down other tests
            reactor.connectTCP("127.0.0.1", {mailservers.smtp_notls_port}, f,
                               bindAddress=("127.58.0.1", 0))
            return d

        @defer.inlineCallbacks
        def main(reactor):
            ok = yield send(reactor, "testpass")
            try:
                yield send(reactor, "wrong")
                bad = None
            except Exception as e:
                bad = [e.exitcode, e.message]
            print(json.dumps({{"ok": ok[0], "bad": bad}}))
        task.react(main)
    """, tmp_path)
    assert result == {"ok": 1, "bad": [77, "authentication failed (method SCRAM-SHA-256)"]}
    [mail] = mailservers.wait_for_mail("alice", match=token.encode())
    assert any("sasl_method=SCRAM-SHA-256," in line for line in _sasl_lines(mailservers, since))


def test_api_send_mail_with_netrc_password(mailservers, tmp_path) -> None:
    token = uuid.uuid4().hex
    rc = tmp_path / "rc"
    rc.write_text(f"account work\nhost 127.0.0.1\nport {mailservers.smtp_notls_port}\n"
                  "from sender@example.com\nauth on\nuser testuser\n")
    rc.chmod(0o600)
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login testuser password testpass\n")
    netrc.chmod(0o600)
    result = _run(f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.api import load_account, send_mail

        def main(reactor):
            account = load_account("work", config_file={str(rc)!r})
            d = send_mail(reactor, account, None, ["alice@example.com"],
                          b"Subject: {token}\\n\\napi\\n")
            d.addCallback(lambda r: print(json.dumps({{"code": r.reply.code}})))
            return d
        task.react(main)
    """, tmp_path)
    assert result == {"code": 250}
    mailservers.wait_for_mail("alice", match=token.encode())
