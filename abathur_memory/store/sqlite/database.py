"""The async database: one writer connection, a small pool of readers (datasette's layering).

Every connection is an aiosqlite worker thread around a ``sqlean`` connection made by
:func:`abathur_memory.store.sqlite.driver.connect`. Work is handed to a thread as a plain function
of the connection, so a whole transaction (or a multi-statement read) costs one thread hop
instead of one per statement.

Writes run inside ``BEGIN IMMEDIATE`` on the single writer thread, which also serialises them
within the process; other processes are kept out by SQLite's lock. When the lock stays taken
past ``busy_timeout`` the transaction is retried with backoff and finally reported as
:class:`~abathur_memory.errors.Unavailable` — callers never see "database is locked".
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from abathur_memory.errors import AbathurError, InvalidInput, ReadOnly, Unavailable
from abathur_memory.store.sqlite import driver, statistics
from abathur_memory.store.sqlite.files import check_database_path

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


class _WorkerConnection(aiosqlite.Connection):
    """An aiosqlite connection that can run a function of the raw connection on its thread."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        # aiosqlite queues callables on its worker thread with `_execute`; it is not exported,
        # so this is the one place that relies on it (aiosqlite is pinned to 0.22.x).
        return await self._execute(lambda: fn(self._conn, *args))


async def _open_worker(
    path: Path, busy_timeout_ms: int, read_only: bool, file_read_only: bool = False
) -> _WorkerConnection:
    # Connect first (off the event loop), then hand the open connection to aiosqlite: a file
    # that cannot be opened then fails here, not inside aiosqlite's worker thread.
    raw = await asyncio.to_thread(
        functools.partial(
            driver.connect,
            path,
            busy_timeout_ms=busy_timeout_ms,
            read_only=read_only,
            file_read_only=file_read_only,
        )
    )
    try:
        # aiosqlite types awaiting a connection as giving a plain Connection; it gives itself.
        conn = _WorkerConnection(lambda: raw, iter_chunk_size=256)
        await conn
        return conn
    except BaseException:
        raw.close()
        raise


