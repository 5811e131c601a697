"""The receiver of the push benchmark: an HTTPS server that answers every request with ``204 No Content``, as
fast as one Python process can (an asyncio protocol on uvloop, HTTP/1.1 keep-alive, pipelining allowed).
The same server is measured on its own with wrk (its ceiling) and then receives the pushes, so
``pushed / ceiling`` is the share of a receiver's capacity that push delivery can use.

Run: ``python -m bench.push_receiver PORT CERT KEY`` (prints ``ready`` when listening)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys

ANSWER = b"HTTP/1.1 204 No Content\r\nserver: bench\r\n\r\n"
CLOSE_ANSWER = b"HTTP/1.1 204 No Content\r\nserver: bench\r\nconnection: close\r\n\r\n"
MAX_HEAD = 64 * 1024


class Answer204(asyncio.Protocol):
    """Reads requests (head, then ``content-length`` bytes of body) and answers each with 204."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out = b""
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    close = True
                break
            head = bytes(buffer[:end]).lower()
            length = 0
            at = head.find(b"\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r", at + 16)
                length = int(head[at + 16 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            del buffer[:total]
            if b"\nconnection: close" in head:
                out += CLOSE_ANSWER
                close = True
                break
            out += ANSWER
        if self.transport is not None:
            if out:
                self.transport.write(out)
            if close:
                self.transport.close()


async def serve(port: int, cert: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer204, "127.0.0.1", port, ssl=context, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port, cert, key))
        return
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(port, cert, key))


if __name__ == "__main__":
    main()
