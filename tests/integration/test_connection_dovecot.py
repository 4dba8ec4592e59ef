"""The kept connection against a real Dovecot LMTP server: several mails on one
connection, each with the per-recipient replies Dovecot gives after the final dot
(users: see tests/servers/mailservers/start.sh; "full" is over quota, others than
testuser/alice/full/tempfail are refused at RCPT)."""

from __future__ import annotations

import pytest

from tests.integration.test_connection_api import _run
from tests.servers.msmtp import new_token

pytestmark = pytest.mark.timeout(180)


def test_lmtp_mails_on_one_connection_with_per_recipient_results(mailservers,
                                                                 tmp_path) -> None:
    tok = new_token()
    out = _run(tmp_path, mailservers.lmtp_port, f"""
        @defer.inlineCallbacks
        def main(reactor):
            conn = yield connect(reactor, account())
            out = {{}}
            try:
                yield conn.send(None, ["testuser@example.com", "full@example.com"],
                                b"Subject: {tok} one\\n\\nfirst\\n")
            except MsmtpError as e:
                out["strict"] = [[r, rep.code] for r, rep in e.lmtp_replies]
            r = yield conn.send(None, ["alice@example.com", "nobody@example.com",
                                       "full@example.com"],
                                b"Subject: {tok} two\\n\\nsecond\\n", partial_recipients=True)
            out["partial"] = {{"accepted": list(r.accepted),
                              "refused": [[a, rep.code] for a, rep in r.refused]}}
            yield conn.quit()
            print(json.dumps(out))
        task.react(main)
    """, protocol="lmtp")
    assert out == {
        "strict": [["testuser@example.com", 250], ["full@example.com", 552]],
        "partial": {"accepted": ["alice@example.com"],
                    "refused": [["nobody@example.com", 550], ["full@example.com", 552]]},
    }
    [first] = mailservers.wait_for_mail("testuser", lmtp=True, match=f"{tok} one".encode())
    [second] = mailservers.wait_for_mail("alice", lmtp=True, match=f"{tok} two".encode())
    assert first.endswith(b"first\n") and second.endswith(b"second\n")
