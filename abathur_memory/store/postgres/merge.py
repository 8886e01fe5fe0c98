"""JSON merge patch (RFC 7396), what SQLite's ``json_patch`` applies to session state.

PostgreSQL has no merge patch (``||`` is neither recursive nor removes keys on null), and
the state is read under the session's row lock anyway, so it is merged here.
"""

from __future__ import annotations

import json
from typing import Any

from abathur_memory.core.merge_patch import merge_patch


def merged_text(state: dict[str, Any], patch_text: str) -> str:
    """The merged state as compact JSON text (the form whose size the limit counts)."""
    merged = merge_patch(state, json.loads(patch_text))
    return json.dumps(merged, ensure_ascii=False, separators=(",", ":"))
