"""Records built from trusted fields (core/records.py ``trusted``) are the records
``model_construct`` builds, and wrong fields are refused rather than half-built."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from abathur_memory.core.records import MemoryEntry, MemoryRecord, trusted


def entry_fields(**changes: Any) -> dict[str, Any]:
    fields = {
        "namespace": "user:alice:notes",
        "key": "k1",
        "version": 2,
        "value": {"text": "hello"},
        "memory_type": "semantic",
        "metadata": {"source": "chat"},
        "is_deleted": False,
        "created_by": "user:alice",
        "updated_by": "user:alice",
        "created_at": "2026-12-07T10:00:00.000Z",
        "updated_at": "2026-12-07T10:00:00.000Z",
        "truncated": None,
        "valid_from": None,
        "valid_to": "2027-01-01T00:00:00.000Z",
        "redacted_at": None,
        "redacted_by": None,
        "id": 7,
    }
    return {**fields, **changes}


def test_a_trusted_record_is_the_constructed_one():
    fields = entry_fields()
    built, constructed = trusted(MemoryEntry, dict(fields)), MemoryEntry.model_construct(**fields)
    assert built == constructed
    assert built.model_dump_json() == constructed.model_dump_json()
    assert '"valid_from"' not in built.model_dump_json()  # an absent marker stays out
    assert (
        MemoryRecord.of(built).model_dump()
        == MemoryRecord.model_construct(
            **{name: fields[name] for name in MemoryRecord.model_fields}
        ).model_dump()
    )
    with pytest.raises(Exception, match="frozen"):
        built.key = "other"


def test_wrong_fields_are_refused():
    missing = entry_fields()
    del missing["id"]
    with pytest.raises(TypeError, match="MemoryEntry takes"):
        trusted(MemoryEntry, missing)
    with pytest.raises(TypeError, match="MemoryEntry takes"):
        trusted(MemoryEntry, entry_fields(extra=1))
    reordered = dict(reversed(list(entry_fields().items())))
    with pytest.raises(TypeError, match="MemoryEntry takes"):
        trusted(MemoryEntry, reordered)


def test_models_that_need_their_own_construction_are_refused():
    class Hooked(BaseModel):
        a: int

        def model_post_init(self, context: Any, /) -> None:
            pass

    with pytest.raises(TypeError, match="needs model_construct"):
        trusted(Hooked, {"a": 1})
