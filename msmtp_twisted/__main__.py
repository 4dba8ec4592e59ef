"""``python -m msmtp_twisted`` behaves like the ``msmtp`` command."""

import sys

from msmtp_twisted.cli import main

if __name__ == "__main__":
    sys.exit(main(["msmtp", *sys.argv[1:]]))
