"""A system CA bundle as ``tls_trust_file``: it carries CAs that cryptography
warns about (a serial number that is not positive); msmtp prints nothing about
them and neither may we, and one certificate we cannot parse must not cost the
others."""

from __future__ import annotations

import socket
import subprocess
import warnings
from pathlib import Path

import pytest

from tests.conftest import ours_command, ours_env, require

BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bundle() -> Path:
    require(BUNDLE.is_file(), f"{BUNDLE} (apt-get install ca-certificates)")
    return BUNDLE


def test_system_bundle_as_trust_file_prints_what_msmtp_prints(
        tmp_path: Path, bundle: Path, real_msmtp: str) -> None:
    rc = tmp_path / "msmtprc"
    rc.write_text(f"account default\nhost 127.0.0.1\nport {_closed_port()}\ntls on\n"
                  f"tls_trust_file {bundle}\nfrom a@example.org\n")
    rc.chmod(0o600)
    results = []
    for command in ([real_msmtp], ours_command()):
        proc = subprocess.run([*command, "-C", str(rc), "rcpt@example.org"], input=b"x\n",
                              capture_output=True, timeout=60, env=ours_env({}))
        results.append((proc.returncode, proc.stderr.decode()))
    assert results[1] == results[0]
    assert "Warning" not in results[1][1]


def test_one_unreadable_certificate_does_not_cost_the_others(bundle: Path) -> None:
    from msmtp_twisted.tls.files import BrokenPEM
    from msmtp_twisted.tls.files import trust_certificates as _trust_certificates

    data = bundle.read_bytes()
    total = data.count(b"-----BEGIN CERTIFICATE-----")
    # still base64, no longer DER that cryptography reads: skipped
    unreadable = data.replace(b"-----BEGIN CERTIFICATE-----\nMII",
                              b"-----BEGIN CERTIFICATE-----\nAAA", 1)
    # not base64 at all: GnuTLS refuses the whole file, so do we
    not_base64 = data.replace(b"-----BEGIN CERTIFICATE-----\nMII",
                              b"-----BEGIN CERTIFICATE-----\n!!!", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning escapes either
        assert len(_trust_certificates(data)) == total
        assert len(_trust_certificates(unreadable)) == total - 1
        with pytest.raises(BrokenPEM):
            _trust_certificates(not_base64)
