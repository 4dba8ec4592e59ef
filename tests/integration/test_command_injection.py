"""An address with a line break in it must not become a second SMTP command.

msmtp 1.8.23 writes ``-f 'a@b>\\r\\nRCPT TO:<evil@z'`` as it is, so the server
reads two commands (a recipient the caller never named); a program that
passes a web form's address to the library would let its users add
recipients or forge a mail.  Ours refuses before sending the command (exit
65, docs/differences.md) on the command line and in the library; the
``twisted.mail.smtp`` drop-in parses addresses as Twisted does, which drops
the rest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, ours_command, ours_env
from tests.servers.msmtp import write_config

EVIL_FROM = "a@example.org>\r\nRCPT TO:<evil@example.net"
EVIL_RCPT = "x@example.org>\r\nRCPT TO:<evil@example.net"


def _rc(tmp: Path, port: int) -> str:
    return str(write_config(tmp, ("127.0.0.1", port), from_="me@example.org"))


def _evil_commands(server: Any) -> list[str]:
    server.wait_idle()
    return [c for c in server.commands if "evil" in c]


def test_command_line(real_msmtp: str, server_factory: Any, tmp_path: Path) -> None:
    from tests.servers.recording import RecordingServer

    seen = {}
    for who, command, env in (("real", [real_msmtp], {}), ("ours", ours_command(),
                                                            ours_env({}))):
        server = server_factory(RecordingServer)
        tmp = tmp_path / who
        tmp.mkdir()
        proc = subprocess.run([*command, "-C", _rc(tmp, server.port), "-f", EVIL_FROM,
                               "x@example.org"], input=b"Subject: s\n\nb\n",
                              capture_output=True, timeout=60,
                              env={"HOME": str(tmp), "PATH": "/usr/bin:/bin", **env})
        seen[who] = (proc.returncode, _evil_commands(server), proc.stderr)
    assert seen["real"][1], "msmtp 1.8.23 sends the injected command (the difference)"
    code, evil, stderr = seen["ours"]
    assert (code, evil) == (65, [])
    assert stderr.startswith(
        b"msmtp: Cannot send command because it contains a line break (CR or LF).\n")


def _run(script: str, tmp_path: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env=ours_env({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_library(recording_server: Any, tmp_path: Path) -> None:
    rc = _rc(tmp_path, recording_server.port)
    result = _run(f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.api import load_account, send_mail
        from msmtp_twisted.errors import SMTPFailure

        async def main(reactor):
            account = load_account("default", config_file={rc!r})
            out = []
            for sender, rcpt in ((None, {EVIL_RCPT!r}), ({EVIL_FROM!r}, "x@example.org")):
                try:
                    await send_mail(reactor, account, sender, [rcpt], b"Subject: s\\n\\nb\\n")
                    out.append("sent")
                except SMTPFailure as e:
                    out.append([type(e).__name__, e.exitcode, e.message])
            print(json.dumps(out))

        task.react(lambda r: __import__("twisted.internet.defer").internet.defer
                   .ensureDeferred(main(r)))
    """, tmp_path)
    refused = ["SMTPFailure", 65, "Cannot send command because it contains a line break "
               "(CR or LF)."]
    assert result == [refused, refused]
    assert _evil_commands(recording_server) == []
    assert recording_server.messages == []


def test_twisted_drop_in(recording_server: Any, tmp_path: Path) -> None:
    """The drop-in reads addresses as ``twisted.mail.smtp.Address`` does, which
    ends one at its ``>``: the mail goes to x@example.org alone."""
    result = _run(f"""
        import json
        from twisted.internet import task
        from msmtp_twisted.protocol.compat import sendmail

        def main(reactor):
            d = sendmail("127.0.0.1", "me@example.org", [{EVIL_RCPT!r}],
                         b"Subject: s\\n\\nb\\n", port={recording_server.port},
                         reactor=reactor)
            d.addCallbacks(lambda r: print(json.dumps("sent")),
                           lambda f: print(json.dumps(type(f.value).__name__)))
            return d
        task.react(main)
    """, tmp_path)
    assert result == "sent"
    assert _evil_commands(recording_server) == []
    assert [m.recipients for m in recording_server.messages] == [["x@example.org"]]
