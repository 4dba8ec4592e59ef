"""The durable outgoing queue behind ``msmtpq`` (issue 12): a spool directory
of mails that could not be sent yet, written crash-safely, read defensively.

- :mod:`~msmtp_twisted.queue.location`: where the queue lives
  (``$MSMTP_QUEUE``, else ``$XDG_STATE_HOME/msmtp/queue``).
- :mod:`~msmtp_twisted.queue.entry`: one queued mail's metadata and its JSON form.
- :mod:`~msmtp_twisted.queue.spool`: the directory: streaming a mail in,
  committing it, listing, claiming, updating, removing, moving to ``failed/``,
  cleaning up after crashes.
- :mod:`~msmtp_twisted.queue.schedule`: the back-off between attempts and the
  maximum age.
- :mod:`~msmtp_twisted.queue.outcome`: temporary or permanent, from the typed
  failure a send ended with.
- :mod:`~msmtp_twisted.queue.flush`: one run over the due entries, account by
  account, through a sender function (the seam where a reusable connection
  per account goes).
- :mod:`~msmtp_twisted.queue.journal`: the queue's log lines.

Blocking file I/O only, no Twisted: the command line calls it directly and the
daemon may call it from a thread.  The layout and its guarantees are in
docs/queue.md.
"""
