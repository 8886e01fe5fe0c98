"""The connection pool, and the one way work runs on it: retried, with typed errors.

Connections are autocommit. A read is one statement. A write is one of:

- :meth:`Database.pipelined`: the statements of a pipeline up to its sync run in one
  implicit transaction (the extended query protocol's), so locks taken by an early statement
  hold until the end, a failure rolls everything back, and the whole write costs one network
  round trip (plus one per read whose rows the work needs before writing). The rule that
  keeps it atomic: exactly one statement writes, and it is queued last; whatever raises
  before it has written nothing.
- :meth:`Database.transaction`: ``conn.transaction()`` for work that writes with several
  statements, or must roll back after looking at what it wrote.

Serialization failures, deadlocks and lock waits past ``lock_timeout`` are retried with
jittered backoff up to ``write_retries`` times, then reported as Unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from pgvector.psycopg.vector import register_vector_info
from psycopg import AsyncConnection, AsyncCursor
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg.types import TypeInfo
from psycopg_pool import AsyncConnectionPool

from abathur_memory.config import Settings
from abathur_memory.errors import InvalidInput, NotFound, Unavailable
from abathur_memory.store.postgres import placement
from abathur_memory.store.postgres.breaker import CircuitBreaker
from abathur_memory.store.postgres.failures import RETRYABLE, lost_the_server, message_of, translate
from abathur_memory.store.postgres.placement import Placement
from abathur_memory.store.postgres.statistics import StatisticsKeeper
from abathur_memory.store.postgres.times import IsoTimestampLoader

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = AsyncConnection[TupleRow]
Params = Sequence[Any] | dict[str, Any] | None
Queued = AsyncCursor[TupleRow] | list[TupleRow]

CONNECT_TIMEOUT_S = 10
PROBE_CONNECT_TIMEOUT_S = 2  # libpq's smallest
INIT_HINT = "run `abathur-memory init --db URL` first"


def redact(url: str) -> str:
    """``url`` as it may be shown: without its password (in the authority or the query)."""
    try:
        return _redact(url)
    except (ValueError, psycopg.ProgrammingError):
        return "the database URL"


def _redact(url: str) -> str:
    if "://" not in url:
        params = conninfo_to_dict(url)
        if "password" not in params:
            return url
        params["password"] = "***"
        return make_conninfo("", **params)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and all(k != "password" for k, _ in query):
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    hidden = [(k, "***" if k == "password" else v) for k, v in query]
    query_text = urlencode(hidden, safe="/:,=", quote_via=quote)
    return urlunsplit(parts._replace(netloc=netloc, query=query_text))


def _connect_kwargs(url: str) -> dict[str, Any]:
    """Connection options the URL does not set (the URL's own always win)."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = message_of(exc).replace(url, "…")  # libpq quotes it, password and all
        raise InvalidInput(f"the database URL is not valid: {reason}") from None
    extra: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in given:
        extra["application_name"] = "abathur-memory"
    return extra


def _configure(settings: Settings) -> Callable[[Conn], Awaitable[None]]:
    """Every pooled connection: timeouts from the settings, UTC, ISO dates, times read as
    the records' text, and pgvector's types once the extension exists (found in its own
    schema, whether or not the search_path names it)."""

    async def configure(conn: Conn) -> None:
        cur = await conn.execute(
            "SELECT set_config('statement_timeout', %s, false),"
            " set_config('lock_timeout', %s, false),"
            " set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO', false),"
            f" ({placement.VECTOR_SCHEMA})",
            (str(settings.pg_statement_timeout_ms), str(settings.pg_lock_timeout_ms)),
        )
        row = await cur.fetchone()
        conn.adapters.register_loader("timestamptz", IsoTimestampLoader)
        if row is not None and row[4] is not None:
            await register_vector_async(conn, row[4])

    return configure


async def register_vector_async(conn: Conn, schema: str) -> None:
    """pgvector's adapters (numpy arrays in, Vector out) for the type in ``schema``."""
    info = await TypeInfo.fetch(conn, placement.vector_type_name(schema))
    register_vector_info(conn, info)


def register_vector(conn: psycopg.Connection[Any], schema: str) -> None:
    """The same for a synchronous connection (migrate's)."""
    register_vector_info(conn, TypeInfo.fetch(conn, placement.vector_type_name(schema)))


async def _probe(
    url: str, label: str, kwargs: dict[str, Any], create: bool, check_path: bool
) -> Placement:
    """Connect once before the pool does, so a bad address or a missing database is
    reported as such (a pool only retries in the background); with ``create=False`` the
    database must have been initialised. With ``check_path``, a search_path that reaches
    another schema's tables of ours is refused (placement.py)."""
    try:
        conn = await AsyncConnection.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        text = message_of(exc)
        if "does not exist" in text and "database" in text:
            raise NotFound(
                f"the PostgreSQL database of {label} does not exist: create it "
                f"(createdb, or CREATE DATABASE), then {INIT_HINT}"
            ) from None
        raise Unavailable(f"cannot connect to PostgreSQL at {label}: {text}") from None
    try:
        cur = await conn.execute(placement.PROBE, (list(placement.our_tables()),))
        row = await cur.fetchone()
    except psycopg.Error as exc:
        raise translate(exc, label) from None
    finally:
        await conn.close()
    assert row is not None
    found = placement.placement_of(row)
    if found.schema is None:
        raise NotFound(
            f"no schema of the search_path ({found.search_path}) exists in {label}: create it "
            f"(CREATE SCHEMA) or fix the URL's options, then {INIT_HINT}"
        )
    if check_path:
        placement.check(found, label)
    elif found.problem() is not None:
        return found  # the caller (doctor) reports the path, which matters more
    if not create and not found.initialised:
        raise NotFound(
            f"the database {label} has no abathur-memory tables (schema {found.schema}): "
            f"{INIT_HINT}"
        )
    return found


class Database:
    """One PostgreSQL database opened for async use: ``await Database.open(url, settings)``."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        label: str,
        *,
        retries: int,
        url: str,
        connect_kwargs: dict[str, Any],
        placement: Placement | None = None,
    ) -> None:
        self.pool = pool
        self.label = label
        self._retries = retries
        self._url = url
        self._probe_kwargs = {**connect_kwargs, "connect_timeout": PROBE_CONNECT_TIMEOUT_S}
        self.breaker = CircuitBreaker(label, self._probe_server, pool.check)
        self.placement = placement
        # pgvector's schema, for its qualified names (None until the extension exists).
        self.vector_schema = placement.vector_schema if placement is not None else None
        self.statistics = StatisticsKeeper(self)  # bulk writers report their rows to it

    async def _probe_server(self) -> None:
        """Connect once, outside the pool (which may be waiting out its own backoff)."""
        conn = await AsyncConnection.connect(self._url, **self._probe_kwargs)
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    @classmethod
    async def open(
        cls, url: str, settings: Settings, *, create: bool = True, check_path: bool = True
    ) -> Database:
        kwargs = _connect_kwargs(url)
        label = redact(url)
        found = await _probe(url, label, kwargs, create, check_path)
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            connection_class=AsyncConnection[TupleRow],
            kwargs=kwargs,
            min_size=min(settings.pg_pool_min, settings.pg_pool_max),
            max_size=settings.pg_pool_max,
            configure=_configure(settings),
            timeout=settings.pg_pool_timeout_s,
            name="abathur-memory",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 3)
        except psycopg.Error as exc:
            await pool.close()
            raise translate(exc, label) from None
        return cls(
            pool,
            label,
            retries=settings.write_retries,
            url=url,
            connect_kwargs=kwargs,
            placement=found,
        )

    async def close(self) -> None:
        await self.statistics.close()
        await self.breaker.close()
        await self.pool.close()

    async def run(self, work: Callable[[Conn], Awaitable[T]], *, what: str = "writing") -> T:
        """``work(conn)`` on a pooled connection, retried when the failure was timing."""
        attempt = 0
        while True:
            if not self.pool.closed:  # a closed pool says so itself
                await self.breaker.check()
            try:
                # getconn/putconn rather than pool.connection(): the same check-out and
                # return without a context manager and a commit (a no-op on these autocommit
                # connections) around every call, about 20 µs less (bench/pg_point_profile.py).
                # A connection returned in a transaction is rolled back by the pool.
                conn = await self.pool.getconn()
                try:
                    return await work(conn)
                finally:
                    await self.pool.putconn(conn)
            except RETRYABLE as exc:
                if attempt >= self._retries:
                    raise Unavailable(
                        f"the database {self.label} is busy ({message_of(exc)}), "
                        f"{attempt + 1} times, while {what}; try again"
                    ) from None
                attempt += 1
                delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
                log.info("database busy while %s; retry %d in %.2fs", what, attempt, delay)
                await asyncio.sleep(delay)
            except (psycopg.Error, UnicodeEncodeError) as exc:
                if lost_the_server(exc):
                    self.breaker.failed()
                raise translate(exc, self.label) from None

    async def fetchone(
        self, sql: str, params: Params = None, *, what: str = "reading"
    ) -> TupleRow | None:
        """One statement (a read, or a write that is a single statement)."""

        async def one(conn: Conn) -> TupleRow | None:
            return await (await conn.execute(sql, params)).fetchone()

        return await self.run(one, what=what)

    async def fetchall(
        self, sql: str, params: Params = None, *, what: str = "reading"
    ) -> list[TupleRow]:
        async def every(conn: Conn) -> list[TupleRow]:
            return await (await conn.execute(sql, params)).fetchall()

        return await self.run(every, what=what)

    async def pipelined(
        self, queue: Callable[[Conn], Awaitable[Queued]], *, what: str = "writing"
    ) -> list[TupleRow]:
        """``queue(conn)`` in one pipeline, one implicit transaction (see the module
        docstring for its rule); returns the rows of the cursor it returns, read after the
        sync has committed (or the rows it returns when it decided not to write)."""

        async def work(conn: Conn) -> list[TupleRow]:
            async with conn.pipeline():
                queued = await queue(conn)
            return queued if isinstance(queued, list) else await queued.fetchall()

        return await self.run(work, what=what)

    async def transaction(self, fn: Callable[[Conn], Awaitable[T]], *, what: str = "writing") -> T:
        """``fn(conn)`` inside ``conn.transaction()`` (in a pipeline, to save round trips):
        committed when it returns, rolled back when it raises."""

        async def work(conn: Conn) -> T:
            async with conn.pipeline(), conn.transaction():
                return await fn(conn)

        return await self.run(work, what=what)
