"""A schema per tenant, as docs/postgres.md says: one database, pgvector in ``public`` (its
default), tenants ``a`` and ``b`` each with ``search_path`` set to its own schema, and
``public`` holding a third tenant's tables. Each tenant indexes, searches (keyword and
hybrid: pgvector's type and operator are found outside the path), keeps memories, passes
doctor, and receives a copy with `migrate --to`, seeing only its own data. A search_path
that would reach another schema's tables is refused (and doctor says why)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pg_server
import pytest
from acting import open_acting
from backends import sync_sql
from cli_helpers import run_cli
from conftest import settings_for

pytestmark = pytest.mark.slow

WORDS = {"public": "zebra", "a": "aardvark", "b": "bison", "c": "capybara"}


@pytest.fixture
def database(pg_admin_uri: str) -> Iterator[str]:
    """A new database whose pgvector lives in ``public``; its URL's search_path is the
    default (so ``public`` is the schema used)."""
    name = f"d_{uuid.uuid4().hex[:16]}"
    url = pg_server.fresh_database(pg_admin_uri, name)
    try:
        yield url
    finally:
        pg_server.drop_database(pg_admin_uri, name)


def _tenant(database: str, schema: str, *, path: str | None = None) -> str:
    with sync_sql(database) as sql:
        sql.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return pg_server._with(database, options=f"-c search_path={path or schema}")


def _folder(tmp_path: Path, tenant: str) -> Path:
    folder = tmp_path / f"docs-{tenant}"
    folder.mkdir()
    word = WORDS[tenant]
    (folder / f"{word}.md").write_text(
        f"# About the {word}\n\nThe {word} of tenant {tenant} lives here, and only here.\n"
    )
    return folder


def _hits(
    capsys: pytest.CaptureFixture[str], url: str, query: str, mode: str
) -> tuple[list[str], str]:
    found = run_cli(capsys, "search", query, "--mode", mode, "--json", "--db", url)
    assert found.code == 0, found.err
    result = found.json()
    return sorted({Path(h["path"]).name for h in result["results"]}), result["mode_used"]


async def _memories(url: str, tenant: str) -> None:
    async with open_acting(settings_for(url)) as services:
        await services.memories.put("user:alice:notes", "secret", f"{WORDS[tenant]} memo")
        await services.runtime.memory_indexer.catch_up()


async def _memory_view(url: str) -> tuple[object, list[str]]:
    async with open_acting(settings_for(url)) as services:
        await services.runtime.memory_indexer.catch_up()  # a copy rebuilds its memory index
        got = await services.memories.get("user:alice:notes", "secret")
        result = await services.memories.search(" ".join(WORDS.values()), mode="keyword")
        return got.value, sorted(str(h.value) for h in result.results)


def _doctor(capsys: pytest.CaptureFixture[str], url: str) -> tuple[int, dict[str, dict]]:
    done = run_cli(capsys, "doctor", "--json", "--db", url)
    return done.code, {c["name"]: c for c in json.loads(done.out)["checks"]}


def test_tenants_in_schemas_beside_public_see_only_their_own(
    tmp_path, capsys, monkeypatch, database
):
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    monkeypatch.setenv("ABATHUR_USER", "alice")
    tenants = {
        "public": database,  # the default search_path: tables in public, beside pgvector
        "a": _tenant(database, "a"),
        "b": _tenant(database, "b"),
    }
    for tenant, url in tenants.items():
        assert run_cli(capsys, "init", "--db", url).code == 0
        indexed = run_cli(capsys, "index", str(_folder(tmp_path, tenant)), "--db", url)
        assert indexed.code == 0, indexed.err
        asyncio.run(_memories(url, tenant))

    for tenant, url in tenants.items():
        mine = f"{WORDS[tenant]}.md"
        for mode in ("keyword", "hybrid"):
            every = " ".join(WORDS.values())
            assert _hits(capsys, url, every, mode) == ([mine], mode), (tenant, mode)
        assert asyncio.run(_memory_view(url)) == (
            f"{WORDS[tenant]} memo",
            [f"{WORDS[tenant]} memo"],
        )
        code, checks = _doctor(capsys, url)
        assert code == 0, checks
        assert checks["search path"]["ok"]
        assert "pgvector in schema public" in checks["search path"]["detail"]

    with sync_sql(database) as sql:
        for schema in ("public", "a", "b"):
            assert sql.scalar(f"SELECT count(*) FROM {schema}.document_index") == 1
            value = sql.scalar(f"SELECT value FROM {schema}.memory_entries WHERE key = 'secret'")
            assert value == f"{WORDS[schema]} memo"

    # migrate --to a new tenant's schema, and back out of it.
    source = tmp_path / "source.db"
    assert run_cli(capsys, "init", "--db", str(source)).code == 0
    assert run_cli(capsys, "index", str(_folder(tmp_path, "c")), "--db", str(source)).code == 0
    asyncio.run(_memories(str(source), "c"))
    c = _tenant(database, "c")
    copied = run_cli(capsys, "migrate", "--db", str(source), "--to", c, "--json")
    assert copied.code == 0, copied.out + copied.err
    assert copied.json()["state"] == "complete"
    assert _hits(capsys, c, "capybara zebra aardvark", "hybrid") == (["capybara.md"], "hybrid")
    assert asyncio.run(_memory_view(c)) == ("capybara memo", ["capybara memo"])
    assert _doctor(capsys, c)[0] == 0
    back = tmp_path / "back.db"
    returned = run_cli(capsys, "migrate", "--db", c, "--to", str(back), "--json")
    assert returned.code == 0 and returned.json()["state"] == "complete", returned.err
    assert _hits(capsys, str(back), "capybara", "keyword") == (["capybara.md"], "keyword")


def test_a_search_path_reaching_another_tenants_tables_is_refused(
    tmp_path, capsys, monkeypatch, database
):
    monkeypatch.setenv("ABATHUR_EMBEDDER", "fake")
    assert run_cli(capsys, "init", "--db", database).code == 0  # a tenant in public
    asyncio.run(_memories(database, "public"))
    with sync_sql(database) as sql:
        before = sql.scalar("SELECT count(*) FROM public.memory_entries")

    # An empty tenant whose path goes on to public: nothing may be read or written there.
    d = _tenant(database, "d", path="d,public")
    for args in (("init",), ("status",), ("search", "zebra"), ("index", str(tmp_path))):
        refused = run_cli(capsys, *args, "--db", d)
        lines = refused.err.strip().splitlines()
        assert refused.code == 1 and len(lines) == 1, refused.err
        assert lines[0].startswith("error: ") and "search_path (d,public)" in lines[0]
        assert "tables in schema public" in lines[0] and "search_path=d" in lines[0]
    source = tmp_path / "source.db"
    assert run_cli(capsys, "init", "--db", str(source)).code == 0
    migrated = run_cli(capsys, "migrate", "--db", str(source), "--to", d)
    assert migrated.code == 1 and "search_path (d,public)" in migrated.err
    assert "Traceback" not in migrated.err
    dry = run_cli(capsys, "migrate", "--db", str(source), "--to", d, "--dry-run", "--json")
    assert "search_path (d,public)" in dry.json()["state"]
    code, checks = _doctor(capsys, d)
    assert code == 1 and not checks["search path"]["ok"]
    assert "tables in schema public" in checks["search path"]["detail"]
    with sync_sql(database) as sql:
        assert sql.scalar("SELECT count(*) FROM public.memory_entries") == before
        tables = sql.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'd'")
        assert tables == 0

    # A tenant that has its own tables, reached with public after it: refused all the same
    # (a table it lacks would be public's), and doctor says so instead of "all passed".
    b = _tenant(database, "b")
    assert run_cli(capsys, "init", "--db", b).code == 0
    b_public = _tenant(database, "b", path="b,public")
    status = run_cli(capsys, "status", "--db", b_public)
    assert status.code == 1 and "search_path (b,public)" in status.err
    code, checks = _doctor(capsys, b_public)
    assert code == 1 and not checks["search path"]["ok"]
    assert run_cli(capsys, "doctor", "--db", b).code == 0
