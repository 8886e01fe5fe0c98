"""Lean JSON schemas for ``tools/list``: an agent pays for every byte of them on every turn.

pydantic's schemas repeat themselves: a title per field (the field's own name, capitalised),
``default: null`` beside every optional argument, the storage's integer limit on every
number, a ``$defs`` section per tool for records that several tools return, and every
field's constraints in the output schemas. What an agent needs is less:

- input schemas keep every constraint a client can act on (types, enums, lengths, ranges,
  required, ``additionalProperties: false``) and the descriptions, and lose titles,
  ``default: null``, ``additionalProperties: true`` (the default), the 64-bit limit
  (the server still checks it) and the ``null`` alternative of an optional argument;
- output schemas name the fields a result always carries (``required``), and no more: their
  values, nested records included, describe themselves in the result, and the tool's
  description says what it returns. Spelling out every field's type made them the larger
  half of ``tools/list`` (a task's 20 fields, repeated by the five tools that return one).

Both stay portable (no ``type`` arrays, no untyped schemas: the MCP Inspector's
``--strict`` check) and true: the client validates structured results against the output
schema, and the server validates arguments against the full pydantic model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from abathur_memory.core.values import MAX_INTEGER

Schema = dict[str, Any]

_MAPS = ("properties", "$defs", "patternProperties")
_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_ONE = ("items", "additionalProperties", "not", "contains")
_NOISE = ("title",)


def lean_input(schema: Schema) -> Schema:
    """An argument schema without pydantic's repetitions (see the module docstring)."""
    return _optional_without_null(_walk(_inline(schema), _trim))


def _optional_without_null(schema: Schema) -> Schema:
    """An optional argument's ``anyOf: [X, {type: null}]`` as X: leaving it out is how a
    client says "none" (the server still accepts an explicit null). 27 bytes per argument,
    on every turn."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    required = set(schema.get("required", ()))
    lean: dict[str, Any] = {}
    for name, sub in properties.items():
        options = sub.get("anyOf") if isinstance(sub, dict) else None
        if name not in required and isinstance(options, list) and len(options) == 2:
            kept = [o for o in options if o != {"type": "null"}]
            if len(kept) == 1:
                sub = {**{k: v for k, v in sub.items() if k != "anyOf"}, **kept[0]}
        lean[name] = sub
    return {**schema, "properties": lean}


def lean_output(model: Any) -> Schema | None:
    """The result's shape as the names of the fields it always carries (a field left out
    when empty, such as ``truncated``, is not listed): the values themselves say the rest."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    names = [
        field.alias or name
        for name, field in model.model_fields.items()
        if field.exclude_if is None and not field.exclude
    ]
    return {"type": "object", "required": names}


def _trim(node: Schema) -> Schema:
    out = {k: v for k, v in node.items() if k not in _NOISE}
    if "default" in out and out["default"] is None:
        del out["default"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if out.get("maximum") == MAX_INTEGER:
        del out["maximum"]
    return out


def _inline(schema: Schema) -> Schema:
    """``schema`` with its ``$defs`` references replaced by the definitions (they are not
    recursive here; a recursive one would be left as a reference)."""
    definitions = schema.get("$defs")
    if not definitions:
        return schema
    root = {k: v for k, v in schema.items() if k != "$defs"}

    def resolve(node: Schema, seen: tuple[str, ...] = ()) -> Schema:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in definitions and name not in seen:
                merged = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
                return _children(merged, lambda child: resolve(child, (*seen, name)))
        return _children(node, lambda child: resolve(child, seen))

    return resolve(root)


def _walk(node: Schema, change: Any) -> Schema:
    return _children(change(node), lambda child: _walk(child, change))


def _children(node: Schema, visit: Any) -> Schema:
    """``node`` with ``visit`` applied to each of its direct subschemas."""
    out = dict(node)
    for key in _MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {
                name: visit(sub) if isinstance(sub, dict) else sub for name, sub in out[key].items()
            }
    for key in _LISTS:
        if isinstance(out.get(key), list):
            out[key] = [visit(sub) if isinstance(sub, dict) else sub for sub in out[key]]
    for key in _ONE:
        if isinstance(out.get(key), dict):
            out[key] = visit(out[key])
    return out
