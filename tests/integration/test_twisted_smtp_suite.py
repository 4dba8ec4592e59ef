"""Twisted's own client tests (``twisted.mail.test.test_smtp``) against our drop-in.

tests/twisted_suite/smtp_client.py loads Twisted's test module with our
``SMTPSenderFactory``, ``ESMTPSenderFactory`` and ``sendmail`` in place of
Twisted's and runs the client tests that apply under trial, in a child process
(trial runs the reactor).  The same tests are run against Twisted's own classes
first: they all pass there, so each one that fails against ours is a difference.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, ours_env
from tests.twisted_suite.smtp_client import APPLY, NOT_APPLICABLE

pytestmark = pytest.mark.timeout(300)

#: Tests we fail on purpose, and why.
DIFFERENT = {
    # The server drops the connection after the final dot without a reply (its
    # message handler raised).  Twisted's factory connects again and sends the
    # mail a second time; the server may already have the first one, so ours
    # reports the failure instead (SMTPConnectError: "Connection was closed
    # cleanly") and never sends a mail twice.
    "SMTPSenderFactoryRetryTests.test_retryAfterDisconnect": "SMTPConnectError",
}


def _run(*args: str) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-m", "tests.twisted_suite.smtp_client", *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT,
                          env=ours_env({"PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _all_tests() -> set[str]:
    return {f"{case}.{name}" for case, names in APPLY.items() for name in names}


def test_the_tests_pass_with_twisteds_own_classes() -> None:
    outcomes = _run("--reference")
    assert set(outcomes) == _all_tests()
    assert {k: v for k, v in outcomes.items() if v[0] != "success"} == {}


def test_twisteds_client_tests_pass_against_ours() -> None:
    outcomes = _run()
    assert set(outcomes) == _all_tests()
    failed = {k: v for k, v in outcomes.items() if v[0] != "success"}
    assert set(failed) == set(DIFFERENT), failed
    for name, why in DIFFERENT.items():
        assert why in failed[name][1], failed[name]
    assert len(outcomes) - len(failed) == 25


def test_not_applicable_tests_are_named() -> None:
    """Every client test class of Twisted's module is either run or listed."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("twisted.mail.test.test_smtp")
    assert spec is not None and spec.origin is not None
    source = open(spec.origin, encoding="utf-8").read()
    client_classes = {"SMTPClientTests", "AnotherESMTPTests", "AnotherSMTPTests", "AuthTests",
                      "TLSTests", "TimeoutTests", "SMTPSenderFactoryTests",
                      "SMTPSenderFactoryRetryTests", "SenderMixinSentMailTests",
                      "ESMTPDowngradeTestCase", "SSLTestCase", "SendmailTests",
                      "SMTPClientErrorTests"}
    defined = set(re.findall(r"^class (\w+)\(", source, re.M))
    assert client_classes <= defined
    covered = set(APPLY) | {name.split(".")[0] for name in NOT_APPLICABLE}
    assert client_classes <= covered, client_classes - covered
