"""Which ``source_ip`` values fail before bind() and how (msmtp 1.8.23's answers;
tests/integration/test_source_ip.py compares the messages with msmtp itself)."""

from __future__ import annotations

import errno
import socket

import pytest

from msmtp_twisted.net.connect import source_ip_errno

V4, V6 = socket.AF_INET, socket.AF_INET6


@pytest.mark.parametrize(("source_ip", "family", "expected"), [
    ("127.0.0.2", V4, None),
    ("::1", V6, None),
    ("fe80::1", V6, None),
    ("::1", V4, errno.EAFNOSUPPORT),
    ("::ffff:127.0.0.1", V4, errno.EAFNOSUPPORT),
    ("127.0.0.1", V6, errno.EINVAL),
    ("localhost", V4, errno.EINVAL),
    ("localhost", V6, errno.EINVAL),
    ("1.2.3", V4, errno.EINVAL),
    ("0x7f000001", V4, errno.EINVAL),
    ("127.0.0.1 ", V4, errno.EINVAL),
    ("", V4, errno.EINVAL),
    ("1.2.3.4\x00", V4, errno.EINVAL),
])
def test_source_ip_errno(source_ip: str, family: int, expected: int | None) -> None:
    assert source_ip_errno(source_ip, family) == expected
