"""A bearer-token-adding HTTP proxy, for outside clients that cannot send headers (the MCP
conformance suite): every request that passes through gets ``Authorization: Bearer ...``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def _requests(
    client: asyncio.StreamReader, upstream: asyncio.StreamWriter, header: bytes
) -> None:
    """Forward each request, the header added after its request line."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await client.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            upstream.write(line + b"\r\n" + header + rest)
            fields = {
                k.strip().lower(): v.strip()
                for k, _, v in (h.partition(b":") for h in rest.split(b"\r\n") if h)
            }
            if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
                while True:
                    size_line = await client.readuntil(b"\r\n")
                    upstream.write(size_line)
                    size = int(size_line.split(b";")[0], 16)
                    upstream.write(await client.readexactly(size + 2))
                    if size == 0:
                        break
            elif length := int(fields.get(b"content-length", b"0") or 0):
                upstream.write(await client.readexactly(length))
            await upstream.drain()
    with contextlib.suppress(Exception):
        upstream.close()


@contextlib.contextmanager
def bearer_proxy(target_port: int, token: str) -> Iterator[int]:
    """A proxy on a free loopback port to 127.0.0.1:``target_port``; yields its port."""
    header = f"Authorization: Bearer {token}\r\n".encode()
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(_requests(reader, up_writer, header), _pipe(up_reader, writer))

    server = loop.run_until_complete(asyncio.start_server(handle, sock=sock))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
