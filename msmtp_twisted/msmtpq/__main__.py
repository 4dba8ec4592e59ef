"""``python -m msmtp_twisted.msmtpq`` behaves like the ``msmtpq`` command."""

import sys

from msmtp_twisted.msmtpq.cli import console_main

if __name__ == "__main__":
    sys.argv[0] = "msmtpq"
    console_main()
