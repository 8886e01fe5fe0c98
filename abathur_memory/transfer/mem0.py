"""A mem0 export: what ``Memory.get_all()`` (``{"results": [...]}``) or the platform
client's ``get_all()`` (a list) return, saved as JSON, or one memory per line (JSONL).

Each memory (``{"id", "memory", "hash", "metadata", "created_at", "updated_at",
"user_id", "agent_id", "run_id", ...}``, mem0's ``MemoryItem`` with its promoted keys)
becomes a memory keyed by its id in ``user:<user_id>:mem0`` (``:agent:<agent_id>`` and
``:run:<run_id>`` added when set; without a user_id, the importing user's), whose value is
the memory's text. Its metadata is mem0's metadata plus ``source: "mem0"`` and a ``mem0``
object with the other fields (the search ``score`` is dropped). Its times are kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput
from abathur_memory.memory.namespaces import clean
from abathur_memory.transfer.jsonl import Progress, add_version, json_lines, numbered_lines
from abathur_memory.transfer.records import Unit, VersionRecord, Where, iso, iso_or_none

FORMAT = "mem0"
TEXT_FIELDS = ("memory", "data", "text")
_NOT_PROVENANCE = {*TEXT_FIELDS, "metadata", "created_at", "updated_at", "score"}


def looks_like(first: Any) -> bool:
    if isinstance(first, list):
        return all(isinstance(item, dict) for item in first)
    if not isinstance(first, dict):
        return False
    return any(k in first for k in TEXT_FIELDS) or isinstance(
        first.get("results", first.get("memories")), list
    )


def _namespace(item: dict[str, Any], principal: Principal) -> str:
    parts = [f"user:{item.get('user_id') or principal.user}:mem0"]
    if item.get("agent_id"):
        parts.append(f"agent:{item['agent_id']}")
    if item.get("run_id"):
        parts.append(f"run:{item['run_id']}")
    return clean(":".join(parts))


def _memory_type(item: dict[str, Any], metadata: dict[str, Any]) -> str:
    kind = item.get("memory_type") or metadata.get("memory_type")
    return "procedural" if kind in ("procedural", "procedural_memory") else "semantic"


def _record(
    where: Where, item: dict[str, Any], principal: Principal, max_value_bytes: int
) -> VersionRecord:
    text = next((item[f] for f in TEXT_FIELDS if isinstance(item.get(f), str)), None)
    if text is None:
        raise InvalidInput("a mem0 memory needs its text in 'memory'")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object")
    ident = item.get("id") or item.get("hash") or hashlib.sha256(text.encode()).hexdigest()[:32]
    provenance = {k: v for k, v in item.items() if k not in _NOT_PROVENANCE and v is not None}
    created = iso_or_none(item.get("created_at"), what="created_at")
    return VersionRecord(
        where,
        _namespace(item, principal),
        values.check_identifier(str(ident), what="id"),
        None,
        values.encode_json(text, what="memory", max_bytes=max_value_bytes),
        _memory_type(item, metadata),
        values.encode_object({**metadata, "source": FORMAT, "mem0": provenance}, what="metadata"),
        created_at=created,
        updated_at=iso(item["updated_at"], what="updated_at")
        if item.get("updated_at")
        else created,
    )


def _items(path: Path, unit: Unit, progress: Progress | None) -> list[tuple[Where, Any]]:
    """The memories of a JSON document (numbered as items) or of JSONL (numbered as lines)."""
    data = path.read_bytes()
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = None
    if progress is not None:
        progress(len(data))
    if isinstance(document, dict) and not looks_like_item(document):
        document = document.get("results", document.get("memories"))
        if not isinstance(document, list):
            unit.fail(
                Where(unit.name, 1), 'a mem0 export is a list of memories or {"results": [...]}'
            )
            return []
    if isinstance(document, list):
        return [(Where(unit.name, item=n), item) for n, item in enumerate(document, 1)]
    if isinstance(document, dict):
        return [(Where(unit.name, 1), document)]
    lines = numbered_lines(data.splitlines(keepends=True), unit, None)
    return list(json_lines(lines, unit, "memory"))


def looks_like_item(obj: dict[str, Any]) -> bool:
    return any(isinstance(obj.get(f), str) for f in TEXT_FIELDS)


def read(
    path: Path, principal: Principal, *, max_value_bytes: int, progress: Progress | None = None
) -> Unit:
    unit = Unit(name=str(path), format=FORMAT)
    for where, item in _items(path, unit, progress):
        add_version(unit, where, item, lambda w, i: _record(w, i, principal, max_value_bytes))
    return unit
