"""Every tool call and command is measured (tool, principal, outcome, latency, rows), written
in batches off the request path, rolled up and pruned, and read back by `stats` and `/metrics`
(issue 16), on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from backends import sync_sql
from cli_helpers import run_cli
from conftest import settings_for
from mcp_helpers import connected, text_of
from web_helpers import make_token, revoke_token, serving

from abathur_memory.core.metrics import BUCKETS, CallMetric, bucket_of, quantile
from abathur_memory.memory.metrics import MetricsRecorder, summarise
from abathur_memory.runtime import open_runtime

pytestmark = pytest.mark.anyio


def _rows(db: str, sql: str = "") -> list[tuple]:
    with sync_sql(db) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT metric_name, principal, outcome, rows_touched, metric_value, bucket"
                f" FROM metrics WHERE outcome IS NOT NULL {sql} ORDER BY id"
            ).fetchall()
        ]


async def test_every_tool_call_is_recorded_with_principal_outcome_latency_and_rows(db_url):
    async with connected(db_url) as client:
        put = await client.call_tool(
            "memory_put", {"namespace": "user:alice:notes", "key": "k", "value": 1}
        )
        assert not put.is_error, text_of(put)
        missing = await client.call_tool(
            "memory_get", {"namespace": "user:alice:notes", "key": "nope"}
        )
        assert missing.is_error
        listed = await client.call_tool("memory_list", {"prefix": "user:alice"})
        assert not listed.is_error
        bad = await client.call_tool("memory_get", {"namespace": "x", "key": "k"})
        assert bad.is_error
    rows = _rows(db_url, "AND metric_name NOT LIKE 'cli:%'")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("memory_put", "user:alice", "ok"),
        ("memory_get", "user:alice", "not_found"),
        ("memory_list", "user:alice", "ok"),
        ("memory_get", "user:alice", "invalid_input"),
    ]
    assert rows[0][3] == 1 and rows[2][3] == 1  # one record; one listed item
    for row in rows:
        assert row[4] > 0 and row[5] == bucket_of(row[4])


async def test_resource_reads_are_recorded_like_tool_calls(db_url):
    """memory:// and session:// reads count as ``resource:<name>`` with their outcome."""
    from mcp.shared.exceptions import MCPError

    async with connected(db_url) as client:
        await client.call_tool(
            "memory_put", {"namespace": "user:alice:notes", "key": "k", "value": 1}
        )
        session = await client.call_tool("session_create", {})
        assert not session.is_error, text_of(session)
        await client.read_resource("memory://user:alice:notes/k")
        with pytest.raises(MCPError):
            await client.read_resource("memory://user:alice:notes/missing")
        with pytest.raises(MCPError):
            await client.read_resource("memory://user:bob:notes/k")
        sid = session.structured_content["id"]
        await client.read_resource(f"session://{sid}")
    rows = _rows(db_url, "AND metric_name LIKE 'resource:%'")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("resource:memory", "user:alice", "ok", 1),
        ("resource:memory", "user:alice", "not_found", None),
        ("resource:memory", "user:alice", "forbidden", None),
        ("resource:session", "user:alice", "ok", 1),
    ]
    assert all(row[4] > 0 for row in rows)


