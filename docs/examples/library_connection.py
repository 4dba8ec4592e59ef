"""One kept connection: several mails with per-recipient results and DSN, ETRN, QUIT.

    python docs/examples/library_connection.py MSMTPRC ACCOUNT TO [TO...]

(tests/integration/test_library_examples.py runs this file.)
"""

import sys

from twisted.internet import defer, task

from msmtp_twisted.api import connect, load_account
from msmtp_twisted.errors import Cause, SMTPFailure


@defer.inlineCallbacks
def main(reactor, config, name, *recipients):
    conn = yield connect(reactor, load_account(name, config_file=config))
    try:
        # the accepted recipients get the mail even if others are refused
        delivered = yield conn.send(None, list(recipients), b"Subject: one\n\nFirst.\n",
                                    partial_recipients=True)
        print("sent to:", ", ".join(delivered.accepted))
        for address, reply in delivered.refused:
            print(f"refused: {address}: {reply.lines[-1]}")

        # DSN for this mail only: a report on failure or delay, headers only,
        # with our own envelope id (the server must offer DSN)
        try:
            yield conn.send(None, delivered.accepted or list(recipients),
                            b"Subject: two\n\nSecond.\n",
                            notify="FAILURE,DELAY", ret="HDRS", envid="report-2")
            print("second mail sent with DSN")
        except SMTPFailure as e:
            if e.cause is not Cause.UNSUPPORTED:
                raise
            print("the server offers no DSN: second mail not sent")

        if conn.capabilities.etrn:
            reply = yield conn.etrn("example.org")
            print(f"ETRN: {reply.code}")
    finally:
        yield conn.quit()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
