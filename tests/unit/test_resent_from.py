"""--read-envelope-from and %F use a Resent-From that appears before any From
(manual, msmtp >= 1.8.26); recipients and the From header are unaffected."""

from __future__ import annotations

import pytest

from msmtp_twisted.message.headers import scan_headers


@pytest.mark.parametrize(
    ("mail", "sender", "from_address"),
    [
        (b"Resent-From: R <r@x>\nFrom: f@x\n\n", "r@x", "f@x"),
        (b"From: f@x\nResent-From: r@x\n\n", "f@x", "f@x"),
        (b"Subject: s\nresent-from: (c) r@x\n\n", "r@x", None),
        (b"Resent-Date: now\nResent-From:\n  <folded@x>\nFrom: f@x\n\n", "folded@x", "f@x"),
        (b"Resent-From: first@x\nResent-From: second@x\nFrom: f@x\n\n", "first@x", "f@x"),
        (b"Resent-Fromage: x\nFrom: f@x\n\n", "f@x", "f@x"),
        (b"To: t@x\n\n", None, None),
    ],
)
@pytest.mark.parametrize("want_recipients", [False, True])
def test_sender_address(mail, sender, from_address, want_recipients) -> None:
    scanner = scan_headers(mail, want_recipients=want_recipients)
    assert scanner.sender_address == sender
    assert scanner.from_address == from_address


def test_resent_recipients_unchanged() -> None:
    mail = (b"Resent-From: r@x\nResent-To: a@x\nResent-Cc: b@x\nFrom: f@x\nTo: old@x\n\n")
    scanner = scan_headers(mail)
    assert scanner.recipients == ["a@x", "b@x"]
    assert scanner.sender_address == "r@x"
