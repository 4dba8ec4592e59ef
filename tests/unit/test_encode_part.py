"""``encode_part`` (a whole small part at once, for library sends) gives exactly
what the streaming ``DataEncoder`` gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted.message.encoder import DataEncoder, encode_part
from msmtp_twisted.message.rewrite import HeaderPolicy

POLICIES = st.one_of(st.none(), st.builds(HeaderPolicy, keep_from=st.booleans(),
                                          keep_to=st.booleans(), keep_cc=st.booleans(),
                                          keep_bcc=st.booleans()))
PIECES = st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b":", b" ", b"\t", b"Bcc:",
                          b"to:", b"From: x", b"cc", b"resent-bcc:", b"..", b"\x00", b"\xff"])


def streamed(data: bytes, policy: HeaderPolicy | None) -> tuple[bytes, int]:
    enc = DataEncoder(policy)
    out = enc.feed(data) + enc.finish()
    return out, enc.mailsize


@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=40).map(b"".join), POLICIES)
def test_same_as_the_streaming_encoder(data: bytes, policy: HeaderPolicy | None) -> None:
    assert encode_part(data, policy) == streamed(data, policy)


def test_examples() -> None:
    assert encode_part(b"") == (b"", 0)
    assert encode_part(b".a\n.\r\nb\rc") == (b"..a\r\n..\r\nb\rc\r\n", 9)
    policy = HeaderPolicy(keep_from=True, keep_to=True, keep_cc=True, keep_bcc=False)
    assert encode_part(b"To: a\nBcc: b\n c\n\nbody\n", policy) == \
        (b"To: a\r\n\r\nbody\r\n", 12)
