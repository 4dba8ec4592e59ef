"""Send one mail with msmtp-twisted's drop-in for ``twisted.mail.smtp``.

    python docs/examples/twisted_sendmail.py HOST PORT FROM TO [TO...]

The code is what a program written for Twisted's mail client contains; only the
import differs.  ``sendmail`` does STARTTLS when the server offers it, with the
certificate checked against HOST; recipients the server refuses are reported,
the others get the mail.  (tests/integration/test_twisted_compat_example.py runs
this file.)
"""

import sys

from twisted.internet import task

# was: from twisted.mail.smtp import SMTPClientError, sendmail
from msmtp_twisted.protocol.compat import SMTPClientError, sendmail

MESSAGE = b"""\
From: Example <%(sender)s>
Subject: hello from a Twisted program

Sent with msmtp-twisted's drop-in for twisted.mail.smtp.
"""


def main(reactor, host, port, sender, *recipients):
    message = MESSAGE % {b"sender": sender.encode()}
    d = sendmail(host, sender, list(recipients), message, port=int(port), reactor=reactor,
                 timeout=60)

    def sent(result):
        accepted, replies = result
        print(f"sent to {accepted} of {len(replies)} recipients")
        for address, code, text in replies:
            print(f"  {address.decode()}: {code} {text.decode()}")

    def failed(failure):
        failure.trap(SMTPClientError)  # Twisted's class: existing errbacks match
        error = failure.value
        print(f"not sent: {error.code} {error.resp.decode()}")
        print(f"  (msmtp would say: {error.message}; exit code {error.exitcode})")

    d.addCallbacks(sent, failed)
    return d


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
