"""Time every page of the web console on a big database; print one JSON object.

Not a test: run it by hand, e.g. ``python -m bench.console [--out FILE] [--quick]``.

One SQLite file is made the project's way (``driver.connect`` + ``runner.migrate``), then
filled straight through SQL: 100,000 live memories of user alice (in 500 namespaces, each
key with a second version every tenth key), 1,000 sessions of 1,000 events each (every tenth
event with a state delta), 10,000 documents in one root (a tenth failed, with an error),
5,000 tasks, an audit row per memory version, and the memory keyword index caught up (the
memory indexer, as ``serve`` runs it). ``--quick`` divides the sizes by 100.

The console is the one ``abathur-memory ui`` serves (the same routes as ``serve``'s /ui),
called in process through ASGI with an admin's bearer token (an admin reads everything: the
widest pages), so the times are the server's own: routing, the services, the database,
rendering. Each page is requested ``--calls`` times after a warm-up; p50 and p95 are reported
against the target of issue 16 (p95 < 300 ms). ``--backend postgres`` copies the built file
into a temporary PostgreSQL (``migrate``'s code) and times the same pages there.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, percentiles, postgres_server

FULL = {"memories": 100_000, "sessions": 1_000, "events": 1_000, "documents": 10_000}
QUICK = {"memories": 1_000, "sessions": 10, "events": 100, "documents": 100}
TASKS = 5_000
TARGET_P95_MS = 300.0
USER = "alice"
ACTOR = f"user:{USER}"


def build(path: Path, sizes: dict[str, int]) -> dict[str, Any]:
    from abathur_memory.store.sqlite import driver
    from abathur_memory.store.sqlite import migrate as runner

    started = time.perf_counter()
    conn = driver.connect(path)
    try:
        runner.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        rows = []
        for i in range(sizes["memories"]):
            namespace, key = f"user:{USER}:ns{i % 500}", f"k{i}"
            value = json.dumps({"i": i, "text": f"note {i} about topic {i % 97} " + "x" * 40})
            rows.append((namespace, key, value, 1))
            if i % 10 == 0:
                rows.append((namespace, key, value[:-1] + ',"v":2}', 2))
        conn.executemany(
            "INSERT INTO memory_entries (namespace, key, value, memory_type, version,"
            " created_by, updated_by) VALUES (?, ?, ?, 'semantic', ?, 'user:alice',"
            " 'user:alice')",
            rows,
        )
        for s in range(sizes["sessions"]):
            sid = f"00000000-0000-4000-8000-{s:012d}"
            conn.execute(
                "INSERT INTO sessions (id, app_name, user_id, status, last_seq, state)"
                " VALUES (?, 'abathur', ?, 'active', ?, '{}')",
                (sid, USER, sizes["events"]),
            )
            conn.executemany(
                "INSERT INTO session_events (session_id, seq, event_type, actor, content,"
                " state_delta) VALUES (?, ?, 'message', 'agent', ?, ?)",
                (
                    (
                        sid,
                        seq,
                        json.dumps({"text": f"message {seq}"}),
                        json.dumps({"step": seq}) if seq % 10 == 0 else None,
                    )
                    for seq in range(1, sizes["events"] + 1)
                ),
            )
        conn.execute(
            "INSERT INTO doc_roots (id, name, path) VALUES (1, 'notes', ?)",
            (str(path.parent / "notes"),),
        )
        conn.executemany(
            "INSERT INTO document_index (file_path, title, content_hash, sync_status, root_id,"
            " size_bytes, metadata, last_synced_at) VALUES (?, ?, ?, ?, 1, 1000, ?,"
            " strftime('%Y-%m-%d %H:%M:%f', 'now'))",
            (
                (
                    f"notes/d{d:05d}.md",
                    f"Document {d}",
                    f"h{d}",
                    "failed" if d % 10 == 0 else "synced",
                    json.dumps({"error": "cannot parse front matter"}) if d % 10 == 0 else "{}",
                )
                for d in range(sizes["documents"])
            ),
        )
        conn.executemany(
            "INSERT INTO tasks (id, prompt, agent_type, status, input_data, created_by,"
            " submitted_at, last_updated_at) VALUES (?, ?, 'general', ?, '{}', 'user:alice',"
            " strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now'))",
            (
                (
                    f"10000000-0000-4000-8000-{t:012d}",
                    f"task {t}",
                    ("pending", "running", "completed", "failed", "cancelled")[t % 5],
                )
                for t in range(TASKS)
            ),
        )
        conn.executemany(  # an audit row per memory version, as the puts would have left
            "INSERT INTO audit (action_type, action_data, result, memory_operation_type,"
            " memory_namespace, memory_entry_id, actor) SELECT 'memory_put',"
            " json_object('key', key, 'version', version), 'ok',"
            " CASE version WHEN 1 THEN 'create' ELSE 'update' END, namespace, id, created_by"
            " FROM memory_entries WHERE id > ? AND id <= ?",
            [(n, n + 10_000) for n in range(0, len(rows) + 10, 10_000)],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {"seconds": round(time.perf_counter() - started, 1)}


async def measure(path: Path | str, calls: int) -> dict[str, Any]:
    import httpx

    from abathur_memory.config import load_settings
    from abathur_memory.core.principal import Principal
    from abathur_memory.runtime import open_runtime
    from abathur_memory.server.console.standalone import console_app
    from abathur_memory.server.web import Holder

    settings = load_settings(
        db=str(path), user="ops", admin=True, embedder="fake", maintenance_interval_hours=0
    )
    holder = Holder(host="127.0.0.1", port=8766)
    app = console_app(settings, holder)
    async with open_runtime(settings) as runtime:
        started = time.perf_counter()
        while True:  # the keyword index and vectors caught up, as serve's indexer would
            done = await runtime.memory_indexer.catch_up()
            if not done.keywords and not done.embedded:
                break
        indexed_s = round(time.perf_counter() - started, 1)
        holder.runtime = runtime
        token = (
            await runtime.tokens.create(
                f"bench-{int(time.time())}", Principal(user="ops", admin=True)
            )
        ).secret
        session = (await runtime.sessions.list(runtime.principal, limit=1)).sessions[0].id
        pages = {
            "overview": "/ui?window=24h",
            "memories": "/ui/memories",
            "memories_namespace": f"/ui/memories?ns=user:{USER}:ns7",
            "memories_search_replay": "/ui/memories?q=topic+42&mode=hybrid",
            "memory": f"/ui/memory?namespace=user:{USER}:ns0&key=k0",
            "sessions": "/ui/sessions",
            "session": f"/ui/session?id={session}&seq=500",
            "tasks": "/ui/tasks",
            "documents": "/ui/documents",
            "documents_failed": "/ui/documents?root=notes&status=failed",
            "audit": "/ui/audit",
        }
        transport = httpx.ASGITransport(app=app)
        results: dict[str, Any] = {}
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1:8766",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            for name, page in pages.items():
                answer = await client.get(page)
                if answer.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {answer.status_code}: {answer.text[-400:]}")
            order = list(pages.items())
            samples: dict[str, list[float]] = {name: [] for name in pages}
            for n in range(calls):
                random.Random(n).shuffle(order)
                for name, page in order:
                    start = time.perf_counter()
                    answer = await client.get(page)
                    samples[name].append((time.perf_counter() - start) * 1000)
                    assert answer.status_code == 200
            for name, values in samples.items():
                measured = percentiles(values, digits=1)
                results[name] = {**measured, "meets_target": measured["p95_ms"] < TARGET_P95_MS}
        facts = (await runtime.metrics.facts()).model_dump()
    return {"pages": results, "database": facts, "memory_index_s": indexed_s}


def _on_postgres(path: Path, calls: int, built: dict[str, Any]) -> dict[str, Any]:
    """The file copied into a temporary PostgreSQL with ``migrate``'s own code, then the
    same pages timed against it."""
    from abathur_memory.config import load_settings
    from abathur_memory.ops import migration

    with postgres_server() as url:
        started = time.perf_counter()
        settings = load_settings(db=str(path), user="ops", admin=True, embedder="fake")
        report = migration.copy(str(path), url, settings)
        if not report.ok:
            raise SystemExit(f"the copy into PostgreSQL failed: {report.state}")
        built["migrated_to_postgres_s"] = round(time.perf_counter() - started, 1)
        return asyncio.run(measure(url, calls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--quick", action="store_true", help="sizes / 100 (a smoke run)")
    parser.add_argument("--calls", type=int, default=20, help="requests per page")
    parser.add_argument(
        "--db", type=Path, help="build the database here and keep it; reuse it if it exists"
    )
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: the built file migrated into a temporary PostgreSQL, then measured",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    from abathur_memory import __version__

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        path = args.db or Path(tmp) / "console.db"
        built = {"reused": str(path)} if path.exists() else build(path, sizes)
        if args.backend == "postgres":
            measured = _on_postgres(path, args.calls, built)
        else:
            measured = asyncio.run(measure(path, args.calls))
    out = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "quick": args.quick,
        "sizes": {**sizes, "tasks": TASKS},
        "build": built,
        "backend": args.backend,
        "target": f"every page p95 < {TARGET_P95_MS:g} ms (server side, in process)",
        "meets_target": all(p["meets_target"] for p in measured["pages"].values()),
        **measured,
    }
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
