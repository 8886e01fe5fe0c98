"""No input stops the audit, and a denial is audited exactly once.

Hostile text (NULs, lone surrogates, undecodable bytes, a megabyte, control characters,
direction overrides, JSON-breaking quotes) in every field of a denial is stored, escaped or
cut, on both backends: through the recorder, straight into the store, and through the tools.
A batch the database refuses is written row by row, with a placeholder for a row that still
cannot be stored. A flush cancelled after its commit (a server shutting down) does not write
its denials again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from backends import Raw, json_value, sync_sql
from mcp_helpers import connected, text_of

from abathur_memory.core.audit_text import MAX_COLUMN_CHARS, MAX_FIELD_CHARS, storable
from abathur_memory.core.browse import AuditQuery, AuditRecord
from abathur_memory.core.records import Denial
from abathur_memory.errors import InvalidInput
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.store.protocols import AuditStore

pytestmark = pytest.mark.anyio

MEGABYTE = "x" * (1024 * 1024)
HOSTILE = {
    "nul": "a\x00b",
    "high surrogate": "a\ud800b",
    "low surrogate": "a\udfffb",
    "undecodable bytes": b"a\xff\xfe\xc3(b".decode("utf-8", "surrogateescape"),
    "megabyte": MEGABYTE,
    "megabyte of nuls": "\x00" * (1024 * 1024),
    "controls": "a\x01\x1b[31mred\x7f\x85\r\n\tb",
    "rtl override": "user:\u202ebob\u202c:\u2066x\u2069\u200f",
    "json breaking": 'a"}, {"x": "\\u0000\\\\\'b',
    "everything": '\x00\ud800\u202e"\\' + "y" * 5000,
}


def hostile_denial(text: str, n: int = 0) -> Denial:
    """``text`` in every field of a denial (the actor made unique per case)."""
    return Denial(f"user:{n}{text}", f"memory_denied{text}", text, text, text, text, text)


def normal_denials(n: int = 20) -> list[Denial]:
    return [Denial("user:alice", "memory_denied", "read", f"user:bob:{i}", "no") for i in range(n)]


async def denied_rows(raw: Raw) -> list[Any]:
    return await raw.fetchall(
        "SELECT action_type, action_data, memory_namespace, actor FROM audit"
        " WHERE result = 'denied' ORDER BY id"
    )


def check_stored(row: Sequence[Any], text: str) -> None:
    action, data, namespace, actor = row
    data = json_value(data)
    for stored in (data["attempted"], data["target"], data["rule"], data["key"]):
        assert stored == storable(text)
        assert len(stored) <= MAX_FIELD_CHARS
        stored.encode("utf-8")  # valid Unicode
        assert "\x00" not in stored
    for stored in (action, namespace, actor):
        assert len(stored) <= MAX_COLUMN_CHARS and "\x00" not in stored
    assert namespace == storable(text, MAX_COLUMN_CHARS)


def test_storable_text_escapes_cuts_and_is_idempotent() -> None:
    assert storable("user:alice:notes") == "user:alice:notes"
    assert storable("a\x00b") == "a\\u0000b"
    assert storable("a\ud800b") == "a\\ud800b"
    assert storable("\u202ebob") == "\\u202ebob"
    assert storable("line\nbreak") == "line\\u000abreak"
    assert storable('q"\\') == 'q"\\'  # the stores serialise JSON: quotes stay as typed
    assert storable("café 東京 🙂") == "café 東京 🙂"
    cut = storable(MEGABYTE)
    assert len(cut) <= MAX_FIELD_CHARS and cut.endswith("[cut: 1,048,576 characters in all]")
    for text in HOSTILE.values():
        once = storable(text)
        assert storable(once) == once
        once.encode("utf-8")


async def test_hostile_denials_are_all_audited_by_the_recorder(runtime, raw):
    recorder = DenialRecorder(runtime.store.audit)
    for n, text in enumerate(HOSTILE.values()):
        recorder.record(hostile_denial(text, n))
    normal = normal_denials()
    for denial in normal:
        recorder.record(denial)
    await recorder.close()  # one batch: the hostile rows and the normal ones together
    rows = await denied_rows(raw)
    assert len(rows) == len(HOSTILE) + len(normal)
    for row, text in zip(rows, HOSTILE.values(), strict=False):
        check_stored(row, text)
    assert recorder.lost == recorder.placeholders == recorder.dropped == 0


async def test_the_stores_store_hostile_denials_as_given(runtime, raw):
    """Below the recorder: each backend makes every field storable itself."""
    batch = {hostile_denial(text, n): n + 1 for n, text in enumerate(HOSTILE.values())}
    ids = await runtime.store.audit.write_denials(batch, {})
    assert len(set(ids.values())) == len(HOSTILE)
    rows = await denied_rows(raw)
    assert len(rows) == len(HOSTILE)
    for row, (n, text) in zip(rows, enumerate(HOSTILE.values()), strict=True):
        check_stored(row, text)
        assert json_value(row[1])["count"] == n + 1
    again = await runtime.store.audit.write_denials({hostile_denial(HOSTILE["nul"], 0): 5}, ids)
    assert list(again.values()) == [ids[hostile_denial(HOSTILE["nul"], 0)]]  # folded
    assert len(await denied_rows(raw)) == len(HOSTILE)


class _Wrapped:
    """An audit store passing every call to ``inner`` (the doubles below change one)."""

    def __init__(self, inner: AuditStore) -> None:
        self.inner = inner

    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        return await self.inner.write_denials(batch, recent)

    async def count(self) -> int:
        return await self.inner.count()

    async def page(self, query: AuditQuery, before_id: int | None, limit: int) -> list[AuditRecord]:
        return await self.inner.page(query, before_id, limit)

    async def record(self, actor: str, action: str, data: dict[str, object]) -> int:
        return await self.inner.record(actor, action, data)


class RefusingAudit(_Wrapped):
    """An audit store that refuses (as the database would) every batch holding a denial
    ``refuse`` says no to."""

    def __init__(self, inner: AuditStore, refuse: Callable[[Denial], bool]) -> None:
        super().__init__(inner)
        self.refuse = refuse
        self.batches: list[int] = []

    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        self.batches.append(len(batch))
        if any(self.refuse(d) for d in batch):
            raise InvalidInput("PostgreSQL refused the value: simulated")
        return await self.inner.write_denials(batch, recent)


async def test_one_refused_row_does_not_sink_its_batch(runtime, raw, caplog):
    poison = Denial("user:mallory", "memory_denied", "read", "user:bob:x", "poison")
    audit = RefusingAudit(runtime.store.audit, lambda d: d.rule == "poison")
    recorder = DenialRecorder(audit)
    recorder.record(poison)
    for denial in normal_denials():
        recorder.record(denial)
    with caplog.at_level(logging.INFO, logger="abathur_memory.memory.denials"):
        await recorder.flush()
        await recorder.close()
    rows = await denied_rows(raw)
    targets = [json_value(r[1])["target"] for r in rows]
    assert len(rows) == 21
    assert sorted(targets) == sorted(["user:bob:x"] + [f"user:bob:{i}" for i in range(20)])
    stand_in = [json_value(r[1]) for r in rows if r[3] == "user:mallory"]
    assert len(stand_in) == 1 and stand_in[0]["count"] == 1
    assert stand_in[0]["rule"].startswith("the audit row of this denial could not be stored")
    assert recorder.placeholders == 1 and recorder.lost == 0
    assert audit.batches[0] == 21  # tried as one batch first
    levels = {r.levelno for r in caplog.records}
    assert levels == {logging.WARNING}, [r.getMessage() for r in caplog.records]


async def test_a_row_nothing_can_store_is_logged_and_counted_not_silently_dropped(
    runtime, raw, caplog
):
    audit = RefusingAudit(runtime.store.audit, lambda d: d.actor == "user:mallory")
    recorder = DenialRecorder(audit)
    recorder.record(Denial("user:mallory", "memory_denied", "read", "x", "no"))
    recorder.record(Denial("user:mallory", "memory_denied", "read", "x", "no"))
    for denial in normal_denials():
        recorder.record(denial)
    with caplog.at_level(logging.WARNING, logger="abathur_memory.memory.denials"):
        await recorder.close()
    assert len(await denied_rows(raw)) == 20
    assert recorder.lost == 2 and recorder.placeholders == 0
    assert any("was not audited" in r.getMessage() for r in caplog.records)


async def test_a_hostile_denial_through_the_tools_does_not_stop_the_audit(any_db_path):
    """The issue's case: a NUL in session_list's user_id, then twenty forbidden reads; and
    every other hostile text that gets as far as a denial."""
    reaching = {**HOSTILE, "128 nuls": "\x00" * 128, "128 overrides": "\u202e\n" * 64}
    forbidden = set()
    async with connected(any_db_path, user="alice") as alice:
        for name, text in reaching.items():
            result = await alice.call_tool("session_list", {"user_id": text})
            assert result.is_error
            if text_of(result).startswith("forbidden: "):
                forbidden.add(name)
            else:  # not a string (lone surrogates), or over user_id's 128 characters
                assert text_of(result).startswith("invalid_input: "), text_of(result)
        for i in range(20):
            namespace = f"user:bob:x{i}"
            result = await alice.call_tool("memory_get", {"namespace": namespace, "key": "k"})
            assert text_of(result).startswith("forbidden: ")
    assert forbidden == {
        *("nul", "controls", "rtl override", "json breaking", "128 nuls", "128 overrides")
    }
    with sync_sql(any_db_path) as conn:  # the server has shut down: everything is written
        denied = conn.scalar("SELECT count(*) FROM audit WHERE result = 'denied'")
    assert denied == len(forbidden) + 20


async def test_nuls_and_surrogates_in_writes_are_stored_or_invalid_input(any_db_path):
    """Never internal_error, and every change that was made has its audit row."""
    cases: list[dict[str, Any]] = [
        {"key": "k\x00", "value": 1},
        {"key": "k\ud800", "value": 1},
        {"key": "k", "value": "v\x00"},
        {"key": "k", "value": "v\ud800"},
        {"key": "k", "value": {"a\x00": "\udfff"}},
        {"key": "k", "value": 1, "metadata": {"m": "\x00"}},
        {"key": "k", "value": 1, "metadata": {"m": "\ud800"}},
        {"key": "k", "value": ['\x01\u202e"\\']},
    ]
    stored = 0
    async with connected(any_db_path, user="alice") as alice:
        for args in cases:
            result = await alice.call_tool("memory_put", {"namespace": "user:alice:x", **args})
            text = text_of(result)
            if result.is_error:
                assert text.startswith("invalid_input: "), (args, text)
            else:
                stored += 1
        for tool, args in (
            ("session_create", {"state": {"s": "\ud800"}}),
            ("task_create", {"prompt": "p", "input": {"i": "\udc80"}}),
        ):
            result = await alice.call_tool(tool, args)
            assert text_of(result).startswith("invalid_input: "), text_of(result)
    with sync_sql(any_db_path) as conn:
        where = "namespace = 'user:alice:x'"
        versions = conn.scalar(f"SELECT count(*) FROM memory_entries WHERE {where}")
        audited = conn.scalar(f"SELECT count(*) FROM audit WHERE memory_{where}")
    assert stored >= 1 and versions == stored and audited == stored


class CancelledAfterCommit(_Wrapped):
    """An audit store whose write commits, then waits on something cancellable (as the
    release of a pooled connection or the reply to COMMIT does)."""

    def __init__(self, inner: AuditStore) -> None:
        super().__init__(inner)
        self.committed = asyncio.Event()
        self.release = asyncio.Event()

    async def write_denials(
        self, batch: dict[Denial, int], recent: dict[Denial, int]
    ) -> dict[Denial, int]:
        ids = await self.inner.write_denials(batch, recent)
        self.committed.set()
        await self.release.wait()
        return ids


async def test_a_flush_cancelled_after_its_commit_is_not_written_again(runtime, raw):
    audit = CancelledAfterCommit(runtime.store.audit)
    recorder = DenialRecorder(audit)
    denials = normal_denials(5)
    for n, denial in enumerate(denials):
        for _ in range(n + 1):
            recorder.record(denial)
    await asyncio.wait_for(audit.committed.wait(), 30)  # the background flush committed
    closing = asyncio.create_task(recorder.close())  # a shutdown: cancels the flush task
    await asyncio.sleep(0.05)
    audit.release.set()
    await asyncio.wait_for(closing, 30)
    rows = await denied_rows(raw)
    counts = {json_value(r[1])["target"]: json_value(r[1])["count"] for r in rows}
    assert len(rows) == 5 and counts == {d.target: n + 1 for n, d in enumerate(denials)}


async def test_an_explicit_flush_cancelled_after_commit_is_written_once(runtime, raw):
    audit = CancelledAfterCommit(runtime.store.audit)
    recorder = DenialRecorder(audit)
    recorder.record(normal_denials(1)[0])
    flushing = asyncio.create_task(recorder.flush())
    await asyncio.wait_for(audit.committed.wait(), 30)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    recorder.record(normal_denials(1)[0])  # a repeat after the cancelled flush: folded
    audit.release.set()
    await recorder.close()
    rows = await denied_rows(raw)
    assert len(rows) == 1 and json_value(rows[0][1])["count"] == 2


def test_a_name_with_undecodable_bytes_is_one_line_of_invalid_input(tmp_path):
    """A command-line argument's undecodable bytes arrive as lone surrogates."""
    import os
    import subprocess
    import sys

    db = str(tmp_path / "t.db")
    command = [sys.executable, "-m", "abathur_memory", "tokens", "create"]
    assert subprocess.run([*command[:3], "init", "--db", db], capture_output=True).returncode == 0
    name = os.fsencode("laptop") + b"\xff\xfe"
    made = subprocess.run([*command, name, "--db", db], capture_output=True, text=True)
    assert made.returncode == 1, made.stderr
    assert made.stderr.startswith("error: token name contains U+DCFF, a lone surrogate")
    assert made.stderr.count("\n") == 1 and "Traceback" not in made.stderr
