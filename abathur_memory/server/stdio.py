"""MCP over stdio with the event loop reading and writing the pipes.

Why: the SDK's ``stdio_server()`` reads each line and writes each message through
``anyio.wrap_file``, a worker-thread hop per line read and two per message written (write,
then flush). On these 2-core machines a hop costs about 0.2 ms of CPU, which made a no-op tool
call's round trip 1.8-2.8 ms; with the pipes on the loop it is 1.1-1.4 ms
(bench/mcp_search.py, docs/benchmarks.md#memory_search-over-mcp). The SDK's framing, parsing
and session are kept: this module only hands ``stdio_server`` streams of its own.

As the SDK does, fd 0 and fd 1 are moved off the wire while serving (fd 0 reads the null
device, fd 1 writes to stderr), so a library that prints cannot corrupt the JSON-RPC stream,
and are put back on exit. Where the loop cannot watch the descriptors (Windows, or stdin
redirected from a regular file), the SDK's own transport serves instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

log = logging.getLogger(__name__)

LifespanT = TypeVar("LifespanT")
LINE_LIMIT = 1 << 30  # the reader's buffer cap: far above any request the server accepts


class _Lines:
    """stdin as the SDK iterates it: text lines, undecodable bytes replaced."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Out:
    """stdout as the SDK writes it: ``write`` buffers in the transport, ``flush`` waits
    until the pipe has taken it (back-pressure from a slow client)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@contextlib.asynccontextmanager
async def loop_pipes() -> AsyncIterator[tuple[_Lines, _Out] | None]:
    """stdin and stdout read and written by the running loop, fds 0 and 1 diverted while
    serving; None where the loop cannot watch them (the caller uses the SDK's transport)."""
    if sys.platform == "win32":  # pragma: no cover - the proactor cannot watch std handles
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
    try:
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", 0)
        )
    except (ValueError, OSError) as exc:  # a regular file, say: not something to watch
        log.debug("stdin cannot be watched by the loop (%s): the SDK's transport serves", exc)
        os.close(wire_in)
        os.close(wire_out)
        yield None
        return
    try:
        write_transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", 0)
        )
    except (ValueError, OSError) as exc:
        log.debug("stdout cannot be watched by the loop (%s): the SDK's transport serves", exc)
        read_transport.close()
        os.close(wire_out)
        yield None
        return
    writer = asyncio.StreamWriter(write_transport, protocol, reader, loop)
    restore = _divert_std_fds()
    try:
        yield _Lines(reader), _Out(writer)
    finally:
        write_transport.close()
        read_transport.close()
        restore()


def _divert_std_fds() -> Callable[[], None]:
    """Point fd 0 at the null device and fd 1 at stderr; the returned function puts the
    originals back (blocking again: the loop made the shared pipes non-blocking)."""
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    os.dup2(2, 1)

    def restore() -> None:
        for fd, saved in ((0, saved_in), (1, saved_out)):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
                os.set_blocking(fd, True)
            with contextlib.suppress(OSError):
                os.close(saved)

    return restore


class StdioServer(MCPServer[LifespanT]):
    """The SDK's server, serving stdio through :func:`loop_pipes` where it can."""

    async def run_stdio_async(self) -> None:
        async with loop_pipes() as pipes:
            if pipes is None:
                await super().run_stdio_async()
                return
            stdin, stdout = pipes
            async with stdio_server(stdin, stdout) as (read_stream, write_stream):  # type: ignore[arg-type]
                lowlevel = self._lowlevel_server
                await lowlevel.run(
                    read_stream, write_stream, lowlevel.create_initialization_options()
                )
