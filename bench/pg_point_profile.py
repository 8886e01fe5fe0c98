"""Where a memory_get and a memory_put spend their time on PostgreSQL, beside the raw psycopg
round trip; print one JSON object.

Not a test: run it by hand, ``python -m bench.pg_point_profile [--out FILE] [--pg URL]``
(``--quick``: a smoke run). Without ``--pg`` a throwaway PostgreSQL 18 + pgvector is started
and removed (bench/two_backends.py's, through tests/pg_server.py: fsync and
synchronous_commit off, data in /dev/shm, a local Unix socket).

10,000 keys are written, then every kind of call below runs ``--samples`` times per
repetition, the kinds interleaved in blocks of 100 with the order rotating (they share the
host's noise), ``--repeat`` times; each repetition's p50s give its ratios, and the spread of
the ratios over the repetitions is reported. The calls climb from the floor to the service:

- get: ``floor_get`` (bench/two_backends.py's: the SELECT of the latest version on a plain
  autocommit connection), ``pool_get`` (the same SELECT through the store's ``Database.run``:
  the circuit breaker's check, a connection checked out of the pool and returned),
  ``store_get`` (the store's read as the service calls it),
  ``service_get`` (``MemoryService.get``: validation, the namespace rule, the store, the
  entry's validity closed by its links);
- put: ``floor_insert`` (two_backends' floor: a one-row INSERT), ``floor_insert_audit`` (the
  least a version with its audit row costs: both INSERTs in one statement),
  ``sql_put_statement`` (the store's put statement alone on the plain connection: reading
  the latest version, comparing, the version and its audit row; without the key locks it
  is not safe, it is measured to part the statement's cost from the locks'), ``sql_put``
  (the key locks and the put statement, pipelined, as the store sends them),
  ``store_put`` (``put_many`` of one prepared put), ``service_put`` (``MemoryService.put``).

Each service call's wire traffic is counted from libpq's trace (tests/pg_wire.py): round
trips, statements, statements parsed (not yet prepared), pool check-outs. Beside each
call's wall time, the client's CPU time (``time.thread_time``): on a host where the client's
own work is most of a round trip, it shows what each layer adds without the server's and
the scheduler's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import interleaved, machine
from bench.two_backends import NAMESPACE, PG_GET, PG_INSERT, USER, Sizes, fill
from tests import pg_server, pg_wire

PG_INSERT_AUDIT = (
    "WITH e AS (" + PG_INSERT + " RETURNING id, namespace, key, version)"
    " INSERT INTO audit (action_type, action_data, result, memory_operation_type,"
    " memory_namespace, memory_entry_id, actor)"
    " SELECT 'memory_put', jsonb_build_object('key', e.key, 'version', e.version), 'ok',"
    " 'create', e.namespace, e.id, %s FROM e"
)
LADDERS = {
    "get": ("floor_get", "pool_get", "store_get", "service_get"),
    "put": (
        "floor_insert",
        "floor_insert_audit",
        "sql_put_statement",
        "sql_put",
        "store_put",
        "service_put",
    ),
}
KEYS = 10_000
WIRE_CALLS = 20


@contextlib.asynccontextmanager
async def database(pg: str | None) -> AsyncIterator[str]:
    """A URL of an empty schema: in ``pg``, or in a throwaway server."""
    base = None
    if pg is None:
        shm = Path("/dev/shm")
        base = Path(tempfile.mkdtemp(prefix="abathur-pgpoint-", dir=shm if shm.is_dir() else None))
        admin = pg_server.start_postgres(base)
    else:
        admin = pg
    schema = "bench_" + uuid.uuid4().hex[:10]
    try:
        yield pg_server.fresh_schema(admin, schema)
    finally:
        with contextlib.suppress(Exception):
            pg_server.drop_schema(admin, schema)
        if base is not None:
            pg_server.stop_postgres(base)
            shutil.rmtree(base, ignore_errors=True)


def store_get_of(store: Any) -> Any:
    """The store read ``MemoryService.get`` makes (before issue 18: ``latest``, then the
    key's links in a second statement)."""
    read = getattr(store.memories, "latest_with_supersedes", None)
    if read is not None:
        return read

    async def before(namespace: str, key: str) -> Any:
        return await store.memories.latest(namespace, key), await store.links.of(namespace, key)

    return before


async def profile(url: str, samples: int, repeat: int) -> dict[str, Any]:
    import psycopg

    from abathur_memory.config import load_settings
    from abathur_memory.core.records import PreparedPut
    from abathur_memory.runtime import open_runtime
    from abathur_memory.store.postgres import puts
    from abathur_memory.store.postgres.store import PostgresStore

    actor = f"user:{USER}"
    counter = iter(range(10**12))
    rng = np.random.default_rng(20261218)
    async with open_runtime(load_settings(db=url, user=USER, embedder="fake")) as runtime:
        store, service = runtime.store, runtime.memories
        assert isinstance(store, PostgresStore)
        await fill(runtime, Sizes(keys=KEYS))
        await store.database.statistics.idle()  # the ANALYZE the fill set off
        alice = runtime.principal
        store_get = store_get_of(store)
        raw = await psycopg.AsyncConnection.connect(url, autocommit=True)

        def prepared(key: str) -> PreparedPut:
            value = json.dumps({"n": next(counter), "text": "changed"})
            return PreparedPut(NAMESPACE, key, value, "semantic", None, None, None, None)

        async def floor_get(key: str) -> None:
            assert await (await raw.execute(PG_GET, (NAMESPACE, key))).fetchone() is not None

        async def select(conn: Any, key: str) -> Any:
            return await (await conn.execute(PG_GET, (NAMESPACE, key))).fetchone()

        async def pool_get(key: str) -> None:
            assert await store.database.run(lambda conn: select(conn, key)) is not None

        async def store_get_(key: str) -> None:
            await store_get(NAMESPACE, key)

        async def service_get(key: str) -> None:
            assert (await service.get(alice, NAMESPACE, key)).key == key

        async def floor_insert(_: str) -> None:
            row = (NAMESPACE, f"raw{next(counter)}", '{"n": 1}', 1, actor, actor)
            await raw.execute(PG_INSERT, row)

        async def floor_insert_audit(_: str) -> None:
            row = (NAMESPACE, f"rawa{next(counter)}", '{"n": 1}', 1, actor, actor, actor)
            await raw.execute(PG_INSERT_AUDIT, row)

        async def sql_put_statement(key: str) -> None:
            params = puts._round_params([prepared(key)], [0], actor, True)
            cur = await raw.execute(puts._PUT_ROUND, params)
            assert (await cur.fetchall())[0][6] is not None

        async def sql_put(key: str) -> None:
            params = puts._round_params([prepared(key)], [0], actor, True)
            async with raw.pipeline():
                await puts.lock_keys(raw, [(NAMESPACE, key)])
                cur = await raw.execute(puts._PUT_ROUND, params)
            assert (await cur.fetchall())[0][6] is not None

        async def store_put(key: str) -> None:
            assert (await store.memories.put_many([prepared(key)], actor))[0].created

        async def service_put(key: str) -> None:
            value = {"n": next(counter), "text": "changed"}
            assert (await service.put(alice, NAMESPACE, key, value)).created

        kinds = {
            "floor_get": floor_get,
            "pool_get": pool_get,
            "store_get": store_get_,
            "service_get": service_get,
            "floor_insert": floor_insert,
            "floor_insert_audit": floor_insert_audit,
            "sql_put_statement": sql_put_statement,
            "sql_put": sql_put,
            "store_put": store_put,
            "service_put": service_put,
        }
        calls = {name: timed(fn) for name, fn in kinds.items()}
        keys = [f"k{i}" for i in rng.integers(0, KEYS, samples * repeat + 200)]
        try:
            await interleaved(calls, keys[:200], 100, gc_off=True)  # warm: every statement prepared
            wire = {
                "get": await count_wire(store.database, service_get, keys[:WIRE_CALLS]),
                "put": await count_wire(store.database, service_put, keys[:WIRE_CALLS]),
            }
            runs: list[dict[str, float]] = []
            cpu: list[dict[str, float]] = []
            for number in range(repeat):
                chunk = keys[200 + number * samples : 200 + (number + 1) * samples]
                found = await interleaved(calls, chunk, 100, gc_off=True)
                runs.append(
                    {name: _p50_us([v[0] for v in values]) for name, values in found.items()}
                )
                cpu.append(
                    {name: _mean_us([v[1] for v in values]) for name, values in found.items()}
                )
        finally:
            await raw.close()
    return {
        "wire_per_call": wire,
        "runs_p50_us": runs,
        "runs_client_cpu_us": cpu,
        "summary": summary(runs),
        "client_cpu": summary(cpu),
    }


def timed(fn: Any) -> Any:
    """``fn`` returning its (wall time, this thread's CPU time): the CPU is the client's own
    work (Python, psycopg, the kernel's side of its socket calls), the rest is waiting."""

    async def run(item: Any) -> tuple[float, float]:
        cpu, start = time.thread_time(), time.perf_counter()
        await fn(item)
        return time.perf_counter() - start, time.thread_time() - cpu

    return run


async def count_wire(database: Any, call: Any, keys: list[str]) -> dict[str, float]:
    async with pg_wire.counting(database) as wire:
        for key in keys:
            await call(key)
    n = len(keys)
    return {
        "round_trips": wire.round_trips / n,
        "statements": wire.statements / n,
        "parsed": wire.parses / n,
        "pool_checkouts": wire.checkouts / n,
    }


def _p50_us(values: list[float]) -> float:
    return round(statistics.median(values) * 1e6, 1)


def _mean_us(values: list[float]) -> float:
    return round(statistics.fmean(values) * 1e6, 1)


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Per kind the median over the repetitions; per ratio and step its median and range."""

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 2),
            "min": round(min(values), 2),
            "max": round(max(values), 2),
        }

    out: dict[str, Any] = {
        "us": {name: round(statistics.median(r[name] for r in runs), 1) for name in runs[0]}
    }
    ratios: dict[str, Any] = {}
    steps: dict[str, Any] = {}
    for ladder in LADDERS.values():
        floor = ladder[0]
        for name in ladder[1:]:
            ratios[f"{name}/{floor}"] = spread([r[name] / r[floor] for r in runs])
        for lower, upper in itertools.pairwise(ladder):
            steps[f"{upper}-{lower}"] = spread([r[upper] - r[lower] for r in runs])
    ratios["service_put/floor_insert_audit"] = spread(
        [r["service_put"] / r["floor_insert_audit"] for r in runs]
    )
    out["ratios"] = ratios
    out["steps_us"] = steps
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--pg", help="a PostgreSQL URL with pgvector (default: a throwaway server)")
    parser.add_argument("--samples", type=int, default=2000, help="calls per kind and repetition")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run; numbers mean little")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.repeat = 200, 2
    import abathur_memory

    started = time.perf_counter()
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "version": abathur_memory.__version__,
        "samples_per_kind_and_run": args.samples,
        "repeat": args.repeat,
    }

    async def run() -> dict[str, Any]:
        async with database(args.pg) as url:
            return await profile(url, args.samples, args.repeat)

    result.update(asyncio.run(run()))
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