class Database:
    """One SQLite file opened for async use. Create with ``await Database.open(path)``."""

    def __init__(
        self,
        path: Path,
        writer: _WorkerConnection,
        readers: list[_WorkerConnection],
        *,
        write_retries: int,
        busy_timeout_ms: int,
    ) -> None:
        self.path = path
        self._writer = writer
        self._readers = readers
        # Last in, first out: under light load the same reader thread serves consecutive
        # reads and stays warm; a round-robin over cold threads costs a wake-up each time.
        self._idle: asyncio.LifoQueue[_WorkerConnection] = asyncio.LifoQueue()
        for reader in readers:
            self._idle.put_nowait(reader)
        self._write_retries = write_retries
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._identity = _file_identity(path)
        self._replaced: str | None = None  # why writes are refused, once the file moved
        self.read_only: str | None = None  # why writes are refused: a read-only file or folder

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        readers: int = 4,
        busy_timeout_ms: int = 5000,
        write_retries: int = 3,
        create: bool = True,
        create_dirs: bool = False,
    ) -> Database:
        """Open the database at ``path``, checked first: a foreign or damaged file is never
        written to. ``create`` makes it when missing (``create_dirs``: its directory too).
        Migrating it is the caller's (the store's)."""
        if str(path) in ("", ":memory:"):
            raise InvalidInput("an on-disk database path is needed (readers share the file)")
        path = Path(path).expanduser()
        check_database_path(path, create=create, create_dirs=create_dirs)
        read_only = _read_only_reason(path)
        opened: list[_WorkerConnection] = []
        try:
            writer = await _open_worker(
                path, busy_timeout_ms, read_only=False, file_read_only=read_only is not None
            )
            opened.append(writer)
            if read_only is None:
                # Before the readers open, so that they load what is left.
                await writer.run(statistics.drop_small_if_possible)
            db = cls(path, writer, [], write_retries=write_retries, busy_timeout_ms=busy_timeout_ms)
            db.read_only = read_only
            for _ in range(readers):
                reader = await _open_worker(
                    path, busy_timeout_ms, read_only=True, file_read_only=read_only is not None
                )
                opened.append(reader)
                db._readers.append(reader)
                db._idle.put_nowait(reader)
            return db
        except BaseException as exc:
            for conn in opened:
                await conn.close()
            if isinstance(exc, driver.DatabaseError) and not isinstance(exc, AbathurError):
                raise _environment_error(exc, path) or Unavailable(
                    f"cannot open {path}: {exc}"
                ) from None
            raise

    async def on_writer(self, fn: Callable[..., T], *args: Any, what: str = "writing") -> T:
        """Run ``fn(conn, *args)`` on the writer outside a transaction (``fn`` opens its own:
        migrations, maintenance), with the same busy retries as writes."""
        self._check_open()
        return await self._with_retries(self._writer, fn, args, what=what)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        replaced = self._replaced is not None or (
            self._identity is not None and _file_identity(self.path) != self._identity
        )
        try:
            # A file replaced under us: write nothing more, and empty our WAL (the -wal file
            # at the path), which SQLite would otherwise replay into the file now there.
            if self.read_only is None:
                await self._writer.run(_truncate_wal if replaced else _optimize)
        except Exception:  # closing must not fail because of a busy optimizer
            log.debug("closing work skipped", exc_info=True)
        for conn in [*self._readers, self._writer]:
            await conn.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- writes ---------------------------------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in one ``BEGIN IMMEDIATE`` transaction on the
        writer."""
        self._check_open()
        if self.read_only is not None:
            raise ReadOnly(self.read_only)
        if self._replaced is not None:
            raise Unavailable(self._replaced)
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return await self._with_retries(
            self._writer, _in_write_transaction, (fn, self._check_identity, *args)
        )

    def _check_identity(self) -> None:
        """Before a write commits: is the file at our path still the one we have open?

        A database deleted or replaced under a running server (``rm``, ``mv other.db
        live.db``) would otherwise keep acknowledging writes into a file nobody can open
        again. One ``stat`` per write transaction.
        """
        if self._identity is None or _file_identity(self.path) == self._identity:
            return
        self._replaced = (
            f"the database file {self.path} was deleted or replaced while this process had it "
            "open; writes are refused so none is lost (restart to open the file now there)"
        )
        log.error("%s", self._replaced)
        raise Unavailable(self._replaced)

    async def execute_write(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction; returns the number of rows changed."""
        return await self.write(lambda conn: conn.execute(sql, params).rowcount)

    # -- reads ----------------------------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` on a reader in one read transaction (one
        snapshot)."""
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return await self._on_reader(_in_read_transaction, (fn, *args))

    async def fetchall(self, sql: str, params: Params = ()) -> list[driver.Row]:
        """One SELECT on a reader: a single thread hop."""
        return await self._on_reader(_fetchall, (sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> driver.Row | None:
        return await self._on_reader(_fetchone, (sql, params))

    async def _on_reader(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self._check_open()
        reader = await self._idle.get()
        try:
            return await self._with_retries(reader, fn, args, what="reading")
        finally:
            self._idle.put_nowait(reader)

    # -- plumbing -------------------------------------------------------------------------

    async def _with_retries(
        self,
        conn: _WorkerConnection,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        *,
        what: str = "writing",
    ) -> T:
        attempt = 0
        while True:
            try:
                return await conn.run(fn, *args)
            except driver.DatabaseError as exc:
                if not driver.is_busy_error(exc):
                    environment = _environment_error(exc, self.path)
                    if environment is None:
                        raise
                    raise environment from None
                if attempt >= self._write_retries:
                    seconds = self._busy_timeout_ms / 1000
                    raise Unavailable(
                        f"the database {self.path.name} is busy: another process held its lock "
                        f"for more than {seconds:g} s, {attempt + 1} times, while {what}; "
                        "try again"
                    ) from None
                attempt += 1
                delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
                log.info("database busy while %s; retry %d in %.2fs", what, attempt, delay)
                await asyncio.sleep(delay)
            except ValueError as exc:  # aiosqlite: "Connection closed"
                if "closed" in str(exc).lower():
                    raise Unavailable("the database is closed") from None
                raise

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the database is closed")


def _in_write_transaction(
    conn: driver.Connection, fn: Callable[..., T], check: Callable[[], None], *args: Any
) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        check()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _in_read_transaction(conn: driver.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN")
    try:
        return fn(conn, *args)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _read_only_reason(path: Path) -> str | None:
    """Why this process cannot write the existing database at ``path`` (None: it can).

    Such a file is served read-only: reads work, writes answer ``read_only``. SQLite in WAL
    mode also needs to create ``-shm`` beside the file, so a read-only folder counts too.
    """
    if not path.exists() or driver.writable(path):
        return None
    if not os.access(path.parent, os.W_OK):
        where = f"the folder {path.parent} is not writable (a read-only folder or mount)"
    else:
        where = "the file is not writable"
    return f"the database {path} is read-only: {where}; it can be read but not written"


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _fetchall(conn: driver.Connection, sql: str, params: Params) -> list[driver.Row]:
    return conn.execute(sql, params).fetchall()


def _fetchone(conn: driver.Connection, sql: str, params: Params) -> driver.Row | None:
    return conn.execute(sql, params).fetchone()


def _optimize(conn: driver.Connection) -> None:
    conn.execute("PRAGMA optimize")
    statistics.drop_small_if_possible(conn)  # what optimize records for a new, small file


def _truncate_wal(conn: driver.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _environment_error(exc: driver.DatabaseError, path: Path) -> AbathurError | None:
    """A user-facing error for failures of the file or disk; None for anything else."""
    message = str(exc)
    lowered = message.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return ReadOnly(
            f"the database {path} is read-only: it can be read but not written ({message})"
        )
    if "disk is full" in lowered or "disk i/o" in lowered:
        return Unavailable(f"cannot write {path}: {message}")
    if "malformed" in lowered or "not a database" in lowered:
        return Unavailable(
            f"the database {path} is damaged ({message}); run `abathur-memory doctor`"
        )
    if "unable to open" in lowered:
        return Unavailable(f"cannot open {path}: {message}")
    return None
