"""Send one mail through an msmtprc account from a Twisted program.

    python docs/examples/library_send_mail.py MSMTPRC ACCOUNT TO [TO...]

``send_mail`` connects as the account says (TLS, AUTH), sends, QUITs.  The mail
gets the headers msmtp adds (From, Date, Message-ID as the account says; Bcc
removed).  (tests/integration/test_library_examples.py runs this file.)
"""

import sys

from twisted.internet import task

from msmtp_twisted.api import load_account, send_mail
from msmtp_twisted.errors import MsmtpError

MESSAGE = b"""\
Subject: hello from msmtp-twisted

Sent with msmtp_twisted.api.send_mail.
"""


def main(reactor, config, name, *recipients):
    account = load_account(name, config_file=config)
    # None: the envelope sender is the account's "from"; 30 s for the whole call
    d = send_mail(reactor, account, None, list(recipients), MESSAGE, timeout=30)

    def sent(delivered):
        print(f"accepted: {delivered.reply.code} {delivered.reply.lines[-1][4:]}")

    def failed(failure):
        failure.trap(MsmtpError)
        error = failure.value
        print(f"not sent: {error.message} (exit code {error.exitcode}, {error.cause.value})")

    d.addCallbacks(sent, failed)
    return d


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
