"""Send many mails through one account on a few kept connections.

    python docs/examples/library_sender.py MSMTPRC ACCOUNT COUNT TO

``Sender`` keeps up to ``connections`` connections open and reuses them; sends
beyond that wait in its queue.  ``close()`` waits for the sends in flight, then
says QUIT on every connection.  (tests/integration/test_library_examples.py runs
this file and counts the connections at the server.)
"""

import sys

from twisted.internet import defer, task

from msmtp_twisted.api import Sender, load_account


@defer.inlineCallbacks
def main(reactor, config, name, count, recipient):
    sender = Sender(reactor, load_account(name, config_file=config), connections=2)
    sends = [
        sender.send(None, [recipient], b"Subject: report %d\n\nReport number %d.\n" % (i, i))
        for i in range(int(count))
    ]
    # every send has its own Deferred; consumeErrors: failures are reported below
    results = yield defer.DeferredList(sends, consumeErrors=True)
    yield sender.close()
    sent = sum(1 for ok, _ in results if ok)
    print(f"{sent} of {len(results)} sent on {sender.connections_opened} connection(s)")
    for ok, value in results:
        if not ok:
            print(f"  failed: {value.getErrorMessage()}")


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
