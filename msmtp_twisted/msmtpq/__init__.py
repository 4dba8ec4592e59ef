"""``msmtpq`` and ``msmtp-queue``: msmtp with a durable queue (docs/queue.md).

The command line on top of msmtp's (it calls :func:`msmtp_twisted.cli.run`,
as the ``msmtp`` program does): :mod:`.send` tries a mail at once and queues it
on a temporary failure, :mod:`.manage` lists, drops and flushes the queue,
:mod:`.deliver` sends queued mails in this process, :mod:`.cli` parses the
options.  The queue itself is :mod:`msmtp_twisted.queue`.
"""
