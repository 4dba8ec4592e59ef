"""``python -m msmtp_twisted`` behaves like the ``msmtp`` command."""

import sys

from msmtp_twisted.cli import console_main

if __name__ == "__main__":
    console_main(["msmtp", *sys.argv[1:]])
