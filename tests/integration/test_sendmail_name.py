"""Ours as the system's ``sendmail`` (issue 13): Debian's msmtp-mta makes
``/usr/sbin/sendmail`` and ``/usr/lib/sendmail`` links to msmtp, which then
behaves as when called as ``msmtp`` and names itself ``sendmail`` in its
messages.  The installed ``msmtp`` script, called through a link of that name,
does the same as msmtp 1.8.23 through its link, against the same server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ours_env, require
from tests.servers.msmtp import run_msmtp, write_config
from tests.servers.recording import RecordingServer

MAIL = (b"From: a@example.com\nTo: b@example.org\nSubject: as sendmail\n"
        b"Date: Thu, 03 Dec 2026 12:00:00 +0000\nMessage-ID: <sendmail@example.com>\n\nhi\n")


def links(tmp_path: Path, real: str) -> dict[str, Path]:
    script = Path(sys.executable).with_name("msmtp")
    require(script.exists(), f"the installed msmtp script next to {sys.executable} "
                             "(pip install .)")
    made = {}
    for who, target in (("ours", script), ("real", Path(real))):
        folder = tmp_path / who / "sbin"
        folder.mkdir(parents=True)
        link = folder / "sendmail"
        link.symlink_to(target)
        made[who] = link
    return made


@pytest.mark.parametrize("args", [["b@example.org"], ["-oi", "-odi", "b@example.org"],
                                  ["-t"], ["-bm", "-i", "b@example.org"]])
def test_delivers_as_msmtp_does(tmp_path: Path, real_msmtp: str, args: list[str]) -> None:
    link = links(tmp_path, real_msmtp)
    with RecordingServer() as server:
        rc = write_config(tmp_path, server)
        ours = run_msmtp([str(link["ours"])], rc, args, input=MAIL, env=ours_env({}))
        real = run_msmtp([str(link["real"])], rc, args, input=MAIL)
        server.wait_idle()
        sent = [m.data_bytes() for m in server.messages]
    assert ours.result == real.result == (0, "", "")
    assert len(sent) == 2 and sent[0] == sent[1]
    assert b"Subject: as sendmail" in sent[0]


@pytest.mark.parametrize("case", ["missing-config", "no-recipients", "refused"])
def test_failures_name_sendmail_as_msmtp_does(tmp_path: Path, real_msmtp: str,
                                              case: str) -> None:
    link = links(tmp_path, real_msmtp)
    with RecordingServer(replies={"RCPT": "550 5.1.1 no such user"}) as server:
        rc: Path | str = write_config(tmp_path, server)
        args = ["b@example.org"]
        if case == "missing-config":
            rc = tmp_path / "missing"
        elif case == "no-recipients":
            args = ["-t"]
        ours = run_msmtp([str(link["ours"])], rc, args, input=b"Subject: x\n\nhi\n",
                         env=ours_env({}))
        real = run_msmtp([str(link["real"])], rc, args, input=b"Subject: x\n\nhi\n")
    assert ours.returncode == real.returncode != 0
    assert ours.stderr == real.stderr
    assert ours.stderr.startswith("sendmail: ")
