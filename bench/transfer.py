"""Export and import speed on both backends; print one JSON object.

Not a test: run it by hand, ``python -m bench.transfer [--out FILE] [--quick] [--pg URL]``.
A source database is filled through the services (memories with three versions each,
sessions with events, tasks), exported with ``--with-history``, imported into a fresh
database (SQLite into SQLite, PostgreSQL into PostgreSQL, SQLite into PostgreSQL), then
imported again (the idempotent pass: everything is compared, nothing written). Reported:
seconds and records per second of each step, and whether the target answered the same
reads (transfer_helpers.reads over a sample). Without ``--pg`` a throwaway PostgreSQL is
started (bench.common's); each database on it is a schema of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import tempfile
import time
from pathlib import Path
from typing import Any

from abathur_memory.config import load_settings
from abathur_memory.core.principal import Principal
from abathur_memory.memory.memories import PutRequest
from abathur_memory.runtime import open_runtime
from bench.common import emit, header, postgres_schema, postgres_server

ADMIN = Principal(user="root", app="abathur", admin=True)
ALICE = Principal(user="alice", app="abathur", project="website")


@dataclasses.dataclass(frozen=True)
class Sizes:
    keys: int = 20_000
    versions: int = 3
    sessions: int = 200
    events: int = 100
    tasks: int = 2_000


QUICK = Sizes(keys=500, versions=2, sessions=10, events=10, tasks=50)


def _settings(db: str) -> Any:
    return load_settings(db=db, user="alice", embedder="fake", maintenance_interval_hours=0)


async def fill(db: str, sizes: Sizes) -> None:
    async with open_runtime(_settings(db)) as runtime:
        for version in range(sizes.versions):
            batch = [
                PutRequest(
                    f"user:alice:bench:{n % 50}",
                    f"key-{n}",
                    {"n": n, "version": version, "text": f"memory {n} says {version}"},
                    metadata={"v": version},
                )
                for n in range(sizes.keys)
            ]
            for start in range(0, len(batch), 5_000):
                await runtime.memories.put_many(ALICE, batch[start : start + 5_000])
        for _ in range(sizes.sessions):
            session = await runtime.sessions.create(ALICE, state={"open": True})
            for e in range(sizes.events):
                await runtime.sessions.append(
                    ALICE, session.id, "message", "user", {"text": f"turn {e}"}, {"turn": e}
                )
        for n in range(sizes.tasks):
            await runtime.tasks.create(ALICE, f"task {n}", priority=n % 11)


async def export(db: str) -> tuple[str, dict[str, Any]]:
    async with open_runtime(_settings(db)) as runtime:
        out = io.StringIO()
        started = time.perf_counter()
        report = await runtime.transfer.export(ADMIN, out.write, with_history=True)
        seconds = time.perf_counter() - started
    records = sum(k.records for k in report.kinds.values())
    return out.getvalue(), {
        "records": records,
        "bytes": len(out.getvalue().encode()),
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds),
    }


async def import_twice(db: str, path: Path, records: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with open_runtime(_settings(db)) as runtime:
        for name in ("import", "again"):
            started = time.perf_counter()
            report = await runtime.transfer.import_path(ADMIN, path)
            seconds = time.perf_counter() - started
            assert report.ok, report.files[0].problems[:3]
            out[name] = {
                "seconds": round(seconds, 2),
                "records_per_s": round(records / seconds),
                "verified": report.files[0].verified,
                "new": sum(k.new for k in report.files[0].kinds.values()),
            }
    return out


async def measure(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = args.pg or stack.enter_context(postgres_server())  # three schemas in it
        await _pairs(server, Path(tmp), sizes, result)
    return result


async def _pairs(server: str, tmp: Path, sizes: Sizes, result: dict[str, Any]) -> None:
    with (
        postgres_schema(server) as (pg_source, about),
        postgres_schema(server) as (pg_target, _),
        postgres_schema(server) as (pg_cross, _),
    ):
        result["postgres"] = {"version": about.get("version")}
        pairs = {
            "sqlite_to_sqlite": (str(tmp / "source.db"), str(tmp / "target.db")),
            "postgres_to_postgres": (pg_source, pg_target),
            "sqlite_to_postgres": (str(tmp / "source.db"), pg_cross),
        }
        filled: set[str] = set()
        for name, (source, target) in pairs.items():
            if source not in filled:
                started = time.perf_counter()
                await fill(source, sizes)
                result[f"fill_{name.split('_')[0]}_s"] = round(time.perf_counter() - started, 1)
                filled.add(source)
            text, exported = await export(source)
            path = tmp / f"{name}.jsonl"
            path.write_text(text, encoding="utf-8")
            result[name] = {
                "export": exported,
                **await import_twice(target, path, exported["records"]),
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--quick", action="store_true", help="a smoke run; numbers mean little")
    parser.add_argument("--pg", help="a PostgreSQL URL with pgvector (default: a throwaway server)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    import abathur_memory

    started = time.perf_counter()
    result: dict[str, Any] = {
        **header(),
        "version": abathur_memory.__version__,
        "quick": args.quick,
        "sizes": dataclasses.asdict(sizes),
    }
    result.update(asyncio.run(measure(args, sizes)))
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