class SlowStore:
    """A metrics store whose write waits until released: what a locked database does."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.batches: list[int] = []

    async def write(self, calls):
        await self.release.wait()
        self.batches.append(len(calls))


async def test_recording_never_waits_for_the_database_and_writes_in_batches():
    store = SlowStore()
    recorder = MetricsRecorder(store)  # type: ignore[arg-type]
    for n in range(1000):
        recorder.record("memory_get", "user:alice", "ok", 0.1 * n)  # returns at once
    assert store.batches == []  # nothing was written on the callers' path
    await asyncio.sleep(0)
    store.release.set()
    await recorder.close()
    assert store.batches == [1000]  # one transaction for the burst


async def test_a_failing_metrics_write_never_fails_a_call():
    class Broken:
        async def write(self, calls):
            raise OSError("disk full")

    recorder = MetricsRecorder(Broken())  # type: ignore[arg-type]
    recorder.record("memory_get", "user:alice", "ok", 1.0)
    await recorder.close()
    assert recorder.dropped == 1


def _call(
    at: datetime, latency: float, outcome: str = "ok", name: str = "memory_get"
) -> CallMetric:
    return CallMetric(at.timestamp(), name, "user:alice", outcome, latency, 1, bucket_of(latency))


async def test_rollup_keeps_the_counts_and_quantiles_and_prune_drops_old_minutes(runtime):
    now = datetime.now(UTC)
    old = now - timedelta(hours=30)
    ancient = now - timedelta(days=40)
    calls = [_call(old, float(n)) for n in range(1, 101)]
    calls += [_call(old, 5.0, "not_found"), _call(ancient, 3.0), _call(now, 2.0)]
    await runtime.store.metrics.write(calls)
    before = await runtime.metrics.stats(timedelta(days=2))
    rolled, pruned = await runtime.metrics.compact(raw_hours=24, retention_days=30)
    assert rolled == 102  # the 101 calls of 30 hours ago and the ancient one
    after = await runtime.metrics.stats(timedelta(days=2))
    assert after.tools == before.tools  # the same figures from minutes as from raw rows
    tool = after.tools[0]
    assert (tool.calls, tool.errors, tool.outcomes) == (102, 1, {"not_found": 1, "ok": 101})
    assert 45 <= tool.p50_ms <= 55 and 90 <= tool.p95_ms <= 100
    # The ancient call was rolled into a minute, which the retention then dropped.
    assert pruned == 1
    everything = await runtime.metrics.stats(timedelta(days=400))
    assert everything.tools[0].calls == 102
    # A second round finds nothing to do.
    assert await runtime.metrics.compact(raw_hours=24, retention_days=30) == (0, 0)


def test_quantiles_come_from_the_buckets():
    histogram = {bucket_of(float(n)): 0 for n in range(1, 101)}
    for n in range(1, 101):
        histogram[bucket_of(float(n))] += 1
    assert quantile({}, 0.5, 0) is None
    median = quantile(histogram, 0.5, 100.0)
    assert median is not None and 45 <= median <= 55
    top = quantile({BUCKETS - 1: 1}, 0.99, 90_000.0)
    assert top is not None and top <= 90_000.0
    assert summarise([]) == []


async def test_the_maintenance_worker_rolls_up_metrics(db_url):
    settings = settings_for(db_url, metrics_raw_hours=1, metrics_rollup_minutes=0.001)
    async with open_runtime(settings) as runtime:
        old = datetime.now(UTC) - timedelta(hours=2)
        await runtime.store.metrics.write([_call(old, 1.0)])
        await runtime.start_serving()
        for _ in range(500):
            if not _rows(db_url, "AND metric_name = 'memory_get'"):
                break
            await asyncio.sleep(0.02)
    assert _rows(db_url, "AND metric_name = 'memory_get'") == []
    with sync_sql(db_url) as conn:
        assert conn.scalar("SELECT sum(calls) FROM metric_minutes") == 1


def test_stats_reports_commands_per_tool_with_the_database_facts(db_url, capsys):
    assert run_cli(capsys, "init", "--db", db_url).code == 0
    assert run_cli(capsys, "tokens", "create", "t1", "--db", db_url).code == 0
    assert run_cli(capsys, "tokens", "revoke", "nope", "--db", db_url).code == 1
    result = run_cli(capsys, "stats", "--since", "1h", "--json", "--db", db_url)
    assert result.code == 0, result.err
    report = result.json()
    tools = {t["name"]: t for t in report["tools"]}
    assert tools["cli:tokens create"]["calls"] == 1
    assert tools["cli:tokens create"]["outcomes"] == {"ok": 1}
    assert tools["cli:tokens revoke"]["outcomes"] == {"not_found": 1}
    assert tools["cli:tokens revoke"]["error_rate"] == 1.0
    assert tools["cli:tokens create"]["p50_ms"] > 0
    facts = report["database"]
    assert facts["memories"] == 3  # the seeded application memories
    assert facts["sessions"] == facts["tasks"] == 0
    assert facts["size_bytes"] > 0
    text = run_cli(capsys, "stats", "--db", db_url)
    assert text.code == 0 and "cli:tokens create" in text.out and "WAL size" in text.out


def test_stats_refuses_a_window_that_is_not_a_duration(db_url, capsys):
    assert run_cli(capsys, "init", "--db", db_url).code == 0
    result = run_cli(capsys, "stats", "--since", "5x", "--db", db_url)
    assert result.code == 2 and "not a duration" in result.err


def test_metrics_endpoint_needs_a_live_token_and_shows_the_calls(db_url):
    admin = make_token(db_url, "ops", user="ops", admin=True)
    alice = make_token(db_url, "alice")
    with serving(db_url) as port:
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer abm_wrong"}).status_code == 401
        mcp = httpx.post(
            f"http://127.0.0.1:{port}/mcp",
            headers={
                "Authorization": f"Bearer {alice}",
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"},
                },
            },
        )
        assert mcp.status_code == 200
        session = mcp.headers["mcp-session-id"]
        headers = {
            "Authorization": f"Bearer {alice}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "mcp-session-id": session,
            "mcp-protocol-version": "2025-06-18",
        }
        httpx.post(
            f"http://127.0.0.1:{port}/mcp",
            headers=headers,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        called = httpx.post(
            f"http://127.0.0.1:{port}/mcp",
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "memory_get",
                    "arguments": {"namespace": "user:alice", "key": "x"},
                },
            },
        )
        assert called.status_code == 200
        mine = httpx.get(url, headers={"Authorization": f"Bearer {alice}"})
        assert mine.status_code == 200
        assert mine.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'abathur_calls_total{tool="memory_get",outcome="not_found"} 1' in mine.text
        assert 'abathur_call_seconds_count{tool="memory_get"} 1' in mine.text
        assert "abathur_memories" not in mine.text  # the database's gauges are for admins
        ops = httpx.get(url, headers={"Authorization": f"Bearer {admin}"})
        assert "abathur_memories 3" in ops.text and 'tool="memory_get"' in ops.text
        foreign = httpx.get(
            url, headers={"Authorization": f"Bearer {admin}", "Host": f"evil.example:{port}"}
        )
        assert foreign.status_code == 421
        revoke_token(db_url, "ops")
        assert httpx.get(url, headers={"Authorization": f"Bearer {admin}"}).status_code == 401


async def test_a_read_only_database_is_not_measured_and_not_warned_about(caplog):
    from abathur_memory.errors import ReadOnly

    class ReadOnlyStore:
        async def write(self, calls):
            raise ReadOnly("the database is read-only")

    recorder = MetricsRecorder(ReadOnlyStore())  # type: ignore[arg-type]
    recorder.record("memory_get", "user:alice", "ok", 1.0)
    await recorder.flush()
    recorder.record("memory_get", "user:alice", "ok", 1.0)
    await recorder.close()
    assert recorder.dropped == 1 and not recorder.enabled
    assert "could not record" not in caplog.text
