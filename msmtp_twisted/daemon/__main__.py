"""``python -m msmtp_twisted.daemon``: the ``msmtpd`` command."""

from msmtp_twisted.daemon.cli import console_main

console_main()
