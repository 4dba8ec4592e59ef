"""Our fnmatch(3) emulation (wildcard ``from`` patterns) against glibc's own
fnmatch, called through ctypes, on random patterns and addresses."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from msmtp_twisted.config.select import _glob_match
from tests.conftest import require


@pytest.fixture(scope="module")
def libc_fnmatch():
    require(platform.libc_ver()[0] == "glibc", "glibc, for its fnmatch(3)")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    return lambda pattern, text: libc.fnmatch(pattern.encode(), text.encode(), 0) == 0


ALPHABET = st.sampled_from(list("ab@.x-*?[]!^\\:") + ["[:lower:]", "[:digit:]", "A", "1"])


@settings(max_examples=1500, deadline=None, database=None)
@given(pattern=st.lists(ALPHABET, max_size=8).map("".join),
       text=st.text(alphabet="ab@.xA1-*?[]!^\\:", max_size=8))
def test_same_as_glibc(libc_fnmatch, pattern: str, text: str) -> None:
    # A "[" that never closes is matched literally by glibc except in odd cases
    # (a pending range, "[.", ...) that we only approximate; see test_select.py.
    last_open, last_close = pattern.rfind("["), pattern.rfind("]")
    assume(last_open < 0 or last_close > last_open + 1)
    assert _glob_match(pattern, text) == libc_fnmatch(pattern, text), (pattern, text)
