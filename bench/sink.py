"""A fast SMTP sink for benchmarks: answers every command, discards the mail.

It reads with large buffers and replies to pipelined commands in one write, so
that the client, not the server, is what a benchmark measures.  Optionally it
sits behind a fixed delay per reply batch to simulate network latency.

    python bench/sink.py PORT [--delay-ms N]
"""

from __future__ import annotations

import argparse
import asyncio

EHLO = (b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-DSN\r\n"
        b"250 SIZE 0\r\n")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    writer.write(b"220 sink.example ESMTP\r\n")
    buf = b""
    in_data = False
    try:
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            buf += chunk
            out: list[bytes] = []
            while True:
                if in_data:
                    end = buf.find(b"\r\n.\r\n")
                    if end < 0:
                        buf = buf[-4:]  # keep what could start the terminator
                        break
                    buf = buf[end + 5:]
                    in_data = False
                    out.append(b"250 2.0.0 Ok: queued\r\n")
                    continue
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl + 1], buf[nl + 1:]
                verb = line[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    out.append(EHLO)
                elif verb == b"DATA":
                    out.append(b"354 go ahead\r\n")
                    in_data = True
                    buf = b"\r\n" + buf  # a terminator right at the start of DATA
                elif verb == b"QUIT":
                    out.append(b"221 bye\r\n")
                else:
                    out.append(b"250 2.1.0 Ok\r\n")
            if out:
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"".join(out))
                await writer.drain()
                if out[-1].startswith(b"221"):
                    break
    finally:
        writer.close()


async def serve(port: int, delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
