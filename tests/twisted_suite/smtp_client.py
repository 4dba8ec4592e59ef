"""Twisted's own client tests (``twisted.mail.test.test_smtp``) run against
:mod:`msmtp_twisted.protocol.compat`.

The test module is loaded from the installed Twisted unchanged, as a second copy
whose global ``smtp`` is a stand-in for ``twisted.mail.smtp``: the same module
except that ``SMTPSenderFactory``, ``ESMTPSenderFactory`` and ``sendmail`` are
ours, and ``ESMTPClient`` builds our protocol (see :class:`ESMTPClientOnCompat`).
What the tests assert is Twisted's.

Run ``python -m tests.twisted_suite.smtp_client`` (trial needs the reactor, so
``tests/integration/test_twisted_smtp_suite.py`` runs this in a child process):
it prints one JSON object, ``{test id: [outcome, detail]}`` with outcome
``success``, ``failure``, ``error`` or ``skip``, for the tests in :data:`APPLY`.
:data:`NOT_APPLICABLE` lists the client tests that are left out, and why.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tempfile
import types
from typing import Any

from twisted.internet import defer, task
from twisted.mail import smtp as twisted_smtp
from twisted.trial import reporter, runner, unittest

from msmtp_twisted.protocol import compat


class ESMTPClientOnCompat:
    """``smtp.ESMTPClient(secret, contextFactory, identity)`` as our protocol: a
    factory with that password, context and EHLO name builds it (the protocol
    reads ``heloFallback``, ``requireAuthentication`` and
    ``requireTransportSecurity`` from itself, as Twisted's does, so the tests can
    set them).  Its mail is from ``test@example.org``, which is what the tests
    that get as far as MAIL make ``getMailFrom`` return.

    Its timers run on a clock of its own: after QUIT our protocol waits at most
    10 seconds for the reply (Twisted's waits for ever), and the tests' string
    transports never answer nor close, so on the global reactor that timer would
    be left behind and trial would call the reactor unclean."""

    def __new__(cls, secret: bytes, contextFactory: Any = None,  # type: ignore[misc]
                identity: bytes = b"") -> compat.SenderProtocol:
        result: defer.Deferred[Any] = defer.Deferred()
        result.addErrback(lambda failure: None)  # nobody waits for this mail
        factory = compat.ESMTPSenderFactory(
            None, secret, "test@example.org", ["recipient@example.org"],
            io.BytesIO(b"Subject: test\n\nbody\n"), result, retries=0,
            contextFactory=contextFactory)
        factory.domain = identity
        proto = factory.buildProtocol(None)
        proto.callLater = task.Clock().callLater  # type: ignore[method-assign]
        # ESMTPClient's own defaults (ESMTPSenderFactory sets stricter ones)
        proto.heloFallback = True
        proto.requireAuthentication = False
        proto.requireTransportSecurity = False
        return proto


def _stand_in() -> types.ModuleType:
    module = types.ModuleType("twisted_mail_smtp_on_compat")
    module.__dict__.update(vars(twisted_smtp))
    module.SMTPSenderFactory = compat.SMTPSenderFactory  # type: ignore[attr-defined]
    module.ESMTPSenderFactory = compat.ESMTPSenderFactory  # type: ignore[attr-defined]
    module.sendmail = compat.sendmail  # type: ignore[attr-defined]
    module.ESMTPClient = ESMTPClientOnCompat  # type: ignore[attr-defined]
    return module


def load(reference: bool = False) -> types.ModuleType:
    """A fresh copy of Twisted's test module whose ``smtp`` is the stand-in
    (``reference``: Twisted's own module, to show the tests pass there)."""
    spec = importlib.util.find_spec("twisted.mail.test.test_smtp")
    assert spec is not None and spec.origin is not None
    copy = importlib.util.spec_from_file_location("twisted_test_smtp_on_compat", spec.origin)
    assert copy is not None and copy.loader is not None
    module = importlib.util.module_from_spec(copy)
    sys.modules[copy.name] = module
    copy.loader.exec_module(module)
    if not reference:
        module.smtp = _stand_in()  # type: ignore[attr-defined]
    return module


#: The client tests that exercise what compat provides: the two factories,
#: ``sendmail``, and the ESMTP decisions (HELO fallback, TLS) of the protocol
#: the factories build.
APPLY: dict[str, list[str]] = {
    "TLSTests": ["test_ESMTPSenderFactory_TLSError"],
    "TimeoutTests": [
        "test_SMTPClientRecipientBytes", "test_SMTPClientRecipientUnicode",
        "test_SMTPClientRecipientList", "test_ESMTPClient", "test_resetTimeoutWhileSending",
    ],
    "SMTPSenderFactoryTests": [
        "test_removeCurrentProtocolWhenClientConnectionLost",
        "test_removeCurrentProtocolWhenClientConnectionFailed",
    ],
    "SMTPSenderFactoryRetryTests": ["test_retryAfterDisconnect"],
    "SenderMixinSentMailTests": ["test_onlyLogFailedAddresses"],
    "ESMTPDowngradeTestCase": [
        "test_requireHELOFallbackOperates", "test_requireAuthFailsHELOFallback",
        "test_requireTLSFailsHELOFallback", "test_requireTLSAndHELOFallbackSucceedsIfOverTLS",
    ],
    "SSLTestCase": [
        "test_requireTransportSecurityOverSSL", "test_requireTransportSecurityTLSOffered",
        "test_requireTransportSecurityTLSOfferedOverSSL",
        "test_requireTransportSecurityTLSNotOffered",
    ],
    "SendmailTests": [
        "test_defaultReactorIsGlobalReactor", "test_honorsESMTPArgumentsUnicodeUserPW",
        "test_honorsESMTPArgumentsBytesUserPW", "test_messageFilePassthrough",
        "test_messageStringMadeFile", "test_senderDomainName",
        "test_cancelBeforeConnectionMade", "test_cancelAfterConnectionMade",
    ],
}

#: Seconds a test may take (they take well under one when they pass).
TEST_TIMEOUT = 10

#: Client tests not run, and why.
NOT_APPLICABLE: dict[str, str] = {
    "SMTPClientTests": "subclass smtp.SMTPClient and call its state methods and "
                       "sendError directly: a protocol class compat does not replace",
    "AnotherESMTPTests": "subclasses of smtp.ESMTPClient/SMTPClient with their own "
                         "getMailFrom/sentMail hooks, against Twisted's server",
    "AnotherSMTPTests": "as AnotherESMTPTests",
    "AuthTests": "register Twisted's CRAM-MD5/LOGIN authenticators on an "
                 "smtp.ESMTPClient subclass (compat chooses methods as msmtp does)",
    "TLSTests.testTLS": "overrides ESMTPClient.esmtpState_starttls, a private state method",
    "SSLTestCase.test_esmtpClientTlsMode*": "the tlsMode attribute of ESMTPClient, "
                                            "deprecated since Twisted 13.0",
    "SMTPClientErrorTests": "str() of Twisted's own exception classes (compat's "
                            "subclasses use the same __str__; see test_twisted_compat)",
}


def run(reference: bool = False) -> dict[str, list[str]]:
    module = load(reference)
    suite = unittest.TestSuite()
    for class_name, names in APPLY.items():
        case = getattr(module, class_name)
        case.timeout = TEST_TIMEOUT  # trial's default is 120 s a test
        for name in names:
            suite.addTest(case(name))
    stream = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
        trial = runner.TrialRunner(reporter.Reporter, stream=stream,
                                   workingDirectory=tmp + "/_trial_temp")
        result = trial.run(suite)
    outcomes: dict[str, list[str]] = {}

    def short(test: Any) -> str:
        return test.id().split("twisted_test_smtp_on_compat.", 1)[-1]

    for test in result.successes if isinstance(result.successes, list) else []:
        outcomes[short(test)] = ["success", ""]
    for kind, items in (("failure", result.failures), ("error", result.errors)):
        for test, failure in items:
            detail = failure.getErrorMessage() if hasattr(failure, "getErrorMessage") \
                else str(failure)
            name = getattr(getattr(failure, "type", None), "__name__", "")
            seen = outcomes.get(short(test))
            if seen is not None and seen[0] != "success":  # several errors: keep them all
                outcomes[short(test)] = [seen[0], f"{seen[1]} | {name}: {detail}"]
            else:
                outcomes[short(test)] = [kind, f"{name}: {detail}"]
    for test, why in result.skips:
        outcomes[short(test)] = ["skip", str(why)]
    for class_name, names in APPLY.items():
        for name in names:
            outcomes.setdefault(f"{class_name}.{name}", ["success", ""])
    return outcomes


if __name__ == "__main__":
    print(json.dumps(run(reference="--reference" in sys.argv[1:]), sort_keys=True))
