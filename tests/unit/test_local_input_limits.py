"""Every read of a local input is bounded (issue 10, item 12).

``eval``/``passwordeval`` output (also msmtpd's ``--auth=user,passwordeval``), the
configuration file, the aliases file, netrc files, TLS files and the mail's header
block.  Files "larger than the limit" are sparse or cheap to write; nothing here reads
without end even on the code before the fix (the endless inputs -- ``/dev/zero``,
``yes`` -- run against the real programs, under a memory limit, in
tests/integration/test_client_hardening.py).
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msmtp_twisted import sysexits
from msmtp_twisted.config.files import read_config_file, run_eval
from msmtp_twisted.config.netrc import find_password
from msmtp_twisted.config.parser import ConfigError, EvalError
from msmtp_twisted.daemon.password import PasswordError, eval_password
from msmtp_twisted.errors import TLSFailure
from msmtp_twisted.limits import (
    EVAL_DRAIN,
    EVAL_LINE,
    FILE_LIMIT,
    HEADER_ADDRESS,
    HEADER_SPOOL,
    RECIPIENTS,
)
from msmtp_twisted.message.aliases import AliasesError, expand_aliases_file
from msmtp_twisted.message.headers import HeaderScanner
from msmtp_twisted.sending.mail import MailBody, read_headers
from msmtp_twisted.tls.options import TLSOptions


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of ``size`` bytes: ``head`` then NUL bytes, without writing them."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


# -- eval / passwordeval ---------------------------------------------------------------

#: prints a first line of 200 000 bytes (and nothing else)
LONG_LINE = "head -c 200000 /dev/zero | tr '\\0' y"


@pytest.mark.parametrize("check_status", [False, True])
def test_eval_first_line_is_bounded(check_status: bool) -> None:
    with pytest.raises(EvalError) as info:
        run_eval(LONG_LINE, check_status=check_status)
    assert str(info.value) == (
        f"cannot evaluate '{LONG_LINE}': output line longer than {EVAL_LINE} bytes")


def test_passwordeval_output_after_the_first_line_is_cut_off() -> None:
    """msmtp takes the first line and pclose()s; a command that writes on is cut off
    (bounded), and then its exit status does not count (``yes`` exits 1 on EPIPE)."""
    command = f"echo pw; head -c {2 * EVAL_DRAIN} /dev/zero; exit 3"
    tracemalloc.start()
    try:
        assert run_eval(command, check_status=True) == "pw"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_passwordeval_status_still_counts_when_read_to_the_end() -> None:
    with pytest.raises(EvalError, match="exit status 3"):
        run_eval("echo pw; head -c 1000 /dev/zero; exit 3", check_status=True)


def _small_process(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python with 512 MB of address space: an unbounded read fails
    there with MemoryError instead of taking the machine."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, preexec_fn=limit, cwd=Path(__file__).parents[2])


def test_eval_takes_the_first_line_of_yes() -> None:
    proc = _small_process(
        "from msmtp_twisted.config.files import run_eval\n"
        "print(run_eval('yes', check_status=True), run_eval('yes'))\n")
    assert (proc.returncode, proc.stdout) == (0, "y y\n"), proc.stderr[-2000:]


def test_msmtpd_passwordeval_is_bounded() -> None:
    with pytest.raises(PasswordError) as info:
        eval_password(LONG_LINE)
    assert str(info.value) == (
        f"cannot get password: cannot evaluate '{LONG_LINE}': "
        f"output line longer than {EVAL_LINE} bytes")


# -- configuration, aliases, netrc, TLS files ---------------------------------------------

def test_config_file_longer_than_the_limit(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "rc", FILE_LIMIT + 1, b"account a\nhost h\n")
    with pytest.raises(ConfigError) as info:
        read_config_file(str(path), securitycheck=False)
    assert (info.value.message, info.value.exitcode) == (
        f"file is longer than {FILE_LIMIT} bytes", sysexits.EX_CONFIG)


def test_config_file_error_within_the_limit_comes_first(tmp_path: Path) -> None:
    """As msmtp, which reads line by line: line 2 is reported, not the size."""
    path = _sparse(tmp_path / "rc", FILE_LIMIT + 1, b"account a\nbogus x\n")
    with pytest.raises(ConfigError, match="^line 2: unknown command bogus$"):
        read_config_file(str(path), securitycheck=False)


def _cut_at_limit(line: bytes, before: int = 5) -> bytes:
    """Comment lines, then ``line`` starting ``before`` bytes before the limit."""
    filler = b"# " + b"x" * 97 + b"\n"
    start = FILE_LIMIT - before
    data = filler * (start // len(filler))
    pad = start - len(data)
    if pad:
        data += b"#" * (pad - 1) + b"\n"
    assert len(data) == start
    return data + line


def test_config_file_cut_in_a_line_is_not_misread(tmp_path: Path) -> None:
    """The line the limit cuts is left out: no "unknown command accou"."""
    path = tmp_path / "rc"
    path.write_bytes(_cut_at_limit(b"account b\n"))
    with pytest.raises(ConfigError, match="^file is longer than"):
        read_config_file(str(path), securitycheck=False)


def test_config_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "rc", FILE_LIMIT, b"account a\nhost h\n")
    parsed = read_config_file(str(path), securitycheck=False)
    assert [a.id for a in parsed.accounts] == ["a"]


def test_aliases_file_longer_than_the_limit(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "aliases", FILE_LIMIT + 1, b"joe: j@example.org\n")
    with pytest.raises(AliasesError, match=f"^file is longer than {FILE_LIMIT} bytes$"):
        expand_aliases_file(str(path), ["joe"])
    path = _sparse(tmp_path / "aliases2", FILE_LIMIT + 1, b"joe: j@example.org\nbad\n")
    with pytest.raises(AliasesError, match="^line 2: single ':' delimiter expected$"):
        expand_aliases_file(str(path), ["joe"])


def test_aliases_that_multiply_are_bounded(tmp_path: Path) -> None:
    """Seven aliases, each naming the next ten times: 10**6 recipients, unless bounded."""
    lines = [f"a{i}: " + ", ".join([f"a{i + 1}"] * 10) for i in range(6)] + ["a6: x@y"]
    path = tmp_path / "aliases"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(AliasesError, match=f"^more than {RECIPIENTS} recipients"):
        expand_aliases_file(str(path), ["a0"])
    assert time.monotonic() - started < 10


def test_netrc_reads_at_most_the_limit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = b"machine h1 login u1 password p1\n" + _cut_at_limit(
        b"machine h2 login u2 password secret-cut-by-the-limit\n", before=40)[32:]
    (home / ".netrc").write_bytes(data + b"machine h3 login u3 password p3\n")
    assert find_password("h1", "u1", str(tmp_path / "etc"), str(home)) == "p1"
    # neither a password cut short nor one past the limit
    assert find_password("h2", "u2", str(tmp_path / "etc"), str(home)) is None
    assert find_password("h3", "u3", str(tmp_path / "etc"), str(home)) is None


@pytest.mark.parametrize("which", ["trust", "crl", "cert"])
def test_tls_file_longer_than_the_limit(tmp_path: Path, which: str) -> None:
    big = str(_sparse(tmp_path / "big.pem", FILE_LIMIT + 1))
    if which == "trust":
        options = TLSOptions("localhost", trust_file=big)
        message = f"cannot set X509 trust file {big} for TLS session: "
    elif which == "crl":
        options = TLSOptions("localhost", crl_file=big)  # the system's CAs, then the CRL
        message = f"cannot set X509 CRL file {big} for TLS session: "
    else:
        options = TLSOptions("localhost", trust_file=None, certcheck=False, cert_file=big,
                             key_file=big)
        message = f"cannot set X509 key file {big} and/or X509 cert file {big} for TLS session: "
    with pytest.raises(TLSFailure) as info:
        options.context()
    assert (info.value.exitcode, info.value.message) == (
        sysexits.EX_NOINPUT, message + "Error while reading file.")


# -- the mail's header block ----------------------------------------------------------------

def _big_header_mail(size: int) -> bytes:
    return (b"To: r@example.org\nX-Big: " + b"a" * size + b"\nSubject: s\n\nbody\n")


def test_header_block_goes_to_a_file_beyond_the_spool_size() -> None:
    mail = _big_header_mail(8 * HEADER_SPOOL)
    tracemalloc.start()
    try:
        headers = read_headers(io.BytesIO(mail), want_recipients=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * HEADER_SPOOL + (1 << 20), peak
    assert headers.scanner.recipients == ["r@example.org"]
    head = b"".join(headers.iter_head())
    assert head == mail[: mail.index(b"\n\n") + 2] and headers.rest == b"body\n"


def _encoded(head: bytes | object, rest: bytes, stdin: io.BytesIO) -> tuple[bytes, int]:
    body = MailBody(b"From: a@b\n", head, rest, stdin, None)  # type: ignore[arg-type]
    out = []
    while (chunk := body.next_chunk()) is not None:
        out.append(chunk)
    return b"".join(out), body.mailsize


def test_spooled_header_block_is_sent_as_it_was_read() -> None:
    mail = _big_header_mail(3 * HEADER_SPOOL).replace(b"\n", b"\r\n") + b"\r\n.dot\r\n"
    stream = io.BytesIO(mail)
    spooled = read_headers(stream, want_recipients=False)
    got = _encoded(spooled.iter_head(), spooled.rest, stream)
    head_end = mail.index(b"\r\n\r\n") + 4
    stream = io.BytesIO(mail[len(spooled.rest) + head_end:])
    whole = _encoded(mail[:head_end], spooled.rest, stream)
    assert got == whole
    assert got[0].startswith(b"From: a@b\r\nTo: r@example.org\r\nX-Big: aaa")
    assert got[0].endswith(b"\r\n\r\nbody\r\n\r\n..dot\r\n")


def test_huge_address_is_kept_to_what_could_be_sent() -> None:
    scanner = HeaderScanner()
    scanner.feed(b"To: " + b"a" * (4 << 20) + b"@example.org, b@example.org\n\n")
    assert [len(r) for r in scanner.recipients] == [HEADER_ADDRESS, len("b@example.org")]


def test_recipients_from_the_headers_are_bounded() -> None:
    scanner = HeaderScanner()
    scanner.feed(b"To: " + b",".join(b"r%d@x" % i for i in range(RECIPIENTS + 5)) + b"\n\n")
    assert scanner.too_many_recipients and len(scanner.recipients) == RECIPIENTS
    scanner = HeaderScanner()
    scanner.feed(b"To: " + b",".join(b"r%d@x" % i for i in range(RECIPIENTS)) + b"\n\n")
    assert not scanner.too_many_recipients


@pytest.mark.timeout(120)
def test_large_header_block_is_scanned_quickly() -> None:
    """Byte by byte in Python a mail without a blank line (all header block) took
    minutes; msmtp scans it in a blink.  Runs of bytes that leave the state alone go
    at once."""
    data = (b"From: " + b"f" * (2 << 20) + b"@example.org\n" + b"X: " + b"x" * (10 << 20)
            + b"\nTo: <" + b"t" * (2 << 20) + b">\n\n")
    started = time.monotonic()
    scanner = HeaderScanner()
    assert scanner.feed(data) == len(data)
    assert time.monotonic() - started < 5
    assert scanner.from_address == "f" * HEADER_ADDRESS
    assert scanner.recipients == ["t" * HEADER_ADDRESS]


def _byte_by_byte(data: bytes, **kwargs: bool) -> tuple[object, ...]:
    scanner = HeaderScanner(**kwargs)
    end = None
    for i, c in enumerate(data):
        if c != 13:
            scanner._step(c)
            if scanner.done:
                end = i + 1
                break
    if end is None:
        scanner.finish()
    return (end, scanner.recipients, scanner.sender_address, scanner.have_date,
            scanner.have_msgid)


HEADER_BYTES = st.lists(st.sampled_from([
    b"To: ", b"Cc:", b"Bcc: ", b"From: ", b"Resent-To: ", b"Resent-From: ", b"Date: ",
    b"Message-ID: ", b"X-Other: ", b"a@b", b"\"q, x\"", b"(c (d) )", b"<", b">", b",", b";",
    b":", b" ", b"\t", b"\r", b"\n", b"\n ", b"\\", b"x" * 50, b"\x01", b"\x7f", b"\xff",
]), max_size=60).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=HEADER_BYTES, cuts=st.lists(st.integers(min_value=0), max_size=8),
       want=st.booleans())
def test_scanner_runs_agree_with_the_byte_by_byte_machine(data: bytes, cuts: list[int],
                                                          want: bool) -> None:
    expected = _byte_by_byte(data, want_recipients=want)
    scanner = HeaderScanner(want_recipients=want)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    end = None
    for a, b in zip(points, points[1:], strict=False):
        at = scanner.feed(data[a:b])
        if at is not None:
            end = a + at
            break
    if end is None:
        scanner.finish()
    assert (end, scanner.recipients, scanner.sender_address, scanner.have_date,
            scanner.have_msgid) == expected


def test_limits_are_what_the_docs_say() -> None:
    """docs/differences.md names these numbers."""
    assert (FILE_LIMIT, EVAL_LINE, EVAL_DRAIN, HEADER_SPOOL, HEADER_ADDRESS, RECIPIENTS) == (
        16 << 20, 64 << 10, 1 << 20, 1 << 20, 4096, 100_000)
