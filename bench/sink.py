"""A fast SMTP sink for benchmarks: answers every command, discards the mail.

It reads with large buffers and replies to pipelined commands in one write, so
that the client, not the server, is what a benchmark measures.  Optionally it
sits behind a fixed delay per reply batch to simulate network latency.

    python bench/sink.py PORT [--delay-ms N] [--tls-cert PEM --tls-key PEM] [--auth USER:PASS]

With ``--tls-cert``/``--tls-key`` it offers STARTTLS; with ``--auth`` it offers
AUTH PLAIN (after STARTTLS when TLS is offered), checks the credentials and
refuses MAIL before a successful AUTH, so a client that skips either is noticed.

It counts what it accepted: the extra command ``XSTAT`` answers
``250 mails=N sessions=M`` (benchmarks check that every mail arrived).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ssl

EHLO_HEAD = b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-DSN\r\n"
EHLO_TAIL = b"250 SIZE 0\r\n"


class Stats:
    mails = 0
    sessions = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                 tls: ssl.SSLContext | None, auth: bytes | None) -> None:
    Stats.sessions += 1
    writer.write(b"220 sink.example ESMTP\r\n")
    buf = b""
    in_data = False
    in_tls = False
    authed = auth is None
    auth_pending = False  # AUTH PLAIN without an initial response: the next line is it
    try:
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            buf += chunk
            out: list[bytes] = []
            starttls = False
            while True:
                if in_data:
                    end = buf.find(b"\r\n.\r\n")
                    if end < 0:
                        buf = buf[-4:]  # keep what could start the terminator
                        break
                    buf = buf[end + 5:]
                    in_data = False
                    Stats.mails += 1
                    out.append(b"250 2.0.0 Ok: queued\r\n")
                    continue
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl + 1], buf[nl + 1:]
                if auth_pending:
                    auth_pending = False
                    authed = _plain_ok(line.strip(), auth)
                    out.append(b"235 2.7.0 ok\r\n" if authed else b"535 5.7.8 no\r\n")
                    continue
                verb = line[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    out.append(EHLO_HEAD)
                    if tls is not None and not in_tls:
                        out.append(b"250-STARTTLS\r\n")
                    elif auth is not None:
                        out.append(b"250-AUTH PLAIN\r\n")
                    out.append(EHLO_TAIL)
                elif verb == b"STAR" and tls is not None and not in_tls:
                    out.append(b"220 2.0.0 go ahead\r\n")
                    starttls = True
                    buf = b""  # nothing sent before the handshake counts after it
                    break
                elif verb == b"AUTH" and auth is not None and (in_tls or tls is None):
                    words = line.split()
                    if len(words) == 2:
                        auth_pending = True
                        out.append(b"334 \r\n")
                    else:
                        authed = len(words) == 3 and _plain_ok(words[2], auth)
                        out.append(b"235 2.7.0 ok\r\n" if authed else b"535 5.7.8 no\r\n")
                elif verb == b"MAIL" and not authed:
                    out.append(b"530 5.7.0 authentication required\r\n")
                elif verb == b"DATA":
                    out.append(b"354 go ahead\r\n")
                    in_data = True
                    buf = b"\r\n" + buf  # a terminator right at the start of DATA
                elif verb == b"QUIT":
                    out.append(b"221 bye\r\n")
                elif verb == b"XSTA":
                    out.append(b"250 mails=%d sessions=%d\r\n" % (Stats.mails, Stats.sessions))
                else:
                    out.append(b"250 2.1.0 Ok\r\n")
            if out:
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"".join(out))
                await writer.drain()
                if out[-1].startswith(b"221"):
                    break
            if starttls:
                await writer.start_tls(tls)
                in_tls = True
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


def _plain_ok(response: bytes, expected: bytes | None) -> bool:
    try:
        return base64.b64decode(response, validate=True) == expected
    except ValueError:
        return False


async def serve(port: int, delay: float, tls: ssl.SSLContext | None, auth: bytes | None) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay, tls, auth),
                                        "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--tls-cert", help="PEM certificate (chain): offer STARTTLS")
    parser.add_argument("--tls-key", help="PEM key of --tls-cert")
    parser.add_argument("--auth", help="USER:PASSWORD: offer AUTH PLAIN and require it")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    auth = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = b"\0" + user.encode() + b"\0" + password.encode()
    asyncio.run(serve(args.port, args.delay_ms / 1000, tls, auth))


if __name__ == "__main__":
    main()
