"""What both storage backends decide the same way, with the same messages: a session state
over its size, the audit row of a denial (a put's decision is core/put_rule.py's)."""

from __future__ import annotations

import json

from abathur_memory.core.audit_text import storable_denial
from abathur_memory.core.records import Denial
from abathur_memory.errors import InvalidInput, Unavailable


def check_state_size(state_text: str, limit: int) -> None:
    size = len(state_text.encode("utf-8"))
    if size > limit:
        raise InvalidInput(f"the merged state would be {size:,} bytes; the limit is {limit:,}")


def denial_row(denial: Denial, count: int) -> tuple[str, str, str | None, str]:
    """The audit columns of a denial (action_type, action_data JSON, memory_namespace,
    actor), every field made storable first: a denial's text is the caller's and must
    never stop its row from being written (core/audit_text.py)."""
    denial = storable_denial(denial)
    data: dict[str, object] = {
        "attempted": denial.attempted,
        "target": denial.target,
        "rule": denial.rule,
        "count": count,
    }
    if denial.key is not None:
        data["key"] = denial.key
    return denial.action, json.dumps(data, ensure_ascii=False), denial.namespace, denial.actor


def check_copy_state(state: str | None, label: str) -> None:
    """A database that `abathur-memory migrate` is filling (or failed to fill) is not served:
    it is missing rows, or holds rows that differ from the source."""
    if state is None or state == "complete":
        return
    raise Unavailable(
        f"{label} is an unfinished copy made by `abathur-memory migrate` ({state}): run the "
        "same migrate command again to finish it, or point --db at another database"
    )
