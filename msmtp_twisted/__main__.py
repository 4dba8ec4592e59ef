"""``python -m msmtp_twisted`` behaves like the ``msmtp`` command."""

import sys

from msmtp_twisted.cli import main
from msmtp_twisted.stdio import ensure_standard_streams

if __name__ == "__main__":
    ensure_standard_streams()
    sys.exit(main(["msmtp", *sys.argv[1:]]))
