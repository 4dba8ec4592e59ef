"""Mistakes mypy --strict must find (tests/unit/test_typing_user_program.py
lists each expected error by line; keep the lines where they are)."""

from __future__ import annotations

from msmtp_twisted.config.account import Account

account = Account(id="relay", host="127.0.0.1", port=2525)
print(account.hots)  # line 9: a typo in an attribute
Account(id="relay", hots="127.0.0.1")  # line 10: a typo in a keyword
Account(port="2525")  # line 11: the wrong type
Account(auth_mech="plain")  # line 12: not a mechanism the parser produces
account.protocol = "esmtp"  # line 13: not smtp or lmtp
