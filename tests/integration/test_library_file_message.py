"""The library sends a mail from a seekable binary file: streamed (memory stays
flat), the same bytes on the wire as the same mail given as bytes, read again
from where the file stood for another attempt, refused clearly when the file is
a pipe, and a file that cannot be read again fails that send (msmtp's input
error, the connection dropped rather than a truncated mail delivered)."""

from __future__ import annotations

from tests.integration.test_connection_api import _run
from tests.servers.recording import RecordingServer

HEAD = (b"From: A <a@example.com>\nTo: b@x.org\nBcc: hidden@x.org\n"
        b"Date: Thu, 03 Dec 2026 10:00:00 +0000\nMessage-ID: <m1@example.com>\n"
        b"Subject: from a file\n\n")


def test_file_and_bytes_give_the_same_wire_bytes(tmp_path) -> None:
    body = b"".join(b"line %d .with a dot\n.%d starts with one\n" % (i, i)
                    for i in range(3000))
    path = tmp_path / "mail.eml"
    # the mail starts after a prefix: the file is read from where it stood
    path.write_bytes(b"PREFIX-NOT-SENT\n" + HEAD + body)
    whole = tmp_path / "whole.eml"
    whole.write_bytes(HEAD + body)
    with RecordingServer() as srv:
        out = _run(tmp_path, srv.port, f"""
            @defer.inlineCallbacks
            def main(reactor):
                conn = yield connect(reactor, account())
                with open({str(path)!r}, "rb") as f:
                    f.seek(len(b"PREFIX-NOT-SENT\\n"))
                    r1 = yield conn.send(None, ["b@x.org"], f)
                    # again from the same file object: read from where it stood
                    f.seek(len(b"PREFIX-NOT-SENT\\n"))
                    from msmtp_twisted.protocol.connection import PreparedMail
                    prepared = PreparedMail(account(), None, ["b@x.org"], f)
                    r2 = yield conn.send_prepared(prepared)
                    r3 = yield conn.send_prepared(prepared)  # body() reads it again
                with open({str(whole)!r}, "rb") as g:
                    r4 = yield conn.send(None, ["b@x.org"], g.read())
                yield conn.quit()
                print(json.dumps([r.reply.code for r in (r1, r2, r3, r4)]))
            task.react(main)
        """)
        srv.wait_idle(timeout=20)
    assert out == [250, 250, 250, 250]
    datas = [m.data_bytes() for m in srv.messages]
    assert len(datas) == 4
    assert datas[0] == datas[1] == datas[2] == datas[3]
    assert b"Bcc:" not in datas[0] and b"PREFIX" not in datas[0]
    assert b"\r\n.0 starts with one\r\n" in datas[0]  # stuffed and unstuffed intact


def test_big_file_is_streamed_with_flat_memory(tmp_path) -> None:
    path = tmp_path / "big.eml"
    line = b"x" * 998 + b"\n"
    with open(path, "wb") as f:
        f.write(HEAD)
        for _ in range(40 * 1024):  # 40 MiB
            f.write(line)
    with RecordingServer(spill_threshold=1 << 20) as srv:
        out = _run(tmp_path, srv.port, f"""
            import resource

            @defer.inlineCallbacks
            def main(reactor):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                with open({str(path)!r}, "rb") as f:
                    r = yield send_mail(reactor, account(), None, ["b@x.org"], f)
                after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                print(json.dumps({{"code": r.reply.code, "growth_kib": after - before}}))
            task.react(main)
        """)
        srv.wait_idle(timeout=60)
        size = len(srv.message.data_bytes())
    assert out["code"] == 250
    assert size > 40 * 1024 * 1000
    assert out["growth_kib"] < 20 * 1024, out  # far below the 40 MiB mail


def test_pipe_refused_and_unreadable_file_fails_the_send_only(tmp_path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(HEAD + b"body\n")
    with RecordingServer() as srv:
        out = _run(tmp_path, srv.port, f"""
            import os

            @defer.inlineCallbacks
            def main(reactor):
                out = {{}}
                conn = yield connect(reactor, account())
                r, w = os.pipe()
                os.write(w, b"Subject: x\\n\\nbody\\n"); os.close(w)
                with os.fdopen(r, "rb") as pipe:
                    try:
                        yield conn.send(None, ["b@x.org"], pipe)
                    except TypeError as e:
                        out["pipe"] = str(e)
                from msmtp_twisted.protocol.connection import PreparedMail
                f = open({str(path)!r}, "rb")
                prepared = PreparedMail(account(), None, ["b@x.org"], f)
                yield conn.send_prepared(prepared)
                f.close()  # the caller closed it too early: a second attempt fails
                try:
                    yield conn.send_prepared(prepared)
                except MsmtpError as e:
                    out["closed"] = [e.exitcode, e.message]
                # the mail had begun (DATA): the connection is dropped, never a
                # truncated mail ended with a dot
                out["reusable"] = conn.reusable
                print(json.dumps(out))
            task.react(main)
        """)
        srv.wait_idle(timeout=20)
    assert out["pipe"] == "message must be bytes or a seekable binary file"
    assert out["closed"] == [74, "input error while reading the mail"]
    assert out["reusable"] is False
    assert len(srv.messages) == 1
