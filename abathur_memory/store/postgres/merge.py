"""JSON merge patch (RFC 7396), what SQLite's ``json_patch`` applies to session state.

PostgreSQL has no merge patch (``||`` is neither recursive nor removes keys on null), and
the state is read under the session's row lock anyway, so it is merged here.
"""

from __future__ import annotations

import json
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target``: objects merge key by key, a null removes a key,
    anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def merged_text(state: dict[str, Any], patch_text: str) -> str:
    """The merged state as compact JSON text (the form whose size the limit counts)."""
    merged = merge_patch(state, json.loads(patch_text))
    return json.dumps(merged, ensure_ascii=False, separators=(",", ":"))
