"""The MCP reference memory server's file (modelcontextprotocol/servers, src/memory).

Its ``memory.jsonl`` holds one JSON object per line: entities
``{"type": "entity", "name": ..., "entityType": ..., "observations": [...]}`` and relations
``{"type": "relation", "from": ..., "to": ..., "relationType": ...}``. Each entity becomes
a memory keyed by its name in ``user:<user>:mcp-memory``, each relation a memory in
``user:<user>:mcp-memory:relations`` keyed ``<from> --<relationType>--> <to>``; the value
is the line without its ``type`` (fields other servers add are kept). The file has no
versions and no times: a changed entity is a new version, stamped with the import's time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from abathur_memory.core import values
from abathur_memory.core.principal import Principal
from abathur_memory.errors import InvalidInput
from abathur_memory.memory.namespaces import clean
from abathur_memory.transfer.jsonl import Progress, add_version, json_lines, numbered_lines
from abathur_memory.transfer.records import Unit, VersionRecord, Where

FORMAT = "mcp-memory"


def looks_like(first: dict[str, Any]) -> bool:
    return first.get("type") in ("entity", "relation") and "kind" not in first


def namespace_for(principal: Principal) -> str:
    return f"user:{principal.user}:mcp-memory"


def _text(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string")
    return value


def _record(where: Where, obj: dict[str, Any], base: str, max_value_bytes: int) -> VersionRecord:
    value = {name: item for name, item in obj.items() if name != "type"}
    if obj.get("type") == "entity":
        key = values.check_identifier(_text(obj, "name"), what="entity name")
        _text(obj, "entityType")
        observations = obj.get("observations", [])
        if not isinstance(observations, list) or not all(isinstance(o, str) for o in observations):
            raise InvalidInput("observations must be a list of strings")
        namespace = base
        metadata = {"source": FORMAT, "type": "entity", "entityType": obj["entityType"]}
    elif obj.get("type") == "relation":
        source, target, relation = _text(obj, "from"), _text(obj, "to"), _text(obj, "relationType")
        key = values.check_identifier(f"{source} --{relation}--> {target}", what="relation")
        namespace = clean(f"{base}:relations")
        metadata = {"source": FORMAT, "type": "relation", "relationType": relation}
    else:
        raise InvalidInput(f"type must be 'entity' or 'relation', not {obj.get('type')!r}")
    return VersionRecord(
        where,
        namespace,
        key,
        None,
        values.encode_json(value, what="value", max_bytes=max_value_bytes),
        "semantic",
        values.encode_object(metadata, what="metadata"),
    )


def read(
    path: Path, principal: Principal, *, max_value_bytes: int, progress: Progress | None = None
) -> Unit:
    unit = Unit(name=str(path), format=FORMAT)
    base = clean(namespace_for(principal))
    with path.open("rb") as stream:
        for where, obj in json_lines(numbered_lines(stream, unit, progress), unit, "memory"):
            add_version(unit, where, obj, lambda w, o: _record(w, o, base, max_value_bytes))
    if not unit.versions and not unit.bad:
        unit.notes.append("the file holds no entities or relations")
    return unit
