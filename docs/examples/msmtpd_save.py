"""An msmtpd command that saves each mail into a directory instead of relaying it.

    msmtpd --port=2500 --command='python3 msmtpd_save.py /var/tmp/mails -f %F --'

msmtpd runs it once per mail, as ``msmtpd_save.py DIR -f SENDER -- RECIPIENT...``
(``%F`` replaced by the envelope sender, each recipient one argument of its own) with
the mail on standard input.  It writes ``DIR/N.eml`` (the mail as msmtpd received
it, its ``Received:`` header first) and ``DIR/N.envelope`` (the sender, then each
recipient, one a line).  Exit 0: msmtpd answers ``250``; exit 75 (EX_TEMPFAIL) when
the mail cannot be saved: msmtpd answers ``451`` and the client keeps the mail.

``./scripts/demo`` uses it to show what msmtpd hands its command.
"""

from __future__ import annotations

import os
import sys

EX_USAGE = 64
EX_TEMPFAIL = 75


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[2] != "-f" or argv[4] != "--":
        print("usage: msmtpd_save.py DIR -f SENDER -- RECIPIENT...", file=sys.stderr)
        return EX_USAGE
    directory, sender = argv[1], argv[3]
    recipients = argv[5:]
    try:
        os.makedirs(directory, exist_ok=True)
        # the envelope file is written last and renamed into place: once it is
        # there, the mail beside it is complete
        n = 1 + sum(1 for name in os.listdir(directory) if name.endswith(".envelope"))
        base = os.path.join(directory, str(n))
        with open(base + ".eml", "wb") as mail:
            while chunk := sys.stdin.buffer.read(65536):
                mail.write(chunk)
        with open(base + ".envelope.tmp", "w") as envelope:
            envelope.write("\n".join([sender, *recipients]) + "\n")
        os.rename(base + ".envelope.tmp", base + ".envelope")
    except OSError as e:
        print(f"msmtpd_save.py: cannot save the mail: {e}", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
