"""What a principal may read, as a condition on a namespace column: SQLite's
``store/sqlite/readable.py`` in PostgreSQL's form, clause for clause, so both backends list
exactly the same memories. Namespaces are ``COLLATE "C"``: the ranges compare bytes, as
SQLite does."""

from __future__ import annotations

import json
from typing import Any

from abathur_memory.core.principal import Principal
from abathur_memory.core.search import MemoryFilters
from abathur_memory.store.postgres.times import SQL_NOW

# What no longer holds: SQLite's STILL_HOLDS (store/sqlite/readable.py), clause for clause.
STILL_HOLDS = f"""(m.valid_to IS NULL OR m.valid_to > {SQL_NOW})
  AND NOT EXISTS (SELECT 1 FROM memory_links AS l
                  WHERE l.to_namespace = m.namespace AND l.to_key = m.key
                    AND l.link_type = 'supersedes' AND l.removed_at IS NULL
                    AND l.to_version >= m.version AND l.holds_until <= {SQL_NOW})
  AND NOT EXISTS (SELECT 1 FROM memory_links AS l
                  WHERE l.from_namespace = m.namespace AND l.from_key = m.key
                    AND l.link_type = 'duplicates' AND l.removed_at IS NULL
                    AND l.from_version >= m.version)"""


def readable_sql(
    principal: Principal, prefix: str | None, column: str = "k.namespace"
) -> tuple[str, list[Any]]:
    """A condition on ``column`` that holds exactly for what the principal may read,
    optionally within ``prefix`` (on ':' boundaries). Positional ``%s`` parameters."""
    clauses: list[str] = []
    params: list[Any] = []

    def subtree(root: str) -> None:
        clauses.append(f"({column} = %s OR ({column} > %s AND {column} < %s))")
        params.extend([root, root + ":", root + ";"])

    if principal.admin:
        clauses.append("true")
    else:
        subtree(f"user:{principal.user}")
        subtree(f"app:{principal.app}")
        if principal.project:
            subtree(f"project:{principal.project}")
        clauses.append(f"({column} > 'temp:' AND {column} < 'temp;')")
        clauses.append(
            f"({column} > 'session:' AND {column} < 'session;' AND EXISTS ("
            " SELECT 1 FROM sessions AS s WHERE s.user_id = %s AND s.app_name = %s"
            f" AND ({column} = 'session:' || s.id"
            f"      OR substr({column}, 1, length(s.id) + 9) = 'session:' || s.id || ':')))"
        )
        params.extend([principal.user, principal.app])
    condition = "(" + " OR ".join(clauses) + ")"
    if prefix is not None:
        if prefix in ("app", "user", "project", "session", "temp"):
            condition += f" AND {column} > %s AND {column} < %s"
            params.extend([prefix + ":", prefix + ";"])
        else:
            condition += f" AND ({column} = %s OR ({column} > %s AND {column} < %s))"
            params.extend([prefix, prefix + ":", prefix + ";"])
    return condition, params


def memory_filter_sql(filters: MemoryFilters) -> tuple[str, list[Any]]:
    """`` AND ...`` conditions on ``m`` (memory_entries) and ``k`` (memory_search_index) for
    a search's filters, applied inside candidate selection (SQLite's memory_filter_sql)."""
    clauses: list[str] = []
    params: list[Any] = []
    clauses.append("m.redacted_at IS NULL")  # an erased memory has nothing to find
    if not filters.include_superseded:
        clauses.append(STILL_HOLDS)
    if filters.memory_type is not None:
        clauses.append("m.memory_type = %s")
        params.append(filters.memory_type)
    if filters.after is not None:
        clauses.append("k.moment >= %s")
        params.append(filters.after)
    if filters.before is not None:
        clauses.append("k.moment < %s")
        params.append(filters.before)
    for name, value in filters.metadata:
        clauses.append("m.metadata @> %s::jsonb")
        params.append(json.dumps({name: value}))
    return "".join(f" AND {clause}" for clause in clauses), params
